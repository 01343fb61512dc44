//! One outgoing request with a deadline, for the ports that call a service over HTTP (Turnstile's
//! siteverify, an HTTPS mail API, Pwned Passwords) or another Worker through a service binding
//! (the strength Worker): a slow service never holds a request (or a `waitUntil`) open for long.
//! A request to the internet is also aborted at the deadline; a service binding's has no signal
//! to abort with, and is left to finish unread.
//!
//! Redirects are not followed (`manual`): every service here answers where it is asked, and a
//! webhook receiver that redirected would move a signed body past the URL rules (https only) to
//! wherever it pointed. The 3xx comes back as the answer, which each port judges. Answers are
//! read up to [`MAX_ANSWER_BYTES`]: a receiver streaming without end cannot fill the memory.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use gatehouse_core::error::InternalError;
use worker::{AbortController, Delay, Fetch, Fetcher, Headers, Method, Request, RequestInit, RequestRedirect};

/// The most of an answer read (a Pwned Passwords range with padding is about 40 KB).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// POSTs `body` to `url` with `headers`; the status and the response body, or an error naming
/// `what` (a network error, or no answer within `timeout`).
pub async fn post(
    what: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), InternalError> {
    send(what, None, Method::Post, url, headers, Some(body), timeout).await
}

/// POSTs `body` to the Worker behind `service` (the URL's host is not looked at), like [`post`].
pub async fn post_to_service(
    what: &str,
    service: &Fetcher,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), InternalError> {
    send(what, Some(service), Method::Post, url, headers, Some(body), timeout).await
}

/// GETs `url` with `headers`, like [`post`].
pub async fn get(
    what: &str,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), InternalError> {
    send(what, None, Method::Get, url, headers, None, timeout).await
}

async fn send(
    what: &str,
    service: Option<&Fetcher>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), InternalError> {
    let err = |e: worker::Error| InternalError::new(format!("{what}: {e}"));
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v).map_err(err)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(h)
        .with_body(body.map(Into::into))
        .with_redirect(RequestRedirect::Manual);
    let req = Request::new_with_init(url, &init).map_err(err)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let call = async move {
        let mut resp = match service {
            Some(service) => service.fetch_request(req).await?,
            None => Fetch::Request(req).send_with_signal(&signal).await?,
        };
        let status = resp.status_code();
        let mut bytes = Vec::new();
        // A 3xx under `manual` has no body to read; any other answer is read up to the bound.
        if let Ok(mut stream) = resp.stream() {
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk?);
                if bytes.len() >= MAX_ANSWER_BYTES {
                    bytes.truncate(MAX_ANSWER_BYTES);
                    break;
                }
            }
        }
        Ok::<_, worker::Error>((status, bytes))
    };
    match select(Box::pin(call), Delay::from(timeout)).await {
        Either::Left((result, _)) => result.map_err(err),
        Either::Right(_) => {
            controller.abort();
            Err(InternalError::new(format!("{what}: no answer within {timeout:?}")))
        }
    }
}
