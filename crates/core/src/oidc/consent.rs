//! `GET|POST /oauth2/consent`: asks the user before a client that is not first-party receives
//! their data; granted scopes are remembered per user and client.

use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{form_encode, Request, Response};
use crate::oidc::authorize::{self, Pending};
use crate::oidc::cookies;
use crate::oidc::login::browser_binding;
use crate::pages;
use crate::store::{clients, consents, sessions};
use crate::Ctx;

fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "offline_access" => "Stay signed in when you are not using it",
        _ => "Unknown access",
    }
}

/// The session's user id, or a redirect to log in again.
async fn user_id(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Result<String, Response>, Error> {
    let session = match cookies::session_hash(ctx, req) {
        Some(h) => sessions::active(ctx.db, &h, ctx.clock.now()).await?,
        None => None,
    };
    Ok(match session {
        Some(s) => Ok(s.user_id),
        None => Err(Response::redirect(
            303,
            &format!("/oauth2/login?req={}", form_encode(id)),
        )),
    })
}

async fn page(ctx: &Ctx<'_>, req: &Request, id: &str, pending: &Pending) -> Result<Response, Error> {
    let (browser, set_cookie) = browser_binding(ctx, req)?;
    let client = clients::by_id(ctx.db, &pending.client_id).await?;
    let name = client
        .and_then(|c| c.metadata.client_name)
        .unwrap_or_else(|| pending.client_id.clone());
    let scopes = pending
        .scope
        .iter()
        .map(|s| pages::Scope {
            name: s,
            description: describe(s),
        })
        .collect();
    let csrf = cookies::csrf_token(ctx, &browser, id);
    let page = pages::Consent {
        client: &name,
        scopes,
        req: id,
        csrf: &csrf,
    };
    let mut resp = pages::html(200, &page);
    resp.form_action = pending.form_action();
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

pub async fn get(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let Some(pending) = authorize::load(ctx, &id).await? else {
            return Ok(authorize::expired_page());
        };
        if let Err(login) = user_id(ctx, req, &id).await? {
            return Ok(login);
        }
        page(ctx, req, &id, &pending).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

pub async fn post(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let id = params.require("req")?.to_owned();
        let Some(mut pending) = authorize::load(ctx, &id).await? else {
            return Ok(authorize::expired_page());
        };
        if !cookies::csrf_ok(ctx, req, &id, params.get("csrf")?.unwrap_or("")) {
            return Ok(
                Error::from(OAuthError::invalid_request("invalid form token; go back and try again")).into_page(),
            );
        }
        let user = match user_id(ctx, req, &id).await? {
            Ok(u) => u,
            Err(login) => return Ok(login),
        };
        match params.get("decision")? {
            Some("allow") => {
                let earlier = consents::granted(ctx.db, &user, &pending.client_id).await?;
                pending.consented_by = Some(user.clone());
                // The consent and the request that carries it, together.
                ctx.db
                    .batch(&[
                        consents::grant_statement(&user, &pending.client_id, earlier, &pending.scope, ctx.clock.now()),
                        authorize::store_statement(&id, &pending)?,
                    ])
                    .await?;
                Ok(Response::redirect(
                    303,
                    &format!("/oauth2/authorize/resume?req={}", form_encode(&id)),
                ))
            }
            _ => {
                sessions::delete_request(ctx.db, &id).await?;
                Ok(pending.error(ctx, OAuthError::new(ErrorCode::AccessDenied, "the user denied access")))
            }
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
