//! Abuse policies on the authentication endpoints: per-IP rate limiting (two GCRA tiers),
//! account lockout, and reputation with a Turnstile CAPTCHA step. The arithmetic is pure and
//! lives in the submodules; the state lives in the `Counters` port (a Durable Object per key).
//!
//! A counter store that does not answer fails closed: the endpoint answers 500 rather than
//! checking a secret without its limits.

pub mod access;
pub mod binding;
pub mod client_ip;
pub mod counter;
pub mod expression;
pub mod geoip;
pub mod judge;
pub mod lockout;
pub mod password;
pub mod rate_limit;
pub mod reputation;
pub mod turnstile;

use serde_json::json;

use crate::crypto::sha256;
use crate::error::InternalError;
use crate::http::{Method, Request};
use crate::store::events;
use crate::types::event_kind::EventKind;
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
    /// Country and network lists and travel checks at sign-in.
    pub geoip: geoip::GeoIpSettings,
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
            geoip: geoip::GeoIpSettings::default(),
        }
    }
}

/// Bounds on numbers, so a typo fails loudly instead of overflowing or disabling silently.
const MAX_RATE: i64 = 1_000_000;

impl PolicySettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PolicySettings, InternalError> {
        let d = PolicySettings::default();
        let int =
            |name: &str, default: i64, min: i64, max: i64| crate::config::whole_number(get, name, default, min, max);
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
            geoip: geoip::GeoIpSettings::from_lookup(get)?,
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

/// Which tiers a limited endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Checks a secret: the strict tiers.
    Secret,
    /// Hit by ordinary page loads, and stores what it is sent: the generous tiers.
    Page,
}

/// A route's rate limit: its bucket (one per client IP) and its tiers (`crate::web::router`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bucket: &'static str,
    pub class: Class,
}

/// Per-IP rate limiting, in front of the endpoints that check secrets or store what they are
/// sent. `Ok(None)`: go ahead; `Ok(Some(seconds))`: refused, retry after that long (the caller
/// answers in the route's shape). A counter store that does not answer is an error: fail closed.
pub async fn guard(ctx: &Ctx<'_>, req: &Request, limit: Limit) -> Result<Option<i64>, InternalError> {
    let tiers = match limit.class {
        Class::Secret => &ctx.settings.policy.rate_limit,
        Class::Page => &ctx.settings.policy.page_rate_limit,
    };
    if tiers.is_empty() || req.method == Method::Options {
        // Off, or a CORS preflight (which checks nothing).
        return Ok(None);
    }
    let client = client_ip(ctx, req);
    let (allowed, retry_after_ms, newly_limited) = ctx.counters.rate_limit(&client.key(), limit.bucket, tiers).await?;
    if allowed {
        return Ok(None);
    }
    if newly_limited {
        // Once per episode, not per refused request: a flood must not become a flood of writes.
        let event = events::Event {
            kind: EventKind::RateLimited,
            user_id: None,
            client_id: None,
            ip: Some(&client.to_string()),
            location: Some(&req.location),
            detail: json!({ "endpoint": req.path, "key": client.key() }),
        };
        if let Err(e) = events::record(ctx.db, ctx.rng, ctx.clock.now(), event).await {
            crate::error::log_internal(&e);
        }
    }
    Ok(Some(rate_limit::retry_after_secs(retry_after_ms)))
}

/// After a failed secret (a password, a code): what the stage tells the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// This failure locked the account (record an event once).
    pub newly_locked: bool,
    /// The next attempt must carry a CAPTCHA (Turnstile is configured and a score fell to it).
    pub needs_captcha: bool,
}

/// Counts a failed secret against the account (its lockout and reputation) and the client IP
/// (its reputation). Passwords and second-factor codes count alike: guessing either locks the
/// account.
pub async fn failed_attempt(ctx: &Ctx<'_>, user_key: &str, ip_key: &str) -> Result<Failure, InternalError> {
    counted_failure(ctx, user_key, ip_key, true).await
}

/// A failed password for an account that must not be locked by it (a passkey-only account, whose
/// password is no way in): both reputations move as for any failure, so the CAPTCHA comes and
/// goes the same and the answer does not tell such an account apart, but the lockout is not
/// counted.
pub async fn failed_attempt_without_lockout(
    ctx: &Ctx<'_>,
    user_key: &str,
    ip_key: &str,
) -> Result<Failure, InternalError> {
    counted_failure(ctx, user_key, ip_key, false).await
}

async fn counted_failure(ctx: &Ctx<'_>, user_key: &str, ip_key: &str, lock: bool) -> Result<Failure, InternalError> {
    let rules = &ctx.settings.policy;
    let lockout = lock.then_some(&rules.lockout);
    let (newly_locked, user_score) = ctx
        .counters
        .record_attempt(user_key, false, lockout, &rules.reputation)
        .await?;
    let (_, ip_score) = ctx
        .counters
        .record_attempt(ip_key, false, None, &rules.reputation)
        .await?;
    Ok(Failure {
        newly_locked,
        needs_captcha: rules.turnstile.is_some()
            && (rules.reputation.needs_verification(user_score) || rules.reputation.needs_verification(ip_score)),
    })
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

/// What an expression policy sees of this request and user (the client, app and flow are the
/// caller's to fill in). The user agent is cut to 256 characters (it is the caller's to choose).
pub fn facts(ctx: &Ctx<'_>, req: &Request, user: Option<&crate::store::users::User>) -> expression::Facts {
    expression::Facts {
        user: user.map(expression::UserFacts::of).unwrap_or_default(),
        request: expression::RequestFacts {
            ip: client_ip(ctx, req).to_string(),
            country: req.location.country.clone().unwrap_or_default(),
            asn: req.location.asn.map_or(0, i64::from),
            user_agent: req.header("user-agent").unwrap_or("").chars().take(256).collect(),
            reputation: None,
        },
        time: expression::TimeFacts::at(ctx.clock.now()),
        ..expression::Facts::default()
    }
}

/// Fills in the reputation scores of the client IP and of `facts.user` (when there is one) from
/// the counters, when one of `found`'s policies reads them: the reputation policy under the
/// same interface as the others, bound like any expression (`request.reputation > -3`).
pub async fn add_reputation(
    ctx: &Ctx<'_>,
    req: &Request,
    facts: &mut expression::Facts,
    found: &[crate::store::policies::TargetBinding],
) -> Result<(), InternalError> {
    let reads = found
        .iter()
        .any(|b| policy_text(ctx, b).is_some_and(expression::reads_reputation));
    if !reads {
        return Ok(());
    }
    let p = &ctx.settings.policy;
    let (_, ip_score) = ctx
        .counters
        .peek(&client_ip(ctx, req).key(), &p.lockout, &p.reputation)
        .await?;
    facts.request.reputation = Some(ip_score);
    if !facts.user.username.is_empty() {
        let (_, user_score) = ctx
            .counters
            .peek(&user_key(&facts.user.username), &p.lockout, &p.reputation)
            .await?;
        facts.user.reputation = Some(user_score);
    }
    Ok(())
}

/// The source of a configured policy, by its binding id `cfg:<name>`.
pub fn configured_policy<'s>(settings: &'s crate::config::Settings, policy_id: &str) -> Option<&'s str> {
    let name = policy_id.strip_prefix("cfg:")?;
    settings
        .configured_policies
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, source)| source.as_str())
}

/// A found binding's policy source: the stored one, or the configured one it names.
pub fn policy_source(ctx: &Ctx<'_>, b: &crate::store::policies::TargetBinding) -> Option<String> {
    policy_text(ctx, b).map(str::to_owned)
}

/// [`policy_source`], borrowed (a look at the text costs no copy).
fn policy_text<'a>(ctx: &Ctx<'a>, b: &'a crate::store::policies::TargetBinding) -> Option<&'a str> {
    b.expression.as_deref().or_else(|| {
        b.stored
            .policy_id
            .as_deref()
            .and_then(|id| configured_policy(ctx.settings, id))
    })
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
