//! Plan editing in the GeoPackage: fabrics, edits applied in one transaction, the edit log.

use super::plans::{insert_grids, plan_exists, plan_get};
use super::reference::touch;
use super::*;
use crate::store::{EditLog, EditRecord, FabricRow, PlanEdit, check_editable};

/// Write the log entry of an edit (checked against the log's current state).
/// Whether the plan keeps a fabric for the community.
fn has_fabric(c: &Connection, plan: i64, community: &str) -> Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM plan_fabrics WHERE plan_id = ?1 AND community = ?2)",
        params![plan, community],
        |r| r.get(0),
    )
    .map_err(be)
}

fn log_edit(c: &Connection, plan: i64, e: &PlanEdit) -> Result<(String, i64)> {
    match &e.log {
        EditLog::Append {
            op,
            reason,
            summary,
            before,
            after,
        } => {
            c.execute(
                "UPDATE plan_edits SET status = 'discarded' WHERE plan_id = ?1 AND status = 'undone'",
                [plan],
            )
            .map_err(be)?;
            let seq: i64 = c
                .query_row(
                    "SELECT coalesce(max(seq), 0) + 1 FROM plan_edits WHERE plan_id = ?1",
                    [plan],
                    |r| r.get(0),
                )
                .map_err(be)?;
            c.execute(
                "INSERT INTO plan_edits (plan_id, seq, at, who, community, op, reason, summary, status, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'applied', ?9, ?10)",
                params![plan, seq, ts_text(now()), e.who, e.community, op.to_string(), reason, summary, before, after],
            )
            .map_err(be)?;
            Ok((format!("edit {seq}: {summary}"), seq))
        }
        EditLog::Undo { seq } | EditLog::Redo { seq } => {
            let (from, to, what) = if matches!(e.log, EditLog::Undo { .. }) {
                ("applied", "undone", "undo")
            } else {
                ("undone", "applied", "redo")
            };
            let n = c
                .execute(
                    "UPDATE plan_edits SET status = ?3 WHERE plan_id = ?1 AND seq = ?2 AND status = ?4",
                    params![plan, seq, to, from],
                )
                .map_err(be)?;
            if n != 1 {
                return Err(StoreError::Conflict(format!(
                    "plan {plan}: edit {seq} is not {from}; nothing to {what}"
                )));
            }
            Ok((format!("{what} of edit {seq}"), *seq))
        }
    }
}

#[async_trait]
impl Edits for GpkgStore {
    async fn plan_fabric(&self, plan: i64, community: &str) -> Result<Option<FabricRow>> {
        let community = community.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT b.fabric, s.state FROM plan_fabrics f JOIN plan_states s USING (plan_id, community)
                 JOIN fabric_blobs b ON b.id = f.blob WHERE f.plan_id = ?1 AND f.community = ?2",
            )
            .map_err(be)?
            .query_row(params![plan, community], |r| {
                Ok(FabricRow {
                    fabric: r.get(0)?,
                    state: r.get(1)?,
                })
            })
            .optional()
            .map_err(be)
        })
        .await
    }

    async fn plan_state(&self, plan: i64, community: &str) -> Result<Option<String>> {
        let community = community.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT state FROM plan_states WHERE plan_id = ?1 AND community = ?2")
                .map_err(be)?
                .query_row(params![plan, community], |r| r.get(0))
                .optional()
                .map_err(be)
        })
        .await
    }

    async fn save_plan_fabric(&self, plan: i64, community: &str, row: FabricRow) -> Result<()> {
        let community = community.to_string();
        self.write(move |c| {
            plan_exists(c, plan)?;
            // (a fabric once kept never changes: a second save leaves the first)
            let has = has_fabric(c, plan, &community)?;
            if !has {
                c.execute(
                    "INSERT INTO fabric_blobs (fabric) VALUES (?1)",
                    params![row.fabric],
                )
                .map_err(be)?;
                c.execute(
                    "INSERT INTO plan_fabrics (plan_id, community, blob) VALUES (?1, ?2, last_insert_rowid())",
                    params![plan, community],
                )
                .map_err(be)?;
            }
            c.execute(
                "INSERT INTO plan_states (plan_id, community, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plan_id, community) DO NOTHING",
                params![plan, community, row.state],
            )
            .map_err(be)?;
            Ok(())
        })
        .await
    }

    async fn copy_plan_fabric(
        &self,
        from: i64,
        to: i64,
        community: &str,
        state: &str,
    ) -> Result<bool> {
        let (community, state) = (community.to_string(), state.to_string());
        self.write(move |c| {
            plan_exists(c, to)?;
            // (in the writer's savepoint: both rows or neither)
            let has = has_fabric(c, from, &community)?;
            if !has {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO plan_fabrics (plan_id, community, blob)
                 SELECT ?2, community, blob FROM plan_fabrics WHERE plan_id = ?1 AND community = ?3
                 ON CONFLICT (plan_id, community) DO NOTHING",
                params![from, to, community],
            )
            .map_err(be)?;
            c.execute(
                "INSERT INTO plan_states (plan_id, community, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plan_id, community) DO NOTHING",
                params![to, community, state],
            )
            .map_err(be)?;
            Ok(true)
        })
        .await
    }

    async fn apply_plan_edit(&self, plan: i64, edit: PlanEdit) -> Result<(Plan, i64)> {
        self.write(move |c| {
            let p = plan_get(c, plan)?;
            check_editable(&p, edit.expected_version)?;
            let n = c
                .execute(
                    "UPDATE plan_states SET state = ?3 WHERE plan_id = ?1 AND community = ?2",
                    params![plan, edit.community, edit.state],
                )
                .map_err(be)?;
            if n != 1 {
                return Err(StoreError::Invalid(format!(
                    "plan {plan}: community {} has no fabric yet",
                    edit.community
                )));
            }
            let mut del = c
                .prepare_cached("DELETE FROM grids WHERE plan_id = ?1 AND code = ?2")
                .map_err(be)?;
            for code in edit
                .delete_grids
                .iter()
                .chain(edit.put_grids.iter().map(|g| &g.code))
            {
                del.execute(params![plan, code]).map_err(be)?;
            }
            insert_grids(c, plan, &edit.put_grids)?;
            let mut up = c
                .prepare_cached(
                    "INSERT INTO plan_assignments (plan_id, building_id, grid_code) VALUES (?1, ?2, ?3)
                     ON CONFLICT (plan_id, building_id) DO UPDATE SET grid_code = excluded.grid_code",
                )
                .map_err(be)?;
            for (b, g) in &edit.assignment {
                up.execute(params![plan, b, g]).map_err(be)?;
            }
            let (detail, seq) = log_edit(c, plan, &edit)?;
            c.execute(
                "UPDATE plans SET version = version + 1 WHERE id = ?1",
                [plan],
            )
            .map_err(be)?;
            touch(c, "grids")?;
            audit_in(c, &edit.who, "edit_plan", &format!("plan {plan}"), &detail)?;
            Ok((plan_get(c, plan)?, seq))
        })
        .await
    }

    async fn plan_edits(&self, plan: i64) -> Result<Vec<EditRecord>> {
        self.read(move |c| {
            plan_exists(c, plan)?;
            edit_records(
                c,
                &format!("SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = ?1 ORDER BY seq"),
                plan,
            )
        })
        .await
    }

    async fn plan_edit_next(&self, plan: i64, redo: bool) -> Result<Option<EditRecord>> {
        self.read(move |c| {
            plan_exists(c, plan)?;
            let sql = if redo {
                format!(
                    "SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = ?1 AND status = 'undone' ORDER BY seq LIMIT 1"
                )
            } else {
                format!(
                    "SELECT {EDIT_RECORD} FROM plan_edits WHERE plan_id = ?1 AND status = 'applied' ORDER BY seq DESC LIMIT 1"
                )
            };
            Ok(edit_records(c, &sql, plan)?.pop())
        })
        .await
    }
}

/// The columns of an [`EditRecord`], in the order [`edit_records`] reads them.
const EDIT_RECORD: &str = "seq, at, who, community, op, reason, summary, status, before, after";

/// The edits a query selecting [`EDIT_RECORD`] of plan `?1` finds.
fn edit_records(c: &Connection, sql: &str, plan: i64) -> Result<Vec<EditRecord>> {
    let mut s = c.prepare_cached(sql).map_err(be)?;
    let mut rows = s.query([plan]).map_err(be)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        let at: String = r.get(1).map_err(be)?;
        let op: String = r.get(4).map_err(be)?;
        out.push(EditRecord {
            seq: r.get(0).map_err(be)?,
            at: text_ts(&at)?,
            who: r.get(2).map_err(be)?,
            community: r.get(3).map_err(be)?,
            op: serde_json::from_str(&op).unwrap_or(Value::Null),
            reason: r.get(5).map_err(be)?,
            summary: r.get(6).map_err(be)?,
            status: r.get(7).map_err(be)?,
            before: r.get(8).map_err(be)?,
            after: r.get(9).map_err(be)?,
        });
    }
    Ok(out)
}
