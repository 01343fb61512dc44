//! A user's second factors through the admin API: see them, remove one device or passkey, or
//! reset them all (a user who lost their phone and their recovery codes enrolls again at their
//! next sign-in). Secrets never leave: a device shows its name and times, recovery codes only
//! their counts, a passkey its id, name, algorithm and flags (its public key stays in the table).

use serde::Serialize;

use super::{audit_detail_statement, not_found};
use crate::crypto::{random_id, random_token, token_hash};
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{form_encode, Response};
use crate::store::email_tokens::{self, Kind};
use crate::store::{passkeys, recovery_codes, totp_devices, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

#[derive(Serialize)]
struct DeviceView {
    id: String,
    name: String,
    confirmed: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(Serialize)]
struct PasskeyView {
    /// The credential id, base64url.
    id: String,
    name: String,
    /// COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256.
    alg: i64,
    transports: Vec<String>,
    backup_eligible: bool,
    backed_up: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(Serialize)]
struct CodesView {
    remaining: i64,
    issued: i64,
}

#[derive(Serialize)]
struct FactorsView {
    /// The user has a second factor to sign in with (a confirmed device, a passkey or unused
    /// codes).
    mfa_enrolled: bool,
    totp_devices: Vec<DeviceView>,
    passkeys: Vec<PasskeyView>,
    recovery_codes: CodesView,
}

/// `GET /admin/api/users/{id}/factors`.
pub async fn list(ctx: &Ctx<'_>, user_id: &str) -> Result<Response, Error> {
    users::by_id(ctx.db, user_id).await?.ok_or_else(|| not_found("user"))?;
    let devices = totp_devices::of_user(ctx.db, user_id).await?;
    let held = totp_devices::second_factors(ctx.db, user_id).await?;
    let view = FactorsView {
        mfa_enrolled: held.totp_devices > 0 || held.recovery_codes > 0 || held.passkeys > 0,
        totp_devices: devices
            .into_iter()
            .map(|d| DeviceView {
                confirmed: d.confirmed_at.is_some(),
                id: d.id,
                name: d.name,
                created_at: d.created_at,
                last_used_at: d.last_used_at,
            })
            .collect(),
        passkeys: passkeys::of_user(ctx.db, user_id)
            .await?
            .into_iter()
            .map(|p| PasskeyView {
                id: p.id,
                name: p.name,
                alg: p.alg,
                transports: p.transports,
                backup_eligible: p.backup_eligible,
                backed_up: p.backed_up,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect(),
        recovery_codes: CodesView {
            remaining: held.recovery_codes,
            issued: held.recovery_codes_issued,
        },
    };
    Ok(Response::json(200, &view))
}

/// `DELETE /admin/api/users/{id}/factors/totp/{device}`.
pub async fn remove_device(ctx: &Ctx<'_>, user_id: &str, device_id: &str) -> Result<Response, Error> {
    if totp_devices::get(ctx.db, user_id, device_id).await?.is_none() {
        return Err(not_found("device"));
    }
    let detail = serde_json::json!({ "device": device_id });
    ctx.db
        .batch(&[
            totp_devices::delete_statement(user_id, device_id),
            audit_detail_statement(ctx, EventKind::AdminTotpRemoved, Some(user_id), None, detail)?,
        ])
        .await?;
    Ok(Response::new(204))
}

/// `DELETE /admin/api/users/{id}/factors/passkeys/{credential id}`.
pub async fn remove_passkey(ctx: &Ctx<'_>, user_id: &str, credential_id: &str) -> Result<Response, Error> {
    let held = passkeys::by_id(ctx.db, credential_id)
        .await?
        .filter(|p| p.user_id == user_id);
    if held.is_none() {
        return Err(not_found("passkey"));
    }
    let detail = serde_json::json!({ "passkey": credential_id });
    ctx.db
        .batch(&[
            passkeys::delete_statement(user_id, credential_id),
            audit_detail_statement(ctx, EventKind::AdminPasskeyRemoved, Some(user_id), None, detail)?,
        ])
        .await?;
    Ok(Response::new(204))
}

/// `DELETE /admin/api/users/{id}/factors`: every device, passkey and recovery code, spent codes
/// included, so the user counts as never having enrolled and sets a factor up again.
pub async fn reset(ctx: &Ctx<'_>, user_id: &str) -> Result<Response, Error> {
    users::by_id(ctx.db, user_id).await?.ok_or_else(|| not_found("user"))?;
    let mut statements = vec![
        totp_devices::delete_all_of_user_statement(user_id),
        passkeys::delete_all_of_user_statement(user_id),
    ];
    statements.extend(recovery_codes::replace_statements(user_id, &[], ctx.clock.now()));
    // A setup link issued before the reset would register a passkey after it.
    statements.push(email_tokens::end_of_user_statement(
        user_id,
        &[Kind::PasskeySetup],
        ctx.clock.now(),
    ));
    statements.push(audit_detail_statement(
        ctx,
        EventKind::AdminFactorsReset,
        Some(user_id),
        None,
        serde_json::json!({}),
    )?);
    ctx.db.batch(&statements).await?;
    Ok(Response::new(204))
}

/// How long a passkey setup link works: a day for the administrator to hand it over.
pub const PASSKEY_SETUP_TTL: i64 = 24 * 3600;

/// `POST /admin/api/users/{id}/passkey-setup`: a one-time link (24 hours) with which the user
/// registers a passkey without signing in. It is how a passkey-only user gets their first passkey,
/// or a new one after losing all of them: an administrator's decision, handed over out of band,
/// never a mailbox or a password. A new link ends the user's earlier one.
pub async fn passkey_setup(ctx: &Ctx<'_>, user_id: &str) -> Result<Response, Error> {
    let user = users::by_id(ctx.db, user_id).await?.ok_or_else(|| not_found("user"))?;
    if user.disabled {
        return Err(OAuthError::new(ErrorCode::Conflict, "the user is disabled").into());
    }
    let now = ctx.clock.now();
    let token = random_token(ctx.rng)?;
    let expires_at = now + PASSKEY_SETUP_TTL;
    let statements = vec![
        email_tokens::end_of_user_statement(&user.id, &[Kind::PasskeySetup], now),
        email_tokens::insert_statement(&email_tokens::New {
            id: &random_id(ctx.rng, "etk_")?,
            kind: Kind::PasskeySetup,
            secret_hash: &token_hash(&token),
            user_id: &user.id,
            email: &user.email,
            flow_id: None,
            now,
            ttl: PASSKEY_SETUP_TTL,
        }),
        audit_detail_statement(
            ctx,
            EventKind::AdminPasskeySetupIssued,
            Some(&user.id),
            None,
            serde_json::json!({ "expires_at": expires_at }),
        )?,
    ];
    ctx.db.batch(&statements).await?;
    let url = format!(
        "{}{}?token={}",
        ctx.issuer(),
        crate::account::passkey_setup::PATH,
        form_encode(&token)
    );
    let mut resp = Response::json(201, &serde_json::json!({ "url": url, "expires_at": expires_at }));
    resp.set_header("cache-control", "no-store");
    Ok(resp)
}
