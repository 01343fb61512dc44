//! WebAuthn ceremonies as wasm in headless Chromium: the core's verification with the Worker's
//! WebCrypto verifier, against real signatures from the software authenticator (P-256, Ed25519,
//! RSA), each compared with the RustCrypto reference verifier.
//!
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown
//! --features wasm-tests --test wasm_webauthn`.

#![cfg(target_arch = "wasm32")]

use gatehouse::webauthn::WebCryptoVerifier;
use gatehouse_core::factors::webauthn::key::ACCEPTED_ALGS;
use gatehouse_core::factors::webauthn::{
    verify_assertion, verify_registration, Assertion, Ceremony, CredentialKey, Identified, Refusal, Registration,
    StoredCredential, UserVerification,
};
use gatehouse_core::ports::SignatureVerifier;
use gatehouse_core::testing::webauthn::{client_data, RustCryptoVerifier, SoftAuthenticator, SoftKey};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const RP_ID: &str = "id.example.com";
const ORIGIN: &str = "https://id.example.com";
const CHALLENGE: [u8; 32] = [0x42; 32];
const HANDLE: &[u8] = b"user-handle";

fn ceremony() -> Ceremony<'static> {
    Ceremony {
        challenge: &CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
        user_verification: UserVerification::Required,
    }
}

#[wasm_bindgen_test]
async fn each_key_type_registers_and_signs_in_with_webcrypto() {
    for key in [SoftKey::p256(1), SoftKey::ed25519(1), SoftKey::rsa()] {
        let alg = key.alg();
        let auth = SoftAuthenticator::new(key, b"credential");
        let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
        // A packed self attestation makes registration check a signature too.
        let att = auth.attestation_packed_self(RP_ID, &cd);
        let registration = Registration {
            client_data_json: &cd,
            attestation_object: &att,
        };
        let new = verify_registration(&WebCryptoVerifier, &ceremony(), &ACCEPTED_ALGS, &registration)
            .await
            .expect("no internal error")
            .expect("registration passes");
        assert_eq!(new.alg, alg);
        let stored = StoredCredential {
            public_key: &new.public_key,
            sign_count: new.sign_count,
            backup_eligible: new.backup_eligible,
            user_handle: HANDLE,
        };
        let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
        let (ad, sig) = auth.assert(RP_ID, &cd);
        let assertion = Assertion {
            client_data_json: &cd,
            authenticator_data: &ad,
            signature: &sig,
            user_handle: Some(HANDLE),
        };
        let asserted = verify_assertion(&WebCryptoVerifier, &ceremony(), &stored, &assertion, Identified::Nobody)
            .await
            .expect("no internal error");
        assert_eq!(asserted.map(|a| a.sign_count), Ok(2), "alg {alg}");
        // A flipped bit in the signature: refused.
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let assertion = Assertion {
            signature: &bad,
            ..assertion
        };
        let refused = verify_assertion(&WebCryptoVerifier, &ceremony(), &stored, &assertion, Identified::Nobody)
            .await
            .expect("no internal error");
        assert_eq!(refused, Err(Refusal::BadSignature), "alg {alg}");
    }
}

#[wasm_bindgen_test]
async fn webcrypto_and_rustcrypto_agree_on_every_signature() {
    let message = b"authenticator data || client data hash";
    for key in [SoftKey::p256(2), SoftKey::ed25519(2), SoftKey::rsa()] {
        let public = CredentialKey::from_cose(&key.cose()).expect("the key reads");
        let der = key.sign(message);
        let sig = match public {
            CredentialKey::Es256 { .. } => gatehouse_core::factors::webauthn::key::ecdsa_der_to_raw(&der)
                .expect("DER")
                .to_vec(),
            _ => der,
        };
        let short = &sig[..sig.len() - 1];
        let mut long = sig.clone();
        long.push(0);
        for (msg, sig, expected) in [
            (&message[..], &sig[..], true),
            (&b"another message"[..], &sig[..], false),
            (&message[..], short, false),
            (&message[..], &long[..], false),
        ] {
            let web = WebCryptoVerifier
                .verify(&public, msg, sig)
                .await
                .expect("WebCrypto answers");
            let rust = RustCryptoVerifier
                .verify(&public, msg, sig)
                .await
                .expect("RustCrypto answers");
            assert_eq!((web, rust), (expected, expected), "{public:?}, {} bytes", sig.len());
        }
    }
}

#[wasm_bindgen_test]
async fn a_key_webcrypto_cannot_import_verifies_nothing_rather_than_failing() {
    // Not a point on P-256.
    let off_curve = CredentialKey::Es256 { x: [1; 32], y: [2; 32] };
    assert_eq!(WebCryptoVerifier.verify(&off_curve, b"m", &[0; 64]).await, Ok(false));
}
