//! Plans and grid workers in the GeoPackage: drafts, publication with version checks, retirement.

use super::*;
use crate::store::JobRecord;

/// The columns of a [`GridRecord`], in the order [`grid_records`] reads them.
const GRID_RECORD: &str = "code, name, community, street, households, buildings, weight, band, geom, valid_from, valid_to";

/// The grids a query selecting [`GRID_RECORD`] finds.
fn grid_records(c: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<GridRecord>> {
    let mut s = c.prepare_cached(sql).map_err(be)?;
    let mut rows = s.query(args).map_err(be)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        let g: Vec<u8> = r.get(8).map_err(be)?;
        let vf: Option<String> = r.get(9).map_err(be)?;
        let vt: Option<String> = r.get(10).map_err(be)?;
        out.push(GridRecord {
            code: r.get(0).map_err(be)?,
            name: r.get(1).map_err(be)?,
            community: r.get(2).map_err(be)?,
            street: r.get(3).map_err(be)?,
            households: r.get::<_, i64>(4).map_err(be)?.max(0) as u64,
            buildings: r.get::<_, i64>(5).map_err(be)?.max(0) as u64,
            weight: r.get(6).map_err(be)?,
            band: r.get(7).map_err(be)?,
            geometry: mp_of(&g)?,
            valid_from: vf.as_deref().map(text_ts).transpose()?,
            valid_to: vt.as_deref().map(text_ts).transpose()?,
        });
    }
    Ok(out)
}

/// That plan `id` exists (`NotFound` otherwise), without reading its figures.
pub(super) fn plan_exists(c: &Connection, id: i64) -> Result<()> {
    c.prepare_cached("SELECT 1 FROM plans WHERE id = ?1")
        .map_err(be)?
        .query_row([id], |_| Ok(()))
        .optional()
        .map_err(be)?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })
}

pub(super) fn plan_get(c: &Connection, id: i64) -> Result<Plan> {
    let row = c
        .prepare_cached(
            "SELECT id, status, communities, valid_from, valid_to, created_by, created_at, published_at, params, metrics, version,
               (SELECT count(*) FROM grids g WHERE g.plan_id = p.id), (SELECT coalesce(sum(households), 0) FROM grids g WHERE g.plan_id = p.id)
             FROM plans p WHERE id = ?1",
        )
        .map_err(be)?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
            ))
        })
        .optional()
        .map_err(be)?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })?;
    let opt = |s: Option<String>| s.as_deref().map(text_ts).transpose();
    Ok(Plan {
        id: row.0,
        status: PlanStatus::parse(&row.1)?,
        communities: serde_json::from_str(&row.2)
            .map_err(|e| StoreError::Backend(e.to_string()))?,
        valid_from: opt(row.3)?,
        valid_to: opt(row.4)?,
        created_by: row.5,
        created_at: text_ts(&row.6)?,
        published_at: opt(row.7)?,
        params: serde_json::from_str(&row.8).unwrap_or(Value::Null),
        metrics: serde_json::from_str(&row.9).unwrap_or(Value::Null),
        version: row.10,
        grids: row.11.max(0) as u64,
        households: row.12.max(0) as u64,
    })
}

/// Insert grid rows of plan `id`.
pub(super) fn insert_grids(c: &Connection, id: i64, grids: &[GridRecord]) -> Result<()> {
    let mut ins = c
        .prepare_cached(
            "INSERT INTO grids (geom, plan_id, code, name, community, street, households, buildings, weight, band) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(be)?;
    for g in grids {
        ins.execute(params![
            to_gpkg(&Geometry::MultiPolygon(g.geometry.clone()), 4326),
            id,
            g.code,
            g.name,
            g.community,
            g.street,
            g.households as i64,
            g.buildings as i64,
            g.weight,
            g.band
        ])
        .map_err(be)?;
    }
    Ok(())
}

/// A job row (`id, state, done, total, plan, error, who, started, updated`).
fn job_row(r: &rusqlite::Row) -> rusqlite::Result<(JobRecord, String, String)> {
    Ok((
        JobRecord {
            id: r.get(0)?,
            state: r.get(1)?,
            done: r.get(2)?,
            total: r.get(3)?,
            plan: r.get(4)?,
            error: r.get(5)?,
            who: r.get(6)?,
            started: 0,
            updated: 0,
        },
        r.get(7)?,
        r.get(8)?,
    ))
}

/// Plans other than `id` with grids in force at `vf` in `communities`, with when they started.
fn in_force_elsewhere(
    c: &Connection,
    id: i64,
    communities: &[String],
    vf: &str,
) -> Result<Vec<(i64, String)>> {
    let marks = vec!["?"; communities.len()].join(",");
    let sql = format!(
        "SELECT DISTINCT plan_id, min(valid_from) FROM grids WHERE plan_id != ? AND valid_from IS NOT NULL
           AND (valid_to IS NULL OR valid_to > ?) AND community IN ({marks}) GROUP BY plan_id"
    );
    let mut args: Vec<rusqlite::types::Value> =
        vec![id.into(), rusqlite::types::Value::Text(vf.to_string())];
    args.extend(
        communities
            .iter()
            .map(|s| rusqlite::types::Value::Text(s.clone())),
    );
    let prev: Vec<(i64, String)> = c
        .prepare(&sql)
        .map_err(be)?
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(be)?
        .collect::<rusqlite::Result<_>>()
        .map_err(be)?;
    Ok(prev)
}

/// End at `vf` the grids of other plans in force in `communities`.
fn close_in_force_elsewhere(
    c: &Connection,
    id: i64,
    communities: &[String],
    vf: &str,
) -> Result<()> {
    let marks = vec!["?"; communities.len()].join(",");
    let sql = format!(
        "UPDATE grids SET valid_to = ? WHERE plan_id != ? AND valid_from IS NOT NULL
           AND (valid_to IS NULL OR valid_to > ?) AND community IN ({marks})"
    );
    let mut args: Vec<rusqlite::types::Value> = vec![
        rusqlite::types::Value::Text(vf.to_string()),
        id.into(),
        rusqlite::types::Value::Text(vf.to_string()),
    ];
    args.extend(
        communities
            .iter()
            .map(|s| rusqlite::types::Value::Text(s.clone())),
    );
    c.execute(&sql, params_from_iter(args.iter())).map_err(be)?;
    Ok(())
}

/// Retire the plans in `prev` that no longer have a grid in force.
fn retire_closed(c: &Connection, prev: &[(i64, String)]) -> Result<()> {
    for (pid, _) in prev {
        let open: i64 = c
            .query_row(
                "SELECT count(*) FROM grids WHERE plan_id = ?1 AND valid_to IS NULL",
                [pid],
                |r| r.get(0),
            )
            .map_err(be)?;
        if open == 0 {
            c.execute(
                "UPDATE plans SET status = 'retired', valid_to = (SELECT max(valid_to) FROM grids WHERE plan_id = ?1), version = version + 1 WHERE id = ?1",
                [pid],
            )
            .map_err(be)?;
        }
    }
    Ok(())
}

#[async_trait]
impl Plans for GpkgStore {
    async fn create_job(&self, total: i64, who: &str) -> Result<JobRecord> {
        let who = who.to_string();
        let id = self
            .write(move |c| {
                let t = ts_text(now());
                c.execute(
                    "INSERT INTO wangge_jobs (state, done, total, who, started, updated) VALUES ('running', 0, ?1, ?2, ?3, ?3)",
                    params![total, who, t],
                )
                .map_err(be)?;
                Ok(c.last_insert_rowid())
            })
            .await?;
        self.job(id).await?.ok_or(StoreError::NotFound {
            what: "job",
            id: id.to_string(),
        })
    }

    async fn update_job(
        &self,
        id: i64,
        done: i64,
        state: &str,
        plan: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        let (state, error) = (state.to_string(), error.map(str::to_string));
        self.write(move |c| {
            c.execute(
                "UPDATE wangge_jobs SET done = ?2, state = ?3, plan = ?4, error = ?5, updated = ?6 WHERE id = ?1",
                params![id, done, state, plan, error, ts_text(now())],
            )
            .map_err(be)?;
            Ok(())
        })
        .await
    }

    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT id, state, done, total, plan, error, who, started, updated FROM wangge_jobs WHERE id = ?1",
                )
                .map_err(be)?
                .query_row([id], job_row)
                .optional()
                .map_err(be)?;
            row.map(|(mut j, started, updated)| {
                j.started = text_ts(&started)?;
                j.updated = text_ts(&updated)?;
                Ok(j)
            })
            .transpose()
        })
        .await
    }

    async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        self.write(move |c| {
            let comms = read_communities(c)?;
            check_plan(&plan, &comms)?;
            let t = ts_text(now());
            c.execute(
                "INSERT INTO plans (status, communities, created_by, created_at, params, metrics) VALUES ('draft', ?1, ?2, ?3, ?4, ?5)",
                params![
                    serde_json::to_string(&plan.communities).unwrap_or_default(),
                    plan.created_by,
                    t,
                    plan.params.to_string(),
                    plan.metrics.to_string()
                ],
            )
            .map_err(be)?;
            let id = c.last_insert_rowid();
            insert_grids(c, id, &plan.grids)?;
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO plan_assignments (plan_id, building_id, grid_code) VALUES (?1, ?2, ?3)",
                )
                .map_err(be)?;
            for (b, g) in &plan.assignment {
                ins.execute(params![id, b, g]).map_err(be)?;
            }
            touch(c, "grids")?;
            audit_in(c, &plan.created_by, "create_plan", &format!("plan {id}"), &format!("{} grids, communities {:?}", plan.grids.len(), plan.communities))?;
            plan_get(c, id)
        })
        .await
    }

    async fn plans(&self) -> Result<Vec<Plan>> {
        self.read(|c| {
            let ids: Vec<i64> = c
                .prepare_cached("SELECT id FROM plans ORDER BY id")
                .map_err(be)?
                .query_map([], |r| r.get(0))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            ids.into_iter().map(|id| plan_get(c, id)).collect()
        })
        .await
    }

    async fn plan(&self, id: i64) -> Result<Plan> {
        self.read(move |c| plan_get(c, id)).await
    }

    async fn plan_grids(&self, id: i64) -> Result<Vec<GridRecord>> {
        self.read(move |c| {
            plan_exists(c, id)?;
            grid_records(
                c,
                &format!("SELECT {GRID_RECORD} FROM grids WHERE plan_id = ?1 ORDER BY fid"),
                rusqlite::params![id],
            )
        })
        .await
    }

    async fn plan_community_grids(&self, id: i64, community: &str) -> Result<Vec<GridRecord>> {
        let community = community.to_string();
        self.read(move |c| {
            plan_exists(c, id)?;
            grid_records(
                c,
                &format!(
                    "SELECT {GRID_RECORD} FROM grids WHERE community = ?2 AND plan_id = ?1 ORDER BY fid"
                ),
                rusqlite::params![id, community],
            )
        })
        .await
    }

    async fn plan_assignment_of(
        &self,
        id: i64,
        buildings: &[String],
    ) -> Result<Vec<(String, String)>> {
        let buildings = buildings.to_vec();
        self.read(move |c| {
            plan_exists(c, id)?;
            let mut s = c
                .prepare_cached(
                    "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = ?1 AND building_id = ?2",
                )
                .map_err(be)?;
            let mut out = Vec::new();
            for b in &buildings {
                if let Some(row) = s
                    .query_row(rusqlite::params![id, b], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(be)?
                {
                    out.push(row);
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
        .await
    }

    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>> {
        self.read(move |c| {
            plan_exists(c, id)?;
            c.prepare_cached(
                "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = ?1 ORDER BY building_id",
            )
            .map_err(be)?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
        .await
    }

    async fn publish_plan(
        &self,
        id: i64,
        valid_from: i64,
        expected_version: Option<i64>,
        who: &str,
        reasons: &crate::store::Reasons,
    ) -> Result<Plan> {
        let who = who.to_string();
        let reasons = reasons.clone();
        self.write(move |c| {
            let p = plan_get(c, id)?;
            crate::store::check_publishable(&p, expected_version)?;
            let out: Vec<(String, String, u64)> = c
                .prepare_cached(
                    "SELECT code, band, households FROM grids WHERE plan_id = ?1 AND band != 'in' ORDER BY code",
                )
                .map_err(be)?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64)))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            let register = crate::store::exception_register(id, &out, &reasons)?;
            let vf = ts_text(valid_from);
            let prev = in_force_elsewhere(c, id, &p.communities, &vf)?;
            let starts = prev
                .iter()
                .map(|(pid, from)| Ok((*pid, text_ts(from)?)))
                .collect::<Result<Vec<_>>>()?;
            crate::store::check_not_before(&starts, valid_from)?;
            close_in_force_elsewhere(c, id, &p.communities, &vf)?;
            c.execute(
                "UPDATE grids SET valid_from = ?2, valid_to = NULL WHERE plan_id = ?1",
                params![id, vf],
            )
            .map_err(be)?;
            let t = ts_text(now());
            c.execute(
                "UPDATE plans SET status = 'published', valid_from = ?2, published_at = ?3, version = version + 1 WHERE id = ?1",
                params![id, vf, t],
            )
            .map_err(be)?;
            retire_closed(c, &prev)?;
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO plan_exceptions (plan_id, grid_code, band, households, reason, who, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(be)?;
            for (code, band, hh, reason) in &register {
                ins.execute(params![id, code, band, *hh as i64, reason, who, t])
                    .map_err(be)?;
            }
            let retired: Vec<i64> = prev.iter().map(|p| p.0).collect();
            let (target, detail) =
                crate::store::publish_detail(id, valid_from, &retired, register.len());
            audit_in(c, &who, "publish_plan", &target, &detail)?;
            plan_get(c, id)
        })
        .await
    }

    async fn plan_exceptions(&self, id: i64) -> Result<Vec<crate::store::ExceptionRecord>> {
        self.read(move |c| {
            plan_exists(c, id)?;
            let rows: Vec<(String, String, i64, String, String, String)> = c
                .prepare_cached(
                    "SELECT grid_code, band, households, reason, who, at FROM plan_exceptions WHERE plan_id = ?1 ORDER BY grid_code",
                )
                .map_err(be)?
                .query_map([id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            rows.into_iter()
                .map(|(grid, band, hh, reason, who, at)| {
                    Ok(crate::store::ExceptionRecord {
                        grid,
                        band,
                        households: hh.max(0) as u64,
                        reason,
                        who,
                        at: text_ts(&at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()> {
        let (code, who) = (grid_code.to_string(), who.to_string());
        self.write(move |c| {
            match &worker {
                Some(w) => c
                    .execute(
                        "INSERT INTO grid_workers (grid_code, name, phone, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(grid_code) DO UPDATE SET name = excluded.name, phone = excluded.phone, updated_at = excluded.updated_at",
                        params![code, w.name, w.phone, ts_text(now())],
                    )
                    .map_err(be)?,
                None => c
                    .execute("DELETE FROM grid_workers WHERE grid_code = ?1", [&code])
                    .map_err(be)?,
            };
            audit_in(c, &who, "set_worker", &format!("grid {code}"), &worker.as_ref().map_or("removed".into(), |w| w.name.clone()))
        })
        .await
    }

    async fn worker(&self, grid_code: &str) -> Result<Option<Worker>> {
        let code = grid_code.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT name, phone FROM grid_workers WHERE grid_code = ?1")
                .map_err(be)?
                .query_row([&code], |r| {
                    Ok(Worker {
                        name: r.get(0)?,
                        phone: r.get(1)?,
                    })
                })
                .optional()
                .map_err(be)
        })
        .await
    }

    async fn set_worker_photo(
        &self,
        grid_code: &str,
        photo: Option<Vec<u8>>,
        who: &str,
    ) -> Result<()> {
        let (code, who) = (grid_code.to_string(), who.to_string());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE grid_workers SET photo = ?2, updated_at = ?3 WHERE grid_code = ?1",
                    params![code, photo, ts_text(now())],
                )
                .map_err(be)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "grid worker",
                    id: code.to_string(),
                });
            }
            let detail = photo
                .as_ref()
                .map_or("removed".into(), |p| format!("{} bytes", p.len()));
            audit_in(
                c,
                &who,
                "set_worker_photo",
                &format!("grid {code}"),
                &detail,
            )
        })
        .await
    }

    async fn worker_photo(&self, grid_code: &str) -> Result<Option<Vec<u8>>> {
        let code = grid_code.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT photo FROM grid_workers WHERE grid_code = ?1")
                .map_err(be)?
                .query_row([&code], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()
                .map(Option::flatten)
                .map_err(be)
        })
        .await
    }
}
