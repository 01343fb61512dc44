//! Validating an access token presented to Gatehouse (userinfo, introspection): the JWT must be
//! signed by one of our keys with exactly that key's algorithm (no `none`, no HS256 made with a
//! public key), unexpired, and its hash must be a live token of an unrevoked grant.

use crate::crypto::token_hash;
use crate::error::InternalError;
use crate::jwt::{self, JwtError};
use crate::store::grants::{self, Token};
use crate::types::protocol::TokenKind;
use crate::Ctx;

/// Clock skew tolerated on `exp`/`nbf`.
pub const LEEWAY: i64 = 30;

pub async fn validate(ctx: &Ctx<'_>, token: &str) -> Result<Option<Token>, InternalError> {
    let now = ctx.clock.now();
    match jwt::verify_typed(ctx.signer, token, now, LEEWAY, jwt::typ::ACCESS_TOKEN).await {
        Ok(claims) => {
            if claims.get("iss").and_then(|v| v.as_str()) != Some(ctx.issuer()) {
                return Ok(None);
            }
        }
        Err(JwtError::Internal(e)) => return Err(e),
        Err(_) => return Ok(None),
    }
    Ok(grants::active_token(ctx.db, &token_hash(token), now)
        .await?
        .filter(|t| t.kind == TokenKind::Access))
}
