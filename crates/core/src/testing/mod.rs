//! Test doubles for the ports: a clock the test moves, seeded randomness, in-memory counters,
//! and a RustCrypto signer. Compiled only with the `testing` feature.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use async_trait::async_trait;

use crate::crypto::sha256;
use crate::error::InternalError;
use crate::mail::{Mail, Outgoing};
use crate::policy::counter::{apply, forgettable, Op, Record, Reply};
use crate::ports::{
    Captcha, Clock, Counters, MailTransport, Mailer, PasswordStrength, PwnedPasswords, Queue, Rng, WebhookPost,
};

pub mod signer;
pub mod webauthn;
pub use signer::RustCryptoSigner;

/// A clock that only moves when told to. Clones share the time (the counters' clock is the
/// request's clock).
#[derive(Clone)]
pub struct FakeClock(Rc<Cell<i64>>);

impl FakeClock {
    pub fn at(unix_seconds: i64) -> FakeClock {
        FakeClock(Rc::new(Cell::new(unix_seconds * 1000)))
    }
    pub fn advance(&self, seconds: i64) {
        self.advance_ms(seconds * 1000);
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

/// Deterministic randomness: SHA-256 of a seed and a counter. Never for production.
pub struct SeededRng {
    seed: u64,
    counter: Cell<u64>,
}

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng {
            seed,
            counter: Cell::new(0),
        }
    }
}

impl Rng for SeededRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
        for chunk in buf.chunks_mut(32) {
            let n = self.counter.get();
            self.counter.set(n + 1);
            let mut input = self.seed.to_le_bytes().to_vec();
            input.extend_from_slice(&n.to_le_bytes());
            let block = sha256(&input);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// Counters held in memory, running the same `policy::counter::apply` as the Durable Object;
/// `down` simulates an unreachable store.
pub struct MemCounters {
    pub down: Cell<bool>,
    clock: FakeClock,
    records: RefCell<HashMap<String, Record>>,
}

impl MemCounters {
    /// Counters on the test's clock (pass a clone of it).
    pub fn with_clock(clock: FakeClock) -> MemCounters {
        MemCounters {
            down: Cell::new(false),
            clock,
            records: RefCell::new(HashMap::new()),
        }
    }

    /// The record of `key`, for assertions.
    pub fn record(&self, key: &str) -> Option<Record> {
        self.records.borrow().get(key).cloned()
    }

    /// How many keys have a record (one per key, as Durable Objects).
    pub fn keys(&self) -> Vec<String> {
        self.records.borrow().keys().cloned().collect()
    }
}

impl Default for MemCounters {
    /// Counters with a clock of their own, frozen at the epoch; prefer `with_clock`.
    fn default() -> Self {
        MemCounters::with_clock(FakeClock::at(0))
    }
}

#[async_trait(?Send)]
impl Counters for MemCounters {
    async fn ping(&self) -> Result<(), InternalError> {
        if self.down.get() {
            Err(InternalError::new("counter store unreachable"))
        } else {
            Ok(())
        }
    }

    async fn apply(&self, key: &str, op: &Op) -> Result<Reply, InternalError> {
        self.ping().await?;
        let now = self.clock.now_ms();
        let mut records = self.records.borrow_mut();
        let record = records.entry(key.to_owned()).or_default();
        let reply = apply(record, op, now);
        if forgettable(record, now) {
            records.remove(key);
        }
        Ok(reply)
    }
}

/// A Turnstile siteverify stand-in: accepts `valid_token` for the `login` action and records
/// every request body it was sent.
pub struct FakeCaptcha {
    pub valid_token: String,
    pub down: Cell<bool>,
    pub requests: RefCell<Vec<(String, String)>>,
}

impl Default for FakeCaptcha {
    fn default() -> Self {
        FakeCaptcha {
            valid_token: "XXXX.DUMMY.TOKEN.XXXX".into(),
            down: Cell::new(false),
            requests: RefCell::new(Vec::new()),
        }
    }
}

#[async_trait(?Send)]
impl Captcha for FakeCaptcha {
    async fn siteverify(&self, url: &str, body: String) -> Result<(u16, Vec<u8>), InternalError> {
        self.requests.borrow_mut().push((url.to_owned(), body.clone()));
        if self.down.get() {
            return Err(InternalError::new("siteverify unreachable"));
        }
        let ok = form_urlencoded::parse(body.as_bytes()).any(|(k, v)| k == "response" && v == self.valid_token);
        let answer = if ok {
            serde_json::json!({ "success": true, "action": "login", "hostname": "id.example.com" })
        } else {
            serde_json::json!({ "success": false, "error-codes": ["invalid-input-response"] })
        };
        Ok((200, answer.to_string().into_bytes()))
    }
}

/// A Pwned Passwords range API stand-in: knows the passwords the test says were breached, pads
/// every answer with count-0 lines (one of them any password the test lists in `padding`), and
/// records each URL and its headers.
#[derive(Default)]
pub struct FakePwned {
    pub breached: RefCell<Vec<(String, u64)>>,
    /// Passwords whose suffix appears only as a padding line (count 0).
    pub padding: RefCell<Vec<String>>,
    pub down: Cell<bool>,
    /// Answer with this status instead of 200.
    pub status: Cell<Option<u16>>,
    pub requests: RefCell<Vec<PwnedRequest>>,
}

/// A URL the fake was asked, with its headers.
pub type PwnedRequest = (String, Vec<(String, String)>);

impl FakePwned {
    pub fn breach(&self, password: &str, times: u64) {
        self.breached.borrow_mut().push((password.to_owned(), times));
    }
}

#[async_trait(?Send)]
impl PwnedPasswords for FakePwned {
    async fn range(&self, url: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<u8>), InternalError> {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.requests.borrow_mut().push((url.to_owned(), headers));
        if self.down.get() {
            return Err(InternalError::new("pwned passwords unreachable"));
        }
        if let Some(status) = self.status.get() {
            return Ok((status, b"error".to_vec()));
        }
        let prefix = url.rsplit('/').next().unwrap_or("");
        let mut lines = vec![
            "0018A45C4D1DEF81644B54AB7F969B88D65:0".to_owned(),
            "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0".to_owned(),
        ];
        let entries = self.breached.borrow().clone().into_iter();
        let padding = self.padding.borrow().clone().into_iter().map(|p| (p, 0));
        for (password, times) in entries.chain(padding) {
            let (p, suffix) = crate::policy::password::pwned::prefix_and_suffix(&password);
            if p == prefix {
                lines.push(format!("{suffix}:{times}"));
            }
        }
        Ok((200, lines.join("\r\n").into_bytes()))
    }
}

/// A strength Worker stand-in: scores 4 unless the test set a score for the password, or for
/// any password containing one of the words sent beside it (as zxcvbn scores a user's own name);
/// records every body it was sent.
#[derive(Default)]
pub struct FakeStrength {
    pub scores: RefCell<Vec<(String, u8)>>,
    /// The score of a password that contains one of the user words sent with it.
    pub user_word_score: Cell<Option<u8>>,
    pub down: Cell<bool>,
    pub requests: RefCell<Vec<serde_json::Value>>,
}

#[async_trait(?Send)]
impl PasswordStrength for FakeStrength {
    async fn score(&self, body: String) -> Result<(u16, Vec<u8>), InternalError> {
        let request: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| InternalError::new(format!("strength request: {e}")))?;
        self.requests.borrow_mut().push(request.clone());
        if self.down.get() {
            return Err(InternalError::new("strength worker unreachable"));
        }
        let password = request["password"].as_str().unwrap_or("").to_owned();
        let words: Vec<String> = request["user_inputs"]
            .as_array()
            .map(|a| a.iter().filter_map(|w| w.as_str().map(str::to_lowercase)).collect())
            .unwrap_or_default();
        let mut score = 4;
        if let Some(s) = self.user_word_score.get() {
            if words.iter().any(|w| password.to_lowercase().contains(w.as_str())) {
                score = s;
            }
        }
        if let Some((_, s)) = self.scores.borrow().iter().find(|(p, _)| *p == password) {
            score = *s;
        }
        let answer = if score < 3 {
            serde_json::json!({"score": score, "guesses_log10": 3.0, "warning": "This is a very common password", "suggestions": ["Add another word or two. Uncommon words are better."]})
        } else {
            serde_json::json!({"score": score, "guesses_log10": 11.0, "warning": null, "suggestions": []})
        };
        Ok((200, answer.to_string().into_bytes()))
    }
}

/// An in-memory mailer: what the core queued, for the test to read (a code, a link).
#[derive(Default)]
pub struct MemMailer {
    pub queued: RefCell<Vec<Outgoing>>,
}

impl Mailer for MemMailer {
    fn queue(&self, mail: Outgoing) {
        self.queued.borrow_mut().push(mail);
    }
}

impl MemMailer {
    /// Every mail queued so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        self.queued.borrow().iter().map(|o| o.mail.clone()).collect()
    }
    /// The newest mail to `to`, if any.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.queued
            .borrow()
            .iter()
            .rev()
            .find(|o| o.mail.to == to)
            .map(|o| o.mail.clone())
    }
}

/// A POST the fake transport received: URL, headers, body.
pub type Posted = (String, Vec<(String, String)>, String);

/// A mail transport that records what it was asked to send and answers as told.
pub struct FakeTransport {
    /// The status the "API" answers.
    pub status: Cell<u16>,
    /// Whether the network or the binding fails outright.
    pub down: Cell<bool>,
    pub posts: RefCell<Vec<Posted>>,
    pub sent: RefCell<Vec<(String, Mail)>>,
}

impl Default for FakeTransport {
    fn default() -> Self {
        FakeTransport {
            status: Cell::new(200),
            down: Cell::new(false),
            posts: RefCell::new(Vec::new()),
            sent: RefCell::new(Vec::new()),
        }
    }
}

#[async_trait(?Send)]
impl MailTransport for FakeTransport {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Result<(u16, Vec<u8>), InternalError> {
        if self.down.get() {
            return Err(InternalError::new("mail API unreachable"));
        }
        self.posts.borrow_mut().push((url.to_owned(), headers.to_vec(), body));
        Ok((self.status.get(), b"{\"message\":\"refused\"}".to_vec()))
    }
    async fn send_email(&self, from: &str, mail: &Mail) -> Result<(), InternalError> {
        if self.down.get() {
            return Err(InternalError::new("send_email refused"));
        }
        self.sent.borrow_mut().push((from.to_owned(), mail.clone()));
        Ok(())
    }
}

/// A queue that keeps what was sent (body, delay) for the test to read or consume; `down`
/// makes every send fail.
#[derive(Default)]
pub struct MemQueue {
    pub sent: RefCell<Vec<(String, u32)>>,
    pub down: Cell<bool>,
}

impl MemQueue {
    /// Everything sent so far, oldest first; empties the queue.
    pub fn drain(&self) -> Vec<(String, u32)> {
        std::mem::take(&mut *self.sent.borrow_mut())
    }
}

#[async_trait(?Send)]
impl Queue for MemQueue {
    async fn send(&self, body: String, delay_seconds: u32) -> Result<(), InternalError> {
        if self.down.get() {
            return Err(InternalError::new("queue unavailable"));
        }
        self.sent.borrow_mut().push((body, delay_seconds));
        Ok(())
    }
}

/// A webhook receiver stand-in: answers the statuses the test lists, in order (then 200), or
/// fails outright while `down`; records every request.
#[derive(Default)]
pub struct FakeWebhook {
    pub answers: RefCell<std::collections::VecDeque<u16>>,
    pub down: Cell<bool>,
    pub posts: RefCell<Vec<Posted>>,
}

#[async_trait(?Send)]
impl WebhookPost for FakeWebhook {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
        _timeout: std::time::Duration,
    ) -> Result<(u16, Vec<u8>), InternalError> {
        self.posts.borrow_mut().push((url.to_owned(), headers.to_vec(), body));
        if self.down.get() {
            return Err(InternalError::new("webhook receiver unreachable"));
        }
        let status = self.answers.borrow_mut().pop_front().unwrap_or(200);
        Ok((status, b"ok".to_vec()))
    }
}
