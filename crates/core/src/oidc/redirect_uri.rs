//! Redirect URI matching: exact, byte for byte, with no normalisation (RFC 6749 §3.1.2.3,
//! OAuth 2.0 Security BCP §4.1.3). The one exception is RFC 8252 §7.3: a native app's loopback
//! redirect URI (`http://127.0.0.1` or `http://[::1]`) may use any port.

/// Whether `requested` is allowed by the client's `registered` URIs.
pub fn matches(registered: &[String], requested: &str) -> bool {
    registered
        .iter()
        .any(|r| r == requested || loopback_matches(r, requested))
}

/// Splits `http://<loopback host>[:port]<rest>` into (host, rest); `None` for anything else.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let (host, rest) = if let Some(v6) = after.strip_prefix("[::1]") {
        ("[::1]", v6)
    } else if let Some(v4) = after.strip_prefix("127.0.0.1") {
        ("127.0.0.1", v4)
    } else {
        return None;
    };
    let rest = match rest.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return None;
            }
            &port_and_rest[digits..]
        }
        None => rest,
    };
    // Only a path, query or nothing may follow the port; `127.0.0.1.evil.com` or
    // `127.0.0.1@evil.com` are other hosts.
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    Some((host, rest))
}

fn loopback_matches(registered: &str, requested: &str) -> bool {
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some((h1, r1)), Some((h2, r2))) => h1 == h2 && r1 == r2,
        _ => false,
    }
}

/// Whether a URI may be registered as a redirect URI: absolute, no fragment (RFC 6749 §3.1.2),
/// https, or http only on loopback (RFC 8252 §7.3; `localhost` is allowed for development), or
/// a private-use scheme of a native app (RFC 8252 §7.1, reverse-DNS with a dot).
pub fn is_registrable(uri: &str) -> bool {
    if uri.contains('#') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    match scheme {
        "https" => rest.starts_with("//") && rest.len() > 2,
        "http" => {
            loopback_parts(uri).is_some()
                || rest
                    .strip_prefix("//localhost")
                    .is_some_and(|r| r.is_empty() || r.starts_with([':', '/', '?']))
        }
        s => s.contains('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| s.to_string()).collect()
    }

    const CB: &str = "https://app.example.com/callback";

    #[test]
    fn exact_match_is_accepted() {
        assert!(matches(&reg(&[CB]), CB));
    }

    #[test]
    fn rfc6749_3_1_2_3_path_traversal_is_refused() {
        let r = reg(&[CB]);
        assert!(!matches(&r, "https://app.example.com/callback/../admin"));
        assert!(!matches(&r, "https://app.example.com/callback/%2E%2E/admin"));
        assert!(!matches(&r, "https://app.example.com/callback/%2e%2e%2fadmin"));
        assert!(
            !matches(&r, "https://app.example.com/callback%252F..%252Fadmin"),
            "double encoding"
        );
    }

    #[test]
    fn extra_query_trailing_slash_and_case_are_different_uris() {
        let r = reg(&[CB]);
        assert!(!matches(
            &r,
            "https://app.example.com/callback?next=https://evil.example"
        ));
        assert!(!matches(&r, "https://app.example.com/callback/"));
        assert!(!matches(&r, "https://APP.example.com/callback"));
        assert!(!matches(&r, "https://app.example.com/Callback"));
        assert!(!matches(&r, "HTTPS://app.example.com/callback"));
        assert!(
            !matches(&r, "https://app.example.com:443/callback"),
            "no port normalisation"
        );
    }

    #[test]
    fn userinfo_and_host_suffix_tricks_are_refused() {
        let r = reg(&[CB]);
        assert!(!matches(&r, "https://app.example.com@evil.example/callback"));
        assert!(!matches(&r, "https://app.example.com.evil.example/callback"));
        assert!(!matches(&r, "https://evil.example/https://app.example.com/callback"));
    }

    #[test]
    fn rfc8252_7_3_loopback_may_vary_the_port_only() {
        let r = reg(&["http://127.0.0.1/cb", "http://[::1]:8080/cb"]);
        assert!(matches(&r, "http://127.0.0.1:51004/cb"));
        assert!(matches(&r, "http://127.0.0.1/cb"));
        assert!(matches(&r, "http://[::1]:9/cb"));
        assert!(!matches(&r, "http://127.0.0.1:51004/cb2"));
        assert!(!matches(&r, "http://127.0.0.1:51004/cb/"));
        assert!(!matches(&r, "http://127.0.0.1.evil.example/cb"));
        assert!(!matches(&r, "http://127.0.0.1@evil.example/cb"));
        assert!(!matches(&r, "http://127.0.0.1:80@evil.example/cb"));
        assert!(!matches(&r, "https://127.0.0.1:443/cb"), "scheme must match");
        assert!(!matches(&r, "http://[::1]:9/cb?x=1"));
        // A port variance never crosses between IPv4 and IPv6 loopback.
        assert!(!matches(&reg(&["http://127.0.0.1/cb"]), "http://[::1]/cb"));
    }

    #[test]
    fn localhost_is_not_given_port_variance() {
        assert!(!matches(&reg(&["http://localhost/cb"]), "http://localhost:1234/cb"));
    }

    #[test]
    fn registration_refuses_fragments_plain_http_and_garbage() {
        assert!(is_registrable(CB));
        assert!(is_registrable("http://127.0.0.1:8788/callback"));
        assert!(is_registrable("http://localhost:3000/cb"));
        assert!(is_registrable("com.example.app:/oauth2redirect"));
        assert!(!is_registrable("https://app.example.com/cb#frag"));
        assert!(!is_registrable("http://app.example.com/cb"));
        assert!(!is_registrable("javascript:alert(1)"));
        assert!(!is_registrable("/relative/cb"));
        assert!(!is_registrable("https://app.example.com/c b"));
    }
}
