//! A passkey setup link (`/account/passkey-setup?token=…`): an administrator's one-time link
//! (`admin::factors::passkey_setup`) with which a user registers a passkey without signing in.
//! It is the recovery of a passkey-only account (no password, no mailbox stands in for it) and
//! the way such an account gets its first passkey. Opening the link shows a page and spends
//! nothing (mail scanners open links); the token is spent when a passkey is registered with it.
//! The challenge is bound to the token (`store::webauthn_challenges::setup_owner`), and the
//! forms to the browser that opened the page (its CSRF token).

use crate::crypto::token_hash;
use crate::error::Error;
use crate::flow::stages::passkey_registration::{self as registration, json_error, options_response, passkey_name};
use crate::http::{Params, Request, Response};
use crate::pages;
use crate::store::email_tokens::{self, EmailToken, Kind};
use crate::store::users;
use crate::store::webauthn_challenges as challenges;
use crate::web::cookies;
use crate::Ctx;

pub const PATH: &str = "/account/passkey-setup";
pub const LINK_INVALID: &str =
    "This passkey setup link has expired, was already used, or is not valid. Ask your administrator for a new one.";
pub const SET_UP: &str = "Your passkey is set up. Sign in with it from now on.";
const CSRF_PURPOSE: &str = "passkey-setup";

/// The link's live token and its user (enabled).
async fn live(ctx: &Ctx<'_>, token: &str) -> Result<Option<(EmailToken, users::User)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    // The token is only hashed: any length finds at most nothing.
    let Some(t) = email_tokens::live_by_secret(ctx.db, &token_hash(token), Kind::PasskeySetup, ctx.clock.now()).await?
    else {
        return Ok(None);
    };
    let user = users::by_id(ctx.db, &t.user_id).await?.filter(|u| !u.disabled);
    Ok(user.map(|u| (t, u)))
}

fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    user: &users::User,
    token: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    let csrf = cookies::csrf_token(ctx, &browser, CSRF_PURPOSE);
    let mut resp = pages::PasskeySetup {
        username: &user.username,
        token,
        csrf: &csrf,
        error,
        nonce: pages::csp_nonce(ctx.rng)?,
    }
    .response(status);
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

fn invalid() -> Response {
    let mut resp = Response::error_page(400, "invalid_request", LINK_INVALID);
    resp.set_header("cache-control", "no-store");
    resp
}

fn csrf_ok(ctx: &Ctx<'_>, req: &Request, params: &Params) -> Result<bool, Error> {
    Ok(cookies::csrf_ok(
        ctx,
        req,
        CSRF_PURPOSE,
        params.get("csrf")?.unwrap_or(""),
    ))
}

/// `GET /account/passkey-setup?token=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let token = req.query_params().get("token")?.unwrap_or("").to_owned();
        match live(ctx, &token).await? {
            Some((_, user)) => page(ctx, req, &user, &token, "", 200),
            None => Ok(invalid()),
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /account/passkey-setup/options` (`token`, `csrf`): the creation options.
pub async fn options(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let token = params.get("token")?.unwrap_or("").to_owned();
        let Some((_, user)) = live(ctx, &token).await? else {
            return Ok(json_error(400, "invalid_request", LINK_INVALID));
        };
        if !csrf_ok(ctx, req, &params)? {
            return Ok(json_error(
                403,
                "invalid_request",
                "The form expired. Please reload the page.",
            ));
        }
        let owner = challenges::setup_owner(&token_hash(&token));
        Ok(match registration::creation_options(ctx, &user, &owner).await? {
            Ok(options) => options_response(options),
            Err(why) => json_error(409, "too_many_passkeys", why),
        })
    }
    .await;
    result.unwrap_or_else(Error::into_json)
}

/// `POST /account/passkey-setup` (`token`, `csrf`, `name`, `credential`): registers the passkey
/// and spends the link.
pub async fn finish(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let token = params.get("token")?.unwrap_or("").to_owned();
        let Some((live, user)) = live(ctx, &token).await? else {
            return Ok(invalid());
        };
        if !csrf_ok(ctx, req, &params)? {
            return page(ctx, req, &user, &token, "The form expired. Please try again.", 403);
        }
        let Some(name) = passkey_name(params.get("name")?.unwrap_or("")) else {
            return page(ctx, req, &user, &token, registration::NAME_TOO_LONG, 400);
        };
        let owner = challenges::setup_owner(&token_hash(&token));
        let credential = params.get("credential")?.unwrap_or("");
        let verified = match registration::verify(ctx, &user, &owner, credential).await? {
            Ok(v) => v,
            Err(why) => return page(ctx, req, &user, &token, why, 400),
        };
        // The link is spent first: of two registrations racing with it, one goes on. If the
        // passkey cannot be stored after all, the link is given back, so the user is not
        // stranded without one.
        let spent_at = ctx.clock.now();
        if !email_tokens::spend(ctx.db, &live.id, spent_at).await? {
            return Ok(invalid());
        }
        if let Err(why) = registration::store(ctx, req, &user, &verified, &name, ("setup_link", None)).await? {
            email_tokens::unspend(ctx.db, &live.id, spent_at).await?;
            let mut resp = Response::error_page(
                409,
                "conflict",
                &format!("{why} Open the link again to try another passkey."),
            );
            resp.set_header("cache-control", "no-store");
            return Ok(resp);
        }
        let mut resp = pages::html(
            200,
            &pages::Notice {
                title: "Passkey set up",
                message: SET_UP,
                codes: &[],
                next: "/account",
            },
        );
        resp.set_header("cache-control", "no-store");
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
