//! The gateway through `handle` and `gateway::route`, on real SQLite: protected routes, login
//! across hosts, identity forwarding, spoofed headers, access rules, and header policy.

mod support;

use gatehouse_core::gateway::Outcome;
use gatehouse_core::http::{Method, Request, Response};
use gatehouse_core::limits;
use serde_json::json;
use support::*;

const APP: &str = "https://app.example.com";
const PASSWORD: &str = "correct horse battery staple";

fn app(env: &TestEnv, extra: serde_json::Value) -> String {
    let mut body =
        json!({"name": "Wiki", "host": "app.example.com", "path_prefix": "/wiki/", "origin": "http://10.0.0.5:8080"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = env.admin(Method::Post, "/admin/api/apps", Some(body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json_body()["id"].as_str().unwrap().to_owned()
}

fn respond(o: Option<Outcome>) -> Response {
    match o {
        Some(Outcome::Respond(r)) => r,
        Some(Outcome::Forward(f)) => panic!("forwarded to {}", f.url),
        None => panic!("not routed"),
    }
}

fn forward(o: Option<Outcome>) -> gatehouse_core::gateway::Forward {
    match o {
        Some(Outcome::Forward(f)) => f,
        Some(Outcome::Respond(r)) => panic!("answered {} {:?}", r.status, r.header("location")),
        None => panic!("not routed"),
    }
}

/// Logs in through Gatehouse and carries the login to the app's host; returns the app browser.
fn sign_in(env: &TestEnv, path: &str) -> Browser {
    let mut app_browser = Browser::default();
    let first = respond(env.route_at(APP, &app_browser.request(Method::Get, path)));
    assert_eq!(first.status, 302);
    app_browser.absorb(&first);
    let to_gateway = first.header("location").unwrap().to_owned();
    assert!(to_gateway.starts_with(&format!("{ISSUER}/oauth2/gateway?")));
    let mut idp = Browser::default();
    let login_page = idp.send(env, idp.request(Method::Get, &to_gateway));
    let login_url = login_page.header("location").unwrap().to_owned();
    let page = idp.send(env, idp.request(Method::Get, &login_url));
    assert!(
        String::from_utf8_lossy(&page.body).contains("Wiki"),
        "the login page names the app"
    );
    let posted = submit_login(env, &mut idp, &login_url, "alice", PASSWORD);
    let resume = posted.header("location").unwrap().to_owned();
    let to_callback = idp.send(env, idp.request(Method::Get, &resume));
    let callback = to_callback.header("location").unwrap().to_owned();
    assert!(
        callback.starts_with("https://app.example.com/.gatehouse/callback?code="),
        "{callback}"
    );
    let path_and_query = callback.strip_prefix(APP).unwrap();
    let req = app_browser.request(Method::Get, path_and_query);
    let done = env.send_at(APP, req);
    app_browser.absorb(&done);
    assert_eq!(done.header("location"), Some(format!("{APP}{path}").as_str()));
    assert!(app_browser.cookies.iter().any(|(k, _)| k == "__Host-gh_app"));
    app_browser
}

#[test]
fn unauthenticated_request_is_sent_to_login_and_comes_back_to_the_original_url() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/page?x=1");
    let f = forward(env.route_at(APP, &b.request(Method::Get, "/wiki/page?x=1")));
    assert_eq!(f.url, "http://10.0.0.5:8080/wiki/page?x=1");
}

#[test]
fn identity_is_forwarded_as_signed_jwt_and_plain_headers() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    let f = forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    let h = |n: &str| f.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(h("x-gatehouse-user").as_deref(), Some("alice"));
    assert_eq!(h("x-gatehouse-email").as_deref(), Some("alice@example.com"));
    let identity = h("x-gatehouse-identity").unwrap();
    // Typed as what it is (RFC 8725 §3.11): no relying party can take it for an ID token.
    let claims = futures::executor::block_on(gatehouse_core::jwt::verify_typed(
        &env.signer,
        &identity,
        T0,
        0,
        gatehouse_core::jwt::typ::GATEWAY_IDENTITY,
    ))
    .unwrap();
    assert_eq!(claims["aud"], "http://10.0.0.5:8080");
    assert_eq!(claims["preferred_username"], "alice");
    assert!(claims["exp"].as_i64().unwrap() - T0 <= 60, "short-lived");
    // An origin with an off-the-shelf JWT library verifies it against the JWKS, for its own
    // audience only, and a changed one fails there too.
    let independent = verify_with_jsonwebtoken(&env, &identity, "http://10.0.0.5:8080").unwrap();
    assert_eq!(independent["preferred_username"], "alice");
    assert!(verify_with_jsonwebtoken(&env, &identity, "http://10.0.0.6:8080").is_err());
    let mut parts: Vec<String> = identity.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert!(verify_with_jsonwebtoken(&env, &parts.join("."), "http://10.0.0.5:8080").is_err());
}

#[test]
fn spoofed_identity_headers_and_gatehouse_cookies_never_reach_the_origin() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({"require_login": false}));
    let req = Request::new(Method::Get, "/wiki/")
        .with_header("x-gatehouse-user", "admin")
        .with_header("X-Gatehouse-Identity", "forged")
        .with_header("x-gatehouse-email", "root@example.com")
        .with_header("cookie", "gh_session=abc.def; theme=dark; __Host-gh_app=x.y")
        .with_header("x-forwarded-for", "6.6.6.6")
        .with_header("x_gatehouse_user", "admin")
        .with_header("forwarded", "for=6.6.6.6;host=evil.example");
    let f = forward(env.route_at(APP, &req));
    assert!(
        f.headers.iter().all(|(k, _)| !k.starts_with("x-gatehouse-")),
        "{:?}",
        f.headers
    );
    assert_eq!(
        f.headers.iter().find(|(k, _)| k == "cookie").map(|(_, v)| v.as_str()),
        Some("theme=dark")
    );
    assert!(f.headers.iter().all(|(k, v)| k != "x-forwarded-for" || v != "6.6.6.6"));
}

#[test]
fn non_get_requests_without_session_get_401_not_a_redirect() {
    let env = TestEnv::new();
    app(&env, json!({}));
    let r = respond(env.route_at(APP, &Request::new(Method::Post, "/wiki/edit")));
    assert_eq!(r.status, 401);
    assert!(r.header("location").is_none());
}

#[test]
fn users_outside_the_allowed_lists_get_403() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({"allowed_users": ["bob"], "allowed_groups": ["staff"]}));
    let b = sign_in(&env, "/wiki/");
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert_eq!(r.status, 403);
    // Joining an allowed group lets the same session through.
    let users = env.admin(Method::Get, "/admin/api/users", None).json_body();
    let uid = users["users"][0]["id"].as_str().unwrap().to_owned();
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{uid}"),
        Some(json!({"groups": ["staff"]})),
    );
    assert_eq!(r.json_body()["groups"], json!(["staff"]));
    let f = forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert!(f.url.ends_with("/wiki/"));
}

/// An app on the issuer's host, as one stored before the admin API refused them is: the routing
/// rules must still hold for such a row.
fn legacy_app_on_issuer_host(env: &TestEnv, id: &str, prefix: &str, origin: &str) {
    env.db.exec(&format!(
        "INSERT INTO apps (id, name, host, path_prefix, origin, created_at, updated_at) \
         VALUES ('{id}', 'Local', 'id.example.com', '{prefix}', '{origin}', 0, 0)"
    ));
}

#[test]
fn on_the_issuers_host_gatehouse_paths_stay_its_own_and_unknown_hosts_are_not_routed() {
    let env = TestEnv::new();
    legacy_app_on_issuer_host(&env, "app_root", "/", "http://10.0.0.5:8080");
    for p in [
        "/oauth2/token",
        "/.well-known/openid-configuration",
        "/admin/api/users",
        "/healthz",
        "/static/gatehouse.css",
        "/.gatehouse/callback",
    ] {
        assert!(env.route_at(ISSUER, &Request::new(Method::Get, p)).is_none(), "{p}");
    }
    assert!(env
        .route_at("https://other.example.com", &Request::new(Method::Get, "/wiki/"))
        .is_none());
    let r = env.admin(
        Method::Post,
        "/admin/api/apps",
        Some(json!({"name": "x", "host": "h.example.com", "path_prefix": "/oauth2/", "origin": "http://o:1"})),
    );
    assert_eq!(r.status, 400, "reserved prefixes cannot be claimed");
}

#[test]
fn an_app_host_serves_no_login_admin_or_discovery_of_gatehouse_only_its_app_and_dot_gatehouse() {
    // The SSO login form, its cookies and the admin API must never live in an app's web origin,
    // where a compromised app (a service worker, a script) could read what is typed there.
    let env = TestEnv::new();
    app(&env, json!({"path_prefix": "/"}));
    for p in [
        "/oauth2/authorize?client_id=x",
        "/oauth2/login?req=x",
        "/oauth2/token",
        "/admin/api/users",
        "/.well-known/openid-configuration",
        "/healthz",
    ] {
        let mut req = Request::new(Method::Get, p);
        req = req.with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
        assert_eq!(
            env.send_at(APP, req.clone()).status,
            404,
            "{p} is not Gatehouse's on an app host"
        );
        // ...it is the app's, like any other path there.
        let to_login = respond(env.route_at(APP, &req));
        assert_eq!(to_login.status, 302, "{p}");
    }
    assert!(
        env.route_at(APP, &Request::new(Method::Get, "/.gatehouse/callback"))
            .is_none(),
        "/.gatehouse/ stays Gatehouse's on every host"
    );
    assert_eq!(
        env.send_at(APP, Request::new(Method::Get, "/.gatehouse/callback?code=x"))
            .status,
        400
    );
}

#[test]
fn cwe_601_gateway_return_to_must_be_the_same_app() {
    let env = TestEnv::new();
    let id = app(&env, json!({}));
    for bad in [
        "https://evil.example/wiki/",
        "https://app.example.com/other/",
        "https://app.example.com@evil.example/wiki/",
        "https://app.example.com/wiki/../admin",
    ] {
        let url = format!(
            "/oauth2/gateway?app={id}&return_to={}",
            gatehouse_core::http::form_encode(bad)
        );
        let r = env.send(Request::new(Method::Get, &url));
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("location").is_none(), "{bad}");
    }
}

#[test]
fn gateway_codes_are_single_use_and_bound_to_the_apps_host() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    // A valid code presented on another host does nothing; it stays good on its own host, once.
    let mut app_browser = Browser::default();
    let first = respond(env.route_at(APP, &app_browser.request(Method::Get, "/wiki/")));
    app_browser.absorb(&first);
    let mut idp = Browser::default();
    let to_login = idp.send(&env, idp.request(Method::Get, first.header("location").unwrap()));
    let posted = submit_login(&env, &mut idp, to_login.header("location").unwrap(), "alice", PASSWORD);
    let cb = idp.send(&env, idp.request(Method::Get, posted.header("location").unwrap()));
    let path = cb.header("location").unwrap().strip_prefix(APP).unwrap().to_owned();
    let elsewhere = env.send_at("https://evil.example", Request::new(Method::Get, &path));
    assert_eq!(elsewhere.status, 400);
    let own = env.send_at(APP, app_browser.request(Method::Get, &path));
    assert_eq!(own.status, 303, "not burned by the attempt elsewhere");
    let replay = env.send_at(APP, app_browser.request(Method::Get, &path));
    assert_eq!(replay.status, 400, "single use");
    assert_eq!(env.db.count("SELECT COUNT(*) FROM app_sessions"), 1);
}

#[test]
fn logging_out_of_gatehouse_ends_the_app_session() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    env.db.count("SELECT COUNT(*) FROM app_sessions");
    // End every SSO session (what logout does for the user's session).
    let uid = env.user_id("alice");
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{uid}"),
        Some(json!({"password": "a brand new password"})),
    );
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert_eq!(r.status, 302);
}

#[test]
fn an_app_stored_on_gatehouses_own_host_before_the_refusal_accepts_the_sso_session_directly() {
    // The admin API now refuses such an app (see admin_api.rs); one already stored keeps working.
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    legacy_app_on_issuer_host(&env, "app_local", "/app/", "http://127.0.0.1:9");
    let rp = env.create_client(json!({"redirect_uris": [REDIRECT], "first_party": true}));
    let mut b = Browser::default();
    let r = b.send(
        &env,
        b.request(
            Method::Get,
            &format!(
                "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid",
                rp.0,
                gatehouse_core::http::form_encode(REDIRECT)
            ),
        ),
    );
    submit_login(&env, &mut b, r.header("location").unwrap(), "alice", PASSWORD);
    let f = forward(env.route_at(ISSUER, &b.request(Method::Get, "/app/x")));
    assert_eq!(f.url, "http://127.0.0.1:9/app/x");
}

#[test]
fn own_pages_carry_security_headers_and_a_nonce_csp() {
    let env = TestEnv::new();
    let r = env.send(Request::new(Method::Get, "/oauth2/authorize?client_id=nobody"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r
        .header("strict-transport-security")
        .unwrap()
        .starts_with("max-age=31536000"));
}

#[test]
fn cors_only_for_listed_origins_and_never_on_authorize() {
    let mut env = TestEnv::new();
    env.settings.cors_origins = vec!["https://spa.example.com".into()];
    let pre = |origin: &str, path: &str| {
        env.send(
            Request::new(Method::Options, path)
                .with_header("origin", origin)
                .with_header("access-control-request-method", "POST"),
        )
    };
    let ok = pre("https://spa.example.com", "/oauth2/token");
    assert_eq!(ok.status, 204);
    assert!(ok.header("access-control-allow-methods").is_some());
    let r = env.send(
        Request::new(Method::Post, "/oauth2/token")
            .with_header("origin", "https://spa.example.com")
            .with_form(&[("grant_type", "x")]),
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("https://spa.example.com"));
    let r = env.send(
        Request::new(Method::Post, "/oauth2/token")
            .with_header("origin", "https://evil.example")
            .with_form(&[("grant_type", "x")]),
    );
    assert!(r.header("access-control-allow-origin").is_none(), "never reflected");
    let r = env.send(Request::new(Method::Get, "/oauth2/authorize").with_header("origin", "https://spa.example.com"));
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn csp_reports_are_recorded_as_events_for_trialling_a_policy() {
    let env = TestEnv::new();
    app(&env, json!({}));
    let report =
        json!({"csp-report": {"document-uri": "https://app.example.com/wiki/", "violated-directive": "script-src"}});
    let r = env.send_at(
        APP,
        Request::new(Method::Post, "/.gatehouse/csp-report").with_json(&report),
    );
    assert_eq!(r.status, 204);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'csp_report'"), 1);
    let garbage =
        Request::new(Method::Post, "/.gatehouse/csp-report").with_header("content-type", "application/csp-report");
    assert_eq!(
        env.send_at(APP, garbage).status,
        204,
        "malformed reports are kept, never an error"
    );
}

#[test]
fn login_csrf_a_gateway_code_only_signs_in_the_browser_that_started_the_login() {
    // The attacker starts a login on the app host, signs in as themselves, and sends the
    // callback URL to a victim: the victim's browser lacks the binding cookie, so nothing happens.
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let mut attacker = Browser::default();
    let first = respond(env.route_at(APP, &attacker.request(Method::Get, "/wiki/")));
    attacker.absorb(&first);
    let mut idp = Browser::default();
    let to_login = idp.send(&env, idp.request(Method::Get, first.header("location").unwrap()));
    let posted = submit_login(&env, &mut idp, to_login.header("location").unwrap(), "alice", PASSWORD);
    let cb = idp.send(&env, idp.request(Method::Get, posted.header("location").unwrap()));
    let path = cb.header("location").unwrap().strip_prefix(APP).unwrap().to_owned();
    let mut victim = Browser::default();
    let r = env.send_at(APP, victim.request(Method::Get, &path));
    victim.absorb(&r);
    assert_eq!(r.status, 400);
    assert!(victim.cookies.iter().all(|(k, _)| k != "__Host-gh_app"));
    // And the gateway entry point refuses a login that is not bound to a browser at all.
    let unbound = first
        .header("location")
        .unwrap()
        .split("&bind=")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(idp.send(&env, idp.request(Method::Get, &unbound)).status, 400);
}

#[test]
fn path_confusion_encoded_dotted_or_recased_paths_never_bypass_a_protected_prefix() {
    let env = TestEnv::new();
    app(
        &env,
        json!({"name": "Public", "path_prefix": "/", "require_login": false}),
    );
    app(&env, json!({"name": "Admin", "path_prefix": "/admin-panel/"}));
    for p in [
        "/%61dmin-panel/secret",
        "/x/../admin-panel/secret",
        "/./admin-panel/",
        "/admin-panel%2Fsecret",
        "/x;/admin-panel/",
        "//admin-panel/",
    ] {
        let r = respond(env.route_at(APP, &Request::new(Method::Get, p)));
        assert_eq!(r.status, 400, "{p}");
    }
    let r = respond(env.route_at(APP, &Request::new(Method::Get, "/ADMIN-PANEL/secret")));
    assert_eq!(r.status, 302, "a re-cased path still belongs to the protected app");
    assert!(matches!(
        env.route_at(APP, &Request::new(Method::Get, "/public%20page")),
        Some(Outcome::Forward(_))
    ));
}

#[test]
fn a_disabled_app_answers_503_instead_of_falling_through_to_a_broader_public_app() {
    // `/` is public and `/console/` restricted on the same host. Disabling `/console/` must not
    // make `/console/*` match `/` and reach the origin anonymously.
    let env = TestEnv::new();
    app(
        &env,
        json!({"name": "Site", "path_prefix": "/", "require_login": false}),
    );
    let console = app(&env, json!({"name": "Console", "path_prefix": "/console/"}));
    let r = env.admin(
        Method::Put,
        &format!("/admin/api/apps/{console}"),
        Some(
            json!({"name": "Console", "host": "app.example.com", "path_prefix": "/console/",
                    "origin": "http://10.0.0.5:8080", "disabled": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for p in ["/console/", "/console/users", "/console"] {
        let r = respond(env.route_at(APP, &Request::new(Method::Get, p)));
        assert_eq!(r.status, 503, "{p}");
        assert!(String::from_utf8_lossy(&r.body).contains("Console is not available"));
    }
    // The public app still serves the rest; deleting the console app removes its match.
    forward(env.route_at(APP, &Request::new(Method::Get, "/about")));
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/apps/{console}"), None)
            .status,
        204
    );
    forward(env.route_at(APP, &Request::new(Method::Get, "/console/")));
}

#[test]
fn an_oversized_csp_report_is_refused_with_413_and_nothing_is_kept() {
    let env = TestEnv::new();
    let big = json!({"csp-report": {"document-uri": "x".repeat(5000)}});
    let r = env.send_at(
        APP,
        Request::new(Method::Post, "/.gatehouse/csp-report").with_json(&big),
    );
    assert_eq!(r.status, 413);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events"), 0);
}

#[test]
fn an_oversized_gateway_return_url_is_refused_and_stores_nothing() {
    let env = TestEnv::new();
    let id = app(&env, json!({}));
    let long = format!("https://app.example.com/wiki/{}", "a".repeat(3000));
    let url = format!(
        "/oauth2/gateway?app={id}&return_to={}&bind={}",
        gatehouse_core::http::form_encode(&long),
        "b".repeat(43)
    );
    let r = env.send(Request::new(Method::Get, &url));
    assert_eq!(r.status, 400);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0);
}

#[test]
fn a_csp_report_and_a_return_url_of_exactly_their_bound_are_taken() {
    let env = TestEnv::new();
    let id = app(&env, json!({}));
    // A report of exactly limits::CSP_REPORT bytes is kept; one more byte is refused.
    let report = |len: usize| {
        let skeleton = json!({"csp-report": {"document-uri": ""}}).to_string();
        let filled = json!({"csp-report": {"document-uri": "x".repeat(len - skeleton.len())}});
        let mut req = Request::new(Method::Post, "/.gatehouse/csp-report").with_json(&filled);
        assert_eq!(req.body.len(), len);
        req.body.truncate(len);
        req
    };
    assert_eq!(env.send_at(APP, report(limits::CSP_REPORT)).status, 204);
    assert_eq!(env.send_at(APP, report(limits::CSP_REPORT + 1)).status, 413);

    // A return URL of exactly limits::RETURN_URL characters starts the sign-in.
    let start = |len: usize| {
        let base = "https://app.example.com/wiki/";
        let url = format!("{base}{}", "a".repeat(len - base.len()));
        let path = format!(
            "/oauth2/gateway?app={id}&return_to={}&bind={}",
            gatehouse_core::http::form_encode(&url),
            "b".repeat(43)
        );
        env.send(Request::new(Method::Get, &path)).status
    };
    assert_eq!(start(limits::RETURN_URL + 1), 400);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0);
    assert_ne!(start(limits::RETURN_URL), 400);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 1);
}

#[test]
fn gateway_app_changes_are_audited_with_the_change() {
    let env = TestEnv::new();
    let id = app(&env, json!({}));
    let r = env.admin(
        Method::Put,
        &format!("/admin/api/apps/{id}"),
        Some(json!({"name": "Wiki", "host": "app.example.com", "path_prefix": "/wiki/", "origin": "http://10.0.0.6"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/apps/{id}"), None).status,
        204
    );
    for kind in ["admin_app_created", "admin_app_replaced", "admin_app_deleted"] {
        let n = env.db.count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = '{kind}' AND detail LIKE '%{id}%'"
        ));
        assert_eq!(n, 1, "{kind}");
    }
}

#[test]
fn csp_reports_are_taken_only_on_an_app_host_cut_short_and_bounded_per_host_and_hour() {
    // Anyone's browser can send reports: what they make Gatehouse keep must not be rate x time.
    let env = TestEnv::new();
    let post = |origin: &str, report: &serde_json::Value| {
        env.send_at(
            origin,
            Request::new(Method::Post, "/.gatehouse/csp-report").with_json(report),
        )
    };
    let report = json!({"csp-report": {"document-uri": "https://app.example.com/wiki/", "blocked-uri": "x".repeat(3000),
                                      "violated-directive": "script-src", "line-number": 7, "junk": "y".repeat(500)}});
    assert_eq!(
        post("https://anything.example.net", &report).status,
        404,
        "no app on that host"
    );
    app(&env, json!({}));
    assert_eq!(post(APP, &report).status, 204);
    let kept = env.db.text("SELECT detail FROM events WHERE kind = 'csp_report'");
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["report"]["violated"], "script-src");
    assert_eq!(kept["report"]["line"], 7);
    assert_eq!(kept["report"]["blocked"].as_str().unwrap().len(), 256);
    assert!(kept["report"].get("junk").is_none());
    // The Reporting API's shape is read too.
    let api = json!([{"type": "csp-violation", "body": {"documentURL": "https://app.example.com/", "effectiveDirective": "img-src"}}]);
    assert_eq!(post(APP, &api).status, 204);
    // An hour holds at most CSP_REPORTS_PER_HOUR stored reports per host; the rest are dropped.
    for _ in 0..200 {
        assert_eq!(post(APP, &report).status, 204);
    }
    let per_hour = gatehouse_core::limits::CSP_REPORTS_PER_HOUR as i64;
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'csp_report'"),
        per_hour
    );
    env.clock.advance(3600);
    post(APP, &report);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'csp_report'"),
        per_hour + 1
    );
}

#[test]
fn a_gateway_code_presented_by_another_browser_is_refused_and_stays_redeemable_by_its_own() {
    // Whoever sees the callback URL (a log, a Referer) must not be able to burn the code.
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let mut owner = Browser::default();
    let first = respond(env.route_at(APP, &owner.request(Method::Get, "/wiki/")));
    owner.absorb(&first);
    let mut idp = Browser::default();
    let to_login = idp.send(&env, idp.request(Method::Get, first.header("location").unwrap()));
    let posted = submit_login(&env, &mut idp, to_login.header("location").unwrap(), "alice", PASSWORD);
    let cb = idp.send(&env, idp.request(Method::Get, posted.header("location").unwrap()));
    let path = cb.header("location").unwrap().strip_prefix(APP).unwrap().to_owned();
    let stranger = Browser::default();
    assert_eq!(env.send_at(APP, stranger.request(Method::Get, &path)).status, 400);
    let r = env.send_at(APP, owner.request(Method::Get, &path));
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        env.send_at(APP, owner.request(Method::Get, &path)).status,
        400,
        "and it is single use"
    );
}

#[test]
fn a_restricted_prefix_written_in_another_case_still_reaches_its_own_app() {
    // An origin that folds case (IIS) must not see /CONSOLE/ served by the public app beside it.
    let env = TestEnv::new();
    app(
        &env,
        json!({"name": "Site", "path_prefix": "/", "require_login": false}),
    );
    app(&env, json!({"name": "Console", "path_prefix": "/console/"}));
    for p in ["/CONSOLE/", "/Console/users", "/console"] {
        let r = respond(env.route_at(APP, &Request::new(Method::Get, p)));
        assert_eq!(r.status, 302, "{p} asks for a sign-in, as the console does");
    }
}
fn header<'a>(f: &'a gatehouse_core::gateway::Forward, name: &str) -> Vec<&'a str> {
    f.headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn a_client_cannot_tell_the_origin_its_ip_through_x_real_ip_or_true_client_ip() {
    // An origin that logs, rate-limits or allow-lists by X-Real-IP (nginx's real_ip module) or
    // True-Client-IP would take the client's word for its address. Only Gatehouse's own
    // X-Forwarded-For, the address it judged the client by, reaches the origin.
    let env = TestEnv::new();
    app(&env, json!({"require_login": false}));
    let mut req = Request::new(Method::Get, "/wiki/").with_header("cf-connecting-ip", "203.0.113.7");
    let spoofed = [
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
        "client-ip",
        "x-forwarded",
        "forwarded-for",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "cf-connecting-ipv6",
        "cf-pseudo-ipv4",
        "wl-proxy-client-ip",
        "x-proxyuser-ip",
    ];
    for name in spoofed {
        req = req.with_header(name, "10.0.0.1");
    }
    let f = forward(env.route_at(APP, &req));
    for name in spoofed {
        if name.starts_with("x-forwarded-") && name != "x-forwarded-port" {
            continue;
        }
        assert!(
            header(&f, name).is_empty(),
            "{name} reached the origin: {:?}",
            f.headers
        );
    }
    assert!(
        header(&f, "cf-connecting-ip").is_empty(),
        "stated once, in X-Forwarded-For"
    );
    assert_eq!(header(&f, "x-forwarded-for"), vec!["203.0.113.7"]);
    assert_eq!(header(&f, "x-forwarded-host"), vec!["app.example.com"]);
    assert_eq!(header(&f, "x-forwarded-proto"), vec!["https"]);
}

#[test]
fn a_path_override_header_cannot_make_the_origin_serve_another_apps_path() {
    // `/` is public and `/admin-panel/` protected on the same origin. IIS and Symfony route by
    // X-Original-URL / X-Rewrite-URL when present: a public request carrying one would be served
    // the protected path without a login.
    let env = TestEnv::new();
    app(
        &env,
        json!({"name": "Public", "path_prefix": "/", "require_login": false}),
    );
    app(&env, json!({"name": "Admin", "path_prefix": "/admin-panel/"}));
    let req = Request::new(Method::Get, "/about")
        .with_header("x-original-url", "/admin-panel/users")
        .with_header("x-rewrite-url", "/admin-panel/users");
    let f = forward(env.route_at(APP, &req));
    assert!(header(&f, "x-original-url").is_empty() && header(&f, "x-rewrite-url").is_empty());
}

#[test]
fn headers_named_in_connection_are_not_forwarded() {
    // RFC 9110 §7.6.1: a header the Connection header names is for this hop only. Naming
    // Gatehouse's own headers must not remove them (they are added after the cleaning).
    let env = TestEnv::new();
    app(&env, json!({"require_login": false}));
    let req = Request::new(Method::Get, "/wiki/")
        .with_header("cf-connecting-ip", "203.0.113.7")
        .with_header("connection", "keep-alive, X-Hop-Secret")
        .with_header("connection", "x-forwarded-for,  x-forwarded-proto")
        .with_header("x-hop-secret", "for the proxy only")
        .with_header("keep-alive", "timeout=5")
        .with_header("proxy-authorization", "Basic cHJveHk6cHc=")
        .with_header("proxy-anything", "x")
        .with_header("te", "trailers")
        .with_header("upgrade", "websocket")
        .with_header("accept", "text/html");
    let f = forward(env.route_at(APP, &req));
    for name in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-anything",
        "te",
        "upgrade",
    ] {
        assert!(header(&f, name).is_empty(), "{name}: {:?}", f.headers);
    }
    assert_eq!(header(&f, "accept"), vec!["text/html"]);
    assert_eq!(header(&f, "x-forwarded-for"), vec!["203.0.113.7"]);
    assert_eq!(header(&f, "x-forwarded-proto"), vec!["https"]);
}

#[test]
fn an_origin_response_passes_no_hop_by_hop_header_nor_one_its_connection_header_names() {
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let mut headers = pairs(&[
        ("connection", "close, X-Internal-Route"),
        ("x-internal-route", "backend-7"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("proxy-authenticate", "Basic"),
        ("proxy-status", "origin"),
        ("upgrade", "h2c"),
        ("trailer", "x-checksum"),
        ("content-type", "text/html"),
        ("content-length", "12"),
    ]);
    gatehouse_core::gateway::clean_origin_response(&mut headers);
    assert_eq!(
        headers,
        pairs(&[("content-type", "text/html"), ("content-length", "12")])
    );
}

#[test]
fn a_webdav_method_is_never_taken_for_get() {
    // worker::Method turned PROPFIND into GET: without a session it was redirected to log in
    // like a page load, and with one forwarded as a GET with a body (502). The core sees it as
    // a method of its own: 401 without a session (it cannot be replayed after a redirect), and
    // the gateway forwards the client's own token.
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    for m in ["PROPFIND", "MKCOL", "PURGE", "SEARCH", "REPORT"] {
        let r = respond(env.route_at(APP, &Request::new(Method::parse(m), "/wiki/dav/")));
        assert_eq!(r.status, 401, "{m}");
        assert!(r.header("location").is_none(), "{m}");
    }
    let b = sign_in(&env, "/wiki/");
    forward(env.route_at(APP, &b.request(Method::parse("PROPFIND"), "/wiki/dav/")));
    let refusal = |m: &str| gatehouse_core::gateway::method_refusal(m).map(|r| r.status);
    let longest = "A".repeat(32);
    for m in ["PROPFIND", "MKCOL", "PURGE", "X-CUSTOM_1", "propfind", &longest] {
        assert_eq!(refusal(m), None, "{m}");
    }
    for m in [
        "",
        "GET /x",
        "GET\r\nX: y",
        "PROP(FIND)",
        "M\u{e9}THOD",
        &"A".repeat(33),
    ] {
        assert_eq!(refusal(m), Some(400), "{m:?}");
    }
    for m in ["TRACE", "track", "CONNECT"] {
        assert_eq!(
            refusal(m),
            Some(405),
            "{m}: fetch cannot send it, and TRACE echoes credentials"
        );
    }
}

#[test]
fn an_internationalised_email_reaches_the_origin_percent_encoded_not_as_a_failed_header() {
    // A user with an IDN address (legal, RFC 6531) went into the header as raw UTF-8: the origin
    // read it as Latin-1 (`josÃ©`), and `Headers.append` as the Fetch standard has it throws on
    // characters above U+00FF. The header is percent-encoded UTF-8 (and `%` itself); the signed
    // identity carries the exact address.
    let env = TestEnv::new();
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "alice", "email": "josé+100%@例え.jp", "password": PASSWORD})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    let f = forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert_eq!(
        header(&f, "x-gatehouse-email"),
        vec!["jos%C3%A9+100%25@%E4%BE%8B%E3%81%88.jp"]
    );
    assert_eq!(
        header(&f, "x-gatehouse-user"),
        vec!["alice"],
        "ASCII without % reads as it is"
    );
    for (_, v) in &f.headers {
        assert!(v.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{v:?}");
    }
    let jwt = header(&f, "x-gatehouse-identity")[0];
    let claims = futures::executor::block_on(gatehouse_core::jwt::verify(&env.signer, jwt, T0, 0)).unwrap();
    assert_eq!(claims["email"], "josé+100%@例え.jp");
}

#[test]
fn a_return_url_outside_ascii_becomes_a_percent_encoded_location_not_raw_utf8() {
    // A return_to with characters outside ASCII passed validation and went into `Location` as
    // raw UTF-8 (read as Latin-1 by the browser: another URL; refused by a strict
    // `Headers.append`, after the code was burnt).
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let mut app_browser = Browser::default();
    let first = respond(env.route_at(APP, &app_browser.request(Method::Get, "/wiki/")));
    app_browser.absorb(&first);
    let to_gateway = first.header("location").unwrap().replace(
        &gatehouse_core::http::form_encode("https://app.example.com/wiki/"),
        &gatehouse_core::http::form_encode("https://app.example.com/wiki/日本?q=é"),
    );
    let mut idp = Browser::default();
    let to_login = idp.send(&env, idp.request(Method::Get, &to_gateway));
    let posted = submit_login(&env, &mut idp, to_login.header("location").unwrap(), "alice", PASSWORD);
    let cb = idp.send(&env, idp.request(Method::Get, posted.header("location").unwrap()));
    let path = cb.header("location").unwrap().strip_prefix(APP).unwrap().to_owned();
    let done = env.send_at(APP, app_browser.request(Method::Get, &path));
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location"),
        Some("https://app.example.com/wiki/%E6%97%A5%E6%9C%AC?q=%C3%A9")
    );
}

/// Follows redirects on the issuer's host until one leaves it (or a page answers).
fn follow_idp(env: &TestEnv, b: &mut Browser, mut r: Response) -> Response {
    for _ in 0..6 {
        match r.header("location").map(str::to_owned) {
            Some(l) if l.starts_with('/') || l.starts_with(ISSUER) => {
                r = b.send(env, b.request(Method::Get, l.strip_prefix(ISSUER).unwrap_or(&l)));
            }
            _ => return r,
        }
    }
    r
}

#[test]
fn an_app_that_requires_mfa_sends_a_session_without_a_second_factor_to_sign_in_and_asks_for_one() {
    use gatehouse_core::ports::Clock;
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let alice = env.user_id("alice");
    app(&env, json!({}));
    let strict = app(
        &env,
        json!({"name": "Payroll", "path_prefix": "/pay/", "require_mfa": true}),
    );
    // A password is enough for the wiki; the app session on this host is live.
    let mut b = sign_in(&env, "/wiki/");
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));

    // The strict app on the same host does not take that session: sign in again.
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/pay/")));
    assert_eq!(r.status, 302);
    b.absorb(&r);
    let to_gateway = r.header("location").unwrap().to_owned();
    assert!(to_gateway.contains(&format!("app={strict}")), "{to_gateway}");
    let mut idp = Browser::default();
    let login = idp.send(&env, idp.request(Method::Get, &to_gateway));
    let r = submit_login(&env, &mut idp, &location_of(&login), "alice", PASSWORD);
    let enroll = location_of(&r);
    assert!(
        enroll.starts_with("/oauth2/mfa/enroll?req="),
        "a user without one enrolls: {enroll}"
    );
    // (Enrolled elsewhere meanwhile: the flow now asks for a code.)
    let secret = add_confirmed_device(&env, &alice);
    let mfa = enroll.replace("/oauth2/mfa/enroll", "/oauth2/mfa");
    let page = String::from_utf8_lossy(&idp.send(&env, idp.request(Method::Get, &mfa)).body).to_string();
    let r = idp.send(
        &env,
        idp.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &secret.code_at(env.clock.now() as u64).unwrap()),
        ]),
    );
    let to_callback = follow_idp(&env, &mut idp, r);
    let callback = location_of(&to_callback);
    assert!(
        callback.starts_with("https://app.example.com/.gatehouse/callback?code="),
        "{callback}"
    );
    let done = env.send_at(APP, b.request(Method::Get, callback.strip_prefix(APP).unwrap()));
    b.absorb(&done);
    let f = forward(env.route_at(APP, &b.request(Method::Get, "/pay/")));
    assert!(f.url.ends_with("/pay/"));

    // With second factors off, the app cannot be satisfied: its sign-in is refused, not waved through.
    let mut off = TestEnv::new();
    off.settings.mfa = gatehouse_core::flow::plan::MfaMode::Off;
    off.create_user("alice", PASSWORD);
    app(&off, json!({"require_mfa": true}));
    let first = respond(off.route_at(APP, &Browser::default().request(Method::Get, "/wiki/")));
    let mut idp = Browser::default();
    let login = idp.send(&off, idp.request(Method::Get, first.header("location").unwrap()));
    let r = submit_login(&off, &mut idp, &location_of(&login), "alice", PASSWORD);
    let refused = follow_idp(&off, &mut idp, r);
    assert_eq!(refused.status, 403);
    assert!(String::from_utf8_lossy(&refused.body).contains("requires a second factor"));

    // require_mfa means nothing without require_login: refused when the app is saved.
    let r = env.admin(
        Method::Post,
        "/admin/api/apps",
        Some(
            json!({"name": "Open", "host": "open.example.com", "origin": "http://o:1",
                    "require_login": false, "require_mfa": true}),
        ),
    );
    assert_eq!(r.status, 400);
}

fn location_of(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, String::from_utf8_lossy(&r.body)))
        .to_owned()
}

#[test]
fn a_member_of_a_group_that_requires_mfa_is_sent_to_sign_in_again_from_a_password_only_session() {
    let mut env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    // Alice joins a group whose members need a second factor: her session has none.
    let alice = env.user_id("alice");
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{alice}"),
        Some(json!({"groups": ["finance"]})),
    );
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    env.settings.mfa_required_groups = vec!["finance".into()];
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with(&format!("{ISSUER}/oauth2/gateway?")));
    // Another group's rule is not hers.
    env.settings.mfa_required_groups = vec!["ops".into()];
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
}

#[test]
fn on_the_issuers_own_host_an_app_that_requires_mfa_checks_the_sso_session_too() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    legacy_app_on_issuer_host(&env, "app_local", "/local/", "http://10.0.0.5:8080");
    env.db.exec("UPDATE apps SET require_mfa = 1");
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, "/account"));
    submit_login(&env, &mut b, r.header("location").unwrap(), "alice", PASSWORD);
    let r = respond(env.route_at(ISSUER, &b.request(Method::Get, "/local/x")));
    assert_eq!(r.status, 302, "a password-only SSO session is not enough");
    env.db.exec("UPDATE apps SET require_mfa = 0");
    forward(env.route_at(ISSUER, &b.request(Method::Get, "/local/x")));
}

#[test]
fn an_app_disabled_while_its_user_signs_in_gets_no_code() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let first = respond(env.route_at(APP, &Browser::default().request(Method::Get, "/wiki/")));
    let mut idp = Browser::default();
    let login = idp.send(&env, idp.request(Method::Get, first.header("location").unwrap()));
    env.db.exec("UPDATE apps SET disabled = 1");
    let r = submit_login(&env, &mut idp, &location_of(&login), "alice", PASSWORD);
    let resume = location_of(&r);
    assert!(resume.starts_with("/oauth2/gateway/resume"), "{resume}");
    let r = idp.send(&env, idp.request(Method::Get, &resume));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("unknown application"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM gateway_codes"), 0);
}

/// Signs in for the app up to its callback: the app-host browser and the callback's path.
fn up_to_callback(env: &TestEnv, path: &str) -> (Browser, String) {
    let mut app_browser = Browser::default();
    let first = respond(env.route_at(APP, &app_browser.request(Method::Get, path)));
    app_browser.absorb(&first);
    let mut idp = Browser::default();
    let login = idp.send(env, idp.request(Method::Get, first.header("location").unwrap()));
    let r = submit_login(env, &mut idp, &location_of(&login), "alice", PASSWORD);
    let to_callback = idp.send(env, idp.request(Method::Get, &location_of(&r)));
    let callback = location_of(&to_callback);
    (app_browser, callback.strip_prefix(APP).unwrap().to_owned())
}

#[test]
fn a_gateway_code_lives_sixty_seconds_and_the_app_session_as_long_as_the_sso_session() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    // 59 seconds on: still good; the app cookie lives as long as the SSO session has left.
    let (b, callback) = up_to_callback(&env, "/wiki/");
    env.clock.advance(59);
    let done = env.send_at(APP, b.request(Method::Get, &callback));
    assert_eq!(done.status, 303, "{}", String::from_utf8_lossy(&done.body));
    let ttl = env.settings.session_ttl;
    let app_cookie = done
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.contains("gh_app="))
        .map(|(_, v)| v.clone())
        .expect("app session cookie");
    assert!(app_cookie.contains(&format!("Max-Age={}", ttl - 59)), "{app_cookie}");
    // Exactly 60 seconds on: expired.
    let (b, callback) = up_to_callback(&env, "/wiki/");
    env.clock.advance(60);
    let late = env.send_at(APP, b.request(Method::Get, &callback));
    assert_eq!(late.status, 400);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM app_sessions"), 1);
}

#[test]
fn a_password_session_is_not_taken_behind_the_gateway_once_its_user_is_passkey_only() {
    let mut env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    // The deployment goes passkey-only: the app session from a password sign-in is sent to sign
    // in again, where only a passkey will do.
    env.settings.passkey_only = true;
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with(&format!("{ISSUER}/oauth2/gateway?")));
}

#[test]
fn on_the_issuers_host_a_session_that_meets_the_second_factor_rule_is_taken_and_one_that_does_not_is_not() {
    use gatehouse_core::ports::Clock;
    let mut env = TestEnv::new();
    env.settings.mfa_required_groups = vec!["ops".into()];
    for name in ["alice", "bob"] {
        let r = env.admin(
            Method::Post,
            "/admin/api/users",
            Some(json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD})),
        );
        assert_eq!(r.status, 201);
    }
    let alice = env.user_id("alice");
    let secret = add_confirmed_device(&env, &alice);
    env.db
        .exec(&format!("UPDATE users SET groups = '[\"ops\"]' WHERE id = '{alice}'"));
    legacy_app_on_issuer_host(&env, "app_local", "/app/", "http://127.0.0.1:9");
    let rp = env.create_client(json!({"redirect_uris": [REDIRECT], "first_party": true}));
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid",
        rp.0,
        gatehouse_core::http::form_encode(REDIRECT)
    );
    // Alice passes her password and a code: the app on the issuer's host takes her session.
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize));
    let r = submit_login(&env, &mut b, r.header("location").unwrap(), "alice", PASSWORD);
    let mfa = r.header("location").unwrap().to_owned();
    assert!(mfa.starts_with("/oauth2/mfa"), "{mfa}");
    let page = String::from_utf8_lossy(&b.send(&env, b.request(Method::Get, &mfa)).body).to_string();
    b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &secret.code_at(env.clock.now() as u64).unwrap()),
        ]),
    );
    let f = forward(env.route_at(ISSUER, &b.request(Method::Get, "/app/x")));
    assert_eq!(f.url, "http://127.0.0.1:9/app/x");
    // Bob signed in with a password before his group came to need a second factor: not taken.
    let mut bob = Browser::default();
    let r = bob.send(&env, bob.request(Method::Get, &authorize));
    submit_login(&env, &mut bob, r.header("location").unwrap(), "bob", PASSWORD);
    forward(env.route_at(ISSUER, &bob.request(Method::Get, "/app/x")));
    env.db
        .exec("UPDATE users SET groups = '[\"ops\"]' WHERE username = 'bob'");
    let r = respond(env.route_at(ISSUER, &bob.request(Method::Get, "/app/x")));
    assert_eq!(r.status, 302);
}

#[test]
fn the_apps_policy_bindings_hold_on_every_request_for_a_session_made_before_them() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let id = app(&env, json!({}));
    let b = sign_in(&env, "/wiki/");
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    // Bound afterwards (or judged for another app on this host): the next request is refused.
    let r = env.admin(
        Method::Post,
        "/admin/api/policy-bindings",
        Some(json!({"target": "app", "target_id": id, "group": "staff"})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let binding = r.json_body()["id"].as_str().unwrap().to_owned();
    let r = respond(env.route_at(APP, &b.request(Method::Get, "/wiki/page")));
    assert_eq!(r.status, 403);
    // An expression sees the app.
    env.admin(Method::Delete, &format!("/admin/api/policy-bindings/{binding}"), None);
    let r = env.admin(
        Method::Post,
        "/admin/api/policies",
        Some(json!({"name": "wiki-only", "expression": format!("app.id == '{id}' && app.name == 'Wiki'")})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let policy = r.json_body()["id"].as_str().unwrap().to_owned();
    let r = env.admin(
        Method::Post,
        "/admin/api/policy-bindings",
        Some(json!({"target": "app", "target_id": id, "policy": policy})),
    );
    assert_eq!(r.status, 201);
    let bound = r.json_body()["id"].as_str().unwrap().to_owned();
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    // The gateway flow's own bindings hold too.
    env.admin(Method::Delete, &format!("/admin/api/policy-bindings/{bound}"), None);
    forward(env.route_at(APP, &b.request(Method::Get, "/wiki/")));
    let r = env.admin(
        Method::Post,
        "/admin/api/policy-bindings",
        Some(json!({"target": "flow", "target_id": "gateway", "user": "alice", "negate": true})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        respond(env.route_at(APP, &b.request(Method::Get, "/wiki/"))).status,
        403
    );
}
