//! The dev outbox: in local development (no issuer, a loopback origin) mail is stored in the
//! local database instead of sent, and `/dev/outbox` shows it, newest first
//! (`?format=json` for scripts and the end-to-end tests, `&to=` for one address). Anywhere
//! else the page does not exist: it answers 404 like any unknown path.

use serde_json::json;

use super::Mail;
use crate::error::{Error, InternalError};
use crate::http::{Request, Response};
use crate::pages;
use crate::ports::Db;
use crate::store::dev_outbox;
use crate::Ctx;

/// The most mails one page lists.
const SHOWN: i64 = 50;

pub async fn store(db: &dyn Db, mail: &Mail, now: i64) -> Result<(), InternalError> {
    dev_outbox::insert(db, mail, now).await
}

/// Whether the page exists here: the outbox is how this request's mail leaves.
pub fn exists(ctx: &Ctx<'_>) -> bool {
    super::delivery(ctx) == super::Delivery::Outbox
}

/// `GET /dev/outbox`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    if !exists(ctx) {
        return Response::error_page(404, "not_found", "There is nothing here.");
    }
    let result: Result<Response, Error> = async {
        let params = req.query_params();
        let to = params.get("to")?.filter(|t| !t.is_empty());
        let mails = dev_outbox::list(ctx.db, to, SHOWN).await?;
        let mut resp = if params.get("format")? == Some("json") {
            Response::json(200, &json!({ "mails": mails }))
        } else {
            pages::html(200, &pages::Outbox { mails: &mails })
        };
        resp.set_header("cache-control", "no-store");
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
