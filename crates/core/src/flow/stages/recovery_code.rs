//! The recovery-code stage (`/oauth2/mfa/recovery`): one of the ten single-use codes stands in
//! for the second factor. Spending it is one UPDATE (two requests with one code cannot both
//! pass); it is recorded as an event, and the user is told how many are left.

use serde_json::json;

use super::{at, csrf_ok, email_code, flow_at, flow_of, form_token, notice, user_of, CodeAttempt};
use crate::error::Error;
use crate::factors::recovery_codes;
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, Flow};
use crate::http::{Request, Response};
use crate::pages;
use crate::store::{events, recovery_codes as stored, totp_devices};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const INVALID_CODE: &str = "That recovery code is not valid, or it was used already.";

fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    error: &str,
    status: u16,
    (totp, email): (bool, bool),
) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let resp = pages::html(
        status,
        &pages::RecoveryCode {
            error,
            req: id,
            csrf: &token.csrf,
            totp,
            email,
        },
    );
    Ok(token.finish(flow, resp))
}

/// `GET /oauth2/mfa/recovery?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::SecondFactor]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let user = user_of(ctx, &flow).await?;
        let held = totp_devices::second_factors(ctx.db, &user.id).await?;
        let email = email_code::offered(ctx, &flow, &user).await?;
        page(ctx, req, &id, &flow, "", 200, (held.totp_devices > 0, email))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/mfa/recovery`.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return page(
                ctx,
                req,
                &id,
                &flow,
                "Your session expired. Please try again.",
                403,
                (false, false),
            );
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::SecondFactor]).await? {
            return Ok(elsewhere);
        }
        let user = user_of(ctx, &flow).await?;
        let typed = params.get("code")?.unwrap_or("");
        let now = ctx.clock.now();
        let attempt = CodeAttempt::begin(ctx, req, &user).await?;
        let spent = match recovery_codes::hash(&user.id, typed) {
            Some(hash) if attempt.admitted => stored::spend(ctx.db, &user.id, &hash, now).await?,
            _ => false,
        };
        if !spent {
            let reason = if recovery_codes::normalize(typed).is_some() {
                "wrong_or_used"
            } else {
                "malformed"
            };
            attempt.failed(ctx, &flow, &user, "recovery_code", reason).await?;
            let held = totp_devices::second_factors(ctx.db, &user.id).await?;
            let email = email_code::offered(ctx, &flow, &user).await?;
            return page(ctx, req, &id, &flow, INVALID_CODE, 401, (held.totp_devices > 0, email));
        }
        attempt.succeeded(ctx).await?;
        let left = stored::remaining(ctx.db, &user.id).await?;
        let used = events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: EventKind::RecoveryCodeUsed,
                user_id: Some(&user.id),
                client_id: flow.event_client.as_deref(),
                ip: Some(&crate::policy::client_ip(ctx, req).to_string()),
                location: Some(&req.location),
                detail: json!({ "remaining": left }),
            },
        )?;
        flow.pass(Factor::RecoveryCode, now);
        let advanced = engine::advance(ctx, req, &id, flow, vec![used]).await?;
        let message = match left {
            0 => "You have no recovery codes left. Set up new ones from your account page.".to_owned(),
            1 => "You have 1 recovery code left.".to_owned(),
            n => format!("You have {n} recovery codes left."),
        };
        Ok(notice(advanced, "Recovery code accepted", &message, &[]))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
