//! `GET|POST /oauth2/authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2): validates the request and
//! starts a sign-in flow for it (`crate::flow`), and `/oauth2/authorize/resume`, where the flow
//! comes back when it is over and the code is minted. Errors before the client and redirect URI
//! are verified are shown as a page and never redirect (RFC 6749 §4.1.2.1); later ones go back to
//! the client with `state` and `iss` (RFC 9207).

use serde::{Deserialize, Serialize};

use crate::crypto::{random_id, random_token, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::factors::amr;
use crate::flow::engine::{self, Outcome, Standing};
use crate::flow::plan::Stage;
use crate::flow::{self, ConsentAsk, Flow, Purpose, Refusal};
use crate::http::{append_query, Request, Response};
use crate::oidc::{claims, id_token_hint, pkce, redirect_uri, scope};
use crate::store::clients::{self, Client};
use crate::store::grants::{self, Code, Grant};
use crate::store::{auth_requests, sessions, users};
use crate::types::protocol::GrantType;
use crate::types::protocol::Prompt;
use crate::web::cookies;
use crate::{limits, Ctx};

/// A validated authorization request: what the code is minted with once the flow is over (the
/// flow's payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The claims the `claims` parameter named that this client may have (OIDC Core §5.5).
    #[serde(default, skip_serializing_if = "claims::Requested::is_empty")]
    pub claims: claims::Requested,
}

impl AuthRequest {
    pub fn error(&self, ctx: &Ctx<'_>, e: impl Into<Error>) -> Response {
        e.into()
            .into_redirect(&self.redirect_uri, self.state.as_deref(), ctx.issuer())
    }
}

/// What the request asks of the sign-in, besides the code's contents.
struct Asks {
    prompt: Vec<Prompt>,
    max_age: Option<i64>,
    login_hint: Option<String>,
    /// `acr_values`, or an `acr` the `claims` parameter asks for, names the multi-factor class.
    acr_mfa: bool,
    /// The `sub` the `claims` parameter asks for: only that user may complete the request.
    sub: Option<String>,
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

    let (request, mut asks) = match validate(ctx, &client, &params, &redirect, state.clone()) {
        Ok(p) => p,
        Err(e) => return Ok(fail(e.into())),
    };
    let mut expected_user = None;
    if let Some(hint) = params.get("id_token_hint").ok().flatten() {
        let hint = match id_token_hint::verify(ctx, hint).await {
            Ok(h) => h,
            Err(e @ Error::OAuth(_)) => return Ok(fail(e)),
            Err(e) => return Err(e),
        };
        // The sign-in form offers the hinted account.
        if asks.login_hint.is_none() {
            asks.login_hint = users::by_id(ctx.db, &hint.sub).await?.map(|u| u.username);
        }
        expected_user = Some(hint.sub);
    }
    // OIDC Core §5.5.1: a `sub` asked for is met only by that user; with a hint for another,
    // no one can meet the request.
    let sub_asked = asks.sub.is_some();
    if let Some(sub) = asks.sub.take() {
        if expected_user.as_ref().is_some_and(|u| *u != sub) {
            let e = OAuthError::new(
                ErrorCode::LoginRequired,
                "the claims parameter asks for another sub than id_token_hint names",
            );
            return Ok(fail(e.into()));
        }
        expected_user = Some(sub);
    }
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    let mut flow = new_flow(ctx, &client, &request, asks, expected_user, token_hash(&browser))?;
    let prompt_none = flow_prompt_none(&flow);
    engine::begin(ctx, req, &mut flow).await?;
    match engine::outcome(ctx, req, &mut flow).await? {
        // Signed in with everything required: the code, without storing anything else.
        Outcome::Complete(session) => return complete(ctx, &client, &request, &flow, &session, None).await,
        // Refused already (the session's user cannot meet what the client requires): no page
        // could change that, so the client hears at once.
        Outcome::Refused(r) => return Ok(request.error(ctx, refusal_error(r))),
        Outcome::Unfinished if prompt_none => {
            // OIDC Core §3.1.2.6: prompt=none never shows a page.
            let e = match engine::standing(ctx, &flow).await? {
                // With a `sub` asked for, "consent required" would tell a client the user has
                // not consented to that this browser's user is that `sub`: it hears
                // login_required either way.
                Standing::At(Stage::Consent) if !sub_asked => {
                    OAuthError::new(ErrorCode::ConsentRequired, "the user has not consented")
                }
                _ => OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in"),
            };
            return Ok(request.error(ctx, e));
        }
        Outcome::Unfinished => {}
    }
    if !flow.fits()? {
        return Ok(fail(
            OAuthError::invalid_request("the authorization request is too large").into(),
        ));
    }
    let id = flow::insert(ctx, req, &flow).await?;
    let mut resp = engine::advance(ctx, req, &id, flow, Vec::new()).await?;
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

/// The `prompt=none` marker: the flow carries it only to answer without a page.
fn flow_prompt_none(flow: &Flow) -> bool {
    flow.payload.get("prompt_none").and_then(serde_json::Value::as_bool) == Some(true)
}

/// The flow an authorization request starts: what it requires (`prompt`, `max_age`,
/// `acr_values`, consent) in the flow's terms, and the request itself as its payload.
fn new_flow(
    ctx: &Ctx<'_>,
    client: &Client,
    request: &AuthRequest,
    asks: Asks,
    expected_user: Option<String>,
    browser: String,
) -> Result<Flow, Error> {
    let now = ctx.clock.now();
    let mut payload = serde_json::to_value(request).map_err(|e| crate::error::InternalError::new(e.to_string()))?;
    let has = |p: Prompt| asks.prompt.contains(&p);
    payload["prompt_none"] = serde_json::json!(has(Prompt::None));
    let name = client.metadata.client_name.as_deref().unwrap_or(&client.client_id);
    let mut flow = Flow::new(Purpose::Authorize, payload, name, browser, now);
    flow.event_client = Some(client.client_id.clone());
    flow.restricted_to_client = client.restricted().then(|| client.client_id.clone());
    flow.binding_target = Some(crate::policy::binding::Target::Client(client.client_id.clone()).key());
    flow.form_action = crate::http::csp_source(&request.redirect_uri).into_iter().collect();
    flow.login_hint = asks.login_hint;
    flow.expected_user = expected_user;
    // prompt=login is met only by a sign-in during this request (OIDC Core §3.1.2.1); max_age
    // by factors passed within it: a session's older factors are asked again.
    flow.reauthenticate = has(Prompt::Login);
    flow.fresh_after = asks.max_age.map(|m| now - m);
    flow.acr_mfa = asks.acr_mfa;
    flow.mfa_required_here = client.metadata.require_mfa;
    if !client.first_party {
        // A claim asked for by name is asked of the user like the scope that carries it.
        let mut scopes = request.scope.clone();
        for s in request.claims.scopes() {
            if !scopes.iter().any(|have| have == s) {
                scopes.push(s.to_owned());
            }
        }
        flow.consent = Some(ConsentAsk {
            client_id: client.client_id.clone(),
            scopes,
            always: has(Prompt::Consent),
        });
    }
    Ok(flow)
}

/// How the client hears that the flow was refused.
fn refusal_error(r: Refusal) -> OAuthError {
    match r {
        Refusal::OtherUser => OAuthError::new(
            ErrorCode::LoginRequired,
            "the user who signed in is not the one the request names (id_token_hint, or sub in claims)",
        ),
        Refusal::ConsentDenied => OAuthError::new(ErrorCode::AccessDenied, "the user denied access"),
        Refusal::SecondFactorRequiredButOff => OAuthError::new(
            ErrorCode::AccessDenied,
            "this client requires a second factor, and second factors are turned off",
        ),
        Refusal::SecondFactorLost => OAuthError::new(
            ErrorCode::AccessDenied,
            "the user's second factors are gone; an administrator must reset them",
        ),
        Refusal::Voided => OAuthError::new(
            ErrorCode::AccessDenied,
            "the sign-in ended before it finished (signed out, or the account changed)",
        ),
        Refusal::Location => OAuthError::new(ErrorCode::AccessDenied, "sign-in is not allowed from this location"),
        Refusal::NotAllowed => OAuthError::new(ErrorCode::AccessDenied, "this user may not use this client"),
        Refusal::Policy => OAuthError::new(ErrorCode::AccessDenied, "a policy does not allow this sign-in"),
    }
}

fn validate(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &crate::http::Params,
    redirect: &str,
    state: Option<String>,
) -> Result<(AuthRequest, Asks), OAuthError> {
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
    if !client.allows_grant(GrantType::AuthorizationCode) {
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

    let prompt = Prompt::parse_list(params.get("prompt")?.unwrap_or("")).map_err(OAuthError::invalid_request)?;
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
    // `acr_values` (OIDC Core §3.1.2.1): a voluntary request; only the multi-factor class changes
    // what the flow asks. Values Gatehouse does not know are ignored, as the spec allows.
    let acr_values = params.get("acr_values")?.unwrap_or("");
    if acr_values.len() > limits::ACR_VALUES {
        return Err(OAuthError::invalid_request("acr_values is too long"));
    }
    let mfa_class = amr::acr_uri(ctx.issuer(), amr::MULTI_FACTOR);
    let wanted = match params.get("claims")? {
        Some(raw) => claims::parse_parameter(raw)?,
        None => claims::ClaimsRequest::default(),
    };
    let acr_mfa = acr_values
        .split(' ')
        .chain(wanted.acr.iter().map(String::as_str))
        .any(|v| v == mfa_class);
    // Checked (and repeats refused) here; verified in `start`, which can wait for the signer.
    params.get("id_token_hint")?;
    let request = AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect.to_owned(),
        scope: scopes,
        state,
        nonce,
        code_challenge: challenge.map(str::to_owned),
        claims: wanted.names.allowed_by(&client.metadata.scope),
    };
    let asks = Asks {
        prompt,
        max_age,
        login_hint,
        acr_mfa,
        sub: wanted.sub,
    };
    Ok((request, asks))
}

/// `GET /oauth2/authorize/resume?req=…`: where a flow comes back when it is over.
pub async fn resume(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let mut flow = match flow::load(ctx, req, &id).await? {
            Ok(f) => f,
            Err(why) => return Ok(engine::not_here_page(why)),
        };
        let request: AuthRequest = flow.payload()?;
        let client = match clients::by_id(ctx.db, &request.client_id).await? {
            Some(c) if !c.disabled => c,
            _ => return Ok(page(ErrorCode::InvalidRequest, "unknown client")),
        };
        match engine::outcome(ctx, req, &mut flow).await? {
            Outcome::Complete(session) => complete(ctx, &client, &request, &flow, &session, Some(&id)).await,
            Outcome::Refused(r) => {
                auth_requests::delete(ctx.db, &id).await?;
                Ok(request.error(ctx, refusal_error(r)))
            }
            Outcome::Unfinished => engine::advance(ctx, req, &id, flow, Vec::new()).await,
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// Everything is settled: one code, bound to client, redirect URI and PKCE challenge. The flow
/// (`stored`, when it was saved) ends as the grant and its code are written.
async fn complete(
    ctx: &Ctx<'_>,
    client: &Client,
    request: &AuthRequest,
    flow: &Flow,
    session: &sessions::Session,
    stored: Option<&str>,
) -> Result<Response, Error> {
    let now = ctx.clock.now();
    let grant = Grant {
        id: random_id(ctx.rng, "grt_")?,
        client_id: client.client_id.clone(),
        user_id: Some(session.user_id.clone()),
        session_hash: Some(session.id_hash.clone()),
        scope: scope::join(&request.scope),
        auth_time: Some(session.auth_time),
        nonce: request.nonce.clone(),
        amr: Some(engine::amr(flow).join(" ")),
        created_at: now,
        expires_at: now + ctx.settings.refresh_absolute_ttl,
        revoked_at: None,
        claims: request.claims.to_stored(),
    };
    let code = random_token(ctx.rng)?;
    let record = Code {
        grant_id: grant.id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        expires_at: now + ctx.settings.code_ttl,
    };
    // One round trip, and never the code without its grant (nor the flow left behind).
    let mut statements = Vec::new();
    if let Some(id) = stored {
        statements.push(auth_requests::delete_statement(id));
    }
    statements.push(grants::insert_grant_statement(&grant));
    statements.push(grants::insert_code_statement(&token_hash(&code), &record, now));
    ctx.db.batch(&statements).await?;
    let mut params = vec![("code", code)];
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", ctx.issuer().to_owned()));
    Ok(Response::redirect(303, &append_query(&request.redirect_uri, &params)))
}
