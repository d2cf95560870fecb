//! Preparing a draft a planner opens for editing: its fabrics decoded and derived once.

use super::{FabricCache, load};
use crate::plan::{EditError, heavy, plan_band};
use crate::store::{Plan, Store};

/// Most communities a plan may have for [`warm`] to prepare (each costs a decode and a
/// derivation, about 0.2 s for a Manhattan district; the cache keeps 64 fabrics).
pub const WARM_MAX: usize = 16;

/// Prepare a draft plan for editing: each community's fabric decoded into the cache and its
/// grids derived once, so that a planner's first edit follows that derivation (~10 ms on
/// Manhattan district 105) instead of decoding and drawing every grid from scratch (~200 ms).
/// Communities outside `scope` are left, and so are plans that are not drafts or have more than
/// [`WARM_MAX`] communities; a plan already being prepared is not prepared twice at once.
/// Answers how many communities were derived.
///
/// # Errors
/// A store error, or a stored fabric that cannot be decoded.
pub async fn warm(
    store: &dyn Store,
    cache: &FabricCache,
    id: i64,
    scope: Option<&str>,
) -> Result<usize, EditError> {
    let plan = store.plan(id).await?;
    if plan.status != crate::store::PlanStatus::Draft || plan.communities.len() > WARM_MAX {
        return Ok(0);
    }
    let first = cache.1.lock().is_ok_and(|mut w| w.insert(id));
    if !first {
        return Ok(0);
    }
    let out = warm_communities(store, cache, &plan, scope).await;
    if let Ok(mut w) = cache.1.lock() {
        w.remove(&id);
    }
    out
}

async fn warm_communities(
    store: &dyn Store,
    cache: &FabricCache,
    plan: &Plan,
    scope: Option<&str>,
) -> Result<usize, EditError> {
    let mut n = 0;
    for c in &plan.communities {
        if scope.is_some_and(|s| s != c) {
            // a street scope is known only from the fabric: peek at a cached one first
            let key = (plan.id, c.clone());
            let cached = cache.0.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(l) = cached
                && crate::plan::in_scope(scope, c, l.fabric.street.as_deref()).is_err()
            {
                continue;
            }
        }
        let key = (plan.id, c.clone());
        let ready = cache
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(&key).map(|l| l.fabric.follow.is_warm()));
        if ready == Some(true) {
            continue;
        }
        let (l, st) = load(store, Some(cache), plan, c).await?;
        if crate::plan::in_scope(scope, c, l.fabric.street.as_deref()).is_err() {
            continue;
        }
        let band = plan_band(plan);
        // a grid that cannot be drawn is the edit's to report, not the preparation's
        let _ = heavy(|| crate::plan::derive(&l.fabric, &st, band));
        n += 1;
    }
    Ok(n)
}
