//! SSO sessions.

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    #[serde(deserialize_with = "super::int")]
    pub auth_time: i64,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
    /// The factors the sign-in passed with their times (`flow::plan::store_passed`).
    pub factors: String,
}

pub fn insert_statement(s: &Session, now: i64) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, factors) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params_vec![&s.id_hash, &s.user_id, s.auth_time, now, s.expires_at, &s.factors],
    )
}

/// A live session: not ended, not expired, and its user still enabled.
pub async fn active(db: &dyn Db, id_hash: &str, now: i64) -> Result<Option<Session>, InternalError> {
    first(
        db.query(
            "SELECT s.id_hash, s.user_id, s.auth_time, s.expires_at, s.factors FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = ?1 AND s.ended_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0",
            &params![id_hash, now],
        )
        .await?,
    )
}

/// Ends a session server-side; tokens bound to it stop working at userinfo and introspection.
pub async fn end(db: &dyn Db, id_hash: &str, now: i64) -> Result<(), InternalError> {
    db.batch(&end_statements(id_hash, now)).await?;
    Ok(())
}

pub fn end_statements(id_hash: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "UPDATE sessions SET ended_at = ?2 WHERE id_hash = ?1 AND ended_at IS NULL",
            params_vec![id_hash, now],
        ),
        (
            "UPDATE grants SET revoked_at = ?2 WHERE session_hash = ?1 AND revoked_at IS NULL \
             AND scope NOT LIKE '%offline_access%'",
            params_vec![id_hash, now],
        ),
    ]
}

/// Ends every session of a user, revokes everything issued to them and ends their sign-in flows
/// in progress (password reset, disable): a stolen refresh token, or a flow that passed the old
/// password, must not outlive the reset. Run in the batch that makes the
/// change, so the change never lands without them.
pub fn end_all_for_user_statements(user_id: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        super::auth_requests::delete_of_user_statement(user_id, ""),
        (
            "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 AND ended_at IS NULL",
            params_vec![user_id, now],
        ),
        (
            "UPDATE grants SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params_vec![user_id, now],
        ),
        (
            "UPDATE tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params_vec![user_id, now],
        ),
    ]
}

/// Records a step-up: the session keeps its id and `auth_time`, and now lists the factors passed
/// since (`flow::plan::store_passed`). Only a live session changes.
pub fn set_factors_statement(id_hash: &str, factors: &str) -> (&'static str, Vec<Value>) {
    (
        "UPDATE sessions SET factors = ?2 WHERE id_hash = ?1 AND ended_at IS NULL",
        params_vec![id_hash, factors],
    )
}

/// The user's live sessions, newest sign-in first (the account page lists them).
pub async fn active_of_user(db: &dyn Db, user_id: &str, now: i64) -> Result<Vec<Session>, InternalError> {
    db.query(
        "SELECT id_hash, user_id, auth_time, expires_at, factors FROM sessions \
         WHERE user_id = ?1 AND ended_at IS NULL AND expires_at > ?2 ORDER BY auth_time DESC, rowid DESC LIMIT 100",
        &params![user_id, now],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}

/// Ends every session of the user but `keep`, revokes everything issued to them (offline
/// grants included), and ends their sign-in flows in progress but `keep_flow` (a flow id, or
/// empty): signing out elsewhere, or a password change, leaves a thief nothing.
pub fn end_others_statements(user_id: &str, keep: &str, keep_flow: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        super::auth_requests::delete_of_user_statement(user_id, keep_flow),
        (
            "UPDATE sessions SET ended_at = ?3 WHERE user_id = ?1 AND id_hash != ?2 AND ended_at IS NULL",
            params_vec![user_id, keep, now],
        ),
        (
            "UPDATE grants SET revoked_at = ?3 WHERE user_id = ?1 AND revoked_at IS NULL \
             AND (session_hash IS NULL OR session_hash != ?2)",
            params_vec![user_id, keep, now],
        ),
    ]
}
