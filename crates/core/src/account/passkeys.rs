//! The account page's passkeys: register one (after a recent sign-in, like any factor change),
//! remove one. Registration asks for a discoverable credential with user verification, so the
//! passkey can later sign in without a username; the user is named to the authenticator by an
//! opaque handle (`users.webauthn_handle`), never by the username or address. The challenge is
//! bound to this session (`store::webauthn_challenges::session_owner`), lives five minutes and
//! works once.

use serde_json::json;

use super::{done, event, form, recent, refused, signed_in, CSRF_PURPOSE};
use crate::crypto::{b64url, b64url_decode};
use crate::error::{Error, InternalError};
use crate::factors::webauthn::browser::{self, Descriptor, NewUser, RegistrationResponse};
use crate::factors::webauthn::key::ACCEPTED_ALGS;
use crate::factors::webauthn::{verify_registration, Ceremony, UserVerification};
use crate::flow::stages::passkey::{new_challenge, rp_id, rp_origin};
use crate::http::{Request, Response};
use crate::store::passkeys::{self, MAX_NAME_CHARS, MAX_PER_USER};
use crate::store::webauthn_challenges::{self as challenges, Ceremony as Kind};
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::Ctx;

pub const DEFAULT_NAME: &str = "Passkey";
pub const ADDED: &str = "Your passkey was added. You can use it to sign in without your password.";
pub const REMOVED: &str = "The passkey was removed.";
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

fn json_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(status, &json!({ "error": error, "error_description": description }))
}

/// `POST /account/passkeys/options` (`csrf`): the creation options with a new challenge. A
/// browser without a session, or whose sign-in is not recent, is told to submit the form
/// without a credential: the form's handler then signs the user in (again).
pub async fn options(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let reauthenticate = || {
            Response::json(
                401,
                &json!({ "error": "reauthenticate", "error_description": "sign in again first" }),
            )
        };
        let (user, session) = match signed_in(ctx, req).await? {
            Ok(s) => s,
            Err(_) => return Ok(reauthenticate()),
        };
        let params = req.form_params();
        if !cookies::csrf_ok(ctx, req, CSRF_PURPOSE, params.get("csrf")?.unwrap_or("")) {
            return Ok(json_error(
                403,
                "invalid_request",
                "The form expired. Please reload the page.",
            ));
        }
        if !recent(ctx, &session) {
            return Ok(reauthenticate());
        }
        let held = passkeys::of_user(ctx.db, &user.id).await?;
        if held.len() as i64 >= MAX_PER_USER {
            return Ok(json_error(409, "too_many_passkeys", TOO_MANY));
        }
        let fresh = new_challenge(ctx)?;
        let handle = passkeys::ensure_user_handle(ctx.db, &user.id, &b64url(&fresh))
            .await?
            .and_then(|h| b64url_decode(&h))
            .ok_or_else(|| InternalError::new("webauthn user handle"))?;
        let challenge = new_challenge(ctx)?;
        let exclude: Vec<Descriptor<'_>> = held
            .iter()
            .map(|p| Descriptor {
                id: &p.id,
                transports: &p.transports,
            })
            .collect();
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
        let owner = challenges::session_owner(&session.id_hash);
        let (sql, values) = challenges::issue_statement(
            &owner,
            Kind::Register,
            &b64url(&challenge),
            Some(&user.id),
            ctx.clock.now(),
        );
        ctx.db.execute(sql, &values).await?;
        let mut resp = Response::json(200, &json!({ "publicKey": options }));
        resp.set_header("cache-control", "no-store");
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_json)
}

/// `POST /account/passkeys` (`csrf`, `name`, `credential`): the new credential for this
/// session's challenge.
pub async fn add(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, session, params| async move {
        let Some(name) = passkey_name(params.get("name")?.unwrap_or("")) else {
            return Ok(refused(NAME_TOO_LONG, 400));
        };
        let now = ctx.clock.now();
        let owner = challenges::session_owner(&session.id_hash);
        let Some(issued) = challenges::take(ctx.db, &owner, Kind::Register, now).await? else {
            return Ok(refused(EXPIRED, 400));
        };
        if issued.user_id.as_deref() != Some(user.id.as_str()) {
            return Ok(refused(EXPIRED, 400));
        }
        let challenge = b64url_decode(&issued.challenge).ok_or_else(|| InternalError::new("stored challenge"))?;
        let Some(response) = RegistrationResponse::parse(params.get("credential")?.unwrap_or("")) else {
            return Ok(refused(NOT_ADDED, 400));
        };
        let origin = rp_origin(ctx);
        let rp = rp_id(ctx);
        let ceremony = Ceremony {
            challenge: &challenge,
            origin: &origin,
            rp_id: &rp,
            user_verification: UserVerification::Required,
        };
        let credential =
            match verify_registration(ctx.webauthn, &ceremony, &ACCEPTED_ALGS, &response.as_registration()).await? {
                Ok(c) => c,
                Err(refusal) => {
                    crate::log::warn(&format!("passkey registration refused: {}", refusal.as_str()));
                    return Ok(refused(NOT_ADDED, 400));
                }
            };
        let transports = passkeys::known_transports(response.transports.iter().map(String::as_str));
        let id = b64url(&credential.id);
        let (sql, values) = passkeys::insert_statement(&user.id, &credential, &transports, &name, now);
        if ctx.db.execute(sql, &values).await? == 0 {
            let taken = passkeys::by_id(ctx.db, &id).await?.is_some();
            return Ok(refused(if taken { ALREADY } else { TOO_MANY }, 409));
        }
        let added = event(
            ctx,
            req,
            EventKind::PasskeyAdded,
            &user.id,
            json!({ "credential": id, "name": name, "synced": credential.backup_eligible }),
        )?;
        ctx.db.execute(added.0, &added.1).await?;
        Ok(done(ADDED))
    })
    .await
}

/// `POST /account/passkeys/remove` (`credential`).
pub async fn remove(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, _, params| async move {
        let id = params.get("credential")?.unwrap_or("").to_owned();
        let owned = passkeys::by_id(ctx.db, &id)
            .await?
            .is_some_and(|p| p.user_id == user.id);
        if !owned {
            return Ok(refused("No such passkey.", 404));
        }
        ctx.db
            .batch(&[
                passkeys::delete_statement(&user.id, &id),
                event(
                    ctx,
                    req,
                    EventKind::PasskeyRemoved,
                    &user.id,
                    json!({ "credential": id }),
                )?,
            ])
            .await?;
        Ok(done(REMOVED))
    })
    .await
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
