//! "Forgot your password?" (`/oauth2/reset`): a link sent to the account's verified address
//! stands in for the password, and the flow then sets a new one (the new-password stage) before
//! it completes. It is part of the sign-in flow it started from, so after the reset the user
//! goes on to where they were signing in.
//!
//! - The answer is the same whether or not the account exists, has a verified address, or the
//!   mail bounds were reached, and it costs the same: one user lookup, one count against the
//!   mail bounds (of the typed name when there is no address), one batched write.
//! - The link works once, for 15 minutes, and only in the browser that asked: it names the flow,
//!   and the flow is bound to that browser. Opened anywhere else (a mail scanner, another
//!   device) it does nothing.
//! - The link is the first factor only: a user with an authenticator app or recovery codes
//!   still passes one (an emailed code does not count after it: the same mailbox twice).
//! - Setting the new password ends every other session, flow and grant of the user, and a
//!   notice goes to the address (`new_password`).

use serde_json::json;

use super::{csrf_ok, flow_at, flow_of, form_token};
use crate::crypto::{random_id, random_token, token_hash};
use crate::error::Error;
use crate::factors::email::RESET_TTL;
use crate::flow::engine::{self, Standing};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{load, Flow, NotHere};
use crate::http::{Request, Response};
use crate::mail::{self, messages, MailKind};
use crate::pages;
use crate::policy;
use crate::store::email_tokens::{self, Kind};
use crate::store::{events, users};
use crate::types::event_kind::EventKind;
use crate::{limits, Ctx};

pub const PATH: &str = "/oauth2/reset";
pub const CONFIRM_PATH: &str = "/oauth2/reset/confirm";
pub const SENT: &str = "If an account with a verified email address matches, we sent it a link to choose a new password. It works for 15 minutes, in this browser only.";
pub const LINK_INVALID: &str = "This password-reset link has expired, was used already, or belongs to another request. Ask for a new one from the sign-in page.";
pub const OTHER_BROWSER: &str =
    "Open this password-reset link in the browser where you asked for it (or ask again from this one).";
pub const UNAVAILABLE: &str = "Password reset by email is not available here. Ask your administrator.";
const FORM_EXPIRED: &str = "The form expired. Please try again.";

/// The stages before the password is passed: where "forgot your password?" is offered.
const BEFORE_PASSWORD: &[Stage] = &[Stage::Identify, Stage::Password];

fn form(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    notice: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let resp = pages::html(
        status,
        &pages::Reset {
            client: &flow.audience,
            notice,
            error,
            req: id,
            csrf: &token.csrf,
        },
    );
    Ok(token.finish(flow, resp))
}

/// `GET /oauth2/reset?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), BEFORE_PASSWORD).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        if !mail::available(ctx) {
            return form(ctx, req, &id, &flow, "", UNAVAILABLE, 404);
        }
        form(ctx, req, &id, &flow, "", "", 200)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/reset` (`login`: a username or a verified address).
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return form(ctx, req, &id, &flow, "", FORM_EXPIRED, 403);
        }
        if let Some(elsewhere) = super::at(ctx, req, &id, &flow, BEFORE_PASSWORD).await? {
            return Ok(elsewhere);
        }
        if !mail::available(ctx) {
            return form(ctx, req, &id, &flow, "", UNAVAILABLE, 404);
        }
        let login = params.get("login")?.unwrap_or("").trim().to_owned();
        if login.is_empty() || login.len() > limits::USERNAME_INPUT {
            return form(ctx, req, &id, &flow, "", "Enter your username or email address.", 400);
        }
        let now = ctx.clock.now();
        let user = users::by_username_or_verified_email(ctx.db, &login)
            .await?
            .filter(|u| u.email_verified && !u.email.is_empty() && !u.disabled);
        // The bounds are counted whether or not a mail goes out: the same cost either way.
        let limited = mail::admit(
            ctx,
            req,
            user.as_ref().map_or(&login, |u| &u.email),
            MailKind::PasswordReset,
        )
        .await?;
        let ip = policy::client_ip(ctx, req).to_string();
        // A passkey-only account has no password to reset: its recovery is an administrator's
        // passkey setup link, never the mailbox. The page says the same as for anyone else.
        let passkey_only = user.as_ref().is_some_and(|u| engine::passkey_only(ctx, u));
        let mut statements = Vec::with_capacity(2);
        let sent = match (&user, limited) {
            (Some(u), None) if !passkey_only => {
                let token = random_token(ctx.rng)?;
                let link = messages::link(ctx.issuer(), CONFIRM_PATH, &[("req", &id), ("token", &token)]);
                let message =
                    messages::password_reset(&u.email, &mail::site_name(ctx), &u.username, &link, RESET_TTL / 60)?;
                statements.push(email_tokens::insert_statement(&email_tokens::New {
                    id: &random_id(ctx.rng, "etk_")?,
                    kind: Kind::Reset,
                    secret_hash: &token_hash(&token),
                    user_id: &u.id,
                    email: &u.email,
                    flow_id: Some(&id),
                    now,
                    ttl: RESET_TTL,
                }));
                mail::queue_admitted(ctx, message);
                true
            }
            _ => false,
        };
        let why = match (&user, limited) {
            (None, _) => "no_account",
            (Some(_), _) if passkey_only => "passkey_only",
            (Some(_), Some(by)) => by,
            (Some(_), None) => "sent",
        };
        statements.push(events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: EventKind::PasswordResetRequested,
                user_id: user.as_ref().map(|u| u.id.as_str()),
                client_id: flow.event_client.as_deref(),
                ip: Some(&ip),
                location: Some(&req.location),
                detail: json!({ "sent": sent, "reason": why }),
            },
        )?);
        ctx.db.batch(&statements).await?;
        form(ctx, req, &id, &flow, SENT, "", 200)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `GET /oauth2/reset/confirm?req=…&token=…`: the link from the mail. In the browser that asked,
/// it passes the flow's first factor and sends the browser on to what remains (a second factor,
/// then the new password).
pub async fn confirm(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.query_params();
        let id = params.require("req")?.to_owned();
        let token = params.get("token")?.unwrap_or("");
        let mut flow = match load(ctx, req, &id).await? {
            Ok(f) => f,
            Err(NotHere::OtherBrowser) => return Ok(Response::error_page(400, "invalid_request", OTHER_BROWSER)),
            Err(NotHere::Gone) => return Ok(Response::error_page(400, "invalid_request", LINK_INVALID)),
        };
        // A link opens only a flow still waiting for its password: one that went on (signed in
        // meanwhile, or opened a link already) takes no other.
        if !matches!(
            engine::standing(ctx, &flow).await?,
            Standing::At(Stage::Identify | Stage::Password)
        ) {
            return Ok(Response::error_page(400, "invalid_request", LINK_INVALID));
        }
        let now = ctx.clock.now();
        // The token is only hashed: any length finds at most nothing.
        let live = email_tokens::live_by_secret(ctx.db, &token_hash(token), Kind::Reset, now).await?;
        let Some(live) = live.filter(|t| t.flow_id.as_deref() == Some(id.as_str())) else {
            return Ok(Response::error_page(400, "invalid_request", LINK_INVALID));
        };
        // The account must still be what it was when the link was sent.
        let user = users::by_id(ctx.db, &live.user_id)
            .await?
            .filter(|u| u.email == live.email && u.email_verified && !u.disabled && !engine::passkey_only(ctx, u));
        let Some(user) = user else {
            return Ok(Response::error_page(400, "invalid_request", LINK_INVALID));
        };
        if !email_tokens::spend(ctx.db, &live.id, now).await? {
            return Ok(Response::error_page(400, "invalid_request", LINK_INVALID));
        }
        flow.identify(&user.id);
        flow.pass(Factor::EmailLink, now);
        flow.new_password = true;
        let used = events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: EventKind::PasswordResetLinkUsed,
                user_id: Some(&user.id),
                client_id: flow.event_client.as_deref(),
                ip: Some(&policy::client_ip(ctx, req).to_string()),
                location: Some(&req.location),
                detail: json!({}),
            },
        )?;
        engine::advance(ctx, req, &id, flow, vec![used]).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
