//! Size bounds on what a client can make Gatehouse store or reflect. Input over a bound is
//! refused in the protocol's shape (`invalid_request`, a form error, 413) and writes nothing.
//! The README lists them ("Size limits").

/// OAuth `state` (RFC 6749 §4.1.1): opaque to us, stored with the pending request and echoed.
/// Relying parties that pack data into it stay far below this.
pub const STATE: usize = 2048;
/// OpenID Connect `nonce`: stored with the grant and copied into the ID token.
pub const NONCE: usize = 512;
/// `login_hint`: stored with the pending request and shown in the login form.
pub const LOGIN_HINT: usize = 256;
/// `acr_values`: a few class URIs.
pub const ACR_VALUES: usize = 1024;
/// `id_token_hint`: verified, never stored. An ID token carries the user's standard claims, each
/// bounded (`types::profile`); the largest one possible is about 12 KB
/// (`oidc_flows.rs` :: `the_largest_id_token_possible_is_still_accepted_as_a_hint`).
pub const ID_TOKEN_HINT: usize = 16 * 1024;
/// A username typed into the login form (usernames are at most 64 characters; the rest is room
/// for an email address typed by mistake). Longer input never reaches the counters or the log.
pub const USERNAME_INPUT: usize = 256;
/// The gateway's `return_to` URL, stored with the pending request and the gateway code.
pub const RETURN_URL: usize = 2048;
/// One CSP violation report body. What is kept of it is smaller: a few fields, each cut to
/// [`CSP_REPORT_FIELD`] characters.
pub const CSP_REPORT: usize = 4096;
pub const CSP_REPORT_FIELD: usize = 256;
/// CSP reports kept per app host and hour (a sample is enough to trial a policy; the rest are
/// accepted and dropped), so what anyone's browsers send stays bounded per host, not rate x time.
pub const CSP_REPORTS_PER_HOUR: u32 = 60;
/// A whole pending authorization request as stored (its JSON): the sum of the bounds above with
/// room to spare, so a field added without a bound of its own is still caught.
pub const PENDING_REQUEST: usize = 8192;
/// Pending authorization requests one client IP may hold at once; starting one more evicts its
/// oldest, so one host cannot fill the table (30 minutes of life each).
pub const PENDING_PER_IP: i64 = 50;

/// A form post to Gatehouse (`/oauth2/*`: login, consent, token, revocation...). The largest
/// real one, a token request with a long refresh token, is a few KB.
pub const FORM_BODY: usize = 64 * 1024;
/// A JSON body to the admin API: a client with its redirect URIs, an app with its CSP.
pub const ADMIN_BODY: usize = 1024 * 1024;

/// The most body bytes Gatehouse reads for a request it answers itself. The adapter refuses a
/// longer body with 413 on its `Content-Length`, or stops reading at the cap when there is none
/// (chunked), before the rate limit, the admin token or the endpoint see the request; so one
/// request holds at most this much of an isolate's memory. 0: the body is not read at all (a
/// method that carries none). Bodies of requests forwarded to an app are not Gatehouse's: they
/// stream to the origin unread.
pub fn body_cap(method: crate::http::Method, path: &str) -> usize {
    body_plan(method, path, true).1
}

/// Whether the adapter reads a body at all, and its cap (the bound of its `Content-Length`, 413
/// over it). An admin API request without the admin token is answered 401 without its body
/// being read: an anonymous caller must not be able to hold the admin API's 1 MiB of an
/// isolate's memory per connection (a slow upload stopping one byte short).
pub fn body_plan(method: crate::http::Method, path: &str, admin_authorized: bool) -> (bool, usize) {
    use crate::http::Method;
    use crate::web::router::Body;
    if !matches!(method, Method::Post | Method::Put | Method::Patch | Method::Delete) {
        return (false, 0);
    }
    // The route table says which bound a path has.
    match crate::web::router::body_of(path) {
        Body::CspReport => (true, CSP_REPORT),
        Body::Admin => (admin_authorized, ADMIN_BODY),
        Body::Form => (true, FORM_BODY),
    }
}

/// How long the adapter waits for a whole body it reads: slow uploads must not pile up.
pub const BODY_READ_SECONDS: u64 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    #[test]
    fn bodies_are_capped_per_endpoint_so_one_request_cannot_fill_an_isolate() {
        assert_eq!(body_cap(Method::Post, "/oauth2/token"), 64 * 1024);
        assert_eq!(body_cap(Method::Post, "/oauth2/login"), FORM_BODY);
        assert_eq!(body_cap(Method::Post, "/oauth2/consent"), FORM_BODY);
        for method in [Method::Post, Method::Put, Method::Patch, Method::Delete] {
            assert_eq!(body_cap(method, "/admin/api/users"), 1024 * 1024, "{method:?}");
            assert_eq!(body_cap(method, "/admin/api/clients/abc/secret"), ADMIN_BODY);
            assert_eq!(body_cap(method, "/admin/api"), ADMIN_BODY);
        }
        // The admin API's size is not lent to a look-alike path.
        assert_eq!(body_cap(Method::Post, "/admin/apix"), FORM_BODY);
        // A CSP report is kept only up to its bound: nothing past it is worth reading.
        assert_eq!(body_cap(Method::Post, "/.gatehouse/csp-report"), CSP_REPORT);
        // The bound is the path's, whatever the method: one it does not answer reads no more.
        assert_eq!(body_cap(Method::Put, "/.gatehouse/csp-report"), CSP_REPORT);
        // Any other path of Gatehouse's own: a form at most.
        assert_eq!(body_cap(Method::Post, "/.gatehouse/callback"), FORM_BODY);
        assert_eq!(body_cap(Method::Post, "/healthz"), FORM_BODY);
    }

    #[test]
    fn methods_without_a_body_read_none() {
        for method in [Method::Get, Method::Head, Method::Options, Method::Other] {
            assert_eq!(body_cap(method, "/oauth2/token"), 0, "{method:?}");
            assert_eq!(body_cap(method, "/admin/api/users"), 0, "{method:?}");
        }
    }

    #[test]
    fn an_admin_body_is_read_only_with_the_admin_token() {
        assert_eq!(body_plan(Method::Post, "/admin/api/users", true), (true, ADMIN_BODY));
        assert_eq!(body_plan(Method::Post, "/admin/api/users", false), (false, ADMIN_BODY));
        assert_eq!(body_plan(Method::Post, "/oauth2/token", false), (true, FORM_BODY));
        assert_eq!(body_plan(Method::Get, "/admin/api/users", true), (false, 0));
    }
}
