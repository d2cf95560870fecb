//! OGC API – Features, Part 1: Core, GeoJSON encoding: landing page, conformance, collections,
//! items (bbox, limit/offset with next/prev links, datetime, equality filters) and single items.

use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, parse_datetime};
use crate::store::{Feature, FeatureQuery, Layer};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const GEOJSON: &str = "application/geo+json";

/// The largest `offset` of an items page (far beyond any layer; it keeps sums from wrapping).
const MAX_OFFSET: usize = 1 << 40;

fn geojson(v: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, GEOJSON)], Json(v)).into_response()
}

/// The landing page: the web map for browsers (`Accept: text/html`), else the OGC JSON.
pub async fn landing(State(s): State<Arc<AppState>>, h: HeaderMap) -> Response {
    if super::web::wants_html(&h) {
        return super::web::page(&h);
    }
    let b = s.base(&h);
    Json(json!({
        "title": "wangge 网格",
        "description": "Community grid management: streets, communities, grids, buildings and incidents (OGC API – Features)",
        "links": [
            { "href": format!("{b}/"), "rel": "self", "type": "application/json", "title": "this document" },
            { "href": format!("{b}/openapi.json"), "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition" },
            { "href": format!("{b}/conformance"), "rel": "conformance", "type": "application/json", "title": "conformance classes" },
            { "href": format!("{b}/collections"), "rel": "data", "type": "application/json", "title": "collections" },
            { "href": format!("{b}/"), "rel": "alternate", "type": "text/html", "title": "the web map" }
        ]
    }))
    .into_response()
}

pub async fn conformance() -> Json<Value> {
    Json(json!({ "conformsTo": [
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"
    ]}))
}

fn title(l: Layer) -> &'static str {
    match l {
        Layer::Streets => "Streets (街道)",
        Layer::Communities => "Communities (社区)",
        Layer::Grids => "Grids (网格) in force",
        Layer::Buildings => "Buildings (楼栋)",
        Layer::Incidents => "Incidents (事件) — restricted",
    }
}

pub(super) async fn extent(s: &AppState) -> Option<[f64; 4]> {
    let cs = s.store.communities().await.ok()?;
    let mut e = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for c in &cs {
        if let Some(r) = geo::BoundingRect::bounding_rect(&c.community.geometry) {
            e = [
                e[0].min(r.min().x),
                e[1].min(r.min().y),
                e[2].max(r.max().x),
                e[3].max(r.max().y),
            ];
        }
    }
    (e[0] <= e[2]).then_some(e)
}

fn collection_json(l: Layer, b: &str, ext: Option<[f64; 4]>) -> Value {
    let mut c = json!({
        "id": l.name(),
        "title": title(l),
        "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "links": [
            { "href": format!("{b}/collections/{}", l.name()), "rel": "self", "type": "application/json" },
            { "href": format!("{b}/collections/{}/items", l.name()), "rel": "items", "type": GEOJSON }
        ]
    });
    if let Some(e) = ext {
        c["extent"] = json!({ "spatial": { "bbox": [e], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84" } });
    }
    c
}

fn layer_of(id: &str) -> Result<Layer, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("no collection {id:?}")))
}

/// GET /collections — the collections the caller may read (incidents only for roles that read
/// cases: a client that lists them and then reads each, as GDAL does, meets no 401).
pub async fn collections(
    State(s): State<Arc<AppState>>,
    p: Principal,
    h: HeaderMap,
) -> Json<Value> {
    let b = s.base(&h);
    let ext = extent(&s).await;
    let cs: Vec<Value> = Layer::ALL
        .iter()
        .filter(|l| **l != Layer::Incidents || p.reads_incidents())
        .map(|l| collection_json(*l, &b, ext))
        .collect();
    Json(json!({
        "collections": cs,
        "links": [{ "href": format!("{b}/collections"), "rel": "self", "type": "application/json" }]
    }))
}

pub async fn collection(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let l = layer_of(&id)?;
    if l == Layer::Incidents {
        p.require(p.reads_incidents(), "the incidents collection")?;
    }
    Ok(Json(collection_json(l, &s.base(&h), extent(&s).await)))
}

/// Remove what the caller may not see (the layer schema decides).
pub fn redact(l: Layer, props: &mut Map<String, Value>, p: &Principal) {
    crate::model::schema::redact(l, props, p.access());
}

fn feature_json(l: Layer, f: Feature, p: &Principal) -> Value {
    let mut props = f.properties;
    redact(l, &mut props, p);
    json!({
        "type": "Feature",
        "id": f.id,
        "geometry": f.geometry.as_ref().map(crate::io::write::geometry_json),
        "properties": props,
    })
}

/// `crs=gcj02`: geometries (and the bbox) in GCJ-02, to lie over AMap or Tencent basemaps.
pub(super) fn gcj02_param(q: &BTreeMap<String, String>) -> Result<bool, ApiError> {
    match q.get("crs").map(String::as_str) {
        None | Some("wgs84" | "cgcs2000") => Ok(false),
        Some("gcj02") => Ok(true),
        Some(o) => Err(ApiError::bad_request(format!(
            "crs={o:?}: expected wgs84 (default; CGCS2000 is the same at map precision) or gcj02"
        ))),
    }
}

/// Feature query from the request's parameters.
fn query_of(
    l: Layer,
    q: &BTreeMap<String, String>,
    s: &AppState,
) -> Result<FeatureQuery, ApiError> {
    let mut fq = FeatureQuery {
        limit: s.config.page_default,
        ..FeatureQuery::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => {
                let n: usize = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("limit={v:?}: expected a positive integer"))
                })?;
                if n == 0 {
                    return Err(ApiError::bad_request("limit must be at least 1"));
                }
                fq.limit = n.min(s.config.page_max);
            }
            "offset" => {
                fq.offset = v.parse().ok().filter(|o| *o <= MAX_OFFSET).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "offset={v:?}: expected an integer from 0 to {MAX_OFFSET}"
                    ))
                })?;
            }
            "bbox" => {
                let n: Vec<f64> = v
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        ApiError::bad_request(format!("bbox={v:?}: expected minx,miny,maxx,maxy"))
                    })?;
                if n.len() != 4 || n[0] > n[2] || n[1] > n[3] || n.iter().any(|x| !x.is_finite()) {
                    return Err(ApiError::bad_request(format!(
                        "bbox={v:?}: expected minx,miny,maxx,maxy with min ≤ max"
                    )));
                }
                fq.bbox = Some([n[0], n[1], n[2], n[3]]);
            }
            "datetime" => {
                let (a, b) = parse_datetime(v)?;
                match l {
                    Layer::Grids => {
                        if a != b {
                            return Err(ApiError::bad_request(
                                "grids: datetime must be one instant (the grids in force then)",
                            ));
                        }
                        fq.at = a;
                    }
                    Layer::Incidents => {
                        fq.from = a;
                        fq.to = b.map(|t| if a == Some(t) { t + 1 } else { t });
                    }
                    _ => {}
                }
            }
            "plan" => {
                if l != Layer::Grids {
                    return Err(ApiError::bad_request(
                        "plan applies to the grids collection",
                    ));
                }
                fq.plan = Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("plan={v:?}: expected a plan id"))
                })?);
            }
            "f" | "api_key" | "crs" => {}
            prop => {
                if !l.filterable().contains(&prop) {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter {prop:?}: collection {} filters on {:?}",
                        l.name(),
                        l.filterable()
                    )));
                }
                fq.equals.push((prop.to_string(), v.clone()));
            }
        }
    }
    Ok(fq)
}

pub async fn items(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let l = layer_of(&id)?;
    if l == Layer::Incidents {
        p.require(p.reads_incidents(), "the incidents collection")?;
    }
    let mut fq = query_of(l, &q, &s)?;
    if fq.plan.is_some() {
        p.require(
            p.reads_plans(),
            "grids of a plan other than the one in force",
        )?;
    }
    let gcj02 = gcj02_param(&q)?;
    if gcj02 {
        fq.bbox = fq.bbox.map(crate::tiles::gcj02_query_bounds);
    }
    let (mut features, matched) = if l == Layer::Incidents && p.scope.is_some() {
        // scoped tokens: filter, then page
        let all = s
            .store
            .features(
                l,
                &FeatureQuery {
                    limit: 0,
                    offset: 0,
                    ..fq.clone()
                },
            )
            .await?;
        let scope = p.scope.clone().unwrap_or_default();
        let keep: Vec<Feature> = all
            .features
            .into_iter()
            .filter(|f| {
                ["grid", "community", "street"]
                    .iter()
                    .any(|k| f.properties.get(*k).and_then(Value::as_str) == Some(scope.as_str()))
            })
            .collect();
        let n = keep.len() as u64;
        (
            keep.into_iter()
                .skip(fq.offset)
                .take(fq.limit)
                .collect::<Vec<_>>(),
            n,
        )
    } else {
        let page = s.store.features(l, &fq).await?;
        (page.features, page.matched)
    };
    if l == Layer::Incidents && p.sees_reporters() && !features.is_empty() {
        s.store
            .audit(
                &p.who,
                "read_personal",
                "incidents",
                &format!("{} incidents with reporters (items page)", features.len()),
            )
            .await?;
    }
    if gcj02 {
        features.iter_mut().for_each(crate::tiles::shift_to_gcj02);
    }
    let returned = features.len();
    let b = s.base(&h);
    let link = |offset: usize| {
        let mut params: Vec<String> = q
            .iter()
            .filter(|(k, _)| {
                k.as_str() != "offset" && k.as_str() != "limit" && k.as_str() != "api_key"
            })
            .map(|(k, v)| format!("{k}={}", super::urlencode(v)))
            .collect();
        params.push(format!("limit={}", fq.limit));
        params.push(format!("offset={offset}"));
        format!("{b}/collections/{}/items?{}", l.name(), params.join("&"))
    };
    let mut links = vec![json!({ "href": link(fq.offset), "rel": "self", "type": GEOJSON })];
    if (fq.offset + returned) < matched as usize {
        links.push(json!({ "href": link(fq.offset + returned), "rel": "next", "type": GEOJSON }));
    }
    if fq.offset > 0 {
        links.push(json!({ "href": link(fq.offset.saturating_sub(fq.limit)), "rel": "prev", "type": GEOJSON }));
    }
    let feats: Vec<Value> = features
        .into_iter()
        .map(|f| feature_json(l, f, &p))
        .collect();
    Ok(geojson(json!({
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": returned,
        "timeStamp": crate::store::ts_text(chrono::Utc::now().timestamp()),
        "links": links,
    })))
}

pub async fn item(
    State(s): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let l = layer_of(&id)?;
    if l == Layer::Incidents {
        p.require(p.reads_incidents(), "the incidents collection")?;
    }
    let key = match l {
        Layer::Buildings | Layer::Incidents => "id",
        _ => "code",
    };
    let mut fq = FeatureQuery {
        equals: vec![(key.to_string(), fid.clone())],
        limit: 1,
        ..FeatureQuery::default()
    };
    if let Some(pl) = q.get("plan") {
        fq.plan = Some(
            pl.parse()
                .map_err(|_| ApiError::bad_request(format!("plan={pl:?}: expected a plan id")))?,
        );
    }
    let page = s.store.features(l, &fq).await?;
    let f = page
        .features
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no feature {fid:?} in {}", l.name())))?;
    if l == Layer::Incidents {
        let inside = match &p.scope {
            None => true,
            Some(sc) => ["grid", "community", "street"]
                .iter()
                .any(|k| f.properties.get(*k).and_then(Value::as_str) == Some(sc.as_str())),
        };
        if !inside {
            return Err(ApiError::forbidden(format!(
                "incident {fid} is outside the token's scope"
            )));
        }
        if p.sees_reporters() {
            s.store
                .audit(&p.who, "read_personal", &format!("incident {fid}"), "item")
                .await?;
        }
    }
    let b = s.base(&h);
    let mut v = feature_json(l, f, &p);
    v["links"] = json!([
        { "href": format!("{b}/collections/{}/items/{}", l.name(), super::urlencode(&fid)), "rel": "self", "type": GEOJSON },
        { "href": format!("{b}/collections/{}", l.name()), "rel": "collection", "type": "application/json" }
    ]);
    Ok(geojson(v))
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/",
            landing,
            "features",
            "public",
            "Landing page (OGC API – Features)",
        ),
        Route::get(
            "/conformance",
            conformance,
            "features",
            "public",
            "Conformance classes",
        ),
        Route::get(
            "/collections",
            collections,
            "features",
            "public",
            "Collections: streets, communities, grids, buildings, incidents",
        ),
        Route::get(
            "/collections/{collectionId}",
            collection,
            "features",
            "public",
            "One collection",
        ),
        Route::get(
            "/collections/{collectionId}/items",
            items,
            "features",
            "public; incidents: dispatcher, grid_worker, admin",
            "Features (bbox, limit, offset, datetime, plan, property=value); household counts need a token",
        )
        .query(vec![
            (
                "limit",
                json!({ "type": "integer", "minimum": 1, "maximum": super::Config::default().page_max, "default": super::Config::default().page_default }),
                "Features per page (the server's page_max is the maximum; `next` links page on)",
            ),
            ("offset", json!({ "type": "integer", "minimum": 0, "default": 0 }), "Features to skip"),
            (
                "bbox",
                json!({ "type": "array", "minItems": 4, "maxItems": 4, "items": { "type": "number" } }),
                "min lon, min lat, max lon, max lat (WGS84)",
            ),
            ("datetime", json!({ "type": "string" }), "Grids in force at this instant (RFC 3339 with offset)"),
            ("plan", json!({ "type": "integer" }), "Grids of this plan (plan readers)"),
            ("crs", json!({ "type": "string", "enum": ["wgs84", "gcj02"] }), "gcj02: geometries shifted for Chinese basemaps"),
        ]),
        Route::get(
            "/collections/{collectionId}/items/{featureId}",
            item,
            "features",
            "public; incidents: dispatcher, grid_worker, admin",
            "One feature",
        ),
    ]
}
