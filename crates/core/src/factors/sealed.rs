//! Secrets Gatehouse must read back (TOTP seeds) are stored sealed: AES-256-GCM under a key
//! derived from a deployment secret, with a fresh 96-bit nonce per seal and the row they belong to
//! as associated data, so a sealed value copied into another user's row does not open there.
//!
//! Stored form: base64url of `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::crypto::{b64url, b64url_decode, hmac_sha256};
use crate::error::InternalError;
use crate::ports::Rng;

const VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// The sealing key. Its `Debug` never shows it.
pub struct SealingKey([u8; 32]);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// Derives the key from a deployment secret, under a label of its own so the same secret
    /// used for another purpose (cookie MACs) never yields this key.
    pub fn derive(secret: &[u8]) -> SealingKey {
        SealingKey(hmac_sha256(secret, b"gatehouse sealed secrets v1"))
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

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let rng = SeededRng::new(1);
        let key = SealingKey::derive(b"a deployment secret of enough length");
        let sealed = key.seal(&rng, b"the seed", "totp:usr_1:dev_1").unwrap();
        assert_eq!(key.open(&sealed, "totp:usr_1:dev_1").unwrap(), b"the seed");
        assert!(!sealed.contains("the seed"));
        assert!(key.open(&sealed, "totp:usr_2:dev_1").is_err(), "another row");
        let other = SealingKey::derive(b"another deployment secret, same length");
        assert!(other.open(&sealed, "totp:usr_1:dev_1").is_err(), "another key");
    }

    #[test]
    fn every_seal_has_a_fresh_nonce() {
        let rng = SeededRng::new(1);
        let key = SealingKey::derive(b"k");
        let a = key.seal(&rng, b"same", "c").unwrap();
        let b = key.seal(&rng, b"same", "c").unwrap();
        assert_ne!(a, b);
        assert_ne!(b64url_decode(&a).unwrap()[1..13], b64url_decode(&b).unwrap()[1..13]);
    }

    #[test]
    fn a_changed_truncated_or_unknown_stored_value_does_not_open() {
        let rng = SeededRng::new(2);
        let key = SealingKey::derive(b"k");
        let sealed = key.seal(&rng, b"seed", "c").unwrap();
        let bytes = b64url_decode(&sealed).unwrap();
        assert_eq!(bytes.len(), 1 + NONCE_BYTES + 4 + TAG_BYTES);
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            assert!(key.open(&b64url(&flipped), "c").is_err(), "byte {i} flipped");
        }
        assert!(key
            .open(&b64url(&bytes[..1 + NONCE_BYTES + TAG_BYTES - 1]), "c")
            .is_err());
        assert!(key.open("not base64!", "c").is_err());
        // The shortest value that can open: an empty secret.
        let empty = key.seal(&rng, b"", "c").unwrap();
        assert_eq!(key.open(&empty, "c").unwrap(), b"");
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(format!("{:?}", SealingKey::derive(b"k")), "SealingKey([redacted])");
    }
}
