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

use super::wkb::{from_gpkg, gpkg_envelope, to_gpkg};
use super::{
    AuditEntry, BuildingRecord, CommunityRecord, Feature, FeaturePage, FeatureQuery, GridHit,
    GridRecord, IncidentFilter, Layer, NewPlan, Plan, PlanStatus, Result, SCHEMA_VERSION, Store,
    StoreError, Street, TokenRecord, Upserted, Worker, check_filters, check_history, check_plan,
    now, page, parse_enum, pick_grid, state_name, streets_of, text_ts, ts_text,
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

const GPKG_APPLICATION_ID: i64 = 0x4750_4B47;
const GPKG_USER_VERSION: i64 = 10300;

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
        _ => StoreError::Backend(e.to_string()),
    }
}

fn blob_env(ctx: &rusqlite::functions::Context<'_>) -> rusqlite::Result<Option<[f64; 4]>> {
    match ctx.get_raw(0) {
        ValueRef::Blob(b) => {
            gpkg_envelope(b).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        }
        _ => Ok(None),
    }
}

/// The SQL functions the GeoPackage R-tree triggers call.
fn register_functions(c: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for (name, k) in [
        ("ST_MinX", 0),
        ("ST_MaxX", 1),
        ("ST_MinY", 2),
        ("ST_MaxY", 3),
    ] {
        c.create_scalar_function(name, 1, flags, move |ctx| Ok(blob_env(ctx)?.map(|e| e[k])))?;
    }
    c.create_scalar_function("ST_IsEmpty", 1, flags, |ctx| Ok(blob_env(ctx)?.is_none()))?;
    Ok(())
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    register_functions(c)
}

const WGS84_WKT: &str = r#"GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]"#;

/// Feature tables: (name, geometry type, columns after `fid` and `geom`).
const FEATURE_TABLES: &[(&str, &str, &str)] = &[
    (
        "streets",
        "MULTIPOLYGON",
        "code TEXT NOT NULL UNIQUE, communities INTEGER NOT NULL DEFAULT 0, households INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "communities",
        "MULTIPOLYGON",
        "code TEXT NOT NULL UNIQUE, name TEXT, street TEXT, households INTEGER NOT NULL DEFAULT 0, buildings INTEGER NOT NULL DEFAULT 0, updated_at DATETIME",
    ),
    (
        "buildings",
        "MULTIPOLYGON",
        "building_id TEXT NOT NULL UNIQUE, community TEXT, households INTEGER NOT NULL, household_source TEXT NOT NULL, updated_at DATETIME",
    ),
    ("roads", "LINESTRING", "highway TEXT, name TEXT"),
    (
        "grids",
        "MULTIPOLYGON",
        "plan_id INTEGER NOT NULL REFERENCES plans(id), code TEXT NOT NULL, name TEXT, community TEXT NOT NULL, street TEXT, households INTEGER NOT NULL, buildings INTEGER NOT NULL, weight REAL NOT NULL, band TEXT NOT NULL, valid_from DATETIME, valid_to DATETIME, UNIQUE (plan_id, code)",
    ),
    (
        "incidents",
        "POINT",
        "incident_id TEXT NOT NULL UNIQUE, category TEXT NOT NULL, description TEXT NOT NULL, source TEXT NOT NULL, reporter TEXT, media TEXT NOT NULL, reported_at DATETIME NOT NULL, grid TEXT, community TEXT, street TEXT, state TEXT NOT NULL, level TEXT NOT NULL, unit TEXT, due_at DATETIME, closed_at DATETIME, escalations INTEGER NOT NULL, returns INTEGER NOT NULL, score INTEGER, duplicate_of TEXT",
    ),
];

const ATTRIBUTE_TABLES: &[(&str, &str)] = &[
    (
        "plans",
        "id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, communities TEXT NOT NULL, valid_from DATETIME, valid_to DATETIME, created_by TEXT NOT NULL, created_at DATETIME NOT NULL, published_at DATETIME, params TEXT NOT NULL, metrics TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1",
    ),
    (
        "grid_workers",
        "fid INTEGER PRIMARY KEY AUTOINCREMENT, grid_code TEXT NOT NULL UNIQUE, name TEXT NOT NULL, phone TEXT, updated_at DATETIME",
    ),
    (
        "incident_history",
        "fid INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL REFERENCES incidents(incident_id), seq INTEGER NOT NULL, at DATETIME NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, note TEXT NOT NULL, UNIQUE (incident_id, seq)",
    ),
    (
        "audit_log",
        "fid INTEGER PRIMARY KEY AUTOINCREMENT, at DATETIME NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL",
    ),
];

/// The GeoPackage core tables (spatial reference systems, contents, geometry columns, extensions).
fn create_core(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(&format!(
        "PRAGMA application_id = {GPKG_APPLICATION_ID}; PRAGMA user_version = {GPKG_USER_VERSION};"
    ))?;
    c.execute_batch(
        "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
           organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
           definition TEXT NOT NULL, description TEXT);
         CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
           identifier TEXT UNIQUE, description TEXT DEFAULT '',
           last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
           min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
           CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
         CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
           geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
           CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
           CONSTRAINT uk_gc_table_name UNIQUE (table_name),
           CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
           CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
         CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
           definition TEXT NOT NULL, scope TEXT NOT NULL,
           CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));",
    )?;
    c.execute(
        "INSERT INTO gpkg_spatial_ref_sys VALUES
           ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
           ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system'),
           ('WGS 84 geodetic', 4326, 'EPSG', 4326, ?1, 'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid')",
        [WGS84_WKT],
    )?;
    Ok(())
}

/// A feature table with its GeoPackage registration and R-tree index.
fn create_feature_table(c: &Connection, t: &str, gtype: &str, cols: &str) -> rusqlite::Result<()> {
    c.execute_batch(&format!(
        "CREATE TABLE {t} (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {gtype}, {cols});"
    ))?;
    c.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES (?1, 'features', ?1, ?2, 4326)",
        params![t, format!("wangge {t}")],
    )?;
    c.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?1, 'geom', ?2, 4326, 0, 0)",
        params![t, gtype],
    )?;
    c.execute(
        "INSERT INTO gpkg_extensions VALUES (?1, 'geom', 'gpkg_rtree_index', 'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        [t],
    )?;
    let r = format!("rtree_{t}_geom");
    c.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {r} USING rtree(id, minx, maxx, miny, maxy);
         CREATE TRIGGER {r}_insert AFTER INSERT ON {t}
           WHEN (new.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom))
         BEGIN
           INSERT OR REPLACE INTO {r} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom));
         END;
         CREATE TRIGGER {r}_update6 AFTER UPDATE OF geom ON {t}
           WHEN OLD.fid = NEW.fid AND (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
             AND (OLD.geom NOTNULL AND NOT ST_IsEmpty(OLD.geom))
         BEGIN
           UPDATE {r} SET minx = ST_MinX(NEW.geom), maxx = ST_MaxX(NEW.geom), miny = ST_MinY(NEW.geom), maxy = ST_MaxY(NEW.geom)
             WHERE id = NEW.fid;
         END;
         CREATE TRIGGER {r}_update7 AFTER UPDATE OF geom ON {t}
           WHEN OLD.fid = NEW.fid AND (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
             AND (OLD.geom ISNULL OR ST_IsEmpty(OLD.geom))
         BEGIN
           INSERT INTO {r} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom));
         END;
         CREATE TRIGGER {r}_update2 AFTER UPDATE OF geom ON {t}
           WHEN OLD.fid = NEW.fid AND (NEW.geom IS NULL OR ST_IsEmpty(NEW.geom))
         BEGIN
           DELETE FROM {r} WHERE id = OLD.fid;
         END;
         CREATE TRIGGER {r}_update5 AFTER UPDATE ON {t}
           WHEN OLD.fid != NEW.fid AND (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
         BEGIN
           DELETE FROM {r} WHERE id = OLD.fid;
           INSERT INTO {r} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom));
         END;
         CREATE TRIGGER {r}_update4 AFTER UPDATE ON {t}
           WHEN OLD.fid != NEW.fid AND (NEW.geom IS NULL OR ST_IsEmpty(NEW.geom))
         BEGIN
           DELETE FROM {r} WHERE id IN (OLD.fid, NEW.fid);
         END;
         CREATE TRIGGER {r}_delete AFTER DELETE ON {t}
           WHEN old.geom NOT NULL
         BEGIN
           DELETE FROM {r} WHERE id = OLD.fid;
         END;"
    ))?;
    Ok(())
}

fn create_schema(c: &Connection) -> rusqlite::Result<()> {
    create_core(c)?;
    // attribute tables first: grids reference plans
    for (t, cols) in ATTRIBUTE_TABLES {
        c.execute_batch(&format!("CREATE TABLE {t} ({cols});"))?;
        c.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description) VALUES (?1, 'attributes', ?1, ?2)",
            params![t, format!("wangge {t}")],
        )?;
    }
    for (t, gtype, cols) in FEATURE_TABLES {
        create_feature_table(c, t, gtype, cols)?;
    }
    c.execute_batch(
        "CREATE TABLE plan_assignments (plan_id INTEGER NOT NULL REFERENCES plans(id), building_id TEXT NOT NULL,
           grid_code TEXT NOT NULL, PRIMARY KEY (plan_id, building_id)) WITHOUT ROWID;
         CREATE INDEX buildings_community ON buildings(community);
         CREATE INDEX grids_community ON grids(community);
         CREATE INDEX incidents_reported ON incidents(reported_at);
         CREATE INDEX incidents_grid ON incidents(grid);
         CREATE TABLE api_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash TEXT NOT NULL UNIQUE,
           role TEXT NOT NULL, scope TEXT, label TEXT NOT NULL, created_at DATETIME NOT NULL, revoked_at DATETIME);
         CREATE TABLE wangge_schema (version INTEGER NOT NULL);",
    )?;
    c.execute("INSERT INTO wangge_schema VALUES (?1)", [SCHEMA_VERSION])?;
    Ok(())
}

/// Check that an existing file is a wangge GeoPackage of a known schema version.
fn check_file(c: &Connection, path: &Path) -> Result<()> {
    let app: i64 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| {
            StoreError::NotGeoPackage(format!("{}: not a GeoPackage ({e})", path.display()))
        })?;
    if app != GPKG_APPLICATION_ID && app != 0x4750_3130 {
        return Err(StoreError::NotGeoPackage(format!(
            "{}: not a GeoPackage (SQLite application_id is {app:#x}, expected 0x47504b47 'GPKG')",
            path.display()
        )));
    }
    let v: Option<i64> = c
        .query_row(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='wangge_schema'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(be)?
        .map(|()| c.query_row("SELECT max(version) FROM wangge_schema", [], |r| r.get(0)))
        .transpose()
        .map_err(be)?;
    match v {
        None => Err(StoreError::NotGeoPackage(format!(
            "{}: a GeoPackage, but not a wangge store (no wangge_schema table); give a new path to create one",
            path.display()
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Schema(format!(
            "{}: schema version {v} is newer than this wangge knows ({SCHEMA_VERSION}); use a newer wangge",
            path.display()
        ))),
        Some(_) => Ok(()),
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
        if !path.exists() {
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
        let w = open_conn(path)?;
        check_file(&w, path)?;
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
        let job: Job = Box::new(move |c: &Connection| -> Done {
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

fn audit_in(c: &Connection, who: &str, action: &str, target: &str, detail: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit_log (at, who, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![ts_text(now()), who, action, target, detail]))
    .map_err(be)?;
    Ok(())
}

fn touch(c: &Connection, table: &str) -> Result<()> {
    // gpkg_contents: last change and extent
    let ext: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = c
        .query_row(
            &format!("SELECT min(minx), min(miny), max(maxx), max(maxy) FROM rtree_{table}_geom"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(be)?;
    c.execute(
        "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), min_x = ?2, min_y = ?3, max_x = ?4, max_y = ?5 WHERE table_name = ?1",
        params![table, ext.0, ext.1, ext.2, ext.3],
    )
    .map_err(be)?;
    Ok(())
}

fn read_communities(c: &Connection) -> Result<Vec<CommunityRecord>> {
    let mut s = c
        .prepare_cached(
            "SELECT code, name, street, households, buildings, geom FROM communities ORDER BY code",
        )
        .map_err(be)?;
    let rows = s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })
        .map_err(be)?;
    let mut out = Vec::new();
    for row in rows {
        let (code, name, street, hh, nb, g) = row.map_err(be)?;
        out.push(CommunityRecord {
            community: Community {
                code,
                name,
                street,
                geometry: mp_of(&g)?,
            },
            households: hh.max(0) as u64,
            buildings: nb.max(0) as u64,
        });
    }
    Ok(out)
}

/// Place every stored building in its community, recount communities, rebuild streets.
fn recount(c: &Connection, reassign: bool) -> Result<()> {
    if reassign {
        let comms = read_communities(c)?;
        let cs: Vec<Community> = comms.into_iter().map(|r| r.community).collect();
        let mut s = c
            .prepare("SELECT fid, geom, community FROM buildings")
            .map_err(be)?;
        let rows: Vec<(i64, Vec<u8>, Option<String>)> = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)?;
        let bs: Vec<Building> = rows
            .iter()
            .map(|(_, g, _)| {
                Ok(Building {
                    id: String::new(),
                    households: 0,
                    source: HouseholdSource::Given,
                    weight: 0.0,
                    geometry: mp_of(g)?,
                })
            })
            .collect::<Result<_>>()?;
        let owner = crate::partition::assign_buildings(&cs, &bs);
        let mut up = c
            .prepare_cached("UPDATE buildings SET community = ?2 WHERE fid = ?1")
            .map_err(be)?;
        for ((fid, _, old), o) in rows.iter().zip(owner) {
            let new = o.map(|(ci, _)| cs[ci].code.clone());
            if &new != old {
                up.execute(params![fid, new]).map_err(be)?;
            }
        }
    }
    c.execute_batch(
        "UPDATE communities SET
           households = coalesce((SELECT sum(households) FROM buildings b WHERE b.community = communities.code), 0),
           buildings = (SELECT count(*) FROM buildings b WHERE b.community = communities.code);",
    )
    .map_err(be)?;
    // streets: the union of their communities
    let comms = read_communities(c)?;
    let streets = streets_of(&comms);
    c.execute("DELETE FROM streets", []).map_err(be)?;
    let mut ins = c
        .prepare_cached(
            "INSERT INTO streets (geom, code, communities, households) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(be)?;
    for s in &streets {
        let parts: Vec<&MultiPolygon> = comms
            .iter()
            .filter(|r| r.community.street.as_deref() == Some(s.code.as_str()))
            .map(|r| &r.community.geometry)
            .collect();
        let g = street_geometry(&parts);
        ins.execute(params![
            to_gpkg(&Geometry::MultiPolygon(g), 4326),
            s.code,
            s.communities,
            s.households as i64
        ])
        .map_err(be)?;
    }
    touch(c, "streets")?;
    touch(c, "communities")?;
    touch(c, "buildings")?;
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

fn plan_get(c: &Connection, id: i64) -> Result<Plan> {
    let row = c
        .prepare_cached(
            "SELECT id, status, communities, valid_from, valid_to, created_by, created_at, published_at, params, metrics, version,
               (SELECT count(*) FROM grids g WHERE g.plan_id = p.id), (SELECT coalesce(sum(households), 0) FROM grids g WHERE g.plan_id = p.id)
             FROM plans p WHERE id = ?1",
        )
        .map_err(be)?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
            ))
        })
        .optional()
        .map_err(be)?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })?;
    let opt = |s: Option<String>| s.as_deref().map(text_ts).transpose();
    Ok(Plan {
        id: row.0,
        status: PlanStatus::parse(&row.1)?,
        communities: serde_json::from_str(&row.2)
            .map_err(|e| StoreError::Backend(e.to_string()))?,
        valid_from: opt(row.3)?,
        valid_to: opt(row.4)?,
        created_by: row.5,
        created_at: text_ts(&row.6)?,
        published_at: opt(row.7)?,
        params: serde_json::from_str(&row.8).unwrap_or(Value::Null),
        metrics: serde_json::from_str(&row.9).unwrap_or(Value::Null),
        version: row.10,
        grids: row.11.max(0) as u64,
        households: row.12.max(0) as u64,
    })
}

const CASE_COLS: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, geom";

fn case_params(k: &Case) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let t = |s: &Option<String>| s.clone().map_or(V::Null, V::Text);
    let tt = |x: Option<i64>| x.map_or(V::Null, |x| V::Text(ts_text(x)));
    vec![
        V::Text(k.id.clone()),
        V::Text(k.category.clone()),
        V::Text(k.description.clone()),
        V::Text(super::parse_enum_name(&k.source)),
        t(&k.reporter),
        V::Text(serde_json::to_string(&k.media).unwrap_or_else(|_| "[]".into())),
        V::Text(ts_text(k.reported_at)),
        t(&k.grid),
        t(&k.community),
        t(&k.street),
        V::Text(state_name(k.state)),
        V::Text(super::parse_enum_name(&k.level)),
        t(&k.unit),
        tt(k.due_at),
        tt(k.closed_at),
        V::Integer(i64::from(k.escalations)),
        V::Integer(i64::from(k.returns)),
        k.score.map_or(V::Null, |s| V::Integer(i64::from(s))),
        t(&k.duplicate_of),
        V::Blob(to_gpkg(
            &Geometry::Point(geo::Point::new(k.lon, k.lat)),
            4326,
        )),
    ]
}

type CaseRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Vec<u8>,
);

fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
        r.get(15)?,
        r.get(16)?,
        r.get(17)?,
        r.get(18)?,
        r.get(19)?,
    ))
}

fn case_of(c: &Connection, row: CaseRow) -> Result<Case> {
    let opt = |s: Option<String>| s.as_deref().map(text_ts).transpose();
    let (lon, lat) = match from_gpkg(&row.19).map_err(|e| StoreError::Backend(e.to_string()))? {
        Geometry::Point(p) => (p.x(), p.y()),
        _ => {
            return Err(StoreError::Backend(
                "incident geometry is not a point".into(),
            ));
        }
    };
    let mut hs = c
        .prepare_cached(
            "SELECT at, who, action, from_state, to_state, note FROM incident_history WHERE incident_id = ?1 ORDER BY seq",
        )
        .map_err(be)?;
    let history = hs
        .query_map([&row.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(be)?
        .map(|h| {
            let h = h.map_err(be)?;
            Ok(HistoryEntry {
                at: text_ts(&h.0)?,
                who: h.1,
                action: h.2,
                from: parse_enum(&h.3)?,
                to: parse_enum(&h.4)?,
                note: h.5,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Case {
        id: row.0,
        category: row.1,
        description: row.2,
        source: parse_enum(&row.3)?,
        reporter: row.4,
        media: serde_json::from_str(&row.5).unwrap_or_default(),
        reported_at: text_ts(&row.6)?,
        grid: row.7,
        community: row.8,
        street: row.9,
        state: parse_enum(&row.10)?,
        level: parse_enum(&row.11)?,
        unit: row.12,
        due_at: opt(row.13)?,
        closed_at: opt(row.14)?,
        escalations: row.15.max(0) as u32,
        returns: row.16.max(0) as u32,
        score: row.17.and_then(|s| u8::try_from(s).ok()),
        duplicate_of: row.18,
        lon,
        lat,
        history,
    })
}

fn get_case(c: &Connection, id: &str) -> Result<Case> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {CASE_COLS} FROM incidents WHERE incident_id = ?1"
        ))
        .map_err(be)?
        .query_row([id], case_row)
        .optional()
        .map_err(be)?
        .ok_or_else(|| StoreError::NotFound {
            what: "incident",
            id: id.to_string(),
        })?;
    case_of(c, row)
}

fn insert_history(c: &Connection, id: &str, from: usize, h: &[HistoryEntry]) -> Result<()> {
    let mut s = c
        .prepare_cached(
            "INSERT INTO incident_history (incident_id, seq, at, who, action, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(be)?;
    for (i, e) in h.iter().enumerate().skip(from) {
        s.execute(params![
            id,
            i as i64,
            ts_text(e.at),
            e.who,
            e.action,
            state_name(e.from),
            state_name(e.to),
            e.note
        ])
        .map_err(be)?;
    }
    Ok(())
}

/// The select list of a layer's fields (after `t.fid, t.geom`), from the schema.
fn select_list(layer: Layer) -> String {
    let cols: Vec<&str> = schema::fields(layer).iter().map(|f| f.sql).collect();
    cols.join(", ")
}

fn sql_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => Value::Null,
    }
}

/// Features for a vector tile: R-tree candidates only, the listed properties only.
fn tile_features_in(
    c: &Connection,
    layer: Layer,
    bbox: [f64; 4],
    plan: Option<i64>,
    fields: &[String],
) -> Result<Vec<Feature>> {
    let table = layer.table();
    let chosen: Vec<(&String, &str)> = fields
        .iter()
        .filter_map(|f| schema::field_of(layer, f).map(|s| (f, s.sql)))
        .collect();
    let cols: String = chosen.iter().map(|(_, e)| format!(", {e}")).collect();
    let mut sql = format!(
        "SELECT t.geom{cols} FROM {table} t JOIN rtree_{table}_geom r ON r.id = t.fid \
         WHERE r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?"
    );
    let mut args: Vec<rusqlite::types::Value> = [bbox[0], bbox[2], bbox[1], bbox[3]]
        .into_iter()
        .map(rusqlite::types::Value::Real)
        .collect();
    if layer == Layer::Grids {
        if let Some(p) = plan {
            sql.push_str(" AND t.plan_id = ?");
            args.push(rusqlite::types::Value::Integer(p));
        } else {
            let at = ts_text(now());
            sql.push_str(" AND t.valid_from IS NOT NULL AND t.valid_from <= ? AND (t.valid_to IS NULL OR t.valid_to > ?)");
            args.push(rusqlite::types::Value::Text(at.clone()));
            args.push(rusqlite::types::Value::Text(at));
        }
    }
    sql.push_str(" ORDER BY t.fid");
    let mut s = c.prepare_cached(&sql).map_err(be)?;
    let mut rows = s.query(params_from_iter(args)).map_err(be)?;
    let mut feats = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        let geometry = match r.get_ref(0).map_err(be)? {
            ValueRef::Blob(b) => {
                Some(from_gpkg(b).map_err(|e| StoreError::Backend(e.to_string()))?)
            }
            _ => None,
        };
        let mut props = Map::new();
        for (i, (n, _)) in chosen.iter().enumerate() {
            props.insert((*n).clone(), sql_value(r.get_ref(1 + i).map_err(be)?));
        }
        feats.push(Feature {
            id: String::new(),
            geometry,
            properties: props,
        });
    }
    Ok(feats)
}

#[expect(
    clippy::too_many_lines,
    reason = "a long sequence of steps not yet split into phases (see scripts/house-figures)"
)]
fn features_in(c: &Connection, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
    let (table, cols) = (layer.table(), select_list(layer));
    let mut sql = format!("SELECT t.fid, t.geom, {cols} FROM {table} t");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if let Some(b) = q.bbox {
        sql.push_str(&format!(" JOIN rtree_{table}_geom r ON r.id = t.fid"));
        conds.push("r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?".into());
        for v in [b[0], b[2], b[1], b[3]] {
            args.push(rusqlite::types::Value::Real(v));
        }
    }
    if layer == Layer::Grids {
        if let Some(p) = q.plan {
            conds.push("t.plan_id = ?".into());
            args.push(rusqlite::types::Value::Integer(p));
        } else {
            let at = ts_text(q.at.unwrap_or_else(now));
            conds.push("t.valid_from IS NOT NULL AND t.valid_from <= ? AND (t.valid_to IS NULL OR t.valid_to > ?)".into());
            args.push(rusqlite::types::Value::Text(at.clone()));
            args.push(rusqlite::types::Value::Text(at));
        }
    }
    if layer == Layer::Incidents {
        if let Some(f) = q.from {
            conds.push("t.reported_at >= ?".into());
            args.push(rusqlite::types::Value::Text(ts_text(f)));
        }
        if let Some(t) = q.to {
            conds.push("t.reported_at < ?".into());
            args.push(rusqlite::types::Value::Text(ts_text(t)));
        }
    }
    for (k, v) in &q.equals {
        let Some(f) = schema::field_of(layer, k) else {
            return Err(StoreError::Invalid(format!(
                "{k}: not a property of {}",
                layer.name()
            )));
        };
        conds.push(format!("{} = ?", f.sql));
        args.push(rusqlite::types::Value::Text(v.clone()));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    // without a bbox the page can be cut in SQL (with a bbox, candidates from the R-tree are
    // tested exactly first)
    let mut matched = None;
    if q.bbox.is_none() {
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let n: i64 = c
            .prepare_cached(&format!("SELECT count(*) FROM {table} t{where_}"))
            .map_err(be)?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))
            .map_err(be)?;
        matched = Some(n.max(0) as u64);
        sql.push_str(" ORDER BY t.fid LIMIT ? OFFSET ?");
        args.push(rusqlite::types::Value::Integer(if q.limit == 0 {
            -1
        } else {
            q.limit as i64
        }));
        args.push(rusqlite::types::Value::Integer(q.offset as i64));
    } else {
        sql.push_str(" ORDER BY t.fid");
    }
    let names: Vec<&str> = schema::fields(layer).iter().map(|f| f.name).collect();
    let mut s = c.prepare_cached(&sql).map_err(be)?;
    let mut rows = s.query(params_from_iter(args)).map_err(be)?;
    let mut feats = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        let geometry = match r.get_ref(1).map_err(be)? {
            ValueRef::Blob(b) => {
                Some(from_gpkg(b).map_err(|e| StoreError::Backend(e.to_string()))?)
            }
            _ => None,
        };
        let mut props = Map::new();
        for (i, n) in names.iter().enumerate() {
            props.insert((*n).to_string(), sql_value(r.get_ref(2 + i).map_err(be)?));
        }
        let id = props
            .get(names[0])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        feats.push(Feature {
            id,
            geometry,
            properties: props,
        });
    }
    Ok(match matched {
        Some(matched) => FeaturePage {
            features: feats,
            matched,
        },
        None => page(feats, q),
    })
}

fn token_get(c: &Connection, cond: &str, v: &dyn rusqlite::ToSql) -> Result<Option<TokenRecord>> {
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

    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted> {
        let who = who.to_string();
        self.write(move |c| {
            let mut n = Upserted::default();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO communities (geom, code, name, street, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(code) DO UPDATE SET geom = excluded.geom, name = excluded.name, street = excluded.street, updated_at = excluded.updated_at",
                )
                .map_err(be)?;
            let mut exists = c
                .prepare_cached("SELECT 1 FROM communities WHERE code = ?1")
                .map_err(be)?;
            let t = ts_text(now());
            for it in &items {
                if exists.exists([&it.code]).map_err(be)? {
                    n.updated += 1;
                } else {
                    n.inserted += 1;
                }
                ins.execute(params![
                    to_gpkg(&Geometry::MultiPolygon(it.geometry.clone()), 4326),
                    it.code,
                    it.name,
                    it.street,
                    t
                ])
                .map_err(be)?;
            }
            recount(c, true)?;
            audit_in(c, &who, "put_communities", "communities", &format!("{} inserted, {} updated", n.inserted, n.updated))?;
            Ok(n)
        })
        .await
    }

    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted> {
        let who = who.to_string();
        self.write(move |c| {
            let cs: Vec<Community> = read_communities(c)?.into_iter().map(|r| r.community).collect();
            let owner = crate::partition::assign_buildings(&cs, &items);
            let mut n = Upserted::default();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO buildings (geom, building_id, community, households, household_source, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(building_id) DO UPDATE SET geom = excluded.geom, community = excluded.community, households = excluded.households,
                       household_source = excluded.household_source, updated_at = excluded.updated_at",
                )
                .map_err(be)?;
            let mut exists = c
                .prepare_cached("SELECT 1 FROM buildings WHERE building_id = ?1")
                .map_err(be)?;
            let t = ts_text(now());
            for (b, o) in items.iter().zip(owner) {
                if exists.exists([&b.id]).map_err(be)? {
                    n.updated += 1;
                } else {
                    n.inserted += 1;
                }
                ins.execute(params![
                    to_gpkg(&Geometry::MultiPolygon(b.geometry.clone()), 4326),
                    b.id,
                    o.map(|(ci, _)| cs[ci].code.clone()),
                    i64::from(b.households),
                    super::parse_enum_name(&b.source),
                    t
                ])
                .map_err(be)?;
            }
            recount(c, false)?;
            audit_in(c, &who, "put_buildings", "buildings", &format!("{} inserted, {} updated", n.inserted, n.updated))?;
            Ok(n)
        })
        .await
    }

    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64> {
        let who = who.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM roads", []).map_err(be)?;
            let mut ins = c
                .prepare_cached("INSERT INTO roads (geom, highway, name) VALUES (?1, ?2, ?3)")
                .map_err(be)?;
            for r in &roads {
                ins.execute(params![
                    to_gpkg(&Geometry::LineString(r.line.clone()), 4326),
                    r.highway,
                    r.name
                ])
                .map_err(be)?;
            }
            touch(c, "roads")?;
            audit_in(
                c,
                &who,
                "replace_roads",
                "roads",
                &format!("{} roads", roads.len()),
            )?;
            Ok(roads.len() as u64)
        })
        .await
    }

    async fn communities(&self) -> Result<Vec<CommunityRecord>> {
        self.read(read_communities).await
    }

    async fn streets(&self) -> Result<Vec<Street>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT code, communities, households FROM streets ORDER BY code")
                .map_err(be)?;
            s.query_map([], |r| {
                Ok(Street {
                    code: r.get(0)?,
                    communities: r.get::<_, i64>(1)?.max(0) as u32,
                    households: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
        .await
    }

    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>> {
        let filter: Option<Vec<String>> = communities.map(<[String]>::to_vec);
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT building_id, community, households, household_source, geom FROM buildings ORDER BY fid",
                )
                .map_err(be)?;
            let mut rows = s.query([]).map_err(be)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(be)? {
                let community: Option<String> = r.get(1).map_err(be)?;
                if let Some(f) = &filter
                    && !community.as_ref().is_some_and(|c| f.contains(c))
                {
                    continue;
                }
                let hh: i64 = r.get(2).map_err(be)?;
                let src: String = r.get(3).map_err(be)?;
                let g: Vec<u8> = r.get(4).map_err(be)?;
                out.push(BuildingRecord {
                    building: Building {
                        id: r.get(0).map_err(be)?,
                        households: u32::try_from(hh.max(0)).unwrap_or(u32::MAX),
                        source: parse_enum(&src)?,
                        weight: hh.max(0) as f64,
                        geometry: mp_of(&g)?,
                    },
                    community,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn roads(&self) -> Result<Vec<Road>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT highway, name, geom FROM roads ORDER BY fid")
                .map_err(be)?;
            let mut rows = s.query([]).map_err(be)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(be)? {
                let g: Vec<u8> = r.get(2).map_err(be)?;
                let line = match from_gpkg(&g).map_err(|e| StoreError::Backend(e.to_string()))? {
                    Geometry::LineString(l) => l,
                    _ => LineString(vec![]),
                };
                out.push(Road {
                    highway: r
                        .get::<_, Option<String>>(0)
                        .map_err(be)?
                        .unwrap_or_default(),
                    name: r.get(1).map_err(be)?,
                    line,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        self.write(move |c| {
            let comms = read_communities(c)?;
            check_plan(&plan, &comms)?;
            let t = ts_text(now());
            c.execute(
                "INSERT INTO plans (status, communities, created_by, created_at, params, metrics) VALUES ('draft', ?1, ?2, ?3, ?4, ?5)",
                params![
                    serde_json::to_string(&plan.communities).unwrap_or_default(),
                    plan.created_by,
                    t,
                    plan.params.to_string(),
                    plan.metrics.to_string()
                ],
            )
            .map_err(be)?;
            let id = c.last_insert_rowid();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO grids (geom, plan_id, code, name, community, street, households, buildings, weight, band) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(be)?;
            for g in &plan.grids {
                ins.execute(params![
                    to_gpkg(&Geometry::MultiPolygon(g.geometry.clone()), 4326),
                    id,
                    g.code,
                    g.name,
                    g.community,
                    g.street,
                    g.households as i64,
                    g.buildings as i64,
                    g.weight,
                    g.band
                ])
                .map_err(be)?;
            }
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO plan_assignments (plan_id, building_id, grid_code) VALUES (?1, ?2, ?3)",
                )
                .map_err(be)?;
            for (b, g) in &plan.assignment {
                ins.execute(params![id, b, g]).map_err(be)?;
            }
            touch(c, "grids")?;
            audit_in(c, &plan.created_by, "create_plan", &format!("plan {id}"), &format!("{} grids, communities {:?}", plan.grids.len(), plan.communities))?;
            plan_get(c, id)
        })
        .await
    }

    async fn plans(&self) -> Result<Vec<Plan>> {
        self.read(|c| {
            let ids: Vec<i64> = c
                .prepare_cached("SELECT id FROM plans ORDER BY id")
                .map_err(be)?
                .query_map([], |r| r.get(0))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            ids.into_iter().map(|id| plan_get(c, id)).collect()
        })
        .await
    }

    async fn plan(&self, id: i64) -> Result<Plan> {
        self.read(move |c| plan_get(c, id)).await
    }

    async fn plan_grids(&self, id: i64) -> Result<Vec<GridRecord>> {
        self.read(move |c| {
            plan_get(c, id)?;
            let mut s = c
                .prepare_cached(
                    "SELECT code, name, community, street, households, buildings, weight, band, geom, valid_from, valid_to FROM grids WHERE plan_id = ?1 ORDER BY fid",
                )
                .map_err(be)?;
            let mut rows = s.query([id]).map_err(be)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(be)? {
                let g: Vec<u8> = r.get(8).map_err(be)?;
                let vf: Option<String> = r.get(9).map_err(be)?;
                let vt: Option<String> = r.get(10).map_err(be)?;
                out.push(GridRecord {
                    code: r.get(0).map_err(be)?,
                    name: r.get(1).map_err(be)?,
                    community: r.get(2).map_err(be)?,
                    street: r.get(3).map_err(be)?,
                    households: r.get::<_, i64>(4).map_err(be)?.max(0) as u64,
                    buildings: r.get::<_, i64>(5).map_err(be)?.max(0) as u64,
                    weight: r.get(6).map_err(be)?,
                    band: r.get(7).map_err(be)?,
                    geometry: mp_of(&g)?,
                    valid_from: vf.as_deref().map(text_ts).transpose()?,
                    valid_to: vt.as_deref().map(text_ts).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>> {
        self.read(move |c| {
            plan_get(c, id)?;
            c.prepare_cached(
                "SELECT building_id, grid_code FROM plan_assignments WHERE plan_id = ?1 ORDER BY building_id",
            )
            .map_err(be)?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
        .await
    }

    async fn publish_plan(
        &self,
        id: i64,
        valid_from: i64,
        expected_version: Option<i64>,
        who: &str,
    ) -> Result<Plan> {
        let who = who.to_string();
        self.write(move |c| {
            let p = plan_get(c, id)?;
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
            let vf = ts_text(valid_from);
            let marks = vec!["?"; p.communities.len()].join(",");
            let sql = format!(
                "SELECT DISTINCT plan_id, min(valid_from) FROM grids WHERE plan_id != ? AND valid_from IS NOT NULL
                   AND (valid_to IS NULL OR valid_to > ?) AND community IN ({marks}) GROUP BY plan_id"
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![id.into(), rusqlite::types::Value::Text(vf.clone())];
            args.extend(p.communities.iter().map(|s| rusqlite::types::Value::Text(s.clone())));
            let prev: Vec<(i64, String)> = c
                .prepare(&sql)
                .map_err(be)?
                .query_map(params_from_iter(args.iter()), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            for (pid, from) in &prev {
                if from.as_str() >= vf.as_str() {
                    return Err(StoreError::Invalid(format!(
                        "plan {pid} takes effect at {from}, not before {vf}: publish from a later time"
                    )));
                }
            }
            let sql = format!(
                "UPDATE grids SET valid_to = ? WHERE plan_id != ? AND valid_from IS NOT NULL
                   AND (valid_to IS NULL OR valid_to > ?) AND community IN ({marks})"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![
                rusqlite::types::Value::Text(vf.clone()),
                id.into(),
                rusqlite::types::Value::Text(vf.clone()),
            ];
            args.extend(p.communities.iter().map(|s| rusqlite::types::Value::Text(s.clone())));
            c.execute(&sql, params_from_iter(args.iter())).map_err(be)?;
            c.execute(
                "UPDATE grids SET valid_from = ?2, valid_to = NULL WHERE plan_id = ?1",
                params![id, vf],
            )
            .map_err(be)?;
            let t = ts_text(now());
            c.execute(
                "UPDATE plans SET status = 'published', valid_from = ?2, published_at = ?3, version = version + 1 WHERE id = ?1",
                params![id, vf, t],
            )
            .map_err(be)?;
            for (pid, _) in &prev {
                let open: i64 = c
                    .query_row(
                        "SELECT count(*) FROM grids WHERE plan_id = ?1 AND valid_to IS NULL",
                        [pid],
                        |r| r.get(0),
                    )
                    .map_err(be)?;
                if open == 0 {
                    c.execute(
                        "UPDATE plans SET status = 'retired', valid_to = (SELECT max(valid_to) FROM grids WHERE plan_id = ?1), version = version + 1 WHERE id = ?1",
                        [pid],
                    )
                    .map_err(be)?;
                }
            }
            audit_in(c, &who, "publish_plan", &format!("plan {id}"), &format!("valid from {vf}; retired grids of plans {:?}", prev.iter().map(|p| p.0).collect::<Vec<_>>()))?;
            plan_get(c, id)
        })
        .await
    }

    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()> {
        let (code, who) = (grid_code.to_string(), who.to_string());
        self.write(move |c| {
            match &worker {
                Some(w) => c
                    .execute(
                        "INSERT INTO grid_workers (grid_code, name, phone, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(grid_code) DO UPDATE SET name = excluded.name, phone = excluded.phone, updated_at = excluded.updated_at",
                        params![code, w.name, w.phone, ts_text(now())],
                    )
                    .map_err(be)?,
                None => c
                    .execute("DELETE FROM grid_workers WHERE grid_code = ?1", [&code])
                    .map_err(be)?,
            };
            audit_in(c, &who, "set_worker", &format!("grid {code}"), &worker.as_ref().map_or("removed".into(), |w| w.name.clone()))
        })
        .await
    }

    async fn worker(&self, grid_code: &str) -> Result<Option<Worker>> {
        let code = grid_code.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT name, phone FROM grid_workers WHERE grid_code = ?1")
                .map_err(be)?
                .query_row([&code], |r| {
                    Ok(Worker {
                        name: r.get(0)?,
                        phone: r.get(1)?,
                    })
                })
                .optional()
                .map_err(be)
        })
        .await
    }

    async fn tile_features(
        &self,
        layer: Layer,
        bbox: [f64; 4],
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        self.read(move |c| tile_features_in(c, layer, bbox, plan, &fields).map(Some))
            .await
    }

    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
        check_filters(layer, q)?;
        let q = q.clone();
        self.read(move |c| features_in(c, layer, &q)).await
    }

    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>> {
        self.read(move |c| {
            let t = ts_text(at);
            let mut s = c
                .prepare_cached(
                    "SELECT g.geom, g.code, g.name, g.community, g.street, g.plan_id, w.name, w.phone
                     FROM rtree_grids_geom r JOIN grids g ON g.fid = r.id LEFT JOIN grid_workers w ON w.grid_code = g.code
                     WHERE r.minx <= ?1 AND r.maxx >= ?1 AND r.miny <= ?2 AND r.maxy >= ?2
                       AND g.valid_from IS NOT NULL AND g.valid_from <= ?3 AND (g.valid_to IS NULL OR g.valid_to > ?3)
                     ORDER BY g.code",
                )
                .map_err(be)?;
            let rows: Vec<(MultiPolygon, GridHit)> = s
                .query_map(params![lon, lat, t], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        GridHit {
                            code: r.get(1)?,
                            name: r.get(2)?,
                            community: r.get(3)?,
                            street: r.get(4)?,
                            plan: r.get(5)?,
                            worker: r.get::<_, Option<String>>(6)?.map(|name| Worker {
                                name,
                                phone: r.get(7).ok().flatten(),
                            }),
                        },
                    ))
                })
                .map_err(be)?
                .map(|x| {
                    let (g, h) = x.map_err(be)?;
                    Ok((mp_of(&g)?, h))
                })
                .collect::<Result<_>>()?;
            let i = pick_grid(rows.iter().enumerate().map(|(i, (g, _))| (g, i)), lon, lat);
            Ok(i.map(|i| rows[i].1.clone()))
        })
        .await
    }

    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()> {
        let (case, who) = (case.clone(), who.to_string());
        self.write(move |c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM incidents WHERE incident_id = ?1")
                .map_err(be)?
                .exists([&case.id])
                .map_err(be)?;
            if exists {
                return Err(StoreError::Conflict(format!(
                    "incident {} already exists",
                    case.id
                )));
            }
            c.prepare_cached(&format!(
                "INSERT INTO incidents ({CASE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
            ))
            .map_err(be)?
            .execute(params_from_iter(case_params(&case)))
            .map_err(be)?;
            insert_history(c, &case.id, 0, &case.history)?;
            audit_in(c, &who, "insert_incident", &format!("incident {}", case.id), &case.category)
        })
        .await
    }

    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()> {
        let (case, who) = (case.clone(), who.to_string());
        self.write(move |c| {
            let old = get_case(c, &case.id)?;
            check_history(&old, &case, expected_history)?;
            let sets: Vec<String> = CASE_COLS
                .split(", ")
                .enumerate()
                .skip(1)
                .map(|(i, col)| format!("{col} = ?{}", i + 1))
                .collect();
            c.prepare_cached(&format!(
                "UPDATE incidents SET {} WHERE incident_id = ?1",
                sets.join(", ")
            ))
            .map_err(be)?
            .execute(params_from_iter(case_params(&case)))
            .map_err(be)?;
            insert_history(c, &case.id, old.history.len(), &case.history)?;
            audit_in(
                c,
                &who,
                "update_incident",
                &format!("incident {}", case.id),
                &state_name(case.state),
            )
        })
        .await
    }

    async fn incident(&self, id: &str) -> Result<Case> {
        let id = id.to_string();
        self.read(move |c| get_case(c, &id)).await
    }

    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>> {
        let f = f.clone();
        self.read(move |c| {
            let mut conds: Vec<&str> = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let text = rusqlite::types::Value::Text;
            if let Some(g) = &f.grid {
                conds.push("grid = ?");
                args.push(text(g.clone()));
            }
            if let Some(g) = &f.community {
                conds.push("community = ?");
                args.push(text(g.clone()));
            }
            if let Some(s) = f.state {
                conds.push("state = ?");
                args.push(text(state_name(s)));
            }
            if let Some(s) = &f.category {
                conds.push("category = ?");
                args.push(text(s.clone()));
            }
            if let Some(t) = f.overdue_at {
                conds.push("due_at IS NOT NULL AND due_at < ? AND state NOT IN ('closed', 'rejected', 'voided', 'suspended')");
                args.push(text(ts_text(t)));
            }
            if let Some(t) = f.from {
                conds.push("reported_at >= ?");
                args.push(text(ts_text(t)));
            }
            if let Some(t) = f.to {
                conds.push("reported_at < ?");
                args.push(text(ts_text(t)));
            }
            let mut sql = format!("SELECT {CASE_COLS} FROM incidents");
            if !conds.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conds.join(" AND "));
            }
            sql.push_str(" ORDER BY reported_at, incident_id LIMIT ? OFFSET ?");
            args.push(rusqlite::types::Value::Integer(if f.limit == 0 { -1 } else { f.limit as i64 }));
            args.push(rusqlite::types::Value::Integer(f.offset as i64));
            let rows: Vec<CaseRow> = c
                .prepare_cached(&sql)
                .map_err(be)?
                .query_map(params_from_iter(args), case_row)
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            rows.into_iter().map(|r| case_of(c, r)).collect()
        })
        .await
    }

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
            let rows: Vec<(String, String, String, String, String)> = c
                .prepare_cached(
                    "SELECT at, who, action, target, detail FROM audit_log ORDER BY fid DESC LIMIT ?1",
                )
                .map_err(be)?
                .query_map([limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
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
                    })
                })
                .collect()
        })
        .await
    }
}

/// Write one layer as a new GeoPackage file (for `wangge export --format gpkg`): a feature table
/// `name` with the given columns, created whole under a temporary name and renamed into place.
///
/// # Errors
/// The file cannot be written.
pub fn write_layer(
    path: &Path,
    name: &str,
    geometry_type: &str,
    columns: &[(String, &'static str)],
    features: &[super::Feature],
) -> Result<()> {
    let tmp = path.with_extension(format!("gpkg.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<()> {
        let c = Connection::open(&tmp)
            .map_err(|e| StoreError::Backend(format!("{}: cannot create: {e}", tmp.display())))?;
        register_functions(&c).map_err(be)?;
        c.execute_batch("BEGIN").map_err(be)?;
        create_core(&c).map_err(be)?;
        let cols: Vec<String> = columns
            .iter()
            .map(|(n, t)| format!("\"{}\" {t}", n.replace('"', "")))
            .collect();
        create_feature_table(&c, name, geometry_type, &cols.join(", ")).map_err(be)?;
        let marks: Vec<String> = (0..=columns.len()).map(|i| format!("?{}", i + 1)).collect();
        let names: Vec<String> = columns
            .iter()
            .map(|(n, _)| format!("\"{}\"", n.replace('"', "")))
            .collect();
        let sql = format!(
            "INSERT INTO \"{name}\" (geom, {}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let mut st = c.prepare(&sql).map_err(be)?;
        for f in features {
            let mut vals: Vec<rusqlite::types::Value> = vec![match &f.geometry {
                Some(g) => rusqlite::types::Value::Blob(to_gpkg(g, 4326)),
                None => rusqlite::types::Value::Null,
            }];
            for (n, _) in columns {
                vals.push(match f.properties.get(n) {
                    Some(Value::String(s)) => rusqlite::types::Value::Text(s.clone()),
                    Some(Value::Number(x)) if x.is_i64() => {
                        rusqlite::types::Value::Integer(x.as_i64().unwrap_or(0))
                    }
                    Some(Value::Number(x)) => {
                        rusqlite::types::Value::Real(x.as_f64().unwrap_or(0.0))
                    }
                    Some(Value::Bool(b)) => rusqlite::types::Value::Integer(i64::from(*b)),
                    Some(Value::Null) | None => rusqlite::types::Value::Null,
                    Some(v) => rusqlite::types::Value::Text(v.to_string()),
                });
            }
            st.execute(params_from_iter(vals)).map_err(be)?;
        }
        drop(st);
        touch(&c, name)?;
        c.execute_batch("COMMIT").map_err(be)?;
        Ok(())
    })();
    match r {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::Backend(format!("{}: cannot write: {e}", path.display()))
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
