//! `policies`, `policy_bindings` and `policy_engine_modes`: expression policies and what they are
//! bound to (`policy::binding`).

use serde::{Deserialize, Serialize};

use crate::db::{decode, first, Statement, Value};
use crate::error::InternalError;
use crate::policy::binding::{Binding, Mode, Subject};
use crate::ports::Db;
use crate::{params, params_vec};

/// A stored expression policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    pub expression: String,
    #[serde(default)]
    pub description: String,
    #[serde(deserialize_with = "crate::store::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "crate::store::int")]
    pub updated_at: i64,
}

const POLICY_COLUMNS: &str = "id, name, expression, description, created_at, updated_at";

pub async fn list(db: &dyn Db) -> Result<Vec<Policy>, InternalError> {
    db.query(&format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY name"), &[])
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

pub async fn by_id(db: &dyn Db, id: &str) -> Result<Option<Policy>, InternalError> {
    first(
        db.query(
            &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE id = ?1"),
            &params![id],
        )
        .await?,
    )
}

pub async fn name_taken(db: &dyn Db, name: &str, other_than: &str) -> Result<bool, InternalError> {
    let rows = db
        .query(
            "SELECT 1 AS taken FROM policies WHERE name = ?1 AND id <> ?2",
            &params![name, other_than],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The most policies the API stores (configured ones are not counted): each is evaluated where
/// it is bound, and a list an administrator can read.
pub const MAX_POLICIES: i64 = 256;

/// Inserts a new policy unless there are already [`MAX_POLICIES`] or another has its name
/// (changes 0 rows then): checked in the statement, so racing creates cannot pass either.
pub fn insert_statement(p: &Policy) -> Statement {
    (
        "INSERT INTO policies (id, name, expression, description, created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE (SELECT COUNT(*) FROM policies) < ?7 \
         AND NOT EXISTS (SELECT 1 FROM policies WHERE name = ?2)",
        params_vec![
            p.id.as_str(),
            p.name.as_str(),
            p.expression.as_str(),
            p.description.as_str(),
            p.created_at,
            p.updated_at,
            MAX_POLICIES
        ],
    )
}

/// Updates policy `before` to `after` unless it changed since it was read (a concurrent update:
/// this one's audit event would describe the wrong "before") or another policy has taken the new
/// name meanwhile; changes 0 rows then.
pub fn update_statement(before: &Policy, after: &Policy) -> Statement {
    (
        "UPDATE policies SET name = ?2, expression = ?3, description = ?4, updated_at = ?5 \
         WHERE id = ?1 AND name = ?6 AND expression = ?7 AND description = ?8 \
         AND NOT EXISTS (SELECT 1 FROM policies WHERE name = ?2 AND id <> ?1)",
        params_vec![
            after.id.as_str(),
            after.name.as_str(),
            after.expression.as_str(),
            after.description.as_str(),
            after.updated_at,
            before.name.as_str(),
            before.expression.as_str(),
            before.description.as_str()
        ],
    )
}

/// Undoes the audit event `event_id` of a change to policy `p` that did not apply (see
/// [`insert_statement`] and [`update_statement`]): the last statement of the same batch.
pub fn unless_applied_statement(event_id: Value, p: &Policy) -> Statement {
    // `store::events::UNDO_PREFIX`, spelled out: a statement's text is a `&'static str`.
    (
        "DELETE FROM events WHERE id = ?1 AND NOT EXISTS \
         (SELECT 1 FROM policies WHERE id = ?2 AND name = ?3 AND expression = ?4 AND updated_at = ?5)",
        params_vec![
            event_id,
            p.id.as_str(),
            p.name.as_str(),
            p.expression.as_str(),
            p.updated_at
        ],
    )
}

/// The caller checks that nothing binds the policy; a binding made between that check and this
/// delete names a missing policy, which fails closed (its failure result where it grants access,
/// and never a waived second factor).
pub fn delete_statement(id: &str) -> Statement {
    ("DELETE FROM policies WHERE id = ?1", params_vec![id])
}

/// A stored binding, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBinding {
    pub id: String,
    /// `client:abc`.
    pub target: String,
    pub policy_id: Option<String>,
    pub user_ref: Option<String>,
    pub group_name: Option<String>,
    #[serde(deserialize_with = "crate::store::int")]
    pub position: i64,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    pub negate: bool,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    pub failure_result: bool,
    #[serde(deserialize_with = "crate::store::bool_from_int")]
    pub enabled: bool,
    #[serde(deserialize_with = "crate::store::int")]
    pub created_at: i64,
    #[serde(deserialize_with = "crate::store::int")]
    pub updated_at: i64,
}

const BINDING_COLUMNS: &str =
    "id, target, policy_id, user_ref, group_name, position, negate, failure_result, enabled, created_at, updated_at";

impl StoredBinding {
    /// The binding the evaluation takes; `expression` is its policy's source when found.
    pub fn to_binding(&self, expression: Option<String>) -> Binding {
        let subject = match (&self.policy_id, &self.user_ref, &self.group_name) {
            (Some(id), _, _) => Subject::Policy {
                id: id.clone(),
                expression,
            },
            (None, Some(u), _) => Subject::User(u.clone()),
            (None, None, Some(g)) => Subject::Group(g.clone()),
            // The table's CHECK makes this impossible; a policy that cannot be found fails.
            (None, None, None) => Subject::Policy {
                id: String::new(),
                expression: None,
            },
        };
        Binding {
            id: self.id.clone(),
            subject,
            order: self.position,
            negate: self.negate,
            failure_result: self.failure_result,
            enabled: self.enabled,
        }
    }
}

/// Every binding, or those of one target, in evaluation order.
pub async fn bindings(db: &dyn Db, target: Option<&str>) -> Result<Vec<StoredBinding>, InternalError> {
    let rows = match target {
        Some(t) => {
            db.query(
                &format!("SELECT {BINDING_COLUMNS} FROM policy_bindings WHERE target = ?1 ORDER BY position, id"),
                &params![t],
            )
            .await?
        }
        None => {
            db.query(
                &format!("SELECT {BINDING_COLUMNS} FROM policy_bindings ORDER BY target, position, id LIMIT 5000"),
                &[],
            )
            .await?
        }
    };
    rows.into_iter().map(decode).collect()
}

pub async fn binding_by_id(db: &dyn Db, id: &str) -> Result<Option<StoredBinding>, InternalError> {
    first(
        db.query(
            &format!("SELECT {BINDING_COLUMNS} FROM policy_bindings WHERE id = ?1"),
            &params![id],
        )
        .await?,
    )
}

pub async fn count_for_target(db: &dyn Db, target: &str) -> Result<usize, InternalError> {
    count(
        db,
        "SELECT COUNT(*) AS n FROM policy_bindings WHERE target = ?1",
        target,
    )
    .await
}

pub async fn count_for_policy(db: &dyn Db, policy_id: &str) -> Result<usize, InternalError> {
    count(
        db,
        "SELECT COUNT(*) AS n FROM policy_bindings WHERE policy_id = ?1",
        policy_id,
    )
    .await
}

async fn count(db: &dyn Db, sql: &str, arg: &str) -> Result<usize, InternalError> {
    let rows = db.query(sql, &params![arg]).await?;
    Ok(rows
        .first()
        .and_then(|r| r.get("n"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as usize)
}

pub fn upsert_binding_statement(b: &StoredBinding) -> Statement {
    (
        "INSERT INTO policy_bindings (id, target, policy_id, user_ref, group_name, position, negate, \
         failure_result, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (id) DO UPDATE SET target = excluded.target, policy_id = excluded.policy_id, \
         user_ref = excluded.user_ref, group_name = excluded.group_name, position = excluded.position, \
         negate = excluded.negate, failure_result = excluded.failure_result, enabled = excluded.enabled, \
         updated_at = excluded.updated_at",
        params_vec![
            b.id.as_str(),
            b.target.as_str(),
            b.policy_id.clone(),
            b.user_ref.clone(),
            b.group_name.clone(),
            b.position,
            b.negate,
            b.failure_result,
            b.enabled,
            b.created_at,
            b.updated_at
        ],
    )
}

pub fn delete_binding_statement(id: &str) -> Statement {
    ("DELETE FROM policy_bindings WHERE id = ?1", params_vec![id])
}

/// Run when a client or app is deleted: its bindings and mode go with it.
pub fn delete_target_statements(target: &str) -> Vec<Statement> {
    vec![
        ("DELETE FROM policy_bindings WHERE target = ?1", params_vec![target]),
        ("DELETE FROM policy_engine_modes WHERE target = ?1", params_vec![target]),
    ]
}

pub async fn mode(db: &dyn Db, target: &str) -> Result<Mode, InternalError> {
    let rows = db
        .query(
            "SELECT mode FROM policy_engine_modes WHERE target = ?1",
            &params![target],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.get("mode"))
        .and_then(serde_json::Value::as_str)
        .and_then(Mode::parse)
        .unwrap_or_default())
}

pub fn set_mode_statement(target: &str, mode: Mode) -> Statement {
    match mode {
        // The default is not stored: a target without a row combines with `all`.
        Mode::All => ("DELETE FROM policy_engine_modes WHERE target = ?1", params_vec![target]),
        Mode::Any => (
            "INSERT INTO policy_engine_modes (target, mode) VALUES (?1, 'any') \
             ON CONFLICT (target) DO UPDATE SET mode = excluded.mode",
            params_vec![target],
        ),
    }
}

/// The enabled bindings of `targets` with their policies' sources and their targets' modes, in
/// one query (what a sign-in evaluates).
pub async fn for_targets(db: &dyn Db, targets: &[String]) -> Result<Vec<TargetBinding>, InternalError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=targets.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "SELECT b.id, b.target, b.policy_id, b.user_ref, b.group_name, b.position, b.negate, \
         b.failure_result, b.enabled, b.created_at, b.updated_at, p.expression, m.mode \
         FROM policy_bindings b LEFT JOIN policies p ON p.id = b.policy_id \
         LEFT JOIN policy_engine_modes m ON m.target = b.target \
         WHERE b.enabled = 1 AND b.target IN ({})",
        placeholders.join(", ")
    );
    let params: Vec<Value> = targets.iter().map(|t| Value::from(t.as_str())).collect();
    db.query(&sql, &params)
        .await?
        .into_iter()
        .map(|row| {
            let expression = row.get("expression").and_then(|v| v.as_str()).map(str::to_owned);
            let mode = row
                .get("mode")
                .and_then(|v| v.as_str())
                .and_then(Mode::parse)
                .unwrap_or_default();
            let stored: StoredBinding = decode(row)?;
            Ok(TargetBinding {
                stored,
                expression,
                mode,
            })
        })
        .collect()
}

/// A binding as [`for_targets`] finds it.
#[derive(Debug, Clone)]
pub struct TargetBinding {
    pub stored: StoredBinding,
    /// The stored policy's source (`None` for a configured policy or a missing one).
    pub expression: Option<String>,
    pub mode: Mode,
}
