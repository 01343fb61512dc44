//! The plan: given what a flow has passed and what is required, the next stage. Pure: the
//! caller reads the user's enrolled factors and the settings, and passes the time in.

use crate::factors::amr;

/// A factor a stage can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Password,
    Totp,
    RecoveryCode,
    /// A code sent to the user's verified address (`GATEHOUSE_EMAIL_OTP`): a second factor.
    EmailCode,
    /// A password-reset link opened in the browser that asked for it: it stands in for the
    /// password (a first factor), and the flow then sets a new one.
    EmailLink,
    /// A WebAuthn assertion of one of the user's passkeys.
    Passkey(PasskeyUse),
}

/// How a passkey was used: what its `amr` and its place in the plan depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The authenticator verified the user (a PIN or a biometric, the UV flag): the key and the
    /// verification are two factors, and the passkey is a whole sign-in by itself. Without it
    /// (presence only) it is a second factor after a password.
    pub verified: bool,
    /// The credential is backup eligible (a synced passkey): a software-secured key (`swk`),
    /// else a hardware-secured one (`hwk`).
    pub synced: bool,
}

impl Factor {
    /// Its stored name (`sessions.factors`).
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery_code",
            Factor::EmailCode => "email_code",
            Factor::EmailLink => "email_link",
            Factor::Passkey(p) => match (p.verified, p.synced) {
                (true, false) => "passkey_uv",
                (true, true) => "passkey_uv_synced",
                (false, false) => "passkey_up",
                (false, true) => "passkey_up_synced",
            },
        }
    }

    pub fn parse(name: &str) -> Option<Factor> {
        match name {
            "password" => Some(Factor::Password),
            "totp" => Some(Factor::Totp),
            "recovery_code" => Some(Factor::RecoveryCode),
            "email_code" => Some(Factor::EmailCode),
            "email_link" => Some(Factor::EmailLink),
            "passkey_uv" | "passkey_uv_synced" | "passkey_up" | "passkey_up_synced" => {
                Some(Factor::Passkey(PasskeyUse {
                    verified: name.starts_with("passkey_uv"),
                    synced: name.ends_with("_synced"),
                }))
            }
            _ => None,
        }
    }

    /// Its RFC 8176 methods: a recovery code, an emailed code and an emailed link are one-time
    /// passwords too (the session records which one: `sessions.factors`); a passkey is a key
    /// (`hwk` or `swk`) with a presence test (`user`).
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Factor::Password => &[amr::PWD],
            Factor::Totp | Factor::RecoveryCode | Factor::EmailCode | Factor::EmailLink => &[amr::OTP],
            Factor::Passkey(PasskeyUse { synced: false, .. }) => &[amr::HWK, amr::USER],
            Factor::Passkey(PasskeyUse { synced: true, .. }) => &[amr::SWK, amr::USER],
        }
    }

    /// Whether it counts as a second factor (something the user has, beside the password).
    pub fn is_second(self) -> bool {
        !matches!(self, Factor::Password | Factor::EmailLink)
    }

    /// Whether it identifies the user by itself (a first factor): a password, a reset link, or
    /// a passkey whose authenticator verified the user (which is a second factor too).
    pub fn is_first(self) -> bool {
        match self {
            Factor::Password | Factor::EmailLink => true,
            Factor::Passkey(p) => p.verified,
            Factor::Totp | Factor::RecoveryCode | Factor::EmailCode => false,
        }
    }

    /// Whether it proves the user is who they say without the mailbox: a password or a verified
    /// passkey (an emailed code after either is a second factor).
    fn is_knowledge_or_key(self) -> bool {
        self.is_first() && !self.is_mailbox()
    }

    /// Whether it proves the mailbox: two of these are one factor, not two.
    pub fn is_mailbox(self) -> bool {
        matches!(self, Factor::EmailCode | Factor::EmailLink)
    }
}

/// A factor passed at a time (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    pub factor: Factor,
    pub at: i64,
}

/// The factors a session recorded (`password:1800000000 totp:1800000030`), each with the time
/// it was passed; an empty record (a session from before factors were recorded) is a password at
/// `auth_time`. Unknown entries are dropped: they prove nothing.
pub fn parse_passed(stored: &str, auth_time: i64) -> Vec<Passed> {
    if stored.trim().is_empty() {
        return vec![Passed {
            factor: Factor::Password,
            at: auth_time,
        }];
    }
    stored
        .split_ascii_whitespace()
        .filter_map(|item| {
            let (name, at) = item.split_once(':')?;
            Some(Passed {
                factor: Factor::parse(name)?,
                at: at.parse().ok()?,
            })
        })
        .collect()
}

/// The stored form of `passed`, the inverse of [`parse_passed`].
pub fn store_passed(passed: &[Passed]) -> String {
    let items: Vec<String> = passed
        .iter()
        .map(|p| format!("{}:{}", p.factor.as_str(), p.at))
        .collect();
    items.join(" ")
}

/// The `amr` of a sign-in that passed `factors` at or after `fresh_after` (older ones do not
/// count, as in [`next`]): each method once, and `mfa` when a password and a second factor were
/// both passed.
pub fn amr_of(factors: &[Passed], fresh_after: Option<i64>) -> Vec<&'static str> {
    let fresh: Vec<&Passed> = factors
        .iter()
        .filter(|p| fresh_after.is_none_or(|t| p.at >= t))
        .collect();
    let mut out: Vec<&'static str> = Vec::new();
    for p in &fresh {
        for m in p.factor.amr() {
            if !out.contains(m) {
                out.push(m);
            }
        }
    }
    let first = fresh.iter().any(|p| p.factor.is_first());
    // As in `next`: after a reset link alone, an emailed code proves the same mailbox again.
    let mailbox_first = !fresh.iter().any(|p| p.factor.is_knowledge_or_key());
    let second = fresh
        .iter()
        .any(|p| p.factor.is_second() && !(mailbox_first && p.factor == Factor::EmailCode));
    if first && second {
        out.push(amr::MFA);
    }
    out
}

/// Whether `factors` include a passkey that verified the user: what a passkey-only user's
/// session must have passed (a password or a reset link does not count for them).
pub fn passed_verified_passkey(factors: &[Passed]) -> bool {
    factors
        .iter()
        .any(|p| matches!(p.factor, Factor::Passkey(k) if k.verified))
}

/// How recent a password must be to enroll or change a second factor (seconds): the account page
/// asks for it again after this long, and so does a sign-in that would enroll one.
pub const FRESH_PASSWORD_TO_ENROLL: i64 = 10 * 60;

/// Whether a user in `user_groups` is in one of the groups `required` lists (those that need a
/// second factor, `GATEHOUSE_MFA_REQUIRED_GROUPS`, or a passkey, `GATEHOUSE_PASSKEY_ONLY_GROUPS`).
pub fn in_listed_group(required: &[String], user_groups: &[String]) -> bool {
    user_groups.iter().any(|g| required.contains(g))
}

/// `GATEHOUSE_MFA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaMode {
    /// No second factor is asked or offered.
    Off,
    /// Users who enrolled one are asked for it; others sign in with a password.
    #[default]
    Optional,
    /// Everyone needs one; a user without one enrolls before getting a session.
    Required,
}

impl MfaMode {
    pub fn parse(v: &str) -> Option<MfaMode> {
        match v {
            "off" => Some(MfaMode::Off),
            "optional" => Some(MfaMode::Optional),
            "required" => Some(MfaMode::Required),
            _ => None,
        }
    }
}

/// What this flow's purpose and the deployment require.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub mfa: MfaMode,
    /// The client, the app or one of the user's groups requires a second factor.
    pub mfa_required_here: bool,
    /// `acr_values` asked for a multi-factor sign-in (a step-up).
    pub acr_mfa: bool,
    /// Factors passed before this time do not count (`max_age`, `prompt=login`).
    pub fresh_after: Option<i64>,
    /// Enrolling a second factor needs a password passed at or after this time: a session
    /// someone took over must not plant their own authenticator with a password from hours ago.
    pub enroll_after: Option<i64>,
    /// The purpose still needs the user's consent (a third-party client's new scopes).
    pub consent: bool,
    /// The user must set a new password before finishing (account page, reset, expiry).
    pub new_password: bool,
    /// The user signs in with a passkey only: a password (or a reset link) is no first factor.
    pub passkey_only: bool,
    /// The bindings of the second-factor stage skip it (`policy::binding`): the default of
    /// `GATEHOUSE_MFA` (and a user's own enrolled factor) is waived, never a requirement of the
    /// client, the app, a group (`mfa_required_here`) or `acr_values`.
    pub second_factor_waived: bool,
}

/// The factors the identified user has enrolled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Enrolled {
    /// A confirmed TOTP device.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes: bool,
    /// A code can be sent to the user's address: `GATEHOUSE_EMAIL_OTP=on`, the address is
    /// verified and mail can leave. Usable when a second factor is required.
    pub email: bool,
    /// The user turned emailed codes on: asked for at every sign-in (when `email`).
    pub email_chosen: bool,
    /// A registered passkey: asked for after a password (it is a second factor there), and a
    /// whole sign-in by itself when the authenticator verifies the user.
    pub passkeys: bool,
    /// The user set up a second factor and has not removed it themselves (or been reset by an
    /// administrator): with none usable now (the codes spent, the device gone), a password alone
    /// must not enroll a new one, or a password thief would.
    pub had_second_factor: bool,
}

impl Enrolled {
    /// A second factor the user signs in with (an app, a passkey, emailed codes they turned
    /// on), for the password policy's shorter minimum; recovery codes alone are a backup, not one.
    pub fn has_second_factor(self) -> bool {
        self.totp || self.passkeys || (self.email && self.email_chosen)
    }
    /// A second factor the user chose to be asked for; an emailed code does not follow a
    /// password-reset link (both prove the mailbox only).
    fn any_second(self, mailbox_first: bool) -> bool {
        self.totp || self.recovery_codes || self.passkeys || (self.email && self.email_chosen && !mailbox_first)
    }
    /// A second factor the user can pass now.
    fn can_pass_second(self, mailbox_first: bool) -> bool {
        self.totp || self.recovery_codes || self.passkeys || (self.email_counts() && !mailbox_first)
    }
    /// Whether an emailed code stands in for a second factor: the user turned codes on, or holds
    /// no app, recovery codes or passkey. A user with one who never asked for codes is never
    /// offered one: whoever has their password and their mailbox must not skip the app or key.
    pub fn email_counts(self) -> bool {
        self.email && (self.email_chosen || !(self.totp || self.recovery_codes || self.passkeys))
    }
}

/// The next thing the flow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ask who the user is (and their password, on the same page).
    Identify,
    /// Ask for the password of the identified user.
    Password,
    /// Ask for a second factor: a TOTP code, or a recovery code instead.
    SecondFactor,
    /// The user has no second factor but needs one: enroll before finishing.
    EnrollSecondFactor,
    Consent,
    NewPassword,
    /// The flow cannot finish: the purpose answers `access_denied` with the reason.
    Denied(Denied),
    /// Everything required is passed: the purpose completes (a session, a code, a redirect).
    Complete,
}

/// Why a flow cannot finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client, app or group requires a second factor, and `GATEHOUSE_MFA=off` offers none.
    SecondFactorRequiredButOff,
    /// The user's second factors are gone (recovery codes spent, device removed): an
    /// administrator resets them; a password alone does not enroll new ones.
    SecondFactorLost,
}

/// The next stage. `user` is `None` until the flow identified someone; `passed` holds the
/// factors passed in this flow and those carried over from the session (a step-up keeps them).
pub fn next(req: &Requirements, user: Option<Enrolled>, passed: &[Passed]) -> Stage {
    let Some(enrolled) = user else {
        return Stage::Identify;
    };
    let fresh = |p: &&Passed| req.fresh_after.is_none_or(|t| p.at >= t);
    // A reset link without the password proves the mailbox only: an emailed code after it
    // would prove the same mailbox again, not a second factor.
    let mailbox_first = !passed.iter().filter(fresh).any(|p| p.factor.is_knowledge_or_key());
    let counts = |p: &&Passed| !(p.factor == Factor::EmailCode && (mailbox_first || !enrolled.email_counts()));
    // A verified passkey is both: the key, and the PIN or biometric that unlocked it.
    let first = |f: Factor| {
        if req.passkey_only {
            matches!(f, Factor::Passkey(k) if k.verified)
        } else {
            f.is_first()
        }
    };
    let has = |second: bool| {
        passed
            .iter()
            .filter(fresh)
            .filter(counts)
            .any(|p| if second { p.factor.is_second() } else { first(p.factor) })
    };
    if !has(false) {
        return Stage::Password;
    }
    // Never after a reset link alone: it proves the mailbox only, and the second factor is what
    // keeps whoever reads the mail out.
    let waived = req.second_factor_waived && !req.mfa_required_here && !req.acr_mfa && !mailbox_first;
    let needs_second = match req.mfa {
        // `acr_values` is a request the provider may decline (OIDC Core §3.1.2.1; the token's
        // `acr` then says what was done); a client or group that requires a second factor is not.
        // A passkey that verified the user is two factors by itself, whatever the setting.
        MfaMode::Off if req.mfa_required_here && !has(true) => {
            return Stage::Denied(Denied::SecondFactorRequiredButOff)
        }
        MfaMode::Off => false,
        _ if waived => false,
        MfaMode::Optional => {
            enrolled.any_second(mailbox_first) || enrolled.had_second_factor || req.mfa_required_here || req.acr_mfa
        }
        MfaMode::Required => true,
    };
    if needs_second && !has(true) {
        let recent_password = passed
            .iter()
            .any(|p| p.factor.is_first() && req.enroll_after.is_none_or(|t| p.at >= t));
        return if enrolled.can_pass_second(mailbox_first) {
            Stage::SecondFactor
        } else if enrolled.had_second_factor {
            Stage::Denied(Denied::SecondFactorLost)
        } else if !recent_password {
            Stage::Password
        } else {
            Stage::EnrollSecondFactor
        };
    }
    if req.new_password {
        return Stage::NewPassword;
    }
    if req.consent {
        return Stage::Consent;
    }
    Stage::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    const PWD: Passed = Passed {
        factor: Factor::Password,
        at: 100,
    };
    const TOTP: Passed = Passed {
        factor: Factor::Totp,
        at: 110,
    };
    const NONE: Enrolled = Enrolled {
        totp: false,
        recovery_codes: false,
        email: false,
        email_chosen: false,
        had_second_factor: false,
        passkeys: false,
    };
    const WITH_TOTP: Enrolled = Enrolled {
        totp: true,
        recovery_codes: true,
        email: false,
        email_chosen: false,
        had_second_factor: true,
        passkeys: false,
    };

    fn req(mfa: MfaMode) -> Requirements {
        Requirements {
            mfa,
            ..Requirements::default()
        }
    }

    #[test]
    fn a_waived_second_factor_is_skipped_unless_the_client_a_group_or_acr_values_require_one() {
        let passed = [PWD];
        for mfa in [MfaMode::Optional, MfaMode::Required] {
            let waived = Requirements {
                second_factor_waived: true,
                ..req(mfa)
            };
            assert_eq!(next(&waived, Some(WITH_TOTP), &passed), Stage::Complete, "{mfa:?}");
            assert_eq!(
                next(&waived, Some(NONE), &passed),
                Stage::Complete,
                "{mfa:?}: no enrollment"
            );
            assert_eq!(
                next(&req(mfa), Some(WITH_TOTP), &passed),
                Stage::SecondFactor,
                "{mfa:?}: not waived"
            );
            let required_here = Requirements {
                mfa_required_here: true,
                ..waived.clone()
            };
            assert_eq!(next(&required_here, Some(WITH_TOTP), &passed), Stage::SecondFactor);
            let acr = Requirements {
                acr_mfa: true,
                ..waived.clone()
            };
            assert_eq!(next(&acr, Some(WITH_TOTP), &passed), Stage::SecondFactor);
        }
        // Nor after a reset link alone (it proves only the mailbox).
        let link = Passed {
            factor: Factor::EmailLink,
            at: 100,
        };
        let waived_optional = Requirements {
            second_factor_waived: true,
            ..req(MfaMode::Optional)
        };
        assert_eq!(next(&waived_optional, Some(WITH_TOTP), &[link]), Stage::SecondFactor);
        // A waiver never stands in for the first factor.
        let waived = Requirements {
            second_factor_waived: true,
            ..req(MfaMode::Required)
        };
        assert_eq!(next(&waived, Some(WITH_TOTP), &[TOTP]), Stage::Password);
    }

    #[test]
    fn a_second_factor_backs_a_password_when_it_is_an_app_a_passkey_or_chosen_emailed_codes() {
        assert!(!NONE.has_second_factor());
        assert!(WITH_TOTP.has_second_factor());
        let passkey = Enrolled { passkeys: true, ..NONE };
        assert!(passkey.has_second_factor());
        let codes_only = Enrolled {
            recovery_codes: true,
            had_second_factor: true,
            ..NONE
        };
        assert!(!codes_only.has_second_factor(), "recovery codes are a backup");
        let email = Enrolled { email: true, ..NONE };
        assert!(
            !email.has_second_factor(),
            "codes the user did not turn on are never asked"
        );
        let chosen_unusable = Enrolled {
            email_chosen: true,
            ..NONE
        };
        assert!(
            !chosen_unusable.has_second_factor(),
            "turned on, but no code can be sent"
        );
        assert!(Enrolled {
            email: true,
            email_chosen: true,
            ..NONE
        }
        .has_second_factor());
    }

    #[test]
    fn a_flow_identifies_then_asks_the_password_then_completes() {
        let r = req(MfaMode::Optional);
        assert_eq!(next(&r, None, &[]), Stage::Identify);
        assert_eq!(next(&r, Some(NONE), &[]), Stage::Password);
        assert_eq!(next(&r, Some(NONE), &[PWD]), Stage::Complete);
    }

    #[test]
    fn an_enrolled_user_is_asked_a_second_factor_unless_mfa_is_off() {
        assert_eq!(
            next(&req(MfaMode::Optional), Some(WITH_TOTP), &[PWD]),
            Stage::SecondFactor
        );
        assert_eq!(
            next(&req(MfaMode::Optional), Some(WITH_TOTP), &[PWD, TOTP]),
            Stage::Complete
        );
        assert_eq!(next(&req(MfaMode::Off), Some(WITH_TOTP), &[PWD]), Stage::Complete);
        // A second factor alone is not a password.
        assert_eq!(next(&req(MfaMode::Optional), Some(WITH_TOTP), &[TOTP]), Stage::Password);
        let codes_only = Enrolled {
            totp: false,
            recovery_codes: true,
            email: false,
            email_chosen: false,
            had_second_factor: true,
            passkeys: false,
        };
        assert_eq!(
            next(&req(MfaMode::Optional), Some(codes_only), &[PWD]),
            Stage::SecondFactor
        );
    }

    #[test]
    fn gatehouse_mfa_required_makes_a_user_without_a_second_factor_enroll_before_a_session() {
        let r = req(MfaMode::Required);
        assert_eq!(next(&r, Some(NONE), &[PWD]), Stage::EnrollSecondFactor);
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD]), Stage::SecondFactor);
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP]), Stage::Complete);
    }

    #[test]
    fn enrolling_needs_a_recent_password_not_one_carried_from_an_old_session() {
        let r = Requirements {
            enroll_after: Some(100),
            ..req(MfaMode::Required)
        };
        // PWD was passed at 100: exactly recent enough.
        assert_eq!(next(&r, Some(NONE), &[PWD]), Stage::EnrollSecondFactor);
        let old = Requirements {
            enroll_after: Some(101),
            ..r.clone()
        };
        assert_eq!(next(&old, Some(NONE), &[PWD]), Stage::Password, "enter it again first");
        // A second factor held already is asked for as usual: its code proves possession.
        assert_eq!(next(&old, Some(WITH_TOTP), &[PWD]), Stage::SecondFactor);
        // A second factor passed does not stand in for the password.
        assert_eq!(next(&old, Some(NONE), &[TOTP]), Stage::Password);
    }

    #[test]
    fn a_client_or_group_that_requires_mfa_and_acr_values_step_up_a_password_session() {
        for r in [
            Requirements {
                mfa_required_here: true,
                ..req(MfaMode::Optional)
            },
            Requirements {
                acr_mfa: true,
                ..req(MfaMode::Optional)
            },
        ] {
            // The password from the session carries over: only the missing factor is asked.
            assert_eq!(next(&r, Some(WITH_TOTP), &[PWD]), Stage::SecondFactor);
            assert_eq!(next(&r, Some(NONE), &[PWD]), Stage::EnrollSecondFactor);
            assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP]), Stage::Complete);
        }
    }

    #[test]
    fn max_age_and_prompt_login_discount_factors_passed_before_the_cut_off() {
        let r = Requirements {
            fresh_after: Some(105),
            ..req(MfaMode::Optional)
        };
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP]), Stage::Password);
        let again = Passed {
            factor: Factor::Password,
            at: 105,
        };
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP, again]), Stage::Complete);
        let r = Requirements {
            fresh_after: Some(111),
            ..r
        };
        assert_eq!(
            next(&r, Some(WITH_TOTP), &[TOTP, Passed { at: 200, ..PWD }]),
            Stage::SecondFactor
        );
    }

    #[test]
    fn a_new_password_comes_before_consent_and_both_after_the_factors() {
        let r = Requirements {
            new_password: true,
            consent: true,
            ..req(MfaMode::Optional)
        };
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD]), Stage::SecondFactor);
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP]), Stage::NewPassword);
        let r = Requirements {
            new_password: false,
            ..r
        };
        assert_eq!(next(&r, Some(WITH_TOTP), &[PWD, TOTP]), Stage::Consent);
    }

    #[test]
    fn amr_lists_each_fresh_method_once_and_mfa_for_a_password_with_a_second_factor() {
        let code = Passed {
            factor: Factor::RecoveryCode,
            at: 120,
        };
        assert_eq!(amr_of(&[PWD], None), [amr::PWD]);
        assert_eq!(amr_of(&[PWD, TOTP], None), [amr::PWD, amr::OTP, amr::MFA]);
        assert_eq!(amr_of(&[PWD, TOTP, code], None), [amr::PWD, amr::OTP, amr::MFA]);
        assert_eq!(amr_of(&[TOTP], None), [amr::OTP]);
        assert_eq!(amr_of(&[], None), Vec::<&str>::new());
        // An old second factor carried over from the session does not make a fresh password MFA.
        let fresh_password = Passed { at: 200, ..PWD };
        assert_eq!(amr_of(&[TOTP, fresh_password], Some(150)), [amr::PWD]);
        assert_eq!(
            amr_of(&[TOTP, fresh_password], Some(110)),
            [amr::OTP, amr::PWD, amr::MFA]
        );
    }

    #[test]
    fn mfa_off_denies_a_client_that_requires_a_second_factor_and_declines_an_acr_request() {
        let required = Requirements {
            mfa_required_here: true,
            ..req(MfaMode::Off)
        };
        assert_eq!(
            next(&required, Some(WITH_TOTP), &[PWD]),
            Stage::Denied(Denied::SecondFactorRequiredButOff)
        );
        let asked = Requirements {
            acr_mfa: true,
            ..req(MfaMode::Off)
        };
        assert_eq!(next(&asked, Some(WITH_TOTP), &[PWD]), Stage::Complete);
    }

    #[test]
    fn a_user_whose_second_factors_are_gone_is_denied_rather_than_enrolled_by_password() {
        let lost = Enrolled {
            totp: false,
            recovery_codes: false,
            email: false,
            email_chosen: false,
            had_second_factor: true,
            passkeys: false,
        };
        for mode in [MfaMode::Optional, MfaMode::Required] {
            assert_eq!(
                next(&req(mode), Some(lost), &[PWD]),
                Stage::Denied(Denied::SecondFactorLost),
                "{mode:?}"
            );
        }
        assert_eq!(next(&req(MfaMode::Off), Some(lost), &[PWD]), Stage::Complete);
    }

    #[test]
    fn a_sessions_factors_are_stored_with_their_times_and_read_back() {
        let passed = [PWD, TOTP];
        let stored = store_passed(&passed);
        assert_eq!(stored, "password:100 totp:110");
        assert_eq!(parse_passed(&stored, 0), passed);
        // Before factors were recorded: a password at auth_time.
        assert_eq!(
            parse_passed("", 42),
            [Passed {
                factor: Factor::Password,
                at: 42
            }]
        );
        // Unknown or malformed entries prove nothing.
        assert_eq!(
            parse_passed("passkey:5 totp:x password 7 recovery_code:9", 0),
            [Passed {
                factor: Factor::RecoveryCode,
                at: 9
            }]
        );
        for f in [Factor::Password, Factor::Totp, Factor::RecoveryCode] {
            assert_eq!(Factor::parse(f.as_str()), Some(f));
        }
    }

    #[test]
    fn gatehouse_mfa_values() {
        assert_eq!(MfaMode::parse("off"), Some(MfaMode::Off));
        assert_eq!(MfaMode::parse("optional"), Some(MfaMode::Optional));
        assert_eq!(MfaMode::parse("required"), Some(MfaMode::Required));
        assert_eq!(MfaMode::parse("Required"), None);
        assert_eq!(MfaMode::default(), MfaMode::Optional);
    }

    const EMAIL_CODE: Passed = Passed {
        factor: Factor::EmailCode,
        at: 120,
    };
    const LINK: Passed = Passed {
        factor: Factor::EmailLink,
        at: 100,
    };
    const MAILBOX: Enrolled = Enrolled { email: true, ..NONE };

    #[test]
    fn an_emailed_code_is_asked_when_chosen_and_offered_when_a_second_factor_is_required() {
        let optional = req(MfaMode::Optional);
        // Usable but not chosen: nothing more is asked in optional mode.
        assert_eq!(next(&optional, Some(MAILBOX), &[PWD]), Stage::Complete);
        let chosen = Enrolled {
            email_chosen: true,
            ..MAILBOX
        };
        assert_eq!(next(&optional, Some(chosen), &[PWD]), Stage::SecondFactor);
        assert_eq!(next(&optional, Some(chosen), &[PWD, EMAIL_CODE]), Stage::Complete);
        // Chosen, but the deployment turned emailed codes off (or the address is unverified).
        let unusable = Enrolled { email: false, ..chosen };
        assert_eq!(next(&optional, Some(unusable), &[PWD]), Stage::Complete);
        // Required: a verified address stands in for enrolling an app.
        let required = req(MfaMode::Required);
        assert_eq!(next(&required, Some(MAILBOX), &[PWD]), Stage::SecondFactor);
        assert_eq!(next(&required, Some(MAILBOX), &[PWD, EMAIL_CODE]), Stage::Complete);
        assert_eq!(amr_of(&[PWD, EMAIL_CODE], None), [amr::PWD, amr::OTP, amr::MFA]);
    }

    #[test]
    fn an_emailed_code_never_replaces_an_app_the_user_enrolled_unless_they_chose_codes() {
        let app_and_mailbox = Enrolled {
            email: true,
            ..WITH_TOTP
        };
        for mode in [MfaMode::Optional, MfaMode::Required] {
            let r = req(mode);
            assert_eq!(next(&r, Some(app_and_mailbox), &[PWD]), Stage::SecondFactor);
            assert_eq!(
                next(&r, Some(app_and_mailbox), &[PWD, EMAIL_CODE]),
                Stage::SecondFactor,
                "the code does not count: the app is asked"
            );
            let chosen = Enrolled {
                email_chosen: true,
                ..app_and_mailbox
            };
            assert_eq!(next(&r, Some(chosen), &[PWD, EMAIL_CODE]), Stage::Complete);
        }
        assert!(!app_and_mailbox.email_counts());
        assert!(MAILBOX.email_counts());
        assert!(!NONE.email_counts());
    }

    #[test]
    fn a_reset_link_stands_in_for_the_password_but_an_emailed_code_does_not_add_to_it() {
        let r = Requirements {
            new_password: true,
            ..req(MfaMode::Optional)
        };
        // No second factor: the link, then the new password.
        assert_eq!(next(&r, Some(NONE), &[LINK]), Stage::NewPassword);
        // An app still has to be passed: a mailbox is not the second factor it guards.
        assert_eq!(next(&r, Some(WITH_TOTP), &[LINK]), Stage::SecondFactor);
        assert_eq!(next(&r, Some(WITH_TOTP), &[LINK, TOTP]), Stage::NewPassword);
        // The mailbox twice is one factor: a user whose only second factor is the mailbox
        // gets no code after the link (and no `mfa`), and a required second factor is enrolled.
        let chosen = Enrolled {
            email_chosen: true,
            ..MAILBOX
        };
        assert_eq!(next(&r, Some(chosen), &[LINK]), Stage::NewPassword);
        let required = Requirements {
            new_password: true,
            ..req(MfaMode::Required)
        };
        assert_eq!(next(&required, Some(MAILBOX), &[LINK]), Stage::EnrollSecondFactor);
        assert_eq!(
            next(&required, Some(MAILBOX), &[LINK, EMAIL_CODE]),
            Stage::EnrollSecondFactor
        );
        assert_eq!(amr_of(&[LINK, EMAIL_CODE], None), [amr::OTP]);
        assert_eq!(amr_of(&[LINK, TOTP], None), [amr::OTP, amr::MFA]);
        // With the password passed too, the code counts again.
        assert_eq!(amr_of(&[LINK, PWD, EMAIL_CODE], None), [amr::OTP, amr::PWD, amr::MFA]);
        assert!(Factor::EmailLink.is_mailbox() && Factor::EmailCode.is_mailbox());
        assert!(!Factor::Totp.is_mailbox());
        for f in [Factor::EmailCode, Factor::EmailLink] {
            assert_eq!(Factor::parse(f.as_str()), Some(f));
        }
    }
}
