//! The gateway: Gatehouse in front of origin apps. A request on an app's host and path prefix is
//! checked for a session, sent to log in when it has none, and otherwise forwarded to the origin
//! with the identity attached and any client-sent identity headers stripped. The adapter does
//! the `fetch` (streaming both ways) and applies [`headers::apply`] to the origin's response.

pub mod csp;
pub mod headers;
pub mod login;
pub mod return_url;

use serde_json::json;

use crate::error::{Error, ErrorCode, InternalError, OAuthError};
use crate::flow::plan;
use crate::http::{append_query, host_of, Method, Request, Response};
use crate::ports::SigningAlg;
use crate::store::apps::{self, App};
use crate::store::{app_sessions, sessions, users};
use crate::types::header_policy::HeaderPolicy;
use crate::web::cookies;
use crate::{jwt, Ctx};
use headers::{header_value, Unsafe};

/// Paths that are always Gatehouse's own, whatever apps are configured.
pub const RESERVED: &[&str] = &[
    "/oauth2/",
    "/.well-known/",
    "/admin/",
    "/static/",
    "/.gatehouse/",
    "/account/",
    // The dev outbox (`mail::outbox`): a page only in local development, a 404 elsewhere.
    "/dev/outbox/",
];

pub fn is_reserved(path: &str) -> bool {
    path == "/healthz" || RESERVED.iter().any(|p| path.starts_with(p) || format!("{path}/") == *p)
}

/// Identity headers Gatehouse sets; a client's own copies are always removed first.
pub const IDENTITY_PREFIX: &str = "x-gatehouse-";
pub const USER_HEADER: &str = "x-gatehouse-user";
pub const EMAIL_HEADER: &str = "x-gatehouse-email";
pub const JWT_HEADER: &str = "x-gatehouse-identity";
/// Lifetime of the identity JWT: long enough for one request, short enough to be useless later.
pub const IDENTITY_TTL: i64 = 60;

/// Hop-by-hop headers (RFC 9110 §7.6.1), which describe one connection and never go further,
/// and ones `fetch` sets itself. Besides these, every header a message's own `Connection` header
/// names is hop-by-hop for that message, and so is every `Proxy-*` header.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Request headers through which a client could tell the origin who it is or what it asked for,
/// in place of Gatehouse: the client's address as various proxies and CDNs spell it, and paths
/// some frameworks route by instead of the request line (`X-Original-URL` on IIS and Symfony: a
/// request Gatehouse matched to a public app could be served as another app's path). Gatehouse
/// states the client's address in `X-Forwarded-For` itself; these never pass.
const CLIENT_CLAIMS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-proxyuser-ip",
    "wl-proxy-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "cf-pseudo-ipv4",
    "x-forwarded",
    "forwarded",
    "forwarded-for",
    "x-original-forwarded-for",
    "x-original-url",
    "x-rewrite-url",
];

/// Headers by which other sign-in proxies tell an origin who the user is (or what client
/// certificate it showed). An origin moved from one of them to Gatehouse may still believe them,
/// so a client must never be able to send them: Gatehouse's own identity is `X-Gatehouse-*`.
const OTHER_PROXIES_IDENTITY: &[&str] = &[
    "remote-user",
    "x-remote-user",
    "x-user",
    "x-webauth-user",
    "x-webauth-email",
    "x-authenticated-user",
    "x-authenticated-email",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-auth-user",
    "x-email",
    "x-preferred-username",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
    "x-ms-client-principal",
    "x-ms-client-principal-name",
    "x-ms-client-principal-id",
    "x-goog-authenticated-user-email",
    "x-goog-authenticated-user-id",
    "x-goog-iap-jwt-assertion",
    "x-amzn-oidc-data",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    "x-ssl-client-cert",
    "x-ssl-client-verify",
    "x-ssl-client-s-dn",
    "x-ssl-client-dn",
    "ssl-client-cert",
    "ssl-client-verify",
    "x-client-cert",
    "x-client-verify",
    "x-arr-clientcert",
    "x-forwarded-client-cert",
];

/// The lower-cased names a message's `Connection` header lists (RFC 9110 §7.6.1).
fn connection_names(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether a header describes only the connection it arrived on.
fn is_hop_by_hop(name: &str, named_in_connection: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    HOP_BY_HOP.contains(&name.as_str()) || name.starts_with("proxy-") || named_in_connection.contains(&name)
}

/// Gatehouse's answer when the client's method cannot go to the origin; `None`: forward it as it
/// is. Methods are extensible (RFC 9110 §9.1: WebDAV, CalDAV and cache purges use their own), so
/// any token of sane length goes, except CONNECT, TRACE and TRACK, which Fetch forbids (TRACE
/// would echo the request, credentials included, back to a script: cross-site tracing).
pub fn method_refusal(raw: &str) -> Option<Response> {
    if raw.is_empty() || raw.len() > 32 || !raw.bytes().all(csp::is_tchar) {
        return Some(Response::error_page(
            400,
            "invalid_request",
            "This request's method is not one Gatehouse forwards.",
        ));
    }
    if ["CONNECT", "TRACE", "TRACK"]
        .iter()
        .any(|m| raw.eq_ignore_ascii_case(m))
    {
        let mut resp = Response::error_page(
            405,
            "method_not_allowed",
            "This request's method is not one Gatehouse forwards.",
        );
        resp.set_header("allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        return Some(resp);
    }
    None
}

/// What to do with a request for an app.
pub enum Outcome {
    Respond(Response),
    Forward(Forward),
}

/// A request to send to the origin, and the policy for its response.
pub struct Forward {
    pub url: String,
    /// Request headers to send, already cleaned and with the identity added.
    pub headers: Vec<(String, String)>,
    pub policy: HeaderPolicy,
    pub https: bool,
    pub app_name: String,
}

/// Whether a path is already in the one form both Gatehouse and any origin read the same way:
/// no percent-encoded unreserved characters or separators (`%61`, `%2F`, `%5C`, `%2E`), no dot
/// segments, no backslashes or `;` path parameters, no empty segments.
pub fn is_canonical_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains("//") || path.contains('\\') || path.contains(';') {
        return false;
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return false;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) if b.is_ascii_alphanumeric() || b"-._~/\\".contains(&b) => return false,
                Some(_) => i += 3,
                None => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

pub fn is_https(origin: &str) -> bool {
    origin.starts_with("https://")
}

/// The gateway's answer for a request that is not Gatehouse's own, or `None` when no app covers
/// it (the adapter then answers 404).
pub async fn route(ctx: &Ctx<'_>, req: &Request) -> Option<Outcome> {
    if crate::owns(ctx.settings, &ctx.origin, &req.path) {
        return None;
    }
    if !is_canonical_path(&req.path) {
        // An encoded or dotted path could match one app here and mean another at the origin.
        return Some(Outcome::Respond(Response::error_page(
            400,
            "invalid_request",
            "This address is not in a form Gatehouse forwards.",
        )));
    }
    let host = host_of(&ctx.origin).to_ascii_lowercase();
    let app = match apps::for_request(ctx.db, &host, &req.path).await {
        Ok(Some(app)) => app,
        Ok(None) => return None,
        Err(e) => return Some(Outcome::Respond(Error::from(e).into_page())),
    };
    if app.disabled {
        return Some(Outcome::Respond(Response::error_page(
            503,
            "temporarily_unavailable",
            &format!("{} is not available right now.", app.name),
        )));
    }
    Some(match forward(ctx, req, &app).await {
        Ok(o) => o,
        Err(e) => Outcome::Respond(e.into_page()),
    })
}

/// The signed-in user on this request: the app-host session, or the SSO session itself when the
/// app shares Gatehouse's host.
/// Where a second factor is required (the app's `require_mfa`, or one of the user's groups in
/// `GATEHOUSE_MFA_REQUIRED_GROUPS`), only a session that passed one is taken, and for a
/// passkey-only user only one that passed a passkey: any other (made before the rule, or for
/// another app on the host) is sent to sign in, where the flow steps it up.
async fn signed_in_user(ctx: &Ctx<'_>, req: &Request, app: &App) -> Result<Option<users::User>, InternalError> {
    let now = ctx.clock.now();
    let needs_second =
        |u: &users::User| app.require_mfa || plan::in_listed_group(&ctx.settings.mfa_required_groups, &u.groups);
    // Most users need neither rule: their session is not read again.
    let ruled = |u: &users::User| needs_second(u) || crate::flow::engine::passkey_only(ctx, u);
    let meets_rules = |u: &users::User, session: Option<sessions::Session>| {
        let passed = session
            .map(|s| plan::parse_passed(&s.factors, s.auth_time))
            .unwrap_or_default();
        (!needs_second(u) || passed.iter().any(|p| p.factor.is_second()))
            && (!crate::flow::engine::passkey_only(ctx, u) || plan::passed_verified_passkey(&passed))
    };
    if let Some(hash) = cookies::app_session_hash(ctx, req) {
        if let Some(user) = users::by_app_session(ctx.db, &hash, &app.host, now).await? {
            if ruled(&user) && !meets_rules(&user, app_sessions::sso_session(ctx.db, &hash, now).await?) {
                return Ok(None);
            }
            return Ok(Some(user));
        }
    }
    if host_of(ctx.issuer()).eq_ignore_ascii_case(&app.host) {
        if let Some(hash) = cookies::session_hash(ctx, req) {
            let Some(user) = users::by_sso_session(ctx.db, &hash, now).await? else {
                return Ok(None);
            };
            if ruled(&user) && !meets_rules(&user, sessions::active(ctx.db, &hash, now).await?) {
                return Ok(None);
            }
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// Removes from an origin's response what would let it act for Gatehouse on a shared host: a
/// `Set-Cookie` of one of Gatehouse's cookie names (session fixation, login CSRF), and
/// `Service-Worker-Allowed` (a service worker scoped over Gatehouse's paths sees every password
/// typed there). Also what described only the connection to the origin: hop-by-hop headers,
/// `Proxy-*`, and the headers its `Connection` header names (RFC 9110 §7.6.1).
pub fn clean_origin_response(headers: &mut Vec<(String, String)>) {
    let named = connection_names(headers);
    headers.retain(|(k, v)| {
        if k.eq_ignore_ascii_case("service-worker-allowed") {
            return false;
        }
        // The response's length is the body's; the runtime frames it.
        if !k.eq_ignore_ascii_case("content-length") && is_hop_by_hop(k, &named) {
            return false;
        }
        if k.eq_ignore_ascii_case("set-cookie") {
            // Named as browsers parse it (RFC 6265bis §5.6): no `=` means an empty name. A nameless
            // cookie is refused too: `=gh_session=x` is stored with an empty name and sent back as
            // `gh_session=x`, which reads as Gatehouse's own.
            let pair = v.split(';').next().unwrap_or("");
            let name = pair.split_once('=').map_or("", |(n, _)| n).trim();
            return !name.is_empty() && !cookies::is_ours(name);
        }
        true
    });
}

async fn forward(ctx: &Ctx<'_>, req: &Request, app: &App) -> Result<Outcome, Error> {
    let mut identity: Option<(users::User, Vec<String>)> = None;
    if app.require_login {
        let Some(user) = signed_in_user(ctx, req, app).await? else {
            return Ok(Outcome::Respond(login_redirect(ctx, req, app)?));
        };
        let groups = user.groups.clone();
        if !app.admits(&user.id, &user.username, &groups) {
            return Ok(Outcome::Respond(Response::error_page(
                403,
                "access_denied",
                "Your account is not allowed to use this application.",
            )));
        }
        // The bindings of the gateway flow and of this app, on every request: an app session (or
        // the SSO session on Gatehouse's own host) may have been made for another app on the
        // host, or before a binding was added. Cached per isolate (`policy::judge`): no query on
        // this path while the cache is fresh.
        let target = crate::policy::binding::Target::App(app.id.clone());
        if crate::policy::judge::refusing(ctx, req, &user, "gateway", Some(&target), &app.name)
            .await?
            .is_some()
        {
            return Ok(Outcome::Respond(Response::error_page(
                403,
                "access_denied",
                "Your account may not use this application.",
            )));
        }
        identity = Some((user, groups));
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    let named = connection_names(&req.headers);
    for (k, v) in &req.headers {
        // Names with `_` are dropped: CGI-style servers read `X_Gatehouse_User` as
        // `X-Gatehouse-User` (the Puma CVE-2024-45614 class), so they could smuggle identity.
        if k.starts_with(IDENTITY_PREFIX)
            || k.contains('_')
            || k.starts_with("x-forwarded-")
            || CLIENT_CLAIMS.contains(&k.as_str())
            || OTHER_PROXIES_IDENTITY.contains(&k.as_str())
            || is_hop_by_hop(k, &named)
        {
            continue;
        }
        if k == "cookie" {
            let kept: Vec<&str> = v
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !cookies::is_ours(c.split('=').next().unwrap_or("")))
                .collect();
            if !kept.is_empty() {
                headers.push(("cookie".into(), kept.join("; ")));
            }
            continue;
        }
        headers.push((k.clone(), v.clone()));
    }
    // Added after the client's headers were cleaned: a `Connection` header naming these cannot
    // remove them.
    let host = host_of(&ctx.origin).to_owned();
    headers.push(("x-forwarded-host".into(), host));
    headers.push((
        "x-forwarded-proto".into(),
        if is_https(&ctx.origin) { "https" } else { "http" }.into(),
    ));
    // The address Gatehouse itself judged the client by (rate limits, reputation), one entry.
    if let Some(ip) = crate::policy::client_ip(ctx, req).addr() {
        headers.push(("x-forwarded-for".into(), ip.to_string()));
    }
    if let Some((user, groups)) = identity {
        let now = ctx.clock.now();
        let claims = json!({
            "iss": ctx.issuer(), "sub": user.id, "aud": app.origin, "iat": now, "nbf": now,
            "exp": now + IDENTITY_TTL, "preferred_username": user.username, "email": user.email,
            "email_verified": user.email_verified, "groups": groups, "app": app.id,
        });
        let token = jwt::sign(ctx.signer, SigningAlg::RS256, &claims, Some(jwt::typ::GATEWAY_IDENTITY)).await?;
        headers.push((JWT_HEADER.into(), token));
        // Percent-encoded UTF-8 (`%` too), so an internationalised address reaches the origin
        // exactly and never fails the request; an ASCII value without `%` reads as it is.
        headers.push((
            USER_HEADER.into(),
            header_value(&user.username, Unsafe::Text)
                .unwrap_or_default()
                .into_owned(),
        ));
        headers.push((
            EMAIL_HEADER.into(),
            header_value(&user.email, Unsafe::Text).unwrap_or_default().into_owned(),
        ));
    }
    let mut url = format!("{}{}", app.origin.trim_end_matches('/'), req.path);
    if !req.query.is_empty() {
        url.push('?');
        url.push_str(&req.query);
    }
    Ok(Outcome::Forward(Forward {
        url,
        headers,
        policy: app.headers.clone(),
        https: is_https(&ctx.origin),
        app_name: app.name.clone(),
    }))
}

/// Unauthenticated: GET and HEAD go to log in and come back; other methods cannot be replayed
/// after a redirect, so they get a 401.
fn login_redirect(ctx: &Ctx<'_>, req: &Request, app: &App) -> Result<Response, Error> {
    if !matches!(req.method, Method::Get | Method::Head) {
        return Ok(Error::from(OAuthError::new(ErrorCode::LoginRequired, "sign in first")).into_page_with_status(401));
    }
    let mut return_to = format!("{}{}", ctx.origin, req.path);
    if !req.query.is_empty() {
        return_to.push('?');
        return_to.push_str(&req.query);
    }
    // Binds the login to this browser: the code that comes back is redeemable only with this
    // cookie, so nobody can sign someone else in as themselves (login CSRF).
    let binding = crate::crypto::random_token(ctx.rng)?;
    let url = append_query(
        &format!("{}/oauth2/gateway", ctx.issuer()),
        &[
            ("app", app.id.clone()),
            ("return_to", return_to),
            ("bind", crate::crypto::token_hash(&binding)),
        ],
    );
    let mut resp = Response::redirect(302, &url);
    resp.add_header(
        "set-cookie",
        &cookies::set_cookie_here(ctx, cookies::GATEWAY_BINDING, &binding, cookies::GATEWAY_BINDING_TTL),
    );
    Ok(resp)
}

/// The page for an origin that failed: 502 unreachable, 504 too slow. Never hangs.
pub fn origin_failure(status: u16, app_name: &str) -> Response {
    let detail = if status == 504 {
        format!("{app_name} did not answer in time. Try again in a moment.")
    } else {
        format!("{app_name} cannot be reached right now. Try again in a moment.")
    };
    Response::error_page(
        status,
        if status == 504 {
            "gateway_timeout"
        } else {
            "bad_gateway"
        },
        &detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn an_origin_cannot_set_gatehouses_cookies_or_widen_a_service_workers_scope() {
        let mut headers = h(&[
            ("set-cookie", "__Host-gh_session=attacker.mac; Path=/; Secure; HttpOnly"),
            ("set-cookie", "gh_csrf=fixed; Path=/"),
            ("set-cookie", "__Host-gh_app=x; Path=/"),
            ("set-cookie", "gh_gw=x"),
            ("set-cookie", "=gh_session=nameless; Path=/"),
            ("set-cookie", " =gh_csrf=x"),
            ("set-cookie", "gh_session"),
            ("set-cookie", "app_session=kept; Path=/"),
            ("service-worker-allowed", "/"),
            ("Service-Worker-Allowed", "/oauth2/"),
            ("content-type", "text/html"),
        ]);
        clean_origin_response(&mut headers);
        assert_eq!(
            headers,
            h(&[
                ("set-cookie", "app_session=kept; Path=/"),
                ("content-type", "text/html")
            ])
        );
    }

    #[test]
    fn host_of_drops_scheme_path_query_and_fragment() {
        assert_eq!(host_of("https://id.example.com"), "id.example.com");
        assert_eq!(host_of("https://id.example.com:8443/tenant?x#y"), "id.example.com:8443");
        assert_eq!(host_of("app.example.com"), "app.example.com");
    }
}
