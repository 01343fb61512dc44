//! The messages, from the askama templates in `www/templates/mail/`: plain text, and simple
//! HTML of the same content (escaped like the pages). No images, no remote resources, no
//! tracking; every link is on the issuer, built here from a fixed path and a token, so a mail
//! never sends anyone somewhere a request chose.

use askama::Template;

use super::{Mail, MailKind};
use crate::error::InternalError;
use crate::http::form_encode;

#[derive(Template)]
#[template(path = "mail/sign-in-code.txt")]
struct SignInCodeText<'a> {
    site: &'a str,
    code: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "mail/sign-in-code.html")]
struct SignInCodeHtml<'a> {
    site: &'a str,
    code: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "mail/password-reset.txt")]
struct PasswordResetText<'a> {
    site: &'a str,
    username: &'a str,
    link: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "mail/password-reset.html")]
struct PasswordResetHtml<'a> {
    site: &'a str,
    username: &'a str,
    link: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "mail/password-changed.txt")]
struct PasswordChangedText<'a> {
    site: &'a str,
    username: &'a str,
    when: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password-changed.html")]
struct PasswordChangedHtml<'a> {
    site: &'a str,
    username: &'a str,
    when: &'a str,
}

#[derive(Template)]
#[template(path = "mail/passkey-added.txt")]
struct PasskeyAddedText<'a> {
    site: &'a str,
    username: &'a str,
    name: &'a str,
    when: &'a str,
}

#[derive(Template)]
#[template(path = "mail/passkey-added.html")]
struct PasskeyAddedHtml<'a> {
    site: &'a str,
    username: &'a str,
    name: &'a str,
    when: &'a str,
}

#[derive(Template)]
#[template(path = "mail/notification.txt")]
struct NotificationText<'a> {
    site: &'a str,
    intro: &'a str,
    lines: &'a [(String, String)],
    advice: &'a str,
}

#[derive(Template)]
#[template(path = "mail/notification.html")]
struct NotificationHtml<'a> {
    site: &'a str,
    subject: &'a str,
    intro: &'a str,
    lines: &'a [(String, String)],
    advice: &'a str,
}

#[derive(Template)]
#[template(path = "mail/verify-address.txt")]
struct VerifyAddressText<'a> {
    site: &'a str,
    username: &'a str,
    address: &'a str,
    link: &'a str,
    hours: i64,
}

#[derive(Template)]
#[template(path = "mail/verify-address.html")]
struct VerifyAddressHtml<'a> {
    site: &'a str,
    username: &'a str,
    address: &'a str,
    link: &'a str,
    hours: i64,
}

#[derive(Template)]
#[template(path = "mail/address-changed.txt")]
struct AddressChangedText<'a> {
    site: &'a str,
    username: &'a str,
    new_address: &'a str,
    when: &'a str,
}

#[derive(Template)]
#[template(path = "mail/address-changed.html")]
struct AddressChangedHtml<'a> {
    site: &'a str,
    username: &'a str,
    new_address: &'a str,
    when: &'a str,
}

fn render(t: &impl Template) -> Result<String, InternalError> {
    t.render()
        .map_err(|e| InternalError::new(format!("mail template: {e}")))
}

/// `{issuer}{path}?name=value&…`, the values form-encoded.
pub fn link(issuer: &str, path: &str, query: &[(&str, &str)]) -> String {
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect();
    format!("{}{path}?{}", issuer.trim_end_matches('/'), q.join("&"))
}

pub fn sign_in_code(to: &str, site: &str, code: &str, minutes: i64) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::SignInCode,
        to: to.to_owned(),
        subject: format!("Your sign-in code for {site}"),
        text: render(&SignInCodeText { site, code, minutes })?,
        html: render(&SignInCodeHtml { site, code, minutes })?,
    })
}

pub fn password_reset(to: &str, site: &str, username: &str, link: &str, minutes: i64) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::PasswordReset,
        to: to.to_owned(),
        subject: format!("Reset your password on {site}"),
        text: render(&PasswordResetText {
            site,
            username,
            link,
            minutes,
        })?,
        html: render(&PasswordResetHtml {
            site,
            username,
            link,
            minutes,
        })?,
    })
}

pub fn password_changed(to: &str, site: &str, username: &str, when: &str) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::PasswordChanged,
        to: to.to_owned(),
        subject: format!("Your password on {site} was changed"),
        text: render(&PasswordChangedText { site, username, when })?,
        html: render(&PasswordChangedHtml { site, username, when })?,
    })
}

/// A passkey signs in without the password: whoever added one with a stolen password keeps a way
/// in after a reset, so the owner of the address is told at once.
pub fn passkey_added(to: &str, site: &str, username: &str, name: &str, when: &str) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::PasskeyAdded,
        to: to.to_owned(),
        subject: format!("A passkey was added to your account on {site}"),
        text: render(&PasskeyAddedText {
            site,
            username,
            name,
            when,
        })?,
        html: render(&PasskeyAddedHtml {
            site,
            username,
            name,
            when,
        })?,
    })
}

/// A notification rule's mail (`events::delivery`): a sentence, the event's facts as lines,
/// and what to do about it. No links: the reader acts on the site they know.
pub fn notification(
    to: &str,
    site: &str,
    subject: &str,
    intro: &str,
    lines: &[(String, String)],
    advice: &str,
) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::Notification,
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: render(&NotificationText {
            site,
            intro,
            lines,
            advice,
        })?,
        html: render(&NotificationHtml {
            site,
            subject,
            intro,
            lines,
            advice,
        })?,
    })
}

pub fn verify_address(to: &str, site: &str, username: &str, link: &str, hours: i64) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::VerifyAddress,
        to: to.to_owned(),
        subject: format!("Confirm your email address for {site}"),
        text: render(&VerifyAddressText {
            site,
            username,
            address: to,
            link,
            hours,
        })?,
        html: render(&VerifyAddressHtml {
            site,
            username,
            address: to,
            link,
            hours,
        })?,
    })
}

/// To the old address, when the user changed it: if it was not them, they learn it there.
pub fn address_changed(
    to: &str,
    site: &str,
    username: &str,
    new_address: &str,
    when: &str,
) -> Result<Mail, InternalError> {
    Ok(Mail {
        kind: MailKind::AddressChanged,
        to: to.to_owned(),
        subject: format!("Your email address on {site} was changed"),
        text: render(&AddressChangedText {
            site,
            username,
            new_address,
            when,
        })?,
        html: render(&AddressChangedHtml {
            site,
            username,
            new_address,
            when,
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_on_the_issuer_with_its_values_encoded() {
        assert_eq!(
            link(
                "https://id.example.com/",
                "/oauth2/reset/confirm",
                &[("req", "a b"), ("token", "x&y")]
            ),
            "https://id.example.com/oauth2/reset/confirm?req=a+b&token=x%26y"
        );
    }

    #[test]
    fn html_escapes_what_a_user_chose_and_text_keeps_it() {
        let m = password_reset(
            "ann@example.com",
            "id.example.com",
            "<b>ann</b>",
            "https://id.example.com/r?t=1&u=2",
            15,
        )
        .unwrap();
        assert!(m.html.contains("&#60;b&#62;ann&#60;/b&#62;") || m.html.contains("&lt;b&gt;ann"));
        assert!(!m.html.contains("<b>ann"));
        assert!(m.text.contains("\"<b>ann</b>\""));
        assert!(m.text.contains("https://id.example.com/r?t=1&u=2"));
        assert!(m.text.contains("15 minutes"));
        assert_eq!(m.subject, "Reset your password on id.example.com");
        for body in [&m.text, &m.html] {
            assert!(!body.contains("<img"), "no tracking pixels");
        }
    }

    #[test]
    fn each_message_carries_its_secret_and_the_site() {
        let code = sign_in_code("a@example.com", "id.example.com", "123456", 10).unwrap();
        assert!(code.text.contains("123456") && code.html.contains("123456"));
        assert!(code.text.contains("10 minutes"));
        let v = verify_address(
            "a@example.com",
            "id.example.com",
            "ann",
            "https://id.example.com/v?token=T",
            24,
        )
        .unwrap();
        assert!(v.text.contains("https://id.example.com/v?token=T") && v.html.contains("a@example.com"));
        let c = password_changed("a@example.com", "id.example.com", "ann", "2027-01-15 08:00 UTC").unwrap();
        assert!(c.text.contains("2027-01-15 08:00 UTC"));
        assert_eq!(c.kind, MailKind::PasswordChanged);
        for m in [&code, &v, &c] {
            assert!(m.html.contains("id.example.com") && m.text.contains("id.example.com"));
        }
    }
}
