//! The security headers an app behind the gateway gets (stored with the app as JSON). The data
//! only: checking a policy and applying it to a response are the gateway's
//! (`crate::gateway::headers`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderPolicy {
    /// `Strict-Transport-Security` max-age in seconds; 0 disables HSTS. Never sent over http.
    pub hsts_max_age: i64,
    pub hsts_include_subdomains: bool,
    /// Opt-in only: preload lists are hard to leave.
    pub hsts_preload: bool,
    /// Gatehouse's CSP for the app; empty means none is added.
    pub content_security_policy: String,
    /// Send the CSP as `Content-Security-Policy-Report-Only` to trial it.
    pub csp_report_only: bool,
    /// Where browsers send CSP violation reports (`report-uri`); empty for none.
    pub csp_report_uri: String,
    pub referrer_policy: String,
    pub permissions_policy: String,
    pub cross_origin_opener_policy: String,
    /// `DENY`, `SAMEORIGIN`, or empty to allow framing (then no `frame-ancestors` either).
    pub frame_options: String,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy {
            hsts_max_age: 31_536_000,
            hsts_include_subdomains: true,
            hsts_preload: false,
            content_security_policy: String::new(),
            csp_report_only: false,
            csp_report_uri: String::new(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            permissions_policy: "camera=(), microphone=(), geolocation=(), payment=(), usb=()".into(),
            cross_origin_opener_policy: "same-origin".into(),
            frame_options: "DENY".into(),
        }
    }
}
