//! `grant_type=client_credentials` (RFC 6749 §4.4): confidential clients acting for themselves.

use crate::crypto::random_id;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Params, Response};
use crate::oidc::scope;
use crate::store::clients::Client;
use crate::store::grants::Grant;
use crate::types::protocol::GrantType;
use crate::Ctx;

pub async fn exchange(ctx: &Ctx<'_>, client: &Client, form: &Params) -> Result<Response, Error> {
    if client.is_public() || !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "grant not allowed for this client").into());
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in form.get("scope")?.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        // The user scopes (`scope::SUPPORTED`) describe a user, and there is none here.
        if scope::SUPPORTED.contains(&s) || !client.allowed_scopes().any(|a| a == s) {
            return Err(OAuthError::new(ErrorCode::InvalidScope, format!("scope {s} is not allowed")).into());
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    let now = ctx.clock.now();
    let grant = Grant {
        id: random_id(ctx.rng, "grt_")?,
        client_id: client.client_id.clone(),
        user_id: None,
        session_hash: None,
        scope: scopes.join(" "),
        auth_time: None,
        nonce: None,
        amr: None,
        created_at: now,
        expires_at: now + ctx.settings.access_token_ttl,
        revoked_at: None,
        claims: None,
    };
    let scope_str = grant.scope.clone();
    let issued = super::issue(
        ctx,
        super::Issue {
            user: None,
            client,
            grant: &grant,
            scope: &scope_str,
            refresh_scope: &scope_str,
            refresh: false,
            id_token: false,
            source: super::Source::NewGrant,
        },
    )
    .await?;
    match issued {
        super::Issued::Tokens(resp) => Ok(resp),
        // Nothing is consumed by client_credentials, so no race can be lost.
        super::Issued::AlreadyConsumed => {
            Err(crate::error::InternalError::new("client_credentials lost a race").into())
        }
    }
}
