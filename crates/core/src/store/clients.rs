//! Clients: RFC 7591 metadata stored as JSON, the secret only as a SHA-256 hash.

use serde::{Deserialize, Serialize};

use crate::db::{decode, first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::types::protocol::{AuthMethod, GrantType};
use crate::{params, params_vec};

/// Client metadata under the RFC 7591 §2 names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scope: String,
    pub id_token_signed_response_alg: String,
    /// Gatehouse's own: every sign-in for this client needs a second factor (`flow::plan`).
    #[serde(default)]
    pub require_mfa: bool,
    /// Gatehouse's own: only these users (ids or usernames) and members of these groups may use
    /// the client (`policy::access`); both empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub metadata: ClientMetadata,
    pub first_party: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    /// Public clients (`none`) cannot keep a secret (RFC 6749 §2.1) and must use PKCE.
    pub fn is_public(&self) -> bool {
        self.metadata.token_endpoint_auth_method == AuthMethod::None
    }
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.metadata.grant_types.contains(&grant)
    }
    pub fn allowed_scopes(&self) -> impl Iterator<Item = &str> {
        self.metadata.scope.split_ascii_whitespace()
    }
    /// Whether only some users may use the client.
    pub fn restricted(&self) -> bool {
        !(self.metadata.allowed_users.is_empty() && self.metadata.allowed_groups.is_empty())
    }
    /// Whether `user` may use the client.
    pub fn admits(&self, user: &crate::store::users::User) -> bool {
        crate::policy::access::admits(
            &self.metadata.allowed_users,
            &self.metadata.allowed_groups,
            &user.id,
            &user.username,
            &user.groups,
        )
    }
}

#[derive(Deserialize)]
struct ClientRow {
    client_id: String,
    secret_hash: Option<String>,
    metadata: String,
    #[serde(deserialize_with = "super::bool_from_int")]
    first_party: bool,
    #[serde(deserialize_with = "super::bool_from_int")]
    disabled: bool,
    #[serde(deserialize_with = "super::int")]
    created_at: i64,
    #[serde(deserialize_with = "super::int")]
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = InternalError;
    fn try_from(r: ClientRow) -> Result<Self, InternalError> {
        let metadata = serde_json::from_str(&r.metadata)
            .map_err(|e| InternalError::new(format!("client {} metadata: {e}", r.client_id)))?;
        Ok(Client {
            client_id: r.client_id,
            secret_hash: r.secret_hash,
            metadata,
            first_party: r.first_party,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "client_id, secret_hash, metadata, first_party, disabled, created_at, updated_at";

pub async fn by_id(db: &dyn Db, client_id: &str) -> Result<Option<Client>, InternalError> {
    let row: Option<ClientRow> = first(
        db.query(
            &format!("SELECT {COLUMNS} FROM clients WHERE client_id = ?1"),
            &params![client_id],
        )
        .await?,
    )?;
    row.map(Client::try_from).transpose()
}

pub async fn list(db: &dyn Db, limit: i64, offset: i64) -> Result<Vec<Client>, InternalError> {
    db.query(
        &format!("SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id LIMIT ?1 OFFSET ?2"),
        &params![limit, offset],
    )
    .await?
    .into_iter()
    .map(|row| decode::<ClientRow>(row).and_then(Client::try_from))
    .collect()
}

fn metadata_json(c: &Client) -> Result<String, InternalError> {
    serde_json::to_string(&c.metadata).map_err(|e| InternalError::new(format!("client metadata: {e}")))
}

/// Inserts a client (check that the id is free first: a clash fails the whole batch).
pub fn insert_statement(c: &Client) -> Result<(&'static str, Vec<Value>), InternalError> {
    Ok((
        "INSERT INTO clients (client_id, secret_hash, metadata, first_party, disabled, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params_vec![
            &c.client_id,
            c.secret_hash.clone(),
            metadata_json(c)?,
            c.first_party,
            c.disabled,
            c.created_at,
            c.updated_at
        ],
    ))
}

pub fn update_statement(c: &Client) -> Result<(&'static str, Vec<Value>), InternalError> {
    Ok((
        "UPDATE clients SET secret_hash = ?2, metadata = ?3, first_party = ?4, disabled = ?5, \
         updated_at = ?6 WHERE client_id = ?1",
        params_vec![
            &c.client_id,
            c.secret_hash.clone(),
            metadata_json(c)?,
            c.first_party,
            c.disabled,
            c.updated_at
        ],
    ))
}

/// Revokes every grant of a client, and so every token issued from them (a disabled client's
/// tokens must stop working at once, not when they expire).
pub fn revoke_grants_statement(client_id: &str, now: i64) -> (&'static str, Vec<Value>) {
    (
        "UPDATE grants SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
        params_vec![client_id, now],
    )
}

/// Deletes a client and revokes everything issued to it (run with the audit entry, in one batch).
pub fn delete_statements(client_id: &str, now: i64) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        revoke_grants_statement(client_id, now),
        ("DELETE FROM auth_requests WHERE client_id = ?1", params_vec![client_id]),
        ("DELETE FROM consents WHERE client_id = ?1", params_vec![client_id]),
        ("DELETE FROM clients WHERE client_id = ?1", params_vec![client_id]),
    ]
}
