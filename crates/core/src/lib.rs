//! Gatehouse core: the OpenID Connect provider and its policies as plain Rust. Nothing here
//! imports a Worker type; time, randomness, storage, counters and signing come in through
//! [`ports`], so the same code runs natively under test, in a browser, and in workerd.

pub mod account;
pub mod admin;
pub mod config;
pub mod cors;
pub mod crypto;
pub mod db;
pub mod edge;
pub mod error;
pub mod events;
pub mod factors;
pub mod flow;
pub mod gateway;
pub mod health;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod log;
pub mod mail;
pub mod oidc;
pub mod pages;
pub mod password;
pub mod policy;
pub mod ports;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod web;

use config::{Secrets, Settings};
use http::{Method, Request, Response};
use ports::{Captcha, Clock, Counters, Db, Mailer, PasswordStrength, PwnedPasswords, Rng, SignatureVerifier, Signer};
use web::router::{Handler, Shape};

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
    /// Where mail is queued for delivery after the response (`mail::send`).
    pub mailer: &'a dyn Mailer,
    /// Checks passkey signatures (`factors::webauthn`).
    pub webauthn: &'a dyn SignatureVerifier,
    /// Asks Have I Been Pwned about a new password's hash prefix (`policy::password::pwned`).
    pub pwned: &'a dyn PwnedPasswords,
    /// Scores a new password with zxcvbn in the strength Worker (`policy::password::strength`).
    pub strength: &'a dyn PasswordStrength,
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
        Some(issuer) => http::host_of(issuer).eq_ignore_ascii_case(http::host_of(origin)),
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
    let route = web::router::find(req.method, &req.path)?;
    // Per-IP rate limits, before any secret is looked at or anything is stored.
    if let Some(limit) = route.limit {
        match policy::guard(ctx, req, limit).await {
            Ok(None) => {}
            Ok(Some(retry_after)) => return Some(rate_limited(ctx, req, route, retry_after).await),
            Err(e) => return Some(error_in_shape(route.shape, e.into())),
        }
    }
    if req.method == Method::Options && route.cors {
        return Some(cors::preflight(ctx, req));
    }
    Some(call(ctx, req, route.handler).await)
}

async fn call(ctx: &Ctx<'_>, req: &Request, handler: Handler) -> Response {
    use flow::stages;
    match handler {
        Handler::Health => health::handle(ctx).await,
        Handler::Discovery => oidc::discovery::handle(ctx),
        Handler::Jwks => oidc::jwks::handle(ctx),
        Handler::Authorize => oidc::authorize::handle(ctx, req).await,
        Handler::AuthorizeResume => oidc::authorize::resume(ctx, req).await,
        Handler::PasswordShow => stages::password::show(ctx, req).await,
        Handler::PasswordSubmit => stages::password::submit(ctx, req).await,
        Handler::ConsentShow => stages::consent::show(ctx, req).await,
        Handler::ConsentSubmit => stages::consent::submit(ctx, req).await,
        Handler::TotpShow => stages::totp::show(ctx, req).await,
        Handler::TotpSubmit => stages::totp::submit(ctx, req).await,
        Handler::PasskeyOptions => stages::passkey::options(ctx, req).await,
        Handler::PasskeySubmit => stages::passkey::submit(ctx, req).await,
        Handler::EnrollPasskeyOptions => stages::enroll_passkey::options(ctx, req).await,
        Handler::EnrollPasskeySubmit => stages::enroll_passkey::submit(ctx, req).await,
        Handler::RecoveryCodeShow => stages::recovery_code::show(ctx, req).await,
        Handler::RecoveryCodeSubmit => stages::recovery_code::submit(ctx, req).await,
        Handler::ResetShow => stages::reset::show(ctx, req).await,
        Handler::ResetSubmit => stages::reset::submit(ctx, req).await,
        Handler::ResetConfirm => stages::reset::confirm(ctx, req).await,
        Handler::EmailCodeShow => stages::email_code::show(ctx, req).await,
        Handler::EmailCodeSubmit => stages::email_code::submit(ctx, req).await,
        Handler::EmailCodeResend => stages::email_code::resend(ctx, req).await,
        Handler::EnrollTotpShow => stages::enroll_totp::show(ctx, req).await,
        Handler::EnrollTotpSubmit => stages::enroll_totp::submit(ctx, req).await,
        Handler::NewPasswordShow => stages::new_password::show(ctx, req).await,
        Handler::NewPasswordSubmit => stages::new_password::submit(ctx, req).await,
        Handler::Token => oidc::token::handle(ctx, req).await,
        Handler::Userinfo => oidc::userinfo::handle(ctx, req).await,
        Handler::Revoke => oidc::revoke::handle(ctx, req).await,
        Handler::Introspect => oidc::introspect::handle(ctx, req).await,
        Handler::Logout => oidc::logout::handle(ctx, req).await,
        Handler::GatewayStart => gateway::login::start(ctx, req).await,
        Handler::GatewayResume => gateway::login::resume(ctx, req).await,
        Handler::GatewayCallback => gateway::login::callback(ctx, req).await,
        Handler::CspReport => gateway::login::csp_report(ctx, req).await,
        Handler::Admin => admin::handle(ctx, req).await,
        Handler::DevOutbox => mail::outbox::show(ctx, req).await,
        Handler::AccountShow => account::show(ctx, req).await,
        Handler::AccountResume => account::resume(ctx, req).await,
        Handler::AccountPassword => account::change_password(ctx, req).await,
        Handler::AccountSessionsEnd => account::end_other_sessions(ctx, req).await,
        Handler::AccountTotpNew => account::new_totp(ctx, req).await,
        Handler::AccountTotpConfirm => account::confirm_totp(ctx, req).await,
        Handler::AccountTotpRemove => account::remove_totp(ctx, req).await,
        Handler::AccountPasskeyOptions => account::passkeys::options(ctx, req).await,
        Handler::AccountPasskeyAdd => account::passkeys::add(ctx, req).await,
        Handler::AccountPasskeyRemove => account::passkeys::remove(ctx, req).await,
        Handler::PasskeySetupShow => account::passkey_setup::show(ctx, req).await,
        Handler::PasskeySetupOptions => account::passkey_setup::options(ctx, req).await,
        Handler::PasskeySetupFinish => account::passkey_setup::finish(ctx, req).await,
        Handler::AccountRecoveryCodes => account::regenerate_codes(ctx, req).await,
        Handler::AccountEmailChange => account::email::change(ctx, req).await,
        Handler::AccountEmailVerifySend => account::email::send_verification(ctx, req).await,
        Handler::AccountEmailVerifyShow => account::email::verify_show(ctx, req).await,
        Handler::AccountEmailVerify => account::email::verify(ctx, req).await,
        Handler::AccountEmailOtp => account::email::set_email_otp(ctx, req).await,
        Handler::AccountProfile => account::profile::save(ctx, req).await,
    }
}

fn error_in_shape(shape: Shape, e: error::Error) -> Response {
    match shape {
        Shape::Json => e.into_json(),
        Shape::Page | Shape::SignInForm => e.into_page(),
    }
}

/// The 429 of the per-IP rate limit, in the route's shape.
async fn rate_limited(ctx: &Ctx<'_>, req: &Request, route: &web::router::Route, retry_after: i64) -> Response {
    let mut resp = match route.shape {
        Shape::Json => error_in_shape(
            Shape::Json,
            error::OAuthError::new(error::ErrorCode::RateLimited, "too many requests").into(),
        ),
        Shape::SignInForm => flow::stages::password::rate_limited(ctx, req, retry_after).await,
        Shape::Page => Response::error_page(
            429,
            "rate_limited",
            &format!("Too many attempts from your network. Please wait {retry_after} seconds and try again."),
        ),
    };
    resp.status = 429;
    resp.set_header("retry-after", &retry_after.to_string());
    resp
}
