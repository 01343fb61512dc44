//! Settings (non-secret vars) and secrets. Secrets print as `[redacted]`.

use std::fmt;

use crate::edge::TlsVersion;
use crate::error::InternalError;

/// A secret string: redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn matches(&self, candidate: &str) -> bool {
        crate::crypto::constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

pub const COOKIE_SECRET: &str = "GATEHOUSE_COOKIE_SECRET";
pub const ADMIN_TOKEN: &str = "GATEHOUSE_ADMIN_TOKEN";
pub const PRIVATE_KEY: &str = "GATEHOUSE_PRIVATE_KEY";
pub const SEALING_KEY: &str = "GATEHOUSE_SEALING_KEY";

/// Minimum lengths below which Gatehouse refuses to serve.
pub const MIN_COOKIE_SECRET_BYTES: usize = 32;
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

#[derive(Clone, Debug)]
pub struct Secrets {
    /// Keys the SSO session cookie and CSRF tokens (HMAC-SHA256).
    pub cookie_secret: Secret,
    /// Bearer token of the admin API.
    pub admin_token: Secret,
    /// Seals the secrets Gatehouse must read back (TOTP seeds); `None` only with
    /// `GATEHOUSE_MFA=off`.
    pub sealing_key: Option<crate::factors::sealed::SealingKey>,
    /// The HTTPS mail API's key (`GATEHOUSE_MAIL_API_KEY`), with `GATEHOUSE_MAILER=api`.
    pub mail_api_key: Option<Secret>,
}

impl Secrets {
    /// Validates raw secret values; the error names the setting (never its value). The sealing
    /// key is required unless second factors are off: without it no seed could be stored.
    pub fn from_values(
        cookie_secret: Option<String>,
        admin_token: Option<String>,
        sealing_key: Option<String>,
        mfa: crate::flow::plan::MfaMode,
    ) -> Result<Secrets, InternalError> {
        let cookie_secret = require(COOKIE_SECRET, cookie_secret, MIN_COOKIE_SECRET_BYTES)?;
        let admin_token = require(ADMIN_TOKEN, admin_token, MIN_ADMIN_TOKEN_BYTES)?;
        let sealing_key = match (sealing_key, mfa) {
            (None, crate::flow::plan::MfaMode::Off) => None,
            (value, _) => {
                let raw = require(SEALING_KEY, value, crate::factors::sealed::MIN_SECRET_BYTES)?;
                Some(crate::factors::sealed::SealingKey::derive(raw.as_bytes())?)
            }
        };
        Ok(Secrets {
            cookie_secret: Secret::new(cookie_secret),
            admin_token: Secret::new(admin_token),
            sealing_key,
            mail_api_key: None,
        })
    }

    /// With the mail API's key (`GATEHOUSE_MAIL_API_KEY`), if it is set.
    pub fn with_mail_api_key(mut self, key: Option<String>) -> Secrets {
        self.mail_api_key = key.filter(|k| !k.trim().is_empty()).map(Secret::new);
        self
    }
}

fn require(name: &str, value: Option<String>, min: usize) -> Result<String, InternalError> {
    match value {
        None => Err(InternalError::new(format!("{name} is not set"))),
        Some(v) if v.trim().is_empty() => Err(InternalError::new(format!("{name} is empty"))),
        Some(v) if v.len() < min => Err(InternalError::new(format!(
            "{name} is too short ({} bytes; at least {min} required)",
            v.len()
        ))),
        Some(v) => Ok(v),
    }
}

/// Non-secret settings, from `[vars]` in wrangler.toml.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer identifier; when unset, the origin the request arrived on.
    pub issuer: Option<String>,
    pub version: String,
    pub code_ttl: i64,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    pub refresh_idle_ttl: i64,
    pub refresh_absolute_ttl: i64,
    pub session_ttl: i64,
    /// Seconds after its rotation during which a refresh token presented again yields new
    /// tokens instead of revoking its family; 0 (the default): never.
    pub refresh_grace: i64,
    /// Browser origins allowed to call the token, userinfo and revocation endpoints (CORS);
    /// empty: none. Exact `scheme://host[:port]` strings, never a wildcard.
    pub cors_origins: Vec<String>,
    /// Seconds the gateway waits for an origin before answering 504.
    pub origin_timeout: i64,
    /// Days the event log is kept before the retention job deletes it (`store::retention`).
    pub event_retention_days: i64,
    /// Rate limiting, lockout, reputation and the CAPTCHA step (`crate::policy`).
    pub policy: crate::policy::PolicySettings,
    /// The oldest TLS version a request may arrive over (`crate::edge::check_transport`).
    pub min_tls: TlsVersion,
    /// `GATEHOUSE_MFA`: whether second factors are off, optional or required.
    pub mfa: crate::flow::plan::MfaMode,
    /// `GATEHOUSE_MFA_REQUIRED_GROUPS`: members of these groups always need a second factor.
    pub mfa_required_groups: Vec<String>,
    /// Mail delivery and its hourly bounds (`crate::mail`).
    pub mail: crate::mail::MailSettings,
    /// `GATEHOUSE_EMAIL_OTP`: a code sent to a verified address is a second factor.
    pub email_otp: bool,
    /// `GATEHOUSE_PASSKEY_ONLY`: every user signs in with a passkey; no password form.
    pub passkey_only: bool,
    /// `GATEHOUSE_PASSKEY_ONLY_GROUPS`: members of these groups sign in with a passkey only.
    pub passkey_only_groups: Vec<String>,
    /// What a new password must be and how long one lasts (`crate::policy::password`).
    pub password: crate::policy::password::PasswordPolicy,
    /// `GATEHOUSE_EXPRESSION_POLICIES`: expression policies set in configuration, by name (a
    /// JSON object of name to CEL source); bindings name them `cfg:<name>`, and the admin API
    /// shows them read-only.
    pub configured_policies: Vec<(String, String)>,
    /// `GATEHOUSE_LOCK_EXPRESSIONS`: the admin API cannot create, change or delete expression
    /// policies; they come from configuration only (the hardening guide's advice).
    pub lock_expressions: bool,
    /// Who the default notification rules tell, and the retry schedule (`crate::events`).
    pub notify: crate::events::settings::NotifySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            issuer: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            code_ttl: 60,
            access_token_ttl: 600,
            id_token_ttl: 3600,
            refresh_idle_ttl: 14 * 24 * 3600,
            refresh_absolute_ttl: 30 * 24 * 3600,
            session_ttl: 12 * 3600,
            refresh_grace: 0,
            cors_origins: Vec::new(),
            origin_timeout: 30,
            event_retention_days: 90,
            policy: crate::policy::PolicySettings::default(),
            min_tls: TlsVersion::Tls1_2,
            mfa: crate::flow::plan::MfaMode::default(),
            mfa_required_groups: Vec::new(),
            mail: crate::mail::MailSettings::default(),
            email_otp: false,
            passkey_only: false,
            passkey_only_groups: Vec::new(),
            password: crate::policy::password::PasswordPolicy::default(),
            configured_policies: Vec::new(),
            lock_expressions: false,
            notify: crate::events::settings::NotifySettings::default(),
        }
    }
}

impl Settings {
    /// Reads settings through a lookup (the Worker's vars); bad numbers are a configuration error.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, InternalError> {
        let mut s = Settings {
            issuer: get("GATEHOUSE_ISSUER").filter(|v| !v.trim().is_empty()),
            ..Settings::default()
        };
        if let Some(v) = get("GATEHOUSE_VERSION").filter(|v| !v.is_empty()) {
            s.version = v;
        }
        let secs = |name: &str, default: i64| -> Result<i64, InternalError> {
            match get(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| InternalError::new(format!("{name} must be a positive number of seconds"))),
            }
        };
        s.code_ttl = secs("GATEHOUSE_CODE_TTL", s.code_ttl)?.min(60);
        s.access_token_ttl = secs("GATEHOUSE_ACCESS_TOKEN_TTL", s.access_token_ttl)?;
        s.id_token_ttl = secs("GATEHOUSE_ID_TOKEN_TTL", s.id_token_ttl)?;
        s.refresh_idle_ttl = secs("GATEHOUSE_REFRESH_IDLE_TTL", s.refresh_idle_ttl)?;
        s.refresh_absolute_ttl = secs("GATEHOUSE_REFRESH_ABSOLUTE_TTL", s.refresh_absolute_ttl)?;
        s.session_ttl = secs("GATEHOUSE_SESSION_TTL", s.session_ttl)?;
        s.refresh_grace = match get("GATEHOUSE_REFRESH_GRACE").map(|v| v.trim().to_owned()) {
            None => 0,
            Some(v) if v.is_empty() => 0,
            Some(v) => v.parse::<i64>().ok().filter(|n| (0..=60).contains(n)).ok_or_else(|| {
                InternalError::new("GATEHOUSE_REFRESH_GRACE must be a whole number of seconds from 0 to 60")
            })?,
        };
        s.origin_timeout = secs("GATEHOUSE_ORIGIN_TIMEOUT", s.origin_timeout)?.min(300);
        s.event_retention_days = event_retention_days(get(EVENT_RETENTION_DAYS), s.event_retention_days)?;
        s.cors_origins = parse_origins(&get("GATEHOUSE_CORS_ORIGINS").unwrap_or_default())?;
        s.policy = crate::policy::PolicySettings::from_lookup(&get)?;
        s.min_tls = min_tls(get(MIN_TLS), s.min_tls)?;
        s.mfa = match get(MFA).as_deref().map(str::trim) {
            None | Some("") => s.mfa,
            Some(v) => crate::flow::plan::MfaMode::parse(v)
                .ok_or_else(|| InternalError::new(format!("{MFA} must be off, optional or required (got {v:?})")))?,
        };
        s.mfa_required_groups = group_list(get(MFA_REQUIRED_GROUPS));
        s.passkey_only = on_off(&get, PASSKEY_ONLY)?;
        s.passkey_only_groups = group_list(get(PASSKEY_ONLY_GROUPS));
        s.mail = crate::mail::MailSettings::from_lookup(&get)?;
        s.password = crate::policy::password::PasswordPolicy::from_lookup(&get)?;
        s.notify = crate::events::settings::NotifySettings::from_lookup(&get)?;
        s.email_otp = on_off(&get, EMAIL_OTP)?;
        s.configured_policies = configured_policies(get(EXPRESSION_POLICIES).as_deref().unwrap_or(""))?;
        s.lock_expressions = match get(LOCK_EXPRESSIONS).as_deref().map(str::trim) {
            None | Some("" | "false" | "off") => false,
            Some("true" | "on") => true,
            Some(v) => {
                return Err(InternalError::new(format!(
                    "{LOCK_EXPRESSIONS} must be true or false (got {v:?})"
                )))
            }
        };
        Ok(s)
    }

    /// Refuses to serve a request that is not local development without an https issuer:
    /// with `GATEHOUSE_ISSUER` unset the issuer would follow the Host header, and the gateway
    /// would put the SSO login form and cookies in whatever app host a request arrived on.
    pub fn check_origin(&self, origin: &str) -> Result<(), InternalError> {
        let https_issuer = self.issuer.as_deref().is_some_and(|i| i.starts_with("https://"));
        if https_issuer || is_loopback(origin) {
            Ok(())
        } else {
            Err(InternalError::new(
                "GATEHOUSE_ISSUER must be set to an https URL (like https://id.example.com) outside local development",
            ))
        }
    }
}

/// Whether an origin is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`): local development.
pub fn is_loopback(origin: &str) -> bool {
    let authority = crate::http::host_of(origin);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let host = host.to_ascii_lowercase();
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// A whole-number setting from `min` to `max`; unset or blank is `default`, anything else an
/// error naming the setting.
pub fn whole_number<T>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, InternalError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<T>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| InternalError::new(format!("{name} must be a whole number from {min} to {max}"))),
    }
}

const EXPRESSION_POLICIES: &str = "GATEHOUSE_EXPRESSION_POLICIES";
const LOCK_EXPRESSIONS: &str = "GATEHOUSE_LOCK_EXPRESSIONS";
/// At most this many policies in configuration.
const MAX_CONFIGURED_POLICIES: usize = 64;

/// `GATEHOUSE_EXPRESSION_POLICIES`: `{"name": "CEL source", ...}`; each is checked as the admin
/// API checks a stored one, and a bad one refuses to start the Worker.
fn configured_policies(raw: &str) -> Result<Vec<(String, String)>, InternalError> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: String| InternalError::new(format!("{EXPRESSION_POLICIES}: {why}"));
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw).map_err(|e| bad(format!("must be a JSON object of name to expression ({e})")))?;
    if map.len() > MAX_CONFIGURED_POLICIES {
        return Err(bad(format!("at most {MAX_CONFIGURED_POLICIES} policies")));
    }
    map.into_iter()
        .map(|(name, source)| {
            if !crate::policy::expression::name_ok(&name) {
                return Err(bad(format!(
                    "{name:?} is not a policy name (1-64 of a-z, 0-9, - and _)"
                )));
            }
            let source = source
                .as_str()
                .ok_or_else(|| bad(format!("{name}: the expression must be a string")))?
                .to_owned();
            crate::policy::expression::validate(&source).map_err(|e| bad(format!("{name}: {e}")))?;
            Ok((name, source))
        })
        .collect()
}

/// An `on` / `off` setting; unset or blank is off.
pub fn on_off(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<bool, InternalError> {
    match get(name).as_deref().map(str::trim) {
        None | Some("" | "off") => Ok(false),
        Some("on") => Ok(true),
        Some(v) => Err(InternalError::new(format!("{name} must be on or off (got {v:?})"))),
    }
}

/// Whether a service URL the Worker calls (Turnstile siteverify, Pwned Passwords) is https, or
/// http on loopback only (the tests' stubs).
pub fn service_url_ok(url: &str) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(authority);
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

pub const EVENT_RETENTION_DAYS: &str = "GATEHOUSE_EVENT_RETENTION_DAYS";
/// Ten years: longer is a typo, not a policy.
pub const MAX_EVENT_RETENTION_DAYS: i64 = 3650;

/// Whole days from 1 to [`MAX_EVENT_RETENTION_DAYS`]. There is no "keep forever": the event log
/// grows with unauthenticated traffic (failed logins, CSP reports), so it must have an end.
fn event_retention_days(value: Option<String>, default: i64) -> Result<i64, InternalError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_EVENT_RETENTION_DAYS).contains(d))
            .ok_or_else(|| {
                InternalError::new(format!(
                    "{EVENT_RETENTION_DAYS} must be a whole number of days from 1 to {MAX_EVENT_RETENTION_DAYS}"
                ))
            }),
    }
}

pub const MIN_TLS: &str = "GATEHOUSE_MIN_TLS";
pub const MFA: &str = "GATEHOUSE_MFA";
pub const MFA_REQUIRED_GROUPS: &str = "GATEHOUSE_MFA_REQUIRED_GROUPS";
pub const EMAIL_OTP: &str = "GATEHOUSE_EMAIL_OTP";
pub const PASSKEY_ONLY: &str = "GATEHOUSE_PASSKEY_ONLY";
pub const PASSKEY_ONLY_GROUPS: &str = "GATEHOUSE_PASSKEY_ONLY_GROUPS";

/// A comma-separated list of group names, blanks dropped.
fn group_list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `1.0` to `1.3`. Anything else is a typo to report, not a reason to fall back to a default
/// that the operator did not choose.
fn min_tls(value: Option<String>, default: TlsVersion) -> Result<TlsVersion, InternalError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => TlsVersion::from_setting(v)
            .ok_or_else(|| InternalError::new(format!("{MIN_TLS} must be 1.0, 1.1, 1.2 or 1.3 (got {v:?})"))),
    }
}

/// Parses a comma-separated list of exact origins; `*` and anything with a path are refused.
fn parse_origins(value: &str) -> Result<Vec<String>, InternalError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '*', '@', ' ']) => Ok(o.to_owned()),
                _ => Err(InternalError::new(format!(
                    "GATEHOUSE_CORS_ORIGINS: {o:?} is not an origin like https://app.example.com"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_issuer(issuer: Option<&str>) -> Settings {
        Settings {
            issuer: issuer.map(str::to_owned),
            ..Settings::default()
        }
    }

    #[test]
    fn configured_expression_policies_are_checked_at_start_and_the_lock_is_true_or_false() {
        let parse =
            |name: &'static str, v: &'static str| Settings::from_lookup(move |n| (n == name).then(|| v.to_owned()));
        let s = parse(
            EXPRESSION_POLICIES,
            r#"{"office": "request.ip.startsWith('10.')", "de": "request.country == 'DE'"}"#,
        )
        .unwrap();
        assert_eq!(s.configured_policies.len(), 2);
        assert!(s
            .configured_policies
            .iter()
            .any(|(n, e)| n == "office" && e.contains("10.")));
        assert!(parse(EXPRESSION_POLICIES, "").unwrap().configured_policies.is_empty());
        for (bad, says) in [
            ("[1]", "JSON object"),
            (r#"{"Office": "true"}"#, "not a policy name"),
            (r#"{"x": 1}"#, "must be a string"),
            (r#"{"x": "secret == 1"}"#, "unknown name"),
        ] {
            let e = parse(EXPRESSION_POLICIES, bad).unwrap_err();
            assert!(e.0.contains(EXPRESSION_POLICIES) && e.0.contains(says), "{bad}: {e}");
        }
        let many: serde_json::Map<String, serde_json::Value> =
            (0..65).map(|i| (format!("p{i}"), serde_json::json!("true"))).collect();
        let many = serde_json::Value::Object(many).to_string();
        let e = Settings::from_lookup(|n| (n == EXPRESSION_POLICIES).then(|| many.clone())).unwrap_err();
        assert!(e.0.contains("at most 64"), "{e}");
        assert!(!parse(LOCK_EXPRESSIONS, "false").unwrap().lock_expressions);
        assert!(parse(LOCK_EXPRESSIONS, "true").unwrap().lock_expressions);
        assert!(parse(LOCK_EXPRESSIONS, "on").unwrap().lock_expressions);
        assert!(!Settings::default().lock_expressions);
        assert!(parse(LOCK_EXPRESSIONS, "yes").is_err());
    }

    #[test]
    fn the_refresh_grace_interval_is_off_by_default_and_bounded() {
        let parse = |v: Option<&str>| {
            Settings::from_lookup(|name| {
                (name == "GATEHOUSE_REFRESH_GRACE")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
        };
        assert_eq!(parse(None).unwrap().refresh_grace, 0);
        assert_eq!(parse(Some("")).unwrap().refresh_grace, 0);
        assert_eq!(parse(Some("60")).unwrap().refresh_grace, 60);
        for bad in ["61", "-1", "5s"] {
            let e = parse(Some(bad)).unwrap_err();
            assert!(e.0.contains("GATEHOUSE_REFRESH_GRACE"), "{bad}: {e}");
        }
    }

    #[test]
    fn outside_local_development_an_https_issuer_is_required() {
        // Unset: the issuer would follow the Host header, so an app host would get the login.
        let e = with_issuer(None).check_origin("https://app.example.com").unwrap_err();
        assert!(e.0.contains("GATEHOUSE_ISSUER"), "{e}");
        assert!(with_issuer(Some("http://id.example.com"))
            .check_origin("http://id.example.com")
            .is_err());
        assert!(with_issuer(Some("https://id.example.com"))
            .check_origin("https://app.example.com")
            .is_ok());
        for local in [
            "http://127.0.0.1:8787",
            "http://127.8.0.1",
            "http://localhost:8787",
            "http://LOCALHOST",
            "http://[::1]:8787",
        ] {
            assert!(with_issuer(None).check_origin(local).is_ok(), "{local}");
        }
        for remote in [
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
            "http://0.0.0.0",
        ] {
            assert!(with_issuer(None).check_origin(remote).is_err(), "{remote}");
        }
    }

    #[test]
    fn the_sealing_key_is_required_unless_second_factors_are_off() {
        use crate::flow::plan::MfaMode;
        let long = || Some("s".repeat(32));
        let make = |sealing: Option<String>, mfa| Secrets::from_values(long(), long(), sealing, mfa);
        assert!(make(None, MfaMode::Off).unwrap().sealing_key.is_none());
        assert!(make(long(), MfaMode::Off).unwrap().sealing_key.is_some());
        for mfa in [MfaMode::Optional, MfaMode::Required] {
            let e = make(None, mfa).unwrap_err();
            assert!(e.0.contains("GATEHOUSE_SEALING_KEY is not set"), "{e}");
            let e = make(Some("short".into()), mfa).unwrap_err();
            assert!(e.0.contains("GATEHOUSE_SEALING_KEY is too short"), "{e}");
            assert!(make(long(), mfa).unwrap().sealing_key.is_some());
        }
        assert!(!format!("{:?}", make(long(), MfaMode::Optional).unwrap()).contains("sss"));
    }

    #[test]
    fn gatehouse_mfa_defaults_to_optional_and_a_bad_value_names_the_setting() {
        use crate::flow::plan::MfaMode;
        let get = |v: Option<&'static str>| move |name: &str| (name == MFA).then(|| v.map(str::to_owned)).flatten();
        assert_eq!(Settings::from_lookup(get(None)).unwrap().mfa, MfaMode::Optional);
        assert_eq!(Settings::from_lookup(get(Some(""))).unwrap().mfa, MfaMode::Optional);
        assert_eq!(
            Settings::from_lookup(get(Some(" required "))).unwrap().mfa,
            MfaMode::Required
        );
        assert_eq!(Settings::from_lookup(get(Some("off"))).unwrap().mfa, MfaMode::Off);
        let groups = Settings::from_lookup(|n| (n == MFA_REQUIRED_GROUPS).then(|| " admins, ,ops ".to_owned()));
        assert_eq!(groups.unwrap().mfa_required_groups, ["admins", "ops"]);
        for bad in ["on", "REQUIRED", "1"] {
            let e = Settings::from_lookup(get(Some(bad))).unwrap_err();
            assert!(e.0.contains("GATEHOUSE_MFA"), "{bad}: {e}");
        }
    }

    #[test]
    fn min_tls_defaults_to_1_2_and_a_bad_value_names_the_setting() {
        let get = |v: Option<&'static str>| move |name: &str| (name == MIN_TLS).then(|| v.map(str::to_owned)).flatten();
        assert_eq!(Settings::from_lookup(get(None)).unwrap().min_tls, TlsVersion::Tls1_2);
        assert_eq!(
            Settings::from_lookup(get(Some(""))).unwrap().min_tls,
            TlsVersion::Tls1_2
        );
        assert_eq!(
            Settings::from_lookup(get(Some("1.3"))).unwrap().min_tls,
            TlsVersion::Tls1_3
        );
        assert_eq!(
            Settings::from_lookup(get(Some(" 1.0 "))).unwrap().min_tls,
            TlsVersion::Tls1_0
        );
        for bad in ["1.4", "TLSv1.2", "1", "tls1.2", "0.3"] {
            let e = Settings::from_lookup(get(Some(bad))).unwrap_err();
            assert!(e.0.contains("GATEHOUSE_MIN_TLS"), "{bad}: {e}");
        }
    }
}
