//! Carrying a login to an app's host. Gatehouse's session cookie lives on Gatehouse's host, so
//! for an app on another host: `/oauth2/gateway` (on Gatehouse's host, where the SSO session is)
//! mints a one-time code bound to the app and the return URL, and `/.gatehouse/callback` on the
//! app's host redeems it for an app-host session cookie. Both ends are single use, short-lived,
//! and checked against the app's host.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{is_https, return_url};
use crate::crypto::{random_token, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::flow::engine::{self, Outcome};
use crate::flow::{self, Flow, Purpose, Refusal};
use crate::http::host_of;
use crate::http::{append_query, Request, Response};
use crate::store::apps::{self, App};
use crate::store::{app_sessions, auth_requests, events, gateway_codes, sessions};
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::{limits, Ctx};

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
        let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
        let payload = serde_json::to_value(&target).map_err(|e| crate::error::InternalError::new(e.to_string()))?;
        let mut flow = Flow::new(
            Purpose::Gateway,
            payload,
            &app.name,
            token_hash(&browser),
            ctx.clock.now(),
        );
        flow.event_client = Some(app.name.clone());
        flow.binding_target = Some(crate::policy::binding::Target::App(app.id.clone()).key());
        flow.mfa_required_here = app.require_mfa;
        flow.form_action = crate::http::csp_source(&target.return_to).into_iter().collect();
        engine::begin(ctx, req, &mut flow).await?;
        if let Outcome::Complete(session) = engine::outcome(ctx, req, &mut flow).await? {
            // Signed in with everything the app requires: straight back to it.
            return finish_for(ctx, &app, &target, &session, None).await;
        }
        let id = flow::insert(ctx, req, &flow).await?;
        let mut resp = engine::advance(ctx, req, &id, flow, Vec::new()).await?;
        if let Some(c) = set_cookie {
            resp.add_header("set-cookie", &c);
        }
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `GET /oauth2/gateway/resume?req=…`: where the sign-in flow comes back when it is over.
pub async fn resume(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let id = req.query_params().require("req")?.to_owned();
        let mut flow = match flow::load(ctx, req, &id).await? {
            Ok(f) => f,
            Err(why) => return Ok(engine::not_here_page(why)),
        };
        let target: Target = flow.payload()?;
        let app = match apps::by_id(ctx.db, &target.app_id).await? {
            Some(a) if !a.disabled => a,
            _ => return Err(bad("unknown application")),
        };
        match engine::outcome(ctx, req, &mut flow).await? {
            Outcome::Complete(session) => finish_for(ctx, &app, &target, &session, Some(&id)).await,
            Outcome::Refused(r) => {
                auth_requests::delete(ctx.db, &id).await?;
                Ok(refused_page(r))
            }
            Outcome::Unfinished => engine::advance(ctx, req, &id, flow, Vec::new()).await,
        }
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

fn refused_page(r: Refusal) -> Response {
    let detail = match r {
        Refusal::OtherUser | Refusal::ConsentDenied => "The sign-in was not completed.",
        Refusal::SecondFactorRequiredButOff => {
            "This application requires a second factor, and second factors are turned off here."
        }
        Refusal::SecondFactorLost => {
            "Your second factors are gone. Ask an administrator to reset them, then sign in again."
        }
        Refusal::Voided => "The sign-in ended before it finished. Open the application again.",
        Refusal::Location => crate::policy::geoip::REFUSED_PAGE_TEXT,
        Refusal::NotAllowed | Refusal::Policy => "Your account may not use this application.",
    };
    Response::error_page(403, "access_denied", detail)
}

/// Mints the one-time code; `pending` is the request it ends, deleted in the same batch.
async fn finish_for(
    ctx: &Ctx<'_>,
    app: &App,
    target: &Target,
    s: &sessions::Session,
    pending: Option<&str>,
) -> Result<Response, Error> {
    let now = ctx.clock.now();
    let code = random_token(ctx.rng)?;
    let mut statements = Vec::new();
    if let Some(id) = pending {
        statements.push(auth_requests::delete_statement(id));
    }
    statements.push(gateway_codes::insert_statement(&gateway_codes::NewCode {
        code_hash: &token_hash(&code),
        app_id: &app.id,
        user_id: &s.user_id,
        sso_session_hash: &s.id_hash,
        return_to: &target.return_to,
        browser_hash: &target.bind,
        created_at: now,
        expires_at: now + CODE_TTL,
    }));
    ctx.db.batch(&statements).await?;
    let scheme = if target.return_to.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let callback = format!("{scheme}://{}/.gatehouse/callback", app.host);
    Ok(Response::redirect(303, &append_query(&callback, &[("code", code)])))
}

/// `GET /.gatehouse/callback?code=…` on the app's host.
pub async fn callback(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let code = req.query_params().require("code")?.to_owned();
        let now = ctx.clock.now();
        let invalid = || bad("this sign-in link is invalid or has expired; open the application again");
        let code_hash = token_hash(&code);
        // Read, check, then consume: a code presented by a browser that did not start the login,
        // or on another host, is refused and stays usable by the one that did.
        let r = gateway_codes::unused(ctx.db, &code_hash)
            .await?
            .filter(|r| r.expires_at > now)
            .ok_or_else(invalid)?;
        // Only the browser that started this login may finish it.
        if !cookies::same_gateway_browser(ctx, req, &r.browser_hash) {
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
        let id_hash = token_hash(&id);
        // The code is consumed and the app session written in one batch; the session is written
        // only under this request's consumption (two concurrent callbacks cannot both win).
        let changes = ctx
            .db
            .batch(&[
                gateway_codes::redeem_statement(&code_hash, now, &id_hash),
                app_sessions::insert_if_redeemed_statement(
                    &app_sessions::NewAppSession {
                        id_hash: &id_hash,
                        app_id: &app.id,
                        user_id: &r.user_id,
                        sso_session_hash: &r.sso_session_hash,
                        created_at: now,
                        expires_at: sso.expires_at,
                    },
                    &code_hash,
                ),
            ])
            .await?;
        if changes.first().is_none_or(|n| *n == 0) {
            return Err(invalid());
        }
        // (`Response::redirect` encodes what a header cannot carry, for codes minted before
        // return URLs were encoded at the start.)
        let mut resp = Response::redirect(303, &r.return_to);
        resp.add_header(
            "set-cookie",
            &cookies::set_cookie_here(ctx, cookies::GATEWAY_BINDING, "", 0),
        );
        resp.add_header(
            "set-cookie",
            &cookies::set_cookie_here(
                ctx,
                cookies::APP_SESSION,
                &cookies::signed_value(ctx, cookies::APP_SESSION, &id),
                (sso.expires_at - now).max(0),
            ),
        );
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// `POST /.gatehouse/csp-report`: browsers' CSP violation reports, kept as events so an operator
/// can trial a policy in report-only mode before enforcing it. Anyone's browser can send them, so
/// they are taken only on an app's host, reduced to a few short fields, and stored at most
/// `limits::CSP_REPORTS_PER_HOUR` times per host and hour (the rest are answered and dropped).
pub async fn csp_report(ctx: &Ctx<'_>, req: &Request) -> Response {
    if req.body.len() > limits::CSP_REPORT {
        // Real reports are a few hundred bytes; a bigger one is not kept, even in part.
        let e = OAuthError::invalid_request(format!("a CSP report is at most {} bytes", limits::CSP_REPORT));
        return Error::from(e).into_json_with_status(413);
    }
    let host = host_of(&ctx.origin).to_ascii_lowercase();
    match keep_report(ctx, &host).await {
        Ok(Some(false)) => return Error::from(OAuthError::new(ErrorCode::NotFound, "no app here")).into_json(),
        Ok(Some(true)) => {}
        // Over the host's budget: accepted, not kept.
        Ok(None) => return Response::new(204),
        Err(e) => {
            crate::error::log_internal(&e);
            return Response::new(204);
        }
    }
    let recorded = events::record(
        ctx.db,
        ctx.rng,
        ctx.clock.now(),
        events::Event {
            kind: EventKind::CspReport,
            user_id: None,
            client_id: None,
            ip: None,
            location: Some(&req.location),
            detail: json!({ "host": host, "report": summarize_report(&req.body) }),
        },
    )
    .await;
    if let Err(e) = recorded {
        crate::error::log_internal(&e);
    }
    Response::new(204)
}

/// `Some(false)`: no app on this host; `None`: the host's hourly budget is spent.
async fn keep_report(ctx: &Ctx<'_>, host: &str) -> Result<Option<bool>, crate::error::InternalError> {
    if !apps::any_on_host(ctx.db, host).await? {
        return Ok(Some(false));
    }
    let per_hour = [crate::policy::rate_limit::Tier {
        rate: limits::CSP_REPORTS_PER_HOUR,
        period_ms: 3_600_000,
        burst: limits::CSP_REPORTS_PER_HOUR,
    }];
    let (allowed, _, _) = ctx
        .counters
        .rate_limit(&format!("host:{host}"), "csp_report_kept", &per_hour)
        .await?;
    Ok(allowed.then_some(true))
}

/// The fields of a report worth keeping, each cut short: `report-uri`'s `{"csp-report": {...}}`
/// or the Reporting API's `[{"type": "csp-violation", "body": {...}}]`.
fn summarize_report(body: &[u8]) -> serde_json::Value {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return json!({ "unparsed": true });
    };
    let report = value
        .get("csp-report")
        .or_else(|| value.get(0).and_then(|r| r.get("body")))
        .unwrap_or(&value);
    let mut out = serde_json::Map::new();
    for (key, names) in [
        ("document", ["document-uri", "documentURL"]),
        ("directive", ["effective-directive", "effectiveDirective"]),
        ("violated", ["violated-directive", "violatedDirective"]),
        ("blocked", ["blocked-uri", "blockedURL"]),
        ("source", ["source-file", "sourceFile"]),
        ("disposition", ["disposition", "disposition"]),
    ] {
        if let Some(v) = names.iter().find_map(|n| report.get(*n)).and_then(|v| v.as_str()) {
            out.insert(
                key.into(),
                json!(v.chars().take(limits::CSP_REPORT_FIELD).collect::<String>()),
            );
        }
    }
    for (key, name) in [("line", "line-number"), ("line", "lineNumber")] {
        if let Some(n) = report.get(name).and_then(|v| v.as_i64()) {
            out.insert(key.into(), json!(n));
        }
    }
    serde_json::Value::Object(out)
}
