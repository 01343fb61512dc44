//! The fetch handler: configuration checks, request/response conversion, and the ports.

use std::rc::Rc;

use futures_util::StreamExt;
use gatehouse_core::config::{Secrets, Settings, PRIVATE_KEY};
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::gateway::Outcome;
use gatehouse_core::http::{Method, Request, Response};
use gatehouse_core::policy::counter::{Op, Reply};
use gatehouse_core::ports::{Clock, Counters, Db, Rng};
use gatehouse_core::Ctx;
use gatehouse_core::{edge, health, limits};
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
            secret(env, gatehouse_core::config::SEALING_KEY),
            settings.mfa,
        )?
        .with_mail_api_key(secret(env, gatehouse_core::mail::MAIL_API_KEY));
        settings
            .mail
            .check(settings.issuer.as_deref(), secrets.mail_api_key.is_some())?;
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

pub fn log_sink(level: &str, line: &str) {
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

/// Why a request's body was not read.
enum BodyError {
    /// Longer than the cap (bytes): refused with 413, the rest never read.
    TooLarge(usize),
    /// Not all there within `limits::BODY_READ_SECONDS`: refused with 408.
    TooSlow,
    Unreadable(InternalError),
}

/// Reads at most `cap` bytes of the body: refused on `Content-Length` without reading at all, and
/// otherwise (chunked) read chunk by chunk until the total passes the cap. Either way the stream
/// is then cancelled (by dropping it): a request holds at most `cap` bytes of the isolate's
/// memory, and the runtime answers at once instead of draining the rest of the upload first.
async fn read_capped(req: &mut worker::Request, read: bool, cap: usize) -> Result<Vec<u8>, BodyError> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let unreadable = |e: worker::Error| BodyError::Unreadable(InternalError::new(format!("request body: {e}")));
    let mut stream = req.stream().map_err(unreadable)?;
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge(cap));
    }
    if !read {
        // Answered without its body (an admin request without the token): dropping the
        // stream cancels the upload.
        return Ok(Vec::new());
    }
    let reading = async {
        // Grown to what arrives, never doubled past it: at most `cap` bytes are held.
        let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(cap));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreadable)?;
            if body.len() + chunk.len() > cap {
                return Err(BodyError::TooLarge(cap));
            }
            body.reserve_exact(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let deadline = worker::Delay::from(Duration::from_secs(limits::BODY_READ_SECONDS));
    futures_util::pin_mut!(reading);
    futures_util::pin_mut!(deadline);
    match futures_util::future::select(reading, deadline).await {
        futures_util::future::Either::Left((result, _)) => result,
        futures_util::future::Either::Right(((), _)) => Err(BodyError::TooSlow),
    }
}

/// Cancels a body Gatehouse will not read, so the runtime does not drain it before answering.
fn discard_body(req: &mut worker::Request) {
    if req.inner().body().is_some() {
        drop(req.stream());
    }
}

/// Converts the request. The body is read only when Gatehouse itself answers it, and at most
/// `body_cap` bytes of it (`limits::body_cap`; 0: not read); a proxied body streams through
/// untouched.
async fn to_core(req: &mut worker::Request, url: &worker::Url, plan: (bool, usize)) -> Result<Request, BodyError> {
    // The runtime's own method string: `worker::Method` turns PROPFIND and the like into GET.
    let mut core = Request::new(Method::parse(&req.inner().method()), url.path());
    core.query = url.query().unwrap_or("").to_owned();
    core.headers = req
        .headers()
        .entries()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    core.location = location(req);
    let (read, cap) = plan;
    if cap > 0 {
        core.body = read_capped(req, read, cap).await?;
    }
    Ok(core)
}

/// `request.cf`, when the request has one (it came through Cloudflare's edge, or wrangler dev).
/// Its fields are read directly: `worker::Cf`'s getters panic when a field is missing.
fn cf_object(req: &worker::Request) -> Option<wasm_bindgen::JsValue> {
    let cf = js_sys::Reflect::get(req.inner(), &"cf".into()).ok()?;
    (!cf.is_undefined() && !cf.is_null()).then_some(cf)
}

fn cf_field(cf: &wasm_bindgen::JsValue, name: &str) -> Option<wasm_bindgen::JsValue> {
    js_sys::Reflect::get(cf, &name.into()).ok()
}

/// `request.cf.tlsVersion` (`TLSv1.3`); `None` without a `cf` object (a request not from
/// Cloudflare's edge) or without the field.
fn tls_version(req: &worker::Request) -> Option<String> {
    cf_field(&cf_object(req)?, "tlsVersion")?.as_string()
}

/// The request's location from `request.cf` (country, asn, latitude, longitude); the core keeps
/// only well-formed values (`Location::from_cf`).
fn location(req: &worker::Request) -> gatehouse_core::http::Location {
    let Some(cf) = cf_object(req) else {
        return gatehouse_core::http::Location::default();
    };
    let text = |name: &str| cf_field(&cf, name).and_then(|v| v.as_string());
    let country = text("country");
    let asn = cf_field(&cf, "asn").and_then(|v| v.as_f64());
    let (latitude, longitude) = (text("latitude"), text("longitude"));
    gatehouse_core::http::Location::from_cf(country.as_deref(), asn, latitude.as_deref(), longitude.as_deref())
}

thread_local! {
    /// The last `/healthz` round of this isolate (`gatehouse_core::health::handle_cached`).
    static HEALTH: std::cell::RefCell<Option<health::Report>> = const { std::cell::RefCell::new(None) };
}

/// `/healthz` from this isolate's last round of checks while it is fresh.
async fn healthz(ctx: &Ctx<'_>) -> Response {
    let last = HEALTH
        .try_with(|h| h.try_borrow().ok().and_then(|h| h.clone()))
        .ok()
        .flatten();
    let (resp, report) = health::handle_cached(ctx, last).await;
    let _ = HEALTH.try_with(|h| {
        if let Ok(mut slot) = h.try_borrow_mut() {
            *slot = Some(report);
        }
    });
    gatehouse_core::secure_own_response(ctx, resp)
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
pub async fn fetch(req: worker::Request, env: Env, worker_ctx: Context) -> worker::Result<worker::Response> {
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

    let url = match req.url() {
        Ok(url) => url,
        Err(e) => return misconfigured(&InternalError::new(format!("request url: {e}"))),
    };
    let path = url.path().to_owned();
    let origin = url.origin().ascii_serialization();
    if let Err(e) = settings.check_origin(&origin) {
        return misconfigured(&e);
    }
    let mail_queue = crate::mail::Queue::default();
    // Notes the events this request commits, for the notification rules (after the response).
    let db = gatehouse_core::events::Capturing::new(db.as_ref());
    let ctx = Ctx {
        settings,
        secrets,
        origin,
        db: &db,
        signer: signer.as_ref(),
        counters: counters.as_ref(),
        captcha: &crate::captcha::FetchCaptcha,
        mailer: &mail_queue,
        webauthn: &crate::webauthn::WebCryptoVerifier,
        pwned: &crate::pwned::FetchPwned,
        strength: &crate::strength::ServiceStrength { env: &env },
        clock: &JsClock,
        rng: &rng,
    };
    let method = Method::parse(&req.inner().method());
    // Transport first: a request that should not have come this way is not looked at further.
    let target = match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let tls = tls_version(&req);
    let mut req = req;
    if let Some(resp) = edge::check_transport(settings, &ctx.origin, method, &target, tls.as_deref()) {
        discard_body(&mut req);
        return to_worker(gatehouse_core::secure_own_response(&ctx, resp));
    }
    let own = gatehouse_core::owns(settings, &ctx.origin, &path);
    // The body before anything that would need it (rate limit, admin token, endpoint): nothing
    // reads past the cap.
    let plan = if own {
        let authorization = req.headers().get("authorization").ok().flatten();
        let admin_authorized = gatehouse_core::admin::is_authorized(secrets, authorization.as_deref());
        limits::body_plan(method, &path, admin_authorized)
    } else {
        (false, 0)
    };
    let core_req = match to_core(&mut req, &url, plan).await {
        Ok(r) => r,
        Err(BodyError::TooLarge(cap)) => {
            return to_worker(gatehouse_core::secure_own_response(
                &ctx,
                edge::body_too_large(&path, cap),
            ))
        }
        Err(BodyError::TooSlow) => {
            return to_worker(gatehouse_core::secure_own_response(
                &ctx,
                Response::error_page(408, "request_timeout", "The request body did not arrive in time."),
            ))
        }
        Err(BodyError::Unreadable(e)) => {
            worker::console_error!("{e}");
            return to_worker(gatehouse_core::secure_own_response(
                &ctx,
                Response::error_page(400, "invalid_request", "The request could not be read."),
            ));
        }
    };
    if own && health::answers(&core_req) {
        return to_worker(healthz(&ctx).await);
    }
    #[cfg(feature = "bench")]
    if let Some(resp) = crate::bench::handle(&ctx, &core_req).await {
        return to_worker(resp);
    }
    if let Some(resp) = gatehouse_core::handle(&ctx, &core_req).await {
        crate::mail::flush(&env, &worker_ctx, Rc::clone(&config), mail_queue.take());
        crate::notify::flush(&env, &worker_ctx, Rc::clone(&config), db.take());
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
            crate::notify::flush(&env, &worker_ctx, Rc::clone(&config), db.take());
            let method = req.inner().method();
            let body = req.inner().body();
            crate::proxy::forward(f, &method, body, Duration::from_secs(settings.origin_timeout as u64)).await
        }
        Some(Outcome::Respond(resp)) => {
            crate::notify::flush(&env, &worker_ctx, Rc::clone(&config), db.take());
            to_worker(gatehouse_core::secure_own_response(&ctx, resp))
        }
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
