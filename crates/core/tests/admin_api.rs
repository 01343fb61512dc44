//! The admin API: bearer-token protected, never returns secrets after creation.

mod support;

use gatehouse_core::http::{Method, Request};
use serde_json::json;
use support::*;

#[test]
fn missing_or_wrong_admin_token_is_401_with_bearer_challenge_and_nothing_else() {
    let env = TestEnv::new();
    for auth in [None, Some("Bearer wrong"), Some("Basic YWRtaW46YWRtaW4=")] {
        let mut req = Request::new(Method::Get, "/admin/api/users");
        if let Some(a) = auth {
            req = req.with_header("authorization", a);
        }
        let r = env.send(req);
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert_eq!(r.json_body(), json!({"error": "unauthorized"}));
    }
}

#[test]
fn user_crud_never_returns_password_hashes() {
    let env = TestEnv::new();
    let id = env.create_user("bob", "a long enough password");
    for r in [
        env.admin(Method::Get, &format!("/admin/api/users/{id}"), None),
        env.admin(Method::Get, "/admin/api/users", None),
        env.admin(
            Method::Patch,
            &format!("/admin/api/users/{id}"),
            Some(json!({"name": "Bob", "password": "another long password"})),
        ),
    ] {
        assert_eq!(r.status, 200);
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("argon2") && !body.contains("password"), "{body}");
    }
    let dup = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "BOB", "email": "b@example.com", "password": "a long enough password"})),
    );
    assert_eq!(dup.status, 409, "usernames are case-insensitive");
    let short = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "carol", "email": "c@example.com", "password": "short"})),
    );
    assert_eq!(short.status, 400);
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/users/{id}"), None)
            .status,
        204
    );
    assert_eq!(
        env.admin(Method::Get, &format!("/admin/api/users/{id}"), None).status,
        404
    );
}

#[test]
fn client_secret_is_shown_once_stored_hashed_and_rotatable() {
    let env = TestEnv::new();
    let (id, secret) = env.create_client(
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "client_credentials"]}),
    );
    let secret = secret.unwrap();
    let got = env.admin(Method::Get, &format!("/admin/api/clients/{id}"), None);
    assert!(got.json_body().get("client_secret").is_none());
    assert_eq!(
        env.db
            .count(&format!("SELECT COUNT(*) FROM clients WHERE secret_hash = '{secret}'")),
        0
    );
    let rotated = env
        .admin(Method::Post, &format!("/admin/api/clients/{id}/secret"), None)
        .json_body();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let cc = |s: &str| {
        env.send(Request::new(Method::Post, "/oauth2/token").with_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", s),
        ]))
    };
    // Registered for client_secret_basic: the post method is refused even with the right secret.
    assert_eq!(cc(new_secret).status, 401);
    use base64::Engine;
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{s}"))
        )
    };
    let with = |s: &str| {
        env.send(
            Request::new(Method::Post, "/oauth2/token")
                .with_header("authorization", &basic(s))
                .with_form(&[("grant_type", "client_credentials")]),
        )
    };
    assert_eq!(with(&secret).status, 401, "old secret stops working");
    assert_eq!(with(new_secret).status, 200);
}

#[test]
fn rfc7591_client_metadata_is_validated() {
    let env = TestEnv::new();
    for bad in [
        json!({"redirect_uris": ["http://app.example.com/cb"]}),
        json!({"redirect_uris": ["https://app.example.com/cb#x"]}),
        json!({"redirect_uris": [REDIRECT], "grant_types": ["password"]}),
        json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"], "response_types": []}),
        json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "HS256"}),
        json!({"redirect_uris": [REDIRECT], "unknown_field": 1}),
    ] {
        let r = env.admin(Method::Post, "/admin/api/clients", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}");
    }
    // Each protocol value is named in the error: what was wrong, and what is allowed.
    for (bad, says) in [
        (
            json!({"grant_types": [], "response_types": []}),
            "grant_types must be a non-empty subset of [\"authorization_code\", \"refresh_token\", \"client_credentials\"]",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "token_endpoint_auth_method must be one of [\"client_secret_basic\", \"client_secret_post\", \"none\"]",
        ),
    ] {
        let r = env.admin(Method::Post, "/admin/api/clients", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json_body()["error_description"], says, "{bad}");
    }
    let id = env.create_client(json!({"redirect_uris": [REDIRECT]})).0;
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{id}"),
        Some(json!({"grant_types": ["authorization_code", "password"]})),
    );
    assert_eq!(r.status, 400, "a PATCH is checked the same way");
}

#[test]
fn healthz_answers_503_when_the_counter_store_is_down() {
    let env = TestEnv::new();
    assert_eq!(env.send(Request::new(Method::Get, "/healthz")).status, 200);
    env.counters.down.set(true);
    let r = env.send(Request::new(Method::Get, "/healthz"));
    assert_eq!(r.status, 503);
    assert_eq!(r.json_body()["checks"]["durable_object"], "unavailable");
}

#[test]
fn rfc9068_6_a_client_id_cannot_take_the_user_subject_prefix() {
    // A client_credentials token's `sub` is the client_id: it must never equal a user's.
    let env = TestEnv::new();
    for id in ["usr_0123456789abcdef", "USR_admin"] {
        let r = env.admin(
            Method::Post,
            "/admin/api/clients",
            Some(json!({"client_id": id, "grant_types": ["client_credentials"], "response_types": []})),
        );
        assert_eq!(r.status, 400, "{id}");
        assert_eq!(r.json_body()["error"], "invalid_client_metadata");
    }
    let r = env.admin(
        Method::Post,
        "/admin/api/clients",
        Some(json!({"client_id": "user-sync", "grant_types": ["client_credentials"], "response_types": []})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// The admin API with every write that touches `what` failing (a D1 error half-way).
fn admin_failing(
    env: &TestEnv,
    what: &'static str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> u16 {
    let db = Interposed::new(&env.db);
    *db.fail_writes_with.borrow_mut() = Some(what);
    env.send_with_db(&db, TestEnv::admin_request(method, path, body)).status
}

#[test]
fn a_password_reset_that_fails_half_way_changes_nothing_rather_than_leaving_old_sessions_alive() {
    let env = TestEnv::new();
    let id = env.create_user("bob", "the old long password");
    let hash_of_bob = || {
        env.db
            .text(&format!("SELECT password_hash FROM users WHERE id = '{id}'"))
    };
    let old_hash = hash_of_bob();
    // The reset's second half (ending sessions, revoking tokens) fails.
    let status = admin_failing(
        &env,
        "UPDATE sessions",
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({"password": "the new long password"})),
    );
    assert_eq!(status, 500);
    assert_eq!(
        hash_of_bob(),
        old_hash,
        "the new hash must not land without the sessions ending"
    );
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'admin_user_updated'"),
        0
    );
}

#[test]
fn a_client_whose_audit_entry_fails_is_not_created() {
    let env = TestEnv::new();
    let status = admin_failing(
        &env,
        "INSERT INTO events",
        Method::Post,
        "/admin/api/clients",
        Some(json!({"client_id": "audited", "redirect_uris": ["https://rp.example.com/cb"]})),
    );
    assert_eq!(status, 500);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM clients"), 0);
}

#[test]
fn a_secret_rotation_whose_audit_entry_fails_keeps_the_old_secret() {
    let env = TestEnv::new();
    let (id, secret) = env.create_client(json!({"redirect_uris": ["https://rp.example.com/cb"]}));
    let status = admin_failing(
        &env,
        "INSERT INTO events",
        Method::Post,
        &format!("/admin/api/clients/{id}/secret"),
        None,
    );
    assert_eq!(status, 500);
    // The old secret still authenticates.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", secret.unwrap()));
    let r = env.send(
        Request::new(Method::Post, "/oauth2/token")
            .with_header("authorization", &format!("Basic {basic}"))
            .with_form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
    );
    assert_eq!(
        r.json_body()["error"],
        "unauthorized_client",
        "authenticated (not invalid_client), then the grant is refused"
    );
}

#[test]
fn user_create_delete_and_client_delete_are_audited_in_the_same_batch() {
    let env = TestEnv::new();
    let status = admin_failing(
        &env,
        "INSERT INTO events",
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "carol", "email": "c@example.com", "password": "a long enough password"})),
    );
    assert_eq!(status, 500);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM users"), 0);
    let id = env.create_user("dave", "a long enough password");
    let status = admin_failing(
        &env,
        "INSERT INTO events",
        Method::Delete,
        &format!("/admin/api/users/{id}"),
        None,
    );
    assert_eq!(status, 500);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM users"),
        1,
        "not deleted without its audit entry"
    );
    let (cid, _) = env.create_client(json!({"redirect_uris": ["https://rp.example.com/cb"]}));
    let status = admin_failing(
        &env,
        "INSERT INTO events",
        Method::Delete,
        &format!("/admin/api/clients/{cid}"),
        None,
    );
    assert_eq!(status, 500);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM clients"), 1);
}

#[test]
fn rfc6749_3_1_2_a_redirect_uri_with_userinfo_cannot_register_plain_http_to_any_host() {
    // `http://localhost:@evil.example/cb` passed as "http on localhost": the part before `@` is
    // userinfo, so it is plain http to evil.example, where codes would travel in the clear.
    let env = TestEnv::new();
    for uri in [
        "http://localhost:@evil.example/cb",
        "http://localhost@evil.example/cb",
        "https://rp.example.com@evil.example/cb",
        "https://evil.example\\.rp.example.com/cb",
        "https://evil.example%2Frp.example.com/cb",
        "http://[::1%25lo]/cb",
        "https://rp.example.com/cb\u{65e5}",
    ] {
        for field in ["redirect_uris", "post_logout_redirect_uris"] {
            let mut body = json!({"redirect_uris": [REDIRECT]});
            body[field] = json!([uri]);
            let r = env.admin(Method::Post, "/admin/api/clients", Some(body));
            assert_eq!(r.status, 400, "{field}: {uri}");
            assert_eq!(r.json_body()["error"], "invalid_redirect_uri", "{field}: {uri}");
        }
    }
    let r = env.admin(
        Method::Post,
        "/admin/api/clients",
        Some(json!({"redirect_uris": ["http://localhost:3000/cb", "http://127.0.0.1:9/cb", "com.example.app:/cb"]})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

fn create_app(env: &TestEnv, extra: serde_json::Value) -> gatehouse_core::http::Response {
    let mut body = json!({"name": "Wiki", "host": "app.example.com", "origin": "http://10.0.0.5:8080"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    env.admin(Method::Post, "/admin/api/apps", Some(body))
}

#[test]
fn an_app_csp_cannot_smuggle_a_second_policy_or_directive_through_commas_or_semicolons() {
    // A `,` in a CSP header starts a second policy and a `;` another directive: a field meant as
    // a source list could add `script-src *` beside the operator's policy, or a report-uri.
    let env = TestEnv::new();
    for headers in [
        json!({"content_security_policy": "default-src 'self', script-src *"}),
        json!({"content_security_policy": "default-src 'self' https://a.example,https://b.example"}),
        json!({"content_security_policy": "default-src 'self'; scirpt-src 'self'"}),
        json!({"content_security_policy": "script-src 'self' 'unsafe-inlin'"}),
        json!({"content_security_policy": "default-src 'self'; report-uri https://evil.example/"}),
        json!({"csp_report_uri": "/.gatehouse/csp-report; script-src *"}),
        json!({"csp_report_uri": "/a, /b"}),
        json!({"csp_report_uri": "http://reports.example.com/"}),
        json!({"referrer_policy": "no-referrer; x=y"}),
        json!({"permissions_policy": "camera=(); script-src *"}),
        json!({"permissions_policy": "camera=(self \"https://a.example\"; x)"}),
        json!({"cross_origin_opener_policy": "same-origin, unsafe-none"}),
        json!({"content_security_policy": format!("default-src {}", "https://a.example ".repeat(400))}),
    ] {
        let r = create_app(&env, json!({"headers": headers}));
        assert_eq!(r.status, 400, "{headers}");
        assert_eq!(r.json_body()["error"], "invalid_request");
    }
    let r = create_app(
        &env,
        json!({"headers": {
            "content_security_policy": "default-src 'self'; img-src 'self' data:; script-src 'self' 'sha256-abc='; object-src 'none'",
            "csp_report_uri": "/.gatehouse/csp-report",
            "referrer_policy": "no-referrer, strict-origin-when-cross-origin",
            "permissions_policy": "camera=(), geolocation=(self \"https://maps.example.com\"), fullscreen=*",
            "cross_origin_opener_policy": "same-origin-allow-popups"
        }}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn a_header_field_a_header_cannot_carry_is_refused_at_the_admin_api_not_sent_garbled() {
    // Stored, such a CSP went out as raw UTF-8 on every response of the app (read as Latin-1:
    // another host than the operator wrote), or failed it where `Headers.append` follows the
    // Fetch standard (it throws on characters above U+00FF).
    let env = TestEnv::new();
    for headers in [
        json!({"content_security_policy": "default-src 'self' https://例え.jp"}),
        json!({"content_security_policy": "default-src 'self' https://caf\u{e9}.example"}),
        json!({"csp_report_uri": "/csp-\u{65e5}"}),
        json!({"referrer_policy": "no-referrer\r\nSet-Cookie: x=1"}),
    ] {
        let r = create_app(&env, json!({"headers": headers}));
        assert_eq!(r.status, 400, "{headers}");
    }
}

#[test]
fn an_app_cannot_be_put_on_the_issuers_host_name_on_any_port() {
    // An app on Gatehouse's host shares its cookies (per host name, whatever the port) and, on
    // the same port, its web origin: session fixation, login CSRF, and scripts or a service
    // worker beside the login page.
    let env = TestEnv::new();
    for host in [
        "id.example.com",
        "ID.Example.COM",
        "id.example.com:8443",
        "id.example.com:443",
    ] {
        let r = create_app(&env, json!({"host": host}));
        assert_eq!(r.status, 400, "{host}");
        let why = r.json_body()["error_description"].as_str().unwrap_or("").to_owned();
        assert!(why.contains("Gatehouse's own host name"), "{why}");
        let r = env.admin(
            Method::Put,
            "/admin/api/apps/wiki",
            Some(json!({"name": "Wiki", "host": host, "origin": "http://10.0.0.5:8080"})),
        );
        assert_eq!(r.status, 400, "PUT {host}");
    }
    assert_eq!(env.db.count("SELECT COUNT(*) FROM apps"), 0);
    for host in ["app.example.com", "id.example.com.example.net", "example.com"] {
        assert_eq!(create_app(&env, json!({"host": host})).status, 201, "{host}");
    }
}

#[test]
fn a_display_name_or_app_name_is_bounded_and_has_no_control_characters() {
    let env = TestEnv::new();
    for name in ["x".repeat(257), "Ada\r\nLovelace".to_owned()] {
        let r = env.admin(
            Method::Post,
            "/admin/api/users",
            Some(json!({"username": "ada", "email": "ada@example.com", "password": "a long passphrase", "name": name})),
        );
        assert_eq!(r.status, 400, "{name:?}");
    }
    let id = env.create_user("ada", "a long passphrase");
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({"name": "x".repeat(300)})),
    );
    assert_eq!(r.status, 400);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({"name": "Ада Лавлейс"})),
    );
    assert_eq!(r.status, 200, "any script is a name");
    assert_eq!(r.json_body()["name"], "Ада Лавлейс");
    // A blank name clears it (no name, rather than one of spaces).
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({"name": "   "})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["name"], serde_json::Value::Null, "{}", r.json_body());
    for name in ["", "x\u{0}y", &"w".repeat(201)] {
        assert_eq!(create_app(&env, json!({"name": name})).status, 400, "{name:?}");
    }
}

#[test]
fn a_second_app_on_the_same_host_and_path_prefix_is_a_conflict_that_leaves_the_first_as_it_was() {
    let env = TestEnv::new();
    let first = create_app(&env, json!({"path_prefix": "/wiki/"}));
    assert_eq!(first.status, 201);
    let second = create_app(
        &env,
        json!({"name": "Impostor", "path_prefix": "/wiki/", "origin": "http://10.0.0.6:80"}),
    );
    assert_eq!(second.status, 409, "{}", String::from_utf8_lossy(&second.body));
    assert_eq!(second.json_body()["error"], "conflict");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM apps WHERE origin = 'http://10.0.0.5:8080'"),
        1
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM apps"), 1);
    // Replacing the first app under its own id is no clash with itself.
    let id = first.json_body()["id"].as_str().unwrap_or_default().to_owned();
    let replaced = env.admin(
        Method::Put,
        &format!("/admin/api/apps/{id}"),
        Some(json!({"name": "Wiki 2", "host": "app.example.com", "path_prefix": "/wiki/", "origin": "http://10.0.0.5:8080"})),
    );
    assert_eq!(replaced.status, 200);
}

#[test]
fn oidc_core_5_1_standard_claims_are_user_members_each_checked() {
    let env = TestEnv::new();
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({
            "username": "ada", "email": "ada@example.com", "password": "a long passphrase",
            "given_name": "Ada", "family_name": "Lovelace", "birthdate": "1815-12-10",
            "address": {"locality": "London", "country": "GB"}, "phone_number": "+442079460000"
        })),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json_body();
    assert_eq!(created["given_name"], "Ada");
    assert_eq!(created["address"], json!({"locality": "London", "country": "GB"}));
    assert!(
        created.get("phone_number_verified").is_none(),
        "not verified, not shown"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/api/users/{id}");
    assert_eq!(
        env.admin(Method::Get, &path, None).json_body()["birthdate"],
        "1815-12-10"
    );

    // A patch changes the claims it names; null removes one; the others stay.
    let r = env.admin(
        Method::Patch,
        &path,
        Some(json!({"family_name": null, "nickname": "Enchantress", "phone_number": "+44 20 7946 0000", "phone_number_verified": true})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let u = r.json_body();
    assert!(u.get("family_name").is_none());
    assert_eq!(u["nickname"], "Enchantress");
    assert_eq!(u["given_name"], "Ada");
    assert_eq!(u["phone_number_verified"], json!(true));
    // A new number is unverified unless the same patch says otherwise.
    let u = env
        .admin(Method::Patch, &path, Some(json!({"phone_number": "+442079460001"})))
        .json_body();
    assert!(u.get("phone_number_verified").is_none(), "{u}");
    let stored = env.db.text(&format!("SELECT claims FROM users WHERE id = '{id}'"));
    assert!(!stored.contains("phone_number_verified"), "{stored}");

    // Each bad value is refused, names the claim, and changes nothing.
    let before = env.admin(Method::Get, &path, None).json_body();
    for (patch, says) in [
        (json!({"birthdate": "10/12/1815"}), "birthdate must be"),
        (
            json!({"phone_number": "020 7946 0000"}),
            "phone_number must be in E.164 form",
        ),
        (
            json!({"picture": "javascript:alert(1)"}),
            "picture must be an absolute http or https URL",
        ),
        (
            json!({"locale": "english please"}),
            "locale must be a BCP 47 language tag",
        ),
        (
            json!({"zoneinfo": "../../etc/passwd"}),
            "zoneinfo must be a time zone name",
        ),
        (
            json!({"given_name": "x".repeat(129)}),
            "given_name must be at most 128 bytes",
        ),
        (json!({"address": {"planet": "Mars"}}), "address may have only"),
        (json!({"address": "London"}), "address must be an object"),
        (
            json!({"phone_number": null, "phone_number_verified": true}),
            "phone_number_verified needs a phone_number",
        ),
        (
            json!({"phone_number_verified": true}),
            "phone_number_verified can be set to true only with the phone_number it verifies",
        ),
        (
            json!({"given_name": "Ada", "shoe_size": 6}),
            "unknown field `shoe_size`",
        ),
    ] {
        let r = env.admin(Method::Patch, &path, Some(patch.clone()));
        assert_eq!(r.status, 400, "{patch}");
        let b = r.json_body();
        assert_eq!(b["error"], "invalid_request", "{patch}");
        let d = b["error_description"].as_str().unwrap();
        assert!(d.contains(says), "{patch}: {d}");
    }
    assert_eq!(env.admin(Method::Get, &path, None).json_body(), before);
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "bob", "email": "bob@example.com", "password": "a long passphrase", "gender": 3})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM users WHERE username = 'bob'"), 0);
}

#[test]
fn a_client_may_have_only_scopes_it_can_be_granted() {
    let env = TestEnv::new();
    let create = |body: serde_json::Value| env.admin(Method::Post, "/admin/api/clients", Some(body));
    // An API scope without client_credentials can never be granted.
    let r = create(json!({"redirect_uris": [REDIRECT], "scope": "openid api:read"}));
    assert_eq!(r.status, 400);
    let e = r.json_body();
    assert_eq!(e["error"], "invalid_client_metadata");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("scope api:read is not one Gatehouse grants"),
        "{e}"
    );
    // A user scope without the code grant can never be granted either.
    let r = create(json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "openid api:read"}));
    assert_eq!(r.status, 400);
    assert!(r.json_body()["error_description"]
        .as_str()
        .unwrap()
        .contains("scope openid is a user scope"));
    // Both kinds, with both grants; a machine client's default is no scope at all.
    let r = create(json!({
        "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "client_credentials"],
        "scope": "openid profile address phone api:read"
    }));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = create(json!({"grant_types": ["client_credentials"], "response_types": []}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json_body()["scope"], "");
    let r = create(json!({"redirect_uris": [REDIRECT]}));
    assert_eq!(r.json_body()["scope"], "openid profile email");
    // A patch that takes the grant away from a scope is refused too.
    let id = r.json_body()["client_id"].as_str().unwrap().to_owned();
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/clients/{id}"),
        Some(json!({"scope": "openid profile email billing"})),
    );
    assert_eq!(r.status, 400);
    assert!(create(json!({"redirect_uris": [REDIRECT], "scope": "openid ".repeat(200)})).status == 400);
    // Each token 1 to 64 visible characters, no quote or backslash, single spaces between.
    let machine = |scope: &str| {
        create(json!({"grant_types": ["client_credentials"], "response_types": [], "scope": scope})).status
    };
    assert_eq!(machine(&"a".repeat(64)), 201);
    assert_eq!(machine(&"a".repeat(65)), 400);
    assert_eq!(machine("api:read  api:write"), 400, "an empty token between two spaces");
    assert_eq!(machine("api\"x"), 400);
    assert_eq!(machine("api\\x"), 400);
    assert_eq!(machine("api:read api:write"), 201);
    // At most 1024 bytes in all.
    let tokens = |last: usize| {
        let mut t = vec!["a".repeat(64); 15];
        t.push("b".repeat(last));
        t.join(" ")
    };
    assert_eq!(tokens(49).len(), 1024);
    assert_eq!(machine(&tokens(49)), 201);
    assert_eq!(machine(&tokens(50)), 400);
}
