//! The account page end to end through `gatehouse_core::handle`: signing in for it, changing the
//! password (a flow ending in the new-password stage), adding and removing an authenticator app (with re-authentication), regenerating
//! recovery codes, signing out the other sessions.

mod support;

use gatehouse_core::factors::totp::TotpSecret;
use gatehouse_core::http::{Method, Response};
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

/// Opens /account in `b`, signing in with `password` when asked; returns the account page.
fn open_account(env: &TestEnv, b: &mut Browser, username: &str, password: &str) -> Response {
    let mut r = b.send(env, b.request(Method::Get, "/account"));
    for _ in 0..6 {
        let Some(loc) = r.header("location").map(str::to_owned) else {
            return r;
        };
        r = if loc.starts_with("/oauth2/login") {
            submit_login(env, b, &loc, username, password)
        } else {
            b.send(env, b.request(Method::Get, &loc))
        };
    }
    r
}

/// Posts one of the account page's forms.
fn post(env: &TestEnv, b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Response {
    let page = b.send(env, b.request(Method::Get, "/account"));
    let csrf = hidden(&body(&page), "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.send(env, b.request(Method::Post, path).with_form(&form))
}

fn now(env: &TestEnv) -> u64 {
    use gatehouse_core::ports::Clock;
    env.clock.now() as u64
}

/// Adds an authenticator app from the account page; returns its secret and the codes shown.
fn add_totp(env: &TestEnv, b: &mut Browser) -> (TotpSecret, Response) {
    let page = b.send(env, b.request(Method::Get, "/account/totp/new"));
    assert_eq!(page.status, 200, "{}", body(&page));
    let html = body(&page);
    let start = html.find("id=\"totp-secret\">").unwrap() + 17;
    let key: String = html[start..start + 40].split('<').next().unwrap().replace(' ', "");
    let secret =
        TotpSecret::from_bytes(base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &key).unwrap()).unwrap();
    let code = secret.code_at(now(env)).unwrap();
    let r = b.send(
        env,
        b.request(Method::Post, "/account/totp/new").with_form(&[
            ("req", hidden(&html, "req").as_str()),
            ("csrf", hidden(&html, "csrf").as_str()),
            ("name", "Work phone"),
            ("code", &code),
        ]),
    );
    (secret, r)
}

#[test]
fn the_account_page_signs_in_for_itself_and_shows_the_profile() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let page = open_account(&env, &mut b, "alice", PASSWORD);
    assert_eq!(page.status, 200, "{}", body(&page));
    let html = body(&page);
    assert!(html.contains("id=\"profile-username\">alice<"));
    assert!(html.contains("(this browser)"));
    assert!(html.contains("id=\"no-devices\""));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0, "the flow ended");
    let r = env.send(gatehouse_core::http::Request::new(Method::Get, "/account"));
    assert!(
        location(&r).starts_with("/oauth2/login?req="),
        "without a session: sign in first"
    );
}

/// Posts the new-password stage's form of the flow at `url`.
fn set_password(env: &TestEnv, b: &mut Browser, url: &str, new: &str, again: &str) -> Response {
    let page = body(&b.send(env, b.request(Method::Get, url)));
    b.send(
        env,
        b.request(Method::Post, "/oauth2/password").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("new_password", new),
            ("confirm_password", again),
        ]),
    )
}

fn changed(env: &TestEnv) -> i64 {
    env.db
        .count("SELECT COUNT(*) FROM events WHERE kind = 'password_changed'")
}

#[test]
fn changing_the_password_signs_in_again_then_sets_it_and_signs_out_the_other_sessions() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut other = Browser::default();
    open_account(&env, &mut other, "alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    let new = "a much newer passphrase";

    // A form without this browser's token starts nothing.
    let forged = b.send(
        &env,
        b.request(Method::Post, "/account/password")
            .with_form(&[("csrf", "forged")]),
    );
    assert_eq!(forged.status, 403);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0);

    // The change is a flow: the current password first, even with a fresh session.
    let r = post(&env, &mut b, "/account/password", &[]);
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login?req="), "{login}");
    let page = body(&b.send(&env, b.request(Method::Get, &login)));
    assert!(page.contains("value=\"alice\""), "the username is filled in");
    // The new-password stage cannot be reached before the password is passed again.
    let early = b.send(
        &env,
        b.request(Method::Get, &login.replace("/oauth2/login", "/oauth2/password")),
    );
    assert!(
        location(&early).starts_with("/oauth2/login?req="),
        "sent back to sign in"
    );
    let early = b.send(
        &env,
        b.request(Method::Post, "/oauth2/password").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("new_password", new),
            ("confirm_password", new),
        ]),
    );
    assert!(location(&early).starts_with("/oauth2/login?req="));
    assert_eq!(changed(&env), 0);
    let r = submit_login(&env, &mut b, &login, "alice", "wrong");
    assert_eq!(r.status, 401, "a wrong current password is a failed sign-in");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'login_failed'"),
        1
    );
    let r = submit_login(&env, &mut b, &login, "alice", PASSWORD);
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");

    let r = set_password(&env, &mut b, &stage, new, "different");
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("do not match"));
    let r = set_password(&env, &mut b, &stage, "short", "short");
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("at least 15 characters"));
    assert_eq!(changed(&env), 0);

    let r = set_password(&env, &mut b, &stage, new, new);
    let resume = location(&r);
    assert!(resume.starts_with("/account/resume?req="), "{resume}");
    let r = b.send(&env, b.request(Method::Get, &resume));
    assert_eq!(location(&r), "/account?done=password");
    let page = b.send(&env, b.request(Method::Get, "/account?done=password"));
    assert!(body(&page).contains("Your password was changed"));
    assert_eq!(changed(&env), 1);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0, "the flow ended");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL"),
        1,
        "only the session of this sign-in"
    );
    // The other browser is signed out; the old password no longer works, the new one does.
    let r = other.send(&env, other.request(Method::Get, "/account"));
    assert!(location(&r).starts_with("/oauth2/login"));
    let r = open_account(&env, &mut Browser::default(), "alice", PASSWORD);
    assert_eq!(r.status, 401);
    assert_eq!(open_account(&env, &mut Browser::default(), "alice", new).status, 200);
    // Nothing from the address is shown: an unknown `done` is no notice.
    let page = b.send(&env, b.request(Method::Get, "/account?done=%3Cb%3Ezqxj"));
    assert!(!body(&page).contains("zqxj"));
    assert!(body(&page).contains("id=\"account-notice\" role=\"status\"></p>"));
}

#[test]
fn a_user_with_an_authenticator_app_passes_it_again_before_choosing_a_new_password() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    let (secret, _) = add_totp(&env, &mut b);
    env.clock.advance(31);
    let r = post(&env, &mut b, "/account/password", &[]);
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let mfa = location(&r);
    assert!(mfa.starts_with("/oauth2/mfa?req="), "{mfa}");
    let early = b.send(
        &env,
        b.request(Method::Get, &mfa.replace("/oauth2/mfa", "/oauth2/password")),
    );
    assert!(location(&early).starts_with("/oauth2/mfa?req="), "the code comes first");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &secret.code_at(now(&env)).unwrap()),
        ]),
    );
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
    let r = set_password(
        &env,
        &mut b,
        &stage,
        "a much newer passphrase",
        "a much newer passphrase",
    );
    assert!(location(&r).starts_with("/account/resume"));
    assert_eq!(changed(&env), 1);
}

#[test]
fn an_authenticator_app_is_added_and_removed_from_the_account_page_after_a_recent_sign_in() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    let (secret, r) = add_totp(&env, &mut b);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(body(&r).matches("<li><code>").count(), 10, "first codes shown once");
    let page = body(&b.send(&env, b.request(Method::Get, "/account")));
    assert!(page.contains("Work phone"));
    assert!(page.contains("Recovery codes left: 10"));
    let device = env.db.text("SELECT id FROM totp_devices");

    // A second app keeps the codes the user saved.
    env.clock.advance(31);
    let (_, r) = add_totp(&env, &mut b);
    assert_eq!(body(&r).matches("<li><code>").count(), 0);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM totp_devices WHERE confirmed_at IS NOT NULL"),
        2
    );

    // Eleven minutes later, removing one asks to sign in again: password and code.
    env.clock.advance(11 * 60);
    let r = post(&env, &mut b, "/account/totp/remove", &[("device", &device)]);
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login"), "{login}");
    let r = submit_login(&env, &mut b, &login, "alice", PASSWORD);
    let mfa = location(&r);
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &secret.code_at(now(&env)).unwrap()),
        ]),
    );
    let r = b.send(&env, b.request(Method::Get, &location(&r)));
    assert_eq!(location(&r), "/account");
    let r = post(&env, &mut b, "/account/totp/remove", &[("device", &device)]);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM totp_devices"), 1);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'totp_removed'"),
        1
    );
    let r = post(&env, &mut b, "/account/totp/remove", &[("device", "totp_nope")]);
    assert_eq!(r.status, 404);
}

#[test]
fn new_recovery_codes_replace_the_old_set_and_other_sessions_can_be_signed_out() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    add_totp(&env, &mut b);
    let old = env.db.text("SELECT code_hash FROM recovery_codes LIMIT 1");
    let r = post(&env, &mut b, "/account/recovery-codes", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(body(&r).matches("<li><code>").count(), 10);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{old}'"
        )),
        0
    );
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'recovery_codes_regenerated'"),
        1
    );

    let mut other = Browser::default();
    let r = other.send(&env, other.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut other, &location(&r), "alice", PASSWORD);
    assert!(location(&r).starts_with("/oauth2/mfa"), "a second factor now");
    let r = post(&env, &mut b, "/account/sessions/end-others", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL"), 1);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'sessions_ended'"),
        1
    );
}

/// Signs `b` out through the logout page.
fn sign_out(env: &TestEnv, b: &mut Browser) {
    let page = body(&b.send(env, b.request(Method::Get, "/oauth2/logout")));
    b.send(
        env,
        b.request(Method::Post, "/oauth2/logout")
            .with_form(&[("csrf", hidden(&page, "csrf").as_str()), ("logout", "yes")]),
    );
}

#[test]
fn a_password_change_left_open_dies_with_its_session_and_sets_nothing() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    let r = post(&env, &mut b, "/account/password", &[]);
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
    let page = body(&b.send(&env, b.request(Method::Get, &stage)));
    // Alice signs out and walks away; the next person at this browser goes back in history.
    sign_out(&env, &mut b);
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/password").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("new_password", "chosen by someone else"),
            ("confirm_password", "chosen by someone else"),
        ]),
    );
    assert!(location(&r).starts_with("/account/resume"), "the flow is over");
    let r = b.send(&env, b.request(Method::Get, &location(&r)));
    assert_eq!(r.status, 403);
    assert_eq!(changed(&env), 0);
    assert_eq!(
        open_account(&env, &mut Browser::default(), "alice", PASSWORD).status,
        200
    );
}

#[test]
fn changing_the_password_ends_the_other_sign_ins_in_progress_for_the_user() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    // Someone with the old password is half way through a sign-in (at the second factor it
    // would enroll, say): here, stopped at the new-password stage of a flow of their own.
    let mut thief = Browser::default();
    open_account(&env, &mut thief, "alice", PASSWORD);
    let r = post(&env, &mut thief, "/account/password", &[]);
    let r = submit_login(&env, &mut thief, &location(&r), "alice", PASSWORD);
    let thief_stage = location(&r);
    let thief_page = body(&thief.send(&env, thief.request(Method::Get, &thief_stage)));
    // Alice changes her password from her own browser.
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    let r = post(&env, &mut b, "/account/password", &[]);
    let r = submit_login(&env, &mut b, &location(&r), "alice", PASSWORD);
    let r = set_password(
        &env,
        &mut b,
        &location(&r),
        "alice's new passphrase",
        "alice's new passphrase",
    );
    assert!(location(&r).starts_with("/account/resume"));
    assert_eq!(changed(&env), 1);
    // The thief's flow is gone: their form sets nothing.
    let r = thief.send(
        &env,
        thief.request(Method::Post, "/oauth2/password").with_form(&[
            ("req", hidden(&thief_page, "req").as_str()),
            ("csrf", hidden(&thief_page, "csrf").as_str()),
            ("new_password", "the thief's passphrase"),
            ("confirm_password", "the thief's passphrase"),
        ]),
    );
    assert_eq!(r.status, 400, "{}", body(&r));
    assert!(body(&r).contains("expired"));
    assert_eq!(changed(&env), 1);
    assert_eq!(
        open_account(&env, &mut Browser::default(), "alice", "alice's new passphrase").status,
        200
    );
}

#[test]
fn a_factor_change_within_ten_minutes_of_the_password_needs_no_new_sign_in() {
    let env = TestEnv::new();
    env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    open_account(&env, &mut b, "alice", PASSWORD);
    env.clock.advance(10 * 60);
    let page = b.send(&env, b.request(Method::Get, "/account/totp/new"));
    assert_eq!(page.status, 200, "ten minutes on: still recent");
    env.clock.advance(1);
    let r = b.send(&env, b.request(Method::Get, "/account/totp/new"));
    assert!(
        location(&r).starts_with("/oauth2/login"),
        "past ten minutes: sign in again"
    );
}

#[test]
fn the_profile_form_saves_checked_standard_claims_and_records_their_names() {
    let env = TestEnv::new();
    let id = env.create_user("alice", PASSWORD);
    let mut b = Browser::default();
    let page = open_account(&env, &mut b, "alice", PASSWORD);
    let html = body(&page);
    assert!(html.contains("id=\"profile-form\""), "{html}");
    assert!(html.contains("name=\"address.locality\""));
    let version = hidden(&html, "version");
    let r = post(
        &env,
        &mut b,
        "/account/profile",
        &[
            ("version", version.as_str()),
            ("name", "Alice Liddell"),
            ("given_name", "Alice"),
            ("locale", "en-GB"),
            ("phone_number", "+441865270000"),
            ("address.locality", "Oxford"),
            ("address.country", "GB"),
        ],
    );
    assert_eq!(location(&r), "/account?done=profile", "post/redirect/get");
    let html = body(&b.send(&env, b.request(Method::Get, "/account?done=profile")));
    assert!(html.contains("Your profile was saved."), "{html}");
    assert!(html.contains("value=\"Alice\""), "the form shows the saved value");
    let stored: serde_json::Value =
        serde_json::from_str(&env.db.text(&format!("SELECT claims FROM users WHERE id = '{id}'"))).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"given_name": "Alice", "locale": "en-GB", "phone_number": "+441865270000",
                           "address": {"locality": "Oxford", "country": "GB"}})
    );
    assert_eq!(
        env.db.text(&format!("SELECT name FROM users WHERE id = '{id}'")),
        "Alice Liddell"
    );
    let detail = env.db.text("SELECT detail FROM events WHERE kind = 'profile_changed'");
    assert!(
        detail.contains("\"given_name\"") && !detail.contains("Alice"),
        "names, never values: {detail}"
    );

    // A bad value: the page says which field, and nothing changes.
    let current = |b: &mut Browser| hidden(&body(&b.send(&env, b.request(Method::Get, "/account"))), "version");
    let v = current(&mut b);
    assert_ne!(v, version, "the fingerprint follows the values");
    let r = post(
        &env,
        &mut b,
        "/account/profile",
        &[
            ("version", v.as_str()),
            ("birthdate", "yesterday"),
            ("given_name", "Bob"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("Birth date must be YYYY-MM-DD"), "{}", body(&r));
    assert!(env
        .db
        .text(&format!("SELECT claims FROM users WHERE id = '{id}'"))
        .contains("\"Alice\""));
    // Without the form's CSRF token nothing changes either.
    let r = b.send(
        &env,
        b.request(Method::Post, "/account/profile")
            .with_form(&[("given_name", "Mallory")]),
    );
    assert_eq!(r.status, 403);
    assert!(!env
        .db
        .text(&format!("SELECT claims FROM users WHERE id = '{id}'"))
        .contains("Mallory"));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'profile_changed'"),
        1
    );
    // Sending the form back unchanged writes nothing.
    let v = current(&mut b);
    let r = post(&env, &mut b, "/account/profile", &[("version", v.as_str())]);
    assert!(body(&r).contains("Nothing changed."), "{}", body(&r));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'profile_changed'"),
        1
    );
    // A page loaded before an administrator's change cannot write its old values back.
    let stale = current(&mut b);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(serde_json::json!({"phone_number": "+441865270001", "phone_number_verified": true})),
    );
    assert_eq!(r.status, 200);
    let r = post(
        &env,
        &mut b,
        "/account/profile",
        &[
            ("version", stale.as_str()),
            ("phone_number", "+441865270000"),
            ("nickname", "al"),
        ],
    );
    assert_eq!(r.status, 409);
    assert!(body(&r).contains("Your profile changed since this page was loaded"));
    let stored = env.db.text(&format!("SELECT claims FROM users WHERE id = '{id}'"));
    assert!(
        stored.contains("+441865270001") && stored.contains("phone_number_verified"),
        "{stored}"
    );
    assert!(!stored.contains("\"al\""));
    // Without a fingerprint at all, the same.
    let r = post(&env, &mut b, "/account/profile", &[("nickname", "al")]);
    assert_eq!(r.status, 409);
}
