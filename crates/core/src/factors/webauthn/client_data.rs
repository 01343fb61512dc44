//! The client data (WebAuthn §5.8.1, `CollectedClientData`): what the browser says it asked the
//! authenticator, as JSON the authenticator signs (a hash of).

use serde::Deserialize;

use super::Refusal;
use crate::crypto::{b64url_decode, constant_time_eq};

/// The members Gatehouse reads; others (`tokenBinding`, future ones) are ignored, as §5.8.1
/// asks of relying parties.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CollectedClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: Option<bool>,
    #[serde(default)]
    top_origin: Option<String>,
}

/// Which ceremony the client data must be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Get,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "webauthn.create",
            Kind::Get => "webauthn.get",
        }
    }
}

/// Registration steps 5-10 and assertion steps 9-14: the JSON parses, its `type` is the
/// ceremony's, its `challenge` is the one issued, its `origin` is exactly the expected one, and
/// the ceremony did not run in a cross-origin frame (Gatehouse's pages are never framed: they
/// send `frame-ancestors 'none'`, so a cross-origin ceremony is someone else's page).
pub fn check(json: &[u8], kind: Kind, challenge: &[u8], origin: &str) -> Result<(), Refusal> {
    let data: CollectedClientData = serde_json::from_slice(json).map_err(|_| Refusal::Malformed)?;
    if data.kind != kind.as_str() {
        return Err(Refusal::WrongCeremony);
    }
    let sent = b64url_decode(&data.challenge).ok_or(Refusal::WrongChallenge)?;
    // A challenge shorter than §13.4.3's 16 bytes is no challenge (a lost one read as empty
    // would match an empty one sent).
    if challenge.len() < 16 || !constant_time_eq(&sent, challenge) {
        return Err(Refusal::WrongChallenge);
    }
    if data.origin != origin {
        return Err(Refusal::WrongOrigin);
    }
    if data.cross_origin == Some(true) || data.top_origin.is_some() {
        return Err(Refusal::CrossOrigin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://id.example.com";

    fn json(kind: &str, challenge: &str, origin: &str, extra: &str) -> Vec<u8> {
        format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{origin}"{extra}}}"#).into_bytes()
    }

    #[test]
    fn the_client_data_must_name_this_ceremony_challenge_and_origin() {
        let c = [9u8; 32];
        let b64 = crate::crypto::b64url(&c);
        assert_eq!(
            check(&json("webauthn.get", &b64, ORIGIN, ""), Kind::Get, &c, ORIGIN),
            Ok(())
        );
        assert_eq!(
            check(
                &json("webauthn.create", &b64, ORIGIN, r#","crossOrigin":false,"other":1"#),
                Kind::Create,
                &c,
                ORIGIN
            ),
            Ok(())
        );
        assert_eq!(
            check(&json("webauthn.create", &b64, ORIGIN, ""), Kind::Get, &c, ORIGIN),
            Err(Refusal::WrongCeremony)
        );
        assert_eq!(
            check(&json("webauthn.get", &b64, ORIGIN, ""), Kind::Create, &c, ORIGIN),
            Err(Refusal::WrongCeremony)
        );
        assert_eq!(
            check(&json("webauthn.get", &b64, ORIGIN, ""), Kind::Get, &[8; 32], ORIGIN),
            Err(Refusal::WrongChallenge)
        );
        assert_eq!(
            check(&json("webauthn.get", "not base64!", ORIGIN, ""), Kind::Get, &c, ORIGIN),
            Err(Refusal::WrongChallenge)
        );
        // An empty or short challenge issued matches nothing, not even itself.
        assert_eq!(
            check(&json("webauthn.get", "", ORIGIN, ""), Kind::Get, &[], ORIGIN),
            Err(Refusal::WrongChallenge)
        );
        let short = crate::crypto::b64url(&[9; 15]);
        assert_eq!(
            check(&json("webauthn.get", &short, ORIGIN, ""), Kind::Get, &[9; 15], ORIGIN),
            Err(Refusal::WrongChallenge)
        );
        let sixteen = crate::crypto::b64url(&[9; 16]);
        assert_eq!(
            check(&json("webauthn.get", &sixteen, ORIGIN, ""), Kind::Get, &[9; 16], ORIGIN),
            Ok(())
        );
        for other in [
            "https://evil.example.com",
            "https://id.example.com:443",
            "http://id.example.com",
            "https://id.example.com/",
        ] {
            assert_eq!(
                check(&json("webauthn.get", &b64, other, ""), Kind::Get, &c, ORIGIN),
                Err(Refusal::WrongOrigin),
                "{other}"
            );
        }
        assert_eq!(
            check(
                &json("webauthn.get", &b64, ORIGIN, r#","crossOrigin":true"#),
                Kind::Get,
                &c,
                ORIGIN
            ),
            Err(Refusal::CrossOrigin)
        );
        assert_eq!(
            check(
                &json("webauthn.get", &b64, ORIGIN, r#","topOrigin":"https://a.example""#),
                Kind::Get,
                &c,
                ORIGIN
            ),
            Err(Refusal::CrossOrigin)
        );
        assert_eq!(check(b"{}", Kind::Get, &c, ORIGIN), Err(Refusal::Malformed));
        assert_eq!(check(b"\xff", Kind::Get, &c, ORIGIN), Err(Refusal::Malformed));
    }
}
