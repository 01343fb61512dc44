//! Deliveries that could not be made (`notification_dead_letters`), for the admin API to list.
//! Self-bounded: each insert deletes all but the newest [`KEEP`] in the same batch.

use serde::{Deserialize, Serialize};

use crate::db::Value;
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// How many dead letters are kept.
pub const KEEP: i64 = 1000;
/// The longest reason and message stored (bytes, cut on a character boundary).
pub const MAX_REASON: usize = 300;
pub const MAX_MESSAGE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub rule_id: String,
    pub event_id: String,
    pub event_kind: String,
    #[serde(deserialize_with = "super::int")]
    pub attempts: i64,
    pub reason: String,
    /// The queued message (JSON), to replay by hand.
    pub message: String,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The insert, then the trim to the newest [`KEEP`]: run both in one batch.
pub fn insert_statements(d: &DeadLetter) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "INSERT INTO notification_dead_letters (id, rule_id, event_id, event_kind, attempts, reason, message, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params_vec![
                &d.id,
                cut(&d.rule_id, 200),
                cut(&d.event_id, 200),
                cut(&d.event_kind, 100),
                d.attempts,
                cut(&d.reason, MAX_REASON),
                cut(&d.message, MAX_MESSAGE),
                d.created_at
            ],
        ),
        (
            "DELETE FROM notification_dead_letters WHERE id IN (SELECT id FROM notification_dead_letters \
             ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
            params_vec![KEEP],
        ),
    ]
}

pub async fn insert(db: &dyn Db, d: &DeadLetter) -> Result<(), InternalError> {
    db.batch(&insert_statements(d)).await.map(|_| ())
}

/// Newest first.
pub async fn page(db: &dyn Db, limit: i64, offset: i64) -> Result<Vec<DeadLetter>, InternalError> {
    db.query(
        "SELECT id, rule_id, event_id, event_kind, attempts, reason, message, created_at \
         FROM notification_dead_letters ORDER BY created_at DESC, rowid DESC LIMIT ?1 OFFSET ?2",
        &params![limit, offset],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}
