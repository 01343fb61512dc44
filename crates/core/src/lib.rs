//! Gatehouse core: the OpenID Connect provider and its policies as plain Rust. Nothing here
//! imports a Worker type; time, randomness, storage, counters and signing come in through
//! [`ports`], so the same code runs natively under test, in a browser, and in workerd.

pub mod admin;
pub mod config;
pub mod cors;
pub mod crypto;
pub mod db;
pub mod edge;
pub mod error;
pub mod factors;
pub mod flow;
pub mod gateway;
pub mod health;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod log;
pub mod oidc;
pub mod pages;
pub mod password;
pub mod policy;
pub mod ports;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use config::{Secrets, Settings};
use http::{Method, Request, Response};
use ports::{Captcha, Clock, Counters, Db, Rng, Signer};

/// Everything a request handler may use. Built per request by the adapter (or a test).
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub secrets: &'a Secrets,
    /// The origin the request arrived on (`https://id.example.com`), used as issuer when
    /// `settings.issuer` is unset.
    pub origin: String,
    pub db: &'a dyn Db,
    pub signer: &'a dyn Signer,
    pub counters: &'a dyn Counters,
    /// Turnstile siteverify (used only when a CAPTCHA is configured).
    pub captcha: &'a dyn Captcha,
    pub clock: &'a dyn Clock,
    pub rng: &'a dyn Rng,
}

impl Ctx<'_> {
    pub fn issuer(&self) -> &str {
        self.settings
            .issuer
            .as_deref()
            .unwrap_or(&self.origin)
            .trim_end_matches('/')
    }
}

/// Whether `path` is Gatehouse's own on the host `origin`. On the issuer's host: the OIDC
/// endpoints, the admin API, discovery, health and static files. On any other host (an app's)
/// only `/.gatehouse/*`: the SSO login, its cookies and the admin API must never live in an app's
/// web origin, where a compromised app could read them; every other path there is the app's.
pub fn owns(settings: &Settings, origin: &str, path: &str) -> bool {
    let on_issuer_host = match &settings.issuer {
        // Unset (local development): the issuer is whatever origin the request came to.
        None => true,
        Some(issuer) => gateway::host_of(issuer).eq_ignore_ascii_case(gateway::host_of(origin)),
    };
    path.starts_with("/.gatehouse/") || (on_issuer_host && gateway::is_reserved(path))
}

/// Dispatches a request to its endpoint and sets the security headers of Gatehouse's own
/// responses in one place. `None` means "not Gatehouse's": the adapter then tries the gateway,
/// a static asset, or answers 404.
pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Option<Response> {
    if !owns(ctx.settings, &ctx.origin, &req.path) {
        return None;
    }
    let mut resp = dispatch(ctx, req).await?;
    cors::apply(ctx, req, &mut resp);
    Some(secure_own_response(ctx, resp))
}

/// Adds the security headers (CSP on pages, with the page's script nonce if it has one; HSTS
/// over https; framing, sniffing).
pub fn secure_own_response(ctx: &Ctx<'_>, mut resp: Response) -> Response {
    let https = gateway::is_https(&ctx.origin);
    gateway::headers::own_response(
        &mut resp.headers,
        https,
        resp.csp_nonce.as_deref(),
        &resp.form_action,
        &resp.frame_src,
    );
    resp
}

async fn dispatch(ctx: &Ctx<'_>, req: &Request) -> Option<Response> {
    // Per-IP rate limits on the endpoints that check secrets, before any secret is looked at.
    if let Some(limited) = policy::guard(ctx, req).await {
        return Some(limited);
    }
    let resp = match (req.method, req.path.as_str()) {
        (Method::Options, p) if cors::is_cors_path(p) => cors::preflight(ctx, req),
        (Method::Get | Method::Head, "/healthz") => health::handle(ctx).await,
        (Method::Get | Method::Head, "/.well-known/openid-configuration") => oidc::discovery::handle(ctx),
        (Method::Get | Method::Head, "/oauth2/jwks.json") => oidc::jwks::handle(ctx),
        (Method::Get | Method::Post, "/oauth2/authorize") => oidc::authorize::handle(ctx, req).await,
        (Method::Get, "/oauth2/authorize/resume") => oidc::authorize::resume(ctx, req).await,
        (Method::Get, "/oauth2/login") => oidc::login::get(ctx, req).await,
        (Method::Post, "/oauth2/login") => oidc::login::post(ctx, req).await,
        (Method::Get, "/oauth2/consent") => oidc::consent::get(ctx, req).await,
        (Method::Post, "/oauth2/consent") => oidc::consent::post(ctx, req).await,
        (_, "/oauth2/token") => oidc::token::handle(ctx, req).await,
        (Method::Get | Method::Post, "/oauth2/userinfo") => oidc::userinfo::handle(ctx, req).await,
        (_, "/oauth2/revoke") => oidc::revoke::handle(ctx, req).await,
        (_, "/oauth2/introspect") => oidc::introspect::handle(ctx, req).await,
        (Method::Get | Method::Post, "/oauth2/logout") => oidc::logout::handle(ctx, req).await,
        (Method::Get, "/oauth2/gateway") => gateway::login::start(ctx, req).await,
        (Method::Get, "/.gatehouse/callback") => gateway::login::callback(ctx, req).await,
        (Method::Post, "/.gatehouse/csp-report") => gateway::login::csp_report(ctx, req).await,
        (_, p) if p == "/admin/api" || p.starts_with("/admin/api/") => admin::handle(ctx, req).await,
        _ => return None,
    };
    Some(resp)
}
