//! Tiles over HTTP: `/tiles/{layer}/{z}/{x}/{y}.mvt` and TileJSON at `/tiles/{layer}.json`, with
//! strong ETags (If-None-Match → 304), gzip when accepted, 204 for empty tiles, Cache-Control from
//! the settings, and a bounded in-memory cache dropped when plans or incidents change.

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use crate::tiles::{Access, Tile, TileRequest, TileSet, TileSource, fields};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tiles carry no personal data, and incidents only for unscoped tokens; a scoped token's
/// tiles carry what it may see everywhere (no household counts: they span other scopes).
fn access_of(p: &Principal) -> Access {
    Access {
        incidents: p.reads_incidents() && p.scope.is_none(),
        personal: false,
        ..p.access_everywhere()
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

/// `GET /tiles/{layer}/{z}/{x}/{y}.mvt`: request → source → response.
pub async fn tile(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path((layer, z, x, file)): Path<(String, String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let r = tile_request(&p, &layer, (&z, &x, &file), &q)?;
    let t = s
        .tiles
        .tile(&r)
        .await?
        .ok_or_else(|| ApiError::not_found("no tile source answers this request"))?;
    tile_response(&s, &r, &t, &h)
}

/// The layer set, address, plan and access of a request, refused where the caller may not ask.
fn tile_request(
    p: &Principal,
    layer: &str,
    (z, x, file): (&str, &str, &str),
    q: &BTreeMap<String, String>,
) -> Result<TileRequest, ApiError> {
    let set: TileSet = layer.parse().map_err(ApiError::not_found)?;
    let (z, x, y) = parse_zxy(z, x, file)?;
    if set == TileSet::Incidents {
        p.require(p.reads_incidents(), "the incidents tile layer")?;
        if p.scope.is_some() {
            return Err(ApiError::forbidden(
                "incident tiles are for unscoped tokens; scoped tokens use /incidents",
            ));
        }
    }
    let plan = q.get("plan").map(|v| super::parse_plan_id(v)).transpose()?;
    if plan.is_some() {
        p.require(
            p.reads_plans(),
            "grids of a plan other than the one in force",
        )?;
    }
    let at = q
        .get("datetime")
        .map(|v| {
            super::parse_datetime(v)?
                .0
                .ok_or_else(|| ApiError::bad_request("datetime: one instant (grids in force then)"))
        })
        .transpose()?;
    let gcj02 = super::ogc::gcj02_param(q)?;
    Ok(TileRequest {
        set,
        z,
        x,
        y,
        plan,
        at,
        gcj02,
        access: access_of(p),
    })
}

/// 204 for an empty tile, 304 when the client has it, else the tile in the encoding it accepts,
/// with a strong ETag per encoding.
fn tile_response(
    s: &AppState,
    r: &TileRequest,
    t: &Tile,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let source = HeaderValue::from_static(t.source);
    if t.empty {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.headers_mut().insert("x-tile-source", source);
        return Ok(resp);
    }
    let gzip = h
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let tag = if gzip {
        format!("\"{}-gz\"", t.etag)
    } else {
        format!("\"{}\"", t.etag)
    };
    let cache_control = if r.set == TileSet::Incidents || r.access.households {
        "private, max-age=60".to_string()
    } else {
        s.config.cache_control.clone()
    };
    let mut headers = vec![
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, cache_control),
        (header::VARY, "Accept-Encoding, Authorization".to_string()),
    ];
    let not_modified = h
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|x| x.trim() == tag || x.trim() == "*"));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        headers.push((
            header::CONTENT_TYPE,
            "application/vnd.mapbox-vector-tile".into(),
        ));
        let body = if gzip {
            headers.push((header::CONTENT_ENCODING, "gzip".into()));
            // a tile compressed once for the cache is worth a better ratio than one per request
            t.gzip(if s.config.tile_cache_tiles > 0 { 6 } else { 1 })?
        } else {
            t.raw()?
        };
        Response::new(Body::from(body))
    };
    resp.headers_mut().insert("x-tile-source", source);
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
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
    let b = s.base(&h);
    let layers: Vec<Value> = sets
        .iter()
        .map(|t| json!({ "id": t.name(), "fields": fields(*t, a), "minzoom": t.minzoom(), "maxzoom": t.maxzoom(), "description": t.description() }))
        .collect();
    let names: Vec<&str> = sets.iter().map(|t| t.name()).collect();
    Ok(Json(json!({
        "tilejson": "3.0.0",
        "name": format!("wangge {}", set.name()),
        "scheme": "xyz",
        "tiles": [format!("{b}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", set.name())],
        "vector_layers": layers,
        "bounds": e,
        "center": [(e[0] + e[2]) / 2.0, (e[1] + e[3]) / 2.0, 14],
        "minzoom": sets.iter().map(|t| t.minzoom()).min().unwrap_or(0),
        "maxzoom": sets.iter().map(|t| t.maxzoom()).max().unwrap_or(16),
        "description": format!("社区网格 wangge: {} (the plan in force; ?plan= and ?datetime= for others)", names.join(", ")),
        "attribution": s.config.tile_attribution,
    })))
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    use super::routes::schema;
    let names: Vec<&str> = TileSet::ALL.iter().map(|t| t.name()).collect();
    let layer = json!({ "type": "string", "enum": names });
    let tilejson_names: Vec<String> = names.iter().map(|n| format!("{n}.json")).collect();
    vec![
        Route::get(
            "/tiles/{layer}/{z}/{x}/{y}",
            tile,
            "tiles",
            "public; incidents: dispatcher, admin",
            "Mapbox Vector Tile of communities, grids, buildings, incidents, heat (H3 counts), roads or all; \
             ETag/304, gzip, 204 when empty; 400 unless x and y are below 2^z",
        )
        .path("layer", layer)
        .path("z", schema::int(0, 22))
        .path("x", schema::int(0, (1 << 22) - 1))
        .path(
            "y",
            json!({ "type": "string", "pattern": "^[0-9]{1,7}\\.(mvt|pbf)$", "description": "{y}.mvt" }),
        )
        .query(vec![
            ("plan", schema::id(), "Grids of this plan (plan readers; 403 otherwise)"),
            ("datetime", schema::datetime(), "Grids in force at this instant"),
            (
                "crs",
                schema::one_of(&["wgs84", "cgcs2000", "gcj02"]),
                "gcj02: shifted for AMap/Tencent basemaps",
            ),
        ])
        .header("If-None-Match", false, "The ETag of the copy the client holds (304 when it matches)")
        .statuses(&[204, 304]),
        Route::get(
            "/tiles/{name}",
            tilejson,
            "tiles",
            "public",
            "TileJSON 3.0.0 of a tile layer ({layer}.json)",
        )
        .path("name", json!({ "type": "string", "enum": tilejson_names })),
    ]
}
