//! Passkeys in the sign-in flows, end to end through `gatehouse_core::handle` on real SQLite with
//! a fake clock and a software authenticator playing the browser's part (what
//! `www/static/passkey.js` posts): registration from the account page, usernameless sign-in, a
//! passkey as the second factor, and the attacks each check stops (a replayed, expired or other
//! flow's challenge, another user's passkey, a missing user verification, a counter that went
//! back, an unknown credential, a phishing origin), with the lockout and events they leave.

mod support;

use gatehouse_core::crypto::b64url;
use gatehouse_core::factors::webauthn::authenticator_data::{BE, BS, UV};
use gatehouse_core::http::{Method, Response};
use gatehouse_core::testing::webauthn::{SoftAuthenticator, SoftKey};
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const ORIGIN: &str = "https://id.example.com";

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

/// Follows redirects inside Gatehouse until the client's redirect URI (or a page).
fn follow(env: &TestEnv, b: &mut Browser, mut r: Response) -> Response {
    for _ in 0..6 {
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

fn grant_amr(env: &TestEnv) -> String {
    env.db
        .text("SELECT amr FROM grants ORDER BY created_at DESC, rowid DESC LIMIT 1")
}

fn events(env: &TestEnv, kind: &str) -> i64 {
    env.db
        .count(&format!("SELECT COUNT(*) FROM events WHERE kind = '{kind}'"))
}

/// A browser signed in to the account page with the password; returns the page's HTML.
fn account_signed_in(env: &TestEnv, b: &mut Browser, username: &str) -> String {
    let r = b.send(env, b.request(Method::Get, "/account"));
    let login = location(&r);
    assert!(login.starts_with("/oauth2/login"), "{login}");
    let r = submit_login(env, b, &login, username, PASSWORD);
    let r = follow(env, b, r);
    assert_eq!(r.status, 200, "{}", body(&r));
    body(&r)
}

/// A browser signed in to the account page with `auth`'s passkey alone (usernameless).
fn account_by_passkey(env: &TestEnv, b: &mut Browser, auth: &SoftAuthenticator, user_id: &str) -> String {
    let r = b.send(env, b.request(Method::Get, "/account"));
    let f = stage_form(env, b, &location(&r));
    let o = sign_in_options(env, b, &f);
    let r = post_assertion(
        env,
        b,
        &f,
        &auth.assertion_json(&o, ORIGIN, Some(&handle_of(env, user_id))),
    );
    let r = follow(env, b, r);
    assert_eq!(r.status, 200, "{}", body(&r));
    body(&r)
}

/// Posts the account page's passkey options request.
fn account_options(env: &TestEnv, b: &mut Browser, html: &str) -> Response {
    let form = b
        .request(Method::Post, "/account/passkeys/options")
        .with_form(&[("csrf", hidden(html, "csrf").as_str()), ("name", "")]);
    b.send(env, form)
}

/// Registers `auth`'s credential from the account page; returns the answer to the form.
fn register(env: &TestEnv, b: &mut Browser, html: &str, auth: &SoftAuthenticator, name: &str) -> Response {
    let options = account_options(env, b, html);
    assert_eq!(options.status, 200, "{}", body(&options));
    let credential = auth.registration_json(&options.json_body()["publicKey"], ORIGIN);
    let form = b.request(Method::Post, "/account/passkeys").with_form(&[
        ("csrf", hidden(html, "csrf").as_str()),
        ("name", name),
        ("credential", &credential),
    ]);
    b.send(env, form)
}

/// A user `username` with `auth`'s passkey registered from the account page.
fn user_with_passkey(env: &TestEnv, username: &str, auth: &SoftAuthenticator) -> String {
    let id = env.create_user(username, PASSWORD);
    let mut b = Browser::default();
    let html = account_signed_in(env, &mut b, username);
    let r = register(env, &mut b, &html, auth, "Laptop");
    assert_eq!(r.status, 200, "{}", body(&r));
    // The first passkey of a user without recovery codes comes with a set, shown once.
    assert!(body(&r).contains("Passkey added"), "{}", body(&r));
    assert_eq!(body(&r).matches("<li><code>").count(), 10);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    id
}

fn handle_of(env: &TestEnv, user_id: &str) -> Vec<u8> {
    let h = env
        .db
        .text(&format!("SELECT webauthn_handle FROM users WHERE id = '{user_id}'"));
    gatehouse_core::crypto::b64url_decode(&h).unwrap()
}

/// A stage page's passkey form: its `req` and `csrf`.
struct StageForm {
    req: String,
    csrf: String,
}

fn stage_form(env: &TestEnv, b: &mut Browser, url: &str) -> StageForm {
    let page = b.send(env, b.request(Method::Get, url));
    assert_eq!(page.status, 200, "{url}: {}", body(&page));
    let html = body(&page);
    assert!(html.contains("id=\"passkey-form\""), "{html}");
    StageForm {
        req: hidden(&html, "req"),
        csrf: hidden(&html, "csrf"),
    }
}

/// The sign-in options for the form's flow (`publicKey`).
fn sign_in_options(env: &TestEnv, b: &mut Browser, f: &StageForm) -> Value {
    let r = b.send(
        env,
        b.request(Method::Post, "/oauth2/passkey/options")
            .with_form(&[("req", f.req.as_str()), ("csrf", f.csrf.as_str())]),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    r.json_body()["publicKey"].clone()
}

fn post_assertion(env: &TestEnv, b: &mut Browser, f: &StageForm, credential: &str) -> Response {
    b.send(
        env,
        b.request(Method::Post, "/oauth2/passkey").with_form(&[
            ("req", f.req.as_str()),
            ("csrf", f.csrf.as_str()),
            ("credential", credential),
        ]),
    )
}

/// Opens an authorization request's login page in a new browser.
fn login_page(env: &TestEnv, rp: &str) -> (Browser, StageForm) {
    let mut b = Browser::default();
    let r = b.send(env, b.request(Method::Get, &authorize_url(rp)));
    let login = location(&r);
    let f = stage_form(env, &mut b, &login);
    (b, f)
}

/// Mail can leave (the in-memory mailer stands in for the `send_email` binding).
fn mailing(env: &mut TestEnv) {
    env.settings.mail.delivery = gatehouse_core::mail::Delivery::SendEmail;
    env.settings.mail.from = "Gatehouse <no-reply@id.example.com>".into();
}

fn verify_address(env: &TestEnv, user_id: &str) {
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user_id}"),
        Some(json!({ "email_verified": true })),
    );
    assert_eq!(r.status, 200);
}

/// "Forgot your password?" on a new authorization request's login page in `b`, for `login`:
/// the link from the mail.
fn reset_link(env: &TestEnv, b: &mut Browser, rp: &str, login: &str) -> String {
    let r = b.send(env, b.request(Method::Get, &authorize_url(rp)));
    let reset_url = location(&r).replace("/oauth2/login", "/oauth2/reset");
    let html = body(&b.send(env, b.request(Method::Get, &reset_url)));
    let form = b.request(Method::Post, "/oauth2/reset").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("login", login),
    ]);
    assert_eq!(b.send(env, form).status, 200);
    let mail = env.mailer.mails().pop().expect("the reset link");
    mail.text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(ISSUER))
        .expect("a link")
        .to_owned()
}

fn authenticator(seed: u8) -> SoftAuthenticator {
    SoftAuthenticator::new(SoftKey::p256(seed), format!("credential-{seed}").as_bytes())
}

#[test]
fn a_passkey_registered_on_the_account_page_signs_in_without_a_username_or_password() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(1);
    let ann = user_with_passkey(&env, "ann", &auth);
    assert_eq!(events(&env, "passkey_added"), 1);
    let stored = env
        .db
        .text("SELECT name || ' ' || transports || ' ' || backup_eligible FROM passkeys");
    assert_eq!(stored, "Laptop [\"internal\",\"hybrid\"] 1");

    let (mut b, f) = login_page(&env, &rp);
    let options = sign_in_options(&env, &mut b, &f);
    assert_eq!(options["rpId"], "id.example.com");
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["allowCredentials"], json!([]), "any discoverable passkey");
    let credential = auth.assertion_json(&options, ORIGIN, Some(&handle_of(&env, &ann)));
    let r = post_assertion(&env, &mut b, &f, &credential);
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT), "{}", location(&r));
    // A synced passkey (backup eligible) that verified the user: a software key, presence, and
    // two factors in one.
    assert_eq!(grant_amr(&env), "swk user mfa");
    assert_eq!(events(&env, "passkey_used"), 1);
    assert_eq!(
        env.db.text(
            "SELECT user_id FROM events WHERE kind = 'login_succeeded' ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ),
        ann
    );
    assert_eq!(env.db.count("SELECT last_used_at FROM passkeys"), T0);
}

#[test]
fn registration_names_the_user_by_an_opaque_handle_and_excludes_the_passkeys_they_hold() {
    let env = TestEnv::new();
    let auth = authenticator(2);
    let ann = user_with_passkey(&env, "ann", &auth);
    let mut b = Browser::default();
    // A sign-in with the passkey is recent enough to add another.
    let html = account_by_passkey(&env, &mut b, &auth, &ann);
    let r = account_options(&env, &mut b, &html);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let o = &r.json_body()["publicKey"];
    assert_eq!(o["rp"]["id"], "id.example.com");
    assert_eq!(o["user"]["id"], b64url(&handle_of(&env, &ann)));
    assert_eq!(handle_of(&env, &ann).len(), 32, "32 random bytes");
    assert_ne!(o["user"]["id"], b64url(b"ann"));
    assert_eq!(o["user"]["name"], "ann");
    assert_eq!(
        o["user"]["displayName"], "Test User",
        "the user's name, when they have one"
    );
    assert_eq!(o["excludeCredentials"][0]["id"], b64url(b"credential-2"));
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    // The same authenticator again is refused (the browser would refuse it too).
    let again = register(&env, &mut b, &html, &auth, "Again");
    assert_eq!(again.status, 409);
    assert!(body(&again).contains("already registered"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 1);
    assert_eq!(events(&env, "passkey_added"), 1, "nothing added, nothing recorded");
}

#[test]
fn registering_needs_a_recent_sign_in_and_a_verified_user() {
    let env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    let mut b = Browser::default();
    let html = account_signed_in(&env, &mut b, "ann");
    env.clock.advance(gatehouse_core::account::REAUTH_WINDOW + 1);
    let r = account_options(&env, &mut b, &html);
    assert_eq!(r.status, 401);
    assert_eq!(r.json_body()["error"], "reauthenticate");
    // The script then submits the form as it is: its handler signs the user in again.
    let form = b.request(Method::Post, "/account/passkeys").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("name", "x"),
        ("credential", ""),
    ]);
    let r = b.send(&env, form);
    assert!(location(&r).starts_with("/oauth2/login"), "{}", location(&r));
    let r = submit_login(&env, &mut b, &location(&r), "ann", PASSWORD);
    let html = body(&follow(&env, &mut b, r));

    // An authenticator that did not verify the user makes no passkey.
    let auth = authenticator(3);
    auth.flags.set(BE | BS);
    let r = register(&env, &mut b, &html, &auth, "No PIN");
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("could not be added"));
    // Nor does one made for another site.
    let auth = authenticator(4);
    let options = account_options(&env, &mut b, &html).json_body()["publicKey"].clone();
    let credential = auth.registration_json(&options, "https://id.example.com.evil.test");
    let form = b.request(Method::Post, "/account/passkeys").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("name", "Phish"),
        ("credential", &credential),
    ]);
    assert_eq!(b.send(&env, form).status, 400);
    // Without this page's form token, nothing is issued.
    let forged = b
        .request(Method::Post, "/account/passkeys/options")
        .with_form(&[("csrf", "forged")]);
    assert_eq!(b.send(&env, forged).status, 403);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 0);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM webauthn_challenges"),
        0,
        "each challenge was spent by the attempt that used it, and the forged request got none"
    );
}

#[test]
fn a_registration_challenge_works_once_and_only_for_its_session() {
    let env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    env.create_user("bob", PASSWORD);
    let mut ann = Browser::default();
    let ann_html = account_signed_in(&env, &mut ann, "ann");
    let mut bob = Browser::default();
    let bob_html = account_signed_in(&env, &mut bob, "bob");
    let auth = authenticator(5);
    // Bob's browser gets the options; the credential is posted from Ann's session.
    let options = account_options(&env, &mut bob, &bob_html).json_body()["publicKey"].clone();
    let credential = auth.registration_json(&options, ORIGIN);
    let post = |b: &mut Browser, html: &str| {
        let form = b.request(Method::Post, "/account/passkeys").with_form(&[
            ("csrf", hidden(html, "csrf").as_str()),
            ("name", "Key"),
            ("credential", &credential),
        ]);
        b.send(&env, form)
    };
    let r = post(&mut ann, &ann_html);
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("expired"));
    // In Bob's session it works, once.
    assert_eq!(post(&mut bob, &bob_html).status, 200);
    let replay = post(&mut bob, &bob_html);
    assert_eq!(replay.status, 400);
    assert!(body(&replay).contains("expired"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 1);
}

#[test]
fn a_sign_in_challenge_works_once_for_its_own_flow_and_not_after_five_minutes() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(6).not_counting();
    let ann = user_with_passkey(&env, "ann", &auth);
    let handle = handle_of(&env, &ann);

    // A challenge issued to one flow is refused in another (both have one outstanding).
    let (mut b1, f1) = login_page(&env, &rp);
    let (mut b2, f2) = login_page(&env, &rp);
    let o1 = sign_in_options(&env, &mut b1, &f1);
    sign_in_options(&env, &mut b2, &f2);
    let for_flow1 = auth.assertion_json(&o1, ORIGIN, Some(&handle));
    let r = post_assertion(&env, &mut b2, &f2, &for_flow1);
    assert_eq!(r.status, 401, "{}", body(&r));
    assert!(body(&r).contains("did not sign you in"));
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.reason') FROM events WHERE kind = 'login_failed'"),
        "wrong_challenge"
    );

    // Its own flow takes it, once: the replay finds no challenge.
    let r = post_assertion(&env, &mut b1, &f1, &for_flow1);
    assert_eq!(r.status, 303, "{}", body(&r));
    let replay = post_assertion(&env, &mut b1, &f1, &for_flow1);
    assert!(replay.status == 303 || replay.status == 400);

    // Five minutes later a challenge is dead.
    let (mut b3, f3) = login_page(&env, &rp);
    let o3 = sign_in_options(&env, &mut b3, &f3);
    env.clock.advance(gatehouse_core::store::webauthn_challenges::TTL);
    let r = post_assertion(&env, &mut b3, &f3, &auth.assertion_json(&o3, ORIGIN, Some(&handle)));
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("expired"));
}

#[test]
fn a_replayed_assertion_is_refused_even_in_a_flow_with_a_new_challenge() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(7).not_counting();
    let ann = user_with_passkey(&env, "ann", &auth);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    let first = auth.assertion_json(&o, ORIGIN, Some(&handle_of(&env, &ann)));
    // The options are asked again (the autofill request, then the button): the first
    // challenge is replaced, and an assertion over it is refused.
    sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &first);
    assert_eq!(r.status, 401);
    assert_eq!(events(&env, "passkey_used"), 0);
}

#[test]
fn usernameless_sign_in_requires_user_verification_and_this_sites_origin() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(8);
    let ann = user_with_passkey(&env, "ann", &auth);
    let handle = handle_of(&env, &ann);
    // Touched, not verified.
    auth.flags.set(BE | BS);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, Some(&handle)));
    assert_eq!(r.status, 401);
    // A phishing page relaying the ceremony.
    auth.flags.set(UV | BE | BS);
    let o = sign_in_options(&env, &mut b, &f);
    let phished = auth.assertion_json(&o, "https://id-example.com", Some(&handle));
    assert_eq!(post_assertion(&env, &mut b, &f, &phished).status, 401);
    // Without the user handle, a usernameless sign-in knows nobody.
    let o = sign_in_options(&env, &mut b, &f);
    assert_eq!(
        post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None)).status,
        401
    );
    let reasons = env.db.text(
        "SELECT group_concat(json_extract(detail, '$.reason'), ' ') FROM \
         (SELECT detail FROM events WHERE kind = 'login_failed' ORDER BY created_at, rowid)",
    );
    assert_eq!(reasons, "user_not_verified wrong_origin wrong_user");
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND user_id = '{ann}'"
        )),
        3,
        "each charged to the credential's owner"
    );
    // Garbage is refused as such.
    sign_in_options(&env, &mut b, &f);
    assert_eq!(post_assertion(&env, &mut b, &f, "{not json").status, 400);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE json_extract(detail, '$.reason') = 'malformed'"),
        1
    );
}

#[test]
fn a_passkey_is_the_second_factor_after_the_password_with_verification_only_preferred() {
    let env = TestEnv::new();
    let rp = client(&env);
    // A security key: not synced, no PIN asked.
    let auth = authenticator(9);
    user_with_passkey(&env, "ann", &auth);
    auth.flags.set(0);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let login = location(&r);
    let mfa = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    assert!(mfa.starts_with("/oauth2/mfa"), "{mfa}");
    let page = b.send(&env, b.request(Method::Get, &mfa));
    let html = body(&page);
    assert!(html.contains("id=\"passkey-verify\""), "{html}");
    assert!(!html.contains("name=\"code\""), "no authenticator app to ask a code of");
    assert!(page.csp_nonce.is_some(), "the passkey script may run");
    let f = StageForm {
        req: hidden(&html, "req"),
        csrf: hidden(&html, "csrf"),
    };
    let o = sign_in_options(&env, &mut b, &f);
    assert_eq!(o["userVerification"], "preferred");
    assert_eq!(o["allowCredentials"][0]["id"], b64url(b"credential-9"));
    // The passkey was registered backup eligible (synced); an assertion saying otherwise is
    // refused: eligibility is fixed when a credential is made.
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    assert_eq!(r.status, 401, "backup eligibility cannot change");
    auth.flags.set(BE | BS);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    assert_eq!(grant_amr(&env), "pwd swk user mfa");
}

#[test]
fn a_hardware_key_verified_after_a_password_is_hwk() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(10);
    auth.flags.set(UV);
    user_with_passkey(&env, "ann", &auth);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let mfa = location(&submit_login(&env, &mut b, &location(&r), "ann", PASSWORD));
    let f = stage_form(&env, &mut b, &mfa);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT));
    assert_eq!(grant_amr(&env), "pwd hwk user mfa");
}

#[test]
fn another_users_passkey_is_refused_as_the_second_factor_and_counts_toward_the_lockout() {
    let env = TestEnv::new();
    let rp = client(&env);
    let ann_key = authenticator(11);
    let bob_key = authenticator(12);
    let ann = user_with_passkey(&env, "ann", &ann_key);
    user_with_passkey(&env, "bob", &bob_key);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let mfa = location(&submit_login(&env, &mut b, &location(&r), "ann", PASSWORD));
    let f = stage_form(&env, &mut b, &mfa);
    for _ in 0..5 {
        let o = sign_in_options(&env, &mut b, &f);
        let r = post_assertion(&env, &mut b, &f, &bob_key.assertion_json(&o, ORIGIN, None));
        assert_eq!(r.status, 401);
        assert!(body(&r).contains("did not sign you in"));
        // The second-factor page again, not the login form.
        assert!(body(&r).contains("id=\"passkey-verify\"") && !body(&r).contains("name=\"password\""));
    }
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = 'mfa_failed' AND user_id = '{ann}' \
             AND json_extract(detail, '$.reason') = 'wrong_user' AND json_extract(detail, '$.method') = 'passkey'"
        )),
        5
    );
    assert_eq!(events(&env, "account_locked"), 1);
    // Locked: Ann's own passkey is refused too, with the same answer.
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &ann_key.assertion_json(&o, ORIGIN, None));
    assert_eq!(r.status, 401);
    assert_eq!(events(&env, "passkey_used"), 0);
}

#[test]
fn a_counter_that_went_back_is_refused_and_recorded_as_a_possible_clone() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(13);
    let ann = user_with_passkey(&env, "ann", &auth);
    let handle = handle_of(&env, &ann);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    assert_eq!(
        post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, Some(&handle))).status,
        303
    );
    assert_eq!(env.db.count("SELECT sign_count FROM passkeys"), 2);
    // A copy of the key whose counter is behind: its next signature says 2 again.
    auth.counter.set(1);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, Some(&handle)));
    assert_eq!(r.status, 401);
    assert_eq!(events(&env, "passkey_counter_regressed"), 1);
    assert_eq!(
        env.db
            .count("SELECT json_extract(detail, '$.stored') FROM events WHERE kind = 'passkey_counter_regressed'"),
        2
    );
    assert_eq!(
        env.db
            .count("SELECT json_extract(detail, '$.presented') FROM events WHERE kind = 'passkey_counter_regressed'"),
        2,
        "the copy's counter"
    );
    assert_eq!(env.db.count("SELECT sign_count FROM passkeys"), 2, "unchanged");
}

#[test]
fn an_unknown_credential_signs_nobody_in_and_counts_against_the_ip() {
    let env = TestEnv::new();
    let rp = client(&env);
    let stranger = authenticator(14);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &stranger.assertion_json(&o, ORIGIN, Some(&[1u8; 32])));
    assert_eq!(r.status, 401);
    assert!(body(&r).contains("did not sign you in"));
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.reason') FROM events WHERE kind = 'login_failed'"),
        "unknown_credential"
    );
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND user_id IS NULL"),
        1
    );
}

#[test]
fn the_passkey_endpoints_answer_only_the_flows_browser_and_form() {
    let env = TestEnv::new();
    let rp = client(&env);
    let (mut b, f) = login_page(&env, &rp);
    // Another browser (no binding cookie) gets nothing for this flow.
    let mut other = Browser::default();
    let r = other.send(
        &env,
        other
            .request(Method::Post, "/oauth2/passkey/options")
            .with_form(&[("req", f.req.as_str()), ("csrf", f.csrf.as_str())]),
    );
    assert_eq!(r.status, 400);
    // The flow's browser without the form's token neither.
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/passkey/options")
            .with_form(&[("req", f.req.as_str()), ("csrf", "forged")]),
    );
    assert_eq!(r.status, 403);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM webauthn_challenges"), 0);
}

#[test]
fn a_removed_passkey_signs_in_no_more() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(15);
    let ann = user_with_passkey(&env, "ann", &auth);
    let handle = handle_of(&env, &ann);
    let mut b = Browser::default();
    let html = account_by_passkey(&env, &mut b, &auth, &ann);
    assert!(html.contains(&format!("data-passkey-id=\"{}\"", b64url(b"credential-15"))));
    let form = b.request(Method::Post, "/account/passkeys/remove").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("credential", &b64url(b"credential-15")),
    ]);
    let r = b.send(&env, form);
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("The passkey was removed"));
    assert_eq!(events(&env, "passkey_removed"), 1);
    let (mut b, f) = login_page(&env, &rp);
    let o = sign_in_options(&env, &mut b, &f);
    assert_eq!(
        post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, Some(&handle))).status,
        401
    );
}

#[test]
fn a_user_cannot_remove_another_users_passkey() {
    let env = TestEnv::new();
    user_with_passkey(&env, "ann", &authenticator(16));
    env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let html = account_signed_in(&env, &mut b, "bob");
    let form = b.request(Method::Post, "/account/passkeys/remove").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("credential", &b64url(b"credential-16")),
    ]);
    assert_eq!(b.send(&env, form).status, 404);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 1);
}

// ---------------------------------------------------------------------------------------------
// Passkey-only accounts and the administrator's setup link

fn set_passkey_only(env: &TestEnv, user_id: &str, on: bool) {
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{user_id}"),
        Some(json!({ "passkey_only": on })),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.json_body()["passkey_only"], on);
}

/// The password form submitted on a new authorization request's login page.
fn password_attempt(env: &TestEnv, rp: &str, username: &str, password: &str) -> Response {
    let mut b = Browser::default();
    let r = b.send(env, b.request(Method::Get, &authorize_url(rp)));
    submit_login(env, &mut b, &location(&r), username, password)
}

fn usernameless(env: &TestEnv, rp: &str, auth: &SoftAuthenticator, user_id: &str) -> Response {
    let (mut b, f) = login_page(env, rp);
    let o = sign_in_options(env, &mut b, &f);
    let r = post_assertion(
        env,
        &mut b,
        &f,
        &auth.assertion_json(&o, ORIGIN, Some(&handle_of(env, user_id))),
    );
    follow(env, &mut b, r)
}

#[test]
fn a_passkey_only_user_is_refused_the_right_password_without_being_locked_out() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(20);
    let ann = user_with_passkey(&env, "ann", &auth);
    set_passkey_only(&env, &ann, true);
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = '{ann}' AND ended_at IS NULL"
        )),
        0,
        "the password sessions ended with the change"
    );
    // As many as the lockout allows: none of them stays counted.
    for _ in 0..5 {
        let r = password_attempt(&env, &rp, "ann", PASSWORD);
        assert_eq!(r.status, 401);
        assert!(body(&r).contains("Invalid username or password."));
    }
    assert_eq!(
        env.db.count(
            "SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND json_extract(detail, '$.reason') = 'passkey_only'"
        ),
        5
    );
    assert_eq!(
        events(&env, "account_locked"),
        0,
        "a password it does not use locks nothing"
    );
    // The passkey signs in.
    let r = usernameless(&env, &rp, &auth, &ann);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    assert_eq!(grant_amr(&env), "swk user mfa");
    // Off again, the password works.
    set_passkey_only(&env, &ann, false);
    let r = password_attempt(&env, &rp, "ann", PASSWORD);
    assert_eq!(r.status, 303);
}

#[test]
fn gatehouse_passkey_only_shows_no_password_form_and_refuses_passwords_for_everyone() {
    let mut env = TestEnv::new();
    env.settings.passkey_only = true;
    let rp = client(&env);
    env.create_user("bob", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let page = b.send(&env, b.request(Method::Get, &location(&r)));
    let html = body(&page);
    assert!(!html.contains("name=\"password\""), "{html}");
    assert!(!html.contains("forgot-password"));
    assert!(html.contains("id=\"passkey-sign-in\""));
    // A form posted anyway is refused like a wrong password.
    let form = b.request(Method::Post, "/oauth2/login").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("username", "bob"),
        ("password", PASSWORD),
    ]);
    assert_eq!(b.send(&env, form).status, 401);
}

#[test]
fn members_of_a_passkey_only_group_are_refused_a_password_and_others_are_not() {
    let mut env = TestEnv::new();
    env.settings.passkey_only_groups = vec!["staff".into()];
    let rp = client(&env);
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD, "groups": ["staff"]})),
    );
    assert_eq!(r.status, 201);
    env.create_user("dave", PASSWORD);
    assert_eq!(password_attempt(&env, &rp, "carol", PASSWORD).status, 401);
    assert_eq!(password_attempt(&env, &rp, "dave", PASSWORD).status, 303);
}

#[test]
fn a_passkey_only_account_has_no_password_to_reset_or_change_and_keeps_its_last_passkey() {
    let mut env = TestEnv::new();
    mailing(&mut env);
    let rp = client(&env);
    let auth = authenticator(21);
    let ann = user_with_passkey(&env, "ann", &auth);
    verify_address(&env, &ann);
    set_passkey_only(&env, &ann, true);
    // "Forgot your password?" answers as always, and sends nothing.
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let reset_url = location(&r).replace("/oauth2/login", "/oauth2/reset");
    let page = b.send(&env, b.request(Method::Get, &reset_url));
    let html = body(&page);
    let form = b.request(Method::Post, "/oauth2/reset").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("login", "ann"),
    ]);
    assert_eq!(b.send(&env, form).status, 200);
    assert!(
        env.mailer.mails().is_empty(),
        "no reset link for a passkey-only account"
    );
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.reason') FROM events WHERE kind = 'password_reset_requested'"),
        "passkey_only"
    );
    // The account page has no password to change, and keeps the last passkey.
    let mut b = Browser::default();
    let html = account_by_passkey(&env, &mut b, &auth, &ann);
    assert!(html.contains("id=\"passkey-only\"") && !html.contains("id=\"change-password\""));
    let form = b
        .request(Method::Post, "/account/password")
        .with_form(&[("csrf", hidden(&html, "csrf").as_str())]);
    let r = b.send(&env, form);
    assert_eq!(r.status, 409);
    let form = b.request(Method::Post, "/account/passkeys/remove").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("credential", &b64url(b"credential-21")),
    ]);
    let r = b.send(&env, form);
    assert_eq!(r.status, 409);
    assert!(body(&r).contains("add another before removing"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 1);
    // With a second one, the first can go.
    let second = authenticator(22);
    assert_eq!(register(&env, &mut b, &html, &second, "Phone").status, 200);
    let form = b.request(Method::Post, "/account/passkeys/remove").with_form(&[
        ("csrf", hidden(&html, "csrf").as_str()),
        ("credential", &b64url(b"credential-21")),
    ]);
    assert_eq!(b.send(&env, form).status, 200);
}

/// The administrator's setup link for `user_id`: its path and token.
fn setup_link(env: &TestEnv, user_id: &str) -> (String, String) {
    let r = env.admin(Method::Post, &format!("/admin/api/users/{user_id}/passkey-setup"), None);
    assert_eq!(r.status, 201, "{}", body(&r));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let url = r.json_body()["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("https://id.example.com/account/passkey-setup?token="),
        "{url}"
    );
    assert_eq!(r.json_body()["expires_at"], T0 + 24 * 3600);
    let token = query_param(&url, "token").unwrap();
    (url.strip_prefix(ISSUER).unwrap().to_owned(), token)
}

/// Opens the link and registers `auth` with it; returns the finish's answer.
fn set_up_with(env: &TestEnv, b: &mut Browser, path: &str, auth: &SoftAuthenticator) -> Response {
    let page = b.send(env, b.request(Method::Get, path));
    assert_eq!(page.status, 200, "{}", body(&page));
    let html = body(&page);
    let (token, csrf) = (hidden(&html, "token"), hidden(&html, "csrf"));
    let o = b.send(
        env,
        b.request(Method::Post, "/account/passkey-setup/options")
            .with_form(&[("token", token.as_str()), ("csrf", csrf.as_str())]),
    );
    assert_eq!(o.status, 200, "{}", body(&o));
    let credential = auth.registration_json(&o.json_body()["publicKey"], ORIGIN);
    b.send(
        env,
        b.request(Method::Post, "/account/passkey-setup").with_form(&[
            ("token", token.as_str()),
            ("csrf", csrf.as_str()),
            ("name", "New phone"),
            ("credential", &credential),
        ]),
    )
}

#[test]
fn an_administrators_setup_link_registers_one_passkey_once_for_a_passkey_only_user() {
    let env = TestEnv::new();
    let rp = client(&env);
    // A new passkey-only account: no passkey yet, so no way in but the link.
    let r = env.admin(
        Method::Post,
        "/admin/api/users",
        Some(json!({"username": "erin", "email": "erin@example.com", "password": PASSWORD, "passkey_only": true})),
    );
    assert_eq!(r.status, 201);
    let erin = r.json_body()["id"].as_str().unwrap().to_owned();
    assert_eq!(password_attempt(&env, &rp, "erin", PASSWORD).status, 401);

    let (first_path, _) = setup_link(&env, &erin);
    let (path, _) = setup_link(&env, &erin);
    let mut b = Browser::default();
    // A newer link ends the older one.
    assert_eq!(b.send(&env, b.request(Method::Get, &first_path)).status, 400);
    let auth = authenticator(23);
    let r = set_up_with(&env, &mut b, &path, &auth);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&r).contains("Your passkey is set up"));
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.by') FROM events WHERE kind = 'passkey_added'"),
        "setup_link"
    );
    assert_eq!(events(&env, "admin_passkey_setup_issued"), 2);
    // Once: the link is spent.
    let again = b.send(&env, b.request(Method::Get, &path));
    assert_eq!(again.status, 400);
    assert!(body(&again).contains("Ask your administrator for a new one"));
    // And the passkey signs in.
    let r = usernameless(&env, &rp, &auth, &erin);
    assert!(location(&r).starts_with(REDIRECT));
}

#[test]
fn a_setup_link_expires_after_a_day_needs_its_page_token_and_is_refused_for_a_disabled_user() {
    let env = TestEnv::new();
    let frank = env.create_user("frank", PASSWORD);
    let (path, token) = setup_link(&env, &frank);
    // Another browser than the one that opened the page cannot use its form.
    let mut b = Browser::default();
    assert_eq!(b.send(&env, b.request(Method::Get, &path)).status, 200);
    let mut other = Browser::default();
    let r = other.send(
        &env,
        other
            .request(Method::Post, "/account/passkey-setup/options")
            .with_form(&[("token", token.as_str()), ("csrf", "forged")]),
    );
    assert_eq!(r.status, 403);
    // A made-up token finds nothing.
    let r = b.send(&env, b.request(Method::Get, "/account/passkey-setup?token=made-up"));
    assert_eq!(r.status, 400);
    env.clock.advance(24 * 3600);
    assert_eq!(b.send(&env, b.request(Method::Get, &path)).status, 400, "expired");
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{frank}"),
        Some(json!({ "disabled": true })),
    );
    assert_eq!(r.status, 200);
    let r = env.admin(Method::Post, &format!("/admin/api/users/{frank}/passkey-setup"), None);
    assert_eq!(r.status, 409);
}

#[test]
fn a_sign_in_that_requires_a_second_factor_may_enroll_a_passkey_which_is_then_asked_for_once() {
    let mut env = TestEnv::new();
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Required;
    let rp = client(&env);
    env.create_user("gus", PASSWORD);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let enroll = location(&submit_login(&env, &mut b, &location(&r), "gus", PASSWORD));
    assert!(enroll.starts_with("/oauth2/mfa/enroll"), "{enroll}");
    let page = b.send(&env, b.request(Method::Get, &enroll));
    let html = body(&page);
    assert!(html.contains("id=\"passkey-enroll-form\""), "{html}");
    assert!(page.csp_nonce.is_some());
    let (req, csrf) = (hidden(&html, "req"), hidden(&html, "csrf"));
    let o = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey/options")
            .with_form(&[("req", req.as_str()), ("csrf", csrf.as_str())]),
    );
    assert_eq!(o.status, 200, "{}", body(&o));
    let auth = authenticator(24);
    let credential = auth.registration_json(&o.json_body()["publicKey"], ORIGIN);
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey").with_form(&[
            ("req", req.as_str()),
            ("csrf", csrf.as_str()),
            ("name", "Laptop"),
            ("credential", &credential),
        ]),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let notice = body(&r);
    assert_eq!(notice.matches("<li><code>").count(), 10, "recovery codes shown once");
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM sessions"),
        0,
        "registering passed no factor: no session yet"
    );
    // The plan now asks for the new passkey.
    let start = notice.find("id=\"continue\" href=\"").unwrap() + 20;
    let next = notice[start..start + notice[start..].find('"').unwrap()].replace("&#38;", "&");
    assert!(next.starts_with("/oauth2/mfa?"), "{next}");
    let f = stage_form(&env, &mut b, &next);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    assert_eq!(grant_amr(&env), "pwd swk user mfa");
    assert_eq!(
        env.db
            .text("SELECT json_extract(detail, '$.by') FROM events WHERE kind = 'passkey_added'"),
        "sign_in"
    );
}

#[test]
fn the_passkey_enrollment_answers_only_a_flow_at_its_stage() {
    let env = TestEnv::new();
    let rp = client(&env);
    let (mut b, f) = login_page(&env, &rp);
    // Nobody is identified yet: there is nothing to enroll.
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey/options")
            .with_form(&[("req", f.req.as_str()), ("csrf", f.csrf.as_str())]),
    );
    assert_eq!(r.status, 409);
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey").with_form(&[
            ("req", f.req.as_str()),
            ("csrf", f.csrf.as_str()),
            ("credential", "{}"),
        ]),
    );
    assert_eq!(r.status, 303, "sent to where the flow stands");
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 0);
}

// ---------------------------------------------------------------------------------------------
// From the adversarial review

#[test]
fn refusals_anyone_can_make_with_a_credential_id_never_lock_a_passkey_only_account() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(30);
    let ann = user_with_passkey(&env, "ann", &auth);
    set_passkey_only(&env, &ann, true);
    // Someone who saw the credential id signs with their own key, without a user handle, and
    // with it.
    let forger = SoftAuthenticator::new(SoftKey::p256(99), b"credential-30");
    for handle in [None, Some(handle_of(&env, &ann))] {
        for _ in 0..5 {
            let (mut b, f) = login_page(&env, &rp);
            let o = sign_in_options(&env, &mut b, &f);
            let r = post_assertion(&env, &mut b, &f, &forger.assertion_json(&o, ORIGIN, handle.as_deref()));
            assert_eq!(r.status, 401);
        }
    }
    assert_eq!(events(&env, "account_locked"), 0);
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND user_id = '{ann}' \
             AND json_extract(detail, '$.reason') IN ('wrong_user', 'bad_signature')"
        )),
        10,
        "recorded against the account, not charged to it"
    );
    let r = usernameless(&env, &rp, &auth, &ann);
    assert!(location(&r).starts_with(REDIRECT), "the real passkey still signs in");
}

#[test]
fn refusals_with_a_credential_id_count_toward_the_lockout_of_an_account_with_a_password() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(31);
    let ann = user_with_passkey(&env, "ann", &auth);
    let forger = SoftAuthenticator::new(SoftKey::p256(98), b"credential-31");
    for _ in 0..5 {
        let (mut b, f) = login_page(&env, &rp);
        let o = sign_in_options(&env, &mut b, &f);
        let r = post_assertion(
            &env,
            &mut b,
            &f,
            &forger.assertion_json(&o, ORIGIN, Some(&handle_of(&env, &ann))),
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(events(&env, "account_locked"), 1);
    assert_eq!(
        env.db
            .count("SELECT json_extract(detail, '$.locked_for') FROM events WHERE kind = 'account_locked'"),
        900,
        "the lock's length in seconds"
    );
    let r = usernameless(&env, &rp, &auth, &ann);
    assert_eq!(r.status, 401, "locked, like after five wrong passwords");
}

#[test]
fn joining_a_passkey_only_group_ends_the_password_sessions_and_the_account_page_asks_for_the_passkey() {
    let mut env = TestEnv::new();
    env.settings.passkey_only_groups = vec!["staff".into()];
    let auth = authenticator(32);
    let dave = user_with_passkey(&env, "dave", &auth);
    let mut b = Browser::default();
    account_signed_in(&env, &mut b, "dave");
    let r = env.admin(
        Method::Patch,
        &format!("/admin/api/users/{dave}"),
        Some(json!({ "groups": ["staff"] })),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = '{dave}' AND ended_at IS NULL"
        )),
        0
    );
    // A password session made before the rule (the deployment's setting turned on) is no
    // sign-in on the account page either: it asks for the passkey.
    let mut env2 = TestEnv::new();
    let auth2 = authenticator(33);
    let erin = user_with_passkey(&env2, "erin", &auth2);
    let mut b2 = Browser::default();
    let html = account_signed_in(&env2, &mut b2, "erin");
    env2.settings.passkey_only = true;
    let r = b2.send(&env2, b2.request(Method::Get, "/account"));
    assert!(location(&r).starts_with("/oauth2/login"), "{}", body(&r));
    let r = account_options(&env2, &mut b2, &html);
    assert_eq!(r.status, 401, "no passkey registered by a password session");
    let _ = erin;
}

#[test]
fn a_passkey_used_as_the_second_factor_steps_the_session_up_instead_of_replacing_it() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(34);
    let ann = env.create_user("ann", PASSWORD);
    let mut b = Browser::default();
    let html = account_signed_in(&env, &mut b, "ann");
    assert_eq!(register(&env, &mut b, &html, &auth, "Laptop").status, 200);
    let session = env.db.text(&format!(
        "SELECT id_hash FROM sessions WHERE user_id = '{ann}' AND ended_at IS NULL"
    ));
    // The password session now needs the passkey (a second factor the user holds).
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let mfa = location(&r);
    assert!(mfa.starts_with("/oauth2/mfa"), "{mfa}");
    let f = stage_form(&env, &mut b, &mfa);
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT));
    assert_eq!(
        env.db.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE id_hash = '{session}' AND ended_at IS NULL"
        )),
        1,
        "the same session, stepped up"
    );
    assert_eq!(events(&env, "login_stepped_up"), 1);
}

#[test]
fn a_reset_link_alone_enrolls_no_passkey_at_sign_in() {
    let mut env = TestEnv::new();
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Required;
    mailing(&mut env);
    let rp = client(&env);
    let gus = env.create_user("gus", PASSWORD);
    verify_address(&env, &gus);
    // "Forgot your password?": the link from the mail, opened in the same browser.
    let mut b = Browser::default();
    let link = reset_link(&env, &mut b, &rp, "gus");
    let r = b.send(&env, b.request(Method::Get, &link));
    let enroll = location(&r);
    assert!(enroll.starts_with("/oauth2/mfa/enroll"), "{enroll}");
    // The mailbox alone enrolls an app (which still needs the new password), never a passkey.
    let page = b.send(&env, b.request(Method::Get, &enroll));
    let html = body(&page);
    let (req, csrf) = (hidden(&html, "req"), hidden(&html, "csrf"));
    let o = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey/options")
            .with_form(&[("req", req.as_str()), ("csrf", csrf.as_str())]),
    );
    assert_eq!(o.status, 409, "{}", body(&o));
    assert_eq!(o.json_body()["error"], "password_required");
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey").with_form(&[
            ("req", req.as_str()),
            ("csrf", csrf.as_str()),
            ("credential", "{}"),
        ]),
    );
    assert_eq!(r.status, 409);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM webauthn_challenges"), 0);
}

#[test]
fn adding_a_passkey_tells_the_owner_of_a_verified_address() {
    let mut env = TestEnv::new();
    mailing(&mut env);
    let ann = env.create_user("ann", PASSWORD);
    verify_address(&env, &ann);
    let mut b = Browser::default();
    let html = account_signed_in(&env, &mut b, "ann");
    assert_eq!(
        register(&env, &mut b, &html, &authenticator(35), "Work laptop").status,
        200
    );
    let mail = env.mailer.last_to("ann@example.com").expect("a notice");
    assert_eq!(mail.subject, "A passkey was added to your account on id.example.com");
    assert!(mail.text.contains("\"Work laptop\""), "{}", mail.text);
}

#[test]
fn a_setup_link_survives_a_passkey_that_could_not_be_stored_and_dies_with_a_disable_or_a_reset() {
    let env = TestEnv::new();
    let hal = env.create_user("hal", PASSWORD);
    // A passkey already registered (to this user): storing it again fails, the link is given back.
    let auth = authenticator(36);
    let (path, _) = setup_link(&env, &hal);
    let mut b = Browser::default();
    assert_eq!(set_up_with(&env, &mut b, &path, &auth).status, 200);
    let (path, _) = setup_link(&env, &hal);
    let r = set_up_with(&env, &mut b, &path, &auth);
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(b.send(&env, b.request(Method::Get, &path)).status, 200, "still usable");
    // Disabled and enabled again: the link is dead.
    for disabled in [true, false] {
        let r = env.admin(
            Method::Patch,
            &format!("/admin/api/users/{hal}"),
            Some(json!({ "disabled": disabled })),
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(b.send(&env, b.request(Method::Get, &path)).status, 400);
    // A factor reset ends a link too.
    let (path, _) = setup_link(&env, &hal);
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/users/{hal}/factors"), None)
            .status,
        204
    );
    assert_eq!(b.send(&env, b.request(Method::Get, &path)).status, 400);
}

#[test]
fn with_second_factors_off_a_verified_passkey_still_meets_a_client_that_requires_mfa() {
    let mut env = TestEnv::new();
    let auth = authenticator(37);
    let ann = user_with_passkey(&env, "ann", &auth);
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Off;
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
    let r = usernameless(&env, &strict, &auth, &ann);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    assert!(!location(&r).contains("error="), "{}", location(&r));
}

#[test]
fn a_second_factor_page_answered_without_its_form_token_still_offers_the_passkey() {
    let env = TestEnv::new();
    let rp = client(&env);
    user_with_passkey(&env, "ann", &authenticator(38));
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let mfa = location(&submit_login(&env, &mut b, &location(&r), "ann", PASSWORD));
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", hidden(&page, "req").as_str()),
            ("csrf", "forged"),
            ("code", "123456"),
        ]),
    );
    assert_eq!(r.status, 403);
    assert!(body(&r).contains("id=\"passkey-verify\""), "{}", body(&r));
    // A flow that has identified nobody yet gets the code form back with the message.
    let (mut b, f) = login_page(&env, &rp);
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa").with_form(&[
            ("req", f.req.as_str()),
            ("csrf", "forged"),
            ("code", "123456"),
        ]),
    );
    assert_eq!(r.status, 403);
    assert!(body(&r).contains("name=\"code\""), "{}", body(&r));
}

#[test]
fn a_flow_that_identifies_the_user_again_replaces_the_session_it_began_with() {
    let env = TestEnv::new();
    let rp = client(&env);
    let auth = authenticator(39);
    let ann = user_with_passkey(&env, "ann", &auth);
    // The live sessions of this browser (the one that registered the passkey has its own).
    let elsewhere = env
        .db
        .text(&format!("SELECT id_hash FROM sessions WHERE user_id = '{ann}'"));
    let live = || {
        env.db.text(&format!(
            "SELECT group_concat(id_hash) FROM sessions WHERE user_id = '{ann}' AND ended_at IS NULL \
             AND id_hash != '{elsewhere}'"
        ))
    };
    // A browser with a session; a client asks for a sign-in no older than 5 seconds.
    let mut b = Browser::default();
    account_by_passkey(&env, &mut b, &auth, &ann);
    let first = live();
    env.clock.advance(10);
    let fresh = format!("{}&max_age=5", authorize_url(&rp));
    // The passkey identifies the user again: a new session (no fixation), the old one ends.
    let r = b.send(&env, b.request(Method::Get, &fresh));
    let f = stage_form(&env, &mut b, &location(&r));
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(
        &env,
        &mut b,
        &f,
        &auth.assertion_json(&o, ORIGIN, Some(&handle_of(&env, &ann))),
    );
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    let second = live();
    assert_ne!(second, first);
    assert!(!second.contains(','), "one live session: {second}");
    // So does the password (then the passkey as second factor, in the same flow).
    env.clock.advance(10);
    let r = b.send(&env, b.request(Method::Get, &fresh));
    let r = submit_login(&env, &mut b, &location(&r), "ann", PASSWORD);
    let f = stage_form(&env, &mut b, &location(&r));
    let o = sign_in_options(&env, &mut b, &f);
    let r = post_assertion(&env, &mut b, &f, &auth.assertion_json(&o, ORIGIN, None));
    let r = follow(&env, &mut b, r);
    assert!(location(&r).starts_with(REDIRECT), "{}", body(&r));
    let third = live();
    assert_ne!(third, second);
    assert!(!third.contains(','), "one live session: {third}");
    assert_eq!(events(&env, "login_stepped_up"), 0);
}

#[test]
fn a_passkey_alone_is_a_second_factor_the_password_asks_for_and_administrators_see() {
    let env = TestEnv::new();
    let rp = client(&env);
    // A passkey from a setup link: no recovery codes come with it.
    let ivy = env.create_user("ivy", PASSWORD);
    let (path, _) = setup_link(&env, &ivy);
    assert_eq!(
        set_up_with(&env, &mut Browser::default(), &path, &authenticator(40)).status,
        200
    );
    let view = env
        .admin(Method::Get, &format!("/admin/api/users/{ivy}/factors"), None)
        .json_body();
    assert_eq!(view["recovery_codes"]["issued"], 0);
    assert_eq!(view["mfa_enrolled"], true, "{view}");
    // The password is not enough any more: the passkey is asked after it.
    let r = password_attempt(&env, &rp, "ivy", PASSWORD);
    assert!(location(&r).starts_with("/oauth2/mfa"), "{}", location(&r));
}

#[test]
fn a_challenge_made_for_an_older_setup_link_does_not_serve_the_newer_one() {
    let env = TestEnv::new();
    let jay = env.create_user("jay", PASSWORD);
    let (old_path, _) = setup_link(&env, &jay);
    let mut b = Browser::default();
    let html = body(&b.send(&env, b.request(Method::Get, &old_path)));
    let csrf = hidden(&html, "csrf");
    let o = b.send(
        &env,
        b.request(Method::Post, "/account/passkey-setup/options")
            .with_form(&[("token", hidden(&html, "token").as_str()), ("csrf", csrf.as_str())]),
    );
    let credential = authenticator(41).registration_json(&o.json_body()["publicKey"], ORIGIN);
    // The administrator issues a new link; the credential made for the old one is posted with it.
    let (_, new_token) = setup_link(&env, &jay);
    let r = b.send(
        &env,
        b.request(Method::Post, "/account/passkey-setup").with_form(&[
            ("token", new_token.as_str()),
            ("csrf", csrf.as_str()),
            ("name", "Old"),
            ("credential", &credential),
        ]),
    );
    assert_eq!(r.status, 400, "{}", body(&r));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 0);
}

#[test]
fn a_user_whose_second_factor_is_a_passkey_is_never_offered_an_emailed_code_instead() {
    let mut env = TestEnv::new();
    mailing(&mut env);
    env.settings.email_otp = true;
    let rp = client(&env);
    let kim = env.create_user("kim", PASSWORD);
    verify_address(&env, &kim);
    // A passkey without recovery codes (a setup link): the mailbox must not skip it.
    let (path, _) = setup_link(&env, &kim);
    assert_eq!(
        set_up_with(&env, &mut Browser::default(), &path, &authenticator(42)).status,
        200
    );
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let mfa = location(&submit_login(&env, &mut b, &location(&r), "kim", PASSWORD));
    let page = body(&b.send(&env, b.request(Method::Get, &mfa)));
    assert!(page.contains("id=\"passkey-verify\""), "{page}");
    assert!(!page.contains("use-email-code"), "{page}");
}

#[test]
fn a_second_factor_challenge_serves_only_the_user_it_was_issued_for() {
    let env = TestEnv::new();
    let rp = client(&env);
    let ann_key = authenticator(43);
    let bob_key = authenticator(44);
    user_with_passkey(&env, "ann", &ann_key);
    user_with_passkey(&env, "bob", &bob_key);
    let mut b = Browser::default();
    let r = b.send(&env, b.request(Method::Get, &authorize_url(&rp)));
    let login = location(&r);
    let mfa = location(&submit_login(&env, &mut b, &login, "ann", PASSWORD));
    let f = stage_form(&env, &mut b, &mfa);
    let for_ann = sign_in_options(&env, &mut b, &f);
    // The same flow now signs Bob in with his password (the login form is taken at any stage);
    // Ann's challenge is no use to him.
    let _ = login;
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/login").with_form(&[
            ("req", f.req.as_str()),
            ("csrf", f.csrf.as_str()),
            ("username", "bob"),
            ("password", PASSWORD),
        ]),
    );
    let f = stage_form(&env, &mut b, &location(&r));
    let r = post_assertion(&env, &mut b, &f, &bob_key.assertion_json(&for_ann, ORIGIN, None));
    assert_eq!(r.status, 400, "{}", body(&r));
    assert!(body(&r).contains("expired"));
    assert_eq!(events(&env, "passkey_used"), 0);
}

#[test]
fn a_password_carried_from_an_old_session_does_not_let_a_reset_link_enroll_a_passkey() {
    let mut env = TestEnv::new();
    mailing(&mut env);
    let rp = client(&env);
    let lee = env.create_user("lee", PASSWORD);
    verify_address(&env, &lee);
    // A password session from before second factors were required, an hour old.
    let mut b = Browser::default();
    account_signed_in(&env, &mut b, "lee");
    env.clock.advance(3600);
    env.settings.mfa = gatehouse_core::flow::plan::MfaMode::Required;
    // A sign-in carries that old password; a reset link then passes the first factor afresh.
    let link = reset_link(&env, &mut b, &rp, "lee");
    let enroll = location(&b.send(&env, b.request(Method::Get, &link)));
    assert!(enroll.starts_with("/oauth2/mfa/enroll"), "{enroll}");
    let html = body(&b.send(&env, b.request(Method::Get, &enroll)));
    let o = b.send(
        &env,
        b.request(Method::Post, "/oauth2/mfa/enroll/passkey/options")
            .with_form(&[
                ("req", hidden(&html, "req").as_str()),
                ("csrf", hidden(&html, "csrf").as_str()),
            ]),
    );
    assert_eq!(o.status, 409, "{}", body(&o));
    assert_eq!(o.json_body()["error"], "password_required");
}

#[test]
fn a_second_passkey_keeps_the_recovery_codes_the_user_saved() {
    let env = TestEnv::new();
    let auth = authenticator(45);
    let ann = user_with_passkey(&env, "ann", &auth);
    let codes_before = env.db.text(&format!(
        "SELECT group_concat(code_hash) FROM recovery_codes WHERE user_id = '{ann}'"
    ));
    let mut b = Browser::default();
    let html = account_by_passkey(&env, &mut b, &auth, &ann);
    let r = register(&env, &mut b, &html, &authenticator(46), "Phone");
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("Your passkey was added"), "{}", body(&r));
    assert!(!body(&r).contains("<li><code>"), "no new codes");
    let codes_after = env.db.text(&format!(
        "SELECT group_concat(code_hash) FROM recovery_codes WHERE user_id = '{ann}'"
    ));
    assert_eq!(codes_after, codes_before);
}

#[test]
fn under_gatehouse_passkey_only_a_family_from_a_passkey_sign_in_refreshes() {
    use base64::Engine;
    let mut env = TestEnv::new();
    env.settings.passkey_only = true;
    let (id, secret) = env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid offline_access",
        "first_party": true,
    }));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", secret.unwrap()))
    );
    let token = |form: &[(&str, &str)]| {
        env.send(
            gatehouse_core::http::Request::new(Method::Post, "/oauth2/token")
                .with_header("authorization", &basic)
                .with_form(form),
        )
    };
    // A synced passkey (swk) and a device-bound one (hwk).
    let synced = authenticator(47);
    let bound = authenticator(48);
    bound.flags.set(UV);
    for (name, auth) in [("mia", &synced), ("ned", &bound)] {
        let r = env.admin(
            Method::Post,
            "/admin/api/users",
            Some(json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD})),
        );
        let user = r.json_body()["id"].as_str().unwrap().to_owned();
        let (path, _) = setup_link(&env, &user);
        assert_eq!(set_up_with(&env, &mut Browser::default(), &path, auth).status, 200);
        let url = authorize_url(&id).replace("scope=openid", "scope=openid%20offline_access");
        let mut b = Browser::default();
        let r = b.send(&env, b.request(Method::Get, &url));
        let f = stage_form(&env, &mut b, &location(&r));
        let o = sign_in_options(&env, &mut b, &f);
        let r = post_assertion(
            &env,
            &mut b,
            &f,
            &auth.assertion_json(&o, ORIGIN, Some(&handle_of(&env, &user))),
        );
        let callback = location(&follow(&env, &mut b, r));
        let code = query_param(&callback, "code").expect("a code");
        let t = token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]);
        assert_eq!(t.status, 200, "{}", body(&t));
        let rt = t.json_body()["refresh_token"].as_str().unwrap().to_owned();
        let again = token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
        assert_eq!(again.status, 200, "{name}: {}", body(&again));
    }
}
