//! `POST /oauth2/introspect` (RFC 7662). A client learns only about tokens issued to itself:
//! anything else is `{"active": false}` (CVE-2024-47077 class).

use serde_json::{json, Value};

use crate::crypto::token_hash;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Method, Request, Response};
use crate::oidc::{access, client_auth, scope};
use crate::store::{grants, users};
use crate::types::protocol::TokenKind;
use crate::Ctx;

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    if req.method != Method::Post {
        return Error::from(OAuthError::new(ErrorCode::InvalidRequest, "use POST")).into_json();
    }
    match introspect(ctx, req).await {
        Ok(v) => Response::json(200, &v),
        Err(e) => e.into_json(),
    }
}

async fn introspect(ctx: &Ctx<'_>, req: &Request) -> Result<Value, Error> {
    let form = req.form_params();
    let client = client_auth::authenticate(ctx, req, &form).await?;
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "public clients may not introspect").into());
    }
    let token = form.require("token")?;
    let inactive = json!({ "active": false });
    let now = ctx.clock.now();
    // Access tokens are JWTs and must verify; refresh tokens are opaque and only looked up.
    let found = if token.split('.').count() == 3 {
        access::validate(ctx, token).await?
    } else {
        grants::active_token(ctx.db, &token_hash(token), now)
            .await?
            .filter(|t| t.kind == TokenKind::Refresh)
    };
    let Some(t) = found else { return Ok(inactive) };
    if t.client_id != client.client_id {
        return Ok(inactive);
    }
    let mut out = json!({
        "active": true,
        "scope": t.scope,
        "client_id": t.client_id,
        "token_type": if t.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
        "exp": t.expires_at,
        "iat": t.created_at,
        "iss": ctx.issuer(),
        "sub": t.user_id.clone().unwrap_or_else(|| t.client_id.clone()),
        "aud": t.client_id,
    });
    if let Some(jti) = &t.jti {
        out["jti"] = json!(jti);
    }
    if let Some(uid) = &t.user_id {
        match users::by_id(ctx.db, uid).await? {
            // RFC 7662 §2.2 `username`: a profile claim, so only for tokens with the profile
            // scope, as at userinfo (OIDC Core §5.4).
            Some(u) if !u.disabled => {
                if scope::has(&t.scope, "profile") {
                    out["username"] = json!(u.username);
                }
            }
            _ => return Ok(inactive),
        }
    }
    Ok(out)
}
