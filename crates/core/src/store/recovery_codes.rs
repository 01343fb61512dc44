//! A user's recovery codes (`recovery_codes`), stored as hashes (`factors::recovery_codes`).

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// The statements that replace the user's set with `hashes`: the old set stops working in the
/// same batch that writes the new one.
pub fn replace_statements(user_id: &str, hashes: &[String], now: i64) -> Vec<(&'static str, Vec<Value>)> {
    let mut out = vec![("DELETE FROM recovery_codes WHERE user_id = ?1", params_vec![user_id])];
    for h in hashes {
        out.push((
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?1, ?2, ?3)",
            params_vec![user_id, h, now],
        ));
    }
    out
}

/// Spends the code with this hash; `false` if the user has no such unused code. One UPDATE, so
/// two requests racing with one code cannot both spend it.
pub async fn spend(db: &dyn Db, user_id: &str, code_hash: &str, now: i64) -> Result<bool, InternalError> {
    let changed = db
        .execute(
            "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
            &params![user_id, code_hash, now],
        )
        .await?;
    Ok(changed == 1)
}

#[derive(Deserialize)]
struct Count {
    #[serde(deserialize_with = "super::int")]
    n: i64,
}

/// How many unused codes the user has left.
pub async fn remaining(db: &dyn Db, user_id: &str) -> Result<i64, InternalError> {
    let row: Option<Count> = first(
        db.query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            &params![user_id],
        )
        .await?,
    )?;
    Ok(row.map_or(0, |r| r.n))
}
