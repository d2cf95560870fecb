//! Open311 GeoReport v2 as specified (<http://wiki.open311.org/GeoReport_v2>): every endpoint
//! in JSON and XML (`.json` / `.xml`), discovery, errors as `[{"code", "description"}]`,
//! `api_key` in the query, header or POST body, `jurisdiction_id` checked when one is
//! configured, and requests readable by the public without personal fields.
//!
//! Who sees what of a request is the layer schema's rule (`schema::OPEN311_KEYS`): the public —
//! and a token outside its scope — gets the request without its description, photo and
//! reporter, and its place as the centre of its H3 resolution-9 cell (about 170 m across),
//! never the door it was reported from.

mod xml;

use super::auth::{Principal, principal_for};
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, parse_instant};
use crate::incident::{Case, Source};
use crate::model::schema;
use crate::store::{IncidentFilter, ts_text};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Open311 settings (`[open311]` in the service config).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Open311Config {
    /// The jurisdiction this endpoint serves (e.g. `beijing.gov.cn`); when set, a request
    /// naming another `jurisdiction_id` is refused (404). None: the parameter is not checked.
    pub jurisdiction_id: Option<String>,
    /// Who runs the endpoint (discovery `contact`).
    pub contact: String,
    /// How a client obtains an API key (discovery `key_service`).
    pub key_service: String,
}

/// The specification discovery points to.
const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";
/// Most requests in one answer, and the longest date range of a search (GeoReport v2).
const MAX_REQUESTS: usize = 1000;
/// The longest `jurisdiction_id` read (characters).
const MAX_JURISDICTION: usize = 200;
const MAX_RANGE_SECONDS: i64 = 90 * 86_400;

/// The format an address asks for, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    fn of(path: &str) -> Option<Format> {
        if path.ends_with(".json") {
            Some(Format::Json)
        } else if path.ends_with(".xml") {
            Some(Format::Xml)
        } else {
            None
        }
    }

    /// `name.json` or `name.xml` without its extension.
    fn strip(self, file: &str) -> &str {
        let ext = match self {
            Format::Json => ".json",
            Format::Xml => ".xml",
        };
        file.strip_suffix(ext).unwrap_or(file)
    }

    /// An answer in this format: the JSON value, or the same as an XML document under `root`.
    fn reply(self, status: StatusCode, root: &str, v: &Value) -> Response {
        match self {
            Format::Json => (status, axum::Json(v)).into_response(),
            Format::Xml => (
                status,
                [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
                xml::document(root, v),
            )
                .into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Format::of(parts.uri.path()).ok_or_else(|| {
            ApiError::not_found(format!(
                "{}: add .json or .xml (the formats this endpoint serves)",
                parts.uri.path()
            ))
        })
    }
}

/// Every error of an Open311 address as the specification writes them —
/// `[{"code": 404, "description": "…"}]`, or `<errors><error>…` for `.xml` — whoever made it
/// (a handler, an extractor, a limit).
pub(super) async fn errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !req.uri().path().starts_with("/open311/") {
        return next.run(req).await;
    }
    let fmt = Format::of(req.uri().path()).unwrap_or(Format::Json);
    let resp = next.run(req).await;
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let errs = json!([{ "code": status.as_u16(), "description": message }]);
    let fresh = fmt.reply(status, "errors", &errs);
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (k, v) in &fresh_parts.headers {
        parts.headers.insert(k, v.clone());
    }
    Response::from_parts(parts, fresh_body)
}

/// 404 when a configured jurisdiction is named otherwise.
fn check_jurisdiction(s: &AppState, given: Option<&String>) -> Result<(), ApiError> {
    if let Some(j) = given.filter(|j| j.chars().count() > MAX_JURISDICTION) {
        return Err(ApiError::bad_request(format!(
            "jurisdiction_id: {} characters, at most {MAX_JURISDICTION}",
            j.chars().count()
        )));
    }
    match (&s.config.open311.jurisdiction_id, given) {
        (Some(ours), Some(theirs)) if ours != theirs.trim() => Err(ApiError::not_found(format!(
            "jurisdiction_id {theirs:?}: this endpoint serves {ours:?}"
        ))),
        _ => Ok(()),
    }
}

/// When this endpoint's documents last changed: when the process started.
fn changeset() -> &'static str {
    static AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AT.get_or_init(|| ts_text(chrono::Utc::now().timestamp()))
}

/// GET /open311/v2/discovery.{json,xml}
async fn discovery(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let url = format!("{}/open311/v2", s.base(&headers));
    let v = json!({
        "changeset": changeset(),
        "contact": s.config.open311.contact,
        "key_service": s.config.open311.key_service,
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": url,
            "changeset": changeset(),
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    });
    fmt.reply(StatusCode::OK, "discovery", &v)
}

/// GET /open311/v2/services.{json,xml}
async fn services(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    check_jurisdiction(&s, q.get("jurisdiction_id"))?;
    let v: Vec<Value> = s
        .catalogue
        .categories
        .iter()
        .map(|c| {
            json!({
                "service_code": c.code,
                "service_name": c.name,
                "description": format!("{} / {}", c.class, c.subclass),
                "metadata": false,
                "type": "realtime",
                "keywords": c.aliases.join(","),
                "group": c.class,
            })
        })
        .collect();
    Ok(fmt.reply(StatusCode::OK, "services", &Value::Array(v)))
}

/// GET /open311/v2/services/{code}.{json,xml}: the definition (no extra attributes).
async fn service(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    check_jurisdiction(&s, q.get("jurisdiction_id"))?;
    let code = fmt.strip(&file);
    let c = s
        .catalogue
        .get(code)
        .ok_or_else(|| ApiError::not_found(format!("no service {code:?} (see services.json)")))?;
    let v = json!({ "service_code": c.code, "attributes": [] });
    Ok(fmt.reply(StatusCode::OK, "service_definition", &v))
}

/// The centre of the H3 resolution-9 cell of a place: where the public is told a request is.
fn coarse(lat: f64, lon: f64) -> (Value, Value) {
    let Ok(ll) = h3o::LatLng::new(lat, lon) else {
        return (Value::Null, Value::Null);
    };
    let centre = h3o::LatLng::from(ll.to_cell(h3o::Resolution::Nine));
    let round = |x: f64| (x * 1e6).round() / 1e6;
    (json!(round(centre.lat())), json!(round(centre.lng())))
}

/// A service request as the caller may see it: in full (their token reads cases and covers
/// this one), else as the public sees it.
fn request_json(c: &Case, s: &AppState, p: &Principal) -> Value {
    let access = if p.reads_incidents() && p.covers(c) {
        p.access()
    } else {
        schema::Access::PUBLIC
    };
    let name = s.catalogue.get(&c.category).map(|x| x.name.clone());
    let updated = c.history.last().map_or(c.reported_at, |h| h.at);
    let mut v = json!({
        "service_request_id": c.id,
        "status": if c.state.is_final() { "closed" } else { "open" },
        "status_notes": serde_json::to_value(c.state).unwrap_or(Value::Null),
        "service_name": name,
        "service_code": c.category,
        "description": c.description,
        "agency_responsible": c.unit,
        "service_notice": c.grid.as_ref().map(|g| format!("grid {g}")),
        "requested_datetime": ts_text(c.reported_at),
        "updated_datetime": ts_text(updated),
        "expected_datetime": c.due_at.map(ts_text),
        "address": Value::Null,
        "address_id": c.grid,
        "zipcode": Value::Null,
        "lat": c.lat,
        "long": c.lon,
        "media_url": c.media.first(),
        "reporter": c.reporter,
    });
    if let Some(o) = v.as_object_mut() {
        schema::redact_open311(o, access);
        if !access.sees(schema::Visibility::Staff) {
            let (lat, lon) = coarse(c.lat, c.lon);
            o.insert("lat".into(), lat);
            o.insert("long".into(), lon);
        }
    }
    v
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `YYYYMMDD-SSSSSNNNNNN`: the day, its second and a sequence of a million a second (a store
/// conflict — another server, a restart within the second — takes the next number).
fn new_id(now: i64) -> String {
    let d = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    format!(
        "{}-{:05}{:06}",
        d.format("%Y%m%d"),
        now.rem_euclid(86_400),
        SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000
    )
}

/// The longest text of each field of a report (characters), and nothing else stored.
const REPORT_LIMITS: [(&str, usize); 7] = [
    ("description", 4000),
    ("first_name", 100),
    ("last_name", 100),
    ("phone", 40),
    ("email", 200),
    ("media_url", 2000),
    ("address_string", 500),
];

/// A report's fields within their limits (422 naming the field), without control characters
/// (line breaks and tabs allowed in the description), and a media URL that is http(s).
pub(crate) fn check_report_fields(f: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (k, max) in REPORT_LIMITS {
        let Some(v) = f.get(k) else { continue };
        let n = v.chars().count();
        if n > max {
            return Err(ApiError::unprocessable(format!(
                "{k}: {n} characters, at most {max}"
            )));
        }
        let allowed = |c: char| k == "description" && matches!(c, '\n' | '\r' | '\t');
        if let Some(c) = v.chars().find(|c| c.is_control() && !allowed(*c)) {
            return Err(ApiError::unprocessable(format!(
                "{k}: control character U+{:04X} is not allowed",
                u32::from(c)
            )));
        }
    }
    if let Some(m) = f.get("media_url").filter(|m| !m.is_empty()) {
        let lower = m.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(ApiError::unprocessable(format!(
                "media_url {m:?}: expected an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

/// The report's place: `lat` and `long` in WGS84 degrees. An address alone cannot be located:
/// this service has no geocoder.
pub(crate) fn report_place(f: &BTreeMap<String, String>) -> Result<(f64, f64), ApiError> {
    let given = |k: &str| f.get(k).is_some_and(|v| !v.trim().is_empty());
    if !given("lat") && !given("long") && (given("address_string") || given("address_id")) {
        return Err(ApiError::bad_request(
            "address_string/address_id: this service has no geocoder, so a report is located by \
             lat and long (WGS84 degrees); send them too",
        ));
    }
    let num = |k: &str| -> Result<f64, ApiError> {
        let v = f
            .get(k)
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required (WGS84 degrees)")))?;
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ApiError::bad_request(format!("{k}={v:?}: expected a number")))
    };
    let (lat, lon) = (num("lat")?, num("long")?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(ApiError::bad_request(format!(
            "lat={lat}, long={lon}: out of range (latitude −90…90, longitude −180…180)"
        )));
    }
    Ok((lat, lon))
}

/// The case a report's form fields describe (checked), received at `now` from a client of `role`.
fn case_of_form(
    f: &BTreeMap<String, String>,
    cat: &crate::incident::Category,
    role: super::auth::Role,
    now: i64,
) -> Result<Case, ApiError> {
    let (lat, lon) = report_place(f)?;
    check_report_fields(f)?;
    let reporter: Vec<&str> = ["first_name", "last_name", "phone", "email"]
        .iter()
        .filter_map(|k| f.get(*k).map(String::as_str))
        .filter(|x| !x.trim().is_empty())
        .collect();
    let source = if role == super::auth::Role::Public {
        Source::ResidentApp
    } else {
        Source::Hotline
    };
    let mut case = Case::report(
        String::new(),
        cat,
        f.get("description").cloned().unwrap_or_default(),
        lon,
        lat,
        source,
        (!reporter.is_empty()).then(|| reporter.join(" ")),
        now,
    );
    if let Some(m) = f.get("media_url").filter(|m| !m.is_empty()) {
        case.media.push(m.clone());
    }
    Ok(case)
}

/// POST /open311/v2/requests.{json,xml} (form-encoded): a new report, located to its grid on
/// arrival. `api_key` may come in the body, as GeoReport clients send it.
async fn post_request(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    client: super::proxy::ClientAddr,
    p: Principal,
    form: Result<
        axum::extract::Form<BTreeMap<String, String>>,
        axum::extract::rejection::FormRejection,
    >,
) -> Result<Response, ApiError> {
    let axum::extract::Form(f) = form.map_err(|e| {
        ApiError::bad_request(format!(
            "the body: expected application/x-www-form-urlencoded fields ({e})"
        ))
    })?;
    check_jurisdiction(&s, f.get("jurisdiction_id"))?;
    let p = match f.get("api_key").filter(|k| !k.is_empty()) {
        Some(key) if p.role == super::auth::Role::Public => {
            principal_for(&s, Some(key.as_str())).await?
        }
        _ => p,
    };
    if p.role == super::auth::Role::Public {
        s.limits
            .public_writes
            .take(&client.key())
            .map_err(|w| ApiError::too_many("reports without a token", w))?;
    }
    let code = f
        .get("service_code")
        .ok_or_else(|| ApiError::bad_request("service_code is required (see services.json)"))?;
    let cat = s
        .catalogue
        .get(code)
        .ok_or_else(|| {
            ApiError::not_found(format!("service_code {code:?} is not in services.json"))
        })?
        .clone();
    let now = chrono::Utc::now().timestamp();
    let mut case = case_of_form(&f, &cat, p.role, now)?;
    let (lat, lon) = (case.lat, case.lon);
    // located in memory, as /locate answers (the store is not searched per report)
    if let Some(hit) = s.grid_at(lon, lat, now).await? {
        case.grid = Some(hit.code);
        case.community = Some(hit.community);
        case.street = hit.street;
    }
    // the time limit runs from arrival on the working calendar (re-set when the case is opened)
    case.due_at = Some(
        s.calendar
            .due_at(now, cat.limit)
            .map_err(super::cases::calendar_error)?,
    );
    let mut tries = 0;
    loop {
        case.id = new_id(now);
        match s.store.insert_incident(&case, &p.who).await {
            Ok(()) => break,
            Err(crate::store::StoreError::Conflict(_)) if tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    s.invalidate_cases();
    let notice = match &case.grid {
        Some(g) => format!("located to grid {g}"),
        None => "outside every grid in force: the district handles it".into(),
    };
    let v = json!([{ "service_request_id": case.id, "service_notice": notice, "account_id": Value::Null }]);
    Ok(fmt.reply(StatusCode::CREATED, "service_requests", &v))
}

/// Audit reads that return reporters' details.
async fn audit_read(
    s: &AppState,
    p: &Principal,
    shown: &[Value],
    what: &str,
) -> Result<(), ApiError> {
    if shown
        .iter()
        .any(|r| r.get("reporter").is_some_and(|x| !x.is_null()))
    {
        s.store
            .audit(
                &p.who,
                "read_personal",
                what,
                &format!("{} incidents", shown.len()),
            )
            .await?;
    }
    Ok(())
}

/// The requested-date window of a search: both ends as given, one end and 90 days, or the
/// last 90 days; never more than 90 days (GeoReport v2).
fn window(q: &BTreeMap<String, String>, now: i64) -> Result<(i64, i64), ApiError> {
    let at = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|d| {
                parse_instant(d).map_err(|e| ApiError::bad_request(format!("{k}: {}", e.message)))
            })
            .transpose()
    };
    let (start, end) = match (at("start_date")?, at("end_date")?) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a + MAX_RANGE_SECONDS),
        (None, Some(b)) => (b - MAX_RANGE_SECONDS, b),
        (None, None) => (now - MAX_RANGE_SECONDS, now),
    };
    if end < start {
        return Err(ApiError::bad_request(
            "end_date is before start_date".to_string(),
        ));
    }
    if end - start > MAX_RANGE_SECONDS {
        return Err(ApiError::bad_request(
            "start_date … end_date: at most 90 days (GeoReport v2)".to_string(),
        ));
    }
    Ok((start, end))
}

/// A comma-delimited parameter's values.
fn list<'a>(q: &'a BTreeMap<String, String>, k: &str) -> Option<Vec<&'a str>> {
    q.get(k).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .collect()
    })
}

/// GET /open311/v2/requests.{json,xml}: public; tokens that read cases get their scope's in
/// full. `service_request_id` (comma-delimited) ignores every other parameter; else
/// `service_code` and `status` (comma-delimited) within `start_date` … `end_date`.
async fn get_requests(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    check_jurisdiction(&s, q.get("jurisdiction_id"))?;
    let mut cases = Vec::new();
    if let Some(ids) = list(&q, "service_request_id") {
        for id in ids.iter().take(MAX_REQUESTS) {
            match s.store.incident(id).await {
                Ok(c) => cases.push(c),
                Err(crate::store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        let statuses = list(&q, "status").unwrap_or_default();
        if let Some(bad) = statuses.iter().find(|x| !matches!(**x, "open" | "closed")) {
            return Err(ApiError::bad_request(format!(
                "status={bad:?}: expected open or closed"
            )));
        }
        let codes = list(&q, "service_code").unwrap_or_default();
        let (from, to) = window(&q, chrono::Utc::now().timestamp())?;
        let f = IncidentFilter {
            category: (codes.len() == 1).then(|| codes[0].to_string()),
            from: Some(from),
            // the store's end is exclusive; end_date includes its second
            to: Some(to + 1),
            ..IncidentFilter::default()
        };
        cases = s.store.incidents(&f).await?;
        cases.retain(|c| {
            let status = if c.state.is_final() { "closed" } else { "open" };
            (statuses.is_empty() || statuses.contains(&status))
                && (codes.is_empty() || codes.contains(&c.category.as_str()))
        });
    }
    // newest first, at most 1,000
    cases.sort_by(|a, b| b.reported_at.cmp(&a.reported_at).then(a.id.cmp(&b.id)));
    cases.truncate(MAX_REQUESTS);
    let shown: Vec<Value> = cases.iter().map(|c| request_json(c, &s, &p)).collect();
    audit_read(&s, &p, &shown, "open311 requests").await?;
    Ok(fmt.reply(StatusCode::OK, "service_requests", &Value::Array(shown)))
}

/// GET /open311/v2/requests/{id}.{json,xml}
async fn get_request(
    fmt: Format,
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(file): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    check_jurisdiction(&s, q.get("jurisdiction_id"))?;
    let id = fmt.strip(&file);
    let c = s.store.incident(id).await?;
    let shown = [request_json(&c, &s, &p)];
    audit_read(&s, &p, &shown, &format!("incident {id}")).await?;
    Ok(fmt.reply(StatusCode::OK, "service_requests", &json!(shown)))
}

/// Who may read requests, and how much.
const READ_ACCESS: &str = "public (without description, photo, reporter; place to ~170 m); \
dispatcher, grid_worker (own scope), admin in full";

/// The routes of this module, each in both formats.
pub(super) fn routes() -> Vec<Route> {
    let mut out = Vec::new();
    for [discovery_at, services_at, requests_at] in [
        [
            "/open311/v2/discovery.json",
            "/open311/v2/services.json",
            "/open311/v2/requests.json",
        ],
        [
            "/open311/v2/discovery.xml",
            "/open311/v2/services.xml",
            "/open311/v2/requests.xml",
        ],
    ] {
        out.push(Route::get(
            discovery_at,
            discovery,
            "open311",
            "public",
            "Discovery: the endpoint, its specification and formats",
        ));
        out.push(
            Route::get(
                services_at,
                services,
                "open311",
                "public",
                "Service list (the event catalogue)",
            )
            .query(vec![jurisdiction_param()]),
        );
        out.push(
            Route::post(
                requests_at,
                post_request,
                "open311",
                "public",
                "Report (form-encoded: service_code, lat, long, description, …; api_key may be \
                 in the body); located to a grid on arrival",
            )
            .form(report_form())
            .created(),
        );
        out.push(
            Route::get(
                requests_at,
                get_requests,
                "open311",
                READ_ACCESS,
                "Service requests (service_request_id, service_code, status, start_date, \
                 end_date; at most 90 days and 1,000 requests)",
            )
            .query(request_query()),
        );
    }
    out.push(
        Route::get(
            "/open311/v2/services/{serviceCode}",
            service,
            "open311",
            "public",
            "Service definition ({code}.json or {code}.xml)",
        )
        .query(vec![jurisdiction_param()]),
    );
    out.push(
        Route::get(
            "/open311/v2/requests/{requestId}",
            get_request,
            "open311",
            READ_ACCESS,
            "One service request ({id}.json or {id}.xml)",
        )
        .query(vec![jurisdiction_param()]),
    );
    out
}

fn jurisdiction_param() -> (&'static str, Value, &'static str) {
    (
        "jurisdiction_id",
        json!({ "type": "string", "maxLength": MAX_JURISDICTION }),
        "The jurisdiction; refused (404) when the endpoint serves another",
    )
}

fn request_query() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        jurisdiction_param(),
        (
            "service_request_id",
            json!({ "type": "string" }),
            "Ids, comma-delimited; every other parameter is then ignored",
        ),
        (
            "service_code",
            json!({ "type": "string" }),
            "Service codes, comma-delimited",
        ),
        (
            "status",
            json!({ "type": "string", "pattern": "^((open|closed)(,(open|closed))*)?$" }),
            "open, closed or both, comma-delimited",
        ),
        (
            "start_date",
            json!({ "type": "string", "format": "date-time" }),
            "Earliest requested_datetime (RFC 3339)",
        ),
        (
            "end_date",
            json!({ "type": "string", "format": "date-time" }),
            "Latest requested_datetime (RFC 3339); at most 90 days after start_date",
        ),
    ]
}

/// The form of a report, as OpenAPI documents it: the limits and characters
/// [`check_report_fields`] enforces.
fn report_form() -> Value {
    // no control characters (Unicode Cc); the description may hold tabs and line breaks
    let plain = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
    let text = |max: usize| json!({ "type": "string", "maxLength": max, "pattern": plain });
    json!({
        "type": "object",
        "required": ["service_code", "lat", "long"],
        "properties": {
            "service_code": { "type": "string", "description": "A code of services.json (404 when unknown)" },
            "lat": { "type": "number", "minimum": -90, "maximum": 90 },
            "long": { "type": "number", "minimum": -180, "maximum": 180 },
            "description": { "type": "string", "maxLength": 4000,
                "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$" },
            "first_name": text(100),
            "last_name": text(100),
            "phone": text(40),
            "email": text(200),
            "media_url": { "type": "string", "maxLength": 2000,
                "pattern": "^([Hh][Tt][Tt][Pp][Ss]?://[^\\u0000-\\u001f\\u007f-\\u009f]*)?$" },
            "address_string": text(500),
            "jurisdiction_id": { "type": "string", "maxLength": MAX_JURISDICTION },
            "api_key": { "type": "string", "description": "A token, as GeoReport clients send it (401 when unknown)" },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_place_is_the_cell_centre() {
        let (lat, lon) = coarse(40.7549, -73.9840);
        let (lat, lon) = (lat.as_f64().unwrap(), lon.as_f64().unwrap());
        assert!((lat - 40.7549).abs() < 0.003 && (lon + 73.9840).abs() < 0.003);
        assert!((lat - 40.7549).abs() + (lon + 73.9840).abs() > 1e-6);
        // every point of the cell reports the same place
        assert_eq!(coarse(40.75491, -73.98401), coarse(40.7549, -73.9840));
    }

    #[test]
    fn the_search_window_is_at_most_ninety_days() {
        let q = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        let now = 1_790_000_000;
        assert_eq!(
            window(&q(&[]), now).unwrap(),
            (now - MAX_RANGE_SECONDS, now)
        );
        let (a, b) = window(&q(&[("start_date", "2026-01-01T00:00:00Z")]), now).unwrap();
        assert_eq!(b - a, MAX_RANGE_SECONDS);
        let e = window(
            &q(&[
                ("start_date", "2026-01-01T00:00:00Z"),
                ("end_date", "2026-06-01T00:00:00Z"),
            ]),
            now,
        )
        .unwrap_err();
        assert!(e.message.contains("90 days"), "{}", e.message);
        assert!(window(&q(&[("end_date", "yesterday")]), now).is_err());
    }
}
