//! Second factors on real SQLite with the migrations: TOTP devices with sealed secrets and a
//! replay check that holds under a race, recovery codes spent once and replaced as a set.

mod support;

use futures::executor::block_on;
use gatehouse_core::factors::recovery_codes;
use gatehouse_core::factors::sealed::SealingKey;
use gatehouse_core::factors::totp::{self, TotpSecret};
use gatehouse_core::ports::Db;
use gatehouse_core::store::recovery_codes as stored_codes;
use gatehouse_core::store::totp_devices::{self, TotpDevice};
use gatehouse_core::testing::SeededRng;
use support::*;

const NOW: i64 = 1_800_000_000;

/// A migrated database with Alice and Bob, a sealing key and seeded randomness.
fn setup(seed: u64) -> (SqliteDb, SealingKey, SeededRng) {
    let db = SqliteDb::migrated();
    with_users(&db);
    (db, SealingKey::derive(&[7; 32]).unwrap(), SeededRng::new(seed))
}

fn with_users(db: &SqliteDb) {
    for id in ["usr_alice", "usr_bob"] {
        db.exec(&format!(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
             VALUES ('{id}', '{id}', '{id}@example.com', 'x', 0, 0)"
        ));
    }
}

fn enroll(db: &SqliteDb, key: &SealingKey, rng: &SeededRng, user: &str, id: &str) -> TotpSecret {
    let secret = TotpSecret::generate(rng).unwrap();
    let sealed = key
        .seal(rng, secret.as_bytes(), &TotpDevice::seal_context(user, id))
        .unwrap();
    let device = TotpDevice {
        id: id.into(),
        user_id: user.into(),
        name: "phone".into(),
        secret_sealed: sealed,
        confirmed_at: None,
        last_step: None,
        last_used_at: None,
        created_at: NOW,
    };
    let (sql, params) = totp_devices::insert_statement(&device);
    block_on(db.execute(sql, &params)).unwrap();
    secret
}

fn confirm(db: &SqliteDb, user: &str, id: &str, step: i64, now: i64) -> u64 {
    let (sql, params) = totp_devices::confirm_statement(user, id, step, now);
    block_on(db.execute(sql, &params)).unwrap()
}

fn hashes_of(user: &str, codes: &[recovery_codes::RecoveryCode]) -> Vec<String> {
    codes
        .iter()
        .filter_map(|c| recovery_codes::hash(user, c.expose()))
        .collect()
}

#[test]
fn rfc6238_5_2_a_totp_code_verified_twice_at_once_is_taken_by_one_request_only() {
    let (db, key, rng) = setup(5);
    let secret = enroll(&db, &key, &rng, "usr_alice", "dev_1");

    let device = block_on(totp_devices::get(&db, "usr_alice", "dev_1")).unwrap().unwrap();
    assert_eq!(device.confirmed_at, None, "waits for its first code");
    assert!(!device.secret_sealed.contains(&secret.to_base32()));
    let opened = key
        .open(&device.secret_sealed, &TotpDevice::seal_context("usr_alice", "dev_1"))
        .unwrap();
    assert_eq!(TotpSecret::from_bytes(opened).unwrap(), secret);

    // A pending enrollment is no factor: a code does not sign in with it, and it is not listed.
    let code = secret.code_at(NOW as u64).unwrap();
    let step = totp::verify(&secret, &code, NOW as u64, device.last_step.map(|s| s as u64)).unwrap() as i64;
    assert!(!block_on(totp_devices::accept_step(&db, "usr_alice", "dev_1", step, NOW)).unwrap());
    assert!(block_on(totp_devices::confirmed_of_user(&db, "usr_alice"))
        .unwrap()
        .is_empty());
    // Two requests confirm with the same code: one wins.
    assert_eq!(confirm(&db, "usr_alice", "dev_1", step, NOW), 1);
    assert_eq!(confirm(&db, "usr_alice", "dev_1", step, NOW), 0);
    assert_eq!(
        block_on(totp_devices::confirmed_of_user(&db, "usr_alice"))
            .unwrap()
            .len(),
        1
    );
    // Signing in with the code that confirmed the device is a replay.
    assert!(!block_on(totp_devices::accept_step(&db, "usr_alice", "dev_1", step, NOW)).unwrap());
    // An older step (a code from the skew window) cannot move it back.
    assert!(!block_on(totp_devices::accept_step(&db, "usr_alice", "dev_1", step - 1, NOW)).unwrap());
    let device = block_on(totp_devices::get(&db, "usr_alice", "dev_1")).unwrap().unwrap();
    assert_eq!(
        (device.last_step, device.confirmed_at, device.last_used_at),
        (Some(step), Some(NOW), Some(NOW))
    );
    // Two requests sign in with the next step's code: one wins; the confirmation time stays.
    assert!(block_on(totp_devices::accept_step(&db, "usr_alice", "dev_1", step + 1, NOW + 30)).unwrap());
    assert!(!block_on(totp_devices::accept_step(&db, "usr_alice", "dev_1", step + 1, NOW + 30)).unwrap());
    let device = block_on(totp_devices::get(&db, "usr_alice", "dev_1")).unwrap().unwrap();
    assert_eq!((device.confirmed_at, device.last_used_at), (Some(NOW), Some(NOW + 30)));
    assert_eq!(
        confirm(&db, "usr_alice", "dev_1", step + 2, NOW + 60),
        0,
        "confirmed once"
    );
}

#[test]
fn a_users_devices_are_theirs_alone_and_a_sealed_secret_does_not_open_in_another_row() {
    let (db, key, rng) = setup(6);
    enroll(&db, &key, &rng, "usr_alice", "dev_a");
    enroll(&db, &key, &rng, "usr_bob", "dev_b");
    assert!(block_on(totp_devices::get(&db, "usr_bob", "dev_a")).unwrap().is_none());
    assert!(!block_on(totp_devices::accept_step(&db, "usr_bob", "dev_a", 1, NOW)).unwrap());
    // Copying Alice's sealed secret into Bob's row (a tampered database) does not give Bob her seed.
    db.exec("UPDATE totp_devices SET secret_sealed = (SELECT secret_sealed FROM totp_devices WHERE id = 'dev_a') WHERE id = 'dev_b'");
    let bob = block_on(totp_devices::get(&db, "usr_bob", "dev_b")).unwrap().unwrap();
    assert!(key
        .open(&bob.secret_sealed, &TotpDevice::seal_context("usr_bob", "dev_b"))
        .is_err());

    let (sql, params) = totp_devices::delete_statement("usr_bob", "dev_a");
    assert_eq!(block_on(db.execute(sql, &params)).unwrap(), 0, "not Bob's to delete");
    enroll(&db, &key, &rng, "usr_alice", "dev_a2");
    let ids: Vec<String> = block_on(totp_devices::of_user(&db, "usr_alice"))
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["dev_a", "dev_a2"]);
    // Deleting the user deletes their devices.
    db.exec("DELETE FROM users WHERE id = 'usr_alice'");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM totp_devices WHERE user_id = 'usr_alice'"),
        0
    );
}

#[test]
fn a_recovery_code_is_spent_once_and_a_new_set_voids_the_old_one() {
    let db = SqliteDb::migrated();
    with_users(&db);
    let rng = SeededRng::new(8);
    let codes = recovery_codes::generate(&rng).unwrap();
    let hashes = hashes_of("usr_alice", &codes);
    assert_eq!(hashes.len(), recovery_codes::COUNT);
    block_on(db.batch(&stored_codes::replace_statements("usr_alice", &hashes, NOW))).unwrap();
    for c in &codes {
        let canonical = recovery_codes::normalize(c.expose()).unwrap();
        let sql = format!("SELECT COUNT(*) FROM recovery_codes WHERE instr(code_hash, '{canonical}') > 0");
        assert_eq!(db.count(&sql), 0, "only hashes are stored");
    }
    assert_eq!(block_on(stored_codes::remaining(&db, "usr_alice")).unwrap(), 10);

    let typed = recovery_codes::hash("usr_alice", &codes[3].expose().to_uppercase()).unwrap();
    assert!(block_on(stored_codes::spend(&db, "usr_alice", &typed, NOW)).unwrap());
    assert!(
        !block_on(stored_codes::spend(&db, "usr_alice", &typed, NOW)).unwrap(),
        "spent"
    );
    assert!(
        !block_on(stored_codes::spend(&db, "usr_bob", &hashes[4], NOW)).unwrap(),
        "Alice's code"
    );
    assert_eq!(block_on(stored_codes::remaining(&db, "usr_alice")).unwrap(), 9);
    assert_eq!(block_on(stored_codes::remaining(&db, "usr_bob")).unwrap(), 0);

    let fresh = hashes_of("usr_alice", &recovery_codes::generate(&rng).unwrap());
    block_on(db.batch(&stored_codes::replace_statements("usr_alice", &fresh, NOW + 1))).unwrap();
    assert!(
        !block_on(stored_codes::spend(&db, "usr_alice", &hashes[5], NOW + 2)).unwrap(),
        "old set void"
    );
    assert!(block_on(stored_codes::spend(&db, "usr_alice", &fresh[5], NOW + 2)).unwrap());
    assert_eq!(block_on(stored_codes::remaining(&db, "usr_alice")).unwrap(), 9);
}

#[test]
fn second_factors_count_confirmed_devices_unused_codes_and_codes_ever_issued() {
    use gatehouse_core::store::totp_devices::SecondFactors;
    let (db, key, rng) = setup(9);
    let count = |user: &str| block_on(totp_devices::second_factors(&db, user)).unwrap();
    assert_eq!(
        count("usr_alice"),
        SecondFactors {
            totp_devices: 0,
            recovery_codes: 0,
            recovery_codes_issued: 0,
            passkeys: 0
        }
    );
    enroll(&db, &key, &rng, "usr_alice", "dev_pending");
    enroll(&db, &key, &rng, "usr_alice", "dev_confirmed");
    assert_eq!(confirm(&db, "usr_alice", "dev_confirmed", 1, NOW), 1);
    let hashes = hashes_of("usr_alice", &recovery_codes::generate(&rng).unwrap());
    block_on(db.batch(&stored_codes::replace_statements("usr_alice", &hashes, NOW))).unwrap();
    assert!(block_on(stored_codes::spend(&db, "usr_alice", &hashes[0], NOW)).unwrap());
    db.exec(
        "INSERT INTO passkeys (id, user_id, public_key, alg, sign_count, backup_eligible, backed_up, aaguid, \
         attestation_format, name, created_at) VALUES ('cred', 'usr_alice', 'k', -7, 0, 0, 0, '', 'none', 'Key', 0)",
    );
    assert_eq!(
        count("usr_alice"),
        SecondFactors {
            totp_devices: 1,
            recovery_codes: 9,
            recovery_codes_issued: 10,
            passkeys: 1
        }
    );
    assert_eq!(
        count("usr_bob"),
        SecondFactors {
            totp_devices: 0,
            recovery_codes: 0,
            recovery_codes_issued: 0,
            passkeys: 0
        }
    );
}

#[test]
fn a_user_holds_at_most_ten_devices_pending_ones_included() {
    let (db, key, rng) = setup(10);
    for i in 0..totp_devices::MAX_PER_USER {
        enroll(&db, &key, &rng, "usr_alice", &format!("dev_{i}"));
    }
    let secret = TotpSecret::generate(&rng).unwrap();
    let eleventh = TotpDevice {
        id: "dev_eleventh".into(),
        user_id: "usr_alice".into(),
        name: "one too many".into(),
        secret_sealed: key.seal(&rng, secret.as_bytes(), "x").unwrap(),
        confirmed_at: None,
        last_step: None,
        last_used_at: None,
        created_at: NOW,
    };
    let (sql, params) = totp_devices::insert_statement(&eleventh);
    assert_eq!(block_on(db.execute(sql, &params)).unwrap(), 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM totp_devices WHERE user_id = 'usr_alice'"),
        10
    );
    // Bob's count is his own.
    enroll(&db, &key, &rng, "usr_bob", "dev_bob");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM totp_devices WHERE user_id = 'usr_bob'"),
        1
    );
}

#[test]
fn no_two_pairs_of_ids_seal_under_the_same_context() {
    assert_ne!(
        TotpDevice::seal_context("usr_a:b", "dev"),
        TotpDevice::seal_context("usr_a", "b:dev")
    );
}
