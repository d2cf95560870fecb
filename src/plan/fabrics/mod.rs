//! Each community's fabric in a plan: loaded from the store (decoded once and cached), made on
//! first use for plans older than fabrics, kept with a regrid's plan.

use super::state::{self, State};
use super::{EditError, heavy, plan_band};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::store::{FabricRow, GridRecord, Plan, Store, StoreError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

mod warm;
use std::sync::{Arc, Mutex};
pub use warm::{WARM_MAX, warm};

/// Decoded fabrics by (plan, community): a fabric never changes once made; and the plans
/// being prepared for editing (`warm`).
#[derive(Default)]
pub struct FabricCache(
    pub(super) Mutex<HashMap<(i64, String), Arc<Loaded>>>,
    pub(super) Mutex<HashSet<i64>>,
);

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
