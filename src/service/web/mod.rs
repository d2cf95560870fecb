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

mod assets;
pub use assets::*;

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
