//! The notification rule: what it matches and where it sends, validated in one place for
//! every way a rule is made (the admin API, the defaults).

use serde::{Deserialize, Serialize};

use super::matcher::Criteria;
use super::webhook::WebhookSecret;
use crate::config::is_loopback;

/// At most this many stored rules (each event is matched against all of them).
pub const MAX_RULES: i64 = 100;
pub const MAX_NAME_BYTES: usize = 100;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_RECIPIENTS: usize = 10;
/// The recipient that stands for the event's user (their address on file).
pub const THE_USER: &str = "user";

/// Where a rule sends. The webhook secret is kept apart (sealed in its own column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transport {
    /// A POST signed per Standard Webhooks (`webhook`).
    Webhook { url: String },
    /// Mail through the `Mailer`: addresses, or `user` for the event's user.
    Email { to: Vec<String> },
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub criteria: Criteria,
    pub transport: Transport,
    /// The webhook secret, sealed (`factors::sealed`, context [`seal_context`]).
    pub secret_sealed: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The sealing context of a rule's webhook secret: a sealed secret copied to another rule's
/// row does not open there.
pub fn seal_context(rule_id: &str) -> String {
    format!("notify:{rule_id}")
}

/// A rule as the admin API receives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, rename = "match")]
    pub criteria: Criteria,
    pub transport: TransportInput,
}

fn yes() -> bool {
    true
}

/// A transport as received: a webhook may bring its secret (`whsec_…`), else one is made.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportInput {
    Webhook {
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    Email {
        to: Vec<String>,
    },
}

/// A validated input: the transport, and the webhook secret it brought (if any).
#[derive(Debug)]
pub struct Valid {
    pub name: String,
    pub enabled: bool,
    pub criteria: Criteria,
    pub transport: Transport,
    pub secret: Option<WebhookSecret>,
}

/// Checks everything; the error names the field. `issuer`: a plain-http webhook is allowed
/// only to this machine, and only in local development (no issuer set), for tests.
pub fn validate(input: RuleInput, issuer: Option<&str>) -> Result<Valid, String> {
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(format!("name must be 1 to {MAX_NAME_BYTES} bytes on one line"));
    }
    input.criteria.validate()?;
    let (transport, secret) = match input.transport {
        TransportInput::Webhook { url, secret } => {
            check_url(&url, issuer)?;
            let secret = secret.map(|s| WebhookSecret::parse(&s)).transpose()?;
            (Transport::Webhook { url }, secret)
        }
        TransportInput::Email { to } => {
            check_recipients(&to)?;
            (Transport::Email { to }, None)
        }
    };
    Ok(Valid {
        name,
        enabled: input.enabled,
        criteria: input.criteria,
        transport,
        secret,
    })
}

/// A webhook URL: https with a host and no credentials in it, at most [`MAX_URL_BYTES`]; plain
/// http only to a loopback address without an issuer (local development and tests).
pub fn check_url(url: &str, issuer: Option<&str>) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "transport.url must be at most {MAX_URL_BYTES} bytes, without spaces"
        ));
    }
    let https = url.starts_with("https://");
    let local_http = url.starts_with("http://") && issuer.is_none() && is_loopback(url);
    if !https && !local_http {
        return Err("transport.url must be an https URL (plain http only to loopback in local development)".into());
    }
    let host = crate::http::host_of(url);
    if host.is_empty() || host.starts_with(':') {
        return Err("transport.url has no host".into());
    }
    if host.contains('@') {
        // Credentials in a URL would be stored and shown unsealed; the signature authenticates.
        return Err("transport.url must not hold credentials (user:password@)".into());
    }
    Ok(())
}

fn check_recipients(to: &[String]) -> Result<(), String> {
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(format!("transport.to must list 1 to {MAX_RECIPIENTS} recipients"));
    }
    match to
        .iter()
        .find(|a| a.as_str() != THE_USER && !crate::types::email::is_valid(a))
    {
        Some(bad) => Err(format!(
            "transport.to: {:?} is neither an email address nor \"{THE_USER}\"",
            bad.chars().take(60).collect::<String>()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> RuleInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_webhook_rule_with_its_own_secret_is_valid() {
        let v = validate(
            input(json!({
                "name": " Locked accounts ",
                "match": {"kinds": ["account_locked"]},
                "transport": {"type": "webhook", "url": "https://hooks.example.com/in", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
            })),
            Some("https://id.example.com"),
        )
        .unwrap();
        assert_eq!(v.name, "Locked accounts");
        assert!(v.enabled && v.secret.is_some());
        assert_eq!(
            v.transport,
            Transport::Webhook {
                url: "https://hooks.example.com/in".into()
            }
        );
    }

    #[test]
    fn webhook_urls_are_https_except_to_loopback_in_local_development() {
        let issuer = Some("https://id.example.com");
        assert!(check_url("https://h.example/x", issuer).is_ok());
        assert!(check_url("http://h.example/x", issuer).is_err());
        assert!(
            check_url("http://127.0.0.1:9000/x", issuer).is_err(),
            "not with an issuer"
        );
        assert!(check_url("http://127.0.0.1:9000/x", None).is_ok());
        assert!(check_url("http://10.0.0.1/x", None).is_err());
        assert!(check_url("ftp://h.example/x", None).is_err());
        assert!(check_url("https:///x", None).is_err());
        assert!(check_url("https://u:p@h.example/x", None)
            .unwrap_err()
            .contains("credentials"));
        assert!(check_url("https://h.example/a b", None).is_err());
        let long = format!("https://h.example/{}", "a".repeat(MAX_URL_BYTES));
        assert!(check_url(&long, None).is_err());
    }

    #[test]
    fn email_rules_name_addresses_or_the_user_within_bounds() {
        let ok = |to: serde_json::Value| {
            validate(
                input(json!({"name": "n", "transport": {"type": "email", "to": to}})),
                None,
            )
        };
        assert!(ok(json!(["user", "sec@example.com"])).is_ok());
        assert!(ok(json!([])).is_err());
        assert!(ok(json!(["sec@example.com\r\nBcc: x@y.example"])).is_err());
        assert!(ok(json!(["nobody"])).unwrap_err().contains("neither an email address"));
        assert!(ok(json!(vec!["a@example.com"; MAX_RECIPIENTS + 1])).is_err());
    }

    #[test]
    fn names_and_unknown_fields_are_checked() {
        let r = |v| validate(input(v), None);
        assert!(r(json!({"name": "", "transport": {"type": "email", "to": ["user"]}})).is_err());
        assert!(
            r(json!({"name": "x".repeat(MAX_NAME_BYTES + 1), "transport": {"type": "email", "to": ["user"]}})).is_err()
        );
        let bad: Result<RuleInput, _> = serde_json::from_value(
            json!({"name": "n", "transport": {"type": "webhook", "url": "https://h.example", "secrets": "x"}}),
        );
        assert!(bad.is_err());
        let bad: Result<RuleInput, _> =
            serde_json::from_value(json!({"name": "n", "transport": {"type": "sms", "to": "1"}}));
        assert!(bad.is_err());
        assert!(
            r(json!({"name": "n", "match": {"kinds": ["nope"]}, "transport": {"type": "email", "to": ["user"]}}))
                .unwrap_err()
                .contains("nope")
        );
        assert!(r(
            json!({"name": "n", "transport": {"type": "webhook", "url": "https://h.example", "secret": "whsec_short"}})
        )
        .is_err());
    }
}
