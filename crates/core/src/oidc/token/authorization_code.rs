//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).

use crate::crypto::token_hash;
use crate::error::{Error, OAuthError};
use crate::http::Params;
use crate::oidc::pkce;
use crate::oidc::scope;
use crate::store::clients::Client;
use crate::store::grants::{self, Redeemed};
use crate::Ctx;

pub async fn exchange(ctx: &Ctx<'_>, client: &Client, form: &Params) -> Result<crate::http::Response, Error> {
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::new(
            crate::error::ErrorCode::UnauthorizedClient,
            "grant not allowed for this client",
        )
        .into());
    }
    let code = form.require("code")?;
    let redirect_uri = form.get("redirect_uri")?;
    let verifier = form.get("code_verifier")?;
    let now = ctx.clock.now();
    let invalid = || Error::from(OAuthError::invalid_grant("invalid authorization code"));

    let record = match grants::redeem_code(ctx.db, &token_hash(code), now).await? {
        Redeemed::Fresh(c) => c,
        Redeemed::Reused { grant_id } => {
            super::revoke_replayed_family(ctx, client, &grant_id, "code_reuse").await?;
            return Err(invalid());
        }
        Redeemed::Unknown => return Err(invalid()),
    };
    if record.client_id != client.client_id || record.expires_at <= now {
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
    let Some(grant) = grants::live_grant(ctx.db, &record.grant_id, now).await? else {
        return Err(invalid());
    };
    let scope_str = grant.scope.clone();
    super::issue(
        ctx,
        super::Issue {
            client,
            grant: &grant,
            scope: &scope_str,
            refresh_scope: &scope_str,
            refresh: super::wants_refresh(client, &scope_str),
            id_token: scope::has(&scope_str, "openid"),
            new_grant: false,
        },
    )
    .await
}
