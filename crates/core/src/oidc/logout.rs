//! `GET|POST /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0). Ends the SSO session
//! server-side. Without an `id_token_hint` naming the signed-in user, the user confirms first,
//! so a cross-site link cannot sign people out.

use crate::error::{Error, OAuthError};
use crate::http::{append_query, Method, Request, Response};
use crate::oidc::id_token_hint;
use crate::pages;
use crate::store::{clients, sessions};
use crate::web::cookies::{self, browser_binding};
use crate::Ctx;

const CSRF_PURPOSE: &str = "logout";

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    match logout(ctx, req).await {
        Ok(r) => r,
        Err(e) => e.into_page(),
    }
}

async fn logout(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let params = req.params();
    let now = ctx.clock.now();
    let mut hint_sub = None;
    let mut client_id = params.get("client_id")?.map(str::to_owned);
    if let Some(hint) = params.get("id_token_hint")? {
        let hint = id_token_hint::verify(ctx, hint).await?;
        if client_id.is_some() && hint.aud.is_some() && client_id != hint.aud {
            return Err(OAuthError::invalid_request("client_id does not match id_token_hint").into());
        }
        client_id = client_id.or(hint.aud);
        hint_sub = Some(hint.sub);
    }

    // Exact match against the client's registered post-logout redirect URIs.
    let redirect = match params.get("post_logout_redirect_uri")? {
        None => None,
        Some(uri) => {
            let Some(cid) = &client_id else {
                return Err(
                    OAuthError::invalid_request("post_logout_redirect_uri needs id_token_hint or client_id").into(),
                );
            };
            match clients::by_id(ctx.db, cid).await? {
                Some(c) if !c.disabled && c.metadata.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                    Some(uri.to_owned())
                }
                _ => {
                    return Err(OAuthError::invalid_request(
                        "post_logout_redirect_uri is not registered for this client",
                    )
                    .into())
                }
            }
        }
    };
    let state = params.get("state")?.map(str::to_owned);

    let session_hash = cookies::session_hash(ctx, req);
    let session = match &session_hash {
        Some(h) => sessions::active(ctx.db, h, now).await?,
        None => None,
    };
    if let Some(s) = &session {
        let hinted = hint_sub.as_deref() == Some(s.user_id.as_str());
        let confirmed = req.method == Method::Post
            && params.get("logout")? == Some("yes")
            && cookies::csrf_ok(ctx, req, CSRF_PURPOSE, params.get("csrf")?.unwrap_or(""));
        if !hinted && !confirmed {
            return confirm_page(ctx, req, redirect.as_deref(), state.as_deref(), client_id.as_deref());
        }
        sessions::end(ctx.db, &s.id_hash, now).await?;
    }

    let mut resp = match redirect {
        Some(uri) => {
            let q: Vec<(&str, String)> = state.into_iter().map(|s| ("state", s)).collect();
            Response::redirect(303, &if q.is_empty() { uri } else { append_query(&uri, &q) })
        }
        None => pages::html(200, &pages::SignedOut),
    };
    resp.add_header("set-cookie", &cookies::set_cookie(ctx, cookies::SESSION, "", 0));
    Ok(resp)
}

fn confirm_page(
    ctx: &Ctx<'_>,
    req: &Request,
    redirect: Option<&str>,
    state: Option<&str>,
    client_id: Option<&str>,
) -> Result<Response, Error> {
    let (browser, set_cookie) = browser_binding(ctx, req)?;
    let csrf = cookies::csrf_token(ctx, &browser, CSRF_PURPOSE);
    let page = pages::LogoutConfirm {
        csrf: &csrf,
        state: state.unwrap_or(""),
        post_logout_redirect_uri: redirect.unwrap_or(""),
        client_id: client_id.unwrap_or(""),
    };
    let mut resp = pages::html(200, &page);
    resp.form_action = redirect.and_then(crate::http::csp_source).into_iter().collect();
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}
