//! Counters in a SQLite-backed Durable Object. One object per key (named by the key), so no
//! single object is a hot spot.

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::Counters;
use worker::{durable_object, DurableObject, Env, ObjectNamespace, Request, Response, Result, State};

/// The Durable Object class (binding `COUNTERS`).
#[durable_object]
pub struct Counter {
    state: State,
}

impl DurableObject for Counter {
    fn new(state: State, _env: Env) -> Self {
        Counter { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/ping" => {
                // Touch the object's SQLite storage, so "reachable" means storage answers too.
                let sql = self.state.storage().sql();
                sql.exec(
                    "CREATE TABLE IF NOT EXISTS pings (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
                    None,
                )?;
                sql.exec(
                    "INSERT OR REPLACE INTO pings (id, at) VALUES (1, ?)",
                    vec![(js_sys::Date::now() as i64 / 1000).into()],
                )?;
                Response::ok("pong")
            }
            _ => Response::error("not found", 404),
        }
    }
}

/// The core's `Counters` port over the `COUNTERS` namespace.
pub struct DoCounters(pub ObjectNamespace);

#[async_trait(?Send)]
impl Counters for DoCounters {
    async fn ping(&self) -> std::result::Result<(), InternalError> {
        let e = |e: worker::Error| InternalError::new(format!("Durable Object: {e}"));
        let stub = self.0.get_by_name("healthz").map_err(e)?;
        let resp = stub.fetch_with_str("https://counters/ping").await.map_err(e)?;
        if resp.status_code() == 200 {
            Ok(())
        } else {
            Err(InternalError::new(format!(
                "Durable Object answered {}",
                resp.status_code()
            )))
        }
    }
}
