//! Scopes Gatehouse knows (OIDC Core §5.4, §11) and how a request's scope is narrowed.

use crate::error::{ErrorCode, OAuthError};

pub const SUPPORTED: &[&str] = &["openid", "profile", "email", "address", "phone", "offline_access"];

/// The requested scopes that Gatehouse knows, deduplicated in request order; each must be allowed
/// for the client, or the request is an `invalid_scope` error (RFC 6749 §3.3). A scope Gatehouse
/// does not know is left out (OIDC Core §3.1.2.1: "Scope values used that are not understood by
/// an implementation SHOULD be ignored"), and the token response's `scope` says what was granted.
pub fn parse(requested: &str, client_allowed: &str) -> Result<Vec<String>, OAuthError> {
    let allowed: Vec<&str> = client_allowed.split_ascii_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !SUPPORTED.contains(&s) {
            continue;
        }
        if !allowed.contains(&s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope {s} is not allowed for this client"),
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// The scope tokens of a stored or requested scope string.
pub fn split(scope: &str) -> impl Iterator<Item = &str> {
    scope.split_ascii_whitespace()
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub fn has(scope: &str, name: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_3_3_a_known_scope_the_client_may_not_have_is_invalid_scope() {
        assert_eq!(
            parse("openid email", "openid profile").unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            parse("openid address", "openid profile email").unwrap_err().code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn oidc_core_3_1_2_1_unknown_scopes_are_ignored() {
        assert_eq!(
            parse("openid admin profile foo", "openid profile admin").unwrap(),
            vec!["openid", "profile"]
        );
        assert_eq!(
            parse(
                "openid profile email address phone",
                "openid profile email address phone"
            )
            .unwrap(),
            vec!["openid", "profile", "email", "address", "phone"]
        );
        assert_eq!(parse("foo bar", "openid").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn duplicates_collapse_and_order_is_kept() {
        assert_eq!(
            parse("profile openid profile", "openid profile").unwrap(),
            vec!["profile", "openid"]
        );
    }
}
