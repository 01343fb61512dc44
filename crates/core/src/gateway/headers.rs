//! Security headers: one policy type, one merge function, used for Gatehouse's own pages and
//! for every proxied response.
//!
//! Merge rules (../shared/reference/000, "Content Security Policy"): an origin's own CSP is never
//! overwritten; Gatehouse adds its policy as a second `Content-Security-Policy` header, and
//! browsers enforce both. Other headers are set only when the origin did not set them, except
//! HSTS, which is Gatehouse's to decide for the host it terminates.

use super::csp;
pub use crate::http::{header_value, Unsafe};
use crate::types::header_policy::HeaderPolicy;

/// Bounds on the header fields of an app's policy (stored with the app, sent on every response).
const MAX_CSP: usize = 4096;
const MAX_FIELD: usize = 1024;

/// `Cross-Origin-Opener-Policy` values (HTML §7.1.3.1), or empty for none.
const COOP_VALUES: &[&str] = &[
    "",
    "same-origin",
    "same-origin-allow-popups",
    "noopener-allow-popups",
    "unsafe-none",
];

/// `Referrer-Policy` tokens (Referrer Policy §3); the header may list several, the last one the
/// browser knows wins.
const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "same-origin",
    "origin",
    "strict-origin",
    "origin-when-cross-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

fn validate_referrer_policy(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let known = value
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .all(|t| REFERRER_POLICIES.contains(&t.to_ascii_lowercase().as_str()));
    if known {
        Ok(())
    } else {
        Err(format!(
            "referrer_policy must be one of {REFERRER_POLICIES:?} (or a comma-separated list of them)"
        ))
    }
}

/// `Permissions-Policy` (a Structured Fields dictionary, RFC 8941 §3.2): `feature=allowlist`
/// members separated by `,`; an allowlist is `*`, `self`, `src`, an origin in quotes, or a
/// parenthesised list of those. Feature names are not checked against a list (new ones appear
/// every year), only their syntax; parameters are refused.
fn validate_permissions_policy(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let explain = |member: &str| {
        format!(
            "permissions_policy: {member:?} is not feature=allowlist (allowlist: *, self, src, \
             \"https://origin\", or a list of those in parentheses, e.g. camera=(self \"https://a.example\"))"
        )
    };
    for member in value.split(',').map(|m| m.trim_matches([' ', '\t'])) {
        let Some((key, allowlist)) = member.split_once('=') else {
            return Err(explain(member));
        };
        let key_ok = key.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        let items_ok = match allowlist.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
            Some(inner) => inner.split(' ').filter(|i| !i.is_empty()).all(is_allowlist_item),
            None => is_allowlist_item(allowlist),
        };
        if !key_ok || !items_ok {
            return Err(explain(member));
        }
    }
    Ok(())
}

fn is_allowlist_item(item: &str) -> bool {
    if matches!(item, "*" | "self" | "src") {
        return true;
    }
    let Some(origin) = item.strip_prefix('"').and_then(|i| i.strip_suffix('"')) else {
        return false;
    };
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b))
}

impl HeaderPolicy {
    /// Refuses what a header cannot carry or a browser would read differently from the operator:
    /// each field against its grammar or its fixed set of values (the CSP through [`csp`]). A
    /// `,` or `;` in the wrong place would add directives or a second policy; a character a
    /// header cannot carry would fail every response of the app.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("content_security_policy", &self.content_security_policy, MAX_CSP),
            ("csp_report_uri", &self.csp_report_uri, MAX_FIELD),
            ("referrer_policy", &self.referrer_policy, MAX_FIELD),
            ("permissions_policy", &self.permissions_policy, MAX_FIELD),
            (
                "cross_origin_opener_policy",
                &self.cross_origin_opener_policy,
                MAX_FIELD,
            ),
            ("frame_options", &self.frame_options, MAX_FIELD),
        ];
        for (name, value, max) in fields {
            if value.len() > max {
                return Err(format!("{name} is longer than {max} bytes"));
            }
            if header_value(value, Unsafe::Refuse).is_none() {
                return Err(format!(
                    "{name} must be printable ASCII: a header cannot carry control characters or \
                     characters outside ASCII"
                ));
            }
        }
        csp::validate_policy(&self.content_security_policy).map_err(|e| format!("content_security_policy: {e}"))?;
        csp::validate_report_uri(&self.csp_report_uri).map_err(|e| format!("csp_report_uri: {e}"))?;
        validate_referrer_policy(&self.referrer_policy)?;
        validate_permissions_policy(&self.permissions_policy)?;
        if !COOP_VALUES.contains(&self.cross_origin_opener_policy.as_str()) {
            return Err(format!("cross_origin_opener_policy must be one of {COOP_VALUES:?}"));
        }
        if !["", "DENY", "SAMEORIGIN"].contains(&self.frame_options.as_str()) {
            return Err("frame_options must be DENY, SAMEORIGIN or empty".into());
        }
        if self.hsts_max_age < 0 {
            return Err("hsts_max_age must not be negative".into());
        }
        Ok(())
    }

    fn frame_ancestors(&self) -> Option<&'static str> {
        match self.frame_options.as_str() {
            "DENY" => Some("frame-ancestors 'none'"),
            "SAMEORIGIN" => Some("frame-ancestors 'self'"),
            _ => None,
        }
    }

    /// The CSP Gatehouse adds: the configured policy plus frame-ancestors and report-uri.
    pub fn csp(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        let base = self.content_security_policy.trim().trim_end_matches(';').trim();
        if !base.is_empty() {
            parts.push(base.to_owned());
        }
        if let Some(fa) = self.frame_ancestors() {
            if !base.contains("frame-ancestors") {
                parts.push(fa.to_owned());
            }
        }
        if !self.csp_report_uri.is_empty() {
            parts.push(format!("report-uri {}", self.csp_report_uri));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// Sets `name` unless the origin did. A value no header can carry (one stored before the admin
/// API checked it) is left out rather than failing the whole response.
fn set_if_absent(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    if !value.is_empty() && !has(headers, name) && header_value(value, Unsafe::Refuse).is_some() {
        headers.push((name.to_owned(), value.to_owned()));
    }
}

/// Applies `policy` to response headers (lower-case names). `https` says whether the client
/// reached Gatehouse over https: HSTS over plain http is meaningless and is never sent.
pub fn apply(headers: &mut Vec<(String, String)>, policy: &HeaderPolicy, https: bool) {
    if https && policy.hsts_max_age > 0 {
        let mut v = format!("max-age={}", policy.hsts_max_age);
        if policy.hsts_include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if policy.hsts_preload {
            v.push_str("; preload");
        }
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("strict-transport-security"));
        headers.push(("strict-transport-security".into(), v));
    }
    if let Some(csp) = policy.csp().filter(|c| header_value(c, Unsafe::Refuse).is_some()) {
        // Appended, never replacing what the origin sent: both policies are enforced.
        let name = if policy.csp_report_only {
            "content-security-policy-report-only"
        } else {
            "content-security-policy"
        };
        headers.push((name.into(), csp));
    }
    set_if_absent(headers, "x-content-type-options", "nosniff");
    set_if_absent(headers, "referrer-policy", &policy.referrer_policy);
    set_if_absent(headers, "permissions-policy", &policy.permissions_policy);
    set_if_absent(
        headers,
        "cross-origin-opener-policy",
        &policy.cross_origin_opener_policy,
    );
    set_if_absent(headers, "x-frame-options", &policy.frame_options);
}

/// Headers for Gatehouse's own responses. HTML pages get a CSP with no `unsafe-inline`: scripts
/// run only on a page that carries a nonce (`Response::csp_nonce`, drawn when the page was
/// rendered), every other page runs none. `form_action` lists the origins a form on the page may
/// end up at (the client's redirect URI is reached by redirects after the POST, and browsers
/// apply `form-action` to those redirects too).
pub fn own_response(
    headers: &mut Vec<(String, String)>,
    https: bool,
    nonce: Option<&str>,
    form_action: &[String],
    frame_src: &[String],
) {
    let is_html = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/html"));
    let csp = if is_html {
        // A nonce is base64url; anything else would be a bug, so it runs nothing rather than
        // writing it into a header.
        let script = match nonce.filter(|n| is_nonce(n)) {
            Some(n) => format!("script-src 'nonce-{n}' 'strict-dynamic'"),
            None => "script-src 'none'".to_owned(),
        };
        let mut actions = vec!["'self'".to_owned()];
        // A client registered before redirect URIs had to be ASCII could name an origin no
        // header can carry: it is left out, never the whole policy.
        actions.extend(
            form_action
                .iter()
                .filter(|o| !o.is_empty() && header_value(o, Unsafe::Refuse).is_some())
                .cloned(),
        );
        let frames: Vec<&str> = frame_src.iter().map(String::as_str).filter(|o| !o.is_empty()).collect();
        let frame = if frames.is_empty() {
            String::new()
        } else {
            format!("frame-src {}; ", frames.join(" "))
        };
        format!(
            "default-src 'none'; {script}; style-src 'self'; img-src 'self' data:; \
             font-src 'self'; connect-src 'self'; {frame}form-action {}; frame-ancestors 'none'; base-uri 'none'; \
             object-src 'none'",
            actions.join(" ")
        )
    } else {
        // JSON and assets: nothing to run, nothing to frame.
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'".to_owned()
    };
    let policy = HeaderPolicy {
        content_security_policy: csp,
        ..HeaderPolicy::default()
    };
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-security-policy"));
    apply(headers, &policy, https);
    set_if_absent(headers, "cross-origin-resource-policy", "same-origin");
}

fn is_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permissions_policy_is_feature_equals_allowlist_members_and_nothing_else() {
        for ok in [
            "",
            "camera=()",
            "display-capture=(self)",
            "web-share=*",
            "ch-ua-2=src",
            "picture-in-picture=(self \"https://a.example\" \"https://*.b.example:8443\")",
            "camera=(), geolocation=(self \"https://maps.example.com\"), fullscreen=*",
        ] {
            assert_eq!(validate_permissions_policy(ok), Ok(()), "{ok}");
        }
        for bad in [
            "camera",
            "=self",
            "Camera=self",
            "-camera=self",
            "1camera=self",
            "camera!=self",
            "camera=(self",
            "camera=none",
            "camera=(self none)",
            "camera=self;geolocation=*",
            "camera=\"https://\"",
            "camera=\"://a.example\"",
            "camera=\"a.example\"",
            "camera=\"https://a.example/path\"",
            "camera=\"ht_tp://a.example\"",
            "camera=https://a.example",
        ] {
            assert!(validate_permissions_policy(bad).is_err(), "{bad}");
        }
    }

    fn hv<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        h.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn origin_csp_is_preserved_and_gatehouse_adds_a_second_one() {
        let mut h = vec![("content-security-policy".to_string(), "script-src 'self'".to_string())];
        let p = HeaderPolicy {
            content_security_policy: "default-src 'self'".into(),
            ..HeaderPolicy::default()
        };
        apply(&mut h, &p, true);
        assert_eq!(
            hv(&h, "content-security-policy"),
            vec!["script-src 'self'", "default-src 'self'; frame-ancestors 'none'"]
        );
    }

    #[test]
    fn report_only_mode_uses_the_report_only_header_with_report_uri() {
        let mut h = vec![];
        let p = HeaderPolicy {
            content_security_policy: "default-src 'self'".into(),
            csp_report_only: true,
            csp_report_uri: "/.gatehouse/csp-report".into(),
            ..HeaderPolicy::default()
        };
        apply(&mut h, &p, true);
        assert!(hv(&h, "content-security-policy").is_empty());
        assert_eq!(
            hv(&h, "content-security-policy-report-only"),
            vec!["default-src 'self'; frame-ancestors 'none'; report-uri /.gatehouse/csp-report"]
        );
    }

    #[test]
    fn hsts_defaults_to_one_year_with_subdomains_and_never_on_plain_http() {
        let mut h = vec![];
        apply(&mut h, &HeaderPolicy::default(), true);
        assert_eq!(
            hv(&h, "strict-transport-security"),
            vec!["max-age=31536000; includeSubDomains"]
        );
        let mut h = vec![];
        apply(&mut h, &HeaderPolicy::default(), false);
        assert!(hv(&h, "strict-transport-security").is_empty());
        let mut h = vec![];
        apply(
            &mut h,
            &HeaderPolicy {
                hsts_preload: true,
                ..HeaderPolicy::default()
            },
            true,
        );
        assert_eq!(
            hv(&h, "strict-transport-security"),
            vec!["max-age=31536000; includeSubDomains; preload"]
        );
    }

    #[test]
    fn origin_values_win_for_other_headers_and_defaults_fill_the_gaps() {
        let mut h = vec![("x-frame-options".to_string(), "SAMEORIGIN".to_string())];
        apply(&mut h, &HeaderPolicy::default(), true);
        assert_eq!(hv(&h, "x-frame-options"), vec!["SAMEORIGIN"]);
        assert_eq!(hv(&h, "x-content-type-options"), vec!["nosniff"]);
        assert_eq!(hv(&h, "referrer-policy"), vec!["strict-origin-when-cross-origin"]);
        assert_eq!(hv(&h, "cross-origin-opener-policy"), vec!["same-origin"]);
        assert!(!hv(&h, "permissions-policy").is_empty());
    }

    #[test]
    fn header_value_passes_safe_text_refuses_or_encodes_the_rest() {
        assert_eq!(
            header_value("default-src 'self'", Unsafe::Refuse).as_deref(),
            Some("default-src 'self'")
        );
        for bad in ["caf\u{e9}", "\u{65e5}", "a\r\nb", "a\u{0}b", "a\u{7f}"] {
            assert!(header_value(bad, Unsafe::Refuse).is_none(), "{bad:?}");
        }
        assert_eq!(
            header_value("https://a.example/\u{65e5} x%41", Unsafe::Url).as_deref(),
            Some("https://a.example/%E6%97%A5%20x%41")
        );
        assert_eq!(
            header_value("jos\u{e9}+5%@x.example", Unsafe::Text).as_deref(),
            Some("jos%C3%A9+5%25@x.example")
        );
        assert_eq!(
            header_value("alice@example.com", Unsafe::Text).as_deref(),
            Some("alice@example.com")
        );
    }

    #[test]
    fn a_stored_policy_value_no_header_can_carry_is_left_out_not_a_failed_response() {
        // Stored before the admin API checked it: the app's responses must still go out.
        let p = HeaderPolicy {
            content_security_policy: "default-src https://\u{4f8b}.jp".into(),
            referrer_policy: "caf\u{e9}".into(),
            ..HeaderPolicy::default()
        };
        let mut h = vec![];
        apply(&mut h, &p, true);
        assert!(hv(&h, "content-security-policy").is_empty());
        assert!(hv(&h, "referrer-policy").is_empty());
        assert!(h.iter().all(|(_, v)| header_value(v, Unsafe::Refuse).is_some()));
    }

    #[test]
    fn header_injection_in_policy_is_refused() {
        let p = HeaderPolicy {
            content_security_policy: "default-src 'self'\r\nSet-Cookie: x=1".into(),
            ..HeaderPolicy::default()
        };
        assert!(p.validate().is_err());
        assert!(HeaderPolicy {
            frame_options: "ALLOWALL".into(),
            ..HeaderPolicy::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn own_pages_get_a_nonce_csp_without_unsafe_inline_and_form_action_for_the_client() {
        let mut h = vec![("content-type".to_string(), "text/html; charset=utf-8".to_string())];
        own_response(&mut h, false, Some("abc123"), &["https://rp.example.com".into()], &[]);
        let csp = hv(&h, "content-security-policy")[0];
        assert!(csp.contains("script-src 'nonce-abc123' 'strict-dynamic';"));
        assert!(csp.contains("form-action 'self' https://rp.example.com;"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(hv(&h, "x-frame-options"), vec!["DENY"]);
        assert!(!csp.contains("frame-src"), "no frames unless a page asks");
    }

    #[test]
    fn a_page_without_a_nonce_runs_no_script() {
        let mut h = vec![("content-type".to_string(), "text/html; charset=utf-8".to_string())];
        own_response(&mut h, true, None, &[], &[]);
        let csp = hv(&h, "content-security-policy")[0];
        assert!(csp.starts_with("default-src 'none'; script-src 'none';"), "{csp}");
        assert!(!csp.contains("nonce"));
    }

    #[test]
    fn a_nonce_that_is_not_base64url_never_reaches_the_header() {
        for bad in ["", "a'; script-src *", "a\r\nset-cookie: x=1", "a b"] {
            let mut h = vec![("content-type".to_string(), "text/html".to_string())];
            own_response(&mut h, true, Some(bad), &[], &[]);
            let csp = hv(&h, "content-security-policy")[0];
            assert!(
                csp.contains("script-src 'none';") && !csp.contains("nonce"),
                "{bad:?}: {csp}"
            );
        }
    }

    #[test]
    fn a_page_with_the_captcha_widget_may_frame_only_the_challenge_origin() {
        let mut h = vec![("content-type".to_string(), "text/html".to_string())];
        own_response(
            &mut h,
            true,
            Some("n"),
            &[],
            &["https://challenges.cloudflare.com".into()],
        );
        let csp = hv(&h, "content-security-policy")[0];
        assert!(csp.contains("frame-src https://challenges.cloudflare.com;"), "{csp}");
    }

    #[test]
    fn form_action_names_the_clients_origins_but_never_an_empty_or_unsendable_one() {
        let mut h = vec![("content-type".to_string(), "text/html".to_string())];
        own_response(
            &mut h,
            true,
            None,
            &[
                "https://rp.example".into(),
                String::new(),
                "https://b\u{fc}cher.example".into(),
            ],
            &[],
        );
        let csp = hv(&h, "content-security-policy")[0];
        assert!(csp.contains("form-action 'self' https://rp.example;"), "{csp}");
    }

    #[test]
    fn a_header_field_of_exactly_its_bound_is_taken_and_one_byte_more_refused() {
        let csp = |len: usize| {
            let base = "img-src https://";
            format!("{base}{}.com", "a".repeat(len - base.len() - 4))
        };
        let with = |value: String| HeaderPolicy {
            content_security_policy: value,
            ..HeaderPolicy::default()
        };
        assert_eq!(with(csp(MAX_CSP)).validate(), Ok(()));
        assert!(with(csp(MAX_CSP + 1)).validate().is_err());
        let origin = |len: usize| format!("camera=(\"https://{}.com\")", "a".repeat(len - 23));
        assert_eq!(origin(MAX_FIELD).len(), MAX_FIELD);
        let with = |value: String| HeaderPolicy {
            permissions_policy: value,
            ..HeaderPolicy::default()
        };
        assert_eq!(with(origin(MAX_FIELD)).validate(), Ok(()));
        assert!(with(origin(MAX_FIELD + 1)).validate().is_err());
    }
}
