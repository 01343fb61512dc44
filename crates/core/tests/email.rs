//! Email, end to end through `gatehouse_core::handle` on real SQLite with a fake clock and an
//! in-memory mailer: emailed sign-in codes (expiry, reuse, resend cool-down, wrong codes),
//! password reset (same answer for unknown accounts, single use, bound to the browser, a second
//! factor still asked), address verification, the hourly mail bounds, and delivery (the outbox,
//! the HTTPS API, the `send_email` binding, failures as events).

mod support;

use gatehouse_core::flow::plan::MfaMode;
use gatehouse_core::http::{Method, Response};
use gatehouse_core::mail::{self, Courier, Delivery, MailKind, Outgoing};
use gatehouse_core::testing::FakeTransport;
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase here";

/// An environment that can send mail (through the `send_email` binding, which the in-memory
/// mailer stands in for) and offers emailed codes.
fn mail_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.settings.mail.delivery = Delivery::SendEmail;
    env.settings.mail.from = "Gatehouse <no-reply@id.example.com>".into();
    env.settings.email_otp = true;
    env
}

fn client(env: &TestEnv) -> String {
    env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "first_party": true,
    }))
    .0
}

fn verified_user(env: &TestEnv, username: &str) -> String {
    let id = env.create_user(username, PASSWORD);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{id}"),
        Some(json!({ "email_verified": true })),
    );
    assert_eq!(r.status, 200);
    id
}

fn authorize_url(client_id: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    )
}

fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, body(r)))
        .to_owned()
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

/// The login page of a new flow.
fn start(env: &TestEnv, b: &mut Browser, client_id: &str) -> String {
    let r = b.send(env, b.request(Method::Get, &authorize_url(client_id)));
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login"), "{login}");
    login
}

/// The 6-digit code of a sign-in mail.
fn code_of(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("a code in the mail")
        .to_owned()
}

/// The issuer link of a mail.
fn link_of(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(ISSUER))
        .expect("a link in the mail")
        .to_owned()
}

fn post_form(env: &TestEnv, b: &mut Browser, page_url: &str, action: &str, fields: &[(&str, &str)]) -> Response {
    let page = b.send(env, b.request(Method::Get, page_url));
    assert_eq!(page.status, 200, "{page_url}: {}", body(&page));
    let html = body(&page);
    let mut form = vec![
        ("req".to_owned(), hidden(&html, "req")),
        ("csrf".to_owned(), hidden(&html, "csrf")),
    ];
    form.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.send(env, b.request(Method::Post, action).with_form(&pairs))
}

fn events(env: &TestEnv, kind: &str) -> Vec<serde_json::Value> {
    env.db
        .text(&format!(
            "SELECT COALESCE(json_group_array(json(detail)), '[]') FROM events WHERE kind = '{kind}'"
        ))
        .parse::<serde_json::Value>()
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn sessions_of(env: &TestEnv, user_id: &str) -> i64 {
    env.db.count(&format!(
        "SELECT COUNT(*) FROM sessions WHERE user_id = '{user_id}' AND ended_at IS NULL"
    ))
}

// ---------------------------------------------------------------------------------------------
// Emailed sign-in codes

/// Signs in with the password under `GATEHOUSE_MFA=required` for a user with a verified address
/// and no app: the flow goes to the emailed-code page, which sends the first code.
fn to_email_stage(env: &TestEnv, b: &mut Browser, client_id: &str, username: &str) -> String {
    let login = start(env, b, client_id);
    let mfa = location(&submit_login(env, b, &login, username, PASSWORD));
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    let email = location(&b.send(env, b.request(Method::Get, &mfa)));
    assert!(email.starts_with("/oauth2/mfa/email?"), "{email}");
    let page = b.send(env, b.request(Method::Get, &email));
    assert_eq!(page.status, 200, "{}", body(&page));
    assert!(body(&page).contains(gatehouse_core::flow::stages::email_code::SENT));
    email
}

/// Under `GATEHOUSE_MFA=required`, "ann" (verified address, no app) at the emailed-code stage:
/// the environment, her browser, the client, her id and the stage's page.
struct AtCodeStage {
    env: TestEnv,
    b: Browser,
    client_id: String,
    user: String,
    page: String,
}

fn at_code_stage() -> AtCodeStage {
    let mut env = mail_env();
    env.settings.mfa = MfaMode::Required;
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    let mut b = Browser::default();
    let page = to_email_stage(&env, &mut b, &client_id, "ann");
    AtCodeStage {
        env,
        b,
        client_id,
        user,
        page,
    }
}

#[test]
fn an_emailed_code_signs_in_once_and_records_its_method() {
    let AtCodeStage {
        env,
        mut b,
        client_id,
        user,
        page,
    } = at_code_stage();
    let mails = env.mailer.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].kind, MailKind::SignInCode);
    assert_eq!(mails[0].to, "ann@example.com");
    let code = code_of(&mails[0].text);
    // The page does not send another one on a reload.
    let again = b.send(&env, b.request(Method::Get, &page));
    assert!(body(&again).contains("a•••@example.com"));
    // Ann holds no app and no recovery codes: no way to them is shown.
    assert!(!body(&again).contains("use-authenticator") && !body(&again).contains("use-recovery-code"));
    assert_eq!(env.mailer.mails().len(), 1);
    // The code is stored only as a keyed hash.
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM email_tokens WHERE secret_hash LIKE '%{code}%'"
        )),
        0
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", wrong)]);
    assert_eq!(r.status, 401);
    assert_eq!(events(&env, "mfa_failed")[0]["method"], "email_code");
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", &code)]);
    let done = location(&r);
    assert!(done.starts_with("/oauth2/authorize/resume"), "{done}");
    let session_factors = env
        .db
        .text(&format!("SELECT factors FROM sessions WHERE user_id = '{user}'"));
    assert!(
        session_factors.contains("password:") && session_factors.contains("email_code:"),
        "{session_factors}"
    );
    assert_eq!(events(&env, "login_succeeded")[0]["amr"], json!(["pwd", "otp", "mfa"]));

    // The same code does not sign in a second flow (it belongs to the first, and is spent).
    let mut other = Browser::default();
    let page2 = to_email_stage(&env, &mut other, &client_id, "ann");
    let r = post_form(&env, &mut other, &page2, "/oauth2/mfa/email", &[("code", &code)]);
    assert_eq!(r.status, 401);
}

#[test]
fn a_code_expires_after_ten_minutes_and_dies_after_five_wrong_tries() {
    let AtCodeStage {
        mut env, mut b, page, ..
    } = at_code_stage();
    let code = code_of(&env.mailer.mails()[0].text);
    env.clock.advance(601);
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", &code)]);
    assert_eq!(r.status, 401);
    assert!(body(&r).contains("expired or was tried too often"));

    // A new code (the cool-down has long passed), then five wrong tries end it.
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email/send", &[]);
    assert_eq!(r.status, 200, "{}", body(&r));
    let code = code_of(&env.mailer.mails()[1].text);
    env.settings.policy.lockout.max_attempts = 100;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", wrong)]);
        assert_eq!(r.status, 401);
    }
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", &code)]);
    assert_eq!(r.status, 401, "the right code after five wrong ones is refused");
}

#[test]
fn a_resend_waits_for_its_cool_down_and_replaces_the_code_before() {
    let AtCodeStage { env, mut b, page, .. } = at_code_stage();
    let first = code_of(&env.mailer.mails()[0].text);
    env.clock.advance(30);
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email/send", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(env.mailer.mails().len(), 1);
    env.clock.advance(30);
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email/send", &[]);
    assert_eq!(r.status, 200);
    let second = code_of(&env.mailer.mails()[1].text);
    if first != second {
        let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", &first)]);
        assert_eq!(r.status, 401, "the code before the resend stopped working");
    }
    let r = post_form(&env, &mut b, &page, "/oauth2/mfa/email", &[("code", &second)]);
    assert_eq!(r.status, 303);
}

#[test]
fn an_unverified_address_never_receives_a_sign_in_code() {
    let mut env = mail_env();
    env.settings.mfa = MfaMode::Required;
    let client_id = client(&env);
    env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let next = location(&submit_login(&env, &mut b, &login, "bob", PASSWORD));
    assert!(next.starts_with("/oauth2/mfa/enroll"), "{next}");
    let url = next.replace("/oauth2/mfa/enroll", "/oauth2/mfa/email");
    let r = b.send(&env, b.request(Method::Get, &url));
    assert_eq!(r.status, 303);
    assert!(env.mailer.mails().is_empty());
}

#[test]
fn emailed_codes_are_asked_in_optional_mode_only_when_the_user_turned_them_on() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let next = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    assert!(next.starts_with("/oauth2/authorize/resume"), "no second factor: {next}");
    env.db
        .exec(&format!("UPDATE users SET email_otp = 1 WHERE id = '{user}'"));
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let next = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    assert!(next.starts_with("/oauth2/mfa?"), "{next}");
}

// ---------------------------------------------------------------------------------------------
// Password reset

/// A new flow in `b`, "forgot your password?" for `login`, and the link mailed for it.
fn reset_link(env: &TestEnv, b: &mut Browser, client_id: &str, login: &str) -> String {
    let login_url = start(env, b, client_id);
    ask_reset(env, b, &login_url, login);
    link_of(&env.mailer.mails()[0].text)
}

fn ask_reset(env: &TestEnv, b: &mut Browser, login_url: &str, login: &str) -> Response {
    let page = b.send(env, b.request(Method::Get, login_url));
    assert!(body(&page).contains("id=\"forgot-password\""));
    let reset = login_url.replace("/oauth2/login", "/oauth2/reset");
    post_form(env, b, &reset, "/oauth2/reset", &[("login", login)])
}

#[test]
fn a_reset_request_answers_the_same_whether_or_not_the_account_exists() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    env.create_user("unverified", PASSWORD);
    let mut answers = Vec::new();
    for login in ["ann", "nobody", "unverified", "ann@example.com", "nobody@example.com"] {
        let mut b = Browser::default();
        let url = start(&env, &mut b, &client_id);
        let r = ask_reset(&env, &mut b, &url, login);
        let html = body(&r);
        let req = hidden(&html, "req");
        let csrf = hidden(&html, "csrf");
        answers.push((r.status, html.replace(&req, "REQ").replace(&csrf, "CSRF")));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert!(answers[0].1.contains(gatehouse_core::flow::stages::reset::SENT));
    // Mail went only to the verified address of an existing account: by username and by address.
    let mails = env.mailer.mails();
    assert_eq!(mails.len(), 2);
    assert!(mails
        .iter()
        .all(|m| m.to == "ann@example.com" && m.kind == MailKind::PasswordReset));
    let requested = events(&env, "password_reset_requested");
    assert_eq!(requested.len(), 5);
    assert_eq!(requested.iter().filter(|e| e["sent"] == true).count(), 2);
}

#[test]
fn a_reset_link_works_once_in_the_browser_that_asked_and_ends_every_other_session() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    // Ann is signed in elsewhere (perhaps by whoever knows her password).
    let mut elsewhere = Browser::default();
    let login = start(&env, &mut elsewhere, &client_id);
    submit_login(&env, &mut elsewhere, &login, "ann", PASSWORD);
    assert_eq!(sessions_of(&env, &user), 1);

    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    assert!(link.starts_with("https://id.example.com/oauth2/reset/confirm?req="));
    // Another browser (a mail scanner, another device) gets nothing from it.
    let mut scanner = Browser::default();
    let r = scanner.send(&env, scanner.request(Method::Get, &link));
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("browser where you asked"));
    // In the browser that asked: the new-password stage, and no session before it is set.
    let r = b.send(&env, b.request(Method::Get, &link));
    let new_password = location(&r);
    assert!(new_password.starts_with("/oauth2/password"), "{new_password}");
    assert_eq!(sessions_of(&env, &user), 1, "the link alone signs nobody in");
    let r = post_form(
        &env,
        &mut b,
        &new_password,
        "/oauth2/password",
        &[("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
    );
    assert!(location(&r).starts_with("/oauth2/authorize/resume"));
    assert_eq!(sessions_of(&env, &user), 1, "the other session ended; this one began");
    assert_eq!(events(&env, "password_changed")[0]["by"], "reset");
    assert_eq!(events(&env, "login_succeeded").last().unwrap()["amr"], json!(["otp"]));
    let notice = env.mailer.last_to("ann@example.com").unwrap();
    assert_eq!(notice.kind, MailKind::PasswordChanged);
    // The link is spent; the old password is gone and the new one works.
    let again = b.send(&env, b.request(Method::Get, &link));
    assert_eq!(again.status, 400);
    let mut c = Browser::default();
    let login = start(&env, &mut c, &client_id);
    assert_eq!(submit_login(&env, &mut c, &login, "ann", PASSWORD).status, 401);
    assert_eq!(submit_login(&env, &mut c, &login, "ann", NEW_PASSWORD).status, 303);
}

#[test]
fn a_reset_link_expires_after_fifteen_minutes() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    env.clock.advance(15 * 60);
    let r = b.send(&env, b.request(Method::Get, &link));
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("expired"));
}

#[test]
fn a_reset_still_asks_for_the_authenticator_app_and_not_for_an_emailed_code() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    env.db
        .exec(&format!("UPDATE users SET email_otp = 1 WHERE id = '{user}'"));
    let secret = add_confirmed_device(&env, &user);
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    let mfa = location(&b.send(&env, b.request(Method::Get, &link)));
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    assert!(
        !page.contains("use-email-code"),
        "the mailbox again is not a second factor"
    );
    let url = mfa.replace("/oauth2/mfa", "/oauth2/mfa/email");
    let r = b.send(&env, b.request(Method::Get, &url));
    assert_eq!(r.status, 303);
    assert_eq!(env.mailer.mails().len(), 1, "no code was sent");
    let code = secret.code_at(T0 as u64).unwrap();
    let r = post_form(&env, &mut b, &mfa, "/oauth2/mfa", &[("code", &code)]);
    assert!(location(&r).starts_with("/oauth2/password"));
}

// ---------------------------------------------------------------------------------------------
// The hourly bounds

#[test]
fn mail_to_one_address_stops_at_the_hourly_bound_and_the_answer_does_not_change() {
    let mut env = mail_env();
    env.settings.mail.per_address_hour = 2;
    let client_id = client(&env);
    verified_user(&env, "ann");
    for _ in 0..3 {
        let mut b = Browser::default();
        let login = start(&env, &mut b, &client_id);
        let r = ask_reset(&env, &mut b, &login, "ann");
        assert_eq!(r.status, 200);
    }
    assert_eq!(env.mailer.mails().len(), 2);
    let requested = events(&env, "password_reset_requested");
    assert_eq!(requested[2]["reason"], "address");
    env.clock.advance(3600);
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    ask_reset(&env, &mut b, &login, "ann");
    assert_eq!(env.mailer.mails().len(), 3, "the bound refills over the hour");
}

#[test]
fn mail_asked_for_from_one_ip_stops_at_its_hourly_bound() {
    let mut env = mail_env();
    env.settings.mail.per_ip_hour = 2;
    let client_id = client(&env);
    for name in ["a1", "a2", "a3"] {
        verified_user(&env, name);
        let mut b = Browser::default();
        let login = start(&env, &mut b, &client_id);
        ask_reset(&env, &mut b, &login, name);
    }
    assert_eq!(env.mailer.mails().len(), 2);
    assert_eq!(events(&env, "password_reset_requested")[2]["reason"], "ip");
}

// ---------------------------------------------------------------------------------------------
// Address verification

fn account_page(env: &TestEnv, b: &mut Browser, client_id: &str, username: &str) -> String {
    let login = start(env, b, client_id);
    submit_login(env, b, &login, username, PASSWORD);
    let r = b.send(env, b.request(Method::Get, "/account"));
    assert_eq!(r.status, 200);
    body(&r)
}

fn account_post(env: &TestEnv, b: &mut Browser, html: &str, action: &str, fields: &[(&str, &str)]) -> Response {
    let csrf = hidden(html, "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.send(env, b.request(Method::Post, action).with_form(&form))
}

fn email_verified(env: &TestEnv, user: &str) -> bool {
    env.admin(Method::Get, &format!("/admin/api/users/{user}"), None)
        .json_body()["email_verified"]
        == true
}

#[test]
fn a_verification_link_proves_the_address_after_a_click_not_on_a_scanners_get() {
    let env = mail_env();
    let client_id = client(&env);
    let user = env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "bob");
    assert!(html.contains("id=\"send-verification\""));
    let r = account_post(&env, &mut b, &html, "/account/email/verify-send", &[]);
    assert_eq!(r.status, 200, "{}", body(&r));
    let mail = env.mailer.last_to("bob@example.com").unwrap();
    assert_eq!(mail.kind, MailKind::VerifyAddress);
    let link = link_of(&mail.text);
    // Following the link (any browser, a scanner) shows a button and changes nothing.
    let mut scanner = Browser::default();
    let page = scanner.send(&env, scanner.request(Method::Get, &link));
    assert_eq!(page.status, 200);
    assert!(!email_verified(&env, &user));
    let token = hidden(&body(&page), "token");
    let r = scanner.send(
        &env,
        scanner
            .request(Method::Post, "/account/email/verify")
            .with_form(&[("token", &token)]),
    );
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("verify-done"));
    assert!(email_verified(&env, &user));
    assert_eq!(events(&env, "email_verified").len(), 1);
    // Once only.
    let r = scanner.send(
        &env,
        scanner
            .request(Method::Post, "/account/email/verify")
            .with_form(&[("token", &token)]),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_link_for_an_address_the_user_no_longer_has_proves_nothing() {
    let env = mail_env();
    let client_id = client(&env);
    let user = env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "bob");
    account_post(&env, &mut b, &html, "/account/email/verify-send", &[]);
    let old_link = link_of(&env.mailer.last_to("bob@example.com").unwrap().text);
    // A changed address (the password was passed just now: recent enough).
    let r = account_post(
        &env,
        &mut b,
        &html,
        "/account/email",
        &[("email", "bob@new.example.com")],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(env.mailer.last_to("bob@new.example.com").is_some());
    let page = b.send(&env, b.request(Method::Get, &old_link));
    assert_eq!(page.status, 400, "the old address's link ended with the change");
    assert!(!email_verified(&env, &user));
    assert_eq!(events(&env, "email_changed")[0]["to"], "bob@new.example.com");
}

#[test]
fn an_administrator_changing_an_address_makes_it_unverified_unless_told_otherwise() {
    let env = mail_env();
    let user = verified_user(&env, "ann");
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user}"),
        Some(json!({ "email": "ann@new.example.com" })),
    );
    assert_eq!(r.json_body()["email_verified"], false);
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user}"),
        Some(json!({ "email": "ann@third.example.com", "email_verified": true })),
    );
    assert_eq!(r.json_body()["email_verified"], true);
    // The same address again is no change.
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user}"),
        Some(json!({ "email": "ann@third.example.com" })),
    );
    assert_eq!(r.json_body()["email_verified"], true);
}

#[test]
fn without_mail_nothing_that_needs_it_is_offered() {
    let env = TestEnv::new();
    let client_id = client(&env);
    env.create_user("ann", PASSWORD);
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let page = body(&b.send(&env, b.request(Method::Get, &login)));
    assert!(!page.contains("forgot-password"));
    let reset = login.replace("/oauth2/login", "/oauth2/reset");
    assert_eq!(b.send(&env, b.request(Method::Get, &reset)).status, 404);
    let r = env.send(gatehouse_core::http::Request::new(Method::Get, "/dev/outbox"));
    assert_eq!(r.status, 404, "the outbox exists only in local development");
}

// ---------------------------------------------------------------------------------------------
// Delivery

fn outgoing(delivery: Delivery) -> Outgoing {
    Outgoing {
        delivery,
        mail: mail::messages::sign_in_code("ann@example.com", "id.example.com", "123456", 10).unwrap(),
    }
}

fn courier<'a>(env: &'a TestEnv, transport: &'a FakeTransport) -> Courier<'a> {
    Courier {
        settings: &env.settings.mail,
        api_key: env.secrets.mail_api_key.as_ref(),
        db: &env.db,
        rng: &env.rng,
        clock: &env.clock,
        transport,
    }
}

#[test]
fn the_api_adapter_posts_the_mail_and_a_refusal_is_an_event_not_an_error() {
    let mut env = mail_env();
    env.settings.mail.delivery = Delivery::Api;
    env.secrets.mail_api_key = Some(gatehouse_core::config::Secret::new("re_key"));
    let transport = FakeTransport::default();
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Api)));
    let posts = transport.posts.borrow();
    assert_eq!(posts[0].0, "https://api.resend.com/emails");
    let sent: serde_json::Value = serde_json::from_str(&posts[0].2).unwrap();
    assert_eq!(sent["to"], json!(["ann@example.com"]));
    assert!(sent["text"].as_str().unwrap().contains("123456"));
    assert!(events(&env, "mail_failed").is_empty());
    drop(posts);
    transport.status.set(422);
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Api)));
    transport.down.set(true);
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Api)));
    let failed = events(&env, "mail_failed");
    assert_eq!(failed.len(), 2);
    assert!(failed[0]["reason"].as_str().unwrap().contains("422"));
    assert_eq!(failed[1]["delivery"], "api");
    assert!(
        !failed.iter().any(|f| f.to_string().contains("123456")),
        "never the body"
    );
}

#[test]
fn the_binding_and_the_outbox_deliver_and_no_mailer_is_a_recorded_failure() {
    let env = mail_env();
    let transport = FakeTransport::default();
    futures::executor::block_on(mail::deliver(
        &courier(&env, &transport),
        &outgoing(Delivery::SendEmail),
    ));
    assert_eq!(transport.sent.borrow()[0].0, "Gatehouse <no-reply@id.example.com>");
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Outbox)));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM dev_outbox WHERE to_address = 'ann@example.com'"),
        1
    );
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Off)));
    assert_eq!(events(&env, "mail_failed").len(), 1);
}

#[test]
fn the_dev_outbox_page_exists_on_loopback_without_an_issuer_and_keeps_a_bounded_history() {
    let mut env = TestEnv::new();
    env.settings.issuer = None;
    let local = "http://127.0.0.1:8787";
    let transport = FakeTransport::default();
    for _ in 0..205 {
        futures::executor::block_on(mail::deliver(&courier(&env, &transport), &outgoing(Delivery::Outbox)));
    }
    assert_eq!(env.db.count("SELECT COUNT(*) FROM dev_outbox"), 200);
    let r = env.send_at(local, gatehouse_core::http::Request::new(Method::Get, "/dev/outbox"));
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("123456"));
    let bob = Outgoing {
        delivery: Delivery::Outbox,
        mail: mail::messages::sign_in_code("bob@example.com", "id.example.com", "654321", 10).unwrap(),
    };
    futures::executor::block_on(mail::deliver(&courier(&env, &transport), &bob));
    let listed = |query: &str| {
        let mut req = gatehouse_core::http::Request::new(Method::Get, "/dev/outbox");
        req.query = query.into();
        env.send_at(local, req).json_body()["mails"].as_array().unwrap().clone()
    };
    assert_eq!(listed("format=json&to=ANN@example.com").len(), 50);
    let to_bob = listed("format=json&to=bob@example.com");
    assert_eq!(to_bob.len(), 1);
    assert_eq!(to_bob[0]["kind"], "sign_in_code");
    assert_eq!(listed("format=json&to=").len(), 50, "an empty filter is none");
    assert_eq!(
        listed("format=json")[0]["to_address"],
        "bob@example.com",
        "newest first"
    );
    // Not on a public host, even without an issuer (which refuses to serve there anyway).
    let r = env.send_at(
        "https://id.example.com",
        gatehouse_core::http::Request::new(Method::Get, "/dev/outbox"),
    );
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------------
// What an adversarial review found

#[test]
fn a_user_with_an_app_who_never_chose_emailed_codes_is_never_offered_one() {
    let mut env = mail_env();
    env.settings.mfa = MfaMode::Required;
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    add_confirmed_device(&env, &user);
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let mfa = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    assert!(mfa.starts_with("/oauth2/mfa?"), "{mfa}");
    assert!(!body(&b.send(&env, b.request(Method::Get, &mfa))).contains("use-email-code"));
    // Straight to the emailed-code page: sent elsewhere, and nothing is mailed.
    let email = mfa.replace("/oauth2/mfa", "/oauth2/mfa/email");
    let r = b.send(&env, b.request(Method::Get, &email));
    assert_eq!(r.status, 303);
    assert!(env.mailer.mails().is_empty());
    // Once she turns codes on, they are offered beside the app.
    env.db
        .exec(&format!("UPDATE users SET email_otp = 1 WHERE id = '{user}'"));
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    assert!(page.contains("use-email-code"));
    // The emailed-code page leads back to the app (and to recovery codes only for a user who
    // has them).
    let page = body(&b.send(&env, b.request(Method::Get, &email)));
    assert!(page.contains("id=\"use-authenticator\""), "{page}");
    assert!(!page.contains("use-recovery-code"));
    env.db.exec(&format!(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ('{user}', 'h', 0)"
    ));
    assert!(body(&b.send(&env, b.request(Method::Get, &email))).contains("id=\"use-recovery-code\""));
}

#[test]
fn strangers_asking_for_resets_do_not_use_up_the_sign_in_codes_of_an_address() {
    let mut env = mail_env();
    env.settings.mfa = MfaMode::Required;
    let client_id = client(&env);
    verified_user(&env, "ann");
    for _ in 0..6 {
        let mut stranger = Browser::default();
        let login = start(&env, &mut stranger, &client_id);
        ask_reset(&env, &mut stranger, &login, "ann");
    }
    assert_eq!(env.mailer.mails().len(), 5, "the reset allowance ran out");
    let mut b = Browser::default();
    to_email_stage(&env, &mut b, &client_id, "ann");
    assert_eq!(env.mailer.mails().last().unwrap().kind, MailKind::SignInCode);
}

#[test]
fn changing_the_address_ends_a_reset_whose_link_was_opened_and_tells_the_old_address() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    // Someone with Ann's mailbox opened a reset link and stands at the new-password stage.
    let mut thief = Browser::default();
    let link = reset_link(&env, &mut thief, &client_id, "ann");
    let new_password = location(&thief.send(&env, thief.request(Method::Get, &link)));
    assert!(new_password.starts_with("/oauth2/password"));
    // Ann moves her account to another address.
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "ann");
    let r = account_post(
        &env,
        &mut b,
        &html,
        "/account/email",
        &[("email", "ann@new.example.com")],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let notice = env.mailer.last_to("ann@example.com").unwrap();
    assert_eq!(notice.kind, MailKind::AddressChanged);
    assert!(notice.text.contains("ann@new.example.com"));
    // The thief's flow is gone.
    let r = thief.send(&env, thief.request(Method::Get, &new_password));
    assert!(body(&r).contains("expired or is unknown"), "{}", body(&r));
    assert!(!email_verified(&env, &user));
}

#[test]
fn a_reset_link_opens_only_a_flow_still_waiting_for_its_password() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    ask_reset(&env, &mut b, &login, "ann");
    let link = link_of(&env.mailer.mails()[0].text);
    // Ann remembered her password and signed in within the same flow before opening the link
    // (its resume was not followed yet: the flow stands complete).
    let r = submit_login(&env, &mut b, &login, "ann", PASSWORD);
    assert_eq!(r.status, 303);
    let r = b.send(&env, b.request(Method::Get, &link));
    assert_eq!(r.status, 400, "{}", body(&r));
}

#[test]
fn the_emailed_codes_switch_is_shown_only_where_codes_are_offered() {
    for (email_otp, mfa, shown) in [
        (true, MfaMode::Optional, true),
        (false, MfaMode::Optional, false),
        (true, MfaMode::Off, false),
    ] {
        let mut env = mail_env();
        env.settings.email_otp = email_otp;
        env.settings.mfa = mfa;
        let client_id = client(&env);
        verified_user(&env, "ann");
        let mut b = Browser::default();
        let html = account_page(&env, &mut b, &client_id, "ann");
        assert_eq!(html.contains("id=\"email-otp-toggle\""), shown, "{email_otp} {mfa:?}");
    }
}

#[test]
fn the_account_page_turns_emailed_codes_on_and_off_for_a_verified_address_only() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    let bob = env.create_user("bob", PASSWORD);
    let setting = |id: &str| env.db.count(&format!("SELECT email_otp FROM users WHERE id = '{id}'"));
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "ann");
    let r = account_post(&env, &mut b, &html, "/account/email-otp", &[("on", "1")]);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(setting(&user), 1);
    assert_eq!(events(&env, "email_otp_changed")[0]["on"], true);
    let r = account_post(&env, &mut b, &html, "/account/email-otp", &[("on", "0")]);
    assert_eq!(r.status, 200);
    assert_eq!(setting(&user), 0);
    // An unverified address cannot receive codes, so they cannot be turned on for it.
    let mut c = Browser::default();
    let html = account_page(&env, &mut c, &client_id, "bob");
    let r = account_post(&env, &mut c, &html, "/account/email-otp", &[("on", "1")]);
    assert_eq!(r.status, 409);
    assert_eq!(setting(&bob), 0);
}

#[test]
fn without_gatehouse_email_otp_the_switch_is_refused() {
    let mut env = mail_env();
    env.settings.email_otp = false;
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "ann");
    let r = account_post(&env, &mut b, &html, "/account/email-otp", &[("on", "1")]);
    assert_eq!(r.status, 409);
    assert_eq!(
        env.db
            .count(&format!("SELECT email_otp FROM users WHERE id = '{user}'")),
        0
    );
}

#[test]
fn mail_names_the_site_and_the_lifetime_of_what_it_carries() {
    let env = mail_env();
    let client_id = client(&env);
    env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let html = account_page(&env, &mut b, &client_id, "bob");
    account_post(&env, &mut b, &html, "/account/email/verify-send", &[]);
    let mail = env.mailer.last_to("bob@example.com").unwrap();
    assert_eq!(mail.subject, "Confirm your email address for id.example.com");
    assert!(mail.text.contains("within 24 hours"), "{}", mail.text);
    // A sign-in code works for ten minutes, a reset link for fifteen: the mail says so.
    let AtCodeStage { env, .. } = at_code_stage();
    assert!(
        env.mailer.mails()[0].text.contains("for 10 minutes"),
        "{}",
        env.mailer.mails()[0].text
    );
    let mut b = Browser::default();
    verified_user(&env, "bob");
    let login = start(&env, &mut b, &client(&env));
    ask_reset(&env, &mut b, &login, "bob");
    let reset = env.mailer.last_to("bob@example.com").unwrap();
    assert!(reset.text.contains("within 15 minutes"), "{}", reset.text);
    let outbox_kinds: Vec<&str> = [
        MailKind::SignInCode,
        MailKind::PasswordReset,
        MailKind::PasswordChanged,
        MailKind::VerifyAddress,
        MailKind::AddressChanged,
    ]
    .iter()
    .map(|k| k.as_str())
    .collect();
    assert_eq!(
        outbox_kinds,
        [
            "sign_in_code",
            "password_reset",
            "password_changed",
            "verify_address",
            "address_changed"
        ]
    );
}

#[test]
fn an_administrator_changing_the_address_ends_the_links_sent_to_the_old_one() {
    let env = mail_env();
    let client_id = client(&env);
    let user = verified_user(&env, "ann");
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user}"),
        Some(json!({ "email": "ann@new.example.com", "email_verified": true })),
    );
    assert_eq!(r.status, 200);
    let r = b.send(&env, b.request(Method::Get, &link));
    assert_eq!(r.status, 400, "the link to the old address stopped working");
}

#[test]
fn an_administrator_changing_the_address_ends_a_reset_whose_link_was_opened_and_a_name_change_does_not() {
    for (patch, ends) in [
        (json!({ "name": "Ann Other" }), false),
        (json!({ "email": "ann@new.example.com" }), true),
    ] {
        let env = mail_env();
        let client_id = client(&env);
        let user = verified_user(&env, "ann");
        let mut b = Browser::default();
        let link = reset_link(&env, &mut b, &client_id, "ann");
        let new_password = location(&b.send(&env, b.request(Method::Get, &link)));
        assert!(new_password.starts_with("/oauth2/password"));
        let r = env.admin(Method::Patch, &format!("/admin/api/users/{user}"), Some(patch.clone()));
        assert_eq!(r.status, 200, "{}", body(&r));
        let r = b.send(&env, b.request(Method::Get, &new_password));
        assert_eq!(
            body(&r).contains("expired or is unknown"),
            ends,
            "{patch}: {}",
            body(&r)
        );
    }
}

#[test]
fn a_password_changed_from_the_account_page_is_told_to_a_verified_address_only() {
    for verified in [true, false] {
        let env = mail_env();
        let client_id = client(&env);
        if verified {
            verified_user(&env, "ann");
        } else {
            env.create_user("ann", PASSWORD);
        }
        let mut b = Browser::default();
        let html = account_page(&env, &mut b, &client_id, "ann");
        let login = location(&account_post(&env, &mut b, &html, "/account/password", &[]));
        let stage = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
        assert!(stage.starts_with("/oauth2/password?req="), "{stage}");
        let new = "a much newer passphrase";
        let r = post_form(
            &env,
            &mut b,
            &stage,
            "/oauth2/password",
            &[("new_password", new), ("confirm_password", new)],
        );
        assert!(location(&r).starts_with("/account/resume"), "{}", body(&r));
        assert_eq!(events(&env, "password_changed")[0]["by"], "user");
        let notices = env
            .mailer
            .mails()
            .iter()
            .filter(|m| m.kind == MailKind::PasswordChanged)
            .count();
        assert_eq!(notices, usize::from(verified), "verified: {verified}");
    }
}

#[test]
fn a_sign_in_that_must_be_fresh_still_takes_an_emailed_code_after_the_fresh_password() {
    let mut env = mail_env();
    env.settings.mfa = MfaMode::Required;
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    // `max_age` makes the flow count only what is passed from now on; the password just typed is.
    let r = b.send(
        &env,
        b.request(Method::Get, &format!("{}&max_age=600", authorize_url(&client_id))),
    );
    let login = location(&r);
    let mfa = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    let email = location(&b.send(&env, b.request(Method::Get, &mfa)));
    assert!(email.starts_with("/oauth2/mfa/email?"), "{email}");
    let page = b.send(&env, b.request(Method::Get, &email));
    assert_eq!(page.status, 200, "{}", body(&page));
    let code = code_of(&env.mailer.mails()[0].text);
    let r = post_form(&env, &mut b, &email, "/oauth2/mfa/email", &[("code", &code)]);
    assert!(location(&r).starts_with("/oauth2/authorize/resume"), "{}", body(&r));
}

#[test]
fn an_administrator_setting_a_password_or_disabling_the_account_ends_the_links_sent_before() {
    for (patch, ends) in [
        (json!({ "name": "Ann Other" }), false),
        (json!({ "disabled": false }), false),
        (json!({ "password": "an administrator's new passphrase" }), true),
        (json!({ "disabled": true }), true),
    ] {
        let env = mail_env();
        let client_id = client(&env);
        let user = verified_user(&env, "ann");
        let mut b = Browser::default();
        let login = start(&env, &mut b, &client_id);
        ask_reset(&env, &mut b, &login, "ann");
        let live = || env.db.count("SELECT COUNT(*) FROM email_tokens WHERE used_at IS NULL");
        assert_eq!(live(), 1);
        let r = env.admin(Method::Patch, &format!("/admin/api/users/{user}"), Some(patch.clone()));
        assert_eq!(r.status, 200, "{}", body(&r));
        assert_eq!(live(), i64::from(!ends), "{patch}");
    }
}

#[test]
fn a_reset_link_does_nothing_for_an_account_disabled_or_unproved_since_it_was_sent() {
    // However the account changed (here straight in the database, as a change racing the click
    // would), the link checks it again when it is opened.
    for change in ["disabled = 1", "email_verified = 0"] {
        let env = mail_env();
        let client_id = client(&env);
        let user = verified_user(&env, "ann");
        let mut b = Browser::default();
        let link = reset_link(&env, &mut b, &client_id, "ann");
        env.db.exec(&format!("UPDATE users SET {change} WHERE id = '{user}'"));
        let r = b.send(&env, b.request(Method::Get, &link));
        assert_eq!(r.status, 400, "{change}: {}", body(&r));
    }
}

#[test]
fn a_reset_asked_for_nobody_or_for_a_name_too_long_is_a_form_error_and_sends_nothing() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    let login = start(&env, &mut b, &client_id);
    let longest = "a".repeat(gatehouse_core::limits::USERNAME_INPUT);
    let too_long = "a".repeat(gatehouse_core::limits::USERNAME_INPUT + 1);
    for (asked, status) in [
        ("", 400),
        ("   ", 400),
        (too_long.as_str(), 400),
        (longest.as_str(), 200),
    ] {
        let r = ask_reset(&env, &mut b, &login, asked);
        assert_eq!(r.status, status, "{} characters", asked.len());
    }
    assert!(env.mailer.mails().is_empty());
}

#[test]
fn the_admin_api_refuses_an_address_that_is_not_one_plain_address() {
    let env = mail_env();
    let user = verified_user(&env, "ann");
    for bad in ["victim@corp.com<me@evil.com>", "a@x.com,b@y.com", "not an address"] {
        let r = env.admin(
            Method::Patch,
            &format!("/admin/api/users/{user}"),
            Some(json!({ "email": bad })),
        );
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({ "username": "eve", "email": "eve@x.com;ann@example.com", "password": PASSWORD })),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_reset_link_is_no_verification_link() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    let token = query_param(&link, "token").unwrap();
    let r = b.send(
        &env,
        b.request(Method::Post, "/account/email/verify")
            .with_form(&[("token", &token)]),
    );
    assert_eq!(r.status, 400);
    assert!(events(&env, "email_verified").is_empty());
}

#[test]
fn a_reset_link_ends_after_three_guesses_at_the_current_password() {
    let env = mail_env();
    let client_id = client(&env);
    verified_user(&env, "ann");
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &client_id, "ann");
    let r = b.send(&env, b.request(Method::Get, &link));
    let stage = location(&r);
    let set = |b: &mut Browser, pw: &str| {
        post_form(
            &env,
            b,
            &stage,
            "/oauth2/password",
            &[("new_password", pw), ("confirm_password", pw)],
        )
    };
    // "Must differ" tells whoever holds only the link that the guess was the password.
    for _ in 0..2 {
        let r = set(&mut b, PASSWORD);
        assert_eq!(r.status, 400);
        assert!(body(&r).contains("must differ from the current one"));
    }
    // Other refusals are not guesses at the password and do not count.
    let r = set(&mut b, "short");
    assert_eq!(r.status, 400);
    let r = set(&mut b, PASSWORD);
    assert_eq!(r.status, 403);
    assert!(body(&r).contains("Too many earlier passwords were tried"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM auth_requests"), 0, "the flow ended");
    let r = b.send(&env, b.request(Method::Get, &stage));
    assert_ne!(r.status, 200);
    // A user who signed in with the password is told "must differ" as often as it takes.
    let mut a = Browser::default();
    let login = start(&env, &mut a, &client_id);
    submit_login(&env, &mut a, &login, "ann", PASSWORD);
    let page = a.send(&env, a.request(Method::Get, "/account"));
    let csrf = hidden(&body(&page), "csrf");
    let r = a.send(
        &env,
        a.request(Method::Post, "/account/password")
            .with_form(&[("csrf", &csrf)]),
    );
    let r = submit_login(&env, &mut a, &location(&r), "ann", PASSWORD);
    let change = location(&r);
    for _ in 0..4 {
        let r = post_form(
            &env,
            &mut a,
            &change,
            "/oauth2/password",
            &[("new_password", PASSWORD), ("confirm_password", PASSWORD)],
        );
        assert_eq!(r.status, 400);
    }
}
