//! API tokens and the audit log in the GeoPackage.

use super::*;

pub(super) fn token_get(
    c: &Connection,
    cond: &str,
    v: &dyn rusqlite::ToSql,
) -> Result<Option<TokenRecord>> {
    type Row = (i64, String, Option<String>, String, String, Option<String>);
    let row: Option<Row> = c
        .prepare_cached(&format!(
            "SELECT id, role, scope, label, created_at, revoked_at FROM api_tokens WHERE {cond}"
        ))
        .map_err(be)?
        .query_row([v], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()
        .map_err(be)?;
    row.map(|r| {
        Ok(TokenRecord {
            id: r.0,
            role: r.1,
            scope: r.2,
            label: r.3,
            created_at: text_ts(&r.4)?,
            revoked_at: r.5.as_deref().map(text_ts).transpose()?,
        })
    })
    .transpose()
}

#[async_trait]
impl Auth for GpkgStore {
    async fn create_token(
        &self,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        label: &str,
        who: &str,
    ) -> Result<TokenRecord> {
        let (hash, role, scope, label, who) = (
            hash.to_string(),
            role.to_string(),
            scope.map(str::to_string),
            label.to_string(),
            who.to_string(),
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_tokens (token_hash, role, scope, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, role, scope, label, ts_text(now())],
            )
            .map_err(be)?;
            let id = c.last_insert_rowid();
            audit_in(c, &who, "create_token", &format!("token {id}"), &format!("role {role}, scope {scope:?}"))?;
            token_get(c, "id = ?1", &id)?.ok_or(StoreError::NotFound { what: "token", id: id.to_string() })
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|c| {
            let ids: Vec<i64> = c
                .prepare_cached("SELECT id FROM api_tokens ORDER BY id")
                .map_err(be)?
                .query_map([], |r| r.get(0))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            Ok(ids
                .iter()
                .filter_map(|id| token_get(c, "id = ?1", id).ok().flatten())
                .collect())
        })
        .await
    }

    async fn revoke_token(&self, id: i64, who: &str) -> Result<()> {
        let who = who.to_string();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, ts_text(now())],
                )
                .map_err(be)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "active token",
                    id: id.to_string(),
                });
            }
            audit_in(c, &who, "revoke_token", &format!("token {id}"), "")
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let hash = hash.to_string();
        self.read(move |c| token_get(c, "token_hash = ?1", &hash))
            .await
    }

    async fn audit(&self, who: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        let (w, a, t, d) = (
            who.to_string(),
            action.to_string(),
            target.to_string(),
            detail.to_string(),
        );
        self.write(move |c| audit_in(c, &w, &a, &t, &d)).await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read(move |c| {
            type Row = (String, String, String, String, String, Option<String>);
            let rows: Vec<Row> = c
                .prepare_cached(
                    "SELECT at, who, action, target, detail, client FROM audit_log ORDER BY fid DESC LIMIT ?1",
                )
                .map_err(be)?
                .query_map([limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            rows.into_iter()
                .map(|r| {
                    Ok(AuditEntry {
                        at: text_ts(&r.0)?,
                        who: r.1,
                        action: r.2,
                        target: r.3,
                        detail: r.4,
                        client: r.5,
                    })
                })
                .collect()
        })
        .await
    }
}
