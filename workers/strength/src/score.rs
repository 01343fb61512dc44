//! Everything with a decision in it, free of Worker types so that native `cargo test` covers it:
//! the zxcvbn call, the request's bounds, the routing, and every answer's status and JSON body.
//!
//! Nothing here panics on input, and no answer carries the password: a refusal names the rule
//! that was broken with a fixed text (serde's own messages can quote the offending value, so they
//! are never passed on).

use serde::{Deserialize, Serialize};

/// Largest request body read, in bytes; a longer one is refused with 413 unread.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest password, in bytes (UTF-8). zxcvbn itself looks at the first 100 characters only.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Most user inputs (username, email, display name, ...) one request may give.
pub const MAX_USER_INPUTS: usize = 8;
/// Longest user input, in bytes.
pub const MAX_USER_INPUT_BYTES: usize = 256;

/// The only route.
pub const SCORE_PATH: &str = "/score";

/// zxcvbn's verdict, as answered by `POST /score`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Strength {
    /// 0 (guessable in 10^3 tries) to 4 (more than 10^10); below 3 is too weak.
    pub score: u8,
    /// Order of magnitude of the guesses needed.
    pub guesses_log10: f64,
    /// What is wrong, in English ("This is a top-10 common password"); zxcvbn gives feedback
    /// only for scores up to 2.
    pub warning: Option<String>,
    /// How to do better, in English ("Add another word or two. Uncommon words are better.").
    pub suggestions: Vec<String>,
}

/// Scores `password`; `user_inputs` (the account's username, email, name) count as the most
/// guessable words there are. An email address also counts by its local part, so that
/// `alice2024` is weak for `alice@example.com`.
pub fn score(password: &str, user_inputs: &[&str]) -> Strength {
    let mut inputs: Vec<&str> = Vec::with_capacity(user_inputs.len() * 2);
    for input in user_inputs.iter().copied().filter(|i| !i.is_empty()) {
        inputs.push(input);
        if let Some((local, _domain)) = input.split_once('@') {
            if !local.is_empty() {
                inputs.push(local);
            }
        }
    }
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    let (warning, suggestions) = match entropy.feedback() {
        Some(f) => (
            f.warning().map(|w| w.to_string()),
            f.suggestions().iter().map(|s| s.to_string()).collect(),
        ),
        None => (None, Vec::new()),
    };
    Strength {
        score: u8::from(entropy.score()),
        guesses_log10: entropy.guesses_log10(),
        warning,
        suggestions,
    }
}

/// What the Worker scores once when its isolate starts: zxcvbn builds its dictionaries and
/// compiles its regexes (tens of ms of CPU, in lazy statics) on first use, which otherwise falls on
/// the first request. Letters only, on purpose: a digit could make zxcvbn score a year or date,
/// which fixes its reference year from `Date` for the isolate's life, and during startup workerd's
/// clock reads 1970.
pub const WARM_UP_PASSWORD: &str = "warm-up";

/// Scores `WARM_UP_PASSWORD` and throws the result away.
pub fn warm_up() {
    let _ = score(WARM_UP_PASSWORD, &[WARM_UP_PASSWORD]);
}

/// The body of `POST /score`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    pub password: String,
    #[serde(default)]
    pub user_inputs: Vec<String>,
}

/// A refusal: the status and a fixed reason that never quotes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

impl Refusal {
    const fn bad(reason: &'static str) -> Self {
        Refusal { status: 400, reason }
    }
}

pub const TOO_LARGE: Refusal = Refusal {
    status: 413,
    reason: "body longer than 8192 bytes",
};

/// Parses and checks a `POST /score` body (already read, at most `MAX_BODY_BYTES` of it).
pub fn parse_request(body: &[u8]) -> Result<ScoreRequest, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(TOO_LARGE);
    }
    let req: ScoreRequest = serde_json::from_slice(body).map_err(|e| describe_json_error(&e))?;
    if req.password.is_empty() {
        return Err(Refusal::bad("password is empty"));
    }
    if req.password.len() > MAX_PASSWORD_BYTES {
        return Err(Refusal::bad("password longer than 1024 bytes"));
    }
    if req.user_inputs.len() > MAX_USER_INPUTS {
        return Err(Refusal::bad("more than 8 user_inputs"));
    }
    if req.user_inputs.iter().any(|i| i.len() > MAX_USER_INPUT_BYTES) {
        return Err(Refusal::bad("a user_input is longer than 256 bytes"));
    }
    Ok(req)
}

/// A fixed text for a JSON error: serde_json's own message may quote a value from the body
/// (`invalid type: string "...", expected ...`), which could be the password.
fn describe_json_error(e: &serde_json::Error) -> Refusal {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => Refusal::bad("body is not valid JSON"),
        Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("unknown field") {
                Refusal::bad("unknown field: only password and user_inputs are allowed")
            } else if msg.starts_with("missing field") {
                Refusal::bad("missing field: password")
            } else if msg.starts_with("duplicate field") {
                Refusal::bad("duplicate field")
            } else {
                Refusal::bad("wrong type: password must be a string, user_inputs an array of strings")
            }
        }
    }
}

/// An answer: status, JSON body, and for 405 the methods allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            allow: None,
        }
    }

    /// `{"error": reason}` with the refusal's status.
    pub fn refusal(r: Refusal) -> Self {
        Reply::json(r.status, error_body(r.reason))
    }
}

fn error_body(reason: &str) -> String {
    // Serialising a map of two strings cannot fail; the fallback keeps the path panic-free.
    serde_json::to_string(&serde_json::json!({ "error": reason }))
        .unwrap_or_else(|_| String::from("{\"error\":\"internal error\"}"))
}

/// Routing before any body is read: `Some(answer)` for anything but `POST /score`.
pub fn route(method: &str, path: &str) -> Option<Reply> {
    if path != SCORE_PATH {
        return Some(Reply::json(404, error_body("not found")));
    }
    if method != "POST" {
        return Some(Reply {
            status: 405,
            body: error_body("method not allowed: use POST"),
            allow: Some("POST"),
        });
    }
    None
}

/// Whether a declared `Content-Length` already rules the body out (no need to read it).
pub fn declared_too_large(content_length: Option<&str>) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

/// The answer to a `POST /score` whose body is `body`.
pub fn score_body(body: &[u8]) -> Reply {
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(refusal) => return Reply::refusal(refusal),
    };
    let inputs: Vec<&str> = req.user_inputs.iter().map(String::as_str).collect();
    let strength = score(&req.password, &inputs);
    match serde_json::to_string(&strength) {
        Ok(body) => Reply::json(200, body),
        Err(_) => Reply::json(500, error_body("internal error")),
    }
}

/// The whole request, for tests and for callers that have the body in hand.
pub fn handle(method: &str, path: &str, body: &[u8]) -> Reply {
    route(method, path).unwrap_or_else(|| score_body(body))
}
