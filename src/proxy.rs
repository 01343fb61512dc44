//! Forwarding a gateway request to the origin with `fetch`, streaming the body both ways, with a
//! timeout; then the app's header policy on the origin's response. Failures answer 502/504 and
//! are logged; nothing waits forever.

use futures_util::future::{select, Either};
use gatehouse_core::gateway::{self, headers, Forward};
use gatehouse_core::http::Response;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{AbortSignal, Delay, Fetch};

fn js_err(e: JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

fn build_request(
    f: &Forward,
    method: &str,
    body: Option<web_sys::ReadableStream>,
    signal: &web_sys::AbortSignal,
) -> Result<web_sys::Request, String> {
    let hdrs = web_sys::Headers::new().map_err(js_err)?;
    for (k, v) in &f.headers {
        hdrs.append(k, v).map_err(js_err)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&hdrs);
    // The origin's redirects go back to the browser as they are.
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_signal(Some(signal));
    if let Some(stream) = body {
        init.set_body(&stream);
    }
    web_sys::Request::new_with_str_and_init(&f.url, &init).map_err(js_err)
}

/// A page Gatehouse answers in place of the origin, with the headers of its own pages.
fn own_page(mut resp: Response, https: bool) -> worker::Result<worker::Response> {
    headers::own_response(&mut resp.headers, https, None, &[], &[]);
    crate::adapter::to_worker(resp)
}

/// The proxied response, with the app's security headers applied. `method` is the client's
/// own token (`PROPFIND`, `MKCOL`...), not the few `worker::Method` knows.
pub async fn forward(
    f: Forward,
    method: &str,
    body: Option<web_sys::ReadableStream>,
    timeout: Duration,
) -> worker::Result<worker::Response> {
    if let Some(refusal) = gateway::method_refusal(method) {
        return own_page(refusal, f.https);
    }
    let controller = web_sys::AbortController::new().map_err(|e| worker::Error::from(js_err(e)))?;
    let request = match build_request(&f, method, body, &controller.signal()) {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("gateway: building the request to {} failed: {e}", f.app_name);
            return own_page(gateway::origin_failure(502, &f.app_name), f.https);
        }
    };
    let signal = AbortSignal::from(controller.signal());
    let fetch = Fetch::Request(worker::Request::from(request));
    let sent = fetch.send_with_signal(&signal);
    let timer = Delay::from(timeout);
    futures_util::pin_mut!(sent);
    futures_util::pin_mut!(timer);
    let upstream = match select(sent, timer).await {
        Either::Left((Ok(resp), _)) => resp,
        Either::Left((Err(e), _)) => {
            worker::console_error!("gateway: origin of {} unreachable: {e}", f.app_name);
            return own_page(gateway::origin_failure(502, &f.app_name), f.https);
        }
        Either::Right(((), _)) => {
            controller.abort();
            worker::console_error!("gateway: origin of {} timed out after {:?}", f.app_name, timeout);
            return own_page(gateway::origin_failure(504, &f.app_name), f.https);
        }
    };
    let mut out_headers: Vec<(String, String)> = upstream
        .headers()
        .entries()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    gateway::clean_origin_response(&mut out_headers);
    headers::apply(&mut out_headers, &f.policy, f.https);
    let status = upstream.status_code();
    let sys: web_sys::Response = upstream.into();
    let new_headers = web_sys::Headers::new().map_err(|e| worker::Error::from(js_err(e)))?;
    for (k, v) in &out_headers {
        new_headers.append(k, v).map_err(|e| worker::Error::from(js_err(e)))?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&new_headers);
    // The body stream passes through untouched: nothing is buffered.
    let body = sys.body();
    let resp = web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)
        .map_err(|e| worker::Error::from(js_err(e)))?;
    Ok(worker::Response::from(resp))
}
