//! Carrying a login to an app's host. Gatehouse's session cookie lives on Gatehouse's host, so
//! for an app on another host: `/oauth2/gateway` (on Gatehouse's host, where the SSO session is)
//! mints a one-time code bound to the app and the return URL, and `/.gatehouse/callback` on the
//! app's host redeems it for an app-host session cookie. Both ends are single use, short-lived,
//! and checked against the app's host.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apps::{self, App};
use super::headers::{header_value, Unsafe};
use super::{app_cookie_name, app_cookie_value, host_of, is_https, return_url};
use crate::crypto::{random_token, token_hash};
use crate::db::first;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{append_query, form_encode, Request, Response};
use crate::oidc::authorize::Pending;
use crate::oidc::cookies;
use crate::store::{events, sessions};
use crate::{limits, params, Ctx};

/// A gateway login waiting for the user to sign in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub app_id: String,
    pub return_to: String,
    /// Hash of the app-host browser's binding cookie (`gh_gw`).
    #[serde(default)]
    pub bind: String,
}

const CODE_TTL: i64 = 60;
const PENDING_TTL: i64 = 30 * 60;

fn bad(description: &str) -> Error {
    OAuthError::new(ErrorCode::InvalidRequest, description).into()
}

/// `GET /oauth2/gateway?app=…&return_to=…`.
pub async fn start(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.query_params();
        let app = match apps::by_id(ctx.db, params.require("app")?).await? {
            Some(a) if !a.disabled => a,
            _ => return Err(bad("unknown application")),
        };
        let return_to = params.require("return_to")?;
        if return_to.len() > limits::RETURN_URL {
            return Err(bad("return_to is too long"));
        }
        let return_to = return_url::validate(return_to, &app.host, &app.path_prefix, is_https(ctx.issuer()))
            .ok_or_else(|| bad("return_to is not a URL of this application"))?;
        let bind = params.require("bind")?;
        if bind.len() != 43
            || !bind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("malformed bind"));
        }
        let target = Target {
            app_id: app.id.clone(),
            return_to,
            bind: bind.to_owned(),
        };
        let now = ctx.clock.now();
        let session = match cookies::session_hash(ctx, req) {
            Some(h) => sessions::active(ctx.db, &h, now).await?,
            None => None,
        };
        match session {
            Some(s) => finish_for(ctx, &app, &target, &s).await,
            None => {
                let id = random_token(ctx.rng)?;
                let (browser, set_cookie) = crate::oidc::login::browser_binding(ctx, req)?;
                let pending = Pending::for_gateway(&app.name, target, token_hash(&browser), now);
                let json =
                    serde_json::to_string(&pending).map_err(|e| crate::error::InternalError::new(e.to_string()))?;
                let ip_key = crate::policy::client_ip(ctx, req).key();
                sessions::save_request(ctx.db, &id, &app.name, &ip_key, &json, now, PENDING_TTL).await?;
                let mut resp = Response::redirect(303, &format!("/oauth2/login?req={}", form_encode(&id)));
                if let Some(c) = set_cookie {
                    resp.add_header("set-cookie", &c);
                }
                Ok(resp)
            }
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// After login: called by the authorization resume step for a gateway request.
pub async fn finish(ctx: &Ctx<'_>, req: &Request, id: &str, target: &Target) -> Result<Response, Error> {
    let now = ctx.clock.now();
    let session = match cookies::session_hash(ctx, req) {
        Some(h) => sessions::active(ctx.db, &h, now).await?,
        None => None,
    };
    let Some(session) = session else {
        return Ok(Response::redirect(
            303,
            &format!("/oauth2/login?req={}", form_encode(id)),
        ));
    };
    sessions::delete_request(ctx.db, id).await?;
    let app = match apps::by_id(ctx.db, &target.app_id).await? {
        Some(a) if !a.disabled => a,
        _ => return Err(bad("unknown application")),
    };
    finish_for(ctx, &app, target, &session).await
}

async fn finish_for(ctx: &Ctx<'_>, app: &App, target: &Target, s: &sessions::Session) -> Result<Response, Error> {
    let now = ctx.clock.now();
    let code = random_token(ctx.rng)?;
    ctx.db
        .execute(
            "INSERT INTO gateway_codes (code_hash, app_id, user_id, sso_session_hash, return_to, created_at, expires_at, \
             browser_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &params![
                token_hash(&code),
                &app.id,
                &s.user_id,
                &s.id_hash,
                &target.return_to,
                now,
                now + CODE_TTL,
                &target.bind
            ],
        )
        .await?;
    let scheme = if target.return_to.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let callback = format!("{scheme}://{}/.gatehouse/callback", app.host);
    Ok(Response::redirect(303, &append_query(&callback, &[("code", code)])))
}

#[derive(Deserialize)]
struct Redeemed {
    app_id: String,
    browser_hash: String,
    user_id: String,
    sso_session_hash: String,
    return_to: String,
    #[serde(deserialize_with = "crate::store::int")]
    expires_at: i64,
}

/// `GET /.gatehouse/callback?code=…` on the app's host.
pub async fn callback(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let code = req.query_params().require("code")?.to_owned();
        let now = ctx.clock.now();
        let invalid = || bad("this sign-in link is invalid or has expired; open the application again");
        let row: Option<Redeemed> = first(
            ctx.db
                .query(
                    "UPDATE gateway_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL \
                     RETURNING app_id, user_id, sso_session_hash, return_to, expires_at, browser_hash",
                    &params![token_hash(&code), now],
                )
                .await?,
        )?;
        let r = row.filter(|r| r.expires_at > now).ok_or_else(invalid)?;
        // Only the browser that started this login may finish it.
        let bound = req
            .cookie(&super::binding_cookie_name(&ctx.origin))
            .is_some_and(|v| crate::crypto::constant_time_eq(token_hash(&v).as_bytes(), r.browser_hash.as_bytes()));
        if !bound {
            return Err(invalid());
        }
        let app = apps::by_id(ctx.db, &r.app_id)
            .await?
            .filter(|a| !a.disabled)
            .ok_or_else(invalid)?;
        // The code is only good on the host it was minted for.
        if !host_of(&ctx.origin).eq_ignore_ascii_case(&app.host) {
            return Err(invalid());
        }
        let sso = sessions::active(ctx.db, &r.sso_session_hash, now)
            .await?
            .ok_or_else(invalid)?;
        let id = random_token(ctx.rng)?;
        // (Expired app sessions are deleted by the retention job.)
        ctx.db
            .execute(
                "INSERT INTO app_sessions (id_hash, app_id, user_id, sso_session_hash, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &params![
                    token_hash(&id),
                    &app.id,
                    &r.user_id,
                    &r.sso_session_hash,
                    now,
                    sso.expires_at
                ],
            )
            .await?;
        let secure = if is_https(&ctx.origin) { "; Secure" } else { "" };
        // Encoded again on the way out: a code minted before return URLs were encoded at the
        // start must not fail the header.
        let location = header_value(&r.return_to, Unsafe::Url).unwrap_or_default();
        let mut resp = Response::redirect(303, &location);
        resp.add_header(
            "set-cookie",
            &format!(
                "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
                super::binding_cookie_name(&ctx.origin)
            ),
        );
        resp.add_header(
            "set-cookie",
            &format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                app_cookie_name(&ctx.origin),
                app_cookie_value(ctx, &id),
                (sso.expires_at - now).max(0)
            ),
        );
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /.gatehouse/csp-report`: browsers' CSP violation reports, kept as events so an operator
/// can trial a policy in report-only mode before enforcing it.
pub async fn csp_report(ctx: &Ctx<'_>, req: &Request) -> Response {
    if req.body.len() > limits::CSP_REPORT {
        // Real reports are a few hundred bytes; a bigger one is not kept, even in part.
        let e = OAuthError::invalid_request(format!("a CSP report is at most {} bytes", limits::CSP_REPORT));
        return Error::from(e).into_json_with_status(413);
    }
    let report: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_else(|_| json!({ "unparsed": true }));
    let host = host_of(&ctx.origin).to_owned();
    let recorded = events::record(
        ctx.db,
        ctx.rng,
        ctx.clock.now(),
        events::Event {
            kind: "csp_report",
            user_id: None,
            client_id: None,
            ip: None,
            detail: json!({ "host": host, "report": report }),
        },
    )
    .await;
    if let Err(e) = recorded {
        crate::error::log_internal(&e);
    }
    Response::new(204)
}
