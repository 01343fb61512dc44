//! The "set a new password" stage (`/oauth2/password`): the user, signed in again in this flow,
//! chooses a new password (typed twice) that the password policy accepts (`policy::password`).
//! The account page's change, a password reset and an expired password end here. The new hash
//! (with the replaced one kept for the history rule), the end of every other session (with
//! everything issued to them) and the event land in one batch with the flow's step, so a thief's
//! session does not outlive the change.

use serde_json::json;

use super::{at, csrf_ok, flow_at, flow_of, form_token, user_of};
use crate::crypto::constant_time_eq;
use crate::error::{log_internal, Error};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, Flow, PasswordChange};
use crate::http::{Request, Response};
use crate::mail::{self, messages};
use crate::pages;
use crate::password::{self, Password};
use crate::policy;
use crate::store::{auth_requests, email_tokens, events, sessions, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const MISMATCH: &str = "The two passwords do not match.";
const FORM_EXPIRED: &str = "The form expired. Please try again.";
/// Earlier passwords refused in one reset flow before it ends.
pub const MAX_REUSED_GUESSES: u8 = 3;
pub const TOO_MANY_REUSED: &str =
    "Too many earlier passwords were tried. Ask for a new password-reset link to start again.";

struct Shown<'a> {
    user: &'a users::User,
    /// The user has a second factor: the shorter minimum length applies.
    has_second_factor: bool,
    error: &'a str,
    status: u16,
}

fn page(ctx: &Ctx<'_>, req: &Request, id: &str, flow: &Flow, shown: Shown<'_>) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let rules = &ctx.settings.password.rules;
    let resp = pages::html(
        shown.status,
        &pages::NewPassword {
            username: &shown.user.username,
            error: shown.error,
            req: id,
            csrf: &token.csrf,
            min_length: rules.min_length_for(shown.has_second_factor),
            rules: &rules.describe(shown.has_second_factor),
            reason: match flow.password_change {
                Some(PasswordChange::Expiry) => "Your password has expired. Choose a new one to continue.",
                Some(PasswordChange::Rules) => {
                    "Your password does not meet the password rules any more. Choose a new one to continue."
                }
                None => "",
            },
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
        let has_second_factor = engine::second_factor_backs_password(ctx, &user).await?;
        let shown = Shown {
            user: &user,
            has_second_factor,
            error: "",
            status: 200,
        };
        page(ctx, req, &id, &flow, shown)
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
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::NewPassword]).await? {
            return Ok(elsewhere);
        }
        let user = user_of(ctx, &flow).await?;
        let has_second_factor = engine::second_factor_backs_password(ctx, &user).await?;
        let refuse = |flow: &Flow, error: &str, status: u16| {
            let shown = Shown {
                user: &user,
                has_second_factor,
                error,
                status,
            };
            page(ctx, req, &id, flow, shown)
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return refuse(&flow, FORM_EXPIRED, 403);
        }
        let new = Password::new(params.get("new_password")?.unwrap_or(""));
        let again = Password::new(params.get("confirm_password")?.unwrap_or(""));
        if !constant_time_eq(new.expose().as_bytes(), again.expose().as_bytes()) {
            return refuse(&flow, MISMATCH, 400);
        }
        let owner = policy::password::Owner {
            user: Some(&user),
            words: policy::password::strength::user_words(&user),
            has_second_factor,
        };
        if let Err(refusal) = policy::password::check_new(ctx, new.expose(), owner).await? {
            // Whoever holds only a reset link learns from "must differ" that a guess at the
            // current (or an earlier) password was right: a few such answers end the flow, and
            // each new link is bounded by the mail limits.
            if matches!(refusal, policy::password::Refusal::Reused(_)) && !flow.passed_here(Factor::Password) {
                flow.reused_guesses = flow.reused_guesses.saturating_add(1);
                if flow.reused_guesses >= MAX_REUSED_GUESSES {
                    auth_requests::delete(ctx.db, &id).await?;
                    return Ok(Response::error_page(403, "access_denied", TOO_MANY_REUSED));
                }
                let (sql, values) = crate::flow::update_statement(&id, &flow)?;
                ctx.db.execute(sql, &values).await?;
            }
            let status = if matches!(refusal, policy::password::Refusal::Unchecked) {
                503
            } else {
                400
            };
            return refuse(&flow, &refusal.message(), status);
        }
        let now = ctx.clock.now();
        let hash = password::hash(new.expose(), ctx.rng)?;
        let mut changes = policy::password::new_password_statements(ctx, &user, &hash, now);
        // Reset links and emailed codes sent before the change stop working.
        changes.push(email_tokens::end_of_user_statement(
            &user.id,
            &[email_tokens::Kind::Reset, email_tokens::Kind::SignInCode],
            now,
        ));
        let by = if flow.passed_here(Factor::EmailLink) {
            "reset"
        } else if let Some(change) = flow.password_change {
            change.as_str()
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
                location: Some(&req.location),
                detail: json!({ "by": by }),
            },
        )?);
        flow.new_password = false;
        flow.password_change = None;
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
