//! Plans over HTTP: regrid jobs (202 + job URL), plans with ETags, diff, publish with If-Match.

use super::auth::Principal;
use super::error::ApiError;
use super::routes::Route;
use super::{AppState, Job, JobState, parse_datetime};
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
            "body: expected {{\"valid_from\": \"2026-01-01\"}}: {e}"
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
        .publish_plan(id, t, Some(plan.version), &p.who)
        .await?;
    s.invalidate();
    Ok(Json(json!({ "plan": out })))
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

/// POST /plans — start a regrid job; 202 with the job's URL.
pub async fn create(
    State(s): State<Arc<AppState>>,
    p: Principal,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(p.plans(), "making a plan")?;
    let b: RegridBody = if body.is_empty() {
        RegridBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
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
    // check the communities now, so a bad request fails at once
    let (cs, bs, roads) =
        crate::store::regrid::load(s.store.as_ref(), b.communities.as_deref()).await?;
    let id = s.next_job.fetch_add(1, Ordering::SeqCst) + 1;
    let job = Arc::new(Job {
        state: std::sync::Mutex::new(JobState::Running),
        done: std::sync::atomic::AtomicUsize::new(0),
        total: cs.len(),
    });
    if let Ok(mut jobs) = s.jobs.lock() {
        jobs.insert(id, job.clone());
    }
    let st = s.clone();
    let who = p.who.clone();
    let seed = b.seed.unwrap_or(0);
    tokio::spawn(async move {
        let j = job.clone();
        let run = tokio::task::spawn_blocking(move || {
            let params = RegridParams {
                band,
                seed,
                ..RegridParams::default()
            };
            let tick = || {
                j.done.fetch_add(1, Ordering::Relaxed);
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
                match st.store.create_plan(plan).await {
                    Ok(p) => JobState::Done(p.id),
                    Err(e) => JobState::Failed(e.to_string()),
                }
            }
            Ok(Err(e)) => JobState::Failed(e.to_string()),
            Err(e) => JobState::Failed(format!("the job stopped: {e}")),
        };
        if let Ok(mut s) = job.state.lock() {
            *s = outcome;
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
    Path(id): Path<u64>,
    h: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    p.require(p.plans(), "plan jobs")?;
    let job = s
        .jobs
        .lock()
        .ok()
        .and_then(|j| j.get(&id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let state = job
        .state
        .lock()
        .map(|s| s.clone())
        .unwrap_or(JobState::Failed("job state lost".into()));
    let mut v = json!({
        "job": id,
        "progress": { "communities_done": job.done.load(Ordering::Relaxed), "communities": job.total },
    });
    match state {
        JobState::Running => v["state"] = json!("running"),
        JobState::Done(pid) => {
            v["state"] = json!("done");
            v["plan"] = json!(pid);
            v["plan_url"] = json!(format!("{}/plans/{pid}", s.base(&h)));
        }
        JobState::Failed(e) => {
            v["state"] = json!("failed");
            v["error"] = json!(e);
        }
    }
    Ok(Json(v))
}

/// The routes of this module, with their documentation.
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::get("/plans", list, "plans", "viewer, planner, admin", "Plans"),
        Route::post(
            "/plans",
            create,
            "plans",
            "planner, admin",
            "Regrid (communities, min, max, target, seed) — 202 with the job URL; the result is a draft plan",
        ),
        Route::get(
            "/plans/{id}",
            get,
            "plans",
            "viewer, planner, admin",
            "One plan, with its ETag",
        ),
        Route::get(
            "/plans/{a}/diff/{b}",
            diff,
            "plans",
            "viewer, planner, admin",
            "Buildings and households that change grid",
        ),
        Route::post(
            "/plans/{id}/publish",
            publish,
            "plans",
            "planner, admin",
            "Publish from valid_from; If-Match with the plan's ETag is required (412 when stale)",
        ),
        Route::get(
            "/jobs/{id}",
            job,
            "plans",
            "planner, admin",
            "A regrid job's progress and result",
        ),
    ]
}
