//! The core's `Captcha` port: one POST to Turnstile's siteverify (or the URL configured in
//! `GATEHOUSE_TURNSTILE_VERIFY_URL`), with a timeout. The core builds the body and judges the
//! answer (`gatehouse_core::policy::turnstile`).

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::Captcha;

/// How long a login waits for siteverify before treating the token as not verified.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct FetchCaptcha;

#[async_trait(?Send)]
impl Captcha for FetchCaptcha {
    async fn siteverify(&self, url: &str, body: String) -> Result<(u16, Vec<u8>), InternalError> {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        crate::fetch::post("siteverify", url, &headers, body, TIMEOUT).await
    }
}
