//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
//!
//! The code is read, then every check runs (client, expiry, redirect URI, PKCE), and only then is
//! it consumed, in the batch that writes its tokens. A code presented by another client is refused
//! and left redeemable by its owner: otherwise anyone holding a leaked code and any public
//! `client_id` could make the real client's exchange look like a replay and revoke the grant.

use crate::crypto::token_hash;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Params, Response};
use crate::oidc::pkce;
use crate::oidc::scope;
use crate::store::clients::Client;
use crate::store::grants;
use crate::types::event_kind::EventKind;
use crate::types::protocol::GrantType;
use crate::Ctx;

use super::{Issued, Source};

pub async fn exchange(ctx: &Ctx<'_>, client: &Client, form: &Params) -> Result<Response, Error> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "grant not allowed for this client").into());
    }
    let code = form.require("code")?;
    let redirect_uri = form.get("redirect_uri")?;
    let verifier = form.get("code_verifier")?;
    let now = ctx.clock.now();
    let invalid = || Error::from(OAuthError::invalid_grant("invalid authorization code"));
    let hash = token_hash(code);

    let Some(found) = grants::code_for_exchange(ctx.db, &hash, now).await? else {
        return Err(invalid());
    };
    let record = &found.code;
    if record.client_id != client.client_id {
        return Err(invalid());
    }
    // RFC 6749 §4.1.3: the same redirect_uri, compared exactly.
    if redirect_uri != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request").into());
    }
    match (&record.code_challenge, verifier) {
        (Some(challenge), Some(v)) if pkce::verify_s256(v, challenge) => {}
        (Some(_), _) => return Err(OAuthError::invalid_grant("PKCE verification failed").into()),
        // A verifier for a code issued without a challenge is a downgrade attempt
        // (CVE-2023-48228 class): refuse rather than ignore.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant("code_verifier sent for a code issued without PKCE").into())
        }
        (None, None) if client.is_public() => return Err(OAuthError::invalid_grant("PKCE is required").into()),
        (None, None) => {}
    }
    // Only a request that would have redeemed the code (its client, redirect URI and verifier)
    // can be a replay: anyone else who saw a used code (history, a Referer, a log) must not be
    // able to revoke the user's tokens with it.
    if found.used {
        // RFC 6749 §4.1.2: a code used twice revokes what it issued.
        super::revoke_replayed_family(ctx, client, &record.grant_id, EventKind::CodeReuse).await?;
        return Err(invalid());
    }
    if record.expires_at <= now {
        return Err(invalid());
    }
    let Some(grant) = &found.grant else {
        return Err(invalid());
    };
    let scope_str = grant.scope.clone();
    let issued = super::issue(
        ctx,
        super::Issue {
            user: found.user.as_ref(),
            client,
            grant,
            scope: &scope_str,
            refresh_scope: &scope_str,
            refresh: super::wants_refresh(client, &scope_str),
            id_token: scope::has(&scope_str, "openid"),
            source: Source::Code(&hash),
        },
    )
    .await?;
    match issued {
        Issued::Tokens(resp) => Ok(resp),
        // Redeemed by a concurrent request between our read and our batch: a replay.
        Issued::AlreadyConsumed => {
            super::revoke_replayed_family(ctx, client, &record.grant_id, EventKind::CodeReuse).await?;
            Err(invalid())
        }
    }
}
