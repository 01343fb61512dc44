//! JSON Web Tokens (RFC 7519) signed through the Signer port, as compact JWS (RFC 7515).
//!
//! Verification trusts the header only as far as it names one of our own keys: the `alg` must be
//! RS256 or ES256 and the `kid` must name a published key of exactly that algorithm. So `none`,
//! HMAC re-signed with a public key (alg confusion), RS/ES swaps and keys embedded in the header
//! (`jwk`, `jku`, `x5u`: ignored) all fail.

use serde_json::{Map, Value};

use crate::crypto::{b64url, b64url_decode};
use crate::error::InternalError;
use crate::ports::{Signer, SigningAlg};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, not JSON, `crit` present, or a required claim missing/mistyped.
    Malformed,
    /// The signature does not verify, or the header asks for an algorithm we never use.
    BadSignature,
    /// The `kid` names no published key of the header's algorithm.
    UnknownKey,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// A valid token of another kind (`typ`): an ID token where an access token was expected.
    WrongType,
    /// Verification itself failed (crypto backend).
    Internal(InternalError),
}

impl From<InternalError> for JwtError {
    fn from(e: InternalError) -> Self {
        JwtError::Internal(e)
    }
}

/// Signs `claims` with the active key for `alg`: header `{alg, kid, typ?}`, compact form.
pub async fn sign(
    signer: &dyn Signer,
    alg: SigningAlg,
    claims: &Value,
    typ: Option<&str>,
) -> Result<String, InternalError> {
    let kid = signer
        .public_keys()
        .iter()
        .find(|k| k.alg == alg && k.active)
        .map(|k| k.kid.clone())
        .ok_or_else(|| InternalError::new(format!("no active {} key", alg.as_str())))?;
    let mut header = Map::new();
    header.insert("alg".into(), alg.as_str().into());
    header.insert("kid".into(), kid.clone().into());
    if let Some(typ) = typ {
        header.insert("typ".into(), typ.into());
    }
    let header =
        serde_json::to_vec(&Value::Object(header)).map_err(|e| InternalError::new(format!("JWT header: {e}")))?;
    let payload = serde_json::to_vec(claims).map_err(|e| InternalError::new(format!("JWT claims: {e}")))?;
    let input = format!("{}.{}", b64url(&header), b64url(&payload));
    let (signed_kid, signature) = signer.sign(alg, input.as_bytes()).await?;
    if signed_kid != kid {
        return Err(InternalError::new("signer used another key than the active one"));
    }
    Ok(format!("{input}.{}", b64url(&signature)))
}

/// The `typ` of each kind of token Gatehouse signs, so that no token can be taken for another.
pub mod typ {
    /// RFC 9068 §2.1.
    pub const ACCESS_TOKEN: &str = "at+jwt";
    /// OIDC Core §2 (an ID token's conventional `typ`).
    pub const ID_TOKEN: &str = "JWT";
    /// The gateway's identity assertion to an origin (RFC 8725 §3.11: explicit typing).
    pub const GATEWAY_IDENTITY: &str = "gatehouse-identity+jwt";
}

/// Verifies a compact JWS made by one of `signer`'s keys and returns its claims, after checking
/// `exp` (required), `nbf` and `iat` against `now` (Unix seconds) with `leeway` seconds of skew.
pub async fn verify(signer: &dyn Signer, token: &str, now: i64, leeway: i64) -> Result<Map<String, Value>, JwtError> {
    Ok(verify_with_header(signer, token, now, leeway).await?.1)
}

/// [`verify`], and the header's `typ` must be `expected` (compared as RFC 7515 §4.1.9 says:
/// without case, and with an optional `application/` prefix).
pub async fn verify_typed(
    signer: &dyn Signer,
    token: &str,
    now: i64,
    leeway: i64,
    expected: &str,
) -> Result<Map<String, Value>, JwtError> {
    let (header, claims) = verify_with_header(signer, token, now, leeway).await?;
    let found = header.get("typ").and_then(Value::as_str).unwrap_or("");
    let bare = match (found.get(..12), found.get(12..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => found,
    };
    if !bare.eq_ignore_ascii_case(expected) {
        return Err(JwtError::WrongType);
    }
    Ok(claims)
}

async fn verify_with_header(
    signer: &dyn Signer,
    token: &str,
    now: i64,
    leeway: i64,
) -> Result<(Map<String, Value>, Map<String, Value>), JwtError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = json_object(header_b64)?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: we understand no extension, so a token that requires one is refused.
        return Err(JwtError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(SigningAlg::parse)
        .ok_or(JwtError::BadSignature)?;
    let kid = header.get("kid").and_then(Value::as_str).ok_or(JwtError::UnknownKey)?;
    if !signer.public_keys().iter().any(|k| k.kid == kid && k.alg == alg) {
        return Err(JwtError::UnknownKey);
    }
    let signature = b64url_decode(signature_b64).ok_or(JwtError::Malformed)?;
    if signature.is_empty() || (alg == SigningAlg::ES256 && signature.len() != 64) {
        return Err(JwtError::BadSignature);
    }
    let input_len = header_b64.len() + 1 + payload_b64.len();
    let input = token.as_bytes().get(..input_len).ok_or(JwtError::Malformed)?;
    if !signer.verify(kid, alg, input, &signature).await? {
        return Err(JwtError::BadSignature);
    }
    let claims = json_object(payload_b64)?;
    let exp = numeric_date(&claims, "exp")?.ok_or(JwtError::Malformed)?;
    if exp <= (now - leeway) as f64 {
        return Err(JwtError::Expired);
    }
    let latest = (now + leeway) as f64;
    for name in ["nbf", "iat"] {
        if numeric_date(&claims, name)?.is_some_and(|t| t > latest) {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok((header, claims))
}

fn json_object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = b64url_decode(part).ok_or(JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// A NumericDate claim (RFC 7519 §2): absent is `None`, present but not a number is malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite())
            .map(Some)
            .ok_or(JwtError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::testing::signer::{test_secret, test_secret_rotated, RSA_A_KID, RSA_A_PUBLIC_PEM, RSA_B_KID};
    use crate::testing::RustCryptoSigner;
    use futures::executor::block_on;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn signer() -> RustCryptoSigner {
        RustCryptoSigner::from_secret(&test_secret()).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://id.example.com", "sub": "usr_1", "iat": NOW, "exp": NOW + 300})
    }

    fn part(v: &Value) -> String {
        b64url(&serde_json::to_vec(v).unwrap())
    }

    fn header_of(token: &str) -> Map<String, Value> {
        json_object(token.split('.').next().unwrap()).unwrap()
    }

    fn kid_of(signer: &RustCryptoSigner, alg: SigningAlg) -> String {
        signer
            .public_keys()
            .iter()
            .find(|k| k.alg == alg && k.active)
            .unwrap()
            .kid
            .clone()
    }

    /// A token whose signature is HMAC-SHA256 keyed with `secret` (the alg-confusion forgery).
    fn hs256_token(kid: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            part(&json!({"alg": "HS256", "kid": kid, "typ": "JWT"})),
            part(&claims())
        );
        let mac = hmac_sha256(secret, input.as_bytes());
        format!("{input}.{}", b64url(&mac))
    }

    #[test]
    fn round_trip_rs256_and_es256() {
        let s = signer();
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            let token = block_on(sign(&s, alg, &claims(), Some("JWT"))).unwrap();
            let header = header_of(&token);
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], kid_of(&s, alg).as_str());
            assert_eq!(header["typ"], "JWT");
            let got = block_on(verify(&s, &token, NOW, 0)).unwrap();
            assert_eq!(Value::Object(got), claims());
        }
        let token = block_on(sign(&s, SigningAlg::RS256, &claims(), None)).unwrap();
        assert!(!header_of(&token).contains_key("typ"));
    }

    #[test]
    fn alg_none_is_refused() {
        let s = signer();
        let kid = kid_of(&s, SigningAlg::RS256);
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "none", "kid": kid}),
            json!({"alg": "None", "kid": kid}),
        ] {
            for sig in ["", "AAAA"] {
                let token = format!("{}.{}.{sig}", part(&header), part(&claims()));
                let e = block_on(verify(&s, &token, NOW, 0)).unwrap_err();
                assert_eq!(e, JwtError::BadSignature, "{header} {sig:?}");
            }
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // The alg-confusion attack: a verifier that takes the header's alg would use the RSA
        // public key (as PEM, DER, JWK JSON or modulus) as the HMAC secret.
        let s = signer();
        let public = &s.public_keys()[0];
        assert_eq!(public.kid, RSA_A_KID);
        let jwk_json = serde_json::to_vec(&Value::Object(public.jwk.clone())).unwrap();
        let n = b64url_decode(public.jwk["n"].as_str().unwrap()).unwrap();
        let secrets: Vec<Vec<u8>> = vec![
            RSA_A_PUBLIC_PEM.as_bytes().to_vec(),
            RSA_A_PUBLIC_PEM.trim_end().as_bytes().to_vec(),
            jwk_json,
            n,
            RSA_A_KID.as_bytes().to_vec(),
        ];
        for secret in secrets {
            let token = hs256_token(RSA_A_KID, &secret);
            assert_eq!(
                block_on(verify(&s, &token, NOW, 0)).unwrap_err(),
                JwtError::BadSignature
            );
        }
    }

    #[test]
    fn es256_header_with_the_kid_of_an_rs256_key_is_refused() {
        let s = signer();
        let rsa_kid = kid_of(&s, SigningAlg::RS256);
        let ec_kid = kid_of(&s, SigningAlg::ES256);
        // A genuine ES256 signature, relabelled with the RSA key's kid.
        let token = block_on(sign(&s, SigningAlg::ES256, &claims(), None)).unwrap();
        let rest = token.split_once('.').unwrap().1;
        let swapped = format!("{}.{rest}", part(&json!({"alg": "ES256", "kid": rsa_kid})));
        assert_eq!(
            block_on(verify(&s, &swapped, NOW, 0)).unwrap_err(),
            JwtError::UnknownKey
        );
        // And the other way: RS256 header naming the EC key.
        let token = block_on(sign(&s, SigningAlg::RS256, &claims(), None)).unwrap();
        let rest = token.split_once('.').unwrap().1;
        let swapped = format!("{}.{rest}", part(&json!({"alg": "RS256", "kid": ec_kid})));
        assert_eq!(
            block_on(verify(&s, &swapped, NOW, 0)).unwrap_err(),
            JwtError::UnknownKey
        );
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let s = signer();
        let token = block_on(sign(&s, SigningAlg::RS256, &claims(), None)).unwrap();
        let rest = token.split_once('.').unwrap().1;
        for header in [
            json!({"alg": "RS256"}),
            json!({"alg": "RS256", "kid": "nope"}),
            json!({"alg": "RS256", "kid": 1}),
        ] {
            let forged = format!("{}.{rest}", part(&header));
            assert_eq!(block_on(verify(&s, &forged, NOW, 0)).unwrap_err(), JwtError::UnknownKey);
        }
    }

    #[test]
    fn embedded_header_jwk_is_not_trusted() {
        // A token signed by a key we do not hold, carrying that key in its header, with our kid.
        let attacker = RustCryptoSigner::from_secret(&test_secret_rotated()).unwrap();
        let s = signer();
        let token = block_on(sign(&attacker, SigningAlg::RS256, &claims(), None)).unwrap();
        let rest = token.split_once('.').unwrap().1;
        let header = json!({"alg": "RS256", "kid": RSA_A_KID, "jwk": attacker.public_keys()[0].jwk});
        let forged = format!("{}.{rest}", part(&header));
        assert_eq!(
            block_on(verify(&s, &forged, NOW, 0)).unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let s = signer();
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            let token = block_on(sign(&s, alg, &claims(), None)).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let mut evil = claims();
            evil["sub"] = "usr_admin".into();
            let tampered = format!("{}.{}.{}", parts[0], part(&evil), parts[2]);
            assert_eq!(
                block_on(verify(&s, &tampered, NOW, 0)).unwrap_err(),
                JwtError::BadSignature
            );
            // A flipped signature bit, too.
            let mut sig = b64url_decode(parts[2]).unwrap();
            sig[10] ^= 1;
            let flipped = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
            assert_eq!(
                block_on(verify(&s, &flipped, NOW, 0)).unwrap_err(),
                JwtError::BadSignature
            );
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let s = signer();
        let token = block_on(sign(&s, SigningAlg::RS256, &claims(), None)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let crit = format!(
            "{}.{}.{}",
            part(&json!({"alg": "RS256", "kid": RSA_A_KID, "crit": ["exp"]})),
            parts[1],
            parts[2]
        );
        for bad in [
            String::new(),
            "a.b".to_owned(),
            format!("{token}.x"),
            format!("{}.{}", parts[0], parts[1]),
            format!("!!.{}.{}", parts[1], parts[2]),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", part(&json!(["RS256"])), parts[1], parts[2]),
            crit,
        ] {
            assert_eq!(
                block_on(verify(&s, &bad, NOW, 0)).unwrap_err(),
                JwtError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn expired_token_is_refused_and_exp_is_required() {
        let s = signer();
        let token = block_on(sign(&s, SigningAlg::ES256, &claims(), None)).unwrap();
        let exp = NOW + 300;
        assert!(block_on(verify(&s, &token, exp - 1, 0)).is_ok());
        assert_eq!(block_on(verify(&s, &token, exp, 0)).unwrap_err(), JwtError::Expired);
        assert!(block_on(verify(&s, &token, exp + 30, 60)).is_ok());
        assert_eq!(
            block_on(verify(&s, &token, exp + 60, 60)).unwrap_err(),
            JwtError::Expired
        );
        for c in [
            json!({"sub": "x"}),
            json!({"exp": "soon"}),
            json!({"exp": NOW + 300, "nbf": "now"}),
        ] {
            let token = block_on(sign(&s, SigningAlg::ES256, &c, None)).unwrap();
            assert_eq!(
                block_on(verify(&s, &token, NOW, 0)).unwrap_err(),
                JwtError::Malformed,
                "{c}"
            );
        }
    }

    #[test]
    fn not_yet_valid_token_is_refused() {
        let s = signer();
        let future_nbf = json!({"nbf": NOW + 100, "exp": NOW + 300});
        let future_iat = json!({"iat": NOW + 100, "exp": NOW + 300});
        for c in [future_nbf, future_iat] {
            let token = block_on(sign(&s, SigningAlg::RS256, &c, None)).unwrap();
            assert_eq!(
                block_on(verify(&s, &token, NOW, 60)).unwrap_err(),
                JwtError::NotYetValid,
                "{c}"
            );
            assert!(block_on(verify(&s, &token, NOW, 100)).is_ok(), "{c}");
        }
    }

    #[test]
    fn retired_key_still_verifies_but_never_signs() {
        let before = signer();
        let after = RustCryptoSigner::from_secret(&test_secret_rotated()).unwrap();
        let old_token = block_on(sign(&before, SigningAlg::RS256, &claims(), None)).unwrap();
        assert_eq!(header_of(&old_token)["kid"], RSA_A_KID);
        assert!(block_on(verify(&after, &old_token, NOW, 0)).is_ok());
        let retired = after.public_keys().iter().find(|k| k.kid == RSA_A_KID).unwrap();
        assert!(!retired.active);
        for _ in 0..3 {
            let new_token = block_on(sign(&after, SigningAlg::RS256, &claims(), None)).unwrap();
            assert_eq!(header_of(&new_token)["kid"], RSA_B_KID);
            assert!(block_on(verify(&after, &new_token, NOW, 0)).is_ok());
            // The old deployment does not know the new key.
            assert_eq!(
                block_on(verify(&before, &new_token, NOW, 0)).unwrap_err(),
                JwtError::UnknownKey
            );
        }
    }

    #[test]
    fn rfc8725_3_11_a_token_of_another_type_is_refused_where_one_type_is_expected() {
        let s = signer();
        let claims = claims();
        let sign = |t: Option<&str>| block_on(sign(&s, SigningAlg::RS256, &claims, t)).unwrap();
        let at = sign(Some(typ::ACCESS_TOKEN));
        let id = sign(Some(typ::ID_TOKEN));
        let identity = sign(Some(typ::GATEWAY_IDENTITY));
        let untyped = sign(None);
        assert!(block_on(verify_typed(&s, &at, NOW, 0, typ::ACCESS_TOKEN)).is_ok());
        assert!(block_on(verify_typed(&s, &id, NOW, 0, typ::ID_TOKEN)).is_ok());
        for (token, expected) in [
            (&id, typ::ACCESS_TOKEN),
            (&identity, typ::ACCESS_TOKEN),
            (&untyped, typ::ACCESS_TOKEN),
            (&at, typ::ID_TOKEN),
            (&identity, typ::ID_TOKEN),
            (&untyped, typ::ID_TOKEN),
        ] {
            assert_eq!(
                block_on(verify_typed(&s, token, NOW, 0, expected)).unwrap_err(),
                JwtError::WrongType,
                "{expected}"
            );
        }
        // RFC 7515 §4.1.9: compared without case, `application/` may be spelled out.
        for spelled in ["AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
            let t = sign(Some(spelled));
            assert!(
                block_on(verify_typed(&s, &t, NOW, 0, typ::ACCESS_TOKEN)).is_ok(),
                "{spelled}"
            );
        }
        for wrong in ["application/", "applicationat+jwt", "xat+jwt", "at+jwt "] {
            let t = sign(Some(wrong));
            assert_eq!(
                block_on(verify_typed(&s, &t, NOW, 0, typ::ACCESS_TOKEN)).unwrap_err(),
                JwtError::WrongType,
                "{wrong}"
            );
        }
    }
}
