//! Signing in as a flow of stages. A [`Flow`] is one in-progress sign-in: who it is for (its
//! [`Purpose`]), the browser it is bound to, the user once identified, and the factors passed so
//! far with their times. [`plan`] decides the next stage from that and from what the purpose and
//! the deployment require; [`engine`] moves a flow along and writes the session; each stage in
//! [`stages`] shows its page and takes its form.
//!
//! Nothing here depends on `oidc` or `gateway`: a purpose starts a flow with what it requires and
//! its own data (`payload`, opaque here), and when the flow is over the browser goes to the
//! purpose's resume path, where the purpose completes itself (a code, a gateway code, a page).

pub mod engine;
pub mod plan;
pub mod stages;

use serde::{Deserialize, Serialize};

use crate::error::{Error, InternalError};
use crate::http::Request;
use crate::store::auth_requests;
use crate::web::cookies;
use crate::{limits, Ctx};
use plan::{Factor, Passed};

/// How long a user has to finish signing in.
pub const TTL: i64 = 30 * 60;

/// Who a flow is for; each completes itself at its resume path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// An OpenID Connect authorization request (`oidc::authorize`).
    Authorize,
    /// Signing in to an app behind the gateway (`gateway::login`).
    Gateway,
    /// The account page (`account`), or signing in again before changing a factor there.
    Account,
}

impl Purpose {
    /// Where the browser goes when the flow is over (completed or refused).
    pub fn resume_path(self) -> &'static str {
        match self {
            Purpose::Authorize => "/oauth2/authorize/resume",
            Purpose::Gateway => "/oauth2/gateway/resume",
            Purpose::Account => "/account/resume",
        }
    }
}

/// The consent a purpose needs before it completes (a third-party client's scopes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentAsk {
    pub client_id: String,
    pub scopes: Vec<String>,
    /// `prompt=consent`: ask even when everything was granted before.
    #[serde(default)]
    pub always: bool,
}

/// Why a flow ended without completing; the purpose answers in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The user who signed in is not the one the purpose asked for (`id_token_hint`).
    OtherUser,
    /// The user declined the consent.
    ConsentDenied,
    /// The purpose requires a second factor and `GATEHOUSE_MFA=off` offers none.
    SecondFactorRequiredButOff,
    /// The user's second factors are gone; an administrator must reset them.
    SecondFactorLost,
    /// What the flow passed no longer holds: the session it was written to has ended (signed
    /// out, ended by a password change or an administrator), or the user was disabled.
    Voided,
    /// The GeoIP policy refused the sign-in's location (a country, a network, or travel).
    Location,
    /// The user may not use this client (its `allowed_users` / `allowed_groups`).
    NotAllowed,
    /// A policy binding of the flow, the client or the app refused the user
    /// (`policy::binding`).
    Policy,
}

/// Why a sign-in must set a new password before it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChange {
    /// Older than `GATEHOUSE_PASSWORD_MAX_AGE_DAYS`.
    Expiry,
    /// Set under weaker rules (a shorter minimum, a second factor since removed, rules raised).
    Rules,
}

impl PasswordChange {
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordChange::Expiry => "expiry",
            PasswordChange::Rules => "rules",
        }
    }
}

/// What the GeoIP policy said of this flow's sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationCheck {
    Passed,
    /// A configured check had no location data and `GATEHOUSE_GEOIP_UNKNOWN=pass` let it through.
    Skipped,
}

/// One sign-in in progress, stored (as JSON, bounded) until it ends or expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub purpose: Purpose,
    /// The purpose's own data (an authorization request, a gateway target); opaque here.
    pub payload: serde_json::Value,
    /// Whom the user signs in to, for the pages (a client's or an app's name).
    pub audience: String,
    /// The client (or app) events of this flow name.
    pub event_client: Option<String>,
    /// CSP `form-action` sources of the pages: where the browser ends up after the last form.
    pub form_action: Vec<String>,
    /// Hash of the browser binding cookie: only that browser may go on with the flow.
    pub browser: String,
    pub created_at: i64,
    /// The username the sign-in form offers.
    pub login_hint: Option<String>,
    /// Only this user may finish the flow (a verified `id_token_hint`).
    pub expected_user: Option<String>,
    /// Factors passed before this time do not count (`max_age`).
    pub fresh_after: Option<i64>,
    /// The session's factors do not carry over: the user signs in again (`prompt=login`).
    #[serde(default)]
    pub reauthenticate: bool,
    /// `acr_values` asked for a multi-factor sign-in.
    pub acr_mfa: bool,
    /// The client, app or group requires a second factor.
    pub mfa_required_here: bool,
    pub consent: Option<ConsentAsk>,
    /// The user must set a new password before the flow completes (the account page's password
    /// change; later a reset or an expired password). Cleared by the stage once it is set.
    #[serde(default)]
    pub new_password: bool,

    /// The user, once identified (by a password, or by the session the flow started with).
    pub user_id: Option<String>,
    /// The factors passed, with their times (`plan::store_passed`): carried over from the
    /// session and passed in this flow.
    pub passed: String,
    /// The factors passed in this flow, not carried over from the session (`Factor::as_str`).
    #[serde(default)]
    pub passed_here: Vec<String>,
    /// The session the flow started with (its user's factors carry over: a step-up).
    pub carried_session: Option<String>,
    /// The session holding every factor passed so far; `None` while a factor passed in this flow
    /// is not in a session yet.
    pub session: Option<String>,
    pub consented: bool,
    /// The TOTP device being enrolled (unconfirmed) in this flow.
    pub enrolling: Option<String>,
    /// A new password was set in this flow (the purpose says so when it completes).
    #[serde(default)]
    pub password_changed: bool,
    /// A passkey identified the user in this flow (a usernameless sign-in), as a password would.
    #[serde(default)]
    pub signed_in_by_passkey: bool,
    /// The password the user signed in with must be replaced before the flow completes (it
    /// expired, or no longer meets the rules): the new-password stage says why, its event records
    /// it as `by`, and no session is written until it is replaced.
    #[serde(default)]
    pub password_change: Option<PasswordChange>,
    /// New passwords refused as the current or a remembered one in a flow that did not pass the
    /// password (a reset link): each refusal tells that a guess was right, so they are counted.
    #[serde(default)]
    pub reused_guesses: u8,
    /// Set once the flow signed someone in and the GeoIP policy judged where from.
    #[serde(default)]
    pub location_check: Option<LocationCheck>,
    /// The OIDC client whose user and group lists the user must pass (a client that restricts
    /// who may use it); checked as soon as the user is known, before consent or a code.
    #[serde(default)]
    pub restricted_to_client: Option<String>,
    /// The client or app whose policy bindings the user must pass (`client:<id>`, `app:<id>`),
    /// besides the flow's own (`flow:<purpose>`).
    #[serde(default)]
    pub binding_target: Option<String>,
    /// The policy bindings were evaluated for this flow's user (once, as soon as the user was
    /// known; `engine::judge_policies`).
    #[serde(default)]
    pub policies_judged: bool,
    /// The bindings of the second-factor stage skipped it for this user and request.
    #[serde(default)]
    pub second_factor_waived: bool,
    pub refused: Option<Refusal>,
    /// The counter key of a username whose factor just succeeded: `engine::advance` credits the
    /// success (lockout and reputation) once the flow's policies let it through, and releases
    /// the attempt without credit when they refuse. Lives for one request; never stored.
    #[serde(skip)]
    pub success_to_credit: Option<String>,
}

impl Flow {
    /// A new flow for `purpose`, bound to the browser whose binding hashes to `browser`.
    pub fn new(purpose: Purpose, payload: serde_json::Value, audience: &str, browser: String, now: i64) -> Flow {
        Flow {
            purpose,
            payload,
            audience: audience.to_owned(),
            event_client: None,
            form_action: Vec::new(),
            browser,
            created_at: now,
            login_hint: None,
            expected_user: None,
            fresh_after: None,
            reauthenticate: false,
            acr_mfa: false,
            mfa_required_here: false,
            consent: None,
            new_password: false,
            user_id: None,
            passed: String::new(),
            passed_here: Vec::new(),
            carried_session: None,
            session: None,
            consented: false,
            enrolling: None,
            password_changed: false,
            signed_in_by_passkey: false,
            password_change: None,
            reused_guesses: 0,
            location_check: None,
            restricted_to_client: None,
            binding_target: None,
            policies_judged: false,
            second_factor_waived: false,
            refused: None,
            success_to_credit: None,
        }
    }

    /// The factors passed so far (an empty record is none, unlike a session's).
    pub fn passed(&self) -> Vec<Passed> {
        if self.passed.trim().is_empty() {
            return Vec::new();
        }
        plan::parse_passed(&self.passed, 0)
    }

    /// Records `factor` passed in this flow at `at`.
    pub fn pass(&mut self, factor: Factor, at: i64) {
        self.carry(factor, at);
        if !self.passed_here(factor) {
            self.passed_here.push(factor.as_str().to_owned());
        }
        self.session = None;
    }

    /// Records `factor` as passed at `at` by the session the flow began with: it counts for the
    /// plan, but was not passed here. Only the latest time of each factor is kept.
    pub fn carry(&mut self, factor: Factor, at: i64) {
        let mut passed: Vec<Passed> = self.passed().into_iter().filter(|p| p.factor != factor).collect();
        passed.push(Passed { factor, at });
        self.passed = plan::store_passed(&passed);
    }

    /// The flow now belongs to `user_id`. Another user than the one identified before starts
    /// with nothing passed: factors are never carried from one user to another.
    pub fn identify(&mut self, user_id: &str) {
        if self.user_id.as_deref() != Some(user_id) {
            self.user_id = Some(user_id.to_owned());
            self.passed.clear();
            self.passed_here.clear();
            self.carried_session = None;
            self.session = None;
            self.consented = false;
            self.enrolling = None;
            self.signed_in_by_passkey = false;
            // The policies judged the previous user.
            self.policies_judged = false;
            self.second_factor_waived = false;
            // A change asked of the previous user's password is not this user's.
            if self.password_change.take().is_some() {
                self.new_password = false;
            }
        }
    }

    /// Whether a factor was passed in this flow (not only carried over from the session).
    pub fn passed_here(&self, factor: Factor) -> bool {
        self.passed_here.iter().any(|f| f == factor.as_str())
    }

    /// Whether this flow identified the user itself (a password, a reset link, a usernameless
    /// passkey): then it is a new sign-in, not a step-up of the session it began with. A passkey
    /// used as the second factor steps the session up, whether or not it verified the user.
    pub fn signed_in_here(&self) -> bool {
        self.passed_here(Factor::Password) || self.passed_here(Factor::EmailLink) || self.signed_in_by_passkey
    }

    /// The purpose's data, parsed.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, InternalError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| InternalError::new(format!("flow payload: {e}")))
    }

    fn to_json(&self) -> Result<String, InternalError> {
        serde_json::to_string(self).map_err(|e| InternalError::new(e.to_string()))
    }

    /// Whether the stored form is within its bound. Every field a client sets has its own bound
    /// (checked where it is parsed); this one catches a field added without one.
    pub fn fits(&self) -> Result<bool, InternalError> {
        Ok(self.to_json()?.len() <= limits::PENDING_REQUEST)
    }
}

/// A stored flow: its id and the flow.
pub struct Stored {
    pub id: String,
    pub flow: Flow,
}

/// Saves a new flow under a fresh id; the client IP keeps a bounded number of them.
pub async fn insert(ctx: &Ctx<'_>, req: &Request, flow: &Flow) -> Result<String, Error> {
    let id = crate::crypto::random_token(ctx.rng)?;
    let ip_key = crate::policy::client_ip(ctx, req).key();
    let client = flow.event_client.as_deref().unwrap_or(&flow.audience);
    auth_requests::save(ctx.db, &id, client, &ip_key, &flow.to_json()?, ctx.clock.now(), TTL).await?;
    Ok(id)
}

/// The statement that saves a flow's new state, to run in one batch with what changed it.
pub fn update_statement(id: &str, flow: &Flow) -> Result<(&'static str, Vec<crate::db::Value>), InternalError> {
    Ok(auth_requests::update_statement(
        id,
        flow.user_id.as_deref(),
        &flow.to_json()?,
    ))
}

/// Why a flow could not be loaded for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHere {
    /// Unknown or expired.
    Gone,
    /// Started in another browser.
    OtherBrowser,
}

/// The flow `id`, if it is live and this request comes from the browser that started it.
pub async fn load(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Result<Flow, NotHere>, Error> {
    let Some((_, json)) = auth_requests::load(ctx.db, id, ctx.clock.now()).await? else {
        return Ok(Err(NotHere::Gone));
    };
    let Ok(flow) = serde_json::from_str::<Flow>(&json) else {
        // A row from before flows (or from a newer version): start again.
        return Ok(Err(NotHere::Gone));
    };
    if !cookies::same_browser(ctx, req, &flow.browser) {
        return Ok(Err(NotHere::OtherBrowser));
    }
    Ok(Ok(flow))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow::new(Purpose::Authorize, serde_json::json!({}), "RP", "b".into(), 1000)
    }

    #[test]
    fn passing_a_factor_again_keeps_its_latest_time_and_asks_for_a_new_session() {
        let mut f = flow();
        f.session = Some("s".into());
        f.pass(Factor::Password, 900);
        f.pass(Factor::Totp, 1001);
        f.pass(Factor::Password, 1002);
        assert_eq!(f.passed, "totp:1001 password:1002");
        assert_eq!(f.session, None);
        assert!(f.passed_here(Factor::Password));
        assert!(f.passed_here(Factor::Totp));
        assert!(!f.passed_here(Factor::RecoveryCode));
    }

    #[test]
    fn a_factor_carried_from_the_session_was_not_passed_here_even_in_the_same_second() {
        let mut f = flow();
        f.carry(Factor::Password, 1000);
        assert!(!f.passed_here(Factor::Password));
        assert_eq!(f.passed().len(), 1);
        f.pass(Factor::Password, 1000);
        assert!(f.passed_here(Factor::Password));
        assert_eq!(f.passed().len(), 1);
        f.pass(Factor::Password, 1001);
        assert_eq!(f.passed_here, ["password"]);
    }

    #[test]
    fn identifying_another_user_forgets_everything_passed_for_the_first() {
        let mut f = flow();
        f.identify("u1");
        f.pass(Factor::Password, 1000);
        f.carried_session = Some("s".into());
        f.consented = true;
        f.enrolling = Some("d".into());
        f.identify("u1");
        assert_eq!(f.passed().len(), 1);
        assert!(f.consented);
        f.identify("u2");
        assert_eq!(f.user_id.as_deref(), Some("u2"));
        assert!(f.passed().is_empty());
        assert!(f.passed_here.is_empty());
        assert_eq!(f.carried_session, None);
        assert!(!f.consented);
        assert_eq!(f.enrolling, None);
    }

    #[test]
    fn a_flow_fits_its_bound_until_a_field_outgrows_it() {
        let mut f = flow();
        assert!(f.fits().unwrap());
        f.audience = "x".repeat(limits::PENDING_REQUEST);
        assert!(!f.fits().unwrap());
    }
}
