//! `grant_type=refresh_token` (RFC 6749 §6) with rotation on every use and reuse detection
//! (OAuth 2.0 Security BCP §4.14.2): presenting a rotated token revokes the whole family.
//!
//! The token is read and every check runs first (client, lifetime, grant, scope); it is rotated
//! only in the batch that writes its successors, so a wider scope asked by mistake or a failed
//! write leaves it usable, and the client's retry is not mistaken for a replay.

use crate::crypto::token_hash;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Params, Response};
use crate::oidc::scope;
use crate::store::clients::Client;
use crate::store::grants;
use crate::store::users::User;
use crate::types::event_kind::EventKind;
use crate::types::protocol::GrantType;
use crate::Ctx;

use super::{Issued, Source};

/// Whether a family may go on under the passkey-only rule: a user made passkey-only by the
/// deployment or a group setting after signing in with a password keeps no refresh family from
/// that sign-in. (An administrator's change to the user ends their families at once; the
/// settings change with a deploy, so they are checked here, on the user the lookup joined.)
fn meets_passkey_rule(ctx: &Ctx<'_>, grant: &grants::Grant, user: Option<&User>) -> bool {
    if grant.user_id.is_none() {
        return true;
    }
    let Some(user) = user else {
        return false;
    };
    if !crate::flow::engine::passkey_only(ctx, user) {
        return true;
    }
    let methods = grant.amr.as_deref().map(crate::factors::amr::parse).unwrap_or_default();
    methods
        .iter()
        .any(|m| *m == crate::factors::amr::HWK || *m == crate::factors::amr::SWK)
}

/// Whether the family's user may still use the client: one that restricts its users refuses a
/// user since taken off its lists.
fn meets_client_access(client: &Client, grant: &grants::Grant, user: Option<&User>) -> bool {
    if !client.restricted() {
        return true;
    }
    grant.user_id.is_some() && user.is_some_and(|u| client.admits(u))
}

pub async fn exchange(ctx: &Ctx<'_>, client: &Client, form: &Params) -> Result<Response, Error> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "grant not allowed for this client").into());
    }
    let presented = form.require("refresh_token")?;
    let requested_scope = form.get("scope")?;
    let hash = token_hash(presented);
    let now = ctx.clock.now();
    let invalid = || Error::from(OAuthError::invalid_grant("invalid refresh token"));

    let Some(found) = grants::refresh_for_exchange(ctx.db, &hash, now).await? else {
        return Err(invalid());
    };
    let token = &found.token;
    // Another client's token is left untouched: nobody can burn a token that is not theirs.
    if token.client_id != client.client_id {
        return Err(invalid());
    }
    // Opt-in grace interval (`GATEHOUSE_REFRESH_GRACE`): a token rotated moments ago, presented
    // again (another tab, a retried request whose answer was lost), gets new tokens once more
    // instead of revoking the family.
    let grace_since = now - ctx.settings.refresh_grace;
    let source = match token.rotated_at {
        None => Source::Refresh(&hash),
        Some(at) if ctx.settings.refresh_grace > 0 && at >= grace_since => Source::RefreshAgain {
            hash: &hash,
            since: grace_since,
        },
        Some(_) => {
            super::revoke_replayed_family(ctx, client, &token.grant_id, EventKind::RefreshTokenReuse).await?;
            return Err(invalid());
        }
    };
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(invalid());
    }
    let Some(grant) = &found.grant else {
        return Err(invalid());
    };
    let user = found.user.as_ref();
    if !meets_passkey_rule(ctx, grant, user) || !meets_client_access(client, grant, user) {
        return Err(invalid());
    }
    // What the family may still carry: its scope, narrowed to what the client is allowed today
    // (an operator who removes a scope from a client removes it from live families too).
    let kept: Vec<String> = scope::split(&token.scope)
        .filter(|s| client.allowed_scopes().any(|a| a == *s))
        .map(str::to_owned)
        .collect();
    let kept_scope = scope::join(&kept);
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    let scope_str = match requested_scope {
        None => kept_scope.clone(),
        Some(requested) => scope::join(&scope::parse(requested, &kept_scope)?),
    };
    let issue = |source| {
        super::issue(
            ctx,
            super::Issue {
                user,
                client,
                grant,
                scope: &scope_str,
                refresh_scope: &kept_scope,
                // The family goes on as long as it keeps offline_access.
                refresh: super::wants_refresh(client, &kept_scope),
                id_token: scope::has(&scope_str, "openid"),
                source,
            },
        )
    };
    let mut issued = issue(source).await?;
    // Rotated by a concurrent request between our read and our batch. Within the grace interval
    // that is the two-tabs case the interval is for: try once more as a token presented again.
    if matches!(issued, Issued::AlreadyConsumed)
        && matches!(source, Source::Refresh(_))
        && ctx.settings.refresh_grace > 0
    {
        issued = issue(Source::RefreshAgain {
            hash: &hash,
            since: grace_since,
        })
        .await?;
    }
    match issued {
        Issued::Tokens(resp) => Ok(resp),
        // Otherwise a replay.
        Issued::AlreadyConsumed => {
            super::revoke_replayed_family(ctx, client, &token.grant_id, EventKind::RefreshTokenReuse).await?;
            Err(invalid())
        }
    }
}
