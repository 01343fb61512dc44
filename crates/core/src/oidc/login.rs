//! `GET|POST /oauth2/login`: the login form. A wrong username, a wrong password and a locked
//! account get the same answer after the same work (an Argon2 verification, against a dummy hash
//! when the password is not to be checked), so the answer never tells which it was.
//!
//! Around the password check (`crate::policy`): the per-IP rate limit runs before this handler;
//! a low reputation of the IP or the username asks for a Turnstile CAPTCHA; the lockout counts
//! the attempt before the password is verified; the outcome moves both reputations.

use serde_json::json;

use crate::crypto::{random_token, token_hash};
use crate::error::{log_internal, Error};
use crate::flow::plan;
use crate::http::{form_encode, Request, Response};
use crate::oidc::authorize::{self, Pending};
use crate::oidc::cookies;
use crate::pages;
use crate::password;
use crate::policy::lockout::Admission;
use crate::policy::{self, turnstile};
use crate::store::{clients, events, sessions, users};
use crate::{limits, Ctx};

pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
pub const CAPTCHA_NEEDED: &str = "Please complete the verification below, then sign in.";
pub const USERNAME_TOO_LONG: &str = "That username is too long.";

/// The browser's CSRF cookie value, creating one (and its `Set-Cookie`) when absent.
pub fn browser_binding(ctx: &Ctx<'_>, req: &Request) -> Result<(String, Option<String>), Error> {
    match req.cookie(&cookies::name(ctx, cookies::CSRF)).filter(|v| v.len() >= 32) {
        Some(v) => Ok((v, None)),
        None => {
            let v = random_token(ctx.rng)?;
            let set = cookies::set_cookie(ctx, cookies::CSRF, &v, 3600);
            Ok((v, Some(set)))
        }
    }
}

async fn client_name(ctx: &Ctx<'_>, pending: &Pending) -> Result<String, Error> {
    Ok(clients::by_id(ctx.db, &pending.client_id)
        .await?
        .and_then(|c| c.metadata.client_name)
        .unwrap_or_else(|| pending.client_id.clone()))
}

/// What the login form shows besides its fields.
struct Shown<'s> {
    username: &'s str,
    error: &'s str,
    status: u16,
    /// Whether the Turnstile widget is in the form (only when Turnstile is configured).
    captcha: bool,
}

impl Shown<'static> {
    /// The empty form with a message: nothing typed is shown again.
    fn blank(error: &'static str, status: u16) -> Self {
        Shown {
            username: "",
            error,
            status,
            captcha: false,
        }
    }
}

async fn form(ctx: &Ctx<'_>, req: &Request, id: &str, pending: &Pending, shown: Shown<'_>) -> Result<Response, Error> {
    let Shown {
        username,
        error,
        status,
        captcha,
    } = shown;
    let (browser, set_cookie) = browser_binding(ctx, req)?;
    let csrf = cookies::csrf_token(ctx, &browser, id);
    let captcha = match (&ctx.settings.policy.turnstile, captcha) {
        (Some(t), true) => Some(pages::Captcha {
            site_key: &t.site_key,
            nonce: pages::csp_nonce(ctx.rng)?,
        }),
        _ => None,
    };
    let client = client_name(ctx, pending).await?;
    let mut resp = pages::Login {
        client: &client,
        error,
        req: id,
        csrf: &csrf,
        username,
        captcha,
    }
    .response(status);
    resp.form_action = pending.form_action();
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

pub async fn get(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let Some(pending) = authorize::load(ctx, &id).await? else {
            return Ok(authorize::expired_page());
        };
        let hint = pending.login_hint.clone().unwrap_or_default();
        let captcha = policy::captcha_required(ctx, &policy::client_ip(ctx, req).key(), None).await?;
        form(
            ctx,
            req,
            &id,
            &pending,
            Shown {
                username: &hint,
                error: "",
                status: 200,
                captcha,
            },
        )
        .await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// The 429 answer of the per-IP rate limit (`policy::guard`): the form again, so the flow
/// survives the wait.
pub async fn rate_limited(ctx: &Ctx<'_>, req: &Request, retry_after: i64) -> Response {
    let message =
        format!("Too many sign-in attempts from your network. Please wait {retry_after} seconds and try again.");
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let id = params.require("req")?.to_owned();
        let Some(pending) = authorize::load(ctx, &id).await? else {
            return Ok(authorize::expired_page());
        };
        let username = params.get("username")?.unwrap_or("").trim().to_owned();
        form(
            ctx,
            req,
            &id,
            &pending,
            Shown {
                username: &username,
                error: &message,
                status: 429,
                captcha: false,
            },
        )
        .await
    }
    .await;
    result.unwrap_or_else(|e| {
        if let Error::Internal(i) = &e {
            log_internal(i);
        }
        Response::error_page(429, "rate_limited", &message)
    })
}

pub async fn post(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let id = params.require("req")?.to_owned();
        let Some(mut pending) = authorize::load(ctx, &id).await? else {
            return Ok(authorize::expired_page());
        };
        let csrf = params.get("csrf")?.unwrap_or("");
        if !cookies::csrf_ok(ctx, req, &id, csrf) {
            return form(
                ctx,
                req,
                &id,
                &pending,
                Shown::blank("Your session expired. Please sign in again.", 403),
            )
            .await;
        }
        let username = params.get("username")?.unwrap_or("").trim().to_owned();
        if username.len() > limits::USERNAME_INPUT {
            // No account has such a name; nothing is counted or logged for it.
            return form(ctx, req, &id, &pending, Shown::blank(USERNAME_TOO_LONG, 400)).await;
        }
        let password_given = params.get("password")?.unwrap_or("");
        let now = ctx.clock.now();
        let rules = &ctx.settings.policy;
        let client = policy::client_ip(ctx, req);
        let ip_text = client.to_string();
        let ip = Some(ip_text.as_str());
        let (ip_key, user_key) = (client.key(), policy::user_key(&username));

        // Reputation (authentik's reputation policy): at or below the threshold, a CAPTCHA first.
        if let Some(ts) = &rules.turnstile {
            if policy::captcha_required(ctx, &ip_key, Some(&user_key)).await? {
                let token = params.get(turnstile::RESPONSE_FIELD)?;
                if !turnstile::verify(ctx, ts, token, client.addr()).await {
                    let detail = json!({ "username": username, "token_present": token.is_some() });
                    record(ctx, now, "captcha_failed", None, &pending.client_id, ip, detail).await?;
                    return form(
                        ctx,
                        req,
                        &id,
                        &pending,
                        Shown {
                            username: &username,
                            error: CAPTCHA_NEEDED,
                            status: 400,
                            captcha: true,
                        },
                    )
                    .await;
                }
            }
        }

        // Lockout: the attempt is counted before the password is checked, so concurrent attempts
        // cannot slip past the count. A refused attempt still verifies (a dummy hash) and gets
        // the wrong-password answer: a locked account is indistinguishable from a wrong password.
        let admission = ctx.counters.begin_attempt(&user_key, &rules.lockout).await?;
        let user = if username.is_empty() {
            None
        } else {
            users::by_username(ctx.db, &username).await?
        };
        let verified = match (&user, admission) {
            (Some(u), Admission::Admitted) => password::verify(password_given, &u.password_hash)? && !u.disabled,
            _ => {
                password::verify(password_given, password::DUMMY_HASH)?;
                false
            }
        };
        let user_id = user.as_ref().map(|u| u.id.clone());
        let Some(user) = user.filter(|_| verified) else {
            let (newly_locked, user_score) = ctx
                .counters
                .record_attempt(&user_key, false, Some(&rules.lockout), &rules.reputation)
                .await?;
            let (_, ip_score) = ctx
                .counters
                .record_attempt(&ip_key, false, None, &rules.reputation)
                .await?;
            if newly_locked {
                let detail = json!({ "username": username, "locked_for": rules.lockout.duration_ms / 1000 });
                record(
                    ctx,
                    now,
                    "account_locked",
                    user_id.as_deref(),
                    &pending.client_id,
                    ip,
                    detail,
                )
                .await?;
            }
            let reason = match admission {
                Admission::Admitted => "invalid_credentials",
                Admission::Locked | Admission::Saturated => "locked",
            };
            let detail = json!({ "username": username, "reason": reason });
            record(ctx, now, "login_failed", None, &pending.client_id, ip, detail).await?;
            let captcha = rules.turnstile.is_some()
                && (rules.reputation.needs_verification(user_score) || rules.reputation.needs_verification(ip_score));
            return form(
                ctx,
                req,
                &id,
                &pending,
                Shown {
                    username: &username,
                    error: INVALID_CREDENTIALS,
                    status: 401,
                    captcha,
                },
            )
            .await;
        };
        // A success forgives the username's failures, never the IP's: credit an IP earned by
        // signing in to one account (the attacker's own) would cover guesses against every other
        // username from it, and keep a password spray below the CAPTCHA threshold for ever. The
        // IP's score recovers only by expiry.
        ctx.counters
            .record_attempt(&user_key, true, Some(&rules.lockout), &rules.reputation)
            .await?;

        // Everything the login writes lands in one batch: the upgraded hash, the end of the old
        // session, the new session, the request that now carries it, and the event.
        let mut statements = Vec::new();
        if password::needs_rehash(&user.password_hash) {
            let new_hash = password::hash(password_given, ctx.rng)?;
            statements.push(users::set_password_hash_statement(&user.id, &new_hash, now));
        }
        // A fresh session id on every login (no fixation); the old session, if any, ends.
        if let Some(old) = cookies::session_hash(ctx, req) {
            statements.extend(sessions::end_statements(&old, now));
        }
        let session_id = random_token(ctx.rng)?;
        let session = sessions::Session {
            id_hash: token_hash(&session_id),
            user_id: user.id.clone(),
            auth_time: now,
            expires_at: now + ctx.settings.session_ttl,
            factors: plan::store_passed(&[plan::Passed {
                factor: plan::Factor::Password,
                at: now,
            }]),
        };
        statements.push(sessions::insert_statement(&session, now));
        pending.authenticated_session = Some(session.id_hash.clone());
        statements.push(authorize::store_statement(&id, &pending)?);
        statements.push(events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: "login_succeeded",
                user_id: Some(&user.id),
                client_id: Some(&pending.client_id),
                ip,
                detail: json!({}),
            },
        )?);
        ctx.db.batch(&statements).await?;
        let mut resp = Response::redirect(303, &format!("/oauth2/authorize/resume?req={}", form_encode(&id)));
        resp.add_header(
            "set-cookie",
            &cookies::set_cookie(
                ctx,
                cookies::SESSION,
                &cookies::session_value(ctx, &session_id),
                ctx.settings.session_ttl,
            ),
        );
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

async fn record(
    ctx: &Ctx<'_>,
    now: i64,
    kind: &str,
    user_id: Option<&str>,
    client_id: &str,
    ip: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let event = events::Event {
        kind,
        user_id,
        client_id: Some(client_id),
        ip,
        detail,
    };
    Ok(events::record(ctx.db, ctx.rng, now, event).await?)
}
