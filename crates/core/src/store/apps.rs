//! Protected applications, stored in D1 and managed through `/admin/api/apps`.

use serde::{Deserialize, Serialize};

use crate::db::{decode, first, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::types::header_policy::HeaderPolicy;
use crate::{params, params_vec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub host: String,
    pub path_prefix: String,
    pub origin: String,
    pub require_login: bool,
    /// Everyone who uses the app needs a second factor (`flow::plan`), checked again on each
    /// request: a session without one is sent to step up.
    #[serde(default)]
    pub require_mfa: bool,
    pub allowed_users: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub headers: HeaderPolicy,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl App {
    /// Whether `path` belongs to this app (`/app/x`, and `/app` itself for prefix `/app/`).
    /// Compared without case: an origin that folds case (IIS, some routers) must not see
    /// `/ADMIN/` as another app's `/admin/`.
    pub fn covers(&self, path: &str) -> bool {
        let path = path.to_ascii_lowercase();
        let prefix = self.path_prefix.to_ascii_lowercase();
        path.starts_with(&prefix) || format!("{path}/") == prefix
    }

    /// Whether a user may pass: listed by username or id, or in a listed group; empty lists
    /// mean any signed-in user.
    pub fn admits(&self, user_id: &str, username: &str, groups: &[String]) -> bool {
        crate::policy::access::admits(&self.allowed_users, &self.allowed_groups, user_id, username, groups)
    }
}

#[derive(Deserialize)]
struct AppRow {
    id: String,
    name: String,
    host: String,
    path_prefix: String,
    origin: String,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    require_login: bool,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    require_mfa: bool,
    allowed_users: String,
    allowed_groups: String,
    headers: String,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    disabled: bool,
    #[serde(deserialize_with = "crate::store::int")]
    created_at: i64,
    #[serde(deserialize_with = "crate::store::int")]
    updated_at: i64,
}

fn json<T: serde::de::DeserializeOwned>(id: &str, field: &str, s: &str) -> Result<T, InternalError> {
    serde_json::from_str(s).map_err(|e| InternalError::new(format!("app {id} {field}: {e}")))
}

impl TryFrom<AppRow> for App {
    type Error = InternalError;
    fn try_from(r: AppRow) -> Result<App, InternalError> {
        Ok(App {
            allowed_users: json(&r.id, "allowed_users", &r.allowed_users)?,
            allowed_groups: json(&r.id, "allowed_groups", &r.allowed_groups)?,
            headers: json(&r.id, "headers", &r.headers)?,
            id: r.id,
            name: r.name,
            host: r.host,
            path_prefix: r.path_prefix,
            origin: r.origin,
            require_login: r.require_login,
            require_mfa: r.require_mfa,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, name, host, path_prefix, origin, require_login, require_mfa, allowed_users, allowed_groups, headers, \
                       disabled, created_at, updated_at";

fn rows(rows: Vec<crate::db::Row>) -> Result<Vec<App>, InternalError> {
    rows.into_iter()
        .map(|r| decode::<AppRow>(r).and_then(App::try_from))
        .collect()
}

/// The app serving `path` on `host`: the longest matching prefix wins. A disabled app still
/// matches (and answers 503): if it did not, its paths would fall through to a broader app on
/// the same host, and a restricted `/console/` disabled under a public `/` would be served
/// anonymously. Only deleting an app removes its match.
pub async fn for_request(db: &dyn Db, host: &str, path: &str) -> Result<Option<App>, InternalError> {
    let apps = rows(
        db.query(
            &format!("SELECT {COLUMNS} FROM apps WHERE host = ?1"),
            &params![host.to_ascii_lowercase()],
        )
        .await?,
    )?;
    Ok(apps
        .into_iter()
        .filter(|a| a.covers(path))
        .max_by_key(|a| a.path_prefix.len()))
}

/// Whether any app (enabled or not) lives on `host`.
pub async fn any_on_host(db: &dyn Db, host: &str) -> Result<bool, InternalError> {
    let rows = db
        .query(
            "SELECT 1 AS found FROM apps WHERE host = ?1 LIMIT 1",
            &params![host.to_ascii_lowercase()],
        )
        .await?;
    Ok(!rows.is_empty())
}

pub async fn by_id(db: &dyn Db, id: &str) -> Result<Option<App>, InternalError> {
    let row: Option<AppRow> = first(
        db.query(&format!("SELECT {COLUMNS} FROM apps WHERE id = ?1"), &params![id])
            .await?,
    )?;
    row.map(App::try_from).transpose()
}

pub async fn list(db: &dyn Db) -> Result<Vec<App>, InternalError> {
    rows(
        db.query(&format!("SELECT {COLUMNS} FROM apps ORDER BY host, path_prefix"), &[])
            .await?,
    )
}

fn to_json<T: Serialize>(v: &T) -> Result<String, InternalError> {
    serde_json::to_string(v).map_err(|e| InternalError::new(e.to_string()))
}

/// Whether another app already serves `a`'s host and path prefix.
pub async fn clashes(db: &dyn Db, a: &App) -> Result<bool, InternalError> {
    let clash = db
        .query(
            "SELECT id FROM apps WHERE host = ?1 AND path_prefix = ?2 AND id <> ?3",
            &params![&a.host, &a.path_prefix, &a.id],
        )
        .await?;
    Ok(!clash.is_empty())
}

/// Inserts or replaces an app by id (check [`clashes`] first).
pub fn upsert_statement(a: &App) -> Result<(&'static str, Vec<Value>), InternalError> {
    Ok((
        "INSERT INTO apps (id, name, host, path_prefix, origin, require_login, allowed_users, allowed_groups, headers, \
         disabled, created_at, updated_at, require_mfa) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, host = excluded.host, \
         path_prefix = excluded.path_prefix, origin = excluded.origin, require_login = excluded.require_login, \
         allowed_users = excluded.allowed_users, allowed_groups = excluded.allowed_groups, \
         headers = excluded.headers, disabled = excluded.disabled, updated_at = excluded.updated_at, \
         require_mfa = excluded.require_mfa",
        params_vec![
            &a.id,
            &a.name,
            &a.host,
            &a.path_prefix,
            &a.origin,
            a.require_login,
            to_json(&a.allowed_users)?,
            to_json(&a.allowed_groups)?,
            to_json(&a.headers)?,
            a.disabled,
            a.created_at,
            a.updated_at,
            a.require_mfa
        ],
    ))
}

pub fn delete_statement(id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM apps WHERE id = ?1", params_vec![id])
}
