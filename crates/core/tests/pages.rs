//! Gatehouse's own pages against reflected values: a value a client or user sends (`login_hint`,
//! the username) is shown as text, once, and never read as template syntax or as the CSP nonce.

mod support;

use gatehouse_core::http::{form_encode, Method, Request, Response};
use gatehouse_core::policy::turnstile::TurnstileSettings;
use serde_json::json;
use support::*;

/// Turnstile configured and every visitor asked for it, so the login page carries the widget's
/// script and a CSP nonce.
fn env_with_captcha_for_everyone() -> (TestEnv, String) {
    let mut env = TestEnv::new();
    env.settings.policy.turnstile = TurnstileSettings::from_values(
        Some("0x4AAAAAAAtestsitekey".into()),
        Some("turnstile-secret-value".into()),
        Some("http://127.0.0.1:9/siteverify".into()),
    )
    .unwrap();
    // A fresh IP scores 0: at threshold 0 it is asked.
    env.settings.policy.reputation.threshold = 0;
    env.create_user("alice", "correct horse battery staple");
    let (client_id, _) = env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid",
        "first_party": true,
    }));
    (env, client_id)
}

/// Authorize with `login_hint` and open the login page it leads to.
fn login_page(env: &TestEnv, b: &mut Browser, client_id: &str, login_hint: &str) -> (String, Response) {
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256&login_hint={}",
        form_encode(REDIRECT),
        form_encode(login_hint)
    );
    let r = b.send(env, b.request(Method::Get, &url));
    let loc = r.header("location").expect("redirect to login").to_owned();
    let page = b.send(env, b.request(Method::Get, &loc));
    assert_eq!(page.status, 200);
    (loc, page)
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn csp_nonce(r: &Response) -> Option<String> {
    let csp = r.header("content-security-policy")?;
    let rest = csp.split("'nonce-").nth(1)?;
    rest.split('\'').next().map(str::to_owned)
}

/// The page has Gatehouse's one widget and two scripts (the widget's and the passkey one), and
/// no markup from a reflected value.
fn assert_only_gatehouse_markup(html: &str) {
    assert_eq!(html.matches("class=\"cf-turnstile\"").count(), 1, "{html}");
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    assert_eq!(
        html.matches("<script src=\"/.gatehouse/static/passkey.js\"").count(),
        1,
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
}

#[test]
fn login_hint_with_triple_braces_cannot_pull_raw_html_into_the_login_page() {
    let (env, client_id) = env_with_captcha_for_everyone();
    let mut b = Browser::default();
    let hint = "x{{{captcha}}}{{{body}}}<b>bold</b>";
    let (_, page) = login_page(&env, &mut b, &client_id, hint);
    let html = body(&page);
    assert_only_gatehouse_markup(&html);
    // The hint is in the username field as text: braces kept, markup escaped.
    assert!(
        html.contains("name=\"username\" value=\"x{{{captcha}}}{{{body}}}&#60;b&#62;bold&#60;/b&#62;\""),
        "{html}"
    );
}

#[test]
fn a_username_with_triple_braces_is_echoed_as_text_after_a_failed_login() {
    let (env, client_id) = env_with_captcha_for_everyone();
    let mut b = Browser::default();
    let (loc, _) = login_page(&env, &mut b, &client_id, "");
    let r = submit_login(&env, &mut b, &loc, "alice{{{captcha}}}<b>", "wrong");
    assert_eq!(r.status, 400, "no CAPTCHA token: the form again");
    let html = body(&r);
    assert_only_gatehouse_markup(&html);
    assert!(html.contains("value=\"alice{{{captcha}}}&#60;b&#62;\""), "{html}");
}

#[test]
fn a_reflected_nonce_placeholder_is_not_replaced_with_the_real_nonce() {
    // The old renderer put "__GATEHOUSE_CSP_NONCE__" in templates and replaced it in the whole
    // body, reflected values included: an injected <script nonce=...> would then have run.
    let (env, client_id) = env_with_captcha_for_everyone();
    let mut b = Browser::default();
    let placeholder = "__GATEHOUSE_CSP_NONCE__";
    let (loc, page) = login_page(&env, &mut b, &client_id, placeholder);
    let r = submit_login(&env, &mut b, &loc, placeholder, "wrong");
    for page in [page, r] {
        let html = body(&page);
        let nonce = csp_nonce(&page).expect("the widget's page has a script nonce");
        assert!(html.contains(&format!("value=\"{placeholder}\"")), "{html}");
        // The nonce appears only in the nonce attributes of Gatehouse's own two script tags.
        assert_eq!(html.matches(nonce.as_str()).count(), 2, "{html}");
        assert_eq!(
            html.matches(&format!(
                "<script src=\"/.gatehouse/static/passkey.js\" nonce=\"{nonce}\""
            ))
            .count(),
            1
        );
        assert_eq!(
            html.matches(&format!(
                "<script src=\"https://challenges.cloudflare.com/turnstile/v0/api.js\" nonce=\"{nonce}\""
            ))
            .count(),
            1
        );
    }
}

#[test]
fn pages_without_a_script_allow_none_and_the_login_page_only_its_own() {
    let (mut env, client_id) = env_with_captcha_for_everyone();
    env.settings.policy.turnstile = None;
    let error = env.send(Request::new(Method::Get, "/oauth2/authorize?client_id=nobody"));
    assert_eq!(error.status, 400);
    let csp = error.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'none';") && !csp.contains("nonce"), "{csp}");
    assert!(!body(&error).contains("<script"));
    // The login form runs the passkey script, by this response's nonce, and frames nothing.
    let mut b = Browser::default();
    let (_, login) = login_page(&env, &mut b, &client_id, "alice");
    let nonce = csp_nonce(&login).expect("a nonce for the passkey script");
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("script-src 'nonce-{nonce}' 'strict-dynamic';")),
        "{csp}"
    );
    assert!(!csp.contains("frame-src"), "{csp}");
    let html = body(&login);
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(&format!(
        "<script src=\"/.gatehouse/static/passkey.js\" nonce=\"{nonce}\" defer>"
    )));
}
