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
mod fabrics;
pub mod import;
pub mod ops;
pub mod rebalance;
pub mod state;
mod whole;

pub use derive::{Derived, derive};
pub use fabrics::{FabricCache, Loaded, WARM_MAX, load, save_fabrics, warm};
pub use ops::Op;
pub use state::State;
pub use whole::{
    RebalanceReport, check_plan, check_schema, copy_plan, handover_csv, import_plan,
    outcome_schema, rebalance_plan,
};

use crate::partition::Band;
use crate::partition::fabric::Fabric;
use crate::store::{EditLog, GridRecord, Plan, PlanEdit, PlanStatus, Store, StoreError};
use serde_json::{Value, json};
use std::collections::HashMap;
use tracing::Instrument;

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
pub(crate) fn heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The community of grid `code` among a plan's communities (a grid code is its community's
/// code and a sequence number, `grid_code`).
fn community_of_code<'p>(plan: &'p Plan, code: &str) -> Option<&'p String> {
    let n = state::seq_of(code)?;
    plan.communities
        .iter()
        .find(|k| crate::model::grid_code(k, n).as_str() == code)
}

/// The community an operation works in.
async fn community_of(store: &dyn Store, plan: &Plan, op: &Op) -> Result<String, EditError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let codes = op.codes();
    if !codes.is_empty() {
        for c in codes {
            // a grid code is its community's code and a sequence number (grid_code)
            let comm = community_of_code(plan, c).ok_or_else(|| {
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
        // only the named buildings' rows (an edit names a few of a plan's many buildings)
        let asg: HashMap<String, String> = store
            .plan_assignment_of(plan.id, op.buildings())
            .await?
            .into_iter()
            .collect();
        for b in op.buildings() {
            let code = asg.get(b).ok_or_else(|| {
                EditError::NotFound(format!("building {b} is not in plan {}", plan.id))
            })?;
            let comm = community_of_code(plan, code).ok_or_else(|| {
                EditError::NotFound(format!(
                    "building {b}: grid {code} is not in plan {}",
                    plan.id
                ))
            })?;
            found.push((format!("building {b}"), comm.clone()));
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
        let derived = heavy(|| {
            let _s = tracing::debug_span!("edit.derive").entered();
            derive(f, &c.after, band)
        })?;
        let stored = store
            .plan_community_grids(c.plan.id, c.community)
            .instrument(tracing::debug_span!("edit.stored"))
            .await?;
        let _s = tracing::debug_span!("edit.diff").entered();
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
    let (plan, seq) = store
        .apply_plan_edit(c.plan.id, edit)
        .instrument(tracing::debug_span!("edit.write"))
        .await?;
    let seq = Some(seq);
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
    let (plan, v) = editable(store, id, req.expected_version)
        .instrument(tracing::debug_span!("edit.plan"))
        .await?;
    let community = community_of(store, &plan, op)
        .instrument(tracing::debug_span!("edit.community_of"))
        .await?;
    let (loaded, before) = load(store, cache, &plan, &community)
        .instrument(tracing::debug_span!("edit.load"))
        .await?;
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
    let applied = heavy(|| {
        let _s = tracing::debug_span!("edit.op").entered();
        ops::apply(op, &before, &input)
    })?;
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
    let Some(t) = store.plan_edit_next(id, redo).await? else {
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
