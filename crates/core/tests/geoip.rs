//! The GeoIP policy at sign-in, end to end through `gatehouse_core::handle`: locations as the
//! edge's `request.cf` gives them, sign-in events that record them, country and network lists,
//! the travel checks against the last sign-ins, and requests without a location.

mod support;

use gatehouse_core::http::{Location, Method, Response};
use gatehouse_core::policy::geoip::Unknown;
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const HOUR: i64 = 3600;
const BERLIN: (f64, f64) = (52.52, 13.405);
const NEW_YORK: (f64, f64) = (40.7128, -74.006);

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no location ({}): {}", r.status, body(r)))
        .to_owned()
}

fn from(country: &str, asn: u32, at: (f64, f64)) -> Browser {
    Browser {
        location: Location {
            country: Some(country.into()),
            asn: Some(asn),
            coordinates: Some(at),
        },
        ..Browser::default()
    }
}

fn client(env: &TestEnv) -> String {
    env.create_client(json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "first_party": true,
    }))
    .0
}

/// Runs an authorization request in `b` through the password; where the browser was sent last.
fn sign_in(env: &TestEnv, b: &mut Browser, client_id: &str) -> String {
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let r = b.send(env, b.request(Method::Get, &url));
    let login = location(&r);
    let mut r = submit_login(env, b, &login, "ann", PASSWORD);
    for _ in 0..5 {
        let next = location(&r);
        if next.starts_with(REDIRECT) {
            return next;
        }
        r = b.send(env, b.request(Method::Get, &next));
    }
    location(&r)
}

fn blocked(env: &TestEnv) -> Vec<serde_json::Value> {
    env.db
        .text("SELECT COALESCE(json_group_array(json(detail)), '[]') FROM events WHERE kind = 'login_blocked'")
        .parse::<serde_json::Value>()
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn succeeded(env: &TestEnv) -> i64 {
    env.db
        .count("SELECT COUNT(*) FROM events WHERE kind = 'login_succeeded'")
}

#[test]
fn a_denied_country_is_refused_after_the_password_with_no_session_and_an_event() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.countries_deny = vec!["RU".into()];
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    let mut b = from("RU", 12389, (55.75, 37.61));
    let end = sign_in(&env, &mut b, &c);
    assert!(end.starts_with(REDIRECT), "{end}");
    assert!(end.contains("error=access_denied"), "{end}");
    assert!(!end.contains("code="));
    assert!(
        b.cookies.iter().all(|(k, _)| k != "gh_session"),
        "no session: {:?}",
        b.cookies
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM sessions"), 0);
    assert_eq!(succeeded(&env), 0);
    let events = blocked(&env);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["policy"], "geoip");
    assert_eq!(events[0]["reason"], "country_denied");
    assert_eq!(events[0]["country"], "RU");
    assert_eq!(events[0]["asn"], 12389);
    // From an allowed country the same user signs in, and the event records where from.
    let end = sign_in(&env, &mut from("DE", 3320, BERLIN), &c);
    assert!(end.contains("code="), "{end}");
    let detail: serde_json::Value = env
        .db
        .text("SELECT detail FROM events WHERE kind = 'login_succeeded'")
        .parse()
        .unwrap();
    assert_eq!(detail["country"], "DE");
    assert_eq!(detail["asn"], 3320);
    assert_eq!(detail["lat"], 52.52);
    assert_eq!(detail["lon"], 13.405);
    assert!(detail.get("geoip").is_none());
}

#[test]
fn a_wrong_password_from_a_denied_country_is_only_a_wrong_password() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.countries_deny = vec!["RU".into()];
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    let mut b = from("RU", 12389, (55.75, 37.61));
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={c}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let r = b.send(&env, b.request(Method::Get, &url));
    let r = submit_login(&env, &mut b, &location(&r), "ann", "not the password");
    assert_eq!(r.status, 401);
    assert!(blocked(&env).is_empty());
}

#[test]
fn an_allow_list_of_networks_refuses_the_others() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.asns_allow = vec![3320];
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    assert!(sign_in(&env, &mut from("DE", 7922, BERLIN), &c).contains("error=access_denied"));
    assert_eq!(blocked(&env)[0]["reason"], "asn_not_allowed");
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("code="));
}

#[test]
fn impossible_travel_against_the_last_sign_ins_at_1000_km_per_hour() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.impossible_travel = true;
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("code="));
    // Berlin to New York is about 6,385 km: 6.4 hours at 1,000 km/h.
    env.clock.advance(6 * HOUR);
    let end = sign_in(&env, &mut from("US", 7922, NEW_YORK), &c);
    assert!(end.contains("error=access_denied"), "{end}");
    let events = blocked(&env);
    assert_eq!(events[0]["reason"], "impossible_travel");
    assert_eq!(events[0]["country"], "US");
    env.clock.advance(HOUR);
    assert!(sign_in(&env, &mut from("US", 7922, NEW_YORK), &c).contains("code="));
    // A blocked sign-in is not history: only the successful ones are compared.
    assert_eq!(succeeded(&env), 2);
}

#[test]
fn the_maximum_distance_compares_each_of_the_last_n_sign_ins() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.max_distance_km = Some(1000.0);
    env.settings.policy.geoip.history = 2;
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    assert!(sign_in(&env, &mut from("US", 7922, NEW_YORK), &c).contains("code="));
    env.clock.advance(48 * HOUR);
    // Berlin is too far from New York, the only sign-in so far.
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("error=access_denied"));
    assert_eq!(blocked(&env)[0]["reason"], "max_distance");
    // With a tolerance it is not (6,385 km < 1,000 + 6,000).
    env.settings.policy.geoip.distance_tolerance_km = 6000.0;
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("code="));
    env.settings.policy.geoip.distance_tolerance_km = 0.0;
    // One sign-in from Berlin: New York is still among the last two.
    env.clock.advance(HOUR);
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("error=access_denied"));
    // One more Berlin sign-in (let through by the tolerance) leaves two Berlins as the last two:
    // New York, the third, no longer counts.
    env.settings.policy.geoip.distance_tolerance_km = 6000.0;
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("code="));
    env.settings.policy.geoip.distance_tolerance_km = 0.0;
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &c).contains("code="));
}

#[test]
fn a_request_without_a_location_passes_and_says_so_unless_configured_to_fail() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.countries_allow = vec!["DE".into()];
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    assert!(sign_in(&env, &mut Browser::default(), &c).contains("code="));
    let detail: serde_json::Value = env
        .db
        .text("SELECT detail FROM events WHERE kind = 'login_succeeded'")
        .parse()
        .unwrap();
    assert_eq!(detail["geoip"], "skipped");
    env.settings.policy.geoip.unknown = Unknown::Fail;
    assert!(sign_in(&env, &mut Browser::default(), &c).contains("error=access_denied"));
    assert_eq!(blocked(&env)[0]["reason"], "location_unknown");
}

#[test]
fn the_account_page_refuses_a_denied_location_with_a_page() {
    let mut env = TestEnv::new();
    env.settings.policy.geoip.countries_deny = vec!["RU".into()];
    env.create_user("ann", PASSWORD);
    let mut b = from("RU", 12389, (55.75, 37.61));
    let r = b.send(&env, b.request(Method::Get, "/account"));
    let mut r = submit_login(&env, &mut b, &location(&r), "ann", PASSWORD);
    for _ in 0..4 {
        match r.header("location").map(str::to_owned) {
            Some(l) => r = b.send(&env, b.request(Method::Get, &l)),
            None => break,
        }
    }
    assert_eq!(r.status, 403);
    assert!(
        body(&r).contains("not allowed from your current location"),
        "{}",
        body(&r)
    );
}

#[test]
fn a_session_is_judged_where_it_signed_in_not_again_at_a_later_consent() {
    let mut env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    let first = client(&env);
    let third = env
        .create_client(json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "first_party": false,
        }))
        .0;
    let mut b = from("DE", 3320, BERLIN);
    assert!(sign_in(&env, &mut b, &first).contains("code="));
    // The rule changes; the session signed in before it goes on to a third-party client, whose
    // flow passes only the consent (no new sign-in to judge).
    env.settings.policy.geoip.countries_deny = vec!["DE".into()];
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={third}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let r = b.send(&env, b.request(Method::Get, &url));
    let consent = location(&r);
    assert!(consent.starts_with("/oauth2/consent"), "{consent}");
    let html = body(&b.send(&env, b.request(Method::Get, &consent)));
    let r = b.send(
        &env,
        b.request(Method::Post, "/oauth2/consent").with_form(&[
            ("req", hidden(&html, "req").as_str()),
            ("csrf", hidden(&html, "csrf").as_str()),
            ("decision", "allow"),
        ]),
    );
    let r = b.send(&env, b.request(Method::Get, &location(&r)));
    assert!(location(&r).contains("code="), "{}", location(&r));
    assert!(blocked(&env).is_empty());
    // A new sign-in from there is judged.
    assert!(sign_in(&env, &mut from("DE", 3320, BERLIN), &first).contains("error=access_denied"));
}

#[test]
fn a_failed_sign_in_records_the_country_and_network_it_came_from() {
    let env = TestEnv::new();
    env.create_user("ann", PASSWORD);
    let c = client(&env);
    let mut b = from("FR", 3215, (48.85, 2.35));
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={c}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        gatehouse_core::http::form_encode(REDIRECT)
    );
    let r = b.send(&env, b.request(Method::Get, &url));
    let r = submit_login(&env, &mut b, &location(&r), "ann", "not the password");
    assert_eq!(r.status, 401);
    let detail: serde_json::Value = env
        .db
        .text("SELECT detail FROM events WHERE kind = 'login_failed'")
        .parse()
        .unwrap();
    assert_eq!(detail["country"], "FR");
    assert_eq!(detail["asn"], 3215);
    assert!(detail.get("lat").is_none(), "coordinates only on sign-ins");
    // An admin change names its actor.
    let audit: serde_json::Value = env
        .db
        .text("SELECT detail FROM events WHERE kind = 'admin_user_created'")
        .parse()
        .unwrap();
    assert_eq!(audit["actor"], "api_token");
}
