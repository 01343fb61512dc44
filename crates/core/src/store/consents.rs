//! Scopes a user granted a client, so consent is asked only for what is new.

use serde::Deserialize;

use crate::db::first;
use crate::db::Value;
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

#[derive(Deserialize)]
struct Row {
    scope: String,
}

/// The scopes `user_id` granted `client_id`; `None` if the user never consented to this client
/// at all (an empty list means they allowed the client itself, with no scope).
pub async fn granted(db: &dyn Db, user_id: &str, client_id: &str) -> Result<Option<Vec<String>>, InternalError> {
    let row: Option<Row> = first(
        db.query(
            "SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2",
            &params![user_id, client_id],
        )
        .await?,
    )?;
    Ok(row.map(|r| r.scope.split_ascii_whitespace().map(str::to_owned).collect()))
}

/// Records the union of what was granted before (`earlier`) and `scopes`.
pub fn grant_statement(
    user_id: &str,
    client_id: &str,
    earlier: Option<Vec<String>>,
    scopes: &[String],
    now: i64,
) -> (&'static str, Vec<Value>) {
    let mut all = earlier.unwrap_or_default();
    for s in scopes {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all.sort();
    (
        "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        params_vec![user_id, client_id, all.join(" "), now],
    )
}
