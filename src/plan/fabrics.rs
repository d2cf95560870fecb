//! Each community's fabric in a plan: loaded from the store (decoded once and cached), made on
//! first use for plans older than fabrics, kept with a regrid's plan.

use super::state::{self, State};
use super::{EditError, heavy, plan_band};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::store::{FabricRow, GridRecord, Plan, Store, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Decoded fabrics by (plan, community): a fabric never changes once made.
#[derive(Default)]
pub struct FabricCache(pub(super) Mutex<HashMap<(i64, String), Arc<Loaded>>>);

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
    let f =
        heavy(|| Fabric::decode(&row.fabric)).map_err(|e| StoreError::Backend(e.to_string()))?;
    let loaded = Arc::new(Loaded::new(f));
    if let Some(c) = cache
        && let Ok(mut m) = c.0.lock()
    {
        if m.len() > 64 {
            m.clear();
        }
        m.insert(key, loaded.clone());
    }
    let st = State::from_text(&row.state, loaded.fabric.n_atoms()).map_err(StoreError::Backend)?;
    Ok((loaded, st))
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
    for fo in fabrics {
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
            fabric: heavy(|| fo.fabric.encode()),
            state: st.to_text(),
        };
        store
            .save_plan_fabric(plan, &fo.fabric.community, row)
            .await?;
    }
    Ok(())
}

/// The regrid settings a plan was drawn with.
pub(super) fn plan_params(p: &Plan) -> RegridParams {
    let mut params = RegridParams {
        band: plan_band(p),
        ..RegridParams::default()
    };
    if let Some(rc) = p.params.get("road_classes").and_then(Value::as_array) {
        let rc: Vec<String> = rc
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        if !rc.is_empty() {
            params.cut_classes = rc;
        }
    }
    params
}

/// A fabric for a plan made before fabrics were kept: the community tessellated again, each
/// atom with a building in its building's grid, the others in the grid holding their centroid
/// (or a neighbour's).
async fn first_fabric(
    store: &dyn Store,
    plan: &Plan,
    community: &str,
) -> Result<FabricRow, EditError> {
    let (cs, bs, roads) = crate::store::regrid::load(store, Some(&[community.to_string()])).await?;
    let grids: Vec<GridRecord> = store.plan_community_grids(plan.id, community).await?;
    let assignment: HashMap<String, String> =
        store.plan_assignment(plan.id).await?.into_iter().collect();
    let params = plan_params(plan);
    let c = cs
        .first()
        .ok_or_else(|| EditError::NotFound(format!("community {community} is not in the store")))?;
    let fabric = heavy(|| Fabric::build(c, &bs, &roads, &params))
        .map_err(|e| EditError::Refused(e.to_string()))?;
    let st = heavy(|| state_from_grids(&fabric, &grids, &assignment));
    Ok(FabricRow {
        fabric: fabric.encode(),
        state: st.to_text(),
    })
}

/// Each atom's grid from a plan's assignment (atoms with buildings) and grid polygons (the rest).
fn state_from_grids(
    f: &Fabric,
    grids: &[GridRecord],
    assignment: &HashMap<String, String>,
) -> State {
    let mut st = State {
        grids: grids
            .iter()
            .map(|g| state::Slot {
                code: g.code.clone(),
                locked: false,
            })
            .collect(),
        atoms: vec![u32::MAX; f.n_atoms()],
    };
    let frame = f.frame();
    for a in 0..f.n_atoms() {
        let Some(at) = f.atom(a) else { continue };
        // the grid most of its households were in
        let mut votes: HashMap<usize, u64> = HashMap::new();
        for &b in &at.buildings {
            let fb = &f.buildings[b as usize];
            if let Some(g) = assignment.get(&fb.id).and_then(|c| st.index(c)) {
                *votes.entry(g).or_default() += u64::from(fb.households) + 1;
            }
        }
        let by_vote = votes
            .into_iter()
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
            .map(|x| x.0);
        let by_place = || {
            let p = frame?.inv(at.centroid);
            grids
                .iter()
                .position(|g| crate::geom::point_in_polygons(&g.geometry.0, p))
        };
        if let Some(g) = by_vote.or_else(by_place) {
            st.atoms[a] = g as u32;
        }
    }
    // atoms still without a grid take a neighbour's, repeatedly
    for _ in 0..64 {
        let mut left = false;
        for a in 0..st.atoms.len() {
            if st.atoms[a] != u32::MAX {
                continue;
            }
            let best = f
                .neighbours(a)
                .into_iter()
                .filter(|e| st.atoms[e.nbr as usize] != u32::MAX)
                .max_by(|x, y| x.len.total_cmp(&y.len).then(y.nbr.cmp(&x.nbr)));
            match best {
                Some(e) => st.atoms[a] = st.atoms[e.nbr as usize],
                None => left = true,
            }
        }
        if !left {
            break;
        }
    }
    if st.grids.is_empty() {
        st.grids.push(state::Slot {
            code: crate::model::grid_code(&f.community, 1).to_string(),
            locked: false,
        });
    }
    for g in &mut st.atoms {
        if *g == u32::MAX {
            *g = 0;
        }
    }
    st.normalize();
    st
}
