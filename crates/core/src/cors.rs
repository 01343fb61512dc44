//! CORS for the endpoints a browser SPA may call directly: token, userinfo, revocation. Off by
//! default; on only for the exact origins in `GATEHOUSE_CORS_ORIGINS`. Arbitrary origins are
//! never reflected, and `/oauth2/authorize` (a top-level navigation) never gets CORS headers.

use crate::http::{Request, Response};
use crate::Ctx;

use crate::web::router::is_cors_path;

fn allowed_origin<'a>(ctx: &Ctx<'_>, req: &'a Request) -> Option<&'a str> {
    let origin = req.header("origin")?;
    ctx.settings.cors_origins.iter().any(|o| o == origin).then_some(origin)
}

/// Adds `Access-Control-Allow-Origin` to a response when the request's origin is listed.
pub fn apply(ctx: &Ctx<'_>, req: &Request, resp: &mut Response) {
    if !is_cors_path(&req.path) {
        return;
    }
    // Caches must not reuse one origin's answer for another.
    resp.add_header("vary", "Origin");
    if let Some(origin) = allowed_origin(ctx, req) {
        resp.set_header("access-control-allow-origin", origin);
        resp.set_header("access-control-expose-headers", "WWW-Authenticate");
    }
}

/// `OPTIONS` preflight: 204, with the grant only for a listed origin.
pub fn preflight(ctx: &Ctx<'_>, req: &Request) -> Response {
    let mut resp = Response::new(204);
    if allowed_origin(ctx, req).is_some() {
        let methods = if req.path == "/oauth2/userinfo" {
            "GET, POST"
        } else {
            "POST"
        };
        resp.set_header("access-control-allow-methods", methods);
        resp.set_header("access-control-allow-headers", "authorization, content-type, dpop");
        resp.set_header("access-control-max-age", "600");
    }
    resp
}
