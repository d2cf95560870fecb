//! The PostGIS store: the same contract on PostgreSQL + PostGIS (≥ 3.0), for cities that outgrow
//! one file (read replicas, sharding by district with Citus).
//!
//! Geometries are `geometry(…, 4326)` with GiST indexes; times are `timestamptz`. Versioned
//! migrations run at connect under an advisory lock. Incident inserts from concurrent callers are
//! grouped into one transaction (each in its own savepoint) and acknowledged after its commit.

use super::prelude::*;
use super::wkb::{from_wkb, to_wkb};
use super::{
    AuditEntry, BuildingRecord, CommunityRecord, Feature, FeaturePage, FeatureQuery, GridHit,
    GridRecord, IncidentFilter, Layer, NewPlan, Plan, PlanStatus, PostgisError, Result,
    SCHEMA_VERSION, Store, StoreError, Street, TokenRecord, Upserted, Worker, check_filters,
    check_history, check_plan, now, parse_enum, parse_enum_name, pick_grid, state_name, streets_of,
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

mod auth;
mod cases;
mod edits;
mod features;
mod migrations;
mod plans;
mod reference;
use self::{cases::*, migrations::*, reference::*};

/// The PostGIS store.
pub struct PostgisStore {
    url_shown: String,
    pool: Pool,
    inserts: mpsc::UnboundedSender<cases::InsertJob>,
    /// For the connection that listens for other processes' changes.
    cfg: tokio_postgres::Config,
    /// This process's name in change announcements (its own are not news to it).
    instance: String,
}

fn pe(e: tokio_postgres::Error) -> StoreError {
    if e.as_db_error()
        .is_some_and(|db| db.code().code().starts_with("23"))
    {
        return StoreError::Conflict(super::error::pg_message(&e));
    }
    PostgisError::Db(e).into()
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
pub(crate) fn shown(url: &str) -> String {
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

/// PostGIS enabled in the database (created when it can be) and at least version 3.
async fn ensure_postgis(client: &deadpool_postgres::Client, url_shown: &str) -> Result<()> {
    let have: Option<String> = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'postgis'",
            &[],
        )
        .await
        .map_err(pe)?
        .map(|r| r.get(0));
    if have.is_none()
        && let Err(e) = client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
            .await
    {
        return Err(StoreError::Unavailable(format!(
            "{url_shown}: the database lacks PostGIS and it cannot be enabled ({}); install PostGIS ≥ 3.0 (Debian: postgresql-15-postgis-3) and run CREATE EXTENSION postgis",
            super::error::pg_message(&e)
        )));
    }
    let v: String = client
        .query_one("SELECT postgis_lib_version()", &[])
        .await
        .map_err(pe)?
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
    Ok(())
}

/// Bring the schema up to this wangge's version, one migration at a time, under a lock (a
/// schema newer than this wangge knows is refused).
async fn migrate(client: &mut deadpool_postgres::Client, url_shown: &str) -> Result<()> {
    let tx = client.transaction().await.map_err(pe)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(727310);
         CREATE TABLE IF NOT EXISTS wangge_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());",
    )
    .await
    .map_err(pe)?;
    let cur: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM wangge_schema", &[])
        .await
        .map_err(pe)?
        .get(0);
    if i64::from(cur) > SCHEMA_VERSION {
        return Err(StoreError::Schema(format!(
            "{url_shown}: schema version {cur} is newer than this wangge knows ({SCHEMA_VERSION}); use a newer wangge"
        )));
    }
    for (v, sql) in MIGRATIONS {
        if cur < v {
            tx.batch_execute(sql).await.map_err(pe)?;
            tx.execute("INSERT INTO wangge_schema (version) VALUES ($1)", &[&v])
                .await
                .map_err(pe)?;
        }
    }
    tx.commit().await.map_err(pe)
}

impl PostgisStore {
    /// Connect, check PostGIS, run migrations.
    ///
    /// # Errors
    /// Unreachable server, missing or too old PostGIS, a newer schema.
    pub async fn connect(url: &str) -> Result<PostgisStore> {
        Self::connect_as(url, false).await
    }

    /// Connect to a read-only streaming replica: nothing is created or migrated there; its
    /// schema must be the one this wangge knows (the primary's, replayed).
    ///
    /// # Errors
    /// Unreachable server, no wangge schema or another version.
    pub async fn connect_replica(url: &str) -> Result<PostgisStore> {
        Self::connect_as(url, true).await
    }

    async fn connect_as(url: &str, replica: bool) -> Result<PostgisStore> {
        let url_shown = shown(url);
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "{url_shown}: not a PostgreSQL connection string: {e}"
            ))
        })?;
        let listen_cfg = cfg.clone();
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
        if replica {
            check_replica(&client, &url_shown).await?;
            drop(client);
            return Ok(Self::assemble(url_shown, pool, listen_cfg));
        }
        ensure_postgis(&client, &url_shown).await?;
        migrate(&mut client, &url_shown).await?;
        drop(client);
        Ok(Self::assemble(url_shown, pool, listen_cfg))
    }

    fn assemble(url_shown: String, pool: Pool, cfg: tokio_postgres::Config) -> PostgisStore {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..BATCHERS {
            tokio::spawn(insert_batcher(pool.clone(), rx.clone()));
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        PostgisStore {
            url_shown,
            pool,
            inserts: tx,
            cfg,
            instance: format!("{}-{started}", std::process::id()),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.url_shown)))
    }
}

/// A replica has this wangge's schema (replayed from the primary); nothing is changed there.
async fn check_replica(client: &deadpool_postgres::Object, url_shown: &str) -> Result<()> {
    let v: Option<i32> = client
        .query_opt("SELECT max(version) FROM wangge_schema", &[])
        .await
        .map_err(|e| {
            StoreError::Schema(format!(
                "{url_shown}: not a replica of a wangge database ({})",
                super::error::pg_message(&e)
            ))
        })?
        .and_then(|r| r.get(0));
    if v.map(i64::from) != Some(SCHEMA_VERSION) {
        return Err(StoreError::Schema(format!(
            "{url_shown}: the replica's schema version is {v:?}, this wangge needs {SCHEMA_VERSION}: migrate the primary (open it once) and let the replica catch up"
        )));
    }
    Ok(())
}

async fn audit_in(
    c: &impl GenericClient,
    who: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO audit_log (at, who, action, target, detail, client) VALUES (now(), $1, $2, $3, $4, $5)",
        &[&who, &action, &target, &detail, &crate::store::context::client()],
    )
    .await
    .map_err(pe)?;
    Ok(())
}

/// Insert one new incident with its history and audit line in one statement (one round trip);
fn iso(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.000\"Z\"')")
}

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
            .map_err(pe)?;
        Ok(())
    }

    async fn announce_change(&self) -> Result<()> {
        self.client()
            .await?
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&super::CHANGES_CHANNEL, &self.instance],
            )
            .await
            .map_err(pe)?;
        Ok(())
    }

    fn watch_changes(&self, changed: super::ChangeHook) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("changes of other processes are not followed: no runtime");
            return;
        };
        let (cfg, me, shown) = (
            self.cfg.clone(),
            self.instance.clone(),
            self.url_shown.clone(),
        );
        rt.spawn(async move {
            loop {
                if let Err(e) = listen_for_changes(&cfg, &me, &changed).await {
                    tracing::warn!("{shown}: listening for changes: {e}; again in 1 s");
                }
                // what was announced while no one listened is unknown: take it as a change
                changed();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}

/// Listen on [`super::CHANGES_CHANNEL`] until the connection ends, calling `changed` for every
/// announcement of another process.
async fn listen_for_changes(
    cfg: &tokio_postgres::Config,
    me: &str,
    changed: &super::ChangeHook,
) -> std::result::Result<(), tokio_postgres::Error> {
    use futures_util::StreamExt;
    let (client, mut conn) = cfg.connect(NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m?
                && tx.send(n.payload().to_string()).is_err()
            {
                break;
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client
        .batch_execute(&format!("LISTEN {}", super::CHANGES_CHANNEL))
        .await?;
    tracing::debug!("listening for changes of other processes");
    while let Some(from) = rx.recv().await {
        if from != me {
            changed();
        }
    }
    match driver.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}
