//! The SQL Gatehouse runs, one module per table. The same statements run on D1 in the
//! Worker and on SQLite in the native tests.

pub mod app_sessions;
pub mod apps;
pub mod auth_requests;
pub mod clients;
pub mod consents;
pub mod d1_migrations;
pub mod dead_letters;
pub mod dev_outbox;
pub mod email_tokens;
pub mod events;
pub mod gateway_codes;
pub mod grants;
pub mod notification_rules;
pub mod passkeys;
pub mod password_history;
pub mod policies;
pub mod recovery_codes;
pub mod retention;
pub mod sessions;
pub mod totp_devices;
pub mod users;
pub mod webauthn_challenges;

use serde::{Deserialize, Deserializer};

/// SQLite has no boolean: 0/1 integers decode to `bool`.
pub fn bool_from_int<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
        _ => false,
    })
}

/// Integers may arrive as floats from JavaScript; accept both.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))))
}

/// A JSON array stored in a TEXT column.
pub fn json_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    Ok(v.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default())
}
