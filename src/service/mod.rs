//! `wangge serve`: the HTTP service (axum on tokio) over whatever store is configured — OGC API –
//! Features, locate, Open311 GeoReport v2 and the native case API, statistics, plans with jobs and
//! ETags; API tokens with roles and privacy rules; the OpenAPI document built from the route table.

pub mod auth;
mod cases;
mod cql2;
mod edits;
pub mod error;
mod limits;
mod locate;
mod ogc;
mod ogc_crs;
pub(crate) mod open311;
mod plans;
mod planview;
mod precondition;
mod proxy;
pub use proxy::Block as ProxyBlock;
mod print;
pub mod routes;
mod tiles;
pub mod web;
pub use limits::RateLimitConfig;
pub use open311::Open311Config;

use crate::incident::{Calendar, Catalogue};
use crate::store::Store;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use error::ApiError;
use routes::Route;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
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
    /// Longest wait for a request's headers, seconds (a client sending them slowly is cut off).
    pub header_timeout_seconds: u64,
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
    /// An external basemap under the web map's layers (`[basemap]`: `tiles` or `style`, `crs`);
    /// none: our own roads, buildings and communities (works offline).
    pub basemap: Option<web::Basemap>,
    /// Origins whose pages may call the service (CORS): `["*"]` (default) for any, or a list
    /// such as `["https://map.example.gov.cn"]`; `[]` turns CORS off.
    pub cors_origins: Vec<String>,
    /// The service's public address (e.g. `https://grid.example.gov.cn`), for the QR codes of
    /// printed signboards; default: the address the request came to.
    pub public_base_url: Option<String>,
    /// Attribution shown by map clients (TileJSON `attribution`): name your data's sources here,
    /// e.g. "© OpenStreetMap contributors" for OSM buildings and roads.
    pub tile_attribution: String,
    /// Reverse proxies (IPs or CIDR blocks, e.g. `["127.0.0.1", "10.0.0.0/8"]`) whose
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` are believed when writing links; from anyone
    /// else those headers are ignored. Default: none. (`public_base_url` wins over both.)
    pub trusted_proxies: Vec<String>,
    /// Open311 GeoReport v2 (`[open311]`: `jurisdiction_id`, `contact`, `key_service`).
    pub open311: open311::Open311Config,
    /// Rate limits per client (`[rate_limits]`).
    pub rate_limits: limits::RateLimitConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            body_limit_bytes: 1 << 20,
            timeout_seconds: 30,
            header_timeout_seconds: 10,
            page_default: 100,
            page_max: 1000,
            catalogue: None,
            calendar: None,
            cache_control: "public, max-age=60".into(),
            archive: None,
            tile_cache_tiles: crate::tiles::source::CACHE_TILES,
            tile_encoder: crate::tiles::Encoder::InProcess,
            basemap: None,
            cors_origins: vec!["*".into()],
            public_base_url: None,
            tile_attribution: "wangge 社区网格".into(),
            trusted_proxies: Vec::new(),
            open311: open311::Open311Config::default(),
            rate_limits: limits::RateLimitConfig::default(),
        }
    }
}

/// Shared state of the service.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalogue: Catalogue,
    pub calendar: Calendar,
    pub config: Config,
    /// Bumped when plans or incidents change (caches key on it).
    pub generation: Arc<AtomicU64>,
    /// Bumped when incidents change (the incident and heat tiles key on it).
    pub case_generation: Arc<AtomicU64>,
    /// The grids of every published plan in the exact locator, rebuilt when `generation` moves
    /// or after `LOCATOR_TTL` (plans published by another process).
    locator: std::sync::RwLock<Option<Arc<locate::LocatorCache>>>,
    /// One rebuild at a time; a background refresh is under way.
    rebuilding: tokio::sync::Mutex<()>,
    refreshing: std::sync::atomic::AtomicBool,
    /// Where tiles come from: a configured archive first (public requests in its zooms), then
    /// the store through a bounded cache that follows `generation`.
    pub tiles: crate::tiles::Chain,
    /// Decoded plan fabrics (they never change once made).
    pub fabrics: crate::plan::FabricCache,
    /// The grids in force as printed pages need them.
    pub print_source: print::SourceCache,
    /// Rate limits per client.
    pub limits: limits::Limits,
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
        let limits = limits::Limits::new(&config.rate_limits);
        let live = crate::tiles::StoreSource::new(store.clone(), config.tile_encoder);
        let case_generation = Arc::new(AtomicU64::new(0));
        let cached = crate::tiles::Cached::new(
            live,
            config.tile_cache_tiles,
            generation.clone(),
            case_generation.clone(),
        );
        AppState {
            store,
            catalogue,
            calendar,
            config,
            fabrics: crate::plan::FabricCache::default(),
            print_source: print::SourceCache::default(),
            limits,
            generation,
            case_generation,
            locator: std::sync::RwLock::new(None),
            rebuilding: tokio::sync::Mutex::new(()),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            tiles: crate::tiles::Chain::default().then(Arc::new(cached)),
        }
    }

    /// Published plans or incidents changed: drop what caches hold, and tell the other
    /// processes serving the same store.
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            rt.spawn(async move {
                if let Err(e) = store.announce_change().await {
                    tracing::warn!("announcing a change: {e}");
                }
            });
        }
    }

    /// Incidents changed: only what shows incidents is redone (the heat and incident tiles);
    /// grid tiles, the locator and printed sources stay. Other processes are told.
    pub fn invalidate_cases(&self) {
        self.case_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            rt.spawn(async move {
                if let Err(e) = store.announce_change().await {
                    tracing::warn!("announcing a change: {e}");
                }
            });
        }
    }

    /// Follow the changes other processes make to the store: each moves `generation`, so the
    /// locator and the tile cache are rebuilt on their next use.
    pub fn follow_other_processes(&self) {
        let generation = self.generation.clone();
        let cases = self.case_generation.clone();
        self.store.watch_changes(Arc::new(move || {
            generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
}

impl AppState {
    /// The address links are written with: `public_base_url` from the config (the service
    /// behind a proxy or on its public name), else `http://` + the request's Host.
    pub(crate) fn base(&self, h: &HeaderMap) -> String {
        self.config
            .public_base_url
            .as_deref()
            .map_or_else(|| base_url(h), |u| u.trim_end_matches('/').to_string())
    }
}

/// `scheme://host` of a request: the Host header (a trusted proxy's `X-Forwarded-Host`) and
/// the scheme a trusted proxy reported (`proxy::apply`), else http.
pub(crate) fn base_url(h: &HeaderMap) -> String {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match h.get(proxy::PROTO).and_then(|v| v.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
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

/// A plan id given as a parameter (`?plan=`): a positive integer.
pub(crate) fn parse_plan_id(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("plan={v:?}: expected a plan id (1 or more)")))
}

/// One instant of a request: RFC 3339 with its offset, or a date (its start, UTC) — nothing
/// else (no epoch numbers, no times without an offset).
pub(crate) fn parse_instant(x: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(x)
        .map(|d| d.timestamp())
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "datetime {x:?}: expected RFC 3339 with an offset (2026-01-01T08:00:00+08:00) or a date"
            ))
        })
}

/// An instant, or an interval `start/end` whose ends may be open (`..` or empty), as OGC API
/// – Features reads `datetime`: (start, end), equal for an instant.
pub(crate) fn parse_datetime(s: &str) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let end = |x: &str| -> Result<Option<i64>, ApiError> {
        if x.is_empty() || x == ".." {
            return Ok(None);
        }
        parse_instant(x).map(Some)
    };
    match s.split_once('/') {
        Some((a, b)) => Ok((end(a)?, end(b)?)),
        None => {
            let t = parse_instant(s)?;
            Ok((Some(t), Some(t)))
        }
    }
}

/// Each module's routes, in documentation order.
fn module_routes() -> [Vec<Route>; 11] {
    [
        web::routes(),
        ogc::routes(),
        locate::routes(),
        open311::routes(),
        cases::routes(),
        plans::routes(),
        edits::routes(),
        planview::routes(),
        print::routes(),
        tiles::routes(),
        routes(),
    ]
}

/// Every route of the service, in documentation order.
#[must_use]
pub fn all_routes() -> Vec<Route> {
    module_routes().into_iter().flatten().collect()
}

/// The OpenAPI 3 document of every route.
#[must_use]
pub fn openapi_doc() -> Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| routes::openapi_doc(&all_routes()))
        .clone()
}

/// The service's own routes, with their documentation.
fn routes() -> Vec<Route> {
    vec![
        Route::get("/health", health, "service", "public", "Liveness"),
        Route::get(
            "/ready",
            ready,
            "service",
            "public",
            "Readiness: the store answers",
        )
        .statuses(&[503]),
        Route::get(
            "/openapi.json",
            openapi,
            "service",
            "public",
            "This API's OpenAPI 3 document",
        ),
    ]
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

/// Headers on every answer: no MIME sniffing, no framing by other sites, no referrer; and
/// `Cache-Control: no-store` on cases (personal data never sits in a shared or disk cache).
async fn safety_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let personal = {
        let p = req.uri().path();
        p.starts_with("/incidents") || p.starts_with("/stats")
    };
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    if personal {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    resp
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

/// The answer to a request whose handler panicked: a JSON 500 that names no detail of the panic
/// (its message and place go to the log through the panic hook).
fn panic_answer(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::internal("a request handler panicked (its message is above, from the panic hook)")
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /openapi.json)")
}

/// The router with its layers: each module's routes merged.
pub fn router(state: Arc<AppState>) -> Router {
    let r = module_routes()
        .into_iter()
        .fold(Router::new(), |r, m| r.merge(routes::router_of(m)));
    let limit = state.config.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.timeout_seconds.max(1));
    let cors = cors_layer(&state.config.cors_origins);
    let trusted: Arc<Vec<proxy::Block>> = Arc::new(
        state
            .config
            .trusted_proxies
            .iter()
            .filter_map(|b| b.parse().ok())
            .collect(),
    );
    r.fallback(not_found)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Spans name the method and path only: a query may carry `api_key`.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::extract::Request| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
        // a handler that panics (a defect: input must never make one) answers 500 with the
        // JSON body below and leaves the connection and the server up; the panic and its
        // place are logged by the panic hook
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_answer))
        // outermost, so that the limit and timeout responses become JSON too
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(limits::check_head))
        .layer(axum::middleware::from_fn(open311::errors))
        .layer(axum::middleware::from_fn(safety_headers))
        .layer(axum::middleware::from_fn(
            move |mut req: axum::extract::Request, next: axum::middleware::Next| {
                let client = proxy::apply(&mut req, &trusted);
                // every audit line this request writes carries the client's address
                crate::store::context::with_client(client.0.map(|ip| ip.to_string()), next.run(req))
            },
        ))
        .layer(cors)
}

/// CORS for pages on other origins: the configured origins (any with `*`), our methods, the
/// headers a map client sends (Authorization for tokens, If-Match for edits), and the ones it
/// reads back (ETag, Location). Preflights are answered here, before routing.
fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            HeaderName::from_static("x-tile-source"),
        ])
        .max_age(Duration::from_secs(3600))
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
/// Connections are served here rather than by `axum::serve` so that the headers of a request
/// have a deadline (`header_timeout_seconds`): a client sending them slowly is cut off instead
/// of holding a connection.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(state: Arc<AppState>, bind: &str) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("serving {} on http://{addr}/", state.store.describe());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let header_timeout = Duration::from_secs(state.config.header_timeout_seconds.max(1));
    let drain = Duration::from_secs(state.config.timeout_seconds.max(1));
    let app = router(state);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // more than `limits::check_head` allows, so that it (not hyper) answers, with JSON
        .max_headers(4 * limits::MAX_HEADERS);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors and the like: wait a moment, keep serving
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req)
            },
        );
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(drain) => tracing::warn!("requests still running after {drain:?}: closing"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A handler that panics answers a JSON 500 (no detail of the panic) and the service keeps
    /// answering.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_json() {
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let app = Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_answer,
            ))
            .layer(axum::middleware::map_response(json_errors));
        let get = |p: &str| {
            axum::extract::Request::get(p)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "internal", "{v}");
        assert!(!String::from_utf8_lossy(&body).contains("secret detail"));
        let r = app.oneshot(get("/ok")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}
