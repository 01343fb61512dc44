//! The fetch handler: configuration checks, request/response conversion, and the ports.

use std::rc::Rc;

use gatehouse_core::config::{Secrets, Settings, PRIVATE_KEY};
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::gateway::Outcome;
use gatehouse_core::http::{Method, Request, Response};
use gatehouse_core::policy::counter::{Op, Reply};
use gatehouse_core::ports::{Clock, Counters, Db, Rng};
use gatehouse_core::Ctx;
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::{Context, Env, Headers};

use crate::counters::DoCounters;
use crate::d1::D1;
use crate::signing::WebCryptoSigner;

/// `Date.now()`.
pub struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

/// `crypto.getRandomValues`, from the global scope (workerd or a browser).
pub struct WebRng(web_sys::Crypto);

impl WebRng {
    pub fn new() -> Result<WebRng, InternalError> {
        let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())
            .ok()
            .and_then(|c| c.dyn_into::<web_sys::Crypto>().ok())
            .ok_or_else(|| InternalError::new("crypto is not available"))?;
        Ok(WebRng(crypto))
    }
}

impl Rng for WebRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
        // getRandomValues takes at most 65536 bytes per call.
        for chunk in buf.chunks_mut(65536) {
            self.0
                .get_random_values_with_u8_array(chunk)
                .map_err(|_| InternalError::new("crypto.getRandomValues failed"))?;
        }
        Ok(())
    }
}

/// Stands in for a binding that is missing or broken: every call fails with its name.
struct Unavailable(&'static str);

impl Unavailable {
    fn err(&self) -> InternalError {
        InternalError::new(format!("{} is unavailable", self.0))
    }
}

#[async_trait::async_trait(?Send)]
impl Db for Unavailable {
    async fn query(&self, _: &str, _: &[Value]) -> Result<Vec<Row>, InternalError> {
        Err(self.err())
    }
    async fn execute(&self, _: &str, _: &[Value]) -> Result<u64, InternalError> {
        Err(self.err())
    }
    async fn batch(&self, _: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        Err(self.err())
    }
}

#[async_trait::async_trait(?Send)]
impl Counters for Unavailable {
    async fn ping(&self) -> Result<(), InternalError> {
        Err(self.err())
    }
    async fn apply(&self, _: &str, _: &Op) -> Result<Reply, InternalError> {
        Err(self.err())
    }
}

/// Settings, secrets and imported signing keys, read once per isolate. They come from the
/// deployment (vars and secrets cannot change under a running isolate: a `wrangler secret put`
/// starts new ones), so re-reading ~25 bindings through the JS glue on every request is waste.
/// A configuration error is not cached: each request logs it again.
pub struct IsolateConfig {
    pub settings: Settings,
    pub secrets: Secrets,
    pub signer: Rc<WebCryptoSigner>,
}

thread_local! {
    static CONFIG: std::cell::RefCell<Option<Rc<IsolateConfig>>> = const { std::cell::RefCell::new(None) };
}

impl IsolateConfig {
    pub async fn get(env: &Env) -> Result<Rc<IsolateConfig>, InternalError> {
        let cached = CONFIG
            .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten();
        if let Some(c) = cached {
            return Ok(c);
        }
        let settings = Settings::from_lookup(|name| var(env, name))?;
        let secrets = Secrets::from_values(
            secret(env, gatehouse_core::config::COOKIE_SECRET),
            secret(env, gatehouse_core::config::ADMIN_TOKEN),
        )?;
        let key = secret(env, PRIVATE_KEY).ok_or_else(|| InternalError::new(format!("{PRIVATE_KEY} is not set")))?;
        let signer = WebCryptoSigner::cached(&key).await?;
        let config = Rc::new(IsolateConfig {
            settings,
            secrets,
            signer,
        });
        let _ = CONFIG.try_with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = Some(Rc::clone(&config));
            }
        });
        Ok(config)
    }
}

fn log_sink(level: &str, line: &str) {
    match level {
        "error" => worker::console_error!("{line}"),
        "warn" => worker::console_warn!("{line}"),
        _ => worker::console_log!("{line}"),
    }
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|v| v.to_string())
}

/// Converts the request; the body is read only when Gatehouse itself needs it (a proxied body
/// streams through untouched).
async fn to_core(req: &mut worker::Request, read_body: bool) -> Result<(Request, String), InternalError> {
    let url = req.url().map_err(|e| InternalError::new(format!("request url: {e}")))?;
    let origin = url.origin().ascii_serialization();
    // The runtime's own method string: `worker::Method` turns PROPFIND and the like into GET.
    let mut core = Request::new(Method::parse(&req.inner().method()), url.path());
    core.query = url.query().unwrap_or("").to_owned();
    core.headers = req
        .headers()
        .entries()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if read_body && matches!(core.method, Method::Post | Method::Put | Method::Patch | Method::Delete) {
        core.body = req
            .bytes()
            .await
            .map_err(|e| InternalError::new(format!("request body: {e}")))?;
    }
    Ok((core, origin))
}

pub fn to_worker(resp: Response) -> worker::Result<worker::Response> {
    let headers = Headers::new();
    for (k, v) in &resp.headers {
        headers.append(k, v)?;
    }
    let out = if resp.body.is_empty() {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(resp.body)?
    };
    Ok(out.with_status(resp.status).with_headers(headers))
}

/// A configuration problem: logged with the setting's name, answered as a plain 500.
fn misconfigured(e: &InternalError) -> worker::Result<worker::Response> {
    worker::console_error!("gatehouse refuses to serve: {e}");
    to_worker(Response::error_page(
        500,
        "server_misconfigured",
        "Gatehouse is not configured correctly. The operator has been told in the logs.",
    ))
}

#[cfg_attr(not(feature = "wasm-tests"), worker::event(fetch))]
pub async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    gatehouse_core::log::install(log_sink);

    let config = match IsolateConfig::get(&env).await {
        Ok(c) => c,
        Err(e) => return misconfigured(&e),
    };
    let (settings, secrets, signer) = (&config.settings, &config.secrets, &config.signer);
    // A missing binding does not stop the Worker: /healthz answers 503 naming it, and every
    // endpoint that needs it answers its protocol's server error.
    let db: Box<dyn Db> = match env.d1("DB") {
        Ok(db) => Box::new(D1(db)),
        Err(e) => {
            worker::console_error!("D1 binding DB unavailable: {e}");
            Box::new(Unavailable("D1 binding DB"))
        }
    };
    let counters: Box<dyn Counters> = match env.durable_object("COUNTERS") {
        Ok(ns) => Box::new(DoCounters(ns)),
        Err(e) => {
            worker::console_error!("Durable Object binding COUNTERS unavailable: {e}");
            Box::new(Unavailable("Durable Object binding COUNTERS"))
        }
    };
    let rng = match WebRng::new() {
        Ok(r) => r,
        Err(e) => return misconfigured(&e),
    };

    let path = req.path();
    let origin = match req.url() {
        Ok(url) => url.origin().ascii_serialization(),
        Err(e) => return misconfigured(&InternalError::new(format!("request url: {e}"))),
    };
    if let Err(e) = settings.check_origin(&origin) {
        return misconfigured(&e);
    }
    let own = gatehouse_core::owns(settings, &origin, &path);
    let mut req = req;
    let (core_req, origin) = match to_core(&mut req, own).await {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("{e}");
            return to_worker(Response::error_page(
                400,
                "invalid_request",
                "The request could not be read.",
            ));
        }
    };
    let ctx = Ctx {
        settings,
        secrets,
        origin,
        db: db.as_ref(),
        signer: signer.as_ref(),
        counters: counters.as_ref(),
        captcha: &crate::captcha::FetchCaptcha,
        clock: &JsClock,
        rng: &rng,
    };
    #[cfg(feature = "bench")]
    if let Some(resp) = crate::bench::handle(&ctx, &core_req).await {
        return to_worker(resp);
    }
    if let Some(resp) = gatehouse_core::handle(&ctx, &core_req).await {
        return to_worker(resp);
    }
    // Static files: `/static/` on the issuer's host, `/.gatehouse/static/` on every host (for
    // the pages Gatehouse serves on an app's host, where `/static/` is the app's).
    if let Some(file) = path.strip_prefix("/.gatehouse").filter(|p| p.starts_with("/static/")) {
        return static_asset(&ctx, &env, file).await;
    }
    if own && path.starts_with("/static/") {
        return static_asset(&ctx, &env, &path).await;
    }
    match gatehouse_core::gateway::route(&ctx, &core_req).await {
        Some(Outcome::Forward(f)) => {
            let method = req.inner().method();
            let body = req.inner().body();
            crate::proxy::forward(f, &method, body, Duration::from_secs(settings.origin_timeout as u64)).await
        }
        Some(Outcome::Respond(resp)) => to_worker(gatehouse_core::secure_own_response(&ctx, resp)),
        None => to_worker(gatehouse_core::secure_own_response(
            &ctx,
            Response::error_page(404, "not_found", "There is nothing here."),
        )),
    }
}

/// A file from `www/static/`, with the same security headers as every Gatehouse response.
async fn static_asset(ctx: &Ctx<'_>, env: &Env, path: &str) -> worker::Result<worker::Response> {
    let assets = match env.assets("ASSETS") {
        Ok(a) => a,
        Err(e) => return misconfigured(&InternalError::new(format!("assets binding ASSETS: {e}"))),
    };
    let mut upstream = assets.fetch(format!("https://assets.local{path}"), None).await?;
    let mut resp = Response::new(upstream.status_code());
    resp.headers = upstream
        .headers()
        .entries()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    resp.body = upstream.bytes().await?;
    if resp.status == 404 {
        resp = Response::error_page(404, "not_found", "There is nothing here.");
    }
    to_worker(gatehouse_core::secure_own_response(ctx, resp))
}
