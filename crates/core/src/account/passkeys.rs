//! The account page's passkeys: register one (after a recent sign-in, like any factor change),
//! remove one. The registration itself is `flow::stages::passkey_registration`; here its
//! challenge is bound to this session (`store::webauthn_challenges::session_owner`).

use serde_json::json;

use super::{done, event, form, recent, refused, signed_in, Done, CSRF_PURPOSE};
use crate::error::Error;
use crate::flow::stages::passkey_registration::{self as registration, json_error, options_response, passkey_name};
use crate::http::{Request, Response};
use crate::store::passkeys;
use crate::store::webauthn_challenges as challenges;
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::Ctx;

pub const ADDED: &str = "Your passkey was added. You can use it to sign in without your password.";
pub const REMOVED: &str = "The passkey was removed.";
pub const LAST_ONE: &str = "Your account signs in with a passkey only: add another before removing this one.";

/// `POST /account/passkeys/options` (`csrf`): the creation options with a new challenge. A
/// browser without a session, or whose sign-in is not recent, is told to submit the form
/// without a credential: the form's handler then signs the user in (again).
pub async fn options(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let reauthenticate = || json_error(401, "reauthenticate", "sign in again first");
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
        if !recent(ctx, &user, &session) {
            return Ok(reauthenticate());
        }
        let owner = challenges::session_owner(&session.id_hash);
        Ok(match registration::creation_options(ctx, &user, &owner).await? {
            Ok(options) => options_response(options),
            Err(why) => json_error(409, "too_many_passkeys", why),
        })
    }
    .await;
    result.unwrap_or_else(Error::into_json)
}

/// `POST /account/passkeys` (`csrf`, `name`, `credential`): the new credential for this
/// session's challenge.
pub async fn add(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, session, params| async move {
        let Some(name) = passkey_name(params.get("name")?.unwrap_or("")) else {
            return Ok(refused(registration::NAME_TOO_LONG, 400));
        };
        let owner = challenges::session_owner(&session.id_hash);
        let credential = params.get("credential")?.unwrap_or("");
        let verified = match registration::verify(ctx, &user, &owner, credential).await? {
            Ok(v) => v,
            Err(why) => return Ok(refused(why, 400)),
        };
        if let Err(why) = registration::store(ctx, req, &user, &verified, &name, ("account", None)).await? {
            return Ok(refused(why, 409));
        }
        let codes = registration::recovery_codes_if_none(ctx, &user).await?;
        if codes.is_empty() {
            return Ok(done(ADDED));
        }
        Ok(Done::Other(crate::flow::stages::notice(
            Response::redirect(303, "/account"),
            "Passkey added",
            "You can use it to sign in without your password. If you lose it, one of these recovery codes \
             lets you in instead; each works once.",
            &codes,
        )))
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
        // A passkey-only account keeps one: without it, only an administrator could let the
        // user back in.
        let (sql, values) = if crate::flow::engine::passkey_only(ctx, &user) {
            passkeys::delete_keeping_one_statement(&user.id, &id)
        } else {
            passkeys::delete_statement(&user.id, &id)
        };
        if ctx.db.execute(sql, &values).await? == 0 {
            return Ok(refused(LAST_ONE, 409));
        }
        let removed = event(
            ctx,
            req,
            EventKind::PasskeyRemoved,
            &user.id,
            json!({ "credential": id }),
        )?;
        ctx.db.execute(removed.0, &removed.1).await?;
        Ok(done(REMOVED))
    })
    .await
}
