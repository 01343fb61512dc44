//! The local development outbox (`dev_outbox`): mail "sent" with `GATEHOUSE_MAILER` unset or
//! `outbox`, kept for `/dev/outbox` and the end-to-end tests. It never holds more than
//! [`KEPT`] mails.

use serde::{Deserialize, Serialize};

use crate::db::Value;
use crate::error::InternalError;
use crate::mail::Mail;
use crate::ports::Db;
use crate::{params, params_vec};

/// The newest mails kept; older ones are deleted as new ones arrive.
pub const KEPT: i64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMail {
    #[serde(deserialize_with = "super::int")]
    pub id: i64,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    #[serde(deserialize_with = "super::int")]
    pub created_at: i64,
}

pub async fn insert(db: &dyn Db, mail: &Mail, now: i64) -> Result<(), InternalError> {
    let statements: Vec<(&str, Vec<Value>)> = vec![
        (
            "INSERT INTO dev_outbox (kind, to_address, subject, text_body, html_body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params_vec![mail.kind.as_str(), &mail.to, &mail.subject, &mail.text, &mail.html, now],
        ),
        (
            "DELETE FROM dev_outbox WHERE id <= (SELECT MAX(id) FROM dev_outbox) - ?1",
            params_vec![KEPT],
        ),
    ];
    db.batch(&statements).await?;
    Ok(())
}

/// The newest `limit` mails, newest first; only those to `to` when it is given.
pub async fn list(db: &dyn Db, to: Option<&str>, limit: i64) -> Result<Vec<StoredMail>, InternalError> {
    db.query(
        "SELECT id, kind, to_address, subject, text_body, html_body, created_at FROM dev_outbox \
         WHERE ?1 IS NULL OR lower(to_address) = lower(?1) ORDER BY id DESC LIMIT ?2",
        &params![to, limit],
    )
    .await?
    .into_iter()
    .map(crate::db::decode)
    .collect()
}
