//! `id_token_hint` verification (OIDC Core §3.1.2.1) with hand-made tokens signed by our own
//! keys: what counts as one of our ID tokens, how old a hint may be, and its bounds.

mod support;

use futures::executor::block_on;
use gatehouse_core::error::Error;
use gatehouse_core::jwt;
use gatehouse_core::limits;
use gatehouse_core::oidc::id_token_hint::{self, Hint};
use gatehouse_core::ports::SigningAlg;
use serde_json::{json, Value};
use support::*;

const DAY: i64 = 24 * 3600;

fn signed(env: &TestEnv, claims: Value, typ: &str) -> String {
    block_on(jwt::sign(&env.signer, SigningAlg::RS256, &claims, Some(typ))).unwrap()
}

/// An ID token as Gatehouse issues them, expired `days_ago` days before now, with `extra` claims.
fn id_token(env: &TestEnv, days_ago: i64, extra: Value) -> String {
    let exp = T0 - days_ago * DAY;
    let mut claims = json!({
        "iss": ISSUER, "sub": "usr_alice", "aud": "client-a", "iat": exp - 3600, "exp": exp, "at_hash": "x",
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    signed(env, claims, jwt::typ::ID_TOKEN)
}

fn verify(env: &TestEnv, token: &str) -> Result<Hint, String> {
    block_on(id_token_hint::verify(&env.ctx(), token)).map_err(|e| match e {
        Error::OAuth(o) => o.description,
        Error::Internal(i) => panic!("internal error: {i:?}"),
    })
}

#[test]
fn oidc_3_1_2_1_a_hint_expired_up_to_a_year_ago_names_its_user_and_an_older_one_is_refused() {
    let env = TestEnv::new();
    for days in [0, 30, 365] {
        let hint = verify(&env, &id_token(&env, days, json!({}))).unwrap_or_else(|e| panic!("{days} days: {e}"));
        assert_eq!(
            hint,
            Hint {
                sub: "usr_alice".into(),
                aud: Some("client-a".into())
            }
        );
    }
    assert!(verify(&env, &id_token(&env, 367, json!({}))).is_err());
}

#[test]
fn the_first_audience_of_a_hint_is_its_client() {
    let env = TestEnv::new();
    let hint = verify(&env, &id_token(&env, 0, json!({"aud": ["client-b", "client-c"]}))).unwrap();
    assert_eq!(hint.aud.as_deref(), Some("client-b"));
    let hint = verify(&env, &id_token(&env, 0, json!({"aud": 7}))).unwrap();
    assert_eq!(hint.aud, None);
}

#[test]
fn rfc8725_3_11_only_an_id_token_is_a_hint_even_with_the_id_tokens_typ() {
    let env = TestEnv::new();
    for (extra, why) in [
        (json!({"scope": "openid"}), "an access token's claims"),
        (json!({"app": "wiki"}), "a gateway identity's claims"),
        (json!({"at_hash": null}), "no at_hash"),
    ] {
        let mut token = id_token(&env, 0, extra.clone());
        if extra.get("at_hash").is_some() {
            let claims = json!({"iss": ISSUER, "sub": "usr_alice", "aud": "client-a", "iat": T0, "exp": T0 + 60});
            token = signed(&env, claims, jwt::typ::ID_TOKEN);
        }
        let refused = verify(&env, &token).expect_err(why);
        assert!(refused.contains("is not an ID token"), "{why}: {refused}");
    }
    let other_issuer = id_token(&env, 0, json!({"iss": "https://evil.example"}));
    assert!(verify(&env, &other_issuer).unwrap_err().contains("another issuer"));
}

#[test]
fn a_hint_of_exactly_its_bound_is_read_and_one_byte_more_is_refused_unread() {
    let env = TestEnv::new();
    let exactly = "h".repeat(limits::ID_TOKEN_HINT);
    let e = verify(&env, &exactly).unwrap_err();
    assert!(!e.contains("too long") && e.contains("not a valid ID token"), "{e}");
    let over = "h".repeat(limits::ID_TOKEN_HINT + 1);
    assert!(verify(&env, &over).unwrap_err().contains("too long"));
    let far_over = "h".repeat(limits::ID_TOKEN_HINT * 2);
    assert!(verify(&env, &far_over).unwrap_err().contains("too long"));
}
