//! After a request: the events it recorded that match a rule become queue messages. Runs in
//! the Worker's `waitUntil`, after the response, so neither D1 nor the queue delays a sign-in;
//! a request that recorded no event does nothing here (no D1 read).
//!
//! The active rules (enabled stored rules and the defaults) are read from D1 at most once per
//! [`MAX_AGE_MS`] per isolate ([`ActiveRules`], kept by the adapter): that is the longest a
//! rule change takes to apply to new events. The consumer reads the rule again before it
//! delivers, so a rule deleted or disabled meanwhile sends nothing. A request that changed a
//! rule reads them again at once, so the isolate that served the change applies it at once.

use super::delivery::Message;
use super::matcher::matches;
use super::rules::Rule;
use super::{defaults, Recorded};
use crate::config::Settings;
use crate::error::InternalError;
use crate::ports::{Db, Queue};
use crate::store::{notification_rules, users};

/// How long a loaded set of rules is used before D1 is read again.
pub const MAX_AGE_MS: i64 = 30_000;

/// The kinds of the audit events of rule changes (`admin_notification_rule_created`, ...).
const RULE_CHANGE_PREFIX: &str = "admin_notification_rule_";

/// The rules events are matched against, and when they were read.
#[derive(Debug, Clone)]
pub struct ActiveRules {
    pub loaded_at_ms: i64,
    pub rules: Vec<Rule>,
}

impl ActiveRules {
    pub fn fresh(&self, now_ms: i64) -> bool {
        (0..MAX_AGE_MS).contains(&(now_ms - self.loaded_at_ms))
    }

    /// Reads the enabled stored rules and adds the defaults these settings turn on.
    pub async fn load(db: &dyn Db, settings: &Settings, now_ms: i64) -> Result<ActiveRules, InternalError> {
        let mut rules = notification_rules::enabled(db).await?;
        rules.extend(defaults::rules(settings));
        Ok(ActiveRules {
            loaded_at_ms: now_ms,
            rules,
        })
    }
}

/// Sends one message per (event, matching rule); returns how many were sent. A failed send is
/// logged and the rest still go.
pub async fn enqueue(
    db: &dyn Db,
    queue: &dyn Queue,
    rules: &ActiveRules,
    events: &[Recorded],
) -> Result<usize, InternalError> {
    let mut sent = 0;
    for event in events {
        let groups = if rules.rules.iter().any(|r| r.criteria.needs_groups()) {
            user_groups(db, event.user_id.as_deref()).await?
        } else {
            Vec::new()
        };
        for rule in rules.rules.iter().filter(|r| matches(&r.criteria, event, &groups)) {
            let body = Message::first(&rule.id, event).to_json()?;
            match queue.send(body, 0).await {
                Ok(()) => sent += 1,
                Err(e) => crate::error::log_internal(&InternalError::new(format!(
                    "notification for rule {} and event {} not queued: {e}",
                    rule.id, event.id
                ))),
            }
        }
    }
    Ok(sent)
}

/// The groups of the event's user (none without a user, or for a user since deleted).
pub async fn user_groups(db: &dyn Db, user_id: Option<&str>) -> Result<Vec<String>, InternalError> {
    let Some(id) = user_id else {
        return Ok(Vec::new());
    };
    Ok(users::by_id(db, id).await?.map(|u| u.groups).unwrap_or_default())
}

/// Everything the adapter does after a request: nothing at all when it recorded no event;
/// otherwise the active rules (from `cached` while fresh, else read again) and the messages.
/// Returns the rules used, for the adapter to keep for the next request of this isolate.
pub async fn after_request(
    db: &dyn Db,
    queue: &dyn Queue,
    settings: &Settings,
    cached: Option<ActiveRules>,
    now_ms: i64,
    events: &[Recorded],
) -> Result<Option<ActiveRules>, InternalError> {
    if events.is_empty() {
        return Ok(cached);
    }
    let rule_changed = events.iter().any(|e| e.kind.starts_with(RULE_CHANGE_PREFIX));
    let rules = match cached {
        Some(c) if c.fresh(now_ms) && !rule_changed => c,
        _ => ActiveRules::load(db, settings, now_ms).await?,
    };
    enqueue(db, queue, &rules, events).await?;
    Ok(Some(rules))
}
