//! The verifier against what real authenticators produced: registrations and assertions of two
//! YubiKeys at demo.yubico.com, published as test data ("RealExamples") by Yubico's
//! java-webauthn-server. Unlike the software authenticator of the other tests, nothing here was
//! made by this code base: CBOR and COSE encodings, DER signatures, flags and counters are the
//! devices' own, and the client data is the browser's (with the extra key browsers add to keep
//! relying parties from comparing it against a template). Their challenges are 32 bytes; the
//! examples with shorter ones (`"challenge"`) are below the 16-byte floor Gatehouse keeps.

use futures::executor::block_on;
use gatehouse_core::crypto::b64url_decode;
use gatehouse_core::factors::webauthn::key::ACCEPTED_ALGS;
use gatehouse_core::factors::webauthn::{
    verify_assertion, verify_registration, Assertion, Ceremony, Identified, Refusal, Registration, StoredCredential,
    UserVerification,
};
use gatehouse_core::testing::webauthn::RustCryptoVerifier;

const RP_ID: &str = "demo.yubico.com";
const ORIGIN: &str = "https://demo.yubico.com";

struct Example {
    user_handle: &'static str,
    create_client_data: &'static str,
    attestation_object: &'static str,
    credential_id: &'static str,
    get_client_data: &'static str,
    authenticator_data: &'static str,
    signature: &'static str,
    attestation_format: &'static str,
}

/// A YubiKey 5 NFC: a `packed` attestation with a certificate (accepted, not verified:
/// Gatehouse trusts no attestation root), counters 57 then 58.
const YUBIKEY_5_NFC: Example = Example {
    user_handle: "FBUasomeAb_g7CUQf_Ub6PtpXNJ8843IOgsnE50JLP0",
    create_client_data: r#"{"type":"webauthn.create","challenge":"0b-5-z3_EvP6pqaBj6Fu7A4M5SdefgZ_jcAoFa6_miU","origin":"https://demo.yubico.com","crossOrigin":false}"#,
    attestation_object: "o2NmbXRmcGFja2VkZ2F0dFN0bXSjY2FsZyZjc2lnWEcwRQIgZUEF7FMB8dEzallsJvUFVhHRU8xdWDkDwQQI-ZU8XRMCIQCqzI3-lWRlSEBLGk2XVqkp72q2QzbhdOzZyWOrke4jsmN4NWOBWQLAMIICvDCCAaSgAwIBAgIEA63wEjANBgkqhkiG9w0BAQsFADAuMSwwKgYDVQQDEyNZdWJpY28gVTJGIFJvb3QgQ0EgU2VyaWFsIDQ1NzIwMDYzMTAgFw0xNDA4MDEwMDAwMDBaGA8yMDUwMDkwNDAwMDAwMFowbTELMAkGA1UEBhMCU0UxEjAQBgNVBAoMCVl1YmljbyBBQjEiMCAGA1UECwwZQXV0aGVudGljYXRvciBBdHRlc3RhdGlvbjEmMCQGA1UEAwwdWXViaWNvIFUyRiBFRSBTZXJpYWwgNjE3MzA4MzQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQZnoecFi233DnuSkKgRhalswn-ygkvdr4JSPltbpXK5MxlzVSgWc-9x8mzGysdbBhEecLAYfQYqpVLWWosHPoXo2wwajAiBgkrBgEEAYLECgIEFTEuMy42LjEuNC4xLjQxNDgyLjEuNzATBgsrBgEEAYLlHAIBAQQEAwIEMDAhBgsrBgEEAYLlHAEBBAQSBBD6K5ncnjlCV4-SSjDSPEEYMAwGA1UdEwEB_wQCMAAwDQYJKoZIhvcNAQELBQADggEBACjrs2f-0djw4onryp_22AdXxg6a5XyxcoybHDjKu72E2SN9qDGsIZSfDy38DDFr_bF1s25joiu7WA6tylKA0HmEDloeJXJiWjv7h2Az2_siqWnJOLic4XE1lAChJS2XAqkSk9VFGelg3SLOiifrBet-ebdQwAL-2QFrcR7JrXRQG9kUy76O2VcSgbdPROsHfOYeywarhalyVSZ-6OOYK_Q_DLIaOC0jXrnkzm2ymMQFQlBAIysrYeEM1wxiFbwDt-lAcbcOEtHEf5ZlWi75nUzlWn8bSx_5FO4TbZ5hIEcUiGRpiIBEMRZlOIm4ZIbZycn_vJOFRTVps0V0S4ygtDdoYXV0aERhdGFYxMRs74KtG1Rkd1kdAIsIdZ7D5tLstPOUdL_qaWmSXQO3QQAAADn6K5ncnjlCV4-SSjDSPEEYAECSDhJoaRjVyhU9DO24CFhDHIm8rwh5dHFRVONEpTj2eXiqpzRs5xNoNlEq5cotavl1nTbQ6DhXaOYm_ulT16RMpQECAyYgASFYIJbLqy9JV7ETZUEdPtNzlfl6fBTDZNgioYpDIxIVhRGOIlggS8YE-ZzHh63D4jN3vShnN3F7heKxyJuAApMeRvTJuc8",
    credential_id: "kg4SaGkY1coVPQztuAhYQxyJvK8IeXRxUVTjRKU49nl4qqc0bOcTaDZRKuXKLWr5dZ020Og4V2jmJv7pU9ekTA",
    get_client_data: r#"{"type":"webauthn.get","challenge":"AK6EVGBeT_DvQQk3hoUCocO8k3WVvnQnwL5Kd2oFWzM","origin":"https://demo.yubico.com","crossOrigin":false,"extra_keys_may_be_added_here":"do not compare clientDataJSON against a template. See https://goo.gl/yabPex"}"#,
    authenticator_data: "xGzvgq0bVGR3WR0Aiwh1nsPm0uy085R0v-ppaZJdA7cBAAAAOg",
    signature: "MEUCIDkZa6d7HwRxGCZdAldFuTo4qUZvaV8j7IYGjO74liKcAiEAj_PLArWm-VylAUsKgWoj50NQSpnn_qhZEgasgfWmG1Y",
    attestation_format: "packed",
};

/// A YubiKey 5 NFC (firmware after the 5C NFC): a `fido-u2f` attestation, counters 0 then 3,
/// and older client data (`hashAlgorithm`, `clientExtensions`, keys in another order).
const YUBIKEY_5_NFC_U2F: Example = Example {
    user_handle: "a9n4HpAeWRGIKzLWEkgia_yeBm_VGLgNj5uND9wyuOg",
    create_client_data: r#"{"challenge":"q17naevQpc84vHK9Ge6hwCXnLt3LmlFqwVJ-YETQHwk","clientExtensions":{},"hashAlgorithm":"SHA-256","origin":"https://demo.yubico.com","type":"webauthn.create"}"#,
    attestation_object: "o2NmbXRoZmlkby11MmZnYXR0U3RtdKJjc2lnWEcwRQIhALT8jIrN8OmV77OopLGKHXLupu_2yEHVEk9eaMmVlqGPAiBfgBugvPNvhED79Dbom5yBUxh47IqHZlIyiZGujZMb-GN4NWOBWQLBMIICvTCCAaWgAwIBAgIEHo-HNDANBgkqhkiG9w0BAQsFADAuMSwwKgYDVQQDEyNZdWJpY28gVTJGIFJvb3QgQ0EgU2VyaWFsIDQ1NzIwMDYzMTAgFw0xNDA4MDEwMDAwMDBaGA8yMDUwMDkwNDAwMDAwMFowbjELMAkGA1UEBhMCU0UxEjAQBgNVBAoMCVl1YmljbyBBQjEiMCAGA1UECwwZQXV0aGVudGljYXRvciBBdHRlc3RhdGlvbjEnMCUGA1UEAwweWXViaWNvIFUyRiBFRSBTZXJpYWwgNTEyNzIyNzQwMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqHn4IzjtFJS6wHBLzH_GY9GycXFZdiQxAcdgURXXwVKeKBwcZzItOEtc1V3T6YGNX9hcIq8ybgxk_CCv4z8jZqNsMGowIgYJKwYBBAGCxAoCBBUxLjMuNi4xLjQuMS40MTQ4Mi4xLjcwEwYLKwYBBAGC5RwCAQEEBAMCBDAwIQYLKwYBBAGC5RwBAQQEEgQQL8BXn4ETR-qxFrtajbkgKjAMBgNVHRMBAf8EAjAAMA0GCSqGSIb3DQEBCwUAA4IBAQCGk_9i3w1XedR0jX_I0QInMYqOWA5qOlfBCOlOA8OFaLNmiU_OViS-Sj79fzQRiz2ZN0P3kqGYkWDI_JrgsE49-e4V4-iMBPyCqNy_WBjhCNzCloV3rnn_ZiuUc0497EWXMF1z5uVe4r65zZZ4ygk15TPrY4-OJvq7gXzaRB--mDGDKuX24q2ZL56720xiI4uPjXq0gdbTJjvNv55KV1UDcJiK1YE0QPoDLK22cjyt2PjXuoCfdbQ8_6Clua3RQjLvnZ4UgSY4IzxMpKhzufismOMroZFnYG4VkJ_N20ot_72uRiAkn5pmRqyB5IMtERn-v6pzGogtolp3gn1G0ZAXaGF1dGhEYXRhWMTEbO-CrRtUZHdZHQCLCHWew-bS7LTzlHS_6mlpkl0Dt0EAAAAAAAAAAAAAAAAAAAAAAAAAAABAYiZiFWXtspQv_5_ZmKPIsSIV6yqQb1evWuRAfdipNhRgUWo2lUefvU8q7y6MtbjgYhoVA-5pGTIZv-r7oNi1YKUBAgMmIAEhWCDMHeuArInpowl_rB8S9AFGO-G_VmhM-0tM2ggV1SB7NSJYIPvfLUW8-Aoiqd4eQF649w1u274AFkg7fAvXya_G6dP9",
    credential_id: "YiZiFWXtspQv_5_ZmKPIsSIV6yqQb1evWuRAfdipNhRgUWo2lUefvU8q7y6MtbjgYhoVA-5pGTIZv-r7oNi1YA",
    get_client_data: r#"{"challenge":"YM-QmlCkDwETwz4XOfqgZTv6pG8NMFtIRkoNaDaY5jw","clientExtensions":{},"hashAlgorithm":"SHA-256","origin":"https://demo.yubico.com","type":"webauthn.get"}"#,
    authenticator_data: "xGzvgq0bVGR3WR0Aiwh1nsPm0uy085R0v-ppaZJdA7cBAAAAAw",
    signature: "MEYCIQCaLSBboXlSI5uff61mlXG_S9OXRRT5kx-0KuHBu8Fm0QIhAIeNMEJkH1wzaKi2NZy5u8aJm4lOj9vsFdSkNiMhcVjw",
    attestation_format: "fido-u2f",
};

fn bytes(b64u: &str) -> Vec<u8> {
    b64url_decode(b64u.trim_end_matches('=')).expect("base64url")
}

fn challenge_of(client_data: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(client_data).unwrap();
    bytes(v["challenge"].as_str().unwrap())
}

/// Registers the example's credential, then checks its assertion against it.
fn run(e: &Example, uv: UserVerification, origin: &str) -> Result<u32, Refusal> {
    let create_challenge = challenge_of(e.create_client_data);
    let registered = block_on(verify_registration(
        &RustCryptoVerifier,
        &Ceremony {
            challenge: &create_challenge,
            origin: ORIGIN,
            rp_id: RP_ID,
            user_verification: uv,
        },
        &ACCEPTED_ALGS,
        &Registration {
            client_data_json: e.create_client_data.as_bytes(),
            attestation_object: &bytes(e.attestation_object),
        },
    ))
    .expect("no internal error")?;
    assert_eq!(registered.id, bytes(e.credential_id));
    assert_eq!(registered.alg, -7);
    assert_eq!(registered.attestation_format, e.attestation_format);
    let get_challenge = challenge_of(e.get_client_data);
    let handle = bytes(e.user_handle);
    let asserted = block_on(verify_assertion(
        &RustCryptoVerifier,
        &Ceremony {
            challenge: &get_challenge,
            origin,
            rp_id: RP_ID,
            user_verification: uv,
        },
        &StoredCredential {
            public_key: &registered.public_key,
            sign_count: registered.sign_count,
            backup_eligible: registered.backup_eligible,
            user_handle: &handle,
        },
        &Assertion {
            client_data_json: e.get_client_data.as_bytes(),
            authenticator_data: &bytes(e.authenticator_data),
            signature: &bytes(e.signature),
            user_handle: None,
        },
        Identified::User(&handle),
    ))
    .expect("no internal error")?;
    Ok(asserted.sign_count)
}

#[test]
fn real_yubikey_registrations_and_assertions_verify() {
    assert_eq!(run(&YUBIKEY_5_NFC, UserVerification::Preferred, ORIGIN), Ok(58));
    assert_eq!(run(&YUBIKEY_5_NFC_U2F, UserVerification::Preferred, ORIGIN), Ok(3));
}

#[test]
fn a_real_security_key_that_verified_no_user_is_no_passwordless_sign_in() {
    // Touched, no PIN: the flags say so, and a ceremony that requires verification refuses.
    assert_eq!(
        run(&YUBIKEY_5_NFC, UserVerification::Required, ORIGIN),
        Err(Refusal::UserNotVerified)
    );
}

#[test]
fn a_real_assertion_relayed_to_another_origin_or_altered_is_refused() {
    assert_eq!(
        run(
            &YUBIKEY_5_NFC,
            UserVerification::Preferred,
            "https://demo.yubico.com.evil.test"
        ),
        Err(Refusal::WrongOrigin)
    );
    // One bit of the signature flipped.
    let mut sig = bytes(YUBIKEY_5_NFC_U2F.signature);
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let tampered = gatehouse_core::crypto::b64url(&sig);
    let leaked: &'static str = Box::leak(tampered.into_boxed_str());
    let altered = Example {
        signature: leaked,
        ..YUBIKEY_5_NFC_U2F
    };
    assert_eq!(
        run(&altered, UserVerification::Preferred, ORIGIN),
        Err(Refusal::BadSignature)
    );
}
