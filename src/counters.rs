//! Counters in a SQLite-backed Durable Object. One object per key (named by the key:
//! `ip:203.0.113.7`, `user:alice`), so no single object is a hot spot.
//!
//! Each object keeps one record (`policy::counter::Record`, as JSON in one row) and runs the
//! core's `policy::counter::apply` on it. Why that is atomic: a Durable Object handles its
//! requests one at a time, and `storage.sql()` is synchronous, so the read, the decision and the
//! write of one operation happen with no `await` in between and nothing can interleave. That is
//! what keeps concurrent login attempts from slipping past the lockout count and a burst from
//! getting more than the limit. The clock is the object's own `Date.now()`: one clock per key,
//! whichever isolate the request came through.
//!
//! An alarm deletes a record once it means nothing anymore (`forget_at_ms`), so keys made up by
//! attackers do not accumulate. The alarm is set before a record is written (`apply_op`), never
//! after, so a failure in between leaves an alarm with no record (harmless: it clears the
//! object) rather than a record that nothing would delete.

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::policy::counter::{alarm_at, apply, forgettable, Op, Record, Reply};
use gatehouse_core::ports::Counters;
use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, Result, ScheduledTime,
    SqlStorage, State,
};

/// The Durable Object class (binding `COUNTERS`).
#[durable_object]
pub struct Counter {
    state: State,
}

#[derive(Deserialize)]
struct Row {
    json: String,
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

impl Counter {
    fn sql(&self) -> Result<SqlStorage> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)",
            None,
        )?;
        Ok(sql)
    }

    /// The stored record, if any. A record that no longer parses is treated as absent (it could
    /// only be from an incompatible version; starting fresh is the conservative reading of none).
    fn load(sql: &SqlStorage) -> Result<Option<Record>> {
        let rows: Vec<Row> = sql.exec("SELECT json FROM record WHERE id = 1", None)?.to_array()?;
        Ok(rows.first().and_then(|r| serde_json::from_str(&r.json).ok()))
    }

    async fn apply_op(&self, op: &Op) -> Result<Reply> {
        let sql = self.sql()?;
        // A record must never be written without an alarm, or nothing would ever delete it. So
        // when there is none, what the write below will keep is worked out on a copy and its
        // alarm set first: if setting it fails, the request fails with nothing written. (A
        // record left without one by an older version gets its alarm on its next use.) This
        // happens before the read-decide-write below, which stays free of any `await`; and the
        // input gate holds the alarm event while these storage calls are pending, so a pending
        // alarm cannot clear the object between this check and the write.
        if self.state.storage().get_alarm().await?.is_none() {
            let now = now_ms();
            let mut preview = Self::load(&sql)?.unwrap_or_default();
            apply(&mut preview, op, now);
            if let Some(at) = alarm_at(&preview, now) {
                self.schedule(at).await?;
            }
        }
        let now = now_ms();
        // Read, decide, write: synchronous, so atomic within this object (see the module doc).
        let existing = Self::load(&sql)?;
        let fresh = existing.is_none();
        let mut record = existing.unwrap_or_default();
        let reply = apply(&mut record, op, now);
        if forgettable(&record, now) {
            // Nothing worth keeping (a peek at a clean key): no row; an alarm, if any, finds
            // nothing and clears the object.
            if !fresh {
                sql.exec("DELETE FROM record", None)?;
            }
            return Ok(reply);
        }
        let json = serde_json::to_string(&record).map_err(|e| worker::Error::RustError(e.to_string()))?;
        sql.exec(
            "INSERT OR REPLACE INTO record (id, json) VALUES (1, ?)",
            vec![json.into()],
        )?;
        // The alarm set above, or one already pending, may be earlier than this record's forget
        // time: when it fires on a record that still matters it sets the next (`alarm`).
        Ok(reply)
    }

    async fn schedule(&self, at_ms: i64) -> Result<()> {
        let when = ScheduledTime::new(js_sys::Date::new(&(at_ms as f64).into()));
        self.state.storage().set_alarm(when).await
    }
}

impl DurableObject for Counter {
    fn new(state: State, _env: Env) -> Self {
        Counter { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
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
                    vec![(now_ms() / 1000).into()],
                )?;
                Response::ok("pong")
            }
            "/apply" => {
                let op: Op = match req.json().await {
                    Ok(op) => op,
                    Err(_) => return Response::error("not a counter operation", 400),
                };
                Response::from_json(&self.apply_op(&op).await?)
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let sql = self.sql()?;
        let now = now_ms();
        match Self::load(&sql)? {
            Some(record) if !forgettable(&record, now) => self.schedule(record.forget_at_ms).await?,
            // Nothing left worth keeping: drop the object's storage entirely.
            _ => self.state.storage().delete_all().await?,
        }
        Response::ok("")
    }
}

/// The core's `Counters` port over the `COUNTERS` namespace.
pub struct DoCounters(pub ObjectNamespace);

fn do_error(e: worker::Error) -> InternalError {
    InternalError::new(format!("Durable Object: {e}"))
}

#[async_trait(?Send)]
impl Counters for DoCounters {
    async fn ping(&self) -> std::result::Result<(), InternalError> {
        let stub = self.0.get_by_name("healthz").map_err(do_error)?;
        let resp = stub.fetch_with_str("https://counters/ping").await.map_err(do_error)?;
        if resp.status_code() == 200 {
            Ok(())
        } else {
            Err(InternalError::new(format!(
                "Durable Object answered {}",
                resp.status_code()
            )))
        }
    }

    async fn apply(&self, key: &str, op: &Op) -> std::result::Result<Reply, InternalError> {
        let body = serde_json::to_string(op).map_err(|e| InternalError::new(format!("counter op: {e}")))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init("https://counters/apply", &init).map_err(do_error)?;
        let stub = self.0.get_by_name(key).map_err(do_error)?;
        let mut resp = stub.fetch_with_request(req).await.map_err(do_error)?;
        if resp.status_code() != 200 {
            return Err(InternalError::new(format!(
                "Durable Object answered {} to a counter operation",
                resp.status_code()
            )));
        }
        resp.json::<Reply>().await.map_err(do_error)
    }
}
