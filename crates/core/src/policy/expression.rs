//! The expression policy: a condition written in CEL (the Common Expression Language), evaluated
//! against the facts of one sign-in (the user, the request, the client or app, the flow and stage,
//! the time). CEL rather than a scripting language: it is not Turing-complete (no loops, no
//! recursion, no assignment), has no I/O, and is a standard other policy engines share; the `cel`
//! crate builds for wasm32 with its regex and clock features off (what it costs is in the README).
//!
//! CEL has no cost limit of its own, so the bounds are set here, when an expression is saved and
//! again before it runs:
//! - the source is at most [`MAX_SOURCE_BYTES`] without control or bidirectional-override
//!   characters, its syntax tree at most [`MAX_NODES`] nodes and [`MAX_DEPTH`] levels deep (the
//!   interpreter recurses once per level; the parser refuses deeper nesting itself);
//! - macros that iterate (`all`, `exists`, `exists_one`, `map`, `filter`) do not nest, and iterate
//!   only over a fact's list (a user's groups: at most 64), a list or map literal, or the result of
//!   `map` / `filter` over one of those, never over a list the expression builds with `+`: an
//!   evaluation is at most [`MAX_NODES`] node visits per element of at most [`MAX_ITERATION`]
//!   elements, over strings the facts bound (a user agent is cut to 256 bytes);
//! - only the facts' names (`user`, `request`, ...) and the standard functions listed in
//!   [`FUNCTIONS`] may appear: regular expressions (`matches`) and timestamps are not compiled in,
//!   and an unknown name is an error when the expression is saved, not a surprise when it runs.
//!
//! Compiled programs are cached per isolate (at most [`CACHE_ENTRIES`], by source), so a policy
//! evaluated at every sign-in is parsed once.

use std::cell::RefCell;
use std::rc::Rc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde::Serialize;

pub const MAX_SOURCE_BYTES: usize = 2048;
pub const MAX_NODES: usize = 400;
/// The parser's own bound on the nodes it creates (macro expansions included).
const PARSER_MAX_NODES: usize = 4 * MAX_NODES;
/// Parser nesting (parentheses, operators, calls).
pub const MAX_NESTING: u16 = 32;
pub const MAX_COMPREHENSION_DEPTH: usize = 1;
/// The most elements an iterating macro can see (a user's groups, or a literal list).
pub const MAX_ITERATION: usize = 64;
/// Depth of the syntax tree; the interpreter recurses once per level.
pub const MAX_DEPTH: usize = 24;
const CACHE_ENTRIES: usize = 64;

/// The names an expression may start from.
pub const ROOTS: [&str; 7] = ["user", "request", "client", "app", "flow", "time", "event"];

/// CEL's type names, usable in `type(x) == string`.
const TYPE_NAMES: [&str; 9] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "uint",
];

/// The functions and operators an expression may call: CEL's standard ones that run in bounded
/// time on bounded input (the parser's own names for operators and for the macros' internals).
pub const FUNCTIONS: [&str; 31] = [
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "_?_:_",
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_[_]",
    "@in",
    "@not_strictly_false",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "type",
    "has",
    "dyn",
];

/// Why an expression cannot be saved or did not give an answer; shown to the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionError(pub String);

impl std::fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(message: impl Into<String>) -> ExpressionError {
    ExpressionError(message.into())
}

/// What an expression sees. Absent things are empty strings (and 0), never missing fields, so
/// `client.id == "x"` is false where there is no client rather than an error.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    pub user: UserFacts,
    pub request: RequestFacts,
    pub client: TargetFacts,
    pub app: TargetFacts,
    pub flow: FlowFacts,
    pub time: TimeFacts,
    /// The event a notification rule matches (empty elsewhere).
    pub event: EventFacts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UserFacts {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub groups: Vec<String>,
    /// The username's reputation score (`policy::reputation`: failures lower it, successes raise
    /// it, within -5..5 by default; 0 when neutral or expired). Absent unless fetched (see
    /// [`reads_reputation`]): an expression that reaches it some other way fails to evaluate,
    /// and its binding's failure result applies, rather than reading a made-up 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reputation: Option<i64>,
}

impl UserFacts {
    pub fn of(user: &crate::store::users::User) -> UserFacts {
        UserFacts {
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            name: user.name.clone().unwrap_or_default(),
            groups: user.groups.clone(),
            reputation: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestFacts {
    pub ip: String,
    /// ISO 3166-1 alpha-2, upper case; empty when unknown.
    pub country: String,
    /// 0 when unknown.
    pub asn: i64,
    pub user_agent: String,
    /// The client IP's reputation score, as `user.reputation` is the username's (absent unless
    /// fetched, likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reputation: Option<i64>,
}

/// The OIDC client or gateway app the flow signs in to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetFacts {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FlowFacts {
    /// `authorize`, `gateway` or `account`.
    pub purpose: String,
    /// The stage a binding decides on (`mfa`), or empty.
    pub stage: String,
}

/// An event, as a notification rule's expression sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventFacts {
    /// Its wire name (`login_succeeded`).
    pub kind: String,
    pub user_id: String,
    pub client_id: String,
    pub ip: String,
    /// Its details (`reason`, `country`, ...), as the event recorded them; null when none.
    pub detail: serde_json::Value,
}

/// The time of the request, in UTC (the only clock an expression has).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeFacts {
    /// Unix seconds.
    pub unix: i64,
    pub hour: i64,
    pub minute: i64,
    /// 0 is Sunday.
    pub weekday: i64,
}

impl TimeFacts {
    pub fn at(unix: i64) -> TimeFacts {
        let day_seconds = unix.rem_euclid(86_400);
        let days = unix.div_euclid(86_400);
        TimeFacts {
            unix,
            hour: day_seconds / 3600,
            minute: day_seconds % 3600 / 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7),
        }
    }
}

/// Whether `source` names a reputation score. The scores live in the Durable Object counters,
/// so they are fetched only for expressions that name them (a mention in a string literal
/// fetches them for nothing, which is harmless). One that reaches them without the name
/// (`request['repu' + 'tation']`) finds no such field: an evaluation error, never a 0.
pub fn reads_reputation(source: &str) -> bool {
    source.contains("reputation")
}

thread_local! {
    /// Parsed and checked expressions by source, most recently used first.
    static CACHE: RefCell<Vec<(String, Rc<IdedExpr>)>> = const { RefCell::new(Vec::new()) };
}

/// A policy's name: 1 to 64 of `a-z`, `0-9`, `-` and `_` (configured policies are bound as
/// `cfg:<name>`).
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks an expression as it is saved: it parses, stays within the bounds, and names only the
/// facts and the allowed functions. The error says what is wrong and where.
pub fn validate(source: &str) -> Result<(), ExpressionError> {
    compile(source).map(|_| ())
}

/// The parsed, checked expression of `source` (from the cache when it was compiled before).
fn compile(source: &str) -> Result<Rc<IdedExpr>, ExpressionError> {
    if source.trim().is_empty() {
        return Err(err("the expression is empty"));
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(err(format!("the expression is longer than {MAX_SOURCE_BYTES} bytes")));
    }
    // What runs must be what a reviewer reads: no control characters but line breaks and tabs,
    // and no bidirectional overrides ("Trojan Source": text shown in another order than parsed).
    if source
        .chars()
        .any(|c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c))
    {
        return Err(err(
            "the expression contains control or bidirectional-override characters",
        ));
    }
    shallow_enough(source)?;
    let cached = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let i = c.iter().position(|(s, _)| s == source)?;
        let entry = c.remove(i);
        let expr = entry.1.clone();
        c.insert(0, entry);
        Some(expr)
    });
    if let Some(expr) = cached {
        return Ok(expr);
    }
    let expr = cel::parser::PrattParser::new()
        .max_recursion_depth(MAX_NESTING)
        // A backstop only: the walk below counts against MAX_NODES and says so clearly, where
        // the parser's own error repeats itself for every macro past its limit.
        .max_expression_node_count(PARSER_MAX_NODES)
        .parse(source)
        .map_err(|e| err(format!("syntax error: {e}")))?;
    check(&expr, &mut Vec::new(), 0, &mut Walk::default())?;
    let expr = Rc::new(expr);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.insert(0, (source.to_owned(), expr.clone()));
        c.truncate(CACHE_ENTRIES);
    });
    Ok(expr)
}

/// The most unary operators in a row, and ternaries in an expression.
const MAX_UNARY_RUN: usize = 8;
const MAX_TERNARIES: usize = 16;

/// Refuses, before the parser sees it, what would make the parser recurse deeply: the Pratt
/// parser bounds bracket nesting itself, but recurses once per unary operator (`!-!-!-…`) and
/// per ternary (`a ? b : c ? …`) without counting them, and 2,048 bytes of those overflow a
/// 1 MB stack. The count is on the raw text, string literals included: simpler than lexing CEL's
/// string forms, and no policy needs nine `!` or `-` in a row or seventeen `?`.
fn shallow_enough(source: &str) -> Result<(), ExpressionError> {
    let mut run = 0;
    let mut ternaries = 0;
    for c in source.chars().filter(|c| !c.is_whitespace()) {
        run = if matches!(c, '!' | '-') { run + 1 } else { 0 };
        if run > MAX_UNARY_RUN {
            return Err(err(format!(
                "more than {MAX_UNARY_RUN} `!` or `-` in a row (string literals included)"
            )));
        }
        if c == '?' {
            ternaries += 1;
            if ternaries > MAX_TERNARIES {
                return Err(err(format!("more than {MAX_TERNARIES} `?` (string literals included)")));
            }
        }
    }
    Ok(())
}

/// Unicode's bidirectional formatting characters (embeddings, overrides, isolates, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether an iterating macro may run over `range`: a fact's list (`user.groups`), a list or map
/// literal of at most [`MAX_ITERATION`] elements, or `map` / `filter` over one of those (their
/// result is no longer than what they ran over). Anything built at run time (`a + b`) could be
/// far longer than its source.
fn bounded_range(range: &IdedExpr) -> bool {
    match &range.expr {
        Expr::Select(_) | Expr::Ident(_) => fact_path(range),
        Expr::List(l) => l.elements.len() <= MAX_ITERATION,
        Expr::Map(m) => m.entries.len() <= MAX_ITERATION,
        Expr::Comprehension(c) => bounded_range(&c.iter_range),
        _ => false,
    }
}

/// Whether `e` is a fact (`user.groups`): field selections on one of [`ROOTS`].
fn fact_path(e: &IdedExpr) -> bool {
    let mut e = e;
    loop {
        match &e.expr {
            Expr::Ident(name) => return ROOTS.contains(&name.as_str()),
            Expr::Select(s) if !s.test => e = &s.operand,
            _ => return false,
        }
    }
}

/// What the walk has counted so far.
#[derive(Default)]
struct Walk {
    nodes: usize,
    depth: usize,
}

/// Walks the syntax tree: counts nodes, its depth (the interpreter recurses on it) and the
/// nesting of iterating macros, and checks every name and function. `scope` holds the variables
/// the enclosing macros bind; `loops` is how many of them enclose this node.
fn check(e: &IdedExpr, scope: &mut Vec<String>, loops: usize, walk: &mut Walk) -> Result<(), ExpressionError> {
    walk.nodes += 1;
    if walk.nodes > MAX_NODES {
        return Err(err(format!("the expression has more than {MAX_NODES} parts")));
    }
    walk.depth += 1;
    if walk.depth > MAX_DEPTH {
        return Err(err(format!("the expression nests deeper than {MAX_DEPTH} levels")));
    }
    let result = check_children(e, scope, loops, walk);
    walk.depth -= 1;
    result
}

fn check_children(e: &IdedExpr, scope: &mut Vec<String>, loops: usize, walk: &mut Walk) -> Result<(), ExpressionError> {
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => Ok(()),
        Expr::Ident(name) => {
            if ROOTS.contains(&name.as_str()) || TYPE_NAMES.contains(&name.as_str()) || scope.contains(name) {
                Ok(())
            } else {
                Err(err(format!(
                    "unknown name `{name}`: an expression starts from {}",
                    ROOTS.join(", ")
                )))
            }
        }
        Expr::Select(s) => check(&s.operand, scope, loops, walk),
        Expr::Call(call) => {
            if !FUNCTIONS.contains(&call.func_name.as_str()) {
                return Err(err(format!("unknown or unsupported function `{}`", call.func_name)));
            }
            if let Some(target) = &call.target {
                check(target, scope, loops, walk)?;
            }
            call.args.iter().try_for_each(|a| check(a, scope, loops, walk))
        }
        Expr::List(list) => list.elements.iter().try_for_each(|a| check(a, scope, loops, walk)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => {
                check(&m.key, scope, loops, walk)?;
                check(&m.value, scope, loops, walk)
            }
            EntryExpr::StructField(f) => check(&f.value, scope, loops, walk),
        }),
        Expr::Struct(_) => Err(err("message literals are not supported")),
        Expr::Comprehension(c) => {
            if loops + 1 > MAX_COMPREHENSION_DEPTH {
                return Err(err(
                    "macros that iterate (all, exists, exists_one, map, filter) do not nest: write `x in list` inside one",
                ));
            }
            if !bounded_range(&c.iter_range) {
                return Err(err(format!(
                    "all, exists, exists_one, map and filter iterate over a fact's list (user.groups), a literal list of at most {MAX_ITERATION} elements, or map / filter of one"
                )));
            }
            check(&c.iter_range, scope, loops, walk)?;
            check(&c.accu_init, scope, loops, walk)?;
            let bound = 2 + usize::from(c.iter_var2.is_some());
            scope.push(c.iter_var.clone());
            scope.push(c.accu_var.clone());
            if let Some(v) = &c.iter_var2 {
                scope.push(v.clone());
            }
            let inner = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|part| check(part, scope, loops + 1, walk));
            scope.truncate(scope.len() - bound);
            inner
        }
    }
}

/// Evaluates `source` against `facts`: `Ok(true)` or `Ok(false)`, or an error when it does not
/// compile, fails at run time (a missing key, a type mismatch, an overflow) or gives something
/// other than a boolean. The caller decides what an error means (a binding's failure result).
pub fn evaluate(source: &str, facts: &Facts) -> Result<bool, ExpressionError> {
    let expr = compile(source)?;
    let mut context = cel::Context::default();
    let value = cel::to_value(facts).map_err(|e| err(format!("the facts could not be given: {e}")))?;
    let cel::Value::Map(map) = value else {
        return Err(err("the facts could not be given"));
    };
    for (key, value) in map.map.iter() {
        if let cel::objects::Key::String(name) = key {
            context.add_variable_from_value(name.as_str(), value.clone());
        }
    }
    match context.resolve(&expr) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(err(format!(
            "the expression gave {:?}, not true or false",
            other.type_of()
        ))),
        Err(e) => Err(err(format!("evaluation failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            user: UserFacts {
                id: "usr_1".into(),
                username: "ann".into(),
                email: "ann@example.com".into(),
                email_verified: true,
                name: "Ann".into(),
                groups: vec!["staff".into(), "eng".into()],
                reputation: Some(2),
            },
            request: RequestFacts {
                ip: "10.1.2.3".into(),
                country: "DE".into(),
                asn: 3320,
                user_agent: "Firefox".into(),
                reputation: Some(-4),
            },
            client: TargetFacts {
                id: "app-1".into(),
                name: "App".into(),
            },
            app: TargetFacts::default(),
            flow: FlowFacts {
                purpose: "authorize".into(),
                stage: "mfa".into(),
            },
            time: TimeFacts::at(1_800_000_000),
            event: EventFacts::default(),
        }
    }

    #[test]
    fn evaluates_conditions_on_every_fact() {
        let f = facts();
        for yes in [
            "'staff' in user.groups",
            "user.groups.exists(g, g == 'eng')",
            "user.email.endsWith('@example.com') && user.email_verified",
            "request.country == 'DE' && request.asn == 3320",
            "request.ip.startsWith('10.')",
            "client.id == 'app-1' && app.id == ''",
            "flow.purpose == 'authorize' && flow.stage == 'mfa'",
            "time.unix == 1800000000 && time.weekday == 5 && time.hour == 8 && time.minute == 0",
            "size(user.groups) == 2",
            "user.groups.all(g, size(g) > 2)",
            "user.groups.map(g, g + '!').exists(g, g == 'eng!')",
            "type(user.id) == string",
            "has(user.name) && user.name.contains('n')",
            "!(request.country in ['US', 'GB'])",
            "request.user_agent.contains('Firefox') ? true : false",
            "request.reputation == -4 && user.reputation == 2",
        ] {
            assert_eq!(evaluate(yes, &f), Ok(true), "{yes}");
        }
        assert_eq!(evaluate("'admins' in user.groups", &f), Ok(false));
        assert_eq!(evaluate("request.reputation > -3", &f), Ok(false));
    }

    #[test]
    fn only_expressions_naming_a_reputation_fetch_the_scores() {
        assert!(reads_reputation("request.reputation > -3"));
        assert!(reads_reputation("user.reputation >= 0"));
        assert!(!reads_reputation("'staff' in user.groups"));
        // Reached without the name, a score not fetched is an error, not a passing 0.
        let mut f = facts();
        f.request.reputation = None;
        let spelled = "request['repu' + 'tation'] > -3";
        assert!(!reads_reputation(spelled));
        assert!(evaluate(spelled, &f).is_err());
        assert_eq!(evaluate(spelled, &facts()), Ok(false), "-4 when fetched");
    }

    #[test]
    fn every_allowed_function_is_one_the_interpreter_has() {
        let f = facts();
        for call in [
            "size(user.groups) == 2 && size('ab') == 2 && user.groups.size() == 2",
            "user.email.contains('@') && user.email.startsWith('ann') && user.email.endsWith('.com')",
            "int('5') == 5 && uint(5) == 5u && double(1) == 1.0 && string(5) == '5' && bool('true')",
            "type(1) == int && type('a') == string && type(true) == bool && type([]) == list",
            "dyn(1) == 1 && has(user.id) && -(1) == -1 && 7 % 3 == 1 && 6 / 3 == 2 && 2 * 3 == 6 && 3 - 1 == 2",
            "user.groups.exists_one(g, g == 'eng') && user.groups.filter(g, g == 'eng').size() == 1",
        ] {
            assert_eq!(evaluate(call, &f), Ok(true), "{call}");
        }
        for name in ["max", "min", "matches", "timestamp", "duration", "now"] {
            assert!(!FUNCTIONS.contains(&name), "{name}");
        }
    }

    #[test]
    fn the_time_facts_are_utc_with_sunday_as_zero() {
        // 1970-01-04 was a Sunday; 2027-01-15T08:00:00Z (1_800_000_000 - ...) is checked above.
        assert_eq!(TimeFacts::at(3 * 86_400).weekday, 0);
        assert_eq!(TimeFacts::at(0).weekday, 4);
        let t = TimeFacts::at(86_400 + 13 * 3600 + 45 * 60 + 59);
        assert_eq!((t.hour, t.minute, t.weekday), (13, 45, 5));
        assert_eq!(TimeFacts::at(-1).hour, 23, "before 1970 still counts from midnight");
    }

    #[test]
    fn errors_are_clear_when_saved() {
        let e = |s: &str| validate(s).err().unwrap_or_else(|| panic!("accepted: {s}")).0;
        assert!(e("").contains("empty"));
        assert!(e("user.id ==").contains("syntax error"), "{}", e("user.id =="));
        assert!(e("secrets.token == 'x'").contains("unknown name `secrets`"));
        assert!(e("user.email.matches('.*')").contains("`matches`"));
        assert!(e("now() > 5").contains("`now`"));
        assert!(e(&format!("user.id == '{}'", "x".repeat(MAX_SOURCE_BYTES))).contains("longer than"));
        let nested_loops = "user.groups.all(a, user.groups.exists(b, a == b))";
        assert!(e(nested_loops).contains("do not nest"), "{}", e(nested_loops));
        let many = format!("[{}]", vec!["user.groups.exists(g, g == 'x')"; 40].join(", "));
        assert!(many.len() < MAX_SOURCE_BYTES);
        assert_eq!(e(&many), "the expression has more than 400 parts");
        // The parser balances chains of `&&` and `||`: a long one is not deep.
        assert_eq!(validate(&vec!["user.id=='x'"; 60].join("||")), Ok(()));
        let nested = format!("{}true{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(evaluate(&nested, &facts()), Ok(true), "parentheses alone add no depth");
        assert!(validate("google.api.Msg{a: 1}").is_err());
        // Macros run over what is bounded, one after another.
        for ok in [
            "user.groups.exists(g, g in ['a', 'b'])",
            "['a', 'b'].exists(x, x in user.groups)",
            "user.groups.filter(g, g.startsWith('team-')).exists(g, g == 'team-x')",
            "user.groups.map(g, g + '!').all(g, size(g) > 1)",
            "{'a': 1}.exists(k, k == 'a')",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for built in [
            "(user.groups + user.groups).exists(g, g == 'x')",
            "[[1, 2], [3]][0].exists(x, x == 1)",
        ] {
            assert!(e(built).contains("iterate over"), "{built}: {}", e(built));
        }
        let long_literal = format!("[{}].exists(x, x == 1)", vec!["1"; MAX_ITERATION + 1].join(","));
        assert!(e(&long_literal).contains("iterate over"));
        assert!(e("user.id == 'a\u{202E}b'").contains("bidirectional"));
        assert!(e("user.id == 'a' // \u{2066}note").contains("bidirectional"));
        assert!(e("user.id == '\u{7}'").contains("control"));
        assert_eq!(validate("user.id == 'a' &&\n\tuser.email != ''"), Ok(()));
        assert!(e(&("!".repeat(9) + "true")).contains("in a row"));
        assert_eq!(validate(&("!".repeat(8) + "true")), Ok(()));
        assert!(e(&("true ? true : ".repeat(17) + "true")).contains("more than 16 `?`"));
        assert_eq!(validate(&("true ? true : ".repeat(16) + "true")), Ok(()));
        assert!(e("user.groups.all(a, true) && a == 'x'").contains("unknown name `a`"));
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        // The evaluation recurses per level: the deepest accepted tree runs within a debug
        // build's 2 MB test thread, and deeper ones are refused before they run.
        let f = facts();
        for n in [30usize, 200, 500, 1000] {
            for deep in [
                format!("{}1{}.size() > 0", "[".repeat(n), "]".repeat(n)),
                vec!["true ? false : "; n].join("") + "true",
                "user".to_string() + &".a".repeat(n),
                "size(".repeat(n) + "user.id" + &")".repeat(n) + " > 0",
                "!-".repeat(n) + "true",
                "1?1:".repeat(n) + "1 == 1",
                format!("user.groups.exists(g, {}true)", "!-".repeat(n)),
                format!("user.groups.exists(g, {}1 == 1)", "1?1:".repeat(n)),
            ] {
                if deep.len() <= MAX_SOURCE_BYTES {
                    assert!(validate(&deep).is_err(), "{deep}");
                }
            }
        }
        let deepest = ["user.id == 'x' || "; 11].join("") + "time.unix > 0";
        assert_eq!(evaluate(&deepest, &f), Ok(true));
        let ternaries = ["user.id == 'x' ? false : "; 11].join("") + "true";
        assert_eq!(evaluate(&ternaries, &f), Ok(true));
    }

    /// The walk's count of `source`'s nodes and depth, parsed without the parser's own limits.
    fn walked(source: &str) -> (usize, usize, Result<(), ExpressionError>) {
        let expr = cel::parser::PrattParser::new()
            .max_recursion_depth(1000)
            .max_expression_node_count(100_000)
            .parse(source)
            .expect("parses");
        let mut walk = Walk::default();
        let result = check(&expr, &mut Vec::new(), 0, &mut walk);
        // The tree's depth, measured apart from the walk (whose bound is what is tested).
        fn depth(e: &IdedExpr) -> usize {
            1 + match &e.expr {
                Expr::Select(s) => depth(&s.operand),
                Expr::Call(c) => c
                    .target
                    .iter()
                    .map(|t| depth(t))
                    .chain(c.args.iter().map(depth))
                    .max()
                    .unwrap_or(0),
                Expr::List(l) => l.elements.iter().map(depth).max().unwrap_or(0),
                Expr::Comprehension(c) => [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .map(depth)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            }
        }
        (walk.nodes, depth(&expr), result)
    }

    #[test]
    fn the_node_and_depth_bounds_hold_at_exactly_their_limits() {
        // Macros expand into more nodes than their source shows: a list of `all`s reaches the
        // node bound within the byte bound, past the parser's own count.
        let of = |k: usize| format!("[{}]", vec!["[1].all(x, true)"; k].join(", "));
        // Bounded search (a walk that counted nothing would otherwise loop for ever).
        let k = (1..MAX_NODES)
            .find(|&k| walked(&of(k + 1)).0 > MAX_NODES)
            .expect("the walk counts nodes");
        let (at, _, ok) = walked(&of(k));
        assert!(at <= MAX_NODES && ok.is_ok(), "{at}");
        let (over, _, refused) = walked(&of(k + 1));
        assert!(over > MAX_NODES);
        assert!(refused.is_err());
        let exactly = |extra: usize| {
            // Pad `of(k)` with literal elements to exactly MAX_NODES + extra nodes.
            let pad = MAX_NODES + extra - at;
            format!("[{}{}]", vec!["[1].all(x, true)"; k].join(", "), ", 1".repeat(pad))
        };
        assert_eq!(walked(&exactly(0)).0, MAX_NODES);
        assert_eq!(validate(&exactly(0)), Ok(()));
        assert_eq!(walked(&exactly(1)).0, MAX_NODES + 1);
        assert!(
            validate(&exactly(1)).is_err_and(|e| e.0.contains("more than 400 parts")),
            "{:?}",
            validate(&exactly(1))
        );

        // Depth: nested list literals, one level each, around a literal.
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(walked(&nested(MAX_DEPTH - 1)).1, MAX_DEPTH);
        assert_eq!(validate(&nested(MAX_DEPTH - 1)), Ok(()));
        assert_eq!(walked(&nested(MAX_DEPTH)).1, MAX_DEPTH + 1);
        assert!(validate(&nested(MAX_DEPTH)).is_err_and(|e| e.0.contains("deeper than 24")));
    }

    #[test]
    fn only_a_fact_path_counts_as_a_facts_list() {
        // A field of a literal map holds whatever the map was built with, `+` included; `has()`
        // is a test, not a list.
        for refused in [
            "{'a': user.groups + user.groups}.a.all(g, true)",
            "has(user.groups).all(g, true)",
            "{'a': [1]}.a.exists(g, g == 1)",
        ] {
            assert!(
                validate(refused).is_err_and(|e| e.0.contains("iterate over a fact's list")),
                "{refused}: {:?}",
                validate(refused)
            );
        }
        assert_eq!(
            validate("request.user_agent.size() > 0 && user.groups.all(g, true)"),
            Ok(())
        );
    }

    #[test]
    fn a_macros_variables_are_out_of_scope_after_it() {
        for (source, name) in [
            ("user.groups.all(g, true) && g == 'x'", "g"),
            ("user.groups.map(g, g + '!').size() > 0 && g == 'x'", "g"),
        ] {
            assert!(
                validate(source).is_err_and(|e| e.0.contains(&format!("unknown name `{name}`"))),
                "{source}: {:?}",
                validate(source)
            );
        }
        // This parser makes no two-variable comprehensions (`iter_var2` is always none): the
        // form is an unknown function, so the scope's third variable is never pushed.
        assert!(validate("{'a': 1}.all(k, v, v > 0)").is_err_and(|e| e.0.contains("`all`")));
    }

    #[test]
    fn run_time_failures_and_non_booleans_are_errors_not_answers() {
        let f = facts();
        for bad in [
            "user.id",
            "1 / 0 == 1",
            "9223372036854775807 + 1 > 0",
            "user.nope == 'x'",
            "user.groups[5] == 'x'",
        ] {
            assert!(evaluate(bad, &f).is_err(), "{bad}");
        }
        assert!(evaluate("user.id", &f).unwrap_err().0.contains("not true or false"));
    }

    #[test]
    fn the_cache_returns_the_same_program_and_stays_bounded() {
        let a = compile("user.id == 'cache-a'").unwrap();
        let b = compile("user.id == 'cache-a'").unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        for i in 0..CACHE_ENTRIES + 5 {
            compile(&format!("user.id == 'fill-{i}'")).unwrap();
        }
        CACHE.with(|c| assert_eq!(c.borrow().len(), CACHE_ENTRIES));
        let c = compile("user.id == 'cache-a'").unwrap();
        assert!(!Rc::ptr_eq(&a, &c), "the oldest entry was dropped");
    }
}
