//! Which events a request recorded, seen without touching the 18 places that record them: a
//! `Db` wrapper that notes every insert made with `store::events::INSERT` once it is committed.
//! An event in a batch that failed is not noted (it does not exist), nor one the batch deleted
//! again because its change did not apply (`store::events::UNDO_PREFIX`), so a notification
//! never describes something that did not happen.

use std::cell::RefCell;

use async_trait::async_trait;

use super::Recorded;
use crate::db::{Row, Value};
use crate::error::InternalError;
use crate::ports::Db;
use crate::store::events::{INSERT, UNDO_PREFIX};

/// The most events one request keeps for notification; a request records a handful, and a
/// bound keeps a pathological one from holding memory for its `waitUntil`.
pub const MAX_PER_REQUEST: usize = 32;

/// The request's database, noting the events it commits.
pub struct Capturing<'a> {
    inner: &'a dyn Db,
    seen: RefCell<Vec<Recorded>>,
}

impl<'a> Capturing<'a> {
    pub fn new(inner: &'a dyn Db) -> Capturing<'a> {
        Capturing {
            inner,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// The events committed so far, oldest first; empties the list.
    pub fn take(&self) -> Vec<Recorded> {
        self.seen
            .try_borrow_mut()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Forgets the event a batch deleted again (`store::events::UNDO_PREFIX`, its id first).
    fn forget(&self, params: &[Value]) {
        let Some(Value::Text(id)) = params.first() else {
            return;
        };
        if let Ok(mut seen) = self.seen.try_borrow_mut() {
            seen.retain(|e| e.id != *id);
        }
    }

    fn note(&self, sql: &str, params: &[Value]) {
        if sql != INSERT {
            return;
        }
        let Some(event) = from_params(params) else {
            return;
        };
        if let Ok(mut seen) = self.seen.try_borrow_mut() {
            if seen.len() < MAX_PER_REQUEST {
                seen.push(event);
            }
        }
    }
}

/// The event `store::events::record_statement` inserts with these parameters (in its order:
/// id, kind, user_id, client_id, ip, detail, created_at).
fn from_params(p: &[Value]) -> Option<Recorded> {
    let text = |i: usize| match p.get(i) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let created_at = match p.get(6) {
        Some(Value::Int(n)) => *n,
        _ => return None,
    };
    Some(Recorded {
        id: text(0)?,
        kind: text(1)?,
        user_id: text(2),
        client_id: text(3),
        ip: text(4),
        detail: text(5)
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
        created_at,
    })
}

#[async_trait(?Send)]
impl Db for Capturing<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        self.inner.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        let n = self.inner.execute(sql, params).await?;
        self.note(sql, params);
        Ok(n)
    }
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        let changes = self.inner.batch(statements).await?;
        for (i, (sql, params)) in statements.iter().enumerate() {
            self.note(sql, params);
            if sql.starts_with(UNDO_PREFIX) && changes.get(i).is_some_and(|n| *n > 0) {
                self.forget(params);
            }
        }
        Ok(changes)
    }
}
