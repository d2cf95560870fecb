//! The store's business rules, once, for every backend: what a plan must satisfy to be saved
//! or published, which filters a layer takes, how an incident's history may grow. The backends
//! only run SQL and call these.

use super::{
    CommunityRecord, FeatureQuery, Layer, NewPlan, Plan, PlanStatus, Result, StoreError, ts_text,
};
use crate::incident::Case;
use crate::model::Community;
use geo::{BoundingRect, Contains, Intersects, MultiPolygon, Point, Rect};

/// Check a new plan against the stored communities: known, grids inside, codes unique.
pub(crate) fn check_plan(plan: &NewPlan, communities: &[CommunityRecord]) -> Result<()> {
    if plan.grids.is_empty() {
        return Err(StoreError::Invalid("a plan needs at least one grid".into()));
    }
    let by: std::collections::HashMap<&str, &Community> = communities
        .iter()
        .map(|c| (c.community.code.as_str(), &c.community))
        .collect();
    for c in &plan.communities {
        if !by.contains_key(c.as_str()) {
            return Err(StoreError::Invalid(format!(
                "plan names community {c:?}, which is not in the store"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for g in &plan.grids {
        if !seen.insert(g.code.as_str()) {
            return Err(StoreError::Conflict(format!(
                "grid code {:?} appears twice in the plan",
                g.code
            )));
        }
        let Some(c) = by.get(g.community.as_str()) else {
            return Err(StoreError::Invalid(format!(
                "grid {}: community {:?} is not in the store",
                g.code, g.community
            )));
        };
        if !plan.communities.contains(&g.community) {
            return Err(StoreError::Invalid(format!(
                "grid {}: community {:?} is not one of the plan's communities",
                g.code, g.community
            )));
        }
        if !grid_inside(&g.geometry, &c.geometry) {
            return Err(StoreError::Invalid(format!(
                "grid {} lies outside its community {}",
                g.code, g.community
            )));
        }
    }
    Ok(())
}

/// A grid lies inside its community: its bounding box within the community's (1 m slack) and
/// its vertices within about a metre of the community.
fn grid_inside(g: &MultiPolygon, c: &MultiPolygon) -> bool {
    let (Some(gr), Some(cr)) = (g.bounding_rect(), c.bounding_rect()) else {
        return false;
    };
    let slack = 1e-5;
    if gr.min().x < cr.min().x - slack
        || gr.min().y < cr.min().y - slack
        || gr.max().x > cr.max().x + slack
        || gr.max().y > cr.max().y + slack
    {
        return false;
    }
    let Some(ip) = crate::geom::interior_point::interior_point(g) else {
        return false;
    };
    if !c.contains(&Point::from(ip)) && !c.intersects(&Point::from(ip)) {
        return false;
    }
    // vertices: each within the community or within ~1 m of it
    g.0.iter()
        .flat_map(|p| p.exterior().0.iter())
        .step_by(1)
        .all(|v| {
            let p = Point::from(*v);
            c.intersects(&p) || {
                let r = Rect::new(
                    geo::coord! { x: v.x - slack, y: v.y - slack },
                    geo::coord! { x: v.x + slack, y: v.y + slack },
                );
                c.intersects(&r)
            }
        })
}

/// Check equality filter names against the layer.
pub(crate) fn check_filters(layer: Layer, q: &FeatureQuery) -> Result<()> {
    for (k, _) in &q.equals {
        if !layer.filterable().contains(&k.as_str()) {
            return Err(StoreError::Invalid(format!(
                "layer {} cannot be filtered by {k:?}; it can by {:?}",
                layer.name(),
                layer.filterable()
            )));
        }
    }
    Ok(())
}

/// Checks of an incident update: the stored history is a prefix of the new one.
pub(crate) fn check_history(old: &Case, new: &Case, expected: usize) -> Result<()> {
    if old.history.len() != expected {
        return Err(StoreError::Conflict(format!(
            "incident {}: changed meanwhile (history has {} entries, expected {expected})",
            new.id,
            old.history.len()
        )));
    }
    if new.history.len() < old.history.len() || new.history[..old.history.len()] != old.history[..]
    {
        return Err(StoreError::Conflict(format!(
            "incident {}: history is append-only; stored entries cannot change",
            new.id
        )));
    }
    Ok(())
}

/// A plan may be published when it is a draft and, with `expected_version` (the caller's
/// ETag), still at that version.
pub(crate) fn check_publishable(p: &Plan, expected_version: Option<i64>) -> Result<()> {
    if let Some(v) = expected_version
        && v != p.version
    {
        return Err(StoreError::Stale(format!(
            "plan {} is at version {}, not {v}: it changed meanwhile",
            p.id, p.version
        )));
    }
    if p.status != PlanStatus::Draft {
        return Err(StoreError::Conflict(format!(
            "plan {} is {}; only a draft can be published",
            p.id,
            p.status.as_str()
        )));
    }
    Ok(())
}

/// A plan takes effect after every plan in force for the same communities: `prev` are those
/// plans with the start of their grids (seconds).
pub(crate) fn check_not_before(prev: &[(i64, i64)], valid_from: i64) -> Result<()> {
    for &(pid, from) in prev {
        if from >= valid_from {
            return Err(StoreError::Invalid(format!(
                "plan {pid} takes effect at {}, not before {}: publish from a later time",
                ts_text(from),
                ts_text(valid_from)
            )));
        }
    }
    Ok(())
}

/// What a grid published out of band always carries when no reason is given: one building
/// above the band cannot be split.
pub const OVERSIZE_REASON: &str =
    "一栋楼的户数超出上限，不可拆分（a single building above the band cannot be split）";

/// The exception register of a publication: every grid of plan `id` out of band (code, band,
/// households, in code order) with its reason from `reasons` (by code, `*` for the rest under
/// or over the band); a grid of one building above the band takes [`OVERSIZE_REASON`] unless
/// named.
///
/// # Errors
/// A grid out of band without a reason (all of them named), a blank reason, or a reason for a
/// grid that is not out of band in this plan.
pub(crate) fn exception_register(
    id: i64,
    out_of_band: &[(String, String, u64)],
    reasons: &super::Reasons,
) -> Result<Vec<(String, String, u64, String)>> {
    if let Some((code, _)) = reasons.iter().find(|(_, r)| r.trim().is_empty()) {
        return Err(StoreError::Invalid(format!(
            "the reason for grid {code} is blank: say why it may stay out of band"
        )));
    }
    for code in reasons.keys().filter(|c| *c != "*") {
        if !out_of_band.iter().any(|g| &g.0 == code) {
            return Err(StoreError::Invalid(format!(
                "a reason is given for grid {code}, which is not out of band in plan {id} (only grids out of band are registered)"
            )));
        }
    }
    let mut out = Vec::with_capacity(out_of_band.len());
    let mut missing = Vec::new();
    for (code, band, hh) in out_of_band {
        // `*` covers the grids a planner could redraw; one building above the band has its own
        let reason = reasons
            .get(code)
            .or_else(|| reasons.get("*").filter(|_| band != "oversize"))
            .map(|r| r.trim().to_string())
            .or_else(|| (band == "oversize").then(|| OVERSIZE_REASON.to_string()));
        match reason {
            Some(r) => out.push((code.clone(), band.clone(), *hh, r)),
            None => missing.push(format!("{code} ({band}, {hh} households)")),
        }
    }
    if !missing.is_empty() {
        return Err(StoreError::Invalid(format!(
            "plan {id} has {} grid{} out of band without a reason: {}; give one per grid (`--exception CODE=REASON`, or \"exceptions\": {{\"CODE\": \"reason\"}} in the body)",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    out.sort();
    Ok(out)
}

/// The audit line of a publication: (target, detail).
pub(crate) fn publish_detail(
    id: i64,
    valid_from: i64,
    retired: &[i64],
    exceptions: usize,
) -> (String, String) {
    (
        format!("plan {id}"),
        format!(
            "valid from {}; retired grids of plans {retired:?}; {exceptions} grids out of band registered with reasons",
            ts_text(valid_from)
        ),
    )
}

/// A plan may be edited when it is a draft still at the version the edit was computed on.
pub(crate) fn check_editable(p: &Plan, expected_version: i64) -> Result<()> {
    if p.status != PlanStatus::Draft {
        return Err(StoreError::Conflict(format!(
            "plan {} is {}; only a draft can be edited (copy it first: `wangge plans copy {}`)",
            p.id,
            p.status.as_str(),
            p.id
        )));
    }
    if expected_version != p.version {
        return Err(StoreError::Stale(format!(
            "plan {} is at version {}, not {expected_version}: it changed meanwhile",
            p.id, p.version
        )));
    }
    Ok(())
}
