//! Expression policies and policy bindings, end to end through `gatehouse_core::handle`: the
//! admin API (validation, audit, the lock, configured policies, dry runs), and what bindings do
//! at sign-in: a client only a group may use, a flow-wide expression, an `any` target, a failure
//! result, the second-factor stage skipped by a condition, and an SSO sign-in refused after a
//! binding was added.

mod support;

use gatehouse_core::events::Capturing;
use gatehouse_core::flow::plan::MfaMode;
use gatehouse_core::http::{Location, Method, Response};
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "correct horse battery staple";

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, body(r)))
        .to_owned()
}

fn admin(env: &TestEnv, method: Method, path: &str, b: Option<Value>) -> (u16, Value) {
    let r = env.admin(method, path, b);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    };
    (r.status, v)
}

fn client(env: &TestEnv) -> String {
    env.create_client(json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "first_party": true,
    }))
    .0
}

fn user_in(env: &TestEnv, name: &str, groups: &[&str]) -> String {
    let id = env.create_user(name, PASSWORD);
    let (status, v) = admin(
        env,
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({ "groups": groups })),
    );
    assert_eq!(status, 200, "{v}");
    id
}

fn from(country: &str) -> Browser {
    Browser {
        location: Location {
            country: Some(country.into()),
            asn: Some(3320),
            coordinates: None,
        },
        ..Browser::default()
    }
}

fn authorize_url(client_id: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    )
}

/// Signs `user` in through an authorization request; where the browser ends up (the client's
/// redirect, or the first page that is not the login's next step).
fn sign_in(env: &TestEnv, b: &mut Browser, client_id: &str, user: &str) -> String {
    let r = b.send(env, b.request(Method::Get, &authorize_url(client_id)));
    let login = location(&r);
    let mut r = submit_login(env, b, &login, user, PASSWORD);
    for _ in 0..5 {
        let next = location(&r);
        if next.starts_with(REDIRECT) || next.starts_with("/oauth2/mfa") {
            return next;
        }
        r = b.send(env, b.request(Method::Get, &next));
    }
    location(&r)
}

fn blocked(env: &TestEnv) -> Vec<Value> {
    env.db
        .text("SELECT COALESCE(json_group_array(json(detail)), '[]') FROM events WHERE kind = 'login_blocked'")
        .parse::<Value>()
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn audits(env: &TestEnv, kind: &str) -> i64 {
    env.db
        .count(&format!("SELECT COUNT(*) FROM events WHERE kind = '{kind}'"))
}

fn create_policy(env: &TestEnv, name: &str, expression: &str) -> String {
    let (status, v) = admin(
        env,
        Method::Post,
        "/admin/api/policies",
        Some(json!({ "name": name, "expression": expression })),
    );
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

fn bind(env: &TestEnv, binding: Value) -> String {
    let (status, v) = admin(env, Method::Post, "/admin/api/policy-bindings", Some(binding));
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

#[test]
fn policies_are_validated_when_saved_audited_and_not_deleted_while_bound() {
    let env = TestEnv::new();
    let refuse = |b: Value, status: u16, says: &str| {
        let (s, v) = admin(&env, Method::Post, "/admin/api/policies", Some(b.clone()));
        assert_eq!(s, status, "{b}: {v}");
        let d = v["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(says), "{b}: {d}");
    };
    refuse(json!({"name": "x", "expression": "user.id =="}), 400, "syntax error");
    refuse(
        json!({"name": "x", "expression": "secret == 1"}),
        400,
        "unknown name `secret`",
    );
    refuse(
        json!({"name": "x", "expression": "user.email.matches('a')"}),
        400,
        "`matches`",
    );
    refuse(json!({"name": "Bad Name", "expression": "true"}), 400, "name must be");
    refuse(json!({"name": "x"}), 400, "expression is required");
    refuse(
        json!({"name": "x", "expression": "true", "extra": 1}),
        400,
        "unknown field",
    );
    assert_eq!(
        audits(&env, "admin_policy_created"),
        0,
        "a refused policy changes nothing"
    );

    let id = create_policy(&env, "staff-only", "'staff' in user.groups");
    refuse(
        json!({"name": "staff-only", "expression": "true"}),
        409,
        "another policy has this name",
    );
    assert_eq!(audits(&env, "admin_policy_created"), 1);
    let (s, v) = admin(&env, Method::Get, &format!("/admin/api/policies/{id}"), None);
    assert_eq!((s, v["expression"].as_str()), (200, Some("'staff' in user.groups")));

    let (s, v) = admin(
        &env,
        Method::Patch,
        &format!("/admin/api/policies/{id}"),
        Some(json!({"expression": "user.nope("})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = admin(
        &env,
        Method::Patch,
        &format!("/admin/api/policies/{id}"),
        Some(json!({"expression": "'staff' in user.groups || 'eng' in user.groups"})),
    );
    assert_eq!(s, 200, "{v}");
    let detail: Value = env
        .db
        .text("SELECT detail FROM events WHERE kind = 'admin_policy_updated'")
        .parse()
        .unwrap();
    assert_eq!(detail["before"]["expression"], "'staff' in user.groups");
    assert_eq!(
        detail["after"]["expression"],
        "'staff' in user.groups || 'eng' in user.groups"
    );

    let c = client(&env);
    let binding = bind(&env, json!({"target": "client", "target_id": c, "policy": id}));
    let (s, v) = admin(&env, Method::Delete, &format!("/admin/api/policies/{id}"), None);
    assert_eq!(s, 409, "{v}");
    let (s, _) = admin(
        &env,
        Method::Delete,
        &format!("/admin/api/policy-bindings/{binding}"),
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = admin(&env, Method::Delete, &format!("/admin/api/policies/{id}"), None);
    assert_eq!(s, 204);
    assert_eq!(audits(&env, "admin_policy_deleted"), 1);
    assert_eq!(audits(&env, "admin_policy_binding_created"), 1);
    assert_eq!(audits(&env, "admin_policy_binding_deleted"), 1);

    let (s, v) = admin(
        &env,
        Method::Post,
        "/admin/api/policies/validate",
        Some(json!({"expression": "time.hour >= 9 && time.hour < 17"})),
    );
    assert_eq!((s, v["valid"].as_bool()), (200, Some(true)));
    let (_, v) = admin(
        &env,
        Method::Post,
        "/admin/api/policies/validate",
        Some(json!({"expression": "user.groups.all(a, user.groups.all(b, true))"})),
    );
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap_or_default().contains("do not nest"));
}

#[test]
fn the_number_of_stored_policies_is_bounded_and_a_refused_create_records_nothing() {
    let env = TestEnv::new();
    for i in 0..gatehouse_core::store::policies::MAX_POLICIES {
        env.db.exec(&format!(
            "INSERT INTO policies (id, name, expression, created_at, updated_at) VALUES ('pol_{i}', 'p{i}', 'true', 0, 0)"
        ));
    }
    let (s, v) = admin(
        &env,
        Method::Post,
        "/admin/api/policies",
        Some(json!({"name": "one-more", "expression": "true"})),
    );
    assert_eq!(s, 409, "{v}");
    assert_eq!(audits(&env, "admin_policy_created"), 0);
    env.db.exec("DELETE FROM policies WHERE id = 'pol_0'");
    create_policy(&env, "one-more", "true");
    assert_eq!(audits(&env, "admin_policy_created"), 1);
    // An update that applies keeps its audit event.
    let (s, v) = admin(
        &env,
        Method::Patch,
        "/admin/api/policies/pol_1",
        Some(json!({"expression": "false"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(audits(&env, "admin_policy_updated"), 1);
    assert_eq!(
        env.db.text("SELECT expression FROM policies WHERE id = 'pol_1'"),
        "false"
    );

    // A name taken by a concurrent request between the check and the write: a conflict, not a
    // 500 from the unique index, and no audit event (nor a notification) of what did not happen.
    env.db.exec("DELETE FROM policies WHERE id IN ('pol_2', 'pol_3')");
    let racer = |name: &str| {
        let db = Interposed::new(&env.db);
        *db.before_batch.borrow_mut() = Some(format!(
            "INSERT INTO policies (id, name, expression, created_at, updated_at) VALUES ('pol_{name}', '{name}', 'true', 0, 0)"
        ));
        db
    };
    let db = racer("raced");
    let capturing = Capturing::new(&db);
    let r = env.admin_with_db(
        &capturing,
        Method::Post,
        "/admin/api/policies",
        Some(json!({"name": "raced", "expression": "true"})),
    );
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(audits(&env, "admin_policy_created"), 1, "only the earlier create");
    assert!(capturing.take().is_empty());
    let db = racer("taken");
    let capturing = Capturing::new(&db);
    let r = env.admin_with_db(
        &capturing,
        Method::Patch,
        "/admin/api/policies/pol_1",
        Some(json!({"name": "taken"})),
    );
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(audits(&env, "admin_policy_updated"), 1, "only the earlier update");
    assert!(capturing.take().is_empty());
    assert_eq!(env.db.text("SELECT name FROM policies WHERE id = 'pol_1'"), "p1");
    // Changed by another request since it was read: this update would overwrite it unseen.
    let db = Interposed::new(&env.db);
    *db.before_batch.borrow_mut() =
        Some("UPDATE policies SET expression = 'user.id != \"\"' WHERE id = 'pol_1'".into());
    let r = env.admin_with_db(
        &db,
        Method::Patch,
        "/admin/api/policies/pol_1",
        Some(json!({"description": "mine"})),
    );
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(env.db.text("SELECT description FROM policies WHERE id = 'pol_1'"), "");
    assert_eq!(audits(&env, "admin_policy_updated"), 1);
}

#[test]
fn bindings_are_validated_and_a_deleted_client_takes_its_bindings_along() {
    let env = TestEnv::new();
    let c = client(&env);
    let refuse = |b: Value, says: &str| {
        let (s, v) = admin(&env, Method::Post, "/admin/api/policy-bindings", Some(b.clone()));
        assert_eq!(s, 400, "{b}: {v}");
        let d = v["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(says), "{b}: {d}");
    };
    refuse(
        json!({"target": "client", "target_id": "nope", "group": "staff"}),
        "no such client",
    );
    refuse(
        json!({"target": "app", "target_id": "nope", "group": "staff"}),
        "no such client or app",
    );
    refuse(
        json!({"target": "stage", "target_id": "password", "group": "staff"}),
        "no such stage",
    );
    refuse(
        json!({"target": "flow", "target_id": "admin", "group": "staff"}),
        "no such flow",
    );
    refuse(json!({"target": "client", "target_id": c}), "exactly one of");
    refuse(
        json!({"target": "client", "target_id": c, "group": "a", "user": "b"}),
        "exactly one of",
    );
    refuse(
        json!({"target": "client", "target_id": c, "policy": "pol_nope"}),
        "no such policy",
    );
    refuse(
        json!({"target": "client", "target_id": c, "group": "x".repeat(255)}),
        "1-254 bytes",
    );
    refuse(
        json!({"target": "client", "target_id": c, "group": "x", "order": 2_000_000}),
        "order",
    );
    for _ in 0..32 {
        bind(&env, json!({"target": "client", "target_id": c, "group": "g"}));
    }
    refuse(
        json!({"target": "client", "target_id": c, "group": "g"}),
        "at most 32 bindings",
    );
    let (s, v) = admin(
        &env,
        Method::Get,
        &format!("/admin/api/policy-targets/client/{c}"),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["mode"], "all");
    assert_eq!(v["bindings"].as_array().map(Vec::len), Some(32));
    let (s, v) = admin(
        &env,
        Method::Put,
        &format!("/admin/api/policy-targets/client/{c}"),
        Some(json!({"mode": "some"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = admin(
        &env,
        Method::Put,
        &format!("/admin/api/policy-targets/client/{c}"),
        Some(json!({"mode": "any"})),
    );
    assert_eq!(s, 200);
    assert_eq!(audits(&env, "admin_policy_mode_set"), 1);
    let (_, v) = admin(
        &env,
        Method::Get,
        &format!("/admin/api/policy-targets/client/{c}"),
        None,
    );
    assert_eq!(v["mode"], "any", "the stored mode is shown");
    let (_, v) = admin(
        &env,
        Method::Post,
        &format!("/admin/api/policy-targets/client/{c}/test"),
        Some(json!({})),
    );
    assert_eq!(v["mode"], "any", "and the dry run says which it used");
    let (s, _) = admin(&env, Method::Delete, &format!("/admin/api/clients/{c}"), None);
    assert_eq!(s, 204);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM policy_bindings"), 0);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM policy_engine_modes"), 0);
}

#[test]
fn only_the_bound_group_may_use_a_client_and_the_refusal_is_access_denied_with_an_event() {
    let env = TestEnv::new();
    user_in(&env, "ann", &["staff"]);
    user_in(&env, "bob", &["contractors"]);
    let c = client(&env);
    let other = client(&env);
    let staff = bind(&env, json!({"target": "client", "target_id": c, "group": "staff"}));

    let end = sign_in(&env, &mut Browser::default(), &c, "ann");
    assert!(end.contains("code="), "{end}");
    let end = sign_in(&env, &mut Browser::default(), &c, "bob");
    assert!(end.contains("error=access_denied"), "{end}");
    assert!(!end.contains("code="));
    let events = blocked(&env);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["policy"], "binding");
    assert_eq!(events[0]["target"], format!("client:{c}"));
    assert_eq!(events[0]["failed_bindings"], json!([staff]));
    // Another client is not bound.
    let end = sign_in(&env, &mut Browser::default(), &other, "bob");
    assert!(end.contains("code="), "{end}");
}

#[test]
fn negate_any_mode_and_the_failure_result_decide_as_documented() {
    let env = TestEnv::new();
    user_in(&env, "ann", &["staff"]);
    user_in(&env, "bob", &["contractors"]);
    let c = client(&env);
    // Nobody in `contractors`, unless they sign in from DE: any of the two.
    bind(
        &env,
        json!({"target": "client", "target_id": c, "group": "contractors", "negate": true, "order": 1}),
    );
    let de = create_policy(&env, "from-de", "request.country == 'DE'");
    bind(
        &env,
        json!({"target": "client", "target_id": c, "policy": de, "order": 2}),
    );
    let (s, _) = admin(
        &env,
        Method::Put,
        &format!("/admin/api/policy-targets/client/{c}"),
        Some(json!({"mode": "any"})),
    );
    assert_eq!(s, 200);
    assert!(sign_in(&env, &mut from("FR"), &c, "ann").contains("code="));
    assert!(sign_in(&env, &mut from("FR"), &c, "bob").contains("error=access_denied"));
    assert!(sign_in(&env, &mut from("DE"), &c, "bob").contains("code="));

    // A policy that fails to evaluate gives its binding's failure result, on the whole flow.
    let broken = create_policy(&env, "broken", "user.groups[7] == 'x'");
    let id = bind(
        &env,
        json!({"target": "flow", "target_id": "authorize", "policy": broken}),
    );
    assert!(sign_in(&env, &mut from("FR"), &c, "ann").contains("error=access_denied"));
    let (s, _) = admin(
        &env,
        Method::Patch,
        &format!("/admin/api/policy-bindings/{id}"),
        Some(json!({"failure_result": true})),
    );
    assert_eq!(s, 200);
    assert!(sign_in(&env, &mut from("FR"), &c, "ann").contains("code="));
    assert_eq!(audits(&env, "admin_policy_binding_updated"), 1);
}

#[test]
fn the_second_factor_stage_is_skipped_where_its_bindings_fail_but_never_when_the_client_requires_one() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    user_in(&env, "ann", &["staff"]);
    let c = client(&env);
    // "Skip the MFA stage for staff on the corporate network (here: signing in from DE)".
    let p = create_policy(
        &env,
        "staff-at-office",
        "'staff' in user.groups && request.country == 'DE'",
    );
    bind(
        &env,
        json!({"target": "stage", "target_id": "mfa", "policy": p, "negate": true}),
    );
    let end = sign_in(&env, &mut from("DE"), &c, "ann");
    assert!(end.starts_with(REDIRECT) && end.contains("code="), "{end}");
    let end = sign_in(&env, &mut from("FR"), &c, "ann");
    assert!(end.starts_with("/oauth2/mfa/enroll"), "{end}");
    // A client that requires a second factor is not waived.
    let strict = env
        .create_client(json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "first_party": true,
            "require_mfa": true,
        }))
        .0;
    let end = sign_in(&env, &mut from("DE"), &strict, "ann");
    assert!(end.starts_with("/oauth2/mfa/enroll"), "{end}");
}

#[test]
fn a_stage_binding_that_cannot_be_evaluated_never_waives_the_second_factor() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    user_in(&env, "ann", &[]);
    let c = client(&env);
    // Fails for everyone, by error: with failure_result false it would "fail" the stage, but an
    // error never skips a factor.
    let broken = create_policy(&env, "broken", "user.groups[3] == 'x'");
    bind(&env, json!({"target": "stage", "target_id": "mfa", "policy": broken}));
    let end = sign_in(&env, &mut Browser::default(), &c, "ann");
    assert!(end.starts_with("/oauth2/mfa/enroll"), "{end}");
    // A working one that fails does skip it.
    let never = create_policy(&env, "never", "user.id == 'nobody'");
    let (s, v) = admin(&env, Method::Get, "/admin/api/policy-bindings", None);
    assert_eq!(s, 200);
    let id = v["bindings"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = admin(
        &env,
        Method::Patch,
        &format!("/admin/api/policy-bindings/{id}"),
        Some(json!({"policy": never})),
    );
    assert_eq!(s, 200);
    let end = sign_in(&env, &mut Browser::default(), &c, "ann");
    assert!(end.contains("code="), "{end}");
}

#[test]
fn the_account_flows_bindings_hold_for_a_session_made_by_a_sign_in_to_a_client() {
    let env = TestEnv::new();
    user_in(&env, "bob", &["contractors"]);
    let c = client(&env);
    let mut b = Browser::default();
    assert!(sign_in(&env, &mut b, &c, "bob").contains("code="));
    assert_eq!(b.send(&env, b.request(Method::Get, "/account")).status, 200);
    bind(
        &env,
        json!({"target": "flow", "target_id": "account", "group": "staff"}),
    );
    let r = b.send(&env, b.request(Method::Get, "/account"));
    assert_eq!(r.status, 403);
    assert!(body(&r).contains("A policy does not allow this sign-in"));
}

#[test]
fn a_user_binding_names_the_user_by_id_whatever_name_it_was_given_by() {
    let env = TestEnv::new();
    let ann = user_in(&env, "ann", &[]);
    let c = client(&env);
    // A username is looked up as sign-in looks it up (case-insensitively), and stored as the id.
    let id = bind(&env, json!({"target": "client", "target_id": c, "user": "ANN"}));
    let (_, v) = admin(&env, Method::Get, &format!("/admin/api/policy-bindings/{id}"), None);
    assert_eq!(v["user"], ann);
    let (s, _) = admin(
        &env,
        Method::Post,
        "/admin/api/policy-bindings",
        Some(json!({"target": "client", "target_id": c, "user": "nobody"})),
    );
    assert_eq!(s, 400);
    assert!(sign_in(&env, &mut Browser::default(), &c, "ann").contains("code="));
}

#[test]
fn a_binding_added_after_sign_in_refuses_the_next_single_sign_on() {
    let env = TestEnv::new();
    user_in(&env, "bob", &["contractors"]);
    let c = client(&env);
    let mut b = Browser::default();
    assert!(sign_in(&env, &mut b, &c, "bob").contains("code="));
    // The browser's session signs bob in again without a form.
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&c)));
    assert!(location(&r).contains("code="), "{}", location(&r));
    bind(&env, json!({"target": "client", "target_id": c, "group": "staff"}));
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&c)));
    let end = location(&r);
    assert!(end.contains("error=access_denied"), "{end}");
    assert_eq!(blocked(&env).len(), 1);
}

fn at_ip(ip: &str) -> Browser {
    Browser {
        ip: Some(ip.into()),
        ..Browser::default()
    }
}

#[test]
fn reputation_scores_are_facts_a_bound_policy_can_refuse_on() {
    let env = TestEnv::new();
    user_in(&env, "ann", &[]);
    user_in(&env, "bob", &[]);
    let c = client(&env);
    let wrong_password = |user: &str, ip: &str| {
        let mut b = at_ip(ip);
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&c)));
        let r = submit_login(&env, &mut b, &location(&r), user, "not the password");
        assert_eq!(r.status, 401, "the login form again, with its error");
    };

    // The IP's score: two failures there (for any account) bring it to -2.
    let ip_policy = create_policy(&env, "ip-standing", "request.reputation > -2");
    let ip_binding = bind(&env, json!({"target": "client", "target_id": c, "policy": ip_policy}));
    assert!(sign_in(&env, &mut at_ip("198.51.100.1"), &c, "ann").contains("code="));
    wrong_password("bob", "198.51.100.1");
    assert!(
        sign_in(&env, &mut at_ip("198.51.100.1"), &c, "ann").contains("code="),
        "-1 passes"
    );
    wrong_password("bob", "198.51.100.1");
    let end = sign_in(&env, &mut at_ip("198.51.100.1"), &c, "ann");
    assert!(end.contains("error=access_denied"), "{end}");
    assert!(
        sign_in(&env, &mut at_ip("198.51.100.2"), &c, "ann").contains("code="),
        "another IP"
    );

    // The username's score: bob's two failures (from another IP) left -2. A refused sign-in
    // earns no credit, so signing in again and again does not talk the policy round; typed in
    // another case, the name is the same account and the same score.
    admin(
        &env,
        Method::Delete,
        &format!("/admin/api/policy-bindings/{ip_binding}"),
        None,
    );
    let user_policy = create_policy(&env, "user-standing", "user.reputation > -2");
    bind(&env, json!({"target": "client", "target_id": c, "policy": user_policy}));
    for name in ["bob", "bob", "BOB", "bob"] {
        let end = sign_in(&env, &mut at_ip("198.51.100.3"), &c, name);
        assert!(end.contains("error=access_denied"), "{name}: {end}");
    }
    assert!(sign_in(&env, &mut at_ip("198.51.100.3"), &c, "ann").contains("code="));
    // With the bar lowered, bob signs in, and that success is credited: back at the first
    // bar, his -1 passes it.
    let bar = |expression: &str| {
        let (s, v) = admin(
            &env,
            Method::Patch,
            &format!("/admin/api/policies/{user_policy}"),
            Some(json!({ "expression": expression })),
        );
        assert_eq!(s, 200, "{v}");
    };
    bar("user.reputation > -3");
    assert!(sign_in(&env, &mut at_ip("198.51.100.3"), &c, "bob").contains("code="));
    bar("user.reputation > -2");
    assert!(
        sign_in(&env, &mut at_ip("198.51.100.3"), &c, "bob").contains("code="),
        "-1 after the credit"
    );

    // Outside a sign-in (the account page, like a proxied request): the scores are read there
    // too, for the session's user and this request's IP.
    let mut annb = at_ip("198.51.100.4");
    assert!(sign_in(&env, &mut annb, &c, "ann").contains("code="));
    assert_eq!(annb.send(&env, annb.request(Method::Get, "/account")).status, 200);
    bind(
        &env,
        json!({"target": "flow", "target_id": "account", "policy": ip_policy}),
    );
    assert_eq!(annb.send(&env, annb.request(Method::Get, "/account")).status, 200);
    let mut elsewhere = Browser {
        cookies: annb.cookies.clone(),
        ip: Some("198.51.100.1".into()),
        ..Browser::default()
    };
    assert_eq!(
        elsewhere.send(&env, elsewhere.request(Method::Get, "/account")).status,
        403
    );

    // A dry run reads no counters: the scores are given.
    let test = |b: Value| {
        admin(
            &env,
            Method::Post,
            &format!("/admin/api/policies/{user_policy}/test"),
            Some(b),
        )
        .1["result"]
            .clone()
    };
    assert_eq!(test(json!({"user": "bob", "user_reputation": -1})), true);
    assert_eq!(test(json!({"user": "bob", "user_reputation": -2})), false);
    let test = |b: Value| {
        admin(
            &env,
            Method::Post,
            &format!("/admin/api/policies/{ip_policy}/test"),
            Some(b),
        )
        .1["result"]
            .clone()
    };
    assert_eq!(test(json!({"request": {"reputation": -2}})), false);
    assert_eq!(test(json!({"request": {"reputation": 0}})), true);
}

#[test]
fn dry_runs_answer_for_a_user_and_a_request_and_change_nothing() {
    let env = TestEnv::new();
    user_in(&env, "ann", &["staff"]);
    let c = client(&env);
    let p = create_policy(
        &env,
        "office-hours",
        "time.hour >= 9 && time.hour < 17 && request.country == 'DE'",
    );
    let events_before = env.db.count("SELECT COUNT(*) FROM events");
    // 2027-01-15T10:00:00Z
    let t = 1_800_006_400 - (1_800_006_400 % 86_400) + 10 * 3600;
    let test = |b: Value| admin(&env, Method::Post, &format!("/admin/api/policies/{p}/test"), Some(b)).1;
    assert_eq!(
        test(json!({"user": "ann", "request": {"country": "de"}, "time": t}))["result"],
        true
    );
    assert_eq!(
        test(json!({"user": "ann", "request": {"country": "FR"}, "time": t}))["result"],
        false
    );
    let broken = create_policy(&env, "broken", "user.nope == 1");
    let v = admin(
        &env,
        Method::Post,
        &format!("/admin/api/policies/{broken}/test"),
        Some(json!({})),
    )
    .1;
    assert_eq!(v["result"], Value::Null);
    assert!(v["error"].as_str().unwrap_or_default().contains("evaluation failed"));
    let (s, _) = admin(
        &env,
        Method::Post,
        &format!("/admin/api/policies/{p}/test"),
        Some(json!({"user": "nobody"})),
    );
    assert_eq!(s, 404);

    let staff = bind(&env, json!({"target": "client", "target_id": c, "group": "staff"}));
    let hours = bind(&env, json!({"target": "client", "target_id": c, "policy": p}));
    let v = admin(
        &env,
        Method::Post,
        &format!("/admin/api/policy-targets/client/{c}/test"),
        Some(json!({"user": "ann", "request": {"country": "FR"}, "time": t})),
    )
    .1;
    assert_eq!(v["passed"], false);
    let outcomes = v["bindings"].as_array().cloned().unwrap_or_default();
    assert_eq!(outcomes.len(), 2);
    let passed_of = |id: &str| {
        outcomes
            .iter()
            .find(|o| o["binding_id"] == id)
            .map(|o| o["passed"].clone())
    };
    assert_eq!(passed_of(&staff), Some(json!(true)));
    assert_eq!(passed_of(&hours), Some(json!(false)));
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events") - events_before,
        3,
        "only the second policy and the two bindings were recorded: dry runs record nothing"
    );
}

#[test]
fn locked_expressions_are_read_only_through_the_api_and_configured_ones_can_be_bound() {
    let mut env = TestEnv::new();
    env.settings.lock_expressions = true;
    env.settings.configured_policies = vec![("from-de".into(), "request.country == 'DE'".into())];
    user_in(&env, "ann", &[]);
    let c = client(&env);
    let (s, v) = admin(
        &env,
        Method::Post,
        "/admin/api/policies",
        Some(json!({"name": "x", "expression": "true"})),
    );
    assert_eq!(s, 403, "{v}");
    assert!(v["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("GATEHOUSE_LOCK_EXPRESSIONS"));
    let (s, v) = admin(&env, Method::Get, "/admin/api/policies", None);
    assert_eq!(s, 200);
    assert_eq!(v["locked"], true);
    assert_eq!(v["policies"][0]["id"], "cfg:from-de");
    assert_eq!(v["policies"][0]["source"], "configuration");
    let (s, _) = admin(
        &env,
        Method::Patch,
        "/admin/api/policies/cfg:from-de",
        Some(json!({"expression": "true"})),
    );
    assert_eq!(s, 403);
    let (s, _) = admin(&env, Method::Delete, "/admin/api/policies/cfg:from-de", None);
    assert_eq!(s, 403);
    // Bindings are data: they stay editable, and a configured policy binds by its id.
    bind(
        &env,
        json!({"target": "client", "target_id": c, "policy": "cfg:from-de"}),
    );
    assert!(sign_in(&env, &mut from("DE"), &c, "ann").contains("code="));
    assert!(sign_in(&env, &mut from("FR"), &c, "ann").contains("error=access_denied"));
}

#[test]
fn what_is_bound_is_cached_per_set_of_targets_for_thirty_seconds() {
    let env = TestEnv::new();
    user_in(&env, "bob", &["contractors"]);
    let c = client(&env);
    let other = client(&env);
    bind(&env, json!({"target": "client", "target_id": c, "group": "staff"}));
    bind(&env, json!({"target": "client", "target_id": other, "group": "staff"}));
    // Both sets of targets are judged (and cached) once.
    assert!(sign_in(&env, &mut Browser::default(), &c, "bob").contains("error=access_denied"));
    assert!(sign_in(&env, &mut Browser::default(), &other, "bob").contains("error=access_denied"));
    // Removed behind the admin API's back (as another isolate would): both caches still hold.
    env.db.exec("DELETE FROM policy_bindings");
    env.clock.advance(29);
    assert!(sign_in(&env, &mut Browser::default(), &c, "bob").contains("error=access_denied"));
    assert!(sign_in(&env, &mut Browser::default(), &other, "bob").contains("error=access_denied"));
    // At 30 seconds they are read again.
    env.clock.advance(1);
    assert!(sign_in(&env, &mut Browser::default(), &c, "bob").contains("code="));
    assert!(sign_in(&env, &mut Browser::default(), &other, "bob").contains("code="));
}

#[test]
fn an_expression_sees_the_client_it_signs_in_to() {
    let env = TestEnv::new();
    user_in(&env, "ann", &[]);
    let c = client(&env);
    let other = client(&env);
    let only_c = create_policy(
        &env,
        "only-c",
        &format!("client.id == '{c}' && flow.purpose == 'authorize'"),
    );
    bind(
        &env,
        json!({"target": "flow", "target_id": "authorize", "policy": only_c}),
    );
    assert!(sign_in(&env, &mut Browser::default(), &c, "ann").contains("code="));
    assert!(sign_in(&env, &mut Browser::default(), &other, "ann").contains("error=access_denied"));
}

/// The error description of a refused admin call.
fn refused(env: &TestEnv, method: Method, path: &str, b: Value) -> String {
    let (s, v) = admin(env, method, path, Some(b.clone()));
    assert_eq!(s / 100, 4, "{b}: {v}");
    v["error_description"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_admin_api_bounds_what_it_stores_at_exactly_its_limits() {
    let mut env = TestEnv::new();
    env.settings.configured_policies = vec![("from-de".into(), "request.country == 'DE'".into())];
    let policies = "/admin/api/policies";
    assert!(refused(
        &env,
        Method::Post,
        policies,
        json!({"name": "from-de", "expression": "true"})
    )
    .contains("a configured policy has this name"));
    // Descriptions: 1000 bytes, line breaks but no other control characters.
    let d = |description: String| json!({"name": "p", "expression": "true", "description": description});
    assert!(refused(&env, Method::Post, policies, d("x".repeat(1001))).contains("at most 1000 bytes"));
    assert!(refused(&env, Method::Post, policies, d("a\u{7}b".into())).contains("control characters"));
    let p = create_policy(&env, "p", "true");
    assert_eq!(
        refused(
            &env,
            Method::Post,
            policies,
            json!({"name": "p", "expression": "false"})
        ),
        "another policy has this name"
    );
    let (_, listed) = admin(&env, Method::Get, policies, None);
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["p", "from-de"], "stored, then configured");
    let (s, v) = admin(
        &env,
        Method::Patch,
        &format!("{policies}/{p}"),
        Some(json!({"description": format!("line\n{}", "x".repeat(995))})),
    );
    assert_eq!(s, 200, "{v}");
    // A patch changes what it names, and when.
    env.clock.advance(60);
    let (s, v) = admin(
        &env,
        Method::Patch,
        &format!("{policies}/{p}"),
        Some(json!({"description": "changed"})),
    );
    assert_eq!(s, 200, "{v}");
    let (_, stored) = admin(&env, Method::Get, &format!("{policies}/{p}"), None);
    assert_eq!(stored["description"], "changed");
    assert_eq!(stored["expression"], "true");
    assert_eq!(
        stored["updated_at"].as_i64(),
        stored["created_at"].as_i64().map(|t| t + 60)
    );

    // Dry-run inputs: an IP of 64 bytes, a 2-letter country, a 512-byte user agent; a known
    // flow and stage.
    let dry = format!("{policies}/{p}/test");
    let ok = |b: Value| {
        let (s, v) = admin(&env, Method::Post, &dry, Some(b.clone()));
        assert_eq!(s, 200, "{b}: {v}");
    };
    ok(json!({"request": {"ip": "1".repeat(64), "country": "DE", "user_agent": "u".repeat(512)}}));
    ok(json!({"flow": "authorize", "stage": "mfa"}));
    for bad in [
        json!({"request": {"ip": "1".repeat(65)}}),
        json!({"request": {"country": "DEU"}}),
        json!({"request": {"user_agent": "u".repeat(513)}}),
    ] {
        assert!(refused(&env, Method::Post, &dry, bad).contains("at most 64 bytes"));
    }
    assert!(refused(&env, Method::Post, &dry, json!({"flow": "nope"})).contains("flow must be one of"));
    assert!(refused(&env, Method::Post, &dry, json!({"stage": "nope"})).contains("stage must be one of"));

    // Binding subjects: 1-254 bytes.
    let bindings = "/admin/api/policy-bindings";
    let on_flow = |subject: Value| {
        let mut b = json!({"target": "flow", "target_id": "authorize"});
        b.as_object_mut().unwrap().extend(subject.as_object().unwrap().clone());
        b
    };
    assert!(refused(&env, Method::Post, bindings, on_flow(json!({"user": ""}))).contains("1-254 bytes"));
    assert!(refused(&env, Method::Post, bindings, on_flow(json!({"user": "u".repeat(255)}))).contains("1-254 bytes"));
    assert!(refused(&env, Method::Post, bindings, on_flow(json!({"user": "u".repeat(254)}))).contains("no such user"));
    assert!(refused(&env, Method::Post, bindings, on_flow(json!({"group": "g".repeat(255)}))).contains("1-254 bytes"));
    bind(&env, on_flow(json!({"group": "g".repeat(254)})));
}

#[test]
fn a_binding_patch_changes_only_what_it_names_and_a_full_target_takes_no_more() {
    let env = TestEnv::new();
    let ann = user_in(&env, "ann", &[]);
    let a = client(&env);
    let b = client(&env);
    let p = create_policy(&env, "p", "true");
    let id = bind(&env, json!({"target": "client", "target_id": a, "policy": p}));
    let patch = |body: Value| {
        let (s, v) = admin(
            &env,
            Method::Patch,
            &format!("/admin/api/policy-bindings/{id}"),
            Some(body),
        );
        assert_eq!(s, 200, "{v}");
        v
    };
    // Only the target id: the kind stays.
    assert_eq!(patch(json!({"target_id": b}))["target_id"], b.as_str());
    // Only a group: the policy binding becomes a group binding.
    let v = patch(json!({"group": "staff"}));
    assert_eq!(v["group"], "staff");
    assert_eq!(v["policy"], Value::Null);
    let v = patch(json!({"user": "ann"}));
    assert_eq!(v["user"], ann.as_str());

    // Target `a` full: a binding there can still be changed, none can move in.
    for i in 0..gatehouse_core::policy::binding::MAX_PER_TARGET {
        env.db.exec(&format!(
            "INSERT INTO policy_bindings (id, target, group_name, position, created_at, updated_at) \
             VALUES ('pbd_{i}', 'client:{a}', 'g{i}', {i}, 0, 0)"
        ));
    }
    let (s, v) = admin(
        &env,
        Method::Patch,
        "/admin/api/policy-bindings/pbd_0",
        Some(json!({"negate": true})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = admin(
        &env,
        Method::Patch,
        &format!("/admin/api/policy-bindings/{id}"),
        Some(json!({"target_id": a})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("at most 32"));
}

#[test]
fn a_target_dry_run_fills_in_its_own_target_unless_the_body_names_one() {
    let env = TestEnv::new();
    let c = client(&env);
    let other = client(&env);
    env.db.exec(
        "INSERT INTO apps (id, name, host, path_prefix, origin, created_at, updated_at) \
         VALUES ('wiki', 'Wiki', 'wiki.example.com', '/', 'https://origin.example.com', 0, 0), \
                ('blog', 'Blog', 'blog.example.com', '/', 'https://origin.example.com', 0, 0)",
    );
    let cases = [
        (
            "flow",
            "authorize".to_owned(),
            "flow.purpose == 'authorize'",
            json!({"flow": "gateway"}),
        ),
        (
            "client",
            c.clone(),
            &*format!("client.id == '{c}'"),
            json!({"client": other}),
        ),
        ("app", "wiki".to_owned(), "app.id == 'wiki'", json!({"app": "blog"})),
    ];
    for (i, (kind, id, expression, elsewhere)) in cases.into_iter().enumerate() {
        let p = create_policy(&env, &format!("p{i}"), expression);
        bind(&env, json!({"target": kind, "target_id": id, "policy": p}));
        let test = |b: Value| {
            let (s, v) = admin(
                &env,
                Method::Post,
                &format!("/admin/api/policy-targets/{kind}/{id}/test"),
                Some(b),
            );
            assert_eq!(s, 200, "{v}");
            v["passed"].clone()
        };
        assert_eq!(test(json!({})), true, "{kind}: the target's own id");
        assert_eq!(test(elsewhere), false, "{kind}: the body's names win");
    }
    let p = create_policy(&env, "stage", "flow.stage == 'mfa'");
    bind(&env, json!({"target": "stage", "target_id": "mfa", "policy": p}));
    let (s, v) = admin(
        &env,
        Method::Post,
        "/admin/api/policy-targets/stage/mfa/test",
        Some(json!({})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["passed"], true);
}

#[test]
fn a_bound_policy_reads_the_time_of_the_request_from_the_clock() {
    // T0 is 2027-01-15 08:00 UTC, a Friday: a policy on the time sees that, not a zero default.
    let env = TestEnv::new();
    user_in(&env, "ann", &[]);
    let c = client(&env);
    let policy = create_policy(
        &env,
        "friday-morning",
        "time.unix == 1800000000 && time.weekday == 5 && time.hour == 8 && time.minute == 0",
    );
    bind(&env, json!({"target": "client", "target_id": c, "policy": policy}));
    let end = sign_in(&env, &mut Browser::default(), &c, "ann");
    assert!(end.contains("code="), "{end}");
}
