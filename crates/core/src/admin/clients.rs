//! `/admin/api/clients[/{client_id}]`: RFC 7591 metadata names, `first_party`, disable, delete,
//! and `POST …/secret` to rotate a confidential client's secret (shown once, stored hashed).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::users::USER_ID_PREFIX;
use crate::admin::{audit_statement, json_body, not_found, paging};
use crate::crypto::{random_id, random_token, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Request, Response};
use crate::oidc::redirect_uri;
use crate::store::clients::{self, Client, ClientMetadata};
use crate::types::event_kind::EventKind;
use crate::types::protocol::{AuthMethod, GrantType};
use crate::Ctx;

/// `grant_types` from the admin API: a non-empty list of the grants Gatehouse implements.
fn grant_types(v: &[String]) -> Result<Vec<GrantType>, Error> {
    let parsed: Option<Vec<GrantType>> = v.iter().map(|g| GrantType::parse(g)).collect();
    match parsed {
        Some(g) if !g.is_empty() => Ok(g),
        _ => Err(bad(
            ErrorCode::InvalidClientMetadata,
            format!(
                "grant_types must be a non-empty subset of {:?}",
                GrantType::ALL.map(GrantType::as_str)
            ),
        )),
    }
}

fn auth_method(v: &str) -> Result<AuthMethod, Error> {
    AuthMethod::parse(v).ok_or_else(|| {
        bad(
            ErrorCode::InvalidClientMetadata,
            format!(
                "token_endpoint_auth_method must be one of {:?}",
                AuthMethod::ALL.map(AuthMethod::as_str)
            ),
        )
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClientInput {
    client_id: Option<String>,
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    id_token_signed_response_alg: Option<String>,
    first_party: Option<bool>,
    require_mfa: Option<bool>,
    allowed_users: Option<Vec<String>>,
    allowed_groups: Option<Vec<String>>,
    disabled: Option<bool>,
}

fn bad(code: ErrorCode, msg: impl Into<String>) -> Error {
    OAuthError::new(code, msg).into()
}

/// RFC 7591 §2 consistency rules, applied to the merged metadata.
fn validate(m: &ClientMetadata) -> Result<(), Error> {
    let meta = ErrorCode::InvalidClientMetadata;
    if !crate::policy::access::list_ok(&m.allowed_users) || !crate::policy::access::list_ok(&m.allowed_groups) {
        return Err(bad(
            meta,
            "allowed_users and allowed_groups hold at most 256 names of 1-254 bytes",
        ));
    }
    let code_flow = m.grant_types.contains(&GrantType::AuthorizationCode);
    match (code_flow, m.response_types.as_slice()) {
        (true, [r]) if r == "code" => {}
        (false, []) => {}
        _ => {
            return Err(bad(
                meta,
                "response_types must be [\"code\"] with authorization_code, else []",
            ))
        }
    }
    if m.token_endpoint_auth_method == AuthMethod::None && m.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(bad(meta, "a public client cannot use client_credentials"));
    }
    if code_flow && m.redirect_uris.is_empty() {
        return Err(bad(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required for authorization_code",
        ));
    }
    for uri in m.redirect_uris.iter().chain(&m.post_logout_redirect_uris) {
        if let Err(why) = redirect_uri::check_registrable(uri) {
            return Err(bad(
                ErrorCode::InvalidRedirectUri,
                format!("not an acceptable redirect URI: {uri} {why}"),
            ));
        }
    }
    if !["RS256", "ES256"].contains(&m.id_token_signed_response_alg.as_str()) {
        return Err(bad(meta, "id_token_signed_response_alg must be RS256 or ES256"));
    }
    let scope_ok = m.scope.is_empty()
        || m.scope.split(' ').all(|s| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        });
    if !scope_ok || m.scope.len() > 1024 {
        return Err(bad(
            meta,
            "scope must be at most 1024 bytes of space-separated scope tokens",
        ));
    }
    check_grantable(m).map_err(|why| bad(meta, why))
}

/// Every scope a client may have must be one it can be granted: the user scopes Gatehouse knows
/// (`oidc::scope::SUPPORTED`) through the authorization code grant, and any other (an API's own
/// scope) only through client_credentials, which never grants a user scope. Otherwise a request
/// for it fails later with a misleading "not allowed for this client".
fn check_grantable(m: &ClientMetadata) -> Result<(), String> {
    let code_flow = m.grant_types.contains(&GrantType::AuthorizationCode);
    let machine = m.grant_types.contains(&GrantType::ClientCredentials);
    for s in m.scope.split_ascii_whitespace() {
        let user_scope = crate::oidc::scope::SUPPORTED.contains(&s);
        if user_scope && !code_flow {
            return Err(format!(
                "scope {s} is a user scope: only the authorization_code grant can give it, and this client does not have it"
            ));
        }
        if !user_scope && !machine {
            return Err(format!(
                "scope {s} is not one Gatehouse grants to users ({}); other scopes need the client_credentials grant",
                crate::oidc::scope::SUPPORTED.join(" ")
            ));
        }
    }
    Ok(())
}

fn view(c: &Client) -> Value {
    let mut v = serde_json::to_value(&c.metadata).unwrap_or_else(|_| json!({}));
    v["client_id"] = json!(c.client_id);
    v["first_party"] = json!(c.first_party);
    v["disabled"] = json!(c.disabled);
    v["client_id_issued_at"] = json!(c.created_at);
    v["updated_at"] = json!(c.updated_at);
    v
}

pub async fn list(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let (limit, offset) = paging(req);
    let list: Vec<Value> = clients::list(ctx.db, limit, offset).await?.iter().map(view).collect();
    Ok(Response::json(200, &json!({ "clients": list })))
}

pub async fn create(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let input: ClientInput = json_body(req)?;
    let client_id = match input.client_id {
        Some(id)
            if (3..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                // A client_credentials token's `sub` is its client_id; it must never equal a
                // user's subject (`usr_…`), or a resource server could take one for the other
                // (RFC 9068 §6).
                && !id.to_ascii_lowercase().starts_with(USER_ID_PREFIX) =>
        {
            id
        }
        Some(_) => {
            return Err(bad(
                ErrorCode::InvalidClientMetadata,
                "client_id must be 3-64 characters of letters, digits and -_., not starting with usr_",
            ))
        }
        None => random_id(ctx.rng, "cli_")?,
    };
    let grant_types = match &input.grant_types {
        Some(g) => grant_types(g)?,
        None => vec![GrantType::AuthorizationCode],
    };
    // The user scopes by default where a user can sign in; a machine client names its own.
    let default_scope = if grant_types.contains(&GrantType::AuthorizationCode) {
        "openid profile email"
    } else {
        ""
    };
    let metadata = ClientMetadata {
        client_name: input.client_name,
        redirect_uris: input.redirect_uris.unwrap_or_default(),
        post_logout_redirect_uris: input.post_logout_redirect_uris.unwrap_or_default(),
        grant_types,
        response_types: input.response_types.unwrap_or_else(|| vec!["code".into()]),
        token_endpoint_auth_method: match &input.token_endpoint_auth_method {
            Some(m) => auth_method(m)?,
            None => AuthMethod::ClientSecretBasic,
        },
        scope: input.scope.unwrap_or_else(|| default_scope.into()),
        id_token_signed_response_alg: input.id_token_signed_response_alg.unwrap_or_else(|| "RS256".into()),
        require_mfa: input.require_mfa.unwrap_or(false),
        allowed_users: input.allowed_users.unwrap_or_default(),
        allowed_groups: input.allowed_groups.unwrap_or_default(),
    };
    validate(&metadata)?;
    let now = ctx.clock.now();
    let secret = if metadata.token_endpoint_auth_method == AuthMethod::None {
        None
    } else {
        Some(random_token(ctx.rng)?)
    };
    let client = Client {
        client_id,
        secret_hash: secret.as_deref().map(token_hash),
        metadata,
        first_party: input.first_party.unwrap_or(false),
        disabled: input.disabled.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    if clients::by_id(ctx.db, &client.client_id).await?.is_some() {
        return Err(bad(ErrorCode::Conflict, "client_id is already taken"));
    }
    // The client and its audit entry together: a failed audit must not hide a live client (a
    // racing create of the same id fails the batch on the primary key and writes nothing).
    ctx.db
        .batch(&[
            clients::insert_statement(&client)?,
            audit_statement(ctx, EventKind::AdminClientCreated, None, Some(&client.client_id))?,
        ])
        .await?;
    let mut body = view(&client);
    if let Some(s) = secret {
        // Shown once; only its hash is kept.
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(Response::json(201, &body))
}

pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let c = clients::by_id(ctx.db, id).await?.ok_or_else(|| not_found("client"))?;
    Ok(Response::json(200, &view(&c)))
}

pub async fn patch(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    let input: ClientInput = json_body(req)?;
    let mut c = clients::by_id(ctx.db, id).await?.ok_or_else(|| not_found("client"))?;
    if input.client_id.as_deref().is_some_and(|new| new != c.client_id) {
        return Err(bad(ErrorCode::InvalidClientMetadata, "client_id cannot change"));
    }
    if input
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| (m == "none") != c.is_public())
    {
        return Err(bad(
            ErrorCode::InvalidClientMetadata,
            "a client cannot switch between public and confidential",
        ));
    }
    let m = &mut c.metadata;
    if let Some(v) = input.client_name {
        m.client_name = Some(v);
    }
    if let Some(v) = input.redirect_uris {
        m.redirect_uris = v;
    }
    if let Some(v) = input.post_logout_redirect_uris {
        m.post_logout_redirect_uris = v;
    }
    if let Some(v) = input.grant_types {
        m.grant_types = grant_types(&v)?;
    }
    if let Some(v) = input.response_types {
        m.response_types = v;
    }
    if let Some(v) = input.token_endpoint_auth_method {
        m.token_endpoint_auth_method = auth_method(&v)?;
    }
    if let Some(v) = input.scope {
        m.scope = v;
    }
    if let Some(v) = input.id_token_signed_response_alg {
        m.id_token_signed_response_alg = v;
    }
    if let Some(v) = input.require_mfa {
        m.require_mfa = v;
    }
    if let Some(v) = input.allowed_users {
        m.allowed_users = v;
    }
    if let Some(v) = input.allowed_groups {
        m.allowed_groups = v;
    }
    validate(&c.metadata)?;
    if let Some(v) = input.first_party {
        c.first_party = v;
    }
    let newly_disabled = input.disabled == Some(true) && !c.disabled;
    if let Some(v) = input.disabled {
        c.disabled = v;
    }
    let now = ctx.clock.now();
    c.updated_at = now;
    // One batch: the change, the revocation of everything a newly disabled client holds, and
    // the audit entry land together or not at all.
    let mut statements = vec![clients::update_statement(&c)?];
    if newly_disabled {
        statements.push(clients::revoke_grants_statement(&c.client_id, now));
    }
    statements.push(audit_statement(
        ctx,
        EventKind::AdminClientUpdated,
        None,
        Some(&c.client_id),
    )?);
    ctx.db.batch(&statements).await?;
    Ok(Response::json(200, &view(&c)))
}

pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    if clients::by_id(ctx.db, id).await?.is_none() {
        return Err(not_found("client"));
    }
    let mut statements = clients::delete_statements(id, ctx.clock.now());
    // Its policy bindings go too: a client created later with the same id starts unbound.
    let target = crate::policy::binding::Target::Client(id.to_owned()).key();
    statements.extend(crate::store::policies::delete_target_statements(&target));
    statements.push(audit_statement(ctx, EventKind::AdminClientDeleted, None, Some(id))?);
    ctx.db.batch(&statements).await?;
    crate::policy::judge::forget();
    Ok(Response::new(204))
}

pub async fn rotate_secret(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let mut c = clients::by_id(ctx.db, id).await?.ok_or_else(|| not_found("client"))?;
    if c.is_public() {
        return Err(bad(ErrorCode::InvalidRequest, "a public client has no secret"));
    }
    let secret = random_token(ctx.rng)?;
    c.secret_hash = Some(token_hash(&secret));
    c.updated_at = ctx.clock.now();
    // The new secret and its audit entry together: a failed audit must not leave the old secret
    // dead and the new one never shown.
    ctx.db
        .batch(&[
            clients::update_statement(&c)?,
            audit_statement(ctx, EventKind::AdminClientSecretRotated, None, Some(&c.client_id))?,
        ])
        .await?;
    Ok(Response::json(
        200,
        &json!({ "client_id": c.client_id, "client_secret": secret, "client_secret_expires_at": 0 }),
    ))
}
