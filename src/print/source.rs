//! What a printed page shows, gathered from the store: the grids of the plans printed from (the
//! plans in force now, or one named plan), the buildings and roads around, the worker with photo.

use super::sizhi::{NamedArea, NamedLine, sizhi};
use super::{PrintArea, PrintBuilding, PrintError, PrintGrid, Sheet, grid_url, map, short_name};
use crate::model::{Road, grid_name};
use crate::store::{Plan, PlanStatus, Store};
use geo::{BoundingRect, Intersects, Rect};
use std::collections::{BTreeSet, HashMap};

/// Offset of the dates printed (China Standard Time).
const CST: i32 = 8 * 3600;

/// The plans, grids, assignment and roads pages are drawn from; load once, print many.
pub struct Source {
    pub plans: Vec<Plan>,
    pub grids: Vec<PrintGrid>,
    /// building id → grid code.
    assignment: HashMap<String, String>,
    roads: Vec<Road>,
    /// grid code → plan id.
    plan_of: HashMap<String, i64>,
}

fn seq_of(code: &str) -> usize {
    let tail: String = code
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    tail.parse().unwrap_or(0)
}

fn day(t: i64) -> Option<String> {
    let off = chrono::FixedOffset::east_opt(CST)?;
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.with_timezone(&off).format("%Y-%m-%d").to_string())
}

impl Source {
    /// `plan`: that plan (a draft too, for a proof); None: the published plans in force at `at`.
    ///
    /// # Errors
    /// A plan that does not exist, no plan in force, or a store error.
    pub async fn load(store: &dyn Store, plan: Option<i64>, at: i64) -> Result<Source, PrintError> {
        let plans: Vec<Plan> = match plan {
            Some(id) => vec![store.plan(id).await?],
            None => store
                .plans()
                .await?
                .into_iter()
                .filter(|p| {
                    p.status != PlanStatus::Draft
                        && p.valid_from.is_some_and(|f| f <= at)
                        && p.valid_to.is_none_or(|t| at < t)
                })
                .collect(),
        };
        if plans.is_empty() {
            return Err(PrintError::NotFound(
                "no grid plan is in force: publish a plan first, or print a draft with --plan ID"
                    .into(),
            ));
        }
        let mut names: HashMap<String, (String, Option<String>)> = HashMap::new();
        for c in store.communities().await? {
            let name = c
                .community
                .name
                .clone()
                .unwrap_or_else(|| c.community.code.clone());
            names.insert(c.community.code.clone(), (name, c.community.street.clone()));
        }
        let (mut grids, mut assignment, mut plan_of) = (Vec::new(), HashMap::new(), HashMap::new());
        for p in &plans {
            for g in store.plan_grids(p.id).await? {
                let (cname, street) = names
                    .get(&g.community)
                    .cloned()
                    .unwrap_or_else(|| (g.community.clone(), None));
                let seq = seq_of(&g.code);
                plan_of.insert(g.code.clone(), p.id);
                grids.push(PrintGrid {
                    name: g.name.clone().unwrap_or_else(|| grid_name(&cname, seq)),
                    code: g.code,
                    community: g.community,
                    community_name: cname,
                    street: g.street.or(street),
                    seq,
                    households: g.households,
                    buildings: g.buildings,
                    band: g.band,
                    geometry: g.geometry,
                });
            }
            assignment.extend(store.plan_assignment(p.id).await?);
        }
        grids.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(Source {
            plans,
            grids,
            assignment,
            roads: store.roads().await?,
            plan_of,
        })
    }

    /// The grid `code` of these plans.
    ///
    /// # Errors
    /// [`PrintError::NotFound`] when it is not there.
    pub fn grid(&self, code: &str) -> Result<&PrintGrid, PrintError> {
        self.grids.iter().find(|g| g.code == code).ok_or_else(|| {
            PrintError::NotFound(format!(
                "grid {code:?} is not in plan {}",
                self.plans
                    .iter()
                    .map(|p| p.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Everything that may show around `extent`.
    async fn area(&self, store: &dyn Store, extent: Rect) -> Result<PrintArea, PrintError> {
        let grids: Vec<PrintGrid> = self
            .grids
            .iter()
            .filter(|g| g.geometry.intersects(&extent))
            .cloned()
            .collect();
        let communities: Vec<String> = grids
            .iter()
            .map(|g| g.community.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let buildings = store
            .buildings(Some(&communities))
            .await?
            .into_iter()
            .filter(|b| b.building.geometry.intersects(&extent))
            .map(|b| PrintBuilding {
                grid: self.assignment.get(&b.building.id).cloned(),
                geometry: b.building.geometry,
            })
            .collect();
        let roads = self
            .roads
            .iter()
            .filter(|r| {
                r.line
                    .bounding_rect()
                    .is_some_and(|b| b.intersects(&extent))
            })
            .cloned()
            .collect();
        Ok(PrintArea {
            grids,
            buildings,
            roads,
        })
    }

    fn sheet(
        &self,
        g: &PrintGrid,
        area: &PrintArea,
        base: &str,
        photo: (Option<crate::store::Worker>, Option<Vec<u8>>),
    ) -> Sheet {
        let roads: Vec<NamedLine> = area
            .roads
            .iter()
            .filter_map(|r| {
                r.name
                    .as_deref()
                    .filter(|n| !n.trim().is_empty())
                    .map(|name| NamedLine {
                        name,
                        line: &r.line,
                    })
            })
            .collect();
        let labels: Vec<String> = area
            .grids
            .iter()
            .map(|o| {
                if o.community == g.community {
                    short_name(o)
                } else {
                    o.name.clone()
                }
            })
            .collect();
        let neighbours: Vec<NamedArea> = area
            .grids
            .iter()
            .zip(&labels)
            .filter(|(o, _)| o.code != g.code)
            .map(|(o, label)| NamedArea {
                label,
                area: &o.geometry,
            })
            .collect();
        let plan = self.plan_of.get(&g.code).copied().unwrap_or(0);
        let in_force_from = self
            .plans
            .iter()
            .find(|p| p.id == plan)
            .and_then(|p| p.valid_from)
            .and_then(day);
        Sheet {
            grid: g.clone(),
            worker: photo.0,
            photo: photo.1,
            sizhi: sizhi(&g.geometry, &roads, &neighbours),
            url: grid_url(base, &g.code),
            plan,
            in_force_from,
        }
    }

    /// The sheet of grid `code` and what surrounds it.
    ///
    /// # Errors
    /// An unknown grid, or a store error.
    pub async fn grid_sheet(
        &self,
        store: &dyn Store,
        code: &str,
        base: &str,
    ) -> Result<(Sheet, PrintArea), PrintError> {
        let g = self.grid(code)?;
        let extent = map::extent_of(&g.geometry, 0.35)
            .ok_or_else(|| PrintError::NotFound(format!("grid {code:?} has no geometry")))?;
        let area = self.area(store, extent).await?;
        let who = (store.worker(code).await?, store.worker_photo(code).await?);
        Ok((self.sheet(g, &area, base, who), area))
    }

    /// The sheets of a community's grids (by code) and what surrounds them; its name.
    ///
    /// # Errors
    /// A community with no grid in these plans, or a store error.
    pub async fn community_sheets(
        &self,
        store: &dyn Store,
        community: &str,
        base: &str,
    ) -> Result<(Vec<Sheet>, PrintArea, String), PrintError> {
        let mine: Vec<&PrintGrid> = self
            .grids
            .iter()
            .filter(|g| g.community == community)
            .collect();
        let Some(first) = mine.first() else {
            return Err(PrintError::NotFound(format!(
                "community {community:?} has no grid in plan {}",
                self.plans
                    .iter()
                    .map(|p| p.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let all = geo::MultiPolygon(
            mine.iter()
                .flat_map(|g| g.geometry.0.iter().cloned())
                .collect(),
        );
        let extent = map::extent_of(&all, 0.2).ok_or_else(|| {
            PrintError::NotFound(format!("community {community:?} has no geometry"))
        })?;
        let area = self.area(store, extent).await?;
        let mut sheets = Vec::with_capacity(mine.len());
        for g in &mine {
            let who = (
                store.worker(&g.code).await?,
                store.worker_photo(&g.code).await?,
            );
            sheets.push(self.sheet(g, &area, base, who));
        }
        Ok((sheets, area, first.community_name.clone()))
    }
}
