//! The zxcvbn strength score of a new password. zxcvbn is about 920 KB gzip of wasm (mostly its
//! dictionaries), so it runs in a second Worker, `workers/strength`, reached through the service
//! binding `STRENGTH` only when a password is set (the `PasswordStrength` port). The core builds
//! the request (the password and the user's own words: username, email, name, which zxcvbn counts
//! as the first guesses) and judges the answer.
//!
//! `GATEHOUSE_PASSWORD_MIN_STRENGTH` (0 to 4, default 3; 0 turns the check off) is the lowest
//! score accepted. zxcvbn scores 3 as "safely unguessable" (about 10^8 to 10^10 guesses) and
//! 4 as "very unguessable". A strength Worker that cannot be asked refuses the password ("try
//! again"): it is part of the deployment, so an unreachable one is a fault to fix, not a reason
//! to accept passwords unchecked.

use serde::Deserialize;
use serde_json::json;

use crate::error::InternalError;
use crate::store::users::User;
use crate::Ctx;

pub const SETTING: &str = "GATEHOUSE_PASSWORD_MIN_STRENGTH";
pub const DEFAULT_MIN_SCORE: u8 = 3;
/// The strength Worker's bounds on the words sent beside the password.
const MAX_USER_INPUTS: usize = 8;
const MAX_USER_INPUT_BYTES: usize = 256;
/// An answer is a few hundred bytes; anything much larger is not one.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// `0..=4`; 0 turns the check off.
pub fn min_score(value: Option<String>) -> Result<u8, InternalError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_MIN_SCORE),
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 4)
            .ok_or_else(|| InternalError::new(format!("{SETTING} must be a zxcvbn score from 0 (off) to 4"))),
    }
}

/// The words of the account that make a password guessable: its username, email and name (given
/// as parts, since a new account has them before it exists).
pub fn account_words(username: &str, email: &str, name: Option<&str>) -> Vec<String> {
    [Some(username), Some(email), name]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect()
}

/// [`account_words`] of a user.
pub fn user_words(user: &User) -> Vec<String> {
    account_words(&user.username, &user.email, user.name.as_deref())
}

/// The request body for the strength Worker: the words cut to its bounds (at a character
/// boundary), empty ones left out.
pub fn request_body(password: &str, user_words: &[String]) -> String {
    let words: Vec<&str> = user_words
        .iter()
        .map(|w| truncate(w.trim(), MAX_USER_INPUT_BYTES))
        .filter(|w| !w.is_empty())
        .take(MAX_USER_INPUTS)
        .collect();
    json!({ "password": password, "user_inputs": words }).to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What zxcvbn said.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Strength {
    pub score: u8,
    #[serde(default)]
    pub warning: Option<String>,
    #[serde(default)]
    pub suggestions: Vec<String>,
}

impl Strength {
    /// The feedback for the user: zxcvbn's warning and suggestions (fixed English texts that
    /// never quote the password), or a plain sentence when it gave none.
    pub fn feedback(&self) -> String {
        let mut parts: Vec<&str> = self.warning.iter().map(String::as_str).collect();
        parts.extend(self.suggestions.iter().map(String::as_str));
        let parts: Vec<String> = parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.ends_with('.') {
                    p.to_owned()
                } else {
                    format!("{p}.")
                }
            })
            .collect();
        if parts.is_empty() {
            "Add another word or two.".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// Reads the strength Worker's answer; `Err` says why it is not one.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Strength, String> {
    if status != 200 {
        return Err(format!("the strength Worker answered HTTP {status}"));
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err("the strength Worker's answer is too large".to_owned());
    }
    let s: Strength = serde_json::from_slice(body).map_err(|e| format!("the strength answer is not JSON: {e}"))?;
    if s.score > 4 {
        return Err(format!("the strength Worker gave a score of {}", s.score));
    }
    Ok(s)
}

/// The verdict: `Ok(None)` passes; `Ok(Some(strength))` is too weak; `Err(())` could not be asked.
pub async fn check(ctx: &Ctx<'_>, password: &str, user_words: &[String]) -> Result<Option<Strength>, ()> {
    let min = ctx.settings.password.min_strength;
    if min == 0 {
        return Ok(None);
    }
    let answer = match ctx.strength.score(request_body(password, user_words)).await {
        Ok((status, body)) => parse_answer(status, &body),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(s) if s.score >= min => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(why) => {
            crate::log::warn(&format!("password strength: {why}"));
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_defaults_to_3_and_0_is_off() {
        assert_eq!(min_score(None).unwrap(), 3);
        assert_eq!(min_score(Some("0".into())).unwrap(), 0);
        assert_eq!(min_score(Some("4".into())).unwrap(), 4);
        assert!(min_score(Some("5".into())).is_err());
        assert!(min_score(Some("strong".into())).is_err());
    }

    #[test]
    fn the_request_carries_the_user_words_within_the_workers_bounds() {
        let long = "é".repeat(200); // 400 bytes
        let words: Vec<String> = vec!["ann".into(), " ".into(), long.clone()]
            .into_iter()
            .chain((0..10).map(|i| format!("w{i}")))
            .collect();
        let body: serde_json::Value = serde_json::from_str(&request_body("pw", &words)).unwrap();
        assert_eq!(body["password"], "pw");
        let inputs = body["user_inputs"].as_array().unwrap();
        assert_eq!(inputs.len(), 8);
        assert_eq!(inputs[0], "ann");
        assert_eq!(inputs[1].as_str().unwrap(), "é".repeat(128));
        assert_eq!(inputs[7], "w5");
        // Byte 256 inside a character: the cut moves back to the character's start.
        let odd = format!("a{}", "é".repeat(200));
        let body: serde_json::Value = serde_json::from_str(&request_body("pw", &[odd])).unwrap();
        assert_eq!(
            body["user_inputs"][0].as_str().unwrap(),
            format!("a{}", "é".repeat(127))
        );
    }

    #[test]
    fn answers_are_checked_and_feedback_is_sentences() {
        let s = parse_answer(
            200,
            br#"{"score":1,"guesses_log10":3.2,"warning":"This is a top-100 common password","suggestions":["Add another word or two. Uncommon words are better."]}"#,
        )
        .unwrap();
        assert_eq!(s.score, 1);
        assert_eq!(
            s.feedback(),
            "This is a top-100 common password. Add another word or two. Uncommon words are better."
        );
        let bare = parse_answer(
            200,
            br#"{"score":2,"guesses_log10":7.0,"warning":null,"suggestions":[]}"#,
        )
        .unwrap();
        assert_eq!(bare.feedback(), "Add another word or two.");
        assert!(parse_answer(500, b"{}").is_err());
        assert!(parse_answer(200, br#"{"score":5}"#).is_err());
        assert_eq!(parse_answer(200, br#"{"score":4}"#).unwrap().score, 4);
        // Long feedback is still an answer: the bound is 16 KiB, not a few hundred bytes.
        let long = format!(r#"{{"score":3,"suggestions":["{}"]}}"#, "x".repeat(8 * 1024));
        assert_eq!(parse_answer(200, long.as_bytes()).unwrap().score, 3);
        let prefix = r#"{"score":3,"suggestions":[""#;
        let exact = format!("{prefix}{}\"]}}", "x".repeat(MAX_ANSWER_BYTES - prefix.len() - 3));
        assert_eq!(exact.len(), MAX_ANSWER_BYTES);
        assert_eq!(
            parse_answer(200, exact.as_bytes()).unwrap().score,
            3,
            "exactly the bound is an answer"
        );
        assert!(parse_answer(200, b"<html>").is_err());
        let big = format!(r#"{{"score":4,"suggestions":["{}"]}}"#, "x".repeat(MAX_ANSWER_BYTES));
        assert!(parse_answer(200, big.as_bytes()).is_err());
    }
}
