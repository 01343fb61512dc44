//! Notifications in the Worker: the core's `Queue` port on the `NOTIFICATIONS` producer, its
//! `WebhookPost` port on `fetch` with a deadline, the hand-over of a request's events after the
//! response (`waitUntil`), and the queue consumer. What matches, what is sent and how answers
//! are judged is the core's (`gatehouse_core::events`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::events::delivery::{self, Consumer, Outcome};
use gatehouse_core::events::enqueue::{after_request, ActiveRules};
use gatehouse_core::events::Recorded;
use gatehouse_core::ports::{Clock, Queue, WebhookPost};
use worker::{Env, MessageBatch, MessageBuilder, MessageExt, QueueRetryOptionsBuilder};

use crate::adapter::{IsolateConfig, JsClock, WebRng};
use crate::d1::D1;

/// The producer binding (wrangler.toml `[[queues.producers]]`).
pub const BINDING: &str = "NOTIFICATIONS";
/// The queue the main queue hands a message to once its own retries are spent (a consumer that
/// kept failing); its messages become dead letters.
pub const DEAD_LETTER_QUEUE: &str = "gatehouse-notifications-dlq";

thread_local! {
    /// This isolate's active rules (`ActiveRules::fresh` bounds their age).
    static RULES: RefCell<Option<ActiveRules>> = const { RefCell::new(None) };
}

pub struct WorkerQueue(pub worker::Queue);

#[async_trait(?Send)]
impl Queue for WorkerQueue {
    async fn send(&self, body: String, delay_seconds: u32) -> Result<(), InternalError> {
        let mut message = MessageBuilder::new(body);
        if delay_seconds > 0 {
            message = message.delay_seconds(delay_seconds);
        }
        self.0
            .send(message.build())
            .await
            .map_err(|e| InternalError::new(format!("queue {BINDING}: {e}")))
    }
}

pub struct FetchWebhook;

#[async_trait(?Send)]
impl WebhookPost for FetchWebhook {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), InternalError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::fetch::post("webhook", url, &headers, body, timeout).await
    }
}

/// Queues notifications for the events the request recorded, after the response. A request
/// that recorded none does nothing here.
pub fn flush(env: &Env, ctx: &worker::Context, config: Rc<IsolateConfig>, recorded: Vec<Recorded>) {
    if recorded.is_empty() {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move {
        let queue = match env.queue(BINDING) {
            Ok(q) => WorkerQueue(q),
            Err(e) => {
                worker::console_error!("notifications not queued: queue binding {BINDING} unavailable: {e}");
                return;
            }
        };
        let db = match env.d1("DB") {
            Ok(db) => D1(db),
            Err(e) => {
                worker::console_error!("notifications not queued: D1 binding DB unavailable: {e}");
                return;
            }
        };
        let cached = RULES
            .try_with(|r| r.try_borrow_mut().ok().and_then(|mut r| r.take()))
            .ok()
            .flatten();
        match after_request(&db, &queue, &config.settings, cached, JsClock.now_ms(), &recorded).await {
            Ok(rules) => {
                let _ = RULES.try_with(|r| {
                    if let Ok(mut slot) = r.try_borrow_mut() {
                        *slot = rules;
                    }
                });
            }
            Err(e) => worker::console_error!("notifications not queued: {e}"),
        }
    });
}

/// The consumer of both queues. Each message is acknowledged unless the core asks the queue to
/// deliver it again (`Outcome::RetryInPlace`); a whole batch that cannot start (no D1, no
/// configuration) is retried by the queue, whose `max_retries` and dead-letter queue bound it.
#[cfg_attr(not(feature = "wasm-tests"), worker::event(queue))]
pub async fn queue(batch: MessageBatch<String>, env: Env, _ctx: worker::Context) -> worker::Result<()> {
    gatehouse_core::log::install(crate::adapter::log_sink);
    let config = IsolateConfig::get(&env)
        .await
        .map_err(|e| worker::Error::RustError(format!("notifications: configuration: {e}")))?;
    let db = D1(env.d1("DB")?);
    let queue = WorkerQueue(env.queue(BINDING)?);
    let rng = WebRng::new().map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mailer = crate::mail::Queue::default();
    let counters = crate::counters::DoCounters(env.durable_object("COUNTERS")?);
    let consumer = Consumer {
        settings: &config.settings,
        sealing_key: config.secrets.sealing_key.as_ref(),
        db: &db,
        rng: &rng,
        clock: &JsClock,
        queue: &queue,
        post: &FetchWebhook,
        counters: &counters,
        mailer: &mailer,
    };
    let from_dlq = batch.queue() == DEAD_LETTER_QUEUE;
    for message in batch.raw_iter() {
        // A body that is not a string is handed to the core as its JSON, which it refuses into
        // the dead-letter table.
        let raw = message.body();
        let body = raw
            .as_string()
            .or_else(|| js_sys::JSON::stringify(&raw).ok().and_then(|s| s.as_string()))
            .unwrap_or_default();
        let outcome = if from_dlq {
            delivery::handle_from_dead_letter_queue(&consumer, &body).await
        } else {
            delivery::handle(&consumer, &body).await
        };
        match outcome {
            Outcome::RetryInPlace { delay } => {
                message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build())
            }
            Outcome::Dead { reason } => {
                worker::console_warn!("notification dead-lettered: {reason}");
                message.ack();
            }
            Outcome::Requeued { attempt, delay } => {
                worker::console_log!("notification failed; attempt {attempt} in {delay} s");
                message.ack();
            }
            Outcome::Delivered | Outcome::Skipped(_) => message.ack(),
        }
    }
    crate::mail::deliver_all(env, config, mailer.take()).await;
    Ok(())
}
