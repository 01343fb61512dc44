//! Policy bindings (../shared/reference/001, "Bindings"): a policy, a user or a group bound to a
//! target, with an order, `negate` and a failure result, and an engine mode per target (`all`:
//! every binding must pass; `any`: one is enough). What passing means depends on the target:
//! - a **flow** (`authorize`, `gateway`, `account`), an **OIDC client** or a **gateway app**: the
//!   user may use it; a failing verdict refuses the sign-in with `access_denied`;
//! - the **stage** `mfa`: the second-factor stage runs; a failing verdict skips it, unless the
//!   client, the app, a group setting or `acr_values` requires a second factor (a policy may waive
//!   what the deployment asks by default, never what a relying party requires).
//!
//! A target with no enabled binding passes. Pure: the caller loads the bindings and the facts.

use super::expression::{self, Facts};

/// At most this many bindings per target: each may evaluate an expression at sign-in.
pub const MAX_PER_TARGET: usize = 32;

/// The stages a binding can decide on.
pub const STAGES: [&str; 1] = ["mfa"];
/// The flows (purposes) a binding can restrict.
pub const FLOWS: [&str; 3] = ["authorize", "gateway", "account"];

/// What a binding is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Flow(String),
    Stage(String),
    Client(String),
    App(String),
}

impl Target {
    pub fn parse(kind: &str, id: &str) -> Result<Target, String> {
        if id.is_empty() || id.len() > 254 {
            return Err("target_id must be 1 to 254 bytes".into());
        }
        match kind {
            "flow" if FLOWS.contains(&id) => Ok(Target::Flow(id.to_owned())),
            "flow" => Err(format!("no such flow `{id}`: one of {}", FLOWS.join(", "))),
            "stage" if STAGES.contains(&id) => Ok(Target::Stage(id.to_owned())),
            "stage" => Err(format!("no such stage `{id}`: one of {}", STAGES.join(", "))),
            "client" => Ok(Target::Client(id.to_owned())),
            "app" => Ok(Target::App(id.to_owned())),
            _ => Err("target must be flow, stage, client or app".into()),
        }
    }

    /// Its stored key (`client:abc`), unique per target.
    pub fn key(&self) -> String {
        let (kind, id) = self.parts();
        format!("{kind}:{id}")
    }

    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Target::Flow(id) => ("flow", id),
            Target::Stage(id) => ("stage", id),
            Target::Client(id) => ("client", id),
            Target::App(id) => ("app", id),
        }
    }
}

/// What a binding checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An expression policy, by id; `expression` is its source when it was found.
    Policy { id: String, expression: Option<String> },
    /// One user, by id (the admin API resolves a username when the binding is saved, so a user
    /// created later under a deleted user's name is not bound).
    User(String),
    /// Membership of a group.
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    pub subject: Subject,
    pub order: i64,
    /// Passing becomes failing and back (not applied to the failure result).
    pub negate: bool,
    /// The binding's result when it cannot be evaluated (an expression error, a missing policy).
    pub failure_result: bool,
    pub enabled: bool,
}

/// How a target's bindings combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    All,
    Any,
}

impl Mode {
    pub fn parse(v: &str) -> Option<Mode> {
        match v {
            "all" => Some(Mode::All),
            "any" => Some(Mode::Any),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Any => "any",
        }
    }
}

/// One binding's part in a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub binding_id: String,
    pub passed: bool,
    /// Why it could not be evaluated (its failure result was used).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// Every enabled binding in order (a dry run shows them all).
    pub outcomes: Vec<Outcome>,
}

/// The verdict of a target's bindings on `facts`.
pub fn evaluate(bindings: &[Binding], mode: Mode, facts: &Facts) -> Verdict {
    let mut enabled: Vec<&Binding> = bindings.iter().filter(|b| b.enabled).collect();
    enabled.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.id.cmp(&b.id)));
    let outcomes: Vec<Outcome> = enabled.iter().map(|b| outcome(b, facts)).collect();
    let passed = match mode {
        _ if outcomes.is_empty() => true,
        Mode::All => outcomes.iter().all(|o| o.passed),
        Mode::Any => outcomes.iter().any(|o| o.passed),
    };
    Verdict { passed, outcomes }
}

fn outcome(b: &Binding, facts: &Facts) -> Outcome {
    let result: Result<bool, String> = match &b.subject {
        Subject::Policy { expression: None, id } => Err(format!("policy {id} does not exist")),
        Subject::Policy {
            expression: Some(source),
            ..
        } => expression::evaluate(source, facts).map_err(|e| e.0),
        Subject::User(u) => Ok(*u == facts.user.id),
        Subject::Group(g) => Ok(facts.user.groups.contains(g)),
    };
    match result {
        Ok(r) => Outcome {
            binding_id: b.id.clone(),
            passed: r != b.negate,
            error: None,
        },
        Err(e) => Outcome {
            binding_id: b.id.clone(),
            passed: b.failure_result,
            error: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::expression::UserFacts;

    fn facts() -> Facts {
        Facts {
            user: UserFacts {
                id: "usr_1".into(),
                username: "Ann".into(),
                groups: vec!["staff".into()],
                ..UserFacts::default()
            },
            ..Facts::default()
        }
    }

    fn binding(id: &str, order: i64, subject: Subject) -> Binding {
        Binding {
            id: id.into(),
            subject,
            order,
            negate: false,
            failure_result: false,
            enabled: true,
        }
    }

    fn policy(src: &str) -> Subject {
        Subject::Policy {
            id: "pol".into(),
            expression: Some(src.into()),
        }
    }

    #[test]
    fn no_binding_passes_and_all_needs_every_one_and_any_needs_one() {
        let f = facts();
        assert!(evaluate(&[], Mode::All, &f).passed);
        assert!(evaluate(&[], Mode::Any, &f).passed);
        let yes = binding("a", 0, Subject::Group("staff".into()));
        let no = binding("b", 1, Subject::Group("admins".into()));
        assert!(evaluate(std::slice::from_ref(&yes), Mode::All, &f).passed);
        assert!(!evaluate(&[yes.clone(), no.clone()], Mode::All, &f).passed);
        assert!(evaluate(&[yes.clone(), no.clone()], Mode::Any, &f).passed);
        assert!(!evaluate(std::slice::from_ref(&no), Mode::Any, &f).passed);
        let disabled = Binding {
            enabled: false,
            ..no.clone()
        };
        assert!(
            evaluate(&[yes, disabled.clone()], Mode::All, &f).passed,
            "disabled bindings do not count"
        );
        assert!(
            evaluate(&[disabled], Mode::All, &f).passed,
            "only disabled ones: nothing is bound"
        );
    }

    #[test]
    fn users_match_by_id_only_and_groups_exactly() {
        let f = facts();
        for (subject, expected) in [
            (Subject::User("usr_1".into()), true),
            (Subject::User("ann".into()), false),
            (Subject::User("Ann".into()), false),
            (Subject::User("usr_2".into()), false),
            (Subject::Group("staff".into()), true),
            (Subject::Group("Staff".into()), false),
        ] {
            let v = evaluate(&[binding("a", 0, subject.clone())], Mode::All, &f);
            assert_eq!(v.passed, expected, "{subject:?}");
        }
    }

    #[test]
    fn negate_inverts_a_result_but_not_the_failure_result() {
        let f = facts();
        let negated = |subject, failure_result| Binding {
            negate: true,
            failure_result,
            ..binding("a", 0, subject)
        };
        assert!(!evaluate(&[negated(policy("'staff' in user.groups"), false)], Mode::All, &f).passed);
        assert!(evaluate(&[negated(policy("'x' in user.groups"), false)], Mode::All, &f).passed);
        // An error gives the failure result as it is.
        let v = evaluate(&[negated(policy("user.nope == 1"), false)], Mode::All, &f);
        assert!(!v.passed);
        assert!(v.outcomes[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("evaluation failed")));
        assert!(evaluate(&[negated(policy("user.nope == 1"), true)], Mode::All, &f).passed);
        let missing = Subject::Policy {
            id: "pol_gone".into(),
            expression: None,
        };
        let v = evaluate(&[binding("a", 0, missing)], Mode::All, &f);
        assert!(!v.passed);
        assert_eq!(v.outcomes[0].error.as_deref(), Some("policy pol_gone does not exist"));
    }

    #[test]
    fn outcomes_come_in_order_then_id() {
        let f = facts();
        let v = evaluate(
            &[
                binding("c", 5, Subject::Group("staff".into())),
                binding("b", 1, Subject::Group("x".into())),
                binding("a", 5, Subject::Group("x".into())),
            ],
            Mode::Any,
            &f,
        );
        let ids: Vec<&str> = v.outcomes.iter().map(|o| o.binding_id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert_eq!(
            v.outcomes.iter().map(|o| o.passed).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(v.passed);
    }

    #[test]
    fn modes_parse_from_and_print_as_their_names() {
        for m in [Mode::All, Mode::Any] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("All"), None);
        assert_eq!(Mode::default(), Mode::All);
    }

    #[test]
    fn targets_parse_to_known_flows_and_stages_only() {
        assert_eq!(Target::parse("flow", "authorize"), Ok(Target::Flow("authorize".into())));
        assert!(Target::parse("flow", "admin").is_err());
        assert_eq!(Target::parse("stage", "mfa").map(|t| t.key()), Ok("stage:mfa".into()));
        assert!(
            Target::parse("stage", "password").is_err(),
            "the password stage is never skipped"
        );
        assert_eq!(Target::parse("client", "c1").map(|t| t.key()), Ok("client:c1".into()));
        assert_eq!(Target::parse("app", "a1").map(|t| t.key()), Ok("app:a1".into()));
        assert!(Target::parse("client", "").is_err());
        assert!(Target::parse("client", &"x".repeat(255)).is_err());
        assert!(
            Target::parse("client", &"x".repeat(254)).is_ok(),
            "254 bytes is the bound"
        );
        assert!(Target::parse("group", "x").is_err());
    }
}
