//! What the web map reads of a plan besides tiles: the table of its grids (figures, band,
//! locks, worker, bounding box; no geometry) and which grid each building is in; and the grid
//! worker of a grid, set by an administrator.

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::ogc::redact;
use super::routes::Route;
use crate::store::{FeatureQuery, Layer, Worker};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use geo::{Area, BoundingRect, Euclidean, Length, Polygon};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Area (m²) and Polsby-Popper of a grid, in a local equirectangular frame at its latitude.
fn shape_figures(g: &geo::Geometry) -> (f64, f64) {
    let Some(r) = g.bounding_rect() else {
        return (0.0, 0.0);
    };
    let lat = r.center().y.to_radians();
    let (kx, ky) = (111_320.0 * lat.cos(), 110_574.0);
    let polys: Vec<Polygon> = match g {
        geo::Geometry::Polygon(p) => vec![p.clone()],
        geo::Geometry::MultiPolygon(m) => m.0.clone(),
        _ => vec![],
    };
    let (mut area, mut perim) = (0.0, 0.0);
    for p in polys {
        let m = geo::MapCoords::map_coords(&p, |c| geo::coord! { x: c.x * kx, y: c.y * ky });
        area += m.unsigned_area();
        perim += Euclidean.length(m.exterior());
        perim += m
            .interiors()
            .iter()
            .map(|r| Euclidean.length(r))
            .sum::<f64>();
    }
    let pp = if perim > 0.0 {
        4.0 * std::f64::consts::PI * area / (perim * perim)
    } else {
        0.0
    };
    (area, pp)
}

/// The locked grids of a plan (from its communities' edit states).
async fn locked_codes(s: &AppState, plan: &crate::store::Plan) -> HashSet<String> {
    let mut out = HashSet::new();
    for c in &plan.communities {
        let Ok(Some(st)) = s.store.plan_state(plan.id, c).await else {
            continue;
        };
        if let Ok(st) = serde_json::from_str::<crate::plan::State>(&st) {
            out.extend(st.grids.into_iter().filter(|g| g.locked).map(|g| g.code));
        }
    }
    out
}

/// GET /plans/{id}/grids — every grid of the plan as a row, redacted for the caller.
pub async fn grids(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let plan = s.store.plan(id).await?;
    let page = s
        .store
        .features(
            Layer::Grids,
            &FeatureQuery {
                plan: Some(id),
                limit: 0,
                ..FeatureQuery::default()
            },
        )
        .await?;
    let locked = locked_codes(&s, &plan).await;
    let mut rows: Vec<Value> = page
        .features
        .into_iter()
        .map(|f| {
            let mut props: Map<String, Value> = f.properties;
            redact(Layer::Grids, &mut props, &p);
            if let Some(g) = &f.geometry {
                let (area, pp) = shape_figures(g);
                props.insert("area_m2".into(), json!((area * 10.0).round() / 10.0));
                props.insert("polsby_popper".into(), json!((pp * 1e4).round() / 1e4));
                let mp = match g {
                    geo::Geometry::Polygon(p) => Some(geo::MultiPolygon(vec![p.clone()])),
                    geo::Geometry::MultiPolygon(m) => Some(m.clone()),
                    _ => None,
                };
                if let Some(c) = mp
                    .as_ref()
                    .and_then(crate::geom::interior_point::interior_point)
                {
                    props.insert("label".into(), json!([c.x, c.y]));
                }
                if let Some(r) = g.bounding_rect() {
                    props.insert(
                        "bbox".into(),
                        json!([r.min().x, r.min().y, r.max().x, r.max().y]),
                    );
                }
            }
            let code = props.get("code").and_then(Value::as_str).unwrap_or("");
            let is_locked = locked.contains(code);
            props.insert("locked".into(), json!(is_locked));
            Value::Object(props)
        })
        .collect();
    rows.sort_by(|a, b| {
        a["code"]
            .as_str()
            .unwrap_or("")
            .cmp(b["code"].as_str().unwrap_or(""))
    });
    Ok(Json(json!({
        "plan": plan.id,
        "status": plan.status.as_str(),
        "version": plan.version,
        "band": {
            "min": plan.params.get("min"),
            "target": plan.params.get("target"),
            "max": plan.params.get("max"),
        },
        "grids": rows,
    })))
}

mod workers;
pub use workers::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_has_the_square_polsby_popper() {
        let d = 0.001;
        let ring = vec![(0.0, 0.0), (d, 0.0), (d, d), (0.0, d), (0.0, 0.0)];
        let sq = geo::Geometry::Polygon(Polygon::new(ring.into(), vec![]));
        let (area, pp) = shape_figures(&sq);
        assert!((pp - std::f64::consts::PI / 4.0).abs() < 0.01, "{pp}");
        assert!((area - 111.32 * 110.574).abs() < 1.0, "{area}");
    }
}
