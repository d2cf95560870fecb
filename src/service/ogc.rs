//! OGC API – Features: Part 1 (core, GeoJSON: landing page, conformance, collections, items with
//! bbox, limit/offset and next/prev links, datetime, equality filters, single items), Part 2
//! (`crs`, `bbox-crs`, `Content-Crs`; see `ogc_crs`), Part 3 (queryables and CQL2-text
//! `filter`; see `cql2`), `sortby` and `properties`.

use super::auth::Principal;
use super::error::ApiError;
use super::ogc_crs::{self, ApiCrs};
use super::routes::Route;
use super::{AppState, cql2, parse_datetime};
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
pub(super) const MAX_OFFSET: usize = 1 << 40;

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

/// The conformance classes: each is claimed because it is implemented and tested.
pub const CONFORMS_TO: [&str; 13] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
];

pub async fn conformance() -> Json<Value> {
    Json(json!({ "conformsTo": CONFORMS_TO }))
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
        "crs": ogc_crs::all_uris(),
        "storageCrs": ogc_crs::CRS84,
        "links": [
            { "href": format!("{b}/collections/{}", l.name()), "rel": "self", "type": "application/json" },
            { "href": format!("{b}/collections/{}/items", l.name()), "rel": "items", "type": GEOJSON },
            { "href": format!("{b}/collections/{}/queryables", l.name()), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json", "title": "the properties a filter may use" },
            { "href": format!("{b}/collections/{}/queryables", l.name()), "rel": "queryables", "type": "application/json", "title": "the same, for clients of the 2020 draft (GDAL < 3.7)" }
        ]
    });
    if let Some(e) = ext {
        c["extent"] = json!({ "spatial": { "bbox": [e], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84" } });
    }
    c
}

/// The collection `id`, if the caller may read it (incidents need a case reader).
fn readable_layer(id: &str, p: &Principal) -> Result<Layer, ApiError> {
    let l = layer_of(id)?;
    if l == Layer::Incidents {
        p.require(p.reads_incidents(), "the incidents collection")?;
    }
    Ok(l)
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
    let l = readable_layer(&id, &p)?;
    Ok(Json(collection_json(l, &s.base(&h), extent(&s).await)))
}

/// Remove what the caller may not see (the layer schema decides).
pub fn redact(l: Layer, props: &mut Map<String, Value>, p: &Principal) {
    let access = p.access_to(props);
    crate::model::schema::redact(l, props, access);
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

/// A `bbox` parameter: four finite numbers minx,miny,maxx,maxy with min ≤ max.
fn parse_bbox(v: &str) -> Result<[f64; 4], ApiError> {
    let n: Vec<f64> = v
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::bad_request(format!("bbox={v:?}: expected minx,miny,maxx,maxy")))?;
    if n.len() != 4 || n[0] > n[2] || n[1] > n[3] || n.iter().any(|x| !x.is_finite()) {
        return Err(ApiError::bad_request(format!(
            "bbox={v:?}: expected minx,miny,maxx,maxy with min ≤ max"
        )));
    }
    Ok([n[0], n[1], n[2], n[3]])
}

/// A `datetime` parameter: for grids one instant (those in force then), for incidents a
/// reporting period (one instant: that second); other layers ignore it.
fn set_datetime(fq: &mut FeatureQuery, l: Layer, v: &str) -> Result<(), ApiError> {
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
    Ok(())
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
            "bbox" => fq.bbox = Some(parse_bbox(v)?),
            "datetime" => set_datetime(&mut fq, l, v)?,
            "plan" => {
                if l != Layer::Grids {
                    return Err(ApiError::bad_request(
                        "plan applies to the grids collection",
                    ));
                }
                fq.plan = Some(super::parse_plan_id(v)?);
            }
            "f" | "api_key" | "crs" | "bbox-crs" | "filter" | "filter-lang" | "filter-crs"
            | "sortby" | "properties" => {}
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
    if let Some(c) = q.get("bbox-crs") {
        let from = ogc_crs::parse("bbox-crs", c)?;
        let b = fq
            .bbox
            .ok_or_else(|| ApiError::bad_request("bbox-crs is given without a bbox"))?;
        fq.bbox = Some(ogc_crs::bbox_to_crs84(b, from)?);
    }
    Ok(fq)
}

/// What a request asks beyond the store's query: a CQL2 filter, an order, a property
/// selection and an output CRS. Every property named must be one the caller may see.
#[derive(Debug, Default)]
struct Shape {
    filter: Option<cql2::Expr>,
    sortby: Vec<(String, bool)>,
    properties: Option<Vec<String>>,
    crs: Option<ApiCrs>,
}

fn queryable(l: Layer, p: &Principal, name: &str, param: &str) -> Result<(), ApiError> {
    if name == "geometry" && param == "filter" {
        return Ok(());
    }
    // filters and orders compare every feature, so a scoped token uses only what it sees
    // everywhere; `properties` only selects (each feature is then redacted on its own)
    let access = if param == "properties" {
        p.access()
    } else {
        p.access_everywhere()
    };
    if crate::model::schema::visible(l, access).any(|f| f.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = crate::model::schema::visible(l, access)
        .map(|f| f.name)
        .collect();
    Err(ApiError::bad_request(format!(
        "{param}: {name:?} is not a property of {} you may read; queryables: {}",
        l.name(),
        names.join(", ")
    )))
}

fn shape_of(l: Layer, q: &BTreeMap<String, String>, p: &Principal) -> Result<Shape, ApiError> {
    let mut sh = Shape::default();
    // `cql-text` is the 2020 draft's name, which GDAL 3.6 sends; its basic comparisons are
    // written as in CQL2 text.
    if let Some(lang) = q.get("filter-lang")
        && lang != "cql2-text"
        && lang != "cql-text"
    {
        return Err(ApiError::bad_request(format!(
            "filter-lang={lang:?}: expected cql2-text"
        )));
    }
    if let Some(c) = q.get("filter-crs")
        && ogc_crs::parse("filter-crs", c)? != ApiCrs::Crs84
    {
        return Err(ApiError::bad_request(format!(
            "filter-crs={c:?}: filters are written in {}",
            ogc_crs::CRS84
        )));
    }
    if let Some(f) = q.get("filter") {
        let e = cql2::parse(f).map_err(|m| ApiError::bad_request(format!("filter: {m}")))?;
        for name in e.properties() {
            queryable(l, p, &name, "filter")?;
        }
        sh.filter = Some(e);
    }
    if let Some(v) = q.get("sortby") {
        for key in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let (name, desc) = match key.as_bytes()[0] {
                b'-' => (&key[1..], true),
                b'+' => (&key[1..], false),
                _ => (key, false),
            };
            let (name, desc) = match name.rsplit_once(' ') {
                Some((n, d)) if d.eq_ignore_ascii_case("desc") => (n.trim(), true),
                Some((n, a)) if a.eq_ignore_ascii_case("asc") => (n.trim(), desc),
                _ => (name, desc),
            };
            queryable(l, p, name, "sortby")?;
            sh.sortby.push((name.to_string(), desc));
        }
    }
    if let Some(v) = q.get("properties") {
        let names: Vec<String> = v
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        for n in &names {
            queryable(l, p, n, "properties")?;
        }
        sh.properties = Some(names);
    }
    if let Some(c) = q.get("crs")
        && !matches!(c.as_str(), "wgs84" | "cgcs2000" | "gcj02")
    {
        sh.crs = Some(ogc_crs::parse("crs", c)?);
    }
    Ok(sh)
}

/// Order features by the `sortby` keys (numbers as numbers, text by code point; missing values
/// after the others ascending, before them descending, as PostgreSQL orders NULLs); ties keep
/// the store's order.
fn sort_features(features: &mut [Feature], keys: &[(String, bool)]) {
    fn rank(v: Option<&Value>) -> (u8, f64, String) {
        match v {
            Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(0.0), String::new()),
            Some(Value::String(t)) => (1, 0.0, t.clone()),
            Some(Value::Bool(b)) => (0, f64::from(u8::from(*b)), String::new()),
            _ => (2, 0.0, String::new()),
        }
    }
    features.sort_by(|a, b| {
        for (k, desc) in keys {
            let (x, y) = (rank(a.properties.get(k)), rank(b.properties.get(k)));
            let o =
                x.0.cmp(&y.0)
                    .then(x.1.total_cmp(&y.1))
                    .then_with(|| x.2.cmp(&y.2));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
}

fn in_scope(f: &Feature, scope: &str) -> bool {
    ["grid", "community", "street"]
        .iter()
        .any(|k| f.properties.get(*k).and_then(Value::as_str) == Some(scope))
}

/// Read the page: through the store's own paging, or — for a scoped token, a filter or an
/// order — every matching feature, then scope, filter, order and page here.
async fn read_page(
    s: &AppState,
    l: Layer,
    fq: &FeatureQuery,
    p: &Principal,
    sh: &Shape,
) -> Result<(Vec<Feature>, u64), ApiError> {
    let scoped = l == Layer::Incidents && p.scope.is_some();
    if !scoped && sh.filter.is_none() && sh.sortby.is_empty() {
        let page = s.store.features(l, fq).await?;
        return Ok((page.features, page.matched));
    }
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
    let mut keep: Vec<Feature> = all
        .features
        .into_iter()
        .filter(|f| !scoped || in_scope(f, &scope))
        .filter(|f| {
            sh.filter
                .as_ref()
                .is_none_or(|e| e.matches(&f.properties, f.geometry.as_ref()))
        })
        .collect();
    sort_features(&mut keep, &sh.sortby);
    let n = keep.len() as u64;
    Ok((keep.into_iter().skip(fq.offset).take(fq.limit).collect(), n))
}

fn select_properties(features: &mut [Feature], names: Option<&Vec<String>>) {
    if let Some(names) = names {
        for f in features {
            f.properties.retain(|k, _| names.iter().any(|n| n == k));
        }
    }
}

fn content_crs(r: &mut Response, c: Option<ApiCrs>) {
    let uri = format!(
        "<{}>",
        c.map_or_else(|| ogc_crs::CRS84.to_string(), ApiCrs::uri)
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&uri) {
        r.headers_mut().insert("content-crs", v);
    }
}

/// GET /collections/{collection}/items, one route per collection (each documents its own
/// filters).
pub async fn items(
    l: Layer,
    s: Arc<AppState>,
    q: BTreeMap<String, String>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let l = readable_layer(l.name(), &p)?;
    let mut fq = query_of(l, &q, &s)?;
    if fq.plan.is_some() {
        p.require(
            p.reads_plans(),
            "grids of a plan other than the one in force",
        )?;
    }
    let sh = shape_of(l, &q, &p)?;
    let gcj02 = sh.crs.is_none() && gcj02_param(&q)?;
    if gcj02 {
        fq.bbox = fq.bbox.map(crate::tiles::gcj02_query_bounds);
    }
    let (mut features, matched) = read_page(&s, l, &fq, &p, &sh).await?;
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
    if let Some(c) = sh.crs {
        ogc_crs::transform_features(&mut features, c)?;
    }
    select_properties(&mut features, sh.properties.as_ref());
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
    let mut r = geojson(json!({
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": returned,
        "timeStamp": crate::store::ts_text(chrono::Utc::now().timestamp()),
        "links": links,
    }));
    content_crs(&mut r, sh.crs);
    Ok(r)
}

pub async fn item(
    State(s): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let l = readable_layer(&id, &p)?;
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
    let out_crs = match q.get("crs") {
        Some(c) if !matches!(c.as_str(), "wgs84" | "cgcs2000") => Some(ogc_crs::parse("crs", c)?),
        _ => None,
    };
    let page = s.store.features(l, &fq).await?;
    let mut f = page
        .features
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no feature {fid:?} in {}", l.name())))?;
    if let Some(c) = out_crs {
        ogc_crs::transform_features(std::slice::from_mut(&mut f), c)?;
    }
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
    let mut r = geojson(v);
    content_crs(&mut r, out_crs);
    Ok(r)
}

/// GET /collections/{id}/queryables — a JSON Schema of the properties the caller may filter
/// and sort on (the fields the layer schema lets them see) and the geometry.
pub async fn queryables(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    let l = readable_layer(&id, &p)?;
    let mut props = Map::new();
    let mut draft = Vec::new();
    for f in crate::model::schema::visible(l, p.access_everywhere()) {
        draft.push(json!({ "id": f.name, "type": f.kind.json_schema() }));
        let mut v = json!({ "title": f.name, "type": f.kind.json_schema() });
        if f.kind == crate::model::schema::FieldType::Time {
            v["format"] = json!("date-time");
        }
        props.insert(f.name.to_string(), v);
    }
    props.insert(
        "geometry".into(),
        json!({ "title": "geometry", "format": "geometry-any", "x-ogc-role": "primary-geometry" }),
    );
    let b = s.base(&h);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/schema+json")],
        Json(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("{b}/collections/{}/queryables", l.name()),
            "type": "object",
            "title": title(l),
            "properties": props,
            "additionalProperties": false,
            // The 2020 draft's list, read by GDAL < 3.7 to send filters to the server.
            "queryables": draft,
        })),
    )
        .into_response())
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    let mut out = vec![
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
            "/collections/{collectionId}/queryables",
            queryables,
            "features",
            "public; incidents: dispatcher, grid_worker, admin",
            "The properties a filter or sortby may use (JSON Schema), for the caller's role",
        ),
        Route::get(
            "/collections/{collectionId}/items/{featureId}",
            item,
            "features",
            "public; incidents: dispatcher, grid_worker, admin",
            "One feature",
        ),
    ];
    out.push(items_route(None));
    out.extend(Layer::ALL.into_iter().map(|l| items_route(Some(l))));
    out
}

/// GET /collections/{collectionId}/items: the same as the collection's own route, documented
/// with the parameters every collection reads (GDAL reads the page size here).
async fn items_any(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    p: Principal,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    items(layer_of(&id)?, s, q, p, h).await
}

/// The parameters every collection's items route reads.
fn items_query_common() -> Vec<(&'static str, Value, &'static str)> {
    use super::routes::schema;
    let d = super::Config::default();
    vec![
        (
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": d.page_max, "default": d.page_default }),
            "Features per page (the server's page_max is the maximum; a larger value is cut to it, \
             as OGC API – Features requires; `next` links page on)",
        ),
        (
            "offset",
            json!({ "type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0 }),
            "Features to skip",
        ),
        (
            "bbox",
            json!({ "type": "array", "minItems": 4, "maxItems": 4, "items": { "type": "number" } }),
            "min lon, min lat, max lon, max lat (WGS84; 400 unless min ≤ max)",
        ),
        (
            "crs",
            json!({ "type": "string" }),
            "Output CRS: a URI of the collection's `crs` list (CRS84, EPSG 4326, 4490, 3857, CGCS2000 Gauss-Krüger 4491–4554; axis order as EPSG defines), or gcj02 (shifted for Chinese basemaps); the response's Content-Crs names it",
        ),
        (
            "bbox-crs",
            json!({ "type": "string" }),
            "CRS of bbox (a URI of the `crs` list; default CRS84)",
        ),
        (
            "filter",
            json!({ "type": "string" }),
            "CQL2-text filter: comparisons, IS NULL, IN, BETWEEN, LIKE, AND/OR/NOT, S_INTERSECTS(geometry, WKT or BBOX) — properties from /queryables",
        ),
        (
            "filter-lang",
            schema::one_of(&["cql2-text", "cql-text"]),
            "Filter language (cql-text: the 2020 draft's name, accepted for GDAL 3.6)",
        ),
        (
            "filter-crs",
            schema::one_of(&[ogc_crs::CRS84]),
            "CRS of the filter's geometries",
        ),
        (
            "sortby",
            json!({ "type": "string" }),
            "Comma-separated properties, `-` before one for descending (e.g. -households,code)",
        ),
        (
            "properties",
            json!({ "type": "string" }),
            "Comma-separated properties to return (others are left out)",
        ),
    ]
}

/// `/collections/{l}/items`, with the parameters this collection reads; for `None`, the
/// generic `/collections/{collectionId}/items` with those every collection reads.
fn items_route(layer: Option<Layer>) -> Route {
    use super::routes::schema;
    static PATHS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        Layer::ALL
            .iter()
            .map(|l| format!("/collections/{}/items", l.name()))
            .collect()
    });
    let access = if layer == Some(Layer::Incidents) {
        "dispatcher, grid_worker, admin"
    } else {
        "public; household counts need a token"
    };
    let mut q = items_query_common();
    let Some(l) = layer else {
        let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
        return Route::get(
            "/collections/{collectionId}/items",
            items_any,
            "features",
            "public; incidents: dispatcher, grid_worker, admin",
            "Features of a collection (each collection's own path documents its filters too)",
        )
        .path("collectionId", json!({ "type": "string", "enum": names }))
        .query(q);
    };
    let path: &'static str = &paths[Layer::ALL.iter().position(|x| *x == l).unwrap_or(0)];
    match l {
        Layer::Grids => {
            q.push((
                "datetime",
                schema::datetime(),
                "Grids in force at this instant (RFC 3339 with offset)",
            ));
            q.push((
                "plan",
                schema::id(),
                "Grids of this plan (plan readers; 403 otherwise)",
            ));
        }
        Layer::Incidents => q.push((
            "datetime",
            json!({ "type": "string" }),
            "Reported at this instant or in this interval (start/end, RFC 3339, `..` open)",
        )),
        _ => {}
    }
    for f in l.filterable() {
        let v = match *f {
            "band" => schema::one_of(&["under", "in", "over"]),
            _ => schema::code(),
        };
        q.push((f, v, "Equality filter"));
    }
    Route::get(
        path,
        move |State(s): State<Arc<AppState>>,
              Query(q): Query<BTreeMap<String, String>>,
              p: Principal,
              h: HeaderMap| items(l, s, q, p, h),
        "features",
        access,
        match l {
            Layer::Streets => "Streets (街道)",
            Layer::Communities => "Communities (社区)",
            Layer::Grids => "Grids (网格) in force, or of a plan",
            Layer::Buildings => "Buildings",
            Layer::Incidents => "Incidents (cases)",
        },
    )
    .query(q)
}
