//! Have I Been Pwned's Pwned Passwords range API with k-anonymity: the SHA-1 of the password is
//! computed here, only its first 5 hex characters leave (`GET {url}/range/{prefix}`), and the
//! answer (every known suffix of that prefix with its count, padded with count-0 decoys when
//! `Add-Padding: true` is sent, so the answer's size says nothing either) is searched here.
//!
//! Checked only when a password is set, never at sign-in: a breach list that changes, or an API
//! that is down, must never lock anyone out of an account. When the API cannot be asked, the
//! default is to refuse the new password (`GATEHOUSE_HIBP_UNREACHABLE=refuse`): the user tries
//! again later, rather than an unchecked password slipping in while the API is down (or made to
//! look down); `allow` lets it through and logs a warning.

use sha1::{Digest, Sha1};

use crate::error::InternalError;
use crate::Ctx;

pub const DEFAULT_URL: &str = "https://api.pwnedpasswords.com";
pub const URL_SETTING: &str = "GATEHOUSE_HIBP_URL";
pub const UNREACHABLE_SETTING: &str = "GATEHOUSE_HIBP_UNREACHABLE";
/// The request headers: padding on, so every answer has 800 to 1,000 lines.
pub const HEADERS: [(&str, &str); 1] = [("add-padding", "true")];
/// A padded answer is about 40 KB; anything much larger is not one.
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenUnreachable {
    /// The password is refused with a "try again later".
    #[default]
    Refuse,
    /// The password is accepted unchecked, and a warning logged.
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PwnedSettings {
    /// The API base; `None`: the check is off.
    pub url: Option<String>,
    pub when_unreachable: WhenUnreachable,
}

impl Default for PwnedSettings {
    fn default() -> Self {
        PwnedSettings {
            url: Some(DEFAULT_URL.to_owned()),
            when_unreachable: WhenUnreachable::Refuse,
        }
    }
}

impl PwnedSettings {
    /// An unset URL is the public API; a set but empty one turns the check off.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PwnedSettings, InternalError> {
        let url = match get(URL_SETTING).map(|v| v.trim().trim_end_matches('/').to_owned()) {
            None => Some(DEFAULT_URL.to_owned()),
            Some(v) if v.is_empty() => None,
            Some(v) if crate::config::service_url_ok(&v) => Some(v),
            Some(_) => {
                return Err(InternalError::new(format!(
                    "{URL_SETTING} must be an https URL (http only on 127.0.0.1, [::1] or localhost), or empty to turn the check off"
                )))
            }
        };
        let when_unreachable = match get(UNREACHABLE_SETTING).as_deref().map(str::trim) {
            None | Some("" | "refuse") => WhenUnreachable::Refuse,
            Some("allow") => WhenUnreachable::Allow,
            Some(v) => {
                return Err(InternalError::new(format!(
                    "{UNREACHABLE_SETTING} must be refuse or allow (got {v:?})"
                )))
            }
        };
        Ok(PwnedSettings { url, when_unreachable })
    }
}

/// The SHA-1 of `password` in uppercase hex, split into the 5 characters that are sent and the
/// 35 that are not.
pub fn prefix_and_suffix(password: &str) -> (String, String) {
    let digest = Sha1::digest(password.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let (prefix, suffix) = hex.split_at(5);
    (prefix.to_owned(), suffix.to_owned())
}

pub fn range_url(base: &str, prefix: &str) -> String {
    format!("{}/range/{prefix}", base.trim_end_matches('/'))
}

/// How many times the answer says the suffix was seen: `Ok(0)` when it is absent or only a
/// padding line; `Err` when the answer is not a range answer (the API is then as good as down),
/// including an empty one: every real range has hundreds of suffixes (800 to 1,000 padded), so
/// an empty 200 is a misconfigured URL or a proxy, and must not pass every password.
pub fn times_seen(answer: &[u8], suffix: &str) -> Result<u64, String> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
    }
    let text = std::str::from_utf8(answer).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let mut seen = 0;
    let mut lines: usize = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        lines += 1;
        let Some((hash, count)) = line.split_once(':') else {
            return Err("a line of the answer has no SUFFIX:COUNT".to_owned());
        };
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| "a count in the answer is not a number".to_owned())?;
        if hash.len() != 35 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a suffix in the answer is not 35 hex characters".to_owned());
        }
        if hash.eq_ignore_ascii_case(suffix) {
            seen = seen.max(count);
        }
    }
    if lines == 0 {
        return Err("the answer has no suffixes".to_owned());
    }
    Ok(seen)
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not in a known breach, or the check is off.
    Clear,
    /// Seen this many times in breaches.
    Breached(u64),
    /// The API could not be asked and `GATEHOUSE_HIBP_UNREACHABLE=refuse`.
    Unchecked,
}

/// Asks the range API about `password` (only its hash prefix leaves).
pub async fn check(ctx: &Ctx<'_>, password: &str) -> Verdict {
    let settings = &ctx.settings.password.pwned;
    let Some(base) = settings.url.as_deref() else {
        return Verdict::Clear;
    };
    let (prefix, suffix) = prefix_and_suffix(password);
    let answer = match ctx.pwned.range(&range_url(base, &prefix), &HEADERS).await {
        Ok((200, body)) => times_seen(&body, &suffix),
        Ok((status, _)) => Err(format!("answered HTTP {status}")),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(0) => Verdict::Clear,
        Ok(n) => Verdict::Breached(n),
        Err(why) => {
            crate::log::warn(&format!("pwned passwords: {why}"));
            match settings.when_unreachable {
                WhenUnreachable::Refuse => Verdict::Unchecked,
                WhenUnreachable::Allow => Verdict::Clear,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> Result<PwnedSettings, InternalError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PwnedSettings::from_lookup(&move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn only_five_hex_characters_of_the_sha1_leave() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8, the API's own example.
        let (prefix, suffix) = prefix_and_suffix("password");
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert_eq!(
            range_url("https://api.pwnedpasswords.com/", &prefix),
            "https://api.pwnedpasswords.com/range/5BAA6"
        );
    }

    #[test]
    fn the_answer_is_searched_locally_and_padding_lines_do_not_count() {
        let answer = b"0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n\
1E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\r\n\
011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n";
        assert_eq!(times_seen(answer, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"), Ok(9545824));
        assert_eq!(times_seen(answer, "1e4c9b93f3f0682250b6cf8331b7ee68fd8"), Ok(9545824));
        assert_eq!(times_seen(answer, "011053FD0102E94D6AE2F8B83D76FAF94F6"), Ok(0));
        assert_eq!(times_seen(answer, "0000000000000000000000000000000000A"), Ok(0));
        // A suffix listed twice counts at its highest.
        let twice = b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:7\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\n";
        assert_eq!(times_seen(twice, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"), Ok(7));
        // An empty answer is no range answer: it must not clear every password.
        assert!(times_seen(b"", "1E4C9B93F3F0682250B6CF8331B7EE68FD8").is_err());
        assert!(times_seen(b"\r\n\r\n", "1E4C9B93F3F0682250B6CF8331B7EE68FD8").is_err());
    }

    #[test]
    fn an_answer_that_is_not_a_range_answer_is_an_error() {
        let s = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
        assert!(times_seen(b"<html>rate limited</html>", s).is_err());
        assert!(times_seen(b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:lots", s).is_err());
        assert!(times_seen(b"1E4C9B93:5", s).is_err());
        assert!(times_seen(b"ZZZC9B93F3F0682250B6CF8331B7EE68FD8:5", s).is_err());
        assert!(times_seen(&[0xff, 0xfe], s).is_err());
        let big = "0018A45C4D1DEF81644B54AB7F969B88D65:1\n".repeat(MAX_ANSWER_BYTES / 38 + 1);
        assert!(times_seen(big.as_bytes(), s).is_err());
        let fits = "0018A45C4D1DEF81644B54AB7F969B88D65:1\n".repeat(MAX_ANSWER_BYTES / 38);
        assert_eq!(times_seen(fits.as_bytes(), s), Ok(0));
        // Exactly the bound is an answer: 13,443 lines of 39 bytes and 11 more digits in one count.
        let line = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n";
        let exact = format!(
            "0018A45C4D1DEF81644B54AB7F969B88D65:000000000001\r\n{}",
            line.repeat(13_442)
        );
        assert_eq!(exact.len(), MAX_ANSWER_BYTES);
        assert_eq!(times_seen(exact.as_bytes(), s), Ok(0));
        // A real padded answer (800 to 1,000 lines, about 40 KB) is well inside it.
        let padded = format!("{}{s}:3\r\n", line.repeat(999));
        assert_eq!(times_seen(padded.as_bytes(), s), Ok(3));
    }

    #[test]
    fn settings_default_to_the_public_api_failing_closed() {
        let d = lookup(&[]).unwrap();
        assert_eq!(d, PwnedSettings::default());
        assert_eq!(d.url.as_deref(), Some(DEFAULT_URL));
        assert_eq!(d.when_unreachable, WhenUnreachable::Refuse);
        assert_eq!(lookup(&[(URL_SETTING, "")]).unwrap().url, None);
        assert_eq!(
            lookup(&[(URL_SETTING, "http://127.0.0.1:9999/")])
                .unwrap()
                .url
                .as_deref(),
            Some("http://127.0.0.1:9999")
        );
        assert!(lookup(&[(URL_SETTING, "http://hibp.example.com")]).is_err());
        assert_eq!(
            lookup(&[(UNREACHABLE_SETTING, "allow")]).unwrap().when_unreachable,
            WhenUnreachable::Allow
        );
        assert!(lookup(&[(UNREACHABLE_SETTING, "open")]).is_err());
    }
}
