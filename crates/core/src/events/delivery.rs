//! The queue consumer's logic: one message is one (rule, event) pair to deliver. Each attempt
//! ends as delivered, skipped (the rule is gone or no longer applies), retried later with
//! backoff (`NotifySettings::retry_delays`), or dead: written to the dead-letter table, after
//! the last attempt or at once for a permanent failure (a 4xx other than 408/429, a secret that
//! no longer opens).
//!
//! A retry is a new message carrying the attempt number, sent with the queue's delay: the
//! `worker` crate (0.8.7) does not expose a message's `attempts`, and the number is what decides
//! the next delay and when to give up. Only when that send fails does the adapter fall back to
//! the queue's own retry (`retry_with_options`), whose `max_retries` and dead-letter queue
//! catch a consumer that keeps failing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::{seal_context, Rule, Transport, THE_USER};
use super::webhook::{self, WebhookSecret};
use super::{defaults, Recorded};
use crate::config::Settings;
use crate::crypto::{b64url, random_id, sha256};
use crate::error::{log_internal, InternalError};
use crate::factors::sealed::SealingKey;
use crate::mail::{messages, Delivery, Outgoing};
use crate::ports::{Clock, Counters, Db, Mailer, Queue, Rng, WebhookPost};
use crate::store::dead_letters::{self, DeadLetter};
use crate::store::{notification_rules, users};
use crate::types::event_kind::EventKind;

/// The largest queue message Gatehouse sends (Cloudflare's limit is 128 KB); an event whose
/// detail would pass it travels without its detail.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// How long a webhook receiver has to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Notification mails one address may receive per hour: whoever can cause events (failed
/// sign-ins, lockouts) must not be able to flood a mailbox through a rule. The excess is
/// dropped, and a `mail_limited` event says so.
pub const MAILS_PER_ADDRESS_HOUR: u32 = 20;
/// The delay of the queue's own retry when a retry message could not be sent.
pub const FALLBACK_DELAY: u32 = 60;

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub rule: String,
    pub event: Recorded,
    /// 0 for the first attempt.
    #[serde(default)]
    pub attempt: u32,
}

impl Message {
    pub fn first(rule: &str, event: &Recorded) -> Message {
        Message {
            rule: rule.to_owned(),
            event: event.clone(),
            attempt: 0,
        }
    }

    /// The message as JSON, within [`MAX_MESSAGE_BYTES`].
    pub fn to_json(&self) -> Result<String, InternalError> {
        let enc = |m: &Message| serde_json::to_string(m).map_err(|e| InternalError::new(format!("queue message: {e}")));
        let s = enc(self)?;
        if s.len() <= MAX_MESSAGE_BYTES {
            return Ok(s);
        }
        let mut slim = self.clone();
        slim.event.detail = json!({ "truncated": true });
        let s = enc(&slim)?;
        if s.len() <= MAX_MESSAGE_BYTES {
            Ok(s)
        } else {
            Err(InternalError::new(
                "queue message too large even without the event detail",
            ))
        }
    }

    /// The Standard Webhooks `webhook-id`: the same for every attempt of this (rule, event), and
    /// different for two rules, which may send to the same receiver.
    pub fn webhook_id(&self) -> String {
        let digest = sha256(format!("{}\n{}", self.rule, self.event.id).as_bytes());
        format!("msg_{}", b64url(&digest[..18]))
    }
}

/// What the consumer needs; the adapter builds it from its bindings.
pub struct Consumer<'a> {
    pub settings: &'a Settings,
    pub sealing_key: Option<&'a SealingKey>,
    pub db: &'a dyn Db,
    pub rng: &'a dyn Rng,
    pub clock: &'a dyn Clock,
    pub queue: &'a dyn Queue,
    pub post: &'a dyn WebhookPost,
    /// Bounds the mail sent to one address (`MAILS_PER_ADDRESS_HOUR`).
    pub counters: &'a dyn Counters,
    /// Mail is queued here and delivered by the adapter (`mail::deliver`) after the batch.
    pub mailer: &'a dyn Mailer,
}

/// What became of a message. Every outcome but [`Outcome::RetryInPlace`] acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Skipped(&'static str),
    /// A new message for the next attempt was sent with this delay.
    Requeued {
        attempt: u32,
        delay: u32,
    },
    /// Written to the dead-letter table.
    Dead {
        reason: String,
    },
    /// Nothing could be recorded: let the queue deliver this message again after `delay`.
    RetryInPlace {
        delay: u32,
    },
}

/// How one attempt went.
enum Attempt {
    Delivered,
    Skipped(&'static str),
    /// Worth trying again (a network error, 408, 429, 5xx, D1 unavailable).
    Transient(String),
    /// Will never work as it is.
    Permanent(String),
}

/// Handles one message body from the notification queue.
pub async fn handle(c: &Consumer<'_>, body: &str) -> Outcome {
    let msg: Message = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => return dead(c, None, body, 1, format!("unreadable message: {e}")).await,
    };
    match attempt(c, &msg).await {
        Attempt::Delivered => Outcome::Delivered,
        Attempt::Skipped(why) => Outcome::Skipped(why),
        Attempt::Permanent(reason) => dead(c, Some(&msg), body, msg.attempt + 1, reason).await,
        Attempt::Transient(reason) => {
            let Some(&delay) = c.settings.notify.retry_delays.get(msg.attempt as usize) else {
                let reason = format!("gave up after {} attempts: {reason}", msg.attempt + 1);
                return dead(c, Some(&msg), body, msg.attempt + 1, reason).await;
            };
            let next = Message {
                attempt: msg.attempt + 1,
                ..msg
            };
            let sent = match next.to_json() {
                Ok(json) => c.queue.send(json, delay).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => Outcome::Requeued {
                    attempt: next.attempt,
                    delay,
                },
                Err(e) => {
                    log_internal(&e);
                    Outcome::RetryInPlace { delay }
                }
            }
        }
    }
}

/// A message the queue itself gave up on (it came through the dead-letter queue): recorded as
/// a dead letter.
pub async fn handle_from_dead_letter_queue(c: &Consumer<'_>, body: &str) -> Outcome {
    let msg: Option<Message> = serde_json::from_str(body).ok();
    let attempts = msg.as_ref().map_or(1, |m| m.attempt + 1);
    dead(
        c,
        msg.as_ref(),
        body,
        attempts,
        "the queue gave up: the consumer failed on every delivery".into(),
    )
    .await
}

async fn dead(c: &Consumer<'_>, msg: Option<&Message>, body: &str, attempts: u32, reason: String) -> Outcome {
    let id = match random_id(c.rng, "dlq_") {
        Ok(id) => id,
        Err(e) => {
            log_internal(&e);
            return Outcome::RetryInPlace { delay: FALLBACK_DELAY };
        }
    };
    let letter = DeadLetter {
        id,
        rule_id: msg.map(|m| m.rule.clone()).unwrap_or_default(),
        event_id: msg.map(|m| m.event.id.clone()).unwrap_or_default(),
        event_kind: msg.map(|m| m.event.kind.clone()).unwrap_or_default(),
        attempts: i64::from(attempts),
        reason: reason.clone(),
        message: body.to_owned(),
        created_at: c.clock.now(),
    };
    match dead_letters::insert(c.db, &letter).await {
        Ok(()) => Outcome::Dead { reason },
        Err(e) => {
            log_internal(&e);
            Outcome::RetryInPlace { delay: FALLBACK_DELAY }
        }
    }
}

/// The rule by id: a default one from the settings, else the stored one.
pub async fn find_rule(db: &dyn Db, settings: &Settings, id: &str) -> Result<Option<Rule>, InternalError> {
    if id.starts_with(defaults::PREFIX) {
        return Ok(defaults::rules(settings).into_iter().find(|r| r.id == id));
    }
    notification_rules::get(db, id).await
}

async fn attempt(c: &Consumer<'_>, msg: &Message) -> Attempt {
    let rule = match find_rule(c.db, c.settings, &msg.rule).await {
        Ok(Some(r)) if r.enabled => r,
        Ok(_) => return Attempt::Skipped("the rule was deleted or disabled"),
        Err(e) => return Attempt::Transient(e.to_string()),
    };
    // The rule as it is now decides: one narrowed since the event was queued sends only what
    // it asks for today.
    let groups = if rule.criteria.needs_groups() {
        match super::enqueue::user_groups(c.db, msg.event.user_id.as_deref()).await {
            Ok(g) => g,
            Err(e) => return Attempt::Transient(e.to_string()),
        }
    } else {
        Vec::new()
    };
    if !super::matcher::matches(&rule.criteria, &msg.event, &groups) {
        return Attempt::Skipped("the rule no longer matches the event");
    }
    if rule.criteria.new_country {
        match new_country(c.db, &msg.event).await {
            Ok(true) => {}
            Ok(false) => return Attempt::Skipped("not a new country for this user"),
            Err(e) => return Attempt::Transient(e.to_string()),
        }
    }
    match &rule.transport {
        Transport::Webhook { url } => post_webhook(c, &rule, url, msg).await,
        Transport::Email { to } => send_mail(c, to, &msg.event).await,
    }
}

/// Whether a sign-in came from a country the user had signed in from never before. The first
/// sign-in that recorded a country is not "new" (there is nothing to compare with, and every
/// new account would be told); a sign-in without a country is not either.
pub async fn new_country(db: &dyn Db, event: &Recorded) -> Result<bool, InternalError> {
    let (Some(user), Some(country)) = (event.user_id.as_deref(), event.detail["country"].as_str()) else {
        return Ok(false);
    };
    let rows = db
        .query(
            "SELECT COUNT(*) AS earlier, \
             COALESCE(SUM(CASE WHEN json_extract(detail, '$.country') = ?3 THEN 1 ELSE 0 END), 0) AS same \
             FROM events WHERE user_id = ?1 AND kind = 'login_succeeded' AND id != ?2 AND created_at <= ?4 \
             AND json_extract(detail, '$.country') IS NOT NULL",
            &crate::params![user, event.id.as_str(), country, event.created_at],
        )
        .await?;
    let n = |name: &str| {
        rows.first()
            .and_then(|r| r.get(name))
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
    };
    Ok(n("earlier") > 0 && n("same") == 0)
}

async fn post_webhook(c: &Consumer<'_>, rule: &Rule, url: &str, msg: &Message) -> Attempt {
    let secret = match open_secret(c.sealing_key, rule) {
        Ok(s) => s,
        Err(e) => return Attempt::Permanent(e.to_string()),
    };
    let body = webhook::body(&msg.event);
    let headers = webhook::headers(&secret, &msg.webhook_id(), c.clock.now(), &body);
    match c.post.post(url, &headers, body, WEBHOOK_TIMEOUT).await {
        Ok((status, answer)) => judge(status, &answer),
        Err(e) => Attempt::Transient(e.to_string()),
    }
}

/// The webhook secret of `rule`, opened.
pub fn open_secret(key: Option<&SealingKey>, rule: &Rule) -> Result<WebhookSecret, InternalError> {
    let key =
        key.ok_or_else(|| InternalError::new("GATEHOUSE_SEALING_KEY is not set: webhook secrets cannot be opened"))?;
    let sealed = rule
        .secret_sealed
        .as_deref()
        .ok_or_else(|| InternalError::new("the webhook rule has no secret"))?;
    let bytes = key.open(sealed, &seal_context(&rule.id))?;
    WebhookSecret::from_bytes(bytes).map_err(InternalError::new)
}

/// A receiver's answer: 2xx delivered; 408, 429 and 5xx worth retrying; anything else (another
/// 4xx, a redirect) will not change by itself.
fn judge(status: u16, answer: &[u8]) -> Attempt {
    let said = || String::from_utf8_lossy(&answer[..answer.len().min(120)]).into_owned();
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Transient(format!("the receiver answered {status}: {}", said())),
        _ => Attempt::Permanent(format!("the receiver answered {status}: {}", said())),
    }
}

async fn send_mail(c: &Consumer<'_>, to: &[String], event: &Recorded) -> Attempt {
    let delivery = defaults::mail_delivery(c.settings);
    if delivery == Delivery::Off {
        return Attempt::Permanent("no mail delivery is configured (GATEHOUSE_MAILER)".into());
    }
    let user = match event.user_id.as_deref() {
        Some(id) => match users::by_id(c.db, id).await {
            Ok(u) => u,
            Err(e) => return Attempt::Transient(e.to_string()),
        },
        None => None,
    };
    let site = match c.settings.issuer.as_deref() {
        Some(i) => crate::http::host_of(i).to_owned(),
        None => "Gatehouse".to_owned(),
    };
    let username = user.as_ref().map(|u| u.username.as_str());
    let (subject, intro, advice) = wording(event, &site, username);
    let lines = facts(event, username);
    let mut sent = false;
    for address in to {
        let address = if address == THE_USER {
            match &user {
                // Only a verified address hears of the account (as every other security notice):
                // an address someone typed into the account is not told of its sign-ins.
                Some(u) if u.email_verified && crate::types::email::is_valid(&u.email) => u.email.clone(),
                // A user without a verified address (or gone) is simply not told.
                _ => continue,
            }
        } else {
            address.clone()
        };
        let key = crate::mail::address_key(&address);
        let tiers = [crate::mail::hourly(MAILS_PER_ADDRESS_HOUR)];
        match c.counters.rate_limit(&key, "notification", &tiers).await {
            Ok((true, _, _)) => {}
            Ok((false, _, _)) => {
                limited(c, event).await;
                continue;
            }
            Err(e) => return Attempt::Transient(e.to_string()),
        }
        match messages::notification(&address, &site, &subject, &intro, &lines, &advice) {
            Ok(mail) => {
                c.mailer.queue(Outgoing { delivery, mail });
                sent = true;
            }
            Err(e) => return Attempt::Permanent(e.to_string()),
        }
    }
    if !sent {
        Attempt::Skipped("no recipient has an address under its hourly bound")
    } else {
        Attempt::Delivered
    }
}

/// Records that a notification mail was dropped by the hourly bound (never the address).
async fn limited(c: &Consumer<'_>, event: &Recorded) {
    let e = crate::store::events::Event {
        kind: EventKind::MailLimited,
        user_id: event.user_id.as_deref(),
        client_id: None,
        ip: None,
        location: None,
        detail: json!({ "mail": crate::mail::MailKind::Notification.as_str(), "by": "address", "event": event.id }),
    };
    if let Err(e) = crate::store::events::record(c.db, c.rng, c.clock.now(), e).await {
        log_internal(&e);
    }
}

/// Subject, opening sentence and advice of a notification mail.
fn wording(event: &Recorded, site: &str, username: Option<&str>) -> (String, String, String) {
    let who = username.unwrap_or("(unknown)");
    let when = crate::pages::utc(event.created_at);
    let country = event.detail["country"].as_str().unwrap_or("an unknown country");
    match super::matcher::kind(&event.kind) {
        Some(EventKind::AccountLocked) => (
            format!("Your account on {site} was locked"),
            format!("Your account “{who}” on {site} was locked at {when} after too many failed sign-in attempts."),
            "If this was not you, someone may be guessing your password: change it once you can sign in again.".into(),
        ),
        Some(EventKind::LoginSucceeded) => (
            format!("New sign-in to your account on {site}"),
            format!("Your account “{who}” on {site} was signed in to at {when} from {country}, a country it had not been signed in from before."),
            "If this was not you, change your password now and tell your administrator.".into(),
        ),
        Some(EventKind::PasskeyCounterRegressed) => (
            format!("A possibly cloned passkey on {site}"),
            format!("A passkey of “{who}” presented a signature counter that did not go up, at {when}; the sign-in was refused."),
            "The authenticator may have been cloned: ask the user, and remove the passkey if in doubt.".into(),
        ),
        _ => (
            format!("{site}: {}", event.kind),
            format!("Gatehouse recorded the event {} at {when}.", event.kind),
            "You receive this because a notification rule matched it.".into(),
        ),
    }
}

/// The event's facts, one per line, bounded.
fn facts(event: &Recorded, username: Option<&str>) -> Vec<(String, String)> {
    let mut lines = vec![("Event".to_owned(), event.kind.clone())];
    if let Some(u) = username {
        lines.push(("User".into(), u.to_owned()));
    }
    if let Some(c) = &event.client_id {
        lines.push(("Client".into(), c.clone()));
    }
    if let Some(ip) = &event.ip {
        lines.push(("IP address".into(), ip.clone()));
    }
    if let Some(country) = event.detail["country"].as_str() {
        lines.push(("Country".into(), country.to_owned()));
    }
    let detail = event.detail.to_string();
    if detail != "{}" && detail != "null" {
        lines.push(("Detail".into(), crate::store::dead_letters::cut(&detail, 1000)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_answers_are_judged_by_status() {
        assert!(matches!(judge(200, b""), Attempt::Delivered));
        assert!(matches!(judge(204, b""), Attempt::Delivered));
        for s in [408, 429, 500, 502, 503] {
            assert!(matches!(judge(s, b""), Attempt::Transient(_)), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 413] {
            assert!(matches!(judge(s, b""), Attempt::Permanent(_)), "{s}");
        }
    }

    #[test]
    fn the_webhook_id_is_stable_per_rule_and_event() {
        let e = Recorded {
            id: "evt_1".into(),
            kind: "login_failed".into(),
            user_id: None,
            client_id: None,
            ip: None,
            detail: json!({}),
            created_at: 0,
        };
        let a = Message::first("ntf_a", &e);
        let mut again = a.clone();
        again.attempt = 3;
        assert_eq!(a.webhook_id(), again.webhook_id());
        assert_ne!(a.webhook_id(), Message::first("ntf_b", &e).webhook_id());
        assert!(a.webhook_id().starts_with("msg_"));
    }

    #[test]
    fn an_oversized_event_travels_without_its_detail() {
        let e = Recorded {
            id: "evt_1".into(),
            kind: "csp_report".into(),
            user_id: None,
            client_id: None,
            ip: None,
            detail: json!({"blob": "x".repeat(MAX_MESSAGE_BYTES)}),
            created_at: 0,
        };
        let json = Message::first("r", &e).to_json().unwrap();
        assert!(json.len() <= MAX_MESSAGE_BYTES);
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back.event.detail, json!({"truncated": true}));
    }
}
