//! The stages of a flow, one file each. A stage has two operations: `show` (its page, on GET)
//! and `submit` (its form, on POST). A stage that is not the flow's current one sends the
//! browser to the one that is; the abuse policies (`crate::policy`) are called from here, never
//! the other way round.

pub mod consent;
pub mod email_code;
pub mod enroll_passkey;
pub mod enroll_totp;
pub mod new_password;
pub mod passkey;
pub mod passkey_registration;
pub mod password;
pub mod recovery_code;
pub mod reset;
pub mod totp;

use super::engine::{self, Standing};
use super::plan::Stage;
use super::{load, Flow};
use serde_json::json;

use crate::error::{Error, InternalError};
use crate::factors::recovery_codes::RecoveryCode;
use crate::http::{Params, Request, Response};
use crate::pages;
use crate::policy::{self, lockout::Admission};
use crate::store::{events, users};
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::Ctx;

/// The flow a stage's request names (`req`), or the page that says why it cannot go on.
pub(crate) async fn flow_of(
    ctx: &Ctx<'_>,
    req: &Request,
    params: &Params,
) -> Result<Result<(String, Flow), Response>, Error> {
    let id = params.require("req")?.to_owned();
    Ok(match load(ctx, req, &id).await? {
        Ok(flow) => Ok((id, flow)),
        Err(why) => Err(engine::not_here_page(why)),
    })
}

/// The flow a stage's page request names, standing at that stage (one of `stages`); otherwise
/// the page that says why it cannot go on, or the redirect to where the flow stands.
pub(crate) async fn flow_at(
    ctx: &Ctx<'_>,
    req: &Request,
    params: &Params,
    stages: &[Stage],
) -> Result<Result<(String, Flow), Response>, Error> {
    let (id, flow) = match flow_of(ctx, req, params).await? {
        Ok(f) => f,
        Err(page) => return Ok(Err(page)),
    };
    Ok(match at(ctx, req, &id, &flow, stages).await? {
        Some(elsewhere) => Err(elsewhere),
        None => Ok((id, flow)),
    })
}

/// Whether the flow stands at one of `stages`; if not, the redirect to where it stands.
pub(crate) async fn at(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    stages: &[Stage],
) -> Result<Option<Response>, Error> {
    match engine::standing(ctx, flow).await? {
        Standing::At(s) if stages.contains(&s) => Ok(None),
        _ => engine::advance(ctx, req, id, flow.clone(), Vec::new()).await.map(Some),
    }
}

/// The browser binding and the CSRF token for a stage's form.
pub(crate) struct FormToken {
    pub csrf: String,
    pub set_cookie: Option<String>,
}

pub(crate) fn form_token(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<FormToken, Error> {
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    Ok(FormToken {
        csrf: cookies::csrf_token(ctx, &browser, id),
        set_cookie,
    })
}

impl FormToken {
    /// Puts the binding cookie (if new) and the flow's `form-action` on a stage's page.
    pub fn finish(self, flow: &Flow, mut resp: Response) -> Response {
        resp.form_action = flow.form_action.clone();
        if let Some(c) = self.set_cookie {
            resp.add_header("set-cookie", &c);
        }
        resp
    }
}

/// Whether a stage's form carries this browser's CSRF token for the flow.
pub(crate) fn csrf_ok(ctx: &Ctx<'_>, req: &Request, id: &str, params: &Params) -> Result<bool, Error> {
    Ok(cookies::csrf_ok(ctx, req, id, params.get("csrf")?.unwrap_or("")))
}

/// The flow's identified user, for the stages that come after the password.
pub(crate) async fn user_of(ctx: &Ctx<'_>, flow: &Flow) -> Result<users::User, Error> {
    let id = flow
        .user_id
        .as_deref()
        .ok_or_else(|| InternalError::new("a second-factor stage without a user"))?;
    users::by_id(ctx.db, id)
        .await?
        .ok_or_else(|| InternalError::new("the flow's user is gone").into())
}

/// A second-factor code is a secret like the password: it is admitted by the account's lockout
/// before it is checked, and a wrong one counts toward the lockout and both reputations. A
/// locked account gets the same answer as a wrong code.
pub(crate) struct CodeAttempt {
    user_key: String,
    ip_key: String,
    ip: String,
    pub admitted: bool,
}

impl CodeAttempt {
    pub async fn begin(ctx: &Ctx<'_>, req: &Request, user: &users::User) -> Result<CodeAttempt, Error> {
        let user_key = policy::user_key(&user.username);
        let admission = ctx
            .counters
            .begin_attempt(&user_key, &ctx.settings.policy.lockout)
            .await?;
        let client = policy::client_ip(ctx, req);
        Ok(CodeAttempt {
            user_key,
            ip_key: client.key(),
            ip: client.to_string(),
            admitted: admission == Admission::Admitted && !user.disabled,
        })
    }

    pub async fn succeeded(&self, ctx: &Ctx<'_>) -> Result<(), Error> {
        let rules = &ctx.settings.policy;
        ctx.counters
            .record_attempt(&self.user_key, true, Some(&rules.lockout), &rules.reputation)
            .await?;
        Ok(())
    }

    /// Counts the failure and records it (`mfa_failed`, and `account_locked` once).
    pub async fn failed(
        &self,
        ctx: &Ctx<'_>,
        flow: &Flow,
        user: &users::User,
        method: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let failure = policy::failed_attempt(ctx, &self.user_key, &self.ip_key).await?;
        let now = ctx.clock.now();
        let record = |kind: EventKind, detail: serde_json::Value| {
            events::record_statement(
                ctx.rng,
                now,
                events::Event {
                    kind,
                    user_id: Some(&user.id),
                    client_id: flow.event_client.as_deref(),
                    ip: Some(&self.ip),
                    location: None,
                    detail,
                },
            )
        };
        let mut statements = vec![record(
            EventKind::MfaFailed,
            json!({ "method": method, "reason": if self.admitted { reason } else { "locked" } }),
        )?];
        if failure.newly_locked {
            let locked_for = ctx.settings.policy.lockout.duration_ms / 1000;
            statements.push(record(
                EventKind::AccountLocked,
                json!({ "username": user.username, "locked_for": locked_for }),
            )?);
        }
        ctx.db.batch(&statements).await?;
        Ok(())
    }
}

/// Turns `advance`'s redirect into a page that says something first (a recovery code spent,
/// new recovery codes to save) and links on; the cookies the step set are kept.
pub(crate) fn notice(advanced: Response, title: &str, message: &str, codes: &[RecoveryCode]) -> Response {
    let next = advanced.header("location").unwrap_or("/").to_owned();
    let codes: Vec<&str> = codes.iter().map(RecoveryCode::expose).collect();
    let mut resp = pages::html(
        200,
        &pages::Notice {
            title,
            message,
            codes: &codes,
            next: &next,
        },
    );
    for (k, v) in &advanced.headers {
        if k.eq_ignore_ascii_case("set-cookie") {
            resp.add_header("set-cookie", v);
        }
    }
    // Recovery codes must not stay in a cache.
    resp.set_header("cache-control", "no-store");
    resp
}
