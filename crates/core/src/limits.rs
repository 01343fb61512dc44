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
/// `id_token_hint`: verified, never stored; an ID token of ours is well under 2 KB.
pub const ID_TOKEN_HINT: usize = 8192;
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
