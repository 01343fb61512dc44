//! Passkeys in a sign-in (`/oauth2/passkey`): usernameless on the login page (the passkey says
//! who the user is; the authenticator must verify the user, and the passkey is then the whole
//! sign-in, `amr` `hwk`/`swk` + `user` + `mfa`), or as the second factor after a password (user
//! verification preferred). The browser script (`www/static/passkey.js`) fetches the options,
//! runs the ceremony and posts the credential with the stage's form.
//!
//! The challenge (`store::webauthn_challenges`) is 32 random bytes, issued for this flow (so for
//! the browser it is bound to) and this ceremony, lives five minutes and is taken once: a replay,
//! another flow's challenge or an expired one matches nothing. A failure counts toward the
//! credential owner's lockout and both reputations, like a wrong password or code; an unknown
//! credential counts against the IP. A counter that did not go up is refused and recorded
//! (`passkey_counter_regressed`): a cloned authenticator, possibly.

use serde_json::json;

use super::passkey_registration::{descriptors, json_error, options_response};
use super::{csrf_ok, flow_of, totp};
use crate::crypto::{b64url, b64url_decode};
use crate::error::{Error, InternalError};
use crate::factors::webauthn::browser::{self, AssertionResponse};
use crate::factors::webauthn::{
    verify_assertion, Ceremony, Identified, Refusal, StoredCredential, UserVerification, CHALLENGE_BYTES,
};
use crate::flow::engine::{self, Standing};
use crate::flow::plan::{Factor, PasskeyUse, Stage};
use crate::flow::Flow;
use crate::http::{Request, Response};
use crate::policy::{self, lockout::Admission};
use crate::store::webauthn_challenges::{self as challenges, Ceremony as Kind};
use crate::store::{events, passkeys, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const NOT_SIGNED_IN: &str = "That passkey did not sign you in. Try again, or use another way.";
pub const EXPIRED: &str = "The passkey request expired. Please try again.";
const FORM_EXPIRED: &str = "Your session expired. Please try again.";

/// The relying party Gatehouse is: the issuer's host (no port), the RP ID every passkey is
/// scoped to.
pub(crate) fn rp_id(ctx: &Ctx<'_>) -> String {
    let authority = crate::http::host_of(ctx.issuer());
    authority.split(':').next().unwrap_or(authority).to_ascii_lowercase()
}

/// The exact origin of Gatehouse's pages: the issuer's scheme and authority.
pub(crate) fn rp_origin(ctx: &Ctx<'_>) -> String {
    let issuer = ctx.issuer();
    let scheme = issuer.split_once("://").map_or("https", |(s, _)| s);
    format!("{scheme}://{}", crate::http::host_of(issuer))
}

/// The signature counter an assertion's authenticator data claims (for the event).
fn presented_count(authenticator_data: &[u8]) -> Option<u32> {
    crate::factors::webauthn::authenticator_data::parse(authenticator_data).map(|d| d.sign_count)
}

/// A fresh challenge.
pub(crate) fn new_challenge(ctx: &Ctx<'_>) -> Result<[u8; CHALLENGE_BYTES], InternalError> {
    let mut c = [0u8; CHALLENGE_BYTES];
    ctx.rng.fill(&mut c)?;
    Ok(c)
}

/// Which ceremony the flow's stage runs: usernameless before anyone is identified by a
/// password, a second factor once one was.
fn ceremony_at(standing: Standing) -> Option<Kind> {
    match standing {
        Standing::At(Stage::Identify | Stage::Password) => Some(Kind::SignIn),
        Standing::At(Stage::SecondFactor) => Some(Kind::SecondFactor),
        _ => None,
    }
}

/// User verification: required when the passkey is the whole sign-in, preferred after a password.
fn verification(kind: Kind) -> UserVerification {
    match kind {
        Kind::SecondFactor => UserVerification::Preferred,
        _ => UserVerification::Required,
    }
}

/// `POST /oauth2/passkey/options` (`req`, `csrf`): the request options for the stage the flow
/// stands at, with a new challenge (replacing the flow's last one).
pub async fn options(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(_) => return Ok(json_error(400, "invalid_request", "unknown or expired sign-in")),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return Ok(json_error(403, "invalid_request", FORM_EXPIRED));
        }
        let Some(kind) = ceremony_at(engine::standing(ctx, &flow).await?) else {
            return Ok(json_error(
                409,
                "wrong_stage",
                "this sign-in does not ask for a passkey now",
            ));
        };
        let challenge = new_challenge(ctx)?;
        let (user_id, held) = match kind {
            Kind::SecondFactor => {
                let user = super::user_of(ctx, &flow).await?;
                let held = passkeys::of_user(ctx.db, &user.id).await?;
                if held.is_empty() {
                    return Ok(json_error(
                        409,
                        "no_passkey",
                        "no passkey is registered for this account",
                    ));
                }
                (Some(user.id), held)
            }
            _ => (None, Vec::new()),
        };
        let allow = descriptors(&held);
        let owner = challenges::flow_owner(&id);
        let (sql, values) =
            challenges::issue_statement(&owner, kind, &b64url(&challenge), user_id.as_deref(), ctx.clock.now());
        ctx.db.execute(sql, &values).await?;
        Ok(options_response(browser::request_options(
            &rp_id(ctx),
            &challenge,
            &allow,
            verification(kind),
        )))
    }
    .await;
    result.unwrap_or_else(Error::into_json)
}

/// The stage's page again with `error`: the login form, or the second-factor page.
async fn again(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    flow: &Flow,
    kind: Kind,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    match kind {
        Kind::SecondFactor => {
            let user = super::user_of(ctx, flow).await?;
            let offers = totp::offers(ctx, flow, &user).await?;
            totp::page(ctx, req, id, flow, error, status, offers)
        }
        _ => super::password::form_with_error(ctx, req, id, flow, error, status),
    }
}

/// A failed attempt, counted and recorded. `charged` is the account whose lockout and reputation
/// it counts toward (a passkey-only account is never charged: see `submit`); the IP's reputation
/// always pays. `user_id` is the user the event names.
#[allow(clippy::too_many_arguments)]
async fn failed(
    ctx: &Ctx<'_>,
    req: &Request,
    flow: &Flow,
    kind: Kind,
    charged: Option<&users::User>,
    user_id: Option<&str>,
    reason: &str,
    detail: serde_json::Value,
) -> Result<(), Error> {
    let client = policy::client_ip(ctx, req);
    let rules = &ctx.settings.policy;
    let newly_locked = match charged {
        Some(u) => {
            policy::failed_attempt(ctx, &policy::user_key(&u.username), &client.key())
                .await?
                .newly_locked
        }
        None => {
            ctx.counters
                .record_attempt(&client.key(), false, None, &rules.reputation)
                .await?;
            false
        }
    };
    let now = ctx.clock.now();
    let ip = client.to_string();
    let record = |event: EventKind, detail: serde_json::Value| {
        events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: event,
                user_id,
                client_id: flow.event_client.as_deref(),
                ip: Some(&ip),
                location: Some(&req.location),
                detail,
            },
        )
    };
    let mut detail = detail;
    detail["method"] = json!("passkey");
    detail["reason"] = json!(reason);
    let event = match kind {
        Kind::SecondFactor => EventKind::MfaFailed,
        _ => EventKind::LoginFailed,
    };
    let mut statements = vec![record(event, detail)?];
    if let (true, Some(u)) = (newly_locked, charged) {
        let locked_for = rules.lockout.duration_ms / 1000;
        statements.push(record(
            EventKind::AccountLocked,
            json!({ "username": u.username, "locked_for": locked_for }),
        )?);
    }
    ctx.db.batch(&statements).await?;
    Ok(())
}

/// `POST /oauth2/passkey` (`req`, `csrf`, `credential`): the assertion for the flow's challenge.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        let standing = engine::standing(ctx, &flow).await?;
        let Some(kind) = ceremony_at(standing) else {
            return engine::advance(ctx, req, &id, flow, Vec::new()).await;
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return again(ctx, req, &id, &flow, kind, FORM_EXPIRED, 403).await;
        }
        let now = ctx.clock.now();
        // Taken before anything else: whatever happens next, this challenge is spent.
        let Some(issued) = challenges::take(ctx.db, &challenges::flow_owner(&id), kind, now).await? else {
            return again(ctx, req, &id, &flow, kind, EXPIRED, 400).await;
        };
        // A second factor is for the user identified when the options were made.
        if kind == Kind::SecondFactor && issued.user_id != flow.user_id {
            return again(ctx, req, &id, &flow, kind, EXPIRED, 400).await;
        }
        let challenge = b64url_decode(&issued.challenge).ok_or_else(|| InternalError::new("stored challenge"))?;
        let typed = params.get("credential")?.unwrap_or("");
        let Some(response) = AssertionResponse::parse(typed) else {
            failed(
                ctx,
                req,
                &flow,
                kind,
                None,
                None,
                Refusal::Malformed.as_str(),
                json!({}),
            )
            .await?;
            return again(ctx, req, &id, &flow, kind, NOT_SIGNED_IN, 400).await;
        };
        let credential_id = b64url(&response.credential_id);
        let Some(stored) = passkeys::by_id(ctx.db, &credential_id).await? else {
            // Nobody's passkey (removed, or made up): the identified user, if any, is charged.
            let owner = match kind {
                Kind::SecondFactor => Some(super::user_of(ctx, &flow).await?),
                _ => None,
            };
            let user_id = owner.as_ref().map(|u| u.id.as_str());
            failed(
                ctx,
                req,
                &flow,
                kind,
                owner.as_ref(),
                user_id,
                "unknown_credential",
                json!({}),
            )
            .await?;
            return again(ctx, req, &id, &flow, kind, NOT_SIGNED_IN, 401).await;
        };
        // The account the attempt is charged to: the flow's user for a second factor (whoever's
        // credential was offered), the credential's owner for a usernameless sign-in.
        let charged = match kind {
            Kind::SecondFactor => super::user_of(ctx, &flow).await?,
            _ => users::by_id(ctx.db, &stored.user_id)
                .await?
                .ok_or_else(|| InternalError::new("a passkey without its user"))?,
        };
        let owner_handle = passkeys::user_handle(ctx.db, &stored.user_id)
            .await?
            .and_then(|h| b64url_decode(&h))
            .unwrap_or_default();
        let flow_handle = match kind {
            Kind::SecondFactor => passkeys::user_handle(ctx.db, &charged.id)
                .await?
                .and_then(|h| b64url_decode(&h))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let identified = match kind {
            Kind::SecondFactor => Identified::User(&flow_handle),
            _ => Identified::Nobody,
        };
        // Failures count toward the account's lockout like wrong passwords, except for a
        // passkey-only account: its credential ids are not secret (anyone who saw one can make
        // refusals), and a lock would shut its only way in. A signature cannot be guessed, so
        // nothing is lost by not locking it; the IP still pays.
        let account = (!engine::passkey_only(ctx, &charged)).then_some(&charged);
        let user_key = policy::user_key(&charged.username);
        let admitted = match account {
            Some(_) => {
                ctx.counters
                    .begin_attempt(&user_key, &ctx.settings.policy.lockout)
                    .await?
                    == Admission::Admitted
            }
            None => true,
        };
        let detail = json!({ "credential": credential_id });
        let user_id = Some(charged.id.as_str());
        if !admitted || charged.disabled {
            failed(ctx, req, &flow, kind, account, user_id, "locked", detail).await?;
            return again(ctx, req, &id, &flow, kind, NOT_SIGNED_IN, 401).await;
        }
        let public_key = b64url_decode(&stored.public_key).ok_or_else(|| InternalError::new("stored passkey key"))?;
        let sign_count = u32::try_from(stored.sign_count).map_err(|_| InternalError::new("stored sign count"))?;
        let origin = rp_origin(ctx);
        let rp = rp_id(ctx);
        let ceremony = Ceremony {
            challenge: &challenge,
            origin: &origin,
            rp_id: &rp,
            user_verification: verification(kind),
        };
        let held = StoredCredential {
            public_key: &public_key,
            sign_count,
            backup_eligible: stored.backup_eligible,
            user_handle: &owner_handle,
        };
        let verdict = verify_assertion(ctx.webauthn, &ceremony, &held, &response.as_assertion(), identified).await?;
        let asserted = match verdict {
            Ok(a) => a,
            Err(refusal) => {
                if refusal == Refusal::CounterRegression {
                    let regressed = events::Event {
                        kind: EventKind::PasskeyCounterRegressed,
                        user_id: Some(&stored.user_id),
                        client_id: flow.event_client.as_deref(),
                        ip: Some(&policy::client_ip(ctx, req).to_string()),
                        location: Some(&req.location),
                        detail: json!({
                            "credential": credential_id,
                            "stored": stored.sign_count,
                            "presented": presented_count(&response.authenticator_data),
                        }),
                    };
                    events::record(ctx.db, ctx.rng, now, regressed).await?;
                }
                failed(ctx, req, &flow, kind, account, user_id, refusal.as_str(), detail).await?;
                return again(ctx, req, &id, &flow, kind, NOT_SIGNED_IN, 401).await;
            }
        };
        // The counter moves only from the value the check compared against: of two assertions
        // racing with one counter value, the second changes nothing and is refused.
        let (sql, values) = passkeys::record_use_statement(
            &credential_id,
            stored.sign_count,
            i64::from(asserted.sign_count),
            asserted.backed_up,
            now,
        );
        if ctx.db.execute(sql, &values).await? == 0 {
            failed(ctx, req, &flow, kind, account, user_id, "replayed", detail).await?;
            return again(ctx, req, &id, &flow, kind, NOT_SIGNED_IN, 401).await;
        }
        if account.is_some() {
            // Credited by `engine::advance`, once the policies let the sign-in through.
            flow.success_to_credit = Some(user_key.clone());
        }
        let used = events::record_statement(
            ctx.rng,
            now,
            events::Event {
                kind: EventKind::PasskeyUsed,
                user_id: Some(&stored.user_id),
                client_id: flow.event_client.as_deref(),
                ip: Some(&policy::client_ip(ctx, req).to_string()),
                location: Some(&req.location),
                detail: json!({ "credential": credential_id, "verified": asserted.user_verified }),
            },
        )?;
        if kind == Kind::SignIn {
            flow.identify(&stored.user_id);
            flow.signed_in_by_passkey = true;
        }
        flow.pass(
            Factor::Passkey(PasskeyUse {
                verified: asserted.user_verified,
                synced: stored.backup_eligible,
            }),
            now,
        );
        engine::advance(ctx, req, &id, flow, vec![used]).await
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}
