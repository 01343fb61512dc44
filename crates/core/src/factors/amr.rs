//! How a user signed in, as RFC 8176 authentication method references (`amr`), and the
//! authentication context class (`acr`) Gatehouse derives from them. A session records the
//! methods its sign-in passed; the grants made from it carry them into ID and access tokens.

/// A password (RFC 8176 §2 `pwd`).
pub const PWD: &str = "pwd";
/// A one-time password: TOTP or an email code (`otp`).
pub const OTP: &str = "otp";
/// More than one factor (`mfa`).
pub const MFA: &str = "mfa";

/// A sign-in with one factor.
pub const ACR_SINGLE_FACTOR: &str = "urn:gatehouse:acr:1fa";
/// A sign-in with at least two factors.
pub const ACR_MULTI_FACTOR: &str = "urn:gatehouse:acr:mfa";
/// What discovery lists as `acr_values_supported`, weakest first.
pub const ACR_VALUES_SUPPORTED: [&str; 2] = [ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR];

/// The methods of a stored, space-separated `amr` column, in order, without repeats.
pub fn parse(stored: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for m in stored.split_ascii_whitespace() {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// The `acr` of a sign-in that passed `amr`.
pub fn acr(amr: &[&str]) -> &'static str {
    if amr.contains(&MFA) {
        ACR_MULTI_FACTOR
    } else {
        ACR_SINGLE_FACTOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_alone_is_single_factor_and_mfa_is_multi_factor() {
        assert_eq!(parse(" pwd  pwd "), [PWD]);
        assert_eq!(acr(&parse("pwd")), ACR_SINGLE_FACTOR);
        assert_eq!(acr(&parse("pwd otp mfa")), ACR_MULTI_FACTOR);
        assert_eq!(acr(&parse("")), ACR_SINGLE_FACTOR);
    }
}
