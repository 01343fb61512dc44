//! The password rules checked wherever a password is set (the admin API, the account page, a
//! reset, an expired password): length and, when an operator asks for them, character classes.
//!
//! Defaults follow NIST SP 800-63B-4 §3.1.1.2: at least 15 characters when the password is the
//! account's only factor and 8 when a second factor is enrolled, at least 64 allowed, and no
//! composition rules (the class minimums default to 0; they make passwords harder to remember
//! without making them much harder to guess). Length is counted in Unicode scalar values, as a
//! user counts characters; the byte bound (`password::MAX_LENGTH`) still applies to what Argon2
//! reads.

use crate::error::InternalError;

/// ASCII punctuation: what "symbol" means unless `GATEHOUSE_PASSWORD_SYMBOLS` says otherwise.
pub const DEFAULT_SYMBOLS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// NIST: verifiers SHALL allow at least 64 characters.
pub const MIN_MAX_LENGTH: usize = 64;
/// The largest minimum a class may demand; more is a typo.
const MAX_CLASS_MINIMUM: usize = 64;

/// A character class: its minimum, whether a character is of it (the symbols depend on the
/// settings), and the rule broken when too few are.
type Class = (usize, fn(&PasswordRules, char) -> bool, fn(usize) -> Broken);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    /// `GATEHOUSE_PASSWORD_MIN_LENGTH`: when the password is the account's only factor.
    pub min_length: usize,
    /// `GATEHOUSE_PASSWORD_MIN_LENGTH_MFA`: when a second factor is enrolled.
    pub min_length_with_second_factor: usize,
    /// `GATEHOUSE_PASSWORD_MAX_LENGTH`: at least 64, at most `password::MAX_LENGTH`.
    pub max_length: usize,
    pub min_uppercase: usize,
    pub min_lowercase: usize,
    pub min_digits: usize,
    pub min_symbols: usize,
    /// The characters that count as symbols.
    pub symbols: String,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules {
            min_length: 15,
            min_length_with_second_factor: 8,
            max_length: 256,
            min_uppercase: 0,
            min_lowercase: 0,
            min_digits: 0,
            min_symbols: 0,
            symbols: DEFAULT_SYMBOLS.to_owned(),
        }
    }
}

/// The rule a password failed, for the message shown to whoever typed it. It names the rule and
/// its number, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    TooShort(usize),
    TooLong(usize),
    Uppercase(usize),
    Lowercase(usize),
    Digits(usize),
    Symbols(usize),
}

impl Broken {
    pub fn message(self) -> String {
        let plural = |n: usize, one: &str, many: &str| if n == 1 { one.to_owned() } else { format!("{n} {many}") };
        match self {
            Broken::TooShort(n) => format!("The password must be at least {n} characters long."),
            Broken::TooLong(n) => format!("The password must be at most {n} characters long."),
            Broken::Uppercase(n) => format!(
                "The password must contain {}.",
                plural(n, "an uppercase letter", "uppercase letters")
            ),
            Broken::Lowercase(n) => format!(
                "The password must contain {}.",
                plural(n, "a lowercase letter", "lowercase letters")
            ),
            Broken::Digits(n) => format!("The password must contain {}.", plural(n, "a digit", "digits")),
            Broken::Symbols(n) => format!("The password must contain {}.", plural(n, "a symbol", "symbols")),
        }
    }
}

impl PasswordRules {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<PasswordRules, InternalError> {
        let d = PasswordRules::default();
        let int = |name: &str, default: usize, min: usize, max: usize| {
            crate::config::whole_number(get, name, default, min, max)
        };
        let hard_max = crate::password::MAX_LENGTH;
        let max_length = int("GATEHOUSE_PASSWORD_MAX_LENGTH", d.max_length, MIN_MAX_LENGTH, hard_max)?;
        let rules = PasswordRules {
            min_length: int("GATEHOUSE_PASSWORD_MIN_LENGTH", d.min_length, 1, hard_max)?,
            min_length_with_second_factor: int(
                "GATEHOUSE_PASSWORD_MIN_LENGTH_MFA",
                d.min_length_with_second_factor,
                1,
                hard_max,
            )?,
            max_length,
            min_uppercase: int("GATEHOUSE_PASSWORD_MIN_UPPERCASE", 0, 0, MAX_CLASS_MINIMUM)?,
            min_lowercase: int("GATEHOUSE_PASSWORD_MIN_LOWERCASE", 0, 0, MAX_CLASS_MINIMUM)?,
            min_digits: int("GATEHOUSE_PASSWORD_MIN_DIGITS", 0, 0, MAX_CLASS_MINIMUM)?,
            min_symbols: int("GATEHOUSE_PASSWORD_MIN_SYMBOLS", 0, 0, MAX_CLASS_MINIMUM)?,
            symbols: match get("GATEHOUSE_PASSWORD_SYMBOLS").filter(|v| !v.is_empty()) {
                None => d.symbols,
                Some(v) => v,
            },
        };
        if rules.symbols.chars().count() > 128 || rules.symbols.chars().any(char::is_alphanumeric) {
            return Err(InternalError::new(
                "GATEHOUSE_PASSWORD_SYMBOLS must be at most 128 characters, none of them a letter or digit",
            ));
        }
        if rules.min_length.max(rules.min_length_with_second_factor) > rules.max_length {
            return Err(InternalError::new(
                "GATEHOUSE_PASSWORD_MIN_LENGTH(_MFA) is above GATEHOUSE_PASSWORD_MAX_LENGTH: no password could pass",
            ));
        }
        let classes = rules.min_uppercase + rules.min_lowercase + rules.min_digits + rules.min_symbols;
        if classes > rules.max_length {
            return Err(InternalError::new(
                "the GATEHOUSE_PASSWORD_MIN_* class counts add up to more than GATEHOUSE_PASSWORD_MAX_LENGTH",
            ));
        }
        Ok(rules)
    }

    /// The shortest password allowed for an account with or without a second factor.
    pub fn min_length_for(&self, has_second_factor: bool) -> usize {
        if has_second_factor {
            self.min_length_with_second_factor
        } else {
            self.min_length
        }
    }

    /// The rules in a sentence, for the page where a password is chosen.
    pub fn describe(&self, has_second_factor: bool) -> String {
        let mut classes = Vec::new();
        for (n, one, many) in [
            (self.min_uppercase, "an uppercase letter", "uppercase letters"),
            (self.min_lowercase, "a lowercase letter", "lowercase letters"),
            (self.min_digits, "a digit", "digits"),
            (self.min_symbols, "a symbol", "symbols"),
        ] {
            match n {
                0 => {}
                1 => classes.push(one.to_owned()),
                n => classes.push(format!("{n} {many}")),
            }
        }
        let length = format!(
            "{} to {} characters",
            self.min_length_for(has_second_factor),
            self.max_length
        );
        match classes.as_slice() {
            [] => format!("{length}."),
            [only] => format!("{length}, with at least {only}."),
            [init @ .., last] => format!("{length}, with at least {} and {last}.", init.join(", ")),
        }
    }

    /// The first rule `password` breaks, in the order a user fixes them: length, then classes.
    pub fn check(&self, password: &str, has_second_factor: bool) -> Result<(), Broken> {
        let length = password.chars().count();
        let min = self.min_length_for(has_second_factor);
        if length < min {
            return Err(Broken::TooShort(min));
        }
        if length > self.max_length || password.len() > crate::password::MAX_LENGTH {
            return Err(Broken::TooLong(self.max_length));
        }
        let count = |is: fn(&PasswordRules, char) -> bool| password.chars().filter(|c| is(self, *c)).count();
        let classes: [Class; 4] = [
            (self.min_uppercase, |_, c| c.is_uppercase(), Broken::Uppercase),
            (self.min_lowercase, |_, c| c.is_lowercase(), Broken::Lowercase),
            (self.min_digits, |_, c| c.is_numeric(), Broken::Digits),
            (self.min_symbols, |r, c| r.symbols.contains(c), Broken::Symbols),
        ];
        for (min, is, broken) in classes {
            if count(is) < min {
                return Err(broken(min));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> Result<PasswordRules, InternalError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PasswordRules::from_lookup(&move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_are_nist_lengths_without_composition_rules() {
        let r = PasswordRules::default();
        assert_eq!(lookup(&[]).unwrap(), r);
        assert_eq!(r.check("fourteen chars", false), Err(Broken::TooShort(15)));
        assert_eq!(r.check("fifteen chars!!", false), Ok(()));
        assert_eq!(r.check("seven c", true), Err(Broken::TooShort(8)));
        assert_eq!(r.check("eight ch", true), Ok(()));
        assert_eq!(r.check("alllowercaseletters", false), Ok(()));
        assert_eq!(r.check(&"a".repeat(256), false), Ok(()));
        assert_eq!(r.check(&"a".repeat(257), false), Err(Broken::TooLong(256)));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let r = PasswordRules::default();
        // 15 characters, 30 bytes.
        assert_eq!(r.check(&"é".repeat(15), false), Ok(()));
        assert_eq!(r.check(&"é".repeat(14), false), Err(Broken::TooShort(15)));
        // The byte bound Argon2 reads holds whatever the character count.
        let max = lookup(&[("GATEHOUSE_PASSWORD_MAX_LENGTH", "1024")]).unwrap();
        assert_eq!(max.check(&"é".repeat(1000), false), Err(Broken::TooLong(1024)));
        assert_eq!(max.check(&"e".repeat(1024), false), Ok(()));
    }

    #[test]
    fn each_class_minimum_is_checked_exactly() {
        let r = lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_LENGTH", "4"),
            ("GATEHOUSE_PASSWORD_MIN_UPPERCASE", "2"),
            ("GATEHOUSE_PASSWORD_MIN_LOWERCASE", "2"),
            ("GATEHOUSE_PASSWORD_MIN_DIGITS", "2"),
            ("GATEHOUSE_PASSWORD_MIN_SYMBOLS", "2"),
        ])
        .unwrap();
        assert_eq!(r.check("ABcd12!?", false), Ok(()));
        assert_eq!(r.check("Abcd12!?", false), Err(Broken::Uppercase(2)));
        assert_eq!(r.check("ABCd12!?", false), Err(Broken::Lowercase(2)));
        assert_eq!(r.check("ABcd1x!?", false), Err(Broken::Digits(2)));
        assert_eq!(r.check("ABcd12!x", false), Err(Broken::Symbols(2)));
        // Unicode letters count in their case; a space is no symbol by default.
        assert_eq!(r.check("ÉÀéà٣4!?", false), Ok(()));
        assert_eq!(r.check("ABcd12! ", false), Err(Broken::Symbols(2)));
    }

    #[test]
    fn the_symbol_charset_is_configurable() {
        let r = lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_SYMBOLS", "1"),
            ("GATEHOUSE_PASSWORD_SYMBOLS", " §"),
        ])
        .unwrap();
        assert_eq!(r.check("a password with spaces", false), Ok(()));
        assert_eq!(r.check("nospacesbutbang!", false), Err(Broken::Symbols(1)));
        assert_eq!(r.check("section§sign§here", false), Ok(()));
    }

    #[test]
    fn settings_that_no_password_could_meet_are_refused() {
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MAX_LENGTH", "63")]).is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MAX_LENGTH", "64")]).is_ok());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MAX_LENGTH", "1025")]).is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MIN_LENGTH", "0")]).is_err());
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_LENGTH", "65"),
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64")
        ])
        .is_err());
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_LENGTH", "64"),
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64")
        ])
        .is_ok());
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_LENGTH_MFA", "65"),
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64")
        ])
        .is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MIN_DIGITS", "65")]).is_err());
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64"),
            ("GATEHOUSE_PASSWORD_MIN_DIGITS", "32"),
            ("GATEHOUSE_PASSWORD_MIN_SYMBOLS", "33"),
        ])
        .is_err());
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64"),
            ("GATEHOUSE_PASSWORD_MIN_DIGITS", "32"),
            ("GATEHOUSE_PASSWORD_MIN_SYMBOLS", "32"),
        ])
        .is_ok());
        // The class counts add up (one upper case letter and 64 lower case ones fit no 64).
        assert!(lookup(&[
            ("GATEHOUSE_PASSWORD_MAX_LENGTH", "64"),
            ("GATEHOUSE_PASSWORD_MIN_UPPERCASE", "1"),
            ("GATEHOUSE_PASSWORD_MIN_LOWERCASE", "64"),
        ])
        .is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_SYMBOLS", "!a")]).is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_SYMBOLS", &"!".repeat(129))]).is_err());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_SYMBOLS", &"!".repeat(128))]).is_ok());
        assert!(lookup(&[("GATEHOUSE_PASSWORD_MIN_LENGTH", "ten")]).is_err());
    }

    #[test]
    fn the_rules_are_described_in_a_sentence() {
        let d = PasswordRules::default();
        assert_eq!(d.describe(false), "15 to 256 characters.");
        assert_eq!(d.describe(true), "8 to 256 characters.");
        let one = lookup(&[("GATEHOUSE_PASSWORD_MIN_DIGITS", "1")]).unwrap();
        assert_eq!(one.describe(false), "15 to 256 characters, with at least a digit.");
        let all = lookup(&[
            ("GATEHOUSE_PASSWORD_MIN_UPPERCASE", "1"),
            ("GATEHOUSE_PASSWORD_MIN_LOWERCASE", "2"),
            ("GATEHOUSE_PASSWORD_MIN_DIGITS", "1"),
            ("GATEHOUSE_PASSWORD_MIN_SYMBOLS", "3"),
        ])
        .unwrap();
        assert_eq!(
            all.describe(false),
            "15 to 256 characters, with at least an uppercase letter, 2 lowercase letters, a digit and 3 symbols."
        );
    }

    #[test]
    fn messages_name_the_rule_never_the_password() {
        assert_eq!(
            Broken::TooShort(15).message(),
            "The password must be at least 15 characters long."
        );
        assert_eq!(Broken::Digits(1).message(), "The password must contain a digit.");
        assert_eq!(Broken::Symbols(3).message(), "The password must contain 3 symbols.");
        assert_eq!(
            Broken::Uppercase(1).message(),
            "The password must contain an uppercase letter."
        );
        assert_eq!(
            Broken::Lowercase(2).message(),
            "The password must contain 2 lowercase letters."
        );
        assert_eq!(
            Broken::TooLong(64).message(),
            "The password must be at most 64 characters long."
        );
    }
}
