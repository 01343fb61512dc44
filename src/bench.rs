//! Bench-only routes (cargo feature `bench`): repeat one unit of work `n` times inside workerd,
//! so `bench/cpu.mjs` can read its CPU cost as the latency difference between `n` and `0`.
//! workerd freezes timers during execution, so the cost is measured from outside.

use gatehouse_core::http::{Request, Response};
use gatehouse_core::ports::SigningAlg;
use gatehouse_core::{jwt, password, Ctx};
use serde_json::json;

pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Option<Response> {
    let what = req.path.strip_prefix("/__bench/")?;
    let n: u32 = req
        .query_params()
        .get("n")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(1000);
    let result = match what {
        "password" => password_verifications(ctx, n),
        "token" => token_issuances(ctx, n).await,
        "totp" => totp_verifications(ctx, n),
        "passkey" => passkey_assertions(n).await,
        _ => return None,
    };
    Some(match result {
        Ok(done) => Response::json(200, &json!({ "what": what, "n": done })),
        Err(e) => Response::json(500, &json!({ "error": e })),
    })
}

/// One Argon2id verification at the production parameters.
fn password_verifications(ctx: &Ctx<'_>, n: u32) -> Result<u32, String> {
    // The stored hash is computed once outside the repeated part (in both n=0 and n=N runs).
    let stored = password::hash("correct horse battery staple", ctx.rng).map_err(|e| e.to_string())?;
    let mut ok = 0;
    for _ in 0..n {
        if password::verify("correct horse battery staple", &stored).map_err(|e| e.to_string())? {
            ok += 1;
        }
    }
    Ok(ok)
}

/// What one TOTP code costs at sign-in: opening the device's sealed secret (HKDF-derived
/// AES-256-GCM) and checking the code against the three steps of the ±1 window (HMAC-SHA1).
fn totp_verifications(ctx: &Ctx<'_>, n: u32) -> Result<u32, String> {
    use gatehouse_core::factors::totp::{self, TotpSecret};
    let key = ctx
        .secrets
        .sealing_key
        .as_ref()
        .ok_or("GATEHOUSE_SEALING_KEY is not set")?;
    let secret = TotpSecret::generate(ctx.rng).map_err(|e| e.to_string())?;
    let sealed = key
        .seal(ctx.rng, secret.as_bytes(), "totp:bench")
        .map_err(|e| e.to_string())?;
    let now = u64::try_from(ctx.clock.now()).unwrap_or(0);
    let code = secret.code_at(now).map_err(|e| e.to_string())?;
    let mut ok = 0;
    for _ in 0..n {
        let opened = key.open(&sealed, "totp:bench").map_err(|e| e.to_string())?;
        let s = TotpSecret::from_bytes(opened).map_err(|e| e.to_string())?;
        if totp::verify(&s, &code, now, None).is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}

/// The signing work of one authorization-code token response: an RS256 access token and an
/// RS256 ID token (WebCrypto), with their claims serialised.
async fn token_issuances(ctx: &Ctx<'_>, n: u32) -> Result<u32, String> {
    let now = ctx.clock.now();
    for i in 0..n {
        let at = json!({"iss": ctx.issuer(), "sub": "usr_bench", "aud": "cli_bench", "client_id": "cli_bench",
            "scope": "openid profile email offline_access", "jti": format!("jti{i}"), "iat": now, "nbf": now, "exp": now + 600});
        let access = jwt::sign(ctx.signer, SigningAlg::RS256, &at, Some(jwt::typ::ACCESS_TOKEN))
            .await
            .map_err(|e| e.to_string())?;
        let id = json!({"iss": ctx.issuer(), "sub": "usr_bench", "aud": "cli_bench", "iat": now, "exp": now + 3600,
            "nonce": "n", "at_hash": gatehouse_core::crypto::token_hash(&access)});
        jwt::sign(ctx.signer, SigningAlg::RS256, &id, Some(jwt::typ::ID_TOKEN))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// One passkey sign-in's verification: the client data and authenticator data checked, the
/// COSE key read, the ES256 signature converted from DER and checked by WebCrypto. A fixed
/// assertion made by the tests' software authenticator (`gatehouse_core::testing::webauthn`,
/// P-256 seed 7, challenge 32 bytes of 0x42, counter 42).
async fn passkey_assertions(n: u32) -> Result<u32, String> {
    use gatehouse_core::factors::webauthn::{
        verify_assertion, Assertion, Ceremony, Identified, StoredCredential, UserVerification,
    };
    const COSE: &str = "a5010203262001215820ff6b25fb80730cc422fe9e0e888b2a981b4060503d9f4511067ccc1fe66c762922582041842c799f4d18625d094cb83a0d45fdac4452ab4cfdc4b1e07f983986d3473e";
    const AUTH_DATA: &str = "2659104ec00a76b88ca84f381c5d0b512aa0891a9f4000f1664421f1f7b1a6991d0000002a";
    const SIGNATURE: &str = "3045022100a3ad83d9997453c0aeeb82636e3d53d8272bf504ac8634af3400747a2a289475022018270ee9187f3b0a283f581c8c74199d23ac55bdcc3c9df4b8aba1872e363d3d";
    const CLIENT_DATA: &str = r#"{"type":"webauthn.get","challenge":"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI","origin":"https://id.example.com","crossOrigin":false}"#;
    let hex = |s: &str| -> Result<Vec<u8>, String> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16).map_err(|e| e.to_string()))
            .collect()
    };
    let (cose, auth_data, signature) = (hex(COSE)?, hex(AUTH_DATA)?, hex(SIGNATURE)?);
    let ceremony = Ceremony {
        challenge: &[0x42; 32],
        origin: "https://id.example.com",
        rp_id: "id.example.com",
        user_verification: UserVerification::Required,
    };
    let stored = StoredCredential {
        public_key: &cose,
        sign_count: 41,
        backup_eligible: true,
        user_handle: b"bench",
    };
    let assertion = Assertion {
        client_data_json: CLIENT_DATA.as_bytes(),
        authenticator_data: &auth_data,
        signature: &signature,
        user_handle: Some(b"bench"),
    };
    for _ in 0..n {
        verify_assertion(
            &crate::webauthn::WebCryptoVerifier,
            &ceremony,
            &stored,
            &assertion,
            Identified::Nobody,
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|r| format!("refused: {}", r.as_str()))?;
    }
    Ok(n)
}
