//! The notification settings (`[vars]`): who the default rules tell, and the retry schedule.

use crate::error::InternalError;

pub const NOTIFY_USER: &str = "GATEHOUSE_NOTIFY_USER";
pub const NOTIFY_ADMIN_EMAIL: &str = "GATEHOUSE_NOTIFY_ADMIN_EMAIL";
pub const NOTIFY_RETRY_DELAYS: &str = "GATEHOUSE_NOTIFY_RETRY_DELAYS";

/// Cloudflare Queues delays a message by at most 12 hours.
const MAX_DELAY: u32 = 43_200;
const MAX_RETRIES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Mail users about their own account (lockout, a sign-in from a new country) when mail can
    /// be sent (`GATEHOUSE_NOTIFY_USER`, on by default).
    pub user_mail: bool,
    /// Where admin changes and passkey counter regressions are mailed (none by default).
    pub admin_email: Option<String>,
    /// Seconds before each retry of a failed delivery; a delivery is tried once more than there
    /// are entries, then written to the dead-letter table.
    pub retry_delays: Vec<u32>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            user_mail: true,
            admin_email: None,
            // 10 s, 1 min, 5 min, 30 min, 2 h: a receiver restarting or briefly down is reached
            // within seconds, one down for an afternoon within the last try (~2.7 h in all).
            retry_delays: vec![10, 60, 300, 1800, 7200],
        }
    }
}

impl NotifySettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<NotifySettings, InternalError> {
        let d = NotifySettings::default();
        let trimmed = |name: &str| get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        let user_mail = match trimmed(NOTIFY_USER).as_str() {
            "" => d.user_mail,
            "on" => true,
            "off" => false,
            v => {
                return Err(InternalError::new(format!(
                    "{NOTIFY_USER} must be on or off (got {v:?})"
                )))
            }
        };
        let admin_email = match trimmed(NOTIFY_ADMIN_EMAIL) {
            v if v.is_empty() => None,
            v if crate::types::email::is_valid(&v) => Some(v),
            _ => {
                return Err(InternalError::new(format!(
                    "{NOTIFY_ADMIN_EMAIL} must be one plain email address"
                )))
            }
        };
        let retry_delays = match trimmed(NOTIFY_RETRY_DELAYS) {
            v if v.is_empty() => d.retry_delays,
            v => {
                let delays: Option<Vec<u32>> = v
                    .split(',')
                    .map(|s| s.trim().parse::<u32>().ok().filter(|n| (1..=MAX_DELAY).contains(n)))
                    .collect();
                delays.filter(|d| d.len() <= MAX_RETRIES).ok_or_else(|| {
                    InternalError::new(format!(
                        "{NOTIFY_RETRY_DELAYS} must be up to {MAX_RETRIES} comma-separated seconds, each from 1 to {MAX_DELAY}"
                    ))
                })?
            }
        };
        Ok(NotifySettings {
            user_mail,
            admin_email,
            retry_delays,
        })
    }

    /// How many times a delivery is tried in all.
    pub fn max_attempts(&self) -> u32 {
        self.retry_delays.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<NotifySettings, InternalError> {
        NotifySettings::from_lookup(&|n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_mail_users_and_nobody_else_with_five_retries() {
        let s = parse(&[]).unwrap();
        assert_eq!(s, NotifySettings::default());
        assert!(s.user_mail && s.admin_email.is_none());
        assert_eq!(s.max_attempts(), 6);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        assert!(parse(&[(NOTIFY_USER, "yes")])
            .unwrap_err()
            .to_string()
            .contains(NOTIFY_USER));
        assert!(parse(&[(NOTIFY_ADMIN_EMAIL, "a@b.example, c@d.example")]).is_err());
        for bad in ["0", "10,x", "43201", "1,1,1,1,1,1,1,1,1,1,1"] {
            assert!(parse(&[(NOTIFY_RETRY_DELAYS, bad)]).is_err(), "{bad}");
        }
        let ok = parse(&[
            (NOTIFY_USER, "off"),
            (NOTIFY_ADMIN_EMAIL, "sec@example.com"),
            (NOTIFY_RETRY_DELAYS, "1, 2"),
        ])
        .unwrap();
        assert_eq!(
            (ok.user_mail, ok.admin_email.as_deref(), ok.retry_delays),
            (false, Some("sec@example.com"), vec![1, 2])
        );
    }
}
