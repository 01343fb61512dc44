//! Registering a passkey, shared by the three places that do it: the enrollment stage of a
//! sign-in (`enroll_passkey`), the account page (`account::passkeys`) and an administrator's
//! setup link (`account::passkey_setup`). Each binds the challenge to its own owner (the flow,
//! the session, the link) and checks who the user is before it calls these.
//!
//! The options ask for a discoverable credential with user verification, so the passkey can
//! later sign in without a username; the user is named to the authenticator by an opaque handle
//! (`users.webauthn_handle`), never by the username or the address; the user's passkeys are
//! excluded, so an authenticator that holds one is not registered twice.

use serde_json::{json, Value};

use super::passkey::{new_challenge, rp_id, rp_origin};
use crate::crypto::{b64url, b64url_decode};
use crate::error::{Error, InternalError};
use crate::factors::webauthn::browser::{self, Descriptor, NewUser, RegistrationResponse};
use crate::factors::webauthn::key::ACCEPTED_ALGS;
use crate::factors::webauthn::{verify_registration, Ceremony, NewCredential, UserVerification};
use crate::http::{Request, Response};
use crate::store::passkeys::{self, MAX_NAME_CHARS, MAX_PER_USER};
use crate::store::webauthn_challenges::{self as challenges, Ceremony as Kind};
use crate::store::{events, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const DEFAULT_NAME: &str = "Passkey";
pub const NAME_TOO_LONG: &str = "That passkey name is too long (at most 64 characters).";
pub const TOO_MANY: &str = "You have too many passkeys. Remove one first (at most 10).";
pub const NOT_ADDED: &str = "The passkey could not be added. Please try again.";
pub const ALREADY: &str = "That passkey is already registered.";
pub const EXPIRED: &str = "The passkey request expired. Please try again.";

/// A passkey name as typed: trimmed, the default when empty, `None` when too long.
pub fn passkey_name(typed: &str) -> Option<String> {
    let name = typed.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    Some(if name.is_empty() { DEFAULT_NAME } else { name }.to_owned())
}

/// A JSON error for the options endpoints (the script shows `error_description`).
pub(crate) fn json_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(status, &json!({ "error": error, "error_description": description }))
}

/// The options endpoints' answer: `{ "publicKey": … }`, never cached.
pub(crate) fn options_response(options: Value) -> Response {
    let mut resp = Response::json(200, &json!({ "publicKey": options }));
    resp.set_header("cache-control", "no-store");
    resp
}

/// The browser's descriptors of `held` passkeys (`excludeCredentials`, `allowCredentials`).
pub(crate) fn descriptors(held: &[passkeys::Passkey]) -> Vec<Descriptor<'_>> {
    held.iter()
        .map(|p| Descriptor {
            id: &p.id,
            transports: &p.transports,
        })
        .collect()
}

/// The creation options for `user`, with a new challenge issued to `owner` (replacing its last
/// one); `Err(TOO_MANY)` when the user holds the most passkeys allowed.
pub(crate) async fn creation_options(
    ctx: &Ctx<'_>,
    user: &users::User,
    owner: &str,
) -> Result<Result<Value, &'static str>, Error> {
    let held = passkeys::of_user(ctx.db, &user.id).await?;
    if held.len() as i64 >= MAX_PER_USER {
        return Ok(Err(TOO_MANY));
    }
    let handle = passkeys::ensure_user_handle(ctx.db, &user.id, &b64url(&new_challenge(ctx)?))
        .await?
        .and_then(|h| b64url_decode(&h))
        .ok_or_else(|| InternalError::new("webauthn user handle"))?;
    let challenge = new_challenge(ctx)?;
    let exclude = descriptors(&held);
    let display_name = user.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&user.username);
    let rp = rp_id(ctx);
    let options = browser::creation_options(
        &rp,
        &rp,
        &NewUser {
            handle: &handle,
            name: &user.username,
            display_name,
        },
        &challenge,
        &exclude,
    );
    let (sql, values) = challenges::issue_statement(
        owner,
        Kind::Register,
        &b64url(&challenge),
        Some(&user.id),
        ctx.clock.now(),
    );
    ctx.db.execute(sql, &values).await?;
    Ok(Ok(options))
}

/// A credential that passed registration, not stored yet.
pub(crate) struct Verified {
    pub credential: NewCredential,
    pub transports: Vec<String>,
}

/// Takes `owner`'s registration challenge (it must have been issued for `user`) and verifies the
/// browser's `credential` (JSON) against it; `Err` is the message for the user.
pub(crate) async fn verify(
    ctx: &Ctx<'_>,
    user: &users::User,
    owner: &str,
    credential: &str,
) -> Result<Result<Verified, &'static str>, Error> {
    let issued = challenges::take(ctx.db, owner, Kind::Register, ctx.clock.now())
        .await?
        .filter(|c| c.user_id.as_deref() == Some(user.id.as_str()));
    let Some(issued) = issued else {
        return Ok(Err(EXPIRED));
    };
    let challenge = b64url_decode(&issued.challenge).ok_or_else(|| InternalError::new("stored challenge"))?;
    let Some(response) = RegistrationResponse::parse(credential) else {
        return Ok(Err(NOT_ADDED));
    };
    let origin = rp_origin(ctx);
    let rp = rp_id(ctx);
    let ceremony = Ceremony {
        challenge: &challenge,
        origin: &origin,
        rp_id: &rp,
        user_verification: UserVerification::Required,
    };
    match verify_registration(ctx.webauthn, &ceremony, &ACCEPTED_ALGS, &response.as_registration()).await? {
        Ok(credential) => Ok(Ok(Verified {
            credential,
            transports: passkeys::known_transports(response.transports.iter().map(String::as_str)),
        })),
        Err(refusal) => {
            crate::log::warn(&format!("passkey registration refused: {}", refusal.as_str()));
            Ok(Err(NOT_ADDED))
        }
    }
}

/// Stores a verified passkey for `user` under `name` and records `passkey_added` (`by`: how it
/// was registered); `Err` is the message when the user holds too many, or it is registered.
pub(crate) async fn store(
    ctx: &Ctx<'_>,
    req: &Request,
    user: &users::User,
    verified: &Verified,
    name: &str,
    (by, event_client): (&str, Option<&str>),
) -> Result<Result<(), &'static str>, Error> {
    let now = ctx.clock.now();
    let credential = &verified.credential;
    let id = b64url(&credential.id);
    let (sql, values) = passkeys::insert_statement(&user.id, credential, &verified.transports, name, now);
    if ctx.db.execute(sql, &values).await? == 0 {
        let taken = passkeys::by_id(ctx.db, &id).await?.is_some();
        return Ok(Err(if taken { ALREADY } else { TOO_MANY }));
    }
    let added = events::record_statement(
        ctx.rng,
        now,
        events::Event {
            kind: EventKind::PasskeyAdded,
            user_id: Some(&user.id),
            client_id: event_client,
            ip: Some(&crate::policy::client_ip(ctx, req).to_string()),
            location: Some(&req.location),
            detail: json!({ "credential": id, "name": name, "synced": credential.backup_eligible, "by": by }),
        },
    )?;
    ctx.db.execute(added.0, &added.1).await?;
    // A passkey signs in without the password: if it was not the user who added it (a stolen
    // password, a session left open), the owner of the address learns it now. The passkey has
    // landed: a notice that cannot go out is logged, and the page still answers.
    if user.email_verified && !user.email.is_empty() {
        let site = crate::mail::site_name(ctx);
        let notice =
            crate::mail::messages::passkey_added(&user.email, &site, &user.username, name, &crate::pages::utc(now));
        let sent = match notice {
            Ok(message) => crate::mail::send(ctx, req, Some(&user.id), message).await,
            Err(e) => Err(e.into()),
        };
        if let Err(Error::Internal(e)) = sent {
            crate::error::log_internal(&e);
        }
    }
    Ok(Ok(()))
}

/// A first set of recovery codes when the user has none left (and is not passkey-only): like an
/// authenticator app's, a passkey can be lost, and the codes are the way back in without an
/// administrator. Returned to be shown once. A passkey-only account gets none: its recovery is
/// an administrator's setup link, never a weaker factor.
pub(crate) async fn recovery_codes_if_none(
    ctx: &Ctx<'_>,
    user: &users::User,
) -> Result<Vec<crate::factors::recovery_codes::RecoveryCode>, Error> {
    use crate::factors::recovery_codes;
    if crate::flow::engine::passkey_only(ctx, user)
        || crate::store::totp_devices::second_factors(ctx.db, &user.id)
            .await?
            .recovery_codes
            > 0
    {
        return Ok(Vec::new());
    }
    let codes = recovery_codes::generate(ctx.rng)?;
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery_codes::hash(&user.id, c.expose()))
        .collect();
    ctx.db
        .batch(&crate::store::recovery_codes::replace_statements(
            &user.id,
            &hashes,
            ctx.clock.now(),
        ))
        .await?;
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::{passkey_name, DEFAULT_NAME};

    #[test]
    fn a_passkey_name_is_trimmed_defaulted_and_at_most_64_characters() {
        assert_eq!(passkey_name("  Laptop "), Some("Laptop".into()));
        assert_eq!(passkey_name(""), Some(DEFAULT_NAME.into()));
        let longest = "é".repeat(64);
        assert_eq!(passkey_name(&longest), Some(longest.clone()));
        assert_eq!(passkey_name(&format!("{longest}x")), None);
    }
}
