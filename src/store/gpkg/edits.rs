//! Plan editing in the GeoPackage: fabrics, edits applied in one transaction, the edit log.

use super::plans::{insert_grids, plan_get};
use super::reference::touch;
use super::*;
use crate::store::{EditLog, EditRecord, FabricRow, PlanEdit, check_editable};

/// Write the log entry of an edit (checked against the log's current state).
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
                "SELECT f.fabric, s.state FROM plan_fabrics f JOIN plan_states s USING (plan_id, community)
                 WHERE f.plan_id = ?1 AND f.community = ?2",
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
            plan_get(c, plan)?;
            c.execute(
                "INSERT INTO plan_fabrics (plan_id, community, fabric) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plan_id, community) DO NOTHING",
                params![plan, community, row.fabric],
            )
            .map_err(be)?;
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
            plan_get(c, plan)?;
            let mut s = c
                .prepare_cached(
                    "SELECT seq, at, who, community, op, reason, summary, status, before, after FROM plan_edits WHERE plan_id = ?1 ORDER BY seq",
                )
                .map_err(be)?;
            let rows: Vec<(i64, String, String, String, String, Option<String>, String, String, String, String)> = s
                .query_map([plan], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
                })
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            rows.into_iter()
                .map(|r| {
                    Ok(EditRecord {
                        seq: r.0,
                        at: text_ts(&r.1)?,
                        who: r.2,
                        community: r.3,
                        op: serde_json::from_str(&r.4).unwrap_or(Value::Null),
                        reason: r.5,
                        summary: r.6,
                        status: r.7,
                        before: r.8,
                        after: r.9,
                    })
                })
                .collect()
        })
        .await
    }
}
