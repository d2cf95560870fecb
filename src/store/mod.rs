//! Storage: one async trait, two implementations — an embedded GeoPackage file (the default, no
//! server) and PostGIS. Communities, streets, buildings, roads, grid plans with versions and
//! validity, grid workers, incidents with their append-only history, and an audit log of writes.
//!
//! Both stores pass the same contract tests (`tests/store.rs`). Geometries are WGS84 (EPSG:4326).

pub mod context;
pub mod gpkg;
pub mod postgis;
pub mod regrid;
pub mod split;
pub mod wkb;

use crate::incident::{Case, State};
use crate::model::{Building, Community, Road};
use async_trait::async_trait;
use geo::{Geometry, Intersects, MultiPolygon, Point, Rect};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The schema version this binary writes and reads. Stores with a newer version are refused.
pub const SCHEMA_VERSION: i64 = 10;

/// Default path of the embedded store.
pub const DEFAULT_PATH: &str = "data/wangge.gpkg";

mod error;
mod rules;
pub use error::{GpkgError, PostgisError, StoreError};
pub use rules::OVERSIZE_REASON;
pub(crate) use rules::{
    check_editable, check_filters, check_history, check_not_before, check_plan, check_publishable,
    exception_register, publish_detail,
};

/// A short result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A street (街道) with its communities' figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Street {
    pub code: String,
    pub communities: u32,
    pub households: u64,
}

/// A community as stored, with the counts of what hangs off it.
#[derive(Debug, Clone)]
pub struct CommunityRecord {
    pub community: Community,
    pub households: u64,
    pub buildings: u64,
}

/// A building as stored, with the community it lies in.
#[derive(Debug, Clone)]
pub struct BuildingRecord {
    pub building: Building,
    pub community: Option<String>,
}

/// Plan status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Draft,
    Published,
    Retired,
}

impl PlanStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Draft => "draft",
            PlanStatus::Published => "published",
            PlanStatus::Retired => "retired",
        }
    }
    fn parse(s: &str) -> Result<PlanStatus> {
        match s {
            "draft" => Ok(PlanStatus::Draft),
            "published" => Ok(PlanStatus::Published),
            "retired" => Ok(PlanStatus::Retired),
            o => Err(StoreError::Backend(format!("unknown plan status {o:?}"))),
        }
    }
}

/// A plan: a versioned grid layer for one or more communities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: i64,
    pub status: PlanStatus,
    pub communities: Vec<String>,
    pub valid_from: Option<i64>,
    pub valid_to: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub published_at: Option<i64>,
    /// Parameters of the run that made it.
    pub params: Value,
    /// Its figures (in band, compactness, …).
    pub metrics: Value,
    pub grids: u64,
    pub households: u64,
    /// Bumped by every change; the HTTP layer's ETag.
    pub version: i64,
}

/// Reasons for grids out of band given with a publication, by grid code (`*`: every grid out of
/// band not named).
pub type Reasons = std::collections::BTreeMap<String, String>;

/// A line of a plan's exception register: a grid published out of band, and why
/// (「不必拘泥于300户」: exceptions are allowed, but explained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    pub grid: String,
    /// "under", "over" or "oversize".
    pub band: String,
    pub households: u64,
    pub reason: String,
    pub who: String,
    /// When it was registered (the publication), seconds since the epoch.
    pub at: i64,
}

/// A grid of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRecord {
    pub code: String,
    pub name: Option<String>,
    pub community: String,
    pub street: Option<String>,
    pub households: u64,
    pub buildings: u64,
    pub weight: f64,
    /// "in", "under", "over" or "oversize" (one building above the band).
    pub band: String,
    pub geometry: MultiPolygon,
    pub valid_from: Option<i64>,
    pub valid_to: Option<i64>,
}

/// A new plan to save as a draft.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub communities: Vec<String>,
    pub created_by: String,
    pub params: Value,
    pub metrics: Value,
    pub grids: Vec<GridRecord>,
    /// (building id, grid code).
    pub assignment: Vec<(String, String)>,
}

/// A grid worker's public contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub name: String,
    pub phone: Option<String>,
}

/// The grid in force at a point and time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridHit {
    pub code: String,
    pub name: Option<String>,
    pub community: String,
    pub street: Option<String>,
    pub plan: i64,
    pub worker: Option<Worker>,
}

/// A building or household move between two plans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanDiff {
    pub a: i64,
    pub b: i64,
    /// (building id, grid in a, grid in b); None where the building is not in that plan.
    pub moved: Vec<(String, Option<String>, Option<String>)>,
    pub moved_households: u64,
    pub grids_only_in_a: Vec<String>,
    pub grids_only_in_b: Vec<String>,
}

pub use crate::model::schema::Layer;

/// A feature read back from a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: String,
    pub geometry: Option<Geometry>,
    pub properties: Map<String, Value>,
}

impl Feature {
    /// A feature of a layer page, its id the first property (the layer's key field).
    #[must_use]
    pub fn keyed(geometry: Option<Geometry>, properties: Map<String, Value>) -> Feature {
        let id = properties
            .values()
            .next()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Feature {
            id,
            geometry,
            properties,
        }
    }
}

/// What to read from a layer.
#[derive(Debug, Clone, Default)]
pub struct FeatureQuery {
    /// [min lon, min lat, max lon, max lat]; features intersecting it.
    pub bbox: Option<[f64; 4]>,
    /// Grids: this plan's (default: those in force at `at`, or now).
    pub plan: Option<i64>,
    /// Grids: in force at this time. Incidents: reported in [from, to).
    pub at: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Property = value (names from `Layer::filterable`).
    pub equals: Vec<(String, String)>,
    pub limit: usize,
    pub offset: usize,
}

/// A page of features and the number matched in all.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturePage {
    pub features: Vec<Feature>,
    pub matched: u64,
}

/// Filters of the incident list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub grid: Option<String>,
    pub community: Option<String>,
    pub state: Option<State>,
    pub category: Option<String>,
    /// Open cases past their due time at this moment.
    pub overdue_at: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
    pub offset: usize,
    /// A token's scope: cases whose grid, community or street is this code.
    pub scope: Option<String>,
    /// For aggregates (statistics, heat): leave out description, reporter, photos and history.
    pub lean: bool,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    /// The address of the client whose request made the line (when made by a request).
    pub client: Option<String>,
}

/// An API token as stored (only a hash of the secret is kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub role: String,
    /// A community, street or grid code that limits the token; None: everywhere.
    pub scope: Option<String>,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Counts of an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Upserted {
    pub inserted: u64,
    pub updated: u64,
}

/// The store contract, by role: a store is all of [`ReferenceData`], [`Plans`], [`Edits`],
/// [`FeatureSource`], [`Cases`] and [`Auth`]. Writes are transactional (all or nothing) and
/// acknowledged only after they are durable. Through `dyn Store` every role's methods are at
/// hand; code that names a backend type brings the roles in with `use crate::store::prelude::*`.
#[async_trait]
pub trait Store:
    ReferenceData + Plans + Edits + FeatureSource + Cases + Auth + Send + Sync
{
    /// "gpkg" or "postgis", and where.
    fn describe(&self) -> String;
    /// Reachable and usable.
    async fn ping(&self) -> Result<()>;
    /// Tell the other processes serving this store that plans, grids or incidents changed, so
    /// their caches follow (PostgreSQL `NOTIFY`). A GeoPackage needs nothing: the watchers of
    /// [`Store::watch_changes`] see every commit to the file.
    async fn announce_change(&self) -> Result<()> {
        Ok(())
    }
    /// Call `changed` (within about a second) whenever another process changes the store: a
    /// background task listening for the announcements (PostgreSQL `LISTEN`, reconnecting when
    /// the connection drops) or watching the file's commits (SQLite `data_version`).
    fn watch_changes(&self, changed: ChangeHook) {
        let _ = changed;
    }
}

/// What [`Store::watch_changes`] calls.
pub type ChangeHook = Arc<dyn Fn() + Send + Sync>;

/// The PostgreSQL channel changes are announced on.
pub const CHANGES_CHANNEL: &str = "wangge_changes";

/// The traits of every role (for code that holds a concrete backend).
pub mod prelude {
    pub use super::{Auth, Cases, Edits, FeatureSource, Plans, ReferenceData, Store};
}

/// Communities, streets, buildings and roads: the layers plans are drawn on.
#[async_trait]
pub trait ReferenceData: Send + Sync {
    /// Insert or update communities by code (streets follow).
    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted>;
    /// Insert or update buildings by id; each is placed in the community holding it.
    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted>;
    /// Replace the road layer.
    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64>;
    async fn communities(&self) -> Result<Vec<CommunityRecord>>;
    async fn streets(&self) -> Result<Vec<Street>>;
    /// Buildings, all or of the given communities.
    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>>;
    async fn roads(&self) -> Result<Vec<Road>>;
}

/// A regrid job as the store keeps it, so that every server follows it and its id survives a
/// restart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: i64,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Communities done, of `total`.
    pub done: i64,
    pub total: i64,
    /// The plan made (when done).
    pub plan: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    pub who: String,
    /// Seconds since the epoch: started, and last heard of.
    pub started: i64,
    pub updated: i64,
}

/// Grid plans (draft → published → retired) and grid workers.
#[async_trait]
pub trait Plans: Send + Sync {
    /// A new running job of `total` communities; its id comes from the store.
    async fn create_job(&self, total: i64, who: &str) -> Result<JobRecord>;
    /// Progress (`done`) and state (`running`, `done` with the plan, `failed` with the error);
    /// also the job's heartbeat (`updated`).
    async fn update_job(
        &self,
        id: i64,
        done: i64,
        state: &str,
        plan: Option<i64>,
        error: Option<&str>,
    ) -> Result<()>;
    async fn job(&self, id: i64) -> Result<Option<JobRecord>>;
    /// Save a draft plan; its grids must lie in known communities, codes unique.
    async fn create_plan(&self, plan: NewPlan) -> Result<Plan>;
    async fn plans(&self) -> Result<Vec<Plan>>;
    async fn plan(&self, id: i64) -> Result<Plan>;
    async fn plan_grids(&self, id: i64) -> Result<Vec<GridRecord>>;
    /// The grids of a plan in one community (what an edit compares its derived grids with).
    async fn plan_community_grids(&self, id: i64, community: &str) -> Result<Vec<GridRecord>>;
    /// (building id, grid code) of a plan.
    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>>;
    /// (building id, grid code) of the named buildings in a plan, ordered by building id;
    /// buildings the plan does not hold are left out.
    async fn plan_assignment_of(
        &self,
        id: i64,
        buildings: &[String],
    ) -> Result<Vec<(String, String)>>;
    /// Publish a draft from `valid_from`; the grids in force for the same communities are
    /// retired at that moment, in the same transaction. `expected_version` guards concurrent edits.
    /// Every grid out of band needs a reason in `reasons` ([`exception_register`]); they are
    /// kept as the plan's exception register.
    async fn publish_plan(
        &self,
        id: i64,
        valid_from: i64,
        expected_version: Option<i64>,
        who: &str,
        reasons: &Reasons,
    ) -> Result<Plan>;
    /// The exception register of a plan (empty before it is published), by grid code.
    async fn plan_exceptions(&self, id: i64) -> Result<Vec<ExceptionRecord>>;
    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()>;
    async fn worker(&self, grid_code: &str) -> Result<Option<Worker>>;
    /// Set (or with None remove) the photo of a grid's worker, as the image file's bytes (JPEG
    /// or PNG, checked by the caller). The grid must have a worker ([`StoreError::NotFound`]).
    async fn set_worker_photo(
        &self,
        grid_code: &str,
        photo: Option<Vec<u8>>,
        who: &str,
    ) -> Result<()>;
    /// The photo of a grid's worker; None when there is no worker or no photo.
    async fn worker_photo(&self, grid_code: &str) -> Result<Option<Vec<u8>>>;
}

/// A community's fabric in a plan: the encoded tessellation (never changes) and the state
/// (which atom is in which grid, locks; JSON, changes with every edit).
#[derive(Debug, Clone, PartialEq)]
pub struct FabricRow {
    pub fabric: Vec<u8>,
    pub state: String,
}

/// What an edit does to the edit log.
#[derive(Debug, Clone, PartialEq)]
pub enum EditLog {
    /// A new edit: the operation (JSON), the planner's reason, a one-line summary, the
    /// community's state before and after. Edits undone before it are discarded.
    Append {
        op: Value,
        reason: Option<String>,
        summary: String,
        before: String,
        after: String,
    },
    /// Edit `seq` undone (the state goes back to its `before`).
    Undo { seq: i64 },
    /// Edit `seq` applied again.
    Redo { seq: i64 },
}

/// One change of a draft plan, applied at once: the community's new state, grids removed and
/// written (by code), buildings that changed grid, and the log entry.
#[derive(Debug, Clone)]
pub struct PlanEdit {
    /// The plan version the edit was computed on (the ETag the caller holds).
    pub expected_version: i64,
    pub who: String,
    pub community: String,
    pub state: String,
    pub delete_grids: Vec<String>,
    pub put_grids: Vec<GridRecord>,
    /// (building id, grid code).
    pub assignment: Vec<(String, String)>,
    pub log: EditLog,
}

/// An entry of a plan's edit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EditRecord {
    pub seq: i64,
    pub at: i64,
    pub who: String,
    pub community: String,
    pub op: Value,
    pub reason: Option<String>,
    pub summary: String,
    /// "applied", "undone" or "discarded" (undone, then overtaken by a new edit).
    pub status: String,
    #[serde(skip)]
    pub before: String,
    #[serde(skip)]
    pub after: String,
}

/// Plan editing: each community's fabric and state, and the edit log (undo and redo).
#[async_trait]
pub trait Edits: Send + Sync {
    /// The fabric of a community in a plan, if made yet.
    async fn plan_fabric(&self, plan: i64, community: &str) -> Result<Option<FabricRow>>;
    /// Only the state of a community's fabric (the fabric itself is large and never changes).
    async fn plan_state(&self, plan: i64, community: &str) -> Result<Option<String>>;
    /// Keep a community's fabric with a plan (made on first use; an existing one is kept).
    async fn save_plan_fabric(&self, plan: i64, community: &str, row: FabricRow) -> Result<()>;
    /// Keep with plan `to` the fabric that `community` has in plan `from` (the same bytes,
    /// copied inside the store) with `state`; an existing one is kept. False when `from` has no
    /// fabric for the community (nothing written).
    async fn copy_plan_fabric(
        &self,
        from: i64,
        to: i64,
        community: &str,
        state: &str,
    ) -> Result<bool>;
    /// Apply an edit to a draft plan at `expected_version`: state, grids, assignments and log
    /// in one transaction; the plan's version goes up by one. Returns the plan and the log
    /// entry's number.
    async fn apply_plan_edit(&self, plan: i64, edit: PlanEdit) -> Result<(Plan, i64)>;
    /// The edit log, oldest first.
    async fn plan_edits(&self, plan: i64) -> Result<Vec<EditRecord>>;
    /// The edit an undo reverts (the latest applied) or, `redo`, the one a redo applies again
    /// (the earliest undone); read alone, however long the log.
    async fn plan_edit_next(&self, plan: i64, redo: bool) -> Result<Option<EditRecord>>;
}

/// Features of the layers for OGC pages, tiles and lookups.
#[async_trait]
pub trait FeatureSource: Send + Sync {
    /// Features of a layer (bbox, time, equality filters, paging).
    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage>;

    /// The features a vector tile of `layer` needs, read lean: those whose index box meets
    /// `bbox` (no exact test — the tile clipper drops the rest), with only `fields` as properties,
    /// in feature id order; grids of `plan`, or those in force now. `None` when the store has no
    /// such path (the caller then uses [`FeatureSource::features`]).
    async fn tile_features(
        &self,
        _layer: Layer,
        _bbox: [f64; 4],
        _plan: Option<i64>,
        _fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        Ok(None)
    }

    /// One Mapbox Vector Tile layer (extent 4096, buffer 64, clipped) rendered by the database
    /// itself — PostGIS `ST_AsMVT` — with the listed attributes, of the features a tile query of
    /// [`FeatureSource::features`] would select (grids: `plan`, or those in force now). `None` when the
    /// store has no such renderer (the caller then encodes in process).
    async fn mvt_layer(
        &self,
        _layer: Layer,
        _zxy: (u8, u32, u32),
        _plan: Option<i64>,
        _fields: &[&str],
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// The grid in force at a point (WGS84) at a time.
    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>>;
}

/// Incidents with their history.
#[async_trait]
pub trait Cases: Send + Sync {
    /// Save a new incident (its id must be new) with its history.
    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()>;
    /// Save a changed incident; its history must extend the stored one by `case.history.len() -
    /// stored`, and the stored history length must be `expected_history`.
    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()>;
    async fn incident(&self, id: &str) -> Result<Case>;
    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>>;
    /// How many incidents match (paging ignored).
    async fn count_incidents(&self, f: &IncidentFilter) -> Result<u64>;
}

/// API tokens and the audit log.
#[async_trait]
pub trait Auth: Send + Sync {
    /// Save a new API token by the SHA-256 hex of its secret.
    async fn create_token(
        &self,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        label: &str,
        who: &str,
    ) -> Result<TokenRecord>;
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, id: i64, who: &str) -> Result<()>;
    /// The token with this secret hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;

    /// Append to the audit log (reads of personal data; writes are logged by the store itself).
    async fn audit(&self, who: &str, action: &str, target: &str, detail: &str) -> Result<()>;
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
}

/// Open the store named by `url`: `postgres://…` or `postgresql://…` for PostGIS, else a
/// GeoPackage path (created when missing). None: `WANGGE_DATABASE_URL`, else `data/wangge.gpkg`.
///
/// # Errors
/// Unreachable server, missing PostGIS, not a GeoPackage, newer schema.
pub async fn open(url: Option<&str>) -> Result<Arc<dyn Store>> {
    open_with_reads(url, None).await
}

/// Open the store, with current map reads sent to a read-only PostgreSQL streaming replica
/// when `reads` (or `WANGGE_READ_DATABASE_URL`) names one ([`split::ReadSplit`]).
///
/// # Errors
/// As [`open`]; a replica for a GeoPackage, or one that is not a replica of a wangge database.
pub async fn open_with_reads(url: Option<&str>, reads: Option<&str>) -> Result<Arc<dyn Store>> {
    let primary = open_primary(url).await?;
    let reads = reads
        .map(str::to_string)
        .or_else(|| std::env::var("WANGGE_READ_DATABASE_URL").ok())
        .filter(|r| !r.is_empty());
    let Some(reads) = reads else {
        return Ok(primary);
    };
    if !(reads.starts_with("postgres://") || reads.starts_with("postgresql://")) {
        return Err(StoreError::Unavailable(format!(
            "--read-database {}: expected a postgres:// URL of a streaming replica",
            postgis::shown(&reads)
        )));
    }
    if !primary.describe().starts_with("PostGIS") {
        return Err(StoreError::Unavailable(
            "--read-database: a read replica needs a PostGIS primary (--database postgres://…)"
                .into(),
        ));
    }
    let replica = postgis::PostgisStore::connect_replica(&reads).await?;
    Ok(Arc::new(split::ReadSplit {
        primary,
        replica: Arc::new(replica),
        hook: std::sync::OnceLock::new(),
    }))
}

async fn open_primary(url: Option<&str>) -> Result<Arc<dyn Store>> {
    let env = std::env::var("WANGGE_DATABASE_URL").ok();
    let url = url
        .map(str::to_string)
        .or(env)
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgis::PostgisStore::connect(&url).await?))
    } else {
        let path = url.strip_prefix("gpkg:").unwrap_or(&url);
        Ok(Arc::new(gpkg::GpkgStore::open(std::path::Path::new(path))?))
    }
}

// ---- shared rules and helpers -------------------------------------------------------------

/// The street of each community and figures, from communities and their household counts.
pub(crate) fn streets_of(cs: &[CommunityRecord]) -> Vec<Street> {
    let mut m: std::collections::BTreeMap<String, Street> = std::collections::BTreeMap::new();
    for c in cs {
        if let Some(s) = &c.community.street {
            let e = m.entry(s.clone()).or_insert_with(|| Street {
                code: s.clone(),
                communities: 0,
                households: 0,
            });
            e.communities += 1;
            e.households += c.households;
        }
    }
    m.into_values().collect()
}

/// The band label of a grid.
#[must_use]
pub fn band_label(households: f64, min: f64, max: f64, single_building: bool) -> &'static str {
    if households > max && single_building {
        "oversize"
    } else if households > max {
        "over"
    } else if households < min {
        "under"
    } else {
        "in"
    }
}

/// Times as the GeoPackage DATETIME text (`YYYY-MM-DDTHH:MM:SS.000Z`).
pub(crate) fn ts_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || "1970-01-01T00:00:00.000Z".into(),
        |d| d.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
    )
}

pub(crate) fn text_ts(s: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp())
        .map_err(|e| StoreError::Backend(format!("bad time {s:?} in the store: {e}")))
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn state_name(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The serde name of a unit enum value (`resident_app`, `given`, …).
pub(crate) fn parse_enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|e| StoreError::Backend(format!("bad value {s:?} in the store: {e}")))
}

/// Keep features intersecting the bbox, then page.
pub(crate) fn page(mut feats: Vec<Feature>, q: &FeatureQuery) -> FeaturePage {
    if let Some(b) = q.bbox {
        let r = Rect::new(
            geo::coord! { x: b[0], y: b[1] },
            geo::coord! { x: b[2], y: b[3] },
        );
        feats.retain(|f| f.geometry.as_ref().is_some_and(|g| g.intersects(&r)));
    }
    let matched = feats.len() as u64;
    let limit = if q.limit == 0 { usize::MAX } else { q.limit };
    let features = feats.into_iter().skip(q.offset).take(limit).collect();
    FeaturePage { features, matched }
}

/// The first grid (by code) containing the point (boundary included).
pub(crate) fn pick_grid<'a>(
    cands: impl Iterator<Item = (&'a MultiPolygon, usize)>,
    lon: f64,
    lat: f64,
) -> Option<usize> {
    let p = Point::new(lon, lat);
    cands
        .filter(|(g, _)| g.intersects(&p))
        .map(|(_, i)| i)
        .next()
}

/// Buildings and households that change grid between plans `a` and `b` (by their assignments),
/// in the communities both plans cover.
///
/// # Errors
/// A plan that does not exist, or a store error.
/// True when `code` is a grid of some plan (in force, draft or retired): a grid worker can
/// only be assigned to a grid that exists.
///
/// # Errors
/// A store error.
pub async fn grid_exists(store: &dyn Store, code: &str) -> Result<bool> {
    for p in store.plans().await? {
        if store.plan_grids(p.id).await?.iter().any(|g| g.code == code) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn plan_diff(store: &dyn Store, a: i64, b: i64) -> Result<PlanDiff> {
    use std::collections::{BTreeMap, BTreeSet};
    let ga: BTreeMap<String, String> = store.plan_assignment(a).await?.into_iter().collect();
    let gb: BTreeMap<String, String> = store.plan_assignment(b).await?.into_iter().collect();
    let (pa, pb) = (store.plan(a).await?, store.plan(b).await?);
    // only the communities both plans cover: a plan of one community does not "move" the rest
    let shared: BTreeSet<&String> = pa
        .communities
        .iter()
        .filter(|c| pb.communities.contains(c))
        .collect();
    let info: std::collections::HashMap<String, (u64, Option<String>)> = store
        .buildings(None)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.building.id,
                (u64::from(r.building.households), r.community),
            )
        })
        .collect();
    let ids: BTreeSet<&String> = ga.keys().chain(gb.keys()).collect();
    let mut moved = Vec::new();
    let mut moved_households = 0;
    for id in ids {
        let (h, comm) = info.get(id).cloned().unwrap_or((0, None));
        if !comm.as_ref().is_some_and(|c| shared.contains(c)) {
            continue;
        }
        let (x, y) = (ga.get(id), gb.get(id));
        if x != y {
            moved_households += h;
            moved.push((id.clone(), x.cloned(), y.cloned()));
        }
    }
    let codes = |gs: Vec<GridRecord>| -> BTreeSet<String> {
        gs.into_iter()
            .filter(|g| shared.contains(&g.community))
            .map(|g| g.code)
            .collect()
    };
    let ca = codes(store.plan_grids(a).await?);
    let cb = codes(store.plan_grids(b).await?);
    Ok(PlanDiff {
        a,
        b,
        moved,
        moved_households,
        grids_only_in_a: ca.difference(&cb).cloned().collect(),
        grids_only_in_b: cb.difference(&ca).cloned().collect(),
    })
}
