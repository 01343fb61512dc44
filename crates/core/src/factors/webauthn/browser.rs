//! The JSON the browser script (`www/static/passkey.js`) and Gatehouse exchange: the options
//! handed to `navigator.credentials.create()` / `.get()`, and the credential that comes back, in
//! the shapes of WebAuthn Level 3's JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
//! `RegistrationResponseJSON`, `AuthenticationResponseJSON`): binary values as base64url.
//!
//! Parsing is strict where it matters (the type, every binary field decodes, the whole document
//! within [`MAX_CREDENTIAL_JSON`]) and ignores what Gatehouse does not use (extension results,
//! the attachment).

use serde::Deserialize;
use serde_json::{json, Value};

use super::key::ACCEPTED_ALGS;
use super::{Assertion, Registration, UserVerification, MAX_ATTESTATION_OBJECT};
use crate::crypto::{b64url, b64url_decode};

/// The credential field of a form: a registration's attestation object (at most 16 KiB) in
/// base64url with the client data around it fits well within this.
pub const MAX_CREDENTIAL_JSON: usize = 2 * MAX_ATTESTATION_OBJECT + 8 * 1024;
/// Milliseconds the browser waits for the user: the challenge's lifetime.
pub const TIMEOUT_MS: i64 = crate::store::webauthn_challenges::TTL * 1000;

/// A credential Gatehouse knows, for `excludeCredentials` / `allowCredentials`.
pub struct Descriptor<'a> {
    /// base64url, as stored.
    pub id: &'a str,
    pub transports: &'a [String],
}

fn descriptors(list: &[Descriptor<'_>]) -> Vec<Value> {
    list.iter()
        .map(|d| json!({ "type": "public-key", "id": d.id, "transports": d.transports }))
        .collect()
}

fn uv(v: UserVerification) -> &'static str {
    match v {
        UserVerification::Required => "required",
        UserVerification::Preferred => "preferred",
    }
}

/// Who a new passkey is for.
pub struct NewUser<'a> {
    /// The opaque handle (`users.webauthn_handle`), never the username.
    pub handle: &'a [u8],
    /// What the authenticator shows to tell accounts apart.
    pub name: &'a str,
    pub display_name: &'a str,
}

/// `PublicKeyCredentialCreationOptionsJSON` (offering [`ACCEPTED_ALGS`], most preferred first):
/// a discoverable credential (so it can sign in
/// without a username) with user verification, no attestation, none of `exclude` again.
pub fn creation_options(
    rp_id: &str,
    rp_name: &str,
    user: &NewUser<'_>,
    challenge: &[u8],
    exclude: &[Descriptor<'_>],
) -> Value {
    json!({
        "rp": { "id": rp_id, "name": rp_name },
        "user": { "id": b64url(user.handle), "name": user.name, "displayName": user.display_name },
        "challenge": b64url(challenge),
        "pubKeyCredParams": ACCEPTED_ALGS.iter().map(|alg| json!({ "type": "public-key", "alg": alg })).collect::<Vec<_>>(),
        "timeout": TIMEOUT_MS,
        "excludeCredentials": descriptors(exclude),
        "authenticatorSelection": {
            "residentKey": "required",
            "requireResidentKey": true,
            "userVerification": "required",
        },
        "attestation": "none",
    })
}

/// `PublicKeyCredentialRequestOptionsJSON`. An empty `allow` lets the user pick any of their
/// discoverable credentials (a usernameless sign-in).
pub fn request_options(
    rp_id: &str,
    challenge: &[u8],
    allow: &[Descriptor<'_>],
    verification: UserVerification,
) -> Value {
    json!({
        "rpId": rp_id,
        "challenge": b64url(challenge),
        "timeout": TIMEOUT_MS,
        "allowCredentials": descriptors(allow),
        "userVerification": uv(verification),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialJson {
    id: String,
    raw_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    response: ResponseJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    authenticator_data: Option<String>,
    signature: Option<String>,
    user_handle: Option<String>,
    attestation_object: Option<String>,
    #[serde(default)]
    transports: Vec<String>,
}

/// The credential's id, checked against `rawId` when the browser sent both.
fn parse(json: &str) -> Option<(Vec<u8>, ResponseJson)> {
    if json.len() > MAX_CREDENTIAL_JSON {
        return None;
    }
    let c: CredentialJson = serde_json::from_str(json).ok()?;
    if c.kind != "public-key" {
        return None;
    }
    let id = b64url_decode(&c.id).filter(|id| !id.is_empty())?;
    if c.raw_id
        .is_some_and(|raw| b64url_decode(&raw).as_deref() != Some(id.as_slice()))
    {
        return None;
    }
    Some((id, c.response))
}

/// What `navigator.credentials.get()` returned, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionResponse {
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
    pub user_handle: Option<Vec<u8>>,
}

impl AssertionResponse {
    pub fn parse(json: &str) -> Option<AssertionResponse> {
        let (credential_id, r) = parse(json)?;
        let user_handle = match r.user_handle {
            Some(h) => Some(b64url_decode(&h)?),
            None => None,
        };
        Some(AssertionResponse {
            credential_id,
            client_data_json: b64url_decode(&r.client_data_json)?,
            authenticator_data: b64url_decode(r.authenticator_data.as_deref()?)?,
            signature: b64url_decode(r.signature.as_deref()?)?,
            user_handle,
        })
    }

    pub fn as_assertion(&self) -> Assertion<'_> {
        Assertion {
            client_data_json: &self.client_data_json,
            authenticator_data: &self.authenticator_data,
            signature: &self.signature,
            user_handle: self.user_handle.as_deref(),
        }
    }
}

/// What `navigator.credentials.create()` returned, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub attestation_object: Vec<u8>,
    /// As the browser reported them; `store::passkeys::known_transports` keeps the known ones.
    pub transports: Vec<String>,
}

impl RegistrationResponse {
    pub fn parse(json: &str) -> Option<RegistrationResponse> {
        let (credential_id, r) = parse(json)?;
        Some(RegistrationResponse {
            credential_id,
            client_data_json: b64url_decode(&r.client_data_json)?,
            attestation_object: b64url_decode(r.attestation_object.as_deref()?)?,
            transports: r.transports,
        })
    }

    pub fn as_registration(&self) -> Registration<'_> {
        Registration {
            client_data_json: &self.client_data_json,
            attestation_object: &self.attestation_object,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion_json(id: &str, raw_id: Option<&str>, kind: &str) -> String {
        let mut v = json!({
            "id": id,
            "type": kind,
            "response": {
                "clientDataJSON": b64url(b"{}"),
                "authenticatorData": b64url(&[0u8; 37]),
                "signature": b64url(b"sig"),
                "userHandle": b64url(b"handle"),
            },
            "clientExtensionResults": {},
        });
        if let Some(r) = raw_id {
            v["rawId"] = json!(r);
        }
        v.to_string()
    }

    #[test]
    fn an_assertion_decodes_whole_and_its_raw_id_must_be_its_id() {
        let id = b64url(b"cred");
        let a = AssertionResponse::parse(&assertion_json(&id, Some(&id), "public-key")).unwrap();
        assert_eq!(a.credential_id, b"cred");
        assert_eq!(a.client_data_json, b"{}");
        assert_eq!(a.authenticator_data, [0u8; 37]);
        assert_eq!(a.signature, b"sig");
        assert_eq!(a.user_handle.as_deref(), Some(&b"handle"[..]));
        assert!(AssertionResponse::parse(&assertion_json(&id, None, "public-key")).is_some());
        assert_eq!(
            AssertionResponse::parse(&assertion_json(&id, Some(&b64url(b"other")), "public-key")),
            None
        );
        assert_eq!(AssertionResponse::parse(&assertion_json(&id, None, "password")), None);
        assert_eq!(AssertionResponse::parse(&assertion_json("", None, "public-key")), None);
        assert_eq!(
            AssertionResponse::parse(&assertion_json("not base64!", None, "public-key")),
            None
        );
    }

    #[test]
    fn a_credential_over_its_bound_or_missing_a_field_is_refused_unread() {
        let id = b64url(b"cred");
        let mut v: Value = serde_json::from_str(&assertion_json(&id, None, "public-key")).unwrap();
        v["response"]["signature"] = json!("A".repeat(MAX_CREDENTIAL_JSON));
        assert_eq!(AssertionResponse::parse(&v.to_string()), None);
        let mut v: Value = serde_json::from_str(&assertion_json(&id, None, "public-key")).unwrap();
        v["response"].as_object_mut().unwrap().remove("signature");
        assert_eq!(AssertionResponse::parse(&v.to_string()), None);
        // An assertion is not a registration: it has no attestation object.
        assert_eq!(
            RegistrationResponse::parse(&assertion_json(&id, None, "public-key")),
            None
        );
    }

    #[test]
    fn a_credential_of_exactly_40_kib_is_read_and_one_byte_more_is_not() {
        assert_eq!(MAX_CREDENTIAL_JSON, 40 * 1024, "the README's bound");
        let id = b64url(b"cred");
        let base = assertion_json(&id, None, "public-key");
        // Padding in a member Gatehouse ignores, to the exact length.
        let with_pad = |n: usize| {
            let mut v: Value = serde_json::from_str(&base).unwrap();
            v["clientExtensionResults"] = json!({ "pad": "" });
            let empty = v.to_string().len();
            v["clientExtensionResults"] = json!({ "pad": "x".repeat(n - empty) });
            v.to_string()
        };
        let exact = with_pad(MAX_CREDENTIAL_JSON);
        assert_eq!(exact.len(), MAX_CREDENTIAL_JSON);
        assert!(AssertionResponse::parse(&exact).is_some());
        let over = with_pad(MAX_CREDENTIAL_JSON + 1);
        assert_eq!(AssertionResponse::parse(&over), None);
    }

    #[test]
    fn options_ask_for_a_discoverable_verified_credential_and_name_the_known_ones() {
        let transports = vec!["internal".to_owned()];
        let known = [Descriptor {
            id: "Y3JlZA",
            transports: &transports,
        }];
        let user = NewUser {
            handle: &[7u8; 32],
            name: "ann",
            display_name: "Ann",
        };
        let c = creation_options("id.example.com", "Gatehouse", &user, &[1u8; 32], &known);
        assert_eq!(c["rp"]["id"], "id.example.com");
        assert_eq!(c["user"]["id"], b64url(&[7u8; 32]));
        assert_eq!(c["challenge"], b64url(&[1u8; 32]));
        assert_eq!(c["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(c["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(c["excludeCredentials"][0]["id"], "Y3JlZA");
        assert_eq!(c["pubKeyCredParams"][1]["alg"], -8);
        assert_eq!(c["timeout"], 300_000);
        let r = request_options("id.example.com", &[2u8; 32], &[], UserVerification::Preferred);
        assert_eq!(r["allowCredentials"], json!([]));
        assert_eq!(r["userVerification"], "preferred");
        let r = request_options("id.example.com", &[2u8; 32], &known, UserVerification::Required);
        assert_eq!(r["allowCredentials"][0]["transports"], json!(["internal"]));
        assert_eq!(r["userVerification"], "required");
    }
}
