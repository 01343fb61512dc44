//! The "set a new password" stage (`/oauth2/password`): the user, signed in again in this flow,
//! chooses a new password (typed twice). The account page uses it now; a password reset and an
//! expired password will be flows that end here too. The new hash, the end of every other
//! session (with everything issued to them) and the event land in one batch with the flow's
//! step, so a thief's session does not outlive the change.

use serde_json::json;

use super::{at, csrf_ok, flow_at, flow_of, form_token, user_of};
use crate::crypto::constant_time_eq;
use crate::error::{log_internal, Error};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, Flow};
use crate::http::{Request, Response};
use crate::mail::{self, messages};
use crate::pages;
use crate::password::{self, Password};
use crate::policy;
use crate::store::{email_tokens, events, sessions, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const MISMATCH: &str = "The two passwords do not match.";
const FORM_EXPIRED: &str = "The form expired. Please try again.";

fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    username: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let resp = pages::html(
        status,
        &pages::NewPassword {
            username,
            error,
            req: id,
            csrf: &token.csrf,
            min_length: password::MIN_LENGTH,
        },
    );
    Ok(token.finish(flow, resp))
}

/// `GET /oauth2/password?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::NewPassword]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let user = user_of(ctx, &flow).await?;
        page(ctx, req, &id, &flow, &user.username, "", 200)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /oauth2/password` (`new_password`, `confirm_password`).
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return page(ctx, req, &id, &flow, "", FORM_EXPIRED, 403);
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::NewPassword]).await? {
            return Ok(elsewhere);
        }
        let user = user_of(ctx, &flow).await?;
        let new = Password::new(params.get("new_password")?.unwrap_or(""));
        let again = Password::new(params.get("confirm_password")?.unwrap_or(""));
        if let Err(e) = password::check_length(new.expose()) {
            return page(ctx, req, &id, &flow, &user.username, &format!("The new {e}."), 400);
        }
        if !constant_time_eq(new.expose().as_bytes(), again.expose().as_bytes()) {
            return page(ctx, req, &id, &flow, &user.username, MISMATCH, 400);
        }
        let now = ctx.clock.now();
        let hash = password::hash(new.expose(), ctx.rng)?;
        let mut changes = vec![users::set_password_hash_statement(&user.id, &hash, now)];
        // Reset links and emailed codes sent before the change stop working.
        changes.push(email_tokens::end_of_user_statement(
            &user.id,
            &[email_tokens::Kind::Reset, email_tokens::Kind::SignInCode],
            now,
        ));
        let by = if flow.passed_here(Factor::EmailLink) {
            "reset"
        } else {
            "user"
        };
        // The flow's session (written when its factors were passed; `standing` checked that it
        // is live) and the flow itself stay; every other session and flow of the user ends.
        let keep = flow.session.as_deref().unwrap_or("");
        changes.extend(sessions::end_others_statements(&user.id, keep, &id, now));
        changes.push(events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: EventKind::PasswordChanged,
                user_id: Some(&user.id),
                client_id: flow.event_client.as_deref(),
                ip: Some(&policy::client_ip(ctx, req).to_string()),
                detail: json!({ "by": by }),
            },
        )?);
        flow.new_password = false;
        flow.password_changed = true;
        let advanced = engine::advance(ctx, req, &id, flow, changes).await?;
        // Tell the owner of the address: if it was not them, they learn it now. The change has
        // landed: a notice that cannot go out is logged, and the browser still goes on.
        if user.email_verified && !user.email.is_empty() {
            let notice =
                messages::password_changed(&user.email, &mail::site_name(ctx), &user.username, &pages::utc(now));
            let sent = match notice {
                Ok(message) => mail::send(ctx, req, Some(&user.id), message).await,
                Err(e) => Err(e.into()),
            };
            if let Err(Error::Internal(e)) = sent {
                log_internal(&e);
            }
        }
        Ok(advanced)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
