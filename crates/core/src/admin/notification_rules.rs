//! Notification rules through the admin API (README: "Notifications"): create, read, replace
//! and delete stored rules, list the dead letters, and a dry run that says whether a rule
//! matches a sample event without delivering anything. A webhook secret is shown once, when
//! Gatehouse makes it; afterwards only `"secret": "set"`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{audit_detail_statement, json_body, not_found, paging};
use crate::crypto::random_id;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::events::delivery::find_rule;
use crate::events::matcher::{self, matches, Criteria};
use crate::events::rules::{self, seal_context, Rule, RuleInput, Transport, Valid};
use crate::events::webhook::WebhookSecret;
use crate::events::{defaults, Recorded};
use crate::http::{Request, Response};
use crate::store::{dead_letters, notification_rules};
use crate::types::event_kind::EventKind;
use crate::Ctx;

fn bad(msg: impl Into<String>) -> Error {
    OAuthError::invalid_request(msg).into()
}

fn view(rule: &Rule) -> Value {
    let transport = match &rule.transport {
        Transport::Webhook { url } => json!({
            "type": "webhook",
            "url": url,
            "secret": if rule.secret_sealed.is_some() { "set" } else { "unset" },
        }),
        Transport::Email { to } => json!({ "type": "email", "to": to }),
    };
    json!({
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "match": rule.criteria,
        "transport": transport,
        "builtin": rule.id.starts_with(defaults::PREFIX),
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    })
}

/// `GET /admin/api/notification-rules`: the stored rules and the defaults now on.
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, Error> {
    let stored = notification_rules::all(ctx.db).await?;
    let builtin = defaults::rules(ctx.settings);
    Ok(Response::json(
        200,
        &json!({
            "rules": stored.iter().map(view).collect::<Vec<_>>(),
            "defaults": builtin.iter().map(view).collect::<Vec<_>>(),
        }),
    ))
}

pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let rule = find_rule(ctx.db, ctx.settings, id)
        .await?
        .ok_or_else(|| not_found("notification rule"))?;
    Ok(Response::json(200, &view(&rule)))
}

fn validated(ctx: &Ctx<'_>, req: &Request) -> Result<Valid, Error> {
    let input: RuleInput = json_body(req)?;
    rules::validate(input, ctx.settings.issuer.as_deref()).map_err(bad)
}

/// Under `GATEHOUSE_LOCK_EXPRESSIONS` a rule's expression is not set or changed through the API
/// (it is an expression like a policy's); the rest of the rule, and removing it, stay editable.
fn expression_unlocked(ctx: &Ctx<'_>, before: Option<&str>, after: &Criteria) -> Result<(), Error> {
    let changed = after.expression.as_deref().is_some_and(|e| Some(e) != before);
    if ctx.settings.lock_expressions && changed {
        return Err(OAuthError::new(
            ErrorCode::Forbidden,
            "expressions are locked (GATEHOUSE_LOCK_EXPRESSIONS): a rule's match.expression cannot be set through the API",
        )
        .into());
    }
    Ok(())
}

/// Seals `secret` for the rule `id`.
fn seal(ctx: &Ctx<'_>, id: &str, secret: &WebhookSecret) -> Result<String, Error> {
    let key =
        ctx.secrets.sealing_key.as_ref().ok_or_else(|| {
            bad("webhook rules need GATEHOUSE_SEALING_KEY: the signing secret is stored sealed with it")
        })?;
    Ok(key.seal(ctx.rng, secret.bytes(), &seal_context(id))?)
}

fn audit(ctx: &Ctx<'_>, kind: EventKind, rule: &Rule) -> Result<(&'static str, Vec<crate::db::Value>), Error> {
    audit_detail_statement(ctx, kind, None, None, json!({ "rule": rule.id, "name": rule.name }))
}

/// `POST /admin/api/notification-rules`.
pub async fn create(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let v = validated(ctx, req)?;
    expression_unlocked(ctx, None, &v.criteria)?;
    let id = random_id(ctx.rng, "ntf_")?;
    let now = ctx.clock.now();
    // A webhook without a given secret gets a new one, shown in this answer only.
    let (secret_sealed, shown) = match (&v.transport, v.secret) {
        (Transport::Webhook { .. }, Some(s)) => (Some(seal(ctx, &id, &s)?), None),
        (Transport::Webhook { .. }, None) => {
            let s = WebhookSecret::generate(ctx.rng)?;
            (Some(seal(ctx, &id, &s)?), Some(s.expose()))
        }
        (Transport::Email { .. }, _) => (None, None),
    };
    let rule = Rule {
        id,
        name: v.name,
        enabled: v.enabled,
        criteria: v.criteria,
        transport: v.transport,
        secret_sealed,
        created_at: now,
        updated_at: now,
    };
    let recorded = audit(ctx, EventKind::AdminNotificationRuleCreated, &rule)?;
    // The insert is conditional on the cap (so two racing creates cannot pass it); when it
    // inserted nothing, the audit event goes too, in the same batch: a refused create records
    // no change.
    let undo = notification_rules::unless_inserted_statement(crate::store::events::recorded_id(&recorded), &rule.id);
    let changed = ctx
        .db
        .batch(&[notification_rules::insert_statement(&rule)?, recorded, undo])
        .await?;
    if changed.first() == Some(&0) {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            format!("there are already {} notification rules", rules::MAX_RULES),
        )
        .into());
    }
    let mut body = view(&rule);
    if let Some(s) = shown {
        body["transport"]["secret"] = json!(s);
    }
    Ok(Response::json(201, &body))
}

/// `PUT /admin/api/notification-rules/{id}`: replaces the rule; a webhook keeps its secret
/// unless the body brings a new one.
pub async fn put(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    if id.starts_with(defaults::PREFIX) {
        return Err(bad(
            "default rules are set in the configuration (README: \"Notifications\")",
        ));
    }
    let existing = notification_rules::get(ctx.db, id)
        .await?
        .ok_or_else(|| not_found("notification rule"))?;
    let v = validated(ctx, req)?;
    expression_unlocked(ctx, existing.criteria.expression.as_deref(), &v.criteria)?;
    // A rule that becomes a webhook without a given secret gets a new one, shown in this answer
    // only (as when one is created): a receiver must be able to verify what it is sent.
    let mut shown = None;
    let secret_sealed = match (&v.transport, v.secret) {
        (Transport::Webhook { .. }, Some(s)) => Some(seal(ctx, id, &s)?),
        (Transport::Webhook { .. }, None) => match existing.secret_sealed {
            Some(s) => Some(s),
            None => {
                let s = WebhookSecret::generate(ctx.rng)?;
                let sealed = seal(ctx, id, &s)?;
                shown = Some(s.expose());
                Some(sealed)
            }
        },
        (Transport::Email { .. }, _) => None,
    };
    let rule = Rule {
        id: existing.id,
        name: v.name,
        enabled: v.enabled,
        criteria: v.criteria,
        transport: v.transport,
        secret_sealed,
        created_at: existing.created_at,
        updated_at: ctx.clock.now(),
    };
    ctx.db
        .batch(&[
            notification_rules::update_statement(&rule)?,
            audit(ctx, EventKind::AdminNotificationRuleUpdated, &rule)?,
        ])
        .await?;
    let mut body = view(&rule);
    if let Some(secret) = shown {
        body["transport"]["secret"] = json!(secret);
    }
    Ok(Response::json(200, &body))
}

/// `DELETE /admin/api/notification-rules/{id}`.
pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let rule = notification_rules::get(ctx.db, id)
        .await?
        .ok_or_else(|| not_found("notification rule"))?;
    ctx.db
        .batch(&[
            notification_rules::delete_statement(id),
            audit(ctx, EventKind::AdminNotificationRuleDeleted, &rule)?,
        ])
        .await?;
    Ok(Response::new(204))
}

/// `GET /admin/api/notification-rules/dead-letters?limit=&offset=`: newest first.
pub async fn dead_letters(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let (limit, offset) = paging(req);
    let page = dead_letters::page(ctx.db, limit, offset).await?;
    Ok(Response::json(
        200,
        &json!({ "dead_letters": page, "limit": limit, "offset": offset }),
    ))
}

/// A sample event for the dry run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    kind: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// The user's groups as the test should assume them (default: the stored user's).
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    detail: Option<Value>,
}

/// `POST /admin/api/notification-rules/{id}/test` with `{"event": {...}}`: whether the rule
/// matches that event. Nothing is queued or sent. The new-country condition is reported, not
/// decided (it depends on the user's history at delivery).
pub async fn test(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        event: Sample,
    }
    let rule = find_rule(ctx.db, ctx.settings, id)
        .await?
        .ok_or_else(|| not_found("notification rule"))?;
    let Body { event: s } = json_body(req)?;
    if matcher::kind(&s.kind).is_none() {
        return Err(bad(format!("event.kind: {:?} is not an event kind", s.kind)));
    }
    let groups = match s.groups {
        Some(g) => g,
        None => crate::events::enqueue::user_groups(ctx.db, s.user_id.as_deref()).await?,
    };
    let event = Recorded {
        id: "evt_dry_run".into(),
        kind: s.kind,
        user_id: s.user_id,
        client_id: s.client_id,
        ip: None,
        detail: s.detail.unwrap_or_else(|| json!({})),
        created_at: ctx.clock.now(),
    };
    let matched = matches(&rule.criteria, &event, &groups);
    Ok(Response::json(
        200,
        &json!({
            "matches": matched,
            "enabled": rule.enabled,
            "new_country_checked_at_delivery": rule.criteria.new_country,
            "expression_not_evaluated": rule.criteria.expression.is_some(),
        }),
    ))
}
