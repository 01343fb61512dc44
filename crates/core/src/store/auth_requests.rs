//! Sign-in flows in progress (`auth_requests`: the table predates flows and kept its name). A
//! row holds one `crate::flow::Flow` as JSON, bound to the client IP that started it.

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

#[derive(Deserialize)]
struct PendingRow {
    client_id: String,
    params: String,
}

/// Saves a sign-in flow (`crate::flow::Flow`) while the user goes through its stages. The client IP
/// `ip_key` keeps at most `limits::PENDING_PER_IP` of them: its oldest go first. (Expired ones
/// are deleted by the retention job.)
pub async fn save(
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

/// The flow `id` as `(client_id, params_json)`, if it has not expired.
pub async fn load(db: &dyn Db, id: &str, now: i64) -> Result<Option<(String, String)>, InternalError> {
    let row: Option<PendingRow> = first(
        db.query(
            "SELECT client_id, params FROM auth_requests WHERE id = ?1 AND expires_at > ?2",
            &params![id, now],
        )
        .await?,
    )?;
    Ok(row.map(|r| (r.client_id, r.params)))
}

pub fn delete_statement(id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM auth_requests WHERE id = ?1", params_vec![id])
}

pub async fn delete(db: &dyn Db, id: &str) -> Result<(), InternalError> {
    let (sql, params) = delete_statement(id);
    db.execute(sql, &params).await?;
    Ok(())
}

/// Saves the flow `id`'s new state (who signed in, what they passed, what they allowed), and
/// the user it identified.
pub fn update_statement(id: &str, user_id: Option<&str>, params_json: &str) -> (&'static str, Vec<Value>) {
    (
        "UPDATE auth_requests SET params = ?2, user_id = ?3 WHERE id = ?1",
        params_vec![id, params_json, user_id],
    )
}

/// Ends every flow in progress for `user_id` but `keep` (a flow id, or empty): what they passed
/// was checked against credentials or sessions that are being changed or ended.
pub fn delete_of_user_statement(user_id: &str, keep: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM auth_requests WHERE user_id = ?1 AND id <> ?2",
        params_vec![user_id, keep],
    )
}
