//! `GET|POST /oauth2/userinfo` (OIDC Core §5.3): claims for the scopes the token carries and the
//! ones its authorization request named (`oidc::claims`).

use serde_json::{json, Value};

use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Method, Request, Response};
use crate::oidc::{access, claims, scope};
use crate::store::users;
use crate::Ctx;

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    match claims(ctx, req).await {
        Ok(v) => Response::json(200, &v),
        Err(e) => e.into_bearer(),
    }
}

async fn claims(ctx: &Ctx<'_>, req: &Request) -> Result<Value, Error> {
    // RFC 6750 §2: header, or form body on POST; never the query string.
    let form = req.form_params();
    let token = match (req.bearer_token(), req.method == Method::Post) {
        (Some(t), _) => t.to_owned(),
        (None, true) => form.get("access_token")?.map(str::to_owned).ok_or_else(missing)?,
        (None, false) => return Err(missing()),
    };
    let invalid = || {
        Error::from(OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token is invalid or expired",
        ))
    };
    let Some(t) = access::validate(ctx, &token).await? else {
        return Err(invalid());
    };
    let Some(user_id) = t.user_id else {
        return Err(invalid());
    };
    if !scope::has(&t.scope, "openid") {
        return Err(OAuthError::new(ErrorCode::InvalidToken, "the token was not issued for the openid scope").into());
    }
    let user = match users::by_id(ctx.db, &user_id).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(invalid()),
    };
    // The claims of the token's scope, and those the request named for userinfo (§5.5), as far
    // as the client could have them when the token was issued.
    let named = claims::Requested::from_stored(t.claims.as_deref()).userinfo;
    let mut out = claims::release(&user, &t.scope, &named);
    out.insert("sub".into(), json!(user.id));
    Ok(Value::Object(out))
}

fn missing() -> Error {
    // RFC 6750 §3.1: no error code when the request had no token at all.
    OAuthError::new(ErrorCode::InvalidToken, "").into()
}
