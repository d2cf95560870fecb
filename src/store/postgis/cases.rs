//! Incidents and their append-only history in PostGIS; inserts pipelined through a few batch transactions (group commit).

use super::*;

/// a duplicate id inserts nothing and is reported as a conflict.
pub(super) async fn insert_case(
    c: &impl GenericClient,
    k: &Case,
    (who, client): &(String, Option<String>),
) -> Result<()> {
    let mut p = case_params(k);
    let h = &k.history;
    p.push(Box::new(
        (0..h.len())
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect::<Vec<i32>>(),
    ));
    p.push(Box::new(h.iter().map(|e| dt(e.at)).collect::<Vec<_>>()));
    p.push(Box::new(
        h.iter().map(|e| e.who.clone()).collect::<Vec<_>>(),
    ));
    p.push(Box::new(
        h.iter().map(|e| e.action.clone()).collect::<Vec<_>>(),
    ));
    p.push(Box::new(
        h.iter().map(|e| state_name(e.from)).collect::<Vec<_>>(),
    ));
    p.push(Box::new(
        h.iter().map(|e| state_name(e.to)).collect::<Vec<_>>(),
    ));
    p.push(Box::new(
        h.iter().map(|e| e.note.clone()).collect::<Vec<_>>(),
    ));
    p.push(Box::new(who.clone()));
    p.push(Box::new(k.category.clone()));
    p.push(Box::new(client.clone()));
    let refs: Vec<&(dyn ToSql + Sync)> = p
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let st = c
        .prepare_cached(&format!(
                "WITH i AS (
                   INSERT INTO incidents ({CASE_COLS}) VALUES ({CASE_VALUES})
                   ON CONFLICT (incident_id) DO NOTHING RETURNING incident_id
                 ), h AS (
                   INSERT INTO incident_history (incident_id, seq, at, who, action, from_state, to_state, note)
                   SELECT i.incident_id, x.seq, x.at, x.who, x.action, x.fs, x.ts, x.note
                   FROM i, unnest($22::int[], $23::timestamptz[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[])
                     AS x(seq, at, who, action, fs, ts, note)
                 ), a AS (
                   INSERT INTO audit_log (at, who, action, target, detail, client)
                   SELECT now(), $29, 'insert_incident', 'incident ' || i.incident_id, $30, $31 FROM i
                 )
                 SELECT count(*) FROM i"
            ))
        .await
        .map_err(pe)?;
    let n: i64 = c.query_one(&st, &refs).await.map_err(pe)?.get(0);
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "incident {} already exists",
            k.id
        )));
    }
    Ok(())
}

/// A case to insert, who inserts it and from which address, and where to answer.
pub(super) type InsertJob = (Case, (String, Option<String>), oneshot::Sender<Result<()>>);

/// Concurrent group-commit transactions: while one waits for its commit, the next fills.
pub(super) const BATCHERS: usize = 4;

/// Group commit of incident inserts: everything queued goes into one transaction.
pub(super) async fn insert_batcher(
    pool: Pool,
    rx: std::sync::Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<InsertJob>>>,
) {
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { break };
            let mut jobs = vec![first];
            while jobs.len() < 512 {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            jobs
        };
        let mut client = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                for (_, _, tx) in jobs {
                    let _ = tx.send(Err(StoreError::Unavailable(e.to_string())));
                }
                continue;
            }
        };
        // all inserts of the batch pipelined on one connection, one commit
        let mut results: Vec<Result<()>> = Vec::new();
        let commit = async {
            let tx = client.transaction().await.map_err(pe)?;
            results = futures_util::future::join_all(
                jobs.iter()
                    .map(|(case, who, _)| insert_case(&tx, case, who)),
            )
            .await;
            if let Some(Err(e)) = results
                .iter()
                .find(|r| matches!(r, Err(e) if !matches!(e, StoreError::Conflict(_))))
            {
                // an unexpected error aborted the transaction: nothing of the batch is kept
                return Err(e.clone());
            }
            tx.commit().await.map_err(pe)
        }
        .await;
        if commit.is_err() && jobs.len() > 1 {
            // one bad insert must not sink the others: each alone, in its own transaction
            for (case, who, reply) in jobs {
                let r = async {
                    let tx = client.transaction().await.map_err(pe)?;
                    insert_case(&tx, &case, &who).await?;
                    tx.commit().await.map_err(pe)
                }
                .await;
                let _ = reply.send(r);
            }
            continue;
        }
        for (i, (_, _, tx)) in jobs.into_iter().enumerate() {
            let r = match &commit {
                Err(e) => Err(e.clone()),
                Ok(()) => results.get(i).cloned().unwrap_or(Ok(())),
            };
            let _ = tx.send(r);
        }
    }
}

pub(super) const CASE_COLS: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, geom";
pub(super) const CASE_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, ST_SetSRID(ST_MakePoint($20, $21), 4326)";
pub(super) const CASE_SELECT: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, ST_X(geom), ST_Y(geom)";

pub(super) fn case_params(k: &Case) -> Vec<Box<dyn ToSql + Sync + Send>> {
    vec![
        Box::new(k.id.clone()),
        Box::new(k.category.clone()),
        Box::new(k.description.clone()),
        Box::new(parse_enum_name(&k.source)),
        Box::new(k.reporter.clone()),
        Box::new(serde_json::to_value(&k.media).unwrap_or(Value::Array(vec![]))),
        Box::new(dt(k.reported_at)),
        Box::new(k.grid.clone()),
        Box::new(k.community.clone()),
        Box::new(k.street.clone()),
        Box::new(state_name(k.state)),
        Box::new(parse_enum_name(&k.level)),
        Box::new(k.unit.clone()),
        Box::new(k.due_at.map(dt)),
        Box::new(k.closed_at.map(dt)),
        Box::new(i32::try_from(k.escalations).unwrap_or(i32::MAX)),
        Box::new(i32::try_from(k.returns).unwrap_or(i32::MAX)),
        Box::new(k.score.map(i16::from)),
        Box::new(k.duplicate_of.clone()),
        Box::new(k.lon),
        Box::new(k.lat),
    ]
}

pub(super) async fn insert_history(
    c: &impl GenericClient,
    id: &str,
    from: usize,
    h: &[HistoryEntry],
) -> Result<()> {
    for (i, e) in h.iter().enumerate().skip(from) {
        c.execute(
            "INSERT INTO incident_history (incident_id, seq, at, who, action, from_state, to_state, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&id, &(i32::try_from(i).unwrap_or(i32::MAX)), &dt(e.at), &e.who, &e.action, &state_name(e.from), &state_name(e.to), &e.note],
        )
        .await
        .map_err(pe)?;
    }
    Ok(())
}

pub(super) async fn case_of(c: &impl GenericClient, r: &tokio_postgres::Row) -> Result<Case> {
    let id: String = r.get(0);
    let hist = c
        .query(
            "SELECT at, who, action, from_state, to_state, note FROM incident_history WHERE incident_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .map_err(pe)?;
    let history = hist
        .iter()
        .map(|h| {
            Ok(HistoryEntry {
                at: h.get::<_, DateTime<Utc>>(0).timestamp(),
                who: h.get(1),
                action: h.get(2),
                from: parse_enum(h.get::<_, &str>(3))?,
                to: parse_enum(h.get::<_, &str>(4))?,
                note: h.get(5),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    case_from(r, history)
}

/// A case from its row and history (none for an aggregate read).
fn case_from(r: &tokio_postgres::Row, history: Vec<HistoryEntry>) -> Result<Case> {
    Ok(Case {
        id: r.get(0),
        category: r.get(1),
        description: r.get(2),
        source: parse_enum(r.get::<_, &str>(3))?,
        reporter: r.get(4),
        media: serde_json::from_value(r.get::<_, Value>(5)).unwrap_or_default(),
        reported_at: r.get::<_, DateTime<Utc>>(6).timestamp(),
        grid: r.get(7),
        community: r.get(8),
        street: r.get(9),
        state: parse_enum(r.get::<_, &str>(10))?,
        level: parse_enum(r.get::<_, &str>(11))?,
        unit: r.get(12),
        due_at: ts(r.get(13)),
        closed_at: ts(r.get(14)),
        escalations: u32::try_from(r.get::<_, i32>(15)).unwrap_or(0),
        returns: u32::try_from(r.get::<_, i32>(16)).unwrap_or(0),
        score: r
            .get::<_, Option<i16>>(17)
            .and_then(|s| u8::try_from(s).ok()),
        duplicate_of: r.get(18),
        lon: r.get(19),
        lat: r.get(20),
        history,
    })
}

pub(super) async fn get_case(c: &impl GenericClient, id: &str) -> Result<Case> {
    let r = c
        .query_opt(
            &format!("SELECT {CASE_SELECT} FROM incidents WHERE incident_id = $1"),
            &[&id],
        )
        .await
        .map_err(pe)?
        .ok_or_else(|| StoreError::NotFound {
            what: "incident",
            id: id.to_string(),
        })?;
    case_of(c, &r).await
}

#[async_trait]
impl Cases for PostgisStore {
    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inserts
            .send((
                case.clone(),
                (who.to_string(), crate::store::context::client()),
                tx,
            ))
            .map_err(|_| StoreError::Backend("the insert batcher has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the insert batcher dropped a write".into()))?
    }

    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        tx.execute(
            "SELECT 1 FROM incidents WHERE incident_id = $1 FOR UPDATE",
            &[&case.id],
        )
        .await
        .map_err(pe)?;
        let old = get_case(&tx, &case.id).await?;
        check_history(&old, case, expected_history)?;
        let p = case_params(case);
        let refs: Vec<&(dyn ToSql + Sync)> = p
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let sets: Vec<String> = CASE_COLS
            .split(", ")
            .enumerate()
            .skip(1)
            .filter(|(_, c)| *c != "geom")
            .map(|(i, col)| format!("{col} = ${}", i + 1))
            .collect();
        tx.execute(
            &format!(
                "UPDATE incidents SET {}, geom = ST_SetSRID(ST_MakePoint($20, $21), 4326) WHERE incident_id = $1",
                sets.join(", ")
            ),
            &refs,
        )
        .await
        .map_err(pe)?;
        insert_history(&tx, &case.id, old.history.len(), &case.history).await?;
        audit_in(
            &tx,
            who,
            "update_incident",
            &format!("incident {}", case.id),
            &state_name(case.state),
        )
        .await?;
        tx.commit().await.map_err(pe)
    }

    async fn incident(&self, id: &str) -> Result<Case> {
        get_case(&self.client().await?, id).await
    }

    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>> {
        let (cond, mut args) = where_of(f);
        let cols = if f.lean { LEAN_SELECT } else { CASE_SELECT };
        let mut sql = format!("SELECT {cols} FROM incidents{cond}");
        args.push(Box::new(if f.limit == 0 {
            i64::MAX
        } else {
            i64::try_from(f.limit).unwrap_or(i64::MAX)
        }));
        args.push(Box::new(i64::try_from(f.offset).unwrap_or(0)));
        sql.push_str(&format!(
            " ORDER BY reported_at, incident_id COLLATE \"C\" LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        ));
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await.map_err(pe)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(if f.lean {
                case_from(r, Vec::new())?
            } else {
                case_of(&client, r).await?
            });
        }
        Ok(out)
    }

    async fn count_incidents(&self, f: &IncidentFilter) -> Result<u64> {
        let (cond, args) = where_of(f);
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM incidents{cond}"), &refs)
            .await
            .map_err(pe)?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The columns of a case for aggregates: no description, reporter or photos.
const LEAN_SELECT: &str = "incident_id, category, '' AS description, source, NULL::text AS reporter, '[]'::jsonb AS media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, ST_X(geom), ST_Y(geom)";

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// ` WHERE …` of a filter (empty for none) and its arguments (`$1`…).
fn where_of(f: &IncidentFilter) -> (String, Args) {
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let mut push = |c: &str, v: Box<dyn ToSql + Sync + Send>, args: &mut Vec<_>| {
        args.push(v);
        conds.push(c.replace('?', &format!("${}", args.len())));
    };
    if let Some(g) = &f.grid {
        push("grid = ?", Box::new(g.clone()), &mut args);
    }
    if let Some(g) = &f.community {
        push("community = ?", Box::new(g.clone()), &mut args);
    }
    if let Some(s) = f.state {
        push("state = ?", Box::new(state_name(s)), &mut args);
    }
    if let Some(s) = &f.category {
        push("category = ?", Box::new(s.clone()), &mut args);
    }
    if let Some(t) = f.overdue_at {
        push(
            "due_at IS NOT NULL AND due_at < ? AND state NOT IN ('closed', 'rejected', 'voided', 'suspended')",
            Box::new(dt(t)),
            &mut args,
        );
    }
    if let Some(t) = f.from {
        push("reported_at >= ?", Box::new(dt(t)), &mut args);
    }
    if let Some(t) = f.to {
        push("reported_at < ?", Box::new(dt(t)), &mut args);
    }
    if let Some(s) = &f.scope {
        let n = args.len();
        args.extend([
            Box::new(s.clone()) as Box<dyn ToSql + Sync + Send>,
            Box::new(s.clone()),
            Box::new(s.clone()),
        ]);
        conds.push(format!(
            "(grid = ${} OR community = ${} OR street = ${})",
            n + 1,
            n + 2,
            n + 3
        ));
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), args)
    }
}
