//! Rate limiting, lockout and reputation end to end through `gatehouse_core::handle`, on real
//! SQLite and the in-memory counters (the same `policy::counter::apply` as the Durable Object),
//! with a fake clock: a 15-minute lockout is tested without sleeping.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::http::{form_encode, Method, Request, Response};
use gatehouse_core::policy::counter::{Op, Reply};
use gatehouse_core::policy::rate_limit::Tier;
use gatehouse_core::policy::turnstile::{TurnstileSettings, RESPONSE_FIELD};
use gatehouse_core::ports::Counters;
use gatehouse_core::testing::MemCounters;
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const INVALID: &str = "Invalid username or password.";

fn env_with_limits(tiers: Vec<Tier>) -> TestEnv {
    let mut env = TestEnv::new();
    env.settings.policy.rate_limit = tiers;
    env
}

fn with_turnstile(env: &mut TestEnv) {
    env.settings.policy.turnstile = TurnstileSettings::from_values(
        Some("0x4AAAAAAAtestsitekey".into()),
        Some("turnstile-secret-value".into()),
        Some("http://127.0.0.1:9/siteverify".into()),
    )
    .unwrap();
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The page with its per-response CSP nonce blanked, so two answers can be compared byte for byte.
fn normalized(r: &Response) -> String {
    let text = body(r);
    let nonce = r
        .header("content-security-policy")
        .and_then(|csp| csp.split("'nonce-").nth(1))
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or("");
    if nonce.is_empty() {
        text
    } else {
        text.replace(nonce, "NONCE")
    }
}

fn count_events(env: &TestEnv, kind: &str) -> i64 {
    env.db
        .count(&format!("SELECT COUNT(*) FROM events WHERE kind = '{kind}'"))
}

fn client(env: &TestEnv) -> String {
    env.create_client(json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid",
        "first_party": true,
    }))
    .0
}

/// A login page in a browser: the form's `req` and `csrf`.
struct LoginPage {
    browser: Browser,
    req: String,
    csrf: String,
    html: String,
}

fn open_login(env: &TestEnv, client_id: &str, ip: &str) -> LoginPage {
    let mut browser = Browser::default();
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        form_encode(REDIRECT)
    );
    let r = browser.send(env, browser.request(Method::Get, &url));
    let loc = r.header("location").expect("redirect to login").to_owned();
    let r = browser.send(
        env,
        browser.request(Method::Get, &loc).with_header("cf-connecting-ip", ip),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let html = body(&r);
    LoginPage {
        req: hidden(&html, "req"),
        csrf: hidden(&html, "csrf"),
        browser,
        html,
    }
}

impl LoginPage {
    fn post(&self, ip: &str, username: &str, password: &str, captcha: Option<&str>) -> Request {
        let mut form = vec![
            ("req", self.req.as_str()),
            ("csrf", self.csrf.as_str()),
            ("username", username),
            ("password", password),
        ];
        if let Some(t) = captcha {
            form.push((RESPONSE_FIELD, t));
        }
        self.browser
            .request(Method::Post, "/oauth2/login")
            .with_header("cf-connecting-ip", ip)
            .with_form(&form)
    }

    fn submit(&self, env: &TestEnv, ip: &str, username: &str, password: &str) -> Response {
        env.send(self.post(ip, username, password, None))
    }
}

fn token_request(ip: &str) -> Request {
    Request::new(Method::Post, "/oauth2/token")
        .with_header("cf-connecting-ip", ip)
        .with_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
}

/// How many of `n` requests get past the limiter (any status but 429).
fn passed(env: &TestEnv, n: usize, make: impl Fn() -> Request) -> usize {
    (0..n).filter(|_| env.send(make()).status != 429).count()
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

#[test]
fn a_burst_from_one_ip_gets_exactly_the_burst_through_and_the_rest_429() {
    let env = env_with_limits(vec![Tier::per_second(5, 10), Tier::per_minute(20, 20)]);
    assert_eq!(passed(&env, 30, || token_request("203.0.113.7")), 10);
    let r = env.send(token_request("203.0.113.7"));
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json_body()["error"],
        "rate_limited",
        "the token endpoint's own JSON shape"
    );
    assert_eq!(
        r.header("retry-after"),
        Some("1"),
        "T = 200 ms, rounded up to whole seconds"
    );
    assert_eq!(
        count_events(&env, "rate_limited"),
        1,
        "one event per episode, not per refusal"
    );
}

#[test]
fn another_ip_is_unaffected() {
    let env = env_with_limits(vec![Tier::per_second(5, 10)]);
    assert_eq!(passed(&env, 15, || token_request("203.0.113.7")), 10);
    assert_eq!(passed(&env, 15, || token_request("198.51.100.1")), 10);
    assert_eq!(passed(&env, 15, || token_request("2001:db8:1:2::1")), 10);
    // The same /64 shares the budget.
    assert_eq!(passed(&env, 5, || token_request("2001:db8:1:2::ffff")), 0);
}

#[test]
fn the_budget_refills_at_the_rate_and_the_minute_tier_caps_spaced_requests() {
    let env = env_with_limits(vec![Tier::per_second(5, 10), Tier::per_minute(20, 20)]);
    assert_eq!(passed(&env, 30, || token_request("203.0.113.7")), 10);
    env.clock.advance_ms(199);
    assert_eq!(passed(&env, 5, || token_request("203.0.113.7")), 0);
    env.clock.advance_ms(1);
    assert_eq!(passed(&env, 5, || token_request("203.0.113.7")), 1);
    // An attacker pacing at the per-second rate meets the per-minute tier: 20 in the first
    // minute's burst (10 + 1 so far), then one every 3 s.
    let mut ok = 11;
    for _ in 0..40 {
        env.clock.advance_ms(250);
        ok += passed(&env, 1, || token_request("203.0.113.7"));
    }
    assert_eq!(ok, 20 + 10_200 / 3_000);
}

#[test]
fn every_endpoint_that_checks_a_secret_is_limited_in_its_own_shape() {
    let env = env_with_limits(vec![Tier::per_second(1, 1)]);
    let ip = "203.0.113.7";
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let make = || {
            Request::new(Method::Post, path)
                .with_header("cf-connecting-ip", ip)
                .with_form(&[("token", "x")])
        };
        assert_eq!(passed(&env, 3, make), 1, "{path}");
        let r = env.send(make());
        assert_eq!(
            (r.status, r.json_body()["error"].as_str()),
            (429, Some("rate_limited")),
            "{path}"
        );
        assert!(r.header("retry-after").is_some());
    }
    // The admin API: refused before the token is even compared.
    let admin = || {
        Request::new(Method::Get, "/admin/api/users")
            .with_header("cf-connecting-ip", ip)
            .with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
    };
    assert_eq!(env.send(admin()).status, 200);
    let r = env.send(admin());
    assert_eq!((r.status, r.json_body()["error"].as_str()), (429, Some("rate_limited")));
    // Consent: an HTML page.
    let consent = || {
        Request::new(Method::Post, "/oauth2/consent")
            .with_header("cf-connecting-ip", ip)
            .with_form(&[("req", "x")])
    };
    assert_ne!(env.send(consent()).status, 429);
    let r = env.send(consent());
    assert_eq!(r.status, 429);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"));
    // Endpoints that check no secret are never limited.
    for _ in 0..5 {
        let r = env
            .send(Request::new(Method::Get, "/.well-known/openid-configuration").with_header("cf-connecting-ip", ip));
        assert_eq!(r.status, 200);
    }
}

#[test]
fn the_login_form_answers_429_as_the_login_page_with_a_clear_message() {
    let mut env = env_with_limits(vec![Tier::per_second(1, 2)]);
    env.settings.policy.lockout.max_attempts = 0;
    env.create_user("alice", PASSWORD);
    let id = client(&env);
    let page = open_login(&env, &id, "203.0.113.7");
    for _ in 0..2 {
        assert_eq!(page.submit(&env, "203.0.113.7", "alice", "wrong").status, 401);
    }
    let r = page.submit(&env, "203.0.113.7", "alice", PASSWORD);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    let html = body(&r);
    assert!(html.contains("Too many sign-in attempts"), "{html}");
    assert!(html.contains("name=\"password\""), "the form is still there");
    // After the wait the flow continues where it was.
    env.clock.advance(1);
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
}

#[test]
fn spoofed_x_forwarded_for_gets_no_fresh_budget() {
    let env = env_with_limits(vec![Tier::per_second(1, 3)]);
    let n = std::cell::Cell::new(0);
    let spoofing = || {
        n.set(n.get() + 1);
        token_request("203.0.113.7").with_header("x-forwarded-for", &format!("10.9.8.{}", n.get()))
    };
    assert_eq!(passed(&env, 10, spoofing), 3);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_limited_not_the_proxy() {
    let mut env = env_with_limits(vec![Tier::per_second(1, 3)]);
    env.settings.policy.trusted_proxies =
        gatehouse_core::policy::client_ip::TrustedProxies::parse("10.0.0.0/8").unwrap();
    let via_proxy = |client: &str| token_request("10.0.0.1").with_header("x-forwarded-for", client);
    assert_eq!(passed(&env, 5, || via_proxy("198.51.100.1")), 3);
    assert_eq!(passed(&env, 5, || via_proxy("198.51.100.2")), 3);
}

/// CVE-2024-47070 class: a header that does not parse must not mean "no limit".
#[test]
fn malformed_client_ip_headers_share_one_strict_budget() {
    let mut env = env_with_limits(vec![Tier::per_second(1, 3)]);
    env.settings.policy.trusted_proxies =
        gatehouse_core::policy::client_ip::TrustedProxies::parse("10.0.0.0/8").unwrap();
    let garbage = [
        "garbage",
        "1.2.3.4.5",
        "",
        "203.0.113.7, 1.1.1.1",
        "[::1]:80",
        "unknown",
    ];
    let ok = garbage
        .iter()
        .cycle()
        .take(12)
        .filter(|g| env.send(token_request(g)).status != 429)
        .count();
    assert_eq!(ok, 3);
    // Through a trusted proxy, a garbage X-Forwarded-For lands in the same bucket.
    let r = env.send(token_request("10.0.0.1").with_header("x-forwarded-for", "not-an-ip"));
    assert_eq!(r.status, 429);
    // No header at all (not behind Cloudflare) shares a budget too.
    let bare = || Request::new(Method::Post, "/oauth2/token").with_form(&[("grant_type", "client_credentials")]);
    assert_eq!(passed(&env, 6, bare), 3);
}

#[test]
fn rps_zero_turns_the_limiter_off() {
    let env = TestEnv::new();
    assert!(env.settings.policy.rate_limit.is_empty());
    assert_eq!(passed(&env, 50, || token_request("203.0.113.7")), 50);
}

#[test]
fn an_unreachable_counter_store_fails_closed() {
    let env = env_with_limits(vec![Tier::per_second(5, 10)]);
    env.counters.down.set(true);
    let r = env.send(token_request("203.0.113.7"));
    assert_eq!((r.status, r.json_body()["error"].as_str()), (500, Some("server_error")));
}

// ---------------------------------------------------------------------------------------------
// Lockout

fn locked_env() -> (TestEnv, String, String) {
    let env = TestEnv::new();
    let user_id = env.create_user("alice", PASSWORD);
    let client_id = client(&env);
    (env, user_id, client_id)
}

#[test]
fn five_failures_lock_the_account_and_the_right_password_then_gets_the_wrong_password_answer() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    let mut wrong = Vec::new();
    for _ in 0..5 {
        let r = page.submit(&env, "203.0.113.7", "alice", "wrong password");
        assert_eq!(r.status, 401);
        wrong.push(r);
    }
    assert_eq!(count_events(&env, "account_locked"), 1);
    let locked = page.submit(&env, "203.0.113.7", "alice", PASSWORD);
    // Indistinguishable: same status, same page byte for byte, same message.
    assert_eq!(locked.status, 401);
    assert_eq!(normalized(&locked), normalized(&wrong[4]));
    assert!(body(&locked).contains(INVALID));
    // Case does not open a second budget.
    assert_eq!(page.submit(&env, "203.0.113.7", "ALICE", PASSWORD).status, 401);
    // An unknown username that failed as often looks exactly the same.
    for _ in 0..6 {
        page.submit(&env, "203.0.113.7", "mallory", "wrong password");
    }
    let unknown = page.submit(&env, "203.0.113.7", "mallory", PASSWORD);
    assert_eq!(unknown.status, locked.status);
    assert_eq!(normalized(&unknown).replace("mallory", "alice"), normalized(&locked));
}

#[test]
fn the_lock_ends_by_itself_after_the_duration() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    for _ in 0..5 {
        page.submit(&env, "203.0.113.7", "alice", "wrong password");
    }
    env.clock.advance(15 * 60 - 1);
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 401);
    env.clock.advance(1);
    // A fresh page: the first one's pending authorization has expired meanwhile.
    let page = open_login(&env, &client_id, "203.0.113.7");
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
}

#[test]
fn a_success_forgives_earlier_failures() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    for _ in 0..4 {
        page.submit(&env, "203.0.113.7", "alice", "wrong password");
    }
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
    let page = open_login(&env, &client_id, "203.0.113.7");
    for _ in 0..4 {
        assert_eq!(page.submit(&env, "203.0.113.7", "alice", "wrong password").status, 401);
    }
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
    assert_eq!(count_events(&env, "account_locked"), 0);
}

#[test]
fn an_admin_unlocks_the_account_and_it_is_recorded() {
    let (env, user_id, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    for _ in 0..5 {
        page.submit(&env, "203.0.113.7", "alice", "wrong password");
    }
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 401);
    let r = env.admin(Method::Post, &format!("/admin/api/users/{user_id}/unlock"), None);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.json_body()["id"], user_id.as_str());
    assert!(r.json_body().get("password_hash").is_none());
    assert_eq!(count_events(&env, "admin_user_unlocked"), 1);
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
    let r = env.admin(Method::Post, "/admin/api/users/usr_nope/unlock", None);
    assert_eq!(r.status, 404);
    let r = env.send(Request::new(
        Method::Post,
        &format!("/admin/api/users/{user_id}/unlock"),
    ));
    assert_eq!(r.status, 401, "unlocking needs the admin token");
}

/// Counters that yield once before every operation, so requests run through `join_all`
/// interleave at each counter call the way concurrent requests do in workerd; it notes the
/// order in which operations reached the store.
struct Interleaving<'a>(&'a MemCounters, std::cell::RefCell<Vec<&'static str>>);

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[async_trait(?Send)]
impl Counters for Interleaving<'_> {
    async fn ping(&self) -> Result<(), InternalError> {
        self.0.ping().await
    }
    async fn apply(&self, key: &str, op: &Op) -> Result<Reply, InternalError> {
        YieldOnce(false).await;
        self.1.borrow_mut().push(match op {
            Op::BeginAttempt { .. } => "begin",
            Op::Failure { .. } => "failure",
            _ => "other",
        });
        self.0.apply(key, op).await
    }
}

#[test]
fn concurrent_attempts_cannot_slip_past_the_count() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    let interleaving = Interleaving(&env.counters, Default::default());
    let mut ctx = env.ctx();
    ctx.counters = &interleaving;
    let requests: Vec<Request> = (0..12)
        .map(|_| page.post("203.0.113.7", "alice", "wrong password", None))
        .collect();
    let responses = futures::executor::block_on(futures::future::join_all(
        requests.iter().map(|r| gatehouse_core::handle(&ctx, r)),
    ));
    assert!(responses.iter().all(|r| r.as_ref().map(|r| r.status) == Some(401)));
    // They really were concurrent: all twelve started before the first failure was recorded.
    let order = interleaving.1.borrow();
    let first_failure = order.iter().position(|o| *o == "failure").unwrap();
    assert_eq!(order[..first_failure].iter().filter(|o| **o == "begin").count(), 12);
    // Only five attempts got to check the password; the other seven were refused unchecked.
    let checked = env
        .db
        .count("SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND detail LIKE '%invalid_credentials%'");
    let refused = env
        .db
        .count("SELECT COUNT(*) FROM events WHERE kind = 'login_failed' AND detail LIKE '%\"locked\"%'");
    assert_eq!((checked, refused), (5, 7));
    assert_eq!(count_events(&env, "account_locked"), 1);
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 401);
}

#[test]
fn lockout_can_be_disabled() {
    let (mut env, _, client_id) = locked_env();
    env.settings.policy.lockout.max_attempts = 0;
    let page = open_login(&env, &client_id, "203.0.113.7");
    for _ in 0..8 {
        page.submit(&env, "203.0.113.7", "alice", "wrong password");
    }
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
}

// ---------------------------------------------------------------------------------------------
// Reputation and the Turnstile step

fn score(env: &TestEnv, key: &str) -> i64 {
    env.counters.record(key).map(|r| r.rep.score).unwrap_or(0)
}

#[test]
fn failures_lower_both_scores_and_successes_raise_only_the_usernames_within_bounds() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    for u in ["bob", "carol", "dave"] {
        page.submit(&env, "203.0.113.7", u, "guess");
    }
    assert_eq!(score(&env, "ip:203.0.113.7"), -3);
    assert_eq!(score(&env, "user:bob"), -1);
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
    assert_eq!(score(&env, "ip:203.0.113.7"), -3, "a success earns the IP no credit");
    assert_eq!(score(&env, "user:alice"), 1);
    for _ in 0..20 {
        let page = open_login(&env, &client_id, "198.51.100.1");
        page.submit(&env, "198.51.100.1", "alice", PASSWORD);
    }
    assert_eq!(score(&env, "user:alice"), 5, "bounded above");
}

#[test]
fn a_low_ip_reputation_requires_a_verified_turnstile_token() {
    let (mut env, _, _) = locked_env();
    with_turnstile(&mut env);
    let client_id = client(&env);
    let ip = "203.0.113.7";
    let page = open_login(&env, &client_id, ip);
    assert!(!page.html.contains("cf-turnstile"), "a clean IP sees no CAPTCHA");
    // A password spray: five usernames, one guess each (no account locks).
    for u in ["u1", "u2", "u3", "u4"] {
        let r = page.submit(&env, ip, u, "Winter2026!");
        assert!(!body(&r).contains("cf-turnstile"));
    }
    let r = page.submit(&env, ip, "u5", "Winter2026!");
    assert!(
        body(&r).contains("cf-turnstile"),
        "at the threshold the form shows the widget"
    );
    let page = open_login(&env, &client_id, ip);
    assert!(page.html.contains("data-sitekey=\"0x4AAAAAAAtestsitekey\""));
    assert!(page
        .html
        .contains("https://challenges.cloudflare.com/turnstile/v0/api.js"));
    // Without a token, even the right password is not checked.
    let r = page.submit(&env, ip, "alice", PASSWORD);
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("Please complete the verification"));
    assert_eq!(count_events(&env, "captcha_failed"), 1);
    // A token siteverify refuses.
    let r = env.send(page.post(ip, "alice", PASSWORD, Some("forged")));
    assert_eq!(r.status, 400);
    // A valid one: the login proceeds, and siteverify got the secret, the token and the IP.
    let r = env.send(page.post(ip, "alice", PASSWORD, Some(&env.captcha.valid_token)));
    assert_eq!(r.status, 303, "{}", body(&r));
    let (url, sent) = env.captcha.requests.borrow().last().cloned().unwrap();
    assert_eq!(url, "http://127.0.0.1:9/siteverify");
    assert!(sent.contains("secret=turnstile-secret-value"));
    assert!(sent.contains("remoteip=203.0.113.7"));
    // Another IP is not asked.
    assert!(!open_login(&env, &client_id, "198.51.100.1")
        .html
        .contains("cf-turnstile"));
}

#[test]
fn own_successes_do_not_shield_a_password_spray() {
    // The attacker owns "alice" and alternates a successful sign-in to it with one guess against
    // another username. If successes credited the IP, its score would hover at 0 for ever.
    let (mut env, _, _) = locked_env();
    with_turnstile(&mut env);
    let client_id = client(&env);
    let ip = "203.0.113.7";
    let mut asked = false;
    for i in 0..6 {
        let page = open_login(&env, &client_id, ip);
        if page.html.contains("cf-turnstile") {
            asked = true;
            break;
        }
        let own = page.submit(&env, ip, "alice", PASSWORD);
        assert_eq!(own.status, 303, "round {i}: the attacker's own account signs in");
        let page = open_login(&env, &client_id, ip);
        let guess = page.submit(&env, ip, &format!("victim{i}"), "Winter2026!");
        if body(&guess).contains("cf-turnstile") {
            asked = true;
            break;
        }
    }
    assert!(
        asked,
        "after five guesses the IP must solve the CAPTCHA, whatever it signed in to"
    );
    assert_eq!(score(&env, "ip:203.0.113.7"), -5);
}

#[test]
fn a_targeted_username_requires_the_captcha_from_any_ip() {
    let (mut env, _, _) = locked_env();
    with_turnstile(&mut env);
    env.settings.policy.reputation.threshold = -3;
    let client_id = client(&env);
    // Three failures from three IPs: each IP is only at -1, the username at -3.
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let page = open_login(&env, &client_id, ip);
        let r = page.submit(&env, ip, "alice", "wrong password");
        assert_eq!(body(&r).contains("cf-turnstile"), i == 2);
    }
    let page = open_login(&env, &client_id, "198.51.100.9");
    assert!(
        !page.html.contains("cf-turnstile"),
        "the page cannot know the username yet"
    );
    let r = page.submit(&env, "198.51.100.9", "alice", PASSWORD);
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("cf-turnstile"));
    let r = env.send(page.post("198.51.100.9", "alice", PASSWORD, Some(&env.captcha.valid_token)));
    assert_eq!(r.status, 303);
}

#[test]
fn an_unreachable_siteverify_fails_closed() {
    let (mut env, _, _) = locked_env();
    with_turnstile(&mut env);
    env.settings.policy.reputation.threshold = 0;
    let client_id = client(&env);
    env.captcha.down.set(true);
    let page = open_login(&env, &client_id, "203.0.113.7");
    assert!(page.html.contains("cf-turnstile"));
    let r = env.send(page.post("203.0.113.7", "alice", PASSWORD, Some(&env.captcha.valid_token)));
    assert_eq!(r.status, 400);
}

#[test]
fn without_turnstile_a_low_reputation_blocks_nothing() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    for i in 0..8 {
        page.submit(&env, "203.0.113.7", &format!("u{i}"), "guess");
    }
    assert_eq!(score(&env, "ip:203.0.113.7"), -5);
    assert!(!open_login(&env, &client_id, "203.0.113.7")
        .html
        .contains("cf-turnstile"));
    assert_eq!(page.submit(&env, "203.0.113.7", "alice", PASSWORD).status, 303);
}

#[test]
fn counter_records_are_one_per_key_and_peeking_creates_none() {
    let (mut env, _, client_id) = locked_env();
    env.settings.policy.rate_limit = vec![Tier::per_second(5, 10)];
    with_turnstile(&mut env);
    passed(&env, 3, || token_request("203.0.113.7"));
    passed(&env, 3, || token_request("198.51.100.1"));
    // Showing the login page peeks at the IP's reputation; a clean key stays without a record.
    open_login(&env, &client_id, "192.0.2.55");
    let mut keys = env.counters.keys();
    keys.sort();
    assert_eq!(keys, vec!["ip:198.51.100.1", "ip:203.0.113.7"]);
}

#[test]
fn unauthenticated_writes_authorize_gateway_start_and_csp_reports_are_rate_limited_per_ip() {
    let mut env = TestEnv::new();
    env.settings.policy.page_rate_limit = vec![Tier::per_second(1, 3)];
    let client_id = client(&env);
    let authorize = || {
        let url = format!(
            "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
            form_encode(REDIRECT)
        );
        Request::new(Method::Get, &url).with_header("cf-connecting-ip", "203.0.113.7")
    };
    assert_eq!(passed(&env, 10, authorize), 3);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM auth_requests"),
        3,
        "a refused request stores nothing"
    );
    let r = env.send(authorize());
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let gateway = || Request::new(Method::Get, "/oauth2/gateway?app=x").with_header("cf-connecting-ip", "203.0.113.7");
    assert_eq!(passed(&env, 10, gateway), 3, "its own bucket");
    let app = env.admin(
        Method::Post,
        "/admin/api/apps",
        Some(json!({"name": "App", "host": "app.example.com", "path_prefix": "/", "origin": "http://10.0.0.5"})),
    );
    assert_eq!(app.status, 201);
    let report = || {
        Request::new(Method::Post, "/.gatehouse/csp-report")
            .with_header("cf-connecting-ip", "203.0.113.7")
            .with_json(&json!({"csp-report": {}}))
    };
    let reports_passed = (0..10)
        .filter(|_| env.send_at("https://app.example.com", report()).status != 429)
        .count();
    assert_eq!(reports_passed, 3);
    assert_eq!(count_events(&env, "csp_report"), 3);
    // Another IP has its own budget.
    assert_eq!(
        env.send(authorize().with_header("cf-connecting-ip", "198.51.100.1"))
            .status,
        303
    );
}

#[test]
fn an_oversized_username_is_refused_and_neither_counted_nor_logged() {
    let (env, _, client_id) = locked_env();
    let page = open_login(&env, &client_id, "203.0.113.7");
    let r = page.submit(&env, "203.0.113.7", &"u".repeat(257), "guess");
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("That username is too long."));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind NOT LIKE 'admin_%'"),
        0
    );
    assert_eq!(score(&env, "ip:203.0.113.7"), 0);
    // At the bound it is an ordinary failed attempt.
    let r = page.submit(&env, "203.0.113.7", &"u".repeat(256), "guess");
    assert_eq!(r.status, 401);
    assert_eq!(count_events(&env, "login_failed"), 1);
}

#[test]
fn a_cors_preflight_spends_nothing_and_is_never_limited() {
    let mut env = env_with_limits(vec![Tier::per_second(1, 1)]);
    env.settings.cors_origins = vec!["https://spa.example.com".into()];
    let ip = "203.0.113.9";
    let preflight = || {
        Request::new(Method::Options, "/oauth2/token")
            .with_header("cf-connecting-ip", ip)
            .with_header("origin", "https://spa.example.com")
            .with_header("access-control-request-method", "POST")
    };
    for _ in 0..3 {
        assert_ne!(env.send(preflight()).status, 429, "a preflight checks nothing");
    }
    let token = || {
        Request::new(Method::Post, "/oauth2/token")
            .with_header("cf-connecting-ip", ip)
            .with_form(&[("grant_type", "client_credentials")])
    };
    assert_ne!(env.send(token()).status, 429, "the preflights spent nothing");
    assert_eq!(env.send(token()).status, 429);
    assert_ne!(
        env.send(preflight()).status,
        429,
        "nor is one refused when the bucket is empty"
    );
}
