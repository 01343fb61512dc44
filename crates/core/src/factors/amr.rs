//! How a user signed in, as RFC 8176 authentication method references (`amr`), and the
//! authentication context class (`acr`) Gatehouse derives from them. A session records the
//! methods its sign-in passed; the grants made from it carry them into ID and access tokens.

/// A password (RFC 8176 §2 `pwd`).
pub const PWD: &str = "pwd";
/// A one-time password: TOTP or an email code (`otp`).
pub const OTP: &str = "otp";
/// Proof of possession of a hardware-secured key (`hwk`): a passkey that cannot leave its
/// authenticator (not backup eligible).
pub const HWK: &str = "hwk";
/// Proof of possession of a software-secured key (`swk`): a synced passkey (backup eligible),
/// whose private key a password manager or platform account can copy.
pub const SWK: &str = "swk";
/// A user-presence test (`user`): the authenticator's touch or click. A PIN or a biometric
/// (user verification) is not named further: the authenticator does not say which it was, so
/// neither `pin` nor `fpt` would be honest; it shows as `mfa` instead.
pub const USER: &str = "user";
/// More than one factor (`mfa`).
pub const MFA: &str = "mfa";

/// The `acr` classes, as paths under the issuer: OIDC Core §2 asks for absolute URIs (or names
/// registered per RFC 6711, and there are none for these), and the issuer's URL is one this
/// deployment owns.
pub const SINGLE_FACTOR: &str = "1fa";
/// At least two factors.
pub const MULTI_FACTOR: &str = "mfa";

/// The absolute `acr` URI of a class.
pub fn acr_uri(issuer: &str, class: &str) -> String {
    format!("{issuer}/acr/{class}")
}

/// What discovery lists as `acr_values_supported`, weakest first: only classes this deployment
/// can produce (the multi-factor one once a second factor can be passed).
pub fn acr_values_supported(issuer: &str, second_factor_available: bool) -> Vec<String> {
    let mut out = vec![acr_uri(issuer, SINGLE_FACTOR)];
    if second_factor_available {
        out.push(acr_uri(issuer, MULTI_FACTOR));
    }
    out
}

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

/// The `acr` class of a sign-in that passed `amr`.
pub fn class(amr: &[&str]) -> &'static str {
    if amr.contains(&MFA) {
        MULTI_FACTOR
    } else {
        SINGLE_FACTOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_alone_is_single_factor_and_mfa_is_multi_factor() {
        assert_eq!(parse(" pwd  pwd "), [PWD]);
        assert_eq!(class(&parse("pwd")), SINGLE_FACTOR);
        assert_eq!(class(&parse("pwd otp mfa")), MULTI_FACTOR);
        assert_eq!(class(&parse("")), SINGLE_FACTOR);
        assert_eq!(
            acr_uri("https://id.example.com", MULTI_FACTOR),
            "https://id.example.com/acr/mfa"
        );
        assert_eq!(
            acr_values_supported("https://id.example.com", false),
            ["https://id.example.com/acr/1fa"]
        );
        assert_eq!(
            acr_values_supported("https://id.example.com", true),
            ["https://id.example.com/acr/1fa", "https://id.example.com/acr/mfa"]
        );
    }
}
