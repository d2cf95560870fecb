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

mod publish;
pub use publish::*;
