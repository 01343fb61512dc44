//! Client authentication at the token, revocation and introspection endpoints
//! (RFC 6749 §2.3.1: `client_secret_basic`, `client_secret_post`; `none` for public clients).
//! A client uses exactly its registered method; mixing methods is refused (§2.3).

use crate::crypto::{b64_decode, constant_time_eq, token_hash};
use crate::error::{Error, OAuthError};
use crate::http::{Params, Request};
use crate::store::clients::{self, Client};
use crate::types::protocol::AuthMethod;
use crate::Ctx;

fn invalid() -> Error {
    // One description for every failure, so the answer does not tell which part was wrong.
    OAuthError::invalid_client("client authentication failed").into()
}

/// `Authorization: Basic` credentials, form-urlencoded per RFC 6749 §2.3.1.
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, Error> {
    let Some(value) = req.header("authorization") else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = b64_decode(encoded)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    match (unescape(id), unescape(secret)) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        _ => Err(invalid()),
    }
}

/// Authenticates the calling client; disabled and unknown clients fail the same way.
pub async fn authenticate(ctx: &Ctx<'_>, req: &Request, form: &Params) -> Result<Client, Error> {
    let basic = basic_credentials(req)?;
    let post_id = form.get("client_id")?;
    let post_secret = form.get("client_secret")?;

    let (client_id, secret, method) = match (&basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("use one client authentication method").into());
        }
        (Some((id, secret)), None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(invalid());
            }
            (id.clone(), Some(secret.clone()), AuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => (
            post_id.ok_or_else(invalid)?.to_owned(),
            Some(secret.to_owned()),
            AuthMethod::ClientSecretPost,
        ),
        (None, None) => (post_id.ok_or_else(invalid)?.to_owned(), None, AuthMethod::None),
    };

    let client = clients::by_id(ctx.db, &client_id).await?;
    // Hash even when the client is unknown, so timing does not reveal which ids exist.
    let presented = secret.as_deref().map(token_hash);
    let Some(client) = client else { return Err(invalid()) };
    if client.disabled {
        return Err(invalid());
    }
    let expected = client.metadata.token_endpoint_auth_method;
    if expected != method {
        // The registered method is not secret, and naming it helps a relying party whose library
        // defaults to another one (client_secret_basic vs client_secret_post).
        return Err(OAuthError::invalid_client(format!(
            "client authentication failed: this client authenticates with {}",
            expected.as_str()
        ))
        .into());
    }
    match (method, &client.secret_hash, presented) {
        (AuthMethod::None, _, None) => Ok(client),
        (_, Some(stored), Some(presented)) if constant_time_eq(stored.as_bytes(), presented.as_bytes()) => Ok(client),
        _ => Err(invalid()),
    }
}
