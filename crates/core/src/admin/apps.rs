//! `/admin/api/apps[/{id}]`: the applications the gateway protects. `PUT /admin/api/apps/{id}`
//! creates or replaces one, so a deploy can load a file of apps idempotently
//! (`scripts/load-apps.mjs`).

use serde::Deserialize;
use serde_json::json;

use crate::admin::{audit_detail_statement, json_body, not_found};
use crate::crypto::random_id;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::gateway::is_reserved;
use crate::http::host_of;
use crate::http::{Request, Response};
use crate::store::apps::{self, App};
use crate::types::event_kind::EventKind;
use crate::types::header_policy::HeaderPolicy;
use crate::Ctx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppInput {
    #[serde(default)]
    id: Option<String>,
    name: String,
    host: String,
    #[serde(default = "root")]
    path_prefix: String,
    origin: String,
    #[serde(default = "yes")]
    require_login: bool,
    #[serde(default)]
    require_mfa: bool,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    headers: HeaderPolicy,
    #[serde(default)]
    disabled: bool,
}

fn root() -> String {
    "/".into()
}
fn yes() -> bool {
    true
}

fn bad(msg: impl Into<String>) -> Error {
    OAuthError::new(ErrorCode::InvalidRequest, msg).into()
}

/// The host name of `host[:port]` (`[::1]:8080` → `[::1]`), lower-cased.
fn hostname(host: &str) -> String {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(host, |(inside, _)| &host[..inside.len() + 2]),
        None => host.split(':').next().unwrap_or(host),
    };
    name.to_ascii_lowercase()
}

fn validate(a: &AppInput, issuer: &str) -> Result<(), Error> {
    if a.name.trim().is_empty() || a.name.len() > 200 || a.name.chars().any(char::is_control) {
        return Err(bad("name must be 1-200 characters without control characters"));
    }
    let host_ok = !a.host.is_empty()
        && a.host.len() <= 255
        && a.host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !host_ok {
        return Err(bad(
            "host must be a host name with an optional port, like app.example.com",
        ));
    }
    if hostname(&a.host) == hostname(host_of(issuer)) {
        // Cookies are per host name, not per port, and an app's scripts on the issuer's origin
        // are same-origin with the login and consent pages: see "Put apps on their own hosts".
        return Err(bad(format!(
            "host must not be Gatehouse's own host name ({}), on any port: an app there could set \
             Gatehouse's cookies (session fixation, login CSRF) and its scripts or service worker \
             could read the passwords typed into the login page. Give the app its own host name, \
             like app.example.com beside id.example.com",
            hostname(host_of(issuer))
        )));
    }
    let list_ok = crate::policy::access::list_ok;
    if !list_ok(&a.allowed_users) || !list_ok(&a.allowed_groups) {
        return Err(bad(
            "allowed_users and allowed_groups hold at most 256 names of 1-254 bytes",
        ));
    }
    if !a.path_prefix.starts_with('/') || !a.path_prefix.ends_with('/') || a.path_prefix.contains("..") {
        return Err(bad("path_prefix must start and end with '/'"));
    }
    if is_reserved(&a.path_prefix) || (a.path_prefix != "/" && is_reserved(a.path_prefix.trim_end_matches('/'))) {
        return Err(bad(
            "path_prefix overlaps Gatehouse's own paths (/oauth2/, /.well-known/, /admin/, ...)",
        ));
    }
    let origin_ok = a.origin.len() <= 2048
        && ["http://", "https://"].iter().any(|s| {
            a.origin.strip_prefix(s).is_some_and(|rest| {
                !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']) && !rest.chars().any(|c| c.is_control())
            })
        });
    if !origin_ok {
        return Err(bad("origin must be scheme://host[:port] with no path"));
    }
    a.headers.validate().map_err(bad)?;
    if a.require_mfa && !a.require_login {
        return Err(bad(
            "require_mfa needs require_login: a second factor is asked of signed-in users",
        ));
    }
    Ok(())
}

fn build(ctx: &Ctx<'_>, input: AppInput, existing: Option<&App>) -> Result<App, Error> {
    validate(&input, ctx.issuer())?;
    let now = ctx.clock.now();
    let id = match (&input.id, existing) {
        (_, Some(e)) => e.id.clone(),
        (Some(id), None) => id.clone(),
        (None, None) => random_id(ctx.rng, "app_")?,
    };
    Ok(App {
        id,
        name: input.name,
        host: input.host.to_ascii_lowercase(),
        path_prefix: input.path_prefix,
        origin: input.origin.trim_end_matches('/').to_owned(),
        require_login: input.require_login,
        require_mfa: input.require_mfa,
        allowed_users: input.allowed_users,
        allowed_groups: input.allowed_groups,
        headers: input.headers,
        disabled: input.disabled,
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    })
}

/// Writes the app and its audit entry together; `kind` says what happened.
async fn save(ctx: &Ctx<'_>, app: &App, status: u16, kind: EventKind) -> Result<Response, Error> {
    if apps::clashes(ctx.db, app).await? {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            "another app already serves this host and path_prefix",
        )
        .into());
    }
    ctx.db
        .batch(&[apps::upsert_statement(app)?, app_audit(ctx, kind, app)?])
        .await?;
    Ok(Response::json(status, app))
}

fn app_audit(ctx: &Ctx<'_>, kind: EventKind, app: &App) -> Result<(&'static str, Vec<crate::db::Value>), Error> {
    audit_detail_statement(
        ctx,
        kind,
        None,
        None,
        json!({ "app_id": app.id, "host": app.host, "path_prefix": app.path_prefix }),
    )
}

pub async fn list(ctx: &Ctx<'_>) -> Result<Response, Error> {
    Ok(Response::json(200, &json!({ "apps": apps::list(ctx.db).await? })))
}

pub async fn create(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let input: AppInput = json_body(req)?;
    if let Some(id) = &input.id {
        if apps::by_id(ctx.db, id).await?.is_some() {
            return Err(
                OAuthError::new(ErrorCode::Conflict, "an app with this id exists; use PUT to replace it").into(),
            );
        }
    }
    let app = build(ctx, input, None)?;
    save(ctx, &app, 201, EventKind::AdminAppCreated).await
}

pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let app = apps::by_id(ctx.db, id).await?.ok_or_else(|| not_found("app"))?;
    Ok(Response::json(200, &app))
}

/// Creates or replaces the app `id` with the given configuration.
pub async fn put(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    let mut input: AppInput = json_body(req)?;
    if input.id.as_deref().is_some_and(|i| i != id) {
        return Err(bad("id in the body differs from the path"));
    }
    input.id = Some(id.to_owned());
    let existing = apps::by_id(ctx.db, id).await?;
    let app = build(ctx, input, existing.as_ref())?;
    match existing {
        Some(_) => save(ctx, &app, 200, EventKind::AdminAppReplaced).await,
        None => save(ctx, &app, 201, EventKind::AdminAppCreated).await,
    }
}

pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let app = apps::by_id(ctx.db, id).await?.ok_or_else(|| not_found("app"))?;
    // Its policy bindings go too: an app created later with the same id starts unbound.
    let mut statements = vec![apps::delete_statement(id)];
    statements.extend(crate::store::policies::delete_target_statements(
        &crate::policy::binding::Target::App(id.to_owned()).key(),
    ));
    statements.push(app_audit(ctx, EventKind::AdminAppDeleted, &app)?);
    ctx.db.batch(&statements).await?;
    crate::policy::judge::forget();
    Ok(Response::new(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://id.example.com";

    fn input(changes: serde_json::Value) -> AppInput {
        let mut v = json!({"name": "Wiki", "host": "wiki.example.com", "origin": "https://origin.internal"});
        if let (Some(base), Some(extra)) = (v.as_object_mut(), changes.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(v).expect("valid app input")
    }

    fn refused(changes: serde_json::Value, issuer: &str) -> bool {
        validate(&input(changes), issuer).is_err()
    }

    #[test]
    fn the_host_name_of_an_ipv6_literal_keeps_its_brackets_and_drops_the_port() {
        assert_eq!(hostname("[::1]:8080"), "[::1]");
        assert_eq!(hostname("[2001:DB8::1]"), "[2001:db8::1]");
        assert_eq!(hostname("Wiki.Example.com:8443"), "wiki.example.com");
        // An app on the issuer's IPv6 literal, on another port, is still on the issuer's host.
        assert!(refused(json!({"host": "[::1]:9000"}), "https://[::1]:8443"));
        assert!(!refused(json!({"host": "[::2]:9000"}), "https://[::1]:8443"));
    }

    #[test]
    fn a_name_of_exactly_200_characters_is_accepted_and_201_refused() {
        assert!(!refused(json!({"name": "n".repeat(200)}), ISSUER));
        assert!(refused(json!({"name": "n".repeat(201)}), ISSUER));
    }

    #[test]
    fn each_access_list_is_bounded_in_length_and_in_each_names_size() {
        let names = |n: usize, len: usize| vec!["u".repeat(len); n];
        for list in ["allowed_users", "allowed_groups"] {
            assert!(!refused(json!({ list: names(256, 254) }), ISSUER), "{list}");
            assert!(refused(json!({ list: names(257, 1) }), ISSUER), "{list}: too many");
            assert!(
                refused(json!({ list: names(1, 255) }), ISSUER),
                "{list}: a name too long"
            );
            assert!(refused(json!({ list: [""] }), ISSUER), "{list}: an empty name");
        }
    }

    #[test]
    fn the_origin_is_a_bounded_scheme_host_and_port_with_nothing_else() {
        for ok in ["http://10.0.0.5:8080", "https://origin.internal"] {
            assert!(!refused(json!({ "origin": ok }), ISSUER), "{ok}");
        }
        let long = format!("https://{}.internal", "o".repeat(2040));
        for bad in [
            "ftp://origin.internal",
            "https://",
            "https://origin.internal/path",
            "https://origin.internal?q",
            "https://user@origin.internal",
            "https://origin .internal",
            "https://origin\t.internal",
            long.as_str(),
        ] {
            assert!(refused(json!({ "origin": bad }), ISSUER), "{bad}");
        }
    }
}
