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
