//! Where a gateway login may send the browser back to: only a URL of the same app (its exact
//! host, within its path prefix). Everything else is an open redirect (CWE-601).

use super::headers::{header_value, Unsafe};

/// Validates an absolute `return_to` for an app served at `host` under `prefix`; returns it as
/// it will go into the `Location` header: unchanged, except that characters outside ASCII are
/// percent-encoded (a header cannot carry them; the browser reads the encoded URL the same).
pub fn validate(return_to: &str, host: &str, prefix: &str, https_only: bool) -> Option<String> {
    if return_to.len() > 4096
        || return_to
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
    {
        return None;
    }
    let rest = if let Some(r) = return_to.strip_prefix("https://") {
        r
    } else if let Some(r) = return_to.strip_prefix("http://") {
        if https_only {
            return None;
        }
        r
    } else {
        return None;
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // No userinfo (`app@evil`), exact host match (no suffix tricks), path inside the app.
    if authority.contains('@') || !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return None;
    }
    let path_only = path.split(['?', '#']).next().unwrap_or("");
    // Dot segments, even encoded, could climb out of the prefix at the origin.
    let lowered = path_only.to_ascii_lowercase();
    if lowered.contains("/../") || lowered.ends_with("/..") || lowered.contains("%2e") || lowered.contains("%2f") {
        return None;
    }
    let inside = path_only.starts_with(prefix) || format!("{path_only}/") == prefix;
    if !inside {
        return None;
    }
    header_value(return_to, Unsafe::Url)
        .map(|v| v.into_owned())
        .filter(|v| v.len() <= 4096)
}

#[cfg(test)]
mod tests {
    use super::validate;

    const HOST: &str = "app.example.com";

    #[test]
    fn same_app_urls_are_accepted() {
        assert!(validate("https://app.example.com/app/page?x=1", HOST, "/app/", true).is_some());
        assert!(validate("https://app.example.com/app", HOST, "/app/", true).is_some());
        assert!(validate("https://APP.example.com/", HOST, "/", true).is_some());
    }

    #[test]
    fn cwe_601_open_redirect_vectors_are_refused() {
        for bad in [
            "https://evil.example/app/",
            "https://app.example.com.evil.example/app/",
            "https://app.example.com@evil.example/app/",
            "//evil.example/app/",
            "/app/relative",
            "https://app.example.com//evil.example/",
            "https://app.example.com/other/",
            "https://app.example.com/app/../admin",
            "https://app.example.com/app/%2e%2e/admin",
            "https://app.example.com/app/%2E%2E%2Fadmin",
            "https://app.example.com\\@evil.example/app/",
            "javascript:alert(1)",
            "https://app.example.com/app/\r\nSet-Cookie:x",
            "http://app.example.com/app/",
        ] {
            assert!(validate(bad, HOST, "/app/", true).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_return_url_outside_ascii_is_percent_encoded_for_the_location_header() {
        // Sent as it was, the browser got raw UTF-8 in `Location` (read as Latin-1, or refused
        // by `Headers.append` where the Fetch standard is followed to the letter).
        assert_eq!(
            validate("https://app.example.com/app/日本?q=é", HOST, "/app/", true).as_deref(),
            Some("https://app.example.com/app/%E6%97%A5%E6%9C%AC?q=%C3%A9")
        );
        assert!(validate("https://app.example.com/app/%41", HOST, "/app/", true).is_some_and(|v| v.ends_with("%41")));
    }

    #[test]
    fn plain_http_only_when_allowed() {
        assert!(validate("http://app.example.com/app/", HOST, "/app/", false).is_some());
    }
}
