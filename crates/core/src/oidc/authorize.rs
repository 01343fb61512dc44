//! `GET|POST /oauth2/authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2) and its resumption after
//! login and consent. Errors before the client and redirect URI are verified are shown as a page
//! and never redirect (RFC 6749 §4.1.2.1); later ones go back to the client with `state` and
//! `iss` (RFC 9207).

use serde::{Deserialize, Serialize};

use crate::crypto::{random_id, random_token, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::flow::plan;
use crate::http::{append_query, form_encode, Request, Response};
use crate::oidc::{cookies, id_token_hint, pkce, redirect_uri, scope};
use crate::store::clients::{self, Client};
use crate::store::grants::{self, Code, Grant};
use crate::store::{consents, sessions, users};
use crate::{limits, Ctx};

/// How long a user has to log in and consent.
const PENDING_TTL: i64 = 30 * 60;

/// A validated authorization request, kept while the user logs in or consents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub created_at: i64,
    /// The user who allowed this request on the consent page. Only that user's session may use
    /// it: a flag anyone's session could pick up would let a client's owner consent for others.
    #[serde(default)]
    pub consented_by: Option<String>,
    /// The session created by logging in during this request (satisfies `prompt=login` and
    /// `max_age` for that session only).
    #[serde(default)]
    pub authenticated_session: Option<String>,
    /// Hash of the browser's CSRF cookie when the request started: only that browser may resume
    /// it, so a half-finished request cannot be handed to someone else's browser.
    #[serde(default)]
    pub browser: String,
    /// Set for a gateway login (an app behind Gatehouse), which ends in a gateway code instead.
    #[serde(default)]
    pub gateway: Option<crate::gateway::login::Target>,
    /// The user a verified `id_token_hint` names: only that user's session may answer.
    #[serde(default)]
    pub hint_sub: Option<String>,
}

impl Pending {
    /// Where the browser ends up after the login or consent form: the client's redirect URI or
    /// the app's host, for the pages' CSP `form-action`.
    pub fn form_action(&self) -> Vec<String> {
        let target = match &self.gateway {
            Some(g) => &g.return_to,
            None => &self.redirect_uri,
        };
        crate::http::csp_source(target).into_iter().collect()
    }

    /// A login for an app behind the gateway; `client_id` carries the app's name for the page.
    pub fn for_gateway(app_name: &str, target: crate::gateway::login::Target, browser: String, now: i64) -> Pending {
        Pending {
            client_id: app_name.to_owned(),
            redirect_uri: String::new(),
            scope: Vec::new(),
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: Vec::new(),
            max_age: None,
            login_hint: None,
            created_at: now,
            consented_by: None,
            authenticated_session: None,
            browser,
            gateway: Some(target),
            hint_sub: None,
        }
    }

    pub fn error(&self, ctx: &Ctx<'_>, e: impl Into<Error>) -> Response {
        e.into()
            .into_redirect(&self.redirect_uri, self.state.as_deref(), ctx.issuer())
    }
}

/// Whether a pending request, serialised, is within its bound (inclusive).
fn fits_pending_bound(json: &str) -> bool {
    json.len() <= limits::PENDING_REQUEST
}

/// Page-only errors: no verified redirect URI yet.
fn page(code: ErrorCode, description: &str) -> Response {
    Error::from(OAuthError::new(code, description)).into_page()
}

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    match start(ctx, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_page(),
    }
}

async fn start(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let params = req.params();
    // Repeated parameters are refused before anything else (RFC 6749 §3.1).
    let client_id = match params.get("client_id") {
        Ok(Some(id)) => id,
        Ok(None) => return Ok(page(ErrorCode::InvalidRequest, "missing client_id")),
        Err(e) => return Ok(Error::from(e).into_page()),
    };
    let client = match clients::by_id(ctx.db, client_id).await? {
        Some(c) if !c.disabled => c,
        _ => return Ok(page(ErrorCode::InvalidRequest, "unknown client")),
    };
    let redirect = match params.get("redirect_uri") {
        Ok(Some(uri)) if redirect_uri::matches(&client.metadata.redirect_uris, uri) => uri.to_owned(),
        Ok(Some(_)) => {
            return Ok(page(
                ErrorCode::InvalidRequest,
                "redirect_uri is not registered for this client",
            ))
        }
        Ok(None) => return Ok(page(ErrorCode::InvalidRequest, "missing redirect_uri")),
        Err(e) => return Ok(Error::from(e).into_page()),
    };
    // The redirect URI is verified: from here on errors go back to the client. A repeated or
    // oversized state is not echoed back.
    let state = match params.get("state") {
        Ok(s) if s.map_or(0, str::len) <= limits::STATE => s.map(str::to_owned),
        Ok(_) => {
            let e = OAuthError::invalid_request(format!("state is longer than {} bytes", limits::STATE));
            return Ok(Error::from(e).into_redirect(&redirect, None, ctx.issuer()));
        }
        Err(e) => return Ok(Error::from(e).into_redirect(&redirect, None, ctx.issuer())),
    };
    let fail = |e: Error| e.into_redirect(&redirect, state.as_deref(), ctx.issuer());

    let mut pending = match validate(ctx, &client, &params, &redirect, state.clone()) {
        Ok(p) => p,
        Err(e) => return Ok(fail(e.into())),
    };
    if let Some(hint) = params.get("id_token_hint").ok().flatten() {
        let hint = match id_token_hint::verify(ctx, hint).await {
            Ok(h) => h,
            Err(e @ Error::OAuth(_)) => return Ok(fail(e)),
            Err(e) => return Err(e),
        };
        // The login form offers the hinted account.
        if pending.login_hint.is_none() {
            pending.login_hint = users::by_id(ctx.db, &hint.sub).await?.map(|u| u.username);
        }
        pending.hint_sub = Some(hint.sub);
    }
    let (browser, set_cookie) = crate::oidc::login::browser_binding(ctx, req)?;
    pending.browser = token_hash(&browser);
    let id = random_token(ctx.rng)?;
    let json = serde_json::to_string(&pending).map_err(|e| crate::error::InternalError::new(e.to_string()))?;
    // Every field has its own bound; this one catches a field that is added without one.
    if !fits_pending_bound(&json) {
        return Ok(fail(
            OAuthError::invalid_request("the authorization request is too large").into(),
        ));
    }
    let ip_key = crate::policy::client_ip(ctx, req).key();
    sessions::save_request(
        ctx.db,
        &id,
        &client.client_id,
        &ip_key,
        &json,
        ctx.clock.now(),
        PENDING_TTL,
    )
    .await?;
    let mut resp = resume_pending(ctx, req, &id, pending, &client).await?;
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

/// Whether this request comes from the browser that started the pending request.
pub fn same_browser(ctx: &Ctx<'_>, req: &Request, pending: &Pending) -> bool {
    match req.cookie(&cookies::name(ctx, cookies::CSRF)) {
        Some(v) if !pending.browser.is_empty() => {
            crate::crypto::constant_time_eq(token_hash(&v).as_bytes(), pending.browser.as_bytes())
        }
        _ => false,
    }
}

pub fn other_browser_page() -> Response {
    page(
        ErrorCode::InvalidRequest,
        "This sign-in was started in another browser. Start again from the application.",
    )
}

fn validate(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &crate::http::Params,
    redirect: &str,
    state: Option<String>,
) -> Result<Pending, OAuthError> {
    // OIDC Core §6: an OP that does not support request objects says so with these codes.
    if params.get("request")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.get("request_uri")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match params.get("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ))
        }
        None => return Err(OAuthError::invalid_request("missing response_type")),
    }
    if let Some(mode) = params.get("response_mode")? {
        if mode != "query" {
            return Err(OAuthError::invalid_request("only response_mode=query is supported"));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client may not use the authorization code grant",
        ));
    }
    let scopes = scope::parse(params.get("scope")?.unwrap_or(""), &client.metadata.scope)?;

    // PKCE: S256 only; required for public clients (RFC 9700 §2.1.1, RFC 7636 §4.4.1).
    let challenge = params.get("code_challenge")?;
    match (challenge, params.get("code_challenge_method")?) {
        (Some(c), Some("S256")) if pkce::is_valid_challenge(c) => {}
        (Some(_), Some("S256")) => return Err(OAuthError::invalid_request("malformed code_challenge")),
        (Some(_), None) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not supported)",
            ))
        }
        (_, Some("plain")) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method plain is not supported; use S256",
            ))
        }
        (_, Some(_)) => return Err(OAuthError::invalid_request("unsupported code_challenge_method")),
        (None, None) if client.is_public() => {
            return Err(OAuthError::invalid_request(
                "PKCE (code_challenge with S256) is required for public clients",
            ))
        }
        (None, None) => {}
    }

    let prompt: Vec<String> = params
        .get("prompt")?
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for (i, p) in prompt.iter().enumerate() {
        if !["none", "login", "consent", "select_account"].contains(&p.as_str()) {
            return Err(OAuthError::invalid_request(format!("unsupported prompt value {p}")));
        }
        // A repeated value means nothing more, and would let the stored request grow unbounded.
        if prompt[..i].contains(p) {
            return Err(OAuthError::invalid_request(format!("prompt value {p} is repeated")));
        }
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.get("max_age")? {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| OAuthError::invalid_request("max_age must be a non-negative integer"))?,
        ),
    };
    let nonce = params.get("nonce")?.map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > limits::NONCE) {
        return Err(OAuthError::invalid_request("nonce is too long"));
    }
    let login_hint = params.get("login_hint")?.map(str::to_owned);
    if login_hint.as_ref().is_some_and(|h| h.len() > limits::LOGIN_HINT) {
        return Err(OAuthError::invalid_request("login_hint is too long"));
    }
    // Checked (and repeats refused) here; verified in `start`, which can wait for the signer.
    params.get("id_token_hint")?;
    Ok(Pending {
        client_id: client.client_id.clone(),
        redirect_uri: redirect.to_owned(),
        scope: scopes,
        state,
        nonce,
        code_challenge: challenge.map(str::to_owned),
        prompt,
        max_age,
        login_hint,
        created_at: ctx.clock.now(),
        consented_by: None,
        authenticated_session: None,
        browser: String::new(),
        gateway: None,
        hint_sub: None,
    })
}

/// `GET /oauth2/authorize/resume?req=…`: where login and consent send the browser back.
pub async fn resume(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let Some(pending) = load(ctx, &id).await? else {
            return Ok(expired_page());
        };
        if !same_browser(ctx, req, &pending) {
            return Ok(other_browser_page());
        }
        if let Some(target) = &pending.gateway {
            return crate::gateway::login::finish(ctx, req, &id, target).await;
        }
        let client = match clients::by_id(ctx.db, &pending.client_id).await? {
            Some(c) if !c.disabled => c,
            _ => return Ok(page(ErrorCode::InvalidRequest, "unknown client")),
        };
        resume_pending(ctx, req, &id, pending, &client).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

pub fn expired_page() -> Response {
    page(
        ErrorCode::InvalidRequest,
        "This sign-in request has expired or is unknown. Start again from the application.",
    )
}

pub async fn load(ctx: &Ctx<'_>, id: &str) -> Result<Option<Pending>, Error> {
    match sessions::load_request(ctx.db, id, ctx.clock.now()).await? {
        None => Ok(None),
        Some((_, json)) => Ok(serde_json::from_str(&json).ok()),
    }
}

/// The statement that saves the pending request's new state, to run in one batch with what
/// changed it (a new session, a consent).
pub fn store_statement(id: &str, pending: &Pending) -> Result<(&'static str, Vec<crate::db::Value>), Error> {
    let json = serde_json::to_string(pending).map_err(|e| crate::error::InternalError::new(e.to_string()))?;
    Ok(sessions::update_request_statement(id, &json))
}

/// Decides what the request still needs (login, consent) or issues the code.
async fn resume_pending(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    pending: Pending,
    client: &Client,
) -> Result<Response, Error> {
    let now = ctx.clock.now();
    let session = match cookies::session_hash(ctx, req) {
        Some(hash) => sessions::active(ctx.db, &hash, now).await?,
        None => None,
    };
    let prompt_none = pending.prompt.iter().any(|p| p == "none");
    let logged_in_now = |s: &sessions::Session| pending.authenticated_session.as_deref() == Some(s.id_hash.as_str());
    // OIDC Core §3.1.2.1: with an id_token_hint, only the hinted user may answer. Someone else
    // signed in is asked to sign in as the hinted user; whoever signed in during this request
    // and is still someone else gets login_required.
    let other_than_hinted = |s: &sessions::Session| pending.hint_sub.as_ref().is_some_and(|h| *h != s.user_id);
    if session
        .as_ref()
        .is_some_and(|s| logged_in_now(s) && other_than_hinted(s))
    {
        sessions::delete_request(ctx.db, id).await?;
        return Ok(pending.error(
            ctx,
            OAuthError::new(
                ErrorCode::LoginRequired,
                "the user who signed in is not the one id_token_hint names",
            ),
        ));
    }
    let needs_login = match &session {
        None => true,
        Some(s) if other_than_hinted(s) => true,
        // prompt=login and max_age are satisfied by a login during this request (OIDC Core §3.1.2.1).
        Some(s) if logged_in_now(s) => false,
        Some(s) => {
            pending.prompt.iter().any(|p| p == "login") || pending.max_age.is_some_and(|max| now - s.auth_time > max)
        }
    };
    if needs_login {
        if prompt_none {
            sessions::delete_request(ctx.db, id).await?;
            return Ok(pending.error(
                ctx,
                OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in"),
            ));
        }
        return Ok(Response::redirect(
            303,
            &format!("/oauth2/login?req={}", form_encode(id)),
        ));
    }
    let Some(session) = session else {
        return Ok(Response::redirect(
            303,
            &format!("/oauth2/login?req={}", form_encode(id)),
        ));
    };

    if !client.first_party && pending.consented_by.as_deref() != Some(session.user_id.as_str()) {
        // A third-party client needs the user's consent to the client itself before its first
        // code, whatever the scope: an empty scope still yields a code that names the user.
        let missing = match consents::granted(ctx.db, &session.user_id, &client.client_id).await? {
            None => true,
            Some(granted) => pending.scope.iter().any(|s| !granted.contains(s)),
        };
        if missing || pending.prompt.iter().any(|p| p == "consent") {
            if prompt_none {
                sessions::delete_request(ctx.db, id).await?;
                return Ok(pending.error(
                    ctx,
                    OAuthError::new(ErrorCode::ConsentRequired, "the user has not consented"),
                ));
            }
            return Ok(Response::redirect(
                303,
                &format!("/oauth2/consent?req={}", form_encode(id)),
            ));
        }
    }

    // Everything is settled: one code, bound to client, redirect URI and PKCE challenge.
    let grant = Grant {
        id: random_id(ctx.rng, "grt_")?,
        client_id: client.client_id.clone(),
        user_id: Some(session.user_id.clone()),
        session_hash: Some(session.id_hash.clone()),
        scope: scope::join(&pending.scope),
        auth_time: Some(session.auth_time),
        nonce: pending.nonce.clone(),
        amr: Some(plan::amr_of(&plan::parse_passed(&session.factors, session.auth_time), None).join(" ")),
        created_at: now,
        expires_at: now + ctx.settings.refresh_absolute_ttl,
        revoked_at: None,
    };
    let code = random_token(ctx.rng)?;
    let record = Code {
        grant_id: grant.id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        expires_at: now + ctx.settings.code_ttl,
    };
    // The pending request ends as the grant and its code are written: one round trip, and never
    // one without the others.
    ctx.db
        .batch(&[
            sessions::delete_request_statement(id),
            grants::insert_grant_statement(&grant),
            grants::insert_code_statement(&token_hash(&code), &record, now),
        ])
        .await?;
    let mut params = vec![("code", code)];
    if let Some(s) = &pending.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", ctx.issuer().to_owned()));
    Ok(Response::redirect(303, &append_query(&pending.redirect_uri, &params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_request_of_exactly_its_bound_fits_and_one_byte_more_does_not() {
        assert!(fits_pending_bound(&"x".repeat(limits::PENDING_REQUEST)));
        assert!(!fits_pending_bound(&"x".repeat(limits::PENDING_REQUEST + 1)));
        assert!(fits_pending_bound(""));
    }
}
