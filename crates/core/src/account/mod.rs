//! `/account`: the signed-in user's own page. Profile, password change (a sign-in flow: the
//! current password and second factor again, then the new-password stage), authenticator apps
//! (add, remove), recovery codes (regenerate), sessions (sign out the others), the profile's
//! standard claims ([`profile`]). Without a
//! session the page starts a sign-in flow for itself (a purpose like an authorization request).
//! Changing a factor needs a recent sign-in: older than [`REAUTH_WINDOW`], the user signs in
//! again first. Every change is an event. The address and emailed codes are in [`email`].

pub mod email;
pub mod passkey_setup;
pub mod passkeys;
pub mod profile;

use serde_json::json;

use crate::crypto::token_hash;
use crate::db::Statement;
use crate::error::{Error, InternalError};
use crate::flow::engine::{self, Outcome};
use crate::flow::plan::{self, Factor, MfaMode};
use crate::flow::stages::enroll_totp;
use crate::flow::{self, Flow, Purpose};
use crate::http::{Request, Response};
use crate::pages;
use crate::policy;
use crate::store::{auth_requests, events, recovery_codes as stored_codes, sessions, totp_devices, users};
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::Ctx;

/// How recent the password must be to change a factor (seconds): the same as to enroll one
/// during a sign-in.
pub const REAUTH_WINDOW: i64 = plan::FRESH_PASSWORD_TO_ENROLL;
/// The CSRF purpose of the account page's forms.
pub(crate) const CSRF_PURPOSE: &str = "account";
const NEW_TOTP: &str = "/account/totp/new";
pub const NO_PASSWORD: &str = "Your account signs in with a passkey only: it has no password to change.";
pub const PROFILE_SAVED: &str = "Your profile was saved.";
pub const PASSWORD_CHANGED: &str = "Your password was changed. Your other sessions were signed out.";

/// The signed-in user and their session, or the response that signs them in first.
pub(crate) async fn signed_in(
    ctx: &Ctx<'_>,
    req: &Request,
) -> Result<Result<(users::User, sessions::Session), Response>, Error> {
    let session = match cookies::session_hash(ctx, req) {
        Some(h) => sessions::active(ctx.db, &h, ctx.clock.now()).await?,
        None => None,
    };
    if let Some(s) = session {
        if let Some(u) = users::by_id(ctx.db, &s.user_id).await? {
            // A passkey-only user's session made with a password (before the rule) is no
            // sign-in here: the flow asks for the passkey.
            let passed = plan::parse_passed(&s.factors, s.auth_time);
            if !engine::passkey_only(ctx, &u) || plan::passed_verified_passkey(&passed) {
                // The account flow's bindings hold for a session made elsewhere too (a sign-in
                // to a client): judged on this request, from the per-isolate cache.
                if crate::policy::judge::refusing(ctx, req, &u, "account", None, "your account")
                    .await?
                    .is_some()
                {
                    return Ok(Err(Response::error_page(
                        403,
                        "access_denied",
                        "A policy does not allow this sign-in.",
                    )));
                }
                return Ok(Ok((u, s)));
            }
        }
    }
    sign_in(ctx, req, None, false).await.map(Err)
}

/// Starts a flow whose purpose is this page; `again` (the user) makes it a re-authentication,
/// and `new_password` ends it with the new-password stage.
async fn sign_in(
    ctx: &Ctx<'_>,
    req: &Request,
    again: Option<&users::User>,
    new_password: bool,
) -> Result<Response, Error> {
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    let mut flow = Flow::new(
        Purpose::Account,
        json!({}),
        "your account",
        token_hash(&browser),
        ctx.clock.now(),
    );
    if let Some(u) = again {
        flow.reauthenticate = true;
        flow.expected_user = Some(u.id.clone());
        flow.login_hint = Some(u.username.clone());
    }
    flow.new_password = new_password;
    engine::begin(ctx, req, &mut flow).await?;
    let id = flow::insert(ctx, req, &flow).await?;
    let mut resp = engine::advance(ctx, req, &id, flow, Vec::new()).await?;
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

/// `GET /account/resume?req=…`: the flow is over.
pub async fn resume(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let mut flow = match flow::load(ctx, req, &id).await? {
            Ok(f) => f,
            Err(why) => return Ok(engine::not_here_page(why)),
        };
        match engine::outcome(ctx, req, &mut flow).await? {
            Outcome::Complete(_) => {
                auth_requests::delete(ctx.db, &id).await?;
                let to = if flow.password_changed {
                    "/account?done=password"
                } else {
                    "/account"
                };
                Ok(Response::redirect(303, to))
            }
            Outcome::Refused(r) => {
                auth_requests::delete(ctx.db, &id).await?;
                let detail = match r {
                    crate::flow::Refusal::Location => crate::policy::geoip::REFUSED_PAGE_TEXT,
                    crate::flow::Refusal::Policy => "A policy does not allow this sign-in.",
                    _ => "The sign-in was not completed.",
                };
                Ok(Response::error_page(403, "access_denied", detail))
            }
            Outcome::Unfinished => engine::advance(ctx, req, &id, flow, Vec::new()).await,
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// Whether the session passed its password, or a passkey that verified the user, within
/// [`REAUTH_WINDOW`]. (A reset link is not a sign-in to change factors with: the session it made
/// also passed the new password.) For a passkey-only user, only the passkey counts.
pub(crate) fn recent(ctx: &Ctx<'_>, user: &users::User, s: &sessions::Session) -> bool {
    let now = ctx.clock.now();
    let passkey_only = engine::passkey_only(ctx, user);
    plan::parse_passed(&s.factors, s.auth_time).iter().any(|p| {
        let counts = match p.factor {
            Factor::Passkey(k) => k.verified,
            Factor::Password => !passkey_only,
            _ => false,
        };
        counts && now - p.at <= REAUTH_WINDOW
    })
}

/// The page with a message (`notice` or `error`).
pub(crate) async fn page(
    ctx: &Ctx<'_>,
    req: &Request,
    user: &users::User,
    session: &sessions::Session,
    notice: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    let csrf = cookies::csrf_token(ctx, &browser, CSRF_PURPOSE);
    let devices: Vec<pages::AccountDevice> = totp_devices::confirmed_of_user(ctx.db, &user.id)
        .await?
        .into_iter()
        .map(|d| pages::AccountDevice {
            id: d.id,
            name: d.name,
            last_used: d.last_used_at.map(pages::utc),
        })
        .collect();
    let held = totp_devices::second_factors(ctx.db, &user.id).await?;
    let list: Vec<pages::AccountSession> = sessions::active_of_user(ctx.db, &user.id, ctx.clock.now())
        .await?
        .into_iter()
        .map(|s| pages::AccountSession {
            signed_in: pages::utc(s.auth_time),
            current: s.id_hash == session.id_hash,
        })
        .collect();
    let passkeys: Vec<pages::AccountPasskey> = crate::store::passkeys::of_user(ctx.db, &user.id)
        .await?
        .into_iter()
        .map(|p| pages::AccountPasskey {
            id: p.id,
            name: p.name,
            created: pages::utc(p.created_at),
            last_used: p.last_used_at.map(pages::utc),
            synced: p.backup_eligible,
        })
        .collect();
    let mut resp = pages::Account {
        notice,
        error,
        username: &user.username,
        email: &user.email,
        email_verified: user.email_verified,
        mail: crate::mail::available(ctx),
        email_otp_offered: ctx.settings.email_otp && ctx.settings.mfa != MfaMode::Off,
        email_otp: user.email_otp,
        name: user.name.as_deref(),
        csrf: &csrf,
        mfa_off: ctx.settings.mfa == MfaMode::Off,
        devices,
        recovery_remaining: held.recovery_codes,
        sessions: list,
        passkeys,
        profile: profile::fields(user),
        profile_version: profile::version(user),
        passkey_only: engine::passkey_only(ctx, user),
        nonce: pages::csp_nonce(ctx.rng)?,
    }
    .response(status);
    resp.set_header("cache-control", "no-store");
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

/// `GET /account`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (user, session) = match signed_in(ctx, req).await? {
            Ok(s) => s,
            Err(sign_in) => return Ok(sign_in),
        };
        // What a finished flow did (a fixed set: nothing from the URL is shown).
        let notice = match req.query_params().get("done")? {
            Some("password") => PASSWORD_CHANGED,
            Some("profile") => PROFILE_SAVED,
            _ => "",
        };
        page(ctx, req, &user, &session, notice, "", 200).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

pub(crate) fn event(
    ctx: &Ctx<'_>,
    req: &Request,
    kind: EventKind,
    user_id: &str,
    detail: serde_json::Value,
) -> Result<Statement, Error> {
    Ok(events::record_statement(
        ctx.rng,
        ctx.clock.now(),
        events::Event {
            kind,
            user_id: Some(user_id),
            client_id: None,
            ip: Some(&policy::client_ip(ctx, req).to_string()),
            location: Some(&req.location),
            detail,
        },
    )?)
}

/// What a form handler does once the user, the session and the CSRF token are checked.
pub(crate) enum Done {
    /// The page again with a message.
    Page { notice: String, error: String, status: u16 },
    /// Another response (a notice page, a re-authentication).
    Other(Response),
}

/// Runs a POST form of the page: signed in, CSRF-checked, and (for `factor_change`) recent.
pub(crate) async fn form<'r, F, Fut>(ctx: &Ctx<'r>, req: &'r Request, factor_change: bool, run: F) -> Response
where
    F: FnOnce(users::User, sessions::Session, crate::http::Params) -> Fut,
    Fut: std::future::Future<Output = Result<Done, Error>>,
{
    let result: Result<Response, Error> = async {
        let (user, session) = match signed_in(ctx, req).await? {
            Ok(s) => s,
            Err(sign_in) => return Ok(sign_in),
        };
        let params = req.form_params();
        if !cookies::csrf_ok(ctx, req, CSRF_PURPOSE, params.get("csrf")?.unwrap_or("")) {
            let e = "The form expired. Please try again.";
            return page(ctx, req, &user, &session, "", e, 403).await;
        }
        if factor_change && !recent(ctx, &user, &session) {
            return sign_in(ctx, req, Some(&user), false).await;
        }
        match run(user.clone(), session.clone(), params).await? {
            Done::Page { notice, error, status } => page(ctx, req, &user, &session, &notice, &error, status).await,
            Done::Other(resp) => Ok(resp),
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

pub(crate) fn refused(error: &str, status: u16) -> Done {
    Done::Page {
        notice: String::new(),
        error: error.to_owned(),
        status,
    }
}

pub(crate) fn done(notice: &str) -> Done {
    Done::Page {
        notice: notice.to_owned(),
        error: String::new(),
        status: 200,
    }
}

/// `POST /account/password`: a flow that signs the user in again (password, and second factor if
/// they have one) and ends with the new-password stage, which also ends the other sessions.
pub async fn change_password(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, false, |user, _, _| async move {
        if engine::passkey_only(ctx, &user) {
            return Ok(refused(NO_PASSWORD, 409));
        }
        Ok(Done::Other(sign_in(ctx, req, Some(&user), true).await?))
    })
    .await
}

/// `POST /account/sessions/end-others`.
pub async fn end_other_sessions(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, false, |user, session, _| async move {
        let now = ctx.clock.now();
        let mut statements = sessions::end_others_statements(&user.id, &session.id_hash, "", now);
        statements.push(event(
            ctx,
            req,
            EventKind::SessionsEnded,
            &user.id,
            json!({ "by": "user" }),
        )?);
        ctx.db.batch(&statements).await?;
        Ok(done("Your other sessions were signed out."))
    })
    .await
}

/// `POST /account/totp/remove` (`device`).
pub async fn remove_totp(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, _, params| async move {
        let device = params.get("device")?.unwrap_or("").to_owned();
        if totp_devices::get(ctx.db, &user.id, &device).await?.is_none() {
            return Ok(refused("No such authenticator app.", 404));
        }
        ctx.db
            .batch(&[
                totp_devices::delete_statement(&user.id, &device),
                event(ctx, req, EventKind::TotpRemoved, &user.id, json!({ "device": device }))?,
            ])
            .await?;
        Ok(done("The authenticator app was removed."))
    })
    .await
}

/// `POST /account/recovery-codes`: a new set; the old one stops working.
pub async fn regenerate_codes(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, _, _| async move {
        let codes = crate::factors::recovery_codes::generate(ctx.rng)?;
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| crate::factors::recovery_codes::hash(&user.id, c.expose()))
            .collect();
        let mut statements = stored_codes::replace_statements(&user.id, &hashes, ctx.clock.now());
        statements.push(event(
            ctx,
            req,
            EventKind::RecoveryCodesRegenerated,
            &user.id,
            json!({}),
        )?);
        ctx.db.batch(&statements).await?;
        let resp = crate::flow::stages::notice(
            Response::redirect(303, "/account"),
            "New recovery codes",
            "Your old recovery codes no longer work.",
            &codes,
        );
        Ok(Done::Other(resp))
    })
    .await
}

/// `GET /account/totp/new`: a new pending device and its enrollment page.
pub async fn new_totp(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (user, session) = match signed_in(ctx, req).await? {
            Ok(s) => s,
            Err(sign_in) => return Ok(sign_in),
        };
        if ctx.settings.mfa == MfaMode::Off {
            return page(ctx, req, &user, &session, "", "Second factors are turned off.", 409).await;
        }
        if !recent(ctx, &user, &session) {
            return sign_in(ctx, req, Some(&user), false).await;
        }
        let (device, statements) = enroll_totp::new_device(ctx, &user)?;
        let written = ctx.db.batch(&statements).await?;
        if written.get(1).copied().unwrap_or(0) == 0 {
            return page(ctx, req, &user, &session, "", enroll_totp::TOO_MANY_DEVICES, 409).await;
        }
        let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
        let csrf = cookies::csrf_token(ctx, &browser, CSRF_PURPOSE);
        let mut resp = enroll_totp::page_for(ctx, &user, &device, (NEW_TOTP, &device.id, &csrf), "", "", 200)?;
        if let Some(c) = set_cookie {
            resp.add_header("set-cookie", &c);
        }
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /account/totp/new` (`req` names the pending device): its first code confirms it. A user
/// without recovery codes gets a set, shown once.
pub async fn confirm_totp(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, true, |user, _, params| async move {
        let device_id = params.get("req")?.unwrap_or("").to_owned();
        let Some(device) = totp_devices::get(ctx.db, &user.id, &device_id)
            .await?
            .filter(|d| d.confirmed_at.is_none())
        else {
            return Ok(refused("That enrollment is no longer pending. Start again.", 409));
        };
        let (browser, _) = cookies::browser_binding(ctx, req)?;
        let csrf = cookies::csrf_token(ctx, &browser, CSRF_PURPOSE);
        let form = (NEW_TOTP, device.id.as_str(), csrf.as_str());
        let Some(name) = enroll_totp::device_name(params.get("name")?.unwrap_or("")) else {
            let resp = enroll_totp::page_for(ctx, &user, &device, form, "", enroll_totp::NAME_TOO_LONG, 400)?;
            return Ok(Done::Other(resp));
        };
        let secret = crate::flow::stages::totp::secret_of(ctx, &device)?;
        let now = ctx.clock.now();
        let step = match crate::factors::totp::verify(
            &secret,
            params.get("code")?.unwrap_or(""),
            u64::try_from(now).unwrap_or(0),
            None,
        ) {
            Ok(s) => i64::try_from(s).map_err(|_| InternalError::new("totp step"))?,
            Err(_) => {
                let resp = enroll_totp::page_for(ctx, &user, &device, form, &name, enroll_totp::INVALID_CODE, 400)?;
                return Ok(Done::Other(resp));
            }
        };
        let ip = policy::client_ip(ctx, req).to_string();
        let had_codes = totp_devices::second_factors(ctx.db, &user.id).await?.recovery_codes > 0;
        // A user who holds recovery codes keeps the set they saved.
        let (statements, codes) = enroll_totp::confirm(ctx, &device, step, &name, &ip, None, !had_codes)?;
        ctx.db.batch(&statements).await?;
        let resp = crate::flow::stages::notice(
            Response::redirect(303, "/account"),
            "Authenticator app added",
            "You will be asked for a code from it when you sign in.",
            &codes,
        );
        Ok(Done::Other(resp))
    })
    .await
}
