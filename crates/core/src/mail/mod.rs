//! Mail: what Gatehouse sends (a sign-in code, a password-reset link, an address-verification
//! link, a notice that the password changed), how much of it, and its delivery.
//!
//! A request never waits for a mail server. An endpoint calls [`send`], which checks the volume
//! bound and queues the message on the `Mailer` port; the adapter delivers the queue after the
//! response ([`deliver`], in the Worker's `waitUntil`). A failed delivery is an event
//! (`mail_failed`), never an error of the flow that asked for the mail: the page it shows is the
//! same either way, which is also what keeps a reset request from telling whether an account
//! exists.

pub mod api;
pub mod messages;
pub mod outbox;

use serde_json::json;

use crate::config::is_loopback;
use crate::crypto::{b64url, sha256};
use crate::error::{log_internal, Error, InternalError};
use crate::http::Request;
use crate::policy::{self, rate_limit::Tier};
use crate::ports::{Clock, Db, MailTransport, Rng};
use crate::store::events;
use crate::types::event_kind::EventKind;
use crate::Ctx;

pub const MAILER: &str = "GATEHOUSE_MAILER";
pub const MAIL_FROM: &str = "GATEHOUSE_MAIL_FROM";
pub const MAIL_API_URL: &str = "GATEHOUSE_MAIL_API_URL";
pub const MAIL_API_KEY: &str = "GATEHOUSE_MAIL_API_KEY";
pub const MAIL_PER_ADDRESS_HOUR: &str = "GATEHOUSE_MAIL_PER_ADDRESS_HOUR";
pub const MAIL_PER_IP_HOUR: &str = "GATEHOUSE_MAIL_PER_IP_HOUR";
/// Resend's send endpoint: the request shape `api` builds (README: "Email").
pub const DEFAULT_API_URL: &str = "https://api.resend.com/emails";

/// How mail leaves (`GATEHOUSE_MAILER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Unset: the dev outbox in local development (no issuer, a loopback origin), else none.
    #[default]
    Auto,
    /// No mail: the features that need it (reset, verification, email codes) are not offered.
    Off,
    /// Stored in the local database and shown at `/dev/outbox`; only without an issuer, on
    /// loopback.
    Outbox,
    /// Cloudflare's `send_email` binding (`EMAIL`), for a zone with Email Routing.
    SendEmail,
    /// An HTTPS mail API (`GATEHOUSE_MAIL_API_URL`, key in `GATEHOUSE_MAIL_API_KEY`).
    Api,
}

impl Delivery {
    pub fn parse(v: &str) -> Option<Delivery> {
        match v {
            "" => Some(Delivery::Auto),
            "off" => Some(Delivery::Off),
            "outbox" => Some(Delivery::Outbox),
            "send_email" => Some(Delivery::SendEmail),
            "api" => Some(Delivery::Api),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Auto => "auto",
            Delivery::Off => "off",
            Delivery::Outbox => "outbox",
            Delivery::SendEmail => "send_email",
            Delivery::Api => "api",
        }
    }
}

/// The mail settings (`[vars]`); the API key is a secret (`Secrets::mail_api_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    pub delivery: Delivery,
    /// The sender (`Gatehouse <no-reply@id.example.com>` or a bare address).
    pub from: String,
    pub api_url: String,
    /// At most this many mails to one address per hour (0: none).
    pub per_address_hour: u32,
    /// At most this many mails asked for from one client IP per hour (0: none).
    pub per_ip_hour: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            delivery: Delivery::Auto,
            from: String::new(),
            api_url: DEFAULT_API_URL.to_owned(),
            per_address_hour: 5,
            per_ip_hour: 20,
        }
    }
}

/// The longest sender setting accepted: a display name and an address.
const MAX_FROM: usize = 320;

impl MailSettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<MailSettings, InternalError> {
        let d = MailSettings::default();
        let trimmed = |name: &str| get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        let mailer = trimmed(MAILER);
        let delivery = Delivery::parse(&mailer).ok_or_else(|| {
            InternalError::new(format!(
                "{MAILER} must be empty, off, outbox, send_email or api (got {mailer:?})"
            ))
        })?;
        let from = trimmed(MAIL_FROM);
        if from.len() > MAX_FROM || from.contains(['\r', '\n']) {
            return Err(InternalError::new(format!("{MAIL_FROM} is not a sender address")));
        }
        if matches!(delivery, Delivery::SendEmail | Delivery::Api) && !from.contains('@') {
            return Err(InternalError::new(format!(
                "{MAIL_FROM} must be set to the sender address with {MAILER}={}",
                delivery.as_str()
            )));
        }
        let api_url = match trimmed(MAIL_API_URL) {
            u if u.is_empty() => d.api_url,
            u if u.starts_with("https://") || (u.starts_with("http://") && is_loopback(&u)) => u,
            u => {
                return Err(InternalError::new(format!(
                    "{MAIL_API_URL} must be an https URL (got {u:?})"
                )))
            }
        };
        let count = |name: &str, default: u32| -> Result<u32, InternalError> {
            match trimmed(name) {
                v if v.is_empty() => Ok(default),
                v => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 10_000)
                    .ok_or_else(|| InternalError::new(format!("{name} must be a whole number from 0 to 10000"))),
            }
        };
        Ok(MailSettings {
            delivery,
            from,
            api_url,
            per_address_hour: count(MAIL_PER_ADDRESS_HOUR, d.per_address_hour)?,
            per_ip_hour: count(MAIL_PER_IP_HOUR, d.per_ip_hour)?,
        })
    }

    /// What the settings and secrets together must hold: the API key with the API, and no dev
    /// outbox on a deployment with an issuer (its mail would never reach anyone).
    pub fn check(&self, issuer: Option<&str>, api_key: bool) -> Result<(), InternalError> {
        match self.delivery {
            Delivery::Api if !api_key => Err(InternalError::new(format!(
                "{MAIL_API_KEY} must be set with {MAILER}=api"
            ))),
            Delivery::Outbox if issuer.is_some() => Err(InternalError::new(format!(
                "{MAILER}=outbox is for local development only: it cannot be used with GATEHOUSE_ISSUER"
            ))),
            _ => Ok(()),
        }
    }
}

/// How this request's mail would leave: the dev outbox exists only without an issuer, on a
/// loopback origin; anywhere else `Auto` means no mail.
pub fn delivery(ctx: &Ctx<'_>) -> Delivery {
    let local = ctx.settings.issuer.is_none() && is_loopback(&ctx.origin);
    match ctx.settings.mail.delivery {
        Delivery::Auto | Delivery::Outbox if local => Delivery::Outbox,
        Delivery::Auto | Delivery::Outbox => Delivery::Off,
        d => d,
    }
}

/// Whether Gatehouse can send mail here (otherwise reset, verification and email codes are not
/// offered).
pub fn available(ctx: &Ctx<'_>) -> bool {
    delivery(ctx) != Delivery::Off
}

/// What a mail is for (events and the outbox name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    SignInCode,
    PasswordReset,
    PasswordChanged,
    VerifyAddress,
    AddressChanged,
    PasskeyAdded,
    /// A notification rule's mail (`events::delivery`).
    Notification,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::SignInCode => "sign_in_code",
            MailKind::PasswordReset => "password_reset",
            MailKind::PasswordChanged => "password_changed",
            MailKind::VerifyAddress => "verify_address",
            MailKind::AddressChanged => "address_changed",
            MailKind::PasskeyAdded => "passkey_added",
            MailKind::Notification => "notification",
        }
    }
}

/// A message: plain text and simple HTML of the same content (`messages`).
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub kind: MailKind,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The bodies hold codes and links that sign someone in: never in a log.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A queued mail with the way it leaves (decided while the request's origin is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub delivery: Delivery,
    pub mail: Mail,
}

/// What [`send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued for delivery after the response.
    Queued,
    /// Over the hourly bound of the address or of the client IP: not sent (an event says so).
    Limited,
    /// No mail can leave here (`available` is false).
    Unavailable,
}

/// The counter record of an address (hashed: the counter store does not keep addresses).
pub(crate) fn address_key(address: &str) -> String {
    format!(
        "mail:{}",
        b64url(&sha256(address.trim().to_ascii_lowercase().as_bytes()))
    )
}

pub(crate) fn hourly(n: u32) -> Tier {
    Tier {
        rate: n,
        period_ms: 3_600_000,
        burst: n,
    }
}

/// Counts a mail of `kind` against the client IP's and the address's hourly bounds; `Ok(None)`
/// when both admit it, else which one refused. Each kind has its own allowance per address: a
/// stranger who asks for resets of someone's account spends the reset allowance only, never the
/// one their sign-in codes or verification links come from. Also called when no mail will go
/// out (an unknown account asked for a reset), so that answer costs the same.
pub async fn admit(ctx: &Ctx<'_>, req: &Request, address: &str, kind: MailKind) -> Result<Option<&'static str>, Error> {
    let limits = &ctx.settings.mail;
    let ip = policy::client_ip(ctx, req).key();
    let (ip_ok, _, _) = ctx
        .counters
        .rate_limit(&ip, "mail", &[hourly(limits.per_ip_hour)])
        .await?;
    if !ip_ok {
        return Ok(Some("ip"));
    }
    let (address_ok, _, _) = ctx
        .counters
        .rate_limit(&address_key(address), kind.as_str(), &[hourly(limits.per_address_hour)])
        .await?;
    Ok((!address_ok).then_some("address"))
}

/// Queues `mail` for delivery after the response, within the hourly bounds. `user_id` names the
/// user in the `mail_limited` event.
pub async fn send(ctx: &Ctx<'_>, req: &Request, user_id: Option<&str>, mail: Mail) -> Result<Sent, Error> {
    let delivery = delivery(ctx);
    if delivery == Delivery::Off {
        return Ok(Sent::Unavailable);
    }
    if let Some(by) = admit(ctx, req, &mail.to, mail.kind).await? {
        let event = events::Event {
            kind: EventKind::MailLimited,
            user_id,
            client_id: None,
            ip: Some(&policy::client_ip(ctx, req).to_string()),
            location: Some(&req.location),
            detail: json!({ "mail": mail.kind.as_str(), "by": by }),
        };
        events::record(ctx.db, ctx.rng, ctx.clock.now(), event).await?;
        return Ok(Sent::Limited);
    }
    ctx.mailer.queue(Outgoing { delivery, mail });
    Ok(Sent::Queued)
}

/// Queues `mail` that [`admit`] admitted already.
pub fn queue_admitted(ctx: &Ctx<'_>, mail: Mail) {
    let delivery = delivery(ctx);
    if delivery != Delivery::Off {
        ctx.mailer.queue(Outgoing { delivery, mail });
    }
}

/// What delivery needs, after the response: the adapter builds it from its bindings.
pub struct Courier<'a> {
    pub settings: &'a MailSettings,
    pub api_key: Option<&'a crate::config::Secret>,
    pub db: &'a dyn Db,
    pub rng: &'a dyn Rng,
    pub clock: &'a dyn Clock,
    pub transport: &'a dyn MailTransport,
}

/// Delivers one queued mail. Never fails: a failure is logged and recorded as `mail_failed`
/// (with the reason, never the body).
pub async fn deliver(c: &Courier<'_>, out: &Outgoing) {
    let result = match out.delivery {
        Delivery::Outbox => outbox::store(c.db, &out.mail, c.clock.now()).await,
        Delivery::Api => match c.api_key {
            Some(key) => {
                let request = api::request(c.settings, key, &out.mail);
                match c.transport.post(&request.url, &request.headers, request.body).await {
                    Ok((status, body)) => api::judge(status, &body),
                    Err(e) => Err(e),
                }
            }
            None => Err(InternalError::new(format!("{MAIL_API_KEY} is not set"))),
        },
        Delivery::SendEmail => c.transport.send_email(&c.settings.from, &out.mail).await,
        Delivery::Auto | Delivery::Off => Err(InternalError::new("no mail delivery is configured")),
    };
    let Err(e) = result else {
        return;
    };
    log_internal(&e);
    let reason: String = e.to_string().chars().take(200).collect();
    let event = events::Event {
        kind: EventKind::MailFailed,
        user_id: None,
        client_id: None,
        ip: None,
        location: None,
        detail: json!({ "mail": out.mail.kind.as_str(), "delivery": out.delivery.as_str(), "reason": reason }),
    };
    if let Err(e) = events::record(c.db, c.rng, c.clock.now(), event).await {
        log_internal(&e);
    }
}

/// The site's name in mail: the issuer's host.
pub fn site_name(ctx: &Ctx<'_>) -> String {
    crate::http::host_of(ctx.issuer()).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<MailSettings, InternalError> {
        MailSettings::from_lookup(&|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn settings_default_to_the_dev_outbox_and_the_documented_bounds() {
        let s = parse(&[]).unwrap();
        assert_eq!(s, MailSettings::default());
        assert_eq!((s.per_address_hour, s.per_ip_hour), (5, 20));
        assert_eq!(s.delivery, Delivery::Auto);
    }

    #[test]
    fn settings_refuse_what_would_fail_later() {
        assert!(parse(&[(MAILER, "smtp")]).is_err());
        assert!(parse(&[(MAILER, "api")]).is_err(), "api without a sender");
        assert!(parse(&[(MAILER, "send_email"), (MAIL_FROM, "nobody")]).is_err());
        assert!(parse(&[(MAIL_FROM, "a@b.example\r\nBcc: x@y.example")]).is_err());
        assert!(parse(&[(MAIL_API_URL, "http://mail.example.com/send")]).is_err());
        assert!(parse(&[(MAIL_PER_IP_HOUR, "-1")]).is_err());
        assert!(parse(&[(MAIL_PER_IP_HOUR, "10001")]).is_err());
        let ok = parse(&[
            (MAILER, "api"),
            (MAIL_FROM, "Gatehouse <no-reply@id.example.com>"),
            (MAIL_API_URL, "http://127.0.0.1:9000/emails"),
            (MAIL_PER_ADDRESS_HOUR, "0"),
        ])
        .unwrap();
        assert_eq!(ok.delivery, Delivery::Api);
        assert_eq!(ok.api_url, "http://127.0.0.1:9000/emails");
        assert_eq!(ok.per_address_hour, 0);
        assert!(ok.check(None, false).is_err(), "the API needs its key");
        assert!(ok.check(None, true).is_ok());
        let outbox = parse(&[(MAILER, "outbox")]).unwrap();
        assert!(outbox.check(Some("https://id.example.com"), false).is_err());
        assert!(outbox.check(None, false).is_ok());
    }

    #[test]
    fn each_mailer_value_parses_to_its_delivery_and_back() {
        for d in [Delivery::Off, Delivery::Outbox, Delivery::SendEmail, Delivery::Api] {
            assert_eq!(Delivery::parse(d.as_str()), Some(d));
        }
        assert_eq!(Delivery::parse(""), Some(Delivery::Auto));
        assert_eq!(
            Delivery::parse("auto"),
            None,
            "unset is the automatic choice, not a value"
        );
    }

    #[test]
    fn the_sender_is_bounded() {
        let local = "a".repeat(MAX_FROM - "@x.example".len());
        let longest = format!("{local}@x.example");
        assert_eq!(longest.len(), MAX_FROM);
        assert!(parse(&[(MAIL_FROM, &longest)]).is_ok());
        assert!(parse(&[(MAIL_FROM, &format!("a{longest}"))]).is_err());
    }

    #[test]
    fn the_address_key_ignores_case_and_hides_the_address() {
        assert_eq!(address_key("Ann@Example.com"), address_key(" ann@example.com"));
        assert_ne!(address_key("ann@example.com"), address_key("bob@example.com"));
        assert!(!address_key("ann@example.com").contains("ann"));
    }

    #[test]
    fn a_mail_debug_never_shows_its_body() {
        let m = Mail {
            kind: MailKind::SignInCode,
            to: "ann@example.com".into(),
            subject: "Your code".into(),
            text: "123456".into(),
            html: "<p>123456</p>".into(),
        };
        let shown = format!("{m:?}");
        assert!(shown.contains("ann@example.com"));
        assert!(!shown.contains("123456"));
    }
}
