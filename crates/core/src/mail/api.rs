//! The HTTPS mail API adapter's request and its answer, as a small mapping tested here: the
//! Worker only moves the bytes. The shape is Resend's (`POST https://api.resend.com/emails`,
//! `Authorization: Bearer <key>`, a JSON body with `from`, `to`, `subject`, `text`, `html`), which
//! several other providers and self-hosted relays accept as well; another provider is a change
//! to this file only.

use serde_json::json;

use super::{Mail, MailSettings};
use crate::config::Secret;
use crate::error::InternalError;

/// An HTTP request to the mail API.
#[derive(PartialEq, Eq)]
pub struct ApiRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The request that sends `mail`.
pub fn request(settings: &MailSettings, key: &Secret, mail: &Mail) -> ApiRequest {
    let body = json!({
        "from": settings.from,
        "to": [mail.to],
        "subject": mail.subject,
        "text": mail.text,
        "html": mail.html,
    });
    ApiRequest {
        url: settings.api_url.clone(),
        headers: vec![
            ("authorization".into(), format!("Bearer {}", key.expose())),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string(),
    }
}

/// Whether the API took the mail: a 2xx. Otherwise the status and the start of its answer (an
/// API's error message names the problem: a bad key, an unverified sender domain).
pub fn judge(status: u16, body: &[u8]) -> Result<(), InternalError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let said: String = String::from_utf8_lossy(body).chars().take(160).collect();
    Err(InternalError::new(format!("mail API answered {status}: {said}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MailKind;

    #[test]
    fn the_request_is_resends_shape_with_the_key_as_a_bearer_token() {
        let settings = MailSettings {
            from: "Gatehouse <no-reply@id.example.com>".into(),
            ..MailSettings::default()
        };
        let mail = Mail {
            kind: MailKind::PasswordReset,
            to: "ann@example.com".into(),
            subject: "Reset your password".into(),
            text: "Open https://id.example.com/x".into(),
            html: "<p>Open</p>".into(),
        };
        let r = request(&settings, &Secret::new("re_123"), &mail);
        assert_eq!(r.url, "https://api.resend.com/emails");
        assert_eq!(
            r.headers,
            [
                ("authorization".to_owned(), "Bearer re_123".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned())
            ]
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            body,
            json!({
                "from": "Gatehouse <no-reply@id.example.com>",
                "to": ["ann@example.com"],
                "subject": "Reset your password",
                "text": "Open https://id.example.com/x",
                "html": "<p>Open</p>",
            })
        );
    }

    #[test]
    fn only_a_2xx_is_a_delivery() {
        assert!(judge(200, b"{\"id\":\"x\"}").is_ok());
        assert!(judge(202, b"").is_ok());
        let e = judge(403, b"{\"message\":\"The domain is not verified\"}").unwrap_err();
        assert!(e.to_string().contains("403"));
        assert!(e.to_string().contains("not verified"));
        assert!(judge(199, b"").is_err());
        assert!(judge(300, b"").is_err());
        assert!(judge(500, &[b'x'; 1000]).unwrap_err().to_string().len() < 260);
    }
}
