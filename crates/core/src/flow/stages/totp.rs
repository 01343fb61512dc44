//! The TOTP stage (`/oauth2/mfa`): a 6-digit code from one of the user's confirmed
//! authenticator devices (RFC 6238: SHA-1, 30 s, ±1 step). A code is accepted once: the device's
//! last accepted step moves forward with a compare-and-set, so a replay (in the same step, or
//! racing the first use) is refused. Codes count toward the lockout like passwords.

use super::{at, csrf_ok, email_code, flow_at, flow_of, form_token, user_of, CodeAttempt};
use crate::error::{Error, InternalError};
use crate::factors::totp::{self, TotpSecret};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, Flow};
use crate::http::{Request, Response};
use crate::pages;
use crate::store::totp_devices::{self, TotpDevice};
use crate::Ctx;

pub const INVALID_CODE: &str = "That code is not valid. Each code works once: wait for the next one and try again.";
const FORM_EXPIRED: &str = "Your session expired. Please try again.";

/// The second factors the stage's page offers the user.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Offers {
    pub totp: bool,
    pub passkey: bool,
    pub recovery: bool,
    pub email: bool,
}

/// What `user` can pass at this stage of `flow`.
pub(crate) async fn offers(ctx: &Ctx<'_>, flow: &Flow, user: &crate::store::users::User) -> Result<Offers, Error> {
    let held = totp_devices::second_factors(ctx.db, &user.id).await?;
    Ok(Offers {
        totp: held.totp_devices > 0,
        passkey: held.passkeys > 0,
        recovery: held.recovery_codes > 0,
        email: email_code::offered(ctx, flow, user).await?,
    })
}

/// The stage's page: a code from the app and/or the passkey, and links to the other ways.
pub(crate) fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    error: &str,
    status: u16,
    offers: Offers,
) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let resp = pages::Totp {
        client: &flow.audience,
        error,
        req: id,
        csrf: &token.csrf,
        totp: offers.totp,
        passkey: offers.passkey,
        nonce: pages::csp_nonce(ctx.rng)?,
        recovery_codes: offers.recovery,
        email: offers.email,
    }
    .response(status);
    Ok(token.finish(flow, resp))
}

/// The device's secret, opened from its sealed form.
pub(crate) fn secret_of(ctx: &Ctx<'_>, d: &TotpDevice) -> Result<TotpSecret, InternalError> {
    let key = ctx
        .secrets
        .sealing_key
        .as_ref()
        .ok_or_else(|| InternalError::new("GATEHOUSE_SEALING_KEY is not set"))?;
    let raw = key.open(&d.secret_sealed, &TotpDevice::seal_context(&d.user_id, &d.id))?;
    TotpSecret::from_bytes(raw)
}

/// Why no device took the code.
enum Checked {
    Accepted,
    Refused(&'static str),
}

/// Tries the code on each confirmed device; the first that verifies it and takes its step wins.
async fn check(ctx: &Ctx<'_>, user_id: &str, code: &str, now: i64) -> Result<Checked, Error> {
    let mut reason = "wrong";
    for d in totp_devices::confirmed_of_user(ctx.db, user_id).await? {
        let secret = secret_of(ctx, &d)?;
        let last = d.last_step.and_then(|s| u64::try_from(s).ok());
        match totp::verify(&secret, code, u64::try_from(now).unwrap_or(0), last) {
            Ok(step) => {
                let step = i64::try_from(step).map_err(|_| InternalError::new("totp step"))?;
                if totp_devices::accept_step(ctx.db, user_id, &d.id, step, now).await? {
                    return Ok(Checked::Accepted);
                }
                // Another request took this step first.
                reason = "replayed";
            }
            Err(totp::Refusal::Replayed) => reason = "replayed",
            Err(totp::Refusal::Malformed) => return Ok(Checked::Refused("malformed")),
            Err(totp::Refusal::Wrong) => {}
        }
    }
    Ok(Checked::Refused(reason))
}

/// `GET /oauth2/mfa?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::SecondFactor]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let user = user_of(ctx, &flow).await?;
        let offers = offers(ctx, &flow, &user).await?;
        if !offers.totp && !offers.passkey {
            // No app and no passkey: an emailed code, else the recovery codes.
            let other = if offers.email {
                email_code::PATH
            } else {
                "/oauth2/mfa/recovery"
            };
            return Ok(Response::redirect(303, &engine::url(other, &id)));
        }
        page(ctx, req, &id, &flow, "", 200, offers)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/mfa`.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            let offers = match flow.user_id {
                Some(_) => offers(ctx, &flow, &user_of(ctx, &flow).await?).await?,
                None => Offers {
                    totp: true,
                    ..Offers::default()
                },
            };
            return page(ctx, req, &id, &flow, FORM_EXPIRED, 403, offers);
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::SecondFactor]).await? {
            return Ok(elsewhere);
        }
        let user = user_of(ctx, &flow).await?;
        let code = params.get("code")?.unwrap_or("");
        let now = ctx.clock.now();
        let attempt = CodeAttempt::begin(ctx, req, &user).await?;
        let checked = if attempt.admitted {
            check(ctx, &user.id, code, now).await?
        } else {
            Checked::Refused("locked")
        };
        match checked {
            Checked::Accepted => {
                attempt.succeeded(ctx).await?;
                flow.pass(Factor::Totp, now);
                engine::advance(ctx, req, &id, flow, Vec::new()).await
            }
            Checked::Refused(reason) => {
                attempt.failed(ctx, &flow, &user, "totp", reason).await?;
                let offers = offers(ctx, &flow, &user).await?;
                page(ctx, req, &id, &flow, INVALID_CODE, 401, offers)
            }
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
