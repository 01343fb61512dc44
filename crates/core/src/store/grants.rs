//! Grants and what they issue: authorization codes, access tokens, refresh tokens.
//! Single use is enforced by one conditional UPDATE … RETURNING, so two concurrent redemptions
//! cannot both succeed.

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_hash: Option<String>,
    pub scope: String,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub auth_time: Option<i64>,
    pub nonce: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub revoked_at: Option<i64>,
}

/// The statement that records a new grant, to run in one batch with what it first issues.
pub fn insert_grant_statement(g: &Grant) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO grants (id, client_id, user_id, session_hash, scope, auth_time, nonce, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params_vec![
            &g.id,
            &g.client_id,
            g.user_id.clone(),
            g.session_hash.clone(),
            &g.scope,
            g.auth_time,
            g.nonce.clone(),
            g.created_at,
            g.expires_at
        ],
    )
}

/// Revokes a whole token family (RFC 6749 §10.5 for codes, OAuth 2.0 Security BCP §4.14 for
/// refresh tokens).
pub async fn revoke_grant(db: &dyn Db, id: &str, now: i64) -> Result<(), InternalError> {
    db.batch(&[
        (
            "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params_vec![id, now],
        ),
        (
            "UPDATE tokens SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
            params_vec![id, now],
        ),
    ])
    .await
}

#[derive(Debug, Clone, Deserialize)]
pub struct Code {
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
}

pub fn insert_code_statement(code_hash: &str, c: &Code, now: i64) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge, created_at, \
         expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params_vec![
            code_hash,
            &c.grant_id,
            &c.client_id,
            &c.redirect_uri,
            c.code_challenge.clone(),
            now,
            c.expires_at
        ],
    )
}

pub enum Redeemed {
    /// First use: the code's record.
    Fresh(Code),
    /// Already used: the grant it belonged to, to be revoked.
    Reused {
        grant_id: String,
    },
    Unknown,
}

/// Marks a code used; exactly one caller ever gets `Fresh`.
pub async fn redeem_code(db: &dyn Db, code_hash: &str, now: i64) -> Result<Redeemed, InternalError> {
    let fresh: Option<Code> = first(
        db.query(
            "UPDATE authorization_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL \
             RETURNING grant_id, client_id, redirect_uri, code_challenge, expires_at",
            &params![code_hash, now],
        )
        .await?,
    )?;
    if let Some(code) = fresh {
        return Ok(Redeemed::Fresh(code));
    }
    #[derive(Deserialize)]
    struct Used {
        grant_id: String,
    }
    let used: Option<Used> = first(
        db.query(
            "SELECT grant_id FROM authorization_codes WHERE code_hash = ?1",
            &params![code_hash],
        )
        .await?,
    )?;
    Ok(match used {
        Some(u) => Redeemed::Reused { grant_id: u.grant_id },
        None => Redeemed::Unknown,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub kind: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    pub jti: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub rotated_at: Option<i64>,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub revoked_at: Option<i64>,
}

pub struct NewToken<'a> {
    pub hash: &'a str,
    pub kind: TokenKind,
    pub grant: &'a Grant,
    pub scope: &'a str,
    pub jti: Option<&'a str>,
    pub expires_at: i64,
}

pub fn insert_token_statement(t: &NewToken<'_>, now: i64) -> (&'static str, Vec<crate::db::Value>) {
    (
        "INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, jti, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params_vec![
            t.hash,
            t.kind.as_str(),
            &t.grant.id,
            &t.grant.client_id,
            t.grant.user_id.clone(),
            t.scope,
            t.jti,
            now,
            t.expires_at
        ],
    )
}

const TOKEN_COLUMNS: &str =
    "kind, grant_id, client_id, user_id, scope, jti, created_at, expires_at, rotated_at, revoked_at";

/// A token usable now: not revoked, not rotated, not expired, and its grant not revoked.
pub async fn active_token(db: &dyn Db, token_hash: &str, now: i64) -> Result<Option<Token>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT t.{} FROM tokens t JOIN grants g ON g.id = t.grant_id \
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND t.rotated_at IS NULL \
                 AND t.expires_at > ?2 AND g.revoked_at IS NULL AND g.expires_at > ?2",
                TOKEN_COLUMNS.replace(", ", ", t.")
            ),
            &params![token_hash, now],
        )
        .await?,
    )
}

pub async fn token_by_hash(db: &dyn Db, token_hash: &str) -> Result<Option<Token>, InternalError> {
    first(
        db.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?1"),
            &params![token_hash],
        )
        .await?,
    )
}

pub enum Rotated {
    Fresh(Token),
    /// The refresh token was used before: a replay, so the family must be revoked.
    Reused {
        grant_id: String,
    },
    /// Unknown, revoked or expired.
    Invalid,
}

/// Marks `client_id`'s refresh token as used; exactly one caller ever gets `Fresh`. Another
/// client's token is left untouched (`Invalid`), so nobody can burn a token that is not theirs.
pub async fn rotate_refresh(
    db: &dyn Db,
    token_hash: &str,
    client_id: &str,
    now: i64,
) -> Result<Rotated, InternalError> {
    let fresh: Option<Token> = first(
        db.query(
            &format!(
                "UPDATE tokens SET rotated_at = ?3 WHERE token_hash = ?1 AND client_id = ?2 AND kind = 'refresh' \
                 AND rotated_at IS NULL AND revoked_at IS NULL RETURNING {TOKEN_COLUMNS}"
            ),
            &params![token_hash, client_id, now],
        )
        .await?,
    )?;
    if let Some(t) = fresh {
        return Ok(Rotated::Fresh(t));
    }
    Ok(match token_by_hash(db, token_hash).await? {
        Some(t) if t.kind == "refresh" && t.client_id == client_id && t.rotated_at.is_some() => {
            Rotated::Reused { grant_id: t.grant_id }
        }
        _ => Rotated::Invalid,
    })
}

/// The grant `id` if tokens may still be issued from it: not revoked, not past its absolute
/// lifetime, and its user (if any) still exists and is enabled. One query.
pub async fn live_grant(db: &dyn Db, id: &str, now: i64) -> Result<Option<Grant>, InternalError> {
    first(
        db.query(
            "SELECT g.id, g.client_id, g.user_id, g.session_hash, g.scope, g.auth_time, g.nonce, g.created_at, \
             g.expires_at, g.revoked_at FROM grants g LEFT JOIN users u ON u.id = g.user_id \
             WHERE g.id = ?1 AND g.revoked_at IS NULL AND g.expires_at > ?2 \
             AND (g.user_id IS NULL OR (u.id IS NOT NULL AND u.disabled = 0))",
            &params![id, now],
        )
        .await?,
    )
}

/// RFC 7009: revokes one token; revoking a refresh token revokes its grant (§2.1 "SHOULD").
pub async fn revoke_token(db: &dyn Db, t: &Token, token_hash: &str, now: i64) -> Result<(), InternalError> {
    if t.kind == "refresh" {
        revoke_grant(db, &t.grant_id, now).await
    } else {
        db.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL",
            &params![token_hash, now],
        )
        .await?;
        Ok(())
    }
}
