//! The identify and password stages, on one page (`/oauth2/login`): the username and its
//! password. A wrong username, a wrong password and a locked account get the same answer after
//! the same work (an Argon2 verification, against a dummy hash when the password is not to be
//! checked), so the answer never tells which it was.
//!
//! Around the password check (`crate::policy`): the per-IP rate limit runs before this stage; a
//! low reputation of the IP or the username asks for a Turnstile CAPTCHA; the lockout counts the
//! attempt before the password is verified; the outcome moves both reputations.

use serde_json::json;

use super::{csrf_ok, flow_at, flow_of, form_token};
use crate::error::{log_internal, Error};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, Flow, PasswordChange};
use crate::http::{Request, Response};
use crate::pages;
use crate::password::{self, Password};
use crate::policy::lockout::Admission;
use crate::policy::{self, turnstile};
use crate::store::{events, users};
use crate::types::event_kind::EventKind;
use crate::{limits, Ctx};

pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
pub const CAPTCHA_NEEDED: &str = "Please complete the verification below, then sign in.";
pub const USERNAME_TOO_LONG: &str = "That username is too long.";
pub const FORM_EXPIRED: &str = "Your session expired. Please sign in again.";

/// What the form shows besides its fields.
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

fn form(ctx: &Ctx<'_>, req: &Request, id: &str, flow: &Flow, shown: Shown<'_>) -> Result<Response, Error> {
    let token = form_token(ctx, req, id)?;
    let captcha = match (&ctx.settings.policy.turnstile, shown.captcha) {
        (Some(t), true) => Some(pages::Captcha { site_key: &t.site_key }),
        _ => None,
    };
    let resp = pages::Login {
        client: &flow.audience,
        error: shown.error,
        req: id,
        csrf: &token.csrf,
        username: shown.username,
        reset: crate::mail::available(ctx) && !ctx.settings.passkey_only,
        password: !ctx.settings.passkey_only,
        captcha,
        nonce: pages::csp_nonce(ctx.rng)?,
    }
    .response(shown.status);
    Ok(token.finish(flow, resp))
}

/// The sign-in form with an error (a passkey that did not sign in), nothing typed kept.
pub(crate) fn form_with_error(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let shown = Shown {
        username: "",
        error,
        status,
        captcha: false,
    };
    form(ctx, req, id, flow, shown)
}

/// The username the form offers: the one the flow identified, else the purpose's hint.
async fn offered_username(ctx: &Ctx<'_>, flow: &Flow) -> Result<String, Error> {
    if let Some(user_id) = &flow.user_id {
        if let Some(u) = users::by_id(ctx.db, user_id).await? {
            return Ok(u.username);
        }
    }
    Ok(flow.login_hint.clone().unwrap_or_default())
}

/// `GET /oauth2/login?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::Identify, Stage::Password]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let username = offered_username(ctx, &flow).await?;
        let captcha = policy::captcha_required(ctx, &policy::client_ip(ctx, req).key(), None).await?;
        form(
            ctx,
            req,
            &id,
            &flow,
            Shown {
                username: &username,
                error: "",
                status: 200,
                captcha,
            },
        )
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// The 429 answer of the per-IP rate limit: the form again, so the flow survives the wait.
pub async fn rate_limited(ctx: &Ctx<'_>, req: &Request, retry_after: i64) -> Response {
    let message =
        format!("Too many sign-in attempts from your network. Please wait {retry_after} seconds and try again.");
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        let username = params.get("username")?.unwrap_or("").trim().to_owned();
        form(
            ctx,
            req,
            &id,
            &flow,
            Shown {
                username: &username,
                error: &message,
                status: 429,
                captcha: false,
            },
        )
    }
    .await;
    result.unwrap_or_else(|e| {
        if let Error::Internal(i) = &e {
            log_internal(i);
        }
        Response::error_page(429, "rate_limited", &message)
    })
}

/// `POST /oauth2/login`. Taken at any stage before the flow is over: typing a username (again)
/// identifies the user afresh, and another user starts with nothing passed.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return form(ctx, req, &id, &flow, Shown::blank(FORM_EXPIRED, 403));
        }
        let username = params.get("username")?.unwrap_or("").trim().to_owned();
        if username.len() > limits::USERNAME_INPUT {
            // No account has such a name; nothing is counted or logged for it.
            return form(ctx, req, &id, &flow, Shown::blank(USERNAME_TOO_LONG, 400));
        }
        let given = Password::new(params.get("password")?.unwrap_or(""));
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
                    event(ctx, req, EventKind::CaptchaFailed, None, &flow, ip, detail).await?;
                    let shown = Shown {
                        username: &username,
                        error: CAPTCHA_NEEDED,
                        status: 400,
                        captcha: true,
                    };
                    return form(ctx, req, &id, &flow, shown);
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
        // A passkey-only user's password is not a way in: it is not checked (the same work is
        // done on the dummy hash), the answer is the usual one, and the attempt is not charged to
        // the account: guessing a password it does not use must not lock its passkey out.
        let passkey_only = user.as_ref().is_some_and(|u| engine::passkey_only(ctx, u));
        if passkey_only {
            // Only an admitted attempt was counted: a refused one must not give back another's.
            if admission == Admission::Admitted {
                ctx.counters.release_attempt(&user_key).await?;
            }
            password::verify(given.expose(), password::DUMMY_HASH)?;
            let failure = policy::failed_attempt_without_lockout(ctx, &user_key, &ip_key).await?;
            let detail = json!({ "username": username, "reason": "passkey_only" });
            event(ctx, req, EventKind::LoginFailed, None, &flow, ip, detail).await?;
            let shown = Shown {
                username: &username,
                error: INVALID_CREDENTIALS,
                status: 401,
                captcha: failure.needs_captcha,
            };
            return form(ctx, req, &id, &flow, shown);
        }
        let verified = match (&user, admission) {
            (Some(u), Admission::Admitted) => password::verify(given.expose(), &u.password_hash)? && !u.disabled,
            _ => {
                password::verify(given.expose(), password::DUMMY_HASH)?;
                false
            }
        };
        let user_id = user.as_ref().map(|u| u.id.clone());
        let Some(user) = user.filter(|_| verified) else {
            let captcha = policy::failed_attempt(ctx, &user_key, &ip_key).await?;
            if captcha.newly_locked {
                let detail = json!({ "username": username, "locked_for": rules.lockout.duration_ms / 1000 });
                event(
                    ctx,
                    req,
                    EventKind::AccountLocked,
                    user_id.as_deref(),
                    &flow,
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
            event(ctx, req, EventKind::LoginFailed, None, &flow, ip, detail).await?;
            let shown = Shown {
                username: &username,
                error: INVALID_CREDENTIALS,
                status: 401,
                captcha: captcha.needs_captcha,
            };
            return form(ctx, req, &id, &flow, shown);
        };
        let mut changes = Vec::new();
        if password::needs_rehash(&user.password_hash) {
            let new_hash = password::hash(given.expose(), ctx.rng)?;
            changes.push(users::rehash_password_statement(
                &user.id,
                &user.password_hash,
                &new_hash,
                now,
            ));
        }
        flow.identify(&user.id);
        flow.pass(Factor::Password, now);
        // An expired password still signs in (expiry never locks anyone out), and then the flow
        // asks for a new one before it completes; so does one that no longer meets the length and
        // class rules (set under a second factor since removed, or before the rules were raised;
        // only the local rules: the breach and strength checks never run at sign-in).
        let password_policy = &ctx.settings.password;
        if policy::password::expiry::expired(password_policy.max_age_days, user.password_changed_at, now) {
            flow.new_password = true;
            flow.password_change = Some(PasswordChange::Expiry);
        } else if !meets_rules(ctx, &user, given.expose()).await? {
            flow.new_password = true;
            flow.password_change = Some(PasswordChange::Rules);
        }
        // A completed sign-in forgives the username's failures, never the IP's: credit an IP
        // earned by signing in to one account (the attacker's own) would cover guesses against
        // every other username from it, and keep a password spray below the CAPTCHA threshold
        // for ever (the IP's score recovers only by expiry). A password with a second factor
        // still to come forgives nothing: else whoever holds the password could guess codes
        // without end, entering it again after every few.
        let second_factor_next = matches!(
            engine::standing(ctx, &flow).await?,
            engine::Standing::At(Stage::SecondFactor | Stage::EnrollSecondFactor)
        );
        // The credit is given by `engine::advance`, once the policies let the sign-in through.
        if second_factor_next {
            ctx.counters.release_attempt(&user_key).await?;
        } else {
            flow.success_to_credit = Some(user_key);
        }
        engine::advance(ctx, req, &id, flow, changes).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// Whether the password just typed meets today's length and class rules. Whether a second factor
/// backs it (a query) is looked up only when the answer depends on it: a password that passes, or
/// fails, under both minimums costs no round trip at sign-in.
async fn meets_rules(ctx: &Ctx<'_>, user: &users::User, typed: &str) -> Result<bool, Error> {
    let rules = &ctx.settings.password.rules;
    Ok(
        match (rules.check(typed, false).is_ok(), rules.check(typed, true).is_ok()) {
            (alone, backed) if alone == backed => alone,
            _ => rules
                .check(typed, engine::second_factor_backs_password(ctx, user).await?)
                .is_ok(),
        },
    )
}

async fn event(
    ctx: &Ctx<'_>,
    req: &Request,
    kind: EventKind,
    user_id: Option<&str>,
    flow: &Flow,
    ip: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let event = events::Event {
        kind,
        user_id,
        client_id: flow.event_client.as_deref(),
        ip,
        location: Some(&req.location),
        detail,
    };
    Ok(events::record(ctx.db, ctx.rng, ctx.clock.now(), event).await?)
}
