//! Secrets Gatehouse must read back (TOTP seeds) are stored sealed: AES-256-GCM under a key
//! derived with HKDF-SHA256 (RFC 5869) from a deployment secret of its own, with a fresh 96-bit nonce per seal and the row they belong to
//! as associated data, so a sealed value copied into another user's row does not open there.
//!
//! Stored form: base64url of `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use hkdf::Hkdf;
use sha2::Sha256;

use crate::crypto::{b64url, b64url_decode};
use crate::error::InternalError;
use crate::ports::Rng;

const VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// The shortest deployment secret accepted: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// The sealing key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// Derives the key from a deployment secret of at least [`MIN_SECRET_BYTES`], with HKDF
    /// under a label of its own.
    pub fn derive(secret: &[u8]) -> Result<SealingKey, InternalError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(InternalError::new(format!(
                "the sealing secret is too short ({} bytes; at least {MIN_SECRET_BYTES})",
                secret.len()
            )));
        }
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"gatehouse"), secret)
            .expand(b"gatehouse sealed secrets v1", &mut key)
            .map_err(|_| InternalError::new("hkdf output length"))?;
        Ok(SealingKey(key))
    }

    fn cipher(&self) -> Result<Aes256Gcm, InternalError> {
        Aes256Gcm::new_from_slice(&self.0).map_err(|_| InternalError::new("sealing key length"))
    }

    /// Seals `plaintext` for the row `context` names (for example `totp:<user>:<device>`).
    pub fn seal(&self, rng: &dyn Rng, plaintext: &[u8], context: &str) -> Result<String, InternalError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill(&mut nonce)?;
        let sealed = self
            .cipher()?
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| InternalError::new("sealing failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(b64url(&out))
    }

    /// Opens what `seal` produced for the same `context`. Any change to the stored value, another
    /// context or another key is an error: storage was tampered with or the key changed.
    pub fn open(&self, stored: &str, context: &str) -> Result<Vec<u8>, InternalError> {
        let bytes = b64url_decode(stored).ok_or_else(|| InternalError::new("sealed value is not base64url"))?;
        if bytes.len() < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] != VERSION {
            return Err(InternalError::new("sealed value has an unknown form"));
        }
        let (nonce, sealed) = bytes[1..].split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce
            .try_into()
            .map_err(|_| InternalError::new("sealed value has an unknown form"))?;
        self.cipher()?
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| InternalError::new("sealed value does not open with this key and context"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    const EXPECTED_HKDF: &str = "vfNn_3200tlD4MZGqa1IGeyKRXVnj__-DJarl4SnBlA";

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let rng = SeededRng::new(1);
        let key = SealingKey::derive(&[7; 32]).unwrap();
        let sealed = key.seal(&rng, b"the seed", "totp:usr_1:dev_1").unwrap();
        assert_eq!(key.open(&sealed, "totp:usr_1:dev_1").unwrap(), b"the seed");
        assert!(!sealed.contains("the seed"));
        assert!(key.open(&sealed, "totp:usr_2:dev_1").is_err(), "another row");
        let other = SealingKey::derive(&[8; 32]).unwrap();
        assert!(other.open(&sealed, "totp:usr_1:dev_1").is_err(), "another key");
    }

    #[test]
    fn every_seal_has_a_fresh_nonce() {
        let rng = SeededRng::new(1);
        let key = SealingKey::derive(&[9; 32]).unwrap();
        let a = key.seal(&rng, b"same", "c").unwrap();
        let b = key.seal(&rng, b"same", "c").unwrap();
        assert_ne!(a, b);
        assert_ne!(b64url_decode(&a).unwrap()[1..13], b64url_decode(&b).unwrap()[1..13]);
    }

    #[test]
    fn a_changed_truncated_or_unknown_stored_value_does_not_open() {
        let rng = SeededRng::new(2);
        let key = SealingKey::derive(&[9; 32]).unwrap();
        let sealed = key.seal(&rng, b"seed", "c").unwrap();
        let bytes = b64url_decode(&sealed).unwrap();
        assert_eq!(bytes.len(), 1 + NONCE_BYTES + 4 + TAG_BYTES);
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            assert!(key.open(&b64url(&flipped), "c").is_err(), "byte {i} flipped");
        }
        // Shorter than version, nonce and tag: refused by its form, before any decryption.
        let short = key.open(&b64url(&bytes[..1 + NONCE_BYTES + TAG_BYTES - 1]), "c");
        assert!(short.is_err_and(|e| e.0.contains("unknown form")));
        assert!(key.open("not base64!", "c").is_err());
        // The shortest value that can open: an empty secret.
        let empty = key.seal(&rng, b"", "c").unwrap();
        assert_eq!(key.open(&empty, "c").unwrap(), b"");
    }

    #[test]
    fn a_short_secret_is_refused_and_the_key_is_rfc5869_hkdf() {
        assert!(SealingKey::derive(&[1; 31]).is_err());
        assert!(SealingKey::derive(b"").is_err());
        // RFC 5869 HKDF-SHA256 with salt "gatehouse" and the label as info, computed independently.
        let key = SealingKey::derive(&[0x0b; 32]).unwrap();
        assert_eq!(b64url(&key.0), EXPECTED_HKDF);
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(
            format!("{:?}", SealingKey::derive(&[9; 32]).unwrap()),
            "SealingKey([redacted])"
        );
    }
}
