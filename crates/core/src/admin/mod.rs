//! The admin API under `/admin/api`, behind the bearer token `GATEHOUSE_ADMIN_TOKEN` (compared in
//! constant time). A missing or wrong token learns nothing but 401.

pub mod apps;
pub mod clients;
pub mod factors;
pub mod notification_rules;
pub mod policies;
pub mod users;

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Method, Request, Response};
use crate::types::event_kind::EventKind;
use crate::Ctx;

/// Whether an `Authorization` header value carries the admin token (compared in constant time).
pub fn is_authorized(secrets: &crate::config::Secrets, authorization: Option<&str>) -> bool {
    authorization
        .and_then(crate::http::bearer_of)
        .is_some_and(|t| secrets.admin_token.matches(t))
}

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Response {
    let authorized = is_authorized(ctx.secrets, req.header("authorization"));
    if !authorized {
        let mut resp = Response::json(401, &serde_json::json!({ "error": "unauthorized" }));
        resp.set_header("www-authenticate", "Bearer realm=\"gatehouse-admin\"");
        return resp;
    }
    let segments: Vec<&str> = req
        .path
        .trim_start_matches("/admin/api")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match (req.method, segments.as_slice()) {
        (Method::Get, ["users"]) => users::list(ctx, req).await,
        (Method::Post, ["users"]) => users::create(ctx, req).await,
        (Method::Get, ["users", id]) => users::get(ctx, id).await,
        (Method::Patch, ["users", id]) => users::patch(ctx, req, id).await,
        (Method::Delete, ["users", id]) => users::delete(ctx, id).await,
        (Method::Post, ["users", id, "unlock"]) => users::unlock(ctx, id).await,
        (Method::Get, ["users", id, "factors"]) => factors::list(ctx, id).await,
        (Method::Delete, ["users", id, "factors"]) => factors::reset(ctx, id).await,
        (Method::Delete, ["users", id, "factors", "totp", device]) => factors::remove_device(ctx, id, device).await,
        (Method::Delete, ["users", id, "factors", "passkeys", credential]) => {
            factors::remove_passkey(ctx, id, credential).await
        }
        (Method::Post, ["users", id, "passkey-setup"]) => factors::passkey_setup(ctx, id).await,
        (Method::Get, ["apps"]) => apps::list(ctx).await,
        (Method::Post, ["apps"]) => apps::create(ctx, req).await,
        (Method::Get, ["apps", id]) => apps::get(ctx, id).await,
        (Method::Put, ["apps", id]) => apps::put(ctx, req, id).await,
        (Method::Delete, ["apps", id]) => apps::delete(ctx, id).await,
        (Method::Get, ["clients"]) => clients::list(ctx, req).await,
        (Method::Post, ["clients"]) => clients::create(ctx, req).await,
        (Method::Get, ["clients", id]) => clients::get(ctx, id).await,
        (Method::Patch, ["clients", id]) => clients::patch(ctx, req, id).await,
        (Method::Delete, ["clients", id]) => clients::delete(ctx, id).await,
        (Method::Post, ["clients", id, "secret"]) => clients::rotate_secret(ctx, id).await,
        (Method::Get, ["policies"]) => policies::list(ctx).await,
        (Method::Post, ["policies"]) => policies::create(ctx, req).await,
        (Method::Post, ["policies", "validate"]) => policies::validate(req).await,
        (Method::Get, ["policies", id]) => policies::get(ctx, id).await,
        (Method::Patch, ["policies", id]) => policies::patch(ctx, req, id).await,
        (Method::Delete, ["policies", id]) => policies::delete(ctx, id).await,
        (Method::Post, ["policies", id, "test"]) => policies::test(ctx, req, id).await,
        (Method::Get, ["policy-bindings"]) => policies::list_bindings(ctx, req).await,
        (Method::Post, ["policy-bindings"]) => policies::create_binding(ctx, req).await,
        (Method::Get, ["policy-bindings", id]) => policies::get_binding(ctx, id).await,
        (Method::Patch, ["policy-bindings", id]) => policies::patch_binding(ctx, req, id).await,
        (Method::Delete, ["policy-bindings", id]) => policies::delete_binding(ctx, id).await,
        (Method::Get, ["policy-targets", kind, id]) => policies::get_target(ctx, kind, id).await,
        (Method::Put, ["policy-targets", kind, id]) => policies::put_target(ctx, req, kind, id).await,
        (Method::Post, ["policy-targets", kind, id, "test"]) => policies::test_target(ctx, req, kind, id).await,
        (Method::Get, ["notification-rules"]) => notification_rules::list(ctx).await,
        (Method::Post, ["notification-rules"]) => notification_rules::create(ctx, req).await,
        (Method::Get, ["notification-rules", "dead-letters"]) => notification_rules::dead_letters(ctx, req).await,
        (Method::Get, ["notification-rules", id]) => notification_rules::get(ctx, id).await,
        (Method::Put, ["notification-rules", id]) => notification_rules::put(ctx, req, id).await,
        (Method::Delete, ["notification-rules", id]) => notification_rules::delete(ctx, id).await,
        (Method::Post, ["notification-rules", id, "test"]) => notification_rules::test(ctx, req, id).await,
        (
            _,
            ["apps"]
            | ["apps", _]
            | ["users"]
            | ["users", _]
            | ["users", _, "factors"]
            | ["users", _, "factors", "totp", _]
            | ["users", _, "factors", "passkeys", _]
            | ["users", _, "passkey-setup"]
            | ["clients"]
            | ["clients", _]
            | ["clients", _, "secret"]
            | ["policies"]
            | ["policies", _]
            | ["policies", _, "test"]
            | ["policy-bindings"]
            | ["policy-bindings", _]
            | ["policy-targets", _, _]
            | ["policy-targets", _, _, "test"]
            | ["notification-rules"]
            | ["notification-rules", _]
            | ["notification-rules", _, "test"],
        ) => Err(OAuthError::new(ErrorCode::MethodNotAllowed, "method not allowed").into()),
        _ => Err(OAuthError::new(ErrorCode::NotFound, "no such admin resource").into()),
    };
    result.unwrap_or_else(Error::into_json)
}

/// Parses a JSON body, refusing anything else with a clear 400.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    let is_json = req
        .header("content-type")
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request("content-type must be application/json").into());
    }
    serde_json::from_slice(&req.body).map_err(|e| OAuthError::invalid_request(format!("invalid JSON body: {e}")).into())
}

/// `?limit=&offset=` with sane bounds.
pub fn paging(req: &Request) -> (i64, i64) {
    let q = req.query_params();
    let num = |name: &str, default: i64| {
        q.get(name)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    (num("limit", 100).clamp(1, 500), num("offset", 0).max(0))
}

pub fn not_found(what: &str) -> Error {
    OAuthError::new(ErrorCode::NotFound, format!("{what} not found")).into()
}

/// Records an admin change as an event (who is affected: a user or a client).
pub async fn audit(
    ctx: &Ctx<'_>,
    kind: EventKind,
    user_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<(), Error> {
    let (sql, params) = audit_statement(ctx, kind, user_id, client_id)?;
    ctx.db.execute(sql, &params).await?;
    Ok(())
}

/// The audit entry of an admin change, to write in the same batch as the change.
pub fn audit_statement(
    ctx: &Ctx<'_>,
    kind: EventKind,
    user_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<(&'static str, Vec<crate::db::Value>), Error> {
    audit_detail_statement(ctx, kind, user_id, client_id, serde_json::json!({}))
}

/// [`audit_statement`] with details (for example which app changed).
pub fn audit_detail_statement(
    ctx: &Ctx<'_>,
    kind: EventKind,
    user_id: Option<&str>,
    client_id: Option<&str>,
    mut detail: serde_json::Value,
) -> Result<(&'static str, Vec<crate::db::Value>), Error> {
    // Who made the change: the admin API has one principal today, its bearer token.
    if let Some(d) = detail.as_object_mut() {
        d.entry("actor").or_insert_with(|| serde_json::json!("api_token"));
    }
    Ok(crate::store::events::record_statement(
        ctx.rng,
        ctx.clock.now(),
        crate::store::events::Event {
            kind,
            user_id,
            client_id,
            ip: None,
            location: None,
            detail,
        },
    )?)
}
