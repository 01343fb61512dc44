//! The password policy end to end through `gatehouse_core::handle`: the rules, Have I Been Pwned
//! (a stub that pads its answers), the history and expiry, wherever a password is set (the admin
//! API, the account page's change, an expired password at sign-in), and never at sign-in.

mod support;

use gatehouse_core::http::{Method, Response};
use gatehouse_core::policy::password::pwned::{prefix_and_suffix, WhenUnreachable};
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const DAY: i64 = 24 * 3600;

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, body(r)))
        .to_owned()
}

fn create(env: &TestEnv, username: &str, password: &str) -> Response {
    env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": username, "email": format!("{username}@example.com"), "password": password})),
    )
}

fn set_by_admin(env: &TestEnv, id: &str, password: &str) -> Response {
    env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({ "password": password })),
    )
}

fn refused_with(r: &Response, status: u16, error: &str, description: &str) {
    assert_eq!(r.status, status, "{}", body(r));
    let j = r.json_body();
    assert_eq!(j["error"], error, "{j}");
    assert_eq!(j["error_description"], description, "{j}");
}

/// A check (breach or strength) could not be made: 503, try again.
fn unchecked(r: &Response) {
    refused_with(
        r,
        503,
        "temporarily_unavailable",
        "The password could not be checked just now. Please try again in a few minutes.",
    );
}

fn stored_hash(env: &TestEnv, username: &str) -> String {
    env.db.text(&format!(
        "SELECT password_hash FROM users WHERE username = '{username}'"
    ))
}

/// Follows redirects from `/account`, signing in with `password` when asked; the last response.
fn sign_in_for_account(env: &TestEnv, b: &mut Browser, username: &str, password: &str) -> Response {
    let mut r = b.send(env, b.request(Method::Get, "/account"));
    for _ in 0..6 {
        let Some(loc) = r.header("location").map(str::to_owned) else {
            return r;
        };
        if loc.starts_with("/oauth2/password") {
            return r;
        }
        r = if loc.starts_with("/oauth2/login") {
            submit_login(env, b, &loc, username, password)
        } else {
            b.send(env, b.request(Method::Get, &loc))
        };
    }
    r
}

/// Posts the new-password stage's form at `url`.
fn set_password(env: &TestEnv, b: &mut Browser, url: &str, new: &str) -> Response {
    let page = body(&b.send(env, b.request(Method::Get, url)));
    b.send(
        env,
        b.request(Method::Post, "/oauth2/password").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("new_password", new),
            ("confirm_password", new),
        ]),
    )
}

#[test]
fn the_admin_api_applies_the_length_rules_with_the_nist_defaults() {
    let env = TestEnv::new();
    refused_with(
        &create(&env, "ann", "fourteen chars"),
        400,
        "invalid_request",
        "The password must be at least 15 characters long.",
    );
    assert_eq!(create(&env, "ann", "fifteen chars!!").status, 201);
    refused_with(
        &create(&env, "bob", &"x".repeat(257)),
        400,
        "invalid_request",
        "The password must be at most 256 characters long.",
    );
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM users"),
        1,
        "nothing stored for a refusal"
    );
    // With an authenticator app enrolled, 8 characters are enough.
    let id = env.user_id("ann");
    refused_with(
        &set_by_admin(&env, &id, "seven c"),
        400,
        "invalid_request",
        "The password must be at least 15 characters long.",
    );
    add_confirmed_device(&env, &id);
    refused_with(
        &set_by_admin(&env, &id, "seven c"),
        400,
        "invalid_request",
        "The password must be at least 8 characters long.",
    );
    assert_eq!(set_by_admin(&env, &id, "eight ch").status, 200);
}

#[test]
fn class_minimums_when_configured_name_the_rule_that_failed() {
    let mut env = TestEnv::new();
    env.settings.password.rules.min_digits = 1;
    env.settings.password.rules.min_symbols = 2;
    env.settings.password.rules.min_uppercase = 1;
    refused_with(
        &create(&env, "ann", "No digits in this one !!"),
        400,
        "invalid_request",
        "The password must contain a digit.",
    );
    refused_with(
        &create(&env, "ann", "One digit 1 and a symbol!"),
        400,
        "invalid_request",
        "The password must contain 2 symbols.",
    );
    refused_with(
        &create(&env, "ann", "no uppercase 1 here !!"),
        400,
        "invalid_request",
        "The password must contain an uppercase letter.",
    );
    assert_eq!(create(&env, "ann", "One digit 1 and symbols!?").status, 201);
}

#[test]
fn a_breached_password_is_refused_and_only_five_hex_characters_of_its_hash_leave() {
    let env = TestEnv::new();
    env.pwned.breach("password123456789", 4_000);
    let r = create(&env, "ann", "password123456789");
    refused_with(
        &r,
        400,
        "invalid_request",
        "This password has appeared in a data breach, so attackers try it first. Choose a different one.",
    );
    assert!(!body(&r).contains("password123456789"));
    let (prefix, suffix) = prefix_and_suffix("password123456789");
    let requests = env.pwned.requests.borrow().clone();
    assert_eq!(requests.len(), 1);
    let (url, headers) = &requests[0];
    assert_eq!(url, &format!("https://api.pwnedpasswords.com/range/{prefix}"));
    assert_eq!(headers, &vec![("add-padding".to_owned(), "true".to_owned())]);
    assert!(!url.contains(&suffix));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM users"), 0);
    // A suffix that is only a padding line (count 0) is not a breach.
    env.pwned.padding.borrow_mut().push("an unbreached passphrase".into());
    assert_eq!(create(&env, "ann", "an unbreached passphrase").status, 201);
}

#[test]
fn an_unreachable_breach_check_refuses_by_default_and_allows_when_configured() {
    let mut env = TestEnv::new();
    env.pwned.down.set(true);
    unchecked(&create(&env, "ann", "a perfectly good passphrase"));
    env.pwned.down.set(false);
    env.pwned.status.set(Some(429));
    assert_eq!(create(&env, "ann", "a perfectly good passphrase").status, 503);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM users"), 0);
    env.settings.password.pwned.when_unreachable = WhenUnreachable::Allow;
    assert_eq!(create(&env, "ann", "a perfectly good passphrase").status, 201);
}

#[test]
fn with_the_breach_check_off_nothing_is_asked() {
    let mut env = TestEnv::new();
    env.settings.password.pwned.url = None;
    env.pwned.breach("password123456789", 4_000);
    assert_eq!(create(&env, "ann", "password123456789").status, 201);
    assert!(env.pwned.requests.borrow().is_empty());
}

#[test]
fn signing_in_never_asks_the_breach_api_and_a_breached_password_still_signs_in() {
    let env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    env.pwned.requests.borrow_mut().clear();
    env.pwned.breach(PASSWORD, 10);
    env.pwned.down.set(true);
    let r = sign_in_for_account(&env, &mut Browser::default(), "ann", PASSWORD);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(env.pwned.requests.borrow().is_empty());
}

#[test]
fn the_history_refuses_the_last_n_passwords_and_keeps_only_what_it_needs() {
    let mut env = TestEnv::new();
    env.settings.password.history = 3;
    let id = env.create_user("ann", "the first passphrase");
    let reused = "The password must differ from your last 3 passwords.";
    refused_with(
        &set_by_admin(&env, &id, "the first passphrase"),
        400,
        "invalid_request",
        reused,
    );
    assert_eq!(set_by_admin(&env, &id, "the second passphrase").status, 200);
    assert_eq!(set_by_admin(&env, &id, "the third passphrase").status, 200);
    for old in ["the first passphrase", "the second passphrase", "the third passphrase"] {
        refused_with(&set_by_admin(&env, &id, old), 400, "invalid_request", reused);
    }
    assert_eq!(set_by_admin(&env, &id, "the fourth passphrase").status, 200);
    // Four passwords in: the first is no longer among the last three.
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM password_history"),
        2,
        "current + 2 earlier"
    );
    refused_with(
        &set_by_admin(&env, &id, "the second passphrase"),
        400,
        "invalid_request",
        reused,
    );
    assert_eq!(set_by_admin(&env, &id, "the first passphrase").status, 200);
    // Kept hashes are the Argon2id hashes as stored.
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM password_history WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'"),
        2
    );
    // Turned down to off, the next change forgets the rest; the current password is still
    // never its own replacement.
    env.settings.password.history = 0;
    refused_with(
        &set_by_admin(&env, &id, "the first passphrase"),
        400,
        "invalid_request",
        "The new password must differ from the current one.",
    );
    assert_eq!(
        set_by_admin(&env, &id, "the second passphrase").status,
        200,
        "off: older ones are allowed again"
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM password_history"), 0);
    // And the history goes with the user.
    env.settings.password.history = 5;
    assert_eq!(set_by_admin(&env, &id, "the fifth passphrase").status, 200);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM password_history"), 1);
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/users/{id}"), None)
            .status,
        204
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM password_history"), 0);
}

#[test]
fn the_account_page_change_applies_every_rule_and_changes_nothing_when_refused() {
    let mut env = TestEnv::new();
    env.settings.password.history = 2;
    env.create_user("ann", PASSWORD);
    let before = stored_hash(&env, "ann");
    let mut b = Browser::default();
    sign_in_for_account(&env, &mut b, "ann", PASSWORD);
    let page = b.send(&env, b.request(Method::Get, "/account"));
    let csrf = hidden(&body(&page), "csrf");
    let r = b.send(
        &env,
        b.request(Method::Post, "/account/password")
            .with_form(&[("csrf", &csrf)]),
    );
    let login = location(&r);
    let r = submit_login(&env, &mut b, &login, "ann", PASSWORD);
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
    let shown = body(&b.send(&env, b.request(Method::Get, &stage)));
    assert!(shown.contains("15 to 256 characters."), "{shown}");
    assert!(shown.contains("minlength=\"15\""));
    assert!(!shown.contains("id=\"password-change-reason\""));

    env.pwned.breach("breached passphrase 1", 3);
    for (new, status, error) in [
        ("too short", 400, "The password must be at least 15 characters long."),
        (PASSWORD, 400, "The password must differ from your last 2 passwords."),
        (
            "breached passphrase 1",
            400,
            "This password has appeared in a data breach, so attackers try it first. Choose a different one.",
        ),
    ] {
        let r = set_password(&env, &mut b, &stage, new);
        assert_eq!(r.status, status, "{new}");
        let html = body(&r);
        assert!(html.contains(error), "{new}: {html}");
        assert!(!html.contains(new) || new == "too short", "the password is not echoed");
    }
    env.pwned.down.set(true);
    let r = set_password(&env, &mut b, &stage, "an unchecked passphrase");
    assert_eq!(r.status, 503);
    assert!(body(&r).contains("could not be checked"));
    assert_eq!(stored_hash(&env, "ann"), before, "nothing changed");
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'password_changed'"),
        0
    );

    env.pwned.down.set(false);
    let r = set_password(&env, &mut b, &stage, "a fine new passphrase");
    assert!(location(&r).starts_with("/account/resume?req="));
    assert_ne!(stored_hash(&env, "ann"), before);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM password_history"), 1);
    assert_eq!(
        env.db.text("SELECT password_hash FROM password_history"),
        before,
        "the replaced hash, as it was stored"
    );
}

#[test]
fn an_expired_password_signs_in_then_must_be_replaced_before_the_flow_completes() {
    let mut env = TestEnv::new();
    env.settings.password.max_age_days = 90;
    let id = env.create_user("ann", PASSWORD);
    // One second early: no change asked.
    env.clock.advance(90 * DAY - 1);
    let r = sign_in_for_account(&env, &mut Browser::default(), "ann", PASSWORD);
    assert_eq!(r.status, 200, "{}", body(&r));

    env.clock.advance(1);
    // A wrong password is still only a wrong password: expiry says nothing to a guesser.
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, "/account"));
    let login = location(&r);
    let wrong = submit_login(&env, &mut b, &login, "ann", "not the password at all");
    assert_eq!(wrong.status, 401);
    assert!(!body(&wrong).contains("expired"));
    let r = submit_login(&env, &mut b, &login, "ann", PASSWORD);
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
    let shown = body(&b.send(&env, b.request(Method::Get, &stage)));
    assert!(shown.contains("Your password has expired."), "{shown}");
    // No session until a new password is set: the account page (or an app) is not reached by
    // walking away from the change.
    assert!(
        b.cookies.iter().all(|(k, _)| !k.contains("gh_session")),
        "{:?}",
        b.cookies
    );
    let r = b.send(&env, b.request(Method::Get, "/account"));
    assert!(location(&r).starts_with("/oauth2/login"), "sign in again");
    let r = set_password(&env, &mut b, &stage, "a replacement passphrase");
    let mut r = r;
    for _ in 0..4 {
        match r.header("location").map(str::to_owned) {
            Some(loc) => r = b.send(&env, b.request(Method::Get, &loc)),
            None => break,
        }
    }
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.by') FROM events WHERE kind = 'password_changed'"),
        "expiry"
    );
    use gatehouse_core::ports::Clock;
    assert_eq!(
        env.db
            .count(&format!("SELECT password_changed_at FROM users WHERE id = '{id}'")),
        env.clock.now()
    );
    // The new password starts a new 90 days.
    env.clock.advance(DAY);
    let r = sign_in_for_account(&env, &mut Browser::default(), "ann", "a replacement passphrase");
    assert_eq!(r.status, 200, "{}", body(&r));
}

#[test]
fn expiry_is_off_by_default_and_an_administrator_set_password_restarts_the_clock() {
    let mut env = TestEnv::new();
    let id = env.create_user("ann", PASSWORD);
    env.clock.advance(3650 * DAY);
    let r = sign_in_for_account(&env, &mut Browser::default(), "ann", PASSWORD);
    assert_eq!(r.status, 200, "off: never expires");
    env.settings.password.max_age_days = 30;
    assert_eq!(set_by_admin(&env, &id, "set by the administrator").status, 200);
    env.clock.advance(29 * DAY);
    let r = sign_in_for_account(&env, &mut Browser::default(), "ann", "set by the administrator");
    assert_eq!(r.status, 200, "{}", body(&r));
}

#[test]
fn a_password_zxcvbn_scores_below_the_minimum_is_refused_with_its_feedback() {
    let env = TestEnv::new();
    env.strength.scores.borrow_mut().push(("qwertyuiop123456".into(), 1));
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "ann", "email": "ann@example.com", "password": "qwertyuiop123456", "name": "Ann Example"})),
    );
    refused_with(
        &r,
        400,
        "invalid_request",
        "This password is too easy to guess. This is a very common password. Add another word or two. Uncommon words are better.",
    );
    // The strength Worker was sent the password and the account's own words, within bounds.
    let sent = env.strength.requests.borrow().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["password"], "qwertyuiop123456");
    assert_eq!(sent[0]["user_inputs"], json!(["ann", "ann@example.com", "Ann Example"]));
    // A score at the minimum passes; nothing reached the breach API for the weak one.
    env.strength.scores.borrow_mut().push(("qwertyuiop1234567".into(), 3));
    assert_eq!(create(&env, "ann", "qwertyuiop1234567").status, 201);
    assert_eq!(
        env.pwned.requests.borrow().len(),
        1,
        "only the accepted password was looked up"
    );
}

#[test]
fn the_users_own_words_make_a_password_weak_wherever_it_is_set() {
    let env = TestEnv::new();
    env.strength.user_word_score.set(Some(0));
    let id = env.create_user("quirkleton", PASSWORD);
    let r = set_by_admin(&env, &id, "quirkleton is my password");
    assert_eq!(r.status, 400, "{}", body(&r));
    assert!(r.json_body()["error_description"]
        .as_str()
        .unwrap()
        .starts_with("This password is too easy to guess."));
    // The account page's change sends the same words.
    let mut b = Browser::default();
    sign_in_for_account(&env, &mut b, "quirkleton", PASSWORD);
    let page = b.send(&env, b.request(Method::Get, "/account"));
    let csrf = hidden(&body(&page), "csrf");
    let r = b.send(
        &env,
        b.request(Method::Post, "/account/password")
            .with_form(&[("csrf", &csrf)]),
    );
    let r = submit_login(&env, &mut b, &location(&r), "quirkleton", PASSWORD);
    let stage = location(&r);
    let r = set_password(&env, &mut b, &stage, "Quirkleton forever and ever");
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("too easy to guess"));
    let last = env.strength.requests.borrow().last().cloned().unwrap();
    assert_eq!(
        last["user_inputs"],
        json!(["quirkleton", "quirkleton@example.com", "Test User"])
    );
}

#[test]
fn an_unreachable_strength_worker_refuses_and_a_minimum_of_0_asks_nothing() {
    let mut env = TestEnv::new();
    env.strength.down.set(true);
    unchecked(&create(&env, "ann", "a perfectly good passphrase"));
    assert!(env.pwned.requests.borrow().is_empty());
    env.settings.password.min_strength = 0;
    let asked = env.strength.requests.borrow().len();
    assert_eq!(create(&env, "ann", "a perfectly good passphrase").status, 201);
    assert_eq!(env.strength.requests.borrow().len(), asked);
}

#[test]
fn an_expired_password_cannot_be_replaced_by_itself() {
    let mut env = TestEnv::new();
    env.settings.password.max_age_days = 30;
    env.create_user("ann", PASSWORD);
    env.clock.advance(31 * DAY);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut b, &location(&r), "ann", PASSWORD);
    let stage = location(&r);
    let r = set_password(&env, &mut b, &stage, PASSWORD);
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("must differ from the current one"));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'password_changed'"),
        0
    );
}

#[test]
fn with_second_factors_off_an_enrolled_app_does_not_shorten_the_minimum() {
    let mut env = TestEnv::new();
    let id = env.create_user("ann", PASSWORD);
    add_confirmed_device(&env, &id);
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Off;
    refused_with(
        &set_by_admin(&env, &id, "eight ch"),
        400,
        "invalid_request",
        "The password must be at least 15 characters long.",
    );
}

#[test]
fn a_password_below_todays_rules_signs_in_then_must_be_replaced_with_no_session_before() {
    let mut env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    // The rules were raised since (or the second factor that allowed a short one was removed).
    env.settings.password.rules.min_length = 40;
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut b, &location(&r), "ann", PASSWORD);
    let stage = location(&r);
    assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
    assert!(b.cookies.iter().all(|(k, _)| k != "gh_session"));
    let shown = body(&b.send(&env, b.request(Method::Get, &stage)));
    assert!(shown.contains("does not meet the password rules any more"), "{shown}");
    let r = set_password(&env, &mut b, &stage, "a passphrase long enough for the new rules");
    assert!(location(&r).starts_with("/account/resume"), "{}", location(&r));
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.by') FROM events WHERE kind = 'password_changed'"),
        "rules"
    );
    // Wrong passwords are still only wrong passwords.
    let mut c = Browser::default();
    let r = c.send(&env, c.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut c, &location(&r), "ann", "short wrong");
    assert_eq!(r.status, 401);
}

#[test]
fn an_empty_answer_from_the_breach_api_is_no_answer() {
    let env = TestEnv::new();
    env.pwned.status.set(None);
    // The fake pads every answer; an empty 200 is what a misconfigured mirror gives.
    struct Empty;
    #[async_trait::async_trait(?Send)]
    impl gatehouse_core::ports::PwnedPasswords for Empty {
        async fn range(
            &self,
            _: &str,
            _: &[(&str, &str)],
        ) -> Result<(u16, Vec<u8>), gatehouse_core::error::InternalError> {
            Ok((200, Vec::new()))
        }
    }
    let mut ctx = env.ctx();
    ctx.pwned = &Empty;
    let req = TestEnv::admin_request(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "ann", "email": "ann@example.com", "password": "a perfectly good passphrase"})),
    );
    let r = futures::executor::block_on(gatehouse_core::handle(&ctx, &req)).expect("handled");
    assert_eq!(r.status, 503, "{}", body(&r));
}

#[test]
fn a_short_password_backed_by_an_app_signs_in_without_a_forced_change_and_alone_it_does_not() {
    let mut env = TestEnv::new();
    let id = env.create_user("ann", PASSWORD);
    let secret = add_confirmed_device(&env, &id);
    assert_eq!(
        set_by_admin(&env, &id, "ten chars!").status,
        200,
        "8 is the minimum with an app"
    );
    // With the app: the password, then the code, and the account page; no new password asked.
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut b, &location(&r), "ann", "ten chars!");
    let next = location(&r);
    assert!(
        next.starts_with("/oauth2/mfa?"),
        "the second factor, not a new password: {next}"
    );
    env.clock.advance(60);
    use gatehouse_core::ports::Clock;
    let code = secret.code_at(env.clock.now() as u64).unwrap();
    let page = body(&b.send(&env, b.request(Method::Get, &next)));
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", hidden(&page, "csrf").as_str()),
            ("code", &code),
        ]),
    );
    assert!(!location(&r).starts_with("/oauth2/password"), "{}", location(&r));
    // With second factors turned off, the same password stands alone and is below the rules.
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Off;
    let mut c = Browser::default();
    let r = c.send(&env, c.request(Method::Get, "/account"));
    let r = submit_login(&env, &mut c, &location(&r), "ann", "ten chars!");
    assert!(location(&r).starts_with("/oauth2/password"), "{}", location(&r));
}
