//! Plan-wide operations: check, handover list, import of a hand-drawn layer, draft copies,
//! 动态调整 on atoms; and the JSON schemas of edit answers and checks.

use super::derive::derive_once;
use super::fabrics::{plan_params, rows_of};
use super::{EditError, check, heavy, import, plan_band, rebalance};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::partition::queue::heaviest_first;
use crate::store::{FabricRow, GridRecord, Plan, Store, StoreError};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use tracing::Instrument;

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
    let (cs, bs, roads) = crate::store::regrid::load(store, None)
        .instrument(tracing::debug_span!("import.layers"))
        .await?;
    let params = RegridParams::default();
    let (fabrics, report) = heavy(|| {
        let _s = tracing::debug_span!("import.fabrics").entered();
        import::import(&drawn, &cs, &bs, &roads, &params)
    })?;
    let band = params.band;
    let mut grids = Vec::new();
    let mut assignment = Vec::new();
    // communities in parallel, collected in order (same bytes whatever the scheduling)
    let all = heavy(|| {
        let _s = tracing::debug_span!("import.derive").entered();
        heaviest_first(
            fabrics.iter().collect(),
            |(f, _)| f.n_atoms(),
            |(f, st)| derive_once(f, st, band),
        )
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
        .instrument(tracing::debug_span!("import.create_plan"))
        .await?;
    let encoded = heavy(|| {
        let _s = tracing::debug_span!("import.encode").entered();
        heaviest_first(
            fabrics.iter().collect(),
            |(f, _)| f.n_atoms(),
            |(f, _)| f.encode(),
        )
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

/// One community after a rebalance.
enum Outcome {
    /// Its layers read as when its fabric was made: grids, assignment, fabric and state kept
    /// exactly as stored (nothing decoded or derived).
    Kept {
        community: String,
        state: String,
        grids: Vec<GridRecord>,
        assignment: Vec<(String, String)>,
    },
    /// Tessellated again (or its fabric had no inputs' digest): inherited and balanced.
    Redrawn {
        fabric: Box<Fabric>,
        state: super::State,
        derived: Vec<super::Derived>,
        change: rebalance::CommunityChange,
        /// The inputs' digest of the old fabric (a kept fabric without one is written anew).
        old_inputs: Option<[u8; 32]>,
    },
}

/// The grids and assignment of community `code` in the old plan, as a new draft holds them.
fn kept_as_stored(
    code: &str,
    old_grids: &[GridRecord],
    old_asg: &HashMap<String, String>,
) -> (Vec<GridRecord>, Vec<(String, String)>) {
    let mut grids: Vec<GridRecord> = old_grids
        .iter()
        .filter(|g| g.community == code)
        .cloned()
        .map(|mut g| {
            g.valid_from = None;
            g.valid_to = None;
            g
        })
        .collect();
    grids.sort_by(|a, b| a.code.cmp(&b.code));
    let codes: std::collections::HashSet<&str> = grids.iter().map(|g| g.code.as_str()).collect();
    let assignment = old_asg
        .iter()
        .filter(|(_, g)| codes.contains(g.as_str()))
        .map(|(b, g)| (b.clone(), g.clone()))
        .collect();
    (grids, assignment)
}

/// One community of a rebalance: kept as stored when its layers' digest is its fabric's, else
/// tessellated again (unless only the digest was missing), inherited and balanced.
fn redraw(
    c: &crate::model::Community,
    row: super::fabrics::Stored,
    (bs, roads, params): (
        &[crate::model::Building],
        &[crate::model::Road],
        &RegridParams,
    ),
    (old_grids, old_asg): (&[GridRecord], &HashMap<String, String>),
    band: crate::partition::Band,
) -> Result<Outcome, EditError> {
    let digest = Fabric::inputs_of(c, bs, roads, params);
    let old_inputs = row.inputs();
    if old_inputs == Some(digest)
        && let super::fabrics::Stored::Row(r) = &row
    {
        let (grids, assignment) = kept_as_stored(&c.code, old_grids, old_asg);
        return Ok(Outcome::Kept {
            community: c.code.clone(),
            state: r.state.clone(),
            grids,
            assignment,
        });
    }
    let (l, st) = row.decode()?;
    let mine: Vec<GridRecord> = old_grids
        .iter()
        .filter(|g| g.community == c.code)
        .cloned()
        .collect();
    let same = l.fabric.inputs == Some(digest);
    let new = if same {
        l.fabric.clone()
    } else {
        Fabric::build(c, bs, roads, params).map_err(|e| EditError::Refused(e.to_string()))?
    };
    let (fabric, state, derived, change) =
        rebalance::community(new, (&l.fabric, &st), same, &mine, band)?;
    Ok(Outcome::Redrawn {
        fabric: Box::new(fabric),
        state,
        derived,
        change,
        old_inputs,
    })
}

/// The new plan's grid records and assignment (sorted), community after community.
fn records(out: &[Outcome]) -> (Vec<GridRecord>, Vec<(String, String)>) {
    let mut grids = Vec::new();
    let mut assignment = Vec::new();
    for o in out {
        match o {
            Outcome::Kept {
                grids: g,
                assignment: a,
                ..
            } => {
                grids.extend(g.iter().cloned());
                assignment.extend(a.iter().cloned());
            }
            Outcome::Redrawn {
                fabric: f, derived, ..
            } => {
                for d in derived {
                    grids.push(d.record(f));
                    for &b in &d.buildings {
                        assignment.push((f.buildings[b as usize].id.clone(), d.code.clone()));
                    }
                }
            }
        }
    }
    assignment.sort();
    (grids, assignment)
}

/// 动态调整: plan `id` redrawn on the store's current layers as a new draft, each atom kept in
/// its grid, only grids out of band redrawn (see [`rebalance`]). A community whose layers
/// read as they did when its fabric was made (the inputs' digest) is kept without being
/// tessellated, decoded or derived again.
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
    let rows = rows_of(store, &plan, &codes).await?;
    tracing::debug!(
        ms = t0.elapsed().as_millis(),
        "rebalance: plan, layers and fabrics read"
    );
    // communities in parallel, largest fabric first (tessellation dominates)
    let layers = (&bs[..], &roads[..], &params);
    let out: Vec<Result<Outcome, EditError>> = heavy(|| {
        heaviest_first(
            cs.iter().zip(rows).collect(),
            |(_, row)| row.weight(),
            |(c, row)| redraw(c, row, layers, (&old_grids, &old_asg), band),
        )
    });
    let out = out.into_iter().collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(
        ms = t0.elapsed().as_millis(),
        "rebalance: communities redrawn"
    );
    let (grids, assignment) = records(&out);
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
    write_fabrics(store, id, np.id, &out).await?;
    tracing::debug!(ms = t0.elapsed().as_millis(), "rebalance: fabrics written");
    let report = RebalanceReport {
        plan: np.id,
        from: id,
        grids_changed,
        geometry_changed,
        buildings_moved: moved.len(),
        households_moved,
        communities: out
            .into_iter()
            .map(|o| match o {
                Outcome::Kept { community, .. } => rebalance::CommunityChange {
                    community,
                    unchanged: true,
                    ..rebalance::CommunityChange::default()
                },
                Outcome::Redrawn { change, .. } => change,
            })
            .collect(),
    };
    Ok((np, report))
}

/// The new plan's fabrics: a kept community's (and an unchanged one's whose stored bytes carry
/// the inputs' digest) referenced inside the store, the others encoded (in parallel) and written.
async fn write_fabrics(
    store: &dyn Store,
    from: i64,
    to: i64,
    out: &[Outcome],
) -> Result<(), EditError> {
    let encoded = heavy(|| {
        out.par_iter()
            .map(|o| match o {
                Outcome::Redrawn {
                    fabric,
                    change,
                    old_inputs,
                    ..
                } if !change.unchanged || *old_inputs != fabric.inputs => Some(fabric.encode()),
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    for (o, bytes) in out.iter().zip(encoded) {
        let (community, state, fabric) = match o {
            Outcome::Kept {
                community, state, ..
            } => (community.as_str(), state.clone(), None),
            Outcome::Redrawn { fabric, state, .. } => {
                (fabric.community.as_str(), state.to_text(), Some(fabric))
            }
        };
        if bytes.is_none() && store.copy_plan_fabric(from, to, community, &state).await? {
            continue;
        }
        let bytes = match (bytes, fabric) {
            (Some(b), _) => b,
            (None, Some(f)) => heavy(|| f.encode()),
            (None, None) => {
                return Err(EditError::Refused(format!(
                    "plan {from}: the fabric of community {community} is gone"
                )));
            }
        };
        let row = FabricRow {
            fabric: bytes,
            state,
        };
        store.save_plan_fabric(to, community, row).await?;
    }
    Ok(())
}
