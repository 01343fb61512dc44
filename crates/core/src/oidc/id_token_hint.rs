//! `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated Logout §2): an ID token we issued earlier,
//! naming the user the relying party expects. It must verify against our keys and name us as
//! issuer; an expired one is still a fine hint.

use serde_json::{Map, Value};

use crate::error::{Error, OAuthError};
use crate::jwt::{self, JwtError};
use crate::{limits, Ctx};

/// An expired ID token is still a valid hint (OIDC Core §3.1.2.1: "the OP SHOULD NOT return an
/// error for an expired ID Token").
const LEEWAY: i64 = 366 * 24 * 3600;

/// Who an `id_token_hint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    /// The client the ID token was issued to (its first audience).
    pub aud: Option<String>,
}

/// Verifies a hint; anything that is not one of our ID tokens is `invalid_request`.
pub async fn verify(ctx: &Ctx<'_>, token: &str) -> Result<Hint, Error> {
    let refuse = |why: &str| Error::from(OAuthError::invalid_request(format!("id_token_hint {why}")));
    if token.len() > limits::ID_TOKEN_HINT {
        return Err(refuse("is too long"));
    }
    let claims = match jwt::verify_typed(ctx.signer, token, ctx.clock.now(), LEEWAY, jwt::typ::ID_TOKEN).await {
        Ok(c) => c,
        Err(JwtError::Internal(e)) => return Err(e.into()),
        Err(_) => return Err(refuse("is not a valid ID token from this issuer")),
    };
    if claims.get("iss").and_then(Value::as_str) != Some(ctx.issuer()) {
        return Err(refuse("was issued by another issuer"));
    }
    if !is_id_token(&claims) {
        return Err(refuse("is not an ID token"));
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("has no subject"))?
        .to_owned();
    let aud = match claims.get("aud") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    Ok(Hint { sub, aud })
}

/// Only an ID token: access tokens carry `scope`, gateway identity tokens carry `app`, and every
/// ID token we issue carries `at_hash`.
fn is_id_token(claims: &Map<String, Value>) -> bool {
    !claims.contains_key("scope") && !claims.contains_key("app") && claims.contains_key("at_hash")
}
