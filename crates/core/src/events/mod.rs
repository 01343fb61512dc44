//! Events after they are recorded: which notification rules they match, and their delivery
//! through Cloudflare Queues (README: "Notifications").
//!
//! The path of one event: an endpoint records it (`store::events`), the request's [`Capturing`]
//! database sees the committed insert, and after the response the adapter hands what it saw to
//! [`enqueue`], which sends one queue message per matching rule. The queue consumer runs
//! [`delivery::deliver`] on each message: a signed webhook ([`webhook`]) or a mail, retried with
//! backoff, and written to the dead-letter table when it cannot be delivered. A slow receiver
//! therefore never delays a sign-in, and a request that records no event costs nothing more.

pub mod capture;
pub mod defaults;
pub mod delivery;
pub mod enqueue;
pub mod matcher;
pub mod rules;
pub mod settings;
pub mod webhook;

pub use capture::Capturing;
pub use enqueue::enqueue;

use serde::{Deserialize, Serialize};

/// An event as it was stored (`events` row), owned, so it can travel in a queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: String,
    /// The stored (wire) name of its `EventKind`.
    pub kind: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
    /// Unix seconds.
    pub created_at: i64,
}
