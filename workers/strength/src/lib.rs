//! Gatehouse's password-strength Worker: zxcvbn behind `POST /score`, kept out of the main Worker
//! because it is ~920 KB gzip of wasm. It has no route of its own and is reached only through the
//! main Worker's service binding `STRENGTH`.
//!
//! This file is the Worker glue only (wasm32): it reads at most `MAX_BODY_BYTES` of the body and
//! turns `score::Reply` into a response. Every decision is in `score`. Nothing is logged: the body
//! holds a password.

pub mod score;

#[cfg(target_arch = "wasm32")]
mod glue {
    use crate::score::{self, Reply, MAX_BODY_BYTES, TOO_LARGE};
    use futures_util::StreamExt;
    use worker::{event, Context, Env, Headers, Request, Response, Result};

    /// Why a body was not read.
    enum BodyError {
        TooLarge,
        Unreadable,
    }

    /// Reads at most `MAX_BODY_BYTES` of the body: refused on `Content-Length` without reading,
    /// otherwise (chunked) read chunk by chunk until the total passes the cap; dropping the stream
    /// then cancels the rest of the upload.
    async fn read_capped(req: &mut Request) -> std::result::Result<Vec<u8>, BodyError> {
        let declared = req.headers().get("content-length").ok().flatten();
        if score::declared_too_large(declared.as_deref()) {
            if req.inner().body().is_some() {
                drop(req.stream());
            }
            return Err(BodyError::TooLarge);
        }
        if req.inner().body().is_none() {
            return Ok(Vec::new());
        }
        let mut stream = req.stream().map_err(|_| BodyError::Unreadable)?;
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn respond(reply: Reply) -> Result<Response> {
        let headers = Headers::new();
        headers.set("content-type", "application/json; charset=utf-8")?;
        headers.set("cache-control", "no-store")?;
        headers.set("x-content-type-options", "nosniff")?;
        if let Some(allow) = reply.allow {
            headers.set("allow", allow)?;
        }
        Ok(Response::from_bytes(reply.body.into_bytes())?
            .with_status(reply.status)
            .with_headers(headers))
    }

    /// Runs when the isolate starts (wasm instantiation), outside any request's CPU budget.
    /// worker-build 0.8.7 also exposes it as an RPC method `warm_up` on the entrypoint (it wraps
    /// every wasm export); calling it only scores the warm-up password again.
    #[event(start)]
    fn warm_up() {
        score::warm_up();
    }

    #[event(fetch)]
    pub async fn fetch(mut req: Request, _env: Env, _ctx: Context) -> Result<Response> {
        // The runtime's own method string: `worker::Method` turns unknown methods into GET.
        let method = req.inner().method();
        let path = req.path();
        if let Some(reply) = score::route(&method, &path) {
            if req.inner().body().is_some() {
                drop(req.stream());
            }
            return respond(reply);
        }
        let reply = match read_capped(&mut req).await {
            Ok(body) => score::score_body(&body),
            Err(BodyError::TooLarge) => Reply::refusal(TOO_LARGE),
            Err(BodyError::Unreadable) => Reply::refusal(score::Refusal {
                status: 400,
                reason: "body could not be read",
            }),
        };
        respond(reply)
    }
}
