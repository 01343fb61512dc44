//! Where bindings meet requests: the per-isolate cache of what is bound to a target, and the
//! verdict on a user and a request for the targets a sign-in, a gateway request or the account
//! page must pass (`binding::evaluate` is the pure part).
//!
//! The cache keeps what one query found for a set of targets for [`CACHE_MS`], at most
//! [`CACHE_ENTRIES`] sets. That age is the longest a change to a binding, a policy or a mode takes
//! to apply on an isolate other than the one that made it (the admin API empties this isolate's
//! cache on every change). It keeps the gateway's proxied requests from querying D1 for bindings.

use std::cell::RefCell;
use std::rc::Rc;

use super::binding::{self, Target, Verdict};
use super::expression::{Facts, TargetFacts};
use crate::error::InternalError;
use crate::store::policies::{self, TargetBinding};
use crate::Ctx;

pub const CACHE_MS: i64 = 30_000;
const CACHE_ENTRIES: usize = 256;

type Entry = (String, i64, Rc<Vec<TargetBinding>>);

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Forgets every cached set (after the admin API changed a binding, a policy or a mode).
pub fn forget() {
    CACHE.with(|c| c.borrow_mut().clear());
}

/// The enabled bindings of `targets` (with their policies' sources and modes), from the cache
/// while it is fresh.
pub async fn bound(ctx: &Ctx<'_>, targets: &[String]) -> Result<Rc<Vec<TargetBinding>>, InternalError> {
    let key = targets.join("\n");
    let now = ctx.clock.now_ms();
    let hit = CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, at, _)| *k == key && (0..CACHE_MS).contains(&(now - at)))
            .map(|(_, _, v)| v.clone())
    });
    if let Some(found) = hit {
        return Ok(found);
    }
    let found = Rc::new(policies::for_targets(ctx.db, targets).await?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|(k, _, _)| *k != key);
        c.insert(0, (key, now, found.clone()));
        c.truncate(CACHE_ENTRIES);
    });
    Ok(found)
}

/// The verdict of one target's bindings among `found` on `facts`.
pub fn verdict(ctx: &Ctx<'_>, found: &[TargetBinding], target: &str, facts: &Facts) -> Verdict {
    let of_target: Vec<&TargetBinding> = found.iter().filter(|b| b.stored.target == target).collect();
    let mode = of_target.first().map(|b| b.mode).unwrap_or_default();
    let bindings: Vec<binding::Binding> = of_target
        .iter()
        .map(|b| b.stored.to_binding(super::policy_source(ctx, b)))
        .collect();
    binding::evaluate(&bindings, mode, facts)
}

/// Puts the flow's purpose and its client or app (`target`, named `target_name`) in `facts`.
pub fn describe(facts: &mut Facts, purpose: &str, target: Option<&Target>, target_name: &str) {
    facts.flow.purpose = purpose.to_owned();
    let t = |id: &str| TargetFacts {
        id: id.to_owned(),
        name: target_name.to_owned(),
    };
    match target {
        Some(Target::Client(id)) => facts.client = t(id),
        Some(Target::App(id)) => facts.app = t(id),
        _ => {}
    }
}

/// The access targets of a purpose and its client or app: the flow's, then the client's or app's.
pub fn access_keys(purpose: &str, target: Option<&Target>) -> Vec<String> {
    let mut keys = vec![Target::Flow(purpose.to_owned()).key()];
    keys.extend(target.map(Target::key));
    keys
}

/// The first of `keys` whose bindings among `found` refuse on `facts`, with its verdict.
pub fn first_refusing(
    ctx: &Ctx<'_>,
    found: &[TargetBinding],
    keys: &[String],
    facts: &Facts,
) -> Option<(String, Verdict)> {
    keys.iter().find_map(|key| {
        let v = verdict(ctx, found, key, facts);
        (!v.passed).then(|| (key.clone(), v))
    })
}

/// [`first_refusing`] for a request outside a sign-in flow (a proxied request, the account page):
/// the bindings of `purpose` and of `target` on this user and request. `None`: they pass.
pub async fn refusing(
    ctx: &Ctx<'_>,
    req: &crate::http::Request,
    user: &crate::store::users::User,
    purpose: &str,
    target: Option<&Target>,
    target_name: &str,
) -> Result<Option<(String, Verdict)>, InternalError> {
    let keys = access_keys(purpose, target);
    let found = bound(ctx, &keys).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let mut facts = super::facts(ctx, req, Some(user));
    super::add_reputation(ctx, req, &mut facts, &found).await?;
    describe(&mut facts, purpose, target, target_name);
    Ok(first_refusing(ctx, &found, &keys, &facts))
}
