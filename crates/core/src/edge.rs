//! What the adapter decides about a request before any endpoint sees it: whether it arrived over
//! an acceptable transport, and how to refuse a body over its cap (`limits::body_cap`). Both
//! answers pass through `secure_own_response` like every other response of Gatehouse's own.

use crate::config::{is_loopback, Settings};
use crate::error::{Error, OAuthError};
use crate::http::host_of;
use crate::http::{Method, Response};

/// A TLS protocol version, ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Ssl3,
    Tls1_0,
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

impl TlsVersion {
    /// A `GATEHOUSE_MIN_TLS` value: `1.0`, `1.1`, `1.2` or `1.3`.
    pub fn from_setting(value: &str) -> Option<TlsVersion> {
        match value {
            "1.0" => Some(TlsVersion::Tls1_0),
            "1.1" => Some(TlsVersion::Tls1_1),
            "1.2" => Some(TlsVersion::Tls1_2),
            "1.3" => Some(TlsVersion::Tls1_3),
            _ => None,
        }
    }

    /// `request.cf.tlsVersion` as Cloudflare reports it (`TLSv1`, `TLSv1.1` ... `TLSv1.3`,
    /// `SSLv3`). `None` for anything else, including the empty string of a plain-http request.
    pub fn from_cf(value: &str) -> Option<TlsVersion> {
        match value {
            "SSLv3" => Some(TlsVersion::Ssl3),
            "TLSv1" | "TLSv1.0" => Some(TlsVersion::Tls1_0),
            "TLSv1.1" => Some(TlsVersion::Tls1_1),
            "TLSv1.2" => Some(TlsVersion::Tls1_2),
            "TLSv1.3" => Some(TlsVersion::Tls1_3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Ssl3 => "SSL 3.0",
            TlsVersion::Tls1_0 => "TLS 1.0",
            TlsVersion::Tls1_1 => "TLS 1.1",
            TlsVersion::Tls1_2 => "TLS 1.2",
            TlsVersion::Tls1_3 => "TLS 1.3",
        }
    }
}

/// Whether an endpoint answers errors as JSON (machines call it) rather than as an HTML page.
fn answers_json(path: &str) -> bool {
    matches!(
        path,
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" | "/oauth2/userinfo" | "/.gatehouse/csp-report"
    ) || path == "/admin/api"
        || path.starts_with("/admin/api/")
}

/// A refusal in the endpoint's shape: `{"error":"invalid_request", ...}` or an error page.
fn refuse(path: &str, status: u16, description: String) -> Response {
    let e = Error::from(OAuthError::invalid_request(description));
    if answers_json(path) {
        e.into_json_with_status(status)
    } else {
        e.into_page_with_status(status)
    }
}

/// 413 for a body over `cap` bytes: the adapter stopped reading at the cap (or refused on
/// `Content-Length` without reading at all).
pub fn body_too_large(path: &str, cap: usize) -> Response {
    refuse(path, 413, format!("the request body is larger than {cap} bytes"))
}

/// The transport rule, `None` when the request may go on. `origin` is the request's
/// `scheme://host[:port]`, `path_and_query` its target, `tls_version` `request.cf.tlsVersion`
/// (absent in local development).
///
/// - With an https issuer, a plain-http request (to the issuer or an app host) is not served:
///   GET and HEAD get 308 to the same URL on https; any other method gets 403, since a redirect
///   would have the client resend its credentials or form in clear (or, for some clients, turn
///   a POST into a GET). Loopback origins are local development and keep working over http.
/// - A TLS connection older than `GATEHOUSE_MIN_TLS` gets 403.
pub fn check_transport(
    settings: &Settings,
    origin: &str,
    method: Method,
    path_and_query: &str,
    tls_version: Option<&str>,
) -> Option<Response> {
    let https_issuer = settings.issuer.as_deref().filter(|i| i.starts_with("https://"));
    if let (Some(issuer), Some(_)) = (https_issuer, origin.strip_prefix("http://")) {
        if !is_loopback(origin) {
            let path = path_and_query.split('?').next().unwrap_or(path_and_query);
            if !matches!(method, Method::Get | Method::Head) {
                return Some(refuse(
                    path,
                    403,
                    "this request must be sent over https (it was not redirected, so that nothing is sent in clear again)"
                        .to_owned(),
                ));
            }
            return Some(Response::redirect(308, &https_url(issuer, origin, path_and_query)));
        }
    }
    let used = tls_version.and_then(TlsVersion::from_cf)?;
    if used < settings.min_tls {
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        return Some(refuse(
            path,
            403,
            format!(
                "this connection uses {}; Gatehouse requires {} or newer",
                used.as_str(),
                settings.min_tls.as_str()
            ),
        ));
    }
    None
}

/// The https URL of a plain-http request: on the issuer's host, the issuer's own origin (with its
/// port, if it names one); on any other host, the host without the http port.
fn https_url(issuer: &str, origin: &str, path_and_query: &str) -> String {
    let host = without_port(host_of(origin));
    let issuer_host = host_of(issuer);
    let authority = if without_port(issuer_host).eq_ignore_ascii_case(host) {
        issuer_host
    } else {
        host
    };
    format!("https://{authority}{path_and_query}")
}

fn without_port(authority: &str) -> &str {
    match authority.rfind(':') {
        // `[2001:db8::1]` has colons of its own: a port follows the bracket.
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted(min_tls: Option<&str>) -> Settings {
        Settings::from_lookup(|name| match name {
            "GATEHOUSE_ISSUER" => Some("https://id.example.com".to_owned()),
            "GATEHOUSE_MIN_TLS" => min_tls.map(str::to_owned),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn plain_http_gets_redirected_to_the_same_url_on_https() {
        let s = hosted(None);
        for (origin, target, expected) in [
            (
                "http://id.example.com",
                "/oauth2/authorize?client_id=a&state=b",
                "https://id.example.com/oauth2/authorize?client_id=a&state=b",
            ),
            // The http port is not the https one.
            (
                "http://id.example.com:8080",
                "/healthz",
                "https://id.example.com/healthz",
            ),
            ("http://ID.example.com", "/", "https://id.example.com/"),
            // An app host behind the gateway: same rule, its own host.
            (
                "http://app.example.com:80",
                "/console/x?y=1",
                "https://app.example.com/console/x?y=1",
            ),
        ] {
            for method in [Method::Get, Method::Head] {
                let r = check_transport(&s, origin, method, target, None).expect(origin);
                assert_eq!(r.status, 308, "{origin}");
                assert_eq!(r.header("location"), Some(expected), "{origin}");
            }
        }
    }

    #[test]
    fn the_redirect_keeps_the_issuers_https_port() {
        let s = Settings {
            issuer: Some("https://id.example.com:8443".to_owned()),
            ..hosted(None)
        };
        let r = check_transport(&s, "http://id.example.com:8080", Method::Get, "/x", None).unwrap();
        assert_eq!(r.header("location"), Some("https://id.example.com:8443/x"));
        assert_eq!(
            https_url("https://id.example.com", "http://[2001:db8::1]:80", "/"),
            "https://[2001:db8::1]/"
        );
    }

    #[test]
    fn a_plain_http_post_is_refused_not_redirected_so_credentials_are_not_resent_in_clear() {
        let s = hosted(None);
        for method in [
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Options,
            Method::Other,
        ] {
            let token = check_transport(&s, "http://id.example.com", method, "/oauth2/token", None).unwrap();
            assert_eq!(token.status, 403, "{method:?}");
            assert_eq!(token.header("location"), None);
            assert_eq!(token.json_body()["error"], "invalid_request");
            let login = check_transport(&s, "http://id.example.com", method, "/oauth2/login?x=1", None).unwrap();
            assert_eq!(login.status, 403);
            assert!(login.header("content-type").unwrap().starts_with("text/html"));
        }
    }

    #[test]
    fn https_requests_loopback_and_http_issuers_are_left_alone() {
        let s = hosted(None);
        assert!(check_transport(&s, "https://id.example.com", Method::Post, "/oauth2/token", None).is_none());
        assert!(check_transport(&s, "https://app.example.com", Method::Get, "/", Some("TLSv1.3")).is_none());
        // Local development: wrangler dev on loopback, whatever the issuer says.
        for origin in ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787"] {
            assert!(
                check_transport(&s, origin, Method::Post, "/oauth2/token", None).is_none(),
                "{origin}"
            );
        }
        // No https issuer: nothing to upgrade to (only loopback is served then).
        let local = Settings::default();
        assert!(check_transport(&local, "http://127.0.0.1:8787", Method::Get, "/", None).is_none());
        let http_issuer = Settings {
            issuer: Some("http://127.0.0.1:8787".to_owned()),
            ..Settings::default()
        };
        assert!(check_transport(
            &http_issuer,
            "http://127.0.0.1:8787",
            Method::Post,
            "/oauth2/token",
            None
        )
        .is_none());
    }

    #[test]
    fn tls_older_than_the_minimum_is_refused() {
        let s = hosted(None);
        for old in ["TLSv1", "TLSv1.0", "TLSv1.1", "SSLv3"] {
            let r = check_transport(
                &s,
                "https://id.example.com",
                Method::Get,
                "/oauth2/authorize",
                Some(old),
            )
            .unwrap_or_else(|| panic!("{old} was let through"));
            assert_eq!(r.status, 403, "{old}");
            let admin =
                check_transport(&s, "https://id.example.com", Method::Get, "/admin/api/users", Some(old)).unwrap();
            assert_eq!(admin.json_body()["error"], "invalid_request");
            assert!(admin.json_body()["error_description"]
                .as_str()
                .unwrap()
                .contains("TLS 1.2"));
        }
        for ok in ["TLSv1.2", "TLSv1.3"] {
            assert!(
                check_transport(&s, "https://id.example.com", Method::Get, "/", Some(ok)).is_none(),
                "{ok}"
            );
        }
        // No cf object (local development), plain http, or a version we do not know: allowed.
        for unknown in [None, Some(""), Some("TLSv1.4"), Some("QUIC")] {
            assert!(
                check_transport(&s, "https://id.example.com", Method::Get, "/", unknown).is_none(),
                "{unknown:?}"
            );
        }
        let strict = hosted(Some("1.3"));
        assert_eq!(
            check_transport(&strict, "https://id.example.com", Method::Get, "/", Some("TLSv1.2")).map(|r| r.status),
            Some(403)
        );
        let lenient = hosted(Some("1.0"));
        assert!(check_transport(&lenient, "https://id.example.com", Method::Get, "/", Some("TLSv1")).is_none());
        assert!(check_transport(&lenient, "https://id.example.com", Method::Get, "/", Some("SSLv3")).is_some());
    }

    #[test]
    fn every_setting_and_every_cloudflare_tls_name_maps_to_its_version() {
        for (setting, version) in [
            ("1.0", TlsVersion::Tls1_0),
            ("1.1", TlsVersion::Tls1_1),
            ("1.2", TlsVersion::Tls1_2),
            ("1.3", TlsVersion::Tls1_3),
        ] {
            assert_eq!(TlsVersion::from_setting(setting), Some(version), "{setting}");
        }
        assert_eq!(TlsVersion::from_setting("1.4"), None);
        for (cf, version) in [
            ("SSLv3", TlsVersion::Ssl3),
            ("TLSv1", TlsVersion::Tls1_0),
            ("TLSv1.0", TlsVersion::Tls1_0),
            ("TLSv1.1", TlsVersion::Tls1_1),
            ("TLSv1.2", TlsVersion::Tls1_2),
            ("TLSv1.3", TlsVersion::Tls1_3),
        ] {
            assert_eq!(TlsVersion::from_cf(cf), Some(version), "{cf}");
        }
        // A deployment that asks for TLS 1.1 refuses TLS 1.0 and takes 1.1.
        let s = hosted(Some("1.1"));
        assert!(check_transport(&s, "https://id.example.com", Method::Get, "/", Some("TLSv1")).is_some());
        assert!(check_transport(&s, "https://id.example.com", Method::Get, "/", Some("TLSv1.1")).is_none());
    }

    #[test]
    fn a_port_is_cut_after_an_ipv6_literals_bracket_never_inside_it() {
        assert_eq!(without_port("id.example.com:8443"), "id.example.com");
        assert_eq!(without_port("id.example.com"), "id.example.com");
        assert_eq!(without_port("[2001:db8::1]:8443"), "[2001:db8::1]");
        assert_eq!(without_port("[2001:db8::1]"), "[2001:db8::1]");
    }

    #[test]
    fn an_oversized_body_is_refused_in_the_endpoints_shape() {
        let token = body_too_large("/oauth2/token", crate::limits::FORM_BODY);
        assert_eq!(token.status, 413);
        assert_eq!(token.json_body()["error"], "invalid_request");
        let admin = body_too_large("/admin/api/users", crate::limits::ADMIN_BODY);
        assert_eq!(admin.json_body()["error"], "invalid_request");
        let login = body_too_large("/oauth2/login", crate::limits::FORM_BODY);
        assert_eq!(login.status, 413);
        assert!(login.header("content-type").unwrap().starts_with("text/html"));
    }
}
