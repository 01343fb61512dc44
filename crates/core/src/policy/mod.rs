//! Abuse policies on the authentication endpoints: per-IP rate limiting (two GCRA tiers),
//! account lockout, and reputation with a Turnstile CAPTCHA step. The arithmetic is pure and
//! lives in the submodules; the state lives in the `Counters` port (a Durable Object per key).
//!
//! A counter store that does not answer fails closed: the endpoint answers 500 rather than
//! checking a secret without its limits.

pub mod client_ip;
pub mod counter;
pub mod lockout;
pub mod rate_limit;
pub mod reputation;
pub mod turnstile;

use serde_json::json;

use crate::crypto::sha256;
use crate::error::{Error, ErrorCode, InternalError, OAuthError};
use crate::http::{Method, Request, Response};
use crate::store::events;
use crate::Ctx;
use client_ip::{ClientIp, TrustedProxies};
use lockout::LockoutPolicy;
use rate_limit::Tier;
use reputation::ReputationPolicy;
use turnstile::TurnstileSettings;

/// The policy settings (`[vars]`; the Turnstile secret is a secret).
#[derive(Clone, Debug)]
pub struct PolicySettings {
    /// The tiers every request to an endpoint that checks a secret must pass; empty: rate
    /// limiting is off (for every endpoint).
    pub rate_limit: Vec<Tier>,
    /// The more generous tiers of the endpoints ordinary page loads hit (authorize, the gateway
    /// start, CSP reports): unauthenticated writes, so they are bounded too. Empty: off.
    pub page_rate_limit: Vec<Tier>,
    pub trusted_proxies: TrustedProxies,
    pub lockout: LockoutPolicy,
    pub reputation: ReputationPolicy,
    /// The CAPTCHA step; `None`: reputation is tracked but nothing asks for a CAPTCHA.
    pub turnstile: Option<TurnstileSettings>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            rate_limit: vec![Tier::per_second(5, 10), Tier::per_minute(20, 20)],
            page_rate_limit: vec![Tier::per_second(10, 30), Tier::per_minute(120, 120)],
            trusted_proxies: TrustedProxies::default(),
            lockout: LockoutPolicy::default(),
            reputation: ReputationPolicy::default(),
            turnstile: None,
        }
    }
}

/// Bounds on numbers, so a typo fails loudly instead of overflowing or disabling silently.
const MAX_RATE: i64 = 1_000_000;

impl PolicySettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PolicySettings, InternalError> {
        let d = PolicySettings::default();
        let int = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, InternalError> {
            match get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| InternalError::new(format!("{name} must be a whole number from {min} to {max}"))),
            }
        };
        let rps = int("GATEHOUSE_RATE_LIMIT_RPS", 5, 0, MAX_RATE)?;
        let burst = int("GATEHOUSE_RATE_LIMIT_BURST", 10, 1, MAX_RATE)?;
        let rpm = int("GATEHOUSE_RATE_LIMIT_RPM", 20, 0, MAX_RATE)?;
        let rpm_burst = int("GATEHOUSE_RATE_LIMIT_RPM_BURST", 20, 1, MAX_RATE)?;
        // RPS=0 turns the limiter off (a WAF in front already limits); RPM=0 only the minute tier.
        let tiers = |rps: i64, burst: i64, rpm: i64, rpm_burst: i64| {
            let mut out = Vec::new();
            if rps > 0 {
                out.push(Tier::per_second(rps as u32, burst as u32));
                if rpm > 0 {
                    out.push(Tier::per_minute(rpm as u32, rpm_burst as u32));
                }
            }
            out
        };
        let rate_limit = tiers(rps, burst, rpm, rpm_burst);
        let page_rate_limit = if rate_limit.is_empty() {
            // RATE_LIMIT_RPS=0 turns the whole limiter off.
            Vec::new()
        } else {
            tiers(
                int("GATEHOUSE_PAGE_RATE_LIMIT_RPS", 10, 0, MAX_RATE)?,
                int("GATEHOUSE_PAGE_RATE_LIMIT_BURST", 30, 1, MAX_RATE)?,
                int("GATEHOUSE_PAGE_RATE_LIMIT_RPM", 120, 0, MAX_RATE)?,
                int("GATEHOUSE_PAGE_RATE_LIMIT_RPM_BURST", 120, 1, MAX_RATE)?,
            )
        };
        let lockout = LockoutPolicy {
            max_attempts: int("GATEHOUSE_LOCKOUT_MAX_ATTEMPTS", 5, 0, 1000)? as u32,
            duration_ms: int("GATEHOUSE_LOCKOUT_DURATION", 900, 1, 365 * 24 * 3600)? * 1000,
        };
        let dr = d.reputation;
        let reputation = ReputationPolicy {
            lower: int("GATEHOUSE_REPUTATION_LOWER_LIMIT", dr.lower, -1000, 0)?,
            upper: int("GATEHOUSE_REPUTATION_UPPER_LIMIT", dr.upper, 0, 1000)?,
            threshold: int("GATEHOUSE_REPUTATION_THRESHOLD", dr.threshold, -1000, 1000)?,
            expiry_ms: int("GATEHOUSE_REPUTATION_EXPIRY", dr.expiry_ms / 1000, 1, 365 * 24 * 3600)? * 1000,
        };
        if reputation.threshold < reputation.lower {
            return Err(InternalError::new(
                "GATEHOUSE_REPUTATION_THRESHOLD is below GATEHOUSE_REPUTATION_LOWER_LIMIT: no score could reach it",
            ));
        }
        Ok(PolicySettings {
            rate_limit,
            page_rate_limit,
            trusted_proxies: TrustedProxies::parse(&get("GATEHOUSE_TRUSTED_PROXIES").unwrap_or_default())?,
            lockout,
            reputation,
            turnstile: TurnstileSettings::from_values(
                get("GATEHOUSE_TURNSTILE_SITE_KEY"),
                get("GATEHOUSE_TURNSTILE_SECRET"),
                get("GATEHOUSE_TURNSTILE_VERIFY_URL"),
            )?,
        })
    }
}

pub fn client_ip(ctx: &Ctx<'_>, req: &Request) -> ClientIp {
    ClientIp::from_request(req, &ctx.settings.policy.trusted_proxies)
}

/// The counter key of an attempted username: case-insensitive, and of bounded length whatever
/// was typed (usernames are at most 64 characters; anything longer is hashed).
pub fn user_key(username: &str) -> String {
    let lower = username.trim().to_lowercase();
    if lower.len() <= 64 {
        format!("user:{lower}")
    } else {
        format!("user:#{}", crate::crypto::b64url(&sha256(lower.as_bytes())))
    }
}

/// How a limited endpoint answers 429: in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// RFC 6749 §5.2-style JSON (token, introspection, revocation, admin API, passkey API).
    Json,
    /// The login form again, with a message, so the flow survives the wait.
    LoginForm,
    /// An HTML error page.
    Page,
}

/// Which tiers a limited endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Checks a secret: the strict tiers.
    Secret,
    /// Hit by ordinary page loads, and stores what it is sent: the generous tiers.
    Page,
}

/// The limited endpoints, each with its own bucket per client IP.
fn limited(method: Method, path: &str) -> Option<(&'static str, Shape, Class)> {
    if method == Method::Options {
        return None; // CORS preflights check nothing.
    }
    let page = match (method, path) {
        // Each stores a pending request (or a report) for anyone who asks.
        (Method::Get | Method::Post, "/oauth2/authorize") => Some(("authorize", Shape::Page)),
        (Method::Get, "/oauth2/gateway") => Some(("gateway_start", Shape::Page)),
        (Method::Post, "/.gatehouse/csp-report") => Some(("csp_report", Shape::Json)),
        _ => None,
    };
    if let Some((bucket, shape)) = page {
        return Some((bucket, shape, Class::Page));
    }
    let (bucket, shape) = match (method, path) {
        (Method::Post, "/oauth2/login") => ("login", Shape::LoginForm),
        (Method::Post, "/oauth2/mfa") => ("mfa", Shape::Page),
        (_, "/oauth2/passkey/login/finish") => ("passkey", Shape::Json),
        (Method::Post, "/oauth2/consent") => ("consent", Shape::Page),
        // The gateway's one-time sign-in code, redeemed on an app's host.
        (Method::Get, "/.gatehouse/callback") => ("gateway_callback", Shape::Page),
        (_, "/oauth2/token") => ("token", Shape::Json),
        (_, "/oauth2/introspect") => ("introspect", Shape::Json),
        (_, "/oauth2/revoke") => ("revoke", Shape::Json),
        (_, p) if p == "/admin/api" || p.starts_with("/admin/api/") => ("admin", Shape::Json),
        _ => return None,
    };
    Some((bucket, shape, Class::Secret))
}

/// Per-IP rate limiting, in front of the endpoints that check secrets. `None`: go ahead.
pub async fn guard(ctx: &Ctx<'_>, req: &Request) -> Option<Response> {
    let (bucket, shape, class) = limited(req.method, &req.path)?;
    let tiers = match class {
        Class::Secret => &ctx.settings.policy.rate_limit,
        Class::Page => &ctx.settings.policy.page_rate_limit,
    };
    if tiers.is_empty() {
        return None;
    }
    let client = client_ip(ctx, req);
    let answer = |e: Error| match shape {
        Shape::Json => e.into_json(),
        Shape::LoginForm | Shape::Page => e.into_page(),
    };
    let (allowed, retry_after_ms, newly_limited) = match ctx.counters.rate_limit(&client.key(), bucket, tiers).await {
        Ok(d) => d,
        Err(e) => return Some(answer(e.into())),
    };
    if allowed {
        return None;
    }
    if newly_limited {
        // Once per episode, not per refused request: a flood must not become a flood of writes.
        let event = events::Event {
            kind: "rate_limited",
            user_id: None,
            client_id: None,
            ip: Some(&client.to_string()),
            detail: json!({ "endpoint": req.path, "key": client.key() }),
        };
        if let Err(e) = events::record(ctx.db, ctx.rng, ctx.clock.now(), event).await {
            crate::error::log_internal(&e);
        }
    }
    let retry_after = rate_limit::retry_after_secs(retry_after_ms);
    let mut resp = match shape {
        Shape::Json => answer(OAuthError::new(ErrorCode::RateLimited, "too many requests").into()),
        Shape::LoginForm => crate::oidc::login::rate_limited(ctx, req, retry_after).await,
        Shape::Page => Response::error_page(
            429,
            "rate_limited",
            &format!("Too many attempts from your network. Please wait {retry_after} seconds and try again."),
        ),
    };
    resp.status = 429;
    resp.set_header("retry-after", &retry_after.to_string());
    Some(resp)
}

/// Whether the login must carry a CAPTCHA: Turnstile is configured and the IP's or the
/// username's reputation is at or below the threshold.
pub async fn captcha_required(ctx: &Ctx<'_>, ip_key: &str, user_key: Option<&str>) -> Result<bool, InternalError> {
    let p = &ctx.settings.policy;
    if p.turnstile.is_none() {
        return Ok(false);
    }
    let (_, ip_score) = ctx.counters.peek(ip_key, &p.lockout, &p.reputation).await?;
    if p.reputation.needs_verification(ip_score) {
        return Ok(true);
    }
    match user_key {
        Some(k) => {
            let (_, user_score) = ctx.counters.peek(k, &p.lockout, &p.reputation).await?;
            Ok(p.reputation.needs_verification(user_score))
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<PolicySettings, InternalError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PolicySettings::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_reference() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.rate_limit, vec![Tier::per_second(5, 10), Tier::per_minute(20, 20)]);
        assert_eq!(
            s.lockout,
            LockoutPolicy {
                max_attempts: 5,
                duration_ms: 900_000
            }
        );
        assert_eq!(s.reputation, ReputationPolicy::default());
        assert!(s.trusted_proxies.is_empty());
        assert!(s.turnstile.is_none());
    }

    #[test]
    fn rps_zero_disables_the_limiter_and_rpm_zero_only_the_minute_tier() {
        assert!(parse(&[("GATEHOUSE_RATE_LIMIT_RPS", "0")])
            .unwrap()
            .rate_limit
            .is_empty());
        assert_eq!(
            parse(&[("GATEHOUSE_RATE_LIMIT_RPM", "0")]).unwrap().rate_limit,
            vec![Tier::per_second(5, 10)]
        );
    }

    #[test]
    fn bad_numbers_name_the_setting() {
        for (k, v) in [
            ("GATEHOUSE_RATE_LIMIT_RPS", "-1"),
            ("GATEHOUSE_RATE_LIMIT_BURST", "0"),
            ("GATEHOUSE_RATE_LIMIT_RPM", "lots"),
            ("GATEHOUSE_LOCKOUT_DURATION", "15m"),
            ("GATEHOUSE_REPUTATION_THRESHOLD", "-6"),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert!(e.0.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn user_keys_are_case_insensitive_and_bounded() {
        assert_eq!(user_key("Alice"), user_key("alice"));
        assert_eq!(user_key(" alice "), "user:alice");
        let long = user_key(&"a".repeat(10_000));
        assert!(long.len() < 64 && long.starts_with("user:#"));
    }

    #[test]
    fn only_secret_checking_endpoints_are_limited() {
        assert_eq!(
            limited(Method::Post, "/oauth2/login"),
            Some(("login", Shape::LoginForm, Class::Secret))
        );
        assert_eq!(limited(Method::Get, "/oauth2/login"), None);
        assert_eq!(
            limited(Method::Post, "/oauth2/token"),
            Some(("token", Shape::Json, Class::Secret))
        );
        assert_eq!(limited(Method::Options, "/oauth2/token"), None);
        assert_eq!(
            limited(Method::Get, "/admin/api/users"),
            Some(("admin", Shape::Json, Class::Secret))
        );
        assert_eq!(limited(Method::Get, "/admin/apix"), None);
        assert_eq!(limited(Method::Get, "/healthz"), None);
        assert_eq!(
            limited(Method::Get, "/oauth2/userinfo"),
            None,
            "bearer JWTs are not guessable"
        );
        assert_eq!(
            limited(Method::Get, "/.gatehouse/callback"),
            Some(("gateway_callback", Shape::Page, Class::Secret))
        );
    }

    #[test]
    fn unauthenticated_writes_are_limited_with_the_page_tiers() {
        assert_eq!(
            limited(Method::Get, "/oauth2/authorize"),
            Some(("authorize", Shape::Page, Class::Page))
        );
        assert_eq!(
            limited(Method::Post, "/oauth2/authorize"),
            Some(("authorize", Shape::Page, Class::Page))
        );
        assert_eq!(
            limited(Method::Get, "/oauth2/gateway"),
            Some(("gateway_start", Shape::Page, Class::Page))
        );
        assert_eq!(
            limited(Method::Post, "/.gatehouse/csp-report"),
            Some(("csp_report", Shape::Json, Class::Page))
        );
    }

    #[test]
    fn page_tiers_default_generous_and_follow_the_master_switch() {
        let s = parse(&[]).unwrap();
        assert_eq!(
            s.page_rate_limit,
            vec![Tier::per_second(10, 30), Tier::per_minute(120, 120)]
        );
        assert!(parse(&[("GATEHOUSE_RATE_LIMIT_RPS", "0")])
            .unwrap()
            .page_rate_limit
            .is_empty());
        assert!(parse(&[("GATEHOUSE_PAGE_RATE_LIMIT_RPS", "0")])
            .unwrap()
            .page_rate_limit
            .is_empty());
        assert_eq!(
            parse(&[("GATEHOUSE_PAGE_RATE_LIMIT_RPM", "0")])
                .unwrap()
                .page_rate_limit,
            vec![Tier::per_second(10, 30)]
        );
    }
}
