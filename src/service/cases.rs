//! Incidents over HTTP: Open311 GeoReport v2 (JSON) for hotline systems and resident apps, the
//! native case API (transitions with the allowed list on refusal), and statistics.

use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, parse_datetime};
use crate::incident::{Action, Case, Source, State as CaseState, TransitionError};
use crate::model::schema;
use crate::store::{IncidentFilter, ts_text};
use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn strip_json(file: &str) -> Result<&str, ApiError> {
    file.strip_suffix(".json").ok_or_else(|| {
        ApiError::not_found(format!(
            "{file}: only the JSON format is served (add .json)"
        ))
    })
}

pub async fn services(State(s): State<Arc<AppState>>) -> Json<Value> {
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
    Json(Value::Array(v))
}

pub async fn service(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let code = strip_json(&file)?;
    let c = s
        .catalogue
        .get(code)
        .ok_or_else(|| ApiError::not_found(format!("no service {code:?}")))?;
    Ok(Json(json!({ "service_code": c.code, "attributes": [] })))
}

/// An Open311 service request.
fn request_json(c: &Case, s: &AppState, p: &Principal) -> Value {
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
    });
    if schema::case_key("reporter").is_some_and(|vis| p.access().sees(vis)) {
        v["reporter"] = json!(c.reporter);
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

/// POST /open311/v2/requests.json (form-encoded): a new report, located to its grid on arrival.
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
fn check_report_fields(f: &BTreeMap<String, String>) -> Result<(), ApiError> {
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
    if let Some(m) = f.get("media_url").filter(|m| !m.trim().is_empty()) {
        let lower = m.trim().to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(ApiError::unprocessable(format!(
                "media_url {m:?}: expected an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

pub async fn post_request(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let code = f
        .get("service_code")
        .ok_or_else(|| ApiError::bad_request("service_code is required"))?;
    let cat = s
        .catalogue
        .get(code)
        .ok_or_else(|| {
            ApiError::bad_request(format!("service_code {code:?} is not in services.json"))
        })?
        .clone();
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
        return Err(ApiError::bad_request("lat/long out of range"));
    }
    check_report_fields(&f)?;
    let now = chrono::Utc::now().timestamp();
    let reporter: Vec<&str> = ["first_name", "last_name", "phone", "email"]
        .iter()
        .filter_map(|k| f.get(*k).map(String::as_str))
        .filter(|x| !x.trim().is_empty())
        .collect();
    let source = if p.role == super::auth::Role::Public {
        Source::ResidentApp
    } else {
        Source::Hotline
    };
    let mut case = Case::report(
        String::new(),
        &cat,
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
    if let Some(hit) = s.store.grid_at(lon, lat, now).await? {
        case.grid = Some(hit.code);
        case.community = Some(hit.community);
        case.street = hit.street;
    }
    // the time limit runs from arrival on the working calendar (re-set when the case is opened)
    case.due_at = Some(s.calendar.due_at(now, cat.limit).map_err(calendar_error)?);
    let mut tries = 0;
    loop {
        case.id = new_id(now);
        match s.store.insert_incident(&case, &p.who).await {
            Ok(()) => break,
            Err(crate::store::StoreError::Conflict(_)) if tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    s.invalidate();
    let notice = match &case.grid {
        Some(g) => format!("located to grid {g}"),
        None => "outside every grid in force: the district handles it".into(),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!([{ "service_request_id": case.id, "service_notice": notice, "account_id": Value::Null }])),
    )
        .into_response())
}

fn scoped(cases: Vec<Case>, p: &Principal) -> Vec<Case> {
    cases.into_iter().filter(|c| p.covers(c)).collect()
}

async fn audit_read(
    s: &AppState,
    p: &Principal,
    cases: &[Case],
    what: &str,
) -> Result<(), ApiError> {
    if p.sees_reporters() && cases.iter().any(|c| c.reporter.is_some()) {
        s.store
            .audit(
                &p.who,
                "read_personal",
                what,
                &format!("{} incidents", cases.len()),
            )
            .await?;
    }
    Ok(())
}

/// GET /open311/v2/requests.json
pub async fn get_requests(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_incidents(), "listing service requests")?;
    let mut f = IncidentFilter {
        limit: 0,
        ..IncidentFilter::default()
    };
    if let Some(c) = q.get("service_code") {
        f.category = Some(c.clone());
    }
    if let Some(d) = q.get("start_date") {
        f.from = parse_datetime(d)?.0;
    }
    if let Some(d) = q.get("end_date") {
        f.to = parse_datetime(d)?.0;
    }
    let status = q.get("status").map(String::as_str);
    if let Some(st) = status
        && st != "open"
        && st != "closed"
    {
        return Err(ApiError::bad_request(format!(
            "status={st:?}: expected open or closed"
        )));
    }
    let ids: Option<Vec<&str>> = q
        .get("service_request_id")
        .map(|v| v.split(',').map(str::trim).collect());
    let mut cases = scoped(s.store.incidents(&f).await?, &p);
    cases.retain(|c| {
        status.is_none_or(|st| (st == "closed") == c.state.is_final())
            && ids.as_ref().is_none_or(|ids| ids.contains(&c.id.as_str()))
    });
    // newest first, at most 1,000 (GeoReport v2)
    cases.sort_by(|a, b| b.reported_at.cmp(&a.reported_at).then(a.id.cmp(&b.id)));
    cases.truncate(1000);
    audit_read(&s, &p, &cases, "open311 requests").await?;
    Ok(Json(Value::Array(
        cases.iter().map(|c| request_json(c, &s, &p)).collect(),
    )))
}

/// GET /open311/v2/requests/{id}.json
pub async fn get_request(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(file): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_incidents(), "reading a service request")?;
    let id = strip_json(&file)?;
    let c = s.store.incident(id).await?;
    if !p.covers(&c) {
        return Err(ApiError::forbidden(format!(
            "request {id} is outside the token's scope"
        )));
    }
    audit_read(&s, &p, std::slice::from_ref(&c), &format!("incident {id}")).await?;
    Ok(Json(json!([request_json(&c, &s, &p)])))
}

fn case_json(c: &Case, p: &Principal) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        crate::model::schema::redact_case(o, p.access());
    }
    v
}

/// GET /incidents
pub async fn list(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_incidents(), "listing incidents")?;
    let mut f = IncidentFilter {
        grid: q.get("grid").cloned(),
        community: q.get("community").cloned(),
        category: q.get("category").cloned(),
        ..IncidentFilter::default()
    };
    if let Some(st) = q.get("state") {
        f.state = Some(
            serde_json::from_value::<CaseState>(json!(st))
                .map_err(|_| ApiError::bad_request(format!("state={st:?}: not a case state")))?,
        );
    }
    if q.get("overdue").is_some_and(|v| v == "true" || v == "1") {
        f.overdue_at = Some(chrono::Utc::now().timestamp());
    }
    if let Some(d) = q.get("from") {
        f.from = parse_datetime(d)?.0;
    }
    if let Some(d) = q.get("to") {
        f.to = parse_datetime(d)?.0;
    }
    let limit: usize = q
        .get("limit")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("limit: expected an integer"))
        })
        .transpose()?
        .unwrap_or(s.config.page_default)
        .clamp(1, s.config.page_max);
    let offset: usize = q
        .get("offset")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("offset: expected an integer"))
        })
        .transpose()?
        .unwrap_or(0);
    let all = scoped(s.store.incidents(&f).await?, &p);
    let total = all.len();
    let page: Vec<Case> = all.into_iter().skip(offset).take(limit).collect();
    audit_read(&s, &p, &page, "incidents list").await?;
    Ok(Json(json!({
        "incidents": page.iter().map(|c| case_json(c, &p)).collect::<Vec<_>>(),
        "matched": total,
        "offset": offset,
        "limit": limit,
    })))
}

/// GET /incidents/{id}
pub async fn get(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_incidents(), "reading an incident")?;
    let c = s.store.incident(&id).await?;
    if !p.covers(&c) {
        return Err(ApiError::forbidden(format!(
            "incident {id} is outside the token's scope"
        )));
    }
    audit_read(&s, &p, std::slice::from_ref(&c), &format!("incident {id}")).await?;
    let mut v = case_json(&c, &p);
    v["allowed"] = json!(c.allowed());
    Ok(Json(v))
}

/// POST /incidents/{id}/transitions — body: an action, e.g. `{"action": "dispatch", "unit": "…"}`.
pub async fn transition(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(
        matches!(
            p.role,
            super::auth::Role::Admin
                | super::auth::Role::Dispatcher
                | super::auth::Role::GridWorker
        ),
        "changing an incident",
    )?;
    let action: Action = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "body: expected an action such as {{\"action\": \"accept\"}} or {{\"action\": \"dispatch\", \"unit\": \"…\"}}: {e}"
        ))
    })?;
    // the dispatch centre's powers: dispatching to a unit, escalating, extending, rejecting,
    // voiding and closing; a grid worker accepts, opens, handles, verifies on site, returns,
    // suspends and resumes cases in its scope
    if p.role == super::auth::Role::GridWorker
        && matches!(
            action,
            Action::Dispatch { .. }
                | Action::Escalate
                | Action::Extend { .. }
                | Action::Reject { .. }
                | Action::Void { .. }
                | Action::Close
        )
    {
        return Err(ApiError::forbidden(format!(
            "{}: a dispatcher's action, not a grid worker's (a grid worker may accept, open, \
             handle, verify, return, suspend or resume)",
            action.name()
        )));
    }
    let mut c = s.store.incident(&id).await?;
    if !p.covers(&c) {
        return Err(ApiError::forbidden(format!(
            "incident {id} is outside the token's scope"
        )));
    }
    let cat = s.catalogue.get(&c.category).cloned().ok_or_else(|| {
        ApiError::internal(format!("incident {id}: category {} unknown", c.category))
    })?;
    let before = c.history.len();
    let now = chrono::Utc::now().timestamp();
    c.apply(action, &p.who, now, &cat, &s.calendar)
        .map_err(|e| match e {
            TransitionError::Illegal { ref allowed, .. } => {
                let mut err =
                    ApiError::new(StatusCode::CONFLICT, "illegal_transition", e.to_string());
                err.extra = Some(json!({ "allowed": allowed }));
                err
            }
            TransitionError::Calendar { source, .. } => calendar_error(source),
            other => ApiError::unprocessable(other.to_string()),
        })?;
    s.store.update_incident(&c, before, &p.who).await?;
    s.invalidate();
    let mut v = case_json(&c, &p);
    v["allowed"] = json!(c.allowed());
    Ok(Json(v))
}

/// The service's working calendar does not cover the due time: a setting to fix, not the
/// client's fault (503 with the calendar's message).
fn calendar_error(e: crate::incident::calendar::CalendarError) -> ApiError {
    tracing::error!("{e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "calendar_uncovered",
        e.to_string(),
    )
}

/// GET /stats?by=grid|community|street|category&from=&to=
pub async fn stats(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_stats(), "statistics")?;
    let by: crate::incident::stats::By = q
        .get("by")
        .map_or("grid", String::as_str)
        .parse()
        .map_err(|e: String| ApiError::bad_request(e.replace("--by", "by")))?;
    let from = q
        .get("from")
        .map(|d| parse_datetime(d))
        .transpose()?
        .and_then(|x| x.0);
    let to = q
        .get("to")
        .map(|d| parse_datetime(d))
        .transpose()?
        .and_then(|x| x.0);
    let cases = scoped(s.store.incidents(&IncidentFilter::default()).await?, &p);
    let now = chrono::Utc::now().timestamp();
    let workers = if by == crate::incident::stats::By::Worker {
        grid_workers(&s).await?
    } else {
        BTreeMap::new()
    };
    let figs = crate::incident::stats::figures(&cases, by, from, to, now, &workers);
    Ok(Json(
        json!({ "by": q.get("by").map_or("grid", String::as_str), "groups": figs }),
    ))
}

/// Grid code → worker name, for the grids in force.
async fn grid_workers(s: &AppState) -> Result<BTreeMap<String, String>, ApiError> {
    let page = s
        .store
        .features(
            crate::store::Layer::Grids,
            &crate::store::FeatureQuery::default(),
        )
        .await?;
    Ok(page
        .features
        .into_iter()
        .filter_map(|f| {
            let w = f.properties.get("worker_name")?.as_str()?.to_string();
            Some((f.id, w))
        })
        .collect())
}

/// GET /stats/h3?resolution=9&min_count=3 — hexagon counts for heat maps (aggregate only).
pub async fn h3(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_stats(), "statistics")?;
    let res: u8 = q
        .get("resolution")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("resolution: 0 to 15"))
        })
        .transpose()?
        .unwrap_or(9);
    // who may not read cases sees what the public heat layer shows: cells of resolution 10 or
    // coarser with at least HEAT_MIN_COUNT cases, never a single case's place
    let exact = p.reads_incidents();
    let max_res = if exact { 15 } else { 10 };
    let min_floor = if exact {
        1
    } else {
        crate::tiles::HEAT_MIN_COUNT
    };
    if res > max_res {
        return Err(ApiError::bad_request(format!(
            "resolution: 0 to {max_res} for the {} role",
            p.role.name()
        )));
    }
    let min: u64 = q
        .get("min_count")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("min_count: an integer"))
        })
        .transpose()?
        .unwrap_or(min_floor)
        .max(min_floor);
    let cases = scoped(s.store.incidents(&IncidentFilter::default()).await?, &p);
    let cells: Vec<Value> = crate::incident::stats::h3_counts(&cases, res, min)
        .into_iter()
        .map(|(c, n)| json!({ "h3": c, "count": n }))
        .collect();
    Ok(Json(json!({ "resolution": res, "cells": cells })))
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/open311/v2/services.json",
            services,
            "open311",
            "public",
            "Service list (the event catalogue)",
        ),
        Route::get(
            "/open311/v2/services/{serviceCode}",
            service,
            "open311",
            "public",
            "Service definition ({code}.json)",
        ),
        Route::post(
            "/open311/v2/requests.json",
            post_request,
            "open311",
            "public",
            "Report (form-encoded: service_code, lat, long, description, …); located to a grid on arrival",
        ),
        Route::get(
            "/open311/v2/requests.json",
            get_requests,
            "open311",
            "dispatcher, grid_worker (own scope), admin",
            "Service requests (service_code, status, start_date, end_date, service_request_id)",
        ),
        Route::get(
            "/open311/v2/requests/{requestId}",
            get_request,
            "open311",
            "dispatcher, grid_worker (own scope), admin",
            "One service request ({id}.json)",
        ),
        Route::get(
            "/incidents",
            list,
            "incidents",
            "dispatcher, grid_worker (own scope), admin",
            "Incidents (grid, community, state, category, overdue, from, to, limit, offset)",
        ),
        Route::get(
            "/incidents/{id}",
            get,
            "incidents",
            "dispatcher, grid_worker (own scope), admin",
            "One incident with its history and the actions allowed now",
        ),
        Route::post(
            "/incidents/{id}/transitions",
            transition,
            "incidents",
            "dispatcher, grid_worker (own scope), admin",
            "Apply an action ({\"action\": \"dispatch\", \"unit\": …}); 409 with the allowed list when illegal",
        ),
        Route::get(
            "/stats",
            stats,
            "incidents",
            "viewer and above",
            "Assessment figures by grid, community, street or category (from, to)",
        ),
        Route::get(
            "/stats/h3",
            h3,
            "incidents",
            "viewer and above",
            "H3 hexagon counts for heat maps (resolution, min_count)",
        ),
    ]
}
