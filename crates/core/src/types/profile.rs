//! The OpenID Connect standard claims a user carries besides the ones with columns of their own
//! (`name`, `email`, `email_verified`, `preferred_username` = the username, `updated_at`): OIDC
//! Core §5.1. Stored as one JSON object (`users.claims`); every value is checked here, with a size
//! bound, whichever way it arrives (the admin API, the account page, later blueprints), so that
//! what userinfo and the ID token release is always well-formed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Names of the claims kept in [`StandardClaims`], in OIDC Core §5.1 order.
pub const NAMES: &[&str] = &[
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
];

/// Members of the `address` claim (OIDC Core §5.1.1).
pub const ADDRESS_MEMBERS: &[&str] = &[
    "formatted",
    "street_address",
    "locality",
    "region",
    "postal_code",
    "country",
];

/// Longest name part (`given_name`, `family_name`, `middle_name`, `nickname`), in bytes.
pub const MAX_NAME: usize = 128;
/// Longest `profile`, `picture` or `website` URL, in bytes: the three go into ID tokens, whose
/// largest possible size must stay within what `id_token_hint` accepts (`limits::ID_TOKEN_HINT`).
pub const MAX_URL: usize = 1024;
/// Longest `gender`, in bytes (the spec allows values other than female and male).
pub const MAX_GENDER: usize = 64;
/// Longest `formatted` address and `street_address`, in bytes (they may have line breaks).
pub const MAX_ADDRESS_LINES: usize = 512;
/// Longest other address member, in bytes.
pub const MAX_ADDRESS_PART: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StandardClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Only with a phone number: set by an administrator (Gatehouse sends no SMS), and cleared
    /// whenever the number changes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub phone_number_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Why a claim value was refused: the claim's name and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub claim: String,
    pub rule: &'static str,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.claim, self.rule)
    }
}

fn invalid(claim: &str, rule: &'static str) -> Invalid {
    Invalid {
        claim: claim.to_owned(),
        rule,
    }
}

impl StandardClaims {
    /// The stored JSON; a value that does not parse (written by hand into the database) reads as
    /// no claims rather than failing every sign-in of that user. (Through `Value`, as every row
    /// is decoded: a second deserializer for these types would cost the Worker's wasm more.)
    pub fn from_stored(stored: &str) -> StandardClaims {
        serde_json::from_str::<Value>(stored)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_value(self).map_or_else(|_| "{}".into(), |v| v.to_string())
    }

    /// Sets (or with `null`, removes) one claim, checked. `name` must be one of [`NAMES`].
    /// Changing the phone number clears `phone_number_verified` unless the same change sets it.
    pub fn set(&mut self, name: &str, value: &Value) -> Result<(), Invalid> {
        if name == "phone_number_verified" {
            match value {
                Value::Bool(v) => self.phone_number_verified = *v,
                Value::Null => self.phone_number_verified = false,
                _ => return Err(invalid(name, "must be true or false")),
            }
            return Ok(());
        }
        if name == "address" {
            self.address = match value {
                Value::Null => None,
                Value::Object(members) => address(members)?,
                _ => return Err(invalid(name, "must be an object (OIDC Core §5.1.1) or null")),
            };
            return Ok(());
        }
        let text = match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.as_str()),
            _ => return Err(invalid(name, "must be a string or null")),
        };
        let checked = match text {
            None => None,
            Some(s) => Some(check(name, s)?),
        };
        let slot = match name {
            "given_name" => &mut self.given_name,
            "family_name" => &mut self.family_name,
            "middle_name" => &mut self.middle_name,
            "nickname" => &mut self.nickname,
            "profile" => &mut self.profile,
            "picture" => &mut self.picture,
            "website" => &mut self.website,
            "gender" => &mut self.gender,
            "birthdate" => &mut self.birthdate,
            "zoneinfo" => &mut self.zoneinfo,
            "locale" => &mut self.locale,
            "phone_number" => {
                if checked != self.phone_number {
                    self.phone_number_verified = false;
                }
                &mut self.phone_number
            }
            _ => return Err(invalid(name, "is not a claim Gatehouse keeps")),
        };
        *slot = checked;
        Ok(())
    }

    /// Applies the members of `patch` that name a claim ([`NAMES`]), `phone_number_verified`
    /// last so that a patch may set a new number and mark it verified together; returns whether
    /// any member did.
    pub fn apply(&mut self, patch: &Map<String, Value>) -> Result<bool, Invalid> {
        let mut any = false;
        for name in NAMES.iter().filter(|n| **n != "phone_number_verified") {
            if let Some(v) = patch.get(*name) {
                self.set(name, v)?;
                any = true;
            }
        }
        if let Some(v) = patch.get("phone_number_verified") {
            // Verified says "this number was checked": only beside the number it is about, or a
            // number changed between the reading and the writing would be marked verified.
            if *v == Value::Bool(true) && !patch.contains_key("phone_number") {
                return Err(invalid(
                    "phone_number_verified",
                    "can be set to true only with the phone_number it verifies, in the same change",
                ));
            }
            self.set("phone_number_verified", v)?;
            any = true;
        }
        if self.phone_number_verified && self.phone_number.is_none() {
            return Err(invalid("phone_number_verified", "needs a phone_number"));
        }
        Ok(any)
    }

    /// One claim's value as OIDC Core §5.1 gives it; `None` when the user has none.
    pub fn get(&self, name: &str) -> Option<Value> {
        let text = |v: &Option<String>| v.as_ref().map(|s| Value::String(s.clone()));
        match name {
            "given_name" => text(&self.given_name),
            "family_name" => text(&self.family_name),
            "middle_name" => text(&self.middle_name),
            "nickname" => text(&self.nickname),
            "profile" => text(&self.profile),
            "picture" => text(&self.picture),
            "website" => text(&self.website),
            "gender" => text(&self.gender),
            "birthdate" => text(&self.birthdate),
            "zoneinfo" => text(&self.zoneinfo),
            "locale" => text(&self.locale),
            "phone_number" => text(&self.phone_number),
            "phone_number_verified" => self
                .phone_number
                .as_ref()
                .map(|_| Value::Bool(self.phone_number_verified)),
            "address" => self.address.as_ref().and_then(|a| serde_json::to_value(a).ok()),
            _ => None,
        }
    }
}

/// The address claim from its members: each a string, bounded; an empty object is no address.
fn address(members: &Map<String, Value>) -> Result<Option<Address>, Invalid> {
    let mut a = Address::default();
    for (key, value) in members {
        let claim = format!("address.{key}");
        let text = match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            _ => {
                return Err(Invalid {
                    claim,
                    rule: "must be a string or null",
                })
            }
        };
        let (slot, max) = match key.as_str() {
            "formatted" => (&mut a.formatted, MAX_ADDRESS_LINES),
            "street_address" => (&mut a.street_address, MAX_ADDRESS_LINES),
            "locality" => (&mut a.locality, MAX_ADDRESS_PART),
            "region" => (&mut a.region, MAX_ADDRESS_PART),
            "postal_code" => (&mut a.postal_code, MAX_ADDRESS_PART),
            "country" => (&mut a.country, MAX_ADDRESS_PART),
            _ => {
                return Err(Invalid {
                    claim: "address".into(),
                    rule: "may have only formatted, street_address, locality, region, postal_code and country",
                })
            }
        };
        if let Some(t) = &text {
            // OIDC Core §5.1.1: the two multi-line members separate lines with "\n" or "\r\n".
            let lines = max == MAX_ADDRESS_LINES;
            if t.len() > max {
                return Err(Invalid {
                    claim,
                    rule: if lines {
                        "must be at most 512 bytes"
                    } else {
                        "must be at most 128 bytes"
                    },
                });
            }
            if t.chars()
                .any(|c| c.is_control() && !(lines && (c == '\n' || c == '\r')) || is_bidi_override(c))
            {
                return Err(Invalid {
                    claim,
                    rule: "must not contain control characters",
                });
            }
        }
        *slot = text;
    }
    Ok((a != Address::default()).then_some(a))
}

/// The `name` claim (a column of its own): any script, bounded, without control characters; it
/// goes into ID tokens and pages (escaped), never into a header.
pub fn check_display_name(n: &str) -> Result<(), &'static str> {
    if n.len() <= 256 && !n.chars().any(|c| c.is_control() || is_bidi_override(c)) {
        Ok(())
    } else {
        Err("name must be at most 256 bytes without control characters")
    }
}

/// Explicit direction overrides and isolates (U+202A–U+202E, U+2066–U+2069) can make a name show
/// as something else on a page or in a client's log.
fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A non-empty value for claim `name`, checked (and for URLs, normalised).
fn check(name: &str, s: &str) -> Result<String, Invalid> {
    match name {
        "given_name" | "family_name" | "middle_name" | "nickname" => {
            text(name, s, MAX_NAME, "must be at most 128 bytes")?;
        }
        "gender" => text(name, s, MAX_GENDER, "must be at most 64 bytes")?,
        "profile" | "picture" | "website" => return web_url(name, s),
        "birthdate" => {
            if !is_birthdate(s) {
                return Err(invalid(name, "must be YYYY-MM-DD, 0000-MM-DD or YYYY (ISO 8601)"));
            }
        }
        "zoneinfo" => {
            if !is_zoneinfo(s) {
                return Err(invalid(name, "must be a time zone name such as Europe/Paris"));
            }
        }
        "locale" => {
            if !is_locale(s) {
                return Err(invalid(name, "must be a BCP 47 language tag such as en-US"));
            }
        }
        "phone_number" => {
            // Spaces, dots, hyphens and parentheses as people write them are dropped; what is
            // left must be E.164.
            let compact: String = s.chars().filter(|c| !" .-()".contains(*c)).collect();
            if !is_e164(&compact) {
                return Err(invalid(
                    name,
                    "must be in E.164 form, such as +14155550100 (with ;ext=123 if needed)",
                ));
            }
            return Ok(compact);
        }
        _ => return Err(invalid(name, "is not a claim Gatehouse keeps")),
    }
    Ok(s.to_owned())
}

fn text(name: &str, s: &str, max: usize, too_long: &'static str) -> Result<(), Invalid> {
    if s.len() > max {
        return Err(invalid(name, too_long));
    }
    if s.trim().is_empty() {
        return Err(invalid(name, "must not be blank"));
    }
    if s.chars().any(|c| c.is_control() || is_bidi_override(c)) {
        return Err(invalid(name, "must not contain control characters"));
    }
    Ok(())
}

/// An absolute http(s) URL without credentials, as a relying party can show, link or fetch it:
/// only the characters RFC 3986 allows (a host in another script is written in punycode, the rest
/// percent-encoded, each `%` with two hex digits), a host that is a DNS name of two labels or more
/// (no IP address, no `localhost`: a relying party that fetches an avatar must not be pointed at
/// its own network), and a port from 1 to 65535. The scheme may be written in any case and is
/// kept in lower case. Checked by hand: the `url` crate's IDNA tables would add about 40 KB gzip
/// to the Worker for three optional claims.
fn web_url(name: &str, s: &str) -> Result<String, Invalid> {
    if s.len() > MAX_URL {
        return Err(invalid(name, "must be at most 1024 bytes"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
    if !s.bytes().all(allowed) {
        return Err(invalid(
            name,
            "must use only the characters a URL may contain (percent-encode the rest)",
        ));
    }
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(invalid(name, "must have two hex digits after each %"));
        }
    }
    let not_web = || invalid(name, "must be an absolute http or https URL");
    let (scheme, rest) = s.split_once("://").ok_or_else(not_web)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(not_web());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(invalid(name, "must not contain a user name or password"));
    }
    if authority.starts_with('[') {
        return Err(invalid(name, "must name a host, not an IP address"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let dns = labels
        .iter()
        .all(|l| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !dns || host.is_empty() {
        return Err(not_web());
    }
    // A last label that is a number makes the whole host an IPv4 address to a browser
    // (`127.1`, `0x7f000001`): the WHATWG URL standard reads decimal, octal and hex.
    let last = labels.last().copied().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric || labels.len() < 2 {
        return Err(invalid(name, "must name a host, not an IP address"));
    }
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    if !port_ok {
        return Err(not_web());
    }
    Ok(format!("{scheme}://{rest}"))
}

/// OIDC Core §5.1 `birthdate`: ISO 8601 `YYYY-MM-DD`, `0000-MM-DD` when the year is withheld, or
/// `YYYY` alone. The day must exist (29 February only in a leap year, or with the year withheld).
pub fn is_birthdate(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] => y.len() == 4 && digits(y) && *y != "0000",
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d) => {
            let (Ok(year), Ok(month), Ok(day)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
                return false;
            };
            let leap = year == 0 || (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
            let days = match month {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                2 if leap => 29,
                2 => 28,
                _ => return false,
            };
            (1..=days).contains(&day)
        }
        _ => false,
    }
}

/// The shape of an IANA time zone name (`Europe/Paris`, `America/Argentina/Buenos_Aires`,
/// `UTC`, `Etc/GMT+5`): Gatehouse ships no time zone database, so a well-formed name that the
/// database does not have passes; the relying party reads it with its own.
pub fn is_zoneinfo(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.split('/').all(|part| {
            !part.is_empty()
                && part.as_bytes()[0].is_ascii_alphabetic()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b))
        })
}

/// A BCP 47 language tag's shape (`en`, `en-US`, `zh-Hant-TW`, `sr-Latn-RS`); OIDC Core §5.1 also
/// names the underscore form some systems write (`en_US`), which is accepted as it is.
pub fn is_locale(s: &str) -> bool {
    if s.len() > 35 {
        return false;
    }
    let mut parts = s.split(['-', '_']);
    let primary = parts.next().unwrap_or("");
    (2..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// E.164 (the form OIDC Core §5.1 recommends): `+`, a country code that does not start with 0,
/// at most 15 digits in all, and an optional RFC 3966 extension `;ext=` of up to 10 digits.
pub fn is_e164(s: &str) -> bool {
    let (number, ext) = match s.split_once(";ext=") {
        Some((n, e)) => (n, Some(e)),
        None => (s, None),
    };
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && ext.is_none_or(|e| (1..=10).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(name: &str, v: Value) -> Result<StandardClaims, Invalid> {
        let mut c = StandardClaims::default();
        c.set(name, &v)?;
        Ok(c)
    }

    #[test]
    fn birthdates_follow_iso_8601_as_oidc_core_5_1_says() {
        for ok in [
            "1990-05-17",
            "0000-02-29",
            "2000-02-29",
            "1987",
            "2024-12-31",
            "1999-01-01",
        ] {
            assert!(is_birthdate(ok), "{ok}");
        }
        for bad in [
            "1990-5-17",
            "1990-13-01",
            "1990-00-10",
            "1990-04-31",
            "1900-02-29",
            "2023-02-29",
            "1990-02-00",
            "0000",
            "199",
            "19900",
            "1990-05",
            "1990/05/17",
            "",
            "+990-05-17",
            "1990-05-1a",
        ] {
            assert!(!is_birthdate(bad), "{bad}");
        }
    }

    #[test]
    fn zoneinfo_locale_and_phone_shapes() {
        for ok in [
            "Europe/Paris",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
        ] {
            assert!(is_zoneinfo(ok), "{ok}");
        }
        for bad in [
            "",
            "Europe//Paris",
            "/Europe",
            "Europe/",
            "Europe/Par is",
            "9Zone",
            &"A".repeat(65),
        ] {
            assert!(!is_zoneinfo(bad), "{bad}");
        }
        assert!(is_zoneinfo(&"A".repeat(64)));
        for ok in ["en", "en-US", "fr_CA", "zh-Hant-TW", "sr-Latn-RS"] {
            assert!(is_locale(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "en-",
            "en--US",
            "e1-US",
            "en-US-toolongsubtag",
            "en US",
            "en-abcdefgh-abcdefgh-abcdefgh-abcdef",
        ] {
            assert!(!is_locale(bad), "{bad}");
        }
        assert!(is_locale("en-abcdefgh-abcdefgh-abcdefgh-abcde"));
        for ok in [
            "+14155550100",
            "+33123456789",
            "+12",
            "+123456789012345",
            "+14155550100;ext=12",
            "+12;ext=1234567890",
        ] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "14155550100",
            "+04155550100",
            "+1",
            "+1234567890123456",
            "+1 415 555 0100",
            "+1415555a100",
            "+14155550100;ext=",
            "+14155550100;ext=12345678901",
            "+14155550100;ext=1a",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn a_display_name_is_bounded_and_free_of_control_characters() {
        assert!(check_display_name(&"é".repeat(128)).is_ok());
        assert!(check_display_name(&format!("{}a", "é".repeat(128))).is_err());
        assert!(check_display_name("").is_ok());
        assert!(check_display_name("Ann\nLee").is_err());
        assert!(check_display_name("Ann\u{202E}eeL").is_err());
    }

    #[test]
    fn text_claims_are_bounded_and_free_of_control_characters() {
        assert_eq!(
            set("given_name", json!("Zoë")).unwrap().given_name.as_deref(),
            Some("Zoë")
        );
        assert!(set("given_name", json!("a".repeat(MAX_NAME))).is_ok());
        assert_eq!(
            set("family_name", json!("a".repeat(MAX_NAME + 1))).unwrap_err().rule,
            "must be at most 128 bytes"
        );
        assert_eq!(
            set("nickname", json!("a\u{7}b")).unwrap_err().rule,
            "must not contain control characters"
        );
        assert_eq!(
            set("middle_name", json!("a\u{202E}b")).unwrap_err().rule,
            "must not contain control characters"
        );
        assert_eq!(set("given_name", json!("  ")).unwrap_err().rule, "must not be blank");
        assert!(set("gender", json!("a".repeat(MAX_GENDER))).is_ok());
        assert!(set("gender", json!("a".repeat(MAX_GENDER + 1))).is_err());
        assert_eq!(
            set("given_name", json!(7)).unwrap_err().rule,
            "must be a string or null"
        );
        // Empty and null remove.
        let mut c = set("given_name", json!("Ann")).unwrap();
        c.set("given_name", &json!("")).unwrap();
        assert_eq!(c.given_name, None);
        c.set("given_name", &json!("Ann")).unwrap();
        c.set("given_name", &Value::Null).unwrap();
        assert_eq!(c, StandardClaims::default());
        assert_eq!(
            set("password", json!("x")).unwrap_err().rule,
            "is not a claim Gatehouse keeps"
        );
    }

    #[test]
    fn urls_are_absolute_http_to_a_named_host_without_credentials() {
        for ok in [
            "https://example.com/me.png",
            "http://example.com/u/1",
            "https://xn--bcher-kva.example/",
            "https://example.com:8443/a?b=c#d",
            "https://example.com:65535/",
            "https://example.com:1/",
            "https://example.com",
            "https://example.com./x",
            "https://a-b.example.com/%E2%9C%93",
            "https://example.com/@ann",
            "https://example.com/a(1)!$&'*+,;=~",
        ] {
            assert_eq!(set("picture", json!(ok)).unwrap().picture.as_deref(), Some(ok), "{ok}");
        }
        // The scheme in any case, kept in lower case.
        assert_eq!(
            set("picture", json!("HTTPS://example.com/A"))
                .unwrap()
                .picture
                .as_deref(),
            Some("https://example.com/A")
        );
        for bad in [
            "javascript:alert(1)",
            "javascript://example.com/%0aalert(1)",
            "ftp://example.com/",
            "/relative",
            "https://",
            "https:///path",
            "data:text/html,x",
            "mailto:a@b",
            "HTTPS//example.com",
            "https://exa_mple.com/",
            "https://example..com/",
            "https://example.com:/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:123456/",
            "https://example.com:80a/",
            &format!("https://{}.com/", "a".repeat(64)),
        ] {
            assert_eq!(
                set("profile", json!(bad)).unwrap_err().rule,
                "must be an absolute http or https URL",
                "{bad}"
            );
        }
        for bad in [
            "https://[2001:db8::1]/x",
            "https://[:]/",
            "http://169.254.169.254/latest/meta-data",
            "https://127.1/",
            "https://0x7f000001/",
            "https://localhost/",
            "https://intranet/",
        ] {
            assert_eq!(
                set("picture", json!(bad)).unwrap_err().rule,
                "must name a host, not an IP address",
                "{bad}"
            );
        }
        for bad in [
            "https://example.com/a b",
            "https://bücher.example/",
            "https://example.com\\@evil.com/",
            "https://example.com/\"><script>",
            "https://example.com/{x}",
            "https://example.com/`",
            "https://example.com/a|b",
            "https://example.com/\r\nSet-Cookie:x",
        ] {
            assert_eq!(
                set("website", json!(bad)).unwrap_err().rule,
                "must use only the characters a URL may contain (percent-encode the rest)",
                "{bad}"
            );
        }
        for bad in [
            "https://example.com/%zz",
            "https://example.com/%4",
            "https://example.com/%",
        ] {
            assert_eq!(
                set("website", json!(bad)).unwrap_err().rule,
                "must have two hex digits after each %",
                "{bad}"
            );
        }
        for bad in [
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://@example.com/",
        ] {
            assert_eq!(
                set("website", json!(bad)).unwrap_err().rule,
                "must not contain a user name or password",
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL - 20));
        assert_eq!(long.len(), MAX_URL);
        assert!(set("picture", json!(long)).is_ok());
        assert_eq!(
            set("picture", json!(format!("{long}a"))).unwrap_err().rule,
            "must be at most 1024 bytes"
        );
    }

    #[test]
    fn the_address_is_an_object_of_known_bounded_members() {
        let c = set(
            "address",
            json!({"street_address": "1 Main St\nApt 2", "locality": "Springfield", "country": "US", "region": null}),
        )
        .unwrap();
        let a = c.address.clone().unwrap();
        assert_eq!(a.street_address.as_deref(), Some("1 Main St\nApt 2"));
        assert_eq!(a.region, None);
        assert_eq!(
            c.get("address"),
            Some(json!({"street_address": "1 Main St\nApt 2", "locality": "Springfield", "country": "US"}))
        );
        assert_eq!(set("address", json!({})).unwrap().address, None);
        assert_eq!(set("address", json!({"country": ""})).unwrap().address, None);
        assert_eq!(set("address", json!("1 Main St")).unwrap_err().claim, "address");
        assert_eq!(set("address", json!({"planet": "Mars"})).unwrap_err().claim, "address");
        assert_eq!(
            set("address", json!({"country": 1})).unwrap_err().claim,
            "address.country"
        );
        assert_eq!(
            set("address", json!({"locality": "a\nb"})).unwrap_err().rule,
            "must not contain control characters"
        );
        assert_eq!(
            set("address", json!({"formatted": "a\u{0}b"})).unwrap_err().rule,
            "must not contain control characters"
        );
        assert_eq!(
            set("address", json!({"formatted": "a\u{2066}b"})).unwrap_err().rule,
            "must not contain control characters"
        );
        assert!(set("address", json!({"formatted": "a\r\nb"})).is_ok());
        assert!(set("address", json!({"formatted": "a".repeat(MAX_ADDRESS_LINES)})).is_ok());
        assert_eq!(
            set("address", json!({"formatted": "a".repeat(MAX_ADDRESS_LINES + 1)}))
                .unwrap_err()
                .rule,
            "must be at most 512 bytes"
        );
        assert!(set("address", json!({"postal_code": "a".repeat(MAX_ADDRESS_PART)})).is_ok());
        assert_eq!(
            set("address", json!({"postal_code": "a".repeat(MAX_ADDRESS_PART + 1)}))
                .unwrap_err()
                .rule,
            "must be at most 128 bytes"
        );
    }

    #[test]
    fn a_phone_number_is_verified_only_while_it_is_the_same_number() {
        let mut c = StandardClaims::default();
        let patch = json!({"phone_number_verified": true, "phone_number": "+14155550100"});
        assert!(c.apply(patch.as_object().unwrap()).unwrap());
        assert!(c.phone_number_verified);
        assert_eq!(c.get("phone_number_verified"), Some(json!(true)));
        // The same number again keeps it verified; another clears it.
        c.set("phone_number", &json!("+14155550100")).unwrap();
        assert!(c.phone_number_verified);
        c.set("phone_number", &json!("+14155550101")).unwrap();
        assert!(!c.phone_number_verified);
        assert_eq!(c.get("phone_number_verified"), Some(json!(false)));
        c.set("phone_number", &Value::Null).unwrap();
        assert_eq!(c.get("phone_number_verified"), None);
        let err = c
            .apply(json!({"phone_number_verified": true}).as_object().unwrap())
            .unwrap_err();
        assert_eq!(err.claim, "phone_number_verified");
        assert_eq!(
            c.set("phone_number_verified", &json!("yes")).unwrap_err().rule,
            "must be true or false"
        );
        // Verified only beside the number it is about: a number changed since it was read must
        // not be marked verified by a patch that does not name it.
        c.set("phone_number", &json!("+14155550100")).unwrap();
        let err = c
            .apply(json!({"phone_number_verified": true}).as_object().unwrap())
            .unwrap_err();
        assert_eq!(
            err.rule,
            "can be set to true only with the phone_number it verifies, in the same change"
        );
        assert!(!c.phone_number_verified);
        assert!(c
            .apply(json!({"phone_number_verified": false}).as_object().unwrap())
            .is_ok());
        // Written as people write them, kept in E.164.
        c.set("phone_number", &json!("+1 (415) 555-0100")).unwrap();
        assert_eq!(c.phone_number.as_deref(), Some("+14155550100"));
        c.set("phone_number", &json!("+33 1.23.45.67.89")).unwrap();
        assert_eq!(c.phone_number.as_deref(), Some("+33123456789"));
        // A patch without claims changes nothing and says so.
        let mut d = StandardClaims::default();
        assert!(!d.apply(json!({"username": "x"}).as_object().unwrap()).unwrap());
        assert_eq!(d, StandardClaims::default());
    }

    #[test]
    fn stored_form_round_trips_and_a_broken_one_reads_as_empty() {
        let mut c = StandardClaims::default();
        let all = json!({
            "given_name": "Ann", "family_name": "Lee", "middle_name": "Q", "nickname": "al",
            "profile": "https://example.com/ann", "picture": "https://example.com/ann.png",
            "website": "https://ann.example/", "gender": "female", "birthdate": "1990-05-17",
            "zoneinfo": "Europe/Paris", "locale": "fr-FR", "phone_number": "+33123456789",
            "phone_number_verified": true, "address": {"country": "FR"}
        });
        c.apply(all.as_object().unwrap()).unwrap();
        let stored = c.to_stored();
        assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), all);
        assert_eq!(StandardClaims::from_stored(&stored), c);
        for name in NAMES {
            assert_eq!(c.get(name).as_ref(), all.get(*name), "{name}");
        }
        assert_eq!(c.get("email"), None);
        assert_eq!(StandardClaims::from_stored("not json"), StandardClaims::default());
        assert_eq!(StandardClaims::default().to_stored(), "{}");
    }
}
