//! The SSO session cookie and the login/consent CSRF token.
//! The cookie carries a random session id plus an HMAC under `GATEHOUSE_COOKIE_SECRET`; the
//! database stores only the id's hash. Rotating the secret therefore logs everyone out.

use crate::crypto::{b64url, constant_time_eq, hmac_sha256, token_hash};
use crate::http::Request;
use crate::Ctx;

/// Cookie names: `__Host-` needs `Secure`, which browsers refuse on plain-http origins, so
/// development over http uses the bare name.
pub fn name(ctx: &Ctx<'_>, base: &str) -> String {
    if is_https(ctx) {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

pub fn is_https(ctx: &Ctx<'_>) -> bool {
    ctx.issuer().starts_with("https://")
}

pub const SESSION: &str = "gh_session";
pub const CSRF: &str = "gh_csrf";

fn mac(ctx: &Ctx<'_>, purpose: &str, value: &str) -> String {
    let data = format!("{purpose}\x00{value}");
    b64url(&hmac_sha256(
        ctx.secrets.cookie_secret.expose().as_bytes(),
        data.as_bytes(),
    ))
}

/// `Set-Cookie` value; `max_age` 0 deletes.
pub fn set_cookie(ctx: &Ctx<'_>, base: &str, value: &str, max_age: i64) -> String {
    let secure = if is_https(ctx) { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        name(ctx, base)
    )
}

/// The cookie value for a new session id.
pub fn session_value(ctx: &Ctx<'_>, session_id: &str) -> String {
    format!("{session_id}.{}", mac(ctx, SESSION, session_id))
}

/// The stored hash of the session named by the request's cookie, if the cookie is authentic.
pub fn session_hash(ctx: &Ctx<'_>, req: &Request) -> Option<String> {
    let value = req.cookie(&name(ctx, SESSION))?;
    let (id, tag) = value.split_once('.')?;
    constant_time_eq(mac(ctx, SESSION, id).as_bytes(), tag.as_bytes()).then(|| token_hash(id))
}

/// The CSRF token for a form bound to this browser (its CSRF cookie) and this request id.
pub fn csrf_token(ctx: &Ctx<'_>, browser_value: &str, request_id: &str) -> String {
    mac(ctx, CSRF, &format!("{browser_value}\x00{request_id}"))
}

/// Checks a submitted CSRF token against the browser's cookie (double submit, HMAC-bound).
pub fn csrf_ok(ctx: &Ctx<'_>, req: &Request, request_id: &str, submitted: &str) -> bool {
    match req.cookie(&name(ctx, CSRF)) {
        Some(browser) if !browser.is_empty() => {
            constant_time_eq(csrf_token(ctx, &browser, request_id).as_bytes(), submitted.as_bytes())
        }
        _ => false,
    }
}
