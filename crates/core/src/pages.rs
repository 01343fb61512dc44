//! HTML pages: the askama templates in `www/templates/`, compiled into the crate. Every value is
//! HTML-escaped on output (no template marks one safe), and a page renders in one pass, so a
//! reflected value is text and never template syntax. Templates hold no inline script or style:
//! the only script, Turnstile's, carries the per-response CSP nonce as an ordinary value.

use askama::Template;

use crate::crypto::b64url;
use crate::error::{log_internal, InternalError};
use crate::http::Response;
use crate::policy::turnstile;
use crate::ports::Rng;

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    pub client: &'a str,
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    /// Offer "Forgot your password?" (mail can leave).
    pub reset: bool,
    /// Show the username and password form (not with `GATEHOUSE_PASSKEY_ONLY=on`).
    pub password: bool,
    /// The Turnstile widget, when the form asks for it.
    pub captcha: Option<Captcha<'a>>,
    /// This response's CSP nonce (`csp_nonce`), for the passkey script and the widget's.
    pub nonce: String,
}

/// What the Turnstile widget in the login form needs (its script carries `Login::nonce`).
pub struct Captcha<'a> {
    pub site_key: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent<'a> {
    pub client: &'a str,
    pub scopes: Vec<Scope<'a>>,
    pub req: &'a str,
    pub csrf: &'a str,
}

pub struct Scope<'a> {
    pub name: &'a str,
    pub description: &'a str,
}

/// The second-factor stage: a code from the authenticator app.
#[derive(Template)]
#[template(path = "totp.html")]
pub struct Totp<'a> {
    pub client: &'a str,
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    /// Ask for a code from an authenticator app.
    pub totp: bool,
    /// Offer the user's passkey (the script, with `nonce`).
    pub passkey: bool,
    /// This response's CSP nonce, for the passkey script.
    pub nonce: String,
    /// Offer the recovery-code page.
    pub recovery_codes: bool,
    /// Offer an emailed code.
    pub email: bool,
}

impl Totp<'_> {
    /// The page; with a passkey offered, the response allows its script (by nonce).
    pub fn response(&self, status: u16) -> Response {
        html_with_script(status, self, self.passkey.then_some(self.nonce.as_str()))
    }
}

/// The emailed-code stage.
#[derive(Template)]
#[template(path = "email-code.html")]
pub struct EmailCode<'a> {
    pub client: &'a str,
    /// The address, masked (`a•••@example.com`).
    pub address: &'a str,
    pub notice: &'a str,
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    pub totp: bool,
    pub recovery_codes: bool,
}

/// The "set a new password" stage.
#[derive(Template)]
#[template(path = "new-password.html")]
pub struct NewPassword<'a> {
    /// For password managers (a hidden username field beside the new password).
    pub username: &'a str,
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    pub min_length: usize,
    /// The password rules in a sentence (`PasswordRules::describe`).
    pub rules: &'a str,
    /// Why the change is asked (an expired password, rules it no longer meets); empty when the
    /// user asked for it.
    pub reason: &'a str,
}

/// The recovery-code stage.
#[derive(Template)]
#[template(path = "recovery-code.html")]
pub struct RecoveryCode<'a> {
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    /// Offer the authenticator-app page.
    pub totp: bool,
    /// Offer an emailed code.
    pub email: bool,
}

/// Enrolling an authenticator app: the QR code (an SVG as a `data:` image, which the pages'
/// CSP allows, so no markup is marked safe), the key for manual entry and the setup link.
#[derive(Template)]
#[template(path = "enroll.html")]
pub struct Enroll<'a> {
    pub qr_base64: &'a str,
    pub secret: &'a str,
    pub uri: &'a str,
    pub name: &'a str,
    pub error: &'a str,
    pub action: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
    /// Offer a passkey instead (in a sign-in), with this response's CSP nonce for its script.
    pub passkey_nonce: Option<String>,
}

impl Enroll<'_> {
    /// The page; with a passkey offered, the response allows its script (by nonce).
    pub fn response(&self, status: u16) -> Response {
        html_with_script(status, self, self.passkey_nonce.as_deref())
    }
}

/// A message with a Continue link (and, once, a new set of recovery codes).
#[derive(Template)]
#[template(path = "notice.html")]
pub struct Notice<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub codes: &'a [&'a str],
    pub next: &'a str,
}

/// A passkey setup link's page (`account::passkey_setup`).
#[derive(Template)]
#[template(path = "passkey-setup.html")]
pub struct PasskeySetup<'a> {
    pub username: &'a str,
    pub token: &'a str,
    pub csrf: &'a str,
    pub error: &'a str,
    /// This response's CSP nonce, for the passkey script.
    pub nonce: String,
}

impl PasskeySetup<'_> {
    /// The page, allowing the passkey script (by nonce), never cached (its link is a secret).
    pub fn response(&self, status: u16) -> Response {
        let mut resp = html_with_script(status, self, Some(&self.nonce));
        resp.set_header("cache-control", "no-store");
        resp
    }
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub notice: &'a str,
    pub error: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    /// Mail can leave: offer verification.
    pub mail: bool,
    /// `GATEHOUSE_EMAIL_OTP=on` (and second factors are not off).
    pub email_otp_offered: bool,
    /// The user turned emailed sign-in codes on.
    pub email_otp: bool,
    pub name: Option<&'a str>,
    pub csrf: &'a str,
    pub mfa_off: bool,
    pub devices: Vec<AccountDevice>,
    pub recovery_remaining: i64,
    pub sessions: Vec<AccountSession>,
    pub passkeys: Vec<AccountPasskey>,
    /// The profile form's fields (name and standard claims), filled with the user's values.
    pub profile: Vec<ProfileField>,
    /// The fingerprint of those values the form sends back (`account::profile::version`).
    pub profile_version: String,
    /// The user signs in with a passkey only: no password section.
    pub passkey_only: bool,
    /// This response's CSP nonce, for the passkey script.
    pub nonce: String,
}

impl Account<'_> {
    /// The page, allowing the passkey script (by nonce).
    pub fn response(&self, status: u16) -> Response {
        html_with_script(status, self, Some(&self.nonce))
    }
}

/// One field of the account page's profile form.
pub struct ProfileField {
    /// The form field's name: a claim's name, `name`, or `address.<member>`.
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `url`, `tel`, or `textarea`.
    pub input: &'static str,
    pub autocomplete: &'static str,
    pub maxlength: usize,
    /// The expected form, shown under the field (and as its placeholder).
    pub hint: &'static str,
    pub value: String,
}

pub struct AccountPasskey {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: Option<String>,
    /// Backup eligible: a synced passkey.
    pub synced: bool,
}

pub struct AccountDevice {
    pub id: String,
    pub name: String,
    pub last_used: Option<String>,
}

pub struct AccountSession {
    pub signed_in: String,
    pub current: bool,
}

/// The confirmation page of an address-verification link (a button: mail scanners follow
/// links, and must not spend them).
#[derive(Template)]
#[template(path = "verify-email.html")]
pub struct VerifyEmail<'a> {
    pub token: &'a str,
    pub error: &'a str,
    pub done: bool,
}

/// "Forgot your password?" (`flow::stages::reset`).
#[derive(Template)]
#[template(path = "reset.html")]
pub struct Reset<'a> {
    pub client: &'a str,
    pub notice: &'a str,
    pub error: &'a str,
    pub req: &'a str,
    pub csrf: &'a str,
}

/// The dev outbox (`crate::mail::outbox`).
#[derive(Template)]
#[template(path = "outbox.html")]
pub struct Outbox<'a> {
    pub mails: &'a [crate::store::dev_outbox::StoredMail],
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutConfirm<'a> {
    pub csrf: &'a str,
    pub state: &'a str,
    pub post_logout_redirect_uri: &'a str,
    pub client_id: &'a str,
}

#[derive(Template)]
#[template(path = "signed-out.html")]
pub struct SignedOut;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    error: &'a str,
    detail: &'a str,
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn utc(unix: i64) -> String {
    let (year, month, day, secs) = civil_utc(unix);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The UTC date of `unix` and the seconds into that day. Hand-written (civil-from-days, Howard
/// Hinnant's algorithm): a few displays and a webhook timestamp do not justify a date crate in
/// the Worker.
pub fn civil_utc(unix: i64) -> (i64, i64, i64, i64) {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs)
}

/// A fresh CSP nonce (128 bits) for the scripts of one response.
pub fn csp_nonce(rng: &dyn Rng) -> Result<String, InternalError> {
    let mut raw = [0u8; 16];
    rng.fill(&mut raw)?;
    Ok(b64url(&raw))
}

/// `page` as an HTML response. Its CSP allows no script: a page with one says so (see `Login`).
pub fn html(status: u16, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => Response::html(status, body),
        // Writing escaped text into a String cannot fail; if it ever did, show nothing partial.
        Err(e) => {
            log_internal(&InternalError::new(format!("template: {e}")));
            Response::new(500)
        }
    }
}

/// `page` as an HTML response whose CSP lets the scripts carrying `nonce` run (none without one).
pub fn html_with_script(status: u16, page: &impl Template, nonce: Option<&str>) -> Response {
    let mut resp = html(status, page);
    resp.csp_nonce = nonce.map(str::to_owned);
    resp
}

impl Login<'_> {
    /// The login form; with the widget, the response allows its script (by nonce) and its frame.
    pub fn response(&self, status: u16) -> Response {
        let mut resp = html_with_script(status, self, Some(&self.nonce));
        if self.captcha.is_some() {
            resp.frame_src = vec![turnstile::CHALLENGE_ORIGIN.to_owned()];
        }
        resp
    }
}

/// The error page's HTML. It has no script, so it needs no nonce (callers have no `Ctx`).
pub fn error_page(title: &str, detail: &str) -> String {
    ErrorPage { error: title, detail }.render().unwrap_or_else(|e| {
        log_internal(&InternalError::new(format!("template: {e}")));
        String::from("Something went wrong")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login<'a>(username: &'a str, captcha: Option<Captcha<'a>>) -> Login<'a> {
        Login {
            client: "RP",
            error: "",
            req: "r",
            csrf: "c",
            username,
            reset: false,
            password: true,
            captcha,
            nonce: "n0nce".into(),
        }
    }

    #[test]
    fn reflected_values_are_escaped_and_never_read_as_template_syntax() {
        let page = login("x{{ csrf }}{% if true %}<script>\"'&", None).render().unwrap();
        assert!(
            page.contains("value=\"x{{ csrf }}{% if true %}&#60;script&#62;&#34;&#39;&#38;\""),
            "{page}"
        );
        assert!(!page.contains("<script>"), "no inline script");
    }

    #[test]
    fn the_widget_escapes_the_site_key_and_carries_the_nonce() {
        let captcha = Captcha { site_key: "k\"x" };
        let resp = login("", Some(captcha)).response(200);
        let page = String::from_utf8(resp.body).unwrap();
        assert!(
            page.contains("data-sitekey=\"k&#34;x\" data-action=\"login\""),
            "{page}"
        );
        assert!(page.contains(&format!(
            "<script src=\"{}\" nonce=\"n0nce\" async defer>",
            turnstile::SCRIPT_URL
        )));
        assert_eq!(resp.csp_nonce.as_deref(), Some("n0nce"));
        assert_eq!(resp.frame_src, vec![turnstile::CHALLENGE_ORIGIN.to_owned()]);
    }

    #[test]
    fn a_form_without_the_widget_runs_only_the_passkey_script_and_frames_nothing() {
        let resp = login("", None).response(401);
        assert_eq!(resp.status, 401);
        assert_eq!(resp.csp_nonce.as_deref(), Some("n0nce"));
        assert!(resp.frame_src.is_empty());
        let page = String::from_utf8(resp.body).unwrap();
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(page.contains("<script src=\"/.gatehouse/static/passkey.js\" nonce=\"n0nce\" defer>"));
        assert!(page.contains("autocomplete=\"username webauthn\""));
    }

    #[test]
    fn the_error_page_escapes_its_detail() {
        let page = error_page("invalid_request", "bad <b>redirect_uri</b>");
        assert!(
            page.contains("<p id=\"error-detail\">bad &#60;b&#62;redirect_uri&#60;/b&#62;</p>"),
            "{page}"
        );
        assert!(page.contains("<title>Error · Gatehouse</title>"));
    }

    #[test]
    fn utc_formats_unix_seconds_as_a_calendar_date() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59 UTC");
        // Century and 400-year boundaries inside an era (the corrections of the algorithm).
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00 UTC");
        assert_eq!(utc(10_413_791_940), "2299-12-31 23:59 UTC");
        assert_eq!(utc(10_418_889_600), "2300-03-01 00:00 UTC");
        assert_eq!(utc(13_574_606_400), "2400-02-29 12:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
    }
}
