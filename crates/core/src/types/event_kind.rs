//! The kinds of events Gatehouse records (`events.kind`). One list: a kind is written under its
//! stored name, and a new one is added here, where the README's list is checked against it.

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A sign-in flow made a new session (`amr` in the detail).
    LoginSucceeded,
    /// A sign-in flow added factors to an existing session.
    LoginSteppedUp,
    /// A wrong password, an unknown or locked account (`reason`).
    LoginFailed,
    /// The right credentials, refused by a policy (`policy`, `reason`, the location).
    LoginBlocked,
    /// A failure reached the lockout threshold.
    AccountLocked,
    /// A sign-in that needed the CAPTCHA did not pass it.
    CaptchaFailed,
    /// A wrong, malformed or replayed second-factor code (`method`, `reason`).
    MfaFailed,
    /// An IP went over a rate limit (once per episode).
    RateLimited,
    /// The user confirmed a new authenticator app.
    TotpEnrolled,
    /// The user removed an authenticator app.
    TotpRemoved,
    /// The user registered a passkey (`credential`, `name`, `synced`).
    PasskeyAdded,
    /// A passkey signed the user in or passed as their second factor (`credential`, `verified`).
    PasskeyUsed,
    /// The user removed one of their passkeys (`credential`).
    PasskeyRemoved,
    /// A passkey's signature counter did not go up: possibly a cloned authenticator. The
    /// assertion was refused (`credential`, `stored`, `presented`).
    PasskeyCounterRegressed,
    /// A recovery code replaced a second factor.
    RecoveryCodeUsed,
    /// The user replaced their recovery codes.
    RecoveryCodesRegenerated,
    /// The user changed their password (`by`: `user`, or `reset` through an emailed link).
    PasswordChanged,
    /// The user signed out their other sessions.
    SessionsEnded,
    /// A mail could not be delivered (`mail`, `delivery`, `reason`; never its body).
    MailFailed,
    /// A mail was not sent: its address or the client IP reached the hourly bound (`mail`, `by`).
    MailLimited,
    /// A sign-in code was sent to the user's verified address.
    EmailCodeSent,
    /// Someone asked for a password reset (`sent`: whether a link went out; the page says the same either way).
    PasswordResetRequested,
    /// A password-reset link was opened in the browser that asked for it.
    PasswordResetLinkUsed,
    /// A verification link was sent to the user's address.
    EmailVerificationSent,
    /// The user proved their address with a verification link.
    EmailVerified,
    /// The user changed their address on the account page (it is unverified until proved).
    EmailChanged,
    /// The user turned emailed sign-in codes on or off (`on`).
    EmailOtpChanged,
    /// The user changed their name or standard claims on the account page (`claims`: the names).
    ProfileChanged,
    /// An authorization code was presented again: its family was revoked.
    CodeReuse,
    /// A rotated refresh token was presented again: its family was revoked.
    RefreshTokenReuse,
    /// A browser reported a CSP violation on an app.
    CspReport,
    AdminUserCreated,
    AdminUserUpdated,
    AdminUserDeleted,
    AdminUserUnlocked,
    AdminClientCreated,
    AdminClientUpdated,
    AdminClientDeleted,
    AdminClientSecretRotated,
    AdminAppCreated,
    AdminAppReplaced,
    AdminAppDeleted,
    /// An administrator removed one of a user's authenticator apps.
    AdminTotpRemoved,
    /// An administrator removed all of a user's second factors.
    AdminFactorsReset,
    /// An administrator removed one of a user's passkeys.
    AdminPasskeyRemoved,
    /// An administrator issued a passkey setup link for a user (`expires_at`).
    AdminPasskeySetupIssued,
    /// An administrator created an expression policy (`policy_id`, `name`).
    AdminPolicyCreated,
    /// An administrator changed an expression policy (`policy_id`, `name`, the expression before and after).
    AdminPolicyUpdated,
    /// An administrator deleted an expression policy (`policy_id`, `name`).
    AdminPolicyDeleted,
    /// An administrator bound a policy, user or group to a flow, stage, client or app (`binding`).
    AdminPolicyBindingCreated,
    /// An administrator changed a policy binding (`before`, `after`).
    AdminPolicyBindingUpdated,
    /// An administrator removed a policy binding (`binding`).
    AdminPolicyBindingDeleted,
    /// An administrator set how a target's bindings combine (`target`, `mode`: `all` or `any`).
    AdminPolicyModeSet,
    /// An administrator created a notification rule.
    AdminNotificationRuleCreated,
    /// An administrator replaced a notification rule.
    AdminNotificationRuleUpdated,
    /// An administrator deleted a notification rule.
    AdminNotificationRuleDeleted,
}

impl EventKind {
    pub const ALL: [EventKind; 56] = [
        EventKind::LoginSucceeded,
        EventKind::LoginSteppedUp,
        EventKind::LoginFailed,
        EventKind::LoginBlocked,
        EventKind::AccountLocked,
        EventKind::CaptchaFailed,
        EventKind::MfaFailed,
        EventKind::RateLimited,
        EventKind::TotpEnrolled,
        EventKind::TotpRemoved,
        EventKind::PasskeyAdded,
        EventKind::PasskeyUsed,
        EventKind::PasskeyRemoved,
        EventKind::PasskeyCounterRegressed,
        EventKind::RecoveryCodeUsed,
        EventKind::RecoveryCodesRegenerated,
        EventKind::PasswordChanged,
        EventKind::SessionsEnded,
        EventKind::MailFailed,
        EventKind::MailLimited,
        EventKind::EmailCodeSent,
        EventKind::PasswordResetRequested,
        EventKind::PasswordResetLinkUsed,
        EventKind::EmailVerificationSent,
        EventKind::EmailVerified,
        EventKind::EmailChanged,
        EventKind::EmailOtpChanged,
        EventKind::ProfileChanged,
        EventKind::CodeReuse,
        EventKind::RefreshTokenReuse,
        EventKind::CspReport,
        EventKind::AdminUserCreated,
        EventKind::AdminUserUpdated,
        EventKind::AdminUserDeleted,
        EventKind::AdminUserUnlocked,
        EventKind::AdminClientCreated,
        EventKind::AdminClientUpdated,
        EventKind::AdminClientDeleted,
        EventKind::AdminClientSecretRotated,
        EventKind::AdminAppCreated,
        EventKind::AdminAppReplaced,
        EventKind::AdminAppDeleted,
        EventKind::AdminTotpRemoved,
        EventKind::AdminFactorsReset,
        EventKind::AdminPasskeyRemoved,
        EventKind::AdminPasskeySetupIssued,
        EventKind::AdminPolicyCreated,
        EventKind::AdminPolicyUpdated,
        EventKind::AdminPolicyDeleted,
        EventKind::AdminPolicyBindingCreated,
        EventKind::AdminPolicyBindingUpdated,
        EventKind::AdminPolicyBindingDeleted,
        EventKind::AdminPolicyModeSet,
        EventKind::AdminNotificationRuleCreated,
        EventKind::AdminNotificationRuleUpdated,
        EventKind::AdminNotificationRuleDeleted,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LoginSucceeded => "login_succeeded",
            EventKind::LoginSteppedUp => "login_stepped_up",
            EventKind::LoginFailed => "login_failed",
            EventKind::LoginBlocked => "login_blocked",
            EventKind::AccountLocked => "account_locked",
            EventKind::CaptchaFailed => "captcha_failed",
            EventKind::MfaFailed => "mfa_failed",
            EventKind::RateLimited => "rate_limited",
            EventKind::TotpEnrolled => "totp_enrolled",
            EventKind::TotpRemoved => "totp_removed",
            EventKind::PasskeyAdded => "passkey_added",
            EventKind::PasskeyUsed => "passkey_used",
            EventKind::PasskeyRemoved => "passkey_removed",
            EventKind::PasskeyCounterRegressed => "passkey_counter_regressed",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            EventKind::PasswordChanged => "password_changed",
            EventKind::SessionsEnded => "sessions_ended",
            EventKind::MailFailed => "mail_failed",
            EventKind::MailLimited => "mail_limited",
            EventKind::EmailCodeSent => "email_code_sent",
            EventKind::PasswordResetRequested => "password_reset_requested",
            EventKind::PasswordResetLinkUsed => "password_reset_link_used",
            EventKind::EmailVerificationSent => "email_verification_sent",
            EventKind::EmailVerified => "email_verified",
            EventKind::EmailChanged => "email_changed",
            EventKind::EmailOtpChanged => "email_otp_changed",
            EventKind::ProfileChanged => "profile_changed",
            EventKind::CodeReuse => "code_reuse",
            EventKind::RefreshTokenReuse => "refresh_token_reuse",
            EventKind::CspReport => "csp_report",
            EventKind::AdminUserCreated => "admin_user_created",
            EventKind::AdminUserUpdated => "admin_user_updated",
            EventKind::AdminUserDeleted => "admin_user_deleted",
            EventKind::AdminUserUnlocked => "admin_user_unlocked",
            EventKind::AdminClientCreated => "admin_client_created",
            EventKind::AdminClientUpdated => "admin_client_updated",
            EventKind::AdminClientDeleted => "admin_client_deleted",
            EventKind::AdminClientSecretRotated => "admin_client_secret_rotated",
            EventKind::AdminAppCreated => "admin_app_created",
            EventKind::AdminAppReplaced => "admin_app_replaced",
            EventKind::AdminAppDeleted => "admin_app_deleted",
            EventKind::AdminTotpRemoved => "admin_totp_removed",
            EventKind::AdminPasskeyRemoved => "admin_passkey_removed",
            EventKind::AdminPasskeySetupIssued => "admin_passkey_setup_issued",
            EventKind::AdminFactorsReset => "admin_factors_reset",
            EventKind::AdminPolicyCreated => "admin_policy_created",
            EventKind::AdminPolicyUpdated => "admin_policy_updated",
            EventKind::AdminPolicyDeleted => "admin_policy_deleted",
            EventKind::AdminPolicyBindingCreated => "admin_policy_binding_created",
            EventKind::AdminPolicyBindingUpdated => "admin_policy_binding_updated",
            EventKind::AdminPolicyBindingDeleted => "admin_policy_binding_deleted",
            EventKind::AdminPolicyModeSet => "admin_policy_mode_set",
            EventKind::AdminNotificationRuleCreated => "admin_notification_rule_created",
            EventKind::AdminNotificationRuleUpdated => "admin_notification_rule_updated",
            EventKind::AdminNotificationRuleDeleted => "admin_notification_rule_deleted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn each_kind_has_its_own_snake_case_name_which_serde_agrees_with() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            let name = k.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            assert_eq!(serde_json::to_value(k).unwrap(), name);
        }
    }

    #[test]
    fn the_readme_lists_every_kind() {
        let readme = include_str!("../../../../README.md");
        for k in EventKind::ALL {
            let row = format!("| `{}` |", k.as_str());
            assert!(readme.contains(&row), "README.md has no row for {}", k.as_str());
        }
    }
}
