//! The event log: logins, failures, token reuse, admin changes.

use crate::crypto::random_id;
use crate::db::{Statement, Value};
use crate::error::InternalError;
use crate::params_vec;
use crate::ports::{Db, Rng};
use crate::types::event_kind::EventKind;

/// The one statement that records an event; `events::Capturing` recognises it (and its parameter
/// order) to notify about what a request recorded.
pub const INSERT: &str =
    "INSERT INTO events (id, kind, user_id, client_id, ip, detail, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// How a batch undoes its own audit event when the change it records did not apply (a
/// conditional insert that inserted nothing): `DELETE FROM events WHERE id = ?1 AND <the change
/// is absent>`, the batch's last statement. `events::capture` forgets an event so deleted, so no
/// notification describes a change that did not happen.
pub const UNDO_PREFIX: &str = "DELETE FROM events WHERE id = ?1 AND ";

/// The id of the event a [`record_statement`] inserts (its first parameter), for the undo.
pub fn recorded_id(recorded: &Statement) -> Value {
    recorded.1.first().cloned().unwrap_or(Value::Null)
}

pub struct Event<'a> {
    pub kind: EventKind,
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// Where the request came from (`request.cf`): its country and network go in the detail
    /// (sign-in events add the coordinates themselves, for the GeoIP history).
    pub location: Option<&'a crate::http::Location>,
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
    let mut detail = e.detail;
    if let (Some(l), Some(d)) = (e.location, detail.as_object_mut()) {
        if let Some(c) = &l.country {
            d.entry("country").or_insert_with(|| serde_json::json!(c));
        }
        if let Some(a) = l.asn {
            d.entry("asn").or_insert_with(|| serde_json::json!(a));
        }
    }
    Ok((
        INSERT,
        params_vec![
            random_id(rng, "evt_")?,
            e.kind.as_str(),
            e.user_id,
            e.client_id,
            e.ip,
            detail.to_string(),
            now
        ],
    ))
}

/// The coordinates of the user's last `limit` sign-ins that recorded them, newest first (the
/// GeoIP policy's history).
pub async fn recent_sign_in_locations(
    db: &dyn Db,
    user_id: &str,
    limit: usize,
) -> Result<Vec<crate::policy::geoip::PastSignIn>, InternalError> {
    let rows = db
        .query(
            "SELECT created_at, json_extract(detail, '$.lat') AS lat, json_extract(detail, '$.lon') AS lon \
             FROM events WHERE user_id = ?1 AND kind = 'login_succeeded' \
             AND json_extract(detail, '$.lat') IS NOT NULL AND json_extract(detail, '$.lon') IS NOT NULL \
             ORDER BY created_at DESC, rowid DESC LIMIT ?2",
            &crate::params![user_id, limit as i64],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(crate::policy::geoip::PastSignIn {
                at: r.get("created_at")?.as_f64()? as i64,
                latitude: r.get("lat")?.as_f64()?,
                longitude: r.get("lon")?.as_f64()?,
            })
        })
        .collect())
}
