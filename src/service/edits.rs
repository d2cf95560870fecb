//! Plan editing over HTTP: edits (with dry runs for live feedback), undo and redo with
//! If-Match, the edit log, checks, copies, handover lists, imports of hand-drawn layers.

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::precondition::IfMatch;
use super::routes::Route;
use crate::plan::{EditError, EditRequest, Op};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Invalid(m) => ApiError::bad_request(m),
            EditError::NotFound(m) => ApiError::not_found(m),
            EditError::Refused(m) => ApiError::unprocessable(m),
            EditError::Forbidden(m) => ApiError::forbidden(m),
            EditError::Store(s) => s.into(),
        }
    }
}

/// The plan version an If-Match header holds the caller to: `None` for `*` (or no header when
/// not required); of a list, the current version when listed (else the first, which the store
/// then refuses with 412). A plan that is not there is 404 before any precondition.
async fn if_match(
    s: &AppState,
    h: &HeaderMap,
    id: i64,
    required: bool,
) -> Result<Option<i64>, ApiError> {
    let current = s.store.plan(id).await?.version;
    let m = if required {
        IfMatch::required(h)?
    } else {
        IfMatch::of(h)
    };
    if matches!(m, IfMatch::Absent | IfMatch::Any) {
        return Ok(None);
    }
    let v = m.plan_versions(id);
    match v.as_slice() {
        [] => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("If-Match names no ETag of plan {id} (\"plan-{id}-v<version>\")"),
        )),
        [one] => Ok(Some(*one)),
        several => Ok(Some(if several.contains(&current) {
            current
        } else {
            several[0]
        })),
    }
}

fn with_etag(v: Value, plan: &crate::store::Plan) -> Response {
    let mut r = Json(v).into_response();
    if let Ok(t) = HeaderValue::from_str(&format!("\"plan-{}-v{}\"", plan.id, plan.version)) {
        r.headers_mut().insert(header::ETAG, t);
    }
    r
}

fn flag(q: &BTreeMap<String, String>, k: &str) -> Result<bool, ApiError> {
    match q.get(k).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(o) => Err(ApiError::bad_request(format!(
            "{k}={o:?}: expected true or false"
        ))),
    }
}

/// POST /plans/{id}/edits
pub async fn edit(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "editing a plan")?;
    let dry_run = flag(&q, "dry_run")?;
    let mut v: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body: expected an edit such as {{\"op\": \"move\", \"buildings\": [\"…\"], \"to\": \"CODE\"}}: {e}"
        ))
    })?;
    let reason = match v.as_object_mut().and_then(|m| m.remove("reason")) {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r),
        Some(o) => {
            return Err(ApiError::unprocessable(format!(
                "reason: expected a text, not {o}"
            )));
        }
    };
    let op: Op = serde_json::from_value(v).map_err(|e| {
        ApiError::unprocessable(format!(
            "body: {e}; op is one of move, merge, split, lock, unlock, resolve, new_grid"
        ))
    })?;
    let expected = if_match(&s, &h, id, !dry_run).await?;
    let req = EditRequest {
        who: p.who.clone(),
        reason,
        dry_run,
        expected_version: expected,
        scope: p.scope.clone(),
    };
    let o = crate::plan::edit(s.store.as_ref(), Some(&s.fabrics), id, &op, &req).await?;
    if !dry_run {
        s.invalidate();
    }
    Ok(with_etag(o.json(), &o.plan))
}

async fn undo_redo(
    s: &AppState,
    p: &Principal,
    id: i64,
    h: &HeaderMap,
    redo: bool,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "editing a plan")?;
    let expected = if_match(s, h, id, true).await?;
    let req = EditRequest {
        who: p.who.clone(),
        expected_version: expected,
        scope: p.scope.clone(),
        ..EditRequest::default()
    };
    let o = crate::plan::undo_redo(s.store.as_ref(), Some(&s.fabrics), id, redo, &req).await?;
    s.invalidate();
    Ok(with_etag(o.json(), &o.plan))
}

/// POST /plans/{id}/undo
pub async fn undo(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    undo_redo(&s, &p, id, &h, false).await
}

/// POST /plans/{id}/redo
pub async fn redo(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    undo_redo(&s, &p, id, &h, true).await
}

/// GET /plans/{id}/edits
pub async fn log(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    Ok(Json(
        json!({ "plan": id, "edits": s.store.plan_edits(id).await? }),
    ))
}

/// GET /plans/{id}/check
pub async fn check(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let r = crate::plan::check_plan(s.store.as_ref(), id).await?;
    let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
    v["plan"] = json!(id);
    Ok(Json(v))
}

/// POST /plans/{id}/copy
pub async fn copy(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "copying a plan")?;
    let np = crate::plan::copy_plan(s.store.as_ref(), id, &p.who).await?;
    let mut r = with_etag(json!({ "plan": np, "copied_from": id }), &np);
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

/// GET /plans/{a}/handover/{b}
pub async fn handover(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path((a, b)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let text = crate::plan::handover_csv(s.store.as_ref(), a, b).await?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(r)
}

/// POST /plans/import
pub async fn import(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Query(q): Query<BTreeMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "importing a plan")?;
    let layer: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("body: expected a GeoJSON FeatureCollection: {e}"))
    })?;
    let (plan, report) = crate::plan::import_plan(
        s.store.as_ref(),
        &layer,
        q.get("name").map(String::as_str),
        &p.who,
    )
    .await?;
    let mut v = serde_json::to_value(&report).map_err(ApiError::internal)?;
    v["plan"] = json!(plan.id);
    v["version"] = json!(plan.version);
    let mut r = with_etag(v, &plan);
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

/// The routes of this module, with their documentation and request/response schemas.
pub(super) fn routes() -> Vec<Route> {
    use super::routes::schema;
    let op = crate::plan::ops::op_schema();
    let outcome = crate::plan::outcome_schema();
    let if_match = "The plan's ETag (GET /plans/{id}); 412 when the plan changed meanwhile";
    vec![
        Route::post(
            "/plans/{id}/edits",
            edit,
            "plans",
            "planner, admin",
            "Edit a draft plan (move, merge, split, lock, unlock, resolve, new_grid); If-Match required unless ?dry_run=true (428); 422 when an edit would cut a grid or leave it empty",
        )
        .schemas(Some(op), outcome.clone())
        .path("id", schema::id())
        .query(vec![(
            "dry_run",
            schema::one_of(&["true", "false", "1", "0", ""]),
            "Answer as the edit would, without applying it",
        )])
        .header("If-Match", false, if_match)
        .statuses(&[409, 412, 428]),
        Route::post(
            "/plans/{id}/undo",
            undo,
            "plans",
            "planner, admin",
            "Undo the latest edit; If-Match required",
        )
        .schemas(None, outcome.clone())
        .path("id", schema::id())
        .header("If-Match", true, if_match)
        .statuses(&[409, 412, 422, 428]),
        Route::post(
            "/plans/{id}/redo",
            redo,
            "plans",
            "planner, admin",
            "Redo the latest undone edit; If-Match required",
        )
        .schemas(None, outcome)
        .path("id", schema::id())
        .header("If-Match", true, if_match)
        .statuses(&[409, 412, 422, 428]),
        Route::get(
            "/plans/{id}/edits",
            log,
            "plans",
            "viewer, planner, admin",
            "The edit log: who, when, what, why",
        )
        .path("id", schema::id()),
        Route::get(
            "/plans/{id}/check",
            check,
            "plans",
            "viewer, planner, admin",
            "Hard rules, band, Polsby-Popper, road following (as ../shared/tools/check_grids.py)",
        )
        .schemas(None, crate::plan::check_schema())
        .path("id", schema::id()),
        Route::post(
            "/plans/{id}/copy",
            copy,
            "plans",
            "planner, admin",
            "A draft copy of a plan, to edit a published one",
        )
        .path("id", schema::id())
        .created(),
        Route::get(
            "/plans/{a}/handover/{b}",
            handover,
            "plans",
            "viewer, planner, admin",
            "Handover list (CSV): buildings that change grid from plan a to plan b, with households",
        )
        .path("a", schema::id())
        .path("b", schema::id()),
        Route::post(
            "/plans/import",
            import,
            "plans",
            "planner, admin",
            "Import a hand-drawn grid layer (FeatureCollection of polygons with their codes) as a draft plan; cut buildings, gaps and overlaps named",
        )
        .schemas(
            Some(import_schema()),
            json!({"type": "object", "properties": {"plan": {"type": "integer"}, "grids": {"type": "integer"}, "cut_buildings": {"type": "array"}, "gaps": {"type": "array"}, "overlaps": {"type": "array"}, "detached": {"type": "array"}}}),
        )
        .query(vec![("name", json!({ "type": "string", "maxLength": 200 }), "The draft plan's name")])
        .created(),
    ]
}

/// A grid layer as `POST /plans/import` reads it: GeoJSON polygons in WGS84 with a `code`.
fn import_schema() -> Value {
    let position = json!({ "type": "array", "minItems": 2, "maxItems": 3,
        "items": { "type": "number", "minimum": -180, "maximum": 180 } });
    let ring = json!({ "type": "array", "minItems": 4, "items": position });
    let polygon = json!({ "type": "array", "minItems": 1, "items": ring });
    json!({
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": { "type": "string", "enum": ["FeatureCollection"] },
            "features": { "type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": { "type": "string", "enum": ["Feature"] },
                    "geometry": { "oneOf": [
                        { "type": "object", "required": ["type", "coordinates"], "properties": {
                            "type": { "type": "string", "enum": ["Polygon"] }, "coordinates": polygon } },
                        { "type": "object", "required": ["type", "coordinates"], "properties": {
                            "type": { "type": "string", "enum": ["MultiPolygon"] },
                            "coordinates": { "type": "array", "minItems": 1, "items": polygon } } },
                    ] },
                    "properties": { "type": "object", "properties": { "code": schema_code() } },
                }
            } }
        }
    })
}

fn schema_code() -> Value {
    super::routes::schema::code()
}
