//! `/admin/api/policies`, `/admin/api/policy-bindings` and `/admin/api/policy-targets`: expression
//! policies, what they (or a user, or a group) are bound to, how a target's bindings combine, and
//! dry runs of both against a user and a request. Every change is an audit event.
//!
//! `GATEHOUSE_LOCK_EXPRESSIONS=true` makes expression policies read-only here (403): they are set
//! in configuration (`GATEHOUSE_EXPRESSION_POLICIES`), which the API always shows read-only.
//! Bindings stay editable: they are data, not code.

use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::admin::{audit_detail_statement, json_body, not_found};
use crate::crypto::random_id;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Request, Response};
use crate::policy::binding::{self, Mode, Target};
use crate::policy::expression::{self, Facts, RequestFacts, TargetFacts};
use crate::store::events::recorded_id;
use crate::store::policies::{self, Policy, StoredBinding};
use crate::store::{apps, clients, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

const MAX_DESCRIPTION: usize = 1000;

fn bad(msg: impl Into<String>) -> Error {
    OAuthError::new(ErrorCode::InvalidRequest, msg).into()
}

fn locked() -> Error {
    OAuthError::new(
        ErrorCode::Forbidden,
        "expression policies are locked (GATEHOUSE_LOCK_EXPRESSIONS): set them in GATEHOUSE_EXPRESSION_POLICIES",
    )
    .into()
}

fn configured_read_only() -> Error {
    OAuthError::new(
        ErrorCode::Forbidden,
        "this policy is set in configuration (GATEHOUSE_EXPRESSION_POLICIES) and is read-only here",
    )
    .into()
}

fn policy_json(p: &Policy) -> Json {
    json!({
        "id": p.id, "name": p.name, "expression": p.expression, "description": p.description,
        "source": "api", "created_at": p.created_at, "updated_at": p.updated_at,
    })
}

fn configured_json(name: &str, source: &str) -> Json {
    json!({ "id": format!("cfg:{name}"), "name": name, "expression": source, "source": "configuration" })
}

pub async fn list(ctx: &Ctx<'_>) -> Result<Response, Error> {
    let mut out: Vec<Json> = policies::list(ctx.db).await?.iter().map(policy_json).collect();
    out.extend(
        ctx.settings
            .configured_policies
            .iter()
            .map(|(n, s)| configured_json(n, s)),
    );
    Ok(Response::json(
        200,
        &json!({ "policies": out, "locked": ctx.settings.lock_expressions }),
    ))
}

pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    if let Some(source) = crate::policy::configured_policy(ctx.settings, id) {
        let name = id.trim_start_matches("cfg:");
        return Ok(Response::json(200, &configured_json(name, source)));
    }
    let p = policies::by_id(ctx.db, id).await?.ok_or_else(|| not_found("policy"))?;
    Ok(Response::json(200, &policy_json(&p)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyInput {
    name: Option<String>,
    expression: Option<String>,
    description: Option<String>,
}

/// Checks a policy as it will be stored: the name's form and uniqueness, the expression (CEL,
/// within its bounds), the description's size.
async fn check_policy(ctx: &Ctx<'_>, p: &Policy) -> Result<(), Error> {
    if !expression::name_ok(&p.name) {
        return Err(bad("name must be 1-64 of a-z, 0-9, - and _"));
    }
    if ctx.settings.configured_policies.iter().any(|(n, _)| *n == p.name) {
        return Err(OAuthError::new(ErrorCode::Conflict, "a configured policy has this name").into());
    }
    if p.description.len() > MAX_DESCRIPTION || p.description.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(format!(
            "description must be at most {MAX_DESCRIPTION} bytes without control characters"
        )));
    }
    expression::validate(&p.expression).map_err(|e| bad(format!("expression: {e}")))?;
    if policies::name_taken(ctx.db, &p.name, &p.id).await? {
        return Err(OAuthError::new(ErrorCode::Conflict, "another policy has this name").into());
    }
    Ok(())
}

pub async fn create(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    if ctx.settings.lock_expressions {
        return Err(locked());
    }
    let input: PolicyInput = json_body(req)?;
    let now = ctx.clock.now();
    let p = Policy {
        id: random_id(ctx.rng, "pol_")?,
        name: input.name.ok_or_else(|| bad("name is required"))?,
        expression: input.expression.ok_or_else(|| bad("expression is required"))?,
        description: input.description.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    check_policy(ctx, &p).await?;
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyCreated,
        None,
        None,
        json!({ "policy_id": p.id, "name": p.name, "expression": p.expression }),
    )?;
    let undo = policies::unless_applied_statement(recorded_id(&audit), &p);
    let changed = ctx.db.batch(&[policies::insert_statement(&p), audit, undo]).await?;
    if changed.first() == Some(&0) {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            format!(
                "another policy has this name, or there are already {} policies",
                policies::MAX_POLICIES
            ),
        )
        .into());
    }
    crate::policy::judge::forget();
    Ok(Response::json(201, &policy_json(&p)))
}

pub async fn patch(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    if crate::policy::configured_policy(ctx.settings, id).is_some() {
        return Err(configured_read_only());
    }
    if ctx.settings.lock_expressions {
        return Err(locked());
    }
    let before = policies::by_id(ctx.db, id).await?.ok_or_else(|| not_found("policy"))?;
    let input: PolicyInput = json_body(req)?;
    let after = Policy {
        name: input.name.unwrap_or_else(|| before.name.clone()),
        expression: input.expression.unwrap_or_else(|| before.expression.clone()),
        description: input.description.unwrap_or_else(|| before.description.clone()),
        updated_at: ctx.clock.now(),
        ..before.clone()
    };
    check_policy(ctx, &after).await?;
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyUpdated,
        None,
        None,
        json!({
            "policy_id": id,
            "name": after.name,
            "before": { "name": before.name, "expression": before.expression },
            "after": { "name": after.name, "expression": after.expression },
        }),
    )?;
    let undo = policies::unless_applied_statement(recorded_id(&audit), &after);
    let changed = ctx
        .db
        .batch(&[policies::update_statement(&before, &after), audit, undo])
        .await?;
    if changed.first() == Some(&0) {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            "the policy changed meanwhile (another request changed or deleted it, or took this name): read it again",
        )
        .into());
    }
    crate::policy::judge::forget();
    Ok(Response::json(200, &policy_json(&after)))
}

/// A policy still bound cannot be deleted: its bindings would fail (their failure result) from
/// then on, which is rarely what deleting meant. Remove the bindings first.
pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    if crate::policy::configured_policy(ctx.settings, id).is_some() {
        return Err(configured_read_only());
    }
    if ctx.settings.lock_expressions {
        return Err(locked());
    }
    let p = policies::by_id(ctx.db, id).await?.ok_or_else(|| not_found("policy"))?;
    let bound = policies::count_for_policy(ctx.db, id).await?;
    if bound > 0 {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            format!("the policy is bound {bound} time(s): delete its bindings first"),
        )
        .into());
    }
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyDeleted,
        None,
        None,
        json!({ "policy_id": id, "name": p.name, "expression": p.expression }),
    )?;
    ctx.db.batch(&[policies::delete_statement(id), audit]).await?;
    crate::policy::judge::forget();
    Ok(Response::new(204))
}

/// What a dry run evaluates against: a user (id or username), a request, the client or app,
/// the flow and stage, and a time (default now).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DryRun {
    user: Option<String>,
    #[serde(default)]
    request: RequestInput,
    client: Option<String>,
    app: Option<String>,
    flow: Option<String>,
    stage: Option<String>,
    time: Option<i64>,
    /// The user's reputation score to assume (a dry run reads no counters).
    #[serde(default)]
    user_reputation: i64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequestInput {
    #[serde(default)]
    ip: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    asn: i64,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    reputation: i64,
}

async fn dry_run_facts(ctx: &Ctx<'_>, req: &Request) -> Result<Facts, Error> {
    let input: DryRun = if req.body.is_empty() {
        DryRun::default()
    } else {
        json_body(req)?
    };
    let r = &input.request;
    if r.ip.len() > 64 || r.country.len() > 2 || r.user_agent.len() > 512 {
        return Err(bad(
            "request: ip at most 64 bytes, country 2 letters, user_agent 512 bytes",
        ));
    }
    let mut facts = Facts {
        request: RequestFacts {
            ip: r.ip.clone(),
            country: r.country.to_ascii_uppercase(),
            asn: r.asn,
            user_agent: r.user_agent.clone(),
            reputation: Some(r.reputation),
        },
        time: expression::TimeFacts::at(input.time.unwrap_or_else(|| ctx.clock.now())),
        ..Facts::default()
    };
    if let Some(u) = &input.user {
        let user = match users::by_id(ctx.db, u).await? {
            Some(user) => Some(user),
            None => users::by_username(ctx.db, u).await?,
        };
        let user = user.ok_or_else(|| not_found("user"))?;
        facts.user = expression::UserFacts::of(&user);
    }
    facts.user.reputation = Some(input.user_reputation);
    if let Some(c) = &input.client {
        let client = clients::by_id(ctx.db, c).await?.ok_or_else(|| not_found("client"))?;
        facts.client = TargetFacts {
            name: client
                .metadata
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            id: client.client_id,
        };
    }
    if let Some(a) = &input.app {
        let app = apps::by_id(ctx.db, a).await?.ok_or_else(|| not_found("app"))?;
        facts.app = TargetFacts {
            id: app.id,
            name: app.name,
        };
    }
    if let Some(f) = &input.flow {
        if !binding::FLOWS.contains(&f.as_str()) {
            return Err(bad(format!("flow must be one of {}", binding::FLOWS.join(", "))));
        }
        facts.flow.purpose = f.clone();
    }
    if let Some(s) = &input.stage {
        if !binding::STAGES.contains(&s.as_str()) {
            return Err(bad(format!("stage must be one of {}", binding::STAGES.join(", "))));
        }
        facts.flow.stage = s.clone();
    }
    Ok(facts)
}

/// `POST /admin/api/policies/{id}/test`: the policy's answer for the given user and request, or
/// its error. Changes nothing.
pub async fn test(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    let source = match crate::policy::configured_policy(ctx.settings, id) {
        Some(s) => s.to_owned(),
        None => {
            policies::by_id(ctx.db, id)
                .await?
                .ok_or_else(|| not_found("policy"))?
                .expression
        }
    };
    let facts = dry_run_facts(ctx, req).await?;
    Ok(Response::json(
        200,
        &match expression::evaluate(&source, &facts) {
            Ok(r) => json!({ "result": r }),
            Err(e) => json!({ "result": null, "error": e.0 }),
        },
    ))
}

/// `POST /admin/api/policies/validate`: whether an expression would be accepted, and why not.
pub async fn validate(req: &Request) -> Result<Response, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        expression: String,
    }
    let input: Input = json_body(req)?;
    Ok(Response::json(
        200,
        &match expression::validate(&input.expression) {
            Ok(()) => json!({ "valid": true }),
            Err(e) => json!({ "valid": false, "error": e.0 }),
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingInput {
    target: Option<String>,
    target_id: Option<String>,
    policy: Option<String>,
    user: Option<String>,
    group: Option<String>,
    order: Option<i64>,
    negate: Option<bool>,
    failure_result: Option<bool>,
    enabled: Option<bool>,
}

fn binding_json(b: &StoredBinding) -> Json {
    let (kind, id) = b.target.split_once(':').unwrap_or(("", ""));
    json!({
        "id": b.id, "target": kind, "target_id": id,
        "policy": b.policy_id, "user": b.user_ref, "group": b.group_name,
        "order": b.position, "negate": b.negate, "failure_result": b.failure_result, "enabled": b.enabled,
        "created_at": b.created_at, "updated_at": b.updated_at,
    })
}

fn one_subject(input: &BindingInput) -> Result<(), Error> {
    let given = [input.policy.is_some(), input.user.is_some(), input.group.is_some()];
    if given.iter().filter(|g| **g).count() == 1 {
        Ok(())
    } else {
        Err(bad("a binding names exactly one of policy, user or group"))
    }
}

/// A binding's user, given by id or username, stored as the id: matching by name would bind a
/// user created later under a deleted user's name, or one whose username is another's id.
async fn resolve_user(ctx: &Ctx<'_>, given: Option<String>) -> Result<Option<String>, Error> {
    let Some(given) = given else {
        return Ok(None);
    };
    if given.is_empty() || given.len() > 254 {
        return Err(bad("user and group are 1-254 bytes without control characters"));
    }
    let user = match users::by_id(ctx.db, &given).await? {
        Some(u) => u,
        None => users::by_username(ctx.db, &given)
            .await?
            .ok_or_else(|| bad("user names no such user"))?,
    };
    Ok(Some(user.id))
}

/// The target a client or app binding names must exist (a typo would bind nothing).
async fn check_target(ctx: &Ctx<'_>, target: &Target) -> Result<(), Error> {
    let exists = match target {
        Target::Client(id) => clients::by_id(ctx.db, id).await?.is_some(),
        Target::App(id) => apps::by_id(ctx.db, id).await?.is_some(),
        Target::Flow(_) | Target::Stage(_) => true,
    };
    if exists {
        Ok(())
    } else {
        Err(bad("target_id names no such client or app"))
    }
}

/// Checks a binding as it will be stored: one subject, an existing policy, bounded names and
/// order, and room on its target.
async fn check_binding(ctx: &Ctx<'_>, b: &StoredBinding, moved_in: bool) -> Result<(), Error> {
    let subjects = [&b.policy_id, &b.user_ref, &b.group_name]
        .iter()
        .filter(|s| s.is_some())
        .count();
    if subjects != 1 {
        return Err(bad("a binding names exactly one of policy, user or group"));
    }
    for name in [&b.user_ref, &b.group_name].into_iter().flatten() {
        if name.is_empty() || name.len() > 254 || name.chars().any(char::is_control) {
            return Err(bad("user and group are 1-254 bytes without control characters"));
        }
    }
    if let Some(p) = &b.policy_id {
        let exists =
            crate::policy::configured_policy(ctx.settings, p).is_some() || policies::by_id(ctx.db, p).await?.is_some();
        if !exists {
            return Err(bad("policy names no such policy"));
        }
    }
    if !(-1_000_000..=1_000_000).contains(&b.position) {
        return Err(bad("order must be from -1000000 to 1000000"));
    }
    if moved_in && policies::count_for_target(ctx.db, &b.target).await? >= binding::MAX_PER_TARGET {
        return Err(bad(format!(
            "a target has at most {} bindings",
            binding::MAX_PER_TARGET
        )));
    }
    Ok(())
}

pub async fn list_bindings(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let q = req.query_params();
    let target = match (q.get("target")?, q.get("target_id")?) {
        (Some(kind), Some(id)) => Some(Target::parse(kind, id).map_err(bad)?.key()),
        (None, None) => None,
        _ => return Err(bad("target and target_id go together")),
    };
    let found = policies::bindings(ctx.db, target.as_deref()).await?;
    let out: Vec<Json> = found.iter().map(binding_json).collect();
    Ok(Response::json(200, &json!({ "bindings": out })))
}

pub async fn get_binding(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let b = policies::binding_by_id(ctx.db, id)
        .await?
        .ok_or_else(|| not_found("binding"))?;
    Ok(Response::json(200, &binding_json(&b)))
}

pub async fn create_binding(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let input: BindingInput = json_body(req)?;
    let (Some(kind), Some(target_id)) = (&input.target, &input.target_id) else {
        return Err(bad("target and target_id are required"));
    };
    let target = Target::parse(kind, target_id).map_err(bad)?;
    check_target(ctx, &target).await?;
    one_subject(&input)?;
    let now = ctx.clock.now();
    let user_ref = resolve_user(ctx, input.user).await?;
    let b = StoredBinding {
        id: random_id(ctx.rng, "pbd_")?,
        target: target.key(),
        policy_id: input.policy,
        user_ref,
        group_name: input.group,
        position: input.order.unwrap_or(0),
        negate: input.negate.unwrap_or(false),
        failure_result: input.failure_result.unwrap_or(false),
        enabled: input.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    check_binding(ctx, &b, true).await?;
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyBindingCreated,
        None,
        None,
        json!({ "binding": binding_json(&b) }),
    )?;
    ctx.db.batch(&[policies::upsert_binding_statement(&b), audit]).await?;
    crate::policy::judge::forget();
    Ok(Response::json(201, &binding_json(&b)))
}

/// Changes a binding; a subject given replaces the one it had (`{"group": "x"}` turns a policy
/// binding into a group binding).
pub async fn patch_binding(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    let before = policies::binding_by_id(ctx.db, id)
        .await?
        .ok_or_else(|| not_found("binding"))?;
    let input: BindingInput = json_body(req)?;
    let mut after = before.clone();
    if input.target.is_some() || input.target_id.is_some() {
        let (before_kind, before_id) = before.target.split_once(':').unwrap_or(("", ""));
        let kind = input.target.as_deref().unwrap_or(before_kind);
        let target_id = input.target_id.as_deref().unwrap_or(before_id);
        let target = Target::parse(kind, target_id).map_err(bad)?;
        check_target(ctx, &target).await?;
        after.target = target.key();
    }
    if input.policy.is_some() || input.user.is_some() || input.group.is_some() {
        one_subject(&input)?;
        after.policy_id = input.policy;
        after.user_ref = resolve_user(ctx, input.user).await?;
        after.group_name = input.group;
    }
    after.position = input.order.unwrap_or(after.position);
    after.negate = input.negate.unwrap_or(after.negate);
    after.failure_result = input.failure_result.unwrap_or(after.failure_result);
    after.enabled = input.enabled.unwrap_or(after.enabled);
    after.updated_at = ctx.clock.now();
    check_binding(ctx, &after, after.target != before.target).await?;
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyBindingUpdated,
        None,
        None,
        json!({ "binding_id": id, "before": binding_json(&before), "after": binding_json(&after) }),
    )?;
    ctx.db
        .batch(&[policies::upsert_binding_statement(&after), audit])
        .await?;
    crate::policy::judge::forget();
    Ok(Response::json(200, &binding_json(&after)))
}

pub async fn delete_binding(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let b = policies::binding_by_id(ctx.db, id)
        .await?
        .ok_or_else(|| not_found("binding"))?;
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyBindingDeleted,
        None,
        None,
        json!({ "binding": binding_json(&b) }),
    )?;
    ctx.db.batch(&[policies::delete_binding_statement(id), audit]).await?;
    crate::policy::judge::forget();
    Ok(Response::new(204))
}

/// `GET /admin/api/policy-targets/{kind}/{id}`: the target's mode and bindings in order.
pub async fn get_target(ctx: &Ctx<'_>, kind: &str, id: &str) -> Result<Response, Error> {
    let target = Target::parse(kind, id).map_err(bad)?;
    let key = target.key();
    let mode = policies::mode(ctx.db, &key).await?;
    let found = policies::bindings(ctx.db, Some(&key)).await?;
    let out: Vec<Json> = found.iter().map(binding_json).collect();
    Ok(Response::json(
        200,
        &json!({ "target": kind, "target_id": id, "mode": mode.as_str(), "bindings": out }),
    ))
}

/// `PUT /admin/api/policy-targets/{kind}/{id}` with `{"mode": "all" | "any"}`.
pub async fn put_target(ctx: &Ctx<'_>, req: &Request, kind: &str, id: &str) -> Result<Response, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        mode: String,
    }
    let target = Target::parse(kind, id).map_err(bad)?;
    check_target(ctx, &target).await?;
    let input: Input = json_body(req)?;
    let mode = Mode::parse(&input.mode).ok_or_else(|| bad("mode must be all or any"))?;
    let key = target.key();
    let audit = audit_detail_statement(
        ctx,
        EventKind::AdminPolicyModeSet,
        None,
        None,
        json!({ "target": key, "mode": mode.as_str() }),
    )?;
    ctx.db.batch(&[policies::set_mode_statement(&key, mode), audit]).await?;
    crate::policy::judge::forget();
    Ok(Response::json(
        200,
        &json!({ "target": kind, "target_id": id, "mode": mode.as_str() }),
    ))
}

/// `POST /admin/api/policy-targets/{kind}/{id}/test`: the target's verdict for the given user
/// and request, with each binding's part. Changes nothing.
pub async fn test_target(ctx: &Ctx<'_>, req: &Request, kind: &str, id: &str) -> Result<Response, Error> {
    let target = Target::parse(kind, id).map_err(bad)?;
    let mut facts = dry_run_facts(ctx, req).await?;
    match &target {
        Target::Flow(f) if facts.flow.purpose.is_empty() => facts.flow.purpose = f.clone(),
        Target::Stage(s) => facts.flow.stage = s.clone(),
        Target::Client(c) if facts.client.id.is_empty() => facts.client.id = c.clone(),
        Target::App(a) if facts.app.id.is_empty() => facts.app.id = a.clone(),
        _ => {}
    }
    let key = target.key();
    let found = policies::for_targets(ctx.db, std::slice::from_ref(&key)).await?;
    let mode = policies::mode(ctx.db, &key).await?;
    // The same verdict a sign-in reaches (uncached: a dry run reads what is stored now).
    let verdict = crate::policy::judge::verdict(ctx, &found, &key, &facts);
    let outcomes: Vec<Json> = verdict
        .outcomes
        .iter()
        .map(|o| json!({ "binding_id": o.binding_id, "passed": o.passed, "error": o.error }))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "target": kind, "target_id": id, "mode": mode.as_str(), "passed": verdict.passed, "bindings": outcomes }),
    ))
}
