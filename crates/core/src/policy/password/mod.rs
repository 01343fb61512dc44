//! The password policy: what a new password must be (`rules`, `pwned`, `history`) and how long
//! one lasts (`expiry`). `check_new` is the one place a new password is judged, whoever sets it
//! (the admin API, the account page, a reset, an expired password); `new_password_statements` is
//! the one way it is stored.
//!
//! The checks run cheapest first and stop at the first refusal: the rules (no I/O), then the
//! history (one Argon2id verification per remembered password), then the zxcvbn score (our own
//! strength Worker, through a service binding), then Have I Been Pwned (one HTTPS request): a
//! password that fails a check of ours never leaves, even as a hash prefix.

pub mod expiry;
pub mod history;
pub mod pwned;
pub mod rules;
pub mod strength;

use crate::db::Statement;
use crate::error::{Error, InternalError};
use crate::store::{password_history, users};
use crate::Ctx;
use pwned::{PwnedSettings, Verdict};
use rules::{Broken, PasswordRules};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub rules: PasswordRules,
    pub pwned: PwnedSettings,
    /// `GATEHOUSE_PASSWORD_MAX_AGE_DAYS`; 0: passwords do not expire.
    pub max_age_days: i64,
    /// `GATEHOUSE_PASSWORD_HISTORY`: how many passwords (the current one included) a new one
    /// may not repeat; 0: off.
    pub history: usize,
    /// `GATEHOUSE_PASSWORD_MIN_STRENGTH`: the lowest zxcvbn score accepted; 0: off.
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            rules: PasswordRules::default(),
            pwned: PwnedSettings::default(),
            max_age_days: 0,
            history: 0,
            min_strength: strength::DEFAULT_MIN_SCORE,
        }
    }
}

impl PasswordPolicy {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PasswordPolicy, InternalError> {
        Ok(PasswordPolicy {
            rules: PasswordRules::from_lookup(get)?,
            pwned: PwnedSettings::from_lookup(get)?,
            max_age_days: expiry::max_age_days(get(expiry::SETTING))?,
            history: history::remembered(get(history::SETTING))?,
            min_strength: strength::min_score(get(strength::SETTING))?,
        })
    }
}

/// Why a new password was refused: the rule, never the password.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Rule(Broken),
    /// One of the last N passwords.
    Reused(usize),
    /// zxcvbn scored it below the minimum; its feedback (fixed texts, never the password).
    Guessable(String),
    /// In a known data breach.
    Breached,
    /// The breach or strength check could not be made (and unchecked passwords are refused).
    Unchecked,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Rule(broken) => broken.message(),
            Refusal::Guessable(feedback) => format!("This password is too easy to guess. {feedback}"),
            Refusal::Reused(1) => "The new password must differ from the current one.".to_owned(),
            Refusal::Reused(n) => format!("The password must differ from your last {n} passwords."),
            Refusal::Breached => "This password has appeared in a data breach, so attackers try it first. \
                                  Choose a different one."
                .to_owned(),
            Refusal::Unchecked => {
                "The password could not be checked just now. Please try again in a few minutes.".to_owned()
            }
        }
    }
}

/// Whose password is being set.
pub struct Owner<'a> {
    /// `None` for an account being created (no current password, no history).
    pub user: Option<&'a users::User>,
    /// The account's own words (username, email, name) that make a password guessable.
    pub words: Vec<String>,
    /// A second factor is enrolled: the shorter minimum applies.
    pub has_second_factor: bool,
}

/// Judges a new password: `Ok(Err(refusal))` when a rule refuses it; `Err` only when the
/// service itself failed (a database error).
pub async fn check_new(ctx: &Ctx<'_>, password: &str, owner: Owner<'_>) -> Result<Result<(), Refusal>, Error> {
    let policy = &ctx.settings.password;
    if let Err(broken) = policy.rules.check(password, owner.has_second_factor) {
        return Ok(Err(Refusal::Rule(broken)));
    }
    // The current password is never its own replacement (else an expired password is "changed"
    // to itself); the history setting adds the earlier ones.
    if let Some(user) = owner.user {
        let remembered = policy.history.max(1);
        let keep = history::earlier_to_keep(remembered);
        let earlier = password_history::earlier(ctx.db, &user.id, keep).await?;
        if history::reused(remembered, password, &user.password_hash, &earlier)? {
            return Ok(Err(Refusal::Reused(remembered)));
        }
    }
    match strength::check(ctx, password, &owner.words).await {
        Ok(None) => {}
        Ok(Some(weak)) => return Ok(Err(Refusal::Guessable(weak.feedback()))),
        Err(()) => return Ok(Err(Refusal::Unchecked)),
    }
    Ok(match pwned::check(ctx, password).await {
        Verdict::Clear => Ok(()),
        Verdict::Breached(_) => Err(Refusal::Breached),
        Verdict::Unchecked => Err(Refusal::Unchecked),
    })
}

/// The statements that store `new_hash` as `user`'s password set at `now`: the hash and its time
/// (for expiry), and [`history_statements`].
pub fn new_password_statements(ctx: &Ctx<'_>, user: &users::User, new_hash: &str, now: i64) -> Vec<Statement> {
    let mut statements = vec![users::set_new_password_statement(&user.id, new_hash, now)];
    statements.extend(history_statements(ctx, user, now));
    statements
}

/// Run with any change of `user`'s password: the replaced hash into the history (or the history
/// trimmed, when off).
pub fn history_statements(ctx: &Ctx<'_>, user: &users::User, now: i64) -> Vec<Statement> {
    let keep = history::earlier_to_keep(ctx.settings.password.history);
    password_history::remember_statements(&user.id, &user.password_hash, now, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_each_of_its_settings() {
        let settings = [
            ("GATEHOUSE_PASSWORD_MIN_LENGTH", "20"),
            ("GATEHOUSE_HIBP_URL", ""),
            (expiry::SETTING, "90"),
            (history::SETTING, "5"),
            (strength::SETTING, "4"),
        ];
        let get = |name: &str| settings.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        let p = PasswordPolicy::from_lookup(&get).unwrap();
        assert_eq!(p.rules.min_length, 20);
        assert_eq!(p.pwned.url, None);
        assert_eq!(p.max_age_days, 90);
        assert_eq!(p.history, 5);
        assert_eq!(p.min_strength, 4);
        assert_eq!(
            PasswordPolicy::from_lookup(&|_| None).unwrap(),
            PasswordPolicy::default()
        );
        let bad = |name: &str| (name == history::SETTING).then(|| "lots".to_owned());
        assert!(PasswordPolicy::from_lookup(&bad).is_err());
    }
}
