//! API tokens and the audit log in PostGIS.

use super::*;

pub(super) fn token_of(r: &tokio_postgres::Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        role: r.get(1),
        scope: r.get(2),
        label: r.get(3),
        created_at: r.get::<_, DateTime<Utc>>(4).timestamp(),
        revoked_at: ts(r.get(5)),
    }
}

#[async_trait]
impl Auth for PostgisStore {
    async fn create_token(
        &self,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        label: &str,
        who: &str,
    ) -> Result<TokenRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let r = tx
            .query_one(
                "INSERT INTO api_tokens (token_hash, role, scope, label, created_at) VALUES ($1, $2, $3, $4, now())
                 RETURNING id, role, scope, label, created_at, revoked_at",
                &[&hash, &role, &scope, &label],
            )
            .await
            .map_err(pe)?;
        let t = token_of(&r);
        audit_in(
            &tx,
            who,
            "create_token",
            &format!("token {}", t.id),
            &format!("role {role}, scope {scope:?}"),
        )
        .await?;
        tx.commit().await.map_err(pe)?;
        Ok(t)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, role, scope, label, created_at, revoked_at FROM api_tokens ORDER BY id",
                &[],
            )
            .await
            .map_err(pe)?
            .iter()
            .map(token_of)
            .collect())
    }

    async fn revoke_token(&self, id: i64, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await
            .map_err(pe)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "active token",
                id: id.to_string(),
            });
        }
        audit_in(&tx, who, "revoke_token", &format!("token {id}"), "").await?;
        tx.commit().await.map_err(pe)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT id, role, scope, label, created_at, revoked_at FROM api_tokens WHERE token_hash = $1",
                &[&hash],
            )
            .await
            .map_err(pe)?
            .map(|r| token_of(&r)))
    }

    async fn audit(&self, who: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        audit_in(&self.client().await?, who, action, target, detail).await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT at, who, action, target, detail, client FROM audit_log ORDER BY id DESC LIMIT $1",
                &[&(i64::try_from(limit).unwrap_or(i64::MAX))],
            )
            .await
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: r.get::<_, DateTime<Utc>>(0).timestamp(),
                who: r.get(1),
                action: r.get(2),
                target: r.get(3),
                detail: r.get(4),
                client: r.get(5),
            })
            .collect())
    }
}
