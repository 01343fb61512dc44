//! Mail in the Worker: the core's `Mailer` port as a queue that the fetch handler empties after
//! the response (`waitUntil`), and its `MailTransport` port on `fetch` (the HTTPS mail API) and
//! on the `send_email` binding (`EMAIL`). What is sent, to whom and how the answer is judged is
//! the core's (`gatehouse_core::mail`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::mail::{Courier, Mail, Outgoing};
use gatehouse_core::ports::{MailTransport, Mailer};
use worker::Env;

use crate::adapter::{IsolateConfig, JsClock, WebRng};
use crate::d1::D1;

/// How long one delivery may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The request's mail, queued by the core; delivered by [`flush`] after the response.
#[derive(Default)]
pub struct Queue(RefCell<Vec<Outgoing>>);

impl Mailer for Queue {
    fn queue(&self, mail: Outgoing) {
        if let Ok(mut q) = self.0.try_borrow_mut() {
            q.push(mail);
        }
    }
}

impl Queue {
    pub fn take(&self) -> Vec<Outgoing> {
        self.0
            .try_borrow_mut()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

struct Transport {
    env: Env,
}

fn err(what: &str, e: impl std::fmt::Display) -> InternalError {
    InternalError::new(format!("{what}: {e}"))
}

#[async_trait(?Send)]
impl MailTransport for Transport {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Result<(u16, Vec<u8>), InternalError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::fetch::post("mail API", url, &headers, body, TIMEOUT).await
    }

    async fn send_email(&self, from: &str, mail: &Mail) -> Result<(), InternalError> {
        let binding = self
            .env
            .send_email("EMAIL")
            .map_err(|e| err("send_email binding EMAIL", e))?;
        let message = worker::SendEmailBuilder::new(from, &mail.to, &mail.subject);
        message.set_text(&mail.text);
        message.set_html(&mail.html);
        binding
            .send_with_builder(&message)
            .await
            .map(|_| ())
            .map_err(|e| err("send_email", format!("{e:?}")))
    }
}

/// Delivers the queued mail after the response: the request does not wait for a mail server.
pub fn flush(env: &Env, ctx: &worker::Context, config: Rc<IsolateConfig>, queued: Vec<Outgoing>) {
    if queued.is_empty() {
        return;
    }
    ctx.wait_until(deliver_all(env.clone(), config, queued));
}

/// Delivers `queued` now (the queue consumer's notification mail, or [`flush`]'s `waitUntil`).
pub async fn deliver_all(env: Env, config: Rc<IsolateConfig>, queued: Vec<Outgoing>) {
    if queued.is_empty() {
        return;
    }
    let db = match env.d1("DB") {
        Ok(db) => D1(db),
        Err(e) => {
            worker::console_error!("mail not delivered: D1 binding DB unavailable: {e}");
            return;
        }
    };
    let rng = match WebRng::new() {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("mail not delivered: {e}");
            return;
        }
    };
    let transport = Transport { env };
    let courier = Courier {
        settings: &config.settings.mail,
        api_key: config.secrets.mail_api_key.as_ref(),
        db: &db,
        rng: &rng,
        clock: &JsClock,
        transport: &transport,
    };
    for out in &queued {
        gatehouse_core::mail::deliver(&courier, out).await;
    }
}
