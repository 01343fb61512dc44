//! An email address as Gatehouse accepts one, wherever it comes from (the admin API, the
//! account page). An address may be internationalised (RFC 6531: `josé@例え.jp`); the gateway
//! percent-encodes it in `X-Gatehouse-Email`, and the identity JWT carries it as it is.

/// The longest address (RFC 5321 §4.5.3.1.3 path limit, less the angle brackets).
pub const MAX_LEN: usize = 254;

/// Whether `e` is one plain address (`local@domain`): one `@`, a local part, a domain with a dot;
/// no whitespace or control characters (a header injection), and none of the characters that
/// make a mail header more than one bare address (`Name <a@b>`, lists, comments, quoting), which
/// a mail API or relay would parse and could deliver elsewhere; at most [`MAX_LEN`] bytes.
pub fn is_valid(e: &str) -> bool {
    const SPECIAL: &[char] = &[',', ';', '<', '>', '"', '(', ')', '[', ']', '\\', ':'];
    e.len() <= MAX_LEN
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && !d.contains('@') && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || SPECIAL.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn addresses_are_bounded_and_single_line() {
        assert!(is_valid("ann@example.com"));
        assert!(is_valid("josé@例え.jp"));
        assert!(!is_valid("ann@example"));
        assert!(!is_valid("@example.com"));
        assert!(!is_valid("ann@.example.com"));
        assert!(!is_valid("ann@example.com\r\nBcc: x@y.z"));
        assert!(!is_valid("a nn@example.com"));
        assert!(!is_valid(&format!("{}@example.com", "a".repeat(250))));
        assert!(is_valid(&format!("{}@example.com", "a".repeat(242))));
        // One bare address: nothing a mail header would read as a name, a list or a route.
        for bad in [
            "victim@corp.com<me@evil.com>",
            "a@x.com,b@y.com",
            "a@x.com;b@y.com",
            "\"a\"@x.com",
            "a(comment)@x.com",
            "a@[127.0.0.1]",
            "a@b@x.com",
            "a\\b@x.com",
            "a@x.com.",
            "a:b@x.com",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid("first.last+tag@sub.example.co.uk"));
    }
}
