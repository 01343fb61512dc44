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
    pub fn seal_context(user_id: &str, device_id: &str) -> String {
        format!("totp:{user_id}:{device_id}")
    }
}

const COLUMNS: &str = "id, user_id, name, secret_sealed, confirmed_at, last_step, last_used_at, created_at";

/// A device waiting for its first code.
pub fn insert_statement(d: &TotpDevice) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO totp_devices (id, user_id, name, secret_sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params_vec![&d.id, &d.user_id, &d.name, &d.secret_sealed, d.created_at],
    )
}

/// The user's devices, confirmed or not, oldest first.
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

/// Records `step` as accepted, but only if it is newer than the last accepted one: the statement
/// is the replay check's compare-and-set, so of two requests presenting one code only one
/// changes the row. The first accepted code also confirms an enrollment.
pub fn accept_step_statement(user_id: &str, id: &str, step: i64, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE totp_devices SET last_step = ?3, last_used_at = ?4, confirmed_at = COALESCE(confirmed_at, ?4) \
         WHERE id = ?1 AND user_id = ?2 AND (last_step IS NULL OR last_step < ?3)",
        params_vec![id, user_id, step, now],
    )
}

/// Whether [`accept_step_statement`] run alone took the step.
pub async fn accept_step(db: &dyn Db, user_id: &str, id: &str, step: i64, now: i64) -> Result<bool, InternalError> {
    let (sql, params) = accept_step_statement(user_id, id, step, now);
    Ok(db.execute(sql, &params).await? == 1)
}

pub fn delete_statement(user_id: &str, id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM totp_devices WHERE id = ?1 AND user_id = ?2",
        params_vec![id, user_id],
    )
}

/// Enrollments started before `older_than` and never confirmed (abandoned QR codes), for the
/// retention job.
pub fn delete_unconfirmed_statement(older_than: i64) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM totp_devices WHERE confirmed_at IS NULL AND created_at < ?1",
        params_vec![older_than],
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
}

pub async fn second_factors(db: &dyn Db, user_id: &str) -> Result<SecondFactors, InternalError> {
    let row: Option<SecondFactors> = first(
        db.query(
            "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_id = ?1 AND confirmed_at IS NOT NULL) AS totp_devices, \
             (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL) AS recovery_codes",
            &params![user_id],
        )
        .await?,
    )?;
    row.ok_or_else(|| InternalError::new("second factor counts: no row"))
}
