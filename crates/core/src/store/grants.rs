//! Grants and what they issue: authorization codes, access tokens, refresh tokens.
//! A code or refresh token is read first and consumed only by a request that passed every check,
//! in the same batch that writes what it issues: one conditional UPDATE marks it, and the new
//! tokens are inserted only under that mark, so two concurrent redemptions cannot both succeed
//! and a request that fails half-way leaves the code or token as it was.

use serde::Deserialize;

use crate::db::{first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::store::users::{self, User};
use crate::types::protocol::TokenKind;
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
    /// The methods of the sign-in behind it (space-separated); `None` without a user.
    #[serde(default)]
    pub amr: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub revoked_at: Option<i64>,
    /// The claims the authorization request named (`oidc::claims::Requested`, stored form).
    #[serde(default)]
    pub claims: Option<String>,
}

/// The statement that records a new grant, to run in one batch with what it first issues.
pub fn insert_grant_statement(g: &Grant) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO grants (id, client_id, user_id, session_hash, scope, auth_time, nonce, created_at, expires_at, amr, \
         claims) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params_vec![
            &g.id,
            &g.client_id,
            g.user_id.clone(),
            g.session_hash.clone(),
            &g.scope,
            g.auth_time,
            g.nonce.clone(),
            g.created_at,
            g.expires_at,
            g.amr.clone(),
            g.claims.clone()
        ],
    )
}

/// Revokes a whole token family (RFC 6749 §10.5 for codes, OAuth 2.0 Security BCP §4.14 for
/// refresh tokens).
pub async fn revoke_grant(db: &dyn Db, id: &str, now: i64) -> Result<(), InternalError> {
    db.batch(&revoke_grant_statements(id, now)).await?;
    Ok(())
}

pub fn revoke_grant_statements(id: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params_vec![id, now],
        ),
        (
            "UPDATE tokens SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
            params_vec![id, now],
        ),
    ]
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

/// The condition under which a grant may still issue tokens: not revoked, not past its absolute
/// lifetime, its user (if any) still exists and is enabled, and its client still exists and is
/// enabled. Written against the alias `g`.
const LIVE_GRANT: &str = "g.revoked_at IS NULL AND g.expires_at > ?2 \
     AND (g.user_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = g.user_id AND u.disabled = 0)) \
     AND EXISTS (SELECT 1 FROM clients cl WHERE cl.client_id = g.client_id AND cl.disabled = 0)";

/// The grant columns, prefixed `g_`, as joined into the exchange lookups.
const GRANT_AS_G: &str = "g.id AS g_id, g.client_id AS g_client_id, g.user_id AS g_user_id, \
     g.session_hash AS g_session_hash, g.scope AS g_scope, g.auth_time AS g_auth_time, g.nonce AS g_nonce, \
     g.amr AS g_amr, g.created_at AS g_created_at, g.expires_at AS g_expires_at, g.claims AS g_claims";

/// A live grant joined as `g_*` columns (absent when the grant may no longer issue tokens).
#[derive(Deserialize)]
struct JoinedGrant {
    g_id: Option<String>,
    #[serde(default)]
    g_client_id: Option<String>,
    #[serde(default)]
    g_user_id: Option<String>,
    #[serde(default)]
    g_session_hash: Option<String>,
    #[serde(default)]
    g_scope: Option<String>,
    #[serde(default, deserialize_with = "super::opt_int")]
    g_auth_time: Option<i64>,
    #[serde(default)]
    g_nonce: Option<String>,
    #[serde(default)]
    g_amr: Option<String>,
    #[serde(default, deserialize_with = "super::opt_int")]
    g_created_at: Option<i64>,
    #[serde(default, deserialize_with = "super::opt_int")]
    g_expires_at: Option<i64>,
    #[serde(default)]
    g_claims: Option<String>,
}

impl JoinedGrant {
    fn into_grant(self) -> Option<Grant> {
        Some(Grant {
            id: self.g_id?,
            client_id: self.g_client_id?,
            user_id: self.g_user_id,
            session_hash: self.g_session_hash,
            scope: self.g_scope?,
            auth_time: self.g_auth_time,
            nonce: self.g_nonce,
            amr: self.g_amr,
            created_at: self.g_created_at?,
            expires_at: self.g_expires_at?,
            revoked_at: None,
            claims: self.g_claims,
        })
    }
}

/// An authorization code as presented at the token endpoint, read without changing it: the
/// exchange checks the client, redirect URI and PKCE first, and only a request that passes them
/// consumes the code, in the same batch that writes its tokens ([`consume_code_statement`]).
pub struct CodeLookup {
    pub code: Code,
    pub used: bool,
    /// The grant, when it may still issue tokens.
    pub grant: Option<Grant>,
    /// The grant's user (enabled, as a live grant's is), for the claims of the ID token.
    pub user: Option<User>,
}

#[derive(Deserialize)]
struct CodeRow {
    #[serde(flatten)]
    code: Code,
    #[serde(default, deserialize_with = "super::opt_int")]
    used_at: Option<i64>,
    #[serde(flatten)]
    grant: JoinedGrant,
    #[serde(default)]
    g_user: Option<String>,
}

/// The code `code_hash`, its live grant and the grant's user, in one query.
pub async fn code_for_exchange(db: &dyn Db, code_hash: &str, now: i64) -> Result<Option<CodeLookup>, InternalError> {
    let row: Option<CodeRow> = first(
        db.query(
            &format!(
                "SELECT c.grant_id, c.client_id, c.redirect_uri, c.code_challenge, c.expires_at, c.used_at, \
                 {GRANT_AS_G}, {} AS g_user FROM authorization_codes c \
                 LEFT JOIN grants g ON g.id = c.grant_id AND {LIVE_GRANT} LEFT JOIN users gu ON gu.id = g.user_id \
                 WHERE c.code_hash = ?1",
                users::joined_json("gu")
            ),
            &params![code_hash, now],
        )
        .await?,
    )?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(CodeLookup {
        user: users::from_joined(r.g_user.as_deref())?,
        code: r.code,
        used: r.used_at.is_some(),
        grant: r.grant.into_grant(),
    }))
}

/// Marks a code used by the token request `marker`; changes no row if it was used already.
pub fn consume_code_statement(code_hash: &str, marker: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE authorization_codes SET used_at = ?2, redeemed_by = ?3 WHERE code_hash = ?1 AND used_at IS NULL",
        params_vec![code_hash, now, marker],
    )
}

#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub kind: TokenKind,
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
    /// An access token's userinfo claims (`oidc::claims::Requested`, stored form).
    #[serde(default)]
    pub claims: Option<String>,
}

pub struct NewToken<'a> {
    pub hash: &'a str,
    pub kind: TokenKind,
    pub grant: &'a Grant,
    pub scope: &'a str,
    pub jti: Option<&'a str>,
    pub expires_at: i64,
    /// An access token's userinfo claims (`oidc::claims::Requested`, stored form).
    pub claims: Option<&'a str>,
}

/// What a token write depends on: the new tokens of a code exchange or a refresh are written only
/// if the same batch's consuming statement was this request's (its `marker`), so a request that
/// lost a race to a concurrent one writes nothing.
#[derive(Clone, Copy)]
pub enum Consumed<'a> {
    /// Nothing is consumed (client_credentials).
    Nothing,
    /// The authorization code `hash`, marked by [`consume_code_statement`].
    Code { hash: &'a str, marker: &'a str },
    /// The refresh token `hash`, marked by [`rotate_refresh_statement`].
    Refresh { hash: &'a str, marker: &'a str },
}

const INSERT_TOKEN: &str = "INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, jti, \
     created_at, expires_at, claims) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10";
const INSERT_TOKEN_IF_CODE: &str = "INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, jti, \
     created_at, expires_at, claims) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
     WHERE EXISTS (SELECT 1 FROM authorization_codes WHERE code_hash = ?11 AND redeemed_by = ?12)";
const INSERT_TOKEN_IF_ROTATED: &str = "INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, \
     jti, created_at, expires_at, claims) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
     WHERE EXISTS (SELECT 1 FROM tokens WHERE token_hash = ?11 AND rotated_by = ?12)";

pub fn insert_token_statement(t: &NewToken<'_>, now: i64, after: Consumed<'_>) -> (&'static str, Vec<Value>) {
    let mut params = params_vec![
        t.hash,
        t.kind.as_str(),
        &t.grant.id,
        &t.grant.client_id,
        t.grant.user_id.clone(),
        t.scope,
        t.jti,
        now,
        t.expires_at,
        t.claims.map(str::to_owned)
    ];
    let sql = match after {
        Consumed::Nothing => INSERT_TOKEN,
        Consumed::Code { hash, marker } => {
            params.extend(params_vec![hash, marker]);
            INSERT_TOKEN_IF_CODE
        }
        Consumed::Refresh { hash, marker } => {
            params.extend(params_vec![hash, marker]);
            INSERT_TOKEN_IF_ROTATED
        }
    };
    (sql, params)
}

const TOKEN_COLUMNS: &str =
    "kind, grant_id, client_id, user_id, scope, jti, created_at, expires_at, rotated_at, revoked_at, claims";
const TOKEN_COLUMNS_T: &str = "t.kind, t.grant_id, t.client_id, t.user_id, t.scope, t.jti, t.created_at, \
     t.expires_at, t.rotated_at, t.revoked_at, t.claims";

/// A token usable now: not revoked, not rotated, not expired, and its grant live (which includes
/// its user and its client being enabled: disabling a client stops its tokens at once).
pub async fn active_token(db: &dyn Db, token_hash: &str, now: i64) -> Result<Option<Token>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT {TOKEN_COLUMNS_T} FROM tokens t JOIN grants g ON g.id = t.grant_id \
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND t.rotated_at IS NULL \
                 AND t.expires_at > ?2 AND {LIVE_GRANT}"
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

/// A refresh token as presented at the token endpoint, read without changing it (see
/// [`CodeLookup`]); rotation happens in the batch that writes its successors
/// ([`rotate_refresh_statement`]).
pub struct RefreshLookup {
    pub token: Token,
    /// The grant, when it may still issue tokens.
    pub grant: Option<Grant>,
    /// The grant's user (enabled, as a live grant's is).
    pub user: Option<User>,
}

#[derive(Deserialize)]
struct RefreshRow {
    #[serde(flatten)]
    token: Token,
    #[serde(flatten)]
    grant: JoinedGrant,
    #[serde(default)]
    g_user: Option<String>,
}

/// The refresh token `token_hash` and its live grant, in one query.
pub async fn refresh_for_exchange(
    db: &dyn Db,
    token_hash: &str,
    now: i64,
) -> Result<Option<RefreshLookup>, InternalError> {
    let row: Option<RefreshRow> = first(
        db.query(
            &format!(
                "SELECT {TOKEN_COLUMNS_T}, {GRANT_AS_G}, {} AS g_user FROM tokens t \
                 LEFT JOIN grants g ON g.id = t.grant_id AND {LIVE_GRANT} LEFT JOIN users gu ON gu.id = g.user_id \
                 WHERE t.token_hash = ?1 AND t.kind = 'refresh'",
                users::joined_json("gu")
            ),
            &params![token_hash, now],
        )
        .await?,
    )?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(RefreshLookup {
        user: users::from_joined(r.g_user.as_deref())?,
        token: r.token,
        grant: r.grant.into_grant(),
    }))
}

/// Marks `client_id`'s refresh token rotated by the token request `marker`; changes no row if it
/// was rotated or revoked already.
pub fn rotate_refresh_statement(
    token_hash: &str,
    client_id: &str,
    marker: &str,
    now: i64,
) -> (&'static str, Vec<Value>) {
    (
        "UPDATE tokens SET rotated_at = ?3, rotated_by = ?4 WHERE token_hash = ?1 AND client_id = ?2 \
         AND kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL",
        params_vec![token_hash, client_id, now, marker],
    )
}

/// Marks an already rotated refresh token as used again by the token request `marker`, if it
/// was rotated at or after `since` (the grace interval) and nothing revoked it since.
pub fn rerotate_refresh_statement(
    token_hash: &str,
    client_id: &str,
    marker: &str,
    since: i64,
) -> (&'static str, Vec<Value>) {
    (
        "UPDATE tokens SET rotated_by = ?4 WHERE token_hash = ?1 AND client_id = ?2 AND kind = 'refresh' \
         AND rotated_at IS NOT NULL AND rotated_at >= ?3 AND revoked_at IS NULL",
        params_vec![token_hash, client_id, since, marker],
    )
}

/// RFC 7009: revokes one token; revoking a refresh token revokes its grant (§2.1 "SHOULD").
pub async fn revoke_token(db: &dyn Db, t: &Token, token_hash: &str, now: i64) -> Result<(), InternalError> {
    if t.kind == TokenKind::Refresh {
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
