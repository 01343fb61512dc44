//! The emailed-code stage (`/oauth2/mfa/email`): a 6-digit code sent to the user's verified
//! address stands in for the second factor (`GATEHOUSE_EMAIL_OTP=on`). It is the weakest of the
//! second factors (a mailbox can be phished or taken over, and a code can be read over the
//! user's shoulder): the README says so, and an app or TOTP is preferred where both exist.
//!
//! A code works once, for ten minutes, for this flow only; it is stored as a keyed hash and
//! compared in constant time. A wrong code counts toward the account's lockout and both
//! reputations like a wrong password, and five wrong codes end the code. Arriving at the stage
//! sends the first code; another needs the resend button, after a cool-down, within the mail
//! bounds of the address and the client IP.

use serde_json::json;

use super::{at, csrf_ok, flow_at, flow_of, form_token, user_of, CodeAttempt};
use crate::crypto::random_id;
use crate::error::Error;
use crate::factors::email::{self, CODE_MAX_FAILURES, CODE_TTL, RESEND_COOLDOWN};
use crate::flow::engine::{self, enrolled};
use crate::flow::plan::{Factor, Stage};
use crate::flow::Flow;
use crate::http::{Params, Request, Response};
use crate::mail::{self, messages, Sent};
use crate::pages;
use crate::policy;
use crate::store::email_tokens::{self, Kind};
use crate::store::{events, totp_devices, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const PATH: &str = "/oauth2/mfa/email";
pub const INVALID_CODE: &str = "That code is not valid. Check the latest mail, or send a new code.";
pub const SENT: &str = "We sent a code to your email address.";
pub const NO_CODE: &str = "The code expired or was tried too often. Send a new one.";
pub const TOO_MANY_MAILS: &str = "Too many mails were sent. Please try again later, or use another method.";
const FORM_EXPIRED: &str = "Your session expired. Please try again.";

/// `a•••@example.com`: enough to recognise the address, not enough to learn it from the page.
pub fn masked(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "your address".to_owned(),
    }
}

/// Whether an emailed code can be the second factor of this flow: it counts for the user
/// (`Enrolled::email_counts`: usable, and chosen or the only factor they hold), and a fresh
/// password was passed (after a reset link alone the mailbox again is no second factor).
pub async fn offered(ctx: &Ctx<'_>, flow: &Flow, user: &users::User) -> Result<bool, Error> {
    let fresh_password = flow
        .passed()
        .iter()
        .any(|p| p.factor == Factor::Password && flow.fresh_after.is_none_or(|t| p.at >= t));
    Ok(fresh_password && enrolled(ctx, user).await?.email_counts())
}

/// What the page shows besides the form.
struct Shown<'s> {
    notice: &'s str,
    error: &'s str,
    status: u16,
}

async fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    user: &users::User,
    shown: Shown<'_>,
) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let held = totp_devices::second_factors(ctx.db, &user.id).await?;
    let resp = pages::html(
        shown.status,
        &pages::EmailCode {
            client: &flow.audience,
            address: &masked(&user.email),
            notice: shown.notice,
            error: shown.error,
            req: id,
            csrf: &token.csrf,
            totp: held.totp_devices > 0,
            recovery_codes: held.recovery_codes > 0,
        },
    );
    Ok(token.finish(flow, resp))
}

/// Sends a new code for the flow (the previous one stops working).
async fn send_code(ctx: &Ctx<'_>, req: &Request, id: &str, flow: &Flow, user: &users::User) -> Result<Sent, Error> {
    let now = ctx.clock.now();
    let code = email::new_code(ctx.rng)?;
    let hash = email::code_hash(ctx.secrets.cookie_secret.expose().as_bytes(), id, code.expose());
    let token_id = random_id(ctx.rng, "etk_")?;
    let mail = messages::sign_in_code(&user.email, &mail::site_name(ctx), code.expose(), CODE_TTL / 60)?;
    let sent = mail::send(ctx, req, Some(&user.id), mail).await?;
    if sent != Sent::Queued {
        return Ok(sent);
    }
    ctx.db
        .batch(&[
            email_tokens::end_of_flow_statement(id, Kind::SignInCode, now),
            email_tokens::insert_statement(&email_tokens::New {
                id: &token_id,
                kind: Kind::SignInCode,
                secret_hash: &hash,
                user_id: &user.id,
                email: &user.email,
                flow_id: Some(id),
                now,
                ttl: CODE_TTL,
            }),
            events::record_statement(
                ctx.rng,
                now,
                events::Event {
                    kind: EventKind::EmailCodeSent,
                    user_id: Some(&user.id),
                    client_id: flow.event_client.as_deref(),
                    ip: Some(&policy::client_ip(ctx, req).to_string()),
                    location: Some(&req.location),
                    detail: json!({}),
                },
            )?,
        ])
        .await?;
    Ok(sent)
}

fn sent_message(sent: Sent) -> Shown<'static> {
    match sent {
        Sent::Queued => Shown {
            notice: SENT,
            error: "",
            status: 200,
        },
        Sent::Limited | Sent::Unavailable => Shown {
            notice: "",
            error: TOO_MANY_MAILS,
            status: 429,
        },
    }
}

/// The flow at this stage with its user, where an emailed code is offered; otherwise where the
/// browser goes instead.
async fn here(ctx: &Ctx<'_>, req: &Request, id: &str, flow: &Flow) -> Result<Result<users::User, Response>, Error> {
    if let Some(elsewhere) = at(ctx, req, id, flow, &[Stage::SecondFactor]).await? {
        return Ok(Err(elsewhere));
    }
    let user = user_of(ctx, flow).await?;
    if !offered(ctx, flow, &user).await? {
        // The app or the recovery codes are what is left.
        return Ok(Err(Response::redirect(303, &engine::url("/oauth2/mfa/recovery", id))));
    }
    Ok(Ok(user))
}

/// A form posted to this stage: its flow (at this stage, where an emailed code is offered), its
/// user, and a valid CSRF token; otherwise the answer.
async fn posted(
    ctx: &Ctx<'_>,
    req: &Request,
    params: &Params,
) -> Result<Result<(String, Flow, users::User), Response>, Error> {
    let (id, flow) = match flow_of(ctx, req, params).await? {
        Ok(f) => f,
        Err(page) => return Ok(Err(page)),
    };
    let user = match here(ctx, req, &id, &flow).await? {
        Ok(u) => u,
        Err(elsewhere) => return Ok(Err(elsewhere)),
    };
    if !csrf_ok(ctx, req, &id, params)? {
        let shown = Shown {
            notice: "",
            error: FORM_EXPIRED,
            status: 403,
        };
        return page(ctx, req, &id, &flow, &user, shown).await.map(Err);
    }
    Ok(Ok((id, flow, user)))
}

/// `GET /oauth2/mfa/email?req=…`: the first arrival sends a code.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::SecondFactor]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let user = match here(ctx, req, &id, &flow).await? {
            Ok(u) => u,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let shown = match email_tokens::last_sent_of_flow(ctx.db, &id, Kind::SignInCode).await? {
            None => sent_message(send_code(ctx, req, &id, &flow, &user).await?),
            Some(_) => Shown {
                notice: "",
                error: "",
                status: 200,
            },
        };
        page(ctx, req, &id, &flow, &user, shown).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/mfa/email/send`: another code, after the cool-down.
pub async fn resend(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, flow, user) = match posted(ctx, req, &params).await? {
            Ok(p) => p,
            Err(answer) => return Ok(answer),
        };
        let now = ctx.clock.now();
        if let Some(last) = email_tokens::last_sent_of_flow(ctx.db, &id, Kind::SignInCode).await? {
            let wait = last + RESEND_COOLDOWN - now;
            if wait > 0 {
                let error =
                    format!("A code was sent moments ago. Please wait {wait} seconds before asking for another.");
                let shown = Shown {
                    notice: "",
                    error: &error,
                    status: 429,
                };
                let mut resp = page(ctx, req, &id, &flow, &user, shown).await?;
                resp.set_header("retry-after", &wait.to_string());
                return Ok(resp);
            }
        }
        let shown = sent_message(send_code(ctx, req, &id, &flow, &user).await?);
        page(ctx, req, &id, &flow, &user, shown).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/mfa/email`.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow, user) = match posted(ctx, req, &params).await? {
            Ok(p) => p,
            Err(answer) => return Ok(answer),
        };
        let typed = params.get("code")?.unwrap_or("");
        let now = ctx.clock.now();
        // Nothing to guess without a live code (expired, spent, tried too often, or sent to an
        // address the user no longer has): no attempt is counted.
        let Some(live) = email_tokens::live_of_flow(ctx.db, &id, Kind::SignInCode, now, CODE_MAX_FAILURES)
            .await?
            .filter(|t| t.email == user.email)
        else {
            let shown = Shown {
                notice: "",
                error: NO_CODE,
                status: 401,
            };
            return page(ctx, req, &id, &flow, &user, shown).await;
        };
        let attempt = CodeAttempt::begin(ctx, req, &user).await?;
        let key = ctx.secrets.cookie_secret.expose().as_bytes();
        let reason = if !attempt.admitted {
            "locked"
        } else if !email::code_matches(key, &id, typed, &live.secret_hash) {
            email_tokens::fail(ctx.db, &live.id).await?;
            if email::normalize(typed).is_none() {
                "malformed"
            } else {
                "wrong"
            }
        } else if email_tokens::spend(ctx.db, &live.id, now).await? {
            attempt.succeeded(ctx).await?;
            flow.pass(Factor::EmailCode, now);
            return engine::advance(ctx, req, &id, flow, Vec::new()).await;
        } else {
            // Another request spent it first.
            "replayed"
        };
        attempt.failed(ctx, &flow, &user, "email_code", reason).await?;
        let shown = Shown {
            notice: "",
            error: INVALID_CODE,
            status: 401,
        };
        page(ctx, req, &id, &flow, &user, shown).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn the_address_is_shown_masked() {
        assert_eq!(masked("ann@example.com"), "a•••@example.com");
        assert_eq!(masked("x"), "your address");
    }
}
