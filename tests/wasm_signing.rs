//! WebCrypto signer in headless Chromium, checked against the RustCrypto reference signer.
//!
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown
//! --features wasm-tests --test wasm_signing` (the feature leaves out the `fetch` export, which
//! would shadow the runner's global `fetch`).

#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use gatehouse::signing::WebCryptoSigner;
use gatehouse_core::crypto::{b64url, hmac_sha256};
use gatehouse_core::jwt::{self, JwtError};
use gatehouse_core::ports::{Signer, SigningAlg};
use gatehouse_core::testing::signer::{
    test_secret, test_secret_rotated, EC_B_KID, RSA_A_KID, RSA_A_PUBLIC_PEM, RSA_B_KID,
};
use gatehouse_core::testing::RustCryptoSigner;
use serde_json::{json, Value};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const NOW: i64 = 1_800_000_000;

fn claims() -> Value {
    json!({"iss": "https://id.example.com", "sub": "usr_1", "aud": "cli_1", "iat": NOW, "exp": NOW + 300})
}

fn part(v: &Value) -> String {
    b64url(&serde_json::to_vec(v).unwrap())
}

fn header_kid(token: &str) -> String {
    let header = gatehouse_core::crypto::b64url_decode(token.split('.').next().unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[wasm_bindgen_test]
async fn webcrypto_publishes_the_same_kids_and_jwks_as_rustcrypto() {
    for secret in [test_secret(), test_secret_rotated()] {
        let web = WebCryptoSigner::from_secret(&secret).await.unwrap();
        let rust = RustCryptoSigner::from_secret(&secret).unwrap();
        assert_eq!(web.public_keys(), rust.public_keys());
    }
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let kids: Vec<&str> = web.public_keys().iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, [RSA_A_KID, EC_B_KID]);
    for key in web.public_keys() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "key_ops", "ext"] {
            assert!(!key.jwk.contains_key(private), "{private} published");
        }
    }
}

#[wasm_bindgen_test]
async fn webcrypto_tokens_verify_with_both_signers() {
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let rust = RustCryptoSigner::from_secret(&test_secret()).unwrap();
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let token = jwt::sign(&web, alg, &claims(), Some("JWT")).await.unwrap();
        let by_web = jwt::verify(&web, &token, NOW, 0).await.unwrap();
        let by_rust = jwt::verify(&rust, &token, NOW, 0).await.unwrap();
        assert_eq!(Value::Object(by_web), claims());
        assert_eq!(Value::Object(by_rust), claims());
    }
}

#[wasm_bindgen_test]
async fn rustcrypto_tokens_verify_with_webcrypto() {
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let rust = RustCryptoSigner::from_secret(&test_secret()).unwrap();
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let token = jwt::sign(&rust, alg, &claims(), None).await.unwrap();
        assert!(jwt::verify(&web, &token, NOW, 0).await.is_ok(), "{alg:?}");
    }
    // RSASSA-PKCS1-v1_5 is deterministic: both implementations produce the same token.
    let a = jwt::sign(&rust, SigningAlg::RS256, &claims(), None).await.unwrap();
    let b = jwt::sign(&web, SigningAlg::RS256, &claims(), None).await.unwrap();
    assert_eq!(a, b);
}

#[wasm_bindgen_test]
async fn es256_signature_is_raw_r_s_64_bytes() {
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let (kid, sig) = web.sign(SigningAlg::ES256, b"input").await.unwrap();
    assert_eq!(kid, EC_B_KID);
    assert_eq!(sig.len(), 64);
    let (_, sig) = web.sign(SigningAlg::RS256, b"input").await.unwrap();
    assert_eq!(sig.len(), 256);
}

#[wasm_bindgen_test]
async fn tampered_and_expired_tokens_are_refused_by_webcrypto() {
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let token = jwt::sign(&web, alg, &claims(), None).await.unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil["sub"] = "usr_admin".into();
        let tampered = format!("{}.{}.{}", parts[0], part(&evil), parts[2]);
        assert_eq!(
            jwt::verify(&web, &tampered, NOW, 0).await.unwrap_err(),
            JwtError::BadSignature
        );
        assert_eq!(
            jwt::verify(&web, &token, NOW + 300, 0).await.unwrap_err(),
            JwtError::Expired
        );
    }
}

#[wasm_bindgen_test]
async fn hs256_alg_confusion_token_is_refused() {
    let web = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let rsa = &web.public_keys()[0];
    let jwk_json = serde_json::to_vec(&Value::Object(rsa.jwk.clone())).unwrap();
    for secret in [RSA_A_PUBLIC_PEM.as_bytes(), jwk_json.as_slice()] {
        let input = format!(
            "{}.{}",
            part(&json!({"alg": "HS256", "kid": rsa.kid, "typ": "JWT"})),
            part(&claims())
        );
        let token = format!("{input}.{}", b64url(&hmac_sha256(secret, input.as_bytes())));
        assert_eq!(
            jwt::verify(&web, &token, NOW, 0).await.unwrap_err(),
            JwtError::BadSignature
        );
    }
    let none = format!("{}.{}.", part(&json!({"alg": "none", "kid": rsa.kid})), part(&claims()));
    assert_eq!(
        jwt::verify(&web, &none, NOW, 0).await.unwrap_err(),
        JwtError::BadSignature
    );
}

#[wasm_bindgen_test]
async fn rotated_secret_retired_key_verifies_but_never_signs() {
    let before = WebCryptoSigner::from_secret(&test_secret()).await.unwrap();
    let after = WebCryptoSigner::from_secret(&test_secret_rotated()).await.unwrap();
    let old = jwt::sign(&before, SigningAlg::RS256, &claims(), None).await.unwrap();
    assert_eq!(header_kid(&old), RSA_A_KID);
    assert!(jwt::verify(&after, &old, NOW, 0).await.is_ok());
    let new = jwt::sign(&after, SigningAlg::RS256, &claims(), None).await.unwrap();
    assert_eq!(header_kid(&new), RSA_B_KID);
    let rust = RustCryptoSigner::from_secret(&test_secret_rotated()).unwrap();
    assert!(jwt::verify(&rust, &new, NOW, 0).await.is_ok());
}

#[wasm_bindgen_test]
async fn cached_signer_is_reused_until_the_secret_changes() {
    let a = WebCryptoSigner::cached(&test_secret()).await.unwrap();
    let b = WebCryptoSigner::cached(&test_secret()).await.unwrap();
    assert!(Rc::ptr_eq(&a, &b));
    let c = WebCryptoSigner::cached(&test_secret_rotated()).await.unwrap();
    assert!(!Rc::ptr_eq(&a, &c));
    assert_eq!(c.public_keys()[0].kid, RSA_B_KID);
    let d = WebCryptoSigner::cached(&test_secret_rotated()).await.unwrap();
    assert!(Rc::ptr_eq(&c, &d));
}

#[wasm_bindgen_test]
async fn bad_secret_is_an_error_naming_the_setting() {
    let e = WebCryptoSigner::from_secret("not a key").await.err().unwrap();
    assert!(e.0.contains("GATEHOUSE_PRIVATE_KEY"), "{e}");
}
