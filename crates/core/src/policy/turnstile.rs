//! Cloudflare Turnstile, the CAPTCHA step of the reputation policy (authentik's CAPTCHA stage,
//! ../shared/reference/000). The widget on the login page yields a one-time token in the form
//! field `cf-turnstile-response`; the server checks it at the siteverify endpoint with the
//! secret. The HTTP call goes through the `Captcha` port; the shapes and the decision are here.
//!
//! Hardening: the widget's script URL is a constant, not a setting (authentik's hardening guide
//! warns that a configurable CAPTCHA script URL lets whoever edits it run code on the login
//! page); the verification URL must be https except on loopback (for the tests' stub); the
//! widget's action is checked, so a token solved for another page of the same site key fails.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::config::Secret;
use crate::error::InternalError;
use crate::http::form_encode;
use crate::Ctx;

/// The origin the widget's frame comes from (the login page's CSP `frame-src`).
pub const CHALLENGE_ORIGIN: &str = "https://challenges.cloudflare.com";
pub const SCRIPT_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/api.js";
pub const DEFAULT_VERIFY_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/siteverify";
/// The form field the widget fills in.
pub const RESPONSE_FIELD: &str = "cf-turnstile-response";
/// The widget's `data-action`, checked on verification.
pub const ACTION: &str = "login";
/// Turnstile tokens are at most 2048 characters; anything longer is not one.
pub const MAX_TOKEN_LEN: usize = 2048;

#[derive(Clone)]
pub struct TurnstileSettings {
    pub site_key: String,
    pub secret: Secret,
    pub verify_url: String,
}

impl fmt::Debug for TurnstileSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnstileSettings")
            .field("site_key", &self.site_key)
            .field("secret", &self.secret)
            .field("verify_url", &self.verify_url)
            .finish()
    }
}

impl TurnstileSettings {
    /// Both the site key and the secret, or neither (then no CAPTCHA step exists).
    pub fn from_values(
        site_key: Option<String>,
        secret: Option<String>,
        verify_url: Option<String>,
    ) -> Result<Option<TurnstileSettings>, InternalError> {
        let site_key = site_key.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let secret = secret.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let (site_key, secret) = match (site_key, secret) {
            (None, None) => return Ok(None),
            (Some(k), Some(s)) => (k, s),
            (Some(_), None) => {
                return Err(InternalError::new(
                    "GATEHOUSE_TURNSTILE_SITE_KEY is set but GATEHOUSE_TURNSTILE_SECRET is not",
                ))
            }
            (None, Some(_)) => {
                return Err(InternalError::new(
                    "GATEHOUSE_TURNSTILE_SECRET is set but GATEHOUSE_TURNSTILE_SITE_KEY is not",
                ))
            }
        };
        if !site_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InternalError::new(
                "GATEHOUSE_TURNSTILE_SITE_KEY has unexpected characters",
            ));
        }
        let verify_url = verify_url
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_VERIFY_URL.to_owned());
        if !crate::config::service_url_ok(&verify_url) {
            return Err(InternalError::new(
                "GATEHOUSE_TURNSTILE_VERIFY_URL must be an https URL (http only on 127.0.0.1, [::1] or localhost)",
            ));
        }
        Ok(Some(TurnstileSettings {
            site_key,
            secret: Secret::new(secret),
            verify_url,
        }))
    }
}

/// The siteverify request body (form-encoded: `secret`, `response`, `remoteip`).
pub fn request_body(secret: &Secret, token: &str, remote_ip: Option<IpAddr>) -> String {
    let mut body = format!(
        "secret={}&response={}",
        form_encode(secret.expose()),
        form_encode(token)
    );
    if let Some(ip) = remote_ip {
        body.push_str(&format!("&remoteip={}", form_encode(&ip.to_string())));
    }
    body
}

/// The parts of the siteverify answer Gatehouse reads.
#[derive(Debug, Deserialize)]
pub struct SiteverifyResponse {
    pub success: bool,
    #[serde(rename = "error-codes", default)]
    pub error_codes: Vec<String>,
    #[serde(default)]
    pub action: Option<String>,
}

/// Decides from siteverify's answer; `Err` says why the token was refused (for the log).
pub fn judge(status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        return Err(format!("siteverify answered HTTP {status}"));
    }
    let r: SiteverifyResponse =
        serde_json::from_slice(body).map_err(|e| format!("siteverify answer is not JSON: {e}"))?;
    if !r.success {
        return Err(format!("token refused: {}", r.error_codes.join(",")));
    }
    match r.action.as_deref() {
        Some(ACTION) => Ok(()),
        other => Err(format!("token was solved for action {other:?}, not {ACTION:?}")),
    }
}

/// Checks a token with siteverify. Anything but a clear yes is a no: a missing or oversized
/// token, an unreachable or confused verifier (logged), a token for another action.
pub async fn verify(
    ctx: &Ctx<'_>,
    settings: &TurnstileSettings,
    token: Option<&str>,
    remote_ip: Option<IpAddr>,
) -> bool {
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN) else {
        return false;
    };
    let body = request_body(&settings.secret, token, remote_ip);
    match ctx.captcha.siteverify(&settings.verify_url, body).await {
        Ok((status, answer)) => match judge(status, &answer) {
            Ok(()) => true,
            Err(why) => {
                crate::log::warn(&format!("turnstile: {why}"));
                false
            }
        },
        Err(e) => {
            crate::error::log_internal(&e);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<Option<TurnstileSettings>, InternalError> {
        TurnstileSettings::from_values(
            Some("0x4AAAAAAA-site_key".into()),
            Some("s3cret".into()),
            Some(url.into()),
        )
    }

    #[test]
    fn half_configured_turnstile_refuses_to_serve() {
        assert!(TurnstileSettings::from_values(None, None, None).unwrap().is_none());
        assert!(TurnstileSettings::from_values(Some("k".into()), None, None).is_err());
        assert!(TurnstileSettings::from_values(None, Some("s".into()), None).is_err());
        assert!(TurnstileSettings::from_values(Some("k\"><script>".into()), Some("s".into()), None).is_err());
    }

    #[test]
    fn the_verify_url_is_https_or_loopback_http() {
        let d = TurnstileSettings::from_values(Some("k".into()), Some("s".into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(d.verify_url, DEFAULT_VERIFY_URL);
        assert!(settings("http://127.0.0.1:8123/siteverify").is_ok());
        assert!(settings("http://localhost/siteverify").is_ok());
        assert!(settings("https://verify.example.com/x").is_ok());
        for bad in [
            "http://example.com/siteverify",
            "http://127.0.0.1.evil.com/",
            "ftp://x",
            "https://",
            "javascript:alert(1)",
        ] {
            assert!(settings(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_is_redacted_in_debug_output() {
        let s = settings(DEFAULT_VERIFY_URL).unwrap().unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn request_body_is_form_encoded() {
        let body = request_body(&Secret::new("a&b"), "tok=1", Some("203.0.113.7".parse().unwrap()));
        assert_eq!(body, "secret=a%26b&response=tok%3D1&remoteip=203.0.113.7");
        assert_eq!(request_body(&Secret::new("s"), "t", None), "secret=s&response=t");
    }

    #[test]
    fn only_a_clear_success_for_our_action_passes() {
        assert!(judge(200, br#"{"success":true,"action":"login","hostname":"id.example.com"}"#).is_ok());
        assert!(judge(200, br#"{"success":false,"error-codes":["invalid-input-response"]}"#).is_err());
        assert!(
            judge(200, br#"{"success":true,"action":"signup"}"#).is_err(),
            "token for another action"
        );
        assert!(judge(200, br#"{"success":true}"#).is_err(), "no action");
        assert!(judge(500, br#"{"success":true,"action":"login"}"#).is_err());
        assert!(judge(200, b"<html>").is_err());
    }
}
