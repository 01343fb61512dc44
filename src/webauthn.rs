//! The `SignatureVerifier` port on WebCrypto: WebAuthn credential signatures (ES256, Ed25519,
//! RS256) checked by `crypto.subtle.verify`, a few hundredths of a millisecond inside workerd
//! where the same check in Rust costs milliseconds (see the README's "Passkeys").
//!
//! The core hands over a parsed key and a signature already in WebCrypto's form (raw r||s for
//! ECDSA). The key is imported as a public JWK for each check: a credential is used once per
//! sign-in, so there is nothing to cache.

use async_trait::async_trait;
use gatehouse_core::crypto::b64url;
use gatehouse_core::error::InternalError;
use gatehouse_core::factors::webauthn::CredentialKey;
use gatehouse_core::ports::SignatureVerifier;
use js_sys::Uint8Array;
use web_sys::CryptoKey;

use crate::signing::{call, object, subtle, usages};

pub struct WebCryptoVerifier;

#[async_trait(?Send)]
impl SignatureVerifier for WebCryptoVerifier {
    async fn verify(&self, key: &CredentialKey, message: &[u8], signature: &[u8]) -> Result<bool, InternalError> {
        // WebCrypto answers false for these, but some engines throw instead: they are the
        // credential's fault, so they are a plain no here.
        let wrong_length = match key {
            CredentialKey::Es256 { .. } | CredentialKey::Ed25519(_) => signature.len() != 64,
            CredentialKey::Rs256 { n, .. } => signature.len() != n.len(),
        };
        if wrong_length {
            return Ok(false);
        }
        let subtle = subtle()?;
        let (jwk, import, verify) = match key {
            CredentialKey::Es256 { x, y } => (
                object(&[("kty", "EC"), ("crv", "P-256"), ("x", &b64url(x)), ("y", &b64url(y))])?,
                object(&[("name", "ECDSA"), ("namedCurve", "P-256")])?,
                object(&[("name", "ECDSA"), ("hash", "SHA-256")])?,
            ),
            CredentialKey::Ed25519(x) => (
                object(&[("kty", "OKP"), ("crv", "Ed25519"), ("x", &b64url(x))])?,
                object(&[("name", "Ed25519")])?,
                object(&[("name", "Ed25519")])?,
            ),
            CredentialKey::Rs256 { n, e } => (
                object(&[("kty", "RSA"), ("n", &b64url(n)), ("e", &b64url(e))])?,
                object(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")])?,
                object(&[("name", "RSASSA-PKCS1-v1_5")])?,
            ),
        };
        // A key WebCrypto refuses (a point off the curve, say) verifies nothing: the
        // credential's fault, not the service's.
        let Ok(public) = call(
            subtle.import_key_with_object("jwk", &jwk, &import, false, &usages("verify")),
            "importing a credential key",
        )
        .await
        else {
            return Ok(false);
        };
        let public: CryptoKey = public.into();
        let ok = call(
            subtle.verify_with_object_and_js_u8_array_and_js_u8_array(
                &verify,
                &public,
                &Uint8Array::from(signature),
                &Uint8Array::from(message),
            ),
            "credential signature verification",
        )
        .await?;
        Ok(ok.as_bool().unwrap_or(false))
    }
}
