//! The core's `Captcha` port: one POST to Turnstile's siteverify (or the URL configured in
//! `GATEHOUSE_TURNSTILE_VERIFY_URL`), with a timeout. The core builds the body and judges the
//! answer (`gatehouse_core::policy::turnstile`).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{select, Either};
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::Captcha;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// How long a login waits for siteverify before treating the token as not verified.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct FetchCaptcha;

fn err(e: worker::Error) -> InternalError {
    InternalError::new(format!("siteverify: {e}"))
}

#[async_trait(?Send)]
impl Captcha for FetchCaptcha {
    async fn siteverify(&self, url: &str, body: String) -> Result<(u16, Vec<u8>), InternalError> {
        let headers = Headers::new();
        headers
            .set("content-type", "application/x-www-form-urlencoded")
            .map_err(err)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let req = Request::new_with_init(url, &init).map_err(err)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let call = async move {
            let mut resp = fetch.send_with_signal(&signal).await?;
            let bytes = resp.bytes().await?;
            Ok::<_, worker::Error>((resp.status_code(), bytes))
        };
        let outcome = select(Box::pin(call), Delay::from(TIMEOUT)).await;
        match outcome {
            Either::Left((result, _)) => result.map_err(err),
            Either::Right(_) => {
                controller.abort();
                Err(InternalError::new(format!("siteverify: no answer within {TIMEOUT:?}")))
            }
        }
    }
}
