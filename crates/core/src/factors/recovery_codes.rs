//! Recovery codes: ten single-use codes a user keeps on paper, each usable once in place of a
//! second factor. Each carries 80 random bits, written as four groups of four characters from a
//! 32-letter alphabet without look-alikes (`0`/`o`, `1`/`l`/`i`). Only SHA-256 hashes are kept,
//! each over the user's id and the code, so a stolen table cannot be attacked as one pool of
//! every user's codes; a code is shown once.

use crate::crypto::token_hash;
use crate::error::InternalError;
use crate::ports::Rng;

/// Codes per set.
pub const COUNT: usize = 10;
/// Characters per code, not counting the dashes between groups.
const LEN: usize = 16;
const GROUP: usize = 4;
/// Crockford's base32 alphabet, lower case: no `i`, `l`, `o`, `u`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One code as shown to the user (`abcd-efgh-jkmn-pqrs`). A code is a second factor: its
/// `Debug` hides it, so it cannot reach a log by accident; [`RecoveryCode::expose`] says where it
/// is read on purpose (the page that shows it once, the hash that is stored).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

/// A fresh set of codes.
pub fn generate(rng: &dyn Rng) -> Result<Vec<RecoveryCode>, InternalError> {
    let mut codes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        // 16 characters of 5 bits: 80 bits from 10 random bytes.
        let mut bytes = [0u8; LEN * 5 / 8];
        rng.fill(&mut bytes)?;
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let mut code = String::with_capacity(LEN + LEN / GROUP);
        for i in 0..LEN {
            if i > 0 && i % GROUP == 0 {
                code.push('-');
            }
            let shift = 5 * (LEN - 1 - i);
            code.push(char::from(ALPHABET[((bits >> shift) & 31) as usize]));
        }
        codes.push(RecoveryCode(code));
    }
    Ok(codes)
}

/// The canonical form of what the user typed: dashes and spaces dropped, lower case, and the
/// characters Crockford's base32 reads as others mapped to them (`o` → `0`, `i`/`l` → `1`).
/// `None` unless exactly sixteen alphabet characters remain.
pub fn normalize(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored form of `user_id`'s code (shown or typed): the hash of the user id and the code's
/// canonical form. `None` for what cannot be a code.
pub fn hash(user_id: &str, code: &str) -> Option<String> {
    normalize(code).map(|c| token_hash(&format!("{}:{user_id}:{c}", user_id.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    #[test]
    fn a_set_is_ten_distinct_codes_of_sixteen_alphabet_characters_in_groups_of_four() {
        let codes = generate(&SeededRng::new(3)).unwrap();
        assert_eq!(codes.len(), COUNT);
        for c in codes.iter().map(RecoveryCode::expose) {
            assert_eq!(c.len(), 19, "{c}");
            assert_eq!(c.split('-').map(str::len).collect::<Vec<_>>(), [4, 4, 4, 4], "{c}");
            assert!(normalize(c).is_some(), "{c}");
        }
        assert_eq!(format!("{:?}", codes[0]), "RecoveryCode(…)", "never printed");
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), COUNT);
        // Another seed, other codes: they come from the random source, not a counter.
        assert_ne!(generate(&SeededRng::new(4)).unwrap(), codes);
    }

    #[test]
    fn every_bit_of_the_random_source_reaches_the_code() {
        // All-zero bytes give all-`0` codes; all-one bytes all-`z`: no bit is dropped or stuck.
        struct Fixed(u8);
        impl Rng for Fixed {
            fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
                buf.fill(self.0);
                Ok(())
            }
        }
        assert_eq!(generate(&Fixed(0)).unwrap()[0].expose(), "0000-0000-0000-0000");
        assert_eq!(generate(&Fixed(0xff)).unwrap()[0].expose(), "zzzz-zzzz-zzzz-zzzz");
        // 0x84 repeated: 40 bits repeat twice, so the code is two equal halves, big-endian.
        assert_eq!(generate(&Fixed(0x84)).unwrap()[0].expose(), "gj28-9144-gj28-9144");
        // Each code takes exactly ten bytes, in order: bytes 1..=10 make the first code.
        struct Counting(std::cell::Cell<u8>);
        impl Rng for Counting {
            fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
                for b in buf {
                    self.0.set(self.0.get() + 1);
                    *b = self.0.get();
                }
                Ok(())
            }
        }
        assert_eq!(
            generate(&Counting(Default::default())).unwrap()[0].expose(),
            "0410-6105-0r3g-g28a"
        );
    }

    #[test]
    fn what_the_user_types_is_read_leniently_and_hashed_in_one_form() {
        let code = "ab0d-ef1h-jkmn-pqrs";
        let h = hash("usr_a", code).unwrap();
        for typed in [
            "AB0D-EF1H-JKMN-PQRS",
            "abod ef1h jkmn pqrs",
            "ab0def1hjkmnpqrs",
            "ab0d-efih-jkmn-pqrs",
            "ab0d-eflh-jkmn-pqrs",
        ] {
            assert_eq!(hash("usr_a", typed).as_deref(), Some(h.as_str()), "{typed}");
        }
        for bad in [
            "",
            "ab0d-ef1h-jkmn-pqr",
            "ab0d-ef1h-jkmn-pqrst",
            "ab0d-ef1h-jkmn-pqru",
            "ab0d-ef1h-jkmn-pqr!",
        ] {
            assert_eq!(hash("usr_a", bad), None, "{bad}");
        }
        assert_eq!(normalize(&"-".repeat(65)), None);
        // What is read is bounded before anything is filtered: 64 bytes are, 65 are not.
        assert!(normalize(&format!("{code}{}", " ".repeat(64 - code.len()))).is_some());
        assert_eq!(normalize(&format!("{code}{}", " ".repeat(65 - code.len()))), None);
        assert_ne!(hash("usr_a", "ab0d-ef1h-jkmn-pqrt"), Some(h.clone()));
        // The same code of another user is another hash.
        assert_ne!(hash("usr_b", code), Some(h));
    }
}
