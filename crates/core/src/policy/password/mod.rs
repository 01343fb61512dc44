//! The password policy: what a new password must be (`rules`, `pwned`, `history`) and how long
//! one lasts (`expiry`). `check_new` is the one place a new password is judged, whoever sets it
//! (the admin API, the account page, a reset, an expired password); `new_password_statements` is
//! the one way it is stored.
//!
//! The checks run cheapest first and stop at the first refusal: the rules (no I/O), then the
//! history (one Argon2id verification per remembered password), then Have I Been Pwned (one
//! HTTPS request): a password that fails a local rule never leaves, even as a hash prefix.

pub mod expiry;
pub mod history;
pub mod pwned;
pub mod rules;

use crate::db::Statement;
use crate::error::{Error, InternalError};
use crate::store::{password_history, users};
use crate::Ctx;
use pwned::{PwnedSettings, Verdict};
use rules::{Broken, PasswordRules};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PasswordPolicy {
    pub rules: PasswordRules,
    pub pwned: PwnedSettings,
    /// `GATEHOUSE_PASSWORD_MAX_AGE_DAYS`; 0: passwords do not expire.
    pub max_age_days: i64,
    /// `GATEHOUSE_PASSWORD_HISTORY`: how many passwords (the current one included) a new one
    /// may not repeat; 0: off.
    pub history: usize,
}

impl PasswordPolicy {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PasswordPolicy, InternalError> {
        Ok(PasswordPolicy {
            rules: PasswordRules::from_lookup(get)?,
            pwned: PwnedSettings::from_lookup(get)?,
            max_age_days: expiry::max_age_days(get(expiry::SETTING))?,
            history: history::remembered(get(history::SETTING))?,
        })
    }
}

/// Why a new password was refused: the rule, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Rule(Broken),
    /// One of the last N passwords.
    Reused(usize),
    /// In a known data breach.
    Breached,
    /// The breach check could not be made (and the deployment refuses unchecked passwords).
    Unchecked,
}

impl Refusal {
    pub fn message(self) -> String {
        match self {
            Refusal::Rule(broken) => broken.message(),
            Refusal::Reused(1) => "The new password must differ from the current one.".to_owned(),
            Refusal::Reused(n) => format!("The password must differ from your last {n} passwords."),
            Refusal::Breached => "This password has appeared in a data breach, so attackers try it first. \
                                  Choose a different one."
                .to_owned(),
            Refusal::Unchecked => "The password could not be checked against known data breaches just now. \
                                   Please try again in a few minutes."
                .to_owned(),
        }
    }
    /// The rule's name in events and API errors.
    pub fn rule(self) -> &'static str {
        match self {
            Refusal::Rule(Broken::TooShort(_)) => "min_length",
            Refusal::Rule(Broken::TooLong(_)) => "max_length",
            Refusal::Rule(Broken::Uppercase(_)) => "min_uppercase",
            Refusal::Rule(Broken::Lowercase(_)) => "min_lowercase",
            Refusal::Rule(Broken::Digits(_)) => "min_digits",
            Refusal::Rule(Broken::Symbols(_)) => "min_symbols",
            Refusal::Reused(_) => "history",
            Refusal::Breached => "breached",
            Refusal::Unchecked => "breach_check_unavailable",
        }
    }
}

/// Whose password is being set.
pub struct Owner<'a> {
    /// `None` for an account being created (no current password, no history).
    pub user: Option<&'a users::User>,
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
    if let Some(user) = owner.user.filter(|_| policy.history > 0) {
        let keep = history::earlier_to_keep(policy.history);
        let earlier = password_history::earlier(ctx.db, &user.id, keep).await?;
        if history::reused(policy.history, password, &user.password_hash, &earlier)? {
            return Ok(Err(Refusal::Reused(policy.history)));
        }
    }
    Ok(match pwned::check(ctx, password).await {
        Verdict::Clear => Ok(()),
        Verdict::Breached(_) => Err(Refusal::Breached),
        Verdict::Unchecked => Err(Refusal::Unchecked),
    })
}

/// The statements that store `new_hash` as `user`'s password set at `now`: the hash and its time
/// (for expiry), and the replaced hash into the history (or the history trimmed, when off).
pub fn new_password_statements(ctx: &Ctx<'_>, user: &users::User, new_hash: &str, now: i64) -> Vec<Statement> {
    let mut statements = vec![users::set_new_password_statement(&user.id, new_hash, now)];
    let keep = history::earlier_to_keep(ctx.settings.password.history);
    statements.extend(password_history::remember_statements(
        &user.id,
        &user.password_hash,
        now,
        keep,
    ));
    statements
}
