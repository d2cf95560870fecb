//! Regridding from the store: what to read, and the draft plan made from a result. Shared by
//! `wangge regrid` (without files) and the service's `POST /plans` jobs.

use super::{GridRecord, NewPlan, Result, Store, StoreError, band_label};
use crate::model::{Building, Community, Road};
use crate::partition::{Band, RegridResult};
use serde_json::Value;

/// Communities (all, or those named), their buildings, and the roads.
///
/// # Errors
/// An unknown community code, an empty store, or a store error.
pub async fn load(
    store: &dyn Store,
    codes: Option<&[String]>,
) -> Result<(Vec<Community>, Vec<Building>, Vec<Road>)> {
    let mut cs: Vec<Community> = store
        .communities()
        .await?
        .into_iter()
        .map(|r| r.community)
        .collect();
    if let Some(want) = codes {
        for w in want {
            if !cs.iter().any(|c| &c.code == w) {
                return Err(StoreError::Invalid(format!(
                    "community {w}: no such community in {}",
                    store.describe()
                )));
            }
        }
        cs.retain(|c| want.contains(&c.code));
    }
    if cs.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{} holds no communities: load them with `wangge import --communities … --buildings …`",
            store.describe()
        )));
    }
    let sel: Vec<String> = cs.iter().map(|c| c.code.clone()).collect();
    let bs = store
        .buildings(Some(&sel))
        .await?
        .into_iter()
        .map(|b| b.building)
        .collect();
    let roads = store.roads().await?;
    Ok((cs, bs, roads))
}

/// The draft plan of a regrid result.
#[must_use]
pub fn new_plan(
    result: &RegridResult,
    communities: &[Community],
    buildings: &[Building],
    band: Band,
    by: &str,
    params: Value,
    metrics: Value,
) -> NewPlan {
    let grids = result
        .grids
        .iter()
        .map(|g| GridRecord {
            code: g.code.clone(),
            name: g.name.clone(),
            community: g.community.clone(),
            street: g.street.clone(),
            households: g.households,
            buildings: g.buildings.len() as u64,
            weight: g.weight,
            band: band_label(g.weight, band.min(), band.max(), g.oversize).to_string(),
            geometry: geo::MultiPolygon(vec![g.geometry.clone()]),
            valid_from: None,
            valid_to: None,
        })
        .collect();
    let assignment = result
        .assignment
        .iter()
        .map(|&(bi, gi)| (buildings[bi].id.clone(), result.grids[gi].code.clone()))
        .collect();
    NewPlan {
        communities: communities.iter().map(|c| c.code.clone()).collect(),
        created_by: by.to_string(),
        params,
        metrics,
        grids,
        assignment,
    }
}
