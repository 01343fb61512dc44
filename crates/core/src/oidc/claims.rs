//! Which user claims a token or userinfo answer carries: those of the granted scopes (OIDC Core
//! §5.4), and those named one by one in the `claims` request parameter (§5.5). A claim is
//! released only if the client may have the scope that carries it, so the `claims` parameter
//! asks for no more than the client's scopes would give, and the consent page asks for those
//! scopes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::OAuthError;
use crate::store::users::User;
use crate::types::profile;

/// Longest `claims` parameter accepted, in bytes.
pub const MAX_PARAMETER: usize = 4096;

/// Each claim about the user that Gatehouse releases, with the scope that carries it (§5.4).
pub const BY_SCOPE: &[(&str, &str)] = &[
    ("name", "profile"),
    ("family_name", "profile"),
    ("given_name", "profile"),
    ("middle_name", "profile"),
    ("nickname", "profile"),
    ("preferred_username", "profile"),
    ("profile", "profile"),
    ("picture", "profile"),
    ("website", "profile"),
    ("gender", "profile"),
    ("birthdate", "profile"),
    ("zoneinfo", "profile"),
    ("locale", "profile"),
    ("updated_at", "profile"),
    ("email", "email"),
    ("email_verified", "email"),
    ("address", "address"),
    ("phone_number", "phone"),
    ("phone_number_verified", "phone"),
];

/// The scope that carries `claim`, if it is one Gatehouse releases.
pub fn scope_of(claim: &str) -> Option<&'static str> {
    BY_SCOPE.iter().find(|(c, _)| *c == claim).map(|(_, s)| *s)
}

/// The user claims a `claims` parameter names, per place (§5.5): only names in [`BY_SCOPE`],
/// each once. This is what an authorization request keeps and its grant stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo: Vec<String>,
}

impl Requested {
    pub fn is_empty(&self) -> bool {
        self.id_token.is_empty() && self.userinfo.is_empty()
    }

    /// The scopes the named claims need, for the consent page.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for s in self.id_token.iter().chain(&self.userinfo).filter_map(|c| scope_of(c)) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// The stored form (`grants.claims`); `None` for no claims.
    pub fn to_stored(&self) -> Option<String> {
        if self.is_empty() {
            None
        } else {
            serde_json::to_value(self).ok().map(|v| v.to_string())
        }
    }

    pub fn from_stored(stored: Option<&str>) -> Requested {
        stored
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// Only the claims whose scope `allowed` (a client's scope list) has: a client that lost a
    /// scope loses the claims it asked for by name with it, at its next token.
    pub fn allowed_by(&self, allowed: &str) -> Requested {
        let keep = |names: &Vec<String>| -> Vec<String> {
            names
                .iter()
                .filter(|c| scope_of(c).is_some_and(|s| crate::oidc::scope::has(allowed, s)))
                .cloned()
                .collect()
        };
        Requested {
            id_token: keep(&self.id_token),
            userinfo: keep(&self.userinfo),
        }
    }
}

/// What an authorization request's `claims` parameter asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClaimsRequest {
    pub names: Requested,
    /// The `acr` values asked for the ID token (§5.5.1.1), as `acr_values` would.
    pub acr: Vec<String>,
    /// A `sub` value asked for (§5.5.1): only that user may complete the request.
    pub sub: Option<String>,
}

/// Parses the `claims` parameter (§5.5): a JSON object whose `userinfo` and `id_token` members
/// map claim names to `null` or to an object of `essential`, `value` and `values`. Members and
/// claims Gatehouse does not know are ignored, as §5.5 says; a malformed request is an error.
pub fn parse_parameter(raw: &str) -> Result<ClaimsRequest, OAuthError> {
    if raw.len() > MAX_PARAMETER {
        return Err(OAuthError::invalid_request("claims is longer than 4096 bytes"));
    }
    let bad = |why: &str| OAuthError::invalid_request(format!("claims {why} (OpenID Connect Core §5.5)"));
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(raw) else {
        return Err(bad("must be a JSON object"));
    };
    let mut out = ClaimsRequest::default();
    for place in ["id_token", "userinfo"] {
        let members = match top.get(place) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad(&format!("member {place} must be an object"))),
        };
        for (name, ask) in members {
            let ask = match ask {
                Value::Null => None,
                Value::Object(a) => Some(a),
                _ => return Err(bad(&format!("{place}.{name} must be null or an object"))),
            };
            if let Some(a) = ask {
                check_ask(a).map_err(|why| bad(&format!("{place}.{name} {why}")))?;
            }
            let values = || -> Vec<String> {
                let Some(a) = ask else { return Vec::new() };
                let one = a.get("value").and_then(Value::as_str).map(str::to_owned);
                let many = a.get("values").and_then(Value::as_array).into_iter().flatten();
                one.into_iter()
                    .chain(many.filter_map(|v| v.as_str().map(str::to_owned)))
                    .collect()
            };
            match name.as_str() {
                "acr" if place == "id_token" => {
                    for v in values() {
                        if !out.acr.contains(&v) {
                            out.acr.push(v);
                        }
                    }
                }
                // Only `value` constrains who may answer (§5.5.1); a `values` list for `sub`
                // is not honoured, and a `value` that is not a string is an error rather than
                // no constraint at all.
                "sub" => match ask.and_then(|a| a.get("value")) {
                    None => {}
                    Some(Value::String(v)) => {
                        if out.sub.as_ref().is_some_and(|s| s != v) {
                            return Err(bad("names two different sub values"));
                        }
                        out.sub = Some(v.clone());
                    }
                    Some(_) => return Err(bad(&format!("{place}.sub value must be a string"))),
                },
                n if scope_of(n).is_some() => {
                    let list = if place == "id_token" {
                        &mut out.names.id_token
                    } else {
                        &mut out.names.userinfo
                    };
                    if !list.iter().any(|c| c == n) {
                        list.push(n.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// One claim's request object: `essential` a boolean, `values` an array (§5.5.1).
fn check_ask(a: &Map<String, Value>) -> Result<(), &'static str> {
    if a.get("essential").is_some_and(|e| !e.is_boolean()) {
        return Err("essential must be true or false");
    }
    if a.get("values").is_some_and(|v| !v.is_array()) {
        return Err("values must be an array");
    }
    Ok(())
}

/// The user's claims for a granted `scope` plus the ones named in `named`, each only if the
/// user has a value (§5.3.2: a claim without a value is left out, not sent as null).
pub fn release(user: &User, scope: &str, named: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for (claim, carrier) in BY_SCOPE {
        let wanted = crate::oidc::scope::has(scope, carrier) || named.iter().any(|n| n == claim);
        if !wanted {
            continue;
        }
        if let Some(v) = value(user, claim) {
            out.insert((*claim).to_owned(), v);
        }
    }
    out
}

fn value(user: &User, claim: &str) -> Option<Value> {
    match claim {
        "name" => user.name.as_ref().map(|n| json!(n)),
        "preferred_username" => Some(json!(user.username)),
        "updated_at" => Some(json!(user.updated_at)),
        // An account may have no address yet (created by a blueprint without one).
        "email" => (!user.email.is_empty()).then(|| json!(user.email)),
        "email_verified" => (!user.email.is_empty()).then(|| json!(user.email_verified)),
        other => user.claims.get(other),
    }
}

/// Every claim name [`release`] can return, for discovery's `claims_supported`.
pub fn supported() -> impl Iterator<Item = &'static str> {
    BY_SCOPE.iter().map(|(c, _)| *c)
}

const _: () = assert!(profile::NAMES.len() + 5 == BY_SCOPE.len());

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        crate::store::users::sample(
            json!({"given_name": "Ann", "phone_number": "+14155550100", "address": {"country": "FR"},
                       "locale": "fr-FR"}),
        )
    }

    fn keys(m: &Map<String, Value>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn every_profile_claim_has_its_scope_in_the_supported_list() {
        for name in profile::NAMES {
            assert!(scope_of(name).is_some(), "{name}");
        }
        for (_, s) in BY_SCOPE {
            assert!(crate::oidc::scope::SUPPORTED.contains(s));
        }
        assert_eq!(scope_of("sub"), None);
        assert_eq!(scope_of("phone_number"), Some("phone"));
    }

    #[test]
    fn oidc_core_5_4_scopes_release_their_claims_and_only_those_with_a_value() {
        let u = user();
        let released = release(&u, "openid profile email address phone", &[]);
        let mut all = keys(&released);
        all.sort_unstable();
        assert_eq!(
            all,
            vec![
                "address",
                "email",
                "email_verified",
                "given_name",
                "locale",
                "name",
                "phone_number",
                "phone_number_verified",
                "preferred_username",
                "updated_at"
            ]
        );
        let m = release(&u, "openid email", &[]);
        assert_eq!(m.get("email"), Some(&json!("ann@example.com")));
        assert_eq!(m.get("email_verified"), Some(&json!(true)));
        assert_eq!(m.len(), 2);
        let m = release(&u, "openid phone", &[]);
        assert_eq!(m.get("phone_number_verified"), Some(&json!(false)));
        assert_eq!(
            release(&u, "openid address", &[]).get("address"),
            Some(&json!({"country": "FR"}))
        );
        assert!(release(&u, "openid offline_access", &[]).is_empty());
        let m = release(&u, "openid profile", &[]);
        assert_eq!(m.get("updated_at"), Some(&json!(7)));
        assert_eq!(m.get("preferred_username"), Some(&json!("ann")));
        assert!(m.get("email").is_none());
        let mut no_email = u.clone();
        no_email.email.clear();
        assert!(release(&no_email, "openid email", &[]).is_empty());
    }

    #[test]
    fn named_claims_add_to_the_scopes() {
        let u = user();
        let m = release(&u, "openid", &["email".into(), "locale".into(), "nickname".into()]);
        assert_eq!(keys(&m), vec!["email", "locale"]);
    }

    #[test]
    fn oidc_core_5_5_the_claims_parameter() {
        let r = parse_parameter(
            r#"{"userinfo": {"email": {"essential": true}, "given_name": null, "shoe_size": null, "email": null},
                "id_token": {"auth_time": {"essential": true}, "phone_number": null,
                             "acr": {"values": ["urn:a", "urn:b"]}, "sub": {"value": "usr_1"}},
                "other": 1}"#,
        )
        .unwrap();
        assert_eq!(r.names.userinfo, vec!["email", "given_name"]);
        assert_eq!(r.names.id_token, vec!["phone_number"]);
        assert_eq!(r.acr, vec!["urn:a", "urn:b"]);
        assert_eq!(r.sub.as_deref(), Some("usr_1"));
        assert_eq!(r.names.scopes(), vec!["phone", "email", "profile"]);
        let single = parse_parameter(r#"{"id_token": {"acr": {"value": "urn:a", "essential": false}}}"#).unwrap();
        assert_eq!(single.acr, vec!["urn:a"]);
        assert!(single.names.is_empty());
        // `acr` is an ID token claim: in userinfo it asks for nothing.
        assert!(parse_parameter(r#"{"userinfo": {"acr": {"value": "urn:a"}}}"#)
            .unwrap()
            .acr
            .is_empty());
        assert_eq!(parse_parameter("{}").unwrap(), ClaimsRequest::default());
        // The same sub in both places is one constraint; `values` for sub constrains nothing.
        let both = parse_parameter(r#"{"id_token": {"sub": {"value": "a"}}, "userinfo": {"sub": {"value": "a"}}}"#);
        assert_eq!(both.unwrap().sub.as_deref(), Some("a"));
        assert_eq!(
            parse_parameter(r#"{"id_token": {"sub": {"values": ["a", "b"]}}}"#)
                .unwrap()
                .sub,
            None
        );
        assert_eq!(
            parse_parameter(r#"{"userinfo": null}"#).unwrap(),
            ClaimsRequest::default()
        );
    }

    #[test]
    fn a_malformed_claims_parameter_is_invalid_request() {
        for bad in [
            "",
            "[]",
            "not json",
            r#"{"userinfo": []}"#,
            r#"{"id_token": "email"}"#,
            r#"{"userinfo": {"email": true}}"#,
            r#"{"userinfo": {"email": {"essential": "yes"}}}"#,
            r#"{"userinfo": {"email": {"values": "a"}}}"#,
            r#"{"id_token": {"sub": {"value": "a"}}, "userinfo": {"sub": {"value": "b"}}}"#,
            r#"{"id_token": {"sub": {"value": 123}}}"#,
        ] {
            let e = parse_parameter(bad).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::InvalidRequest, "{bad}");
        }
        let long = format!(
            r#"{{"userinfo": {{"email": null}}, "x": "{}"}}"#,
            "a".repeat(MAX_PARAMETER)
        );
        assert!(parse_parameter(&long).unwrap_err().description.contains("4096"));
        let just = format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_PARAMETER - 9));
        assert_eq!(just.len(), MAX_PARAMETER);
        assert!(parse_parameter(&just).is_ok());
    }

    #[test]
    fn named_claims_are_kept_only_for_scopes_the_client_may_have() {
        let r = Requested {
            id_token: vec!["email".into(), "name".into()],
            userinfo: vec!["phone_number".into()],
        };
        let kept = r.allowed_by("openid email");
        assert_eq!(kept.id_token, vec!["email"]);
        assert!(kept.userinfo.is_empty());
        assert_eq!(Requested::from_stored(r.to_stored().as_deref()), r);
        assert_eq!(Requested::default().to_stored(), None);
        assert_eq!(Requested::from_stored(Some("garbage")), Requested::default());
        assert_eq!(Requested::from_stored(None), Requested::default());
    }
}
