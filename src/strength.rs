//! The core's `PasswordStrength` port: one POST to the strength Worker (`workers/strength`,
//! zxcvbn) through the service binding `STRENGTH`, with a timeout. The binding never leaves
//! Cloudflare's network: the strength Worker has no route of its own.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{select, Either};
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::PasswordStrength;
use worker::{Delay, Env, Headers, Method, Request, RequestInit};

/// The binding's name in wrangler.toml (`[[services]]`).
pub const BINDING: &str = "STRENGTH";
/// zxcvbn answers in milliseconds once warm; a Worker that has not answered in this long is down.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct ServiceStrength<'a> {
    pub env: &'a Env,
}

#[async_trait(?Send)]
impl PasswordStrength for ServiceStrength<'_> {
    async fn score(&self, body: String) -> Result<(u16, Vec<u8>), InternalError> {
        let err = |e: worker::Error| InternalError::new(format!("strength worker: {e}"));
        let service = self.env.service(BINDING).map_err(err)?;
        let headers = Headers::new();
        headers.set("content-type", "application/json").map_err(err)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        // The host is not looked at: a service binding reaches its Worker whatever the URL.
        let req = Request::new_with_init("https://strength.internal/score", &init).map_err(err)?;
        let call = async move {
            let mut resp = service.fetch_request(req).await?;
            let bytes = resp.bytes().await?;
            Ok::<_, worker::Error>((resp.status_code(), bytes))
        };
        match select(Box::pin(call), Delay::from(TIMEOUT)).await {
            Either::Left((result, _)) => result.map_err(err),
            Either::Right(_) => Err(InternalError::new(format!(
                "strength worker: no answer within {TIMEOUT:?}"
            ))),
        }
    }
}
