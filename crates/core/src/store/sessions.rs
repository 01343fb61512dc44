//! SSO sessions and pending authorization requests.

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

/// Ends every session of a user and revokes everything issued to them (password reset,
/// disable): a stolen refresh token must not outlive the reset. Run in the batch that makes the
/// change, so the change never lands without them.
pub fn end_all_for_user_statements(user_id: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
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

#[derive(Deserialize)]
struct PendingRow {
    client_id: String,
    params: String,
}

/// Saves a validated authorization request while the user logs in or consents. The client IP
/// `ip_key` keeps at most `limits::PENDING_PER_IP` of them: its oldest go first. (Expired ones
/// are deleted by the retention job.)
pub async fn save_request(
    db: &dyn Db,
    id: &str,
    client_id: &str,
    ip_key: &str,
    params_json: &str,
    now: i64,
    ttl: i64,
) -> Result<(), InternalError> {
    db.batch(&[
        (
            "DELETE FROM auth_requests WHERE ip_key = ?1 AND id NOT IN \
             (SELECT id FROM auth_requests WHERE ip_key = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
            params_vec![ip_key, crate::limits::PENDING_PER_IP - 1],
        ),
        (
            "INSERT INTO auth_requests (id, client_id, ip_key, params, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params_vec![id, client_id, ip_key, params_json, now, now + ttl],
        ),
    ])
    .await?;
    Ok(())
}

/// The pending request `id` as `(client_id, params_json)`, if it has not expired.
pub async fn load_request(db: &dyn Db, id: &str, now: i64) -> Result<Option<(String, String)>, InternalError> {
    let row: Option<PendingRow> = first(
        db.query(
            "SELECT client_id, params FROM auth_requests WHERE id = ?1 AND expires_at > ?2",
            &params![id, now],
        )
        .await?,
    )?;
    Ok(row.map(|r| (r.client_id, r.params)))
}

pub fn delete_request_statement(id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM auth_requests WHERE id = ?1", params_vec![id])
}

pub async fn delete_request(db: &dyn Db, id: &str) -> Result<(), InternalError> {
    let (sql, params) = delete_request_statement(id);
    db.execute(sql, &params).await?;
    Ok(())
}

/// Saves the pending request `id`'s new state (who logged in, who consented).
pub fn update_request_statement(id: &str, params_json: &str) -> (&'static str, Vec<Value>) {
    (
        "UPDATE auth_requests SET params = ?2 WHERE id = ?1",
        params_vec![id, params_json],
    )
}
