//! A user's TOTP devices (`totp_devices`): the sealed secret, whether enrollment was confirmed
//! with a first code, and the last accepted time step that makes each code single-use.

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// Devices one user may hold; enough for a phone, a spare and a password manager, bounded so a
/// session cannot fill the table.
pub const MAX_PER_USER: i64 = 10;
/// Characters in a device's name (the enrollment form checks it).
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, Deserialize)]
pub struct TotpDevice {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `factors::sealed` output, opened with the context [`TotpDevice::seal_context`].
    pub secret_sealed: String,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub confirmed_at: Option<i64>,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub last_step: Option<i64>,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub last_used_at: Option<i64>,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
}

impl TotpDevice {
    /// The associated data its secret is sealed under: the sealed value opens only in this row.
    /// The user id's length goes first, so no two pairs of ids give the same context.
    pub fn seal_context(user_id: &str, device_id: &str) -> String {
        format!("totp:{}:{user_id}:{device_id}", user_id.len())
    }
}

const COLUMNS: &str = "id, user_id, name, secret_sealed, confirmed_at, last_step, last_used_at, created_at";

/// A device waiting for its first code, written only while the user holds fewer than
/// [`MAX_PER_USER`] devices (pending ones included): the count is checked in the statement, so
/// concurrent enrollments cannot pass it. Changes no row at the limit.
pub fn insert_statement(d: &TotpDevice) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO totp_devices (id, user_id, name, secret_sealed, created_at) SELECT ?1, ?2, ?3, ?4, ?5 \
         WHERE (SELECT COUNT(*) FROM totp_devices WHERE user_id = ?2) < ?6",
        params_vec![&d.id, &d.user_id, &d.name, &d.secret_sealed, d.created_at, MAX_PER_USER],
    )
}

/// The devices the user can sign in with (confirmed), oldest first.
pub async fn confirmed_of_user(db: &dyn Db, user_id: &str) -> Result<Vec<TotpDevice>, InternalError> {
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM totp_devices WHERE user_id = ?1 AND confirmed_at IS NOT NULL ORDER BY created_at, id"
        ),
        &params![user_id],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}

/// The user's devices, confirmed or not, oldest first (the account page).
pub async fn of_user(db: &dyn Db, user_id: &str) -> Result<Vec<TotpDevice>, InternalError> {
    db.query(
        &format!("SELECT {COLUMNS} FROM totp_devices WHERE user_id = ?1 ORDER BY created_at, id"),
        &params![user_id],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}

/// One device of this user (`None` for another user's device id).
pub async fn get(db: &dyn Db, user_id: &str, id: &str) -> Result<Option<TotpDevice>, InternalError> {
    first(
        db.query(
            &format!("SELECT {COLUMNS} FROM totp_devices WHERE id = ?1 AND user_id = ?2"),
            &params![id, user_id],
        )
        .await?,
    )
}

/// Records `step` as accepted on a confirmed device, but only if it is newer than the last
/// accepted one: the statement is the replay check's compare-and-set, so of two requests
/// presenting one code only one changes the row. A pending enrollment is no factor yet.
pub fn accept_step_statement(user_id: &str, id: &str, step: i64, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE totp_devices SET last_step = ?3, last_used_at = ?4 \
         WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < ?3)",
        params_vec![id, user_id, step, now],
    )
}

/// Whether [`accept_step_statement`] run alone took the step.
pub async fn accept_step(db: &dyn Db, user_id: &str, id: &str, step: i64, now: i64) -> Result<bool, InternalError> {
    let (sql, params) = accept_step_statement(user_id, id, step, now);
    Ok(db.execute(sql, &params).await? == 1)
}

/// Confirms a pending enrollment with its first code's step, with the same compare-and-set.
pub fn confirm_statement(user_id: &str, id: &str, step: i64, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE totp_devices SET confirmed_at = ?4, last_step = ?3, last_used_at = ?4 \
         WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NULL AND (last_step IS NULL OR last_step < ?3)",
        params_vec![id, user_id, step, now],
    )
}

/// Names a device (at confirmation: the name is typed with the first code).
pub fn rename_statement(user_id: &str, id: &str, name: &str) -> (&'static str, Vec<Value>) {
    (
        "UPDATE totp_devices SET name = ?3 WHERE id = ?1 AND user_id = ?2",
        params_vec![id, user_id, name],
    )
}

/// The user's unconfirmed enrollments: a new one replaces them, so abandoned QR codes never
/// fill the user's [`MAX_PER_USER`].
pub fn delete_unconfirmed_of_user_statement(user_id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM totp_devices WHERE user_id = ?1 AND confirmed_at IS NULL",
        params_vec![user_id],
    )
}

/// Every device of the user (an administrator's reset, the user turning second factors off).
pub fn delete_all_of_user_statement(user_id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM totp_devices WHERE user_id = ?1", params_vec![user_id])
}

pub fn delete_statement(user_id: &str, id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM totp_devices WHERE id = ?1 AND user_id = ?2",
        params_vec![id, user_id],
    )
}

/// What second factors a user can sign in with, in one query: confirmed TOTP devices and unused
/// recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SecondFactors {
    #[serde(deserialize_with = "super::int")]
    pub totp_devices: i64,
    #[serde(deserialize_with = "super::int")]
    pub recovery_codes: i64,
    /// Recovery codes ever issued and not withdrawn, spent ones included: the user set up a
    /// second factor (and did not turn it off, nor was reset by an administrator).
    #[serde(deserialize_with = "super::int")]
    pub recovery_codes_issued: i64,
    /// Registered passkeys (`passkeys`): a second factor too.
    #[serde(deserialize_with = "super::int")]
    pub passkeys: i64,
}

pub async fn second_factors(db: &dyn Db, user_id: &str) -> Result<SecondFactors, InternalError> {
    let row: Option<SecondFactors> = first(
        db.query(
            "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_id = ?1 AND confirmed_at IS NOT NULL) AS totp_devices, \
             (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL) AS recovery_codes, \
             (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1) AS recovery_codes_issued, \
             (SELECT COUNT(*) FROM passkeys WHERE user_id = ?1) AS passkeys",
            &params![user_id],
        )
        .await?,
    )?;
    row.ok_or_else(|| InternalError::new("second factor counts: no row"))
}
