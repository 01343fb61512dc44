//! A user's passkeys (`passkeys`): the WebAuthn credentials that passed registration
//! (`factors::webauthn::verify_registration`), and the opaque user handle they were made for.

use serde::Deserialize;

use crate::crypto::b64url;
use crate::db::{first, Value};
use crate::error::InternalError;
use crate::factors::webauthn::NewCredential;
use crate::ports::Db;
use crate::{params, params_vec};

/// Passkeys one user may hold: a phone, a laptop, a few security keys and a password manager,
/// bounded so a session cannot fill the table.
pub const MAX_PER_USER: i64 = 10;
/// Characters in a passkey's name.
pub const MAX_NAME_CHARS: usize = 64;
/// The transport hints WebAuthn defines (§5.8.4); others are dropped, not stored.
pub const TRANSPORTS: [&str; 6] = ["usb", "nfc", "ble", "smart-card", "hybrid", "internal"];

#[derive(Debug, Clone, Deserialize)]
pub struct Passkey {
    /// The credential id, base64url.
    pub id: String,
    pub user_id: String,
    /// The COSE_Key, base64url.
    pub public_key: String,
    #[serde(deserialize_with = "super::int")]
    pub alg: i64,
    #[serde(deserialize_with = "super::int")]
    pub sign_count: i64,
    #[serde(default, deserialize_with = "super::json_list")]
    pub transports: Vec<String>,
    #[serde(deserialize_with = "super::bool_from_int")]
    pub backup_eligible: bool,
    #[serde(deserialize_with = "super::bool_from_int")]
    pub backed_up: bool,
    pub aaguid: String,
    pub attestation_format: String,
    pub name: String,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
    #[serde(default, deserialize_with = "super::opt_int")]
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, public_key, alg, sign_count, transports, backup_eligible, backed_up, \
                       aaguid, attestation_format, name, created_at, last_used_at";

/// The transports a browser reported, as stored: known values only, each once, in order.
pub fn known_transports<'a>(reported: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for t in reported {
        if TRANSPORTS.contains(&t) && !kept.iter().any(|k| k == t) {
            kept.push(t.to_owned());
        }
    }
    kept
}

/// A new passkey, written only while the user holds fewer than [`MAX_PER_USER`] and only if no
/// user holds that credential id yet (WebAuthn §7.1 step 26: a credential registered twice, or
/// for two users, is refused). Both conditions are in the statement: it changes no row when
/// either fails, and concurrent registrations cannot pass them.
pub fn insert_statement(
    user_id: &str,
    credential: &NewCredential,
    transports: &[String],
    name: &str,
    now: i64,
) -> (&'static str, Vec<Value>) {
    let aaguid: String = credential.aaguid.iter().map(|b| format!("{b:02x}")).collect();
    (
        "INSERT INTO passkeys (id, user_id, public_key, alg, sign_count, transports, backup_eligible, backed_up, \
         aaguid, attestation_format, name, created_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
         WHERE (SELECT COUNT(*) FROM passkeys WHERE user_id = ?2) < ?13 \
         ON CONFLICT (id) DO NOTHING",
        params_vec![
            b64url(&credential.id),
            user_id,
            b64url(&credential.public_key),
            credential.alg,
            i64::from(credential.sign_count),
            serde_json::to_string(transports).unwrap_or_else(|_| "[]".into()),
            credential.backup_eligible,
            credential.backed_up,
            aaguid,
            &credential.attestation_format,
            name,
            now,
            MAX_PER_USER
        ],
    )
}

/// The user's passkeys, oldest first.
pub async fn of_user(db: &dyn Db, user_id: &str) -> Result<Vec<Passkey>, InternalError> {
    db.query(
        &format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"),
        &params![user_id],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}

/// The passkey with this credential id, whoever holds it (a usernameless sign-in finds the user
/// through it).
pub async fn by_id(db: &dyn Db, id: &str) -> Result<Option<Passkey>, InternalError> {
    first(
        db.query(&format!("SELECT {COLUMNS} FROM passkeys WHERE id = ?1"), &params![id])
            .await?,
    )
}

/// Records a verified use: the new counter and backup state, but only if the counter is still the
/// one the verification compared against. For an authenticator that counts, of two assertions
/// racing with one counter value only one changes the row (the other is a replay or a clone),
/// and a caller refuses the one that changed nothing. One that never counts stays at 0, so the
/// statement tells nothing for it: single-use challenges are what stop its replays.
pub fn record_use_statement(
    id: &str,
    seen_count: i64,
    new_count: i64,
    backed_up: bool,
    now: i64,
) -> (&'static str, Vec<Value>) {
    (
        "UPDATE passkeys SET sign_count = ?3, backed_up = ?4, last_used_at = ?5 WHERE id = ?1 AND sign_count = ?2",
        params_vec![id, seen_count, new_count, backed_up, now],
    )
}

pub fn rename_statement(user_id: &str, id: &str, name: &str) -> (&'static str, Vec<Value>) {
    (
        "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2",
        params_vec![id, user_id, name],
    )
}

pub fn delete_statement(user_id: &str, id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2",
        params_vec![id, user_id],
    )
}

/// Deletes the passkey only if the user keeps another (a passkey-only account's last one stays);
/// the condition is in the statement, so two removals racing cannot both pass it.
pub fn delete_keeping_one_statement(user_id: &str, id: &str) -> (&'static str, Vec<Value>) {
    (
        "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2 \
         AND (SELECT COUNT(*) FROM passkeys WHERE user_id = ?2) > 1",
        params_vec![id, user_id],
    )
}

/// Every passkey of the user (an administrator's reset of the user's factors).
pub fn delete_all_of_user_statement(user_id: &str) -> (&'static str, Vec<Value>) {
    ("DELETE FROM passkeys WHERE user_id = ?1", params_vec![user_id])
}

/// The user's WebAuthn user handle, if one was made.
pub async fn user_handle(db: &dyn Db, user_id: &str) -> Result<Option<String>, InternalError> {
    #[derive(Deserialize)]
    struct Row {
        webauthn_handle: Option<String>,
    }
    let row: Option<Row> = first(
        db.query("SELECT webauthn_handle FROM users WHERE id = ?1", &params![user_id])
            .await?,
    )?;
    Ok(row.and_then(|r| r.webauthn_handle))
}

/// The user's handle, made from `fresh` (32 random bytes, base64url) if the user has none. Set
/// with a compare-and-set, so two first registrations racing agree on one handle: the one read
/// back. `None` for an unknown user.
pub async fn ensure_user_handle(db: &dyn Db, user_id: &str, fresh: &str) -> Result<Option<String>, InternalError> {
    db.execute(
        "UPDATE users SET webauthn_handle = ?2 WHERE id = ?1 AND webauthn_handle IS NULL",
        &params![user_id, fresh],
    )
    .await?;
    user_handle(db, user_id).await
}
