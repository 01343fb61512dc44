//! Sessions on an app's host behind the gateway (`app_sessions`), each tied to the SSO session
//! it came from: ending that ends them. (The user behind one is read by
//! `store::users::by_app_session`, which joins the session, the app and the user.)

use crate::db::{first, Statement};
use crate::error::InternalError;
use crate::ports::Db;
use crate::store::sessions::Session;
use crate::{params, params_vec};

/// An app session born of a gateway code.
pub struct NewAppSession<'a> {
    pub id_hash: &'a str,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub sso_session_hash: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Writes the session only if the code `code_hash` was redeemed by it, in the same batch as
/// `gateway_codes::redeem_statement`: of two concurrent callbacks with one code, only the one
/// whose redemption landed gets a session.
pub fn insert_if_redeemed_statement(s: &NewAppSession<'_>, code_hash: &str) -> Statement {
    (
        "INSERT INTO app_sessions (id_hash, app_id, user_id, sso_session_hash, created_at, expires_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
         WHERE EXISTS (SELECT 1 FROM gateway_codes WHERE code_hash = ?7 AND redeemed_by = ?1)",
        params_vec![
            s.id_hash,
            s.app_id,
            s.user_id,
            s.sso_session_hash,
            s.created_at,
            s.expires_at,
            code_hash
        ],
    )
}

/// The live SSO session behind the live app session `id_hash` (for the factors it passed).
pub async fn sso_session(db: &dyn Db, id_hash: &str, now: i64) -> Result<Option<Session>, InternalError> {
    first(
        db.query(
            "SELECT s.id_hash, s.user_id, s.auth_time, s.expires_at, s.factors FROM app_sessions a \
             JOIN sessions s ON s.id_hash = a.sso_session_hash \
             WHERE a.id_hash = ?1 AND a.expires_at > ?2 AND s.ended_at IS NULL AND s.expires_at > ?2",
            &params![id_hash, now],
        )
        .await?,
    )
}
