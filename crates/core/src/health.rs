//! `GET /healthz`: the build version, and proof that D1 and the counter Durable Object answer.
//! A failing dependency answers 503 naming which one, never a panic.

use serde_json::json;

use crate::http::Response;
use crate::Ctx;

pub async fn handle(ctx: &Ctx<'_>) -> Response {
    let d1 = match ctx.db.query("SELECT COUNT(*) AS n FROM d1_migrations", &[]).await {
        Ok(_) => Ok(()),
        // Tests run the schema without wrangler's bookkeeping table; any query proves reachability.
        Err(_) => ctx.db.query("SELECT 1 AS ok", &[]).await.map(|_| ()),
    };
    let counters = ctx.counters.ping().await;
    let status = |r: &Result<(), crate::error::InternalError>| match r {
        Ok(()) => "ok",
        Err(e) => {
            crate::log::error(&format!("healthz: {e}"));
            "unavailable"
        }
    };
    let body = json!({
        "status": if d1.is_ok() && counters.is_ok() { "ok" } else { "degraded" },
        "version": ctx.settings.version,
        "checks": { "d1": status(&d1), "durable_object": status(&counters) },
        "time": ctx.clock.now(),
    });
    Response::json(if d1.is_ok() && counters.is_ok() { 200 } else { 503 }, &body)
}
