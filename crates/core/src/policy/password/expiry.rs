//! Password expiry (opt-in: `GATEHOUSE_PASSWORD_MAX_AGE_DAYS`, 0 = off, the default). NIST SP
//! 800-63B-4 and ASVS 5.0 advise against periodic changes (users pick predictable successors),
//! so this is for deployments whose rules demand it. A password older than the limit still signs
//! in, then the flow asks for a new one before it completes; it never locks anyone out, and a
//! passkey sign-in (no password typed) is not interrupted.

use crate::error::InternalError;

pub const SETTING: &str = "GATEHOUSE_PASSWORD_MAX_AGE_DAYS";
pub const MAX_DAYS: i64 = 3650;
const DAY: i64 = 24 * 3600;

/// `0..=MAX_DAYS`; 0 turns expiry off.
pub fn max_age_days(value: Option<String>) -> Result<i64, InternalError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|d| (0..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                InternalError::new(format!(
                    "{SETTING} must be a whole number of days from 0 (off) to {MAX_DAYS}"
                ))
            }),
    }
}

/// Whether a password set at `changed_at` must be replaced at a sign-in at `now`.
pub fn expired(max_age_days: i64, changed_at: i64, now: i64) -> bool {
    max_age_days > 0 && now >= changed_at.saturating_add(max_age_days * DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_expires_exactly_when_it_is_max_age_days_old() {
        let set = 1_700_000_000;
        assert!(!expired(90, set, set + 90 * DAY - 1));
        assert!(expired(90, set, set + 90 * DAY));
        assert!(expired(1, set, set + DAY));
        assert!(!expired(1, set, set + DAY - 1));
    }

    #[test]
    fn zero_turns_expiry_off() {
        assert!(!expired(0, 0, i64::MAX));
        assert_eq!(max_age_days(None).unwrap(), 0);
        assert_eq!(max_age_days(Some(" ".into())).unwrap(), 0);
        assert_eq!(max_age_days(Some("90".into())).unwrap(), 90);
        assert_eq!(max_age_days(Some("3650".into())).unwrap(), 3650);
        assert!(max_age_days(Some("3651".into())).is_err());
        assert!(max_age_days(Some("-1".into())).is_err());
        assert!(max_age_days(Some("ninety".into())).is_err());
    }
}
