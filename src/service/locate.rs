//! `/locate`: which grid a point is in, from an in-memory exact locator of every published grid
//! (rebuilt when the service changes a plan, refreshed in the background when older than
//! `LOCATOR_TTL`, for plans published by another process).

use super::AppState;
use super::error::ApiError;
use super::routes::Route;
use crate::geom::crs::{Crs, Transformer};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A point this near a grid's edge (metres) is on it, and so in that grid.
const ON_BOUNDARY_M: f64 = 0.001;

/// How long a locator built from the store is trusted.
const LOCATOR_TTL: Duration = Duration::from_secs(5);

/// The grids in force now and those scheduled, as an exact locator. Grids that ended before
/// `cutoff` are not held (memory stays that of the plans in force however many were
/// published); a question about an earlier instant is answered by the store.
pub(super) struct LocatorCache {
    generation: u64,
    built: std::time::Instant,
    cutoff: i64,
    locator: Option<crate::locate::Locator>,
    /// Per zone, what the answer names (the locator holds the geometry).
    answers: Vec<crate::store::GridHit>,
}

impl AppState {
    /// The locator of every published grid, from the cache or rebuilt. After a change made
    /// here (`invalidate`) it is rebuilt before answering; when it is merely older than
    /// `LOCATOR_TTL`, the old one answers while one background task rebuilds it.
    async fn locator(self: &Arc<Self>) -> Result<Arc<LocatorCache>, ApiError> {
        use std::sync::atomic::Ordering;
        let generation = self.generation.load(Ordering::SeqCst);
        let current = self.locator.read().ok().and_then(|g| g.clone());
        if let Some(c) = &current
            && c.generation == generation
        {
            if c.built.elapsed() >= LOCATOR_TTL && !self.refreshing.swap(true, Ordering::SeqCst) {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.rebuild_locator(generation).await {
                        tracing::warn!("locator refresh failed: {}", e.message);
                    }
                    me.refreshing.store(false, Ordering::SeqCst);
                });
            }
            return Ok(c.clone());
        }
        let _one = self.rebuilding.lock().await;
        if let Some(c) = self.locator.read().ok().and_then(|g| g.clone())
            && c.generation == generation
        {
            return Ok(c);
        }
        self.rebuild_locator(generation).await
    }

    /// The grid in force at `at` holding a WGS84 point: from the locator in memory, or for an
    /// instant before it was built (grids since superseded) from the store.
    pub(super) async fn grid_at(
        self: &Arc<Self>,
        lon: f64,
        lat: f64,
        at: i64,
    ) -> Result<Option<crate::store::GridHit>, ApiError> {
        let cache = self.locator().await?;
        if at < cache.cutoff {
            return Ok(self.store.grid_at(lon, lat, at).await?);
        }
        // a point on a boundary (as the store's `intersects`) is in the grid it touches
        Ok(cache
            .locator
            .as_ref()
            .and_then(|loc| match loc.locate(lon, lat, Some(at)) {
                crate::locate::Located::Inside(i) => Some(cache.answers[i].clone()),
                crate::locate::Located::Outside {
                    nearest,
                    distance_m,
                } if distance_m < ON_BOUNDARY_M => Some(cache.answers[nearest].clone()),
                _ => None,
            }))
    }

    async fn rebuild_locator(&self, generation: u64) -> Result<Arc<LocatorCache>, ApiError> {
        let cutoff = chrono::Utc::now().timestamp();
        let mut zones = Vec::new();
        let mut answers = Vec::new();
        for p in self.store.plans().await? {
            if p.status == crate::store::PlanStatus::Draft
                || p.valid_to.is_some_and(|t| t <= cutoff)
            {
                continue;
            }
            let page = self
                .store
                .features(
                    crate::store::Layer::Grids,
                    &crate::store::FeatureQuery {
                        plan: Some(p.id),
                        ..crate::store::FeatureQuery::default()
                    },
                )
                .await?;
            for f in page.features {
                let Some(geo::Geometry::MultiPolygon(mp)) = f.geometry else {
                    continue;
                };
                let text = |k: &str| {
                    f.properties
                        .get(k)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let time = |k: &str| text(k).and_then(|t| crate::model::parse_time(&t));
                if time("valid_to").is_some_and(|t| t <= cutoff) {
                    continue;
                }
                zones.push(crate::locate::Zone {
                    code: f.id.clone(),
                    name: None,
                    community: None,
                    street: None,
                    valid_from: time("valid_from"),
                    valid_to: time("valid_to"),
                    polygon: mp,
                });
                answers.push(crate::store::GridHit {
                    code: f.id.clone(),
                    name: text("name"),
                    community: text("community").unwrap_or_default(),
                    street: text("street"),
                    plan: p.id,
                    worker: text("worker_name").map(|name| crate::store::Worker {
                        name,
                        phone: text("worker_phone"),
                    }),
                });
            }
        }
        let locator = if zones.is_empty() {
            None
        } else {
            Some(crate::locate::Locator::new(zones).map_err(ApiError::internal)?)
        };
        let c = Arc::new(LocatorCache {
            generation,
            built: std::time::Instant::now(),
            cutoff,
            locator,
            answers,
        });
        if let Ok(mut g) = self.locator.write() {
            *g = Some(c.clone());
        }
        Ok(c)
    }
}

#[derive(Debug, Deserialize)]
struct LocateQuery {
    lon: Option<String>,
    lat: Option<String>,
    crs: Option<String>,
    at: Option<String>,
}

async fn locate(
    State(s): State<Arc<AppState>>,
    Query(q): Query<LocateQuery>,
) -> Result<Json<Value>, ApiError> {
    let num = |v: &Option<String>, k: &str| -> Result<f64, ApiError> {
        v.as_deref()
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required")))?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ApiError::bad_request(format!("{k}: expected a number")))
    };
    let (x, y) = (num(&q.lon, "lon")?, num(&q.lat, "lat")?);
    if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
        return Err(ApiError::bad_request("lon/lat out of range"));
    }
    let crs = match q
        .crs
        .as_deref()
        .unwrap_or("wgs84")
        .to_ascii_lowercase()
        .as_str()
    {
        "wgs84" | "epsg:4326" => Crs::Wgs84,
        "gcj02" => Crs::Gcj02,
        "bd09" => Crs::Bd09,
        o => {
            return Err(ApiError::bad_request(format!(
                "crs={o:?}: expected wgs84, gcj02 or bd09"
            )));
        }
    };
    let (lon, lat) = if crs == Crs::Wgs84 {
        (x, y)
    } else {
        let c = Transformer::new(crs, Crs::Wgs84)
            .and_then(|t| t.apply(geo::coord! { x: x, y: y }))
            .map_err(|e| ApiError::bad_request(format!("crs: {e}")))?;
        (c.x, c.y)
    };
    let at = match &q.at {
        Some(t) => super::parse_instant(t)
            .map_err(|e| ApiError::bad_request(format!("at: {}", e.message)))?,
        None => chrono::Utc::now().timestamp(),
    };
    let hit = s.grid_at(lon, lat, at).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "({lon:.6}, {lat:.6}) is in no grid in force at {}",
            crate::store::ts_text(at)
        ))
    })?;
    Ok(Json(json!({
        "lon": lon, "lat": lat,
        "grid": { "code": hit.code, "name": hit.name },
        "community": hit.community,
        "street": hit.street,
        "plan": hit.plan,
        "worker": hit.worker,
    })))
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    use super::routes::schema;
    vec![
        Route::get(
            "/locate",
            locate,
            "locate",
            "public",
            "Which grid is this point in, and who is its grid worker (404 when in none)",
        )
        .required(vec![
            (
                "lon",
                json!({ "type": "number", "minimum": -180, "maximum": 180 }),
                "Longitude, degrees (of the crs)",
            ),
            (
                "lat",
                json!({ "type": "number", "minimum": -90, "maximum": 90 }),
                "Latitude, degrees (of the crs)",
            ),
        ])
        .query(vec![
            (
                "crs",
                schema::one_of(&["wgs84", "epsg:4326", "gcj02", "bd09"]),
                "The coordinates' system: WGS84 (default), GCJ-02 or BD-09 (as Chinese map apps give them)",
            ),
            (
                "at",
                schema::datetime(),
                "The instant whose plans in force answer (default: now)",
            ),
        ]),
    ]
}
