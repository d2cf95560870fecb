//! Plan-wide operations: check, handover list, import of a hand-drawn layer, draft copies,
//! 动态调整 on atoms; and the JSON schemas of edit answers and checks.

use super::fabrics::{load_all, plan_params};
use super::{EditError, check, derive, heavy, import, plan_band, rebalance};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::store::{FabricRow, GridRecord, Plan, Store, StoreError};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Check a stored plan (see [`check::check`]).
///
/// # Errors
/// A store error.
pub async fn check_plan(store: &dyn Store, id: i64) -> Result<check::Report, StoreError> {
    let plan = store.plan(id).await?;
    let grids = store.plan_grids(id).await?;
    let (cs, bs, roads) = crate::store::regrid::load(store, Some(&plan.communities)).await?;
    let band = plan_band(&plan);
    Ok(heavy(|| check::check(&cs, &bs, &roads, &grids, band)))
}

/// The handover list between two plans: per building that changes grid, (building, from,
/// to, households), as CSV text with a header.
///
/// # Errors
/// A store error.
pub async fn handover_csv(store: &dyn Store, a: i64, b: i64) -> Result<String, StoreError> {
    let d = crate::store::plan_diff(store, a, b).await?;
    let hh: HashMap<String, (u32, Option<String>)> = store
        .buildings(None)
        .await?
        .into_iter()
        .map(|r| (r.building.id, (r.building.households, r.community)))
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "building_id",
        "community",
        "from_grid",
        "to_grid",
        "households",
    ]);
    for (id, x, y) in &d.moved {
        let (h, c) = hh.get(id).cloned().unwrap_or((0, None));
        let _ = w.write_record([
            id.as_str(),
            c.as_deref().unwrap_or(""),
            x.as_deref().unwrap_or(""),
            y.as_deref().unwrap_or(""),
            &h.to_string(),
        ]);
    }
    Ok(String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default())
}

/// Import a hand-drawn grid layer (a GeoJSON FeatureCollection) as a new draft plan over the
/// store's layers (see [`import`]).
///
/// # Errors
/// A layer that is not a FeatureCollection of polygons, covers no community, or a store error.
pub async fn import_plan(
    store: &dyn Store,
    layer: &Value,
    name: Option<&str>,
    who: &str,
) -> Result<(Plan, import::ImportReport), EditError> {
    let drawn = import::read_layer(layer)?;
    let (cs, bs, roads) = crate::store::regrid::load(store, None).await?;
    let params = RegridParams::default();
    let (fabrics, report) = heavy(|| import::import(&drawn, &cs, &bs, &roads, &params))?;
    let band = params.band;
    let mut grids = Vec::new();
    let mut assignment = Vec::new();
    // communities in parallel, collected in order (same bytes whatever the scheduling)
    let all = heavy(|| {
        fabrics
            .par_iter()
            .map(|(f, st)| derive(f, st, band))
            .collect::<Vec<_>>()
    });
    for ((f, _), derived) in fabrics.iter().zip(all) {
        let derived = derived?;
        for d in &derived {
            grids.push(d.record(f));
            for &b in &d.buildings {
                assignment.push((f.buildings[b as usize].id.clone(), d.code.clone()));
            }
        }
    }
    assignment.sort();
    let communities: Vec<String> = fabrics.iter().map(|(f, _)| f.community.clone()).collect();
    let plan = store
        .create_plan(crate::store::NewPlan {
            communities,
            created_by: who.to_string(),
            params: json!({
                "min": band.min(), "max": band.max(), "target": band.target(),
                "road_classes": params.cut_classes, "imported": name,
            }),
            metrics: json!({ "import": &report }),
            grids,
            assignment,
        })
        .await?;
    let encoded = heavy(|| {
        fabrics
            .par_iter()
            .map(|(f, _)| f.encode())
            .collect::<Vec<_>>()
    });
    for ((f, st), fabric) in fabrics.iter().zip(encoded) {
        let row = FabricRow {
            fabric,
            state: st.to_text(),
        };
        store.save_plan_fabric(plan.id, &f.community, row).await?;
    }
    Ok((plan, report))
}

/// A draft copy of a plan (its grids, assignment and fabrics), to edit a published plan.
///
/// # Errors
/// A store error.
pub async fn copy_plan(store: &dyn Store, id: i64, who: &str) -> Result<Plan, StoreError> {
    let p = store.plan(id).await?;
    let mut grids = store.plan_grids(id).await?;
    for g in &mut grids {
        g.valid_from = None;
        g.valid_to = None;
    }
    let mut params = p.params.clone();
    if let Value::Object(m) = &mut params {
        m.insert("copied_from".into(), json!(id));
    }
    let np = store
        .create_plan(crate::store::NewPlan {
            communities: p.communities.clone(),
            created_by: who.to_string(),
            params,
            metrics: p.metrics.clone(),
            grids,
            assignment: store.plan_assignment(id).await?,
        })
        .await?;
    for c in &p.communities {
        if let Some(state) = store.plan_state(id, c).await? {
            store.copy_plan_fabric(id, np.id, c, &state).await?;
        }
    }
    Ok(np)
}

/// JSON schema of an edit's answer (OpenAPI).
#[must_use]
pub fn outcome_schema() -> Value {
    json!({
        "type": "object",
        "required": ["plan", "version", "etag", "dry_run", "summary", "warnings", "changed", "removed", "moved"],
        "properties": {
            "plan": {"type": "integer"}, "version": {"type": "integer"}, "etag": {"type": "string"},
            "dry_run": {"type": "boolean"}, "edit": {"type": ["integer", "null"]},
            "summary": {"type": "string"}, "warnings": {"type": "array", "items": {"type": "string"}},
            "changed": {"type": "object", "description": "GeoJSON FeatureCollection of the grids whose polygon or figures changed (code, name, households, weight, buildings, atoms, band, locked, area_m2, polsby_popper)"},
            "removed": {"type": "array", "items": {"type": "string"}},
            "moved": {"type": "array", "items": {"type": "object", "properties": {"building": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}, "households": {"type": "integer"}}}},
            "households_moved": {"type": "integer"}
        }
    })
}

/// JSON schema of a plan check (OpenAPI).
#[must_use]
pub fn check_schema() -> Value {
    json!({
        "type": "object",
        "required": ["ok", "grids", "in_band_pct", "problems"],
        "properties": {
            "ok": {"type": "boolean"}, "grids": {"type": "integer"}, "in_band_pct": {"type": "number"},
            "oversize_single": {"type": "integer"}, "households_min": {"type": "integer"}, "households_max": {"type": "integer"},
            "split_buildings": {"type": "integer"}, "unassigned_buildings": {"type": "integer"},
            "max_gap_pct": {"type": "number"}, "max_overlap_pct": {"type": "number"},
            "polsby_popper_mean": {"type": "number"}, "polsby_popper_min": {"type": "number"},
            "road_following_pct": {"type": ["number", "null"]},
            "out_of_band": {"type": "array"}, "problems": {"type": "array", "items": {"type": "string"}}
        }
    })
}

/// What `rebalance_plan` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebalanceReport {
    pub plan: i64,
    pub from: i64,
    /// Grids whose buildings changed (new, removed, or other buildings).
    pub grids_changed: Vec<String>,
    /// Grids whose polygon changed.
    pub geometry_changed: usize,
    pub buildings_moved: usize,
    pub households_moved: u64,
    pub communities: Vec<rebalance::CommunityChange>,
}

/// Grids whose buildings changed, grids whose polygon changed, buildings moved, households moved.
fn changes(
    grids: &[GridRecord],
    assignment: &[(String, String)],
    old_grids: &[GridRecord],
    old_asg: &HashMap<String, String>,
    bs: &[crate::model::Building],
) -> (Vec<String>, usize, Vec<String>, u64) {
    // what changed
    let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
    for (b, g) in assignment {
        members.entry(g.as_str()).or_default().push(b.as_str());
    }
    let mut old_members: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut old_sorted: Vec<(&String, &String)> = old_asg.iter().collect();
    old_sorted.sort();
    for (b, g) in old_sorted {
        old_members.entry(g.as_str()).or_default().push(b.as_str());
    }
    let mut grids_changed: Vec<String> = members
        .keys()
        .chain(old_members.keys())
        .filter(|c| members.get(*c) != old_members.get(*c))
        .map(|c| (*c).to_string())
        .collect();
    grids_changed.sort();
    grids_changed.dedup();
    let old_geom: HashMap<&str, &geo::MultiPolygon> = old_grids
        .iter()
        .map(|g| (g.code.as_str(), &g.geometry))
        .collect();
    let geometry_changed = grids
        .iter()
        .filter(|g| old_geom.get(g.code.as_str()) != Some(&&g.geometry))
        .count()
        + old_grids
            .iter()
            .filter(|o| !grids.iter().any(|g| g.code == o.code))
            .count();
    let hh: HashMap<String, u32> = bs.iter().map(|b| (b.id.clone(), b.households)).collect();
    let moved: Vec<String> = assignment
        .iter()
        .filter(|(b, g)| old_asg.get(b).is_some_and(|o| o != g))
        .map(|(b, _)| b.clone())
        .collect();
    let households_moved = moved
        .iter()
        .map(|b| u64::from(hh.get(b).copied().unwrap_or(0)))
        .sum();
    (grids_changed, geometry_changed, moved, households_moved)
}

/// 动态调整: plan `id` redrawn on the store's current layers as a new draft, each atom kept in
/// its grid, only grids out of band redrawn (see [`rebalance`]).
///
/// # Errors
/// A store error, or a community that cannot be tessellated or drawn.
pub async fn rebalance_plan(
    store: &dyn Store,
    id: i64,
    who: &str,
) -> Result<(Plan, RebalanceReport), EditError> {
    let t0 = std::time::Instant::now();
    let plan = store.plan(id).await?;
    let band = plan_band(&plan);
    let params = plan_params(&plan);
    let old_grids = store.plan_grids(id).await?;
    let old_asg: HashMap<String, String> = store.plan_assignment(id).await?.into_iter().collect();
    let (cs, bs, roads) = crate::store::regrid::load(store, Some(&plan.communities)).await?;
    let codes: Vec<String> = cs.iter().map(|c| c.code.clone()).collect();
    let olds = load_all(store, &plan, &codes).await?;
    tracing::debug!(
        ms = t0.elapsed().as_millis(),
        "rebalance: plan, layers and fabrics read"
    );
    // communities in parallel, largest first (tessellation dominates)
    let out: Vec<Result<_, EditError>> = heavy(|| {
        cs.par_iter()
            .zip(olds.par_iter())
            .with_max_len(1)
            .map(|(c, (l, st))| {
                let mine: Vec<GridRecord> = old_grids
                    .iter()
                    .filter(|g| g.community == c.code)
                    .cloned()
                    .collect();
                let new = Fabric::build(c, &bs, &roads, &params)
                    .map_err(|e| EditError::Refused(e.to_string()))?;
                rebalance::community(new, (&l.fabric, st), &mine, band)
            })
            .collect()
    });
    let out = out.into_iter().collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(
        ms = t0.elapsed().as_millis(),
        "rebalance: communities redrawn"
    );
    let mut grids = Vec::new();
    let mut assignment = Vec::new();
    for (f, _, derived, _) in &out {
        for d in derived {
            grids.push(d.record(f));
            for &b in &d.buildings {
                assignment.push((f.buildings[b as usize].id.clone(), d.code.clone()));
            }
        }
    }
    assignment.sort();
    let (grids_changed, geometry_changed, moved, households_moved) =
        changes(&grids, &assignment, &old_grids, &old_asg, &bs);
    let np = store
        .create_plan(crate::store::NewPlan {
            communities: plan.communities.clone(),
            created_by: who.to_string(),
            params: {
                let mut p = plan.params.clone();
                if let Value::Object(m) = &mut p {
                    m.insert("rebalanced_from".into(), json!(id));
                }
                p
            },
            metrics: plan.metrics.clone(),
            grids,
            assignment,
        })
        .await?;
    tracing::debug!(ms = t0.elapsed().as_millis(), "rebalance: plan written");
    // an unchanged community's fabric is the old plan's, byte for byte: its bytes are reused
    let encoded = heavy(|| {
        out.par_iter()
            .map(|(f, _, _, ch)| (!ch.unchanged).then(|| f.encode()))
            .collect::<Vec<_>>()
    });
    tracing::debug!(ms = t0.elapsed().as_millis(), "rebalance: fabrics encoded");
    for ((f, st, _, _), fabric) in out.iter().zip(encoded) {
        let state = st.to_text();
        if fabric.is_none()
            && store
                .copy_plan_fabric(id, np.id, &f.community, &state)
                .await?
        {
            continue;
        }
        let fabric = fabric.unwrap_or_else(|| heavy(|| f.encode()));
        let row = FabricRow { fabric, state };
        store.save_plan_fabric(np.id, &f.community, row).await?;
    }
    tracing::debug!(ms = t0.elapsed().as_millis(), "rebalance: fabrics written");
    let report = RebalanceReport {
        plan: np.id,
        from: id,
        grids_changed,
        geometry_changed,
        buildings_moved: moved.len(),
        households_moved,
        communities: out.into_iter().map(|x| x.3).collect(),
    };
    Ok((np, report))
}
