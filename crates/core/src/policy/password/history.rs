//! Password uniqueness (opt-in: `GATEHOUSE_PASSWORD_HISTORY=N`, 0 = off, the default): a new
//! password may not be any of the user's last N, the current one included. The earlier ones are
//! kept as the Argon2id hashes they were stored as (`store::password_history`), never in a
//! weaker form, and each check costs one verification per kept hash, so N is at most 10.

use crate::error::InternalError;
use crate::password;

pub const SETTING: &str = "GATEHOUSE_PASSWORD_HISTORY";
pub const MAX_REMEMBERED: usize = 10;

/// `0..=MAX_REMEMBERED`; 0 turns the check off.
pub fn remembered(value: Option<String>) -> Result<usize, InternalError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n <= MAX_REMEMBERED).ok_or_else(|| {
            InternalError::new(format!(
                "{SETTING} must be a whole number from 0 (off) to {MAX_REMEMBERED}"
            ))
        }),
    }
}

/// How many earlier hashes to keep beside the current one to remember `n` passwords.
pub fn earlier_to_keep(n: usize) -> usize {
    n.saturating_sub(1)
}

/// Whether `new` is the current password or one of the earlier ones (`earlier`, newest first;
/// only the first `earlier_to_keep(n)` count). Off (`n == 0`): never.
pub fn reused(n: usize, new: &str, current_hash: &str, earlier: &[String]) -> Result<bool, InternalError> {
    if n == 0 {
        return Ok(false);
    }
    let remembered = std::iter::once(current_hash).chain(earlier.iter().take(earlier_to_keep(n)).map(String::as_str));
    for hash in remembered {
        // A hash that does not parse (a user created before hashes were kept) matches nothing.
        if password::verify(new, hash).unwrap_or(false) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    fn h(p: &str, seed: u64) -> String {
        password::hash_with(p, &SeededRng::new(seed), 64, 1).unwrap()
    }

    #[test]
    fn the_last_n_passwords_current_included_are_refused_and_older_ones_are_not() {
        let current = h("third passphrase", 1);
        let earlier = vec![h("second passphrase", 2), h("first passphrase", 3)];
        assert!(reused(3, "third passphrase", &current, &earlier).unwrap());
        assert!(reused(3, "second passphrase", &current, &earlier).unwrap());
        assert!(reused(3, "first passphrase", &current, &earlier).unwrap());
        assert!(!reused(3, "a fourth passphrase", &current, &earlier).unwrap());
        // Remembering two: the oldest is free again.
        assert!(reused(2, "second passphrase", &current, &earlier).unwrap());
        assert!(!reused(2, "first passphrase", &current, &earlier).unwrap());
        // One: only the current password.
        assert!(reused(1, "third passphrase", &current, &earlier).unwrap());
        assert!(!reused(1, "second passphrase", &current, &earlier).unwrap());
        // Off.
        assert!(!reused(0, "third passphrase", &current, &earlier).unwrap());
    }

    #[test]
    fn an_unreadable_hash_matches_nothing() {
        assert!(!reused(2, "anything at all", "not a phc string", &["$argon2id$garbage".into()]).unwrap());
    }

    #[test]
    fn the_setting_is_bounded() {
        assert_eq!(remembered(None).unwrap(), 0);
        assert_eq!(remembered(Some("5".into())).unwrap(), 5);
        assert_eq!(remembered(Some("10".into())).unwrap(), 10);
        assert!(remembered(Some("11".into())).is_err());
        assert!(remembered(Some("-1".into())).is_err());
        assert_eq!(earlier_to_keep(0), 0);
        assert_eq!(earlier_to_keep(1), 0);
        assert_eq!(earlier_to_keep(5), 4);
    }
}
