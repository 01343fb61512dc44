//! `/admin/api/users[/{id}]`: create, read, update (including disable and password), delete;
//! `/admin/api/users/{id}/unlock` ends a lockout. Password hashes never appear in a response.

use serde::Deserialize;
use serde_json::json;

use crate::admin::{audit, audit_statement, json_body, not_found, paging};
use crate::crypto::random_id;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::http::{Request, Response};
use crate::password;
use crate::policy;
use crate::store::users::{self, User, UserView};
use crate::store::{auth_requests, email_tokens, sessions};
use crate::types::event_kind::EventKind;
use crate::types::profile::{self, StandardClaims};
use crate::Ctx;

/// The prefix of every user id (and so of every user `sub`); client ids may not use it.
pub const USER_ID_PREFIX: &str = "usr_";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    email: String,
    password: String,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    groups: Vec<String>,
    /// Password sign-in refused: the user needs a passkey (a setup link gives the first one).
    #[serde(default)]
    passkey_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
    email_verified: Option<bool>,
    groups: Option<Vec<String>>,
    disabled: Option<bool>,
    passkey_only: Option<bool>,
}

fn check_username(u: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&u.len()) && u.chars().all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request("username must be 1-64 characters of letters, digits and ._-@+").into())
    }
}

fn check_email(e: &str) -> Result<(), Error> {
    if crate::types::email::is_valid(e) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request("email is not a valid address").into())
    }
}

fn check_name(n: &str) -> Result<(), Error> {
    profile::check_display_name(n).map_err(|why| OAuthError::invalid_request(why).into())
}

fn check_groups(groups: Vec<String>) -> Result<Vec<String>, Error> {
    let ok = groups.len() <= 64
        && groups
            .iter()
            .all(|g| (1..=64).contains(&g.len()) && g.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c)));
    if ok {
        Ok(groups)
    } else {
        Err(
            OAuthError::invalid_request("groups must be up to 64 names of 1-64 characters of letters, digits and ._-:")
                .into(),
        )
    }
}

/// An administrator's password meets the same policy as any other (`policy::password`): the
/// shorter minimum when the user has a second factor, the history of an existing user, the
/// strength score against the account's own words, the breach check. A check that cannot be made
/// is 503: the same request may pass later.
async fn check_password(ctx: &Ctx<'_>, password: &str, user: Option<&User>, words: Vec<String>) -> Result<(), Error> {
    let has_second_factor = match user {
        Some(u) => crate::flow::engine::second_factor_backs_password(ctx, u).await?,
        None => false,
    };
    let owner = policy::password::Owner {
        user,
        words,
        has_second_factor,
    };
    match policy::password::check_new(ctx, password, owner).await? {
        Ok(()) => Ok(()),
        Err(refusal @ policy::password::Refusal::Unchecked) => {
            Err(OAuthError::new(ErrorCode::TemporarilyUnavailable, refusal.message()).into())
        }
        Err(refusal) => Err(OAuthError::invalid_request(refusal.message()).into()),
    }
}

/// A body's members split in two: the standard claims (`types::profile::NAMES`, applied to
/// `claims`, each checked), and the rest, read as `T` (which refuses unknown members). The claims
/// are members of the user object itself, under their OIDC names, as userinfo returns them.
fn with_claims<T: serde::de::DeserializeOwned>(req: &Request, claims: &mut StandardClaims) -> Result<(T, bool), Error> {
    let mut body: serde_json::Map<String, serde_json::Value> = json_body(req)?;
    let mut patch = serde_json::Map::new();
    for name in profile::NAMES {
        if let Some(v) = body.remove(*name) {
            patch.insert((*name).to_owned(), v);
        }
    }
    let changed = claims
        .apply(&patch)
        .map_err(|e| Error::from(OAuthError::invalid_request(e.to_string())))?;
    let rest = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| OAuthError::invalid_request(format!("invalid JSON body: {e}")))?;
    Ok((rest, changed))
}

fn conflict() -> Error {
    OAuthError::new(ErrorCode::Conflict, "username is already taken").into()
}

pub async fn list(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let (limit, offset) = paging(req);
    let list: Vec<UserView> = users::list(ctx.db, limit, offset)
        .await?
        .iter()
        .map(UserView::from)
        .collect();
    Ok(Response::json(200, &json!({ "users": list })))
}

pub async fn create(ctx: &Ctx<'_>, req: &Request) -> Result<Response, Error> {
    let mut claims = StandardClaims::default();
    let (new, _): (NewUser, bool) = with_claims(req, &mut claims)?;
    check_username(&new.username)?;
    check_email(&new.email)?;
    if let Some(n) = &new.name {
        check_name(n)?;
    }
    let groups = check_groups(new.groups)?;
    let words = policy::password::strength::account_words(&new.username, &new.email, new.name.as_deref());
    check_password(ctx, &new.password, None, words).await?;
    let now = ctx.clock.now();
    let user = User {
        id: random_id(ctx.rng, USER_ID_PREFIX)?,
        username: new.username,
        email: new.email,
        email_verified: new.email_verified,
        email_otp: false,
        name: new.name.filter(|n| !n.trim().is_empty()),
        password_hash: password::hash(&new.password, ctx.rng)?,
        groups,
        disabled: false,
        passkey_only: new.passkey_only,
        created_at: now,
        updated_at: now,
        password_changed_at: now,
        claims,
    };
    if users::username_taken(ctx.db, &user.username, &user.id).await? {
        return Err(conflict());
    }
    // The user and the audit entry land together or not at all (a racing create of the same
    // username fails the batch on the unique index and writes nothing).
    ctx.db
        .batch(&[
            users::insert_statement(&user),
            audit_statement(ctx, EventKind::AdminUserCreated, Some(&user.id), None)?,
        ])
        .await?;
    Ok(Response::json(201, &UserView::from(&user)))
}

pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let user = users::by_id(ctx.db, id).await?.ok_or_else(|| not_found("user"))?;
    Ok(Response::json(200, &UserView::from(&user)))
}

pub async fn patch(ctx: &Ctx<'_>, req: &Request, id: &str) -> Result<Response, Error> {
    let mut user = users::by_id(ctx.db, id).await?.ok_or_else(|| not_found("user"))?;
    // The claims merge into what was read (the whole column is written back): an edit racing
    // another admin's edit of the same user's claims keeps the later one's.
    let (p, claims_changed): (UserPatch, bool) = with_claims(req, &mut user.claims)?;
    let was_passkey_only = crate::flow::engine::passkey_only(ctx, &user);
    let now = ctx.clock.now();
    // Only the fields asked for are written: a whole-row write would undo a disable or a
    // password reset that landed between this read and this write.
    let mut changed = users::Changes::default();
    if let Some(u) = p.username {
        check_username(&u)?;
        changed.set("username", &u);
        user.username = u;
    }
    let email_changed = p.email.as_ref().is_some_and(|e| *e != user.email);
    if let Some(e) = p.email {
        check_email(&e)?;
        changed.set("email", &e);
        user.email = e;
    }
    if email_changed && p.email_verified.is_none() {
        // A new address is unverified until proved, unless the administrator says otherwise.
        changed.set("email_verified", false);
        user.email_verified = false;
    }
    if let Some(n) = p.name {
        check_name(&n)?;
        user.name = Some(n).filter(|n| !n.trim().is_empty());
        changed.set("name", user.name.clone());
    }
    if claims_changed {
        changed.set("claims", user.claims.to_stored());
    }
    if let Some(g) = p.groups {
        user.groups = check_groups(g)?;
        changed.set("groups", users::groups_json(&user));
    }
    if let Some(v) = p.email_verified {
        changed.set("email_verified", v);
        user.email_verified = v;
    }
    let password_changed = p.password.is_some();
    let mut history = Vec::new();
    if let Some(pw) = p.password {
        let words = policy::password::strength::user_words(&user);
        check_password(ctx, &pw, Some(&user), words).await?;
        history = policy::password::history_statements(ctx, &user, now);
        user.password_hash = password::hash(&pw, ctx.rng)?;
        user.password_changed_at = now;
        changed.set("password_hash", &user.password_hash);
        changed.set("password_changed_at", now);
    }
    let disabling = p.disabled == Some(true) && !user.disabled;
    if let Some(d) = p.disabled {
        changed.set("disabled", d);
        user.disabled = d;
    }
    if let Some(p) = p.passkey_only {
        changed.set("passkey_only", p);
        user.passkey_only = p;
    }
    user.updated_at = now;
    changed.set("updated_at", now);
    // Made passkey-only (by the flag, or by joining a passkey-only group): sessions signed in
    // with a password do not meet the new rule, and they end with the tokens issued from them.
    let to_passkey_only = !was_passkey_only && crate::flow::engine::passkey_only(ctx, &user);
    if users::username_taken(ctx.db, &user.username, &user.id).await? {
        return Err(conflict());
    }
    // One batch: the new hash (or the disable) never lands without ending every session and
    // revoking every token, nor without its audit entry.
    let update = changed.statement(&user.id);
    let mut statements = vec![(update.0.as_str(), update.1)];
    statements.extend(history);
    if disabling || password_changed || to_passkey_only {
        statements.extend(sessions::end_all_for_user_statements(&user.id, now));
    }
    if email_changed {
        // A reset in progress (its link already opened) must not outlive the address. (With a
        // new password or a disable the statements above delete the flows already; the second
        // delete finds nothing.)
        statements.push(auth_requests::delete_of_user_statement(&user.id, ""));
    }
    if email_changed || password_changed || disabling {
        // Links and codes sent before (to the old address, for the old password) stop working.
        statements.push(email_tokens::end_of_user_statement(
            &user.id,
            &[
                email_tokens::Kind::SignInCode,
                email_tokens::Kind::Reset,
                email_tokens::Kind::Verify,
            ],
            now,
        ));
    }
    if disabling {
        // A setup link must not come back to life when the user is enabled again.
        statements.push(email_tokens::end_of_user_statement(
            &user.id,
            &[email_tokens::Kind::PasskeySetup],
            now,
        ));
    }
    statements.push(audit_statement(ctx, EventKind::AdminUserUpdated, Some(&user.id), None)?);
    ctx.db.batch(&statements).await?;
    Ok(Response::json(200, &UserView::from(&user)))
}

pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    if users::by_id(ctx.db, id).await?.is_none() {
        return Err(not_found("user"));
    }
    let mut statements = users::delete_statements(id, ctx.clock.now());
    statements.push(audit_statement(ctx, EventKind::AdminUserDeleted, Some(id), None)?);
    ctx.db.batch(&statements).await?;
    Ok(Response::new(204))
}

/// Ends the account's lockout and forgets its failed attempts and bad reputation (the admin
/// vouches for the account). Keyed by username, as the lockout is.
pub async fn unlock(ctx: &Ctx<'_>, id: &str) -> Result<Response, Error> {
    let user = users::by_id(ctx.db, id).await?.ok_or_else(|| not_found("user"))?;
    let rules = &ctx.settings.policy;
    // The counters live in a Durable Object, the log in D1: no batch spans both. Unlock first,
    // so the log never claims an unlock that did not happen.
    ctx.counters
        .unlock(&policy::user_key(&user.username), &rules.reputation)
        .await?;
    audit(ctx, EventKind::AdminUserUnlocked, Some(&user.id), None).await?;
    Ok(Response::json(200, &UserView::from(&user)))
}
