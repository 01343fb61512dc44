//! Moves a flow along: attaches the browser's session when a flow begins, asks the plan for the
//! next stage, writes the session once every factor is passed, and sends the browser to the next
//! stage's page or, when the flow is over, to its purpose's resume path.

use serde_json::json;

use super::plan::{self, Enrolled, Requirements, Stage};
use super::{update_statement, Flow, LocationCheck, NotHere, Refusal};
use crate::crypto::{random_token, token_hash};
use crate::db::Value;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{form_encode, Request, Response};
use crate::store::{clients, consents, events, sessions, totp_devices, users};
use crate::types::event_kind::EventKind;
use crate::web::cookies;
use crate::Ctx;

/// The page of each stage that shows one.
pub fn stage_path(stage: Stage) -> Option<&'static str> {
    match stage {
        Stage::Identify | Stage::Password => Some("/oauth2/login"),
        Stage::SecondFactor => Some("/oauth2/mfa"),
        Stage::EnrollSecondFactor => Some("/oauth2/mfa/enroll"),
        Stage::Consent => Some("/oauth2/consent"),
        Stage::NewPassword => Some("/oauth2/password"),
        Stage::Denied(_) | Stage::Complete => None,
    }
}

/// `path?req=id`.
pub fn url(path: &str, id: &str) -> String {
    format!("{path}?req={}", form_encode(id))
}

/// The answer for a flow that cannot be loaded here.
pub fn not_here_page(why: NotHere) -> Response {
    let detail = match why {
        NotHere::Gone => "This sign-in request has expired or is unknown. Start again from the application.",
        NotHere::OtherBrowser => "This sign-in was started in another browser. Start again from the application.",
    };
    Error::from(OAuthError::new(ErrorCode::InvalidRequest, detail)).into_page()
}

/// A new flow starts with the browser's session, if it has one: its user is identified and the
/// factors the session passed carry over, so a session that lacks a factor steps up instead of
/// starting over. A session of another user than the one the purpose expects is left out: that
/// user signs in, and so does everyone when the purpose asks for a new sign-in.
pub async fn begin(ctx: &Ctx<'_>, req: &Request, flow: &mut Flow) -> Result<(), Error> {
    if flow.reauthenticate {
        return Ok(());
    }
    let Some(hash) = cookies::session_hash(ctx, req) else {
        return Ok(());
    };
    let Some(session) = sessions::active(ctx.db, &hash, ctx.clock.now()).await? else {
        return Ok(());
    };
    if flow.expected_user.as_ref().is_some_and(|u| *u != session.user_id) {
        return Ok(());
    }
    flow.identify(&session.user_id);
    for p in plan::parse_passed(&session.factors, session.auth_time) {
        flow.carry(p.factor, p.at);
    }
    flow.carried_session = Some(hash.clone());
    flow.session = Some(hash);
    let mut changes = Vec::new();
    judge_policies(ctx, req, flow, &mut changes).await?;
    if !changes.is_empty() {
        ctx.db.batch(&changes).await?;
    }
    Ok(())
}

/// The second factors the user holds.
pub async fn enrolled(ctx: &Ctx<'_>, user: &users::User) -> Result<Enrolled, Error> {
    let f = totp_devices::second_factors(ctx.db, &user.id).await?;
    Ok(Enrolled {
        totp: f.totp_devices > 0,
        recovery_codes: f.recovery_codes > 0,
        email: email_code_usable(ctx, user),
        email_chosen: user.email_otp,
        passkeys: f.passkeys > 0,
        // A held device counts above; what is left to know is whether codes were ever issued
        // (every first enrollment issues a set, and only an administrator's reset deletes it).
        had_second_factor: f.recovery_codes_issued > 0,
    })
}

/// Whether the user's password is backed by a second factor that sign-ins will ask for, so the
/// password policy's shorter minimum applies: an enrolled app, passkey or chosen emailed codes,
/// and second factors not turned off (`GATEHOUSE_MFA=off` asks for none, so the password stands
/// alone there).
pub async fn second_factor_backs_password(ctx: &Ctx<'_>, user: &users::User) -> Result<bool, Error> {
    if ctx.settings.mfa == plan::MfaMode::Off {
        return Ok(false);
    }
    Ok(enrolled(ctx, user).await?.has_second_factor())
}

/// Whether the user signs in with a passkey only: the deployment says so for everyone
/// (`GATEHOUSE_PASSKEY_ONLY`), one of their groups does, or an administrator set it on them.
pub fn passkey_only(ctx: &Ctx<'_>, user: &users::User) -> bool {
    ctx.settings.passkey_only
        || user.passkey_only
        || plan::in_listed_group(&ctx.settings.passkey_only_groups, &user.groups)
}

/// Whether a sign-in code can be sent to the user: the deployment offers emailed codes, mail can
/// leave, and the address is verified (an unverified one never receives a code to sign in).
pub fn email_code_usable(ctx: &Ctx<'_>, user: &users::User) -> bool {
    ctx.settings.email_otp && user.email_verified && !user.email.is_empty() && crate::mail::available(ctx)
}

/// Whether the purpose still needs the user's consent.
async fn consent_needed(ctx: &Ctx<'_>, flow: &Flow, user_id: &str) -> Result<bool, Error> {
    let Some(ask) = flow.consent.as_ref().filter(|_| !flow.consented) else {
        return Ok(false);
    };
    if ask.always {
        return Ok(true);
    }
    Ok(match consents::granted(ctx.db, user_id, &ask.client_id).await? {
        // A third-party client needs consent to the client itself before its first code,
        // whatever the scope: an empty scope still yields a code that names the user.
        None => true,
        Some(granted) => ask.scopes.iter().any(|s| !granted.contains(s)),
    })
}

/// Where a flow stands: the next stage, or why it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    At(Stage),
    Refused(Refusal),
}

/// The flow's next stage, from the plan.
pub async fn standing(ctx: &Ctx<'_>, flow: &Flow) -> Result<Standing, Error> {
    Ok(assess(ctx, flow).await?.0)
}

/// [`standing`], with the flow's session as it was found live (for `outcome`, which needs it
/// and must not read it twice).
async fn assess(ctx: &Ctx<'_>, flow: &Flow) -> Result<(Standing, Option<sessions::Session>), Error> {
    let refused = |r| Ok((Standing::Refused(r), None));
    if let Some(r) = flow.refused {
        return refused(r);
    }
    let Some(user_id) = flow.user_id.as_deref() else {
        return Ok((Standing::At(Stage::Identify), None));
    };
    if flow.expected_user.as_deref().is_some_and(|u| u != user_id) {
        return refused(Refusal::OtherUser);
    }
    let now = ctx.clock.now();
    // What the flow passed holds only while its user may sign in and the session holding it
    // lives: a sign-out, a password change elsewhere or an administrator ends the flow too.
    let Some(user) = users::by_id(ctx.db, user_id).await?.filter(|u| !u.disabled) else {
        return refused(Refusal::Voided);
    };
    if let Some(client_id) = &flow.restricted_to_client {
        let admitted = clients::by_id(ctx.db, client_id)
            .await?
            .is_some_and(|c| !c.disabled && c.admits(&user));
        if !admitted {
            return refused(Refusal::NotAllowed);
        }
    }
    let live = match flow.session.as_deref() {
        Some(hash) => match sessions::active(ctx.db, hash, now).await? {
            Some(s) if s.user_id == user_id => Some(s),
            _ => return refused(Refusal::Voided),
        },
        None => None,
    };
    let mut requirements = Requirements {
        mfa: ctx.settings.mfa,
        mfa_required_here: flow.mfa_required_here
            || plan::in_listed_group(&ctx.settings.mfa_required_groups, &user.groups),
        acr_mfa: flow.acr_mfa,
        fresh_after: flow.fresh_after,
        enroll_after: Some(now - plan::FRESH_PASSWORD_TO_ENROLL),
        consent: false,
        new_password: flow.new_password,
        passkey_only: passkey_only(ctx, &user),
        second_factor_waived: flow.second_factor_waived,
    };
    let factors = Some(enrolled(ctx, &user).await?);
    let passed = flow.passed();
    let mut stage = plan::next(&requirements, factors, &passed);
    // Consent is looked up only once every factor is passed: before that, nobody has proved
    // who they are.
    if stage == Stage::Complete && consent_needed(ctx, flow, user_id).await? {
        requirements.consent = true;
        stage = plan::next(&requirements, factors, &passed);
    }
    Ok(match stage {
        Stage::Denied(plan::Denied::SecondFactorRequiredButOff) => {
            (Standing::Refused(Refusal::SecondFactorRequiredButOff), None)
        }
        Stage::Denied(plan::Denied::SecondFactorLost) => (Standing::Refused(Refusal::SecondFactorLost), None),
        s => (Standing::At(s), live),
    })
}

/// Sends the browser on: to the next stage's page, or to the purpose's resume path when the
/// flow is over. `changes` (what the stage that just ran writes) land in one batch with the
/// flow's new state and, once every factor is passed, its session.
pub async fn advance(
    ctx: &Ctx<'_>,
    req: &Request,
    id: &str,
    mut flow: Flow,
    mut changes: Vec<(&'static str, Vec<Value>)>,
) -> Result<Response, Error> {
    if flow.location_check.is_none() && flow.signed_in_here() {
        judge_location(ctx, req, &mut flow, &mut changes).await?;
    }
    if flow.refused.is_none() {
        judge_policies(ctx, req, &mut flow, &mut changes).await?;
    }
    let standing = standing(ctx, &flow).await?;
    // A refused sign-in earns the username no credit: else signing in again and again would
    // raise its reputation until a policy reading `user.reputation` let it through.
    if let Some(key) = flow.success_to_credit.take() {
        let rules = &ctx.settings.policy;
        if matches!(standing, Standing::Refused(_)) {
            ctx.counters.release_attempt(&key).await?;
        } else {
            ctx.counters
                .record_attempt(&key, true, Some(&rules.lockout), &rules.reputation)
                .await?;
        }
    }
    let mut set_cookie = None;
    let location = match standing {
        Standing::Refused(r) => {
            flow.refused = Some(r);
            flow.purpose.resume_path()
        }
        Standing::At(stage) => {
            // A reset link, or an expired password, signs nobody in until the new password is
            // set: a browser that went no further holds no session to skip the change with.
            let factors_done = match stage {
                Stage::Consent | Stage::Complete => true,
                Stage::NewPassword => !flow.passed_here(plan::Factor::EmailLink) && flow.password_change.is_none(),
                _ => false,
            };
            if factors_done && flow.session.is_none() {
                set_cookie = persist_session(ctx, req, &mut flow, &mut changes)?;
            }
            stage_path(stage).unwrap_or(flow.purpose.resume_path())
        }
    };
    changes.push(update_statement(id, &flow)?);
    ctx.db.batch(&changes).await?;
    let mut resp = Response::redirect(303, &url(location, id));
    if let Some(c) = set_cookie {
        resp.add_header("set-cookie", &c);
    }
    Ok(resp)
}

/// The GeoIP policy, once per flow, as soon as the flow identified the user itself (a password,
/// a reset link, a usernameless passkey), before any session is written: a refused location ends
/// the flow with `Refusal::Location` and a `login_blocked` event. The user learns that the
/// location was refused, and so that the credentials were right: the reference's GeoIP policy
/// fails the login the same way, and the event is the trail.
async fn judge_location(
    ctx: &Ctx<'_>,
    req: &Request,
    flow: &mut Flow,
    changes: &mut Vec<(&'static str, Vec<Value>)>,
) -> Result<(), Error> {
    let settings = &ctx.settings.policy.geoip;
    let Some(user_id) = flow.user_id.clone() else {
        return Ok(());
    };
    if !settings.active() {
        flow.location_check = Some(LocationCheck::Passed);
        return Ok(());
    }
    let history = if settings.travel_active() && req.location.coordinates.is_some() {
        events::recent_sign_in_locations(ctx.db, &user_id, settings.history).await?
    } else {
        Vec::new()
    };
    let now = ctx.clock.now();
    let judgement = crate::policy::geoip::judge(settings, &req.location, &history, now);
    flow.location_check = Some(if judgement.skipped {
        LocationCheck::Skipped
    } else {
        LocationCheck::Passed
    });
    if let Some(failure) = judgement.failure {
        flow.refused = Some(Refusal::Location);
        let mut detail = location_detail(&req.location);
        detail["policy"] = json!("geoip");
        detail["reason"] = json!(failure.reason());
        changes.push(blocked(ctx, req, flow, &user_id, detail)?);
    }
    Ok(())
}

/// The policy bindings (`policy::binding`), once per flow as soon as it knows its user (signed
/// in here, or carried over from the session), with the facts of the request that made it known:
/// those of the flow's purpose (`flow:authorize`) and of its client or app refuse the flow when
/// they fail (`Refusal::Policy` and a `login_blocked` event); those of the stage `mfa` skip the
/// second factor when they fail, unless one of them could not be evaluated (a broken or missing
/// policy never waives a factor, whatever its failure result) or the flow is the account page's
/// (where factors are changed). One query (cached per isolate, `policy::judge`) finds the
/// bindings of the three targets; the user is read only when there is one.
async fn judge_policies(
    ctx: &Ctx<'_>,
    req: &Request,
    flow: &mut Flow,
    changes: &mut Vec<(&'static str, Vec<Value>)>,
) -> Result<(), Error> {
    use crate::policy::binding::Target;
    use crate::policy::judge;
    let Some(user_id) = flow.user_id.clone().filter(|_| !flow.policies_judged) else {
        return Ok(());
    };
    let purpose = purpose_name(flow.purpose);
    let target = binding_target(flow);
    let access = judge::access_keys(purpose, target.as_ref());
    let stage = Target::Stage("mfa".to_owned()).key();
    let mut keys = access.clone();
    keys.push(stage.clone());
    let found = judge::bound(ctx, &keys).await?;
    flow.policies_judged = true;
    if found.is_empty() {
        return Ok(());
    }
    let Some(user) = users::by_id(ctx.db, &user_id).await? else {
        // `assess` voids a flow whose user is gone.
        return Ok(());
    };
    let mut facts = crate::policy::facts(ctx, req, Some(&user));
    crate::policy::add_reputation(ctx, req, &mut facts, &found).await?;
    judge::describe(&mut facts, purpose, target.as_ref(), &flow.audience);
    if let Some((target, v)) = judge::first_refusing(ctx, &found, &access, &facts) {
        flow.refused = Some(Refusal::Policy);
        let failed: Vec<&str> = v
            .outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.binding_id.as_str())
            .collect();
        let detail = json!({ "policy": "binding", "target": target, "failed_bindings": failed });
        changes.push(blocked(ctx, req, flow, &user_id, detail)?);
        return Ok(());
    }
    if flow.purpose != super::Purpose::Account {
        facts.flow.stage = "mfa".to_owned();
        let v = judge::verdict(ctx, &found, &stage, &facts);
        flow.second_factor_waived = !v.passed && v.outcomes.iter().all(|o| o.error.is_none());
    }
    Ok(())
}

/// The client or app whose bindings a flow must pass. A flow stored before `binding_target`
/// existed names its client as `event_client` (an authorization request) or its app in its
/// payload (a gateway sign-in).
fn binding_target(flow: &Flow) -> Option<crate::policy::binding::Target> {
    use crate::policy::binding::Target;
    if let Some(key) = &flow.binding_target {
        let (kind, id) = key.split_once(':')?;
        return Target::parse(kind, id).ok();
    }
    match flow.purpose {
        super::Purpose::Authorize => flow.event_client.clone().map(Target::Client),
        super::Purpose::Gateway => flow
            .payload
            .get("app_id")
            .and_then(|v| v.as_str())
            .map(|id| Target::App(id.to_owned())),
        super::Purpose::Account => None,
    }
}

/// The `login_blocked` event of a flow a policy refused (GeoIP or a binding; `detail` says which).
fn blocked(
    ctx: &Ctx<'_>,
    req: &Request,
    flow: &Flow,
    user_id: &str,
    detail: serde_json::Value,
) -> Result<(&'static str, Vec<Value>), Error> {
    Ok(events::record_statement(
        ctx.rng,
        ctx.clock.now(),
        events::Event {
            kind: EventKind::LoginBlocked,
            user_id: Some(user_id),
            client_id: flow.event_client.as_deref(),
            ip: Some(&crate::policy::client_ip(ctx, req).to_string()),
            location: Some(&req.location),
            detail,
        },
    )?)
}

/// The name a flow's purpose has in bindings and expressions.
pub fn purpose_name(p: super::Purpose) -> &'static str {
    match p {
        super::Purpose::Authorize => "authorize",
        super::Purpose::Gateway => "gateway",
        super::Purpose::Account => "account",
    }
}

/// A request's location as events record it (what the GeoIP history reads back).
fn location_detail(l: &crate::http::Location) -> serde_json::Value {
    let mut detail = json!({});
    if let Some(c) = &l.country {
        detail["country"] = json!(c);
    }
    if let Some(a) = l.asn {
        detail["asn"] = json!(a);
    }
    if let Some((lat, lon)) = l.coordinates {
        detail["lat"] = json!(lat);
        detail["lon"] = json!(lon);
    }
    detail
}

/// The statements that put the flow's factors in a session, and the session cookie if it is a
/// new one. A flow that passed a password signs in afresh: a new session id (no fixation), and
/// the browser's old session ends. A flow that only added a second factor to the session it
/// began with (a step-up) records the factor in that session.
fn persist_session(
    ctx: &Ctx<'_>,
    req: &Request,
    flow: &mut Flow,
    changes: &mut Vec<(&'static str, Vec<Value>)>,
) -> Result<Option<String>, Error> {
    let Some(user_id) = flow.user_id.clone() else {
        return Ok(None);
    };
    let now = ctx.clock.now();
    // A flow that identified the user itself (a password, a reset link, a usernameless passkey)
    // is a new sign-in.
    let step_up = flow.carried_session.clone().filter(|_| !flow.signed_in_here());
    let (hash, set_cookie) = match step_up {
        Some(hash) => {
            changes.push(sessions::set_factors_statement(&hash, &flow.passed));
            (hash, None)
        }
        None => {
            if let Some(old) = cookies::session_hash(ctx, req) {
                changes.extend(sessions::end_statements(&old, now));
            }
            let session_id = random_token(ctx.rng)?;
            let session = sessions::Session {
                id_hash: token_hash(&session_id),
                user_id: user_id.clone(),
                auth_time: now,
                expires_at: now + ctx.settings.session_ttl,
                factors: flow.passed.clone(),
            };
            changes.push(sessions::insert_statement(&session, now));
            let cookie = cookies::set_cookie(
                ctx,
                cookies::SESSION,
                &cookies::session_value(ctx, &session_id),
                ctx.settings.session_ttl,
            );
            (session.id_hash, Some(cookie))
        }
    };
    let amr = plan::amr_of(&flow.passed(), flow.fresh_after);
    changes.push(events::record_statement(
        ctx.rng,
        now,
        events::Event {
            kind: if set_cookie.is_some() {
                EventKind::LoginSucceeded
            } else {
                EventKind::LoginSteppedUp
            },
            user_id: Some(&user_id),
            client_id: flow.event_client.as_deref(),
            ip: Some(&crate::policy::client_ip(ctx, req).to_string()),
            location: Some(&req.location),
            detail: {
                let mut detail = location_detail(&req.location);
                detail["amr"] = json!(amr);
                if flow.location_check == Some(LocationCheck::Skipped) {
                    detail["geoip"] = json!("skipped");
                }
                detail
            },
        },
    )?);
    flow.carried_session = Some(hash.clone());
    flow.session = Some(hash);
    Ok(set_cookie)
}

/// How a flow ended, for its purpose.
pub enum Outcome {
    /// Every stage is passed; the browser holds this session.
    Complete(sessions::Session),
    Refused(Refusal),
    /// The flow is not over (or the browser lost its session): it goes on.
    Unfinished,
}

/// What a purpose's resume path finds: it completes only a flow whose stages are all passed and
/// whose session is the one this browser holds. A browser that holds another (live) session, or
/// none, proves its factors again: they are forgotten here, and the purpose advances the flow.
/// (A flow whose session ended is over: `standing` refuses it.)
pub async fn outcome(ctx: &Ctx<'_>, req: &Request, flow: &mut Flow) -> Result<Outcome, Error> {
    // A flow completes only once its policies were judged (`advance` judges them).
    if flow.user_id.is_some() && !flow.policies_judged && flow.refused.is_none() {
        return Ok(Outcome::Unfinished);
    }
    // `live` is the flow's session, found live and the flow user's by `assess`.
    let live = match assess(ctx, flow).await? {
        (Standing::Refused(r), _) => return Ok(Outcome::Refused(r)),
        (Standing::At(Stage::Complete), live) => live,
        (Standing::At(_), _) => return Ok(Outcome::Unfinished),
    };
    let held = match (live, cookies::session_hash(ctx, req)) {
        (Some(s), Some(cookie)) if crate::crypto::constant_time_eq(s.id_hash.as_bytes(), cookie.as_bytes()) => Some(s),
        _ => None,
    };
    Ok(match held {
        Some(s) => Outcome::Complete(s),
        None => {
            flow.passed.clear();
            flow.session = None;
            flow.carried_session = None;
            Outcome::Unfinished
        }
    })
}

/// The `amr` of a completed flow (the fresh factors it passed).
pub fn amr(flow: &Flow) -> Vec<&'static str> {
    plan::amr_of(&flow.passed(), flow.fresh_after)
}
