//! Users. The password hash never leaves this module's callers' server side.

use serde::{Deserialize, Serialize};

use crate::db::{decode, first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::types::profile::StandardClaims;
use crate::{params, params_vec};

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    #[serde(deserialize_with = "super::bool_from_int")]
    pub email_verified: bool,
    pub name: Option<String>,
    pub password_hash: String,
    /// Group names, stored as a JSON array (gateway access rules use them).
    #[serde(default, deserialize_with = "super::json_list")]
    pub groups: Vec<String>,
    #[serde(deserialize_with = "super::bool_from_int")]
    pub disabled: bool,
    /// The user asked for an emailed code at every sign-in (`GATEHOUSE_EMAIL_OTP`).
    #[serde(default, deserialize_with = "super::bool_from_int")]
    pub email_otp: bool,
    /// The user signs in with a passkey only (set by an administrator; see also the
    /// deployment-wide and group settings, `flow::engine::passkey_only`).
    #[serde(default, deserialize_with = "super::bool_from_int")]
    pub passkey_only: bool,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "super::int")]
    pub updated_at: i64,
    /// When the password was last set (by the user, a reset or an administrator), for expiry
    /// (`policy::password::expiry`); a rehash on sign-in does not change it.
    #[serde(default, deserialize_with = "super::int")]
    pub password_changed_at: i64,
    /// The OIDC standard claims without columns of their own (`types::profile`).
    #[serde(default, deserialize_with = "stored_claims")]
    pub claims: StandardClaims,
}

fn stored_claims<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StandardClaims, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| StandardClaims::from_stored(&s))
        .unwrap_or_default())
}

/// What the admin API shows of a user: never the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// Set on the user (the deployment or a group may make them passkey-only too).
    pub passkey_only: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The standard claims under their OIDC names (`given_name`, `address` …), as the admin API
    /// takes them.
    #[serde(flatten)]
    pub claims: StandardClaims,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            groups: u.groups.clone(),
            disabled: u.disabled,
            passkey_only: u.passkey_only,
            created_at: u.created_at,
            updated_at: u.updated_at,
            claims: u.claims.clone(),
        }
    }
}

const COLUMNS: &str =
    "id, username, email, email_verified, name, password_hash, groups, disabled, email_otp, passkey_only, created_at, \
     updated_at, password_changed_at, claims";

pub fn groups_json(u: &User) -> String {
    serde_json::to_string(&u.groups).unwrap_or_else(|_| "[]".into())
}

pub async fn by_id(db: &dyn Db, id: &str) -> Result<Option<User>, InternalError> {
    first(
        db.query(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"), &params![id])
            .await?,
    )
}

/// The enabled user signed in by the live SSO session `session_hash`, in one query.
pub async fn by_sso_session(db: &dyn Db, session_hash: &str, now: i64) -> Result<Option<User>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id_hash = ?1 AND s.ended_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0",
                prefixed("u")
            ),
            &params![session_hash, now],
        )
        .await?,
    )
}

/// The enabled user of a live app-host session on `host` (its SSO session still live), in one
/// query.
pub async fn by_app_session(
    db: &dyn Db,
    app_session_hash: &str,
    host: &str,
    now: i64,
) -> Result<Option<User>, InternalError> {
    first(
        db.query(
            &format!(
                "SELECT {} FROM app_sessions a JOIN sessions s ON s.id_hash = a.sso_session_hash \
                 JOIN apps p ON p.id = a.app_id JOIN users u ON u.id = a.user_id \
                 WHERE a.id_hash = ?1 AND a.expires_at > ?2 AND s.ended_at IS NULL AND s.expires_at > ?2 \
                 AND p.host = ?3 AND u.disabled = 0",
                prefixed("u")
            ),
            &params![app_session_hash, now, host],
        )
        .await?,
    )
}

/// The user columns qualified by a table alias, for joins.
fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user for unit tests, with the standard claims of `claims` (checked as any change is).
#[cfg(test)]
pub(crate) fn sample(claims: serde_json::Value) -> User {
    let mut checked = StandardClaims::default();
    checked
        .apply(claims.as_object().expect("claims are an object"))
        .expect("valid claims");
    User {
        id: "usr_1".into(),
        username: "ann".into(),
        email: "ann@example.com".into(),
        email_verified: true,
        name: Some("Ann Lee".into()),
        password_hash: String::new(),
        groups: Vec::new(),
        disabled: false,
        email_otp: false,
        passkey_only: false,
        created_at: 1,
        updated_at: 7,
        password_changed_at: 1,
        claims: checked,
    }
}

/// An SQL expression that yields the user row under `alias` as one JSON object (NULL when the
/// join found no user), for lookups that carry a user beside other rows; read back with
/// [`from_joined`].
pub fn joined_json(alias: &str) -> String {
    let members: Vec<String> = COLUMNS.split(", ").map(|c| format!("'{c}', {alias}.{c}")).collect();
    format!(
        "CASE WHEN {alias}.id IS NULL THEN NULL ELSE json_object({}) END",
        members.join(", ")
    )
}

/// The user of a [`joined_json`] column.
pub fn from_joined(json: Option<&str>) -> Result<Option<User>, InternalError> {
    let Some(j) = json else { return Ok(None) };
    match serde_json::from_str::<serde_json::Value>(j) {
        Ok(serde_json::Value::Object(row)) => decode(row).map(Some),
        _ => Err(InternalError::new("joined user: not a JSON object")),
    }
}

pub async fn by_username(db: &dyn Db, username: &str) -> Result<Option<User>, InternalError> {
    first(
        db.query(
            &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
            &params![username],
        )
        .await?,
    )
}

/// The user a password-reset request names: the one with this username, else the only one whose
/// verified address this is (an address two accounts share names neither).
pub async fn by_username_or_verified_email(db: &dyn Db, login: &str) -> Result<Option<User>, InternalError> {
    let found: Vec<User> = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM users WHERE username = ?1 OR (email_verified = 1 AND lower(email) = lower(?1)) \
                 ORDER BY username = ?1 DESC LIMIT 2"
            ),
            &params![login],
        )
        .await?
        .into_iter()
        .map(crate::db::decode)
        .collect::<Result<_, _>>()?;
    Ok(match found.as_slice() {
        [first, ..] if first.username == login => Some(first.clone()),
        [only] => Some(only.clone()),
        _ => None,
    })
}

/// Marks the user's address verified, if it is still `email` (a verification link for an
/// address the user has since changed proves nothing); `false` if it changed.
pub fn set_email_verified_statement(id: &str, email: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET email_verified = 1, updated_at = ?3 WHERE id = ?1 AND email = ?2",
        params_vec![id, email, now],
    )
}

/// A new address from the user: unverified until proved.
pub fn set_email_statement(id: &str, email: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET email = ?2, email_verified = 0, email_otp = 0, updated_at = ?3 WHERE id = ?1",
        params_vec![id, email, now],
    )
}

/// The name and standard claims the user set on the account page.
pub fn set_profile_statement(id: &str, name: Option<&str>, claims: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET name = ?2, claims = ?3, updated_at = ?4 WHERE id = ?1",
        params_vec![id, name.map(str::to_owned), claims, now],
    )
}

/// Emailed sign-in codes on or off.
pub fn set_email_otp_statement(id: &str, on: bool, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET email_otp = ?2, updated_at = ?3 WHERE id = ?1",
        params_vec![id, on, now],
    )
}

pub async fn list(db: &dyn Db, limit: i64, offset: i64) -> Result<Vec<User>, InternalError> {
    db.query(
        &format!("SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT ?1 OFFSET ?2"),
        &params![limit, offset],
    )
    .await?
    .into_iter()
    .map(decode)
    .collect()
}

/// Whether `username` (case-insensitive) belongs to a user other than `except_id`.
pub async fn username_taken(db: &dyn Db, username: &str, except_id: &str) -> Result<bool, InternalError> {
    let taken = db
        .query(
            "SELECT id FROM users WHERE username = ?1 AND id <> ?2",
            &params![username, except_id],
        )
        .await?;
    Ok(!taken.is_empty())
}

/// Inserts a user (check [`username_taken`] first: a clash fails the whole batch).
pub fn insert_statement(u: &User) -> (&'static str, Vec<Value>) {
    (
        "INSERT INTO users (id, username, email, email_verified, name, password_hash, groups, disabled, created_at, \
         updated_at, passkey_only, password_changed_at, claims) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params_vec![
            &u.id,
            &u.username,
            &u.email,
            u.email_verified,
            u.name.clone(),
            &u.password_hash,
            groups_json(u),
            u.disabled,
            u.created_at,
            u.updated_at,
            u.passkey_only,
            u.password_changed_at,
            u.claims.to_stored()
        ],
    )
}

/// The columns one admin edit changes, written alone (check [`username_taken`] first).
#[derive(Default)]
pub struct Changes(Vec<(&'static str, Value)>);

impl Changes {
    /// `column` is one of this table's column names, never input.
    pub fn set(&mut self, column: &'static str, value: impl Into<Value>) {
        self.0.push((column, value.into()));
    }

    pub fn statement(self, id: &str) -> (String, Vec<Value>) {
        let sets: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!("{column} = ?{}", i + 2))
            .collect();
        let mut params = params_vec![id];
        params.extend(self.0.into_iter().map(|(_, v)| v));
        (format!("UPDATE users SET {} WHERE id = ?1", sets.join(", ")), params)
    }
}

/// A new password chosen (`policy::password::new_password_statements` adds the history).
pub fn set_new_password_statement(id: &str, hash: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET password_hash = ?2, password_changed_at = ?3, updated_at = ?3 WHERE id = ?1",
        params_vec![id, hash, now],
    )
}

/// The same password hashed again with today's parameters: not a new password. Only while the
/// stored hash is still `old`: a new password set meanwhile is not overwritten by the old one.
pub fn rehash_password_statement(id: &str, old: &str, hash: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE id = ?1 AND password_hash = ?2",
        params_vec![id, old, hash, now],
    )
}

/// Deletes a user and revokes everything issued to them (run with the audit entry, in one batch).
pub fn delete_statements(id: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "UPDATE grants SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params_vec![id, now],
        ),
        (
            "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 AND ended_at IS NULL",
            params_vec![id, now],
        ),
        ("DELETE FROM users WHERE id = ?1", params_vec![id]),
    ]
}
