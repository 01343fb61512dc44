//! Ports: what the core needs from the world, implemented by the Worker (D1, Durable Objects,
//! `Date.now()`, `crypto.getRandomValues`, WebCrypto) and by the native tests (SQLite, fakes).

use async_trait::async_trait;

use crate::db::{Row, Value};
use crate::error::InternalError;
use crate::policy::counter::{Op, Reply};

/// Wall-clock time, passed in so tests control it.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// Cryptographically secure randomness, passed in so tests can seed it.
pub trait Rng {
    /// Fills `buf`; an error means no randomness is available, and the caller must fail closed.
    fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError>;
}

/// SQL storage. The SQL lives in the core (`crate::store`) and is the same on D1 and on the
/// SQLite the native tests use; adapters only move statements and rows.
#[async_trait(?Send)]
pub trait Db {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError>;
    /// Runs a statement and returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError>;
    /// Runs statements atomically (all or none), in order, and returns how many rows each changed.
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError>;
}

/// Signature algorithms Gatehouse signs and verifies with (JWA, RFC 7518).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    RS256,
    ES256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
        }
    }
    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            _ => None,
        }
    }
}

/// A public key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// The public JWK members (`kty`, `n`/`e` or `crv`/`x`/`y`), without `kid`/`alg`/`use`.
    pub jwk: serde_json::Map<String, serde_json::Value>,
    /// Whether this key signs new tokens; retired keys only verify until their tokens expire.
    pub active: bool,
}

/// Checks a WebAuthn credential's signature (`crate::factors::webauthn`). The core has parsed the
/// key and put the signature in WebCrypto's form: raw r||s (64 bytes) for ES256, 64 bytes for
/// Ed25519, PKCS#1 v1.5 for RS256. A key the implementation cannot load, or a signature of the
/// wrong length, is `Ok(false)`, never an error: it is the credential's fault, not the service's.
#[async_trait(?Send)]
pub trait SignatureVerifier {
    async fn verify(
        &self,
        key: &crate::factors::webauthn::CredentialKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, InternalError>;
}

/// Signing keys. Private keys never leave the implementation.
#[async_trait(?Send)]
pub trait Signer {
    /// Every published key, active and retired.
    fn public_keys(&self) -> &[PublicKey];
    /// Signs `input` with the active key for `alg`, returning `(kid, signature)`. The signature is
    /// in JWS form (PKCS#1 v1.5 for RS256, raw r||s for ES256).
    async fn sign(&self, alg: SigningAlg, input: &[u8]) -> Result<(String, Vec<u8>), InternalError>;
    /// Verifies a JWS signature made by the key `kid`, which must be of algorithm `alg`.
    async fn verify(&self, kid: &str, alg: SigningAlg, input: &[u8], signature: &[u8]) -> Result<bool, InternalError>;
}

/// Counters (rate limits, lockout, reputation), one record per key: in the Worker, one Durable
/// Object per key. The operations and their arithmetic are the core's (`policy::counter`); the
/// typed calls the endpoints make (`rate_limit`, `begin_attempt`, ...) are built on `apply`.
#[async_trait(?Send)]
pub trait Counters {
    /// Proves the counter store answers (used by `/healthz`).
    async fn ping(&self) -> Result<(), InternalError>;
    /// Runs `policy::counter::apply` on the record of `key` with the store's clock, as one atomic
    /// read-modify-write: no other operation on the same key may interleave.
    async fn apply(&self, key: &str, op: &Op) -> Result<Reply, InternalError>;
}

/// The CAPTCHA verifier's HTTP call (Turnstile siteverify); the core builds the request and
/// judges the answer (`policy::turnstile`).
#[async_trait(?Send)]
pub trait Captcha {
    /// POSTs the form-encoded `body` to `url`; returns the status and the response body.
    async fn siteverify(&self, url: &str, body: String) -> Result<(u16, Vec<u8>), InternalError>;
}

/// Have I Been Pwned's range API (`policy::password::pwned`): the core builds the URL, which
/// holds only a 5-character hash prefix, and searches the answer.
#[async_trait(?Send)]
pub trait PwnedPasswords {
    /// GETs `url` with `headers`; returns the status and the response body.
    async fn range(&self, url: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<u8>), InternalError>;
}

/// The password-strength Worker (`workers/strength`, zxcvbn) behind the service binding
/// `STRENGTH` (`policy::password::strength`): the core builds the JSON body and judges the answer.
#[async_trait(?Send)]
pub trait PasswordStrength {
    /// POSTs `body` to the strength Worker's `/score`; returns the status and the response body.
    async fn score(&self, body: String) -> Result<(u16, Vec<u8>), InternalError>;
}

/// Where a request leaves the mail it sends. A request never waits for a mail server: the
/// endpoint queues the message here (`crate::mail::send`), and the adapter delivers it after the
/// response with `crate::mail::deliver` (the Worker's `waitUntil`).
pub trait Mailer {
    fn queue(&self, mail: crate::mail::Outgoing);
}

/// The calls mail delivery makes to the world: an HTTPS mail API, and Cloudflare's
/// `send_email` binding. The core builds the request and judges the answer (`crate::mail`).
#[async_trait(?Send)]
pub trait MailTransport {
    /// POSTs `body` to `url` with `headers`; returns the status and the response body.
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Result<(u16, Vec<u8>), InternalError>;
    /// Sends through the `send_email` binding (`EMAIL`).
    async fn send_email(&self, from: &str, mail: &crate::mail::Mail) -> Result<(), InternalError>;
}

/// The notification queue (Cloudflare Queues, binding `NOTIFICATIONS`): the core builds the
/// JSON message (`events::delivery::Message`, at most `events::delivery::MAX_MESSAGE_BYTES`)
/// and the consumer in the same Worker delivers it.
#[async_trait(?Send)]
pub trait Queue {
    /// Sends `body` (JSON), delivered to the consumer after `delay_seconds` (0: at once).
    async fn send(&self, body: String, delay_seconds: u32) -> Result<(), InternalError>;
}

/// A webhook delivery's HTTP call (`events::delivery`): the core builds and signs the request
/// and judges the answer.
#[async_trait(?Send)]
pub trait WebhookPost {
    /// POSTs `body` to `url` with `headers`, giving up after `timeout`; returns the status and
    /// the start of the response body.
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
        timeout: std::time::Duration,
    ) -> Result<(u16, Vec<u8>), InternalError>;
}
