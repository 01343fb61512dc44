//! Scopes a user granted a client, so consent is asked only for what is new.

use serde::Deserialize;

use crate::db::first;
use crate::error::InternalError;
use crate::params;
use crate::ports::Db;

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

/// Records the union of what was granted before and `scopes`.
pub async fn grant(
    db: &dyn Db,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
    now: i64,
) -> Result<(), InternalError> {
    let mut all = granted(db, user_id, client_id).await?.unwrap_or_default();
    for s in scopes {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all.sort();
    db.execute(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        &params![user_id, client_id, all.join(" "), now],
    )
    .await?;
    Ok(())
}
