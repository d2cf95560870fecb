//! Tiles over HTTP: `/tiles/{layer}/{z}/{x}/{y}.mvt` and TileJSON at `/tiles/{layer}.json`, with
//! strong ETags (If-None-Match → 304), gzip when accepted, 204 for empty tiles, Cache-Control from
//! the settings, and a bounded in-memory cache dropped when plans or incidents change.

use super::auth::Principal;
use super::error::ApiError;
use super::{AppState, base_url};
use crate::tiles::{Access, TileSet, fields, render_with};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// Largest number of tiles kept in memory unless the settings say otherwise (`tile_cache_tiles`).
pub const CACHE_TILES: usize = 20_000;
/// How long a cached tile is trusted without a change seen by this process (plans published by
/// another process, e.g. the command line).
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A rendered tile; its gzip encoding is made the first time a client accepts it, then kept.
pub struct CachedTile {
    generation: u64,
    built: std::time::Instant,
    raw: Arc<OnceLock<Bytes>>,
    gz: Arc<OnceLock<Bytes>>,
    empty: bool,
    etag: Arc<str>,
}

fn gzip_of(raw: &[u8], level: u32) -> Result<Bytes, ApiError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    enc.write_all(raw).map_err(ApiError::internal)?;
    Ok(Bytes::from(enc.finish().map_err(ApiError::internal)?))
}

/// Cache key: layer, z, x, y, plan, access.
pub type TileKey = (TileSet, u8, u32, u32, Option<i64>, Access);

/// Tiles carry no personal data, and incidents only for unscoped tokens.
fn access_of(p: &Principal) -> Access {
    Access {
        incidents: p.reads_incidents() && p.scope.is_none(),
        personal: false,
        ..p.access()
    }
}

fn parse_zxy(z: &str, x: &str, file: &str) -> Result<(u8, u32, u32), ApiError> {
    let y = file
        .strip_suffix(".mvt")
        .or_else(|| file.strip_suffix(".pbf"))
        .ok_or_else(|| ApiError::not_found(format!("{file}: tiles are {{y}}.mvt")))?;
    let bad = || {
        ApiError::bad_request(format!(
            "tile {z}/{x}/{y}: expected 0 ≤ z ≤ 22 and 0 ≤ x, y < 2^z"
        ))
    };
    let z: u8 = z.parse().map_err(|_| bad())?;
    let x: u32 = x.parse().map_err(|_| bad())?;
    let y: u32 = y.parse().map_err(|_| bad())?;
    if z > 22 || u64::from(x) >= 1u64 << z || u64::from(y) >= 1u64 << z {
        return Err(bad());
    }
    Ok((z, x, y))
}

pub async fn tile(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path((layer, z, x, file)): Path<(String, String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let set: TileSet = layer.parse().map_err(ApiError::not_found)?;
    let (z, x, y) = parse_zxy(&z, &x, &file)?;
    if set == TileSet::Incidents {
        p.require(p.reads_incidents(), "the incidents tile layer")?;
        if p.scope.is_some() {
            return Err(ApiError::forbidden(
                "incident tiles are for unscoped tokens; scoped tokens use /incidents",
            ));
        }
    }
    let plan = q
        .get("plan")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("plan={v:?}: expected a plan id")))
        })
        .transpose()?;
    let access = access_of(&p);
    let key: TileKey = (set, z, x, y, plan, access);
    let generation = s.generation.load(Ordering::SeqCst);
    let cached = s.tile_cache.lock().ok().and_then(|c| {
        c.get(&key)
            .filter(|t| t.generation == generation && t.built.elapsed() < CACHE_TTL)
            .map(|t| (t.raw.clone(), t.gz.clone(), t.etag.clone(), t.empty))
    });
    // a configured archive answers public requests for its layers and zooms
    let from_archive = s.archive.as_ref().filter(|a| {
        a.set.as_deref() == Some(set.name())
            && plan.is_none()
            && !access.households
            && !access.incidents
            && (a.minzoom..=a.maxzoom).contains(&z)
    });
    let source = if from_archive.is_some() {
        "archive"
    } else {
        "live"
    };
    let (raw, gz, etag, empty) = match cached {
        Some(t) if from_archive.is_none() => t,
        _ => {
            let raw = Arc::new(OnceLock::new());
            let gz = Arc::new(OnceLock::new());
            let (etag, empty) = match from_archive {
                // archived tiles are stored gzipped: served as they are, decompressed on demand
                Some(a) => match a.get_stored(z, x, y)? {
                    Some((stored, etag)) => {
                        let _ = gz.set(Bytes::copy_from_slice(stored));
                        (etag, false)
                    }
                    None => (Arc::from(""), true),
                },
                None => {
                    let bytes = render_with(
                        s.store.as_ref(),
                        set,
                        (z, x, y),
                        plan,
                        access,
                        s.config.tile_encoder,
                    )
                    .await?;
                    let etag = crate::tiles::archive::etag_of(&bytes);
                    let empty = bytes.is_empty();
                    let _ = raw.set(Bytes::from(bytes));
                    (etag, empty)
                }
            };
            let t = CachedTile {
                generation,
                built: std::time::Instant::now(),
                raw,
                gz,
                empty,
                etag,
            };
            let out = (t.raw.clone(), t.gz.clone(), t.etag.clone(), t.empty);
            let limit = s.config.tile_cache_tiles;
            if from_archive.is_none()
                && limit > 0
                && let Ok(mut c) = s.tile_cache.lock()
            {
                if c.len() >= limit {
                    c.clear();
                }
                c.insert(key, t);
            }
            out
        }
    };
    if empty {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut().insert(
            "x-tile-source",
            HeaderValue::from_static(if from_archive.is_some() {
                "archive"
            } else {
                "live"
            }),
        );
        return Ok(r);
    }
    let gzip = h
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    // a strong ETag per representation
    let tag = if gzip {
        format!("\"{etag}-gz\"")
    } else {
        format!("\"{etag}\"")
    };
    let cache_control = if set == TileSet::Incidents || access.households {
        "private, max-age=60".to_string()
    } else {
        s.config.cache_control.clone()
    };
    let mut headers = vec![
        (header::ETAG, tag.clone()),
        (
            header::HeaderName::from_static("x-tile-source"),
            source.to_string(),
        ),
        (header::CACHE_CONTROL, cache_control),
        (header::VARY, "Accept-Encoding, Authorization".to_string()),
    ];
    if h.get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        for (k, v) in headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        return Ok(r);
    }
    headers.push((
        header::CONTENT_TYPE,
        "application/vnd.mapbox-vector-tile".into(),
    ));
    let body = if gzip {
        headers.push((header::CONTENT_ENCODING, "gzip".into()));
        match gz.get() {
            Some(b) => b.clone(),
            None => {
                let plain = raw.get().cloned().unwrap_or_default();
                // a tile compressed once for the cache is worth a better ratio than one per request
                let level = if s.config.tile_cache_tiles > 0 { 6 } else { 1 };
                let b = gzip_of(&plain, level)?;
                let _ = gz.set(b.clone());
                b
            }
        }
    } else {
        match raw.get() {
            Some(b) => b.clone(),
            None => {
                let stored = gz.get().cloned().unwrap_or_default();
                let b = Bytes::from(crate::tiles::archive::gunzip(&stored)?);
                let _ = raw.set(b.clone());
                b
            }
        }
    };
    let mut r = Response::new(Body::from(body));
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// TileJSON 3.0.0 for `/tiles/{layer}.json`.
pub async fn tilejson(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
    h: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let layer = name
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found(format!("{name}: TileJSON is /tiles/{{layer}}.json")))?;
    let set: TileSet = layer.parse().map_err(ApiError::not_found)?;
    if set == TileSet::Incidents {
        p.require(p.reads_incidents(), "the incidents tile layer")?;
    }
    let a = access_of(&p);
    let sets = crate::tiles::expand(set, a);
    let e = crate::tiles::communities_extent(s.store.as_ref())
        .await?
        .unwrap_or([-180.0, -85.0511, 180.0, 85.0511]);
    let b = base_url(&h);
    let layers: Vec<Value> = sets
        .iter()
        .map(|t| json!({ "id": t.name(), "fields": fields(*t, a), "minzoom": t.minzoom(), "maxzoom": 22 }))
        .collect();
    Ok(Json(json!({
        "tilejson": "3.0.0",
        "name": format!("wangge {}", set.name()),
        "scheme": "xyz",
        "tiles": [format!("{b}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", set.name())],
        "vector_layers": layers,
        "bounds": e,
        "center": [(e[0] + e[2]) / 2.0, (e[1] + e[3]) / 2.0, 14],
        "minzoom": sets.iter().map(|t| t.minzoom()).min().unwrap_or(0),
        "maxzoom": 22,
    })))
}
