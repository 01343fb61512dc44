//! The stages of a flow, one file each. A stage has two operations: `show` (its page, on GET)
//! and `submit` (its form, on POST). A stage that is not the flow's current one sends the
//! browser to the one that is; the abuse policies (`crate::policy`) are called from here, never
//! the other way round.

pub mod consent;
pub mod password;

use super::engine::{self, Standing};
use super::plan::Stage;
use super::{load, Flow};
use crate::error::Error;
use crate::http::{Params, Request, Response};
use crate::web::cookies;
use crate::Ctx;

/// The flow a stage's request names (`req`), or the page that says why it cannot go on.
pub(crate) async fn flow_of(
    ctx: &Ctx<'_>,
    req: &Request,
    params: &Params,
) -> Result<Result<(String, Flow), Response>, Error> {
    let id = params.require("req")?.to_owned();
    Ok(match load(ctx, req, &id).await? {
        Ok(flow) => Ok((id, flow)),
        Err(why) => Err(engine::not_here_page(why)),
    })
}

/// Whether the flow stands at one of `stages`; if not, the redirect to where it stands.
pub(crate) async fn at(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    stages: &[Stage],
) -> Result<Option<Response>, Error> {
    match engine::standing(ctx, flow).await? {
        Standing::At(s) if stages.contains(&s) => Ok(None),
        _ => engine::advance(ctx, req, id, flow.clone(), Vec::new()).await.map(Some),
    }
}

/// The browser binding and the CSRF token for a stage's form.
pub(crate) struct FormToken {
    pub csrf: String,
    pub set_cookie: Option<String>,
}

pub(crate) fn form_token(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<FormToken, Error> {
    let (browser, set_cookie) = cookies::browser_binding(ctx, req)?;
    Ok(FormToken {
        csrf: cookies::csrf_token(ctx, &browser, id),
        set_cookie,
    })
}

impl FormToken {
    /// Puts the binding cookie (if new) and the flow's `form-action` on a stage's page.
    pub fn finish(self, flow: &Flow, mut resp: Response) -> Response {
        resp.form_action = flow.form_action.clone();
        if let Some(c) = self.set_cookie {
            resp.add_header("set-cookie", &c);
        }
        resp
    }
}

/// Whether a stage's form carries this browser's CSRF token for the flow.
pub(crate) fn csrf_ok(ctx: &Ctx<'_>, req: &Request, id: &str, params: &Params) -> Result<bool, Error> {
    Ok(cookies::csrf_ok(ctx, req, id, params.get("csrf")?.unwrap_or("")))
}
