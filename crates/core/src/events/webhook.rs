//! Standard Webhooks (https://www.standardwebhooks.com/): the body, its headers and its
//! signature, so a receiver can verify Gatehouse's deliveries with any of that specification's
//! libraries.
//!
//! - `webhook-id`: the message id, the same on every retry (receivers deduplicate on it);
//! - `webhook-timestamp`: Unix seconds of this attempt (receivers refuse stale ones: replay);
//! - `webhook-signature`: `v1,` and base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed
//!   with the secret's bytes (the part after `whsec_`, base64-decoded).

use std::fmt;

use serde_json::json;

use super::Recorded;
use crate::crypto::{b64_decode, b64_encode, constant_time_eq, hmac_sha256};
use crate::error::InternalError;
use crate::ports::Rng;

const PREFIX: &str = "whsec_";
/// The specification asks for 24 to 64 bytes of key; Gatehouse makes 32 and accepts that range.
const MIN_KEY: usize = 24;
const MAX_KEY: usize = 64;

/// A webhook signing secret (its raw bytes). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// A fresh 32-byte secret.
    pub fn generate(rng: &dyn Rng) -> Result<WebhookSecret, InternalError> {
        let mut key = vec![0u8; 32];
        rng.fill(&mut key)?;
        Ok(WebhookSecret(key))
    }

    /// Parses `whsec_<base64>`; the error says what is wrong, never the value.
    pub fn parse(s: &str) -> Result<WebhookSecret, String> {
        let b64 = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("the webhook secret must start with {PREFIX}"))?;
        let key = b64_decode(b64).ok_or("the webhook secret is not base64 after whsec_")?;
        if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
            return Err(format!("the webhook secret must hold {MIN_KEY} to {MAX_KEY} bytes"));
        }
        Ok(WebhookSecret(key))
    }

    /// `whsec_<base64>`: shown once, when the rule is created.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", b64_encode(&self.0))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_bytes(key: Vec<u8>) -> Result<WebhookSecret, String> {
        if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
            return Err("stored webhook secret has the wrong length".into());
        }
        Ok(WebhookSecret(key))
    }
}

/// `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str) -> String {
    let content = format!("{id}.{timestamp}.{body}");
    format!("v1,{}", b64_encode(&hmac_sha256(secret.bytes(), content.as_bytes())))
}

/// Whether `header` (space-separated signatures, as a receiver sees it) holds a valid `v1` one
/// (compared in constant time). Receivers' side, here so the tests can check both directions.
pub fn verify(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str, header: &str) -> bool {
    let expected = sign(secret, id, timestamp, body);
    header
        .split(' ')
        .any(|sig| constant_time_eq(sig.as_bytes(), expected.as_bytes()))
}

/// The body: `{type, timestamp, data}`, with the event as `data`.
pub fn body(event: &Recorded) -> String {
    json!({
        "type": event.kind,
        "timestamp": rfc3339(event.created_at),
        "data": {
            "id": event.id,
            "kind": event.kind,
            "user_id": event.user_id,
            "client_id": event.client_id,
            "ip": event.ip,
            "detail": event.detail,
            "created_at": event.created_at,
        },
    })
    .to_string()
}

/// The request headers of one attempt.
pub fn headers(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "Gatehouse-Webhooks/1".into()),
        ("webhook-id".into(), id.to_owned()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), sign(secret, id, timestamp, body)),
    ]
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC).
pub fn rfc3339(unix: i64) -> String {
    let (year, month, day, secs) = crate::pages::civil_utc(unix);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    /// The Standard Webhooks specification's published test vector (also in the
    /// `standardwebhooks` libraries' tests).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
            &format!("v1,bm90IGl0 {sig}")
        ));
    }

    #[test]
    fn a_changed_body_id_timestamp_or_key_does_not_verify() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let other = WebhookSecret::generate(&SeededRng::new(1)).unwrap();
        let sig = sign(&secret, "msg_1", 100, "{}");
        assert!(verify(&secret, "msg_1", 100, "{}", &sig));
        assert!(!verify(&secret, "msg_1", 100, "{ }", &sig));
        assert!(!verify(&secret, "msg_2", 100, "{}", &sig));
        assert!(!verify(&secret, "msg_1", 101, "{}", &sig));
        assert!(!verify(&other, "msg_1", 100, "{}", &sig));
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused_without_echoing_them() {
        let s = WebhookSecret::generate(&SeededRng::new(2)).unwrap();
        assert_eq!(s.bytes().len(), 32);
        assert_eq!(WebhookSecret::parse(&s.expose()).unwrap(), s);
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_err()
            .contains("whsec_"));
        assert!(WebhookSecret::parse("whsec_!!!!").is_err());
        let short = WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err();
        assert!(short.contains("24 to 64") && !short.contains("c2hvcnQ"));
        assert_eq!(format!("{s:?}"), "WebhookSecret([redacted])");
    }

    #[test]
    fn the_body_is_type_timestamp_and_data() {
        let e = Recorded {
            id: "evt_1".into(),
            kind: "account_locked".into(),
            user_id: Some("usr_1".into()),
            client_id: None,
            ip: Some("203.0.113.9".into()),
            detail: json!({"reason": "x"}),
            created_at: 1_800_000_000,
        };
        let v: serde_json::Value = serde_json::from_str(&body(&e)).unwrap();
        assert_eq!(v["type"], "account_locked");
        assert_eq!(v["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(v["data"]["id"], "evt_1");
        assert_eq!(v["data"]["user_id"], "usr_1");
        assert_eq!(v["data"]["detail"]["reason"], "x");
    }

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 59), "2000-02-29T00:00:59Z");
        assert_eq!(rfc3339(1_614_265_330), "2021-02-25T15:02:10Z");
    }
}
