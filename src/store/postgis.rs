//! The PostGIS store: the same contract on PostgreSQL + PostGIS (≥ 3.0), for cities that outgrow
//! one file (read replicas, sharding by district with Citus).
//!
//! Geometries are `geometry(…, 4326)` with GiST indexes; times are `timestamptz`. Versioned
//! migrations run at connect under an advisory lock. Incident inserts from concurrent callers are
//! grouped into one transaction (each in its own savepoint) and acknowledged after its commit.

use super::wkb::{from_wkb, to_wkb};
use super::{
    AuditEntry, BuildingRecord, CommunityRecord, Feature, FeaturePage, FeatureQuery, GridHit,
    GridRecord, IncidentFilter, Layer, NewPlan, Plan, PlanStatus, Result, SCHEMA_VERSION, Store,
    StoreError, Street, TokenRecord, Upserted, Worker, check_filters, check_history, check_plan,
    now, parse_enum, parse_enum_name, pick_grid, state_name, streets_of,
};
use crate::incident::{Case, HistoryEntry};
use crate::model::schema;
use crate::model::{Building, Community, Road};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use geo::{Geometry, LineString, MultiPolygon};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// The PostGIS store.
pub struct PostgisStore {
    url_shown: String,
    pool: Pool,
    inserts: mpsc::UnboundedSender<(Case, String, oneshot::Sender<Result<()>>)>,
}

fn pe(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = format!(
            "{}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        );
        if code.starts_with("23") {
            return StoreError::Conflict(msg);
        }
        return StoreError::Backend(msg);
    }
    StoreError::Backend(e.to_string())
}

fn dt(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

fn ts(d: Option<DateTime<Utc>>) -> Option<i64> {
    d.map(|d| d.timestamp())
}

fn mp_of(b: &[u8]) -> Result<MultiPolygon> {
    match from_wkb(b).map_err(|e| StoreError::Backend(e.to_string()))? {
        Geometry::MultiPolygon(m) => Ok(m),
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        _ => Err(StoreError::Backend(
            "expected a polygon geometry in the store".into(),
        )),
    }
}

fn mp_wkb(m: &MultiPolygon) -> Vec<u8> {
    to_wkb(&Geometry::MultiPolygon(m.clone()))
}

/// Hide the password of a connection string in messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

const MIGRATION_1: &str = "
CREATE TABLE streets (fid bigserial UNIQUE, code text PRIMARY KEY, communities integer NOT NULL DEFAULT 0, households bigint NOT NULL DEFAULT 0,
  geom geometry(MultiPolygon, 4326));
CREATE INDEX streets_geom ON streets USING gist (geom);
CREATE TABLE communities (fid bigserial UNIQUE, code text PRIMARY KEY, name text, street text, households bigint NOT NULL DEFAULT 0,
  buildings bigint NOT NULL DEFAULT 0, updated_at timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL);
CREATE INDEX communities_geom ON communities USING gist (geom);
CREATE TABLE buildings (fid bigserial UNIQUE, building_id text PRIMARY KEY, community text, households integer NOT NULL,
  household_source text NOT NULL, updated_at timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL);
CREATE INDEX buildings_geom ON buildings USING gist (geom);
CREATE INDEX buildings_community ON buildings (community);
CREATE TABLE roads (fid bigserial PRIMARY KEY, highway text, name text, geom geometry(LineString, 4326) NOT NULL);
CREATE INDEX roads_geom ON roads USING gist (geom);
CREATE TABLE plans (id bigserial PRIMARY KEY, status text NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
  communities jsonb NOT NULL, valid_from timestamptz, valid_to timestamptz, created_by text NOT NULL,
  created_at timestamptz NOT NULL, published_at timestamptz, params jsonb NOT NULL, metrics jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1);
CREATE TABLE grids (fid bigserial PRIMARY KEY, plan_id bigint NOT NULL REFERENCES plans (id), code text NOT NULL,
  name text, community text NOT NULL REFERENCES communities (code), street text, households bigint NOT NULL,
  buildings bigint NOT NULL, weight double precision NOT NULL, band text NOT NULL, valid_from timestamptz,
  valid_to timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL, UNIQUE (plan_id, code));
CREATE INDEX grids_geom ON grids USING gist (geom);
CREATE INDEX grids_community ON grids (community);
CREATE TABLE plan_assignments (plan_id bigint NOT NULL REFERENCES plans (id), building_id text NOT NULL,
  grid_code text NOT NULL, PRIMARY KEY (plan_id, building_id));
CREATE TABLE grid_workers (grid_code text PRIMARY KEY, name text NOT NULL, phone text, updated_at timestamptz);
CREATE TABLE incidents (fid bigserial UNIQUE, incident_id text PRIMARY KEY, category text NOT NULL, description text NOT NULL,
  source text NOT NULL, reporter text, media jsonb NOT NULL, reported_at timestamptz NOT NULL, grid text,
  community text, street text, state text NOT NULL, level text NOT NULL, unit text, due_at timestamptz,
  closed_at timestamptz, escalations integer NOT NULL, returns integer NOT NULL, score smallint,
  duplicate_of text, geom geometry(Point, 4326) NOT NULL);
CREATE INDEX incidents_geom ON incidents USING gist (geom);
CREATE INDEX incidents_reported ON incidents (reported_at);
CREATE INDEX incidents_grid ON incidents (grid);
CREATE TABLE incident_history (incident_id text NOT NULL REFERENCES incidents (incident_id), seq integer NOT NULL,
  at timestamptz NOT NULL, who text NOT NULL, action text NOT NULL, from_state text NOT NULL, to_state text NOT NULL,
  note text NOT NULL, PRIMARY KEY (incident_id, seq));
CREATE TABLE api_tokens (id bigserial PRIMARY KEY, token_hash text NOT NULL UNIQUE, role text NOT NULL, scope text,
  label text NOT NULL, created_at timestamptz NOT NULL, revoked_at timestamptz);
CREATE TABLE audit_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL, who text NOT NULL, action text NOT NULL,
  target text NOT NULL, detail text NOT NULL);
";

impl PostgisStore {
    /// Connect, check PostGIS, run migrations.
    ///
    /// # Errors
    /// Unreachable server, missing or too old PostGIS, a newer schema.
    pub async fn connect(url: &str) -> Result<PostgisStore> {
        let url_shown = shown(url);
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "{url_shown}: not a PostgreSQL connection string: {e}"
            ))
        })?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("{url_shown}: {e}")))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach {url_shown}: {e}")))?;
        // PostGIS present and recent enough
        let have: Option<String> = client
            .query_opt(
                "SELECT extversion FROM pg_extension WHERE extname = 'postgis'",
                &[],
            )
            .await
            .map_err(|e| pe(&e))?
            .map(|r| r.get(0));
        if have.is_none()
            && let Err(e) = client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
                .await
        {
            return Err(StoreError::Unavailable(format!(
                "{url_shown}: the database lacks PostGIS and it cannot be enabled ({}); install PostGIS ≥ 3.0 (Debian: postgresql-15-postgis-3) and run CREATE EXTENSION postgis",
                pe(&e)
            )));
        }
        let v: String = client
            .query_one("SELECT postgis_lib_version()", &[])
            .await
            .map_err(|e| pe(&e))?
            .get(0);
        let major: u32 = v
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 3 {
            return Err(StoreError::Unavailable(format!(
                "{url_shown}: PostGIS {v} is too old; wangge needs PostGIS 3.0 or newer"
            )));
        }
        // migrations
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(727310);
             CREATE TABLE IF NOT EXISTS wangge_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .map_err(|e| pe(&e))?;
        let cur: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM wangge_schema", &[])
            .await
            .map_err(|e| pe(&e))?
            .get(0);
        if i64::from(cur) > SCHEMA_VERSION {
            return Err(StoreError::Schema(format!(
                "{url_shown}: schema version {cur} is newer than this wangge knows ({SCHEMA_VERSION}); use a newer wangge"
            )));
        }
        if cur < 1 {
            tx.batch_execute(MIGRATION_1).await.map_err(|e| pe(&e))?;
            tx.execute("INSERT INTO wangge_schema (version) VALUES (1)", &[])
                .await
                .map_err(|e| pe(&e))?;
        }
        tx.commit().await.map_err(|e| pe(&e))?;
        drop(client);
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..BATCHERS {
            tokio::spawn(insert_batcher(pool.clone(), rx.clone()));
        }
        Ok(PostgisStore {
            url_shown,
            pool,
            inserts: tx,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.url_shown)))
    }
}

async fn audit_in(
    c: &impl GenericClient,
    who: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO audit_log (at, who, action, target, detail) VALUES (now(), $1, $2, $3, $4)",
        &[&who, &action, &target, &detail],
    )
    .await
    .map_err(|e| pe(&e))?;
    Ok(())
}

/// Insert one new incident with its history and audit line in one statement (one round trip);
/// a duplicate id inserts nothing and is reported as a conflict.
async fn insert_case(c: &impl GenericClient, k: &Case, who: &str) -> Result<()> {
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
    p.push(Box::new(who.to_string()));
    p.push(Box::new(k.category.clone()));
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
                   INSERT INTO audit_log (at, who, action, target, detail)
                   SELECT now(), $29, 'insert_incident', 'incident ' || i.incident_id, $30 FROM i
                 )
                 SELECT count(*) FROM i"
            ))
        .await
        .map_err(|e| pe(&e))?;
    let n: i64 = c.query_one(&st, &refs).await.map_err(|e| pe(&e))?.get(0);
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "incident {} already exists",
            k.id
        )));
    }
    Ok(())
}

type InsertJob = (Case, String, oneshot::Sender<Result<()>>);

/// Concurrent group-commit transactions: while one waits for its commit, the next fills.
const BATCHERS: usize = 4;

/// Group commit of incident inserts: everything queued goes into one transaction.
async fn insert_batcher(
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
            let tx = client.transaction().await.map_err(|e| pe(&e))?;
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
            tx.commit().await.map_err(|e| pe(&e))
        }
        .await;
        if commit.is_err() && jobs.len() > 1 {
            // one bad insert must not sink the others: each alone, in its own transaction
            for (case, who, reply) in jobs {
                let r = async {
                    let tx = client.transaction().await.map_err(|e| pe(&e))?;
                    insert_case(&tx, &case, &who).await?;
                    tx.commit().await.map_err(|e| pe(&e))
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

const CASE_COLS: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, geom";
const CASE_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, ST_SetSRID(ST_MakePoint($20, $21), 4326)";
const CASE_SELECT: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, ST_X(geom), ST_Y(geom)";

fn case_params(k: &Case) -> Vec<Box<dyn ToSql + Sync + Send>> {
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

async fn insert_history(
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
        .map_err(|e| pe(&e))?;
    }
    Ok(())
}

async fn case_of(c: &impl GenericClient, r: &tokio_postgres::Row) -> Result<Case> {
    let id: String = r.get(0);
    let hist = c
        .query(
            "SELECT at, who, action, from_state, to_state, note FROM incident_history WHERE incident_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .map_err(|e| pe(&e))?;
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
    Ok(Case {
        id,
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

async fn get_case(c: &impl GenericClient, id: &str) -> Result<Case> {
    let r = c
        .query_opt(
            &format!("SELECT {CASE_SELECT} FROM incidents WHERE incident_id = $1"),
            &[&id],
        )
        .await
        .map_err(|e| pe(&e))?
        .ok_or_else(|| StoreError::NotFound {
            what: "incident",
            id: id.to_string(),
        })?;
    case_of(c, &r).await
}

async fn read_communities(c: &impl GenericClient) -> Result<Vec<CommunityRecord>> {
    let rows = c
        .query(
            "SELECT code, name, street, households, buildings, ST_AsBinary(geom) FROM communities ORDER BY code",
            &[],
        )
        .await
        .map_err(|e| pe(&e))?;
    rows.iter()
        .map(|r| {
            Ok(CommunityRecord {
                community: Community {
                    code: r.get(0),
                    name: r.get(1),
                    street: r.get(2),
                    geometry: mp_of(r.get::<_, &[u8]>(5))?,
                },
                households: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                buildings: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            })
        })
        .collect()
}

async fn recount(c: &impl GenericClient, reassign: bool) -> Result<()> {
    if reassign {
        let cs: Vec<Community> = read_communities(c)
            .await?
            .into_iter()
            .map(|r| r.community)
            .collect();
        let rows = c
            .query(
                "SELECT building_id, ST_AsBinary(geom), community FROM buildings ORDER BY fid",
                &[],
            )
            .await
            .map_err(|e| pe(&e))?;
        let bs: Vec<Building> = rows
            .iter()
            .map(|r| {
                Ok(Building {
                    id: r.get(0),
                    households: 0,
                    source: crate::model::HouseholdSource::Given,
                    weight: 0.0,
                    geometry: mp_of(r.get::<_, &[u8]>(1))?,
                })
            })
            .collect::<Result<_>>()?;
        let owner = crate::partition::assign_buildings(&cs, &bs);
        for ((r, b), o) in rows.iter().zip(&bs).zip(owner) {
            let new = o.map(|(ci, _)| cs[ci].code.clone());
            if new != r.get::<_, Option<String>>(2) {
                c.execute(
                    "UPDATE buildings SET community = $2 WHERE building_id = $1",
                    &[&b.id, &new],
                )
                .await
                .map_err(|e| pe(&e))?;
            }
        }
    }
    c.batch_execute(
        "UPDATE communities SET
           households = coalesce((SELECT sum(households) FROM buildings b WHERE b.community = communities.code), 0),
           buildings = (SELECT count(*) FROM buildings b WHERE b.community = communities.code);
         DELETE FROM streets;",
    )
    .await
    .map_err(|e| pe(&e))?;
    let comms = read_communities(c).await?;
    for s in streets_of(&comms) {
        let parts: Vec<&MultiPolygon> = comms
            .iter()
            .filter(|r| r.community.street.as_deref() == Some(s.code.as_str()))
            .map(|r| &r.community.geometry)
            .collect();
        let g = super::gpkg::street_geometry(&parts);
        c.execute(
            "INSERT INTO streets (code, communities, households, geom) VALUES ($1, $2, $3, ST_Multi(ST_GeomFromWKB($4, 4326)))",
            &[&s.code, &(i32::try_from(s.communities).unwrap_or(i32::MAX)), &(i64::try_from(s.households).unwrap_or(i64::MAX)), &mp_wkb(&g)],
        )
        .await
        .map_err(|e| pe(&e))?;
    }
    Ok(())
}

async fn plan_get(c: &impl GenericClient, id: i64) -> Result<Plan> {
    let r = c
        .query_opt(
            "SELECT id, status, communities, valid_from, valid_to, created_by, created_at, published_at, params, metrics, version,
               (SELECT count(*) FROM grids g WHERE g.plan_id = p.id), (SELECT coalesce(sum(households), 0)::bigint FROM grids g WHERE g.plan_id = p.id)
             FROM plans p WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|e| pe(&e))?
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

fn iso(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.000\"Z\"')")
}

/// (table, [(property, SQL expression)]) of a layer, from the schema; times as RFC 3339 text.
fn layer_sql(layer: Layer) -> (&'static str, Vec<(&'static str, String)>) {
    let props = schema::fields(layer)
        .iter()
        .map(|f| {
            let expr = if f.kind == schema::FieldType::Time {
                iso(f.sql)
            } else {
                f.sql.to_string()
            };
            (f.name, expr)
        })
        .collect();
    (layer.table(), props)
}

fn token_of(r: &tokio_postgres::Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        role: r.get(1),
        scope: r.get(2),
        label: r.get(3),
        created_at: r.get::<_, DateTime<Utc>>(4).timestamp(),
        revoked_at: ts(r.get(5)),
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "a long sequence of steps not yet split into phases (see scripts/house-figures)"
)]
#[async_trait]
impl Store for PostgisStore {
    fn describe(&self) -> String {
        format!("PostGIS {}", self.url_shown)
    }

    async fn ping(&self) -> Result<()> {
        self.client()
            .await?
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| pe(&e))?;
        Ok(())
    }

    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        let mut n = Upserted::default();
        for it in &items {
            let inserted: bool = tx
                .query_one(
                    "INSERT INTO communities (code, name, street, updated_at, geom) VALUES ($1, $2, $3, now(), ST_Multi(ST_GeomFromWKB($4, 4326)))
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name, street = excluded.street, updated_at = excluded.updated_at, geom = excluded.geom
                     RETURNING (xmax = 0)",
                    &[&it.code, &it.name, &it.street, &mp_wkb(&it.geometry)],
                )
                .await
                .map_err(|e| pe(&e))?
                .get(0);
            if inserted {
                n.inserted += 1;
            } else {
                n.updated += 1;
            }
        }
        recount(&tx, true).await?;
        audit_in(
            &tx,
            who,
            "put_communities",
            "communities",
            &format!("{} inserted, {} updated", n.inserted, n.updated),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))?;
        Ok(n)
    }

    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        let cs: Vec<Community> = read_communities(&tx)
            .await?
            .into_iter()
            .map(|r| r.community)
            .collect();
        let owner = crate::partition::assign_buildings(&cs, &items);
        let st = tx
            .prepare(
                "INSERT INTO buildings (building_id, community, households, household_source, updated_at, geom) VALUES ($1, $2, $3, $4, now(), ST_Multi(ST_GeomFromWKB($5, 4326)))
                 ON CONFLICT (building_id) DO UPDATE SET community = excluded.community, households = excluded.households,
                   household_source = excluded.household_source, updated_at = excluded.updated_at, geom = excluded.geom
                 RETURNING (xmax = 0)",
            )
            .await
            .map_err(|e| pe(&e))?;
        let mut n = Upserted::default();
        for (b, o) in items.iter().zip(owner) {
            let comm = o.map(|(ci, _)| cs[ci].code.clone());
            let inserted: bool = tx
                .query_one(
                    &st,
                    &[
                        &b.id,
                        &comm,
                        &(i32::try_from(b.households).unwrap_or(i32::MAX)),
                        &parse_enum_name(&b.source),
                        &mp_wkb(&b.geometry),
                    ],
                )
                .await
                .map_err(|e| pe(&e))?
                .get(0);
            if inserted {
                n.inserted += 1;
            } else {
                n.updated += 1;
            }
        }
        recount(&tx, false).await?;
        audit_in(
            &tx,
            who,
            "put_buildings",
            "buildings",
            &format!("{} inserted, {} updated", n.inserted, n.updated),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))?;
        Ok(n)
    }

    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        tx.execute("DELETE FROM roads", &[])
            .await
            .map_err(|e| pe(&e))?;
        let st = tx
            .prepare(
                "INSERT INTO roads (highway, name, geom) VALUES ($1, $2, ST_GeomFromWKB($3, 4326))",
            )
            .await
            .map_err(|e| pe(&e))?;
        for r in &roads {
            tx.execute(
                &st,
                &[
                    &r.highway,
                    &r.name,
                    &to_wkb(&Geometry::LineString(r.line.clone())),
                ],
            )
            .await
            .map_err(|e| pe(&e))?;
        }
        audit_in(
            &tx,
            who,
            "replace_roads",
            "roads",
            &format!("{} roads", roads.len()),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))?;
        Ok(roads.len() as u64)
    }

    async fn communities(&self) -> Result<Vec<CommunityRecord>> {
        read_communities(&self.client().await?).await
    }

    async fn streets(&self) -> Result<Vec<Street>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT code, communities, households FROM streets ORDER BY code",
                &[],
            )
            .await
            .map_err(|e| pe(&e))?;
        Ok(rows
            .iter()
            .map(|r| Street {
                code: r.get(0),
                communities: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                households: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>> {
        let client = self.client().await?;
        let rows = match communities {
            Some(cs) => client
                .query(
                    "SELECT building_id, community, households, household_source, ST_AsBinary(geom) FROM buildings WHERE community = ANY($1) ORDER BY fid",
                    &[&cs],
                )
                .await,
            None => client
                .query(
                    "SELECT building_id, community, households, household_source, ST_AsBinary(geom) FROM buildings ORDER BY fid",
                    &[],
                )
                .await,
        }
        .map_err(|e| pe(&e))?;
        rows.iter()
            .map(|r| {
                let hh = u32::try_from(r.get::<_, i32>(2)).unwrap_or(0);
                Ok(BuildingRecord {
                    building: Building {
                        id: r.get(0),
                        households: hh,
                        source: parse_enum(r.get::<_, &str>(3))?,
                        weight: f64::from(hh),
                        geometry: mp_of(r.get::<_, &[u8]>(4))?,
                    },
                    community: r.get(1),
                })
            })
            .collect()
    }

    async fn roads(&self) -> Result<Vec<Road>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT highway, name, ST_AsBinary(geom) FROM roads ORDER BY fid",
                &[],
            )
            .await
            .map_err(|e| pe(&e))?;
        rows.iter()
            .map(|r| {
                let line = match from_wkb(r.get::<_, &[u8]>(2))
                    .map_err(|e| StoreError::Backend(e.to_string()))?
                {
                    Geometry::LineString(l) => l,
                    _ => LineString(vec![]),
                };
                Ok(Road {
                    highway: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    name: r.get(1),
                    line,
                })
            })
            .collect()
    }

    async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        let comms = read_communities(&tx).await?;
        check_plan(&plan, &comms)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO plans (status, communities, created_by, created_at, params, metrics) VALUES ('draft', $1, $2, now(), $3, $4) RETURNING id",
                &[&serde_json::to_value(&plan.communities).unwrap_or(Value::Null), &plan.created_by, &plan.params, &plan.metrics],
            )
            .await
            .map_err(|e| pe(&e))?
            .get(0);
        let st = tx
            .prepare(
                "INSERT INTO grids (plan_id, code, name, community, street, households, buildings, weight, band, geom)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ST_Multi(ST_GeomFromWKB($10, 4326)))",
            )
            .await
            .map_err(|e| pe(&e))?;
        for g in &plan.grids {
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
            .map_err(|e| pe(&e))?;
        }
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
            .map_err(|e| pe(&e))?;
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
        tx.commit().await.map_err(|e| pe(&e))?;
        Ok(p)
    }

    async fn plans(&self) -> Result<Vec<Plan>> {
        let client = self.client().await?;
        let ids: Vec<i64> = client
            .query("SELECT id FROM plans ORDER BY id", &[])
            .await
            .map_err(|e| pe(&e))?
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
        plan_get(&client, id).await?;
        let rows = client
            .query(
                "SELECT code, name, community, street, households, buildings, weight, band, ST_AsBinary(geom), valid_from, valid_to FROM grids WHERE plan_id = $1 ORDER BY fid",
                &[&id],
            )
            .await
            .map_err(|e| pe(&e))?;
        rows.iter()
            .map(|r| {
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
            })
            .collect()
    }

    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        plan_get(&client, id).await?;
        Ok(client
            .query(
                "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = $1 ORDER BY building_id COLLATE \"C\"",
                &[&id],
            )
            .await
            .map_err(|e| pe(&e))?
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
    ) -> Result<Plan> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        // serialise publications
        tx.execute("SELECT pg_advisory_xact_lock(727311)", &[])
            .await
            .map_err(|e| pe(&e))?;
        let p = plan_get(&tx, id).await?;
        if let Some(v) = expected_version
            && v != p.version
        {
            return Err(StoreError::Stale(format!(
                "plan {id} is at version {}, not {v}: it changed meanwhile",
                p.version
            )));
        }
        if p.status != PlanStatus::Draft {
            return Err(StoreError::Conflict(format!(
                "plan {id} is {}; only a draft can be published",
                p.status.as_str()
            )));
        }
        let vf = dt(valid_from);
        let prev = tx
            .query(
                "SELECT plan_id, min(valid_from) FROM grids WHERE plan_id != $1 AND valid_from IS NOT NULL
                   AND (valid_to IS NULL OR valid_to > $2) AND community = ANY($3) GROUP BY plan_id ORDER BY plan_id",
                &[&id, &vf, &p.communities],
            )
            .await
            .map_err(|e| pe(&e))?;
        let mut prev_ids = Vec::new();
        for r in &prev {
            let pid: i64 = r.get(0);
            let from: DateTime<Utc> = r.get(1);
            if from >= vf {
                return Err(StoreError::Invalid(format!(
                    "plan {pid} takes effect at {}, not before {}: publish from a later time",
                    super::ts_text(from.timestamp()),
                    super::ts_text(valid_from)
                )));
            }
            prev_ids.push(pid);
        }
        tx.execute(
            "UPDATE grids SET valid_to = $2 WHERE plan_id != $1 AND valid_from IS NOT NULL
               AND (valid_to IS NULL OR valid_to > $2) AND community = ANY($3)",
            &[&id, &vf, &p.communities],
        )
        .await
        .map_err(|e| pe(&e))?;
        tx.execute(
            "UPDATE grids SET valid_from = $2, valid_to = NULL WHERE plan_id = $1",
            &[&id, &vf],
        )
        .await
        .map_err(|e| pe(&e))?;
        tx.execute(
            "UPDATE plans SET status = 'published', valid_from = $2, published_at = now(), version = version + 1 WHERE id = $1",
            &[&id, &vf],
        )
        .await
        .map_err(|e| pe(&e))?;
        tx.execute(
            "UPDATE plans p SET status = 'retired', valid_to = (SELECT max(valid_to) FROM grids WHERE plan_id = p.id), version = version + 1
             WHERE p.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM grids g WHERE g.plan_id = p.id AND g.valid_to IS NULL)",
            &[&prev_ids],
        )
        .await
        .map_err(|e| pe(&e))?;
        audit_in(
            &tx,
            who,
            "publish_plan",
            &format!("plan {id}"),
            &format!(
                "valid from {}; retired grids of plans {prev_ids:?}",
                super::ts_text(valid_from)
            ),
        )
        .await?;
        let p = plan_get(&tx, id).await?;
        tx.commit().await.map_err(|e| pe(&e))?;
        Ok(p)
    }

    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
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
        .map_err(|e| pe(&e))?;
        audit_in(
            &tx,
            who,
            "set_worker",
            &format!("grid {grid_code}"),
            &worker.as_ref().map_or("removed".into(), |w| w.name.clone()),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))
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
            .map_err(|e| pe(&e))?
            .map(|r| Worker {
                name: r.get(0),
                phone: r.get(1),
            }))
    }

    async fn tile_features(
        &self,
        layer: Layer,
        bbox: [f64; 4],
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        let (table, props) = layer_sql(layer);
        let chosen: Vec<&(&str, String)> = fields
            .iter()
            .filter_map(|f| props.iter().find(|(n, _)| n == f))
            .collect();
        let exprs: Vec<&str> = chosen.iter().map(|(_, e)| e.as_str()).collect();
        let cond = match (layer, plan) {
            (Layer::Grids, Some(_)) => " AND t.plan_id = $5",
            (Layer::Grids, None) => {
                " AND t.valid_from IS NOT NULL AND t.valid_from <= $5 AND (t.valid_to IS NULL OR t.valid_to > $5)"
            }
            _ => "",
        };
        let sql = format!(
            "SELECT ST_AsBinary(t.geom), jsonb_build_array({}) FROM {table} t \
             WHERE t.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326){cond} ORDER BY t.fid",
            exprs.join(", ")
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(|e| pe(&e))?;
        let (a, b, c, d) = (bbox[0], bbox[1], bbox[2], bbox[3]);
        let rows = match (layer, plan) {
            (Layer::Grids, Some(p)) => client.query(&st, &[&a, &b, &c, &d, &p]).await,
            (Layer::Grids, None) => client.query(&st, &[&a, &b, &c, &d, &dt(now())]).await,
            _ => client.query(&st, &[&a, &b, &c, &d]).await,
        }
        .map_err(|e| pe(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let geometry = r
                .get::<_, Option<&[u8]>>(0)
                .map(|b| from_wkb(b).map_err(|e| StoreError::Backend(e.to_string())))
                .transpose()?;
            let vals = match r.get::<_, Value>(1) {
                Value::Array(v) => v,
                _ => Vec::new(),
            };
            let properties: Map<String, Value> = chosen
                .iter()
                .zip(vals)
                .map(|((n, _), v)| ((*n).to_string(), v))
                .collect();
            out.push(Feature {
                id: String::new(),
                geometry,
                properties,
            });
        }
        Ok(Some(out))
    }

    async fn mvt_layer(
        &self,
        layer: Layer,
        (z, x, y): (u8, u32, u32),
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<u8>>> {
        let (table, props) = layer_sql(layer);
        let cols: String = fields
            .iter()
            .filter_map(|f| props.iter().find(|(n, _)| n == f))
            .map(|(n, e)| format!(", {e} AS \"{n}\""))
            .collect();
        let (zi, xi, yi) = (
            i32::from(z),
            i32::try_from(x).map_err(|e| StoreError::Invalid(e.to_string()))?,
            i32::try_from(y).map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
        let cond = match (layer, plan) {
            (Layer::Grids, Some(_)) => " AND t.plan_id = $4",
            (Layer::Grids, None) => {
                " AND t.valid_from IS NOT NULL AND t.valid_from <= $4 AND (t.valid_to IS NULL OR t.valid_to > $4)"
            }
            _ => "",
        };
        let sql = format!(
            "SELECT ST_AsMVT(m, '{name}', 4096, 'geom') FROM (\
               SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom{cols} \
               FROM {table} t \
               WHERE t.geom && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096), 4326){cond} \
               ORDER BY t.fid) m WHERE m.geom IS NOT NULL",
            name = layer.name()
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(|e| pe(&e))?;
        let row = match (layer, plan) {
            (Layer::Grids, Some(p)) => client.query_one(&st, &[&zi, &xi, &yi, &p]).await,
            (Layer::Grids, None) => client.query_one(&st, &[&zi, &xi, &yi, &dt(now())]).await,
            _ => client.query_one(&st, &[&zi, &xi, &yi]).await,
        }
        .map_err(|e| pe(&e))?;
        Ok(Some(row.get::<_, Option<Vec<u8>>>(0).unwrap_or_default()))
    }

    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
        check_filters(layer, q)?;
        let (table, props) = layer_sql(layer);
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let arg = |v: Box<dyn ToSql + Sync + Send>, args: &mut Vec<_>| {
            args.push(v);
            format!("${}", args.len())
        };
        if let Some(b) = q.bbox {
            let a = arg(Box::new(b[0]), &mut args);
            let bb = arg(Box::new(b[1]), &mut args);
            let c = arg(Box::new(b[2]), &mut args);
            let d = arg(Box::new(b[3]), &mut args);
            conds.push(format!(
                "t.geom && ST_MakeEnvelope({a}, {bb}, {c}, {d}, 4326) AND ST_Intersects(t.geom, ST_MakeEnvelope({a}, {bb}, {c}, {d}, 4326))"
            ));
        }
        if layer == Layer::Grids {
            if let Some(p) = q.plan {
                let a = arg(Box::new(p), &mut args);
                conds.push(format!("t.plan_id = {a}"));
            } else {
                let a = arg(Box::new(dt(q.at.unwrap_or_else(now))), &mut args);
                conds.push(format!(
                    "t.valid_from IS NOT NULL AND t.valid_from <= {a} AND (t.valid_to IS NULL OR t.valid_to > {a})"
                ));
            }
        }
        if layer == Layer::Incidents {
            if let Some(f) = q.from {
                let a = arg(Box::new(dt(f)), &mut args);
                conds.push(format!("t.reported_at >= {a}"));
            }
            if let Some(t) = q.to {
                let a = arg(Box::new(dt(t)), &mut args);
                conds.push(format!("t.reported_at < {a}"));
            }
        }
        for (k, v) in &q.equals {
            let expr = props
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            let a = arg(Box::new(v.clone()), &mut args);
            conds.push(format!("({expr})::text = {a}"));
        }
        let obj: Vec<String> = props.iter().map(|(n, e)| format!("'{n}', {e}")).collect();
        let mut sql = format!(
            "SELECT ST_AsBinary(t.geom), jsonb_build_object({}), count(*) OVER () FROM {table} t",
            obj.join(", ")
        );
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let la = arg(
            Box::new(if q.limit == 0 {
                i64::MAX
            } else {
                i64::try_from(q.limit).unwrap_or(i64::MAX)
            }),
            &mut args,
        );
        let oa = arg(
            Box::new(i64::try_from(q.offset).unwrap_or(i64::MAX)),
            &mut args,
        );
        sql.push_str(&format!(" ORDER BY t.fid LIMIT {la} OFFSET {oa}"));
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await.map_err(|e| pe(&e))?;
        let mut matched = 0u64;
        let mut features = Vec::with_capacity(rows.len());
        for r in &rows {
            matched = u64::try_from(r.get::<_, i64>(2)).unwrap_or(0);
            let geometry = r
                .get::<_, Option<&[u8]>>(0)
                .map(|b| from_wkb(b).map_err(|e| StoreError::Backend(e.to_string())))
                .transpose()?;
            let props: Map<String, Value> = match r.get::<_, Value>(1) {
                Value::Object(m) => {
                    // keep the layer's property order
                    let mut o = Map::new();
                    for (n, _) in &props {
                        o.insert((*n).to_string(), m.get(*n).cloned().unwrap_or(Value::Null));
                    }
                    o
                }
                _ => Map::new(),
            };
            let id = props
                .values()
                .next()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            features.push(Feature {
                id,
                geometry,
                properties: props,
            });
        }
        if rows.is_empty() && q.offset > 0 {
            // count without the page
            let count_sql = format!(
                "SELECT count(*) FROM {table} t{}",
                if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                }
            );
            let n = refs.len() - 2;
            matched = u64::try_from(
                client
                    .query_one(&count_sql, &refs[..n])
                    .await
                    .map_err(|e| pe(&e))?
                    .get::<_, i64>(0),
            )
            .unwrap_or(0);
        }
        Ok(FeaturePage { features, matched })
    }

    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT ST_AsBinary(g.geom), g.code, g.name, g.community, g.street, g.plan_id, w.name, w.phone
                 FROM grids g LEFT JOIN grid_workers w ON w.grid_code = g.code
                 WHERE g.geom && ST_SetSRID(ST_MakePoint($1, $2), 4326)
                   AND g.valid_from IS NOT NULL AND g.valid_from <= $3 AND (g.valid_to IS NULL OR g.valid_to > $3)
                 ORDER BY g.code COLLATE \"C\"",
                &[&lon, &lat, &dt(at)],
            )
            .await
            .map_err(|e| pe(&e))?;
        let cands: Vec<(MultiPolygon, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Ok((mp_of(r.get::<_, &[u8]>(0))?, i)))
            .collect::<Result<_>>()?;
        let i = pick_grid(cands.iter().map(|(g, i)| (g, *i)), lon, lat);
        Ok(i.map(|i| {
            let r = &rows[i];
            GridHit {
                code: r.get(1),
                name: r.get(2),
                community: r.get(3),
                street: r.get(4),
                plan: r.get(5),
                worker: r.get::<_, Option<String>>(6).map(|name| Worker {
                    name,
                    phone: r.get(7),
                }),
            }
        }))
    }

    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inserts
            .send((case.clone(), who.to_string(), tx))
            .map_err(|_| StoreError::Backend("the insert batcher has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the insert batcher dropped a write".into()))?
    }

    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        tx.execute(
            "SELECT 1 FROM incidents WHERE incident_id = $1 FOR UPDATE",
            &[&case.id],
        )
        .await
        .map_err(|e| pe(&e))?;
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
        .map_err(|e| pe(&e))?;
        insert_history(&tx, &case.id, old.history.len(), &case.history).await?;
        audit_in(
            &tx,
            who,
            "update_incident",
            &format!("incident {}", case.id),
            &state_name(case.state),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))
    }

    async fn incident(&self, id: &str) -> Result<Case> {
        get_case(&self.client().await?, id).await
    }

    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>> {
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
        let mut sql = format!("SELECT {CASE_SELECT} FROM incidents");
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
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
        let rows = client.query(&sql, &refs).await.map_err(|e| pe(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(case_of(&client, r).await?);
        }
        Ok(out)
    }

    async fn create_token(
        &self,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        label: &str,
        who: &str,
    ) -> Result<TokenRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        let r = tx
            .query_one(
                "INSERT INTO api_tokens (token_hash, role, scope, label, created_at) VALUES ($1, $2, $3, $4, now())
                 RETURNING id, role, scope, label, created_at, revoked_at",
                &[&hash, &role, &scope, &label],
            )
            .await
            .map_err(|e| pe(&e))?;
        let t = token_of(&r);
        audit_in(
            &tx,
            who,
            "create_token",
            &format!("token {}", t.id),
            &format!("role {role}, scope {scope:?}"),
        )
        .await?;
        tx.commit().await.map_err(|e| pe(&e))?;
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
            .map_err(|e| pe(&e))?
            .iter()
            .map(token_of)
            .collect())
    }

    async fn revoke_token(&self, id: i64, who: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| pe(&e))?;
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await
            .map_err(|e| pe(&e))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "active token",
                id: id.to_string(),
            });
        }
        audit_in(&tx, who, "revoke_token", &format!("token {id}"), "").await?;
        tx.commit().await.map_err(|e| pe(&e))
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
            .map_err(|e| pe(&e))?
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
                "SELECT at, who, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                &[&(i64::try_from(limit).unwrap_or(i64::MAX))],
            )
            .await
            .map_err(|e| pe(&e))?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: r.get::<_, DateTime<Utc>>(0).timestamp(),
                who: r.get(1),
                action: r.get(2),
                target: r.get(3),
                detail: r.get(4),
            })
            .collect())
    }
}
