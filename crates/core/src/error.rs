//! Errors, and the one place they become HTTP responses (RFC 6749 §4.1.2.1 and §5.2).

use std::fmt;

use crate::http::Response;

/// A failure inside Gatehouse (storage, crypto, configuration). Logged with detail, answered with
/// a generic message: its text never reaches a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError(pub String);

impl InternalError {
    pub fn new(detail: impl Into<String>) -> Self {
        InternalError(detail.into())
    }
}

impl fmt::Display for InternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// OAuth 2.0 / OpenID Connect error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: missing or malformed parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: code or refresh token invalid, expired, revoked or not bound to this client.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant.
    UnauthorizedClient,
    /// RFC 6749 §5.2: grant type unknown to the server.
    UnsupportedGrantType,
    /// RFC 6749 §5.2 / §4.1.2.1.
    InvalidScope,
    /// RFC 6749 §4.1.2.1.
    AccessDenied,
    /// RFC 6749 §4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1.
    ServerError,
    /// RFC 6749 §4.1.2.1.
    TemporarilyUnavailable,
    /// OIDC Core §3.1.2.6: `prompt=none` and the user must log in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` and consent is needed.
    ConsentRequired,
    /// OIDC Core §3.1.2.6.
    InteractionRequired,
    /// OIDC Core §3.1.2.6: the `request` parameter (a request object) is not supported.
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: the `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// RFC 6750 §3.1: bearer token invalid at a resource (userinfo).
    InvalidToken,
    /// RFC 7009 §2.2.1.
    UnsupportedTokenType,
    /// RFC 7591 §3.2.2: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: some client metadata is not acceptable.
    InvalidClientMetadata,
    /// Admin API / routing: the resource does not exist.
    NotFound,
    /// Admin API: a unique value (username, client id) is taken.
    Conflict,
    /// Admin API: the deployment does not allow this change (a hardening lock).
    Forbidden,
    /// Method not allowed on this path.
    MethodNotAllowed,
    /// Too many requests.
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidScope => "invalid_scope",
            AccessDenied => "access_denied",
            UnsupportedResponseType => "unsupported_response_type",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            LoginRequired => "login_required",
            ConsentRequired => "consent_required",
            InteractionRequired => "interaction_required",
            RequestNotSupported => "request_not_supported",
            RequestUriNotSupported => "request_uri_not_supported",
            InvalidToken => "invalid_token",
            UnsupportedTokenType => "unsupported_token_type",
            InvalidRedirectUri => "invalid_redirect_uri",
            InvalidClientMetadata => "invalid_client_metadata",
            NotFound => "not_found",
            Conflict => "conflict",
            Forbidden => "forbidden",
            MethodNotAllowed => "method_not_allowed",
            RateLimited => "rate_limited",
        }
    }

    /// HTTP status for a JSON answer (RFC 6749 §5.2: 400, or 401 for client authentication).
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidClient | InvalidToken => 401,
            NotFound => 404,
            Conflict => 409,
            Forbidden => 403,
            MethodNotAllowed => 405,
            RateLimited => 429,
            ServerError => 500,
            TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error meant for the client, in the protocol's own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "internal error")
    }
}

/// An endpoint's failure: either the client's fault (answered as is) or ours (logged, generic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    OAuth(OAuthError),
    Internal(InternalError),
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        Error::OAuth(e)
    }
}
impl From<InternalError> for Error {
    fn from(e: InternalError) -> Self {
        Error::Internal(e)
    }
}

impl Error {
    fn into_oauth(self) -> OAuthError {
        match self {
            Error::OAuth(e) => e,
            Error::Internal(e) => {
                log_internal(&e);
                OAuthError::server_error()
            }
        }
    }

    /// RFC 6749 §5.2 JSON body (token, revocation, introspection, admin API).
    pub fn into_json(self) -> Response {
        let e = self.into_oauth();
        let mut body = serde_json::json!({ "error": e.code.as_str() });
        if !e.description.is_empty() {
            body["error_description"] = e.description.clone().into();
        }
        let mut resp = Response::json(e.code.status(), &body);
        if e.code == ErrorCode::InvalidClient {
            // RFC 6749 §5.2: 401 with the scheme the client tried; Basic is the one we offer.
            resp.set_header("www-authenticate", "Basic realm=\"gatehouse\"");
        }
        resp
    }

    /// The JSON body with another status (413 for an oversized body).
    pub fn into_json_with_status(self, status: u16) -> Response {
        let mut resp = self.into_json();
        resp.status = status;
        resp
    }

    /// RFC 6750 §3: error at a bearer-protected resource.
    pub fn into_bearer(self) -> Response {
        let e = self.into_oauth();
        if e.code == ErrorCode::InvalidToken && e.description.is_empty() {
            // RFC 6750 §3.1: a request with no token at all gets the challenge and no error code.
            let mut resp = Response::new(401);
            resp.set_header("www-authenticate", "Bearer realm=\"gatehouse\"");
            resp.set_header("cache-control", "no-store");
            return resp;
        }
        let mut resp = Self::OAuth(e.clone()).into_json();
        let header = if e.code == ErrorCode::InvalidToken {
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.description.replace('"', "'")
            )
        } else {
            "Bearer".to_owned()
        };
        resp.set_header("www-authenticate", &header);
        resp.headers
            .retain(|(k, v)| k != "www-authenticate" || v.starts_with("Bearer"));
        resp
    }

    /// An HTML error page, for errors that must not redirect (unknown client, bad redirect_uri).
    pub fn into_page(self) -> Response {
        let e = self.into_oauth();
        Response::error_page(e.code.status(), e.code.as_str(), &e.description)
    }

    /// An HTML error page with an explicit status.
    pub fn into_page_with_status(self, status: u16) -> Response {
        let mut resp = self.into_page();
        resp.status = status;
        resp
    }

    /// RFC 6749 §4.1.2.1: error redirect to a verified redirect_uri, with `state` and, per
    /// RFC 9207, `iss`.
    pub fn into_redirect(self, redirect_uri: &str, state: Option<&str>, issuer: &str) -> Response {
        let e = self.into_oauth();
        let mut params = vec![("error", e.code.as_str().to_owned())];
        if !e.description.is_empty() {
            params.push(("error_description", e.description.clone()));
        }
        if let Some(s) = state {
            params.push(("state", s.to_owned()));
        }
        params.push(("iss", issuer.to_owned()));
        Response::redirect(302, &crate::http::append_query(redirect_uri, &params))
    }
}

/// Logs an internal error for operators. Only place internal detail goes.
pub fn log_internal(e: &InternalError) {
    crate::log::error(&format!("internal error: {}", e.0));
}
