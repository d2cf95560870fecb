//! Plans and grid workers in PostGIS: drafts, publication with version checks, retirement.

use super::*;
use crate::store::JobRecord;

/// Write `grids` as rows of plan `id`.
pub(super) async fn insert_grids(
    tx: &impl GenericClient,
    id: i64,
    grids: &[crate::store::GridRecord],
) -> Result<()> {
    let st = tx
        .prepare(
            "INSERT INTO grids (plan_id, code, name, community, street, households, buildings, weight, band, geom)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ST_Multi(ST_GeomFromWKB($10, 4326)))",
        )
        .await
        .map_err(pe)?;
    for g in grids {
        tx.execute(
            &st,
            &[
                &id,
                &g.code,
                &g.name,
                &g.community,
                &g.street,
                &(i64::try_from(g.households).unwrap_or(i64::MAX)),
                &(i64::try_from(g.buildings).unwrap_or(i64::MAX)),
                &g.weight,
                &g.band,
                &mp_wkb(&g.geometry),
            ],
        )
        .await
        .map_err(pe)?;
    }
    Ok(())
}

/// That plan `id` exists (`NotFound` otherwise), without reading its figures.
pub(super) async fn plan_exists(c: &impl GenericClient, id: i64) -> Result<()> {
    c.query_opt("SELECT 1 FROM plans WHERE id = $1", &[&id])
        .await
        .map_err(pe)?
        .map(|_| ())
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })
}

pub(super) async fn plan_get(c: &impl GenericClient, id: i64) -> Result<Plan> {
    let r = c
        .query_opt(
            "SELECT id, status, communities, valid_from, valid_to, created_by, created_at, published_at, params, metrics, version,
               (SELECT count(*) FROM grids g WHERE g.plan_id = p.id), (SELECT coalesce(sum(households), 0)::bigint FROM grids g WHERE g.plan_id = p.id)
             FROM plans p WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(pe)?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })?;
    Ok(Plan {
        id: r.get(0),
        status: PlanStatus::parse(r.get::<_, &str>(1))?,
        communities: serde_json::from_value(r.get::<_, Value>(2)).unwrap_or_default(),
        valid_from: ts(r.get(3)),
        valid_to: ts(r.get(4)),
        created_by: r.get(5),
        created_at: r.get::<_, DateTime<Utc>>(6).timestamp(),
        published_at: ts(r.get(7)),
        params: r.get(8),
        metrics: r.get(9),
        version: r.get(10),
        grids: u64::try_from(r.get::<_, i64>(11)).unwrap_or(0),
        households: u64::try_from(r.get::<_, i64>(12)).unwrap_or(0),
    })
}

/// A job row (`id, state, done, total, plan, error, who, started, updated`).
fn job_row(r: &tokio_postgres::Row) -> JobRecord {
    JobRecord {
        id: r.get(0),
        state: r.get(1),
        done: r.get(2),
        total: r.get(3),
        plan: r.get(4),
        error: r.get(5),
        who: r.get(6),
        started: r.get::<_, DateTime<Utc>>(7).timestamp(),
        updated: r.get::<_, DateTime<Utc>>(8).timestamp(),
    }
}

const JOB_COLUMNS: &str = "id, state, done, total, plan, error, who, started, updated";

/// Put plan `id`'s grids in force from `vf` in place of the other plans' grids in
/// `communities`, and retire those of `prev_ids` left with no grid in force.
async fn switch_in_force(
    tx: &impl GenericClient,
    id: i64,
    vf: &DateTime<Utc>,
    communities: &[String],
    prev_ids: &[i64],
) -> Result<()> {
    tx.execute(
        "UPDATE grids SET valid_to = $2 WHERE plan_id != $1 AND valid_from IS NOT NULL
           AND (valid_to IS NULL OR valid_to > $2) AND community = ANY($3)",
        &[&id, vf, &communities],
    )
    .await
    .map_err(pe)?;
    tx.execute(
        "UPDATE grids SET valid_from = $2, valid_to = NULL WHERE plan_id = $1",
        &[&id, vf],
    )
    .await
    .map_err(pe)?;
    tx.execute(
        "UPDATE plans SET status = 'published', valid_from = $2, published_at = now(), version = version + 1 WHERE id = $1",
        &[&id, vf],
    )
    .await
    .map_err(pe)?;
    tx.execute(
        "UPDATE plans p SET status = 'retired', valid_to = (SELECT max(valid_to) FROM grids WHERE plan_id = p.id), version = version + 1
         WHERE p.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM grids g WHERE g.plan_id = p.id AND g.valid_to IS NULL)",
        &[&prev_ids],
    )
    .await
    .map_err(pe)?;
    Ok(())
}

#[async_trait]
impl Plans for PostgisStore {
    async fn create_job(&self, total: i64, who: &str) -> Result<JobRecord> {
        let r = self
            .client()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO wangge_jobs (state, total, who) VALUES ('running', $1, $2) RETURNING {JOB_COLUMNS}"
                ),
                &[&total, &who],
            )
            .await
            .map_err(pe)?;
        Ok(job_row(&r))
    }

    async fn update_job(
        &self,
        id: i64,
        done: i64,
        state: &str,
        plan: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE wangge_jobs SET done = $2, state = $3, plan = $4, error = $5, updated = now() WHERE id = $1",
                &[&id, &done, &state, &plan, &error],
            )
            .await
            .map_err(pe)?;
        Ok(())
    }

    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM wangge_jobs WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pe)?
            .map(|r| job_row(&r)))
    }

    async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let comms = read_communities(&tx).await?;
        check_plan(&plan, &comms)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO plans (status, communities, created_by, created_at, params, metrics) VALUES ('draft', $1, $2, now(), $3, $4) RETURNING id",
                &[&serde_json::to_value(&plan.communities).unwrap_or(Value::Null), &plan.created_by, &plan.params, &plan.metrics],
            )
            .await
            .map_err(pe)?
            .get(0);
        insert_grids(&tx, id, &plan.grids).await?;
        if !plan.assignment.is_empty() {
            let (bs, gs): (Vec<&str>, Vec<&str>) = plan
                .assignment
                .iter()
                .map(|(b, g)| (b.as_str(), g.as_str()))
                .unzip();
            tx.execute(
                "INSERT INTO plan_assignments (plan_id, building_id, grid_code) SELECT $1, b, g FROM unnest($2::text[], $3::text[]) AS x(b, g)",
                &[&id, &bs, &gs],
            )
            .await
            .map_err(pe)?;
        }
        audit_in(
            &tx,
            &plan.created_by,
            "create_plan",
            &format!("plan {id}"),
            &format!(
                "{} grids, communities {:?}",
                plan.grids.len(),
                plan.communities
            ),
        )
        .await?;
        let p = plan_get(&tx, id).await?;
        tx.commit().await.map_err(pe)?;
        Ok(p)
    }

    async fn plans(&self) -> Result<Vec<Plan>> {
        let client = self.client().await?;
        let ids: Vec<i64> = client
            .query("SELECT id FROM plans ORDER BY id", &[])
            .await
            .map_err(pe)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            out.push(plan_get(&client, id).await?);
        }
        Ok(out)
    }

    async fn plan(&self, id: i64) -> Result<Plan> {
        plan_get(&self.client().await?, id).await
    }

    async fn plan_grids(&self, id: i64) -> Result<Vec<GridRecord>> {
        let client = self.client().await?;
        plan_exists(&client, id).await?;
        let rows = client
            .query(
                &format!("SELECT {GRID_RECORD} FROM grids WHERE plan_id = $1 ORDER BY fid"),
                &[&id],
            )
            .await
            .map_err(pe)?;
        rows.iter().map(grid_record).collect()
    }

    async fn plan_community_grids(&self, id: i64, community: &str) -> Result<Vec<GridRecord>> {
        let client = self.client().await?;
        plan_exists(&client, id).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {GRID_RECORD} FROM grids WHERE plan_id = $1 AND community = $2 ORDER BY fid"
                ),
                &[&id, &community],
            )
            .await
            .map_err(pe)?;
        rows.iter().map(grid_record).collect()
    }

    async fn plan_assignment_of(
        &self,
        id: i64,
        buildings: &[String],
    ) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        plan_exists(&client, id).await?;
        Ok(client
            .query(
                "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = $1 AND building_id = ANY($2) ORDER BY building_id COLLATE \"C\"",
                &[&id, &buildings],
            )
            .await
            .map_err(pe)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        plan_exists(&client, id).await?;
        Ok(client
            .query(
                "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = $1 ORDER BY building_id COLLATE \"C\"",
                &[&id],
            )
            .await
            .map_err(pe)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn publish_plan(
        &self,
        id: i64,
        valid_from: i64,
        expected_version: Option<i64>,
        who: &str,
        reasons: &crate::store::Reasons,
    ) -> Result<Plan> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        // serialise publications
        tx.execute("SELECT pg_advisory_xact_lock(727311)", &[])
            .await
            .map_err(pe)?;
        let p = plan_get(&tx, id).await?;
        crate::store::check_publishable(&p, expected_version)?;
        let out: Vec<(String, String, u64)> = tx
            .query(
                "SELECT code, band, households FROM grids WHERE plan_id = $1 AND band != 'in' ORDER BY code",
                &[&id],
            )
            .await
            .map_err(pe)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2).max(0) as u64))
            .collect();
        let register = crate::store::exception_register(id, &out, reasons)?;
        let vf = dt(valid_from);
        let prev = tx
            .query(
                "SELECT plan_id, min(valid_from) FROM grids WHERE plan_id != $1 AND valid_from IS NOT NULL
                   AND (valid_to IS NULL OR valid_to > $2) AND community = ANY($3) GROUP BY plan_id ORDER BY plan_id",
                &[&id, &vf, &p.communities],
            )
            .await
            .map_err(pe)?;
        let starts: Vec<(i64, i64)> = prev
            .iter()
            .map(|r| (r.get(0), r.get::<_, DateTime<Utc>>(1).timestamp()))
            .collect();
        crate::store::check_not_before(&starts, valid_from)?;
        let prev_ids: Vec<i64> = starts.iter().map(|s| s.0).collect();
        switch_in_force(&tx, id, &vf, &p.communities, &prev_ids).await?;
        for (code, band, hh, reason) in &register {
            tx.execute(
                "INSERT INTO plan_exceptions (plan_id, grid_code, band, households, reason, who, at) VALUES ($1, $2, $3, $4, $5, $6, now())",
                &[&id, code, band, &(*hh as i64), reason, &who],
            )
            .await
            .map_err(pe)?;
        }
        let (target, detail) =
            crate::store::publish_detail(id, valid_from, &prev_ids, register.len());
        audit_in(&tx, who, "publish_plan", &target, &detail).await?;
        let p = plan_get(&tx, id).await?;
        tx.commit().await.map_err(pe)?;
        Ok(p)
    }

    async fn plan_exceptions(&self, id: i64) -> Result<Vec<crate::store::ExceptionRecord>> {
        let client = self.client().await?;
        plan_exists(&client, id).await?;
        let rows = client
            .query(
                "SELECT grid_code, band, households, reason, who, at FROM plan_exceptions WHERE plan_id = $1 ORDER BY grid_code",
                &[&id],
            )
            .await
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| crate::store::ExceptionRecord {
                grid: r.get(0),
                band: r.get(1),
                households: r.get::<_, i64>(2).max(0) as u64,
                reason: r.get(3),
                who: r.get(4),
                at: r.get::<_, DateTime<Utc>>(5).timestamp(),
            })
            .collect())
    }

    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        match &worker {
            Some(w) => tx
                .execute(
                    "INSERT INTO grid_workers (grid_code, name, phone, updated_at) VALUES ($1, $2, $3, now())
                     ON CONFLICT (grid_code) DO UPDATE SET name = excluded.name, phone = excluded.phone, updated_at = excluded.updated_at",
                    &[&grid_code, &w.name, &w.phone],
                )
                .await,
            None => {
                tx.execute("DELETE FROM grid_workers WHERE grid_code = $1", &[&grid_code])
                    .await
            }
        }
        .map_err(pe)?;
        audit_in(
            &tx,
            who,
            "set_worker",
            &format!("grid {grid_code}"),
            &worker.as_ref().map_or("removed".into(), |w| w.name.clone()),
        )
        .await?;
        tx.commit().await.map_err(pe)
    }

    async fn worker(&self, grid_code: &str) -> Result<Option<Worker>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT name, phone FROM grid_workers WHERE grid_code = $1",
                &[&grid_code],
            )
            .await
            .map_err(pe)?
            .map(|r| Worker {
                name: r.get(0),
                phone: r.get(1),
            }))
    }

    async fn set_worker_photo(
        &self,
        grid_code: &str,
        photo: Option<Vec<u8>>,
        who: &str,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let n = tx
            .execute(
                "UPDATE grid_workers SET photo = $2, updated_at = now() WHERE grid_code = $1",
                &[&grid_code, &photo],
            )
            .await
            .map_err(pe)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "grid worker",
                id: grid_code.to_string(),
            });
        }
        let detail = photo
            .as_ref()
            .map_or("removed".into(), |p| format!("{} bytes", p.len()));
        audit_in(
            &tx,
            who,
            "set_worker_photo",
            &format!("grid {grid_code}"),
            &detail,
        )
        .await?;
        tx.commit().await.map_err(pe)
    }

    async fn worker_photo(&self, grid_code: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT photo FROM grid_workers WHERE grid_code = $1",
                &[&grid_code],
            )
            .await
            .map_err(pe)?
            .and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }
}

/// The columns of a [`GridRecord`], in the order [`grid_record`] reads them.
const GRID_RECORD: &str = "code, name, community, street, households, buildings, weight, band, \
     ST_AsBinary(geom), valid_from, valid_to";

fn grid_record(r: &tokio_postgres::Row) -> Result<GridRecord> {
    Ok(GridRecord {
        code: r.get(0),
        name: r.get(1),
        community: r.get(2),
        street: r.get(3),
        households: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
        buildings: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
        weight: r.get(6),
        band: r.get(7),
        geometry: mp_of(r.get::<_, &[u8]>(8))?,
        valid_from: ts(r.get(9)),
        valid_to: ts(r.get(10)),
    })
}
