//! Editable plans. A plan's grids are *derived* from each community's fabric (its atoms, see
//! [`crate::partition::fabric`]) and a [`State`] (the grid of every atom, locks). Every edit is
//! a reassignment of atoms ([`ops`]), so grids tile their community and no building is split by
//! construction; the grids an edit changes are derived again ([`derive`]) and written with
//! the new state and an edit-log entry in one store transaction ([`crate::store::Edits`]).
//! Undo and redo put back a logged state, so they give back exactly the grids before.
//!
//! The same functions serve the CLI (`wangge plans edit|undo|redo|log`) and the HTTP API
//! (`POST /plans/{id}/edits`, …).

pub mod check;
pub mod derive;
pub mod import;
pub mod ops;
pub mod rebalance;
pub mod state;

pub use derive::{Derived, derive};
pub use ops::Op;
pub use state::State;

use crate::partition::fabric::Fabric;
use crate::partition::{Band, RegridParams};
use crate::store::{
    EditLog, EditRecord, FabricRow, GridRecord, Plan, PlanEdit, PlanStatus, Store, StoreError,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why an edit was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A grid, building or atom that is not there (404).
    #[error("{0}")]
    NotFound(String),
    /// A well-formed edit the plan refuses: a grid cut in two or left empty, a locked grid (422).
    #[error("{0}")]
    Refused(String),
    /// Outside the caller's scope (403).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decoded fabrics by (plan, community): a fabric never changes once made.
#[derive(Default)]
pub struct FabricCache(Mutex<HashMap<(i64, String), Arc<Loaded>>>);

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

/// The band a plan was drawn with (its parameters), or the default.
#[must_use]
pub fn plan_band(p: &Plan) -> Band {
    let g = |k: &str| p.params.get(k).and_then(Value::as_f64);
    match (g("min"), g("target"), g("max")) {
        (Some(min), Some(t), Some(max)) => Band::new(min, t, max).unwrap_or(Band::DEFAULT),
        _ => Band::DEFAULT,
    }
}

/// What an edit, undo or redo did (or, dry, would do).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The plan after the edit (before it, for a dry run).
    pub plan: Plan,
    pub dry_run: bool,
    pub seq: Option<i64>,
    pub summary: String,
    pub warnings: Vec<String>,
    /// Grids whose polygon or figures changed, as GeoJSON features.
    pub changed: Vec<Value>,
    /// Codes of grids that no longer exist.
    pub removed: Vec<String>,
    /// (building id, from grid, to grid, households).
    pub moved: Vec<(String, String, String, u32)>,
}

impl Outcome {
    /// The answer of the CLI's `--json` and of the HTTP API.
    #[must_use]
    pub fn json(&self) -> Value {
        json!({
            "plan": self.plan.id,
            "version": self.plan.version,
            "etag": format!("\"plan-{}-v{}\"", self.plan.id, self.plan.version),
            "dry_run": self.dry_run,
            "edit": self.seq,
            "summary": self.summary,
            "warnings": self.warnings,
            "changed": { "type": "FeatureCollection", "features": self.changed },
            "removed": self.removed,
            "moved": self.moved.iter().map(|(b, f, t, h)| json!({"building": b, "from": f, "to": t, "households": h})).collect::<Vec<_>>(),
            "households_moved": self.moved.iter().map(|m| u64::from(m.3)).sum::<u64>(),
        })
    }
}

/// Run CPU-heavy work off the async executor's threads.
fn heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
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
fn plan_params(p: &Plan) -> RegridParams {
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
    let grids: Vec<GridRecord> = store
        .plan_grids(plan.id)
        .await?
        .into_iter()
        .filter(|g| g.community == community)
        .collect();
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

/// The community an operation works in.
async fn community_of(store: &dyn Store, plan: &Plan, op: &Op) -> Result<String, EditError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let codes = op.codes();
    if !codes.is_empty() {
        for c in codes {
            // a grid code is its community's code and a sequence number (grid_code)
            let comm = plan
                .communities
                .iter()
                .find(|k| crate::model::grid_code(k, state::seq_of(c).unwrap_or(0)).as_str() == c)
                .ok_or_else(|| {
                    EditError::NotFound(format!("grid {c} is not in plan {}", plan.id))
                })?;
            found.push((format!("grid {c}"), comm.clone()));
        }
    } else if let Op::NewGrid {
        community: Some(c), ..
    } = op
    {
        found.push(("community".into(), c.clone()));
    } else if !op.buildings().is_empty() {
        let asg: HashMap<String, String> =
            store.plan_assignment(plan.id).await?.into_iter().collect();
        let grids = store.plan_grids(plan.id).await?;
        for b in op.buildings() {
            let code = asg.get(b).ok_or_else(|| {
                EditError::NotFound(format!("building {b} is not in plan {}", plan.id))
            })?;
            let g = grids.iter().find(|g| &g.code == code).ok_or_else(|| {
                EditError::NotFound(format!(
                    "building {b}: grid {code} is not in plan {}",
                    plan.id
                ))
            })?;
            found.push((format!("building {b}"), g.community.clone()));
        }
    } else {
        return Err(EditError::Invalid(
            "name buildings, or atoms with their community".into(),
        ));
    }
    let first = found[0].1.clone();
    if let Some((what, c)) = found.iter().find(|(_, c)| *c != first) {
        return Err(EditError::Invalid(format!(
            "an edit works within one community: {} is in {first}, {what} in {c}",
            found[0].0
        )));
    }
    Ok(first)
}

/// Compare derived grids with the stored ones of the community.
fn diff(
    f: &Fabric,
    derived: &[Derived],
    stored: &[GridRecord],
) -> (Vec<GridRecord>, Vec<Value>, Vec<String>) {
    let by: HashMap<&str, &GridRecord> = stored
        .iter()
        .filter(|g| g.community == f.community)
        .map(|g| (g.code.as_str(), g))
        .collect();
    let mut put = Vec::new();
    let mut feats = Vec::new();
    for d in derived {
        let r = d.record(f);
        if by.get(d.code.as_str()).is_none_or(|s| {
            s.geometry != r.geometry
                || s.households != r.households
                || s.buildings != r.buildings
                || s.band != r.band
                || s.name != r.name
                || (s.weight - r.weight).abs() > 1e-9
        }) {
            put.push(r);
            feats.push(d.feature(f));
        }
    }
    let mut removed: Vec<String> = by
        .keys()
        .filter(|c| !derived.iter().any(|d| d.code == **c))
        .map(|c| (*c).to_string())
        .collect();
    removed.sort();
    (put, feats, removed)
}

/// Buildings whose grid differs between two states.
fn moved_buildings(f: &Fabric, a: &State, b: &State) -> Vec<(String, String, String, u32)> {
    let mut out = Vec::new();
    for (k, (&ga, &gb)) in a.atoms.iter().zip(&b.atoms).enumerate() {
        let (ca, cb) = (&a.grids[ga as usize].code, &b.grids[gb as usize].code);
        if ca == cb {
            continue;
        }
        if let Some(at) = f.atom(k) {
            for &bi in &at.buildings {
                let fb = &f.buildings[bi as usize];
                out.push((fb.id.clone(), ca.clone(), cb.clone(), fb.households));
            }
        }
    }
    out.sort();
    out
}

/// A new state of one community, derived, compared and (unless dry) stored.
struct Change<'a> {
    plan: &'a Plan,
    community: &'a str,
    loaded: &'a Loaded,
    before: &'a State,
    after: State,
    log: EditLog,
    who: &'a str,
    dry_run: bool,
    expected_version: i64,
}

async fn commit(
    store: &dyn Store,
    c: Change<'_>,
    summary: String,
    warnings: Vec<String>,
) -> Result<Outcome, EditError> {
    let f = &c.loaded.fabric;
    let band = plan_band(c.plan);
    // no atom moved (locks): the polygons stay as they are
    let (put, changed, removed) = if c.after.atoms == c.before.atoms
        && c.after
            .grids
            .iter()
            .map(|g| &g.code)
            .eq(c.before.grids.iter().map(|g| &g.code))
    {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let derived = heavy(|| derive(f, &c.after, band))?;
        let stored = store.plan_grids(c.plan.id).await?;
        diff(f, &derived, &stored)
    };
    // a grid drawn anew must be a valid polygon (tiny loops where boundaries meet at odd angles)
    for r in &put {
        for p in &r.geometry.0 {
            if let Some(at) = crate::geom::validate::find_self_intersection(p) {
                return Err(EditError::Refused(format!(
                    "the edit would make grid {} cross itself at {:.7},{:.7}; choose a slightly different selection",
                    r.code, at.x, at.y
                )));
            }
        }
    }
    let moved = moved_buildings(f, c.before, &c.after);
    if c.dry_run {
        return Ok(Outcome {
            plan: c.plan.clone(),
            dry_run: true,
            seq: None,
            summary,
            warnings,
            changed,
            removed,
            moved,
        });
    }
    let seq = match &c.log {
        EditLog::Undo { seq } | EditLog::Redo { seq } => Some(*seq),
        EditLog::Append { .. } => None,
    };
    let edit = PlanEdit {
        expected_version: c.expected_version,
        who: c.who.to_string(),
        community: c.community.to_string(),
        state: c.after.to_text(),
        delete_grids: removed.clone(),
        put_grids: put,
        assignment: moved.iter().map(|m| (m.0.clone(), m.2.clone())).collect(),
        log: c.log,
    };
    let plan = store.apply_plan_edit(c.plan.id, edit).await?;
    let seq = match seq {
        Some(s) => Some(s),
        None => store.plan_edits(plan.id).await?.last().map(|e| e.seq),
    };
    Ok(Outcome {
        plan,
        dry_run: false,
        seq,
        summary,
        warnings,
        changed,
        removed,
        moved,
    })
}

/// A plan that may be edited at `expected_version` (the current one when `None`).
async fn editable(
    store: &dyn Store,
    id: i64,
    expected_version: Option<i64>,
) -> Result<(Plan, i64), EditError> {
    let plan = store.plan(id).await?;
    if plan.status != PlanStatus::Draft {
        return Err(StoreError::Conflict(format!(
            "plan {id} is {}; only a draft can be edited (copy it first: `wangge plans copy {id}`)",
            plan.status.as_str()
        ))
        .into());
    }
    let v = expected_version.unwrap_or(plan.version);
    if v != plan.version {
        return Err(StoreError::Stale(format!(
            "plan {id} is at version {}, not {v}: it changed meanwhile",
            plan.version
        ))
        .into());
    }
    Ok((plan, v))
}

/// What an edit request carries besides the operation.
#[derive(Debug, Clone, Default)]
pub struct EditRequest {
    pub who: String,
    pub reason: Option<String>,
    pub dry_run: bool,
    /// The version the caller's view is at (HTTP If-Match); `None` = the current one.
    pub expected_version: Option<i64>,
    /// A token's scope (community or street code): edits reach only its communities.
    pub scope: Option<String>,
}

/// An edit of community `c` (of street `street`) is within `scope`.
fn in_scope(scope: Option<&str>, c: &str, street: Option<&str>) -> Result<(), EditError> {
    match scope {
        None => Ok(()),
        Some(s) if s == c || Some(s) == street => Ok(()),
        Some(s) => Err(EditError::Forbidden(format!(
            "community {c} is outside this token's scope ({s})"
        ))),
    }
}

/// Apply (or, dry, try) an edit of a draft plan.
///
/// # Errors
/// See [`EditError`]; a published plan or a stale version is a store conflict.
pub async fn edit(
    store: &dyn Store,
    cache: Option<&FabricCache>,
    id: i64,
    op: &Op,
    req: &EditRequest,
) -> Result<Outcome, EditError> {
    let (plan, v) = editable(store, id, req.expected_version).await?;
    let community = community_of(store, &plan, op).await?;
    let (loaded, before) = load(store, cache, &plan, &community).await?;
    in_scope(
        req.scope.as_deref(),
        &community,
        loaded.fabric.street.as_deref(),
    )?;
    let input = ops::Input {
        fabric: &loaded.fabric,
        band: plan_band(&plan),
        buildings: &loaded.building_index,
    };
    let applied = heavy(|| ops::apply(op, &before, &input))?;
    let log = EditLog::Append {
        op: serde_json::to_value(op).unwrap_or(Value::Null),
        reason: req.reason.clone(),
        summary: applied.summary.clone(),
        before: before.to_text(),
        after: applied.state.to_text(),
    };
    commit(
        store,
        Change {
            plan: &plan,
            community: &community,
            loaded: &loaded,
            before: &before,
            after: applied.state,
            log,
            who: &req.who,
            dry_run: req.dry_run,
            expected_version: v,
        },
        applied.summary,
        applied.warnings,
    )
    .await
}

/// Undo the latest applied edit (`redo = false`) or redo the earliest undone one.
///
/// # Errors
/// Nothing to undo or redo (a conflict), or as [`edit`].
pub async fn undo_redo(
    store: &dyn Store,
    cache: Option<&FabricCache>,
    id: i64,
    redo: bool,
    req: &EditRequest,
) -> Result<Outcome, EditError> {
    let (plan, v) = editable(store, id, req.expected_version).await?;
    let edits = store.plan_edits(id).await?;
    let target: Option<&EditRecord> = if redo {
        edits.iter().find(|e| e.status == "undone")
    } else {
        edits.iter().rev().find(|e| e.status == "applied")
    };
    let Some(t) = target else {
        return Err(StoreError::Conflict(format!(
            "plan {id}: nothing to {}",
            if redo { "redo" } else { "undo" }
        ))
        .into());
    };
    let (loaded, now) = load(store, cache, &plan, &t.community).await?;
    in_scope(
        req.scope.as_deref(),
        &t.community,
        loaded.fabric.street.as_deref(),
    )?;
    let n = loaded.fabric.n_atoms();
    let (from, to) = if redo {
        (&t.before, &t.after)
    } else {
        (&t.after, &t.before)
    };
    let from = State::from_text(from, n).map_err(StoreError::Backend)?;
    let to = State::from_text(to, n).map_err(StoreError::Backend)?;
    if from != now {
        return Err(StoreError::Conflict(format!(
            "plan {id}: community {} changed since edit {}; it cannot be {}",
            t.community,
            t.seq,
            if redo { "redone" } else { "undone" }
        ))
        .into());
    }
    let summary = format!(
        "{} edit {}: {}",
        if redo { "redid" } else { "undid" },
        t.seq,
        t.summary
    );
    let log = if redo {
        EditLog::Redo { seq: t.seq }
    } else {
        EditLog::Undo { seq: t.seq }
    };
    commit(
        store,
        Change {
            plan: &plan,
            community: &t.community,
            loaded: &loaded,
            before: &now,
            after: to,
            log,
            who: &req.who,
            dry_run: req.dry_run,
            expected_version: v,
        },
        summary,
        Vec::new(),
    )
    .await
}

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
    for (f, st) in &fabrics {
        let derived = heavy(|| derive(f, st, band))?;
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
    for (f, st) in &fabrics {
        let row = FabricRow {
            fabric: heavy(|| f.encode()),
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
        if let Some(row) = store.plan_fabric(id, c).await? {
            store.save_plan_fabric(np.id, c, row).await?;
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
    let plan = store.plan(id).await?;
    let band = plan_band(&plan);
    let params = plan_params(&plan);
    let old_grids = store.plan_grids(id).await?;
    let old_asg: HashMap<String, String> = store.plan_assignment(id).await?.into_iter().collect();
    let (cs, bs, roads) = crate::store::regrid::load(store, Some(&plan.communities)).await?;
    let mut olds = Vec::new();
    for c in &cs {
        olds.push(load(store, None, &plan, &c.code).await?);
    }
    // communities in parallel, largest first (tessellation dominates)
    let out: Vec<Result<_, EditError>> = heavy(|| {
        use rayon::prelude::*;
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
    for (f, st, _, _) in &out {
        let row = FabricRow {
            fabric: heavy(|| f.encode()),
            state: st.to_text(),
        };
        store.save_plan_fabric(np.id, &f.community, row).await?;
    }
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
