//! `GET /healthz`: the build version, and proof that D1 and the counter Durable Object answer.
//! A failing dependency answers 503 naming which one, never a panic.
//!
//! Anyone may call it, and each round of checks runs a D1 query and writes the one `healthz`
//! Durable Object. So the Worker remembers a round per isolate for [`CACHE_MS`] and answers from
//! it ([`handle_cached`]); the answer says so (`"cached": true` and an `Age` header), and a
//! failing round is remembered too, so an outage does not make the endpoint a hot spot.

use serde_json::json;

use crate::error::InternalError;
use crate::http::Response;
use crate::Ctx;

/// How long one round of checks answers `/healthz`.
pub const CACHE_MS: i64 = 5_000;

/// The outcome of one round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checked_at_ms: i64,
    pub d1: bool,
    pub durable_object: bool,
}

impl Report {
    /// Whether this round may still answer at `now_ms` (a clock that went backwards starts over).
    pub fn reusable(&self, now_ms: i64) -> bool {
        (0..CACHE_MS).contains(&(now_ms - self.checked_at_ms))
    }
}

/// Runs the checks: a D1 query and a write to the counter Durable Object.
pub async fn check(ctx: &Ctx<'_>) -> Report {
    let d1 = crate::store::d1_migrations::reachable(ctx.db).await;
    let counters = ctx.counters.ping().await;
    let ok = |r: Result<(), InternalError>| match r {
        Ok(()) => true,
        Err(e) => {
            crate::log::error(&format!("healthz: {e}"));
            false
        }
    };
    Report {
        checked_at_ms: ctx.clock.now_ms(),
        d1: ok(d1),
        durable_object: ok(counters),
    }
}

/// The answer for a round of checks; `cached`: made for an earlier request.
fn respond(ctx: &Ctx<'_>, report: &Report, cached: bool) -> Response {
    let healthy = report.d1 && report.durable_object;
    let status = |ok: bool| if ok { "ok" } else { "unavailable" };
    let age_ms = (ctx.clock.now_ms() - report.checked_at_ms).max(0);
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": ctx.settings.version,
        "checks": { "d1": status(report.d1), "durable_object": status(report.durable_object) },
        "time": ctx.clock.now(),
        "cached": cached,
    });
    let mut resp = Response::json(if healthy { 200 } else { 503 }, &body);
    // RFC 9111 §5.1: seconds since the answer was made.
    resp.set_header("age", &(age_ms / 1000).to_string());
    resp
}

/// `/healthz` without memory (the core's router; native tests).
pub async fn handle(ctx: &Ctx<'_>) -> Response {
    respond(ctx, &check(ctx).await, false)
}

/// `/healthz` answered from `last` while it is fresh, else from a new round. Returns the round
/// the caller should remember (the Worker keeps it per isolate: the core holds no state).
pub async fn handle_cached(ctx: &Ctx<'_>, last: Option<Report>) -> (Response, Report) {
    let now = ctx.clock.now_ms();
    match last.filter(|r| r.reusable(now)) {
        Some(report) => (respond(ctx, &report, true), report),
        None => {
            let report = check(ctx).await;
            (respond(ctx, &report, false), report)
        }
    }
}

/// Whether `req` is a health check (`GET`/`HEAD /healthz`), which the Worker answers through
/// [`handle_cached`] with its per-isolate memory.
pub fn answers(req: &crate::http::Request) -> bool {
    use crate::http::Method;
    matches!(req.method, Method::Get | Method::Head) && req.path == "/healthz"
}
