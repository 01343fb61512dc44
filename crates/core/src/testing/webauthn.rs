//! WebAuthn for tests: a RustCrypto [`SignatureVerifier`] (the reference the Worker's WebCrypto
//! one is checked against) and a software authenticator that makes real registrations and
//! assertions with P-256, Ed25519 or RSA keys, so the ceremonies are tested end to end without a
//! browser. Never used in production.

use std::cell::Cell;

use async_trait::async_trait;
use coset::iana::{self, EnumI64};
use coset::{CborSerializable, CoseKeyBuilder};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use rsa::signature::SignatureEncoding;
use rsa::traits::PublicKeyParts;

use crate::crypto::{b64url, sha256};
use crate::error::InternalError;
use crate::factors::webauthn::authenticator_data::{AT, BE, BS, UP, UV};
use crate::factors::webauthn::CredentialKey;
use crate::ports::SignatureVerifier;

/// Checks signatures with RustCrypto (`p256`, `ed25519-dalek`, `rsa`).
pub struct RustCryptoVerifier;

#[async_trait(?Send)]
impl SignatureVerifier for RustCryptoVerifier {
    async fn verify(&self, key: &CredentialKey, message: &[u8], signature: &[u8]) -> Result<bool, InternalError> {
        Ok(match key {
            CredentialKey::Es256 { x, y } => {
                let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
                let (Ok(key), Ok(sig)) = (
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point),
                    p256::ecdsa::Signature::from_slice(signature),
                ) else {
                    return Ok(false);
                };
                key.verify(message, &sig).is_ok()
            }
            CredentialKey::Ed25519(x) => {
                let (Ok(key), Ok(sig)) = (
                    ed25519_dalek::VerifyingKey::from_bytes(x),
                    ed25519_dalek::Signature::from_slice(signature),
                ) else {
                    return Ok(false);
                };
                key.verify_strict(message, &sig).is_ok()
            }
            CredentialKey::Rs256 { n, e } => {
                let Ok(public) = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                else {
                    return Ok(false);
                };
                let key = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
                let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
                    return Ok(false);
                };
                key.verify(message, &sig).is_ok()
            }
        })
    }
}

/// The key a software authenticator holds.
pub enum SoftKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>>),
}

impl SoftKey {
    /// A P-256 key from a seed byte (deterministic, for tests).
    pub fn p256(seed: u8) -> SoftKey {
        let mut bytes = sha256(&[b'p', seed]);
        bytes[0] &= 0x7f; // below the group order
        SoftKey::P256(p256::ecdsa::SigningKey::from_bytes(&bytes.into()).expect("a valid scalar"))
    }

    pub fn ed25519(seed: u8) -> SoftKey {
        SoftKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&sha256(&[b'e', seed])))
    }

    /// The RSA-2048 test key of `crate::testing::signer` (generating one is slow).
    pub fn rsa() -> SoftKey {
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(super::signer::RSA_A_PKCS8_PEM).expect("the test key");
        SoftKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
    }

    /// The public key as a COSE_Key, the way authenticators encode it.
    pub fn cose(&self) -> Vec<u8> {
        let key = match self {
            SoftKey::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                CoseKeyBuilder::new_ec2_pub_key(
                    iana::EllipticCurve::P_256,
                    point.x().expect("uncompressed").to_vec(),
                    point.y().expect("uncompressed").to_vec(),
                )
                .algorithm(iana::Algorithm::ES256)
                .build()
            }
            SoftKey::Ed25519(k) => CoseKeyBuilder::new_okp_key()
                .param(
                    iana::OkpKeyParameter::Crv.to_i64(),
                    ciborium::Value::from(iana::EllipticCurve::Ed25519.to_i64()),
                )
                .param(
                    iana::OkpKeyParameter::X.to_i64(),
                    ciborium::Value::Bytes(k.verifying_key().to_bytes().to_vec()),
                )
                .algorithm(iana::Algorithm::EdDSA)
                .build(),
            SoftKey::Rsa(k) => {
                let public = rsa::RsaPublicKey::from(k.as_ref().as_ref());
                CoseKeyBuilder::new()
                    .key_type(iana::KeyType::RSA)
                    .param(
                        iana::RsaKeyParameter::N.to_i64(),
                        ciborium::Value::Bytes(public.n().to_bytes_be()),
                    )
                    .param(
                        iana::RsaKeyParameter::E.to_i64(),
                        ciborium::Value::Bytes(public.e().to_bytes_be()),
                    )
                    .algorithm(iana::Algorithm::RS256)
                    .build()
            }
        };
        key.to_vec().expect("a COSE key encodes")
    }

    pub fn alg(&self) -> i64 {
        match self {
            SoftKey::P256(_) => -7,
            SoftKey::Ed25519(_) => -8,
            SoftKey::Rsa(_) => -257,
        }
    }

    /// A signature as an authenticator returns it (DER for ECDSA).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SoftKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SoftKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SoftKey::Rsa(k) => k.sign(message).to_vec(),
        }
    }
}

/// A software authenticator holding one credential.
pub struct SoftAuthenticator {
    pub key: SoftKey,
    pub credential_id: Vec<u8>,
    pub counter: Cell<u32>,
    /// Flags it sets besides UP and AT (UV, BE, BS...).
    pub flags: Cell<u8>,
    /// By how much the counter goes up per signature (0: an authenticator that does not count).
    pub step: u32,
}

impl SoftAuthenticator {
    pub fn new(key: SoftKey, credential_id: &[u8]) -> SoftAuthenticator {
        SoftAuthenticator {
            key,
            credential_id: credential_id.to_vec(),
            counter: Cell::new(0),
            flags: Cell::new(UV | BE | BS),
            step: 1,
        }
    }

    /// An authenticator that does not count signatures (most synced passkeys).
    pub fn not_counting(mut self) -> SoftAuthenticator {
        self.step = 0;
        self
    }

    fn next_count(&self) -> u32 {
        let c = self.counter.get().wrapping_add(self.step);
        self.counter.set(c);
        c
    }

    /// Authenticator data for `rp_id`, with the attested credential data when `attested`.
    pub fn authenticator_data(&self, rp_id: &str, attested: bool) -> Vec<u8> {
        let mut d = sha256(rp_id.as_bytes()).to_vec();
        d.push(UP | self.flags.get() | if attested { AT } else { 0 });
        d.extend(self.next_count().to_be_bytes());
        if attested {
            d.extend([0u8; 16]);
            d.extend((self.credential_id.len() as u16).to_be_bytes());
            d.extend(&self.credential_id);
            d.extend(self.key.cose());
        }
        d
    }

    /// `navigator.credentials.create()`'s attestation object with a `none` attestation.
    pub fn attestation_none(&self, rp_id: &str) -> Vec<u8> {
        attestation_object("none", vec![], self.authenticator_data(rp_id, true))
    }

    /// With a `packed` self attestation over `client_data_json`.
    pub fn attestation_packed_self(&self, rp_id: &str, client_data_json: &[u8]) -> Vec<u8> {
        let auth_data = self.authenticator_data(rp_id, true);
        let mut signed = auth_data.clone();
        signed.extend(sha256(client_data_json));
        let statement = vec![
            (ciborium::Value::from("alg"), ciborium::Value::from(self.key.alg())),
            (
                ciborium::Value::from("sig"),
                ciborium::Value::Bytes(self.key.sign(&signed)),
            ),
        ];
        attestation_object("packed", statement, auth_data)
    }

    /// `navigator.credentials.get()`'s authenticator data and signature.
    pub fn assert(&self, rp_id: &str, client_data_json: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let auth_data = self.authenticator_data(rp_id, false);
        let mut signed = auth_data.clone();
        signed.extend(sha256(client_data_json));
        let sig = self.key.sign(&signed);
        (auth_data, sig)
    }
}

impl SoftAuthenticator {
    /// What `www/static/passkey.js` posts after `navigator.credentials.create(options)` at
    /// `origin`: `options` is the `publicKey` member of an options endpoint's answer.
    pub fn registration_json(&self, options: &serde_json::Value, origin: &str) -> String {
        let challenge = crate::crypto::b64url_decode(options["challenge"].as_str().unwrap_or("")).unwrap_or_default();
        let rp_id = options["rp"]["id"].as_str().unwrap_or("");
        let cd = client_data("webauthn.create", &challenge, origin);
        serde_json::json!({
            "id": b64url(&self.credential_id),
            "rawId": b64url(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&cd),
                "attestationObject": b64url(&self.attestation_none(rp_id)),
                "transports": ["internal", "hybrid"],
            },
        })
        .to_string()
    }

    /// What the script posts after `navigator.credentials.get(options)` at `origin`, returning
    /// `user_handle` (a discoverable credential's user handle; `None` for a second factor).
    pub fn assertion_json(&self, options: &serde_json::Value, origin: &str, user_handle: Option<&[u8]>) -> String {
        let challenge = crate::crypto::b64url_decode(options["challenge"].as_str().unwrap_or("")).unwrap_or_default();
        let rp_id = options["rpId"].as_str().unwrap_or("");
        let cd = client_data("webauthn.get", &challenge, origin);
        let (auth_data, sig) = self.assert(rp_id, &cd);
        let mut response = serde_json::json!({
            "clientDataJSON": b64url(&cd),
            "authenticatorData": b64url(&auth_data),
            "signature": b64url(&sig),
        });
        if let Some(h) = user_handle {
            response["userHandle"] = serde_json::json!(b64url(h));
        }
        serde_json::json!({
            "id": b64url(&self.credential_id),
            "rawId": b64url(&self.credential_id),
            "type": "public-key",
            "response": response,
        })
        .to_string()
    }
}

/// An attestation object: `{ "fmt", "attStmt", "authData" }` in CBOR.
pub fn attestation_object(
    fmt: &str,
    statement: Vec<(ciborium::Value, ciborium::Value)>,
    auth_data: Vec<u8>,
) -> Vec<u8> {
    let value = ciborium::Value::Map(vec![
        (ciborium::Value::from("fmt"), ciborium::Value::from(fmt)),
        (ciborium::Value::from("attStmt"), ciborium::Value::Map(statement)),
        (ciborium::Value::from("authData"), ciborium::Value::Bytes(auth_data)),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).expect("CBOR encodes");
    out
}

/// The client data JSON a browser sends.
pub fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"{kind}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
        b64url(challenge)
    )
    .into_bytes()
}
