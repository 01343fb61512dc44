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

/// Bound on a registered redirect URI (stored with the client, sent in `Location`).
pub const MAX_LEN: usize = 2048;

/// Whether a URI may be registered as a redirect URI; `Err` says why not. Absolute, no fragment
/// (RFC 6749 §3.1.2); https, or http only on loopback (RFC 8252 §7.3; `localhost` is allowed for
/// development), or a private-use scheme of a native app (RFC 8252 §7.1, reverse-DNS with a
/// dot). The URI is compared byte for byte later, but browsers parse it first, so anything two
/// parsers could read as different hosts is refused here: userinfo (`http://localhost:@evil/`
/// is plain http to evil), backslashes (read as `/` by browsers), percent-escapes or zone ids in
/// the host, whitespace and characters outside ASCII (a URI is ASCII, RFC 3986 §2; it also goes
/// into a `Location` header as it is).
pub fn check_registrable(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_LEN {
        return Err("is longer than 2048 bytes");
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be ASCII without spaces or control characters (percent-encode the rest)");
    }
    if uri.contains('#') {
        return Err("must not have a fragment (RFC 6749 §3.1.2)");
    }
    if uri.contains('\\') {
        return Err("must not contain a backslash");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("must be an absolute URI");
    };
    match scheme {
        "https" => {
            authority(rest)?;
            Ok(())
        }
        "http" => match authority(rest)? {
            "localhost" | "127.0.0.1" | "[::1]" => Ok(()),
            _ => Err("http is allowed only on loopback (127.0.0.1, [::1], localhost); use https"),
        },
        s if s.contains('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) => {
            if rest.starts_with("//") {
                authority(rest)?;
            }
            Ok(())
        }
        _ => Err("must be https, http on loopback, or a private-use scheme like com.example.app:"),
    }
}

/// The host of `//host[:port]<path>`, checked: a DNS name or an IP literal, a port of 1-5
/// digits, no userinfo; `Err` for anything a URL parser could read another way.
fn authority(rest: &str) -> Result<&str, &'static str> {
    let after = rest.strip_prefix("//").ok_or("must have a host (scheme://host/...)")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let authority = &after[..end];
    if authority.contains('@') {
        return Err("must not carry userinfo (user@host): a browser would go to the host after the @");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (inside, tail) = v6.split_once(']').ok_or("has an unclosed IPv6 literal")?;
            if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return Err("has an IPv6 literal with something other than hex digits (no zone ids)");
            }
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or("has something after the IPv6 literal")?),
            };
            (&authority[..inside.len() + 2], port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if let Some(p) = port {
        let number = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !number || p.parse::<u32>().map_or(true, |n| n > 65535) {
            return Err("has a port that is not a number from 0 to 65535");
        }
    }
    let dns_name = !host.starts_with('[')
        && !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host.starts_with('[') && !dns_name {
        return Err("must have a host name of letters, digits, '-' and '.' (no percent-escapes)");
    }
    Ok(host)
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
        for ok in [
            CB,
            "http://127.0.0.1:8788/callback",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
            "http://localhost",
            "https://rp/cb?x=1",
            "https://[2001:db8::1]:8443/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
        ] {
            assert_eq!(check_registrable(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "/relative/cb",
            "https://app.example.com/c b",
            "https:///cb",
            "https://app.example.com:/cb",
            "https://app.example.com:65536/cb",
            "https://app..example.com/cb",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc6749_3_1_2_userinfo_and_parser_confusions_cannot_register_plain_http_to_any_host() {
        // `http://localhost:@evil.example/cb` is plain http to evil.example: the part before `@`
        // is userinfo. Every other way two URL parsers read different hosts is refused too.
        for bad in [
            "http://localhost:@evil.example/cb",
            "http://localhost@evil.example/cb",
            "http://127.0.0.1:80@evil.example/cb",
            "https://app.example.com@evil.example/cb",
            "https://user:pass@app.example.com/cb",
            "com.example.app://user@evil.example/cb",
            "http://localhost\\@evil.example/cb",
            "https://evil.example\\.app.example.com/cb",
            "https://evil.example%2Fapp.example.com/cb",
            "https://evil%2eexample/cb",
            "http://[::1%25eth0]/cb",
            "http://[fe80::1%eth0]:80/cb",
            "http://localhost.evil.example/cb",
            "http://localhost:80x/cb",
            "https://app.example.com/cb\t",
            "https://app.example.com\n.evil.example/cb",
            "https://app.example.com/\u{0}cb",
            "https://app.example.com/caf\u{e9}",
            "https://xn--caf-dma.example/\u{65e5}",
            "https://app.example.com/cb#@evil.example",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registrable_hosts_ports_and_lengths_at_their_edges() {
        let padded = |len: usize| {
            let base = "https://a.example/";
            format!("{base}{}", "p".repeat(len - base.len()))
        };
        assert_eq!(check_registrable(&padded(MAX_LEN)), Ok(()));
        assert!(check_registrable(&padded(MAX_LEN + 1)).is_err());
        for ok in [
            "https://[::1]:8443/cb",
            "https://[::ffff:192.0.2.1]/cb",
            "https://a.example:0/cb",
            "https://a.example:65535/cb",
            "https://a.example:00080/cb",
            "https://a.example?x=1",
            "http://127.0.0.1?x=1",
            "http://[::1]",
            "https://a-b.example/cb",
            "com.example.app://host/cb",
            "com.example-app+x:/cb",
        ] {
            assert_eq!(check_registrable(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://[]/cb",
            "https://[::1/cb",
            "https://[::1]x/cb",
            "https://[::1]:/cb",
            "https://[g::1]/cb",
            "https://a.example:123456/cb",
            "https://a.example:-1/cb",
            "https://a.example:8a/cb",
            "https://a.example:000080/cb",
            "https://a.example:+80/cb",
            "https://a.example./cb",
            "https://.a.example/cb",
            "https://",
            "https://?x",
            "https:/a.example/cb",
            "http://127.0.0.2/cb",
            "http://[::2]/cb",
            "http://localhost.:80/cb",
            "com.example.app:///cb",
            "com.exa_mple:/cb",
            "comexample:/cb",
            "https",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad}");
        }
    }
}
