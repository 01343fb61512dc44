//! Every cookie Gatehouse sets, in one place: their names, the `__Host-` rule, the signed values,
//! the browser binding and the CSRF tokens of forms. OIDC, the sign-in flows and the gateway all
//! use this module; nothing else writes a `Set-Cookie`.
//!
//! Two hosts carry cookies. Gatehouse's own (the issuer's) holds the SSO session and the browser
//! binding; an app's host behind the gateway holds its app session and the gateway login's
//! binding. Signed values carry a random id plus an HMAC under `GATEHOUSE_COOKIE_SECRET`, and the
//! database stores only the id's hash: rotating the secret therefore logs everyone out.

use crate::crypto::{b64url, constant_time_eq, hmac_sha256, random_token, token_hash};
use crate::error::InternalError;
use crate::http::Request;
use crate::Ctx;

/// The SSO session, on Gatehouse's host.
pub const SESSION: &str = "gh_session";
/// The browser binding on Gatehouse's host: flows and forms are bound to it (double-submit CSRF).
pub const CSRF: &str = "gh_csrf";
/// An app's session, on the app's host.
pub const APP_SESSION: &str = "gh_app";
/// Binds a gateway login to the app-host browser that started it.
pub const GATEWAY_BINDING: &str = "gh_gw";
/// Every name above: an origin behind the gateway must never set one of them.
pub const ALL: &[&str] = &[SESSION, CSRF, APP_SESSION, GATEWAY_BINDING];

/// Lifetime of the browser binding cookie: as long as a flow may take.
const BINDING_TTL: i64 = 3600;
/// Lifetime of the gateway binding cookie on the app's host.
pub const GATEWAY_BINDING_TTL: i64 = 1800;

/// The cookie's name on an origin: `__Host-` needs `Secure`, which browsers refuse on plain-http
/// origins, so development over http uses the bare name.
pub fn name_on(https: bool, base: &str) -> String {
    if https {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value: host-only, whole-site, HttpOnly, `SameSite=Lax` (a sign-in arrives by
/// top-level navigation from the client), `Secure` over https; `max_age` 0 deletes.
pub fn set_on(https: bool, base: &str, value: &str, max_age: i64) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        name_on(https, base)
    )
}

/// Whether Gatehouse's own host is served over https.
pub fn is_https(ctx: &Ctx<'_>) -> bool {
    ctx.issuer().starts_with("https://")
}

/// Whether the host this request came to (an app's, for the gateway) is served over https.
pub fn origin_is_https(ctx: &Ctx<'_>) -> bool {
    ctx.origin.starts_with("https://")
}

/// A cookie's name on Gatehouse's host.
pub fn name(ctx: &Ctx<'_>, base: &str) -> String {
    name_on(is_https(ctx), base)
}

/// A `Set-Cookie` on Gatehouse's host.
pub fn set_cookie(ctx: &Ctx<'_>, base: &str, value: &str, max_age: i64) -> String {
    set_on(is_https(ctx), base, value, max_age)
}

/// A `Set-Cookie` on the host this request came to.
pub fn set_cookie_here(ctx: &Ctx<'_>, base: &str, value: &str, max_age: i64) -> String {
    set_on(origin_is_https(ctx), base, value, max_age)
}

/// Whether a cookie name (with or without its `__Host-` prefix) is one of Gatehouse's.
/// Browsers match the `__Host-` prefix in any case (RFC 6265bis §4.1.3.2) and names exactly.
pub fn is_ours(name: &str) -> bool {
    let bare = match name.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("__Host-") => &name[7..],
        _ => name,
    };
    ALL.contains(&bare)
}

fn mac(ctx: &Ctx<'_>, purpose: &str, value: &str) -> String {
    let data = format!("{purpose}\x00{value}");
    b64url(&hmac_sha256(
        ctx.secrets.cookie_secret.expose().as_bytes(),
        data.as_bytes(),
    ))
}

/// The signed cookie value for a new random id (`id.mac`), for the cookie named `base`.
pub fn signed_value(ctx: &Ctx<'_>, base: &str, id: &str) -> String {
    format!("{id}.{}", mac(ctx, base, id))
}

/// The hash of the id a signed cookie carries, if its MAC is authentic for `base`.
pub fn signed_id_hash(ctx: &Ctx<'_>, base: &str, value: &str) -> Option<String> {
    let (id, tag) = value.split_once('.')?;
    constant_time_eq(mac(ctx, base, id).as_bytes(), tag.as_bytes()).then(|| token_hash(id))
}

/// The SSO session cookie's value for a new session id.
pub fn session_value(ctx: &Ctx<'_>, session_id: &str) -> String {
    signed_value(ctx, SESSION, session_id)
}

/// The stored hash of the SSO session the request's cookie names, if the cookie is authentic.
pub fn session_hash(ctx: &Ctx<'_>, req: &Request) -> Option<String> {
    signed_id_hash(ctx, SESSION, &req.cookie(&name(ctx, SESSION))?)
}

/// The stored hash of the app session the request's cookie (on the app's host) names.
pub fn app_session_hash(ctx: &Ctx<'_>, req: &Request) -> Option<String> {
    signed_id_hash(
        ctx,
        APP_SESSION,
        &req.cookie(&name_on(origin_is_https(ctx), APP_SESSION))?,
    )
}

/// The browser's binding cookie value, creating one (and its `Set-Cookie`) when absent.
pub fn browser_binding(ctx: &Ctx<'_>, req: &Request) -> Result<(String, Option<String>), InternalError> {
    match req.cookie(&name(ctx, CSRF)).filter(|v| v.len() >= 32) {
        Some(v) => Ok((v, None)),
        None => {
            let v = random_token(ctx.rng)?;
            let set = set_cookie(ctx, CSRF, &v, BINDING_TTL);
            Ok((v, Some(set)))
        }
    }
}

/// Whether this request comes from the browser whose binding hashes to `bound_hash`.
pub fn same_browser(ctx: &Ctx<'_>, req: &Request, bound_hash: &str) -> bool {
    match req.cookie(&name(ctx, CSRF)) {
        Some(v) if !bound_hash.is_empty() => constant_time_eq(token_hash(&v).as_bytes(), bound_hash.as_bytes()),
        _ => false,
    }
}

/// Whether the request carries the gateway binding (on the app's host) that hashes to `bound_hash`.
pub fn same_gateway_browser(ctx: &Ctx<'_>, req: &Request, bound_hash: &str) -> bool {
    req.cookie(&name_on(origin_is_https(ctx), GATEWAY_BINDING))
        .is_some_and(|v| constant_time_eq(token_hash(&v).as_bytes(), bound_hash.as_bytes()))
}

/// The CSRF token for a form bound to this browser (its binding cookie) and to `purpose` (a
/// flow id, or a fixed name for a form outside flows).
pub fn csrf_token(ctx: &Ctx<'_>, browser_value: &str, purpose: &str) -> String {
    mac(ctx, CSRF, &format!("{browser_value}\x00{purpose}"))
}

/// Checks a submitted CSRF token against the browser's cookie (double submit, HMAC-bound).
pub fn csrf_ok(ctx: &Ctx<'_>, req: &Request, purpose: &str, submitted: &str) -> bool {
    match req.cookie(&name(ctx, CSRF)) {
        Some(browser) if !browser.is_empty() => {
            constant_time_eq(csrf_token(ctx, &browser, purpose).as_bytes(), submitted.as_bytes())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_host_prefix_only_over_https() {
        assert_eq!(name_on(true, SESSION), "__Host-gh_session");
        assert_eq!(name_on(false, SESSION), "gh_session");
        assert_eq!(
            set_on(true, CSRF, "v", 60),
            "__Host-gh_csrf=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert_eq!(
            set_on(false, APP_SESSION, "", 0),
            "gh_app=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn every_name_is_ours_with_or_without_its_prefix_and_nothing_else_is() {
        for n in ALL {
            assert!(is_ours(n));
            assert!(is_ours(&format!("__Host-{n}")));
            assert!(is_ours(&format!("__HOST-{n}")));
            assert!(!is_ours(&n.to_uppercase()));
        }
        assert!(!is_ours("gh_sessionx"));
        assert!(!is_ours("__Host-other"));
        assert!(!is_ours("session"));
    }
}
