//! The event log: logins, failures, token reuse, admin changes.

use crate::crypto::random_id;
use crate::db::Value;
use crate::error::InternalError;
use crate::ports::{Db, Rng};
use crate::{params, params_vec};

pub struct Event<'a> {
    pub kind: &'a str,
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: serde_json::Value,
}

pub async fn record(db: &dyn Db, rng: &dyn Rng, now: i64, e: Event<'_>) -> Result<(), InternalError> {
    let (sql, params) = record_statement(rng, now, e)?;
    db.execute(sql, &params).await?;
    Ok(())
}

/// The statement that records `e`, to run in one batch with the change it describes (an audit
/// entry must not be lost, nor exist without its change).
pub fn record_statement(rng: &dyn Rng, now: i64, e: Event<'_>) -> Result<(&'static str, Vec<Value>), InternalError> {
    Ok((
        "INSERT INTO events (id, kind, user_id, client_id, ip, detail, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params_vec![
            random_id(rng, "evt_")?,
            e.kind,
            e.user_id,
            e.client_id,
            e.ip,
            e.detail.to_string(),
            now
        ],
    ))
}

pub async fn count(db: &dyn Db, kind: &str) -> Result<i64, InternalError> {
    let rows = db
        .query("SELECT COUNT(*) AS n FROM events WHERE kind = ?1", &params![kind])
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.get("n"))
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as i64)
}
