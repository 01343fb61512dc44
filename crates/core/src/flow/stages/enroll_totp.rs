//! Enrolling an authenticator app (`/oauth2/mfa/enroll`): when the plan requires a second factor
//! the user does not have yet (`GATEHOUSE_MFA=required`, a client that requires one). A fresh
//! 160-bit secret is sealed into an unconfirmed device and shown once per enrollment as a QR code,
//! as text and as its `otpauth://` URI; the device counts only after the user types a valid code.
//! Confirming it also issues the ten recovery codes, shown once.

use serde_json::json;

use super::{at, csrf_ok, flow_at, flow_of, form_token, notice, user_of};
use crate::crypto::{b64_encode, random_id};
use crate::error::{Error, InternalError};
use crate::factors::totp::{self, TotpSecret};
use crate::factors::{qr, recovery_codes};
use crate::flow::plan::{Factor, Stage};
use crate::flow::{engine, update_statement, Flow};
use crate::http::{Request, Response};
use crate::pages;
use crate::store::totp_devices::{self, TotpDevice};
use crate::store::{events, recovery_codes as stored, users};
use crate::types::event_kind::EventKind;
use crate::Ctx;

const ACTION: &str = "/oauth2/mfa/enroll";
pub const DEFAULT_NAME: &str = "Authenticator app";
pub const INVALID_CODE: &str = "That code is not valid. Check the time on your phone and try the current code.";
pub const NAME_TOO_LONG: &str = "That device name is too long (at most 64 characters).";
pub const TOO_MANY_DEVICES: &str = "You have too many authenticator apps set up. Remove one from your account first.";

/// The name authenticator apps show for Gatehouse's entries: the issuer's host.
fn issuer_name(ctx: &Ctx<'_>) -> String {
    crate::http::host_of(ctx.issuer()).to_owned()
}

/// A new unconfirmed device for `user`, replacing any earlier unconfirmed one; `None` when the
/// user already holds the most devices allowed. Returns the statement that writes it.
pub(crate) fn new_device(ctx: &Ctx<'_>, user: &users::User) -> Result<(TotpDevice, Vec<crate::db::Statement>), Error> {
    let key = ctx
        .secrets
        .sealing_key
        .as_ref()
        .ok_or_else(|| InternalError::new("GATEHOUSE_SEALING_KEY is not set"))?;
    let id = random_id(ctx.rng, "totp_")?;
    let secret = TotpSecret::generate(ctx.rng)?;
    let device = TotpDevice {
        secret_sealed: key.seal(ctx.rng, secret.as_bytes(), &TotpDevice::seal_context(&user.id, &id))?,
        id,
        user_id: user.id.clone(),
        name: DEFAULT_NAME.to_owned(),
        confirmed_at: None,
        last_step: None,
        last_used_at: None,
        created_at: ctx.clock.now(),
    };
    let statements = vec![
        totp_devices::delete_unconfirmed_of_user_statement(&user.id),
        totp_devices::insert_statement(&device),
    ];
    Ok((device, statements))
}

/// The enrollment page for `device` (its secret opened again: the same QR code until confirmed).
pub(crate) fn page_for(
    ctx: &Ctx<'_>,
    user: &users::User,
    device: &TotpDevice,
    form: (&str, &str, &str),
    name: &str,
    error: &str,
    status: u16,
) -> Result<Response, Error> {
    let (action, req, csrf) = form;
    let secret = super::totp::secret_of(ctx, device)?;
    let uri = secret.otpauth_uri(&issuer_name(ctx), &user.username);
    let svg = qr::svg(&uri, 200)?;
    // In a sign-in, a passkey may be enrolled instead (`enroll_passkey`); the account page has
    // its own passkey section.
    let passkey_nonce = if action == ACTION {
        Some(pages::csp_nonce(ctx.rng)?)
    } else {
        None
    };
    let mut resp = pages::Enroll {
        qr_base64: &b64_encode(svg.as_bytes()),
        secret: &group(&secret.to_base32()),
        uri: &uri,
        name,
        error,
        action,
        req,
        csrf,
        passkey_nonce,
    }
    .response(status);
    // The secret is on this page: no cache keeps it.
    resp.set_header("cache-control", "no-store");
    Ok(resp)
}

/// Groups of four for typing by hand.
fn group(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A device name as typed: trimmed, the default when empty, `None` when too long.
pub(crate) fn device_name(typed: &str) -> Option<String> {
    let name = typed.trim();
    if name.chars().count() > totp_devices::MAX_NAME_CHARS {
        return None;
    }
    Some(if name.is_empty() { DEFAULT_NAME } else { name }.to_owned())
}

/// The flow's unconfirmed device, if it still exists.
async fn enrolling(ctx: &Ctx<'_>, flow: &Flow, user: &users::User) -> Result<Option<TotpDevice>, Error> {
    let Some(device_id) = &flow.enrolling else {
        return Ok(None);
    };
    Ok(totp_devices::get(ctx.db, &user.id, device_id)
        .await?
        .filter(|d| d.confirmed_at.is_none()))
}

/// `GET /oauth2/mfa/enroll?req=…`.
pub async fn show(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let (id, mut flow) = match flow_at(ctx, req, &req.query_params(), &[Stage::EnrollSecondFactor]).await? {
            Ok(f) => f,
            Err(elsewhere) => return Ok(elsewhere),
        };
        let user = user_of(ctx, &flow).await?;
        let device = match enrolling(ctx, &flow, &user).await? {
            Some(d) => d,
            None => {
                let (device, mut statements) = new_device(ctx, &user)?;
                flow.enrolling = Some(device.id.clone());
                statements.push(update_statement(&id, &flow)?);
                let written = ctx.db.batch(&statements).await?;
                if written.get(1).copied().unwrap_or(0) == 0 {
                    return Ok(Response::error_page(409, "too_many_devices", TOO_MANY_DEVICES));
                }
                device
            }
        };
        let token = form_token(ctx, req, &id)?;
        let resp = page_for(ctx, &user, &device, (ACTION, &id, &token.csrf), "", "", 200)?;
        Ok(token.finish(&flow, resp))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

/// The statements that confirm `device` with its first code's step under `name`, and (with
/// `issue_codes`) issue a new set of recovery codes (returned, to show once).
pub(crate) fn confirm(
    ctx: &Ctx<'_>,
    device: &TotpDevice,
    step: i64,
    name: &str,
    ip: &str,
    event_client: Option<&str>,
    issue_codes: bool,
) -> Result<(Vec<crate::db::Statement>, Vec<recovery_codes::RecoveryCode>), Error> {
    let now = ctx.clock.now();
    let codes = if issue_codes {
        recovery_codes::generate(ctx.rng)?
    } else {
        Vec::new()
    };
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery_codes::hash(&device.user_id, c.expose()))
        .collect();
    let mut statements = vec![
        totp_devices::confirm_statement(&device.user_id, &device.id, step, now),
        totp_devices::rename_statement(&device.user_id, &device.id, name),
    ];
    if issue_codes {
        statements.extend(stored::replace_statements(&device.user_id, &hashes, now));
    }
    statements.push(events::record_statement(
        ctx.rng,
        now,
        events::Event {
            kind: EventKind::TotpEnrolled,
            user_id: Some(&device.user_id),
            client_id: event_client,
            ip: Some(ip),
            location: None,
            detail: json!({ "device": device.id, "name": name }),
        },
    )?);
    Ok((statements, codes))
}

/// `POST /oauth2/mfa/enroll`: the first code confirms the device.
pub async fn submit(ctx: &Ctx<'_>, req: &Request) -> Response {
    let result: Result<Response, Error> = async {
        let params = req.form_params();
        let (id, mut flow) = match flow_of(ctx, req, &params).await? {
            Ok(f) => f,
            Err(page) => return Ok(page),
        };
        if !csrf_ok(ctx, req, &id, &params)? {
            return Ok(Response::error_page(
                403,
                "invalid_request",
                "Your session expired. Please go back and try again.",
            ));
        }
        if let Some(elsewhere) = at(ctx, req, &id, &flow, &[Stage::EnrollSecondFactor]).await? {
            return Ok(elsewhere);
        }
        let user = user_of(ctx, &flow).await?;
        let Some(device) = enrolling(ctx, &flow, &user).await? else {
            // The enrollment is gone (replaced elsewhere): start it again.
            return Ok(Response::redirect(303, &engine::url(ACTION, &id)));
        };
        let typed_name = params.get("name")?.unwrap_or("");
        let token = form_token(ctx, req, &id)?;
        let form = (ACTION, id.as_str(), token.csrf.as_str());
        let Some(name) = device_name(typed_name) else {
            let resp = page_for(ctx, &user, &device, form, "", NAME_TOO_LONG, 400)?;
            return Ok(token.finish(&flow, resp));
        };
        let now = ctx.clock.now();
        let secret = super::totp::secret_of(ctx, &device)?;
        let step = match totp::verify(
            &secret,
            params.get("code")?.unwrap_or(""),
            u64::try_from(now).unwrap_or(0),
            None,
        ) {
            Ok(step) => i64::try_from(step).map_err(|_| InternalError::new("totp step"))?,
            Err(_) => {
                let resp = page_for(ctx, &user, &device, form, &name, INVALID_CODE, 400)?;
                return Ok(token.finish(&flow, resp));
            }
        };
        let ip = crate::policy::client_ip(ctx, req).to_string();
        let (statements, codes) = confirm(ctx, &device, step, &name, &ip, flow.event_client.as_deref(), true)?;
        flow.enrolling = None;
        flow.pass(Factor::Totp, now);
        let advanced = engine::advance(ctx, req, &id, flow, statements).await?;
        Ok(notice(
            advanced,
            "Two-step verification is on",
            "From now on you will be asked for a code from your authenticator app when you sign in. \
             If you lose it, one of these recovery codes lets you in instead; each works once.",
            &codes,
        ))
    }
    .await;
    result.unwrap_or_else(Error::into_page)
}

#[cfg(test)]
mod tests {
    use super::{device_name, DEFAULT_NAME};

    #[test]
    fn a_device_name_is_trimmed_defaulted_and_at_most_64_characters() {
        assert_eq!(device_name("  Work phone "), Some("Work phone".into()));
        assert_eq!(device_name("   "), Some(DEFAULT_NAME.into()));
        let longest = "é".repeat(64);
        assert_eq!(
            device_name(&longest),
            Some(longest.clone()),
            "64 characters (128 bytes)"
        );
        assert_eq!(device_name(&format!("{longest}x")), None);
    }
}
