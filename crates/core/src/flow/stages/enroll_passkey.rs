//! Enrolling a passkey as the second factor a sign-in requires (`/oauth2/mfa/enroll/passkey`),
//! beside the authenticator app (`enroll_totp`), from the same page. Registration proves no
//! possession by itself (a `none` attestation signs nothing), so it passes no factor: the plan
//! then asks for the new passkey at the second-factor stage, once, like any other sign-in. A
//! first set of recovery codes is issued with it, shown once.

use super::passkey_registration::{self as registration, json_error, options_response, passkey_name};
use super::{at, csrf_ok, flow_of, notice, user_of};
use crate::error::Error;
use crate::flow::engine;
use crate::flow::plan::Stage;
use crate::http::{Request, Response};
use crate::store::webauthn_challenges as challenges;
use crate::Ctx;

const STAGE: &[Stage] = &[Stage::EnrollSecondFactor];
pub const AFTER_RESET: &str = "After a reset link, set up an authenticator app here. You can add a passkey from your \
                               account page once your new password is set.";

/// Whether the flow passed the password recently enough to enroll: a passkey signs in by itself,
/// so a reset link (the mailbox alone) must not leave one behind.
fn password_passed(ctx: &Ctx<'_>, flow: &crate::flow::Flow) -> bool {
    let after = ctx.clock.now() - crate::flow::plan::FRESH_PASSWORD_TO_ENROLL;
    flow.passed()
        .iter()
        .any(|p| p.factor == crate::flow::plan::Factor::Password && p.at >= after)
}

/// `POST /oauth2/mfa/enroll/passkey/options` (`req`, `csrf`).
pub async fn options(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let Ok((id, flow)) = flow_of(ctx, req, &params).await? else {
            return Ok(json_error(400, "invalid_request", "unknown or expired sign-in"));
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return Ok(json_error(
                403,
                "invalid_request",
                "Your session expired. Please try again.",
            ));
        }
        if !matches!(
            engine::standing(ctx, &flow).await?,
            engine::Standing::At(Stage::EnrollSecondFactor)
        ) {
            return Ok(json_error(
                409,
                "wrong_stage",
                "this sign-in does not enroll a second factor now",
            ));
        }
        if !password_passed(ctx, &flow) {
            return Ok(json_error(409, "password_required", AFTER_RESET));
        }
        let user = user_of(ctx, &flow).await?;
        Ok(
            match registration::creation_options(ctx, &user, &challenges::flow_owner(&id)).await? {
                Ok(options) => options_response(options),
                Err(why) => json_error(409, "too_many_passkeys", why),
            },
        )
    }
    .await;
    result.unwrap_or_else(Error::into_json)
}

/// `POST /oauth2/mfa/enroll/passkey` (`req`, `csrf`, `name`, `credential`).
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        let back = |message: &str, status: u16| {
            Response::error_page(status, "invalid_request", &format!("{message} Go back and try again."))
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return Ok(back("Your session expired.", 403));
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, STAGE).await? {
            return Ok(elsewhere);
        }
        if !password_passed(ctx, &flow) {
            return Ok(back(AFTER_RESET, 409));
        }
        let user = user_of(ctx, &flow).await?;
        let Some(name) = passkey_name(params.get("name")?.unwrap_or("")) else {
            return Ok(back(registration::NAME_TOO_LONG, 400));
        };
        let credential = params.get("credential")?.unwrap_or("");
        let verified = match registration::verify(ctx, &user, &challenges::flow_owner(&id), credential).await? {
            Ok(v) => v,
            Err(why) => return Ok(back(why, 400)),
        };
        let by = ("sign_in", flow.event_client.as_deref());
        if let Err(why) = registration::store(ctx, req, &user, &verified, &name, by).await? {
            return Ok(back(why, 409));
        }
        let codes = registration::recovery_codes_if_none(ctx, &user).await?;
        let advanced = engine::advance(ctx, req, &id, flow, Vec::new()).await?;
        Ok(notice(
            advanced,
            "Passkey added",
            "Use it now to finish signing in, and from now on when you sign in. If you lose it, one of \
             these recovery codes lets you in instead; each works once.",
            &codes,
        ))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
