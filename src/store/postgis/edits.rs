//! Plan editing in PostGIS: fabrics, edits applied in one transaction (the plan row locked),
//! the edit log.

use super::plans::{insert_grids, plan_exists, plan_get};
use super::*;
use crate::store::{EditLog, EditRecord, FabricRow, PlanEdit, check_editable};

/// Write the log entry of an edit (checked against the log's current state).
/// Whether the plan keeps a fabric for the community.
async fn has_fabric(c: &impl GenericClient, plan: i64, community: &str) -> Result<bool> {
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM plan_fabrics WHERE plan_id = $1 AND community = $2)",
        &[&plan, &community],
    )
    .await
    .map_err(pe)?
    .get::<_, bool>(0))
}

async fn log_edit(c: &impl GenericClient, plan: i64, e: &PlanEdit) -> Result<(String, i64)> {
    match &e.log {
        EditLog::Append {
            op,
            reason,
            summary,
            before,
            after,
        } => {
            c.execute(
                "UPDATE plan_edits SET status = 'discarded' WHERE plan_id = $1 AND status = 'undone'",
                &[&plan],
            )
            .await
            .map_err(pe)?;
            let seq: i32 = c
                .query_one(
                    "SELECT coalesce(max(seq), 0) + 1 FROM plan_edits WHERE plan_id = $1",
                    &[&plan],
                )
                .await
                .map_err(pe)?
                .get(0);
            c.execute(
                "INSERT INTO plan_edits (plan_id, seq, at, who, community, op, reason, summary, status, before, after)
                 VALUES ($1, $2, now(), $3, $4, $5, $6, $7, 'applied', $8, $9)",
                &[&plan, &seq, &e.who, &e.community, &op.to_string(), reason, summary, before, after],
            )
            .await
            .map_err(pe)?;
            Ok((format!("edit {seq}: {summary}"), i64::from(seq)))
        }
        EditLog::Undo { seq } | EditLog::Redo { seq } => {
            let (from, to, what) = if matches!(e.log, EditLog::Undo { .. }) {
                ("applied", "undone", "undo")
            } else {
                ("undone", "applied", "redo")
            };
            let s = i32::try_from(*seq).unwrap_or(i32::MAX);
            let n = c
                .execute(
                    "UPDATE plan_edits SET status = $3 WHERE plan_id = $1 AND seq = $2 AND status = $4",
                    &[&plan, &s, &to, &from],
                )
                .await
                .map_err(pe)?;
            if n != 1 {
                return Err(StoreError::Conflict(format!(
                    "plan {plan}: edit {seq} is not {from}; nothing to {what}"
                )));
            }
            Ok((format!("{what} of edit {seq}"), *seq))
        }
    }
}

/// An edit's grids (removed, then written anew) and its buildings' assignments.
async fn write_edit_rows(tx: &impl GenericClient, plan: i64, edit: &PlanEdit) -> Result<()> {
    let gone: Vec<&str> = edit
        .delete_grids
        .iter()
        .chain(edit.put_grids.iter().map(|g| &g.code))
        .map(String::as_str)
        .collect();
    tx.execute(
        "DELETE FROM grids WHERE plan_id = $1 AND code = ANY($2)",
        &[&plan, &gone],
    )
    .await
    .map_err(pe)?;
    insert_grids(tx, plan, &edit.put_grids).await?;
    if !edit.assignment.is_empty() {
        let (bs, gs): (Vec<&str>, Vec<&str>) = edit
            .assignment
            .iter()
            .map(|(b, g)| (b.as_str(), g.as_str()))
            .unzip();
        tx.execute(
            "INSERT INTO plan_assignments (plan_id, building_id, grid_code) SELECT $1, b, g FROM unnest($2::text[], $3::text[]) AS x(b, g)
             ON CONFLICT (plan_id, building_id) DO UPDATE SET grid_code = excluded.grid_code",
            &[&plan, &bs, &gs],
        )
        .await
        .map_err(pe)?;
    }
    Ok(())
}

#[async_trait]
impl Edits for PostgisStore {
    async fn plan_fabric(&self, plan: i64, community: &str) -> Result<Option<FabricRow>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT b.fabric, f.state FROM plan_fabrics f JOIN fabric_blobs b ON b.id = f.blob
                 WHERE f.plan_id = $1 AND f.community = $2",
                &[&plan, &community],
            )
            .await
            .map_err(pe)?
            .map(|r| FabricRow {
                fabric: r.get(0),
                state: r.get(1),
            }))
    }

    async fn plan_state(&self, plan: i64, community: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT state FROM plan_fabrics WHERE plan_id = $1 AND community = $2",
                &[&plan, &community],
            )
            .await
            .map_err(pe)?
            .map(|r| r.get(0)))
    }

    async fn save_plan_fabric(&self, plan: i64, community: &str, row: FabricRow) -> Result<()> {
        let mut client = self.client().await?;
        plan_exists(&client, plan).await?;
        // (a fabric once kept never changes: a second save leaves the first)
        let tx = client.transaction().await.map_err(pe)?;
        // (saves of one plan one at a time: no blob written for a row another save wrote)
        tx.execute("SELECT 1 FROM plans WHERE id = $1 FOR UPDATE", &[&plan])
            .await
            .map_err(pe)?;
        let has = has_fabric(&tx, plan, community).await?;
        if !has {
            tx.execute(
                "WITH b AS (INSERT INTO fabric_blobs (fabric) VALUES ($3) RETURNING id)
                 INSERT INTO plan_fabrics (plan_id, community, blob, state) SELECT $1, $2, b.id, $4 FROM b
                 ON CONFLICT (plan_id, community) DO NOTHING",
                &[&plan, &community, &row.fabric, &row.state],
            )
            .await
            .map_err(pe)?;
        }
        tx.commit().await.map_err(pe)?;
        Ok(())
    }

    async fn copy_plan_fabric(
        &self,
        from: i64,
        to: i64,
        community: &str,
        state: &str,
    ) -> Result<bool> {
        let client = self.client().await?;
        plan_exists(&client, to).await?;
        let has = has_fabric(&client, from, community).await?;
        if !has {
            return Ok(false);
        }
        client
            .execute(
                "INSERT INTO plan_fabrics (plan_id, community, blob, state)
                 SELECT $2, community, blob, $4 FROM plan_fabrics WHERE plan_id = $1 AND community = $3
                 ON CONFLICT (plan_id, community) DO NOTHING",
                &[&from, &to, &community, &state],
            )
            .await
            .map_err(pe)?;
        Ok(true)
    }

    async fn apply_plan_edit(&self, plan: i64, edit: PlanEdit) -> Result<(Plan, i64)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        tx.execute("SELECT 1 FROM plans WHERE id = $1 FOR UPDATE", &[&plan])
            .await
            .map_err(pe)?;
        let p = plan_get(&tx, plan).await?;
        check_editable(&p, edit.expected_version)?;
        let n = tx
            .execute(
                "UPDATE plan_fabrics SET state = $3 WHERE plan_id = $1 AND community = $2",
                &[&plan, &edit.community, &edit.state],
            )
            .await
            .map_err(pe)?;
        if n != 1 {
            return Err(StoreError::Invalid(format!(
                "plan {plan}: community {} has no fabric yet",
                edit.community
            )));
        }
        write_edit_rows(&tx, plan, &edit).await?;
        let (detail, seq) = log_edit(&tx, plan, &edit).await?;
        tx.execute(
            "UPDATE plans SET version = version + 1 WHERE id = $1",
            &[&plan],
        )
        .await
        .map_err(pe)?;
        audit_in(
            &tx,
            &edit.who,
            "edit_plan",
            &format!("plan {plan}"),
            &detail,
        )
        .await?;
        let p = plan_get(&tx, plan).await?;
        tx.commit().await.map_err(pe)?;
        Ok((p, seq))
    }

    async fn plan_edits(&self, plan: i64) -> Result<Vec<EditRecord>> {
        let client = self.client().await?;
        plan_exists(&client, plan).await?;
        let rows = client
            .query(
                &format!("SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = $1 ORDER BY seq"),
                &[&plan],
            )
            .await
            .map_err(pe)?;
        Ok(rows.iter().map(edit_record).collect())
    }

    async fn plan_edit_next(&self, plan: i64, redo: bool) -> Result<Option<EditRecord>> {
        let client = self.client().await?;
        plan_exists(&client, plan).await?;
        let sql = if redo {
            format!(
                "SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = $1 AND status = 'undone' ORDER BY seq LIMIT 1"
            )
        } else {
            format!(
                "SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = $1 AND status = 'applied' ORDER BY seq DESC LIMIT 1"
            )
        };
        let rows = client.query(&sql, &[&plan]).await.map_err(pe)?;
        Ok(rows.first().map(edit_record))
    }
}

/// The columns of an [`EditRecord`], in the order [`edit_record`] reads them.
const EDIT_RECORD: &str = "seq, at, who, community, op, reason, summary, status, before, after";

fn edit_record(r: &tokio_postgres::Row) -> EditRecord {
    EditRecord {
        seq: i64::from(r.get::<_, i32>(0)),
        at: r.get::<_, DateTime<Utc>>(1).timestamp(),
        who: r.get(2),
        community: r.get(3),
        op: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(Value::Null),
        reason: r.get(5),
        summary: r.get(6),
        status: r.get(7),
        before: r.get(8),
        after: r.get(9),
    }
}
