//! `POST /oauth2/revoke` (RFC 7009). Answers 200 whether or not the token existed (§2.2), and
//! never lets one client revoke another's token.

use crate::crypto::token_hash;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Method, Request, Response};
use crate::oidc::client_auth;
use crate::store::grants;
use crate::Ctx;

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    if req.method != Method::Post {
        return Error::from(OAuthError::new(ErrorCode::InvalidRequest, "use POST")).into_json();
    }
    match revoke(ctx, req).await {
        Ok(()) => Response::new(200),
        Err(e) => e.into_json(),
    }
}

async fn revoke(ctx: &Ctx<'_>, req: &Request) -> Result<(), Error> {
    let form = req.form_params();
    let client = client_auth::authenticate(ctx, req, &form).await?;
    let token = form.require("token")?;
    let hash = token_hash(token);
    if let Some(t) = grants::token_by_hash(ctx.db, &hash).await? {
        if t.client_id == client.client_id {
            grants::revoke_token(ctx.db, &t, &hash, ctx.clock.now()).await?;
        }
    }
    Ok(())
}
