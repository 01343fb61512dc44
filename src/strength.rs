//! The core's `PasswordStrength` port: one POST to the strength Worker (`workers/strength`,
//! zxcvbn) through the service binding `STRENGTH`, with a timeout. The binding never leaves
//! Cloudflare's network: the strength Worker has no route of its own.

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::PasswordStrength;
use worker::Env;

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
        let service = self
            .env
            .service(BINDING)
            .map_err(|e| InternalError::new(format!("strength worker: {e}")))?;
        let headers = [("content-type", "application/json")];
        crate::fetch::post_to_service(
            "strength worker",
            &service,
            "https://strength.internal/score",
            &headers,
            body,
            TIMEOUT,
        )
        .await
    }
}
