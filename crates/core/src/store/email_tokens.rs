//! Secrets sent by mail (`email_tokens`): sign-in codes, password-reset links and
//! address-verification links, stored as hashes (`crate::factors::email`); and the passkey setup
//! links an administrator hands to a user. Each works once: spending one is a compare-and-set on
//! `used_at`.

use serde::Deserialize;

use crate::db::{first, Statement};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SignInCode,
    Reset,
    Verify,
    /// An administrator's link to register a passkey without signing in (a passkey-only user's
    /// recovery, or first passkey). Not sent by mail: the administrator hands it over.
    PasskeySetup,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignInCode => "sign_in_code",
            Kind::Reset => "reset",
            Kind::Verify => "verify",
            Kind::PasskeySetup => "passkey_setup",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmailToken {
    pub id: String,
    pub secret_hash: String,
    pub user_id: String,
    pub email: String,
    pub flow_id: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub failures: i64,
}

const COLUMNS: &str = "id, secret_hash, user_id, email, flow_id, created_at, expires_at, failures";

/// A new token. `flow_id` binds it to a sign-in flow (codes, resets).
pub struct New<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub secret_hash: &'a str,
    pub user_id: &'a str,
    pub email: &'a str,
    pub flow_id: Option<&'a str>,
    pub now: i64,
    pub ttl: i64,
}

pub fn insert_statement(t: &New<'_>) -> Statement {
    (
        "INSERT INTO email_tokens (id, kind, secret_hash, user_id, email, flow_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params_vec![
            t.id,
            t.kind.as_str(),
            t.secret_hash,
            t.user_id,
            t.email,
            t.flow_id,
            t.now,
            t.now + t.ttl
        ],
    )
}

/// Ends the live tokens of `kind` for this flow (a new code replaces the one sent before).
pub fn end_of_flow_statement(flow_id: &str, kind: Kind, now: i64) -> Statement {
    (
        "UPDATE email_tokens SET used_at = ?3 WHERE flow_id = ?1 AND kind = ?2 AND used_at IS NULL",
        params_vec![flow_id, kind.as_str(), now],
    )
}

/// Ends every live token of the user of these kinds (their address changed, or their password).
pub fn end_of_user_statement(user_id: &str, kinds: &[Kind], now: i64) -> Statement {
    let listed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    (
        "UPDATE email_tokens SET used_at = ?3 WHERE user_id = ?1 AND used_at IS NULL \
         AND kind IN (SELECT value FROM json_each(?2))",
        params_vec![
            user_id,
            serde_json::to_string(&listed).unwrap_or_else(|_| "[]".into()),
            now
        ],
    )
}

/// The flow's live token of `kind` (unused, unexpired, below `max_failures`), newest first.
pub async fn live_of_flow(
    db: &dyn Db,
    flow_id: &str,
    kind: Kind,
    now: i64,
    max_failures: i64,
) -> Result<Option<EmailToken>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT {COLUMNS} FROM email_tokens WHERE flow_id = ?1 AND kind = ?2 AND used_at IS NULL \
                 AND expires_at > ?3 AND failures < ?4 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ),
            &params![flow_id, kind.as_str(), now, max_failures],
        )
        .await?,
    )
}

/// When the flow's newest token of `kind` was sent (for a resend's cool-down).
pub async fn last_sent_of_flow(db: &dyn Db, flow_id: &str, kind: Kind) -> Result<Option<i64>, InternalError> {
    #[derive(Deserialize)]
    struct At {
        #[serde(deserialize_with = "super::int")]
        created_at: i64,
    }
    let row: Option<At> = first(
        db.query(
            "SELECT created_at FROM email_tokens WHERE flow_id = ?1 AND kind = ?2 \
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
            &params![flow_id, kind.as_str()],
        )
        .await?,
    )?;
    Ok(row.map(|r| r.created_at))
}

/// The live token of `kind` whose secret hashes to `secret_hash`.
pub async fn live_by_secret(
    db: &dyn Db,
    secret_hash: &str,
    kind: Kind,
    now: i64,
) -> Result<Option<EmailToken>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT {COLUMNS} FROM email_tokens WHERE secret_hash = ?1 AND kind = ?2 AND used_at IS NULL \
                 AND expires_at > ?3 LIMIT 1"
            ),
            &params![secret_hash, kind.as_str(), now],
        )
        .await?,
    )
}

/// Counts a wrong code against the token.
pub async fn fail(db: &dyn Db, id: &str) -> Result<(), InternalError> {
    db.execute(
        "UPDATE email_tokens SET failures = failures + 1 WHERE id = ?1",
        &params![id],
    )
    .await?;
    Ok(())
}

/// Gives back a token this request spent at `spent_at` (what it was spent for failed). Only a
/// token still marked with that time changes: one ended since (a new link, a disable) stays ended.
pub async fn unspend(db: &dyn Db, id: &str, spent_at: i64) -> Result<(), InternalError> {
    db.execute(
        "UPDATE email_tokens SET used_at = NULL WHERE id = ?1 AND used_at = ?2",
        &params![id, spent_at],
    )
    .await?;
    Ok(())
}

/// Spends the token now; `false` if another request spent it first.
pub async fn spend(db: &dyn Db, id: &str, now: i64) -> Result<bool, InternalError> {
    let changed = db
        .execute(
            "UPDATE email_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
            &params![id, now],
        )
        .await?;
    Ok(changed == 1)
}
