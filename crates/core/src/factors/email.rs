//! Secrets sent by mail, as pure logic: 6-digit sign-in codes and link tokens, their hashes and
//! their lifetimes. Codes are hashed with HMAC-SHA256 under the cookie secret and bound to their
//! flow: a million possible codes would fall to a plain hash at once, and the flow binding means
//! a code from one sign-in is worth nothing in another. Link tokens carry 256 random bits, so a
//! plain SHA-256 suffices (the same as session and refresh-token hashes).

use crate::crypto::{b64url, constant_time_eq, hmac_sha256};
use crate::error::InternalError;
use crate::ports::Rng;

/// Digits in a sign-in code.
pub const CODE_DIGITS: usize = 6;
/// How long a sign-in code works (seconds).
pub const CODE_TTL: i64 = 10 * 60;
/// Wrong tries a code survives; the next one ends it and a new one must be sent.
pub const CODE_MAX_FAILURES: i64 = 5;
/// Seconds between two codes sent for one sign-in.
pub const RESEND_COOLDOWN: i64 = 60;
/// How long a password-reset link works (seconds).
pub const RESET_TTL: i64 = 15 * 60;
/// How long an address-verification link works (seconds).
pub const VERIFY_TTL: i64 = 24 * 3600;

/// A sign-in code as sent: its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode(String);

impl EmailCode {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailCode(…)")
    }
}

/// A fresh code, uniform over the 10^6 values: 32-bit draws at or above the largest multiple
/// of 10^6 are drawn again, so no value is likelier than another.
pub fn new_code(rng: &dyn Rng) -> Result<EmailCode, InternalError> {
    const SPACE: u32 = 1_000_000;
    const LIMIT: u32 = u32::MAX - (u32::MAX % SPACE);
    loop {
        let mut buf = [0u8; 4];
        rng.fill(&mut buf)?;
        let n = u32::from_le_bytes(buf);
        if n < LIMIT {
            return Ok(EmailCode(format!("{:06}", n % SPACE)));
        }
    }
}

/// The stored hash of `code` sent in flow `flow_id`.
pub fn code_hash(key: &[u8], flow_id: &str, code: &str) -> String {
    b64url(&hmac_sha256(key, format!("email-code\n{flow_id}\n{code}").as_bytes()))
}

/// What the user typed, as a code: digits only, spaces and dashes dropped; `None` if it cannot
/// be one (nothing is looked up for it).
pub fn normalize(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Whether `typed` is the code stored as `stored_hash` for this flow, in constant time.
pub fn code_matches(key: &[u8], flow_id: &str, typed: &str, stored_hash: &str) -> bool {
    let Some(code) = normalize(typed) else {
        return false;
    };
    constant_time_eq(code_hash(key, flow_id, &code).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let rng = SeededRng::new(1);
        let codes: Vec<String> = (0..50).map(|_| new_code(&rng).unwrap().expose().to_owned()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 45);
        assert_eq!(format!("{:?}", new_code(&rng).unwrap()), "EmailCode(…)");
    }

    #[test]
    fn a_code_matches_only_its_own_flow_and_key() {
        let h = code_hash(b"k1", "flow-a", "123456");
        assert!(code_matches(b"k1", "flow-a", "123456", &h));
        assert!(code_matches(b"k1", "flow-a", "123 456", &h));
        assert!(code_matches(b"k1", "flow-a", "123-456", &h));
        assert!(!code_matches(b"k1", "flow-b", "123456", &h));
        assert!(!code_matches(b"k2", "flow-a", "123456", &h));
        assert!(!code_matches(b"k1", "flow-a", "123457", &h));
        assert!(!code_matches(b"k1", "flow-a", "12345", &h));
        assert!(!code_matches(b"k1", "flow-a", "1234567", &h));
        assert!(!code_matches(b"k1", "flow-a", "12345a", &h));
        assert!(!code_matches(b"k1", "flow-a", "", &h));
    }

    /// Randomness that yields the given 32-bit draws, then fails.
    struct Draws(std::cell::RefCell<Vec<u32>>);

    impl Rng for Draws {
        fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
            let mut left = self.0.borrow_mut();
            if left.is_empty() {
                return Err(InternalError::new("no more draws"));
            }
            buf.copy_from_slice(&left.remove(0).to_le_bytes());
            Ok(())
        }
    }

    fn code_from(draws: &[u32]) -> Result<String, InternalError> {
        new_code(&Draws(std::cell::RefCell::new(draws.to_vec()))).map(|c| c.expose().to_owned())
    }

    #[test]
    fn draws_past_the_last_whole_million_are_drawn_again_so_no_code_is_likelier() {
        // 4_294_000_000 is the largest multiple of 10^6 that fits: draws below it are used...
        assert_eq!(code_from(&[4_293_999_999]).unwrap(), "999999");
        assert_eq!(code_from(&[5]).unwrap(), "000005");
        // ...and it and every draw above it are thrown away.
        assert_eq!(code_from(&[4_294_000_000, 7]).unwrap(), "000007");
        assert_eq!(code_from(&[u32::MAX, 4_294_967_000, 42]).unwrap(), "000042");
        assert!(code_from(&[u32::MAX]).is_err(), "no randomness: no code");
    }

    #[test]
    fn lifetimes_are_what_the_readme_says() {
        assert_eq!((CODE_TTL, RESET_TTL, VERIFY_TTL), (600, 900, 86_400));
        assert_eq!((CODE_MAX_FAILURES, RESEND_COOLDOWN), (5, 60));
    }

    #[test]
    fn normalize_keeps_six_digits_only() {
        assert_eq!(normalize("12345a"), None);
        assert_eq!(normalize("1234567"), None);
        assert_eq!(normalize(" 12 34 56 ").as_deref(), Some("123456"));
        assert_eq!(normalize("١٢٣٤٥٦"), None, "only ASCII digits");
        assert_eq!(normalize("123456\n"), None);
    }
}
