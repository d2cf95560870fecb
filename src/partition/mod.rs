//! Regridding: communities + buildings (+ roads) → balanced, contiguous, street-bounded grids.
//!
//! - [`tessellation`]: atoms (one per building cluster or empty block) and their graph.
//! - [`solve`]: the balanced partitioner (recursive bisection + local search).
//! - [`assemble`]: grid polygons with exactly shared edges.
//! - [`metrics`]: households, compactness, road following.
//!
//! No I/O here: plain values in, plain values out.

pub mod assemble;
mod band;
mod buckets;
mod community;
pub mod fabric;
pub mod follow;
pub mod metrics;
mod numbering;
pub mod queue;
pub mod rebalance;
pub mod solve;
pub mod straighten;
pub mod tessellation;

use crate::geom::frame::LocalFrame;
use crate::geom::interior_point::interior_point;
use crate::model::{Building, Community, Road};
pub use band::{Band, BandError};
use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon};
use numbering::{CommunityOutcome, Upper};
use rayon::prelude::*;
use rstar::{AABB, RTree, RTreeObject};
use serde::Serialize;
pub use solve::Objective;
use tessellation::TessellationSettings;

/// Total order on f64 for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF(pub f64);
impl Eq for OrdF {}
impl PartialOrd for OrdF {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Settings of a regrid run.
#[derive(Debug, Clone)]
pub struct RegridParams {
    /// Also return the atoms as polygons.
    pub collect_atoms: bool,
    /// Also return each community's fabric and the grid of each atom (flat runs only), to be
    /// stored with the plan so that it can be edited.
    pub collect_fabric: bool,
    /// Grids kept exactly (locked, or untouched by a rebalance); the rest is partitioned around them.
    pub fixed: Vec<FixedGrid>,
    pub band: Band,
    pub seed: u64,
    /// Road classes that bound blocks.
    pub cut_classes: Vec<String>,
    pub tessellation: TessellationSettings,
    pub objective: Objective,
    /// Upper levels, outermost first (e.g. street → communities of 1,500–6,000): each community is
    /// partitioned into units of the first band, those into the next, and the last into grids of
    /// `band` — all from the same atoms, so every level nests exactly in the one above.
    pub levels: Vec<Band>,
}

impl Default for RegridParams {
    fn default() -> Self {
        RegridParams {
            band: Band::DEFAULT,
            seed: 0,
            cut_classes: crate::model::DEFAULT_CUT_CLASSES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            tessellation: TessellationSettings::default(),
            objective: Objective::default(),
            fixed: Vec::new(),
            collect_atoms: false,
            collect_fabric: false,
            levels: Vec::new(),
        }
    }
}

/// One upper level of a nested run: its polygons (`community` names the polygon above) and figures.
#[derive(Debug, Clone)]
pub struct Level {
    pub band: Band,
    pub grids: Vec<Grid>,
    pub total: Figures,
}

/// A grid kept exactly as given.
#[derive(Debug, Clone)]
pub struct FixedGrid {
    pub code: String,
    pub name: Option<String>,
    pub community: String,
    /// WGS84.
    pub polygon: Polygon,
    /// The households the grid held when it was drawn (a grid file's `households`), when known:
    /// rebalance tells a grid whose buildings changed from one left as it was by it.
    pub households: Option<u64>,
}

/// One output grid.
#[derive(Debug, Clone)]
pub struct Grid {
    pub code: String,
    pub name: Option<String>,
    pub community: String,
    pub street: Option<String>,
    pub households: u64,
    pub weight: f64,
    pub buildings: Vec<usize>,
    pub area_m2: f64,
    pub perimeter_m: f64,
    pub polsby_popper: f64,
    pub oversize: bool,
    /// True for a grid kept exactly (locked or untouched), with its code.
    pub kept: bool,
    pub geometry: Polygon,
}

/// Figures for one community (or the total).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub households: u64,
    pub buildings: usize,
    pub grids: usize,
    pub in_band: usize,
    /// Share of grids in band, oversize single-building grids excluded (percent).
    pub in_band_pct: f64,
    /// Sum of balancing weights (equal to households unless --weight is given).
    pub weight: f64,
    pub weight_min: f64,
    pub weight_max: f64,
    pub households_min: u64,
    pub households_max: u64,
    pub oversize_grids: usize,
    pub polsby_popper_mean: f64,
    pub polsby_popper_min: f64,
    /// Internal boundary length, metres.
    pub internal_boundary_m: f64,
    /// Share of internal boundary within the road distance of a road (percent), when roads were given.
    pub road_following_pct: Option<f64>,
    pub seconds: f64,
}

/// The outcome for one community.
#[derive(Debug, Clone, Serialize)]
pub struct CommunityReport {
    pub code: String,
    pub name: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
    /// Why the band could not be met, when it could not.
    pub notes: Vec<String>,
}

/// The result of a regrid run.
#[derive(Debug, Clone)]
pub struct RegridResult {
    pub grids: Vec<Grid>,
    /// (building index, grid index) for every building inside a community.
    pub assignment: Vec<(usize, usize)>,
    pub communities: Vec<CommunityReport>,
    pub total: Figures,
    /// Buildings whose representative point is in no community.
    pub outside_buildings: usize,
    /// The atoms, when asked for (`RegridParams::collect_atoms`), for comparisons on the same units.
    pub atoms: Vec<AtomOut>,
    /// The upper levels of a nested run, outermost first (empty without `RegridParams::levels`).
    pub levels: Vec<Level>,
    /// Each community's fabric with the grid code of every atom, when asked for
    /// (`RegridParams::collect_fabric`).
    pub fabrics: Vec<FabricOut>,
}

/// A community's fabric and the grid code of each of its atoms.
#[derive(Debug, Clone)]
pub struct FabricOut {
    pub fabric: fabric::Fabric,
    pub atom_codes: Vec<String>,
}

/// One atom as a polygon (for benchmarks that run other partitioners on the same atoms).
#[derive(Debug, Clone)]
pub struct AtomOut {
    pub community: String,
    pub households: u64,
    pub buildings: usize,
    pub geometry: Polygon,
}

/// Errors of a regrid run.
#[derive(Debug, thiserror::Error)]
pub enum RegridError {
    #[error("community {code}: {message}")]
    Community { code: String, message: String },
    #[error("band is empty: --min {min} is above --max {max}")]
    Band { min: f64, max: f64 },
}

/// Road segments in WGS84 (ends, whether their class cuts blocks), indexed.
pub(crate) struct RoadIndex {
    pub(crate) segs: Vec<(Coord, Coord, bool)>,
    pub(crate) tree: RTree<Boxed>,
}

impl RoadIndex {
    fn new(roads: &[Road], cut_classes: &[String]) -> RoadIndex {
        Self::within(roads, cut_classes, None)
    }

    /// The index of the road pieces meeting `area` (all with `None`), in the order of the layer:
    /// a query inside `area` finds the same pieces in the same order as in the whole index.
    pub(crate) fn within(
        roads: &[Road],
        cut_classes: &[String],
        area: Option<AABB<[f64; 2]>>,
    ) -> RoadIndex {
        let cut: std::collections::HashSet<&str> = cut_classes.iter().map(String::as_str).collect();
        let mut segs: Vec<(Coord, Coord, bool)> = Vec::new();
        for r in roads {
            let is_cut = cut.contains(r.highway.as_str());
            for w in r.line.0.windows(2) {
                if let Some(a) = &area {
                    let b = AABB::from_corners(
                        [w[0].x.min(w[1].x), w[0].y.min(w[1].y)],
                        [w[0].x.max(w[1].x), w[0].y.max(w[1].y)],
                    );
                    if !rstar::Envelope::intersects(a, &b) {
                        continue;
                    }
                }
                segs.push((w[0], w[1], is_cut));
            }
        }
        let tree = RTree::bulk_load(
            segs.iter()
                .enumerate()
                .map(|(i, (a, b, _))| {
                    Boxed(
                        i,
                        AABB::from_corners(
                            [a.x.min(b.x), a.y.min(b.y)],
                            [a.x.max(b.x), a.y.max(b.y)],
                        ),
                    )
                })
                .collect(),
        );
        RoadIndex { segs, tree }
    }
}

#[derive(Clone)]
pub(crate) struct Boxed(usize, AABB<[f64; 2]>);
impl RTreeObject for Boxed {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.1
    }
}

fn bbox_of(mp: &MultiPolygon) -> Option<AABB<[f64; 2]>> {
    mp.bounding_rect()
        .map(|r| AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]))
}

fn project_poly(f: &LocalFrame, p: &Polygon) -> Polygon {
    let r = |l: &LineString| LineString(l.0.iter().map(|c| f.fwd(*c)).collect());
    Polygon::new(r(p.exterior()), p.interiors().iter().map(r).collect())
}

/// The buildings of community `c` (index, part) as [`assign_buildings`] gives them for `c`
/// alone; the interior point is found only for buildings whose box meets the community's.
pub(crate) fn buildings_of(c: &Community, buildings: &[Building]) -> Vec<(usize, usize)> {
    let Some(cb) = bbox_of(&c.geometry) else {
        return Vec::new();
    };
    buildings
        .par_iter()
        .enumerate()
        .filter_map(|(bi, b)| {
            if !rstar::Envelope::intersects(&cb, &bbox_of(&b.geometry)?) {
                return None;
            }
            let p = interior_point(&b.geometry)?;
            if !rstar::Envelope::contains_point(&cb, &[p.x, p.y]) {
                return None;
            }
            c.geometry
                .0
                .iter()
                .position(|part| crate::geom::point_in_polygons(std::slice::from_ref(part), p))
                .map(|pi| (bi, pi))
        })
        .collect()
}

/// Which community each building belongs to (by its GEOS-compatible interior point), or None.
#[must_use]
pub fn assign_buildings(
    communities: &[Community],
    buildings: &[Building],
) -> Vec<Option<(usize, usize)>> {
    let tree = RTree::bulk_load(
        communities
            .iter()
            .enumerate()
            .filter_map(|(i, c)| bbox_of(&c.geometry).map(|b| Boxed(i, b)))
            .collect(),
    );
    buildings
        .par_iter()
        .map(|b| {
            let p = interior_point(&b.geometry)?;
            let mut hits: Vec<usize> = tree
                .locate_in_envelope_intersecting(&AABB::from_point([p.x, p.y]))
                .map(|x| x.0)
                .collect();
            hits.sort_unstable();
            for ci in hits {
                for (pi, part) in communities[ci].geometry.0.iter().enumerate() {
                    if crate::geom::point_in_polygons(std::slice::from_ref(part), p) {
                        return Some((ci, pi));
                    }
                }
            }
            None
        })
        .collect()
}

/// Regrid every community. `progress` is called once per finished community.
///
/// # Errors
/// An empty band, or a community whose geometry cannot be triangulated.
pub fn regrid(
    communities: &[Community],
    buildings: &[Building],
    roads: &[Road],
    params: &RegridParams,
    progress: &(dyn Fn() + Sync),
) -> Result<RegridResult, RegridError> {
    regrid_with(communities, buildings, roads, params, progress, None)
}

/// Outcomes of communities already drawn, by community index and the codes of the grids kept
/// there: a community's grids depend only on the layers, the settings and what is kept in it.
/// Repeated regrids of the same layers and settings (the attempts of a rebalance, which differ
/// in the grids kept in a few communities) redraw only the communities whose kept grids changed.
#[derive(Default)]
pub struct RegridCache(
    std::sync::Mutex<std::collections::HashMap<(usize, Vec<String>), CommunityOutcome>>,
);

/// [`regrid`], reusing and filling `cache` (which must only ever see the same communities,
/// buildings, roads and settings apart from `params.fixed`).
///
/// # Errors
/// As [`regrid`].
pub fn regrid_with(
    communities: &[Community],
    buildings: &[Building],
    roads: &[Road],
    params: &RegridParams,
    progress: &(dyn Fn() + Sync),
    cache: Option<&RegridCache>,
) -> Result<RegridResult, RegridError> {
    let band = params.band;
    if band.min() > band.max() {
        return Err(RegridError::Band {
            min: band.min(),
            max: band.max(),
        });
    }
    let owner = assign_buildings(communities, buildings);
    let outside_buildings = owner.iter().filter(|o| o.is_none()).count();
    let mut per_comm: Vec<Vec<(usize, usize)>> = vec![Vec::new(); communities.len()];
    for (bi, o) in owner.iter().enumerate() {
        if let Some((ci, pi)) = o {
            per_comm[*ci].push((bi, *pi));
        }
    }
    let RoadIndex {
        segs,
        tree: seg_tree,
    } = RoadIndex::new(roads, &params.cut_classes);
    let has_roads = !roads.is_empty();
    // largest communities first, each taken by the next free core, so two cores finish together
    type Outcome = Result<CommunityOutcome, RegridError>;
    let results: Vec<Outcome> = queue::heaviest_first(
        (0..communities.len()).collect(),
        |&ci| per_comm[ci].len(),
        |ci| {
            let key = || {
                let mut kept: Vec<String> = params
                    .fixed
                    .iter()
                    .filter(|f| f.community == communities[ci].code)
                    .map(|f| f.code.clone())
                    .collect();
                kept.sort();
                (ci, kept)
            };
            let hit = cache.and_then(|c| c.0.lock().ok().and_then(|m| m.get(&key()).cloned()));
            let r = match hit {
                Some(o) => Ok(o),
                None => {
                    let r = community::regrid_community(
                        &communities[ci],
                        buildings,
                        &per_comm[ci],
                        (&segs, &seg_tree),
                        has_roads,
                        params,
                    );
                    if let (Some(c), Ok(o)) = (cache, &r)
                        && let Ok(mut m) = c.0.lock()
                    {
                        m.insert(key(), o.clone());
                    }
                    r
                }
            };
            progress();
            r
        },
    );
    gather(results, params, has_roads, outside_buildings)
}

/// The regrid of a district from its communities' outcomes (in community order): grids, atoms and
/// fabrics in that order, the upper levels, the assignment and the district's figures.
fn gather(
    results: Vec<Result<CommunityOutcome, RegridError>>,
    params: &RegridParams,
    has_roads: bool,
    outside_buildings: usize,
) -> Result<RegridResult, RegridError> {
    let band = params.band;
    let mut grids = Vec::new();
    let mut reports = Vec::new();
    let mut atoms = Vec::new();
    let mut fabrics = Vec::new();
    let mut upper: Vec<Upper> = vec![(Vec::new(), Vec::new(), 0.0, 0.0); params.levels.len()];
    for r in results {
        let (g, rep, at, up, fab) = r?;
        grids.extend(g);
        fabrics.extend(fab);
        reports.push(rep);
        atoms.extend(at);
        for (acc, u) in upper.iter_mut().zip(up) {
            acc.0.extend(u.0);
            acc.2 += u.2;
            acc.3 += u.3;
        }
    }
    let levels: Vec<Level> = upper
        .into_iter()
        .zip(&params.levels)
        .map(|((g, _, len, road), b)| Level {
            band: *b,
            total: metrics::community_figures(&g, *b, has_roads, len, road, 0.0),
            grids: g,
        })
        .collect();
    let mut assignment = Vec::new();
    for (gi, g) in grids.iter().enumerate() {
        for &b in &g.buildings {
            assignment.push((b, gi));
        }
    }
    assignment.sort_unstable();
    let total = metrics::total_figures(&grids, &reports, band, has_roads);
    Ok(RegridResult {
        atoms,
        fabrics,
        levels,
        grids,
        assignment,
        communities: reports,
        total,
        outside_buildings,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::geom::crs::{Crs, Transformer};
    use crate::io::geojson::{read_buildings, read_communities, read_roads};
    use crate::model::EstimateParams;

    /// The layers of a generated sample city (`seed`, `n` communities), read as from files.
    pub(crate) fn sample_layers(seed: u64, n: usize) -> (Vec<Community>, Vec<Building>, Vec<Road>) {
        let city = crate::sample::generate(seed, n);
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, v: &serde_json::Value| {
            let p = dir.path().join(name);
            std::fs::write(&p, v.to_string()).unwrap();
            p
        };
        let tf = Transformer::new(Crs::Wgs84, Crs::Wgs84).unwrap();
        let (c, _) = read_communities(&put("c.geojson", &city.communities), &tf).unwrap();
        let (b, _) = read_buildings(
            &put("b.geojson", &city.buildings),
            &tf,
            &EstimateParams::default(),
        )
        .unwrap();
        let (r, _) = read_roads(&put("r.geojson", &city.roads), &tf).unwrap();
        (c, b, r)
    }

    /// A rebalance's later attempts take communities from the cache: what they give must be
    /// exactly what drawing them again gives.
    #[test]
    fn cached_outcomes_equal_fresh_ones() {
        let (c, b, r) = sample_layers(5, 4);
        let params = RegridParams::default();
        let cache = RegridCache::default();
        let plain = regrid(&c, &b, &r, &params, &|| {}).unwrap();
        let first = regrid_with(&c, &b, &r, &params, &|| {}, Some(&cache)).unwrap();
        assert_eq!(format!("{:?}", plain.grids), format!("{:?}", first.grids));
        // keep two grids of the first community: it is drawn again, the others come cached
        let mut kept = params.clone();
        kept.fixed = plain
            .grids
            .iter()
            .filter(|g| g.community == c[0].code)
            .take(2)
            .map(|g| FixedGrid {
                code: g.code.clone(),
                name: g.name.clone(),
                community: g.community.clone(),
                polygon: g.geometry.clone(),
                households: Some(g.households),
            })
            .collect();
        assert_eq!(kept.fixed.len(), 2);
        let cached = regrid_with(&c, &b, &r, &kept, &|| {}, Some(&cache)).unwrap();
        let fresh = regrid(&c, &b, &r, &kept, &|| {}).unwrap();
        assert_eq!(format!("{:?}", cached.grids), format!("{:?}", fresh.grids));
        assert_eq!(cached.assignment, fresh.assignment);
        assert_ne!(format!("{:?}", cached.grids), format!("{:?}", plain.grids));
        assert_eq!(cache.0.lock().unwrap().len(), c.len() + 1);
    }
}
