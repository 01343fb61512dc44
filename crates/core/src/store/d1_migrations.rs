//! wrangler's bookkeeping table of applied migrations (`d1_migrations`), read by `/healthz`.

use crate::error::InternalError;
use crate::ports::Db;

/// Whether the database answers a query: the migrations table, or (in the native tests, which
/// run the schema without wrangler's bookkeeping) any query at all.
pub async fn reachable(db: &dyn Db) -> Result<(), InternalError> {
    match db.query("SELECT COUNT(*) AS n FROM d1_migrations", &[]).await {
        Ok(_) => Ok(()),
        Err(_) => db.query("SELECT 1 AS ok", &[]).await.map(|_| ()),
    }
}
