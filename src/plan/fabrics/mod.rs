//! Each community's fabric in a plan: loaded from the store (decoded once and cached), made on
//! first use for plans older than fabrics, kept with a regrid's plan.

use super::state::{self, State};
use super::{EditError, heavy, plan_band};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::store::{FabricRow, GridRecord, Plan, Store, StoreError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Decoded fabrics by (plan, community): a fabric never changes once made; and the plans
/// being prepared for editing ([`warm`]).
#[derive(Default)]
pub struct FabricCache(
    pub(super) Mutex<HashMap<(i64, String), Arc<Loaded>>>,
    Mutex<HashSet<i64>>,
);

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
                && super::in_scope(scope, c, l.fabric.street.as_deref()).is_err()
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
        if super::in_scope(scope, c, l.fabric.street.as_deref()).is_err() {
            continue;
        }
        let band = plan_band(plan);
        // a grid that cannot be drawn is the edit's to report, not the preparation's
        let _ = heavy(|| super::derive(&l.fabric, &st, band));
        n += 1;
    }
    Ok(n)
}

/// A fabric with its building index.
pub struct Loaded {
    pub fabric: Fabric,
    pub building_index: HashMap<String, u32>,
}

impl Loaded {
    fn new(fabric: Fabric) -> Loaded {
        let building_index = fabric
            .buildings
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id.clone(), i as u32))
            .collect();
        Loaded {
            fabric,
            building_index,
        }
    }
}

/// The fabric and state of a community in a plan; made (and stored) on first use from the
/// store's layers, the plan's assignment and its grid polygons.
///
/// # Errors
/// A community not in the plan, or a store error.
pub async fn load(
    store: &dyn Store,
    cache: Option<&FabricCache>,
    plan: &Plan,
    community: &str,
) -> Result<(Arc<Loaded>, State), EditError> {
    if !plan.communities.iter().any(|c| c == community) {
        return Err(EditError::NotFound(format!(
            "community {community} is not in plan {}",
            plan.id
        )));
    }
    let key = (plan.id, community.to_string());
    let hit = cache.and_then(|c| c.0.lock().ok().and_then(|m| m.get(&key).cloned()));
    if let Some(l) = hit
        && let Some(state) = store.plan_state(plan.id, community).await?
    {
        let st = State::from_text(&state, l.fabric.n_atoms()).map_err(StoreError::Backend)?;
        return Ok((l, st));
    }
    let row = match store.plan_fabric(plan.id, community).await? {
        Some(r) => r,
        None => {
            let row = first_fabric(store, plan, community).await?;
            store.save_plan_fabric(plan.id, community, row).await?;
            store
                .plan_fabric(plan.id, community)
                .await?
                .ok_or_else(|| StoreError::Backend("fabric not kept".into()))?
        }
    };
    let (f, st) = heavy(|| decode_row(&row))?;
    let loaded = Arc::new(Loaded::new(f));
    if let Some(c) = cache
        && let Ok(mut m) = c.0.lock()
    {
        if m.len() > 64 {
            m.clear();
        }
        m.insert(key, loaded.clone());
    }
    Ok((loaded, st))
}

/// A stored fabric and its state, decoded.
fn decode_row(row: &FabricRow) -> Result<(Fabric, State), StoreError> {
    let f = Fabric::decode(&row.fabric).map_err(|e| StoreError::Backend(e.to_string()))?;
    let st = State::from_text(&row.state, f.n_atoms()).map_err(StoreError::Backend)?;
    Ok((f, st))
}

/// A community's stored fabric row, or the fabric just made for it (a plan older than fabrics).
pub enum Stored {
    Row(FabricRow),
    Made(Arc<Loaded>, State),
}

impl Stored {
    /// The digest of the inputs the fabric was made from, when it was kept (without decoding).
    #[must_use]
    pub fn inputs(&self) -> Option<[u8; 32]> {
        match self {
            Stored::Row(r) => Fabric::stored_inputs(&r.fabric),
            Stored::Made(l, _) => l.fabric.inputs,
        }
    }

    /// How much work redrawing it is, roughly (its stored size; a fabric just made: first).
    #[must_use]
    pub fn weight(&self) -> usize {
        match self {
            Stored::Row(r) => r.fabric.len(),
            Stored::Made(..) => usize::MAX,
        }
    }

    /// Decoded.
    ///
    /// # Errors
    /// Stored bytes that are not a fabric and its state.
    pub fn decode(self) -> Result<(Arc<Loaded>, State), StoreError> {
        match self {
            Stored::Made(l, st) => Ok((l, st)),
            Stored::Row(row) => decode_row(&row).map(|(f, st)| (Arc::new(Loaded::new(f)), st)),
        }
    }
}

/// The stored fabrics of several communities of a plan (uncached, not decoded); one not made
/// yet is made as [`load`] makes it.
///
/// # Errors
/// As [`load`].
pub async fn rows_of(
    store: &dyn Store,
    plan: &Plan,
    communities: &[String],
) -> Result<Vec<Stored>, EditError> {
    let mut rows = Vec::with_capacity(communities.len());
    for c in communities {
        rows.push(match store.plan_fabric(plan.id, c).await? {
            Some(row) => Stored::Row(row),
            None => {
                let (l, st) = load(store, None, plan, c).await?;
                Stored::Made(l, st)
            }
        });
    }
    Ok(rows)
}

/// Keep the fabrics of a regrid with the plan made from it.
///
/// # Errors
/// A store error.
pub async fn save_fabrics(
    store: &dyn Store,
    plan: i64,
    fabrics: &[crate::partition::FabricOut],
) -> Result<(), StoreError> {
    // the fabrics deflated in parallel (the bulk of this), then written in order
    let encoded: Vec<Vec<u8>> = heavy(|| {
        use rayon::prelude::*;
        fabrics.par_iter().map(|fo| fo.fabric.encode()).collect()
    });
    for (fo, fabric) in fabrics.iter().zip(encoded) {
        let mut codes: Vec<&String> = fo.atom_codes.iter().collect();
        codes.sort();
        codes.dedup();
        let st = State {
            grids: codes
                .iter()
                .map(|c| state::Slot {
                    code: (*c).clone(),
                    locked: false,
                })
                .collect(),
            atoms: fo
                .atom_codes
                .iter()
                .map(|c| codes.binary_search(&c).map_or(0, |i| i as u32))
                .collect(),
        };
        let row = FabricRow {
            fabric,
            state: st.to_text(),
        };
        store
            .save_plan_fabric(plan, &fo.fabric.community, row)
            .await?;
    }
    Ok(())
}

mod restore;
pub(super) use restore::*;
