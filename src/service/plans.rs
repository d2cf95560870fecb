//! Plans over HTTP: regrid jobs (202 + job URL), plans with ETags, diff, publish with If-Match.

use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, parse_datetime};
use crate::partition::{Band, RegridParams};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn etag(p: &crate::store::Plan) -> String {
    format!("\"plan-{}-v{}\"", p.id, p.version)
}

pub async fn list(State(s): State<Arc<AppState>>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    Ok(Json(json!({ "plans": s.store.plans().await? })))
}

pub async fn get(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let plan = s.store.plan(id).await?;
    if p.plans() && plan.status == crate::store::PlanStatus::Draft {
        // a planner opening a draft edits it next: decode and derive it in the background
        let (s, scope) = (s.clone(), p.scope.clone());
        tokio::spawn(async move {
            if let Err(e) =
                crate::plan::warm(s.store.as_ref(), &s.fabrics, id, scope.as_deref()).await
            {
                tracing::debug!(plan = id, "preparing the plan for editing: {e}");
            }
        });
    }
    let tag = etag(&plan);
    let mut r = Json(json!({ "plan": plan })).into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

pub async fn diff(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path((a, b)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let d = crate::store::plan_diff(s.store.as_ref(), a, b).await?;
    Ok(Json(serde_json::to_value(d).map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// When the plan takes effect.
    pub valid_from: String,
    /// Why each grid out of band may stay so, by grid code (`*`: every other one).
    #[serde(default)]
    pub exceptions: crate::store::Reasons,
}

pub async fn publish(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(p.plans(), "publishing a plan")?;
    let b: PublishBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "body: expected {{\"valid_from\": \"2026-01-01\", \"exceptions\": {{\"CODE\": \"reason\"}}}}: {e}"
        ))
    })?;
    let t = parse_datetime(&b.valid_from)?
        .0
        .ok_or_else(|| ApiError::unprocessable("valid_from: one instant"))?;
    let m = super::precondition::IfMatch::required(&h)?;
    let plan = s.store.plan(id).await?;
    if !m.matches(&etag(&plan)) {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!(
                "If-Match does not name {}: the plan changed meanwhile",
                etag(&plan)
            ),
        ));
    }
    let out = s
        .store
        .publish_plan(id, t, Some(plan.version), &p.who, &b.exceptions)
        .await?;
    s.invalidate();
    let register = s.store.plan_exceptions(id).await?;
    Ok(Json(json!({ "plan": out, "exceptions": register })))
}

/// GET /plans/{id}/exceptions: the grids published out of band, with why.
pub async fn exceptions(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let register = s.store.plan_exceptions(id).await?;
    Ok(Json(json!({ "plan": id, "exceptions": register })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegridBody {
    pub communities: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub target: Option<f64>,
    pub seed: Option<u64>,
}

/// How often a running job's progress goes to the store.
const JOB_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// A running job with no progress still tells the store it is alive this often.
const JOB_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// A running job not heard of for this long is reported failed (its server stopped).
const JOB_LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A running job's progress and heartbeat, to the store where every server reads them, until
/// `finished`.
async fn report_progress(
    st: Arc<AppState>,
    id: i64,
    done: Arc<std::sync::atomic::AtomicUsize>,
    finished: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut last = usize::MAX;
    let mut beat = tokio::time::Instant::now();
    while !finished.load(Ordering::SeqCst) {
        tokio::time::sleep(JOB_PROGRESS_EVERY).await;
        let n = done.load(Ordering::Relaxed);
        if (n != last || beat.elapsed() >= JOB_HEARTBEAT) && !finished.load(Ordering::SeqCst) {
            last = n;
            beat = tokio::time::Instant::now();
            if let Err(e) = st
                .store
                .update_job(id, n as i64, "running", None, None)
                .await
            {
                tracing::warn!("job {id}: progress not saved: {e}");
            }
        }
    }
}

/// A regrid request's body (empty: the defaults) and its band.
fn regrid_body(body: &[u8]) -> Result<(RegridBody, Band), ApiError> {
    let b: RegridBody = if body.is_empty() {
        RegridBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::unprocessable(format!(
                "body: expected {{\"communities\": [..], \"min\": 200, \"max\": 400, \"target\": 300, \"seed\": 0}} (all optional): {e}"
            ))
        })?
    };
    let d = Band::DEFAULT;
    let band = Band::new(
        b.min.unwrap_or(d.min()),
        b.target.unwrap_or(d.target()),
        b.max.unwrap_or(d.max()),
    )
    .map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}: min ≤ target ≤ max, all non-negative, is required"
        ))
    })?;
    Ok((b, band))
}

/// POST /plans — start a regrid job; 202 with the job's URL.
pub async fn create(
    State(s): State<Arc<AppState>>,
    p: Principal,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "making a plan")?;
    let (b, band) = regrid_body(&body)?;
    // check the communities now, so a bad request fails at once
    let (cs, bs, roads) =
        crate::store::regrid::load(s.store.as_ref(), b.communities.as_deref()).await?;
    let total = cs.len();
    let id = s.store.create_job(total as i64, &p.who).await?.id;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(report_progress(
        s.clone(),
        id,
        done.clone(),
        finished.clone(),
    ));
    let st = s.clone();
    let who = p.who.clone();
    let seed = b.seed.unwrap_or(0);
    tokio::spawn(async move {
        let d = done.clone();
        let run = tokio::task::spawn_blocking(move || {
            let params = RegridParams {
                band,
                seed,
                ..RegridParams::default()
            };
            let tick = || {
                d.fetch_add(1, Ordering::Relaxed);
            };
            crate::partition::regrid(&cs, &bs, &roads, &params, &tick).map(|r| (r, cs, bs, params))
        })
        .await;
        let outcome = match run {
            Ok(Ok((r, cs, bs, params))) => {
                let plan = crate::store::regrid::new_plan(
                    &r,
                    &cs,
                    &bs,
                    band,
                    &who,
                    json!({ "min": band.min(), "max": band.max(), "target": band.target(), "seed": seed, "road_classes": params.cut_classes }),
                    json!({ "total": r.total, "communities": r.communities }),
                );
                st.store
                    .create_plan(plan)
                    .await
                    .map(|p| p.id)
                    .map_err(|e| e.to_string())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the job stopped: {e}")),
        };
        finished.store(true, Ordering::SeqCst);
        let n = done.load(Ordering::Relaxed) as i64;
        let saved = match &outcome {
            Ok(plan) => st.store.update_job(id, n, "done", Some(*plan), None).await,
            Err(e) => st.store.update_job(id, n, "failed", None, Some(e)).await,
        };
        if let Err(e) = saved {
            tracing::warn!("job {id}: outcome not saved: {e}");
        }
    });
    let url = format!("{}/jobs/{id}", s.base(&h));
    let mut r = (
        StatusCode::ACCEPTED,
        Json(json!({ "job": id, "status_url": url })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub async fn job(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    h: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    p.require(p.plans(), "plan jobs")?;
    let job = s
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let mut v = json!({
        "job": id,
        "progress": { "communities_done": job.done, "communities": job.total },
        "state": job.state,
    });
    let silent = crate::store::now() - job.updated;
    match job.state.as_str() {
        "running" if silent > JOB_LOST_AFTER.as_secs() as i64 => {
            v["state"] = json!("failed");
            v["error"] = json!(format!(
                "the server running this job stopped: no news for {silent} s"
            ));
        }
        "done" => {
            if let Some(pid) = job.plan {
                v["plan"] = json!(pid);
                v["plan_url"] = json!(format!("{}/plans/{pid}", s.base(&h)));
            }
        }
        "failed" => v["error"] = json!(job.error),
        _ => {}
    }
    Ok(Json(v))
}

/// The body of a publication and one line of the exception register (JSON Schema).
fn publish_schemas() -> (Value, Value) {
    use super::routes::schema;
    let publish_body = json!({
        "type": "object",
        "required": ["valid_from"],
        "additionalProperties": false,
        "properties": {
            "valid_from": schema::datetime(),
            "exceptions": {
                "type": "object",
                "description": "Why each grid out of band may stay so, by grid code (`*`: every other one); a grid of one building above the band needs none",
                "additionalProperties": { "type": "string", "minLength": 1, "pattern": "\\S" }
            }
        }
    });
    let exception = json!({
        "type": "object",
        "required": ["grid", "band", "households", "reason", "who", "at"],
        "properties": {
            "grid": { "type": "string" },
            "band": { "type": "string", "enum": ["under", "over", "oversize"] },
            "households": { "type": "integer", "minimum": 0 },
            "reason": { "type": "string" },
            "who": { "type": "string" },
            "at": { "type": "integer", "description": "seconds since the epoch" }
        }
    });
    (publish_body, exception)
}

/// The JSON schema of a regrid request's body.
fn regrid_schema() -> Value {
    use super::routes::schema;
    let band = |d: &str| json!({ "type": "number", "minimum": 0, "maximum": 1e9, "nullable": true, "description": d });
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "communities": { "type": "array", "nullable": true, "items": schema::code(), "description": "Community codes (default: all; 404 naming one unknown)" },
            "min": band("Fewest households a grid may hold (default 200)"),
            "target": band("Households a grid aims at (default 300)"),
            "max": band("Most households a grid may hold (default 400); 422 unless min ≤ target ≤ max"),
            "seed": { "type": "integer", "minimum": 0, "maximum": u64::MAX, "nullable": true, "description": "Seed of the local search" },
        }
    })
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    use super::routes::schema;
    let regrid = regrid_schema();
    let (publish_body, exception) = publish_schemas();
    vec![
        Route::get("/plans", list, "plans", "viewer, planner, admin", "Plans"),
        Route::post(
            "/plans",
            create,
            "plans",
            "planner, admin",
            "Regrid — 202 with the job URL; the result is a draft plan",
        )
        .schemas(
            Some(regrid),
            json!({ "type": "object", "required": ["job", "status_url"] }),
        )
        .body_optional()
        .accepted(),
        Route::get(
            "/plans/{id}",
            get,
            "plans",
            "viewer, planner, admin",
            "One plan, with its ETag",
        )
        .path("id", schema::id()),
        Route::get(
            "/plans/{a}/diff/{b}",
            diff,
            "plans",
            "viewer, planner, admin",
            "Buildings and households that change grid",
        )
        .path("a", schema::id())
        .path("b", schema::id()),
        Route::post(
            "/plans/{id}/publish",
            publish,
            "plans",
            "planner, admin",
            "Publish from valid_from; If-Match with the plan's ETag is required (412 when stale)",
        )
        .schemas(
            Some(publish_body),
            json!({
                "type": "object",
                "required": ["plan", "exceptions"],
                "properties": { "exceptions": { "type": "array", "items": exception.clone() } }
            }),
        )
        .path("id", schema::id())
        .header("If-Match", true, "The plan's ETag (GET /plans/{id})")
        .statuses(&[409, 412, 428]),
        Route::get(
            "/plans/{id}/exceptions",
            exceptions,
            "plans",
            "viewer, planner, admin",
            "The exception register: grids published out of band, each with its reason",
        )
        .schemas(
            None,
            json!({
                "type": "object",
                "required": ["plan", "exceptions"],
                "properties": { "exceptions": { "type": "array", "items": exception } }
            }),
        )
        .path("id", schema::id()),
        Route::get(
            "/jobs/{id}",
            job,
            "plans",
            "planner, admin",
            "A regrid job's progress and result",
        )
        .path("id", schema::id()),
    ]
}
