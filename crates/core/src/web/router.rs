//! The one route table: every path Gatehouse answers itself, with its methods, its handler, the
//! per-IP rate-limit bucket it spends from, the shape its errors take, and whether a browser on
//! another origin may call it (CORS). The rate limiter and CORS read it; no other list of
//! endpoint paths exists.

use crate::http::Method;
use crate::policy::{Class, Limit};

/// What answers a route (`crate::handle` maps each to its endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Health,
    Discovery,
    Jwks,
    Authorize,
    AuthorizeResume,
    PasswordShow,
    PasswordSubmit,
    ConsentShow,
    ConsentSubmit,
    TotpShow,
    TotpSubmit,
    PasskeyOptions,
    PasskeySubmit,
    EnrollPasskeyOptions,
    EnrollPasskeySubmit,
    RecoveryCodeShow,
    RecoveryCodeSubmit,
    EmailCodeShow,
    EmailCodeSubmit,
    EmailCodeResend,
    ResetShow,
    ResetSubmit,
    ResetConfirm,
    EnrollTotpShow,
    EnrollTotpSubmit,
    NewPasswordShow,
    NewPasswordSubmit,
    Token,
    Userinfo,
    Revoke,
    Introspect,
    Logout,
    GatewayStart,
    GatewayResume,
    GatewayCallback,
    CspReport,
    Admin,
    DevOutbox,
    AccountShow,
    AccountResume,
    AccountPassword,
    AccountSessionsEnd,
    AccountTotpNew,
    AccountTotpConfirm,
    AccountTotpRemove,
    AccountPasskeyOptions,
    AccountPasskeyAdd,
    AccountPasskeyRemove,
    PasskeySetupShow,
    PasskeySetupOptions,
    PasskeySetupFinish,
    AccountRecoveryCodes,
    AccountEmailChange,
    AccountEmailVerifySend,
    AccountEmailVerifyShow,
    AccountEmailVerify,
    AccountEmailOtp,
    AccountProfile,
}

/// How a route's errors (and its 429) are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// RFC 6749 §5.2-style JSON.
    Json,
    /// An HTML error page.
    Page,
    /// The sign-in form again, with a message, so the flow survives the wait.
    SignInForm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    Exact(&'static str),
    /// The path itself or anything under it (`/admin/api`, `/admin/api/...`).
    Tree(&'static str),
}

impl PathMatch {
    fn matches(self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Tree(p) => path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub path: PathMatch,
    /// The methods it answers; empty: any (the endpoint answers a wrong one in its own shape).
    pub methods: &'static [Method],
    pub handler: Handler,
    /// The per-IP bucket; `None`: not rate limited (it checks no secret and stores nothing).
    pub limit: Option<Limit>,
    pub shape: Shape,
    /// A browser on a listed origin may call it (`GATEHOUSE_CORS_ORIGINS`).
    pub cors: bool,
    /// How much of a request body the adapter reads for it (`limits::body_plan`).
    pub body: Body,
}

/// The bound of a route's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A form or a small JSON document: `limits::FORM_BODY`.
    Form,
    /// The admin API's JSON: `limits::ADMIN_BODY`, read only with the admin token.
    Admin,
    /// A browser's CSP report: `limits::CSP_REPORT`.
    CspReport,
}

const GET: &[Method] = &[Method::Get, Method::Head];
const GET_ONLY: &[Method] = &[Method::Get];
const POST: &[Method] = &[Method::Post];
const GET_POST: &[Method] = &[Method::Get, Method::Post];
const ANY: &[Method] = &[];

/// Checks a secret: the strict tiers.
const fn secret(bucket: &'static str) -> Option<Limit> {
    Some(Limit {
        bucket,
        class: Class::Secret,
    })
}

/// Hit by ordinary page loads, and stores what it is sent: the generous tiers.
const fn page(bucket: &'static str) -> Option<Limit> {
    Some(Limit {
        bucket,
        class: Class::Page,
    })
}

const fn route(
    path: PathMatch,
    methods: &'static [Method],
    handler: Handler,
    limit: Option<Limit>,
    shape: Shape,
) -> Route {
    Route {
        path,
        methods,
        handler,
        limit,
        shape,
        cors: false,
        body: Body::Form,
    }
}

const fn cors(r: Route) -> Route {
    Route { cors: true, ..r }
}

const fn body(body: Body, r: Route) -> Route {
    Route { body, ..r }
}

use Handler as H;
use PathMatch::{Exact, Tree};

pub const ROUTES: &[Route] = &[
    route(Exact("/healthz"), GET, H::Health, None, Shape::Json),
    route(
        Exact("/.well-known/openid-configuration"),
        GET,
        H::Discovery,
        None,
        Shape::Json,
    ),
    route(Exact("/oauth2/jwks.json"), GET, H::Jwks, None, Shape::Json),
    // Each stores a flow for anyone who asks.
    route(
        Exact("/oauth2/authorize"),
        GET_POST,
        H::Authorize,
        page("authorize"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/authorize/resume"),
        GET_ONLY,
        H::AuthorizeResume,
        None,
        Shape::Page,
    ),
    route(Exact("/oauth2/login"), GET_ONLY, H::PasswordShow, None, Shape::Page),
    route(
        Exact("/oauth2/login"),
        POST,
        H::PasswordSubmit,
        secret("login"),
        Shape::SignInForm,
    ),
    route(Exact("/oauth2/reset"), GET_ONLY, H::ResetShow, None, Shape::Page),
    // Sends a mail and stores a link for anyone who names an account.
    route(
        Exact("/oauth2/reset"),
        POST,
        H::ResetSubmit,
        secret("reset"),
        Shape::Page,
    ),
    // The link from the mail: a secret to check.
    route(
        Exact("/oauth2/reset/confirm"),
        GET_ONLY,
        H::ResetConfirm,
        secret("reset_confirm"),
        Shape::Page,
    ),
    // Second-factor codes are secrets like passwords: one strict bucket for all their forms.
    route(Exact("/oauth2/mfa"), GET_ONLY, H::TotpShow, None, Shape::Page),
    route(Exact("/oauth2/mfa"), POST, H::TotpSubmit, secret("mfa"), Shape::Page),
    route(
        Exact("/oauth2/mfa/recovery"),
        GET_ONLY,
        H::RecoveryCodeShow,
        None,
        Shape::Page,
    ),
    route(
        Exact("/oauth2/mfa/recovery"),
        POST,
        H::RecoveryCodeSubmit,
        secret("mfa"),
        Shape::Page,
    ),
    // Passkeys: the options store a challenge (the generous tiers, hit by every login page that
    // offers autofill); the assertion is a secret checked (the strict ones).
    route(
        Exact("/oauth2/passkey/options"),
        POST,
        H::PasskeyOptions,
        page("passkey_options"),
        Shape::Json,
    ),
    route(
        Exact("/oauth2/passkey"),
        POST,
        H::PasskeySubmit,
        secret("passkey"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/mfa/enroll/passkey/options"),
        POST,
        H::EnrollPasskeyOptions,
        page("passkey_options"),
        Shape::Json,
    ),
    route(
        Exact("/oauth2/mfa/enroll/passkey"),
        POST,
        H::EnrollPasskeySubmit,
        secret("passkey"),
        Shape::Page,
    ),
    // Showing the stage sends the first code (a mail and a stored token), like the resend.
    route(
        Exact("/oauth2/mfa/email"),
        GET_ONLY,
        H::EmailCodeShow,
        page("mfa_email"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/mfa/email"),
        POST,
        H::EmailCodeSubmit,
        secret("mfa"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/mfa/email/send"),
        POST,
        H::EmailCodeResend,
        page("mfa_email"),
        Shape::Page,
    ),
    // Showing the enrollment writes a device: limited like the pages that store a flow.
    route(
        Exact("/oauth2/mfa/enroll"),
        GET_ONLY,
        H::EnrollTotpShow,
        page("mfa_enroll"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/mfa/enroll"),
        POST,
        H::EnrollTotpSubmit,
        secret("mfa"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/password"),
        GET_ONLY,
        H::NewPasswordShow,
        None,
        Shape::Page,
    ),
    // Hashes a password (Argon2id): limited like the forms that check one.
    route(
        Exact("/oauth2/password"),
        POST,
        H::NewPasswordSubmit,
        secret("password"),
        Shape::Page,
    ),
    route(Exact("/oauth2/consent"), GET_ONLY, H::ConsentShow, None, Shape::Page),
    route(
        Exact("/oauth2/consent"),
        POST,
        H::ConsentSubmit,
        secret("consent"),
        Shape::Page,
    ),
    cors(route(
        Exact("/oauth2/token"),
        ANY,
        H::Token,
        secret("token"),
        Shape::Json,
    )),
    // Bearer JWTs are not guessable: userinfo is not limited.
    cors(route(
        Exact("/oauth2/userinfo"),
        GET_POST,
        H::Userinfo,
        None,
        Shape::Json,
    )),
    cors(route(
        Exact("/oauth2/revoke"),
        ANY,
        H::Revoke,
        secret("revoke"),
        Shape::Json,
    )),
    route(
        Exact("/oauth2/introspect"),
        ANY,
        H::Introspect,
        secret("introspect"),
        Shape::Json,
    ),
    route(Exact("/oauth2/logout"), GET_POST, H::Logout, None, Shape::Page),
    route(
        Exact("/oauth2/gateway"),
        GET_ONLY,
        H::GatewayStart,
        page("gateway_start"),
        Shape::Page,
    ),
    route(
        Exact("/oauth2/gateway/resume"),
        GET_ONLY,
        H::GatewayResume,
        None,
        Shape::Page,
    ),
    // The gateway's one-time sign-in code, redeemed on an app's host.
    route(
        Exact("/.gatehouse/callback"),
        GET_ONLY,
        H::GatewayCallback,
        secret("gateway_callback"),
        Shape::Page,
    ),
    body(
        Body::CspReport,
        route(
            Exact("/.gatehouse/csp-report"),
            POST,
            H::CspReport,
            page("csp_report"),
            Shape::Json,
        ),
    ),
    body(
        Body::Admin,
        route(Tree("/admin/api"), ANY, H::Admin, secret("admin"), Shape::Json),
    ),
    // Exists only in local development (`mail::outbox::exists`).
    route(Exact("/dev/outbox"), GET, H::DevOutbox, None, Shape::Page),
    route(Exact("/account"), GET_ONLY, H::AccountShow, None, Shape::Page),
    route(Exact("/account/resume"), GET_ONLY, H::AccountResume, None, Shape::Page),
    // Starts a flow (a stored row), like a page load.
    route(
        Exact("/account/password"),
        POST,
        H::AccountPassword,
        page("account_password"),
        Shape::Page,
    ),
    route(
        Exact("/account/sessions/end-others"),
        POST,
        H::AccountSessionsEnd,
        None,
        Shape::Page,
    ),
    // Writes a pending device.
    route(
        Exact("/account/totp/new"),
        GET_ONLY,
        H::AccountTotpNew,
        page("mfa_enroll"),
        Shape::Page,
    ),
    route(
        Exact("/account/totp/new"),
        POST,
        H::AccountTotpConfirm,
        secret("mfa"),
        Shape::Page,
    ),
    route(
        Exact("/account/totp/remove"),
        POST,
        H::AccountTotpRemove,
        None,
        Shape::Page,
    ),
    route(
        Exact("/account/passkeys/options"),
        POST,
        H::AccountPasskeyOptions,
        page("passkey_options"),
        Shape::Json,
    ),
    route(
        Exact("/account/passkeys"),
        POST,
        H::AccountPasskeyAdd,
        secret("passkey"),
        Shape::Page,
    ),
    // An administrator's setup link: each request checks its token, a secret.
    route(
        Exact("/account/passkey-setup"),
        GET_ONLY,
        H::PasskeySetupShow,
        secret("passkey_setup"),
        Shape::Page,
    ),
    route(
        Exact("/account/passkey-setup/options"),
        POST,
        H::PasskeySetupOptions,
        secret("passkey_setup"),
        Shape::Json,
    ),
    route(
        Exact("/account/passkey-setup"),
        POST,
        H::PasskeySetupFinish,
        secret("passkey_setup"),
        Shape::Page,
    ),
    route(
        Exact("/account/passkeys/remove"),
        POST,
        H::AccountPasskeyRemove,
        None,
        Shape::Page,
    ),
    route(
        Exact("/account/recovery-codes"),
        POST,
        H::AccountRecoveryCodes,
        None,
        Shape::Page,
    ),
    // Each sends a mail and stores a link (within the mail bounds too).
    route(
        Exact("/account/email"),
        POST,
        H::AccountEmailChange,
        page("account_email"),
        Shape::Page,
    ),
    route(
        Exact("/account/email/verify-send"),
        POST,
        H::AccountEmailVerifySend,
        page("account_email"),
        Shape::Page,
    ),
    // The link from the mail, and its button: a secret to check, without a session.
    route(
        Exact("/account/email/verify"),
        GET_ONLY,
        H::AccountEmailVerifyShow,
        secret("verify_email"),
        Shape::Page,
    ),
    route(
        Exact("/account/email/verify"),
        POST,
        H::AccountEmailVerify,
        secret("verify_email"),
        Shape::Page,
    ),
    route(Exact("/account/email-otp"), POST, H::AccountEmailOtp, None, Shape::Page),
    route(Exact("/account/profile"), POST, H::AccountProfile, None, Shape::Page),
];

/// The bound of a request body to `path`, whatever its method (a method the path does not
/// answer is still read no further than its bound); a path of Gatehouse's without a route gets
/// the form bound.
pub fn body_of(path: &str) -> Body {
    ROUTES
        .iter()
        .find(|r| r.path.matches(path))
        .map_or(Body::Form, |r| r.body)
}

/// The route that answers `method` on `path`. `OPTIONS` finds a CORS route (its preflight).
pub fn find(method: Method, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| {
        r.path.matches(path)
            && (r.methods.is_empty() || r.methods.contains(&method) || (method == Method::Options && r.cors))
    })
}

/// Whether a browser on another origin may call `path`.
pub fn is_cors_path(path: &str) -> bool {
    ROUTES.iter().any(|r| r.cors && r.path.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(method: Method, path: &str) -> Option<(&'static str, Class)> {
        find(method, path)?.limit.map(|l| (l.bucket, l.class))
    }

    #[test]
    fn endpoints_that_check_secrets_spend_the_strict_tiers() {
        assert_eq!(limit_of(Method::Post, "/oauth2/login"), Some(("login", Class::Secret)));
        assert_eq!(limit_of(Method::Get, "/oauth2/login"), None);
        assert_eq!(
            limit_of(Method::Post, "/oauth2/password"),
            Some(("password", Class::Secret)),
            "it hashes a password"
        );
        assert_eq!(limit_of(Method::Post, "/oauth2/token"), Some(("token", Class::Secret)));
        assert_eq!(
            limit_of(Method::Get, "/admin/api/users"),
            Some(("admin", Class::Secret))
        );
        assert_eq!(limit_of(Method::Get, "/admin/api"), Some(("admin", Class::Secret)));
        assert!(find(Method::Get, "/admin/apix").is_none());
        assert_eq!(limit_of(Method::Get, "/healthz"), None);
        assert_eq!(
            limit_of(Method::Get, "/oauth2/userinfo"),
            None,
            "bearer JWTs are not guessable"
        );
        assert_eq!(
            limit_of(Method::Get, "/.gatehouse/callback"),
            Some(("gateway_callback", Class::Secret))
        );
        assert_eq!(
            limit_of(Method::Post, "/oauth2/consent"),
            Some(("consent", Class::Secret))
        );
    }

    #[test]
    fn unauthenticated_writes_spend_the_page_tiers() {
        assert_eq!(
            limit_of(Method::Get, "/oauth2/authorize"),
            Some(("authorize", Class::Page))
        );
        assert_eq!(
            limit_of(Method::Post, "/oauth2/authorize"),
            Some(("authorize", Class::Page))
        );
        assert_eq!(
            limit_of(Method::Get, "/oauth2/gateway"),
            Some(("gateway_start", Class::Page))
        );
        assert_eq!(
            limit_of(Method::Post, "/.gatehouse/csp-report"),
            Some(("csp_report", Class::Page))
        );
    }

    #[test]
    fn each_method_finds_its_own_route_and_an_unlisted_one_none() {
        assert_eq!(find(Method::Get, "/oauth2/login").unwrap().handler, H::PasswordShow);
        assert_eq!(find(Method::Post, "/oauth2/login").unwrap().handler, H::PasswordSubmit);
        assert_eq!(find(Method::Post, "/oauth2/login").unwrap().shape, Shape::SignInForm);
        assert!(find(Method::Delete, "/oauth2/login").is_none());
        assert_eq!(find(Method::Head, "/healthz").unwrap().handler, H::Health);
        assert!(find(Method::Post, "/healthz").is_none());
        assert_eq!(find(Method::Delete, "/oauth2/token").unwrap().handler, H::Token);
        assert!(find(Method::Get, "/oauth2/unknown").is_none());
    }

    #[test]
    fn only_token_userinfo_and_revocation_allow_cors_and_preflights_find_them() {
        for p in ["/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke"] {
            assert!(is_cors_path(p), "{p}");
            assert_eq!(find(Method::Options, p).unwrap().path, Exact(p));
        }
        for p in [
            "/oauth2/authorize",
            "/oauth2/introspect",
            "/admin/api/users",
            "/oauth2/login",
        ] {
            assert!(!is_cors_path(p), "{p}");
        }
        assert!(find(Method::Options, "/oauth2/login").is_none());
    }
}
