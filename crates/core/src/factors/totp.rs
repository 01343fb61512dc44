//! Time-based one-time passwords (RFC 6238) as authenticator apps compute them: HMAC-SHA-1, six
//! digits, 30-second steps. `totp-rs` computes a code for a time step; this module owns the rules
//! around it: one step of clock skew each way, a constant-time comparison with every candidate,
//! and a code accepted at most once (RFC 6238 §5.2: a step at or before the last accepted one is
//! refused, so a code seen over a shoulder or phished cannot be replayed within its window).

use std::fmt;

use totp_rs::{Algorithm, TOTP};

use crate::crypto::constant_time_eq;
use crate::error::InternalError;
use crate::ports::Rng;

/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps of clock skew accepted on each side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// Secret length: 160 bits, the HMAC-SHA-1 block size RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;

/// A TOTP shared secret. Its `Debug` never shows it; it is shown to the user once, at enrollment,
/// and stored only sealed (`factors::sealed`).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate(rng: &dyn Rng) -> Result<TotpSecret, InternalError> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rng.fill(&mut bytes)?;
        Ok(TotpSecret(bytes))
    }

    /// A secret read back from storage. Shorter than 128 bits is refused (RFC 4226 §4 R6).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TotpSecret, InternalError> {
        if bytes.len() < 16 {
            return Err(InternalError::new("a TOTP secret is at least 128 bits"));
        }
        Ok(TotpSecret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it for manual entry: RFC 4648 base32, no padding.
    pub fn to_base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }

    /// The `otpauth://totp/...` URI an authenticator app reads from the QR code (the Key URI
    /// format): the label is `issuer:account`, both percent-encoded, and the parameters state
    /// the algorithm, digits and period even where they are the defaults.
    pub fn otpauth_uri(&self, issuer_name: &str, account: &str) -> String {
        let label = format!("{}:{}", encode_component(issuer_name), encode_component(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.to_base32(),
            encode_component(issuer_name)
        )
    }

    fn totp(&self) -> Result<TOTP, InternalError> {
        TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECS, self.0.clone())
            .map_err(|e| InternalError::new(format!("totp: {e}")))
    }

    /// The code for the time step containing `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> Result<String, InternalError> {
        Ok(self.totp()?.generate(unix_secs))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a space becomes `%20`, which
/// every authenticator app reads; `+` would not be).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The time step containing `unix_secs`.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not six digits (after removing the spaces people type between groups).
    Malformed,
    /// No step within the skew window has this code.
    Wrong,
    /// The code is right, but for a step at or before the last one accepted: a replay.
    Replayed,
}

/// Checks `code` at `unix_secs`. `last_step` is the last time step accepted for this device
/// (`None` before its first use). The answer is the step to record as the new last one: the
/// newest step in the window with this code (one code can, rarely, belong to two steps).
///
/// Every candidate step is compared, so the time taken does not say which step matched.
pub fn verify(secret: &TotpSecret, code: &str, unix_secs: u64, last_step: Option<u64>) -> Result<u64, Refusal> {
    if code.len() > 64 {
        return Err(Refusal::Malformed);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed);
    }
    let totp = secret.totp().map_err(|_| Refusal::Wrong)?;
    let now = step_of(unix_secs);
    let mut newest: Option<u64> = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
        let candidate = totp.generate(step.saturating_mul(STEP_SECS));
        if constant_time_eq(candidate.as_bytes(), code.as_bytes()) {
            newest = Some(step);
        }
    }
    match newest {
        None => Err(Refusal::Wrong),
        Some(step) if last_step.is_some_and(|last| step <= last) => Err(Refusal::Replayed),
        Some(step) => Ok(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed (ASCII "12345678901234567890").
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors_in_six_digits() {
        // The appendix gives eight digits; six-digit codes are their last six (same truncation).
        for (time, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(rfc_secret().code_at(time).unwrap(), &eight[2..], "T={time}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_not_two() {
        let s = rfc_secret();
        let t = 1_111_111_111;
        let now = step_of(t);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (t as i64 + offset * STEP_SECS as i64) as u64;
            let code = s.code_at(at).unwrap();
            let result = verify(&s, &code, t, None);
            if accepted {
                assert_eq!(result, Ok((now as i64 + offset) as u64), "offset {offset}");
            } else {
                assert_eq!(result, Err(Refusal::Wrong), "offset {offset}");
            }
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_no_older_step_after_it() {
        let s = rfc_secret();
        let t = 1_234_567_890;
        let code = s.code_at(t).unwrap();
        let step = verify(&s, &code, t, None).unwrap();
        assert_eq!(verify(&s, &code, t, Some(step)), Err(Refusal::Replayed));
        // Still replayed a step later, while the skew window still holds it.
        assert_eq!(verify(&s, &code, t + STEP_SECS, Some(step)), Err(Refusal::Replayed));
        // The previous step's code, valid by skew, is older than the accepted one: refused too.
        let previous = s.code_at(t - STEP_SECS).unwrap();
        assert_eq!(verify(&s, &previous, t, Some(step)), Err(Refusal::Replayed));
        // The next step's code is newer: accepted.
        let next = s.code_at(t + STEP_SECS).unwrap();
        assert_eq!(verify(&s, &next, t + STEP_SECS, Some(step)), Ok(step + 1));
    }

    #[test]
    fn spaces_are_ignored_and_anything_but_six_digits_is_malformed() {
        let s = rfc_secret();
        let t = 59;
        assert_eq!(verify(&s, "287 082", t, None), Ok(step_of(t)));
        assert_eq!(verify(&s, " 287082\n", t, None), Ok(step_of(t)));
        let padded = format!("{}287082", " ".repeat(59));
        for bad in [
            "",
            "28708",
            "2870821",
            "28708a",
            "２８７０８２",
            "94287082",
            padded.as_str(),
        ] {
            assert_eq!(verify(&s, bad, t, None), Err(Refusal::Malformed), "{bad:?}");
        }
        assert_eq!(verify(&s, &padded[1..], t, None), Ok(step_of(t)), "64 bytes are read");
        assert_eq!(verify(&s, "287083", t, None), Err(Refusal::Wrong));
    }

    #[test]
    fn the_first_steps_after_the_epoch_do_not_underflow() {
        let s = rfc_secret();
        let code = s.code_at(0).unwrap();
        assert_eq!(verify(&s, &code, 0, None), Ok(0));
    }

    #[test]
    fn the_secret_is_160_random_bits_never_printed_and_at_least_128_when_read_back() {
        let rng = crate::testing::SeededRng::new(7);
        let s = TotpSecret::generate(&rng).unwrap();
        assert_eq!(s.as_bytes().len(), SECRET_BYTES);
        assert_eq!(s.to_base32().len(), 32);
        assert_eq!(format!("{s:?}"), "TotpSecret([redacted])");
        assert!(TotpSecret::from_bytes(vec![1; 15]).is_err());
        assert!(TotpSecret::from_bytes(vec![1; 16]).is_ok());
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_parameters_percent_encoded() {
        let s = rfc_secret();
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            s.otpauth_uri("Example Co", "alice@example.com"),
            "otpauth://totp/Example%20Co:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30"
        );
        assert!(s
            .otpauth_uri("a:b&c", "x?y")
            .starts_with("otpauth://totp/a%3Ab%26c:x%3Fy?"));
    }
}
