//! WebAuthn ceremonies (Level 3, §7.1 and §7.2) with a software authenticator: a registration
//! and an assertion for each key type, then one test per attack, named after what it stops.

use futures::executor::block_on;
use gatehouse_core::factors::webauthn::authenticator_data::{BE, BS, UV};
use gatehouse_core::factors::webauthn::key::ACCEPTED_ALGS;
use gatehouse_core::factors::webauthn::{
    verify_assertion, verify_registration, Asserted, Assertion, Ceremony, Identified, NewCredential, Refusal,
    Registration, StoredCredential, UserVerification,
};
use gatehouse_core::testing::webauthn::{
    attestation_object, client_data, RustCryptoVerifier, SoftAuthenticator, SoftKey,
};

const RP_ID: &str = "id.example.com";
const ORIGIN: &str = "https://id.example.com";
const CHALLENGE: [u8; 32] = [0x5a; 32];
const HANDLE: &[u8] = b"opaque-user-handle-0123456789abcdef";

fn ceremony(uv: UserVerification) -> Ceremony<'static> {
    Ceremony {
        challenge: &CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
        user_verification: uv,
    }
}

fn register_with(
    auth: &SoftAuthenticator,
    c: &Ceremony<'_>,
    client_data_json: &[u8],
    attestation: &[u8],
) -> Result<NewCredential, Refusal> {
    block_on(verify_registration(
        &RustCryptoVerifier,
        c,
        &ACCEPTED_ALGS,
        &Registration {
            client_data_json,
            attestation_object: attestation,
        },
    ))
    .expect("no internal error")
    .inspect(|n| assert_eq!(n.id, auth.credential_id))
}

/// A passkey registration (user verification required, `none` attestation) with this client data.
fn register_for(auth: &SoftAuthenticator, client_data_json: &[u8]) -> Result<NewCredential, Refusal> {
    register_with(
        auth,
        &ceremony(UserVerification::Required),
        client_data_json,
        &auth.attestation_none(RP_ID),
    )
}

fn register(auth: &SoftAuthenticator) -> Result<NewCredential, Refusal> {
    register_for(auth, &client_data("webauthn.create", &CHALLENGE, ORIGIN))
}

struct Held {
    credential: NewCredential,
}

impl Held {
    fn stored(&self) -> StoredCredential<'_> {
        StoredCredential {
            public_key: &self.credential.public_key,
            sign_count: self.credential.sign_count,
            backup_eligible: self.credential.backup_eligible,
            user_handle: HANDLE,
        }
    }
}

fn assertion_of(auth: &SoftAuthenticator, client_data_json: &[u8]) -> (Vec<u8>, Vec<u8>) {
    auth.assert(RP_ID, client_data_json)
}

fn check(
    held: &Held,
    c: &Ceremony<'_>,
    client_data_json: &[u8],
    auth_data: &[u8],
    signature: &[u8],
    user_handle: Option<&[u8]>,
    identified: Identified<'_>,
) -> Result<Asserted, Refusal> {
    block_on(verify_assertion(
        &RustCryptoVerifier,
        c,
        &held.stored(),
        &Assertion {
            client_data_json,
            authenticator_data: auth_data,
            signature,
            user_handle,
        },
        identified,
    ))
    .expect("no internal error")
}

/// A usernameless sign-in (user verification required) with the owner's handle returned.
fn usernameless(held: &Held, client_data_json: &[u8], auth_data: &[u8], signature: &[u8]) -> Result<Asserted, Refusal> {
    check(
        held,
        &ceremony(UserVerification::Required),
        client_data_json,
        auth_data,
        signature,
        Some(HANDLE),
        Identified::Nobody,
    )
}

/// A full assertion with the authenticator's current state.
fn sign_in(auth: &SoftAuthenticator, held: &Held, uv: UserVerification) -> Result<Asserted, Refusal> {
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(auth, &cd);
    check(held, &ceremony(uv), &cd, &ad, &sig, Some(HANDLE), Identified::Nobody)
}

fn held(auth: &SoftAuthenticator) -> Held {
    Held {
        credential: register(auth).expect("registration passes"),
    }
}

#[test]
fn each_key_type_registers_and_signs_in() {
    for (name, key) in [
        ("ES256", SoftKey::p256(1)),
        ("EdDSA", SoftKey::ed25519(1)),
        ("RS256", SoftKey::rsa()),
    ] {
        let alg = key.alg();
        let auth = SoftAuthenticator::new(key, b"credential-1");
        let h = held(&auth);
        assert_eq!(h.credential.alg, alg, "{name}");
        assert_eq!(h.credential.attestation_format, "none");
        assert_eq!(h.credential.sign_count, 1);
        assert!(h.credential.user_verified && h.credential.backup_eligible && h.credential.backed_up);
        assert_eq!(
            sign_in(&auth, &h, UserVerification::Required),
            Ok(Asserted {
                sign_count: 2,
                user_verified: true,
                backed_up: true
            }),
            "{name}"
        );
    }
}

#[test]
fn a_packed_self_attestation_is_verified_with_the_credentials_own_key() {
    for key in [SoftKey::p256(2), SoftKey::ed25519(2)] {
        let auth = SoftAuthenticator::new(key, b"credential-2");
        let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
        let att = auth.attestation_packed_self(RP_ID, &cd);
        let c = ceremony(UserVerification::Required);
        assert_eq!(
            register_with(&auth, &c, &cd, &att).unwrap().attestation_format,
            "packed"
        );
        // Signed over other client data: refused.
        let other = client_data("webauthn.create", &CHALLENGE, ORIGIN);
        let mut tampered = other.clone();
        tampered.extend(b" ");
        let att = auth.attestation_packed_self(RP_ID, &other);
        assert_eq!(register_with(&auth, &c, &tampered, &att), Err(Refusal::BadAttestation));
    }
}

#[test]
fn a_self_attestation_naming_another_algorithm_than_the_key_is_refused() {
    let auth = SoftAuthenticator::new(SoftKey::p256(3), b"credential-3");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let auth_data = auth.authenticator_data(RP_ID, true);
    let mut signed = auth_data.clone();
    signed.extend(gatehouse_core::crypto::sha256(&cd));
    let statement = vec![
        (ciborium::Value::from("alg"), ciborium::Value::from(-8)),
        (
            ciborium::Value::from("sig"),
            ciborium::Value::Bytes(auth.key.sign(&signed)),
        ),
    ];
    let att = attestation_object("packed", statement, auth_data);
    assert_eq!(
        register_with(&auth, &ceremony(UserVerification::Required), &cd, &att),
        Err(Refusal::BadAttestation)
    );
}

#[test]
fn attestation_formats_gatehouse_does_not_verify_are_accepted_as_none_and_unknown_ones_are_not() {
    let auth = SoftAuthenticator::new(SoftKey::p256(4), b"credential-4");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let c = ceremony(UserVerification::Required);
    let x5c = vec![(
        ciborium::Value::from("x5c"),
        ciborium::Value::Array(vec![ciborium::Value::Bytes(vec![0x30, 0])]),
    )];
    for fmt in ["packed", "tpm", "fido-u2f", "apple", "android-key"] {
        let att = attestation_object(fmt, x5c.clone(), auth.authenticator_data(RP_ID, true));
        assert_eq!(
            register_with(&auth, &c, &cd, &att).map(|n| n.attestation_format),
            Ok(fmt.to_owned())
        );
    }
    let att = attestation_object("made-up", vec![], auth.authenticator_data(RP_ID, true));
    assert_eq!(
        register_with(&auth, &c, &cd, &att),
        Err(Refusal::UnsupportedAttestation)
    );
    // `none` carries an empty statement.
    let att = attestation_object("none", x5c, auth.authenticator_data(RP_ID, true));
    assert_eq!(register_with(&auth, &c, &cd, &att), Err(Refusal::Malformed));
}

// ---------------------------------------------------------------------------------------------
// Registration attacks

#[test]
fn wrong_origin_stops_a_phishing_site_relaying_a_registration() {
    let auth = SoftAuthenticator::new(SoftKey::p256(5), b"c5");
    let cd = client_data("webauthn.create", &CHALLENGE, "https://id.example.com.evil.test");
    let r = register_for(&auth, &cd);
    assert_eq!(r, Err(Refusal::WrongOrigin));
}

#[test]
fn wrong_rp_id_hash_stops_a_credential_scoped_to_another_site() {
    let auth = SoftAuthenticator::new(SoftKey::p256(6), b"c6");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let r = register_with(
        &auth,
        &ceremony(UserVerification::Required),
        &cd,
        &auth.attestation_none("example.com"),
    );
    assert_eq!(r, Err(Refusal::WrongRpId));
}

#[test]
fn a_replayed_or_other_flows_challenge_stops_a_registration() {
    let auth = SoftAuthenticator::new(SoftKey::p256(7), b"c7");
    let cd = client_data("webauthn.create", &[0x11; 32], ORIGIN);
    let r = register_for(&auth, &cd);
    assert_eq!(r, Err(Refusal::WrongChallenge));
}

#[test]
fn an_assertions_client_data_is_no_registration() {
    let auth = SoftAuthenticator::new(SoftKey::p256(8), b"c8");
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let r = register_for(&auth, &cd);
    assert_eq!(r, Err(Refusal::WrongCeremony));
}

#[test]
fn user_verification_missing_stops_a_passkey_registration_and_presence_is_always_needed() {
    let auth = SoftAuthenticator::new(SoftKey::p256(9), b"c9");
    auth.flags.set(0);
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let r = register_for(&auth, &cd);
    assert_eq!(r, Err(Refusal::UserNotVerified));
    let n = register_with(
        &auth,
        &ceremony(UserVerification::Preferred),
        &cd,
        &auth.attestation_none(RP_ID),
    )
    .unwrap();
    assert!(!n.user_verified && !n.backup_eligible && !n.backed_up);
    // Without user presence (UP cleared in the data): refused whatever was asked.
    let mut att_data = auth.authenticator_data(RP_ID, true);
    att_data[32] &= !0x01;
    let att = attestation_object("none", vec![], att_data);
    let r = register_with(&auth, &ceremony(UserVerification::Preferred), &cd, &att);
    assert_eq!(r, Err(Refusal::UserNotPresent));
}

#[test]
fn backed_up_without_backup_eligible_is_inconsistent() {
    let auth = SoftAuthenticator::new(SoftKey::p256(10), b"c10");
    auth.flags.set(UV | BS);
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let r = register_for(&auth, &cd);
    assert_eq!(r, Err(Refusal::InconsistentBackupFlags));
}

#[test]
fn an_algorithm_not_offered_is_refused() {
    let auth = SoftAuthenticator::new(SoftKey::ed25519(11), b"c11");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let r = block_on(verify_registration(
        &RustCryptoVerifier,
        &ceremony(UserVerification::Required),
        &[-7],
        &Registration {
            client_data_json: &cd,
            attestation_object: &auth.attestation_none(RP_ID),
        },
    ))
    .unwrap();
    assert_eq!(r, Err(Refusal::UnsupportedKey));
}

#[test]
fn a_registration_without_credential_data_or_over_its_bounds_is_malformed() {
    let auth = SoftAuthenticator::new(SoftKey::p256(12), b"c12");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let c = ceremony(UserVerification::Required);
    let att = attestation_object("none", vec![], auth.authenticator_data(RP_ID, false));
    assert_eq!(register_with(&auth, &c, &cd, &att), Err(Refusal::Malformed));
    assert_eq!(register_with(&auth, &c, &cd, b"\xa0"), Err(Refusal::Malformed));
    let mut trailing = auth.attestation_none(RP_ID);
    trailing.push(0);
    assert_eq!(register_with(&auth, &c, &cd, &trailing), Err(Refusal::Malformed));
    let huge = vec![0u8; gatehouse_core::factors::webauthn::MAX_ATTESTATION_OBJECT + 1];
    assert_eq!(register_with(&auth, &c, &cd, &huge), Err(Refusal::Malformed));
    let mut long_cd = cd.clone();
    long_cd.resize(gatehouse_core::factors::webauthn::MAX_CLIENT_DATA + 1, b' ');
    assert_eq!(
        register_with(&auth, &c, &long_cd, &auth.attestation_none(RP_ID)),
        Err(Refusal::Malformed)
    );
}

// ---------------------------------------------------------------------------------------------
// Assertion attacks

#[test]
fn wrong_origin_stops_a_phishing_site_relaying_a_sign_in() {
    let auth = SoftAuthenticator::new(SoftKey::p256(20), b"c20");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, "https://evil.test");
    let (ad, sig) = assertion_of(&auth, &cd);
    let r = usernameless(&h, &cd, &ad, &sig);
    assert_eq!(r, Err(Refusal::WrongOrigin));
}

#[test]
fn wrong_rp_id_hash_stops_an_assertion_for_another_site() {
    let auth = SoftAuthenticator::new(SoftKey::p256(21), b"c21");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = auth.assert("example.com", &cd);
    let r = usernameless(&h, &cd, &ad, &sig);
    assert_eq!(r, Err(Refusal::WrongRpId));
}

#[test]
fn a_replayed_expired_or_other_flows_challenge_stops_an_assertion() {
    let auth = SoftAuthenticator::new(SoftKey::p256(22), b"c22");
    let h = held(&auth);
    // Signed for another challenge (an earlier ceremony, or another flow's): the one issued now
    // does not match. (Expiry and single use are the stage's: it forgets the challenge.)
    let cd = client_data("webauthn.get", &[0x33; 32], ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    let r = usernameless(&h, &cd, &ad, &sig);
    assert_eq!(r, Err(Refusal::WrongChallenge));
}

#[test]
fn a_registrations_client_data_is_no_assertion() {
    let auth = SoftAuthenticator::new(SoftKey::p256(23), b"c23");
    let h = held(&auth);
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    let r = usernameless(&h, &cd, &ad, &sig);
    assert_eq!(r, Err(Refusal::WrongCeremony));
}

#[test]
fn uv_flag_missing_stops_a_passwordless_sign_in_but_not_a_second_factor() {
    let auth = SoftAuthenticator::new(SoftKey::p256(24), b"c24");
    let h = held(&auth);
    auth.flags.set(BE | BS);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::UserNotVerified)
    );
    let a = sign_in(&auth, &h, UserVerification::Preferred).unwrap();
    assert!(!a.user_verified);
}

#[test]
fn a_credential_of_another_user_is_refused_by_its_user_handle() {
    let auth = SoftAuthenticator::new(SoftKey::p256(25), b"c25");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    let c = ceremony(UserVerification::Required);
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, Some(b"someone-else"), Identified::User(HANDLE)),
        Err(Refusal::WrongUser)
    );
    // Usernameless sign-in needs the handle; a second factor (user known) does not.
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, None, Identified::Nobody),
        Err(Refusal::WrongUser)
    );
    assert!(check(&h, &c, &cd, &ad, &sig, None, Identified::User(HANDLE)).is_ok());
}

#[test]
fn a_tampered_client_data_json_breaks_the_signature() {
    let auth = SoftAuthenticator::new(SoftKey::ed25519(26), b"c26");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    // Same members, one more space: still valid JSON for this ceremony, another hash.
    let tampered = String::from_utf8(cd.clone())
        .unwrap()
        .replacen(',', ", ", 1)
        .into_bytes();
    let r = usernameless(&h, &tampered, &ad, &sig);
    assert_eq!(r, Err(Refusal::BadSignature));
}

#[test]
fn a_tampered_authenticator_data_or_signature_breaks_the_signature() {
    for key in [SoftKey::p256(27), SoftKey::ed25519(27), SoftKey::rsa()] {
        let auth = SoftAuthenticator::new(key, b"c27");
        let h = held(&auth);
        let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
        let c = ceremony(UserVerification::Required);
        let (mut ad, sig) = assertion_of(&auth, &cd);
        ad[36] ^= 1; // the counter's last byte
        assert_eq!(
            check(&h, &c, &cd, &ad, &sig, Some(HANDLE), Identified::Nobody),
            Err(Refusal::BadSignature)
        );
        let (ad, mut sig) = assertion_of(&auth, &cd);
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert_eq!(
            check(&h, &c, &cd, &ad, &sig, Some(HANDLE), Identified::Nobody),
            Err(Refusal::BadSignature)
        );
        let (ad, sig) = assertion_of(&auth, &cd);
        assert_eq!(
            check(
                &h,
                &c,
                &cd,
                &ad,
                &sig[..sig.len() - 1],
                Some(HANDLE),
                Identified::Nobody
            ),
            Err(Refusal::BadSignature),
            "a short signature"
        );
        assert!(check(&h, &c, &cd, &ad, &sig, Some(HANDLE), Identified::Nobody).is_ok());
    }
}

#[test]
fn an_unknown_key_signing_for_a_known_credential_id_is_refused() {
    let owner = SoftAuthenticator::new(SoftKey::p256(28), b"c28");
    let h = held(&owner);
    let thief = SoftAuthenticator::new(SoftKey::p256(29), b"c28");
    thief.counter.set(10);
    assert_eq!(
        sign_in(&thief, &h, UserVerification::Required),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn sign_count_regression_stops_a_cloned_authenticator() {
    let auth = SoftAuthenticator::new(SoftKey::p256(30), b"c30");
    let mut h = held(&auth); // count 1
    let a = sign_in(&auth, &h, UserVerification::Required).unwrap();
    h.credential.sign_count = a.sign_count; // 2, as the store keeps it
                                            // A clone of the key made at count 1 signs with count 2: not above what was seen.
    auth.counter.set(1);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::CounterRegression)
    );
    auth.counter.set(0);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::CounterRegression)
    );
    // Ahead is fine (the same authenticator used elsewhere).
    auth.counter.set(9);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required).map(|a| a.sign_count),
        Ok(10)
    );
}

#[test]
fn an_authenticator_that_never_counts_stays_at_zero_and_one_that_stops_counting_is_refused() {
    let auth = SoftAuthenticator::new(SoftKey::p256(31), b"c31").not_counting();
    let h = held(&auth);
    assert_eq!(h.credential.sign_count, 0);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required).map(|a| a.sign_count),
        Ok(0)
    );
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required).map(|a| a.sign_count),
        Ok(0)
    );
    let counting = SoftAuthenticator::new(SoftKey::p256(32), b"c32");
    let mut h = held(&counting);
    h.credential.sign_count = 5;
    counting.counter.set(0);
    let stopped = SoftAuthenticator { step: 0, ..counting };
    assert_eq!(
        sign_in(&stopped, &h, UserVerification::Required),
        Err(Refusal::CounterRegression)
    );
}

#[test]
fn backup_eligibility_cannot_change_after_registration() {
    let auth = SoftAuthenticator::new(SoftKey::p256(33), b"c33");
    let h = held(&auth);
    auth.flags.set(UV);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::InconsistentBackupFlags)
    );
    auth.flags.set(UV | BS);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::InconsistentBackupFlags)
    );
    auth.flags.set(UV | BE);
    let a = sign_in(&auth, &h, UserVerification::Required).unwrap();
    assert!(!a.backed_up, "eligible, not backed up now");
}

#[test]
fn an_assertion_carrying_credential_data_or_over_its_bounds_is_malformed() {
    let auth = SoftAuthenticator::new(SoftKey::p256(34), b"c34");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let c = ceremony(UserVerification::Required);
    let ad = auth.authenticator_data(RP_ID, true);
    let mut signed = ad.clone();
    signed.extend(gatehouse_core::crypto::sha256(&cd));
    let sig = auth.key.sign(&signed);
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    let (ad, sig) = assertion_of(&auth, &cd);
    assert_eq!(
        check(&h, &c, &cd, &ad[..20], &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        check(&h, &c, &cd, &ad, &vec![0; 513], Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, Some(&[7; 65]), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        check(&h, &c, &cd, &vec![0; 4097], &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    let mut long_cd = cd.clone();
    long_cd.resize(4097, b' ');
    assert_eq!(
        check(&h, &c, &long_cd, &ad, &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        check(&h, &c, b"{", &ad, &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
}

#[test]
fn a_stored_key_that_no_longer_reads_is_refused_not_a_crash() {
    let auth = SoftAuthenticator::new(SoftKey::p256(35), b"c35");
    let mut h = held(&auth);
    h.credential.public_key = vec![0xa0];
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::UnsupportedKey)
    );
}

#[test]
fn refusals_have_stable_names_for_events() {
    let names: Vec<&str> = [
        Refusal::Malformed,
        Refusal::WrongCeremony,
        Refusal::WrongChallenge,
        Refusal::WrongOrigin,
        Refusal::CrossOrigin,
        Refusal::WrongRpId,
        Refusal::UserNotPresent,
        Refusal::UserNotVerified,
        Refusal::InconsistentBackupFlags,
        Refusal::UnsupportedKey,
        Refusal::UnsupportedAttestation,
        Refusal::BadAttestation,
        Refusal::BadSignature,
        Refusal::CounterRegression,
        Refusal::WrongUser,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "malformed",
            "wrong_ceremony",
            "wrong_challenge",
            "wrong_origin",
            "cross_origin",
            "wrong_rp_id",
            "user_not_present",
            "user_not_verified",
            "inconsistent_backup_flags",
            "unsupported_key",
            "unsupported_attestation",
            "bad_attestation",
            "bad_signature",
            "counter_regression",
            "wrong_user"
        ]
    );
}

#[test]
fn each_size_bound_lets_its_largest_value_through_to_the_next_check() {
    use gatehouse_core::factors::webauthn::{
        MAX_ATTESTATION_OBJECT, MAX_AUTHENTICATOR_DATA, MAX_CLIENT_DATA, MAX_SIGNATURE, MAX_USER_HANDLE,
    };
    let auth = SoftAuthenticator::new(SoftKey::p256(40), b"c40");
    let h = held(&auth);
    let c = ceremony(UserVerification::Required);
    // Client data for another origin, padded to exactly the bound (JSON allows trailing space):
    // read, and refused for its origin rather than its size.
    let mut far = client_data("webauthn.get", &CHALLENGE, "https://evil.test");
    far.resize(MAX_CLIENT_DATA, b' ');
    let (ad, sig) = assertion_of(&auth, &far);
    assert_eq!(
        check(&h, &c, &far, &ad, &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::WrongOrigin)
    );
    let mut far_create = client_data("webauthn.create", &CHALLENGE, "https://evil.test");
    far_create.resize(MAX_CLIENT_DATA, b' ');
    assert_eq!(
        register_with(&auth, &c, &far_create, &auth.attestation_none(RP_ID)),
        Err(Refusal::WrongOrigin)
    );
    let far = client_data("webauthn.get", &CHALLENGE, "https://evil.test");
    let far_create = client_data("webauthn.create", &CHALLENGE, "https://evil.test");
    assert_eq!(
        register_with(&auth, &c, &far_create, &vec![0; MAX_ATTESTATION_OBJECT]),
        Err(Refusal::WrongOrigin)
    );
    assert_eq!(
        check(
            &h,
            &c,
            &far,
            &vec![0; MAX_AUTHENTICATOR_DATA],
            &sig,
            Some(HANDLE),
            Identified::Nobody
        ),
        Err(Refusal::WrongOrigin)
    );
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, _) = assertion_of(&auth, &cd);
    assert_eq!(
        check(
            &h,
            &c,
            &cd,
            &ad,
            &vec![0x30; MAX_SIGNATURE],
            Some(HANDLE),
            Identified::Nobody
        ),
        Err(Refusal::BadSignature)
    );
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, Some(&[7; MAX_USER_HANDLE]), Identified::Nobody),
        Err(Refusal::WrongUser)
    );
}

#[test]
fn an_attestation_with_a_certificate_chain_of_several_kb_is_read() {
    // A security key's `packed` attestation carries its certificate chain: 1-3 KB a certificate.
    let auth = SoftAuthenticator::new(SoftKey::p256(41), b"c41");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let chain = vec![(
        ciborium::Value::from("x5c"),
        ciborium::Value::Array(vec![ciborium::Value::Bytes(vec![0x30; 3000]); 4]),
    )];
    let att = attestation_object("packed", chain, auth.authenticator_data(RP_ID, true));
    assert!(att.len() > 12_000);
    assert_eq!(
        register_with(&auth, &ceremony(UserVerification::Required), &cd, &att).map(|n| n.attestation_format),
        Ok("packed".to_owned())
    );
}

#[test]
fn a_credential_of_another_user_than_the_one_identified_is_refused_whatever_handle_it_sends() {
    let auth = SoftAuthenticator::new(SoftKey::p256(42), b"c42");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    let c = ceremony(UserVerification::Preferred);
    // The flow identified Bob; the credential is Ann's (HANDLE).
    let bob = Identified::User(b"bobs-handle");
    for returned in [None, Some(HANDLE), Some(&b"bobs-handle"[..])] {
        assert_eq!(
            check(&h, &c, &cd, &ad, &sig, returned, bob),
            Err(Refusal::WrongUser),
            "{returned:?}"
        );
    }
}

#[test]
fn an_empty_user_handle_counts_as_none_and_an_empty_stored_one_matches_nothing() {
    let auth = SoftAuthenticator::new(SoftKey::p256(43), b"c43");
    let h = held(&auth);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN);
    let (ad, sig) = assertion_of(&auth, &cd);
    let c = ceremony(UserVerification::Required);
    assert!(check(&h, &c, &cd, &ad, &sig, Some(b""), Identified::User(HANDLE)).is_ok());
    assert_eq!(
        check(&h, &c, &cd, &ad, &sig, Some(b""), Identified::Nobody),
        Err(Refusal::WrongUser)
    );
    let stored = StoredCredential {
        user_handle: b"",
        ..h.stored()
    };
    let r = block_on(verify_assertion(
        &RustCryptoVerifier,
        &c,
        &stored,
        &Assertion {
            client_data_json: &cd,
            authenticator_data: &ad,
            signature: &sig,
            user_handle: Some(b""),
        },
        Identified::User(b""),
    ))
    .unwrap();
    assert_eq!(r, Err(Refusal::WrongUser));
}

#[test]
fn each_size_bound_is_checked_before_anything_is_read() {
    use gatehouse_core::factors::webauthn::{MAX_ATTESTATION_OBJECT, MAX_AUTHENTICATOR_DATA};
    // Client data for another origin: were the bound not checked first, the refusal would be
    // the origin's.
    let auth = SoftAuthenticator::new(SoftKey::p256(44), b"c44");
    let h = held(&auth);
    let c = ceremony(UserVerification::Required);
    let far_create = client_data("webauthn.create", &CHALLENGE, "https://evil.test");
    let mut big = auth.attestation_none(RP_ID);
    big.resize(MAX_ATTESTATION_OBJECT + 1, 0);
    assert_eq!(register_with(&auth, &c, &far_create, &big), Err(Refusal::Malformed));
    let far = client_data("webauthn.get", &CHALLENGE, "https://evil.test");
    let (mut ad, sig) = assertion_of(&auth, &far);
    ad.resize(MAX_AUTHENTICATOR_DATA + 1, 0);
    assert_eq!(
        check(&h, &c, &far, &ad, &sig, Some(HANDLE), Identified::Nobody),
        Err(Refusal::Malformed)
    );
}

#[test]
fn a_credential_registered_without_backup_eligibility_cannot_gain_it() {
    let auth = SoftAuthenticator::new(SoftKey::p256(45), b"c45");
    auth.flags.set(UV);
    let h = held(&auth);
    assert!(!h.credential.backup_eligible);
    auth.flags.set(UV | BE);
    assert_eq!(
        sign_in(&auth, &h, UserVerification::Required),
        Err(Refusal::InconsistentBackupFlags)
    );
    auth.flags.set(UV);
    assert!(sign_in(&auth, &h, UserVerification::Required).is_ok());
}

#[test]
fn a_compound_attestation_or_one_with_a_key_twice_is_refused() {
    let auth = SoftAuthenticator::new(SoftKey::p256(46), b"c46");
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN);
    let c = ceremony(UserVerification::Required);
    let att = attestation_object("compound", vec![], auth.authenticator_data(RP_ID, true));
    assert_eq!(
        register_with(&auth, &c, &cd, &att),
        Err(Refusal::UnsupportedAttestation)
    );
    // {"fmt": "none", "fmt": "packed", "attStmt": {}, "authData": ...}: which format is it?
    let twice = ciborium::Value::Map(vec![
        (ciborium::Value::from("fmt"), ciborium::Value::from("none")),
        (ciborium::Value::from("fmt"), ciborium::Value::from("packed")),
        (ciborium::Value::from("attStmt"), ciborium::Value::Map(vec![])),
        (
            ciborium::Value::from("authData"),
            ciborium::Value::Bytes(auth.authenticator_data(RP_ID, true)),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&twice, &mut bytes).unwrap();
    assert_eq!(register_with(&auth, &c, &cd, &bytes), Err(Refusal::Malformed));
    // A key that is not text is no attestation object either.
    let odd_key = ciborium::Value::Map(vec![
        (ciborium::Value::from("fmt"), ciborium::Value::from("none")),
        (ciborium::Value::from(1), ciborium::Value::from("x")),
        (ciborium::Value::from("attStmt"), ciborium::Value::Map(vec![])),
        (
            ciborium::Value::from("authData"),
            ciborium::Value::Bytes(auth.authenticator_data(RP_ID, true)),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&odd_key, &mut bytes).unwrap();
    assert_eq!(register_with(&auth, &c, &cd, &bytes), Err(Refusal::Malformed));
}
