//! The planners' web map: the page at `/` for browsers (`Accept: text/html`), its built assets
//! under `/app/…` (embedded in the binary by build.rs from src/web/dist; gzip made once per
//! asset), and `/app/config.json`, what the page needs to start (basemap, band, extent).

use super::AppState;
use super::routes::Route;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// An external basemap under our layers (`[basemap]` in the service's config).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Basemap {
    /// Raster tile URL templates (`{z}/{x}/{y}`), or
    pub tiles: Option<Vec<String>>,
    /// a MapLibre style URL.
    pub style: Option<String>,
    /// Its coordinate system: `wgs84` (also CGCS2000, Tianditu) or `gcj02` (AMap, Tencent);
    /// with `gcj02` the page asks for our layers shifted into it (`crs=gcj02`).
    #[serde(default = "wgs84")]
    pub crs: String,
    #[serde(default)]
    pub attribution: String,
    #[serde(default = "tile_size")]
    pub tile_size: u32,
    #[serde(default = "max_zoom")]
    pub max_zoom: u8,
}

fn wgs84() -> String {
    "wgs84".into()
}
fn tile_size() -> u32 {
    256
}
fn max_zoom() -> u8 {
    18
}

impl Basemap {
    /// A basemap that makes sense: tiles or a style, and a coordinate system we can shift to.
    ///
    /// # Errors
    /// Names the setting that is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.tiles.is_none() == self.style.is_none() {
            return Err("basemap: give either tiles = [\"https://…/{z}/{x}/{y}.png\"] or style = \"https://…/style.json\"".into());
        }
        if !matches!(self.crs.as_str(), "wgs84" | "gcj02") {
            return Err(format!(
                "basemap.crs = {:?}: expected \"wgs84\" (also CGCS2000) or \"gcj02\"",
                self.crs
            ));
        }
        Ok(())
    }
}

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
    etag: OnceLock<String>,
    gzip: OnceLock<Vec<u8>>,
}

fn assets() -> &'static [Asset] {
    static A: OnceLock<Vec<Asset>> = OnceLock::new();
    A.get_or_init(|| {
        embedded::ASSETS
            .iter()
            .map(|(name, mime, bytes)| Asset {
                name,
                mime,
                bytes,
                etag: OnceLock::new(),
                gzip: OnceLock::new(),
            })
            .collect()
    })
}

const NOT_BUILT: &str = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>wangge 网格</title>\
<body><h1>网格地图尚未构建 / The web map is not built</h1>\
<p>Run <code>scripts/setup</code> (npm ci and esbuild in src/web), then rebuild and restart the service.</p></body></html>";

fn serve_asset(a: &Asset, h: &HeaderMap) -> Response {
    use sha2::Digest;
    let tag = a.etag.get_or_init(|| {
        let d = sha2::Sha256::digest(a.bytes);
        format!("\"{}\"", hex_of(&d[..12]))
    });
    let gz_ok = h
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let tag_here = if gz_ok {
        format!("{}-gz\"", tag.trim_end_matches('"'))
    } else {
        tag.clone()
    };
    let fresh = h
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|x| x.trim() == tag_here));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gz_ok {
        let body = a.gzip.get_or_init(|| gzip(a.bytes)).clone();
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        a.bytes.into_response()
    };
    let hs = r.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hs.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&tag_here) {
        hs.insert(header::ETAG, v);
    }
    r
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // writing to a Vec cannot fail
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

/// True when the client asks for a page rather than JSON (a browser's Accept header).
#[must_use]
pub fn wants_html(h: &HeaderMap) -> bool {
    let Some(a) = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let q_of = |mime: &str| -> f32 {
        a.split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let m = it.next()?.trim();
                (m == mime).then(|| {
                    it.find_map(|p| p.trim().strip_prefix("q=")?.parse().ok())
                        .unwrap_or(1.0)
                })
            })
            .fold(0.0, f32::max)
    };
    let html = q_of("text/html");
    html > 0.0 && html >= q_of("application/json")
}

/// The page itself (index.html), or a page saying how to build it.
pub fn page(h: &HeaderMap) -> Response {
    match assets().iter().find(|a| a.name == "index.html") {
        Some(a) => serve_asset(a, h),
        None => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response(),
    }
}

async fn asset(Path(file): Path<String>, h: HeaderMap) -> Response {
    match assets().iter().find(|a| a.name == file) {
        Some(a) => serve_asset(a, &h),
        None => super::error::ApiError::not_found(format!("no asset {file:?}")).into_response(),
    }
}

async fn config(State(s): State<Arc<AppState>>) -> Json<Value> {
    let b = crate::partition::Band::DEFAULT;
    Json(json!({
        "basemap": s.config.basemap,
        "band": { "min": b.min(), "target": b.target(), "max": b.max() },
        "extent": super::ogc::extent(&s).await,
        "built": assets().iter().any(|a| a.name == "index.html"),
    }))
}

/// Who the caller is (the page's sign-in checks a token with it): role, scope, name.
async fn session(p: super::auth::Principal) -> Json<Value> {
    Json(json!({
        "role": p.role.name(),
        "scope": p.scope,
        "who": p.who,
        "may": {
            "read_plans": p.reads_plans(),
            "edit_plans": p.plans(),
            "households": p.sees_households(),
            "incidents": p.reads_incidents(),
            "reporters": p.sees_reporters(),
            "admin": p.role == super::auth::Role::Admin,
        },
    }))
}

/// The page's routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/app/session",
            session,
            "web",
            "public; with a token, its role",
            "The caller's role, scope and rights (401 for an unknown token)",
        ),
        Route::get(
            "/app/config.json",
            config,
            "web",
            "public",
            "What the web map needs to start: basemap, default band, extent",
        ),
        Route::get(
            "/app/{file}",
            asset,
            "web",
            "public",
            "The web map's built assets (index.html, app.js, app.css); gzip, ETag",
        )
        .header(
            "If-None-Match",
            false,
            "The ETag of the copy the client holds",
        )
        .statuses(&[304]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn browsers_get_the_page_and_clients_json() {
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accept("application/json, text/html;q=0.5")));
    }

    #[test]
    fn a_basemap_needs_tiles_or_a_style_and_a_known_crs() {
        let mut b = Basemap {
            tiles: Some(vec!["https://t/{z}/{x}/{y}.png".into()]),
            style: None,
            crs: "gcj02".into(),
            attribution: String::new(),
            tile_size: 256,
            max_zoom: 18,
        };
        assert!(b.check().is_ok());
        b.crs = "bd09".into();
        assert!(b.check().unwrap_err().contains("basemap.crs"));
        b.crs = "wgs84".into();
        b.style = Some("https://s/style.json".into());
        assert!(b.check().unwrap_err().contains("either"));
    }
}
