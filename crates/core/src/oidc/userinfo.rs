//! `GET|POST /oauth2/userinfo` (OIDC Core §5.3): claims for the scopes the token carries.

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Method, Request, Response};
use crate::oidc::{access, scope};
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
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    if scope::has(&t.scope, "profile") {
        out.insert("preferred_username".into(), json!(user.username));
        if let Some(n) = &user.name {
            out.insert("name".into(), json!(n));
        }
        out.insert("updated_at".into(), json!(user.updated_at));
    }
    if scope::has(&t.scope, "email") {
        out.insert("email".into(), json!(user.email));
        out.insert("email_verified".into(), json!(user.email_verified));
    }
    Ok(Value::Object(out))
}

fn missing() -> Error {
    // RFC 6750 §3.1: no error code when the request had no token at all.
    OAuthError::new(ErrorCode::InvalidToken, "").into()
}
