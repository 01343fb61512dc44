//! Native tests of the strength Worker's logic: scores, bounds, routing, and that no answer
//! carries the password. Run from workers/strength with `cargo test`.

use gatehouse_strength::score::{
    declared_too_large, handle, parse_request, score, warm_up, Reply, MAX_BODY_BYTES, MAX_PASSWORD_BYTES,
    MAX_USER_INPUTS, MAX_USER_INPUT_BYTES, WARM_UP_PASSWORD,
};
use serde_json::{json, Value};

fn post(body: &Value) -> Reply {
    handle("POST", "/score", body.to_string().as_bytes())
}

fn error_of(reply: &Reply) -> String {
    let v: Value = serde_json::from_str(&reply.body).expect("error body is JSON");
    v["error"].as_str().expect("an error field").to_owned()
}

// --- scores ---------------------------------------------------------------------------------

#[test]
fn common_passwords_score_at_most_one() {
    for pw in ["password", "123456", "qwerty123", "Password1", "letmein", "iloveyou"] {
        let s = score(pw, &[]);
        assert!(s.score <= 1, "{pw}: {s:?}");
        assert!(s.warning.is_some(), "{pw}: a weak password gets a warning");
    }
}

#[test]
fn top_passwords_say_so() {
    let s = score("password", &[]);
    assert_eq!(s.score, 0);
    assert_eq!(s.warning.as_deref(), Some("This is a top-10 common password."));
    assert!(!s.suggestions.is_empty());
    assert!(s.guesses_log10 < 1.0, "{s:?}");
}

/// xkcd 936's passphrase is famous by now, but zxcvbn's dictionaries do not know it as a whole:
/// alone it scores well. Given as a user input (a site can pass phrases it has seen), it is weak.
#[test]
fn correct_horse_battery_staple_is_weak_once_known() {
    let pw = "correct horse battery staple";
    let alone = score(pw, &[]);
    let known = score(pw, &[pw]);
    assert!(known.score <= 1, "{known:?}");
    assert!(
        known.score < alone.score || alone.score <= 1,
        "alone {alone:?}, known {known:?}"
    );
    assert!(known.guesses_log10 < alone.guesses_log10);
}

#[test]
fn the_users_own_username_is_weak() {
    let username = "zanzibar.quirkleton";
    let alone = score(username, &[]);
    let s = score(username, &[username, "zq@example.org"]);
    assert!(s.score <= 1, "{s:?}");
    assert!(s.score < alone.score, "alone {alone:?}, with inputs {s:?}");
}

#[test]
fn the_users_own_email_is_weak() {
    let email = "zanzibar.quirkleton@example.org";
    let alone = score(email, &[]);
    let s = score(email, &["zq", email]);
    assert!(s.score <= 1, "{s:?}");
    assert!(s.score < alone.score, "alone {alone:?}, with inputs {s:?}");
}

#[test]
fn an_emails_local_part_with_digits_is_weaker_given_the_email() {
    let pw = "quirkleton2024";
    let alone = score(pw, &[]);
    let s = score(pw, &["quirkleton@example.org"]);
    assert!(
        s.guesses_log10 < alone.guesses_log10,
        "alone {alone:?}, with email {s:?}"
    );
    assert!(s.score <= 1, "{s:?}");
}

#[test]
fn long_random_passphrases_score_four() {
    for pw in [
        "vN7#qLp2!xZr9@tW",
        "glacier-mosaic-turbine-pelican-87",
        "Tq8$wmZ1^rKo4&yB6pXe",
    ] {
        let s = score(pw, &["alice", "alice@example.com"]);
        assert_eq!(s.score, 4, "{pw}: {s:?}");
        assert!(s.guesses_log10 > 10.0, "{pw}: {s:?}");
        assert_eq!(s.warning, None);
        assert!(s.suggestions.is_empty());
    }
}

#[test]
fn empty_user_inputs_change_nothing() {
    assert_eq!(score("kettle-lamp", &[]), score("kettle-lamp", &["", "@x"]));
}

#[test]
fn strength_json_has_exactly_the_documented_fields() {
    let reply = post(&json!({"password": "password"}));
    assert_eq!(reply.status, 200);
    let v: Value = serde_json::from_str(&reply.body).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["guesses_log10", "score", "suggestions", "warning"]);
    assert_eq!(v["score"], 0);
    assert!(v["guesses_log10"].is_f64());
    assert!(v["warning"].is_string());
    assert!(v["suggestions"].is_array());

    let strong = post(&json!({"password": "vN7#qLp2!xZr9@tW"}));
    let v: Value = serde_json::from_str(&strong.body).unwrap();
    assert_eq!(v["score"], 4);
    assert!(v["warning"].is_null());
    assert_eq!(v["suggestions"], json!([]));
}

#[test]
fn user_inputs_are_used_by_the_endpoint() {
    let alone = post(&json!({"password": "zanzibar.quirkleton"}));
    let with = post(&json!({"password": "zanzibar.quirkleton", "user_inputs": ["zanzibar.quirkleton"]}));
    let a: Value = serde_json::from_str(&alone.body).unwrap();
    let w: Value = serde_json::from_str(&with.body).unwrap();
    assert!(w["score"].as_u64() < a["score"].as_u64(), "{a} vs {w}");
}

/// The warm-up runs while workerd's clock reads 1970: it must not make zxcvbn take its reference
/// year, which it does only when a password holds digits (a year or a date).
#[test]
fn the_warm_up_has_no_digits_and_does_not_panic() {
    assert!(!WARM_UP_PASSWORD.chars().any(|c| c.is_numeric()));
    warm_up();
}

// --- bounds ---------------------------------------------------------------------------------

/// A syntactically valid body of exactly `len` bytes (padding is JSON whitespace).
fn body_of_len(len: usize) -> Vec<u8> {
    let mut b = br#"{"password":"kettle-lamp-orbit"}"#.to_vec();
    assert!(b.len() <= len);
    b.resize(len, b' ');
    b
}

#[test]
fn body_of_8_kib_is_read_and_one_byte_more_is_413() {
    let ok = handle("POST", "/score", &body_of_len(MAX_BODY_BYTES));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let big = handle("POST", "/score", &body_of_len(MAX_BODY_BYTES + 1));
    assert_eq!(big.status, 413);
    assert!(error_of(&big).contains("8192"));
}

#[test]
fn declared_content_length_over_8_kib_is_refused_unread() {
    assert!(!declared_too_large(None));
    assert!(!declared_too_large(Some("0")));
    assert!(!declared_too_large(Some("8192")));
    assert!(declared_too_large(Some("8193")));
    assert!(declared_too_large(Some(" 1000000 ")));
    assert!(declared_too_large(Some("18446744073709551615")));
    // Not a number: left to the runtime and to the read cap.
    assert!(!declared_too_large(Some("lots")));
}

#[test]
fn password_of_1024_bytes_is_scored_and_1025_refused() {
    let ok = post(&json!({"password": "a".repeat(MAX_PASSWORD_BYTES)}));
    assert_eq!(ok.status, 200);
    let long = post(&json!({"password": "a".repeat(MAX_PASSWORD_BYTES + 1)}));
    assert_eq!(long.status, 400);
    assert_eq!(error_of(&long), "password longer than 1024 bytes");
}

#[test]
fn password_bound_counts_bytes_not_characters() {
    // "é" is two bytes in UTF-8: 512 of them fit, 513 do not.
    assert_eq!(post(&json!({"password": "é".repeat(512)})).status, 200);
    assert_eq!(post(&json!({"password": "é".repeat(513)})).status, 400);
}

#[test]
fn empty_password_is_refused() {
    let r = post(&json!({"password": ""}));
    assert_eq!(r.status, 400);
    assert_eq!(error_of(&r), "password is empty");
}

#[test]
fn eight_user_inputs_are_taken_and_nine_refused() {
    let eight: Vec<String> = (0..MAX_USER_INPUTS).map(|i| format!("input{i}")).collect();
    assert_eq!(
        post(&json!({"password": "kettle-lamp", "user_inputs": eight})).status,
        200
    );
    let nine: Vec<String> = (0..=MAX_USER_INPUTS).map(|i| format!("input{i}")).collect();
    let r = post(&json!({"password": "kettle-lamp", "user_inputs": nine}));
    assert_eq!(r.status, 400);
    assert_eq!(error_of(&r), "more than 8 user_inputs");
}

#[test]
fn user_input_of_256_bytes_is_taken_and_257_refused() {
    let ok = post(&json!({"password": "kettle-lamp", "user_inputs": ["b".repeat(MAX_USER_INPUT_BYTES)]}));
    assert_eq!(ok.status, 200);
    let r = post(&json!({"password": "kettle-lamp", "user_inputs": ["ok", "b".repeat(MAX_USER_INPUT_BYTES + 1)]}));
    assert_eq!(r.status, 400);
    assert_eq!(error_of(&r), "a user_input is longer than 256 bytes");
}

#[test]
fn unknown_fields_are_refused() {
    let r = post(&json!({"password": "kettle-lamp", "username": "alice"}));
    assert_eq!(r.status, 400);
    assert!(error_of(&r).starts_with("unknown field"), "{}", r.body);
}

#[test]
fn malformed_bodies_are_400() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"[]",
        b"null",
        b"{}",
        br#"{"password": 12345678}"#,
        br#"{"password": null}"#,
        br#"{"password": "a", "user_inputs": "alice"}"#,
        br#"{"password": "a", "user_inputs": [1, 2]}"#,
        br#"{"password": "a", "password": "b"}"#,
        b"{\"password\": \"\xff\xfe\"}",
    ] {
        let r = handle("POST", "/score", body);
        assert_eq!(r.status, 400, "{:?}: {}", String::from_utf8_lossy(body), r.body);
        assert!(!error_of(&r).is_empty());
    }
    assert_eq!(error_of(&handle("POST", "/score", b"{}")), "missing field: password");
}

#[test]
fn parse_request_keeps_what_it_was_given() {
    let r = parse_request(br#"{"password":"p4ss","user_inputs":["a","b"]}"#).unwrap();
    assert_eq!(r.password, "p4ss");
    assert_eq!(r.user_inputs, ["a", "b"]);
    let r = parse_request(br#"{"password":"p4ss"}"#).unwrap();
    assert!(r.user_inputs.is_empty());
}

// --- routing --------------------------------------------------------------------------------

#[test]
fn only_post_score_is_routed() {
    for (method, path, status) in [
        ("POST", "/", 404),
        ("GET", "/", 404),
        ("POST", "/score/", 404),
        ("POST", "/Score", 404),
        ("POST", "/score/x", 404),
        ("GET", "/healthz", 404),
        ("GET", "/score", 405),
        ("PUT", "/score", 405),
        ("HEAD", "/score", 405),
        ("OPTIONS", "/score", 405),
        ("post", "/score", 405),
    ] {
        let r = handle(method, path, br#"{"password":"kettle-lamp"}"#);
        assert_eq!(r.status, status, "{method} {path}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["error"].is_string(), "{method} {path}: {}", r.body);
        assert_eq!(r.allow, if status == 405 { Some("POST") } else { None });
    }
}

// --- the password never comes back ----------------------------------------------------------

#[test]
fn no_answer_contains_the_password() {
    let pw = "Zq9-unique-Secret-7Wm";
    let bodies: Vec<Vec<u8>> = vec![
        json!({"password": pw}).to_string().into_bytes(),
        json!({"password": pw, "user_inputs": [pw]}).to_string().into_bytes(),
        json!({"password": pw, "extra": pw}).to_string().into_bytes(),
        json!({ pw: pw }).to_string().into_bytes(),
        json!({"password": [pw]}).to_string().into_bytes(),
        json!({"password": {pw: pw}}).to_string().into_bytes(),
        json!({"password": "x", "user_inputs": pw}).to_string().into_bytes(),
        json!({"password": "x", "user_inputs": [[pw]]}).to_string().into_bytes(),
        json!({"password": pw.repeat(60)}).to_string().into_bytes(),
        json!({"password": pw, "user_inputs": [pw.repeat(20)]})
            .to_string()
            .into_bytes(),
        format!("{{\"password\": \"{pw}\"").into_bytes(),
        format!("{{\"password\": {pw}}}").into_bytes(),
        pw.as_bytes().to_vec(),
        body_of_len(MAX_BODY_BYTES + 1),
    ];
    for body in &bodies {
        for (method, path) in [("POST", "/score"), ("GET", "/score"), ("POST", "/nope")] {
            let r = handle(method, path, body);
            assert!(
                !r.body.contains(pw),
                "{method} {path} {}: {}",
                String::from_utf8_lossy(body),
                r.body
            );
            assert!(!r.body.contains("Zq9"), "{}", r.body);
        }
    }
}
