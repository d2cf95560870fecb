//! Incidents over HTTP: the native case API (transitions with the allowed list on refusal), and statistics.

use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, parse_datetime};
use crate::incident::{Action, Case, State as CaseState, TransitionError};
use crate::store::IncidentFilter;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    match q.get("overdue").map(String::as_str) {
        None | Some("false" | "0") => {}
        Some("true" | "1") => f.overdue_at = Some(chrono::Utc::now().timestamp()),
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "overdue={o:?}: expected true or false"
            )));
        }
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
        .unwrap_or(s.config.page_default);
    if limit == 0 {
        return Err(ApiError::bad_request("limit: at least 1"));
    }
    let limit = limit.min(s.config.page_max);
    let offset: usize = q
        .get("offset")
        .map(|v| {
            v.parse()
                .ok()
                .filter(|o| *o <= super::ogc::MAX_OFFSET)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "offset={v:?}: expected an integer from 0 to {}",
                        super::ogc::MAX_OFFSET
                    ))
                })
        })
        .transpose()?
        .unwrap_or(0);
    // the scope, the page and the count in the store: no request reads every case
    f.scope.clone_from(&p.scope);
    let total = s.store.count_incidents(&f).await?;
    f.limit = limit;
    f.offset = offset;
    let page: Vec<Case> = s.store.incidents(&f).await?;
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
                err.extra = Some(Box::new(json!({ "allowed": allowed })));
                err
            }
            TransitionError::Calendar { source, .. } => calendar_error(source),
            other => ApiError::unprocessable(other.to_string()),
        })?;
    s.store.update_incident(&c, before, &p.who).await?;
    s.invalidate_cases();
    let mut v = case_json(&c, &p);
    v["allowed"] = json!(c.allowed());
    Ok(Json(v))
}

/// The service's working calendar does not cover the due time: a setting to fix, not the
/// client's fault (503 with the calendar's message).
pub(super) fn calendar_error(e: crate::incident::calendar::CalendarError) -> ApiError {
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
    let f = IncidentFilter {
        scope: p.scope.clone(),
        lean: true,
        ..IncidentFilter::default()
    };
    let cases = s.store.incidents(&f).await?;
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
    if res > 15 {
        return Err(ApiError::bad_request("resolution: 0 to 15"));
    }
    if res > max_res {
        return Err(ApiError::forbidden(format!(
            "resolution {res}: 0 to {max_res} for the {} role",
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
    let f = IncidentFilter {
        scope: p.scope.clone(),
        lean: true,
        ..IncidentFilter::default()
    };
    let cases = s.store.incidents(&f).await?;
    let cells: Vec<Value> = crate::incident::stats::h3_counts(&cases, res, min)
        .into_iter()
        .map(|(c, n)| json!({ "h3": c, "count": n }))
        .collect();
    Ok(Json(json!({ "resolution": res, "cells": cells })))
}

/// A query parameter: name, JSON schema, description.
type Param = (&'static str, Value, &'static str);

/// The reporting period parameters (`from`, `to`).
fn period_query() -> Vec<Param> {
    use super::routes::schema;
    vec![
        (
            "from",
            schema::datetime(),
            "Reported at or after (RFC 3339)",
        ),
        ("to", schema::datetime(), "Reported at or before (RFC 3339)"),
    ]
}

/// The query parameters of the incident list.
fn list_query() -> Vec<Param> {
    use super::routes::schema;
    let mut q = vec![
        ("grid", schema::code(), "Grid code"),
        ("community", schema::code(), "Community code"),
        (
            "category",
            schema::code(),
            "Event category code (services.json)",
        ),
        ("state", schema::one_of(STATES), "Case state"),
        (
            "overdue",
            schema::one_of(&["true", "false", "1", "0"]),
            "Only cases open past their due time",
        ),
        (
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": u64::MAX }),
            "Page size (values above the service's page_max are cut to it)",
        ),
        (
            "offset",
            json!({ "type": "integer", "minimum": 0, "maximum": super::ogc::MAX_OFFSET }),
            "Cases skipped",
        ),
    ];
    q.extend(period_query());
    q
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    use super::routes::schema;
    let period = period_query;
    let mut stats_query = vec![(
        "by",
        schema::one_of(&["grid", "community", "street", "category", "worker"]),
        "Grouping (default grid)",
    )];
    stats_query.extend(period());
    vec![
        Route::get(
            "/incidents",
            list,
            "incidents",
            "dispatcher, grid_worker (own scope), admin",
            "Incidents, newest first, paged",
        )
        .query(list_query()),
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
            "Apply an action ({\"action\": \"dispatch\", \"unit\": …}); 409 with the allowed list when illegal; \
             422 when extend's until is not within 366 days after now or before the due time",
        )
        .schemas(Some(action_schema()), json!({ "type": "object" }))
        .statuses(&[409, 503]),
        Route::get(
            "/stats",
            stats,
            "incidents",
            "viewer and above",
            "Assessment figures by grid, community, street, category or worker",
        )
        .query(stats_query),
        Route::get(
            "/stats/h3",
            h3,
            "incidents",
            "viewer and above",
            "H3 hexagon counts for heat maps",
        )
        .query(vec![
            (
                "resolution",
                schema::int(0, 15),
                "H3 resolution (default 9); above 10 only for roles that read cases (403 otherwise)",
            ),
            (
                "min_count",
                json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }),
                "Fewest cases a cell shows (at least 3 for roles that do not read cases)",
            ),
        ]),
    ]
}

/// Case states, as the API writes them.
const STATES: &[&str] = &[
    "reported",
    "accepted",
    "rejected",
    "opened",
    "dispatched",
    "handled",
    "verified",
    "closed",
    "returned",
    "suspended",
    "voided",
];

/// The body of a transition: one object per action, with the fields it needs.
fn action_schema() -> Value {
    let said = super::routes::schema::said();
    let action = |names: &[&str], fields: &[(&str, Value)]| {
        let mut props = serde_json::Map::new();
        props.insert("action".into(), json!({ "type": "string", "enum": names }));
        let mut required = vec!["action".to_string()];
        for (k, v) in fields {
            props.insert((*k).into(), v.clone());
            required.push((*k).into());
        }
        json!({ "type": "object", "required": required, "properties": props })
    };
    json!({ "oneOf": [
        action(&["accept", "open", "handle", "close", "resume", "escalate"], &[]),
        action(&["reject", "return", "suspend", "void"], &[("reason", said.clone())]),
        action(&["dispatch"], &[("unit", said.clone())]),
        action(&["verify"], &[("passed", json!({ "type": "boolean" }))]),
        action(&["evaluate"], &[("score", json!({ "type": "integer", "minimum": 1, "maximum": 5 }))]),
        action(&["extend"], &[("until", json!({ "type": "integer", "format": "int64", "description": "Unix seconds" })), ("reason", said)]),
    ] })
}
