//! A store whose public map reads (feature pages and tiles of the plans in force) go to a
//! read-only streaming replica while everything else — writes, and the reads a write depends on
//! (plans, cases, tokens, a named plan's features, the grid of a new case) — goes to the
//! primary. `wangge serve --read-database URL`.
//!
//! The replica's copy may trail the primary by its replication lag (milliseconds on one
//! machine); reads that name a plan go to the primary, so a planner editing a draft sees it at
//! once. Changes are announced and followed on the primary (a standby cannot `LISTEN`).

use super::prelude::*;
use super::{
    AuditEntry, BuildingRecord, ChangeHook, CommunityRecord, EditRecord, ExceptionRecord,
    FabricRow, Feature, FeaturePage, FeatureQuery, GridHit, GridRecord, IncidentFilter, JobRecord,
    Layer, NewPlan, Plan, PlanEdit, Reasons, Result, Street, TokenRecord, Upserted, Worker,
};
use crate::incident::Case;
use crate::model::{Building, Community, Road};
use async_trait::async_trait;
use std::sync::Arc;

/// Writes and the reads writes depend on to `primary`; current map reads to `replica`.
pub struct ReadSplit {
    pub primary: Arc<dyn Store>,
    pub replica: Arc<dyn Store>,
    /// The hook given to `watch_changes`, called once more a while after every change.
    pub hook: std::sync::OnceLock<ChangeHook>,
}

/// How long after a change caches are dropped once more, for what they read from a replica
/// that had not replayed the change yet.
const REPLICA_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn call_later(hook: &ChangeHook) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let hook = hook.clone();
        rt.spawn(async move {
            tokio::time::sleep(REPLICA_GRACE).await;
            hook();
        });
    }
}

#[async_trait]
impl Store for ReadSplit {
    fn describe(&self) -> String {
        format!(
            "{} (reads: {})",
            self.primary.describe(),
            self.replica.describe()
        )
    }
    async fn ping(&self) -> Result<()> {
        self.primary.ping().await?;
        self.replica.ping().await
    }
    async fn announce_change(&self) -> Result<()> {
        if let Some(h) = self.hook.get() {
            call_later(h);
        }
        self.primary.announce_change().await
    }
    fn watch_changes(&self, changed: ChangeHook) {
        let _ = self.hook.set(changed.clone());
        self.primary.watch_changes(Arc::new(move || {
            changed();
            call_later(&changed);
        }));
    }
}

#[async_trait]
impl FeatureSource for ReadSplit {
    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
        let from = if q.plan.is_some() {
            &self.primary
        } else {
            &self.replica
        };
        from.features(layer, q).await
    }
    async fn tile_features(
        &self,
        layer: Layer,
        bbox: [f64; 4],
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        let from = if plan.is_some() {
            &self.primary
        } else {
            &self.replica
        };
        from.tile_features(layer, bbox, plan, fields).await
    }
    async fn mvt_layer(
        &self,
        layer: Layer,
        zxy: (u8, u32, u32),
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<u8>>> {
        let from = if plan.is_some() {
            &self.primary
        } else {
            &self.replica
        };
        from.mvt_layer(layer, zxy, plan, fields).await
    }
    /// A new case takes its grid from here: the primary, so a case reported just after a
    /// publication gets the new grid.
    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>> {
        self.primary.grid_at(lon, lat, at).await
    }
}

#[async_trait]
impl ReferenceData for ReadSplit {
    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted> {
        self.primary.put_communities(items, who).await
    }
    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted> {
        self.primary.put_buildings(items, who).await
    }
    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64> {
        self.primary.replace_roads(roads, who).await
    }
    async fn communities(&self) -> Result<Vec<CommunityRecord>> {
        self.primary.communities().await
    }
    async fn streets(&self) -> Result<Vec<Street>> {
        self.primary.streets().await
    }
    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>> {
        self.primary.buildings(communities).await
    }
    async fn roads(&self) -> Result<Vec<Road>> {
        self.primary.roads().await
    }
}

#[async_trait]
impl Plans for ReadSplit {
    async fn create_job(&self, total: i64, who: &str) -> Result<JobRecord> {
        self.primary.create_job(total, who).await
    }
    async fn update_job(
        &self,
        id: i64,
        done: i64,
        state: &str,
        plan: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        self.primary.update_job(id, done, state, plan, error).await
    }
    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        self.primary.job(id).await
    }
    async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        self.primary.create_plan(plan).await
    }
    async fn plans(&self) -> Result<Vec<Plan>> {
        self.primary.plans().await
    }
    async fn plan(&self, id: i64) -> Result<Plan> {
        self.primary.plan(id).await
    }
    async fn plan_grids(&self, id: i64) -> Result<Vec<GridRecord>> {
        self.primary.plan_grids(id).await
    }
    async fn plan_community_grids(&self, id: i64, community: &str) -> Result<Vec<GridRecord>> {
        self.primary.plan_community_grids(id, community).await
    }
    async fn plan_assignment(&self, id: i64) -> Result<Vec<(String, String)>> {
        self.primary.plan_assignment(id).await
    }
    async fn plan_assignment_of(
        &self,
        id: i64,
        buildings: &[String],
    ) -> Result<Vec<(String, String)>> {
        self.primary.plan_assignment_of(id, buildings).await
    }
    async fn publish_plan(
        &self,
        id: i64,
        valid_from: i64,
        expected_version: Option<i64>,
        who: &str,
        reasons: &Reasons,
    ) -> Result<Plan> {
        self.primary
            .publish_plan(id, valid_from, expected_version, who, reasons)
            .await
    }
    async fn plan_exceptions(&self, id: i64) -> Result<Vec<ExceptionRecord>> {
        self.primary.plan_exceptions(id).await
    }
    async fn set_worker(&self, grid_code: &str, worker: Option<Worker>, who: &str) -> Result<()> {
        self.primary.set_worker(grid_code, worker, who).await
    }
    async fn worker(&self, grid_code: &str) -> Result<Option<Worker>> {
        self.primary.worker(grid_code).await
    }
    async fn set_worker_photo(
        &self,
        grid_code: &str,
        photo: Option<Vec<u8>>,
        who: &str,
    ) -> Result<()> {
        self.primary.set_worker_photo(grid_code, photo, who).await
    }
    async fn worker_photo(&self, grid_code: &str) -> Result<Option<Vec<u8>>> {
        self.primary.worker_photo(grid_code).await
    }
}

#[async_trait]
impl Edits for ReadSplit {
    async fn plan_fabric(&self, plan: i64, community: &str) -> Result<Option<FabricRow>> {
        self.primary.plan_fabric(plan, community).await
    }
    async fn plan_state(&self, plan: i64, community: &str) -> Result<Option<String>> {
        self.primary.plan_state(plan, community).await
    }
    async fn save_plan_fabric(&self, plan: i64, community: &str, row: FabricRow) -> Result<()> {
        self.primary.save_plan_fabric(plan, community, row).await
    }
    async fn copy_plan_fabric(
        &self,
        from: i64,
        to: i64,
        community: &str,
        state: &str,
    ) -> Result<bool> {
        self.primary
            .copy_plan_fabric(from, to, community, state)
            .await
    }
    async fn apply_plan_edit(&self, plan: i64, edit: PlanEdit) -> Result<(Plan, i64)> {
        self.primary.apply_plan_edit(plan, edit).await
    }
    async fn plan_edits(&self, plan: i64) -> Result<Vec<EditRecord>> {
        self.primary.plan_edits(plan).await
    }
    async fn plan_edit_next(&self, plan: i64, redo: bool) -> Result<Option<EditRecord>> {
        self.primary.plan_edit_next(plan, redo).await
    }
}

#[async_trait]
impl Cases for ReadSplit {
    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()> {
        self.primary.insert_incident(case, who).await
    }
    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()> {
        self.primary
            .update_incident(case, expected_history, who)
            .await
    }
    async fn incident(&self, id: &str) -> Result<Case> {
        self.primary.incident(id).await
    }
    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>> {
        self.primary.incidents(f).await
    }
    async fn count_incidents(&self, f: &IncidentFilter) -> Result<u64> {
        self.primary.count_incidents(f).await
    }
}

#[async_trait]
impl Auth for ReadSplit {
    async fn create_token(
        &self,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        label: &str,
        who: &str,
    ) -> Result<TokenRecord> {
        self.primary
            .create_token(hash, role, scope, label, who)
            .await
    }
    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.primary.tokens().await
    }
    async fn revoke_token(&self, id: i64, who: &str) -> Result<()> {
        self.primary.revoke_token(id, who).await
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.primary.token_by_hash(hash).await
    }
    async fn audit(&self, who: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        self.primary.audit(who, action, target, detail).await
    }
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.primary.audit_log(limit).await
    }
}
