//! Outstanding WebAuthn challenges (`webauthn_challenges`): one per owner (a flow, or an account
//! session) and ceremony. Issuing replaces the owner's last one; taking deletes it with a
//! compare-and-set on the exact challenge, so of two requests finishing with one challenge only
//! one gets it, and a used or replaced challenge is gone.

use serde::Deserialize;

use crate::db::{first, Statement};
use crate::error::InternalError;
use crate::ports::Db;
use crate::{params, params_vec};

/// Seconds a challenge lives: enough to touch a security key or find a phone, short enough that
/// a leaked one is soon useless (WebAuthn's default timeout is 5 minutes).
pub const TTL: i64 = 5 * 60;

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    Register,
    /// A usernameless sign-in: the passkey says who the user is.
    SignIn,
    /// A passkey after the password.
    SecondFactor,
}

impl Ceremony {
    pub fn as_str(self) -> &'static str {
        match self {
            Ceremony::Register => "register",
            Ceremony::SignIn => "sign_in",
            Ceremony::SecondFactor => "second_factor",
        }
    }
}

/// The owner key of a flow's challenges.
pub fn flow_owner(flow_id: &str) -> String {
    format!("flow:{flow_id}")
}

/// The owner key of a passkey setup link's challenges (the link's token hash).
pub fn setup_owner(token_hash: &str) -> String {
    format!("setup:{token_hash}")
}

/// The owner key of an account session's challenges (`sessions.id_hash`).
pub fn session_owner(session_hash: &str) -> String {
    format!("session:{session_hash}")
}

#[derive(Debug, Clone, Deserialize)]
pub struct Outstanding {
    /// base64url.
    pub challenge: String,
    pub user_id: Option<String>,
    #[serde(deserialize_with = "super::int")]
    pub expires_at: i64,
}

/// Issues `challenge` (base64url) for `owner`'s `ceremony`, replacing the last one.
pub fn issue_statement(owner: &str, ceremony: Ceremony, challenge: &str, user_id: Option<&str>, now: i64) -> Statement {
    (
        "INSERT INTO webauthn_challenges (owner, ceremony, challenge, user_id, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (owner, ceremony) DO UPDATE SET challenge = ?3, user_id = ?4, expires_at = ?5",
        params_vec![owner, ceremony.as_str(), challenge, user_id, now + TTL],
    )
}

/// Takes `owner`'s live challenge for `ceremony`: it is deleted, and returned only to the
/// request whose delete removed it. `None`: none was issued, it expired, or it was used.
pub async fn take(
    db: &dyn Db,
    owner: &str,
    ceremony: Ceremony,
    now: i64,
) -> Result<Option<Outstanding>, InternalError> {
    let found: Option<Outstanding> = first(
        db.query(
            "SELECT challenge, user_id, expires_at FROM webauthn_challenges WHERE owner = ?1 AND ceremony = ?2",
            &params![owner, ceremony.as_str()],
        )
        .await?,
    )?;
    let Some(found) = found else {
        return Ok(None);
    };
    let removed = db
        .execute(
            "DELETE FROM webauthn_challenges WHERE owner = ?1 AND ceremony = ?2 AND challenge = ?3",
            &params![owner, ceremony.as_str(), found.challenge.as_str()],
        )
        .await?;
    Ok((removed == 1 && found.expires_at > now).then_some(found))
}
