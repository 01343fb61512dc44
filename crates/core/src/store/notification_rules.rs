//! Notification rules (`notification_rules`): criteria and transport as JSON (validated by
//! `events::rules` before they get here), the webhook secret sealed.

use serde::Deserialize;

use crate::db::Value;
use crate::error::InternalError;
use crate::events::matcher::Criteria;
use crate::events::rules::{Rule, Transport, MAX_RULES};
use crate::ports::Db;
use crate::{params, params_vec};

#[derive(Deserialize)]
struct RuleRow {
    id: String,
    name: String,
    #[serde(deserialize_with = "super::bool_from_int")]
    enabled: bool,
    criteria: String,
    transport: String,
    #[serde(default)]
    secret_sealed: Option<String>,
    #[serde(deserialize_with = "super::int")]
    created_at: i64,
    #[serde(deserialize_with = "super::int")]
    updated_at: i64,
}

impl RuleRow {
    fn into_rule(self) -> Result<Rule, InternalError> {
        let criteria: Criteria = serde_json::from_str(&self.criteria)
            .map_err(|e| InternalError::new(format!("notification rule {}: criteria: {e}", self.id)))?;
        let transport: Transport = serde_json::from_str(&self.transport)
            .map_err(|e| InternalError::new(format!("notification rule {}: transport: {e}", self.id)))?;
        Ok(Rule {
            id: self.id,
            name: self.name,
            enabled: self.enabled,
            criteria,
            transport,
            secret_sealed: self.secret_sealed,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, enabled, criteria, transport, secret_sealed, created_at, updated_at";

fn decode_all(rows: Vec<crate::db::Row>) -> Result<Vec<Rule>, InternalError> {
    rows.into_iter()
        .map(|r| crate::db::decode::<RuleRow>(r)?.into_rule())
        .collect()
}

/// Every rule, oldest first (at most [`MAX_RULES`]).
pub async fn all(db: &dyn Db) -> Result<Vec<Rule>, InternalError> {
    decode_all(
        db.query(
            &format!("SELECT {COLUMNS} FROM notification_rules ORDER BY created_at, id LIMIT ?1"),
            &params![MAX_RULES],
        )
        .await?,
    )
}

/// The enabled rules (what events are matched against).
pub async fn enabled(db: &dyn Db) -> Result<Vec<Rule>, InternalError> {
    decode_all(
        db.query(
            &format!("SELECT {COLUMNS} FROM notification_rules WHERE enabled = 1 ORDER BY created_at, id LIMIT ?1"),
            &params![MAX_RULES],
        )
        .await?,
    )
}

pub async fn get(db: &dyn Db, id: &str) -> Result<Option<Rule>, InternalError> {
    decode_all(
        db.query(
            &format!("SELECT {COLUMNS} FROM notification_rules WHERE id = ?1"),
            &params![id],
        )
        .await?,
    )
    .map(|mut v| v.pop())
}

fn json(rule: &Rule) -> Result<(String, String), InternalError> {
    let c = serde_json::to_string(&rule.criteria).map_err(|e| InternalError::new(format!("criteria: {e}")))?;
    let t = serde_json::to_string(&rule.transport).map_err(|e| InternalError::new(format!("transport: {e}")))?;
    Ok((c, t))
}

/// Inserts `rule` while fewer than [`MAX_RULES`] exist (checked in the statement, so concurrent
/// creations cannot pass it); changes no row at the limit.
pub fn insert_statement(rule: &Rule) -> Result<(&'static str, Vec<Value>), InternalError> {
    let (criteria, transport) = json(rule)?;
    Ok((
        "INSERT INTO notification_rules (id, name, enabled, criteria, transport, secret_sealed, created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE (SELECT COUNT(*) FROM notification_rules) < ?9",
        params_vec![
            &rule.id,
            &rule.name,
            rule.enabled,
            criteria,
            transport,
            rule.secret_sealed.as_deref(),
            rule.created_at,
            rule.updated_at,
            MAX_RULES
        ],
    ))
}

/// Undoes the audit event `event_id` of a create that [`insert_statement`] refused (the cap):
/// the last statement of the same batch (`store::events::UNDO_PREFIX`).
pub fn unless_inserted_statement(event_id: Value, rule_id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM events WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM notification_rules WHERE id = ?2)",
        params_vec![event_id, rule_id],
    )
}

/// Replaces everything but the id and the creation time.
pub fn update_statement(rule: &Rule) -> Result<(&'static str, Vec<Value>), InternalError> {
    let (criteria, transport) = json(rule)?;
    Ok((
        "UPDATE notification_rules SET name = ?2, enabled = ?3, criteria = ?4, transport = ?5, secret_sealed = ?6, \
         updated_at = ?7 WHERE id = ?1",
        params_vec![
            &rule.id,
            &rule.name,
            rule.enabled,
            criteria,
            transport,
            rule.secret_sealed.as_deref(),
            rule.updated_at
        ],
    ))
}

pub fn delete_statement(id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM notification_rules WHERE id = ?1", params_vec![id])
}
