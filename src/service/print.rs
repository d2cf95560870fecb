//! Printed grid maps over HTTP: a grid's signboard (public content) as PDF or PNG, a
//! community's atlas (staff), and the grid worker's photo (public to read, admin to set).

use super::AppState;
use super::auth::{Principal, Role};
use super::error::ApiError;
use super::routes::Route;
use crate::print::{Options, Paper, PrintError, render, source::Source};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the grids in force are kept for printing when nothing is published meanwhile
/// (publications by another process are seen after this).
const SOURCE_TTL: Duration = Duration::from_secs(30);

/// The source of the plans in force, cached per generation.
#[derive(Default)]
pub struct SourceCache(tokio::sync::Mutex<Option<(u64, Instant, Arc<Source>)>>);

impl From<PrintError> for ApiError {
    fn from(e: PrintError) -> ApiError {
        match e {
            PrintError::NotFound(m) => ApiError::not_found(m),
            PrintError::Photo(m) => ApiError::unprocessable(m),
            PrintError::Store(e) => e.into(),
            PrintError::Font(m) | PrintError::Render(m) => ApiError::internal(m),
        }
    }
}

fn options(q: &BTreeMap<String, String>) -> Result<Options, ApiError> {
    let paper = match q.get("size") {
        None => Paper::A4,
        Some(s) => s
            .parse()
            .map_err(|e: String| ApiError::bad_request(format!("size: {e}")))?,
    };
    let flag = |k: &str| match q.get(k).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "{k}={v:?}: expected true or false"
        ))),
    };
    Ok(Options {
        paper,
        landscape: flag("landscape")?,
        internal: flag("internal")?,
    })
}

/// The public address for QR codes: the configured `public_base_url`, else the request's host.
fn public_base(s: &AppState, h: &HeaderMap) -> String {
    s.base(h)
}

async fn source(
    s: &AppState,
    p: &Principal,
    q: &BTreeMap<String, String>,
) -> Result<Arc<Source>, ApiError> {
    let now = chrono::Utc::now().timestamp();
    if let Some(v) = q.get("plan") {
        p.require(p.reads_plans(), "plans")?;
        let id = super::parse_plan_id(v)?;
        return Ok(Arc::new(
            Source::load(s.store.as_ref(), Some(id), now).await?,
        ));
    }
    let gen_now = s.generation.load(std::sync::atomic::Ordering::SeqCst);
    let mut c = s.print_source.0.lock().await;
    if let Some((g, at, src)) = c.as_ref()
        && *g == gen_now
        && at.elapsed() < SOURCE_TTL
    {
        return Ok(src.clone());
    }
    let src = Arc::new(Source::load(s.store.as_ref(), None, now).await?);
    *c = Some((gen_now, Instant::now(), src.clone()));
    Ok(src)
}

fn file(bytes: Vec<u8>, mime: &'static str, name: &str, public: bool) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if public {
            "public, max-age=60"
        } else {
            "private, no-store"
        }),
    );
    r
}

/// A grid's signboard, rendered off the async threads.
async fn signboard(
    s: Arc<AppState>,
    p: Principal,
    code: String,
    q: BTreeMap<String, String>,
    h: HeaderMap,
    png: bool,
) -> Result<Response, ApiError> {
    let o = options(&q)?;
    if o.internal {
        p.require(p.sees_households(), "the internal signboard (households)")?;
    }
    let dpi: f32 = match q.get("dpi") {
        None => 150.0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|d| (36.0..=300.0).contains(d))
            .ok_or_else(|| ApiError::bad_request(format!("dpi={v:?}: expected 36 to 300")))?,
    };
    let src = source(&s, &p, &q).await?;
    let (sheet, area) = src
        .grid_sheet(s.store.as_ref(), &code, &public_base(&s, &h))
        .await?;
    let bytes = tokio::task::spawn_blocking(move || {
        if png {
            crate::print::signboard_png(&sheet, &area, o, dpi)
        } else {
            crate::print::signboard_pdf(&sheet, &area, o)
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let public = !o.internal && !q.contains_key("plan");
    Ok(if png {
        file(bytes, "image/png", &format!("signboard-{code}.png"), public)
    } else {
        file(
            bytes,
            "application/pdf",
            &format!("signboard-{code}.pdf"),
            public,
        )
    })
}

/// GET /grids/{code}/signboard.pdf
pub async fn signboard_pdf(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(code): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    signboard(s, p, code, q, h, false).await
}

/// GET /grids/{code}/signboard.png
pub async fn signboard_png(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(code): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    signboard(s, p, code, q, h, true).await
}

/// GET /communities/{code}/atlas.pdf — staff; a scoped token only for its community or street.
pub async fn atlas(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(code): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(p.sees_households(), "the atlas (staff)")?;
    let o = options(&q)?;
    let src = source(&s, &p, &q).await?;
    let (sheets, area, name) = src
        .community_sheets(s.store.as_ref(), &code, &public_base(&s, &h))
        .await?;
    if let Some(scope) = &p.scope {
        let street = sheets.first().and_then(|x| x.grid.street.clone());
        if *scope != code && street.as_deref() != Some(scope.as_str()) {
            return Err(ApiError::forbidden(format!(
                "community {code} is outside the token's scope ({scope})"
            )));
        }
    }
    let c = code.clone();
    let bytes =
        tokio::task::spawn_blocking(move || crate::print::atlas_pdf(&c, &name, &sheets, &area, o))
            .await
            .map_err(ApiError::internal)??;
    Ok(file(
        bytes,
        "application/pdf",
        &format!("atlas-{code}.pdf"),
        false,
    ))
}

/// GET /grids/{code}/worker/photo — the photo on the public signboard.
pub async fn photo(
    State(s): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let b = s
        .store
        .worker_photo(&code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("grid {code:?} has no worker's photo")))?;
    let mime = render::image_mime(&b).unwrap_or("application/octet-stream");
    Ok(file(b, mime, &format!("worker-{code}"), true))
}

/// POST /grids/{code}/worker/photo — a JPEG or PNG body sets the photo, an empty body removes it.
pub async fn set_photo(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(p.role == Role::Admin, "setting a worker's photo (admin)")?;
    let photo = if body.is_empty() {
        None
    } else {
        render::check_photo(&body, crate::print::PHOTO_MAX, std::path::Path::new("body"))?;
        Some(body.to_vec())
    };
    let bytes = photo.as_ref().map_or(0, Vec::len);
    s.store.set_worker_photo(&code, photo, &p.who).await?;
    Ok(axum::Json(json!({ "grid": code, "photo_bytes": bytes })).into_response())
}

/// The routes of this module.
pub fn routes() -> Vec<Route> {
    use super::routes::schema;
    let sheet = || {
        vec![
            (
                "size",
                schema::one_of(&["A4", "A3", "a4", "a3"]),
                "Paper (default A4)",
            ),
            (
                "landscape",
                schema::one_of(&["true", "false", "1", "0", ""]),
                "Landscape",
            ),
            (
                "internal",
                schema::one_of(&["true", "false", "1", "0", ""]),
                "With households (roles that see them; 403 otherwise)",
            ),
            (
                "plan",
                schema::id(),
                "Print from this plan, e.g. a draft (plan readers; 403 otherwise)",
            ),
        ]
    };
    let mut png = sheet();
    png.push(("dpi", schema::int(36, 300), "Resolution (default 150)"));
    vec![
        Route::get(
            "/grids/{code}/signboard.pdf",
            signboard_pdf,
            "print",
            "public",
            "The grid's signboard (网格公示牌) as PDF",
        )
        .path("code", schema::code())
        .query(sheet()),
        Route::get(
            "/grids/{code}/signboard.png",
            signboard_png,
            "print",
            "public",
            "The grid's signboard as PNG",
        )
        .path("code", schema::code())
        .query(png),
        Route::get(
            "/communities/{code}/atlas.pdf",
            atlas,
            "print",
            "viewer, grid_worker, dispatcher, planner, admin",
            "The community's atlas (网格图册): overview, table of grids, one page per grid",
        )
        .path("code", schema::code())
        .query(sheet()),
        Route::get(
            "/grids/{code}/worker/photo",
            photo,
            "print",
            "public",
            "The photo of the grid's worker (JPEG or PNG)",
        )
        .path("code", schema::code()),
        Route::post(
            "/grids/{code}/worker/photo",
            set_photo,
            "print",
            "admin",
            "Set the worker's photo (a JPEG or PNG body, at most 1 MiB; 422 when it is neither); an empty body removes it",
        )
        .binary(json!({ "type": "string", "format": "binary", "maxLength": crate::print::PHOTO_MAX }))
        .body_optional()
        .path("code", schema::code()),
    ]
}
