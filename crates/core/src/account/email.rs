//! The account page's address: proving it (a verification link), changing it, and emailed
//! sign-in codes. An address is unverified until its owner opens a link sent to it; until then
//! it receives no sign-in code and no reset link. Changing the address needs a recent sign-in
//! (like changing a factor), makes it unverified, turns emailed codes off and ends the links and
//! codes sent to the old one.

use serde_json::json;

use super::{done, event, form, refused, Done};
use crate::crypto::{random_id, random_token, token_hash};
use crate::error::Error;
use crate::factors::email::VERIFY_TTL;
use crate::http::{Request, Response};
use crate::mail::{self, messages, Sent};
use crate::pages;
use crate::store::email_tokens::{self, Kind};
use crate::store::{auth_requests, events, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const VERIFY_PATH: &str = "/account/email/verify";
pub const VERIFIED: &str = "Your email address is verified.";
pub const LINK_SENT: &str = "We sent a verification link to your address. It works for 24 hours.";
pub const LINK_INVALID: &str =
    "This verification link has expired, was used already, or is for an address the account no longer has.";
pub const NO_MAIL: &str = "This server sends no mail.";
pub const TOO_MANY: &str = "Too many mails were sent to this address. Please try again later.";

/// Sends a verification link to the user's current address.
async fn send_link(ctx: &Ctx<'_>, req: &Request, user: &users::User) -> Result<Sent, Error> {
    let token = random_token(ctx.rng)?;
    let link = messages::link(ctx.issuer(), VERIFY_PATH, &[("token", &token)]);
    let message = messages::verify_address(
        &user.email,
        &mail::site_name(ctx),
        &user.username,
        &link,
        VERIFY_TTL / 3600,
    )?;
    let sent = mail::send(ctx, req, Some(&user.id), message).await?;
    if sent == Sent::Queued {
        let now = ctx.clock.now();
        ctx.db
            .batch(&[
                email_tokens::insert_statement(&email_tokens::New {
                    id: &random_id(ctx.rng, "etk_")?,
                    kind: Kind::Verify,
                    secret_hash: &token_hash(&token),
                    user_id: &user.id,
                    email: &user.email,
                    flow_id: None,
                    now,
                    ttl: VERIFY_TTL,
                }),
                event(ctx, req, EventKind::EmailVerificationSent, &user.id, json!({}))?,
            ])
            .await?;
    }
    Ok(sent)
}

fn sent_page(sent: Sent, notice: &str) -> Done {
    match sent {
        Sent::Queued => done(notice),
        Sent::Limited => refused(TOO_MANY, 429),
        Sent::Unavailable => refused(NO_MAIL, 409),
    }
}

/// `POST /account/email/verify-send`.
pub async fn send_verification(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, false, |user, _, _| async move {
        if user.email_verified {
            return Ok(done(VERIFIED));
        }
        Ok(sent_page(send_link(ctx, req, &user).await?, LINK_SENT))
    })
    .await
}

/// `POST /account/email` (`email`): a new address, unverified; a link goes to it.
pub async fn change(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |mut user, _, params| async move {
        if !mail::available(ctx) {
            return Ok(refused(NO_MAIL, 409));
        }
        let new = params.get("email")?.unwrap_or("").trim().to_owned();
        if !crate::types::email::is_valid(&new) {
            return Ok(refused("That is not an email address.", 400));
        }
        if new == user.email {
            return Ok(refused("That is your address already.", 400));
        }
        let now = ctx.clock.now();
        let old = std::mem::replace(&mut user.email, new.clone());
        let was_verified = std::mem::replace(&mut user.email_verified, false);
        ctx.db
            .batch(&[
                users::set_email_statement(&user.id, &new, now),
                // A reset in progress (its link already opened) must not outlive the address.
                auth_requests::delete_of_user_statement(&user.id, ""),
                email_tokens::end_of_user_statement(&user.id, &[Kind::SignInCode, Kind::Reset, Kind::Verify], now),
                event(
                    ctx,
                    req,
                    EventKind::EmailChanged,
                    &user.id,
                    json!({ "from": old, "to": new }),
                )?,
            ])
            .await?;
        if was_verified {
            let notice =
                messages::address_changed(&old, &mail::site_name(ctx), &user.username, &new, &pages::utc(now))?;
            mail::send(ctx, req, Some(&user.id), notice).await?;
        }
        let sent = send_link(ctx, req, &user).await?;
        Ok(sent_page(
            sent,
            "Your address was changed. We sent a verification link to it.",
        ))
    })
    .await
}

/// `POST /account/email-otp` (`on`: `1` or `0`).
pub async fn set_email_otp(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, _, params| async move {
        if !ctx.settings.email_otp {
            return Ok(refused("Emailed sign-in codes are not offered on this server.", 409));
        }
        let on = params.get("on")? == Some("1");
        if on && !crate::flow::engine::email_code_usable(ctx, &user) {
            return Ok(refused(
                "Verify your email address first: codes go only to a verified address.",
                409,
            ));
        }
        let now = ctx.clock.now();
        ctx.db
            .batch(&[
                users::set_email_otp_statement(&user.id, on, now),
                event(ctx, req, EventKind::EmailOtpChanged, &user.id, json!({ "on": on }))?,
            ])
            .await?;
        Ok(done(if on {
            "Each sign-in now asks for a code sent to your address."
        } else {
            "Emailed sign-in codes are off."
        }))
    })
    .await
}

fn verify_page(status: u16, token: &str, error: &str, verified: bool) -> Response {
    let mut resp = pages::html(
        status,
        &pages::VerifyEmail {
            token,
            error,
            done: verified,
        },
    );
    resp.set_header("cache-control", "no-store");
    resp
}

/// `GET /account/email/verify?token=…`: a button, so that a mail scanner following the link
/// spends nothing.
pub async fn verify_show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let token = req.query_params().get("token")?.unwrap_or("").to_owned();
        // The token is only hashed: any length finds at most nothing.
        let live = email_tokens::live_by_secret(ctx.db, &token_hash(&token), Kind::Verify, ctx.clock.now()).await?;
        Ok(match live {
            Some(_) => verify_page(200, &token, "", false),
            None => verify_page(400, "", LINK_INVALID, false),
        })
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /account/email/verify` (`token`): the address is proved if it is still the user's.
pub async fn verify(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let token = params.get("token")?.unwrap_or("");
        let now = ctx.clock.now();
        // The token is only hashed: any length finds at most nothing.
        let live = email_tokens::live_by_secret(ctx.db, &token_hash(token), Kind::Verify, now).await?;
        let Some(live) = live else {
            return Ok(verify_page(400, "", LINK_INVALID, false));
        };
        let still_theirs = users::by_id(ctx.db, &live.user_id)
            .await?
            .is_some_and(|u| u.email == live.email);
        if !still_theirs || !email_tokens::spend(ctx.db, &live.id, now).await? {
            return Ok(verify_page(400, "", LINK_INVALID, false));
        }
        ctx.db
            .batch(&[
                users::set_email_verified_statement(&live.user_id, &live.email, now),
                events::record_statement(
                    ctx.rng,
                    now,
                    events::Event {
                        kind: EventKind::EmailVerified,
                        user_id: Some(&live.user_id),
                        client_id: None,
                        ip: Some(&crate::policy::client_ip(ctx, req).to_string()),
                        location: Some(&req.location),
                        detail: json!({}),
                    },
                )?,
            ])
            .await?;
        Ok(verify_page(200, "", "", true))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
