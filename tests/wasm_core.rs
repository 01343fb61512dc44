//! The core's security-critical pieces as wasm in a real browser engine: the same code that
//! runs in workerd (64-bit arithmetic, hashing and parsing on wasm32).
#![cfg(target_arch = "wasm32")]

use gatehouse_core::oidc::{pkce, redirect_uri};
use gatehouse_core::password;
use gatehouse_core::testing::SeededRng;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn argon2id_hash_and_verify_on_wasm32() {
    let h = password::hash("correct horse", &SeededRng::new(1)).expect("hash");
    assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(password::verify("correct horse", &h).expect("verify"));
    assert!(!password::verify("correct horsf", &h).expect("verify"));
    assert!(!password::verify("anything", password::DUMMY_HASH).expect("dummy"));
}

#[wasm_bindgen_test]
fn rfc7636_appendix_b_on_wasm32() {
    assert!(pkce::verify_s256(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ));
}

#[wasm_bindgen_test]
fn redirect_uri_matching_on_wasm32() {
    let reg = vec![
        "https://app.example.com/cb".to_string(),
        "http://127.0.0.1/cb".to_string(),
    ];
    assert!(redirect_uri::matches(&reg, "https://app.example.com/cb"));
    assert!(!redirect_uri::matches(&reg, "https://app.example.com/cb/../x"));
    assert!(redirect_uri::matches(&reg, "http://127.0.0.1:4711/cb"));
    assert!(!redirect_uri::matches(&reg, "http://127.0.0.1.evil.example/cb"));
}

#[wasm_bindgen_test]
fn rfc6238_totp_vectors_and_the_replay_rule_on_wasm32() {
    use gatehouse_core::factors::totp::{self, Refusal, TotpSecret};
    let s = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("secret");
    // RFC 6238 Appendix B (SHA-1), last six of the eight digits; 20000000000 needs 64-bit time.
    for (time, code) in [
        (59, "287082"),
        (1111111109, "081804"),
        (1234567890, "005924"),
        (20000000000, "353130"),
    ] {
        assert_eq!(s.code_at(time).expect("code"), code, "T={time}");
        let step = totp::verify(&s, code, time, None).expect("accepted");
        assert_eq!(totp::verify(&s, code, time, Some(step)), Err(Refusal::Replayed));
    }
}

#[wasm_bindgen_test]
fn sealed_secrets_and_recovery_codes_on_wasm32() {
    use gatehouse_core::factors::{recovery_codes, sealed::SealingKey};
    let rng = SeededRng::new(9);
    let key = SealingKey::derive(&[7; 32]).expect("key");
    let sealed = key.seal(&rng, b"seed", "totp:usr_1:dev_1").expect("seal");
    assert_eq!(key.open(&sealed, "totp:usr_1:dev_1").expect("open"), b"seed");
    assert!(key.open(&sealed, "totp:usr_2:dev_1").is_err());
    let codes = recovery_codes::generate(&rng).expect("codes");
    assert_eq!(codes.len(), recovery_codes::COUNT);
    assert_eq!(
        recovery_codes::hash("usr_1", &codes[0].expose().to_uppercase()),
        recovery_codes::hash("usr_1", codes[0].expose())
    );
}
