//! Attacks from an adversarial review of the fixes for the first security review (issue 9): each
//! was a hole in those fixes, demonstrated by this test failing, and is closed now. The comments
//! describe the attack as it worked.

mod support;

use gatehouse_core::http::{form_encode, Method, Request, Response};
use gatehouse_core::policy::rate_limit::Tier;
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const IP: &str = "203.0.113.7";

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn client(env: &TestEnv, extra: Value) -> String {
    let mut b = json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile email offline_access",
        "first_party": true,
    });
    if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    env.create_client(b).0
}

fn authorize_url(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20offline_access&state=st&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        form_encode(REDIRECT)
    )
}

/// The shipped page tiers (10/s burst 30, 120/min): what a real deployment enforces.
fn with_shipped_page_limits(env: &mut TestEnv) {
    env.settings.policy.page_rate_limit = vec![Tier::per_second(10, 30), Tier::per_minute(120, 120)];
}

// ---------------------------------------------------------------------------------------------
// 1. `prompt` has no size bound and is stored with the pending request.
// ---------------------------------------------------------------------------------------------

/// Finding 3 of issue 9 closed `state`, `nonce` and `login_hint`, but `prompt` is stored too
/// (`Pending.prompt`, a list) and each of its values is checked, never their number: repeating an
/// allowed value ("login login login …") stores as much as the request carries. A POST to
/// /oauth2/authorize has no body bound yet, so one request stores up to D1's 2 MB row limit, and
/// one IP may hold 50 of them: the 2 MB-`state` exhaustion of the review, with another parameter.
#[test]
fn a_repeated_prompt_value_cannot_grow_the_stored_pending_request() {
    let env = TestEnv::new();
    let client_id = client(&env, json!({}));
    let prompt = "login ".repeat(50_000); // 300 KB of allowed values
    let req = Request::new(Method::Post, "/oauth2/authorize")
        .with_header("cf-connecting-ip", IP)
        .with_form(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("prompt", &prompt),
        ]);
    let r = env.send(req);
    let stored = env
        .db
        .count("SELECT COALESCE(MAX(LENGTH(params)), 0) FROM auth_requests");
    assert!(
        stored <= 8 * 1024,
        "status {} location {:?}: a pending request of {stored} bytes was stored; prompt needs a bound \
         (or duplicates refused) like state, nonce and login_hint",
        r.status,
        r.header("location")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. CSP reports: each is bounded, their sum is not.
// ---------------------------------------------------------------------------------------------

/// Each CSP report is at most 4 KB and one IP may send 120 a minute; every one becomes an event
/// that the retention job keeps for 90 days. One IP, within the shipped limits, stores about
/// 700 MB a day (a Workers Paid D1 database holds 10 GB; Free, 500 MB), and the endpoint answers
/// on every host, with or without an app. The retention job deletes at most 3,000 events a run
/// (12,000 an hour), so two such IPs also outrun it for good once the 90 days are reached.
#[test]
fn one_ip_within_the_rate_limit_cannot_store_csp_reports_without_bound() {
    let mut env = TestEnv::new();
    with_shipped_page_limits(&mut env);
    let report = json!({"csp-report": {"document-uri": "https://app.example.com/", "blocked-uri": "x".repeat(3900)}});
    let mut accepted = 0;
    // One report a second for an hour: half the minute tier.
    for _ in 0..3600 {
        let r = env.send_at(
            "https://anything.example.net",
            Request::new(Method::Post, "/.gatehouse/csp-report")
                .with_header("cf-connecting-ip", IP)
                .with_json(&report),
        );
        if r.status == 204 {
            accepted += 1;
        }
        env.clock.advance(1);
    }
    let bytes = env
        .db
        .count("SELECT COALESCE(SUM(LENGTH(detail)), 0) FROM events WHERE kind = 'csp_report'");
    assert!(
        bytes <= 1024 * 1024,
        "{accepted} reports accepted, {bytes} bytes of CSP reports stored from one IP in one hour \
         (kept 90 days); what one IP can make Gatehouse keep must be bounded, not rate x time"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A used code replayed without the PKCE verifier still revokes the family.
// ---------------------------------------------------------------------------------------------

/// Issue 9 finding 6: "Check the client (and redirect URI and PKCE) first". The exchange checks
/// the client, then treats a used code as a replay and revokes the grant, before the redirect
/// URI and the PKCE verifier. For a public client the client check is only the public client_id,
/// so anyone who saw the (used) code (browser history, a Referer, a proxy log) revokes the
/// user's tokens at that client without the verifier that PKCE exists to require.
#[test]
fn a_leaked_used_code_without_the_pkce_verifier_cannot_revoke_the_users_tokens() {
    let env = TestEnv::new();
    let client_id = client(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&client_id, "")));
    let loc = r.header("location").unwrap().to_owned();
    let r = submit_login(&env, &mut b, &loc, "alice", PASSWORD);
    let r = b.send(&env, b.request(Method::Get, r.header("location").unwrap()));
    let code = query_param(r.header("location").unwrap(), "code").expect("code");
    let token = |form: &[(&str, &str)]| env.send(Request::new(Method::Post, "/oauth2/token").with_form(form));
    let t = token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(t.status, 200, "{}", body(&t));
    let refresh = t.json_body()["refresh_token"].as_str().expect("refresh").to_owned();

    // The attacker has the code and the public client_id, not the verifier.
    let wrong = "attacker-guess-attacker-guess-attacker-guess-0";
    let r = token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", wrong),
    ]);
    assert_eq!(r.status, 400);

    let r = token(&[
        ("grant_type", "refresh_token"),
        ("client_id", &client_id),
        ("refresh_token", &refresh),
    ]);
    assert_eq!(
        r.status,
        200,
        "a code replay that fails PKCE revoked the user's grant: {}",
        body(&r)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A nameless Set-Cookie from the origin passes the cleaning.
// ---------------------------------------------------------------------------------------------

/// `clean_origin_response` reads a cookie's name as the text before the first `=`. A nameless
/// cookie (`Set-Cookie: =gh_session=…`) has the empty name and the value `gh_session=…`;
/// browsers store it and send it back as `Cookie: gh_session=…`, which Gatehouse's cookie parser
/// reads as its session cookie. Current Chromium and Firefox refuse nameless cookies whose value
/// starts with `__Host-`/`__Secure-` (RFC 6265bis §5.7), so this matters over plain http (the
/// bare names) and for browsers without that rule.
#[test]
fn a_nameless_set_cookie_from_the_origin_cannot_set_a_gatehouse_cookie() {
    let mut headers: Vec<(String, String)> = vec![
        ("set-cookie".into(), "=gh_session=attacker.mac; Path=/".into()),
        (
            "set-cookie".into(),
            "=__Host-gh_session=attacker.mac; Path=/; Secure".into(),
        ),
        ("set-cookie".into(), " =gh_csrf=fixed; Path=/".into()),
    ];
    gatehouse_core::gateway::clean_origin_response(&mut headers);
    assert!(
        headers.is_empty(),
        "these reach the browser and come back as Gatehouse's cookies: {headers:?}"
    );
    // What the browser sends back for the first one, read by Gatehouse's own parser.
    let req = Request::new(Method::Get, "/").with_header("cookie", "gh_session=attacker.mac");
    assert_eq!(req.cookie("gh_session").as_deref(), Some("attacker.mac"));
}

/// Each stored request value has its bound, inclusive: a value of exactly the bound is taken, one
/// byte more is refused with `invalid_request` and nothing is stored.
#[test]
fn nonce_and_login_hint_of_exactly_their_bound_are_taken_and_one_byte_more_refused() {
    let env = TestEnv::new();
    let client_id = client(&env, json!({}));
    let refused = |param: &str, len: usize| {
        let r = env.send(
            Request::new(
                Method::Get,
                &authorize_url(&client_id, &format!("&{param}={}", "n".repeat(len))),
            )
            .with_header("cf-connecting-ip", IP),
        );
        r.header("location")
            .unwrap_or_default()
            .contains("error=invalid_request")
    };
    for (param, bound) in [
        ("nonce", gatehouse_core::limits::NONCE),
        ("login_hint", gatehouse_core::limits::LOGIN_HINT),
    ] {
        let before = env.db.count("SELECT COUNT(*) FROM auth_requests");
        assert!(refused(param, bound + 1), "{param} over its bound");
        assert_eq!(
            env.db.count("SELECT COUNT(*) FROM auth_requests"),
            before,
            "{param}: nothing stored"
        );
        assert!(!refused(param, bound), "{param} at its bound");
        assert_eq!(
            env.db.count("SELECT COUNT(*) FROM auth_requests"),
            before + 1,
            "{param}"
        );
    }
}
