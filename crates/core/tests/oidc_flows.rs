//! The provider end to end through `gatehouse_core::handle`, on real SQLite with a fake clock.
//! Test names say which rule or attack they guard.

mod support;

use gatehouse_core::http::{Method, Request, Response};
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "correct horse battery staple";

struct Rp {
    id: String,
    secret: Option<String>,
}

fn confidential(env: &TestEnv, extra: Value) -> Rp {
    let mut body = json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://rp.example.com/bye"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email offline_access",
        "first_party": true,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (id, secret) = env.create_client(body);
    Rp { id, secret }
}

fn basic(rp: &Rp) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", rp.id, rp.secret.as_deref().unwrap_or(""));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

fn authorize_url(rp: &Rp, extra: &str) -> String {
    authorize_url_for(rp, "openid profile email offline_access", extra)
}

fn authorize_url_for(rp: &Rp, scope: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=st4te&nonce=n0nce&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        rp.id,
        gatehouse_core::http::form_encode(REDIRECT),
        scope.replace(' ', "%20")
    )
}

/// Drives authorize → login form → (consent) → redirect; returns the final redirect response.
fn login(env: &TestEnv, b: &mut Browser, url: &str, username: &str, password: &str) -> Response {
    let mut resp = b.send(env, b.request(Method::Get, url));
    for _ in 0..6 {
        let Some(loc) = resp.header("location").map(str::to_owned) else {
            return resp;
        };
        if loc.starts_with(REDIRECT) {
            return resp;
        }
        if loc.starts_with("/oauth2/login") {
            resp = submit_login(env, b, &loc, username, password);
            continue;
        }
        let page = b.send(env, b.request(Method::Get, &loc));
        let html = String::from_utf8_lossy(&page.body).to_string();
        resp = if loc.starts_with("/oauth2/consent") {
            let req = b.request(Method::Post, "/oauth2/consent").with_form(&[
                ("req", hidden(&html, "req").as_str()),
                ("csrf", hidden(&html, "csrf").as_str()),
                ("decision", "allow"),
            ]);
            b.send(env, req)
        } else {
            page
        };
    }
    resp
}

fn code_for(env: &TestEnv, rp: &Rp) -> String {
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let resp = login(env, &mut b, &authorize_url(rp, ""), "alice", PASSWORD);
    let loc = resp.header("location").expect("redirect").to_owned();
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st4te"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(ISSUER), "RFC 9207 iss");
    query_param(&loc, "code").expect("code")
}

fn token(env: &TestEnv, rp: &Rp, form: &[(&str, &str)]) -> Response {
    env.send(
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &basic(rp))
            .with_form(form),
    )
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

fn userinfo(env: &TestEnv, access: &str) -> Response {
    env.send(Request::new(Method::Get, "/oauth2/userinfo").with_header("authorization", &format!("Bearer {access}")))
}

fn introspect(env: &TestEnv, rp: &Rp, tok: &str) -> Value {
    token_like(env, rp, "/oauth2/introspect", &[("token", tok)]).json_body()
}

fn token_like(env: &TestEnv, rp: &Rp, path: &str, form: &[(&str, &str)]) -> Response {
    env.send(
        Request::new(Method::Post, path)
            .with_header("authorization", &basic(rp))
            .with_form(form),
    )
}

#[test]
fn discovery_lists_exactly_what_is_supported() {
    let env = TestEnv::new();
    let d = env
        .send(Request::new(Method::Get, "/.well-known/openid-configuration"))
        .json_body();
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], json!(true));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    let grants = d["grant_types_supported"].as_array().unwrap();
    assert!(!grants.contains(&json!("password")) && !grants.contains(&json!("implicit")));
    let jwks = env.send(Request::new(Method::Get, "/oauth2/jwks.json")).json_body();
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256"));
    assert!(
        jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );
}

#[test]
fn authorization_code_with_pkce_issues_verifiable_tokens_and_userinfo() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let r = exchange(&env, &rp, &code);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.json_body();
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["refresh_token"].is_string(), "offline_access gives a refresh token");
    let claims = futures::executor::block_on(gatehouse_core::jwt::verify(
        &env.signer,
        t["id_token"].as_str().unwrap(),
        T0,
        0,
    ))
    .unwrap();
    assert_eq!(claims["aud"], json!(rp.id));
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["iss"], ISSUER);
    assert!(claims["at_hash"].is_string() && claims["auth_time"].is_i64());
    let info = userinfo(&env, t["access_token"].as_str().unwrap());
    assert_eq!(info.status, 200);
    let info = info.json_body();
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["sub"], claims["sub"]);
}

#[test]
fn rfc6749_4_1_2_code_reuse_fails_and_revokes_what_the_first_use_issued() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let first = exchange(&env, &rp, &code).json_body();
    let second = exchange(&env, &rp, &code);
    assert_eq!(second.status, 400);
    assert_eq!(second.json_body()["error"], "invalid_grant");
    assert_eq!(userinfo(&env, first["access_token"].as_str().unwrap()).status, 401);
    let r = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
}

#[test]
fn code_expires_after_sixty_seconds() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    env.clock.advance(61);
    assert_eq!(exchange(&env, &rp, &code).json_body()["error"], "invalid_grant");
}

#[test]
fn code_is_bound_to_redirect_uri_client_and_verifier_and_a_failed_check_does_not_burn_it() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let other = confidential(&env, json!({"client_name": "Other"}));
    let code = code_for(&env, &rp);
    let with = |redirect: &str, verifier: &str| {
        token(
            &env,
            &rp,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ],
        )
    };
    assert_eq!(with(REDIRECT, &"a".repeat(43)).json_body()["error"], "invalid_grant");
    assert_eq!(
        with("https://rp.example.com/cb/", VERIFIER).json_body()["error"],
        "invalid_grant"
    );
    assert_eq!(
        exchange(&env, &other, &code).json_body()["error"],
        "invalid_grant",
        "another client cannot redeem it"
    );
    // None of the failed attempts consumed the code: a mistake is not a replay.
    let r = exchange(&env, &rp, &code);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'code_reuse'"), 0);
}

#[test]
fn a_code_presented_by_another_client_is_refused_and_stays_redeemable_by_its_owner() {
    // Anyone holding a leaked code and a public client_id must not be able to burn it: that would
    // make the real client's exchange look like a replay and revoke the user's grant.
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let public = confidential(
        &env,
        json!({"client_name": "Public", "token_endpoint_auth_method": "none"}),
    );
    let code = code_for(&env, &rp);
    let r = env.send(Request::new(Method::Post, "/oauth2/token").with_form(&[
        ("grant_type", "authorization_code"),
        ("client_id", &public.id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]));
    assert_eq!(r.json_body()["error"], "invalid_grant");
    let r = exchange(&env, &rp, &code);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        0
    );
}

#[test]
fn a_code_redeemed_concurrently_issues_tokens_once_and_the_loser_revokes_the_family() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    // Another request consumes the code between this one's read and its batch.
    let db = Interposed::new(&env.db);
    *db.before_batch.borrow_mut() =
        Some("UPDATE authorization_codes SET used_at = 1, redeemed_by = 'the-other-request'".into());
    let r = env.send_with_db(
        &db,
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &basic(&rp))
            .with_form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]),
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM tokens"),
        0,
        "the loser wrote nothing"
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        1
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'code_reuse'"), 1);
}

#[test]
fn a_failed_token_write_leaves_the_code_redeemable_and_the_retry_is_not_a_replay() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let db = Interposed::new(&env.db);
    db.fail_batches.set(1);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let send = || {
        env.send_with_db(
            &db,
            Request::new(Method::Post, "/oauth2/token")
                .with_header("authorization", &basic(&rp))
                .with_form(&form),
        )
    };
    let r = send();
    assert_eq!((r.status, r.json_body()["error"].as_str()), (500, Some("server_error")));
    let r = send();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'code_reuse'"), 0);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        0
    );
}

#[test]
fn cve_2023_48228_pkce_downgrade_verifier_without_challenge_is_refused() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let url = authorize_url(&rp, "").replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "");
    let mut b = Browser::default();
    let resp = login(&env, &mut b, &url, "alice", PASSWORD);
    let code = query_param(resp.header("location").unwrap(), "code").unwrap();
    assert_eq!(exchange(&env, &rp, &code).json_body()["error"], "invalid_grant");
}

#[test]
fn pkce_plain_is_refused_with_an_error_redirect() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let url = authorize_url(&rp, "").replace("code_challenge_method=S256", "code_challenge_method=plain");
    let r = env.send(Request::new(Method::Get, &url));
    let loc = r.header("location").expect("error redirect");
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(loc, "state").as_deref(), Some("st4te"));
}

#[test]
fn public_clients_must_use_pkce() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"token_endpoint_auth_method": "none"}));
    assert!(rp.secret.is_none());
    let url = authorize_url(&rp, "").replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "");
    let r = env.send(Request::new(Method::Get, &url));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
}

#[test]
fn unknown_client_or_unregistered_redirect_uri_shows_a_page_and_never_redirects() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    for bad in [
        "https://rp.example.com/cb/../admin",
        "https://rp.example.com/cb?x=1",
        "https://evil.example/cb",
        "https://rp.example.com@evil.example/cb",
    ] {
        let url = authorize_url(&rp, "").replace(
            &gatehouse_core::http::form_encode(REDIRECT),
            &gatehouse_core::http::form_encode(bad),
        );
        let r = env.send(Request::new(Method::Get, &url));
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("location").is_none(), "{bad}");
    }
    let r = env.send(Request::new(
        Method::Get,
        &authorize_url(
            &Rp {
                id: "nobody".into(),
                secret: None,
            },
            "",
        ),
    ));
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
}

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_whole_family() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let rt1 = t1["refresh_token"].as_str().unwrap().to_owned();
    let t2 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]);
    assert_eq!(t2.status, 200);
    let t2 = t2.json_body();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert!(t2["id_token"].is_string());
    // Replaying the first token: refused, and the newest one dies with it.
    let replay = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]);
    assert_eq!(replay.json_body()["error"], "invalid_grant");
    let after = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]);
    assert_eq!(after.json_body()["error"], "invalid_grant");
    assert_eq!(userinfo(&env, t2["access_token"].as_str().unwrap()).status, 401);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'refresh_token_reuse'"),
        1
    );
}

#[test]
fn a_refresh_family_from_a_password_sign_in_ends_when_the_deployment_goes_passkey_only() {
    let mut env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let rt1 = exchange(&env, &rp, &code).json_body()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A passkey-only group the user is not in changes nothing for them.
    env.settings.passkey_only_groups = vec!["staff".into()];
    let t2 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]);
    assert_eq!(t2.status, 200);
    let rt2 = t2.json_body()["refresh_token"].as_str().unwrap().to_owned();
    // Everyone passkey-only (and no group named): the family from a password sign-in goes no
    // further.
    env.settings.passkey_only_groups.clear();
    env.settings.passkey_only = true;
    let t3 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]);
    assert_eq!(t3.status, 400);
    assert_eq!(t3.json_body()["error"], "invalid_grant");
}

#[test]
fn refresh_tokens_expire_when_idle() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    env.clock.advance(env.settings.refresh_idle_ttl + 1);
    let r = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t1["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
}

#[test]
fn cve_2024_47077_a_client_cannot_introspect_or_revoke_another_clients_token() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let other = confidential(&env, json!({"client_name": "Other"}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(introspect(&env, &rp, at)["active"], true);
    assert_eq!(introspect(&env, &other, at), json!({"active": false}));
    assert_eq!(
        introspect(&env, &other, t["refresh_token"].as_str().unwrap()),
        json!({"active": false})
    );
    let r = token_like(&env, &other, "/oauth2/revoke", &[("token", at)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(&env, &rp, at)["active"],
        true,
        "other client's revoke changed nothing"
    );
    let r = token_like(
        &env,
        &rp,
        "/oauth2/revoke",
        &[("token", t["refresh_token"].as_str().unwrap())],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(&env, &rp, at)["active"],
        false,
        "revoking the refresh token revokes the grant"
    );
}

#[test]
fn alg_confusion_hs256_signed_with_the_public_key_never_validates() {
    use base64::Engine;
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let at = t["access_token"].as_str().unwrap();
    let parts: Vec<&str> = at.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    header["alg"] = json!("HS256");
    let jwks = env.send(Request::new(Method::Get, "/oauth2/jwks.json")).body;
    let input = format!("{}.{}", b64.encode(header.to_string()), parts[1]);
    let sig = gatehouse_core::crypto::hmac_sha256(&jwks, input.as_bytes());
    let forged = format!("{input}.{}", b64.encode(sig));
    assert_eq!(userinfo(&env, &forged).status, 401);
    assert_eq!(introspect(&env, &rp, &forged), json!({"active": false}));
    header["alg"] = json!("none");
    let none = format!("{}.{}.", b64.encode(header.to_string()), parts[1]);
    assert_eq!(userinfo(&env, &none).status, 401);
}

#[test]
fn expired_access_tokens_are_refused() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let at = exchange(&env, &rp, &code).json_body()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.clock.advance(env.settings.access_token_ttl + 60);
    let r = userinfo(&env, &at);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
}

#[test]
fn not_yet_valid_tokens_are_refused() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.clock.advance(3600);
    let code = code_for(&env, &rp);
    let at = exchange(&env, &rp, &code).json_body()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.clock.advance(-3600);
    assert_eq!(userinfo(&env, &at).status, 401);
}

#[test]
fn disabled_client_can_do_nothing() {
    let env = TestEnv::new();
    let rp = confidential(
        &env,
        json!({"grant_types": ["authorization_code", "refresh_token", "client_credentials"]}),
    );
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"disabled": true})),
    );
    assert_eq!(r.status, 200);
    let r = token(&env, &rp, &[("grant_type", "client_credentials")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json_body()["error"], "invalid_client");
    let r = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json_body()["error"], "invalid_client");
    let r = env.send(Request::new(Method::Get, &authorize_url(&rp, "")));
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
}

#[test]
fn client_credentials_for_confidential_clients_only() {
    let env = TestEnv::new();
    let rp = confidential(
        &env,
        json!({"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [], "scope": "api:read"}),
    );
    let r = token(
        &env,
        &rp,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json_body();
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    assert_eq!(
        introspect(&env, &rp, t["access_token"].as_str().unwrap())["sub"],
        json!(rp.id)
    );
    // No user signed in: no sign-in methods.
    let claims = futures::executor::block_on(gatehouse_core::jwt::verify(
        &env.signer,
        t["access_token"].as_str().unwrap(),
        T0,
        0,
    ))
    .unwrap();
    assert!(claims.get("amr").is_none() && claims.get("acr").is_none(), "{claims:?}");
    let r = token(&env, &rp, &[("grant_type", "client_credentials"), ("scope", "openid")]);
    assert_eq!(r.json_body()["error"], "invalid_scope");
    let r = token(
        &env,
        &rp,
        &[("grant_type", "password"), ("username", "a"), ("password", "b")],
    );
    assert_eq!(r.json_body()["error"], "unsupported_grant_type");
    // A confidential client not registered for the grant cannot use it.
    let web = confidential(&env, json!({"client_id": "web-only"}));
    let r = token(&env, &web, &[("grant_type", "client_credentials")]);
    assert_eq!(
        r.json_body()["error"],
        "unauthorized_client",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn rfc6749_5_2_bad_client_credentials_are_invalid_client_with_401() {
    let env = TestEnv::new();
    let mut rp = confidential(&env, json!({}));
    rp.secret = Some("wrong".into());
    let r = token(&env, &rp, &[("grant_type", "authorization_code"), ("code", "x")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json_body()["error"], "invalid_client");
    assert!(r.header("www-authenticate").is_some());
}

#[test]
fn wrong_username_and_wrong_password_get_the_same_answer() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut answers = Vec::new();
    for (user, pw) in [("alice", "wrong password"), ("mallory", PASSWORD)] {
        let mut b = Browser::default();
        let r = login(&env, &mut b, &authorize_url(&rp, ""), user, pw);
        let html = String::from_utf8_lossy(&r.body).replace(user, "USER");
        let html = html.split("name=\"csrf\"").next().unwrap().to_owned()
            + html.split("name=\"csrf\"").nth(1).unwrap().split_once('>').unwrap().1;
        answers.push((r.status, html.split("name=\"req\"").next().unwrap().to_owned()));
        assert!(String::from_utf8_lossy(&r.body).contains("Invalid username or password."));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 401);
}

#[test]
fn login_without_the_csrf_cookie_is_refused() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let loc = r.header("location").unwrap().to_owned();
    let page = b.send(&env, b.request(Method::Get, &loc));
    let html = String::from_utf8_lossy(&page.body).to_string();
    let attacker = Browser::default();
    let req = attacker.request(Method::Post, "/oauth2/login").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let r = env.send(req);
    // The flow is bound to the browser that started it: another one cannot even load it.
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("another browser"));
    assert!(r
        .headers
        .iter()
        .all(|(k, v)| k != "set-cookie" || !v.starts_with("__Host-gh_session")));
}

#[test]
fn prompt_none_without_session_returns_login_required() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let r = env.send(Request::new(Method::Get, &authorize_url(&rp, "&prompt=none")));
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(loc, "error").as_deref(), Some("login_required"));
}

#[test]
fn sso_session_skips_login_and_prompt_login_forces_it() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    code_for(&env, &rp);
    let mut b = Browser::default();
    login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert!(query_param(r.header("location").unwrap(), "code").is_some());
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=login")));
    assert!(r.header("location").unwrap().starts_with("/oauth2/login"));
    env.clock.advance(120);
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&max_age=3600")));
    assert!(
        query_param(r.header("location").unwrap(), "code").is_some(),
        "a sign-in two minutes old meets max_age=3600"
    );
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&max_age=60")));
    assert!(
        r.header("location").unwrap().starts_with("/oauth2/login"),
        "max_age exceeded"
    );
}

#[test]
fn acr_values_is_bounded_at_1024_bytes() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let fits = "a".repeat(1024);
    let r = env.send(Request::new(
        Method::Get,
        &authorize_url(&rp, &format!("&acr_values={fits}")),
    ));
    assert!(
        r.header("location").unwrap().starts_with("/oauth2/login"),
        "1024 bytes are accepted"
    );
    let over = "a".repeat(1025);
    let r = env.send(Request::new(
        Method::Get,
        &authorize_url(&rp, &format!("&acr_values={over}")),
    ));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
}

#[test]
fn a_refresh_token_needs_both_offline_access_and_the_refresh_grant() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    // offline_access asked, refresh_token allowed: a refresh token.
    let rp = confidential(&env, json!({}));
    let mut b = Browser::default();
    let r = login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    let t = exchange(&env, &rp, &query_param(r.header("location").unwrap(), "code").unwrap()).json_body();
    assert!(t["refresh_token"].is_string());
    // Without offline_access: none.
    let online = authorize_url(&rp, "").replace("%20offline_access", "");
    let r = b.send(&env, b.request(Method::Get, &online));
    let t = exchange(&env, &rp, &query_param(r.header("location").unwrap(), "code").unwrap()).json_body();
    assert!(t.get("refresh_token").is_none(), "{t}");
    // offline_access allowed and asked, but not the refresh grant: none.
    let no_refresh = confidential(
        &env,
        json!({"client_id": "no-refresh", "grant_types": ["authorization_code"]}),
    );
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&no_refresh, "")));
    let t = exchange(
        &env,
        &no_refresh,
        &query_param(r.header("location").unwrap(), "code").unwrap(),
    )
    .json_body();
    assert!(t.get("refresh_token").is_none(), "{t}");
}

#[test]
fn third_party_clients_ask_for_consent_once_per_scope_set() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"first_party": false}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    assert!(query_param(r.header("location").unwrap(), "code").is_some());
    assert_eq!(env.db.count("SELECT COUNT(*) FROM consents"), 1);
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert!(
        query_param(r.header("location").unwrap(), "code").is_some(),
        "consent remembered"
    );
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=consent")));
    assert!(r.header("location").unwrap().starts_with("/oauth2/consent"));
}

#[test]
fn denying_consent_returns_access_denied() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"first_party": false}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let login_url = r.header("location").unwrap().to_owned();
    let r = submit_login(&env, &mut b, &login_url, "alice", PASSWORD);
    // The flow goes from the password straight to the consent stage.
    let consent = r.header("location").unwrap().to_owned();
    assert!(consent.starts_with("/oauth2/consent"), "{consent}");
    let html = String::from_utf8_lossy(&b.send(&env, b.request(Method::Get, &consent)).body).to_string();
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/consent").with_form(&[
            ("req", hidden(&html, "req").as_str()),
            ("csrf", hidden(&html, "csrf").as_str()),
            ("decision", "deny"),
        ]),
    );
    // The refused flow goes back to its purpose, which answers the client.
    let resume = r.header("location").unwrap().to_owned();
    assert!(resume.starts_with("/oauth2/authorize/resume"), "{resume}");
    let r = b.send(&env, b.request(Method::Get, &resume));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM auth_requests"),
        0,
        "an answered request is deleted"
    );
    // So is one answered with an error to prompt=none: login_required, then consent_required.
    let mut fresh = Browser::default();
    let r = fresh.send(&env, fresh.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("login_required")
    );
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("consent_required")
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0);
}

#[test]
fn rp_initiated_logout_ends_the_session_server_side() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").unwrap();
    let t = exchange(&env, &rp, &code).json_body();
    let url = format!(
        "/oauth2/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        t["id_token"].as_str().unwrap(),
        gatehouse_core::http::form_encode("https://rp.example.com/bye")
    );
    let bad = url.replace("bye&state", "bye2&state").replace("%2Fbye&", "%2Fbye2&");
    assert_eq!(
        b.send(&env, b.request(Method::Get, &bad)).status,
        400,
        "unregistered post_logout_redirect_uri"
    );
    let other_client = format!("{url}&client_id=someone-else");
    assert_eq!(
        b.send(&env, b.request(Method::Get, &other_client)).status,
        400,
        "client_id that is not the hint's audience"
    );
    // The client naming itself beside its own hint is the same request.
    let r = b.send(&env, b.request(Method::Get, &format!("{url}&client_id={}", rp.id)));
    assert_eq!(r.header("location"), Some("https://rp.example.com/bye?state=bye"));
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("login_required")
    );
}

#[test]
fn logout_ends_the_session_on_the_server_not_only_its_cookie() {
    // A copy of the session cookie taken before logout (another tab, a thief) is worth nothing
    // after it, and tokens bound to the session without offline_access stop working.
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let online = authorize_url(&rp, "").replace("%20offline_access", "");
    let r = login(&env, &mut b, &online, "alice", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").unwrap();
    let t = exchange(&env, &rp, &code).json_body();
    let access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(&env, &access).status, 200);
    let copy = Browser {
        cookies: b.cookies.clone(),
        ..Browser::default()
    };
    let url = format!(
        "/oauth2/logout?id_token_hint={}&post_logout_redirect_uri={}",
        t["id_token"].as_str().unwrap(),
        gatehouse_core::http::form_encode("https://rp.example.com/bye")
    );
    assert_eq!(b.send(&env, b.request(Method::Get, &url)).status, 303);
    let r = env.send(copy.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(userinfo(&env, &access).status, 401);
}

#[test]
fn logout_without_hint_asks_for_confirmation() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    let page = b.send(&env, b.request(Method::Get, "/oauth2/logout"));
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert!(
        query_param(r.header("location").unwrap(), "code").is_some(),
        "still signed in"
    );
    b.send(
        &env,
        b.request(Method::Post, "/oauth2/logout")
            .with_form(&[("csrf", hidden(&html, "csrf").as_str()), ("logout", "yes")]),
    );
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("login_required")
    );
}

#[test]
fn es256_clients_get_es256_id_tokens() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"id_token_signed_response_alg": "ES256"}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let header = t["id_token"].as_str().unwrap().split('.').next().unwrap().to_owned();
    let header: Value = serde_json::from_slice(&gatehouse_core::crypto::b64url_decode(&header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
}

#[test]
fn disabled_user_loses_sessions_and_tokens() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let uid = env.user_id("alice");
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{uid}"),
        Some(json!({"disabled": true})),
    );
    assert_eq!(userinfo(&env, t["access_token"].as_str().unwrap()).status, 401);
    let r = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
}

#[test]
fn repeated_parameters_are_refused() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let r = env.send(Request::new(
        Method::Get,
        &format!("{}&state=again", authorize_url(&rp, "")),
    ));
    let loc = r.header("location").unwrap();
    assert_eq!(query_param(loc, "error").as_deref(), Some("invalid_request"));
}

#[test]
fn a_consented_request_cannot_be_resumed_by_another_users_browser() {
    // The client's owner consents for themselves, stops before the resume redirect, and sends
    // the resume URL to a signed-in victim: the victim must not get a code.
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"first_party": false}));
    env.create_user("mallory", PASSWORD);
    env.create_user("victim", PASSWORD);
    // The victim is signed in to Gatehouse (through another, first-party client).
    let portal = confidential(&env, json!({"client_name": "Portal"}));
    let mut victim = Browser::default();
    let r = login(&env, &mut victim, &authorize_url(&portal, ""), "victim", PASSWORD);
    assert!(
        query_param(r.header("location").unwrap(), "code").is_some(),
        "victim has a session"
    );

    let mut mallory = Browser::default();
    let r = mallory.send(&env, mallory.request(Method::Get, &authorize_url(&rp, "")));
    let login_url = r.header("location").unwrap().to_owned();
    let r = submit_login(&env, &mut mallory, &login_url, "mallory", PASSWORD);
    let consent = r.header("location").unwrap().to_owned();
    assert!(consent.starts_with("/oauth2/consent"), "{consent}");
    let html = String::from_utf8_lossy(&mallory.send(&env, mallory.request(Method::Get, &consent)).body).to_string();
    let r = mallory.send(
        &env,
        mallory.request(Method::Post, "/oauth2/consent").with_form(&[
            ("req", hidden(&html, "req").as_str()),
            ("csrf", hidden(&html, "csrf").as_str()),
            ("decision", "allow"),
        ]),
    );
    let resume = r.header("location").unwrap().to_owned();

    let lured = victim.send(&env, victim.request(Method::Get, &resume));
    assert!(
        lured.header("location").is_none_or(|l| !l.contains("code=")),
        "no code for the victim"
    );
    assert_eq!(lured.status, 400);
    // The victim's own consent was never recorded.
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM consents c JOIN users u ON u.id = c.user_id WHERE u.username = 'victim'"),
        0
    );
}

#[test]
fn a_password_reset_revokes_refresh_tokens() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let uid = env.user_id("alice");
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{uid}"),
        Some(json!({"password": "a brand new passphrase"})),
    );
    let r = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
    assert_eq!(userinfo(&env, t["access_token"].as_str().unwrap()).status, 401);
}

#[test]
fn rfc6749_6_a_narrower_refresh_keeps_the_refresh_tokens_original_scope() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let t2 = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t1["refresh_token"].as_str().unwrap()),
            ("scope", "openid"),
        ],
    )
    .json_body();
    assert_eq!(t2["scope"], "openid");
    let t3 = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t2["refresh_token"].as_str().unwrap()),
        ],
    )
    .json_body();
    assert_eq!(t3["scope"], "openid profile email offline_access");
    let wider = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t3["refresh_token"].as_str().unwrap()),
            ("scope", "openid address"),
        ],
    );
    assert_eq!(wider.json_body()["error"], "invalid_scope");
}

#[test]
fn rfc6750_3_1_a_request_without_a_token_gets_no_error_code() {
    let env = TestEnv::new();
    let r = env.send(Request::new(Method::Get, "/oauth2/userinfo"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"gatehouse\""));
}

#[test]
fn logout_accepts_only_an_id_token_as_hint() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let r = env.send(Request::new(
        Method::Get,
        &format!("/oauth2/logout?id_token_hint={}", t["access_token"].as_str().unwrap()),
    ));
    assert_eq!(r.status, 400);
}

const ALL_SCOPES: &str = "&scope=openid%20profile%20email%20offline_access";

#[test]
fn a_third_party_client_gets_no_code_without_consent_even_for_an_empty_scope() {
    let env = TestEnv::new();
    let first = confidential(&env, json!({}));
    let third = confidential(&env, json!({"client_name": "Third", "first_party": false}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    // alice has a live SSO session from a first-party app.
    let r = login(&env, &mut b, &authorize_url(&first, ""), "alice", PASSWORD);
    assert!(query_param(r.header("location").unwrap(), "code").is_some());
    let no_scope = |extra: &str| authorize_url(&third, extra).replace(ALL_SCOPES, "");
    let r = b.send(&env, b.request(Method::Get, &no_scope("")));
    assert!(
        r.header("location").unwrap().starts_with("/oauth2/consent"),
        "{:?}",
        r.header("location")
    );
    let r = b.send(&env, b.request(Method::Get, &no_scope("&prompt=none")));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("consent_required")
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM authorization_codes"),
        1,
        "only the first-party code"
    );
    // Once alice allows the client itself, a scopeless request needs no new consent.
    let r = login(&env, &mut b, &no_scope(""), "alice", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").expect("code after consent");
    let r = b.send(&env, b.request(Method::Get, &no_scope("&prompt=none")));
    assert!(query_param(r.header("location").unwrap(), "code").is_some());
    // And that token tells the client nothing beyond the subject.
    let t = exchange(&env, &third, &code).json_body();
    let info = introspect(&env, &third, t["access_token"].as_str().unwrap());
    assert_eq!(info["active"], true);
    assert!(info.get("username").is_none(), "{info}");
}

#[test]
fn introspection_names_the_user_only_for_tokens_with_the_profile_scope() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let code_with = |scope: &str| {
        let mut b = Browser::default();
        let url = authorize_url(&rp, "").replace(ALL_SCOPES, &format!("&scope={scope}"));
        let r = login(&env, &mut b, &url, "alice", PASSWORD);
        query_param(r.header("location").unwrap(), "code").unwrap()
    };
    let openid_only = code_with("openid");
    let t = exchange(&env, &rp, &openid_only).json_body();
    let access = t["access_token"].as_str().unwrap();
    let info = introspect(&env, &rp, access);
    assert_eq!(info["active"], true);
    assert!(info.get("username").is_none());
    let u = userinfo(&env, access).json_body();
    assert!(u.get("preferred_username").is_none() && u.get("email").is_none(), "{u}");
    let with_profile = code_with("openid%20profile");
    let t = exchange(&env, &rp, &with_profile).json_body();
    assert_eq!(
        introspect(&env, &rp, t["access_token"].as_str().unwrap())["username"],
        "alice"
    );
}

#[test]
fn disabling_a_client_revokes_its_tokens_at_once() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&env, access).status, 200);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"disabled": true})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(userinfo(&env, access).status, 401);
    // Enabling it again does not bring the old tokens back.
    env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"disabled": false})),
    );
    assert_eq!(userinfo(&env, access).status, 401);
    assert_eq!(introspect(&env, &rp, access)["active"], false);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'admin_client_updated'"),
        2
    );
}

#[test]
fn tokens_of_a_disabled_or_deleted_client_are_refused_even_if_never_revoked() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let access = t["access_token"].as_str().unwrap();
    env.db.exec(&format!(
        "UPDATE clients SET disabled = 1 WHERE client_id = '{}'",
        rp.id
    ));
    assert_eq!(userinfo(&env, access).status, 401);
    env.db.exec(&format!(
        "PRAGMA foreign_keys = OFF; DELETE FROM clients WHERE client_id = '{}'; PRAGMA foreign_keys = ON;",
        rp.id
    ));
    assert_eq!(userinfo(&env, access).status, 401);
}

/// alice and bob exist; `b` holds alice's SSO session; returns an ID token of bob's.
fn alice_signed_in_with_bobs_id_token(env: &TestEnv, rp: &Rp, b: &mut Browser) -> String {
    env.create_user("bob", PASSWORD);
    let mut bobs = Browser::default();
    let r = login(env, &mut bobs, &authorize_url(rp, ""), "bob", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").unwrap();
    let bob_id_token = exchange(env, rp, &code).json_body()["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.create_user("alice", PASSWORD);
    login(env, b, &authorize_url(rp, ""), "alice", PASSWORD);
    bob_id_token
}

#[test]
fn oidc_3_1_2_1_prompt_none_with_another_users_id_token_hint_is_login_required() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let mut b = Browser::default();
    let hint = alice_signed_in_with_bobs_id_token(&env, &rp, &mut b);
    let r = b.send(
        &env,
        b.request(
            Method::Get,
            &authorize_url(&rp, &format!("&prompt=none&id_token_hint={hint}")),
        ),
    );
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(loc, "error").as_deref(), Some("login_required"));
    assert!(query_param(loc, "code").is_none());
}

#[test]
fn oidc_3_1_2_1_another_users_id_token_hint_asks_to_sign_in_as_that_user() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let mut b = Browser::default();
    let hint = alice_signed_in_with_bobs_id_token(&env, &rp, &mut b);
    let url = authorize_url(&rp, &format!("&id_token_hint={hint}"));
    let r = b.send(&env, b.request(Method::Get, &url));
    let login_url = r.header("location").unwrap().to_owned();
    assert!(login_url.starts_with("/oauth2/login"));
    let page = b.send(&env, b.request(Method::Get, &login_url));
    assert!(
        String::from_utf8_lossy(&page.body).contains("value=\"bob\""),
        "the form offers bob"
    );
    // Signing in as someone else than the hinted user does not answer the request.
    let r = submit_login(&env, &mut b, &login_url, "alice", PASSWORD);
    let r = b.send(&env, b.request(Method::Get, r.header("location").unwrap()));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("login_required")
    );
    // Signing in as bob does.
    let r = login(&env, &mut b, &url, "bob", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").expect("code for bob");
    let t = exchange(&env, &rp, &code).json_body();
    let u = userinfo(&env, t["access_token"].as_str().unwrap()).json_body();
    assert_eq!(u["preferred_username"], "bob");
}

#[test]
fn oidc_3_1_2_1_a_garbage_or_foreign_id_token_hint_is_invalid_request_and_an_expired_own_one_is_fine() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let mut b = Browser::default();
    login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
    let error_for = |hint: &str| {
        let r = env.send(b.request(
            Method::Get,
            &authorize_url(
                &rp,
                &format!("&prompt=none&id_token_hint={}", gatehouse_core::http::form_encode(hint)),
            ),
        ));
        query_param(r.header("location").unwrap(), "error")
    };
    assert_eq!(error_for("garbage").as_deref(), Some("invalid_request"));
    assert_eq!(
        error_for(t["access_token"].as_str().unwrap()).as_deref(),
        Some("invalid_request"),
        "an access token is no ID token"
    );
    let id_token = t["id_token"].as_str().unwrap();
    let tampered = format!("{}x", &id_token[..id_token.len() - 1]);
    assert_eq!(error_for(&tampered).as_deref(), Some("invalid_request"));
    env.clock.advance(2 * 3600);
    let mut b2 = Browser::default();
    login(&env, &mut b2, &authorize_url(&rp, ""), "alice", PASSWORD);
    let r = b2.send(
        &env,
        b2.request(
            Method::Get,
            &authorize_url(&rp, &format!("&prompt=none&id_token_hint={id_token}")),
        ),
    );
    assert!(
        query_param(r.header("location").unwrap(), "code").is_some(),
        "an expired ID token of the signed-in user is a fine hint"
    );
}

#[test]
fn oidc_6_request_objects_get_their_own_error_codes() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    for (param, code) in [
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
    ] {
        let r = env.send(Request::new(Method::Get, &authorize_url(&rp, &format!("&{param}=x"))));
        assert_eq!(
            query_param(r.header("location").unwrap(), "error").as_deref(),
            Some(code)
        );
    }
}

#[test]
fn a_refresh_drops_scopes_the_client_may_no_longer_use() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"scope": "openid offline_access"})),
    );
    let refresh = |rt: &str, scope: Option<&str>| {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        token(&env, &rp, &form)
    };
    let asked = refresh(t1["refresh_token"].as_str().unwrap(), Some("openid email"));
    assert_eq!(asked.json_body()["error"], "invalid_scope");
    let t2 = refresh(t1["refresh_token"].as_str().unwrap(), None).json_body();
    assert_eq!(t2["scope"], "openid offline_access", "{t2}");
    let info = userinfo(&env, t2["access_token"].as_str().unwrap()).json_body();
    assert!(info.get("email").is_none());
}

#[test]
fn a_refresh_asking_a_wider_scope_by_mistake_or_failing_to_write_leaves_the_token_usable() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let rt = t1["refresh_token"].as_str().unwrap();
    let form = |scope: Option<&'static str>| {
        let mut f = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        if let Some(s) = scope {
            f.push(("scope", s));
        }
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &basic(&rp))
            .with_form(&f)
    };
    assert_eq!(
        env.send(form(Some("openid address"))).json_body()["error"],
        "invalid_scope"
    );
    let db = Interposed::new(&env.db);
    db.fail_batches.set(1);
    assert_eq!(env.send_with_db(&db, form(None)).status, 500);
    let r = env.send(form(None));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'refresh_token_reuse'"),
        0
    );
}

#[test]
fn a_refresh_token_rotated_concurrently_gives_the_loser_nothing_and_revokes_the_family() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let before = env.db.count("SELECT COUNT(*) FROM tokens");
    let db = Interposed::new(&env.db);
    *db.before_batch.borrow_mut() =
        Some("UPDATE tokens SET rotated_at = 1, rotated_by = 'the-other-request' WHERE kind = 'refresh'".into());
    let r = env.send_with_db(
        &db,
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &basic(&rp))
            .with_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t1["refresh_token"].as_str().unwrap()),
            ]),
    );
    assert_eq!(r.json_body()["error"], "invalid_grant");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM tokens"),
        before,
        "the loser wrote nothing"
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]
fn invalid_client_names_the_registered_method_when_another_is_used() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let r = env.send(Request::new(Method::Post, "/oauth2/token").with_form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &rp.id),
        ("client_secret", rp.secret.as_deref().unwrap()),
    ]));
    assert_eq!(r.status, 401);
    let body = r.json_body();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_secret_basic"),
        "{body}"
    );
    // A wrong secret still says nothing about why.
    let wrong = Rp {
        id: rp.id.clone(),
        secret: Some("wrong".into()),
    };
    let r = token(&env, &wrong, &[("grant_type", "client_credentials")]);
    assert_eq!(r.json_body()["error_description"], "client authentication failed");
}

#[test]
fn oversized_state_login_hint_or_nonce_is_refused_and_stores_nothing() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let big_state = authorize_url(&rp, "").replace("state=st4te", &format!("state={}", "s".repeat(2049)));
    let r = env.send(Request::new(Method::Get, &big_state));
    let loc = r.header("location").unwrap();
    assert_eq!(query_param(loc, "error").as_deref(), Some("invalid_request"));
    assert!(query_param(loc, "state").is_none(), "an oversized state is not echoed");
    let ok_state = authorize_url(&rp, "").replace("state=st4te", &format!("state={}", "s".repeat(2048)));
    assert!(env
        .send(Request::new(Method::Get, &ok_state))
        .header("location")
        .unwrap()
        .starts_with("/oauth2/login"));
    env.db.exec("DELETE FROM auth_requests");
    for extra in [
        format!("&login_hint={}", "h".repeat(257)),
        format!("&id_token_hint={}", "h".repeat(8193)),
    ] {
        let r = env.send(Request::new(Method::Get, &authorize_url(&rp, &extra)));
        let loc = r.header("location").unwrap();
        assert_eq!(
            query_param(loc, "error").as_deref(),
            Some("invalid_request"),
            "{extra:.20}"
        );
        assert_eq!(query_param(loc, "state").as_deref(), Some("st4te"));
    }
    let big_nonce = authorize_url(&rp, "").replace("nonce=n0nce", &format!("nonce={}", "n".repeat(513)));
    let r = env.send(Request::new(Method::Get, &big_nonce));
    assert_eq!(
        query_param(r.header("location").unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0);
}

#[test]
fn one_ip_holds_a_bounded_number_of_pending_requests_and_evicts_its_oldest() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let from = |ip: &str| {
        let r = env.send(Request::new(Method::Get, &authorize_url(&rp, "")).with_header("cf-connecting-ip", ip));
        r.header("location").unwrap().to_owned()
    };
    let first = from("203.0.113.7");
    for _ in 0..60 {
        from("203.0.113.7");
    }
    from("198.51.100.1");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM auth_requests WHERE ip_key = 'ip:203.0.113.7'"),
        gatehouse_core::limits::PENDING_PER_IP
    );
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM auth_requests WHERE ip_key = 'ip:198.51.100.1'"),
        1
    );
    let r = env.send(Request::new(Method::Get, &first));
    assert!(
        String::from_utf8_lossy(&r.body).contains("expired or is unknown"),
        "the oldest was evicted"
    );
}

#[test]
fn with_a_grace_interval_a_refresh_token_presented_again_moments_later_is_not_a_replay() {
    let mut env = TestEnv::new();
    env.settings.refresh_grace = 10;
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let rt = t1["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: &str| token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)]);
    let first = refresh(&rt);
    assert_eq!(first.status, 200);
    // Another tab presents the same token five seconds later: new tokens, no revocation.
    env.clock.advance(5);
    let again = refresh(&rt);
    assert_eq!(again.status, 200, "{}", String::from_utf8_lossy(&again.body));
    let first = first.json_body();
    assert_eq!(userinfo(&env, first["access_token"].as_str().unwrap()).status, 200);
    assert_eq!(refresh(first["refresh_token"].as_str().unwrap()).status, 200);
    // Past the interval it is a replay again, and the family goes.
    env.clock.advance(6);
    assert_eq!(refresh(&rt).json_body()["error"], "invalid_grant");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'refresh_token_reuse'"),
        1
    );
    let again = again.json_body();
    assert_eq!(
        refresh(again["refresh_token"].as_str().unwrap()).json_body()["error"],
        "invalid_grant"
    );
}

#[test]
fn the_grace_interval_never_revives_a_revoked_family() {
    let mut env = TestEnv::new();
    env.settings.refresh_grace = 10;
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t1 = exchange(&env, &rp, &code).json_body();
    let rt = t1["refresh_token"].as_str().unwrap();
    let t2 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).json_body();
    let r = token_like(
        &env,
        &rp,
        "/oauth2/revoke",
        &[("token", t2["refresh_token"].as_str().unwrap())],
    );
    assert_eq!(r.status, 200);
    let r = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)]);
    assert_eq!(r.json_body()["error"], "invalid_grant");
}

#[test]
fn oidc_core_2_tokens_say_how_the_user_signed_in_with_amr_and_acr_and_keep_it_across_a_refresh() {
    use gatehouse_core::factors::amr;
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let verify = |token: &serde_json::Value| {
        futures::executor::block_on(gatehouse_core::jwt::verify(&env.signer, token.as_str().unwrap(), T0, 0)).unwrap()
    };
    for claims in [verify(&t["id_token"]), verify(&t["access_token"])] {
        assert_eq!(claims["amr"], json!([amr::PWD]));
        assert_eq!(claims["acr"], format!("{ISSUER}/acr/1fa"));
    }
    let refreshed = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .json_body();
    assert_eq!(verify(&refreshed["id_token"])["amr"], json!([amr::PWD]));
    assert_eq!(verify(&refreshed["access_token"])["acr"], format!("{ISSUER}/acr/1fa"));

    let discovery = env
        .send(Request::new(Method::Get, "/.well-known/openid-configuration"))
        .json_body();
    // Second factors are optional by default: both classes can be asked for.
    assert_eq!(
        discovery["acr_values_supported"],
        json!([format!("{ISSUER}/acr/1fa"), format!("{ISSUER}/acr/mfa")])
    );
    let claims = discovery["claims_supported"].as_array().unwrap();
    assert!(claims.contains(&json!("amr")) && claims.contains(&json!("acr")));
}

#[test]
fn oidc_3_1_2_1_a_sign_in_during_the_request_satisfies_prompt_login_and_max_age_zero() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    for extra in ["&prompt=login", "&max_age=0"] {
        // Signed in already: the request still asks for the password once, then issues a code.
        let mut b = Browser::default();
        login(&env, &mut b, &authorize_url(&rp, ""), "alice", PASSWORD);
        env.clock.advance(1);
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, extra)));
        let to_login = r.header("location").unwrap().to_owned();
        assert!(to_login.starts_with("/oauth2/login"), "{extra}: {to_login}");
        let r = submit_login(&env, &mut b, &to_login, "alice", PASSWORD);
        let r = b.send(&env, b.request(Method::Get, r.header("location").unwrap()));
        let back = r.header("location").unwrap();
        assert!(back.starts_with(REDIRECT), "{extra}: sent to {back} after signing in");
        let code = query_param(back, "code").unwrap_or_else(|| panic!("{extra}: no code"));
        // The password typed again is a new sign-in (a new session), not a step-up of the old
        // one: `auth_time` is now.
        let t = exchange(&env, &rp, &code).json_body();
        let now = gatehouse_core::ports::Clock::now(&env.clock);
        let claims = futures::executor::block_on(gatehouse_core::jwt::verify(
            &env.signer,
            t["id_token"].as_str().unwrap(),
            now,
            0,
        ))
        .unwrap();
        assert_eq!(claims["auth_time"], json!(now), "{extra}");
    }
}

fn redirect_of(r: &Response) -> String {
    r.header("location").expect("redirect").to_owned()
}

#[test]
fn a_client_restricted_to_a_group_refuses_everyone_else_with_access_denied() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"allowed_groups": ["staff"], "first_party": false}));
    env.create_user("alice", PASSWORD);
    let bob = env.create_user("bob", PASSWORD);
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{bob}"),
        Some(json!({"groups": ["staff"]})),
    );
    // Alice signs in, and is refused before any consent page or code.
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut b, &redirect_of(&r), "alice", PASSWORD);
    let next = redirect_of(&r);
    assert!(
        !next.starts_with("/oauth2/consent"),
        "no consent for a user who may not use it: {next}"
    );
    let r = b.send(&env, b.request(Method::Get, &next));
    let end = redirect_of(&r);
    assert_eq!(query_param(&end, "error").as_deref(), Some("access_denied"), "{end}");
    assert_eq!(
        query_param(&end, "error_description").as_deref(),
        Some("this user may not use this client")
    );
    assert!(query_param(&end, "code").is_none());
    assert_eq!(env.db.count("SELECT COUNT(*) FROM grants"), 0);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM consents"), 0);
    // With a session already (signed in elsewhere), she is told at once.
    let open = confidential(&env, json!({}));
    let r = login(
        &env,
        &mut Browser::default(),
        &authorize_url(&open, ""),
        "alice",
        PASSWORD,
    );
    assert!(query_param(&redirect_of(&r), "code").is_some());
    let mut b = Browser::default();
    login(&env, &mut b, &authorize_url(&open, ""), "alice", PASSWORD);
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    assert_eq!(query_param(&redirect_of(&r), "error").as_deref(), Some("access_denied"));
    // Bob, in the group, gets his code.
    let r = login(&env, &mut Browser::default(), &authorize_url(&rp, ""), "bob", PASSWORD);
    assert!(query_param(&redirect_of(&r), "code").is_some(), "{}", redirect_of(&r));
}

#[test]
fn a_user_listed_by_name_passes_and_a_user_taken_off_the_list_loses_refresh() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"allowed_users": ["Alice"]}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let t2 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
    assert_eq!(t2.status, 200);
    let rt2 = t2.json_body()["refresh_token"].as_str().unwrap().to_owned();
    let patched = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"allowed_users": ["someone-else"]})),
    );
    assert_eq!(patched.status, 200, "{}", String::from_utf8_lossy(&patched.body));
    assert_eq!(patched.json_body()["allowed_users"], json!(["someone-else"]));
    let t3 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]);
    assert_eq!(t3.status, 400);
    assert_eq!(t3.json_body()["error"], "invalid_grant");
    // Back on the list (both lists emptied: everyone), the same token works: it was not spent.
    env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"allowed_users": []})),
    );
    let t4 = token(&env, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]);
    assert_eq!(t4.status, 200);
}

#[test]
fn client_access_lists_are_bounded() {
    let env = TestEnv::new();
    let (_, _) = env.create_client(json!({"redirect_uris": [REDIRECT], "allowed_groups": ["staff"]}));
    for bad in [
        json!({"allowed_users": [""]}),
        json!({"allowed_groups": vec!["g"; 257]}),
        json!({"allowed_users": ["x".repeat(255)]}),
    ] {
        let mut body = json!({"redirect_uris": [REDIRECT]});
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = env.admin(Method::Post, "/admin/api/clients", Some(body));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json_body()["error"], "invalid_client_metadata");
    }
}

// ----------------------------------------------------------------------------------------------
// Standard claims (OIDC Core §5.1, §5.4) and the claims parameter (§5.5)

/// The claims of a verified ID token.
fn id_token_claims(env: &TestEnv, t: &Value) -> Value {
    Value::Object(
        futures::executor::block_on(gatehouse_core::jwt::verify(
            &env.signer,
            t["id_token"].as_str().expect("an ID token"),
            T0,
            0,
        ))
        .expect("the ID token verifies"),
    )
}

/// Alice, with every standard claim set through the admin API.
fn alice_with_claims(env: &TestEnv) -> String {
    let id = env.create_user("alice", PASSWORD);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({
            "given_name": "Alice", "family_name": "Liddell", "birthdate": "1852-05-04",
            "locale": "en-GB", "zoneinfo": "Europe/London", "picture": "https://example.com/alice.png",
            "phone_number": "+441865270000", "phone_number_verified": true,
            "address": {"locality": "Oxford", "country": "GB"}
        })),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    id
}

/// Signs alice in for `url` in a new browser; the tokens of the code it gets.
fn tokens_for(env: &TestEnv, rp: &Rp, url: &str) -> Value {
    let mut b = Browser::default();
    let resp = login(env, &mut b, url, "alice", PASSWORD);
    let loc = resp.header("location").expect("redirect").to_owned();
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
    let r = exchange(env, rp, &code);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json_body()
}

const USER_CLAIMS: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "address",
    "phone_number",
    "phone_number_verified",
];

#[test]
fn oidc_core_5_4_each_scope_releases_its_standard_claims_and_unknown_scopes_are_ignored() {
    let env = TestEnv::new();
    let rp = confidential(
        &env,
        json!({"scope": "openid profile email address phone offline_access"}),
    );
    let id = alice_with_claims(&env);
    // §3.1.2.1: scopes not understood are ignored; the response says what was granted.
    let t = tokens_for(
        &env,
        &rp,
        &authorize_url_for(&rp, "openid profile email address phone foo", ""),
    );
    assert_eq!(t["scope"], "openid profile email address phone");
    let c = id_token_claims(&env, &t);
    let info = userinfo(&env, t["access_token"].as_str().unwrap()).json_body();
    for claims in [&c, &info] {
        for name in USER_CLAIMS {
            assert!(claims.get(*name).is_some(), "{name} missing from {claims}");
        }
        assert_eq!(claims["sub"], json!(id));
        assert_eq!(claims["given_name"], "Alice");
        assert_eq!(claims["address"], json!({"locality": "Oxford", "country": "GB"}));
        assert_eq!(claims["phone_number_verified"], json!(true));
        assert!(
            claims.get("middle_name").is_none(),
            "a claim without a value is left out"
        );
    }
    // The protocol's claims are not displaced by the user's.
    assert_eq!(c["aud"], json!(rp.id));
    assert_eq!(c["iss"], ISSUER);

    // Each scope alone gives its own claims and no others.
    let t = tokens_for(&env, &rp, &authorize_url_for(&rp, "openid phone", ""));
    let c = id_token_claims(&env, &t);
    assert!(c.get("phone_number").is_some() && c.get("phone_number_verified").is_some());
    for name in ["email", "given_name", "address", "preferred_username"] {
        assert!(c.get(name).is_none(), "{name} came without its scope");
    }
    let t = tokens_for(&env, &rp, &authorize_url_for(&rp, "openid", ""));
    let info = userinfo(&env, t["access_token"].as_str().unwrap()).json_body();
    assert_eq!(info, json!({"sub": id}));
    let c = id_token_claims(&env, &t);
    assert!(USER_CLAIMS.iter().all(|n| c.get(*n).is_none()), "{c}");
}

#[test]
fn oidc_core_5_5_the_claims_parameter_names_claims_for_each_place_within_the_clients_scopes() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"scope": "openid profile email phone offline_access"}));
    alice_with_claims(&env);
    let claims = json!({
        "id_token": {"email": {"essential": true}, "address": null},
        "userinfo": {"phone_number": null, "given_name": null, "shoe_size": null}
    });
    let extra = format!("&claims={}", gatehouse_core::http::form_encode(&claims.to_string()));
    let t = tokens_for(&env, &rp, &authorize_url_for(&rp, "openid offline_access", &extra));
    assert_eq!(t["scope"], "openid offline_access");
    let c = id_token_claims(&env, &t);
    assert!(c["email"].is_string(), "{c}");
    assert!(
        c.get("address").is_none(),
        "the client may not have the address scope: {c}"
    );
    assert!(c.get("phone_number").is_none(), "asked for userinfo only: {c}");
    let info = userinfo(&env, t["access_token"].as_str().unwrap()).json_body();
    assert_eq!(info["phone_number"], "+441865270000");
    assert_eq!(info["given_name"], "Alice");
    assert!(info.get("email").is_none(), "asked for the ID token only: {info}");
    assert!(info.get("shoe_size").is_none());

    // The client loses the phone scope: its next access token loses the phone number.
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{}", rp.id),
        Some(json!({"scope": "openid profile email offline_access"})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t2 = token(
        &env,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .json_body();
    let info = userinfo(&env, t2["access_token"].as_str().unwrap()).json_body();
    assert!(info.get("phone_number").is_none(), "{info}");
    assert_eq!(info["given_name"], "Alice");
    // The refreshed ID token still carries what was asked for it.
    assert!(id_token_claims(&env, &t2)["email"].is_string());
}

#[test]
fn oidc_core_5_5_1_a_claims_sub_is_met_only_by_that_user() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let id = env.create_user("alice", PASSWORD);
    let ask = |sub: &str| {
        let claims = json!({"id_token": {"sub": {"value": sub}}});
        format!("&claims={}", gatehouse_core::http::form_encode(&claims.to_string()))
    };
    let mut b = Browser::default();
    let resp = login(
        &env,
        &mut b,
        &authorize_url(&rp, &ask("usr_someone_else")),
        "alice",
        PASSWORD,
    );
    let loc = resp.header("location").expect("redirect").to_owned();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert!(query_param(&loc, "code").is_none());
    let t = tokens_for(&env, &rp, &authorize_url(&rp, &ask(&id)));
    assert_eq!(id_token_claims(&env, &t)["sub"], json!(id));
}

#[test]
fn a_malformed_claims_parameter_goes_back_as_invalid_request() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    for bad in ["[]", "{\"userinfo\": [\"email\"]}", "{\"id_token\": {\"email\": true}}"] {
        let url = authorize_url(&rp, &format!("&claims={}", gatehouse_core::http::form_encode(bad)));
        let r = env.send(Request::new(Method::Get, &url));
        let loc = r
            .header("location")
            .unwrap_or_else(|| panic!("{bad}: no redirect"))
            .to_owned();
        assert!(loc.starts_with(REDIRECT), "{bad}: {loc}");
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{bad}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st4te"));
    }
}

#[test]
fn a_claim_asked_for_by_name_is_asked_on_the_consent_page_like_its_scope() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"first_party": false, "scope": "openid email phone"}));
    env.create_user("alice", PASSWORD);
    let claims = json!({"userinfo": {"phone_number": null}});
    let url = authorize_url_for(
        &rp,
        "openid",
        &format!("&claims={}", gatehouse_core::http::form_encode(&claims.to_string())),
    );
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &url));
    let loc = r.header("location").unwrap().to_owned();
    let r = submit_login(&env, &mut b, &loc, "alice", PASSWORD);
    let loc = r.header("location").unwrap().to_owned();
    assert!(loc.starts_with("/oauth2/consent"), "{loc}");
    let page = String::from_utf8_lossy(&b.send(&env, b.request(Method::Get, &loc)).body).to_string();
    assert!(page.contains("See your phone number"), "{page}");
    assert!(!page.contains("See your email address"), "email was not asked for");
}

#[test]
fn discovery_advertises_the_standard_claims_and_the_claims_parameter() {
    let env = TestEnv::new();
    let d = env
        .send(Request::new(Method::Get, "/.well-known/openid-configuration"))
        .json_body();
    assert_eq!(d["claims_parameter_supported"], json!(true));
    for s in ["openid", "profile", "email", "address", "phone", "offline_access"] {
        assert!(d["scopes_supported"].as_array().unwrap().contains(&json!(s)), "{s}");
    }
    for c in USER_CLAIMS.iter().chain(&["sub", "acr", "amr", "auth_time", "nonce"]) {
        assert!(d["claims_supported"].as_array().unwrap().contains(&json!(c)), "{c}");
    }
}

// ----------------------------------------------------------------------------------------------
// An independent verifier: the `jsonwebtoken` crate against the published JWKS

/// A token changed after signing: its payload, its algorithm, its key id.
fn forgeries(jwt: &str) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let parts: Vec<&str> = jwt.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("usr_mallory");
    let enc = |v: &Value| B64.encode(v.to_string());
    let with_header = |h: Value| format!("{}.{}.{}", enc(&h), parts[1], parts[2]);
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let mut other_kid = header.clone();
    other_kid["kid"] = json!(if header["alg"] == "RS256" {
        gatehouse_core::testing::signer::EC_B_KID
    } else {
        gatehouse_core::testing::signer::RSA_A_KID
    });
    vec![
        (
            "payload changed",
            format!("{}.{}.{}", parts[0], enc(&payload), parts[2]),
        ),
        ("alg none", format!("{}.{}.", enc(&none), parts[1])),
        ("alg HS256", with_header(hs)),
        ("another key's kid", with_header(other_kid)),
        (
            "signature cut",
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]),
        ),
    ]
}

#[test]
fn every_token_verifies_with_jsonwebtoken_against_the_jwks_and_forgeries_do_not() {
    let mut env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut before_rotation = Vec::new();
    for alg in ["RS256", "ES256"] {
        let rp = confidential(&env, json!({"id_token_signed_response_alg": alg}));
        let t = tokens_for(&env, &rp, &authorize_url(&rp, ""));
        for kind in ["id_token", "access_token"] {
            let jwt = t[kind].as_str().unwrap();
            let claims = verify_with_jsonwebtoken(&env, jwt, &rp.id).unwrap_or_else(|e| panic!("{alg} {kind}: {e}"));
            assert_eq!(claims["sub"], json!(env.user_id("alice")), "{alg} {kind}");
            for (what, forged) in forgeries(jwt) {
                assert!(
                    verify_with_jsonwebtoken(&env, &forged, &rp.id).is_err(),
                    "{alg} {kind}: {what} must not verify"
                );
            }
            // Another audience is another client's token.
            assert!(verify_with_jsonwebtoken(&env, jwt, "someone-else").is_err());
            before_rotation.push((rp.id.clone(), jwt.to_owned()));
        }
    }
    // The RSA key rotates: what the old key signed still verifies (it stays published, retired),
    // and what is issued now is signed by the new one and verifies too.
    env.signer =
        gatehouse_core::testing::RustCryptoSigner::from_secret(&gatehouse_core::testing::signer::test_secret_rotated())
            .unwrap();
    for (aud, jwt) in &before_rotation {
        verify_with_jsonwebtoken(&env, jwt, aud).unwrap_or_else(|e| panic!("after rotation: {e}"));
    }
    let rp = confidential(&env, json!({}));
    let t = tokens_for(&env, &rp, &authorize_url(&rp, ""));
    let jwt = t["id_token"].as_str().unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    assert_eq!(kid, gatehouse_core::testing::signer::RSA_B_KID);
    verify_with_jsonwebtoken(&env, jwt, &rp.id).unwrap();
}

#[test]
fn oidc_core_3_1_2_1_optional_and_unknown_parameters_are_ignored() {
    // `display`, `ui_locales`, `claims_locales` and parameters Gatehouse has never heard of change
    // nothing: the request goes on to a code as if they were absent.
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let extra = "&display=popup&ui_locales=fr-CA%20fr%20en&claims_locales=fr&registration=%7B%7D&foo=bar&vtr=x";
    let mut b = Browser::default();
    let resp = login(&env, &mut b, &authorize_url(&rp, extra), "alice", PASSWORD);
    let loc = resp.header("location").expect("redirect").to_owned();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
    assert_eq!(exchange(&env, &rp, &code).status, 200);
}

/// Signs alice in to `rp` in a new browser; the browser and her ID token.
fn signed_in_with_id_token(env: &TestEnv, rp: &Rp) -> (Browser, String) {
    let mut b = Browser::default();
    let r = login(env, &mut b, &authorize_url(rp, ""), "alice", PASSWORD);
    let code = query_param(r.header("location").unwrap(), "code").unwrap();
    let t = exchange(env, rp, &code).json_body();
    (b, t["id_token"].as_str().unwrap().to_owned())
}

fn still_signed_in(env: &TestEnv, b: &Browser, rp: &Rp) -> bool {
    let r = env.send(b.request(Method::Get, &authorize_url(rp, "&prompt=none")));
    query_param(r.header("location").unwrap(), "code").is_some()
}

#[test]
fn rp_initiated_logout_1_0_each_parameter_combination_of_the_logout_test_plan() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    env.create_user("alice", PASSWORD);
    let bye = gatehouse_core::http::form_encode("https://rp.example.com/bye");

    // A modified id_token_hint is an error page, and the session goes on.
    let (mut b, hint) = signed_in_with_id_token(&env, &rp);
    let payload_changed = {
        let mut parts: Vec<&str> = hint.split('.').collect();
        let altered = format!("{}A", &parts[1][..parts[1].len() - 1]);
        parts[1] = &altered;
        parts.join(".")
    };
    let r = b.send(
        &env,
        b.request(
            Method::Get,
            &format!("/oauth2/logout?id_token_hint={payload_changed}&post_logout_redirect_uri={bye}&state=s1"),
        ),
    );
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    assert!(still_signed_in(&env, &b, &rp));

    // A valid hint without post_logout_redirect_uri: signed out, and Gatehouse's own page.
    let r = b.send(
        &env,
        b.request(Method::Get, &format!("/oauth2/logout?id_token_hint={hint}&state=s2")),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
    assert!(!still_signed_in(&env, &b, &rp));

    // A valid hint without state: back to the client with no state added.
    let (mut b, hint) = signed_in_with_id_token(&env, &rp);
    let r = b.send(
        &env,
        b.request(
            Method::Get,
            &format!("/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={bye}"),
        ),
    );
    assert_eq!(r.header("location"), Some("https://rp.example.com/bye"));

    // No hint, but client_id, a registered URI and state: the user confirms, then goes back
    // with the state.
    let (mut b, _) = signed_in_with_id_token(&env, &rp);
    let url = format!(
        "/oauth2/logout?client_id={}&post_logout_redirect_uri={bye}&state=s3",
        rp.id
    );
    let page = b.send(&env, b.request(Method::Get, &url));
    assert_eq!(page.status, 200);
    assert!(still_signed_in(&env, &b, &rp), "nothing ends before the user confirms");
    let html = String::from_utf8_lossy(&page.body).to_string();
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/logout").with_form(&[
            ("csrf", hidden(&html, "csrf").as_str()),
            ("logout", "yes"),
            ("client_id", hidden(&html, "client_id").as_str()),
            (
                "post_logout_redirect_uri",
                hidden(&html, "post_logout_redirect_uri").as_str(),
            ),
            ("state", hidden(&html, "state").as_str()),
        ]),
    );
    assert_eq!(r.header("location"), Some("https://rp.example.com/bye?state=s3"));
    assert!(!still_signed_in(&env, &b, &rp));

    // Only state: the user confirms, and ends on Gatehouse's page (there is nowhere to go back to).
    let (mut b, _) = signed_in_with_id_token(&env, &rp);
    let page = b.send(&env, b.request(Method::Get, "/oauth2/logout?state=s4"));
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/logout").with_form(&[
            ("csrf", hidden(&html, "csrf").as_str()),
            ("logout", "yes"),
            ("state", "s4"),
        ]),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
    assert!(!still_signed_in(&env, &b, &rp));

    // A registered URI with a query added is another URI.
    let (mut b, hint) = signed_in_with_id_token(&env, &rp);
    let added = gatehouse_core::http::form_encode("https://rp.example.com/bye?x=1");
    let r = b.send(
        &env,
        b.request(
            Method::Get,
            &format!("/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={added}"),
        ),
    );
    assert_eq!(r.status, 400);
    assert!(still_signed_in(&env, &b, &rp));
}

#[test]
fn rfc6750_2_userinfo_takes_the_token_from_the_header_or_a_post_body_never_the_query() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let access = t["access_token"].as_str().unwrap();
    let sub = json!(env.user_id("alice"));
    let get = userinfo(&env, access);
    assert_eq!(get.json_body()["sub"], sub);
    let post_header = env
        .send(Request::new(Method::Post, "/oauth2/userinfo").with_header("authorization", &format!("Bearer {access}")));
    assert_eq!(post_header.json_body()["sub"], sub);
    let post_body = env.send(Request::new(Method::Post, "/oauth2/userinfo").with_form(&[("access_token", access)]));
    assert_eq!(post_body.status, 200);
    assert_eq!(post_body.json_body()["sub"], sub);
    let query = env.send(Request::new(
        Method::Get,
        &format!("/oauth2/userinfo?access_token={access}"),
    ));
    assert_eq!(query.status, 401);
}

#[test]
fn a_code_flow_by_post_without_a_nonce_for_a_client_secret_post_client() {
    // OIDC Core §3.1.2.1: the request may be a POST form; `nonce` is optional for the code flow;
    // the client authenticates with client_secret_post (RFC 6749 §2.3.1).
    let env = TestEnv::new();
    let rp = confidential(&env, json!({"token_endpoint_auth_method": "client_secret_post"}));
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let req = b.request(Method::Post, "/oauth2/authorize").with_form(&[
        ("response_type", "code"),
        ("client_id", rp.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st4te"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let r = b.send(&env, req);
    let loc = r.header("location").expect("to the login page").to_owned();
    let r = submit_login(&env, &mut b, &loc, "alice", PASSWORD);
    let resume = r.header("location").expect("back to the request").to_owned();
    let r = b.send(&env, b.request(Method::Get, &resume));
    let loc = r.header("location").expect("redirect").to_owned();
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
    let r = env.send(Request::new(Method::Post, "/oauth2/token").with_form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", rp.id.as_str()),
        ("client_secret", rp.secret.as_deref().unwrap()),
    ]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let c = id_token_claims(&env, &r.json_body());
    assert!(c.get("nonce").is_none(), "none asked, none given");
    assert_eq!(c["email"], "alice@example.com");
}

#[test]
fn rfc7009_rfc7662_token_type_hint_is_a_hint_whatever_its_value() {
    // RFC 7009 §2.1: a wrong hint makes the server search the other types too; §2.2.1: an
    // invalid hint value is ignored. RFC 7662 §2.1 says the same of introspection.
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let code = code_for(&env, &rp);
    let t = exchange(&env, &rp, &code).json_body();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    for hint in ["access_token", "refresh_token", "id_token", "foo", ""] {
        let info = token_like(
            &env,
            &rp,
            "/oauth2/introspect",
            &[("token", access), ("token_type_hint", hint)],
        );
        assert_eq!(info.status, 200, "{hint}");
        assert_eq!(info.json_body()["active"], true, "access token with hint {hint:?}");
        let info = token_like(
            &env,
            &rp,
            "/oauth2/introspect",
            &[("token", refresh), ("token_type_hint", hint)],
        );
        assert_eq!(info.json_body()["active"], true, "refresh token with hint {hint:?}");
    }
    // Revoked under the wrong hint, and an unknown one: both take effect.
    let r = token_like(
        &env,
        &rp,
        "/oauth2/revoke",
        &[("token", access), ("token_type_hint", "refresh_token")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(introspect(&env, &rp, access)["active"], false);
    let r = token_like(
        &env,
        &rp,
        "/oauth2/revoke",
        &[("token", refresh), ("token_type_hint", "foo")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(introspect(&env, &rp, refresh)["active"], false);
}

#[test]
fn the_largest_id_token_possible_is_still_accepted_as_a_hint() {
    // Every claim at its bound, with the characters JSON escapes, in an RS256 ID token for every
    // scope: RP-initiated logout and id_token_hint must still take it.
    let env = TestEnv::new();
    let rp = confidential(
        &env,
        json!({"scope": "openid profile email address phone offline_access"}),
    );
    let username = "u".repeat(64);
    let email = format!("{}@{}.{}.example.com", "e".repeat(64), "d".repeat(63), "f".repeat(63));
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": username, "email": email, "password": PASSWORD, "name": "\"".repeat(256)})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    let url = |c: char| format!("https://example.com/{}", c.to_string().repeat(1024 - 20));
    let quote128 = "\"".repeat(128);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({
            "given_name": quote128, "family_name": quote128, "middle_name": quote128, "nickname": quote128,
            "gender": "\"".repeat(64), "picture": url('p'), "profile": url('q'), "website": url('w'),
            "birthdate": "1999-12-31", "zoneinfo": "A".repeat(64), "locale": "abcdefgh-abcdefgh-abcdefgh-abcde",
            "phone_number": "+123456789012345;ext=1234567890", "phone_number_verified": true,
            "address": {"formatted": "\"".repeat(512), "street_address": "\\\\".repeat(256),
                        "locality": quote128, "region": quote128, "postal_code": quote128, "country": quote128}
        })),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut b = Browser::default();
    let resp = login(
        &env,
        &mut b,
        &authorize_url_for(&rp, "openid profile email address phone", ""),
        &username,
        PASSWORD,
    );
    let code = query_param(resp.header("location").unwrap(), "code").unwrap();
    let t = exchange(&env, &rp, &code).json_body();
    let hint = t["id_token"].as_str().unwrap();
    assert!(hint.len() > 11_000, "the test fills the claims: {} bytes", hint.len());
    assert!(
        hint.len() <= gatehouse_core::limits::ID_TOKEN_HINT,
        "{} bytes",
        hint.len()
    );
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/logout").with_form(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "https://rp.example.com/bye"),
        ]),
    );
    assert_eq!(
        r.header("location"),
        Some("https://rp.example.com/bye"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn client_credentials_never_grants_a_user_scope_old_or_new() {
    let env = TestEnv::new();
    let rp = confidential(
        &env,
        json!({"grant_types": ["authorization_code", "client_credentials"], "scope": "openid profile email address phone offline_access api:read"}),
    );
    for s in [
        "openid",
        "profile",
        "email",
        "address",
        "phone",
        "offline_access",
        "api:read phone",
    ] {
        let r = token(&env, &rp, &[("grant_type", "client_credentials"), ("scope", s)]);
        assert_eq!(r.json_body()["error"], "invalid_scope", "{s}");
    }
    let r = token(
        &env,
        &rp,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    );
    assert_eq!(r.json_body()["scope"], "api:read");
}

#[test]
fn prompt_none_with_a_claims_sub_tells_an_unconsented_client_nothing_about_who_is_signed_in() {
    let env = TestEnv::new();
    let first = confidential(&env, json!({}));
    let third = confidential(&env, json!({"client_name": "Third", "first_party": false}));
    let alice = env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    login(&env, &mut b, &authorize_url(&first, ""), "alice", PASSWORD);
    let mut error_for = |extra: &str| {
        let r = b.send(
            &env,
            b.request(Method::Get, &authorize_url(&third, &format!("&prompt=none{extra}"))),
        );
        query_param(r.header("location").unwrap(), "error")
    };
    let sub = |id: &str| {
        let c = json!({"id_token": {"sub": {"value": id}}});
        format!("&claims={}", gatehouse_core::http::form_encode(&c.to_string()))
    };
    assert_eq!(error_for("").as_deref(), Some("consent_required"));
    assert_eq!(error_for(&sub(&alice)).as_deref(), Some("login_required"));
    assert_eq!(error_for(&sub("usr_someone_else")).as_deref(), Some("login_required"));
}

#[test]
fn oidc_core_5_5_1_a_claims_sub_beside_an_id_token_hint_must_name_the_same_user() {
    let env = TestEnv::new();
    let rp = confidential(&env, json!({}));
    let alice = env.create_user("alice", PASSWORD);
    let (mut b, hint) = signed_in_with_id_token(&env, &rp);
    let ask = |sub: &str| {
        let c = json!({"id_token": {"sub": {"value": sub}}});
        format!(
            "&prompt=none&id_token_hint={hint}&claims={}",
            gatehouse_core::http::form_encode(&c.to_string())
        )
    };
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, &ask(&alice))));
    let loc = r.header("location").unwrap().to_owned();
    assert!(query_param(&loc, "code").is_some(), "the same user twice: {loc}");
    let r = b.send(
        &env,
        b.request(Method::Get, &authorize_url(&rp, &ask("usr_someone_else"))),
    );
    let loc = r.header("location").unwrap().to_owned();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert!(
        query_param(&loc, "error_description").is_some_and(|d| d.contains("another sub than id_token_hint")),
        "{loc}"
    );
}
