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
pub mod metrics;
pub mod rebalance;
pub mod solve;
pub mod straighten;
pub mod tessellation;

use crate::geom::frame::LocalFrame;
use crate::geom::interior_point::interior_point;
use crate::model::{Building, Community, Road, grid_code, grid_name};
pub use band::{Band, BandError};
use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon};
use rayon::prelude::*;
use rstar::{AABB, RTree, RTreeObject};
use serde::Serialize;
pub use solve::Objective;
use tessellation::{BuildingPart, TessellationSettings};

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

#[derive(Clone)]
struct Boxed(usize, AABB<[f64; 2]>);
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
#[expect(
    clippy::too_many_lines,
    reason = "a long sequence of steps not yet split into phases (see scripts/house-figures)"
)]
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
    // road segments in WGS84, indexed
    let cut: std::collections::HashSet<&str> =
        params.cut_classes.iter().map(String::as_str).collect();
    let mut segs: Vec<(Coord, Coord, bool)> = Vec::new();
    for r in roads {
        let is_cut = cut.contains(r.highway.as_str());
        for w in r.line.0.windows(2) {
            segs.push((w[0], w[1], is_cut));
        }
    }
    let seg_tree = RTree::bulk_load(
        segs.iter()
            .enumerate()
            .map(|(i, (a, b, _))| {
                Boxed(
                    i,
                    AABB::from_corners([a.x.min(b.x), a.y.min(b.y)], [a.x.max(b.x), a.y.max(b.y)]),
                )
            })
            .collect(),
    );
    let has_roads = !roads.is_empty();
    // largest communities first, one task each, so two cores finish together
    let mut order: Vec<usize> = (0..communities.len()).collect();
    order.sort_by_key(|&ci| (std::cmp::Reverse(per_comm[ci].len()), ci));
    type Outcome = Result<CommunityOutcome, RegridError>;
    let mut done: Vec<(usize, Outcome)> = order
        .par_iter()
        .with_max_len(1)
        .map(|&ci| {
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
                    let r = regrid_community(
                        &communities[ci],
                        buildings,
                        &per_comm[ci],
                        &segs,
                        &seg_tree,
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
            (ci, r)
        })
        .collect();
    done.sort_by_key(|x| x.0);
    let results: Vec<Outcome> = done.into_iter().map(|x| x.1).collect();
    let mut grids = Vec::new();
    let mut reports = Vec::new();
    let mut atoms = Vec::new();
    let mut upper: Vec<Upper> = vec![(Vec::new(), Vec::new(), 0.0, 0.0); params.levels.len()];
    for r in results {
        let (g, rep, at, up) = r?;
        grids.extend(g);
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
        levels,
        grids,
        assignment,
        communities: reports,
        total,
        outside_buildings,
    })
}

#[expect(
    clippy::too_many_lines,
    reason = "a long sequence of steps not yet split into phases (see scripts/house-figures)"
)]
fn regrid_community(
    c: &Community,
    buildings: &[Building],
    mine: &[(usize, usize)],
    segs: &[(Coord, Coord, bool)],
    seg_tree: &RTree<Boxed>,
    has_roads: bool,
    params: &RegridParams,
) -> Result<CommunityOutcome, RegridError> {
    let t0 = std::time::Instant::now();
    let band = params.band;
    let err = |m: String| RegridError::Community {
        code: c.code.clone(),
        message: m,
    };
    let Some(bb) = c.geometry.bounding_rect() else {
        return Err(err("empty geometry".into()));
    };
    let frame = LocalFrame::new(
        (bb.min().x + bb.max().x) / 2.0,
        (bb.min().y + bb.max().y) / 2.0,
    );
    let mut notes = Vec::new();
    let mut grids: Vec<Grid> = Vec::new();
    let mut internal_len = 0.0;
    let mut internal_road = 0.0;
    let mut atoms_out: Vec<AtomOut> = Vec::new();
    // upper levels: (grids, parent index in the level above, internal length, near roads)
    let mut upper: Vec<Upper> = vec![(Vec::new(), Vec::new(), 0.0, 0.0); params.levels.len()];
    let mut final_parent: Vec<usize> = Vec::new();
    let fixed_here: Vec<&FixedGrid> = params
        .fixed
        .iter()
        .filter(|f| f.community == c.code)
        .collect();

    for (pi, part_ll) in c.geometry.0.iter().enumerate() {
        let part = project_poly(&frame, part_ll);
        // locked grids of this part, and the buildings inside them
        let fixed_part: Vec<&FixedGrid> = fixed_here
            .iter()
            .copied()
            .filter(|f| {
                interior_point(&MultiPolygon(vec![f.polygon.clone()])).is_some_and(|p| {
                    crate::geom::point_in_polygons(std::slice::from_ref(part_ll), p)
                })
            })
            .collect();
        let mut regions: Vec<tessellation::FixedRegion> = fixed_part
            .iter()
            .map(|f| tessellation::FixedRegion {
                metres: project_poly(&frame, &f.polygon),
                wgs84: f.polygon.clone(),
                buildings: Vec::new(),
                households: 0,
                weight: 0.0,
            })
            .collect();
        let mut in_region = std::collections::HashSet::new();
        if !regions.is_empty() {
            for &(bi, p) in mine {
                if p != pi {
                    continue;
                }
                let Some(ip) = interior_point(&buildings[bi].geometry) else {
                    continue;
                };
                if let Some(j) = fixed_part.iter().position(|f| {
                    crate::geom::point_in_polygons(std::slice::from_ref(&f.polygon), ip)
                }) {
                    regions[j].buildings.push(bi as u32);
                    regions[j].households += u64::from(buildings[bi].households);
                    regions[j].weight += buildings[bi].weight;
                    in_region.insert(bi);
                }
            }
        }
        let Some(pb) = part_ll.bounding_rect() else {
            continue;
        };
        let parts_b: Vec<BuildingPart> = mine
            .iter()
            .filter(|(bi, p)| *p == pi && !in_region.contains(bi))
            .map(|&(bi, _)| BuildingPart {
                building: bi as u32,
                polygons: buildings[bi]
                    .geometry
                    .0
                    .iter()
                    .map(|p| project_poly(&frame, p))
                    .collect(),
                households: buildings[bi].households,
                weight: buildings[bi].weight,
            })
            .collect();
        let pad = 0.0005;
        let env = AABB::from_corners(
            [pb.min().x - pad, pb.min().y - pad],
            [pb.max().x + pad, pb.max().y + pad],
        );
        let mut cut_roads = Vec::new();
        let mut near_roads = Vec::new();
        let mut ids: Vec<usize> = seg_tree
            .locate_in_envelope_intersecting(&env)
            .map(|b| b.0)
            .collect();
        ids.sort_unstable();
        for i in ids {
            let (a, b, is_cut) = segs[i];
            let s = (frame.fwd(a), frame.fwd(b));
            near_roads.push(s);
            if is_cut {
                cut_roads.push(s);
            }
        }
        let (tess, graph) = tessellation::tessellate(
            frame,
            &part,
            part_ll,
            &parts_b,
            &cut_roads,
            &near_roads,
            &regions,
            &params.tessellation,
        )
        .map_err(|e| err(e.to_string()))?;
        if let Some(note) = tess.degradation.note() {
            notes.push(note.to_string());
        }
        let mut graph = graph;
        // buildings that got no triangle (degenerate footprints) join the nearest atom
        let mut placed = std::collections::HashSet::new();
        for a in &graph.atoms {
            placed.extend(a.buildings.iter().copied());
        }
        for bp in &parts_b {
            if placed.contains(&bp.building) || graph.atoms.is_empty() {
                continue;
            }
            let p = interior_point(&MultiPolygon(bp.polygons.clone()))
                .unwrap_or(Coord { x: 0.0, y: 0.0 });
            let best = (0..graph.atoms.len())
                .min_by(|&i, &j| {
                    let d = |k: usize| {
                        let c = graph.atoms[k].centroid;
                        (c.x - p.x).powi(2) + (c.y - p.y).powi(2)
                    };
                    d(i).total_cmp(&d(j)).then(i.cmp(&j))
                })
                .unwrap_or(0);
            let a = &mut graph.atoms[best];
            a.buildings.push(bp.building);
            a.households += u64::from(bp.households);
            a.weight += bp.weight;
        }
        if graph.is_empty() {
            continue;
        }
        if params.collect_atoms {
            let identity: Vec<u32> = (0..graph.len() as u32).collect();
            if let Ok(polys) = assemble::assemble(&tess, &identity, graph.len(), 0) {
                for (a, p) in graph.atoms.iter().zip(polys) {
                    atoms_out.push(AtomOut {
                        community: c.code.clone(),
                        households: a.households,
                        buildings: a.buildings.len(),
                        geometry: p.wgs84,
                    });
                }
            }
        }
        if params.levels.is_empty() {
            let sol = {
                let _span = tracing::debug_span!("solve", community = %c.code).entered();
                solve::partition(&graph, band, params.seed, params.objective)
            };
            let polys = assemble::assemble(&tess, &sol.grid_of, sol.n_grids, fixed_part.len())
                .map_err(|e| {
                    if let assemble::AssembleError::NotContiguous { grid, .. } = &e {
                        debug_atoms_of(&graph, &sol.grid_of, *grid, &frame);
                    }
                    if fixed_part.is_empty() {
                        err(e.to_string())
                    } else {
                        err(format!(
                            "{e}: the grids kept or locked here ({}) and the current buildings and roads do not fit together; lock fewer grids in this community or regrid it whole",
                            fixed_part.len()
                        ))
                    }
                })?;
            if !fixed_part.is_empty() {
                // grids drawn around given polygons are checked before anything is written
                for (g, p) in polys.iter().enumerate().skip(fixed_part.len()) {
                    // in the coordinates written (tiny loops are cut there, see assemble)
                    if let Some(at) = crate::geom::validate::find_self_intersection(&p.wgs84) {
                        return Err(err(format!(
                            "grid {g} drawn around the kept grids crosses itself at {:.7},{:.7}",
                            at.x, at.y
                        )));
                    }
                }
            }
            let (len, road) = collect_grids(
                &graph,
                &sol,
                polys,
                band,
                &fixed_part,
                c,
                &frame,
                &mut grids,
                &mut notes,
            );
            internal_len += len;
            internal_road += road;
            continue;
        }
        // nested levels on the same atoms: each level partitions every polygon of the one above
        let chain: Vec<Band> = params
            .levels
            .iter()
            .copied()
            .chain(std::iter::once(band))
            .collect();
        let mut parent = vec![0u32; graph.len()];
        let mut n_parent = 1usize;
        // per level: band, solution, parent (index among this part's polygons of the level above)
        let mut solved: Vec<(Band, solve::Solution, Vec<usize>)> = Vec::new();
        for b in &chain {
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_parent];
            for (a, &p) in parent.iter().enumerate() {
                members[p as usize].push(a);
            }
            let mut label = vec![0u32; graph.len()];
            let mut oversize: Vec<bool> = Vec::new();
            let mut parent_of: Vec<usize> = Vec::new();
            for (p, m) in members.iter().enumerate() {
                if m.is_empty() {
                    continue;
                }
                let sub = subgraph(&graph, m, &parent, p as u32);
                let s = solve::partition(&sub, *b, params.seed, params.objective);
                let base = oversize.len() as u32;
                for (k, &a) in m.iter().enumerate() {
                    label[a] = base + s.grid_of[k];
                }
                let mut ov = s.oversize;
                ov.resize(s.n_grids, false);
                oversize.extend(ov);
                parent_of.extend(std::iter::repeat_n(p, s.n_grids));
            }
            let sol = solve::Solution {
                n_grids: oversize.len(),
                grid_of: label,
                oversize,
            };
            parent.clone_from(&sol.grid_of);
            n_parent = sol.n_grids;
            solved.push((*b, sol, parent_of));
        }
        // boundaries straightened once, on the finest level, and the same points left out of every
        // level, so that each level's polygons are exactly unions of the ones below
        let finest = solved.last().map(|(_, s, _)| s);
        let drop = finest.map_or_else(Default::default, |s| {
            straighten::straighten(
                &tess,
                &assemble::boundary_edges(&tess, &s.grid_of, s.n_grids),
            )
        });
        let mut prev_base = 0usize;
        let n_levels = solved.len();
        for (l, (b, sol, parent_of)) in solved.into_iter().enumerate() {
            let edges = assemble::boundary_edges(&tess, &sol.grid_of, sol.n_grids);
            let polys = assemble::assemble_edges(&tess, &edges, 0, &drop)
                .map_err(|e| err(format!("level {}: {e}", l + 1)))?;
            let last = l + 1 == n_levels;
            let (out, out_parent) = if last {
                (&mut grids, &mut final_parent)
            } else {
                let u = &mut upper[l];
                (&mut u.0, &mut u.1)
            };
            let my_base = out.len();
            let mut level_notes = Vec::new();
            let (len, road) = collect_grids(
                &graph,
                &sol,
                polys,
                b,
                &[],
                c,
                &frame,
                out,
                &mut level_notes,
            );
            out_parent.extend(parent_of.into_iter().map(|p| prev_base + p));
            if last {
                internal_len += len;
                internal_road += road;
                notes.extend(level_notes);
            } else {
                upper[l].2 += len;
                upper[l].3 += road;
                notes.extend(
                    level_notes
                        .into_iter()
                        .map(|n| format!("level {}: {n}", l + 1)),
                );
            }
            prev_base = my_base;
        }
    }
    if params.levels.is_empty() {
        number_grids(&mut grids, c, &frame);
        grids.sort_by(|a, b| a.code.cmp(&b.code));
    } else {
        number_levels(c, &frame, &mut upper, &mut grids, &final_parent);
    }
    let figures = metrics::community_figures(
        &grids,
        band,
        has_roads,
        internal_len,
        internal_road,
        t0.elapsed().as_secs_f64(),
    );
    notes.sort();
    notes.dedup();
    Ok((
        grids,
        CommunityReport {
            code: c.code.clone(),
            name: c.name.clone(),
            figures,
            notes,
        },
        atoms_out,
        upper,
    ))
}

/// Number grids west→east within rows taken north→south (DB11/T 2157 reading order). Kept
/// grids keep their codes; new grids take sequence numbers after the highest kept one.
fn number_grids(grids: &mut [Grid], c: &Community, frame: &LocalFrame) {
    if grids.is_empty() {
        return;
    }
    let mean_area = grids.iter().map(|g| g.area_m2).sum::<f64>() / grids.len() as f64;
    let row_h = mean_area.sqrt().max(1.0);
    let top = c
        .geometry
        .bounding_rect()
        .map_or(0.0, |r| frame.fwd(r.max()).y);
    let used: usize = grids
        .iter()
        .filter(|g| g.kept)
        .filter_map(|g| {
            let digits: String = g
                .code
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits
                .get(digits.len().saturating_sub(3)..)
                .and_then(|d| d.parse::<usize>().ok())
        })
        .max()
        .unwrap_or(0);
    let mut keys: Vec<(i64, f64, usize)> = grids
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.kept)
        .map(|(i, g)| {
            let p = interior_point(&MultiPolygon(vec![g.geometry.clone()]))
                .unwrap_or(Coord { x: 0.0, y: 0.0 });
            let m = frame.fwd(p);
            (((top - m.y) / row_h).floor() as i64, m.x, i)
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (seq, k) in keys.iter().enumerate() {
        let n = used + seq + 1;
        let g = &mut grids[k.2];
        g.code = grid_code(&c.code, n).to_string();
        g.name = c.name.as_deref().map(|nm| grid_name(nm, n));
    }
}

/// An upper level of one community: grids, parent index in the level above, internal boundary
/// length and its part near roads.
type Upper = (Vec<Grid>, Vec<usize>, f64, f64);

/// What one community gives: its grids, report, atoms (when asked) and upper levels.
type CommunityOutcome = (Vec<Grid>, CommunityReport, Vec<AtomOut>, Vec<Upper>);

/// Codes for nested levels: units of the first level are numbered in the community, each lower
/// level's polygons within their parent (`parent` indexes the level above); each level sorted.
fn number_levels(
    c: &Community,
    frame: &LocalFrame,
    upper: &mut [Upper],
    grids: &mut Vec<Grid>,
    final_parent: &[usize],
) {
    let n_upper = upper.len();
    for l in 0..=n_upper {
        let (above, rest) = upper.split_at_mut(l);
        let (level, parents): (&mut Vec<Grid>, &[usize]) = if l == n_upper {
            (grids, final_parent)
        } else {
            let (g, p, _, _) = &mut rest[0];
            (g, p.as_slice())
        };
        if l == 0 {
            number_grids(level, c, frame);
        } else {
            let up = &above[l - 1].0;
            let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, &p) in parents.iter().enumerate() {
                groups.entry(p).or_default().push(i);
            }
            for (p, idx) in groups {
                let Some(pg) = up.get(p) else { continue };
                let unit = Community {
                    code: pg.code.clone(),
                    name: None,
                    street: Some(c.code.clone()),
                    geometry: MultiPolygon(vec![pg.geometry.clone()]),
                };
                let mut mine: Vec<Grid> = idx.iter().map(|&i| level[i].clone()).collect();
                number_grids(&mut mine, &unit, frame);
                for (k, g) in idx.iter().zip(mine) {
                    level[*k] = Grid {
                        community: unit.code.clone(),
                        street: Some(c.code.clone()),
                        ..g
                    };
                }
            }
        }
    }
    for (g, _, _, _) in upper.iter_mut() {
        g.sort_by(|a, b| a.code.cmp(&b.code));
    }
    grids.sort_by(|a, b| a.code.cmp(&b.code));
}

/// The atoms labelled `p` as a graph of their own; edges to other labels count as outer boundary.
fn subgraph(
    g: &tessellation::AtomGraph,
    members: &[usize],
    label: &[u32],
    p: u32,
) -> tessellation::AtomGraph {
    let mut idx = vec![u32::MAX; g.len()];
    for (k, &a) in members.iter().enumerate() {
        idx[a] = k as u32;
    }
    let mut atoms = Vec::with_capacity(members.len());
    let mut start = Vec::with_capacity(members.len() + 1);
    let mut adj = Vec::new();
    for &a in members {
        start.push(adj.len());
        let mut at = g.atoms[a].clone();
        for e in g.nbrs(a) {
            if label[e.nbr as usize] == p {
                adj.push(tessellation::Adj {
                    nbr: idx[e.nbr as usize],
                    ..*e
                });
            } else {
                at.outer += e.len;
            }
        }
        atoms.push(at);
    }
    start.push(adj.len());
    tessellation::AtomGraph { atoms, start, adj }
}

/// Grid records of one solved part: households, weights, buildings and figures per grid,
/// explanations of misses into `notes`. Returns the internal boundary length and its part near roads.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
fn collect_grids(
    graph: &tessellation::AtomGraph,
    sol: &solve::Solution,
    polys: Vec<assemble::GridPolygon>,
    band: Band,
    fixed_part: &[&FixedGrid],
    c: &Community,
    frame: &LocalFrame,
    grids: &mut Vec<Grid>,
    notes: &mut Vec<String>,
) -> (f64, f64) {
    let mut internal_len = 0.0;
    let mut internal_road = 0.0;
    // per grid figures
    let mut hh = vec![0u64; sol.n_grids];
    let mut wt = vec![0.0; sol.n_grids];
    let mut blds: Vec<Vec<usize>> = vec![Vec::new(); sol.n_grids];
    for (a, atom) in graph.atoms.iter().enumerate() {
        let g = sol.grid_of[a] as usize;
        hh[g] += atom.households;
        wt[g] += atom.weight;
        blds[g].extend(atom.buildings.iter().map(|&b| b as usize));
        for e in graph.nbrs(a) {
            if sol.grid_of[e.nbr as usize] as usize != g && (e.nbr as usize) > a {
                internal_len += e.len;
                internal_road += e.road;
            }
        }
    }
    for (g, poly) in polys.into_iter().enumerate() {
        let kept = g < fixed_part.len();
        let (area, perim) = if kept {
            metrics::area_perimeter(&project_poly(frame, &fixed_part[g].polygon))
        } else {
            metrics::area_perimeter(&poly.metres)
        };
        let mut b = std::mem::take(&mut blds[g]);
        b.sort_unstable();
        // a kept grid that is one building above the maximum is an oversize grid like any other
        let oversize = (sol.oversize[g] || (kept && wt[g] > band.max())) && b.len() == 1;
        if kept && !band.contains(wt[g]) && !oversize {
            notes.push(format!(
                "kept grid {} holds {:.0}: outside the band, kept as given (locked, or left as it was by a rebalance)",
                fixed_part[g].code, wt[g]
            ));
        } else if !band.contains(wt[g]) && !oversize {
            notes.push(metrics::explain(graph, sol, g, band, wt[g]));
        }
        grids.push(Grid {
            code: if kept {
                fixed_part[g].code.clone()
            } else {
                String::new()
            },
            name: if kept {
                fixed_part[g].name.clone()
            } else {
                None
            },
            kept,
            community: c.code.clone(),
            street: c.street.clone(),
            households: hh[g],
            weight: wt[g],
            buildings: b,
            area_m2: area,
            perimeter_m: perim,
            polsby_popper: if perim > 0.0 {
                4.0 * std::f64::consts::PI * area / (perim * perim)
            } else {
                0.0
            },
            oversize,
            geometry: if kept {
                fixed_part[g].polygon.clone()
            } else {
                poly.wgs84
            },
        });
    }
    (internal_len, internal_road)
}

/// The atoms of a grid that came out in pieces, as debug events (developers read them with
/// `RUST_LOG=wangge=debug`).
fn debug_atoms_of(
    graph: &tessellation::AtomGraph,
    grid_of: &[u32],
    grid: usize,
    frame: &LocalFrame,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for (a, at) in graph.atoms.iter().enumerate() {
        if grid_of[a] as usize == grid {
            let p = frame.inv(at.centroid);
            let nbrs: Vec<(u32, u32, f64)> = graph
                .nbrs(a)
                .iter()
                .map(|e| (e.nbr, grid_of[e.nbr as usize], e.len))
                .collect();
            tracing::debug!(grid, atom = a, area_m2 = at.area, buildings = ?at.buildings, lon = p.x, lat = p.y, neighbours = ?nbrs, "atom of a grid in pieces");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::crs::{Crs, Transformer};
    use crate::io::geojson::{read_buildings, read_communities, read_roads};
    use crate::model::EstimateParams;

    /// A rebalance's later attempts take communities from the cache: what they give must be
    /// exactly what drawing them again gives.
    #[test]
    fn cached_outcomes_equal_fresh_ones() {
        let city = crate::sample::generate(5, 4);
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
