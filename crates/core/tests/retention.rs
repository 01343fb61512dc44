//! The retention job (`store::retention`) on real SQLite with the migrations and a fake clock:
//! dead rows go, live ones stay, reuse detection survives it, and one run is bounded
//! (security review finding "storage exhaustion").

mod support;

use std::cell::Cell;

use async_trait::async_trait;
use futures::executor::block_on;
use gatehouse_core::config::Settings;
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::http::{Method, Request, Response};
use gatehouse_core::ports::{Clock, Db};
use gatehouse_core::store::retention::{
    self, Report, BATCHES_PER_STEP, PENDING_ENROLLMENT_KEPT, REVOKED_GRANT_KEPT, ROWS_PER_BATCH, STEPS,
};
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const DAY: i64 = 86_400;

fn sql(env: &TestEnv, statement: &str) {
    block_on(env.db.execute(statement, &[])).unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn count(env: &TestEnv, table: &str, filter: &str) -> i64 {
    env.db.count(&format!("SELECT COUNT(*) FROM {table} WHERE {filter}"))
}

fn run(env: &TestEnv) -> Report {
    block_on(retention::run(&env.db, env.clock.now(), &env.settings))
}

/// A user `u1` and an app `app1` for rows that reference them.
fn owners(env: &TestEnv) {
    sql(
        env,
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
         VALUES ('u1', 'alice', 'alice@example.com', 'x', 0, 0)",
    );
    sql(
        env,
        "INSERT INTO apps (id, name, host, path_prefix, origin, created_at, updated_at) \
         VALUES ('app1', 'Wiki', 'app.example.com', '/', 'http://10.0.0.5', 0, 0)",
    );
}

#[test]
fn dead_rows_of_every_table_go_and_live_ones_stay() {
    let env = TestEnv::new();
    owners(&env);
    let now = T0;
    let kept_revoked = now - 10;
    let old_revoked = now - REVOKED_GRANT_KEPT - 1;
    sql(
        &env,
        &format!(
            "INSERT INTO auth_requests (id, client_id, params, created_at, expires_at) VALUES \
             ('ar_dead', 'c', '{{}}', 0, {now}), ('ar_live', 'c', '{{}}', 0, {})",
            now + 1
        ),
    );
    // Grants: one live, one past its absolute lifetime, one revoked long enough ago, one revoked
    // just now, and one both expired and revoked (deleted and counted once).
    sql(
        &env,
        &format!(
            "INSERT INTO grants (id, client_id, user_id, scope, created_at, expires_at, revoked_at) VALUES \
             ('g_live', 'c', 'u1', 'openid', 0, {live}, NULL), \
             ('g_expired', 'c', 'u1', 'openid', 0, {now}, NULL), \
             ('g_revoked_old', 'c', 'u1', 'openid', 0, {live}, {old_revoked}), \
             ('g_revoked_new', 'c', 'u1', 'openid', 0, {live}, {kept_revoked}), \
             ('g_expired_and_revoked', 'c', 'u1', 'openid', 0, {now}, {old_revoked})",
            live = now + 1000
        ),
    );
    let code = |hash: &str, grant: &str, expires: i64, used: &str| {
        sql(
            &env,
            &format!(
                "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, created_at, \
                 expires_at, used_at) VALUES ('{hash}', '{grant}', 'c', 'https://rp/cb', 0, {expires}, {used})"
            ),
        )
    };
    code("code_unused_dead", "g_live", now, "NULL");
    code("code_used_dead_live_grant", "g_live", now, "5");
    code("code_unused_live", "g_live", now + 30, "NULL");
    code("code_of_expired_grant", "g_expired", now, "5");
    let token = |hash: &str, kind: &str, grant: &str, expires: i64, rotated: &str| {
        sql(
            &env,
            &format!(
                "INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, created_at, expires_at, \
                 rotated_at) VALUES ('{hash}', '{kind}', '{grant}', 'c', 'u1', 'openid', 0, {expires}, {rotated})"
            ),
        )
    };
    token("at_dead", "access", "g_live", now, "NULL");
    token("rt_unrotated_dead", "refresh", "g_live", now, "NULL");
    token("rt_rotated_dead_live_grant", "refresh", "g_live", now, "7");
    token("rt_live", "refresh", "g_live", now + 500, "NULL");
    token("rt_of_expired_grant", "refresh", "g_expired", now, "7");
    token("at_of_expired_grant", "access", "g_expired", now + 5, "NULL");
    token("rt_of_old_revoked_grant", "refresh", "g_revoked_old", now + 500, "NULL");
    token("rt_of_new_revoked_grant", "refresh", "g_revoked_new", now + 500, "NULL");
    token(
        "rt_of_expired_and_revoked_grant",
        "refresh",
        "g_expired_and_revoked",
        now,
        "7",
    );
    sql(
        &env,
        &format!(
            "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, ended_at) VALUES \
             ('s_live', 'u1', 0, 0, {live}, NULL), ('s_expired', 'u1', 0, 0, {now}, NULL), \
             ('s_ended', 'u1', 0, 0, {live}, {ended}), ('s_ended_and_expired', 'u1', 0, 0, {now}, {ended})",
            live = now + 1000,
            ended = now - 5
        ),
    );
    sql(
        &env,
        &format!(
            "INSERT INTO app_sessions (id_hash, app_id, user_id, sso_session_hash, created_at, expires_at) VALUES \
             ('a_live', 'app1', 'u1', 's_live', 0, {live}), ('a_expired', 'app1', 'u1', 's_expired', 0, {now}), \
             ('a_of_ended', 'app1', 'u1', 's_ended', 0, {live})",
            live = now + 1000
        ),
    );
    sql(
        &env,
        &format!(
            "INSERT INTO gateway_codes (code_hash, app_id, user_id, sso_session_hash, return_to, created_at, \
             expires_at, used_at) VALUES ('gc_dead', 'app1', 'u1', 's_live', '/', 0, {now}, NULL), \
             ('gc_used_dead', 'app1', 'u1', 's_live', '/', 0, {now}, 3), \
             ('gc_live', 'app1', 'u1', 's_live', '/', 0, {}, NULL)",
            now + 30
        ),
    );
    sql(
        &env,
        &format!(
            "INSERT INTO email_tokens (id, kind, secret_hash, user_id, email, created_at, expires_at) VALUES \
             ('et_dead', 'reset', 'h1', 'u1', 'a@example.com', 0, {now}), \
             ('et_live', 'verify', 'h2', 'u1', 'a@example.com', 0, {})",
            now + 1
        ),
    );
    sql(
        &env,
        &format!(
            "INSERT INTO webauthn_challenges (owner, ceremony, challenge, user_id, expires_at) VALUES \
             ('wc_dead', 'sign_in', 'c1', NULL, {now}), ('wc_live', 'register', 'c2', 'u1', {})",
            now + 1
        ),
    );
    sql(
        &env,
        &format!(
            "INSERT INTO events (id, kind, created_at) VALUES ('e_old', 'login', {}), ('e_recent', 'login', {}), \
             ('e_edge', 'login', {})",
            now - 90 * DAY - 1,
            now - DAY,
            now - 90 * DAY
        ),
    );

    sql(
        &env,
        &format!(
            "INSERT INTO totp_devices (id, user_id, name, secret_sealed, confirmed_at, created_at) VALUES \
             ('t_abandoned', 'u1', 'a', 's', NULL, {}), ('t_pending', 'u1', 'a', 's', NULL, {}), \
             ('t_old_confirmed', 'u1', 'a', 's', 5, 0)",
            now - PENDING_ENROLLMENT_KEPT - 1,
            now - PENDING_ENROLLMENT_KEPT
        ),
    );

    let report = run(&env);

    let ids = |table: &str, column: &str| -> Vec<String> {
        let rows = block_on(
            env.db
                .query(&format!("SELECT {column} AS id FROM {table} ORDER BY 1"), &[]),
        )
        .unwrap();
        rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids("auth_requests", "id"), ["ar_live"]);
    assert_eq!(
        ids("authorization_codes", "code_hash"),
        ["code_unused_live", "code_used_dead_live_grant"],
        "a used code stays with its live grant; the expired grant's code goes before it"
    );
    assert_eq!(ids("gateway_codes", "code_hash"), ["gc_live"]);
    assert_eq!(
        ids("tokens", "token_hash"),
        ["rt_live", "rt_of_new_revoked_grant", "rt_rotated_dead_live_grant"]
    );
    assert_eq!(ids("grants", "id"), ["g_live", "g_revoked_new"]);
    assert_eq!(ids("sessions", "id_hash"), ["s_live"]);
    assert_eq!(ids("app_sessions", "id_hash"), ["a_live"]);
    assert_eq!(ids("events", "id"), ["e_edge", "e_recent"]);
    assert_eq!(ids("totp_devices", "id"), ["t_old_confirmed", "t_pending"]);
    assert_eq!(ids("email_tokens", "id"), ["et_live"]);
    assert_eq!(ids("webauthn_challenges", "owner"), ["wc_live"]);
    assert_eq!(
        report,
        Report {
            auth_requests: 1,
            authorization_codes: 2,
            gateway_codes: 2,
            tokens: 6,
            grants: 3,
            app_sessions: 2,
            sessions: 3,
            totp_devices: 1,
            email_tokens: 1,
            webauthn_challenges: 1,
            events: 1,
            unfinished: vec![],
            failed: vec![],
        }
    );
    // Nothing is left for a second run.
    assert_eq!(run(&env), Report::default());
}

// ---------------------------------------------------------------------------------------------
// Through the real flows

struct Rp {
    id: String,
    secret: String,
}

fn rp(env: &TestEnv) -> Rp {
    let (id, secret) = env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid offline_access",
        "first_party": true,
    }));
    Rp {
        id,
        secret: secret.expect("confidential client"),
    }
}

fn token(env: &TestEnv, rp: &Rp, form: &[(&str, &str)]) -> Response {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", rp.id, rp.secret));
    env.send(
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &format!("Basic {basic}"))
            .with_form(form),
    )
}

/// Logs `alice` in through the authorize endpoint; returns the browser and the code.
fn sign_in(env: &TestEnv, rp: &Rp) -> (Browser, String) {
    let mut b = Browser::default();
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access\
         &state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        rp.id,
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let mut resp = b.send(env, b.request(Method::Get, &url));
    for _ in 0..4 {
        let loc = resp.header("location").expect("redirect").to_owned();
        if loc.starts_with(REDIRECT) {
            return (b, query_param(&loc, "code").expect("code"));
        }
        resp = if loc.starts_with("/oauth2/login") {
            submit_login(env, &mut b, &loc, "alice", PASSWORD)
        } else {
            b.send(env, b.request(Method::Get, &loc))
        };
    }
    panic!("no code after the login");
}

fn exchange(env: &TestEnv, rp: &Rp, code: &str) -> Response {
    token(
        env,
        rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
}

fn refresh(env: &TestEnv, rp: &Rp, refresh_token: &str) -> Response {
    token(
        env,
        rp,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
    )
}

#[test]
fn a_live_session_an_unexpired_refresh_token_and_recent_events_survive_until_they_die() {
    let env = TestEnv::new();
    let rp = rp(&env);
    env.create_user("alice", PASSWORD);
    let (_browser, code) = sign_in(&env, &rp);
    let tokens = exchange(&env, &rp, &code).json_body();
    let rt = tokens["refresh_token"].as_str().expect("refresh token").to_owned();
    let events = count(&env, "events", "1");
    assert!(events > 0, "the flow records events");

    // An hour later the access token is dead; the session, the refresh token and the events live.
    env.clock.advance(3600);
    let report = run(&env);
    assert_eq!(report.tokens, 1, "the expired access token");
    assert_eq!(report.sessions + report.grants + report.events, 0);
    assert_eq!(count(&env, "sessions", "1"), 1);
    assert_eq!(count(&env, "events", "1"), events);
    let refreshed = refresh(&env, &rp, &rt);
    assert_eq!(refreshed.status, 200, "{}", String::from_utf8_lossy(&refreshed.body));

    // Past the session's and the grant's lifetimes everything but the events goes.
    env.clock.advance(env.settings.refresh_absolute_ttl);
    run(&env);
    for table in ["sessions", "grants", "tokens", "authorization_codes", "auth_requests"] {
        assert_eq!(count(&env, table, "1"), 0, "{table}");
    }
    assert!(count(&env, "events", "1") >= events);

    // And the events after the retention period.
    env.clock.advance(env.settings.event_retention_days * DAY);
    run(&env);
    assert_eq!(count(&env, "events", "1"), 0);
}

/// OAuth 2.0 Security BCP §4.14.2. A thief rotates a stolen refresh token; the victim comes back
/// after the old token's idle expiry. The old token must still be known as "used", so its replay
/// revokes the thief's family, even though retention ran in between.
#[test]
fn a_rotated_refresh_token_outlives_its_own_expiry_so_a_late_replay_still_revokes_the_family() {
    let env = TestEnv::new();
    let rp = rp(&env);
    env.create_user("alice", PASSWORD);
    let (_browser, code) = sign_in(&env, &rp);
    let stolen = exchange(&env, &rp, &code).json_body()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    env.clock.advance(env.settings.refresh_idle_ttl - 60);
    let thiefs = refresh(&env, &rp, &stolen).json_body()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    env.clock.advance(120);
    run(&env);

    let replay = refresh(&env, &rp, &stolen);
    assert_eq!(replay.json_body()["error"], "invalid_grant");
    assert_eq!(count(&env, "events", "kind = 'refresh_token_reuse'"), 1);
    assert_eq!(refresh(&env, &rp, &thiefs).json_body()["error"], "invalid_grant");
}

/// RFC 6749 §4.1.2: a code used twice revokes what it issued, also after the code's expiry and
/// a retention run.
#[test]
fn a_used_code_stays_with_its_grant_so_a_replay_after_expiry_still_revokes_the_family() {
    let env = TestEnv::new();
    let rp = rp(&env);
    env.create_user("alice", PASSWORD);
    let (_browser, code) = sign_in(&env, &rp);
    let tokens = exchange(&env, &rp, &code).json_body();
    env.clock.advance(120);
    run(&env);

    assert_eq!(exchange(&env, &rp, &code).json_body()["error"], "invalid_grant");
    assert_eq!(count(&env, "events", "kind = 'code_reuse'"), 1);
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&env, &rp, rt).json_body()["error"], "invalid_grant");
}

#[test]
fn a_revoked_family_is_kept_for_a_day_then_deleted() {
    let env = TestEnv::new();
    let rp = rp(&env);
    env.create_user("alice", PASSWORD);
    let (_browser, code) = sign_in(&env, &rp);
    let rt = exchange(&env, &rp, &code).json_body()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let revoked = token_like_revoke(&env, &rp, &rt);
    assert_eq!(revoked.status, 200);
    assert_eq!(count(&env, "grants", "revoked_at IS NOT NULL"), 1);

    env.clock.advance(REVOKED_GRANT_KEPT - 1);
    run(&env);
    assert_eq!(count(&env, "grants", "1"), 1);
    env.clock.advance(2);
    run(&env);
    assert_eq!(count(&env, "grants", "1"), 0);
    assert_eq!(count(&env, "tokens", "1"), 0);
    assert_eq!(count(&env, "authorization_codes", "1"), 0);
    // The family is gone; its token is simply unknown now.
    assert_eq!(refresh(&env, &rp, &rt).json_body()["error"], "invalid_grant");
}

fn token_like_revoke(env: &TestEnv, rp: &Rp, tok: &str) -> Response {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", rp.id, rp.secret));
    env.send(
        Request::new(Method::Post, "/oauth2/revoke")
            .with_header("authorization", &format!("Basic {basic}"))
            .with_form(&[("token", tok)]),
    )
}

// ---------------------------------------------------------------------------------------------
// Events and the retention setting

#[test]
fn events_are_kept_for_the_configured_number_of_days() {
    let mut env = TestEnv::new();
    env.settings.event_retention_days = 7;
    sql(
        &env,
        &format!(
            "INSERT INTO events (id, kind, created_at) VALUES ('e8', 'login', {}), ('e6', 'login', {})",
            T0 - 8 * DAY,
            T0 - 6 * DAY
        ),
    );
    assert_eq!(run(&env).events, 1);
    assert_eq!(count(&env, "events", "id = 'e6'"), 1);
    env.settings.event_retention_days = 90;
    env.clock.advance(30 * DAY);
    assert_eq!(run(&env).events, 0, "36 days old is inside 90 days");
}

#[test]
fn csp_reports_go_after_seven_days_whatever_the_event_retention() {
    // Anyone's browser can send them: they do not get the audit log's 90 days.
    let env = TestEnv::new();
    sql(
        &env,
        &format!(
            "INSERT INTO events (id, kind, created_at) VALUES ('c8', 'csp_report', {}), ('c6', 'csp_report', {}), \
             ('l8', 'login_failed', {})",
            T0 - 8 * DAY,
            T0 - 6 * DAY,
            T0 - 8 * DAY
        ),
    );
    assert_eq!(run(&env).events, 1);
    assert_eq!(count(&env, "events", "id IN ('c6', 'l8')"), 2);
}

fn parse_days(value: Option<&str>) -> Result<Settings, InternalError> {
    Settings::from_lookup(|name| match name {
        "GATEHOUSE_EVENT_RETENTION_DAYS" => value.map(str::to_owned),
        _ => None,
    })
}

#[test]
fn event_retention_days_defaults_to_90_and_refuses_zero_and_nonsense() {
    assert_eq!(parse_days(None).unwrap().event_retention_days, 90);
    assert_eq!(parse_days(Some("")).unwrap().event_retention_days, 90);
    assert_eq!(parse_days(Some(" 30 ")).unwrap().event_retention_days, 30);
    assert_eq!(parse_days(Some("3650")).unwrap().event_retention_days, 3650);
    // No "keep forever": 0 would bring back the unbounded growth this setting exists to stop.
    for bad in ["0", "-1", "3651", "1.5", "ninety", "90d"] {
        let e = parse_days(Some(bad)).expect_err(bad);
        assert!(
            e.to_string().contains("GATEHOUSE_EVENT_RETENTION_DAYS"),
            "{bad}: the error names the setting: {e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds of one run

/// Counts statements and can fail the ones that mention `fail_on`.
struct Probe<'a> {
    db: &'a dyn Db,
    statements: Cell<u32>,
    fail_on: &'a str,
}

#[async_trait(?Send)]
impl Db for Probe<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        self.statements.set(self.statements.get() + 1);
        self.db.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        self.statements.set(self.statements.get() + 1);
        if !self.fail_on.is_empty() && sql.contains(self.fail_on) {
            return Err(InternalError::new("D1 execute: simulated outage"));
        }
        self.db.execute(sql, params).await
    }
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        self.statements.set(self.statements.get() + statements.len() as u32);
        self.db.batch(statements).await
    }
}

#[test]
fn one_run_deletes_at_most_its_budget_and_the_next_run_continues() {
    let env = TestEnv::new();
    let budget = ROWS_PER_BATCH * BATCHES_PER_STEP as i64;
    let backlog = budget + 7;
    sql(
        &env,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {backlog}) \
             INSERT INTO auth_requests (id, client_id, params, created_at, expires_at) \
             SELECT 'ar' || i, 'c', '{{}}', 0, {T0} FROM n"
        ),
    );
    sql(
        &env,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {backlog}) \
             INSERT INTO events (id, kind, created_at) SELECT 'e' || i, 'login', 0 FROM n"
        ),
    );
    let probe = Probe {
        db: &env.db,
        statements: Cell::new(0),
        fail_on: "",
    };
    let first = block_on(retention::run(&probe, T0, &env.settings));
    assert_eq!(first.auth_requests, budget as u64);
    assert_eq!(first.events, budget as u64);
    assert_eq!(first.unfinished, ["expired auth_requests", "old events"]);
    assert_eq!(count(&env, "auth_requests", "1"), 7);
    assert_eq!(count(&env, "events", "1"), 7);
    // Two steps used their whole budget, every other step one statement.
    let most = STEPS.len() as u32 + 2 * (BATCHES_PER_STEP - 1);
    assert_eq!(probe.statements.get(), most);

    let second = run(&env);
    assert_eq!((second.auth_requests, second.events), (7, 7));
    assert!(second.unfinished.is_empty());
}

/// A grant goes only after its tokens, so deleting it never cascades over more than its code:
/// no statement deletes an unbounded family in one go.
#[test]
fn an_expired_grant_with_a_long_family_goes_only_after_its_tokens_over_several_runs() {
    let env = TestEnv::new();
    let family = ROWS_PER_BATCH * BATCHES_PER_STEP as i64 + 1;
    sql(
        &env,
        &format!(
            "INSERT INTO grants (id, client_id, scope, created_at, expires_at) VALUES ('g', 'c', 'openid', 0, {T0})"
        ),
    );
    sql(
        &env,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {family}) \
             INSERT INTO tokens (token_hash, kind, grant_id, client_id, scope, created_at, expires_at, rotated_at) \
             SELECT 'rt' || i, 'refresh', 'g', 'c', 'openid', 0, {T0}, 1 FROM n"
        ),
    );
    let first = run(&env);
    assert_eq!((first.tokens, first.grants), (family as u64 - 1, 0));
    assert_eq!(count(&env, "grants", "1"), 1);
    let second = run(&env);
    assert_eq!((second.tokens, second.grants), (1, 1));
}

/// App sessions point at their SSO session without a foreign key: an ended SSO session is
/// deleted only once none of its app sessions is left, so none is orphaned.
#[test]
fn an_ended_sso_session_goes_only_after_all_its_app_sessions() {
    let env = TestEnv::new();
    owners(&env);
    let apps = ROWS_PER_BATCH * BATCHES_PER_STEP as i64 + 1;
    sql(
        &env,
        &format!(
            "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, ended_at) \
             VALUES ('s', 'u1', 0, 0, {}, {})",
            T0 + 1000,
            T0 - 1
        ),
    );
    sql(
        &env,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {apps}) \
             INSERT INTO app_sessions (id_hash, app_id, user_id, sso_session_hash, created_at, expires_at) \
             SELECT 'a' || i, 'app1', 'u1', 's', 0, {} FROM n",
            T0 + 1000
        ),
    );
    let first = run(&env);
    assert_eq!((first.app_sessions, first.sessions), (apps as u64 - 1, 0));
    assert_eq!(count(&env, "sessions", "1"), 1);
    let second = run(&env);
    assert_eq!((second.app_sessions, second.sessions), (1, 1));
}

/// D1 allows 50 queries per invocation on the Workers Free plan; a run with every step at its
/// budget must stay under that.
#[test]
fn a_run_with_every_table_backlogged_stays_under_the_d1_query_limit() {
    assert!(STEPS.len() as u32 * BATCHES_PER_STEP <= 50);
}

#[test]
fn a_failing_step_is_reported_and_the_others_still_run() {
    let env = TestEnv::new();
    sql(
        &env,
        &format!(
            "INSERT INTO auth_requests (id, client_id, params, created_at, expires_at) VALUES ('ar', 'c', '{{}}', 0, {T0})"
        ),
    );
    sql(
        &env,
        "INSERT INTO events (id, kind, created_at) VALUES ('e', 'login', 0)",
    );
    let probe = Probe {
        db: &env.db,
        statements: Cell::new(0),
        fail_on: "DELETE FROM auth_requests",
    };
    let report = block_on(retention::run(&probe, T0, &env.settings));
    assert_eq!(report.auth_requests, 0);
    assert_eq!(report.events, 1);
    assert_eq!(
        report.failed,
        [("expired auth_requests", "D1 execute: simulated outage".to_owned())]
    );
    assert!(report
        .to_string()
        .contains("expired auth_requests failed: D1 execute: simulated outage"));
}

/// Each step (and the cascade from a grant to its code) must find its rows through an index: a
/// table scan would make every run cost the whole table, however little it deletes.
#[test]
fn every_step_finds_its_batch_through_an_index_not_a_table_scan() {
    let env = TestEnv::new();
    for step in STEPS {
        let mut params = vec![Value::Int(ROWS_PER_BATCH)];
        params.extend(step.cutoffs.iter().map(|_| Value::Int(T0)));
        let plan = block_on(env.db.query(&format!("EXPLAIN QUERY PLAN {}", step.sql), &params)).unwrap();
        let details: Vec<&str> = plan.iter().filter_map(|r| r["detail"].as_str()).collect();
        assert!(
            details.iter().all(|d| !d.starts_with("SCAN ")),
            "{}: {details:?}",
            step.name
        );
        assert!(
            details
                .iter()
                .any(|d| d.contains("USING INDEX") || d.contains("USING COVERING INDEX")),
            "{}: {details:?}",
            step.name
        );
    }
}

#[test]
fn the_report_is_one_line_naming_every_table() {
    let report = Report {
        tokens: 3,
        unfinished: vec!["old events"],
        ..Report::default()
    };
    let line = report.to_string();
    assert!(!line.contains('\n'));
    assert_eq!(
        line,
        "retention: deleted auth_requests=0 authorization_codes=0 gateway_codes=0 tokens=3 grants=0 \
         app_sessions=0 sessions=0 totp_devices=0 email_tokens=0 webauthn_challenges=0 events=0; budget used up, next run continues: old events"
    );
}
