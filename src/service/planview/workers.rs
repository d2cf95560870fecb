//! Grid workers of a plan's grids: assigning and listing them.

use super::*;

/// GET /plans/{id}/assignment[?community=CODE] — `{building: grid}` of the plan.
pub async fn assignment(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<i64>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    p.require(p.reads_plans(), "plans")?;
    let plan = s.store.plan(id).await?;
    let only: Option<HashSet<String>> = match q.get("community") {
        None => None,
        Some(c) => {
            if !plan.communities.contains(c) {
                return Err(ApiError::not_found(format!(
                    "community={c:?}: not in plan {id} (its communities: {})",
                    plan.communities.join(", ")
                )));
            }
            let grids = s.store.plan_grids(id).await?;
            Some(
                grids
                    .into_iter()
                    .filter(|g| &g.community == c)
                    .map(|g| g.code)
                    .collect(),
            )
        }
    };
    let map: Map<String, Value> = s
        .store
        .plan_assignment(id)
        .await?
        .into_iter()
        .filter(|(_, g)| only.as_ref().is_none_or(|o| o.contains(g)))
        .map(|(b, g)| (b, Value::String(g)))
        .collect();
    Ok(Json(
        json!({ "plan": id, "version": plan.version, "buildings": map }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerBody {
    name: Option<String>,
    phone: Option<String>,
}

/// POST /grids/{code}/worker — set (or, with `{"name": null}`, clear) a grid's worker.
pub async fn set_worker(
    State(s): State<Arc<AppState>>,
    p: Principal,
    Path(code): Path<String>,
    _h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(
        p.role == super::super::auth::Role::Admin,
        "assigning grid workers (admin)",
    )?;
    let b: WorkerBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "body: expected {{\"name\": \"张三\", \"phone\": \"12345\"}} (name null clears): {e}"
        ))
    })?;
    let worker = match b.name.map(|n| n.trim().to_string()) {
        None => None,
        Some(n) if n.is_empty() => {
            return Err(ApiError::unprocessable(
                "name: a worker's name, or null to clear",
            ));
        }
        Some(name) => Some(Worker {
            name,
            phone: b.phone.filter(|p| !p.trim().is_empty()),
        }),
    };
    if !crate::store::grid_exists(s.store.as_ref(), &code).await? {
        return Err(ApiError::not_found(format!(
            "grid {code:?} is in no plan: a worker is assigned to an existing grid"
        )));
    }
    s.store.set_worker(&code, worker.clone(), &p.who).await?;
    s.invalidate();
    Ok(Json(json!({ "grid": code, "worker": worker })))
}

/// The routes of this module.
pub fn routes() -> Vec<Route> {
    use super::super::routes::schema;
    let mut name = schema::said();
    name["nullable"] = json!(true);
    name["description"] = json!("The worker's name; null clears the grid's worker");
    let worker = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": name,
            "phone": { "type": "string", "nullable": true, "description": "The public phone" },
        }
    });
    vec![
        Route::get(
            "/plans/{id}/grids",
            grids,
            "plans",
            "viewer, planner, admin",
            "The plan's grids as a table (figures, band, Polsby-Popper, lock, worker, bbox, label point; no geometry)",
        )
        .path("id", schema::id()),
        Route::get(
            "/plans/{id}/assignment",
            assignment,
            "plans",
            "viewer, planner, admin",
            "The grid of every building of the plan",
        )
        .path("id", schema::id())
        .query(vec![("community", schema::code(), "Only this community's buildings")]),
        Route::post(
            "/grids/{code}/worker",
            set_worker,
            "plans",
            "admin",
            "Assign (or clear) the grid worker of a grid; the public sees the name and public phone",
        )
        .schemas(Some(worker), json!({ "type": "object", "required": ["grid", "worker"] }))
        .path("code", schema::code()),
    ]
}
