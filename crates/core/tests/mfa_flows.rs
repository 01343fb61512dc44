//! Signing in with a second factor, end to end through `gatehouse_core::handle` on real SQLite
//! with a fake clock: enrollment at sign-in under `GATEHOUSE_MFA=required`, TOTP codes (replay,
//! skew), recovery codes, the lockout across passwords and codes, and step-up of a session.

mod support;

use gatehouse_core::factors::totp::TotpSecret;
use gatehouse_core::flow::plan::MfaMode;
use gatehouse_core::http::{Method, Response};
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

fn client(env: &TestEnv) -> String {
    env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "first_party": true,
    }))
    .0
}

fn authorize_url(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        gatehouse_core::http::form_encode(REDIRECT)
    )
}

fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, String::from_utf8_lossy(&r.body)))
        .to_owned()
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

/// The text of the element with this id (`<code id="x">text</code>`).
fn element(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id}"))
        + id.len()
        + 6;
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_owned()
}

/// Every recovery code shown on a notice page.
fn shown_codes(html: &str) -> Vec<String> {
    html.split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect()
}

/// Submits a code form (`/oauth2/mfa`, `/oauth2/mfa/recovery`) opened at `page_url`.
fn submit_code(env: &TestEnv, b: &mut Browser, page_url: &str, action: &str, code: &str) -> Response {
    let page = b.send(env, b.request(Method::Get, page_url));
    assert_eq!(page.status, 200, "{page_url}: {}", body(&page));
    let html = body(&page);
    let form = b.request(Method::Post, action).with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("code", code),
    ]);
    b.send(env, form)
}

/// Follows redirects inside Gatehouse until the client's redirect URI (or a page).
fn follow(env: &TestEnv, b: &mut Browser, mut r: Response) -> Response {
    for _ in 0..5 {
        match r.header("location") {
            Some(l) if !l.starts_with(REDIRECT) => {
                let l = l.to_owned();
                r = b.send(env, b.request(Method::Get, &l));
            }
            _ => break,
        }
    }
    r
}

/// Signs `username` in with the password; returns where the flow went next.
fn password_step(env: &TestEnv, b: &mut Browser, client_id: &str, username: &str, extra: &str) -> String {
    let r = b.send(env, b.request(Method::Get, &authorize_url(client_id, extra)));
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login"), "{login}");
    location(&submit_login(env, b, &login, username, PASSWORD))
}

/// Enrolls TOTP for `username` through the sign-in flow (GATEHOUSE_MFA=required); returns the
/// secret, the recovery codes shown and the page's Continue link.
fn enroll_at_sign_in(
    env: &TestEnv,
    b: &mut Browser,
    client_id: &str,
    username: &str,
) -> (TotpSecret, Vec<String>, String) {
    let enroll = password_step(env, b, client_id, username, "");
    assert!(enroll.starts_with("/oauth2/mfa/enroll"), "{enroll}");
    let page = b.send(env, b.request(Method::Get, &enroll));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let html = body(&page);
    assert!(html.contains("src=\"data:image/svg+xml;base64,"), "QR code as an image");
    let key: String = element(&html, "totp-secret")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &key).expect("base32 key");
    assert_eq!(bytes.len(), 20, "160-bit secret");
    assert!(element(&html, "totp-uri").starts_with("otpauth://totp/id.example.com:"));
    let secret = TotpSecret::from_bytes(bytes).unwrap();
    // Reloading shows the same secret: one pending device per enrollment.
    let again = body(&b.send(env, b.request(Method::Get, &enroll)));
    assert_eq!(element(&again, "totp-secret"), element(&html, "totp-secret"));
    let code = secret.code_at(env.clock_now()).unwrap();
    let form = b.request(Method::Post, "/oauth2/mfa/enroll").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("name", "Phone"),
        ("code", &code),
    ]);
    let done = b.send(env, form);
    assert_eq!(done.status, 200, "{}", body(&done));
    let codes = shown_codes(&body(&done));
    assert_eq!(codes.len(), 10);
    (secret, codes, continue_link(&body(&done)))
}

trait Now {
    fn clock_now(&self) -> u64;
}

impl Now for TestEnv {
    fn clock_now(&self) -> u64 {
        use gatehouse_core::ports::Clock;
        self.clock.now() as u64
    }
}

fn grant_amr(env: &TestEnv) -> String {
    env.db
        .text("SELECT amr FROM grants ORDER BY created_at DESC, rowid DESC LIMIT 1")
}

#[test]
fn mfa_required_enrolls_a_user_without_a_second_factor_before_any_session() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let enroll = password_step(&env, &mut b, &rp, "alice", "");
    assert!(enroll.starts_with("/oauth2/mfa/enroll"), "{enroll}");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM sessions"),
        0,
        "no session before a second factor"
    );

    let mut b = Browser::default();
    let (_, codes, next) = enroll_at_sign_in(&env, &mut b, &rp, "alice");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM totp_devices WHERE confirmed_at IS NOT NULL AND name = 'Phone'"),
        1
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM totp_devices"),
        1,
        "the first pending device was replaced"
    );
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NULL"),
        10
    );
    assert!(
        !codes.iter().any(|c| env
            .db
            .count(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{c}'"))
            > 0),
        "stored hashed"
    );
    assert!(env.db.text("SELECT secret_sealed FROM totp_devices").len() > 40);
    // Continue → the code.
    assert!(next.starts_with("/oauth2/authorize/resume?req="), "{next}");
    let cont = b.send(&env, b.request(Method::Get, &next));
    let done = follow(&env, &mut b, cont);
    assert!(query_param(&location(&done), "code").is_some());
    assert_eq!(grant_amr(&env), "pwd otp mfa");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'totp_enrolled'"),
        1
    );
}

#[test]
fn an_enrolled_user_signs_in_with_a_code_which_works_only_once() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let (secret, _, _) = enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");
    env.settings.mfa = MfaMode::Optional;
    env.clock.advance(60);

    // A fresh browser: password, then the code.
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM sessions"),
        1,
        "only the enrollment's session"
    );
    let wrong = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", "000000");
    assert_eq!(wrong.status, 401);
    assert!(body(&wrong).contains("not valid"));
    let code = secret.code_at(env.clock_now()).unwrap();
    let ok = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", &code);
    let done = follow(&env, &mut b, ok);
    assert!(query_param(&location(&done), "code").is_some(), "{}", body(&done));
    assert_eq!(grant_amr(&env), "pwd otp mfa");

    // The same code again, in the same time step, from another browser: refused as a replay.
    let mut other = Browser::default();
    let mfa = password_step(&env, &mut other, &rp, "alice", "");
    let replay = submit_code(&env, &mut other, &mfa, "/oauth2/mfa", &code);
    assert_eq!(replay.status, 401);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'mfa_failed' AND detail LIKE '%replayed%'"),
        1
    );
}

#[test]
fn codes_one_step_off_are_accepted_and_two_steps_off_refused() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let (secret, _, _) = enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");
    for (offset, accepted) in [(-60i64, false), (60, false), (-30, true), (30, true)] {
        env.clock.advance(300);
        let mut b = Browser::default();
        let mfa = password_step(&env, &mut b, &rp, "alice", "");
        let at = (env.clock_now() as i64 + offset) as u64;
        let r = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", &secret.code_at(at).unwrap());
        assert_eq!(r.status == 303, accepted, "offset {offset}: {}", r.status);
    }
}

#[test]
fn a_recovery_code_stands_in_for_the_second_factor_once() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let (_, codes, _) = enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");

    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    assert!(page.contains("id=\"use-recovery-code\""));
    let recovery = mfa.replace("/oauth2/mfa?", "/oauth2/mfa/recovery?");
    // Typed loosely: lower case, no dashes.
    let typed = codes[3].to_lowercase().replace('-', "");
    let r = submit_code(&env, &mut b, &recovery, "/oauth2/mfa/recovery", &typed);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&r).contains("You have 9 recovery codes left."));
    let next = continue_link(&body(&r));
    let cont = b.send(&env, b.request(Method::Get, &next));
    let done = follow(&env, &mut b, cont);
    assert!(query_param(&location(&done), "code").is_some());
    assert_eq!(grant_amr(&env), "pwd otp mfa");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'recovery_code_used'"),
        1
    );

    let mut other = Browser::default();
    let mfa = password_step(&env, &mut other, &rp, "alice", "");
    let recovery = mfa.replace("/oauth2/mfa?", "/oauth2/mfa/recovery?");
    let again = submit_code(&env, &mut other, &recovery, "/oauth2/mfa/recovery", &codes[3]);
    assert_eq!(again.status, 401, "a spent code is refused");
}

/// The Continue link of a notice page.
fn continue_link(html: &str) -> String {
    let start = html.find("id=\"continue\" href=\"").expect("continue link") + 20;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&#38;", "&").replace("&amp;", "&")
}

#[test]
fn wrong_passwords_and_wrong_codes_count_toward_one_lockout() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let (secret, _, _) = enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");
    env.clock.advance(60);
    // Three wrong passwords.
    for _ in 0..3 {
        let mut b = Browser::default();
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
        let r = submit_login(&env, &mut b, &location(&r), "alice", "wrong password");
        assert_eq!(r.status, 401);
    }
    // The right password, then two wrong codes: the fifth failure locks the account.
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    for _ in 0..2 {
        assert_eq!(submit_code(&env, &mut b, &mfa, "/oauth2/mfa", "123456").status, 401);
    }
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'account_locked'"),
        1
    );
    assert_eq!(
        env.db
            .count("SELECT json_extract(detail, '$.locked_for') FROM events WHERE kind = 'account_locked'"),
        900,
        "the lock's length in seconds"
    );
    // Now even the right code is refused, with the same answer.
    let right = submit_code(
        &env,
        &mut b,
        &mfa,
        "/oauth2/mfa",
        &secret.code_at(env.clock_now()).unwrap(),
    );
    assert_eq!(right.status, 401);
    assert!(body(&right).contains("not valid"));
}

#[test]
fn a_password_session_steps_up_with_a_second_factor_instead_of_starting_over() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    // Signed in with a password only (no second factor yet).
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let done = follow(&env, &mut b, r);
    assert!(query_param(&location(&done), "code").is_some());
    assert_eq!(grant_amr(&env), "pwd");
    let session_before = env.db.text("SELECT id_hash FROM sessions");

    // acr_values asks for MFA; the user has a device now (enrolled elsewhere).
    let uid = env.user_id("alice");
    let secret = add_confirmed_device(&env, &uid);
    let acr = gatehouse_core::http::form_encode(&format!("{ISSUER}/acr/mfa"));
    let r = b.send(
        &env,
        b.request(Method::Get, &authorize_url(&rp, &format!("&acr_values={acr}"))),
    );
    let mfa = location(&r);
    assert!(
        mfa.starts_with("/oauth2/mfa?"),
        "only the missing factor is asked: {mfa}"
    );
    env.clock.advance(30);
    let r = submit_code(
        &env,
        &mut b,
        &mfa,
        "/oauth2/mfa",
        &secret.code_at(env.clock_now()).unwrap(),
    );
    assert!(r.headers.iter().all(|(k, _)| k != "set-cookie"), "the same session");
    let done = follow(&env, &mut b, r);
    assert!(query_param(&location(&done), "code").is_some());
    assert_eq!(grant_amr(&env), "pwd otp mfa");
    assert_eq!(
        env.db.text("SELECT id_hash FROM sessions WHERE ended_at IS NULL"),
        session_before
    );
    assert!(env.db.text("SELECT factors FROM sessions").contains("totp:"));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'login_stepped_up'"),
        1
    );
}

#[test]
fn a_user_whose_second_factors_are_gone_is_refused_not_enrolled_by_password() {
    let env = TestEnv::new();
    let rp = client(&env);
    let uid = env.create_user("alice", PASSWORD);
    // Recovery codes issued and all spent, no device left.
    env.db.exec(&format!(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at) VALUES ('{uid}', 'h', 1, 2)"
    ));
    let mut b = Browser::default();
    let next = password_step(&env, &mut b, &rp, "alice", "");
    assert!(next.starts_with("/oauth2/authorize/resume"), "{next}");
    let r = b.send(&env, b.request(Method::Get, &next));
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("access_denied"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM sessions"), 0);
}

#[test]
fn second_factor_stages_cannot_be_reached_before_the_password() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let login = location(&r);
    for page in ["/oauth2/mfa", "/oauth2/mfa/recovery", "/oauth2/mfa/enroll"] {
        let url = login.replace("/oauth2/login", page);
        let r = b.send(&env, b.request(Method::Get, &url));
        assert!(location(&r).starts_with("/oauth2/login"), "{page}");
    }
    assert_eq!(env.db.count("SELECT COUNT(*) FROM totp_devices"), 0);
}

#[test]
fn a_client_that_requires_mfa_makes_a_user_without_a_second_factor_enroll() {
    let env = TestEnv::new();
    let strict = env
        .create_client(json!({
            "client_name": "Payroll",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid",
            "first_party": true,
            "require_mfa": true,
        }))
        .0;
    let relaxed = client(&env);
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    // The ordinary client: a password is enough (GATEHOUSE_MFA=optional).
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&relaxed, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let done = follow(&env, &mut b, r);
    assert!(query_param(&location(&done), "code").is_some());
    // The strict one: the same session steps up by enrolling.
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&strict, "")));
    assert!(location(&r).starts_with("/oauth2/mfa/enroll"), "{}", location(&r));
    let view = env
        .admin(Method::Get, &format!("/admin/api/clients/{strict}"), None)
        .json_body();
    assert_eq!(view["require_mfa"], true);

    // Eleven minutes on, the session's password is too old to enroll with: whoever holds the
    // session (perhaps not alice) types the password first.
    env.clock.advance(11 * 60);
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&strict, "")));
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login?req="), "{login}");
    let r = submit_login(&env, &mut b, &login, "alice", PASSWORD);
    assert!(location(&r).starts_with("/oauth2/mfa/enroll"), "{}", location(&r));
}

#[test]
fn a_flow_whose_user_is_disabled_or_whose_session_ended_goes_no_further() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let alice = env.user_id("alice");
    let secret = add_confirmed_device(&env, &alice);
    // Disabled while at the second factor (directly in the table: the admin API would also
    // end the flow): the right code is refused as the flow's end, not a session.
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    env.db.exec("UPDATE users SET disabled = 1");
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &secret.code_at(env.clock_now()).unwrap()),
        ]),
    );
    let r = follow(&env, &mut b, r);
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("access_denied"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL"), 0);

    // A step-up whose session is signed out in the meantime ends too: the factors it carried
    // were the session's.
    env.db.exec("UPDATE users SET disabled = 0");
    env.db.exec("DELETE FROM totp_devices");
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    follow(&env, &mut b, r);
    let acr = gatehouse_core::http::form_encode(&format!("{ISSUER}/acr/mfa"));
    let r = b.send(
        &env,
        b.request(Method::Get, &authorize_url(&rp, &format!("&acr_values={acr}"))),
    );
    let enroll = location(&r);
    assert!(enroll.starts_with("/oauth2/mfa/enroll?req="), "{enroll}");
    env.db.exec("UPDATE sessions SET ended_at = 1");
    let r = b.send(&env, b.request(Method::Get, &enroll));
    let r = follow(&env, &mut b, r);
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("access_denied"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM totp_devices"), 0, "nothing enrolled");

    // A flow whose session (live) belongs to another user than the flow's is over too.
    let bob = env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    follow(&env, &mut b, r);
    let r = b.send(
        &env,
        b.request(Method::Get, &authorize_url(&rp, &format!("&acr_values={acr}"))),
    );
    let enroll = location(&r);
    assert!(enroll.starts_with("/oauth2/mfa/enroll?req="), "{enroll}");
    env.db
        .exec(&format!("UPDATE sessions SET user_id = '{bob}' WHERE ended_at IS NULL"));
    let r = b.send(&env, b.request(Method::Get, &enroll));
    let r = follow(&env, &mut b, r);
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("access_denied"));
}

#[test]
fn members_of_a_group_that_requires_mfa_are_asked_for_a_second_factor() {
    let mut env = TestEnv::new();
    env.settings.mfa_required_groups = vec!["admins".into()];
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    env.create_user("bob", PASSWORD);
    let bob = env.user_id("bob");
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{bob}"),
        Some(json!({"groups": ["admins"]})),
    );
    let next = password_step(&env, &mut Browser::default(), &rp, "alice", "");
    assert!(next.starts_with("/oauth2/authorize/resume"), "{next}");
    let next = password_step(&env, &mut Browser::default(), &rp, "bob", "");
    assert!(next.starts_with("/oauth2/mfa/enroll"), "{next}");
}

#[test]
fn an_administrator_sees_removes_and_resets_a_users_factors() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");
    let uid = env.user_id("alice");
    let factors = env.admin(Method::Get, &format!("/admin/api/users/{uid}/factors"), None);
    assert_eq!(factors.status, 200);
    let v = factors.json_body();
    assert_eq!(v["mfa_enrolled"], true);
    assert_eq!(v["totp_devices"][0]["name"], "Phone");
    assert_eq!(v["totp_devices"][0]["confirmed"], true);
    assert_eq!(v["recovery_codes"], json!({"remaining": 10, "issued": 10}));
    assert!(!factors.body.windows(6).any(|w| w == b"sealed"), "no secret leaves");
    let device = v["totp_devices"][0]["id"].as_str().unwrap().to_owned();

    let gone = env.admin(
        Method::Delete,
        &format!("/admin/api/users/{uid}/factors/totp/nope"),
        None,
    );
    assert_eq!(gone.status, 404);
    let r = env.admin(
        Method::Delete,
        &format!("/admin/api/users/{uid}/factors/totp/{device}"),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM totp_devices"), 0);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'admin_totp_removed'"),
        1
    );
    // The codes still sign in: the user is enrolled, and asked for one.
    let v = env
        .admin(Method::Get, &format!("/admin/api/users/{uid}/factors"), None)
        .json_body();
    assert_eq!(v["mfa_enrolled"], true);
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    let r = b.send(&env, b.request(Method::Get, &mfa));
    assert!(location(&r).starts_with("/oauth2/mfa/recovery?"), "only codes are left");

    let r = env.admin(Method::Delete, &format!("/admin/api/users/{uid}/factors"), None);
    assert_eq!(r.status, 204);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM recovery_codes"), 0);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'admin_factors_reset'"),
        1
    );
    let v = env
        .admin(Method::Get, &format!("/admin/api/users/{uid}/factors"), None)
        .json_body();
    assert_eq!(v["mfa_enrolled"], false);
    // A device alone (no codes left) is enrolled too.
    add_confirmed_device(&env, &uid);
    let v = env
        .admin(Method::Get, &format!("/admin/api/users/{uid}/factors"), None)
        .json_body();
    assert_eq!(v["mfa_enrolled"], true);
    env.db.exec("DELETE FROM totp_devices");
    // After a reset the user enrolls again at the next sign-in.
    let next = password_step(&env, &mut Browser::default(), &rp, "alice", "");
    assert!(next.starts_with("/oauth2/mfa/enroll"), "{next}");
    assert_eq!(
        env.admin(Method::Get, "/admin/api/users/usr_nobody/factors", None)
            .status,
        404
    );
    assert_eq!(
        env.admin(Method::Post, &format!("/admin/api/users/{uid}/factors"), None)
            .status,
        405
    );
}

#[test]
fn a_finished_flow_completes_only_for_the_browser_holding_its_session() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    // Another live session of alice's, in another browser.
    let mut other = Browser::default();
    let r = other.send(&env, other.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut other, &location(&r), "alice", PASSWORD);
    follow(&env, &mut other, r);
    let session_cookie = |b: &Browser| {
        b.cookies
            .iter()
            .find(|(k, _)| k.ends_with("gh_session"))
            .cloned()
            .expect("a session cookie")
    };
    let foreign = session_cookie(&other);

    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let resume = location(&r);
    assert!(resume.starts_with("/oauth2/authorize/resume"), "{resume}");
    // Before the resume, the browser's session cookie becomes the other session's (both live,
    // both alice's): the flow's factors were written to a session this browser does not hold.
    let mine = session_cookie(&b);
    b.cookies.retain(|(k, _)| *k != mine.0);
    b.cookies.push(foreign);
    let r = b.send(&env, b.request(Method::Get, &resume));
    let again = location(&r);
    assert!(
        again.starts_with("/oauth2/login?req="),
        "proved again, not completed: {again}"
    );
}

#[test]
fn a_right_code_forgives_the_failures_before_it_like_a_finished_sign_in() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let uid = env.user_id("alice");
    let secret = add_confirmed_device(&env, &uid);
    // Four wrong passwords (one short of the lock), then the password and the right code.
    for _ in 0..4 {
        let mut b = Browser::default();
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
        assert_eq!(submit_login(&env, &mut b, &location(&r), "alice", "wrong").status, 401);
    }
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    let r = submit_code(
        &env,
        &mut b,
        &mfa,
        "/oauth2/mfa",
        &secret.code_at(env.clock_now()).unwrap(),
    );
    assert!(query_param(&location(&follow(&env, &mut b, r)), "code").is_some());
    // Forgiven: four more wrong passwords still do not lock.
    for _ in 0..4 {
        let mut b = Browser::default();
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp, "")));
        assert_eq!(submit_login(&env, &mut b, &location(&r), "alice", "wrong").status, 401);
    }
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'account_locked'"),
        0
    );
}

#[test]
fn a_stage_form_without_this_browsers_token_is_refused_and_spends_nothing() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let uid = env.user_id("alice");
    let secret = add_confirmed_device(&env, &uid);
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    let code = secret.code_at(env.clock_now()).unwrap();
    let forged = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", "forged"),
            ("code", &code),
        ]),
    );
    assert_eq!(forged.status, 403);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM sessions"), 0);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM totp_devices WHERE last_step IS NULL OR last_step = 1"),
        1,
        "the code was not taken"
    );
    // The same code still works with the real token.
    let r = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", &code);
    assert!(query_param(&location(&follow(&env, &mut b, r)), "code").is_some());
}

#[test]
fn a_session_that_cannot_meet_a_clients_rule_is_refused_at_once_with_or_without_prompt_none() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Off;
    let relaxed = client(&env);
    let strict = env
        .create_client(json!({
            "client_name": "Payroll",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid",
            "first_party": true,
            "require_mfa": true,
        }))
        .0;
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&relaxed, "")));
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    follow(&env, &mut b, r);
    for extra in ["", "&prompt=none"] {
        let r = b.send(&env, b.request(Method::Get, &authorize_url(&strict, extra)));
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "straight back to the client: {to}");
        assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"), "{extra}");
    }
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0, "nothing stored");
}

/// Alice signed in twice: `b` stands at a third-party client's consent (its URL and the form's
/// CSRF token are returned), and the session cookie it holds has just been swapped for the other
/// browser's (both live, both alice's), so it no longer holds the session the flow signed in.
fn at_consent_holding_another_session(env: &TestEnv) -> (Browser, String, String) {
    let third = env
        .create_client(json!({
            "client_name": "Third Party",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid",
        }))
        .0;
    env.create_user("alice", PASSWORD);
    let mut other = Browser::default();
    let r = other.send(env, other.request(Method::Get, &authorize_url(&client(env), "")));
    let r = submit_login(env, &mut other, &location(&r), "alice", PASSWORD);
    follow(env, &mut other, r);
    let mut b = Browser::default();
    let r = b.send(env, b.request(Method::Get, &authorize_url(&third, "")));
    let r = submit_login(env, &mut b, &location(&r), "alice", PASSWORD);
    let consent = location(&r);
    assert!(consent.starts_with("/oauth2/consent?req="), "{consent}");
    let csrf = hidden(&body(&b.send(env, b.request(Method::Get, &consent))), "csrf");
    let swap = other
        .cookies
        .iter()
        .find(|(k, _)| k.ends_with("gh_session"))
        .cloned()
        .expect("a session cookie");
    b.cookies.retain(|(k, _)| !k.ends_with("gh_session"));
    b.cookies.push(swap);
    (b, consent, csrf)
}

#[test]
fn the_consent_is_answered_only_from_the_browser_holding_the_flows_session() {
    let env = TestEnv::new();
    let (mut b, consent, csrf) = at_consent_holding_another_session(&env);
    let req = query_param(&consent, "req").unwrap();
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/consent").with_form(&[
            ("req", req.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "allow"),
        ]),
    );
    assert!(location(&r).starts_with("/oauth2/login?req="), "{}", location(&r));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM consents"), 0, "nothing granted");
}

#[test]
fn the_consent_page_is_shown_only_in_the_browser_holding_the_flows_session() {
    let env = TestEnv::new();
    let (mut b, consent, _) = at_consent_holding_another_session(&env);
    let r = b.send(&env, b.request(Method::Get, &consent));
    assert!(
        location(&r).starts_with("/oauth2/login?req="),
        "shown to no one: prove it again"
    );
}

#[test]
fn each_code_page_offers_the_other_kind_only_when_the_user_has_it() {
    let env = TestEnv::new();
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let uid = env.user_id("alice");
    let secret = add_confirmed_device(&env, &uid);
    // A device and no codes: the code page offers no recovery code, even after a wrong code.
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    assert!(!body(&b.send(&env, b.request(Method::Get, &mfa))).contains("use-recovery-code"));
    let r = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", "000000");
    assert_eq!(r.status, 401);
    assert!(!body(&r).contains("use-recovery-code"));
    // With codes too: both pages link to each other.
    env.db.exec(&format!(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ('{uid}', 'h', 1)"
    ));
    assert!(body(&b.send(&env, b.request(Method::Get, &mfa))).contains("use-recovery-code"));
    let r = submit_code(&env, &mut b, &mfa, "/oauth2/mfa", "000001");
    assert!(body(&r).contains("use-recovery-code"));
    let recovery = mfa.replace("/oauth2/mfa", "/oauth2/mfa/recovery");
    assert!(body(&b.send(&env, b.request(Method::Get, &recovery))).contains("use-authenticator"));
    let r = submit_code(&env, &mut b, &recovery, "/oauth2/mfa/recovery", "aaaa-bbbb-cccc-dddd");
    assert_eq!(r.status, 401);
    assert!(body(&r).contains("use-authenticator"));
    // Codes only: the recovery page does not offer the app.
    env.db.exec("DELETE FROM totp_devices");
    assert!(!body(&b.send(&env, b.request(Method::Get, &recovery))).contains("use-authenticator"));
    let r = submit_code(&env, &mut b, &recovery, "/oauth2/mfa/recovery", "aaaa-bbbb-cccc-dddd");
    assert!(!body(&r).contains("use-authenticator"));
    let _ = secret;
}

#[test]
fn a_locked_account_spends_no_recovery_code() {
    let mut env = TestEnv::new();
    env.settings.mfa = MfaMode::Required;
    let rp = client(&env);
    env.create_user("alice", PASSWORD);
    let (_, codes, _) = enroll_at_sign_in(&env, &mut Browser::default(), &rp, "alice");
    env.clock.advance(60);
    let mut b = Browser::default();
    let mfa = password_step(&env, &mut b, &rp, "alice", "");
    let recovery = mfa.replace("/oauth2/mfa", "/oauth2/mfa/recovery");
    for _ in 0..5 {
        submit_code(&env, &mut b, &recovery, "/oauth2/mfa/recovery", "aaaa-bbbb-cccc-dddd");
    }
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'account_locked'"),
        1
    );
    let r = submit_code(&env, &mut b, &recovery, "/oauth2/mfa/recovery", &codes[0]);
    assert_eq!(r.status, 401, "locked: the right code gets the wrong-code answer");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NULL"),
        10,
        "and is not spent"
    );
}
