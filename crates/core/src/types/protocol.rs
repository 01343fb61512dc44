//! OAuth 2.0 and OpenID Connect values as types: parsed once where they come in (a request, the
//! admin API, a stored row), so the code past that point matches on variants, not on strings.

use serde::{Deserialize, Serialize};

/// An OAuth 2.0 grant type Gatehouse implements (RFC 6749 §4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(v: &str) -> Option<GrantType> {
        Self::ALL.into_iter().find(|g| g.as_str() == v)
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: no secret (RFC 6749 §2.1).
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(v: &str) -> Option<AuthMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == v)
    }
}

/// One `prompt` value of an authorization request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    None,
    Login,
    Consent,
    SelectAccount,
}

impl Prompt {
    pub const ALL: [Prompt; 4] = [Prompt::None, Prompt::Login, Prompt::Consent, Prompt::SelectAccount];

    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::None => "none",
            Prompt::Login => "login",
            Prompt::Consent => "consent",
            Prompt::SelectAccount => "select_account",
        }
    }

    pub fn parse(v: &str) -> Option<Prompt> {
        Self::ALL.into_iter().find(|p| p.as_str() == v)
    }

    /// The space-separated `prompt` parameter: each value known and given once, and `none`
    /// alone. The error is the `invalid_request` description.
    pub fn parse_list(v: &str) -> Result<Vec<Prompt>, String> {
        let mut out: Vec<Prompt> = Vec::new();
        for word in v.split(' ').filter(|s| !s.is_empty()) {
            let p = Prompt::parse(word).ok_or_else(|| format!("unsupported prompt value {word}"))?;
            // A repeated value means nothing more, and would let the stored request grow.
            if out.contains(&p) {
                return Err(format!("prompt value {word} is repeated"));
            }
            out.push(p);
        }
        if out.len() > 1 && out.contains(&Prompt::None) {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(out)
    }
}

/// What a stored token is (`tokens.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_reads_back_as_itself_and_serializes_under_its_protocol_name() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for p in Prompt::ALL {
            assert_eq!(Prompt::parse(p.as_str()), Some(p));
        }
        for k in [TokenKind::Access, TokenKind::Refresh] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(serde_json::from_value::<TokenKind>(k.as_str().into()).unwrap(), k);
        }
        assert_eq!(GrantType::parse("password"), None);
        assert_eq!(GrantType::parse("Authorization_Code"), None);
        assert_eq!(AuthMethod::parse("private_key_jwt"), None);
        assert_eq!(Prompt::parse("create"), None);
    }

    #[test]
    fn a_prompt_list_is_known_values_each_once_with_none_alone() {
        assert_eq!(Prompt::parse_list(""), Ok(vec![]));
        assert_eq!(
            Prompt::parse_list(" login  consent "),
            Ok(vec![Prompt::Login, Prompt::Consent])
        );
        assert_eq!(Prompt::parse_list("none"), Ok(vec![Prompt::None]));
        assert_eq!(
            Prompt::parse_list("login bogus"),
            Err("unsupported prompt value bogus".into())
        );
        assert_eq!(
            Prompt::parse_list("login login"),
            Err("prompt value login is repeated".into())
        );
        assert_eq!(
            Prompt::parse_list("none login"),
            Err("prompt=none cannot be combined with other values".into())
        );
        assert_eq!(
            Prompt::parse_list("consent none"),
            Err("prompt=none cannot be combined with other values".into())
        );
    }
}
