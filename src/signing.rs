//! The `Signer` port on WebCrypto (`crypto.subtle`), 15-50x cheaper inside workerd than signing
//! in Rust (see /work/shared/TOOLCHAIN.md). Keys come from GATEHOUSE_PRIVATE_KEY through
//! `gatehouse_core::keys` and are imported once per isolate ([`WebCryptoSigner::cached`]).
//!
//! Per key: the PKCS#8 DER is imported extractable only to export its public JWK members; the
//! key kept for signing (active keys only) is imported again as non-extractable, and verification
//! uses the public JWK imported for `verify`. Retired keys keep no private key at all.

use std::cell::RefCell;
use std::rc::Rc;

use async_trait::async_trait;
use gatehouse_core::config::PRIVATE_KEY;
use gatehouse_core::crypto::sha256;
use gatehouse_core::error::InternalError;
use gatehouse_core::keys::{jwk_thumbprint, parse_private_keys};
use gatehouse_core::ports::{PublicKey, Signer, SigningAlg};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

struct WebKey {
    /// Non-extractable private key; `None` for retired keys, which never sign.
    signing: Option<CryptoKey>,
    verifying: CryptoKey,
}

/// Signs with WebCrypto: RS256 is RSASSA-PKCS1-v1_5 with SHA-256; ES256 is ECDSA P-256 with
/// SHA-256, whose WebCrypto output is already the raw r||s (IEEE P1363) form JWS uses.
pub struct WebCryptoSigner {
    subtle: SubtleCrypto,
    public: Vec<PublicKey>,
    keys: Vec<WebKey>,
}

thread_local! {
    /// The isolate's signer and the SHA-256 of the secret value it was built from.
    static CACHE: RefCell<Option<([u8; 32], Rc<WebCryptoSigner>)>> = const { RefCell::new(None) };
}

impl WebCryptoSigner {
    /// Parses a GATEHOUSE_PRIVATE_KEY value and imports every key into WebCrypto.
    pub async fn from_secret(value: &str) -> Result<WebCryptoSigner, InternalError> {
        let subtle = subtle()?;
        let mut public = Vec::new();
        let mut keys = Vec::new();
        for (index, key) in parse_private_keys(value)?.into_iter().enumerate() {
            let n = index + 1;
            let import_alg = import_algorithm(key.alg)?;
            let der = Uint8Array::from(key.pkcs8.as_slice());
            let exportable: CryptoKey = call(
                subtle.import_key_with_object("pkcs8", &der, &import_alg, true, &usages("sign")),
                &format!("{PRIVATE_KEY}: WebCrypto refused key {n}"),
            )
            .await?
            .unchecked_into();
            let exported = call(subtle.export_key("jwk", &exportable), &format!("exporting key {n}")).await?;
            let jwk = public_members(key.alg, &exported)
                .ok_or_else(|| InternalError::new(format!("exporting key {n}: unexpected JWK")))?;
            let verifying: CryptoKey = call(
                subtle.import_key_with_object("jwk", &js_object(&jwk)?, &import_alg, true, &usages("verify")),
                &format!("importing public key {n}"),
            )
            .await?
            .unchecked_into();
            let signing = if key.active {
                let key: CryptoKey = call(
                    subtle.import_key_with_object("pkcs8", &der, &import_alg, false, &usages("sign")),
                    &format!("{PRIVATE_KEY}: WebCrypto refused key {n}"),
                )
                .await?
                .unchecked_into();
                Some(key)
            } else {
                None
            };
            let kid = jwk_thumbprint(&jwk);
            public.push(PublicKey {
                kid,
                alg: key.alg,
                jwk,
                active: key.active,
            });
            keys.push(WebKey { signing, verifying });
        }
        Ok(WebCryptoSigner { subtle, public, keys })
    }

    /// The isolate's signer: keys are imported on first use and again only when the secret value
    /// changes (a new deployment or `wrangler secret put` gives a new isolate anyway).
    pub async fn cached(value: &str) -> Result<Rc<WebCryptoSigner>, InternalError> {
        let digest = sha256(value.as_bytes());
        let hit = CACHE
            .try_with(|cache| {
                cache
                    .try_borrow()
                    .ok()
                    .and_then(|c| c.as_ref().filter(|(d, _)| *d == digest).map(|(_, s)| Rc::clone(s)))
            })
            .ok()
            .flatten();
        if let Some(signer) = hit {
            return Ok(signer);
        }
        let signer = Rc::new(WebCryptoSigner::from_secret(value).await?);
        let _ = CACHE.try_with(|cache| {
            if let Ok(mut c) = cache.try_borrow_mut() {
                *c = Some((digest, Rc::clone(&signer)));
            }
        });
        Ok(signer)
    }

    fn key(&self, kid: &str, alg: SigningAlg) -> Option<&WebKey> {
        self.public
            .iter()
            .zip(&self.keys)
            .find(|(p, _)| p.kid == kid && p.alg == alg)
            .map(|(_, k)| k)
    }
}

#[async_trait(?Send)]
impl Signer for WebCryptoSigner {
    fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }

    async fn sign(&self, alg: SigningAlg, input: &[u8]) -> Result<(String, Vec<u8>), InternalError> {
        let (public, key) = self
            .public
            .iter()
            .zip(&self.keys)
            .find(|(p, _)| p.alg == alg && p.active)
            .ok_or_else(|| InternalError::new(format!("no active {} key", alg.as_str())))?;
        let signing = key
            .signing
            .as_ref()
            .ok_or_else(|| InternalError::new(format!("active {} key cannot sign", alg.as_str())))?;
        let data = Uint8Array::from(input);
        let signature = call(
            self.subtle
                .sign_with_object_and_js_u8_array(&sign_algorithm(alg)?, signing, &data),
            &format!("{} signing", alg.as_str()),
        )
        .await?;
        Ok((public.kid.clone(), Uint8Array::new(&signature).to_vec()))
    }

    async fn verify(&self, kid: &str, alg: SigningAlg, input: &[u8], signature: &[u8]) -> Result<bool, InternalError> {
        let Some(key) = self.key(kid, alg) else {
            return Ok(false);
        };
        let signature = Uint8Array::from(signature);
        let data = Uint8Array::from(input);
        let ok = call(
            self.subtle.verify_with_object_and_js_u8_array_and_js_u8_array(
                &sign_algorithm(alg)?,
                &key.verifying,
                &signature,
                &data,
            ),
            &format!("{} verification", alg.as_str()),
        )
        .await?;
        Ok(ok.as_bool().unwrap_or(false))
    }
}

/// `crypto.subtle` from the global scope, so it works in workerd and in a browser window.
pub(crate) fn subtle() -> Result<SubtleCrypto, InternalError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .ok()
        .filter(JsValue::is_object)
        .ok_or_else(|| InternalError::new("globalThis.crypto is not available"))?;
    let crypto: web_sys::Crypto = crypto.unchecked_into();
    let subtle = crypto.subtle();
    if subtle.is_undefined() || subtle.is_null() {
        return Err(InternalError::new("crypto.subtle is not available"));
    }
    Ok(subtle)
}

/// Awaits a WebCrypto call, turning a synchronous throw or a rejection into an InternalError.
/// WebCrypto's messages describe the failure, never the key bytes.
pub(crate) async fn call(promise: Result<Promise, JsValue>, what: &str) -> Result<JsValue, InternalError> {
    let promise = promise.map_err(|e| js_error(what, &e))?;
    JsFuture::from(promise).await.map_err(|e| js_error(what, &e))
}

fn js_error(what: &str, e: &JsValue) -> InternalError {
    let field = |name: &str| {
        Reflect::get(e, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
    };
    let detail = match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (_, Some(message)) => message,
        _ => e.as_string().unwrap_or_else(|| "unknown error".to_owned()),
    };
    InternalError::new(format!("{what}: {detail}"))
}

pub(crate) fn object(members: &[(&str, &str)]) -> Result<Object, InternalError> {
    let obj = Object::new();
    for (name, value) in members {
        Reflect::set(&obj, &JsValue::from_str(name), &JsValue::from_str(value))
            .map_err(|e| js_error("building a WebCrypto parameter", &e))?;
    }
    Ok(obj)
}

fn js_object(members: &Map<String, Value>) -> Result<Object, InternalError> {
    let pairs: Vec<(&str, &str)> = members
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
        .collect();
    object(&pairs)
}

pub(crate) fn usages(usage: &str) -> JsValue {
    Array::of1(&JsValue::from_str(usage)).into()
}

fn import_algorithm(alg: SigningAlg) -> Result<Object, InternalError> {
    match alg {
        SigningAlg::RS256 => object(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")]),
        SigningAlg::ES256 => object(&[("name", "ECDSA"), ("namedCurve", "P-256")]),
    }
}

fn sign_algorithm(alg: SigningAlg) -> Result<Object, InternalError> {
    match alg {
        SigningAlg::RS256 => object(&[("name", "RSASSA-PKCS1-v1_5")]),
        SigningAlg::ES256 => object(&[("name", "ECDSA"), ("hash", "SHA-256")]),
    }
}

/// The public members of an exported JWK (`kty`,`n`,`e` or `kty`,`crv`,`x`,`y`). Listing what to
/// keep, rather than what to drop (`d`, `p`, `q`, `dp`, `dq`, `qi`, `key_ops`, `ext`), means no
/// private member can slip through.
fn public_members(alg: SigningAlg, exported: &JsValue) -> Option<Map<String, Value>> {
    let (kty, names): (&str, &[&str]) = match alg {
        SigningAlg::RS256 => ("RSA", &["kty", "n", "e"]),
        SigningAlg::ES256 => ("EC", &["kty", "crv", "x", "y"]),
    };
    let mut jwk = Map::new();
    for name in names {
        let value = Reflect::get(exported, &JsValue::from_str(name)).ok()?.as_string()?;
        jwk.insert((*name).to_owned(), Value::String(value));
    }
    let curve_ok = alg == SigningAlg::RS256 || jwk.get("crv").and_then(Value::as_str) == Some("P-256");
    (jwk.get("kty").and_then(Value::as_str) == Some(kty) && curve_ok).then_some(jwk)
}
