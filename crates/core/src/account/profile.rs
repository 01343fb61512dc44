//! `POST /account/profile`: the user edits their name and standard claims (OIDC Core §5.1), each
//! checked by `types::profile` as the admin API checks it. Not a factor change, so no recent
//! sign-in is asked; the change is an event that names the claims, never their values.

use serde_json::{json, Map, Value};

use super::{done, event, form, refused, Done};
use crate::error::Error;
use crate::http::{Params, Request, Response};
use crate::pages::ProfileField;
use crate::store::users::{self, User};
use crate::types::event_kind::EventKind;
use crate::types::profile::{self, Address, StandardClaims};
use crate::Ctx;

/// One field of the form: its name, label, input type, autocomplete token, size and hint.
type Field = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    usize,
    &'static str,
);

/// The form's fields. The address is edited by its parts; `formatted` and `phone_number_verified`
/// are an administrator's (Gatehouse sends no SMS to prove a number).
const FIELDS: &[Field] = &[
    ("name", "Full name", "text", "name", 256, ""),
    ("given_name", "Given name", "text", "given-name", profile::MAX_NAME, ""),
    (
        "family_name",
        "Family name",
        "text",
        "family-name",
        profile::MAX_NAME,
        "",
    ),
    (
        "middle_name",
        "Middle name",
        "text",
        "additional-name",
        profile::MAX_NAME,
        "",
    ),
    ("nickname", "Nickname", "text", "nickname", profile::MAX_NAME, ""),
    (
        "picture",
        "Picture (URL)",
        "url",
        "photo",
        profile::MAX_URL,
        "https://…",
    ),
    (
        "profile",
        "Profile page (URL)",
        "url",
        "url",
        profile::MAX_URL,
        "https://…",
    ),
    ("website", "Website (URL)", "url", "url", profile::MAX_URL, "https://…"),
    ("gender", "Gender", "text", "sex", profile::MAX_GENDER, ""),
    (
        "birthdate",
        "Birth date",
        "text",
        "bday",
        10,
        "YYYY-MM-DD, or the year alone",
    ),
    ("zoneinfo", "Time zone", "text", "off", 64, "Europe/Paris"),
    ("locale", "Language", "text", "language", 35, "en-US"),
    ("phone_number", "Phone number", "tel", "tel", 32, "+14155550100"),
    (
        "address.street_address",
        "Street address",
        "textarea",
        "street-address",
        profile::MAX_ADDRESS_LINES,
        "",
    ),
    (
        "address.locality",
        "City",
        "text",
        "address-level2",
        profile::MAX_ADDRESS_PART,
        "",
    ),
    (
        "address.region",
        "Region",
        "text",
        "address-level1",
        profile::MAX_ADDRESS_PART,
        "",
    ),
    (
        "address.postal_code",
        "Postal code",
        "text",
        "postal-code",
        profile::MAX_ADDRESS_PART,
        "",
    ),
    (
        "address.country",
        "Country",
        "text",
        "country-name",
        profile::MAX_ADDRESS_PART,
        "",
    ),
];

/// A short fingerprint of what the form shows (the name and the claims): the form carries it, and
/// a save whose page was loaded before another change (an administrator's, another tab's) is
/// refused rather than writing the old values back over the new.
pub(crate) fn version(user: &User) -> String {
    let shown = format!("{}\n{}", user.name.as_deref().unwrap_or(""), user.claims.to_stored());
    crate::crypto::b64url(&crate::crypto::sha256(shown.as_bytes())[..12])
}

/// The form's fields filled with `user`'s values.
pub(crate) fn fields(user: &User) -> Vec<ProfileField> {
    let address = serde_json::to_value(user.claims.address.clone().unwrap_or_default()).unwrap_or_default();
    FIELDS
        .iter()
        .map(|&(name, label, input, autocomplete, maxlength, hint)| {
            let value = match name {
                "name" => user.name.clone().unwrap_or_default(),
                _ => match name.strip_prefix("address.") {
                    Some(member) => address.get(member).and_then(Value::as_str).unwrap_or("").to_owned(),
                    None => user
                        .claims
                        .get(name)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                },
            };
            ProfileField {
                name,
                label,
                input,
                autocomplete,
                maxlength,
                hint,
                value,
            }
        })
        .collect()
}

/// What the form asks for, checked.
#[derive(Debug)]
struct Edit {
    name: Option<String>,
    claims: StandardClaims,
    /// The names of the claims that change.
    changed: Vec<String>,
}

/// The claims and name the form asks for, checked, and the names of those that changed (or the
/// message that says which field is wrong). A field the form did not send is left as it is; an
/// empty one removes the value.
fn edited(user: &User, params: &Params) -> Result<Result<Edit, String>, Error> {
    let mut claims = user.claims.clone();
    let mut changed = Vec::new();
    let label_of = |name: &str| {
        FIELDS
            .iter()
            .find(|f| f.0 == name)
            .map_or(name.to_owned(), |f| f.1.to_owned())
    };
    let mut name = user.name.clone();
    if let Some(n) = params.get_field("name")? {
        let n = n.trim();
        let n = (!n.is_empty()).then(|| n.to_owned());
        if n != name {
            // Checked only when it changes: a name set before today's rules must not block every
            // other edit of the form.
            if let Err(why) = profile::check_display_name(n.as_deref().unwrap_or("")) {
                return Ok(Err(why.replacen("name", "Full name", 1)));
            }
            changed.push("name".to_owned());
            name = n;
        }
    }
    // The claims the form sent (the name is not one: it was handled above), the address's
    // parts apart.
    let mut patch = Map::new();
    let mut address = Map::new();
    for &(field, ..) in FIELDS.iter().filter(|f| f.0 != "name") {
        let Some(v) = params.get_field(field)? else {
            continue;
        };
        match field.strip_prefix("address.") {
            Some(member) => address.insert(member.to_owned(), json!(v.trim())),
            None => patch.insert(field.to_owned(), json!(v.trim())),
        };
    }
    if let Err(e) = claims.apply(&patch) {
        return Ok(Err(format!("{} {}", label_of(&e.claim), e.rule)));
    }
    if !address.is_empty() {
        // The parts are what the page edits: a `formatted` form an administrator set stays only
        // while they do not change.
        let mut sent = StandardClaims::default();
        if let Err(e) = sent.set("address", &Value::Object(address)) {
            return Ok(Err(format!("{} {}", label_of(&e.claim), e.rule)));
        }
        let new_parts = sent.address.unwrap_or_default();
        let old_parts = Address {
            formatted: None,
            ..user.claims.address.clone().unwrap_or_default()
        };
        if new_parts != old_parts {
            claims.address = (new_parts != Address::default()).then_some(new_parts);
        }
    }
    for n in profile::NAMES {
        if user.claims.get(n) != claims.get(n) {
            changed.push((*n).to_owned());
        }
    }
    Ok(Ok(Edit { name, claims, changed }))
}

/// `POST /account/profile`.
pub async fn save(ctx: &Ctx<'_>, req: &Request) -> Response {
    form(ctx, req, false, |user, _, params| async move {
        if params.get("version")? != Some(version(&user).as_str()) {
            return Ok(refused(
                "Your profile changed since this page was loaded. Here it is as it is now: make your change again.",
                409,
            ));
        }
        let Edit { name, claims, changed } = match edited(&user, &params)? {
            Ok(e) => e,
            Err(why) => return Ok(refused(&why, 400)),
        };
        if changed.is_empty() {
            return Ok(done("Nothing changed."));
        }
        let now = ctx.clock.now();
        ctx.db
            .batch(&[
                users::set_profile_statement(&user.id, name.as_deref(), &claims.to_stored(), now),
                event(
                    ctx,
                    req,
                    EventKind::ProfileChanged,
                    &user.id,
                    json!({ "claims": changed }),
                )?,
            ])
            .await?;
        // Post/redirect/get: the page shows what was stored, and a reload sends nothing again.
        Ok(Done::Other(Response::redirect(303, "/account?done=profile")))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        crate::store::users::sample(
            json!({"given_name": "Ann", "phone_number": "+14155550100", "phone_number_verified": true,
                       "address": {"formatted": "1 Main St, Springfield", "street_address": "1 Main St",
                                   "locality": "Springfield"}}),
        )
    }

    /// The form as the page sends it: every field, with `changes` over the user's values.
    fn submitted(u: &User, changes: &[(&str, &str)]) -> Params {
        let mut pairs: Vec<(String, String)> = fields(u).into_iter().map(|f| (f.name.to_owned(), f.value)).collect();
        for (k, v) in changes {
            match pairs.iter_mut().find(|(n, _)| n == k) {
                Some(p) => p.1 = (*v).to_owned(),
                None => pairs.push(((*k).to_owned(), (*v).to_owned())),
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Params::parse(body.as_bytes())
    }

    #[test]
    fn the_form_shows_the_users_values() {
        let u = user();
        let f = fields(&u);
        let value = |n: &str| f.iter().find(|x| x.name == n).map(|x| x.value.clone()).unwrap();
        assert_eq!(value("name"), "Ann Lee");
        assert_eq!(value("given_name"), "Ann");
        assert_eq!(value("phone_number"), "+14155550100");
        assert_eq!(value("address.locality"), "Springfield");
        assert_eq!(value("family_name"), "");
        assert_eq!(f.len(), FIELDS.len());
    }

    #[test]
    fn the_same_form_sent_back_changes_nothing() {
        let u = user();
        let Edit { name, claims, changed } = edited(&u, &submitted(&u, &[])).unwrap().unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(claims, u.claims);
        assert_eq!(name, u.name);
    }

    #[test]
    fn edits_are_checked_and_named() {
        let u = user();
        let Edit { name, claims, changed } = edited(
            &u,
            &submitted(
                &u,
                &[
                    ("name", " Ann Q. Lee "),
                    ("given_name", ""),
                    ("locale", "fr-FR"),
                    ("phone_number", "+33123456789"),
                ],
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(name.as_deref(), Some("Ann Q. Lee"));
        assert_eq!(claims.given_name, None);
        assert_eq!(claims.locale.as_deref(), Some("fr-FR"));
        // A new number is not verified.
        assert!(!claims.phone_number_verified);
        assert_eq!(
            changed,
            vec!["name", "given_name", "locale", "phone_number", "phone_number_verified"]
        );
        let why = edited(&u, &submitted(&u, &[("birthdate", "31/12/1990")]))
            .unwrap()
            .unwrap_err();
        assert_eq!(why, "Birth date must be YYYY-MM-DD, 0000-MM-DD or YYYY (ISO 8601)");
        let why = edited(&u, &submitted(&u, &[("address.country", &"x".repeat(129))]))
            .unwrap()
            .unwrap_err();
        assert_eq!(why, "Country must be at most 128 bytes");
        let why = edited(&u, &submitted(&u, &[("name", "a\u{7}")])).unwrap().unwrap_err();
        assert_eq!(why, "Full name must be at most 256 bytes without control characters");
    }

    #[test]
    fn the_address_is_edited_by_its_parts_and_a_stale_formatted_form_goes() {
        let u = user();
        // Unchanged parts keep the administrator's formatted form.
        let Edit { claims, changed, .. } = edited(&u, &submitted(&u, &[])).unwrap().unwrap();
        assert_eq!(
            claims.address.unwrap().formatted.as_deref(),
            Some("1 Main St, Springfield")
        );
        assert!(changed.is_empty());
        let Edit { claims, changed, .. } = edited(&u, &submitted(&u, &[("address.locality", "Shelbyville")]))
            .unwrap()
            .unwrap();
        let a = claims.address.unwrap();
        assert_eq!(a.locality.as_deref(), Some("Shelbyville"));
        assert_eq!(a.street_address.as_deref(), Some("1 Main St"));
        assert_eq!(a.formatted, None);
        assert_eq!(changed, vec!["address"]);
        let Edit { claims, .. } = edited(
            &u,
            &submitted(&u, &[("address.locality", ""), ("address.street_address", "")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(claims.address, None);
    }

    #[test]
    fn fields_the_form_did_not_send_stay() {
        let u = user();
        let Edit { name, claims, changed } = edited(&u, &Params::parse(b"nickname=annie")).unwrap().unwrap();
        assert_eq!(name, u.name);
        assert_eq!(claims.given_name.as_deref(), Some("Ann"));
        assert_eq!(claims.address, u.claims.address);
        assert_eq!(changed, vec!["nickname"]);
    }
}
