//! The grammar of the Content-Security-Policy an operator configures for an app (CSP Level 3,
//! §2.2 "Policies" and §2.3 "Directives"). Gatehouse sends it on every response of the app, so a
//! mistake is refused when the app is saved, with a message saying which part is wrong: a `,`
//! would start a second policy, a stray `;` another directive, an unknown name or a malformed
//! source is silently ignored by browsers (and the operator believes a rule holds that does not).

/// How a directive's value is read.
#[derive(Clone, Copy)]
enum Value {
    /// A source list (`'self' https://cdn.example 'nonce-…'`) or `'none'` (§2.3.1).
    Sources,
    /// `frame-ancestors`: host and scheme sources, `'self'`, or `'none'` (§6.4.2).
    Ancestors,
    /// `sandbox`: nothing, or allow-* tokens (§6.3.2).
    Sandbox,
    /// No value (`upgrade-insecure-requests`).
    Empty,
    /// `report-to`: one endpoint name (§6.5.2).
    ReportTo,
    /// `require-trusted-types-for 'script'` (Trusted Types §4.2).
    TrustedTypesFor,
    /// `trusted-types`: policy names and keywords (Trusted Types §4.1).
    TrustedTypes,
    /// `webrtc 'allow'` or `'block'` (§6.5.4).
    Webrtc,
}

const DIRECTIVES: &[(&str, Value)] = &[
    ("default-src", Value::Sources),
    ("child-src", Value::Sources),
    ("connect-src", Value::Sources),
    ("fenced-frame-src", Value::Sources),
    ("font-src", Value::Sources),
    ("frame-src", Value::Sources),
    ("img-src", Value::Sources),
    ("manifest-src", Value::Sources),
    ("media-src", Value::Sources),
    ("object-src", Value::Sources),
    ("script-src", Value::Sources),
    ("script-src-elem", Value::Sources),
    ("script-src-attr", Value::Sources),
    ("style-src", Value::Sources),
    ("style-src-elem", Value::Sources),
    ("style-src-attr", Value::Sources),
    ("worker-src", Value::Sources),
    ("base-uri", Value::Sources),
    ("form-action", Value::Sources),
    ("frame-ancestors", Value::Ancestors),
    ("sandbox", Value::Sandbox),
    ("upgrade-insecure-requests", Value::Empty),
    ("report-to", Value::ReportTo),
    ("require-trusted-types-for", Value::TrustedTypesFor),
    ("trusted-types", Value::TrustedTypes),
    ("webrtc", Value::Webrtc),
];

/// Keyword sources (§2.3.1 `keyword-source`), compared without case as browsers do.
const KEYWORDS: &[&str] = &[
    "'self'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'strict-dynamic'",
    "'unsafe-hashes'",
    "'report-sample'",
    "'unsafe-allow-redirects'",
    "'wasm-unsafe-eval'",
    "'trusted-types-eval'",
    "'inline-speculation-rules'",
    "'report-sha256'",
    "'report-sha384'",
    "'report-sha512'",
];

const SANDBOX_TOKENS: &[&str] = &[
    "allow-downloads",
    "allow-forms",
    "allow-modals",
    "allow-orientation-lock",
    "allow-pointer-lock",
    "allow-popups",
    "allow-popups-to-escape-sandbox",
    "allow-presentation",
    "allow-same-origin",
    "allow-scripts",
    "allow-storage-access-by-user-activation",
    "allow-top-navigation",
    "allow-top-navigation-by-user-activation",
    "allow-top-navigation-to-custom-protocols",
];

/// Checks a policy: `;`-separated directives, each a known name and a value of its grammar,
/// none twice, no `,`. Empty is fine (no policy is added).
pub fn validate_policy(policy: &str) -> Result<(), String> {
    if policy.contains(',') {
        return Err("',' would start a second policy; separate directives with ';'".into());
    }
    let mut seen: Vec<String> = Vec::new();
    for directive in policy.split(';') {
        let mut tokens = directive.split([' ', '\t']).filter(|t| !t.is_empty());
        let Some(name) = tokens.next() else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let values: Vec<&str> = tokens.collect();
        if name == "report-uri" {
            return Err("put the report URL in csp_report_uri, not in the policy".into());
        }
        let Some((_, kind)) = DIRECTIVES.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "unknown directive {name:?} (CSP Level 3 names only, e.g. default-src, script-src, img-src)"
            ));
        };
        if seen.contains(&name) {
            return Err(format!("{name} appears twice; browsers ignore the second one"));
        }
        check_value(&name, *kind, &values)?;
        seen.push(name);
    }
    Ok(())
}

fn check_value(name: &str, kind: Value, values: &[&str]) -> Result<(), String> {
    let is = |v: &str, keyword: &str| v.eq_ignore_ascii_case(keyword);
    match kind {
        Value::Sources | Value::Ancestors => {
            if values.is_empty() {
                return Err(format!("{name} has no sources; write 'none' to allow nothing"));
            }
            if values.iter().any(|v| is(v, "'none'")) {
                return if values.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{name}: 'none' cannot be combined with other sources"))
                };
            }
            for v in values {
                let ok = match kind {
                    Value::Ancestors => is(v, "'self'") || is_scheme_source(v) || is_host_source(v),
                    _ => is_source(v),
                };
                if !ok {
                    return Err(format!(
                        "{name}: {v:?} is not a source expression (a keyword in quotes like 'self', \
                         'nonce-…' or 'sha256-…', a scheme like https:, or a host like https://cdn.example.com)"
                    ));
                }
            }
            Ok(())
        }
        Value::Sandbox => match values
            .iter()
            .find(|v| !SANDBOX_TOKENS.contains(&v.to_ascii_lowercase().as_str()))
        {
            Some(v) => Err(format!("sandbox: {v:?} is not one of {SANDBOX_TOKENS:?}")),
            None => Ok(()),
        },
        Value::Empty => match values {
            [] => Ok(()),
            _ => Err(format!("{name} takes no value")),
        },
        Value::ReportTo => match values {
            [endpoint] if endpoint.bytes().all(is_tchar) => Ok(()),
            _ => Err("report-to takes one endpoint name".into()),
        },
        Value::TrustedTypesFor => match values {
            [v] if is(v, "'script'") => Ok(()),
            _ => Err("require-trusted-types-for takes 'script'".into()),
        },
        Value::TrustedTypes => {
            let ok = values.iter().all(|v| {
                is(v, "'none'")
                    || is(v, "'allow-duplicates'")
                    || *v == "*"
                    || v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-#=_/@.%".contains(&b))
            });
            if ok {
                Ok(())
            } else {
                Err("trusted-types takes policy names, *, 'none' or 'allow-duplicates'".into())
            }
        }
        Value::Webrtc => match values {
            [v] if is(v, "'allow'") || is(v, "'block'") => Ok(()),
            _ => Err("webrtc takes 'allow' or 'block'".into()),
        },
    }
}

/// One source expression of a source list (§2.3.1).
fn is_source(v: &str) -> bool {
    if KEYWORDS.iter().any(|k| v.eq_ignore_ascii_case(k)) {
        return true;
    }
    if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        let (prefix, value) = match inner.split_once('-') {
            Some(p) => p,
            None => return false,
        };
        let prefix = prefix.to_ascii_lowercase();
        return ["nonce", "sha256", "sha384", "sha512"].contains(&prefix.as_str()) && is_base64_value(value);
    }
    is_scheme_source(v) || is_host_source(v)
}

/// `base64-value = 1*( ALPHA / DIGIT / "+" / "/" / "-" / "_" ) *2( "=" )`.
fn is_base64_value(v: &str) -> bool {
    let body = v.trim_end_matches('=');
    v.len() - body.len() <= 2
        && !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(&b))
}

/// `scheme-part = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// `scheme-source = scheme-part ":"`.
fn is_scheme_source(v: &str) -> bool {
    v.strip_suffix(':').is_some_and(is_scheme)
}

/// `host-source = [ scheme-part "://" ] host-part [ ":" port-part ] [ path-part ]`.
fn is_host_source(v: &str) -> bool {
    let rest = match v.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        Some(_) => return false,
        None => v,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| p == "*" || (p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()));
    is_host_part(host) && port_ok && is_path_part(path)
}

/// `host-part = "*" / [ "*." ] 1*host-char *( "." 1*host-char ) [ "." ]`.
fn is_host_part(host: &str) -> bool {
    if host == "*" {
        return true;
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `path-part = path-absolute` without `;` or `,` (RFC 3986 §3.3; `%` only as an escape).
fn is_path_part(path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return false;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+=:@/".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// `tchar` (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `csp_report_uri`: one path on the app's host (`/.gatehouse/csp-report`) or one https URL,
/// written as a `report-uri` directive, so nothing that would end it or add another (`;`, `,`,
/// spaces), no userinfo and no fragment.
pub fn validate_report_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Ok(());
    }
    let explain =
        || "must be a path like /.gatehouse/csp-report or an https URL, without spaces, ';', ',' or '#'".to_owned();
    let uri_chars = uri
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%:/?[]@!$&'()*+=".contains(&b));
    if !uri_chars {
        return Err(explain());
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err(explain());
        }
        return Ok(());
    }
    if uri.starts_with('/') && !uri.starts_with("//") {
        return Ok(());
    }
    Err(explain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_policies_pass() {
        for ok in [
            "",
            "default-src 'self'",
            "default-src 'self'; img-src 'self' data:; object-src 'none'",
            "default-src 'none'; script-src 'self' 'nonce-abc+/=' 'sha256-AbC123==' 'strict-dynamic'; \
             style-src 'self' https://fonts.googleapis.com; font-src https://*.gstatic.com:443/fonts/; \
             connect-src 'self' wss://ws.example.com:*; frame-ancestors 'self' https://parent.example; \
             base-uri 'none'; form-action 'self'; upgrade-insecure-requests; sandbox allow-scripts allow-forms; \
             report-to csp-endpoint; require-trusted-types-for 'script'; trusted-types app-policy 'allow-duplicates'",
            "webrtc 'block'; trusted-types 'none'",
            "webrtc 'allow'; trusted-types *",
            "DEFAULT-SRC 'SELF';",
            "script-src *",
        ] {
            assert_eq!(validate_policy(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_comma_semicolon_or_malformed_source_cannot_smuggle_a_second_policy_or_directive() {
        for bad in [
            "default-src 'self', script-src *",
            "default-src 'self' https://a.example,https://b.example",
            "script-src 'self' 'unsafe-inlin'",
            "script-src 'self' \"unsafe-inline\"",
            "script-src 'nonce-'",
            "script-src 'sha1-abc'",
            "script-src https://a.example/x;y",
            "scirpt-src 'self'",
            "default-src 'self'; default-src *",
            "script-src 'none' https://a.example",
            "script-src",
            "frame-ancestors 'unsafe-inline'",
            "upgrade-insecure-requests yes",
            "sandbox allow-everything",
            "report-uri /x",
            "img-src https://exa_mple.com",
            "img-src https://a.example:99999",
            "img-src https://a..example",
            "report-to csp/endpoint",
            "report-to a b",
            "require-trusted-types-for 'style'",
            "require-trusted-types-for 'script' 'script'",
            "trusted-types a!b",
            "webrtc 'maybe'",
            "webrtc",
        ] {
            assert!(validate_policy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_source_grammar_pieces_accept_what_csp3_allows_and_nothing_else() {
        for (v, ok) in [
            ("https", true),
            ("web+app", true),
            ("a1.-+", true),
            ("1http", false),
            ("", false),
            ("ht_tp", false),
        ] {
            assert_eq!(is_scheme(v), ok, "scheme {v:?}");
        }
        for (v, ok) in [
            ("https:", true),
            ("data:", true),
            ("https", false),
            ("1a:", false),
            (":", false),
        ] {
            assert_eq!(is_scheme_source(v), ok, "scheme-source {v:?}");
        }
        for (v, ok) in [
            ("https://cdn.example.com", true),
            ("cdn.example.com", true),
            ("https://cdn.example.com:443/path/", true),
            ("*.example.com", true),
            ("https://*:*", true),
            ("*", true),
            ("https://a.example.", true),
            ("ht_tp://a.example", false),
            ("https://a.example:99999", false),
            ("https://a.example:8a", false),
            ("https://a.example:", false),
            ("https://a..example", false),
            ("https://.example", false),
            ("https://*", true),
            ("https://a.*.example", false),
            ("https://a.example/x;y", false),
            ("https://", false),
        ] {
            assert_eq!(is_host_source(v), ok, "host-source {v:?}");
        }
        for (v, ok) in [
            ("", true),
            ("/", true),
            ("/a%2Fb", true),
            ("/%41%42/c", true),
            ("/~user/(x)!$&'*+=:@", true),
            ("/a%2", false),
            ("/a%4", false),
            ("/a%zz", false),
            ("/a%2g", false),
            ("//x", false),
            ("a", false),
            ("/a b", false),
            ("/a,b", false),
            // A character right after an escape is checked like any other.
            ("/a%41 b", false),
            // Both digits of an escape are checked, wherever the escape starts.
            ("/%4g", false),
            ("/%4", false),
            ("/ab%4g", false),
            ("/%41%42 ", false),
        ] {
            assert_eq!(is_path_part(v), ok, "path-part {v:?}");
        }
        for (v, ok) in [
            ("abc", true),
            ("abc=", true),
            ("abc==", true),
            ("a+/-_", true),
            ("abc===", false),
            ("===", false),
            ("=", false),
            ("", false),
            ("a.b", false),
        ] {
            assert_eq!(is_base64_value(v), ok, "base64-value {v:?}");
        }
        for b in b"!#$%&'*+-.^_`|~aZ09" {
            assert!(is_tchar(*b), "{}", *b as char);
        }
        for b in b"\"(),/:;<=>?@[]{} \t" {
            assert!(!is_tchar(*b), "{}", *b as char);
        }
    }

    #[test]
    fn report_uri_is_one_path_or_https_url() {
        for ok in ["", "/.gatehouse/csp-report", "https://reports.example.com/csp?app=wiki"] {
            assert_eq!(validate_report_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/x; script-src *",
            "/x,/y",
            "/x /y",
            "//evil.example/x",
            "http://reports.example.com/",
            "https://user@reports.example.com/",
            "https:///x",
            "/x#frag",
            "javascript:alert(1)",
        ] {
            assert!(validate_report_uri(bad).is_err(), "{bad}");
        }
    }
}
