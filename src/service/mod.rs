//! `wangge serve`: the HTTP service (axum on tokio) over whatever store is configured — OGC API –
//! Features, locate, Open311 GeoReport v2 and the native case API, statistics, plans with jobs and
//! ETags; API tokens with roles and privacy rules; the OpenAPI document built from the route table.

pub mod auth;
mod cases;
pub mod error;
mod ogc;
mod plans;
mod tiles;

use crate::geom::crs::{Crs, Transformer};
use crate::incident::{Calendar, Catalogue};
use crate::store::Store;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use error::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Service settings (`--config wangge.toml`; every field optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    /// Largest request body, bytes.
    pub body_limit_bytes: usize,
    /// Longest request, seconds.
    pub timeout_seconds: u64,
    /// Default and largest page of items.
    pub page_default: usize,
    pub page_max: usize,
    /// Event catalogue and working calendar (TOML); default: the shipped ones.
    pub catalogue: Option<String>,
    pub calendar: Option<String>,
    /// Cache-Control for tiles and public features.
    pub cache_control: String,
    /// A PMTiles archive (from `wangge tiles`) served at /tiles/{its layers}/… for public requests.
    pub archive: Option<String>,
    /// Tiles kept in the in-memory tile cache (0 turns the cache off).
    pub tile_cache_tiles: usize,
    /// Who encodes live vector tiles: `"in-process"` (default: this crate's encoder fed by a lean
    /// bbox read of the store — measured fastest on both stores by scripts/bench-tiles) or
    /// `"database"` (PostGIS `ST_AsMVT`; the GeoPackage store has none and encodes in process).
    pub tile_encoder: crate::tiles::Encoder,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            body_limit_bytes: 1 << 20,
            timeout_seconds: 30,
            page_default: 100,
            page_max: 1000,
            catalogue: None,
            calendar: None,
            cache_control: "public, max-age=60".into(),
            archive: None,
            tile_cache_tiles: crate::tiles::source::CACHE_TILES,
            tile_encoder: crate::tiles::Encoder::InProcess,
        }
    }
}

/// A regrid job.
pub struct Job {
    pub state: Mutex<JobState>,
    pub done: AtomicUsize,
    pub total: usize,
}

/// Where a job is.
#[derive(Debug, Clone)]
pub enum JobState {
    Running,
    Done(i64),
    Failed(String),
}

/// Shared state of the service.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalogue: Catalogue,
    pub calendar: Calendar,
    pub config: Config,
    pub jobs: Mutex<HashMap<u64, Arc<Job>>>,
    pub next_job: AtomicU64,
    /// Bumped when plans or incidents change (caches key on it).
    pub generation: Arc<AtomicU64>,
    /// The grids of every published plan in the exact locator, rebuilt when `generation` moves
    /// or after `LOCATOR_TTL` (plans published by another process).
    locator: std::sync::RwLock<Option<Arc<LocatorCache>>>,
    /// One rebuild at a time; a background refresh is under way.
    rebuilding: tokio::sync::Mutex<()>,
    refreshing: std::sync::atomic::AtomicBool,
    /// Where tiles come from: a configured archive first (public requests in its zooms), then
    /// the store through a bounded cache that follows `generation`.
    pub tiles: crate::tiles::Chain,
}

/// How long a locator built from the store is trusted.
const LOCATOR_TTL: Duration = Duration::from_secs(5);

struct LocatorCache {
    generation: u64,
    built: std::time::Instant,
    locator: Option<crate::locate::Locator>,
    /// Per zone: plan id and the worker's public contact.
    extra: Vec<(i64, Option<crate::store::Worker>)>,
    zones: Vec<crate::locate::Zone>,
}

impl AppState {
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        catalogue: Catalogue,
        calendar: Calendar,
        config: Config,
    ) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let live = crate::tiles::StoreSource {
            store: store.clone(),
            encoder: config.tile_encoder,
        };
        let cached = crate::tiles::Cached::new(live, config.tile_cache_tiles, generation.clone());
        AppState {
            store,
            catalogue,
            calendar,
            config,
            jobs: Mutex::new(HashMap::new()),
            next_job: AtomicU64::new(0),
            generation,
            locator: std::sync::RwLock::new(None),
            rebuilding: tokio::sync::Mutex::new(()),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            tiles: crate::tiles::Chain::default().then(Arc::new(cached)),
        }
    }

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

    async fn rebuild_locator(&self, generation: u64) -> Result<Arc<LocatorCache>, ApiError> {
        let mut zones = Vec::new();
        let mut extra = Vec::new();
        for p in self.store.plans().await? {
            if p.status == crate::store::PlanStatus::Draft {
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
                zones.push(crate::locate::Zone {
                    code: f.id.clone(),
                    name: text("name"),
                    community: text("community"),
                    street: text("street"),
                    valid_from: time("valid_from"),
                    valid_to: time("valid_to"),
                    polygon: mp,
                });
                extra.push((
                    p.id,
                    text("worker_name").map(|name| crate::store::Worker {
                        name,
                        phone: text("worker_phone"),
                    }),
                ));
            }
        }
        let locator = if zones.is_empty() {
            None
        } else {
            Some(crate::locate::Locator::new(zones.clone()).map_err(ApiError::internal)?)
        };
        let c = Arc::new(LocatorCache {
            generation,
            built: std::time::Instant::now(),
            locator,
            extra,
            zones,
        });
        if let Ok(mut g) = self.locator.write() {
            *g = Some(c.clone());
        }
        Ok(c)
    }
    /// Published plans or incidents changed: drop what caches hold.
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `http://host` of a request (from its Host header).
pub(crate) fn base_url(h: &HeaderMap) -> String {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// An instant or an interval `a/b` (`..` open) → (from, to); an instant gives (t, t).
pub(crate) fn parse_datetime(s: &str) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let one = |x: &str| -> Result<Option<i64>, ApiError> {
        let x = x.trim();
        if x.is_empty() || x == ".." {
            return Ok(None);
        }
        crate::model::parse_time(x).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "datetime {x:?}: expected RFC 3339 (2026-01-01T08:00:00Z) or a date"
            ))
        })
    };
    match s.split_once('/') {
        Some((a, b)) => Ok((one(a)?, one(b)?)),
        None => {
            let t = one(s)?;
            Ok((t, t))
        }
    }
}

/// One documented route.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Who may call it.
    pub access: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    access: &'static str,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        tag,
        access,
    }
}

/// Every route. The router and the OpenAPI document are both built from this table.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "get",
        "/",
        "features",
        "public",
        "Landing page (OGC API – Features)",
    ),
    r(
        "get",
        "/conformance",
        "features",
        "public",
        "Conformance classes",
    ),
    r(
        "get",
        "/collections",
        "features",
        "public",
        "Collections: streets, communities, grids, buildings, incidents",
    ),
    r(
        "get",
        "/collections/{collectionId}",
        "features",
        "public",
        "One collection",
    ),
    r(
        "get",
        "/collections/{collectionId}/items",
        "features",
        "public; incidents: dispatcher, grid_worker, admin",
        "Features (bbox, limit, offset, datetime, plan, property=value); household counts need a token",
    ),
    r(
        "get",
        "/collections/{collectionId}/items/{featureId}",
        "features",
        "public; incidents: dispatcher, grid_worker, admin",
        "One feature",
    ),
    r(
        "get",
        "/locate",
        "locate",
        "public",
        "Which grid is this point in, and who is its grid worker (lon, lat, crs=wgs84|gcj02|bd09, at)",
    ),
    r(
        "get",
        "/open311/v2/services.json",
        "open311",
        "public",
        "Service list (the event catalogue)",
    ),
    r(
        "get",
        "/open311/v2/services/{serviceCode}",
        "open311",
        "public",
        "Service definition ({code}.json)",
    ),
    r(
        "post",
        "/open311/v2/requests.json",
        "open311",
        "public",
        "Report (form-encoded: service_code, lat, long, description, …); located to a grid on arrival",
    ),
    r(
        "get",
        "/open311/v2/requests.json",
        "open311",
        "dispatcher, grid_worker (own scope), admin",
        "Service requests (service_code, status, start_date, end_date, service_request_id)",
    ),
    r(
        "get",
        "/open311/v2/requests/{requestId}",
        "open311",
        "dispatcher, grid_worker (own scope), admin",
        "One service request ({id}.json)",
    ),
    r(
        "get",
        "/incidents",
        "incidents",
        "dispatcher, grid_worker (own scope), admin",
        "Incidents (grid, community, state, category, overdue, from, to, limit, offset)",
    ),
    r(
        "get",
        "/incidents/{id}",
        "incidents",
        "dispatcher, grid_worker (own scope), admin",
        "One incident with its history and the actions allowed now",
    ),
    r(
        "post",
        "/incidents/{id}/transitions",
        "incidents",
        "dispatcher, grid_worker (own scope), admin",
        "Apply an action ({\"action\": \"dispatch\", \"unit\": …}); 409 with the allowed list when illegal",
    ),
    r(
        "get",
        "/stats",
        "incidents",
        "viewer and above",
        "Assessment figures by grid, community, street or category (from, to)",
    ),
    r(
        "get",
        "/stats/h3",
        "incidents",
        "viewer and above",
        "H3 hexagon counts for heat maps (resolution, min_count)",
    ),
    r("get", "/plans", "plans", "viewer, planner, admin", "Plans"),
    r(
        "post",
        "/plans",
        "plans",
        "planner, admin",
        "Regrid (communities, min, max, target, seed) — 202 with the job URL; the result is a draft plan",
    ),
    r(
        "get",
        "/plans/{id}",
        "plans",
        "viewer, planner, admin",
        "One plan, with its ETag",
    ),
    r(
        "get",
        "/plans/{a}/diff/{b}",
        "plans",
        "viewer, planner, admin",
        "Buildings and households that change grid",
    ),
    r(
        "post",
        "/plans/{id}/publish",
        "plans",
        "planner, admin",
        "Publish from valid_from; If-Match with the plan's ETag is required (412 when stale)",
    ),
    r(
        "get",
        "/jobs/{id}",
        "plans",
        "planner, admin",
        "A regrid job's progress and result",
    ),
    r(
        "get",
        "/tiles/{layer}/{z}/{x}/{y}",
        "tiles",
        "public; incidents: dispatcher, admin",
        "Mapbox Vector Tile of communities, grids, buildings, incidents, heat (H3 counts) or all; ?plan=; ETag/304, gzip, 204 when empty",
    ),
    r(
        "get",
        "/tiles/{name}",
        "tiles",
        "public",
        "TileJSON 3.0.0 of a tile layer",
    ),
    r("get", "/health", "service", "public", "Liveness"),
    r(
        "get",
        "/ready",
        "service",
        "public",
        "Readiness: the store answers",
    ),
    r(
        "get",
        "/openapi.json",
        "service",
        "public",
        "This API's OpenAPI 3 document",
    ),
];

fn handler_for(method: &str, path: &str) -> MethodRouter<Arc<AppState>> {
    match (method, path) {
        ("get", "/") => get(ogc::landing),
        ("get", "/conformance") => get(ogc::conformance),
        ("get", "/collections") => get(ogc::collections),
        ("get", "/collections/{collectionId}") => get(ogc::collection),
        ("get", "/collections/{collectionId}/items") => get(ogc::items),
        ("get", "/collections/{collectionId}/items/{featureId}") => get(ogc::item),
        ("get", "/locate") => get(locate),
        ("get", "/open311/v2/services.json") => get(cases::services),
        ("get", "/open311/v2/services/{serviceCode}") => get(cases::service),
        ("post", "/open311/v2/requests.json") => post(cases::post_request),
        ("get", "/open311/v2/requests.json") => get(cases::get_requests),
        ("get", "/open311/v2/requests/{requestId}") => get(cases::get_request),
        ("get", "/incidents") => get(cases::list),
        ("get", "/incidents/{id}") => get(cases::get),
        ("post", "/incidents/{id}/transitions") => post(cases::transition),
        ("get", "/stats") => get(cases::stats),
        ("get", "/stats/h3") => get(cases::h3),
        ("get", "/plans") => get(plans::list),
        ("post", "/plans") => post(plans::create),
        ("get", "/plans/{id}") => get(plans::get),
        ("get", "/plans/{a}/diff/{b}") => get(plans::diff),
        ("post", "/plans/{id}/publish") => post(plans::publish),
        ("get", "/jobs/{id}") => get(plans::job),
        ("get", "/tiles/{layer}/{z}/{x}/{y}") => get(tiles::tile),
        ("get", "/tiles/{name}") => get(tiles::tilejson),
        ("get", "/health") => get(health),
        ("get", "/ready") => get(ready),
        ("get", "/openapi.json") => get(openapi),
        _ => MethodRouter::new(),
    }
}

/// The OpenAPI 3 document of `ROUTES`.
#[must_use]
pub fn openapi_doc() -> Value {
    let mut paths = serde_json::Map::new();
    for rt in ROUTES {
        let params: Vec<Value> = rt
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": rt.summary,
            "tags": [rt.tag],
            "operationId": format!("{}{}", rt.method, rt.path.replace(['/', '{', '}', '.'], "_")),
            "description": format!("Access: {}.", rt.access),
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" }
            }
        });
        if rt.access != "public" {
            op["security"] = json!([{ "bearer": [] }]);
        }
        let entry = paths
            .entry(rt.path.to_string())
            .or_insert_with(|| json!({}));
        entry[rt.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "wangge 网格", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Community grid management: OGC API – Features, locate, Open311 GeoReport v2, incidents, plans." },
        "paths": paths,
        "components": {
            "schemas": layer_schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "wangge token create --role …" } },
            "responses": { "Error": { "description": "An error", "content": { "application/json": { "schema": {
                "type": "object", "required": ["error", "message"],
                "properties": { "error": { "type": "string" }, "message": { "type": "string" } } } } } } }
        }
    })
}

/// One JSON schema per layer's feature properties, from the layer schema; `x-visibility` says
/// who receives each field (public, viewer, staff, personal): others never get it.
fn layer_schemas() -> Value {
    use crate::model::schema::{self, Layer};
    let mut out = serde_json::Map::new();
    for l in Layer::ALL {
        let props: serde_json::Map<String, Value> = schema::fields(l)
            .iter()
            .map(|f| {
                let mut p = json!({
                    "type": f.kind.json_schema(),
                    "nullable": true,
                    "x-visibility": format!("{:?}", f.visibility).to_lowercase(),
                });
                if f.kind == schema::FieldType::Time {
                    p["format"] = json!("date-time");
                }
                (f.name.to_string(), p)
            })
            .collect();
        out.insert(
            format!("{}_properties", l.name()),
            json!({ "type": "object", "properties": props }),
        );
    }
    Value::Object(out)
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/vnd.oai.openapi+json;version=3.0",
        )],
        Json(openapi_doc()),
    )
        .into_response()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    s.store.ping().await.map_err(|e| {
        tracing::warn!("not ready: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store does not answer",
        )
    })?;
    Ok(Json(
        json!({ "status": "ready", "store": s.store.describe() }),
    ))
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
        Some(t) => crate::model::parse_time(t).ok_or_else(|| {
            ApiError::bad_request(format!("at={t:?}: expected RFC 3339 or a date"))
        })?,
        None => chrono::Utc::now().timestamp(),
    };
    let cache = s.locator().await?;
    let miss = || {
        ApiError::not_found(format!(
            "({lon:.6}, {lat:.6}) is in no grid in force at {}",
            crate::store::ts_text(at)
        ))
    };
    let Some(loc) = &cache.locator else {
        return Err(miss());
    };
    let crate::locate::Located::Inside(i) = loc.locate(lon, lat, Some(at)) else {
        return Err(miss());
    };
    let (z, (plan, worker)) = (&cache.zones[i], &cache.extra[i]);
    Ok(Json(json!({
        "lon": lon, "lat": lat,
        "grid": { "code": z.code, "name": z.name },
        "community": z.community,
        "street": z.street,
        "plan": plan,
        "worker": worker,
    })))
}

/// Error responses made outside the handlers (limits, timeouts, rejections, unknown routes) as
/// JSON too.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return resp;
    }
    let (_, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    (
        status,
        Json(json!({ "error": error::code_of(status), "message": message })),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /openapi.json)")
}

/// The router with its layers.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r: Router<Arc<AppState>> = Router::new();
    let mut seen: Vec<&str> = Vec::new();
    for rt in ROUTES {
        if seen.contains(&rt.path) {
            continue;
        }
        seen.push(rt.path);
        let mut m: MethodRouter<Arc<AppState>> = MethodRouter::new();
        for x in ROUTES.iter().filter(|x| x.path == rt.path) {
            m = m.merge(handler_for(x.method, x.path));
        }
        r = r.route(rt.path, m);
    }
    let limit = state.config.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.timeout_seconds.max(1));
    r.fallback(not_found)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // outermost, so that the limit and timeout responses become JSON too
        .layer(axum::middleware::map_response(json_errors))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Serve until SIGTERM or Ctrl-C; requests in flight finish first. Prints the URL when ready.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(state: Arc<AppState>, bind: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("serving {} on http://{addr}/", state.store.describe());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
