//! `GET|POST /oauth2/login`: the login form. A wrong username and a wrong password get the same
//! answer after the same work (an Argon2 verification against a dummy hash for unknown users).

use serde_json::json;

use crate::crypto::{random_token, token_hash};
use crate::error::Error;
use crate::http::{form_encode, Request, Response};
use crate::oidc::authorize::{self, Pending};
use crate::oidc::cookies;
use crate::pages;
use crate::password;
use crate::store::{clients, events, sessions, users};
use crate::Ctx;

pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";

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

async fn form(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    pending: &Pending,
    username: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let (browser, set_cookie) = browser_binding(ctx, req)?;
    let csrf = cookies::csrf_token(ctx, &browser, id);
    let body = pages::render(
        pages::LOGIN,
        &[
            ("client", &client_name(ctx, pending).await?),
            ("error", error),
            ("req", id),
            ("csrf", &csrf),
            ("username", username),
        ],
    );
    let mut resp = Response::html(status, pages::layout("Sign in", &body));
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
        form(ctx, req, &id, &pending, &hint, "", 200).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
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
                "",
                "Your session expired. Please sign in again.",
                403,
            )
            .await;
        }
        let username = params.get("username")?.unwrap_or("").trim().to_owned();
        let password_given = params.get("password")?.unwrap_or("");
        let now = ctx.clock.now();
        let ip = req.header("cf-connecting-ip");

        let user = if username.is_empty() {
            None
        } else {
            users::by_username(ctx.db, &username).await?
        };
        let verified = match &user {
            Some(u) => password::verify(password_given, &u.password_hash)? && !u.disabled,
            None => {
                password::verify(password_given, password::DUMMY_HASH)?;
                false
            }
        };
        let Some(user) = user.filter(|_| verified) else {
            events::record(
                ctx.db,
                ctx.rng,
                now,
                events::Event {
                    kind: "login_failed",
                    user_id: None,
                    client_id: Some(&pending.client_id),
                    ip,
                    detail: json!({ "username": username }),
                },
            )
            .await?;
            return form(ctx, req, &id, &pending, &username, INVALID_CREDENTIALS, 401).await;
        };

        if password::needs_rehash(&user.password_hash) {
            let new_hash = password::hash(password_given, ctx.rng)?;
            users::set_password_hash(ctx.db, &user.id, &new_hash, now).await?;
        }
        // A fresh session id on every login (no fixation); the old session, if any, ends.
        if let Some(old) = cookies::session_hash(ctx, req) {
            sessions::end(ctx.db, &old, now).await?;
        }
        let session_id = random_token(ctx.rng)?;
        let session = sessions::Session {
            id_hash: token_hash(&session_id),
            user_id: user.id.clone(),
            auth_time: now,
            expires_at: now + ctx.settings.session_ttl,
        };
        sessions::insert(ctx.db, &session, now).await?;
        pending.authenticated = true;
        authorize::store(ctx, &id, &pending).await?;
        events::record(
            ctx.db,
            ctx.rng,
            now,
            events::Event {
                kind: "login_succeeded",
                user_id: Some(&user.id),
                client_id: Some(&pending.client_id),
                ip,
                detail: json!({}),
            },
        )
        .await?;
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
