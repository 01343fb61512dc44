//! One-time codes that carry a sign-in from the issuer's host to an app's host
//! (`gateway_codes`): minted by `/oauth2/gateway`, redeemed once by `/.gatehouse/callback`.
//! Only their hashes are stored.

use serde::Deserialize;

use crate::db::{first, Statement};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// A code about to be minted.
pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub sso_session_hash: &'a str,
    pub return_to: &'a str,
    /// Hash of the app-host browser's binding cookie: only that browser may redeem the code.
    pub browser_hash: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert_statement(c: &NewCode<'_>) -> Statement {
    (
        "INSERT INTO gateway_codes (code_hash, app_id, user_id, sso_session_hash, return_to, created_at, expires_at, \
         browser_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params_vec![
            c.code_hash,
            c.app_id,
            c.user_id,
            c.sso_session_hash,
            c.return_to,
            c.created_at,
            c.expires_at,
            c.browser_hash
        ],
    )
}

/// A minted code not yet redeemed (it may have expired: the caller compares `expires_at`).
#[derive(Debug, Deserialize)]
pub struct Unused {
    pub app_id: String,
    pub browser_hash: String,
    pub user_id: String,
    pub sso_session_hash: String,
    pub return_to: String,
    #[serde(deserialize_with = "crate::store::int")]
    pub expires_at: i64,
}

/// The unredeemed code with this hash. Reading does not consume it: the caller checks
/// everything first and then redeems it with [`redeem_statement`].
pub async fn unused(db: &dyn Db, code_hash: &str) -> Result<Option<Unused>, InternalError> {
    first(
        db.query(
            "SELECT app_id, user_id, sso_session_hash, return_to, expires_at, browser_hash FROM gateway_codes \
             WHERE code_hash = ?1 AND used_at IS NULL",
            &params![code_hash],
        )
        .await?,
    )
}

/// Marks the code used by the app session `redeemed_by`; changes nothing if another request
/// redeemed it first (its count of changed rows is then 0).
pub fn redeem_statement(code_hash: &str, now: i64, redeemed_by: &str) -> Statement {
    (
        "UPDATE gateway_codes SET used_at = ?2, redeemed_by = ?3 WHERE code_hash = ?1 AND used_at IS NULL",
        params_vec![code_hash, now, redeemed_by],
    )
}
