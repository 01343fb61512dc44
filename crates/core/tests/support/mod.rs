//! Native test support: the core's ports on real SQLite (the migrations' own SQL), a fake clock,
//! seeded randomness and the RustCrypto signer; plus helpers that drive flows through `handle`.
#![allow(dead_code)]

use std::cell::RefCell;

use async_trait::async_trait;
use gatehouse_core::config::{Secret, Secrets, Settings};
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::http::{Method, Request, Response};
use gatehouse_core::ports::Db;
use gatehouse_core::testing::{FakeCaptcha, FakeClock, MemCounters, RustCryptoSigner, SeededRng};
use gatehouse_core::Ctx;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

pub struct SqliteDb(RefCell<Connection>);

impl SqliteDb {
    /// A fresh in-memory database with every migration applied, in order, as D1 would.
    pub fn migrated() -> SqliteDb {
        let conn = Connection::open_in_memory().expect("open sqlite");
        // D1 enforces foreign keys; so do the tests.
        conn.execute_batch("PRAGMA foreign_keys = ON;").expect("pragma");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
            let sql = std::fs::read_to_string(f).expect("read migration");
            conn.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        SqliteDb(RefCell::new(conn))
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.0.borrow().query_row(sql, [], |r| r.get(0)).expect("count")
    }

    /// One text value (the first column of the first row).
    pub fn text(&self, sql: &str) -> String {
        self.0.borrow().query_row(sql, [], |r| r.get(0)).expect("text")
    }

    /// Runs SQL directly (for tests that set up a state no endpoint would make).
    pub fn exec(&self, sql: &str) {
        self.0.borrow().execute_batch(sql).expect("exec");
    }
}

/// D1 as seen by one request while something else happens: its next `batch` calls fail (a brief
/// D1 error, an isolate killed mid-request), or a competing statement lands just before its next
/// batch (a concurrent request that got there first).
pub struct Interposed<'a> {
    pub inner: &'a SqliteDb,
    pub fail_batches: std::cell::Cell<u32>,
    pub before_batch: RefCell<Option<String>>,
    /// Any write (alone or in a batch) whose SQL contains this fails, e.g. "INSERT INTO events".
    pub fail_writes_with: RefCell<Option<&'static str>>,
    /// Before the first query whose SQL contains the marker, this SQL lands (a concurrent change
    /// between two reads of one request).
    pub before_query: RefCell<Option<(&'static str, String)>>,
}

impl<'a> Interposed<'a> {
    pub fn new(inner: &'a SqliteDb) -> Self {
        Interposed {
            inner,
            fail_batches: std::cell::Cell::new(0),
            before_batch: RefCell::new(None),
            fail_writes_with: RefCell::new(None),
            before_query: RefCell::new(None),
        }
    }

    fn refuses(&self, sql: &str) -> bool {
        self.fail_writes_with.borrow().is_some_and(|m| sql.contains(m))
    }
}

#[async_trait(?Send)]
impl Db for Interposed<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        let hit = self
            .before_query
            .borrow()
            .as_ref()
            .is_some_and(|(marker, _)| sql.contains(marker));
        if hit {
            if let Some((_, change)) = self.before_query.borrow_mut().take() {
                self.inner.exec(&change);
            }
        }
        self.inner.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        if self.refuses(sql) {
            return Err(InternalError::new("D1_ERROR: simulated failure"));
        }
        self.inner.execute(sql, params).await
    }
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        if let Some(sql) = self.before_batch.borrow_mut().take() {
            self.inner.exec(&sql);
        }
        if statements.iter().any(|(sql, _)| self.refuses(sql)) {
            return Err(InternalError::new("D1_ERROR: simulated failure"));
        }
        if self.fail_batches.get() > 0 {
            self.fail_batches.set(self.fail_batches.get() - 1);
            return Err(InternalError::new("D1_ERROR: simulated failure"));
        }
        self.inner.batch(statements).await
    }
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

fn run(conn: &Connection, sql: &str, params: &[Value]) -> Result<(Vec<Row>, u64), rusqlite::Error> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let values: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut map = Row::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(n) => serde_json::json!(n),
                ValueRef::Real(f) => serde_json::json!(f),
                ValueRef::Text(t) => serde_json::json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(_) => serde_json::Value::Null,
            };
            map.insert(name.clone(), v);
        }
        out.push(map);
    }
    drop(rows);
    Ok((out, conn.changes()))
}

#[async_trait(?Send)]
impl Db for SqliteDb {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        run(&self.0.borrow(), sql, params)
            .map(|(rows, _)| rows)
            .map_err(|e| InternalError::new(e.to_string()))
    }
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        run(&self.0.borrow(), sql, params)
            .map(|(_, n)| n)
            .map_err(|e| InternalError::new(e.to_string()))
    }
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        let mut conn = self.0.borrow_mut();
        let tx = conn.transaction().map_err(|e| InternalError::new(e.to_string()))?;
        let mut changes = Vec::with_capacity(statements.len());
        for (sql, params) in statements {
            let (_, n) = run(&tx, sql, params).map_err(|e| InternalError::new(e.to_string()))?;
            changes.push(n);
        }
        tx.commit().map_err(|e| InternalError::new(e.to_string()))?;
        Ok(changes)
    }
}

pub const ISSUER: &str = "https://id.example.com";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";
pub const T0: i64 = 1_800_000_000;

pub struct TestEnv {
    pub settings: Settings,
    pub secrets: Secrets,
    pub db: SqliteDb,
    pub signer: RustCryptoSigner,
    pub counters: MemCounters,
    pub captcha: FakeCaptcha,
    pub pwned: gatehouse_core::testing::FakePwned,
    pub strength: gatehouse_core::testing::FakeStrength,
    pub mailer: gatehouse_core::testing::MemMailer,
    pub clock: FakeClock,
    pub rng: SeededRng,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let clock = FakeClock::at(T0);
        let mut settings = Settings {
            issuer: Some(ISSUER.into()),
            ..Settings::default()
        };
        // The clock stands still in these tests; suites that test the limiter turn it on.
        settings.policy.rate_limit.clear();
        settings.policy.page_rate_limit.clear();
        TestEnv {
            settings,
            secrets: Secrets {
                cookie_secret: Secret::new("cookie-secret-0123456789abcdef0123456789"),
                admin_token: Secret::new(ADMIN_TOKEN),
                sealing_key: Some(
                    gatehouse_core::factors::sealed::SealingKey::derive(b"sealing-secret-0123456789abcdef0123456789")
                        .expect("sealing key"),
                ),
                mail_api_key: None,
            },
            db: SqliteDb::migrated(),
            signer: RustCryptoSigner::from_secret(&gatehouse_core::testing::signer::test_secret()).expect("test keys"),
            counters: MemCounters::with_clock(clock.clone()),
            captcha: FakeCaptcha::default(),
            pwned: gatehouse_core::testing::FakePwned::default(),
            strength: gatehouse_core::testing::FakeStrength::default(),
            mailer: gatehouse_core::testing::MemMailer::default(),
            clock,
            rng: SeededRng::new(7),
        }
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            secrets: &self.secrets,
            origin: ISSUER.into(),
            db: &self.db,
            signer: &self.signer,
            counters: &self.counters,
            captcha: &self.captcha,
            mailer: &self.mailer,
            webauthn: &gatehouse_core::testing::webauthn::RustCryptoVerifier,
            pwned: &self.pwned,
            strength: &self.strength,
            clock: &self.clock,
            rng: &self.rng,
        }
    }

    /// The same context as seen by a request that arrived on another origin (an app's host).
    pub fn ctx_at(&self, origin: &str) -> Ctx<'_> {
        let mut ctx = self.ctx();
        ctx.origin = origin.to_owned();
        ctx
    }

    /// Gatehouse's own endpoints on `origin`.
    pub fn send_at(&self, origin: &str, req: Request) -> Response {
        futures::executor::block_on(gatehouse_core::handle(&self.ctx_at(origin), &req))
            .unwrap_or_else(|| Response::new(404))
    }

    /// The gateway's decision for a request on `origin`.
    pub fn route_at(&self, origin: &str, req: &Request) -> Option<gatehouse_core::gateway::Outcome> {
        futures::executor::block_on(gatehouse_core::gateway::route(&self.ctx_at(origin), req))
    }

    /// Gatehouse's own endpoints with another view of the database (see [`Interposed`]).
    pub fn send_with_db(&self, db: &dyn Db, req: Request) -> Response {
        let mut ctx = self.ctx();
        ctx.db = db;
        futures::executor::block_on(gatehouse_core::handle(&ctx, &req)).unwrap_or_else(|| Response::new(404))
    }

    /// [`TestEnv::admin`] with another view of the database (see [`TestEnv::send_with_db`]).
    pub fn admin_with_db(&self, db: &dyn Db, method: Method, path: &str, body: Option<serde_json::Value>) -> Response {
        self.send_with_db(db, Self::admin_request(method, path, body))
    }

    pub fn send(&self, req: Request) -> Response {
        futures::executor::block_on(gatehouse_core::handle(&self.ctx(), &req)).unwrap_or_else(|| Response::new(404))
    }

    pub fn admin(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Response {
        self.send(Self::admin_request(method, path, body))
    }

    pub fn admin_request(method: Method, path: &str, body: Option<serde_json::Value>) -> Request {
        let mut req = Request::new(method, path).with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
        if let Some(b) = body {
            req = req.with_json(&b);
        }
        req
    }

    pub fn create_user(&self, username: &str, password: &str) -> String {
        let r = self.admin(
            Method::Post,
            "/admin/api/users",
            Some(serde_json::json!({"username": username, "email": format!("{username}@example.com"), "password": password, "name": "Test User"})),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json_body()["id"].as_str().expect("id").to_owned()
    }

    /// The id of the user `username`, as the admin API lists it.
    pub fn user_id(&self, username: &str) -> String {
        let users = self.admin(Method::Get, "/admin/api/users", None).json_body();
        let list = users["users"].as_array().expect("users");
        let user = list.iter().find(|u| u["username"] == username).expect("user exists");
        user["id"].as_str().expect("id").to_owned()
    }

    /// Creates a client; returns (client_id, secret).
    pub fn create_client(&self, body: serde_json::Value) -> (String, Option<String>) {
        let r = self.admin(Method::Post, "/admin/api/clients", Some(body));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json_body();
        (
            v["client_id"].as_str().expect("client_id").to_owned(),
            v["client_secret"].as_str().map(str::to_owned),
        )
    }
}

/// A browser: keeps cookies across requests.
#[derive(Default)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
    /// Where Cloudflare's edge would locate this browser (`request.cf`).
    pub location: gatehouse_core::http::Location,
    /// The address Cloudflare's edge saw (`cf-connecting-ip`); none by default.
    pub ip: Option<String>,
}

impl Browser {
    pub fn request(&self, method: Method, url: &str) -> Request {
        let path = url.strip_prefix(ISSUER).unwrap_or(url);
        let mut req = Request::new(method, path).with_location(self.location.clone());
        if let Some(ip) = &self.ip {
            req = req.with_header("cf-connecting-ip", ip);
        }
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.with_header("cookie", &header);
        }
        req
    }

    pub fn absorb(&mut self, resp: &Response) {
        for (k, v) in &resp.headers {
            if k != "set-cookie" {
                continue;
            }
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() && !v.contains("Max-Age=0") {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
    }

    pub fn send(&mut self, env: &TestEnv, req: Request) -> Response {
        let resp = env.send(req);
        self.absorb(&resp);
        resp
    }
}

/// Opens the login page at `login_url` in `b` and submits its form as `username`.
pub fn submit_login(env: &TestEnv, b: &mut Browser, login_url: &str, username: &str, password: &str) -> Response {
    let page = b.send(env, b.request(Method::Get, login_url));
    let html = String::from_utf8_lossy(&page.body).to_string();
    let form = b.request(Method::Post, "/oauth2/login").with_form(&[
        ("req", hidden(&html, "req").as_str()),
        ("csrf", hidden(&html, "csrf").as_str()),
        ("username", username),
        ("password", password),
    ]);
    b.send(env, form)
}

/// Extracts `name="…" value="…"` from a rendered form.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in page")) + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    // askama writes `&` as `&#38;`.
    html[start..end].replace("&#38;", "&").replace("&amp;", "&")
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "https://rp.example.com/cb";

/// A confirmed device for `user_id` written directly (as the account page would), and its secret.
pub fn add_confirmed_device(env: &TestEnv, user_id: &str) -> gatehouse_core::factors::totp::TotpSecret {
    use gatehouse_core::factors::totp::TotpSecret;
    use gatehouse_core::ports::Db;
    use gatehouse_core::store::totp_devices::{self, TotpDevice};
    let secret = TotpSecret::generate(&env.rng).unwrap();
    let key = env.secrets.sealing_key.as_ref().unwrap();
    let device = TotpDevice {
        id: "totp_test".into(),
        user_id: user_id.into(),
        name: "Phone".into(),
        secret_sealed: key
            .seal(
                &env.rng,
                secret.as_bytes(),
                &TotpDevice::seal_context(user_id, "totp_test"),
            )
            .unwrap(),
        confirmed_at: None,
        last_step: None,
        last_used_at: None,
        created_at: T0,
    };
    futures::executor::block_on(env.db.batch(&[
        totp_devices::insert_statement(&device),
        totp_devices::confirm_statement(user_id, "totp_test", 1, T0),
    ]))
    .unwrap();
    secret
}

/// Verifies `jwt` with the `jsonwebtoken` crate (none of Gatehouse's JWT or key code) against the
/// JWKS Gatehouse publishes: the key named by the header's `kid`, the algorithm that key is for,
/// `iss` and `aud` as given, the expiry against the real clock being skipped (the fake clock is
/// in 2027). `Err` says why it was refused.
pub fn verify_with_jsonwebtoken(env: &TestEnv, jwt: &str, audience: &str) -> Result<serde_json::Value, String> {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let jwks: JwkSet = serde_json::from_slice(&env.send(Request::new(Method::Get, "/oauth2/jwks.json")).body)
        .map_err(|e| format!("jwks: {e}"))?;
    let header = decode_header(jwt).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("no published key {kid}"))?;
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<jsonwebtoken::Algorithm>().ok())
        .ok_or("the published key names no algorithm")?;
    if header.alg != alg {
        return Err(format!("header alg {:?} is not the key's {alg:?}", header.alg));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[audience]);
    v.validate_exp = false;
    v.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
    decode::<serde_json::Value>(jwt, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| format!("refused: {e}"))
}
