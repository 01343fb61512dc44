//! `password_history`: the hashes of a user's earlier passwords (`policy::password::history`).

use crate::db::Value;
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// The user's earlier password hashes, newest first, at most `limit`.
pub async fn earlier(db: &dyn Db, user_id: &str, limit: usize) -> Result<Vec<String>, InternalError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            "SELECT password_hash FROM password_history WHERE user_id = ?1 \
             ORDER BY replaced_at DESC, rowid DESC LIMIT ?2",
            &params![user_id, limit as i64],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get("password_hash").and_then(|v| v.as_str()).map(str::to_owned))
        .collect())
}

/// Run with a password change: keeps the replaced hash (when `keep > 0`) and deletes all but the
/// newest `keep`, so the table holds at most `keep` rows a user and turning the setting down (or
/// off) forgets the rest at the next change.
pub fn remember_statements(
    user_id: &str,
    replaced_hash: &str,
    now: i64,
    keep: usize,
) -> Vec<(&'static str, Vec<Value>)> {
    let mut statements = Vec::new();
    if keep > 0 {
        statements.push((
            "INSERT INTO password_history (user_id, password_hash, replaced_at) VALUES (?1, ?2, ?3)",
            params_vec![user_id, replaced_hash, now],
        ));
    }
    statements.push((
        "DELETE FROM password_history WHERE user_id = ?1 AND rowid NOT IN \
         (SELECT rowid FROM password_history WHERE user_id = ?1 ORDER BY replaced_at DESC, rowid DESC LIMIT ?2)",
        params_vec![user_id, keep as i64],
    ));
    statements
}
