//! Event-matcher policy: does an event match a rule's criteria? Pure; the caller supplies the
//! user's groups (read only when a rule asks about groups).
//!
//! Each criterion is a list; an empty list matches anything, a non-empty one matches when the
//! event's value is in it, and all criteria must match. `new_country` is not judged here: it
//! needs the user's sign-in history, so the queue consumer decides it, off the request path
//! (`delivery`). `expression` is a CEL condition (`crate::policy::expression`) on the event
//! (`event.kind`, `event.detail.reason`, ...), its user (`user.id`, `user.groups`), `request.ip`
//! and `time`, checked when the rule is saved; one that fails to evaluate matches nothing (a
//! rule narrowed by an expression never sends more than its author asked for).

use serde::{Deserialize, Serialize};

use super::Recorded;
use crate::types::event_kind::EventKind;

/// At most this many entries in each list.
pub const MAX_ENTRIES: usize = 50;
/// At most this many bytes in one entry (an id, a group name).
pub const MAX_ENTRY_BYTES: usize = 200;
/// At most this many bytes in an expression.
pub const MAX_EXPRESSION_BYTES: usize = 2048;

/// What a rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Event kinds by their wire names (`login_succeeded`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The OIDC client or gateway app the event names (`client_id`).
    #[serde(default)]
    pub clients: Vec<String>,
    /// User ids.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups: the event's user is in at least one of them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Only a `login_succeeded` from a country the user has not signed in from before (decided
    /// by the consumer).
    #[serde(default)]
    pub new_country: bool,
    /// A CEL condition the event must satisfy (see the module comment).
    #[serde(default)]
    pub expression: Option<String>,
}

impl Criteria {
    /// The first thing wrong with the criteria, said so an administrator can fix it.
    pub fn validate(&self) -> Result<(), String> {
        for (name, list) in [
            ("kinds", &self.kinds),
            ("clients", &self.clients),
            ("users", &self.users),
            ("groups", &self.groups),
        ] {
            if list.len() > MAX_ENTRIES {
                return Err(format!("match.{name} has more than {MAX_ENTRIES} entries"));
            }
            if let Some(bad) = list
                .iter()
                .find(|v| v.is_empty() || v.len() > MAX_ENTRY_BYTES || v.chars().any(char::is_control))
            {
                return Err(format!(
                    "match.{name} has an empty, control-character or over-{MAX_ENTRY_BYTES}-byte entry ({:?})",
                    bad.chars().take(40).collect::<String>()
                ));
            }
        }
        if let Some(unknown) = self.kinds.iter().find(|k| kind(k).is_none()) {
            return Err(format!("match.kinds: {unknown:?} is not an event kind"));
        }
        if self.new_country && !self.kinds.iter().all(|k| k == EventKind::LoginSucceeded.as_str()) {
            return Err(
                "match.new_country applies to login_succeeded only: set match.kinds to [\"login_succeeded\"]".into(),
            );
        }
        if let Some(e) = &self.expression {
            if e.len() > MAX_EXPRESSION_BYTES {
                return Err(format!("match.expression is longer than {MAX_EXPRESSION_BYTES} bytes"));
            }
            crate::policy::expression::validate(e).map_err(|err| format!("match.expression: {err}"))?;
        }
        Ok(())
    }

    /// Whether matching needs the user's groups (read them only then): a group criterion, or
    /// an expression (which may ask `user.groups`).
    pub fn needs_groups(&self) -> bool {
        !self.groups.is_empty() || self.expression.is_some()
    }
}

/// The kind with this wire name.
pub fn kind(name: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|k| k.as_str() == name)
}

/// Whether `event` matches `criteria`, given the groups of the event's user (empty when it has
/// none, or when the criteria do not ask).
pub fn matches(criteria: &Criteria, event: &Recorded, groups: &[String]) -> bool {
    let within =
        |list: &[String], value: Option<&str>| list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v));
    within(&criteria.kinds, Some(&event.kind))
        && within(&criteria.clients, event.client_id.as_deref())
        && within(&criteria.users, event.user_id.as_deref())
        && (criteria.groups.is_empty() || groups.iter().any(|g| criteria.groups.contains(g)))
        && (!criteria.new_country || event.kind == EventKind::LoginSucceeded.as_str())
        && criteria
            .expression
            .as_deref()
            .is_none_or(|e| crate::policy::expression::evaluate(e, &facts(event, groups)).unwrap_or(false))
}

/// What a rule's expression sees of an event.
fn facts(event: &Recorded, groups: &[String]) -> crate::policy::expression::Facts {
    use crate::policy::expression::{EventFacts, Facts, RequestFacts, TimeFacts, UserFacts};
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Facts {
        user: UserFacts {
            id: text(&event.user_id),
            groups: groups.to_vec(),
            ..UserFacts::default()
        },
        request: RequestFacts {
            ip: text(&event.ip),
            ..RequestFacts::default()
        },
        time: TimeFacts::at(event.created_at),
        event: EventFacts {
            kind: event.kind.clone(),
            user_id: text(&event.user_id),
            client_id: text(&event.client_id),
            ip: text(&event.ip),
            detail: event.detail.clone(),
        },
        ..Facts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, user: Option<&str>, client: Option<&str>) -> Recorded {
        Recorded {
            id: "evt_1".into(),
            kind: kind.into(),
            user_id: user.map(Into::into),
            client_id: client.map(Into::into),
            ip: None,
            detail: serde_json::json!({}),
            created_at: 0,
        }
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_criteria_match_every_event() {
        let c = Criteria::default();
        assert!(matches(&c, &event("login_failed", None, None), &[]));
        assert!(matches(
            &c,
            &event("admin_user_created", Some("usr_1"), Some("cli_1")),
            &[]
        ));
    }

    #[test]
    fn each_criterion_is_a_list_of_alternatives_and_all_criteria_must_hold() {
        let c = Criteria {
            kinds: list(&["login_succeeded", "account_locked"]),
            clients: list(&["cli_a"]),
            users: list(&["usr_1", "usr_2"]),
            ..Criteria::default()
        };
        assert!(matches(&c, &event("account_locked", Some("usr_2"), Some("cli_a")), &[]));
        assert!(
            !matches(&c, &event("login_failed", Some("usr_2"), Some("cli_a")), &[]),
            "kind"
        );
        assert!(
            !matches(&c, &event("account_locked", Some("usr_3"), Some("cli_a")), &[]),
            "user"
        );
        assert!(
            !matches(&c, &event("account_locked", Some("usr_2"), Some("cli_b")), &[]),
            "client"
        );
        assert!(
            !matches(&c, &event("account_locked", None, Some("cli_a")), &[]),
            "no user at all"
        );
        assert!(
            !matches(&c, &event("account_locked", Some("usr_2"), None), &[]),
            "no client at all"
        );
    }

    #[test]
    fn groups_match_when_the_user_is_in_any_of_them() {
        let c = Criteria {
            groups: list(&["staff", "admins"]),
            ..Criteria::default()
        };
        assert!(c.needs_groups());
        let e = event("login_succeeded", Some("usr_1"), None);
        assert!(matches(&c, &e, &list(&["users", "admins"])));
        assert!(!matches(&c, &e, &list(&["users"])));
        assert!(!matches(&c, &e, &[]));
        assert!(!Criteria::default().needs_groups());
    }

    #[test]
    fn an_expression_narrows_a_rule_on_the_event_its_user_and_time_and_an_error_matches_nothing() {
        let rule = |e: &str| Criteria {
            expression: Some(e.into()),
            ..Criteria::default()
        };
        let mut failed = event("login_failed", Some("usr_1"), Some("cli_a"));
        failed.detail = serde_json::json!({"reason": "locked", "username": "ann"});
        failed.ip = Some("10.0.0.7".into());
        failed.created_at = 1_800_000_000;
        let groups = list(&["staff"]);
        for yes in [
            "event.kind == 'login_failed' && event.detail.reason == 'locked'",
            "'staff' in user.groups && user.id == 'usr_1' && event.client_id == 'cli_a'",
            "request.ip.startsWith('10.') && event.ip == '10.0.0.7' && time.unix == 1800000000",
        ] {
            let c = rule(yes);
            assert!(c.validate().is_ok(), "{yes}");
            assert!(c.needs_groups(), "an expression may ask for the groups");
            assert!(matches(&c, &failed, &groups), "{yes}");
        }
        assert!(!matches(&rule("event.detail.reason == 'wrong'"), &failed, &groups));
        // An error (a missing detail) matches nothing.
        assert!(!matches(&rule("event.detail.nope == 'x'"), &failed, &groups));
        assert!(rule("event.kind ==")
            .validate()
            .unwrap_err()
            .contains("match.expression: syntax error"));
        assert!(rule("secret == 1").validate().unwrap_err().contains("unknown name"));
    }

    #[test]
    fn new_country_is_left_to_the_consumer_but_only_for_sign_ins() {
        let c = Criteria {
            kinds: list(&["login_succeeded"]),
            new_country: true,
            ..Criteria::default()
        };
        assert!(c.validate().is_ok());
        assert!(matches(&c, &event("login_succeeded", Some("u"), None), &[]));
        let wrong = Criteria {
            kinds: list(&["login_failed"]),
            new_country: true,
            ..Criteria::default()
        };
        assert!(wrong.validate().unwrap_err().contains("login_succeeded"));
    }

    #[test]
    fn validation_names_the_bad_field_and_bounds_every_list() {
        let unknown = Criteria {
            kinds: list(&["login_succeded"]),
            ..Criteria::default()
        };
        assert!(unknown
            .validate()
            .unwrap_err()
            .contains("\"login_succeded\" is not an event kind"));
        let long = Criteria {
            users: vec!["u".into(); MAX_ENTRIES + 1],
            ..Criteria::default()
        };
        assert!(long.validate().unwrap_err().contains("match.users"));
        let big = Criteria {
            groups: vec!["g".repeat(MAX_ENTRY_BYTES + 1)],
            ..Criteria::default()
        };
        assert!(big.validate().unwrap_err().contains("match.groups"));
        let empty = Criteria {
            clients: vec![String::new()],
            ..Criteria::default()
        };
        assert!(empty.validate().is_err());
        let expr = Criteria {
            expression: Some("x".repeat(MAX_EXPRESSION_BYTES + 1)),
            ..Criteria::default()
        };
        assert!(expr.validate().unwrap_err().contains("2048"));
        // Exactly at the bound: a valid expression padded with spaces.
        let source = "event.kind == 'x'";
        let at_bound = Criteria {
            expression: Some(format!("{source}{}", " ".repeat(MAX_EXPRESSION_BYTES - source.len()))),
            ..Criteria::default()
        };
        assert!(at_bound.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_not_ignored() {
        let r: Result<Criteria, _> = serde_json::from_value(serde_json::json!({"kind": ["login_failed"]}));
        assert!(r.is_err(), "a misspelt criterion must not silently match everything");
    }
}
