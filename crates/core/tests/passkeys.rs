//! The passkey store and the admin API's view of it, on real SQLite: a credential that passed
//! registration is kept whole, registered once across all users, bounded per user, its counter
//! moved with a compare-and-set; the user handle is made once; administrators list and remove.

mod support;

use futures::executor::block_on;
use gatehouse_core::crypto::b64url;
use gatehouse_core::factors::webauthn::key::ACCEPTED_ALGS;
use gatehouse_core::factors::webauthn::{verify_registration, Ceremony, NewCredential, Registration, UserVerification};
use gatehouse_core::http::Method;
use gatehouse_core::store::passkeys;
use gatehouse_core::testing::webauthn::{client_data, RustCryptoVerifier, SoftAuthenticator, SoftKey};
use support::*;

const RP_ID: &str = "id.example.com";
const ORIGIN: &str = "https://id.example.com";
const PASSWORD: &str = "correct horse battery staple";

/// A credential as `verify_registration` returns it, from a software authenticator.
fn registered(seed: u8, credential_id: &[u8]) -> NewCredential {
    let auth = SoftAuthenticator::new(SoftKey::p256(seed), credential_id);
    let challenge = [seed; 32];
    let cd = client_data("webauthn.create", &challenge, ORIGIN);
    block_on(verify_registration(
        &RustCryptoVerifier,
        &Ceremony {
            challenge: &challenge,
            origin: ORIGIN,
            rp_id: RP_ID,
            user_verification: UserVerification::Required,
        },
        &ACCEPTED_ALGS,
        &Registration {
            client_data_json: &cd,
            attestation_object: &auth.attestation_none(RP_ID),
        },
    ))
    .unwrap()
    .unwrap()
}

fn store(env: &TestEnv, user: &str, credential: &NewCredential, name: &str) -> u64 {
    let transports = passkeys::known_transports(["internal", "hybrid"]);
    let (sql, params) = passkeys::insert_statement(user, credential, &transports, name, T0);
    block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap()
}

#[test]
fn a_registered_credential_is_kept_whole_and_listed_for_administrators_without_its_key() {
    let env = TestEnv::new();
    let user = env.create_user("ann", PASSWORD);
    let credential = registered(1, b"credential-one");
    assert_eq!(store(&env, &user, &credential, "Laptop"), 1);
    let held = block_on(passkeys::by_id(&env.db, &b64url(b"credential-one")))
        .unwrap()
        .unwrap();
    assert_eq!(held.user_id, user);
    assert_eq!(held.public_key, b64url(&credential.public_key));
    assert_eq!((held.alg, held.sign_count), (-7, 1));
    assert_eq!(held.transports, ["internal", "hybrid"]);
    assert!(held.backup_eligible && held.backed_up);
    assert_eq!(held.aaguid, "00".repeat(16));
    assert_eq!(
        (held.attestation_format.as_str(), held.name.as_str()),
        ("none", "Laptop")
    );
    assert_eq!((held.created_at, held.last_used_at), (T0, None));

    let r = env.admin(Method::Get, &format!("/admin/api/users/{user}/factors"), None);
    assert_eq!(r.status, 200);
    let view = r.json_body();
    let listed = &view["passkeys"][0];
    assert_eq!(listed["id"], b64url(b"credential-one"));
    assert_eq!(listed["name"], "Laptop");
    assert_eq!(listed["alg"], -7);
    assert_eq!(listed["transports"], serde_json::json!(["internal", "hybrid"]));
    assert_eq!(listed["backup_eligible"], true);
    assert!(listed.get("public_key").is_none(), "{listed}");
    assert_eq!(view["passkeys"].as_array().unwrap().len(), 1);
}

#[test]
fn a_credential_id_is_registered_once_across_all_users() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    let bob = env.create_user("bob", PASSWORD);
    let credential = registered(2, b"shared-id");
    assert_eq!(store(&env, &ann, &credential, "Key"), 1);
    assert_eq!(store(&env, &ann, &credential, "Key again"), 0);
    assert_eq!(store(&env, &bob, &registered(3, b"shared-id"), "Bob's"), 0);
    let held = block_on(passkeys::by_id(&env.db, &b64url(b"shared-id")))
        .unwrap()
        .unwrap();
    assert_eq!((held.user_id, held.name), (ann, "Key".to_owned()));
}

#[test]
fn a_user_holds_at_most_ten_passkeys() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    for i in 0..passkeys::MAX_PER_USER {
        assert_eq!(store(&env, &ann, &registered(10, format!("id-{i}").as_bytes()), "k"), 1);
    }
    assert_eq!(store(&env, &ann, &registered(10, b"one-more"), "k"), 0);
    assert_eq!(
        block_on(passkeys::of_user(&env.db, &ann)).unwrap().len() as i64,
        passkeys::MAX_PER_USER
    );
    // Another user is not held back by Ann's.
    let bob = env.create_user("bob", PASSWORD);
    assert_eq!(store(&env, &bob, &registered(10, b"bobs"), "k"), 1);
}

#[test]
fn only_known_transports_are_kept_each_once() {
    assert_eq!(
        passkeys::known_transports(["usb", "carrier-pigeon", "usb", "nfc", "", "hybrid"]),
        ["usb", "nfc", "hybrid"]
    );
    assert!(passkeys::known_transports(["ble ", "USB"]).is_empty());
    assert_eq!(passkeys::known_transports(passkeys::TRANSPORTS), passkeys::TRANSPORTS);
}

#[test]
fn a_use_moves_the_counter_only_from_the_value_the_check_compared() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    store(&env, &ann, &registered(4, b"counted"), "Key");
    let id = b64url(b"counted");
    let (sql, params) = passkeys::record_use_statement(&id, 1, 5, false, T0 + 60);
    assert_eq!(
        block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap(),
        1
    );
    // A second assertion verified against the old counter (a race, or a clone) changes nothing.
    let (sql, params) = passkeys::record_use_statement(&id, 1, 6, true, T0 + 61);
    assert_eq!(
        block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap(),
        0
    );
    let held = block_on(passkeys::by_id(&env.db, &id)).unwrap().unwrap();
    assert_eq!(
        (held.sign_count, held.backed_up, held.last_used_at),
        (5, false, Some(T0 + 60))
    );
}

#[test]
fn a_passkey_is_renamed_and_removed_only_by_its_owners_id() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    let bob = env.create_user("bob", PASSWORD);
    store(&env, &ann, &registered(5, b"anns"), "Old");
    let id = b64url(b"anns");
    for (user, changed) in [(&bob, 0), (&ann, 1)] {
        let (sql, params) = passkeys::rename_statement(user, &id, "New");
        assert_eq!(
            block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap(),
            changed
        );
    }
    assert_eq!(block_on(passkeys::by_id(&env.db, &id)).unwrap().unwrap().name, "New");
    for (user, changed) in [(&bob, 0), (&ann, 1)] {
        let (sql, params) = passkeys::delete_statement(user, &id);
        assert_eq!(
            block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap(),
            changed
        );
    }
    assert!(block_on(passkeys::by_id(&env.db, &id)).unwrap().is_none());
}

#[test]
fn an_administrator_removes_one_passkey_or_resets_them_all() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    let bob = env.create_user("bob", PASSWORD);
    store(&env, &ann, &registered(6, b"first"), "One");
    store(&env, &ann, &registered(7, b"second"), "Two");
    store(&env, &bob, &registered(8, b"bobs"), "Bob's");
    let first = b64url(b"first");
    // Another user's passkey, or none: 404, and nothing goes.
    let r = env.admin(
        Method::Delete,
        &format!("/admin/api/users/{bob}/factors/passkeys/{first}"),
        None,
    );
    assert_eq!(r.status, 404);
    let r = env.admin(
        Method::Delete,
        &format!("/admin/api/users/{ann}/factors/passkeys/nothing"),
        None,
    );
    assert_eq!(r.status, 404);
    let r = env.admin(
        Method::Get,
        &format!("/admin/api/users/{ann}/factors/passkeys/{first}"),
        None,
    );
    assert_eq!(r.status, 405);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 3);
    let r = env.admin(
        Method::Delete,
        &format!("/admin/api/users/{ann}/factors/passkeys/{first}"),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 2);
    assert_eq!(
        env.db
            .text("SELECT detail FROM events WHERE kind = 'admin_passkey_removed'"),
        format!(r#"{{"actor":"api_token","passkey":"{first}"}}"#)
    );
    let r = env.admin(Method::Delete, &format!("/admin/api/users/{ann}/factors"), None);
    assert_eq!(r.status, 204);
    assert_eq!(
        env.db
            .count(&format!("SELECT COUNT(*) FROM passkeys WHERE user_id = '{ann}'")),
        0
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 1, "Bob keeps his");
}

#[test]
fn deleting_a_user_deletes_their_passkeys() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    store(&env, &ann, &registered(9, b"gone"), "Key");
    assert_eq!(
        env.admin(Method::Delete, &format!("/admin/api/users/{ann}"), None)
            .status,
        204
    );
    assert_eq!(env.db.count("SELECT COUNT(*) FROM passkeys"), 0);
}

#[test]
fn the_user_handle_is_made_once_and_never_shared() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", PASSWORD);
    let bob = env.create_user("bob", PASSWORD);
    assert_eq!(block_on(passkeys::user_handle(&env.db, &ann)).unwrap(), None);
    let made = block_on(passkeys::ensure_user_handle(&env.db, &ann, "handle-a")).unwrap();
    assert_eq!(made.as_deref(), Some("handle-a"));
    // A second registration (or one racing the first) keeps the handle made first.
    let again = block_on(passkeys::ensure_user_handle(&env.db, &ann, "handle-b")).unwrap();
    assert_eq!(again.as_deref(), Some("handle-a"));
    assert_eq!(
        block_on(passkeys::user_handle(&env.db, &ann)).unwrap().as_deref(),
        Some("handle-a")
    );
    // Two users never hold one handle.
    assert!(block_on(passkeys::ensure_user_handle(&env.db, &bob, "handle-a")).is_err());
    assert_eq!(block_on(passkeys::user_handle(&env.db, &bob)).unwrap(), None);
    assert_eq!(
        block_on(passkeys::ensure_user_handle(&env.db, "usr_nobody", "h")).unwrap(),
        None
    );
}

#[test]
fn a_challenge_is_taken_once_only_for_its_owner_and_ceremony_and_not_after_five_minutes() {
    use gatehouse_core::store::webauthn_challenges::{self as challenges, Ceremony, TTL};
    let env = TestEnv::new();
    let issue = |owner: &str, ceremony: Ceremony, challenge: &str| {
        let (sql, params) = challenges::issue_statement(owner, ceremony, challenge, None, T0);
        block_on(gatehouse_core::ports::Db::execute(&env.db, sql, &params)).unwrap();
    };
    let take = |owner: &str, ceremony: Ceremony, now: i64| {
        block_on(challenges::take(&env.db, owner, ceremony, now))
            .unwrap()
            .map(|c| c.challenge)
    };
    let flow = challenges::flow_owner("f1");
    issue(&flow, Ceremony::Register, "c-register");
    issue(&flow, Ceremony::SignIn, "c-sign-in");
    issue(&flow, Ceremony::SecondFactor, "c-second");
    // Each ceremony keeps its own; another owner has none.
    assert_eq!(take(&challenges::flow_owner("f2"), Ceremony::SignIn, T0), None);
    assert_eq!(take(&flow, Ceremony::SignIn, T0).as_deref(), Some("c-sign-in"));
    assert_eq!(take(&flow, Ceremony::SignIn, T0), None, "once");
    assert_eq!(take(&flow, Ceremony::Register, T0).as_deref(), Some("c-register"));
    // A new one replaces the last; it lives five minutes.
    issue(&flow, Ceremony::SignIn, "c-newer");
    assert_eq!(take(&flow, Ceremony::SignIn, T0 + TTL).as_deref(), None, "expired");
    assert_eq!(
        take(&flow, Ceremony::SecondFactor, T0 + TTL - 1).as_deref(),
        Some("c-second")
    );
    // Owners of the three kinds never meet.
    let owners = [
        challenges::flow_owner("x"),
        challenges::session_owner("x"),
        challenges::setup_owner("x"),
    ];
    assert_eq!(
        owners.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "{owners:?}"
    );
    assert_ne!(challenges::setup_owner("h1"), challenges::setup_owner("h2"));
}
