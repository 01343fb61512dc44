//! Hashing, encoding and comparisons shared by every endpoint.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::InternalError;
use crate::ports::Rng;

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret for our tokens (fixed-size); content is.
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// How random tokens, codes and client secrets are stored: SHA-256, base64url. They carry 256
/// bits of entropy, so a fast hash is enough (a slow one is for low-entropy passwords).
pub fn token_hash(token: &str) -> String {
    b64url(&sha256(token.as_bytes()))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error branch cannot happen.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// A random token of 32 bytes, base64url (43 characters).
pub fn random_token(rng: &dyn Rng) -> Result<String, InternalError> {
    let mut buf = [0u8; 32];
    rng.fill(&mut buf)?;
    Ok(b64url(&buf))
}

/// A random identifier with a readable prefix (`usr_…`, `cli_…`).
pub fn random_id(rng: &dyn Rng, prefix: &str) -> Result<String, InternalError> {
    let mut buf = [0u8; 16];
    rng.fill(&mut buf)?;
    Ok(format!("{prefix}{}", b64url(&buf)))
}
