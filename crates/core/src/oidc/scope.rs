//! Scopes Gatehouse knows (OIDC Core §5.4, §11) and how a request's scope is narrowed.

use crate::error::{ErrorCode, OAuthError};

pub const SUPPORTED: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The requested scopes, each known and allowed for the client, deduplicated in request order.
/// An unknown or disallowed scope is an `invalid_scope` error (RFC 6749 §3.3).
pub fn parse(requested: &str, client_allowed: &str) -> Result<Vec<String>, OAuthError> {
    let allowed: Vec<&str> = client_allowed.split_ascii_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !SUPPORTED.contains(&s) || !allowed.contains(&s) {
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
    fn rfc6749_3_3_unknown_or_unallowed_scope_is_invalid_scope() {
        assert_eq!(
            parse("openid admin", "openid profile").unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            parse("openid email", "openid profile").unwrap_err().code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn duplicates_collapse_and_order_is_kept() {
        assert_eq!(
            parse("profile openid profile", "openid profile").unwrap(),
            vec!["profile", "openid"]
        );
    }
}
