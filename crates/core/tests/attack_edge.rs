//! Attacks on the issue-10 edge hardening (adversarial review). Each test states the attack it
//! guards; a test here that fails marks a hole still open.

mod support;

use gatehouse_core::gateway::Outcome;
use gatehouse_core::http::{Method, Request, Response};
use serde_json::{json, Value};
use support::*;

const APP: &str = "https://app.example.com";
const PASSWORD: &str = "correct horse battery staple";

fn public_app(env: &TestEnv) {
    let r = env.admin(
        Method::Post,
        "/admin/api/apps",
        Some(json!({"name": "Wiki", "host": "app.example.com", "path_prefix": "/", "origin": "http://10.0.0.5:8080", "require_login": false})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

fn forward(o: Option<Outcome>) -> gatehouse_core::gateway::Forward {
    match o {
        Some(Outcome::Forward(f)) => f,
        Some(Outcome::Respond(r)) => panic!("answered {} {:?}", r.status, r.header("location")),
        None => panic!("not routed"),
    }
}

#[test]
fn a_client_cannot_claim_an_identity_through_another_auth_proxys_user_header() {
    // The gateway is an authenticating proxy; origins moved behind it from another one (oauth2-proxy,
    // Grafana's auth.proxy, Apache/nginx with REMOTE_USER, Cloudflare Access, IIS ARR with client
    // certificates) read who the user is from these headers, trusting the proxy to have removed a
    // client's own copy. Gatehouse already drops `X-Forwarded-User` (by its prefix) but lets the
    // equally common spellings through, so `Remote-User: admin` reaches such an origin as stated.
    let env = TestEnv::new();
    public_app(&env);
    let claims = [
        "remote-user",
        "x-remote-user",
        "x-webauth-user",
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-preferred-username",
        "x-authenticated-user",
        "cf-access-authenticated-user-email",
        "cf-access-jwt-assertion",
        "x-ms-client-principal-name",
        // Client-certificate identity as TLS-terminating proxies state it.
        "x-ssl-client-cert",
        "x-ssl-client-verify",
        "x-ssl-client-s-dn",
        "ssl-client-cert",
        "ssl-client-verify",
        "x-client-cert",
        "x-arr-clientcert",
    ];
    let mut req = Request::new(Method::Get, "/").with_header("cf-connecting-ip", "203.0.113.7");
    for name in claims {
        req = req.with_header(name, "admin");
    }
    let f = forward(env.route_at(APP, &req));
    let passed: Vec<&str> = claims
        .iter()
        .copied()
        .filter(|name| f.headers.iter().any(|(k, _)| k == name))
        .collect();
    assert!(
        passed.is_empty(),
        "identity claimed by the client reached the origin through {passed:?}"
    );
}

struct Rp {
    id: String,
    secret: String,
}

fn basic(rp: &Rp) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", rp.id, rp.secret);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

fn token_request(rp: &Rp, form: &[(&str, &str)]) -> Request {
    Request::new(Method::Post, "/oauth2/token")
        .with_header("authorization", &basic(rp))
        .with_form(form)
}

/// A client, a user, and the first tokens of a code flow (with a refresh token).
fn first_tokens(env: &TestEnv) -> (Rp, Value) {
    let (id, secret) = env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email offline_access",
        "first_party": true,
    }));
    let rp = Rp {
        id,
        secret: secret.expect("confidential client"),
    };
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256",
        rp.id,
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let mut resp: Response = b.send(env, b.request(Method::Get, &url));
    for _ in 0..4 {
        let loc = resp.header("location").expect("redirect").to_owned();
        if loc.starts_with(REDIRECT) {
            break;
        }
        resp = if loc.starts_with("/oauth2/login") {
            submit_login(env, &mut b, &loc, "alice", PASSWORD)
        } else {
            b.send(env, b.request(Method::Get, &loc))
        };
    }
    let code = query_param(resp.header("location").expect("to the client"), "code").expect("code");
    let tokens = env.send(token_request(
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    ));
    assert_eq!(tokens.status, 200, "{}", String::from_utf8_lossy(&tokens.body));
    (rp, tokens.json_body())
}

/// A refresh whose token another request (the other tab) rotates between this request's read
/// and its batch, in the same second.
fn refresh_losing_a_race(env: &TestEnv) -> Response {
    let (rp, t1) = first_tokens(env);
    let rt = t1["refresh_token"].as_str().unwrap().to_owned();
    let db = Interposed::new(&env.db);
    *db.before_batch.borrow_mut() = Some(format!(
        "UPDATE tokens SET rotated_at = {T0}, rotated_by = 'the-other-tab' WHERE kind = 'refresh' AND rotated_at IS NULL"
    ));
    env.send_with_db(
        &db,
        token_request(&rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
    )
}

#[test]
fn with_a_grace_interval_two_tabs_refreshing_at_the_same_moment_do_not_revoke_the_family() {
    // GATEHOUSE_REFRESH_GRACE is documented for "two tabs refreshing at once". When both requests
    // read the token before either rotates it, the second one's batch finds it rotated (by the
    // first, this very second) and takes the `AlreadyConsumed` path, which revokes the family and
    // records a reuse event without looking at the grace interval: exactly the case the setting
    // was meant to forgive logs the user out and raises a false alarm.
    let mut env = TestEnv::new();
    env.settings.refresh_grace = 30;
    let r = refresh_losing_a_race(&env);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'refresh_token_reuse'"),
        0,
        "a false reuse alarm within the grace interval"
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        0,
        "the family was revoked within the grace interval"
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn an_admin_edit_racing_a_disable_or_password_reset_does_not_undo_it() {
    // `PATCH /admin/api/users/{id}` reads the whole user, changes the fields asked for, and writes
    // every column back. A disable (or a password reset) that lands between that read and that
    // write, say a helpdesk locking a compromised account while a group-sync script renames or
    // regroups it, is silently overwritten: the account is enabled again (or the old, possibly
    // stolen, password works again) although the operator was told 200.
    let env = TestEnv::new();
    let id = env.create_user("mallory", PASSWORD);
    let db = Interposed::new(&env.db);
    *db.before_batch.borrow_mut() = Some(format!("UPDATE users SET disabled = 1 WHERE id = '{id}'"));
    let r = env.send_with_db(
        &db,
        TestEnv::admin_request(
            Method::Patch,
            &format!("/admin/api/users/{id}"),
            Some(json!({"name": "Renamed by the sync job"})),
        ),
    );
    assert!(r.status == 200 || r.status == 409, "{}", r.status);
    assert_eq!(
        env.db.count(&format!("SELECT disabled FROM users WHERE id = '{id}'")),
        1,
        "the concurrent disable was undone by an edit of the name"
    );
}

#[test]
fn rfc7662_a_user_disabled_while_their_token_is_introspected_makes_it_inactive() {
    // The token lookup checks the user is enabled; introspection then reads the user again for
    // `username`. A disable landing between the two reads must still answer `active: false`.
    let env = TestEnv::new();
    let (rp, t) = first_tokens(&env);
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let introspect = |db: &dyn gatehouse_core::ports::Db| {
        let req = Request::new(Method::Post, "/oauth2/introspect")
            .with_header("authorization", &basic(&rp))
            .with_form(&[("token", &rt)]);
        env.send_with_db(db, req).json_body()
    };
    assert_eq!(introspect(&env.db)["active"], true);
    let db = Interposed::new(&env.db);
    *db.before_query.borrow_mut() = Some(("FROM users WHERE id", "UPDATE users SET disabled = 1".to_owned()));
    assert_eq!(introspect(&db), json!({"active": false}));
}

#[test]
fn without_a_grace_interval_a_refresh_that_loses_a_race_is_a_replay() {
    // The same race as above with GATEHOUSE_REFRESH_GRACE=0 (the default): the token was rotated
    // by another request between this one's read and its batch, which is reuse: the family goes.
    let env = TestEnv::new();
    let r = refresh_losing_a_race(&env);
    assert_eq!(r.status, 400);
    assert_eq!(r.json_body()["error"], "invalid_grant");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'refresh_token_reuse'"),
        1
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]
fn with_a_grace_interval_an_uncontested_refresh_issues_one_set_of_tokens() {
    let mut env = TestEnv::new();
    env.settings.refresh_grace = 30;
    let (rp, t1) = first_tokens(&env);
    let rt = t1["refresh_token"].as_str().unwrap().to_owned();
    let before = env.db.count("SELECT COUNT(*) FROM tokens WHERE kind = 'refresh'");
    let r = env.send(token_request(
        &rp,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM tokens WHERE kind = 'refresh'"),
        before + 1,
        "one rotation, one new refresh token"
    );
}
