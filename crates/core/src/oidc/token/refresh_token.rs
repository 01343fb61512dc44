//! `grant_type=refresh_token` (RFC 6749 §6) with rotation on every use and reuse detection
//! (OAuth 2.0 Security BCP §4.14.2): presenting a rotated token revokes the whole family.

use crate::crypto::token_hash;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Params, Response};
use crate::oidc::scope;
use crate::store::clients::Client;
use crate::store::grants::{self, Rotated};
use crate::Ctx;

pub async fn exchange(ctx: &Ctx<'_>, client: &Client, form: &Params) -> Result<Response, Error> {
    if !client.allows_grant("refresh_token") {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "grant not allowed for this client").into());
    }
    let presented = form.require("refresh_token")?;
    let hash = token_hash(presented);
    let now = ctx.clock.now();
    let invalid = || Error::from(OAuthError::invalid_grant("invalid refresh token"));

    let token = match grants::rotate_refresh(ctx.db, &hash, &client.client_id, now).await? {
        Rotated::Fresh(t) => t,
        Rotated::Reused { grant_id } => {
            super::revoke_replayed_family(ctx, client, &grant_id, "refresh_token_reuse").await?;
            return Err(invalid());
        }
        Rotated::Invalid => return Err(invalid()),
    };
    if token.expires_at <= now {
        return Err(invalid());
    }
    let Some(grant) = grants::live_grant(ctx.db, &token.grant_id, now).await? else {
        return Err(invalid());
    };
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    let scope_str = match form.get("scope")? {
        None => token.scope.clone(),
        Some(requested) => {
            let asked = scope::parse(requested, &token.scope)?;
            scope::join(&asked)
        }
    };
    super::issue(
        ctx,
        super::Issue {
            client,
            grant: &grant,
            scope: &scope_str,
            refresh_scope: &token.scope,
            // The family goes on as long as the grant's offline_access does.
            refresh: super::wants_refresh(client, &grant.scope),
            id_token: scope::has(&scope_str, "openid"),
            new_grant: false,
        },
    )
    .await
}
