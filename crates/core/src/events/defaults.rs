//! The rules a deployment has without configuring any (README: "Notifications"). They live in
//! code, not in the database, and each is on only when its destination exists, so a fresh
//! deployment sends nothing it was not told where to send:
//!
//! | id | when | to |
//! | --- | --- | --- |
//! | `default:account_locked` | `account_locked` | the user, if `GATEHOUSE_NOTIFY_USER` is on and mail can be sent |
//! | `default:new_country` | `login_succeeded` from a country the user never signed in from | the user, likewise |
//! | `default:passkey_counter_regressed` | `passkey_counter_regressed` | `GATEHOUSE_NOTIFY_ADMIN_EMAIL` |
//! | `default:admin_changes` | every `admin_*` kind | `GATEHOUSE_NOTIFY_ADMIN_EMAIL` |

use super::matcher::Criteria;
use super::rules::{Rule, Transport, THE_USER};
use crate::config::Settings;
use crate::mail::Delivery;
use crate::types::event_kind::EventKind;

/// The prefix of built-in rule ids (never a stored rule's: those are `ntf_…`).
pub const PREFIX: &str = "default:";

/// How mail leaves outside a request (the queue consumer has no request origin): the dev outbox
/// only without an issuer, as `mail::delivery` decides for local development.
pub fn mail_delivery(settings: &Settings) -> Delivery {
    match settings.mail.delivery {
        Delivery::Auto | Delivery::Outbox if settings.issuer.is_none() => Delivery::Outbox,
        Delivery::Auto | Delivery::Outbox => Delivery::Off,
        d => d,
    }
}

fn rule(id: &str, name: &str, kinds: Vec<String>, new_country: bool, to: Vec<String>) -> Rule {
    Rule {
        id: format!("{PREFIX}{id}"),
        name: name.to_owned(),
        enabled: true,
        criteria: Criteria {
            kinds,
            new_country,
            ..Criteria::default()
        },
        transport: Transport::Email { to },
        secret_sealed: None,
        created_at: 0,
        updated_at: 0,
    }
}

/// The default rules that are on under these settings.
pub fn rules(settings: &Settings) -> Vec<Rule> {
    let mut out = Vec::new();
    let mail = mail_delivery(settings) != Delivery::Off;
    if mail && settings.notify.user_mail {
        let user = vec![THE_USER.to_owned()];
        out.push(rule(
            "account_locked",
            "Tell users their account was locked",
            vec![EventKind::AccountLocked.as_str().into()],
            false,
            user.clone(),
        ));
        out.push(rule(
            "new_country",
            "Tell users about a sign-in from a new country",
            vec![EventKind::LoginSucceeded.as_str().into()],
            true,
            user,
        ));
    }
    if let (true, Some(admin)) = (mail, &settings.notify.admin_email) {
        out.push(rule(
            "passkey_counter_regressed",
            "Tell the administrator about a possibly cloned passkey",
            vec![EventKind::PasskeyCounterRegressed.as_str().into()],
            false,
            vec![admin.clone()],
        ));
        out.push(rule(
            "admin_changes",
            "Tell the administrator about admin changes",
            admin_kinds(),
            false,
            vec![admin.clone()],
        ));
    }
    out
}

/// Every admin change's kind.
pub fn admin_kinds() -> Vec<String> {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("admin_"))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Settings) -> Vec<String> {
        rules(s).into_iter().map(|r| r.id).collect()
    }

    #[test]
    fn nothing_is_sent_where_no_mail_can_leave() {
        let s = Settings {
            issuer: Some("https://id.example.com".into()),
            ..Settings::default()
        };
        assert!(rules(&s).is_empty(), "Auto with an issuer means no mail");
    }

    #[test]
    fn users_are_told_by_default_and_the_administrator_only_when_named() {
        let mut s = Settings {
            issuer: Some("https://id.example.com".into()),
            ..Settings::default()
        };
        s.mail.delivery = Delivery::Api;
        assert_eq!(ids(&s), ["default:account_locked", "default:new_country"]);
        s.notify.admin_email = Some("sec@example.com".into());
        assert_eq!(
            ids(&s),
            [
                "default:account_locked",
                "default:new_country",
                "default:passkey_counter_regressed",
                "default:admin_changes"
            ]
        );
        s.notify.user_mail = false;
        assert_eq!(ids(&s), ["default:passkey_counter_regressed", "default:admin_changes"]);
        for r in rules(&s) {
            assert!(r.criteria.validate().is_ok(), "{}", r.id);
        }
    }

    #[test]
    fn admin_changes_cover_every_admin_kind() {
        let kinds = admin_kinds();
        assert!(kinds.contains(&"admin_user_created".to_owned()));
        assert!(kinds.contains(&"admin_notification_rule_deleted".to_owned()));
        assert!(!kinds.contains(&"login_failed".to_owned()));
    }

    #[test]
    fn local_development_mails_to_the_dev_outbox() {
        assert_eq!(mail_delivery(&Settings::default()), Delivery::Outbox);
    }
}
