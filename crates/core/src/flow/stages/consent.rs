//! The consent stage (`/oauth2/consent`): before a client that is not first-party receives a
//! user's data, the user allows it. Granted scopes are remembered per user and client, so the
//! plan asks again only for what is new (or on `prompt=consent`). It comes after every factor:
//! only the signed-in user, in the browser holding the flow's session, answers it.

use super::{at, csrf_ok, flow_at, flow_of, form_token};
use crate::error::{Error, OAuthError};
use crate::flow::plan::Stage;
use crate::flow::{engine, Flow, Refusal};
use crate::http::{Request, Response};
use crate::pages;
use crate::store::consents;
use crate::web::cookies;
use crate::Ctx;

fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name, username and profile details",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Stay signed in when you are not using it",
        _ => "Unknown access",
    }
}

/// Whether this browser holds the session the flow signed in: the consent is that user's.
fn holds_session(ctx: &Ctx<'_>, req: &Request, flow: &Flow) -> bool {
    match (&flow.session, cookies::session_hash(ctx, req)) {
        (Some(s), Some(c)) => crate::crypto::constant_time_eq(s.as_bytes(), c.as_bytes()),
        _ => false,
    }
}

/// `GET /oauth2/consent?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::Consent]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let Some(ask) = flow.consent.as_ref().filter(|_| holds_session(ctx, req, &flow)) else {
            return lost(ctx, req, &id, flow).await;
        };
        let token = form_token(ctx, req, &id)?;
        let scopes = ask
            .scopes
            .iter()
            .map(|s| pages::Scope {
                name: s,
                description: describe(s),
            })
            .collect();
        let page = pages::html(
            200,
            &pages::Consent {
                client: &flow.audience,
                scopes,
                req: &id,
                csrf: &token.csrf,
            },
        );
        Ok(token.finish(&flow, page))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// The browser no longer holds the flow's session: its factors are proved again.
async fn lost(ctx: &Ctx<'_>, req: &Request, id: &str, mut flow: Flow) -> Result<Response, Error> {
    flow.passed.clear();
    flow.session = None;
    flow.carried_session = None;
    engine::advance(ctx, req, id, flow, Vec::new()).await
}

/// `POST /oauth2/consent`: `decision=allow` records the consent; anything else refuses the flow.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return Ok(
                Error::from(OAuthError::invalid_request("invalid form token; go back and try again")).into_page(),
            );
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::Consent]).await? {
            return Ok(elsewhere);
        }
        let (Some(ask), Some(user_id)) = (flow.consent.clone(), flow.user_id.clone()) else {
            return lost(ctx, req, &id, flow).await;
        };
        if !holds_session(ctx, req, &flow) {
            return lost(ctx, req, &id, flow).await;
        }
        let mut changes = Vec::new();
        if params.get("decision")? == Some("allow") {
            let earlier = consents::granted(ctx.db, &user_id, &ask.client_id).await?;
            changes.push(consents::grant_statement(
                &user_id,
                &ask.client_id,
                earlier,
                &ask.scopes,
                ctx.clock.now(),
            ));
            flow.consented = true;
        } else {
            flow.refused = Some(Refusal::ConsentDenied);
        }
        engine::advance(ctx, req, &id, flow, changes).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn each_scope_the_page_asks_for_is_said_in_words() {
        assert_eq!(describe("openid"), "Know who you are");
        assert_eq!(describe("profile"), "See your name, username and profile details");
        assert_eq!(describe("address"), "See your postal address");
        assert_eq!(describe("phone"), "See your phone number");
        assert_eq!(describe("email"), "See your email address");
        assert_eq!(describe("offline_access"), "Stay signed in when you are not using it");
        assert_eq!(describe("admin"), "Unknown access");
    }
}
