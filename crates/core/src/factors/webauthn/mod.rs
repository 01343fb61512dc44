//! WebAuthn relying-party verification (Web Authentication Level 3, §7.1 "Registering a New
//! Credential" and §7.2 "Verifying an Authentication Assertion"), as pure logic.
//!
//! Written here rather than taken from a crate: `webauthn-rs` needs OpenSSL and does not build
//! for wasm32, and `webauthn_rp` panics on wasm32 (it reads the system clock). CBOR and COSE are
//! parsed by `ciborium` and `coset`; the signature itself is checked by the
//! [`SignatureVerifier`](crate::ports::SignatureVerifier) port (WebCrypto in the Worker, RustCrypto
//! in the tests). Each check names the spec step it is; each refusal names what it stops.
//!
//! What the stages around it own: issuing the challenge (random, single use, bound to the flow
//! and the browser, short-lived), finding the credential by its id, saying who the flow
//! identified ([`Identified`]), and storing the result.

pub mod authenticator_data;
pub mod browser;
pub mod client_data;
pub mod key;

use crate::crypto::{constant_time_eq, sha256};
use crate::error::InternalError;
use crate::ports::SignatureVerifier;
use authenticator_data::{AuthenticatorData, BE, BS, UP, UV};
pub use key::CredentialKey;

/// A challenge is 32 random bytes (§13.4.3 asks for at least 16).
pub const CHALLENGE_BYTES: usize = 32;
/// The client data JSON is a few hundred bytes; more is refused unread.
pub const MAX_CLIENT_DATA: usize = 4096;
/// An attestation object with a certificate chain is a few KB.
pub const MAX_ATTESTATION_OBJECT: usize = 16 * 1024;
/// Authenticator data of an assertion: 37 bytes plus extension outputs.
pub const MAX_AUTHENTICATOR_DATA: usize = 4096;
/// A signature is at most an RSA-4096 one (512 bytes).
pub const MAX_SIGNATURE: usize = 512;
/// A user handle is at most 64 bytes (§5.4.3).
pub const MAX_USER_HANDLE: usize = 64;

/// Why a ceremony was refused. The stage records it in the event; the user sees one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Something did not parse, or was over its size bound.
    Malformed,
    /// Client data of the other ceremony (an assertion offered as a registration, or back).
    WrongCeremony,
    /// Not the challenge this ceremony issued (a replay, or another flow's).
    WrongChallenge,
    /// Made for another origin (a phishing site relaying the ceremony).
    WrongOrigin,
    /// Made in a cross-origin frame.
    CrossOrigin,
    /// Scoped to another relying party (`rpIdHash`).
    WrongRpId,
    /// The authenticator did not test for a user's presence.
    UserNotPresent,
    /// User verification was required and not done.
    UserNotVerified,
    /// "Backed up" without "backup eligible", or eligibility that changed since registration.
    InconsistentBackupFlags,
    /// A key type or algorithm Gatehouse does not accept.
    UnsupportedKey,
    /// An attestation format that is not a registered one.
    UnsupportedAttestation,
    /// A self attestation whose signature does not verify.
    BadAttestation,
    /// The assertion's signature does not verify with the credential's key.
    BadSignature,
    /// The signature counter did not go up: a cloned authenticator, possibly.
    CounterRegression,
    /// The credential is not the identified user's, or the user handle returned is not its
    /// owner's (or is missing where no user was identified).
    WrongUser,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::WrongCeremony => "wrong_ceremony",
            Refusal::WrongChallenge => "wrong_challenge",
            Refusal::WrongOrigin => "wrong_origin",
            Refusal::CrossOrigin => "cross_origin",
            Refusal::WrongRpId => "wrong_rp_id",
            Refusal::UserNotPresent => "user_not_present",
            Refusal::UserNotVerified => "user_not_verified",
            Refusal::InconsistentBackupFlags => "inconsistent_backup_flags",
            Refusal::UnsupportedKey => "unsupported_key",
            Refusal::UnsupportedAttestation => "unsupported_attestation",
            Refusal::BadAttestation => "bad_attestation",
            Refusal::BadSignature => "bad_signature",
            Refusal::CounterRegression => "counter_regression",
            Refusal::WrongUser => "wrong_user",
        }
    }
}

/// A ceremony's outcome: a refusal is an answer, an internal error (the verifier failed) is not.
pub type Verdict<T> = Result<Result<T, Refusal>, InternalError>;

/// Whether the ceremony needs user verification (a PIN or biometric), WebAuthn §5.8.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerification {
    /// Passwordless sign-in and registration: the passkey is the whole sign-in.
    Required,
    /// A passkey as the second factor after a password: asked for, not demanded.
    Preferred,
}

/// What the relying party expects of this ceremony.
#[derive(Debug, Clone, Copy)]
pub struct Ceremony<'a> {
    /// The challenge issued for it.
    pub challenge: &'a [u8],
    /// The exact origin of Gatehouse's pages (`https://id.example.com`).
    pub origin: &'a str,
    /// The RP ID: the issuer's host.
    pub rp_id: &'a str,
    pub user_verification: UserVerification,
}

/// What the browser returned from `navigator.credentials.create()`.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub client_data_json: &'a [u8],
    pub attestation_object: &'a [u8],
}

/// A credential that passed registration: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub id: Vec<u8>,
    /// The COSE_Key as the authenticator encoded it.
    pub public_key: Vec<u8>,
    pub alg: i64,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// The attestation statement format (`none`, `packed`, ...).
    pub attestation_format: String,
}

/// The registered attestation statement formats (IANA "WebAuthn Attestation Statement Format
/// Identifiers"). Gatehouse asks for no attestation (`attestation: "none"`) and trusts no
/// attestation root, so beyond `none` it verifies only what needs no root: a `packed` self
/// attestation. The others are accepted as unverified, exactly like `none`; nothing is derived from
/// them. A format outside the registry is refused.
/// (`compound`, registered too, nests statements in an array; no authenticator a browser
/// reaches sends it, and it is refused as unsupported.)
const REGISTERED_FORMATS: [&str; 7] = [
    "none",
    "packed",
    "tpm",
    "android-key",
    "android-safetynet",
    "fido-u2f",
    "apple",
];

/// §7.1, "Registering a New Credential", steps 5 to 25. `accepted_algs` are the algorithms the
/// options offered (`pubKeyCredParams`).
pub async fn verify_registration(
    verifier: &dyn SignatureVerifier,
    ceremony: &Ceremony<'_>,
    accepted_algs: &[i64],
    response: &Registration<'_>,
) -> Verdict<NewCredential> {
    if response.client_data_json.len() > MAX_CLIENT_DATA || response.attestation_object.len() > MAX_ATTESTATION_OBJECT {
        return Ok(Err(Refusal::Malformed));
    }
    // Steps 5-10: the client data.
    if let Err(r) = client_data::check(
        response.client_data_json,
        client_data::Kind::Create,
        ceremony.challenge,
        ceremony.origin,
    ) {
        return Ok(Err(r));
    }
    // Step 11.
    let client_data_hash = sha256(response.client_data_json);
    // Step 12: the attestation object.
    let Some(attestation) = AttestationObject::parse(response.attestation_object) else {
        return Ok(Err(Refusal::Malformed));
    };
    let Some(data) = authenticator_data::parse(&attestation.auth_data) else {
        return Ok(Err(Refusal::Malformed));
    };
    // Steps 13-17: RP ID, user presence, user verification, backup flags.
    if let Err(r) = check_data(&data, ceremony) {
        return Ok(Err(r));
    }
    let Some(credential) = &data.attested else {
        return Ok(Err(Refusal::Malformed));
    };
    // Step 19: an algorithm that was offered, in a key of the type it needs.
    let Some(key) = CredentialKey::from_cose(credential.public_key) else {
        return Ok(Err(Refusal::UnsupportedKey));
    };
    if !accepted_algs.contains(&key.alg()) {
        return Ok(Err(Refusal::UnsupportedKey));
    }
    // Steps 21-22: the attestation statement.
    if !REGISTERED_FORMATS.contains(&attestation.fmt.as_str()) {
        return Ok(Err(Refusal::UnsupportedAttestation));
    }
    if attestation.fmt == "none" && !attestation.statement_is_empty {
        return Ok(Err(Refusal::Malformed));
    }
    if let Some(self_attestation) = &attestation.packed_self {
        // §8.2, packed, "self attestation": the credential's own key signs authData || hash,
        // with the credential's algorithm.
        if self_attestation.alg != key.alg() {
            return Ok(Err(Refusal::BadAttestation));
        }
        let mut signed = attestation.auth_data.clone();
        signed.extend_from_slice(&client_data_hash);
        if !check_signature(verifier, &key, &signed, &self_attestation.sig).await? {
            return Ok(Err(Refusal::BadAttestation));
        }
    }
    // Step 25 is the parser's (1 to 1023 bytes); step 26 (not registered yet) is the store's.
    Ok(Ok(NewCredential {
        id: credential.credential_id.to_vec(),
        public_key: credential.public_key.to_vec(),
        alg: key.alg(),
        sign_count: data.sign_count,
        aaguid: credential.aaguid,
        user_verified: data.has(UV),
        backup_eligible: data.has(BE),
        backed_up: data.has(BS),
        attestation_format: attestation.fmt,
    }))
}

/// What the browser returned from `navigator.credentials.get()`.
#[derive(Debug, Clone, Copy)]
pub struct Assertion<'a> {
    pub client_data_json: &'a [u8],
    pub authenticator_data: &'a [u8],
    pub signature: &'a [u8],
    /// `response.userHandle`: required for a sign-in that did not name the user first.
    pub user_handle: Option<&'a [u8]>,
}

/// The stored credential the assertion names (found by its id).
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    pub public_key: &'a [u8],
    pub sign_count: u32,
    pub backup_eligible: bool,
    /// The owner's opaque user handle (`user.id` at registration).
    pub user_handle: &'a [u8],
}

/// A verified assertion: what the store updates and the session records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asserted {
    pub sign_count: u32,
    pub user_verified: bool,
    pub backed_up: bool,
}

/// Who the sign-in says the user is before the assertion (§7.2 step 6).
#[derive(Debug, Clone, Copy)]
pub enum Identified<'a> {
    /// Nobody yet (a usernameless sign-in with a discoverable credential): the response's user
    /// handle must be there, and be the credential owner's.
    Nobody,
    /// The user whose handle this is (a passkey as a second factor, after the password): the
    /// credential must be theirs, whatever the response's handle says.
    User(&'a [u8]),
}

/// §7.2, "Verifying an Authentication Assertion", steps 6 to 22.
///
/// The refusals before the signature check (`WrongUser`, `WrongCeremony`..., `UserNotPresent`,
/// `UserNotVerified`, `InconsistentBackupFlags`) can be caused by anyone who knows a credential
/// id; only `BadSignature` and `CounterRegression` say something about the key. A caller counts
/// the first ones as failed attempts, never as evidence against the credential.
pub async fn verify_assertion(
    verifier: &dyn SignatureVerifier,
    ceremony: &Ceremony<'_>,
    stored: &StoredCredential<'_>,
    response: &Assertion<'_>,
    identified: Identified<'_>,
) -> Verdict<Asserted> {
    if response.client_data_json.len() > MAX_CLIENT_DATA
        || response.authenticator_data.len() > MAX_AUTHENTICATOR_DATA
        || response.signature.len() > MAX_SIGNATURE
        || response.user_handle.is_some_and(|h| h.len() > MAX_USER_HANDLE)
    {
        return Ok(Err(Refusal::Malformed));
    }
    // Step 6: the credential is the identified user's, and the user handle, when given (always,
    // without a username), is its owner's. Some clients send an empty handle for "none".
    let returned = response.user_handle.filter(|h| !h.is_empty());
    let owner_ok = match identified {
        Identified::User(handle) => constant_time_eq(handle, stored.user_handle),
        Identified::Nobody => returned.is_some(),
    };
    let returned_ok = returned.is_none_or(|h| constant_time_eq(h, stored.user_handle));
    if stored.user_handle.is_empty() || !owner_ok || !returned_ok {
        return Ok(Err(Refusal::WrongUser));
    }
    // Steps 9-14: the client data.
    if let Err(r) = client_data::check(
        response.client_data_json,
        client_data::Kind::Get,
        ceremony.challenge,
        ceremony.origin,
    ) {
        return Ok(Err(r));
    }
    let Some(data) = authenticator_data::parse(response.authenticator_data) else {
        return Ok(Err(Refusal::Malformed));
    };
    if data.attested.is_some() {
        // An assertion carries no attested credential data (§6.1).
        return Ok(Err(Refusal::Malformed));
    }
    // Steps 15-18.
    if let Err(r) = check_data(&data, ceremony) {
        return Ok(Err(r));
    }
    if data.has(BE) != stored.backup_eligible {
        // Backup eligibility is fixed when a credential is made (§6.1.3).
        return Ok(Err(Refusal::InconsistentBackupFlags));
    }
    // Steps 20-21: the signature over authData || SHA-256(clientDataJSON).
    let Some(key) = CredentialKey::from_cose(stored.public_key) else {
        return Ok(Err(Refusal::UnsupportedKey));
    };
    let mut signed = response.authenticator_data.to_vec();
    signed.extend_from_slice(&sha256(response.client_data_json));
    if !check_signature(verifier, &key, &signed, response.signature).await? {
        return Ok(Err(Refusal::BadSignature));
    }
    // Step 22: an authenticator that counts must count up. Equal or lower means another copy
    // of the key signed since (§6.1.1); Gatehouse refuses it rather than only noting it.
    if (data.sign_count != 0 || stored.sign_count != 0) && data.sign_count <= stored.sign_count {
        return Ok(Err(Refusal::CounterRegression));
    }
    Ok(Ok(Asserted {
        sign_count: data.sign_count,
        user_verified: data.has(UV),
        backed_up: data.has(BS),
    }))
}

/// Registration steps 13-17, assertion steps 15-18.
fn check_data(data: &AuthenticatorData<'_>, ceremony: &Ceremony<'_>) -> Result<(), Refusal> {
    if !constant_time_eq(data.rp_id_hash, &sha256(ceremony.rp_id.as_bytes())) {
        return Err(Refusal::WrongRpId);
    }
    if !data.has(UP) {
        return Err(Refusal::UserNotPresent);
    }
    if ceremony.user_verification == UserVerification::Required && !data.has(UV) {
        return Err(Refusal::UserNotVerified);
    }
    if data.has(BS) && !data.has(BE) {
        return Err(Refusal::InconsistentBackupFlags);
    }
    Ok(())
}

/// The signature check, in the form the verifier takes: ES256 signatures come as DER and go as
/// raw r||s. Ed25519 and RS256 signatures go as they are (a signature of the wrong length does
/// not verify, in WebCrypto as in RustCrypto).
async fn check_signature(
    verifier: &dyn SignatureVerifier,
    key: &CredentialKey,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, InternalError> {
    match key {
        CredentialKey::Es256 { .. } => match key::ecdsa_der_to_raw(signature) {
            Some(raw) => verifier.verify(key, message, &raw).await,
            None => Ok(false),
        },
        _ => verifier.verify(key, message, signature).await,
    }
}

/// The attestation object (§6.5.4): `{ "fmt": text, "attStmt": map, "authData": bytes }`.
struct AttestationObject {
    fmt: String,
    auth_data: Vec<u8>,
    statement_is_empty: bool,
    /// A `packed` statement without a certificate chain (self attestation).
    packed_self: Option<PackedSelf>,
}

struct PackedSelf {
    alg: i64,
    sig: Vec<u8>,
}

impl AttestationObject {
    fn parse(bytes: &[u8]) -> Option<AttestationObject> {
        let (ciborium::Value::Map(entries), _, []) = authenticator_data::one_cbor_item(bytes)? else {
            return None;
        };
        // CTAP2's canonical CBOR has no duplicate keys; a map with two "fmt"s reads two ways.
        let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_text()).collect();
        if keys.len() != entries.len() || (1..keys.len()).any(|i| keys[..i].contains(&keys[i])) {
            return None;
        }
        let fmt = text_key(&entries, "fmt")?.as_text()?.to_owned();
        let auth_data = text_key(&entries, "authData")?.as_bytes()?.clone();
        let statement = text_key(&entries, "attStmt")?.as_map()?;
        let stmt = |name: &str| text_key(statement, name);
        let packed_self = if fmt == "packed" && stmt("x5c").is_none() {
            let alg = stmt("alg")?.as_integer().and_then(|i| i64::try_from(i).ok())?;
            let sig = stmt("sig")?.as_bytes()?.clone();
            Some(PackedSelf { alg, sig })
        } else {
            None
        };
        Some(AttestationObject {
            fmt,
            auth_data,
            statement_is_empty: statement.is_empty(),
            packed_self,
        })
    }
}

/// The value under the text key `name` of a CBOR map.
fn text_key<'v>(map: &'v [(ciborium::Value, ciborium::Value)], name: &str) -> Option<&'v ciborium::Value> {
    map.iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v)
}
