//! The embedded store: one OGC GeoPackage 1.3 file (SQLite), readable by GDAL and QGIS.
//!
//! - Feature tables `streets`, `communities`, `buildings`, `roads`, `grids`, `incidents` with
//!   GeoPackage geometry blobs in EPSG:4326 and the GeoPackage R-tree spatial index extension
//!   (the GeoPackage 1.4 triggers, which stay correct under UPSERT; they call `ST_MinX`…, which
//!   this module registers on every connection, as GDAL does).
//! - Attribute tables `plans`, `grid_workers`, `incident_history`, `audit_log`; `plan_assignments`
//!   and `wangge_schema` are plain tables.
//! - Durability: WAL journal, `synchronous=FULL` — a commit is on disk (fsync of the WAL) before it
//!   is acknowledged, so it survives `kill -9` and power loss.
//! - One writer thread takes every write; writes that arrive together share one transaction
//!   (group commit), each inside its own savepoint so one failing write rolls back alone.
//!   Readers use a small pool of connections; `busy_timeout` covers other processes.

use super::prelude::*;
use super::wkb::{from_gpkg, gpkg_envelope, to_gpkg};
use super::{
    AuditEntry, BuildingRecord, CommunityRecord, Feature, FeaturePage, FeatureQuery, GpkgError,
    GridHit, GridRecord, IncidentFilter, Layer, NewPlan, Plan, PlanStatus, Result, SCHEMA_VERSION,
    Store, StoreError, Street, TokenRecord, Upserted, Worker, check_filters, check_history,
    check_plan, now, page, parse_enum, pick_grid, state_name, streets_of, text_ts, ts_text,
};
use crate::incident::{Case, HistoryEntry};
use crate::model::schema;
use crate::model::{Building, Community, HouseholdSource, Road};
use async_trait::async_trait;
use geo::{Geometry, LineString, MultiPolygon};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

mod auth;
mod cases;
mod edits;
mod export;
mod features;
mod file;
mod plans;
mod reference;
pub mod styles;
use self::{file::*, reference::*};
pub use export::write_layer;

type Done = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Done + Send>;

/// The GeoPackage store.
pub struct GpkgStore {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn be(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()))
        }
        _ => GpkgError::Sqlite(e).into(),
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Backend(format!("{}: cannot open: {e}", path.display())))?;
    configure(&c).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            StoreError::NotGeoPackage(format!(
                "{}: not a GeoPackage (not an SQLite database)",
                path.display()
            ))
        }
        e => StoreError::Backend(format!("{}: {e}", path.display())),
    })?;
    Ok(c)
}

impl GpkgStore {
    /// Open (or create) the GeoPackage at `path`.
    ///
    /// # Errors
    /// Not a GeoPackage, a newer schema, or the file cannot be created.
    pub fn open(path: &Path) -> Result<GpkgStore> {
        // an empty file (`touch w.gpkg`) holds nothing to keep: it is made a store like a new path
        let empty = path.metadata().is_ok_and(|m| m.is_file() && m.len() == 0);
        if !path.exists() || empty {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Backend(format!("{}: cannot create: {e}", dir.display()))
                })?;
            }
            // created whole under a temporary name, then renamed into place
            let tmp = path.with_extension(format!("gpkg.tmp{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            {
                let c = Connection::open(&tmp).map_err(|e| {
                    StoreError::Backend(format!("{}: cannot create: {e}", tmp.display()))
                })?;
                register_functions(&c).map_err(be)?;
                c.execute_batch("BEGIN").map_err(be)?;
                create_schema(&c).map_err(be)?;
                c.execute_batch("COMMIT").map_err(be)?;
            }
            std::fs::rename(&tmp, path).map_err(|e| {
                StoreError::Backend(format!("{}: cannot create: {e}", path.display()))
            })?;
        }
        {
            // checked before anything is set on the file (WAL mode would change another
            // program's database)
            let probe = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| StoreError::Backend(format!("{}: cannot open: {e}", path.display())))?;
            check_file(&probe, path)?;
        }
        let w = open_conn(path)?;
        file::migrate(&w).map_err(be)?;
        file::rtree_triggers_1_3(&w).map_err(be)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wangge-gpkg-writer".into())
            .spawn(move || writer_loop(&w, &rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(GpkgStore {
            path: path.to_path_buf(),
            writer: Mutex::new(tx),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let carried = crate::store::context::Carried::take();
        let job: Job = Box::new(move |c: &Connection| -> Done {
            carried.run(move || -> Done {
                if let Err(e) = c.execute_batch("SAVEPOINT job") {
                    let e = be(e);
                    return Box::new(move |_| {
                        let _ = tx.send(Err(e));
                    });
                }
                match f(c) {
                    Ok(v) => match c.execute_batch("RELEASE job") {
                        Ok(()) => Box::new(move |commit: Result<()>| {
                            let _ = tx.send(commit.map(|()| v));
                        }),
                        Err(e) => {
                            let e = be(e);
                            Box::new(move |_| {
                                let _ = tx.send(Err(e));
                            })
                        }
                    },
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
                        Box::new(move |_| {
                            let _ = tx.send(Err(e));
                        })
                    }
                }
            })
        });
        self.writer
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the writer dropped a write".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let c = pool.lock().ok().and_then(|mut p| p.pop());
            let c = match c {
                Some(c) => c,
                None => open_conn(&path)?,
            };
            c.execute_batch("BEGIN").map_err(be)?;
            let r = f(&c);
            let _ = c.execute_batch("COMMIT");
            if let Ok(mut p) = pool.lock()
                && p.len() < 16
            {
                p.push(c);
            }
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

fn writer_loop(c: &Connection, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < 1024 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let began = c.execute_batch("BEGIN IMMEDIATE").is_ok();
        let dones: Vec<Done> = jobs.into_iter().map(|j| j(c)).collect();
        let commit = if began {
            let r = c.execute_batch("COMMIT").map_err(be);
            if r.is_err() {
                let _ = c.execute_batch("ROLLBACK");
            }
            r
        } else {
            Ok(())
        };
        for d in dones {
            d(commit.clone());
        }
    }
}

// ---- row helpers --------------------------------------------------------------------------

fn mp_of(b: &[u8]) -> Result<MultiPolygon> {
    match from_gpkg(b).map_err(|e| StoreError::Backend(e.to_string()))? {
        Geometry::MultiPolygon(m) => Ok(m),
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        _ => Err(StoreError::Backend(
            "expected a polygon geometry in the store".into(),
        )),
    }
}

/// One audit line, with the address of the request's client (the log is append-only: triggers
/// refuse updates and deletes).
fn audit_in(c: &Connection, who: &str, action: &str, target: &str, detail: &str) -> Result<()> {
    let client = crate::store::context::client();
    c.prepare_cached(
        "INSERT INTO audit_log (at, who, action, target, detail, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| s.execute(params![ts_text(now()), who, action, target, detail, client]))
    .map_err(be)?;
    Ok(())
}

/// A street's outline: the union of its communities (their parts side by side if the union fails).
pub(crate) fn street_geometry(parts: &[&MultiPolygon]) -> MultiPolygon {
    let polys: Vec<geo::Polygon> = parts.iter().flat_map(|m| m.0.iter().cloned()).collect();
    let u = std::panic::catch_unwind(|| geo::unary_union(&polys));
    match u {
        Ok(m) if !m.0.is_empty() => m,
        _ => MultiPolygon(polys),
    }
}

#[async_trait]
impl Store for GpkgStore {
    fn describe(&self) -> String {
        format!("GeoPackage {}", self.path.display())
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM wangge_schema", [], |_| Ok(()))
                .map_err(be)
        })
        .await
    }

    /// A thread asks the writer's connection for SQLite's `data_version` every 200 ms: on that
    /// connection it moves only when another connection — another process, the command line —
    /// commits, never for this store's own writes (a watcher on a connection of its own saw
    /// every report the server wrote as a foreign change, and threw the caches away each time).
    fn watch_changes(&self, changed: super::ChangeHook) {
        let Ok(writer) = self.writer.lock().map(|w| w.clone()) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("gpkg-watch".into())
            .spawn(move || {
                let version = || -> Option<i64> {
                    let (tx, rx) = mpsc::channel();
                    let job: Job = Box::new(move |c: &Connection| -> Done {
                        let _ = tx.send(
                            c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                                .ok(),
                        );
                        Box::new(|_| {})
                    });
                    writer.send(job).ok()?;
                    rx.recv().ok().flatten()
                };
                let mut last = version();
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let now = version();
                    if now.is_none() {
                        // the store is gone
                        return;
                    }
                    if now != last {
                        last = now;
                        changed();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot watch for changes: {e}");
        }
    }
}
