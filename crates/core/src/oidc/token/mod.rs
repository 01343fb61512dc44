//! `POST /oauth2/token` (RFC 6749 §3.2): authenticates the client and dispatches on the grant.
//! There is no password grant and no implicit flow.

mod authorization_code;
mod client_credentials;
mod refresh_token;

use serde_json::{json, Map, Value};

use crate::crypto::{b64url, random_token, sha256, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::factors::amr;
use crate::http::{Method, Request, Response};
use crate::jwt;
use crate::oidc::{claims, client_auth, scope};
use crate::ports::SigningAlg;
use crate::store::clients::Client;
use crate::store::grants::{self, Consumed, Grant, NewToken};
use crate::store::users::User;
use crate::types::event_kind::EventKind;
use crate::types::protocol::GrantType;
use crate::types::protocol::TokenKind;
use crate::Ctx;

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    if req.method != Method::Post {
        return Error::from(OAuthError::new(ErrorCode::InvalidRequest, "use POST")).into_json();
    }
    match dispatch(ctx, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_json(),
    }
}

async fn dispatch(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let form = req.form_params();
    let client = client_auth::authenticate(ctx, req, &form).await?;
    match GrantType::parse(form.require("grant_type")?) {
        Some(GrantType::AuthorizationCode) => authorization_code::exchange(ctx, &client, &form).await,
        Some(GrantType::RefreshToken) => refresh_token::exchange(ctx, &client, &form).await,
        Some(GrantType::ClientCredentials) => client_credentials::exchange(ctx, &client, &form).await,
        None => Err(OAuthError::new(ErrorCode::UnsupportedGrantType, "unsupported grant_type").into()),
    }
}

pub fn signing_alg(client: &Client) -> SigningAlg {
    SigningAlg::parse(&client.metadata.id_token_signed_response_alg).unwrap_or(SigningAlg::RS256)
}

/// What one successful token request issues.
pub struct Issue<'a> {
    pub client: &'a Client,
    pub grant: &'a Grant,
    /// The grant's user (none for client_credentials): the ID token's claims are theirs.
    pub user: Option<&'a User>,
    /// Scope of the access token (and ID token claims).
    pub scope: &'a str,
    /// Scope the new refresh token keeps: RFC 6749 §6, a narrower access token request does not
    /// narrow the refresh token.
    pub refresh_scope: &'a str,
    pub refresh: bool,
    pub id_token: bool,
    /// What this issuance consumes (a code, a refresh token) or creates (client_credentials' new
    /// grant), written in the same batch as the new tokens.
    pub source: Source<'a>,
}

/// Where the tokens of one issuance come from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// A grant made by this request (client_credentials).
    NewGrant,
    /// The authorization code with this hash.
    Code(&'a str),
    /// The refresh token with this hash, rotated for the authenticated client.
    Refresh(&'a str),
    /// The refresh token with this hash, rotated already but at or after `since` (within the
    /// opt-in grace interval): presented again, it yields new tokens once more.
    RefreshAgain { hash: &'a str, since: i64 },
}

/// The outcome of [`issue`].
pub enum Issued {
    Tokens(Response),
    /// A concurrent request consumed the code or refresh token first: nothing was written.
    AlreadyConsumed,
}

/// Mints the access token (RFC 9068 JWT), the refresh token and the ID token, and stores their
/// hashes in one batch that also consumes the code or refresh token they come from; then builds
/// the RFC 6749 §5.1 response. Callers validate everything before: a failure up to the batch
/// changes nothing, so the client's retry is not mistaken for a replay.
pub async fn issue(ctx: &Ctx<'_>, i: Issue<'_>) -> Result<Issued, Error> {
    let now = ctx.clock.now();
    let iss = ctx.issuer();
    let alg = signing_alg(i.client);
    let sub = i.grant.user_id.clone().unwrap_or_else(|| i.client.client_id.clone());
    let jti = random_token(ctx.rng)?;
    let access_exp = (now + ctx.settings.access_token_ttl).min(i.grant.expires_at.max(now + 1));
    let mut at = json!({
        "iss": iss, "sub": sub, "aud": i.client.client_id, "client_id": i.client.client_id,
        "scope": i.scope, "jti": jti, "iat": now, "nbf": now, "exp": access_exp,
    });
    if let Some(t) = i.grant.auth_time {
        at["auth_time"] = json!(t);
    }
    // RFC 9068 §2.2.1: how the user authenticated, for resource servers that require a factor.
    sign_in_methods(&mut at, iss, i.grant);
    let access_token = jwt::sign(ctx.signer, alg, &at, Some(jwt::typ::ACCESS_TOKEN)).await?;
    let access_hash = token_hash(&access_token);
    // The claims the request named, as far as the client may have them today.
    let claims::Requested {
        id_token: id_token_claims,
        userinfo,
    } = claims::Requested::from_stored(i.grant.claims.as_deref()).allowed_by(&i.client.metadata.scope);
    // The access token keeps the userinfo share; the ID token's is used now.
    let userinfo_claims = claims::Requested {
        id_token: Vec::new(),
        userinfo,
    }
    .to_stored();
    let mut statements = Vec::new();
    // The access token's jti marks the consumed code or refresh token as this request's.
    let consumed = match i.source {
        Source::NewGrant => {
            statements.push(grants::insert_grant_statement(i.grant));
            Consumed::Nothing
        }
        Source::Code(hash) => {
            statements.push(grants::consume_code_statement(hash, &jti, now));
            Consumed::Code { hash, marker: &jti }
        }
        Source::Refresh(hash) => {
            statements.push(grants::rotate_refresh_statement(hash, &i.client.client_id, &jti, now));
            Consumed::Refresh { hash, marker: &jti }
        }
        Source::RefreshAgain { hash, since } => {
            statements.push(grants::rerotate_refresh_statement(
                hash,
                &i.client.client_id,
                &jti,
                since,
            ));
            Consumed::Refresh { hash, marker: &jti }
        }
    };
    statements.push(grants::insert_token_statement(
        &NewToken {
            hash: &access_hash,
            kind: TokenKind::Access,
            grant: i.grant,
            scope: i.scope,
            jti: Some(&jti),
            expires_at: access_exp,
            claims: userinfo_claims.as_deref(),
        },
        now,
        consumed,
    ));

    let refresh_token = if i.refresh { Some(random_token(ctx.rng)?) } else { None };
    let refresh_hash = refresh_token.as_deref().map(token_hash);
    if let Some(hash) = &refresh_hash {
        // Idle lifetime per token, absolute lifetime from the grant.
        let exp = (now + ctx.settings.refresh_idle_ttl).min(i.grant.expires_at);
        statements.push(grants::insert_token_statement(
            &NewToken {
                hash,
                kind: TokenKind::Refresh,
                grant: i.grant,
                scope: i.refresh_scope,
                jti: None,
                expires_at: exp,
                claims: None,
            },
            now,
            consumed,
        ));
    }
    // Signed before the batch: once the batch lands, nothing may fail before the answer.
    let id_token = if i.id_token {
        Some(id_token(ctx, &i, alg, &sub, &access_token, &id_token_claims).await?)
    } else {
        None
    };
    let changes = ctx.db.batch(&statements).await?;
    // The consuming UPDATE names one row by its key: it changed it, or another request had.
    let consumed_here = changes.first().is_some_and(|n| *n > 0);
    if !matches!(i.source, Source::NewGrant) && !consumed_here {
        return Ok(Issued::AlreadyConsumed);
    }

    let mut body = Map::new();
    body.insert("access_token".into(), json!(access_token));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(access_exp - now));
    body.insert("scope".into(), json!(i.scope));
    if let Some(rt) = refresh_token {
        body.insert("refresh_token".into(), json!(rt));
    }
    if let Some(t) = id_token {
        body.insert("id_token".into(), json!(t));
    }
    Ok(Issued::Tokens(Response::json(200, &Value::Object(body))))
}

/// OIDC Core §2 and §3.1.3.6 (`at_hash`: left half of SHA-256 of the access token), with the
/// user's claims for the token's scope and those the request named for the ID token (§5.4, §5.5).
async fn id_token(
    ctx: &Ctx<'_>,
    i: &Issue<'_>,
    alg: SigningAlg,
    sub: &str,
    access_token: &str,
    named: &[String],
) -> Result<String, Error> {
    let now = ctx.clock.now();
    let digest = sha256(access_token.as_bytes());
    let mut claims = Value::Object(i.user.map(|u| claims::release(u, i.scope, named)).unwrap_or_default());
    let protocol = json!({
        "iss": ctx.issuer(), "sub": sub, "aud": i.client.client_id, "azp": i.client.client_id,
        "iat": now, "exp": now + ctx.settings.id_token_ttl, "at_hash": b64url(&digest[..16]),
    });
    // The protocol's claims last: no user claim can stand in for one of them.
    if let (Value::Object(c), Value::Object(p)) = (&mut claims, protocol) {
        c.extend(p);
    }
    if let Some(t) = i.grant.auth_time {
        claims["auth_time"] = json!(t);
    }
    sign_in_methods(&mut claims, ctx.issuer(), i.grant);
    if let Some(n) = &i.grant.nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(s) = &i.grant.session_hash {
        // The session id's hash is already public-safe; a second hash keeps sid opaque.
        claims["sid"] = json!(b64url(&sha256(s.as_bytes())[..16]));
    }
    Ok(jwt::sign(ctx.signer, alg, &claims, Some(jwt::typ::ID_TOKEN)).await?)
}

/// `amr` and `acr` (OIDC Core §2) of a grant made from a user's sign-in.
fn sign_in_methods(claims: &mut Value, issuer: &str, grant: &Grant) {
    if let Some(stored) = &grant.amr {
        let methods = amr::parse(stored);
        claims["acr"] = json!(amr::acr_uri(issuer, amr::class(&methods)));
        claims["amr"] = json!(methods);
    }
}

/// A replayed code or refresh token: the whole family it belongs to is revoked
/// (RFC 6749 §4.1.2 for codes, OAuth 2.0 Security BCP §4.14.2 for refresh tokens) and the replay
/// is recorded. The caller answers `invalid_grant`.
pub async fn revoke_replayed_family(
    ctx: &Ctx<'_>,
    client: &Client,
    grant_id: &str,
    kind: EventKind,
) -> Result<(), Error> {
    let now = ctx.clock.now();
    let mut statements = grants::revoke_grant_statements(grant_id, now);
    statements.push(crate::store::events::record_statement(
        ctx.rng,
        now,
        crate::store::events::Event {
            kind,
            user_id: None,
            client_id: Some(&client.client_id),
            ip: None,
            location: None,
            detail: json!({ "grant_id": grant_id }),
        },
    )?);
    ctx.db.batch(&statements).await?;
    Ok(())
}

pub fn wants_refresh(client: &Client, scope_str: &str) -> bool {
    client.allows_grant(GrantType::RefreshToken) && scope::has(scope_str, "offline_access")
}
