//! HTML pages rendered from the templates in `www/templates/` (embedded at build time).
//! Values are HTML-escaped on insertion; templates hold no inline script or style, so the
//! pages work under a strict Content-Security-Policy.

use crate::http::html_escape;

const LAYOUT: &str = include_str!("../../../www/templates/layout.html");
const ERROR: &str = include_str!("../../../www/templates/error.html");
pub const LOGIN: &str = include_str!("../../../www/templates/login.html");
pub const CONSENT: &str = include_str!("../../../www/templates/consent.html");
pub const LOGOUT: &str = include_str!("../../../www/templates/logout.html");
pub const SIGNED_OUT: &str = include_str!("../../../www/templates/signed-out.html");

/// Replaces `{{name}}` with escaped values and `{{{name}}}` with trusted (already rendered) HTML.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{{{name}}}}}}}"), value);
        out = out.replace(&format!("{{{{{name}}}}}"), &html_escape(value));
    }
    out
}

pub fn layout(title: &str, body_html: &str) -> String {
    render(LAYOUT, &[("title", title), ("body", body_html)])
}

pub fn error_page(title: &str, detail: &str) -> String {
    layout("Error", &render(ERROR, &[("error", title), ("detail", detail)]))
}
