//! `wangge plans check`: a plan's grids against the hard rules and its figures, measured the
//! way `../shared/tools/check_grids.py` measures them (so the two agree within 0.1): every grid
//! one valid polygon inside its community; no overlap or gap above 0.1 % of a community; no
//! building split (99 % of its footprint in its grid); every building with households in a
//! grid; claimed households equal to the sum of the grid's buildings; the share of grids in
//! band; Polsby-Popper; the share of internal boundary within 20 m of a road.

use crate::geom::frame::LocalFrame;
use crate::geom::interior_point::interior_point;
use crate::model::{Building, Community, Road};
use crate::partition::Band;
use crate::store::GridRecord;
use geo::{Area, BooleanOps, BoundingRect, Coord, Intersects, LineString, MultiPolygon, Polygon};
use rstar::{AABB, RTree, RTreeObject};
use serde::Serialize;
use std::collections::BTreeSet;

/// The figures and problems of a plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub ok: bool,
    pub grids: usize,
    pub in_band_pct: f64,
    pub oversize_single: usize,
    pub households_min: u64,
    pub households_max: u64,
    pub split_buildings: usize,
    pub unassigned_buildings: usize,
    pub max_gap_pct: f64,
    pub max_overlap_pct: f64,
    pub polsby_popper_mean: f64,
    pub polsby_popper_min: f64,
    pub road_following_pct: Option<f64>,
    /// Grids out of band (code, households), for the exception register.
    pub out_of_band: Vec<(String, u64)>,
    pub problems: Vec<String>,
}

struct Boxed(usize, AABB<[f64; 2]>);
impl RTreeObject for Boxed {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.1
    }
}

fn bbox(p: &Polygon) -> AABB<[f64; 2]> {
    p.bounding_rect().map_or_else(
        || AABB::from_point([0.0, 0.0]),
        |r| AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
    )
}

fn project(f: &LocalFrame, p: &Polygon) -> Polygon {
    let r = |l: &LineString| LineString(l.0.iter().map(|c| f.fwd(*c)).collect());
    Polygon::new(r(p.exterior()), p.interiors().iter().map(r).collect())
}

fn perimeter(p: &Polygon) -> f64 {
    std::iter::once(p.exterior())
        .chain(p.interiors())
        .flat_map(|r| r.0.windows(2))
        .map(|w| ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt())
        .sum()
}

fn round(x: f64, d: i32) -> f64 {
    let k = 10f64.powi(d);
    (x * k).round() / k
}

/// The centre of the communities' joint bounding box (the origin when there are none).
fn centre_of(communities: &[Community]) -> Coord {
    communities
        .iter()
        .filter_map(|c| c.geometry.bounding_rect())
        .reduce(|a, b| {
            geo::Rect::new(
                Coord {
                    x: a.min().x.min(b.min().x),
                    y: a.min().y.min(b.min().y),
                },
                Coord {
                    x: a.max().x.max(b.max().x),
                    y: a.max().y.max(b.max().y),
                },
            )
        })
        .map_or(Coord { x: 0.0, y: 0.0 }, |r| r.center())
}

/// Check a plan's grids against the communities, buildings and roads they were drawn on.
#[must_use]
pub fn check(
    communities: &[Community],
    buildings: &[Building],
    roads: &[Road],
    grids: &[GridRecord],
    band: Band,
) -> Report {
    let mut problems = Vec::new();
    // one frame for everything, centred like the checker's
    let centre = centre_of(communities);
    let frame = LocalFrame::new(centre.x, centre.y);
    let polys = one_polygon_each(grids, &mut problems);
    let metres: Vec<Option<Polygon>> = polys
        .iter()
        .map(|p| p.as_ref().map(|p| project(&frame, p)))
        .collect();
    let (max_gap, max_ovl) = coverage(communities, grids, &metres, &frame, &mut problems);
    let tree = RTree::bulk_load(
        polys
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| Boxed(i, bbox(p))))
            .collect(),
    );
    let (hh, counts, split, unassigned) = buildings_in_grids(communities, buildings, &polys, &tree);
    building_problems(grids, &hh, (split, unassigned), &mut problems);
    let (inband, oversize, out_of_band, pp) = band_and_shape(grids, (&hh, &counts), &metres, band);
    let counted = grids.len() - oversize;
    let in_band_pct = if counted > 0 {
        100.0 * inband as f64 / counted as f64
    } else {
        0.0
    };
    let road_pct = if roads.is_empty() {
        None
    } else {
        Some(road_following(communities, &metres, roads, &frame))
    };
    let mut sorted = hh.clone();
    sorted.sort_unstable();
    Report {
        ok: problems.is_empty(),
        grids: grids.len(),
        in_band_pct: round(in_band_pct, 2),
        oversize_single: oversize,
        households_min: sorted.first().copied().unwrap_or(0),
        households_max: sorted.last().copied().unwrap_or(0),
        split_buildings: split,
        unassigned_buildings: unassigned,
        max_gap_pct: round(max_gap, 4),
        max_overlap_pct: round(max_ovl, 4),
        polsby_popper_mean: if pp.is_empty() {
            0.0
        } else {
            round(pp.iter().sum::<f64>() / pp.len() as f64, 4)
        },
        polsby_popper_min: round(pp.iter().copied().fold(f64::INFINITY, f64::min).min(1.0), 4),
        road_following_pct: road_pct.map(|r| round(r, 2)),
        out_of_band,
        problems,
    }
}

/// Problems with the buildings: split between grids, with households in no grid, or counted
/// differently from what the grids claim.
fn building_problems(
    grids: &[GridRecord],
    hh: &[u64],
    (split, unassigned): (usize, usize),
    problems: &mut Vec<String>,
) {
    if split > 0 {
        problems.push(format!("{split} buildings are split between grids"));
    }
    if unassigned > 0 {
        problems.push(format!(
            "{unassigned} buildings with households lie in no grid"
        ));
    }
    let mism = grids
        .iter()
        .zip(hh)
        .filter(|(g, h)| g.households != **h)
        .count();
    if mism > 0 {
        problems.push(format!(
            "{mism} grids claim households that differ from the sum of their buildings"
        ));
    }
}

/// Each grid's one polygon (`None` for grids of several), self-intersections named.
fn one_polygon_each(grids: &[GridRecord], problems: &mut Vec<String>) -> Vec<Option<Polygon>> {
    grids
        .iter()
        .map(|g| {
            if g.geometry.0.len() != 1 {
                problems.push(format!(
                    "grid {}: {} polygons, not one (not contiguous)",
                    g.code,
                    g.geometry.0.len()
                ));
                return None;
            }
            let p = g.geometry.0[0].clone();
            if let Some(at) = crate::geom::validate::find_self_intersection(&p) {
                problems.push(format!(
                    "grid {}: invalid geometry: self-intersection at {:.7},{:.7}",
                    g.code, at.x, at.y
                ));
            }
            Some(p)
        })
        .collect()
}

/// Grids in band, oversize single-building grids, grids out of band, Polsby-Popper of each.
fn band_and_shape(
    grids: &[GridRecord],
    (hh, counts): (&[u64], &[usize]),
    metres: &[Option<Polygon>],
    band: Band,
) -> (usize, usize, Vec<(String, u64)>, Vec<f64>) {
    let mut inband = 0;
    let mut oversize = 0;
    let mut out_of_band = Vec::new();
    let mut pp = Vec::new();
    for (i, g) in grids.iter().enumerate() {
        let h = hh[i];
        if counts[i] == 1 && h as f64 > band.max() {
            oversize += 1;
        } else if band.contains(h as f64) {
            inband += 1;
        } else {
            out_of_band.push((g.code.clone(), h));
        }
        if let Some(m) = &metres[i] {
            let per = perimeter(m);
            if per > 0.0 {
                pp.push(4.0 * std::f64::consts::PI * m.unsigned_area() / (per * per));
            }
        }
    }
    (inband, oversize, out_of_band, pp)
}

/// Per community: the largest share of its area in no grid and covered twice (percent).
fn coverage(
    communities: &[Community],
    grids: &[GridRecord],
    metres: &[Option<Polygon>],
    frame: &LocalFrame,
    problems: &mut Vec<String>,
) -> (f64, f64) {
    let (mut max_gap, mut max_ovl) = (0.0f64, 0.0f64);
    for c in communities {
        let mine: Vec<&Polygon> = grids
            .iter()
            .zip(metres)
            .filter(|(g, _)| g.community == c.code)
            .filter_map(|(_, m)| m.as_ref())
            .collect();
        if mine.is_empty() {
            problems.push(format!("community {}: no grids", c.code));
            continue;
        }
        let cm = MultiPolygon(c.geometry.0.iter().map(|p| project(frame, p)).collect());
        let ca = cm.unsigned_area();
        if ca <= 0.0 {
            continue;
        }
        let total: f64 = mine.iter().map(|p| p.unsigned_area()).sum();
        // overlap: pairwise intersections of grids whose boxes meet
        let boxes: Vec<AABB<[f64; 2]>> = mine.iter().map(|p| bbox(p)).collect();
        let tree = RTree::bulk_load(
            boxes
                .iter()
                .enumerate()
                .map(|(i, b)| Boxed(i, *b))
                .collect(),
        );
        let mut ovl = 0.0;
        for (i, b) in boxes.iter().enumerate() {
            for o in tree.locate_in_envelope_intersecting(b) {
                if o.0 > i && mine[i].intersects(mine[o.0]) {
                    ovl += mine[i].intersection(mine[o.0]).unsigned_area();
                }
            }
        }
        let union = total - ovl;
        let inside: f64 = mine
            .iter()
            .map(|p| {
                MultiPolygon(vec![(*p).clone()])
                    .intersection(&cm)
                    .unsigned_area()
            })
            .sum::<f64>()
            - ovl;
        let gap = (ca - inside).max(0.0);
        let out = (union - inside).max(0.0);
        let (gp, op) = (100.0 * gap / ca, 100.0 * ovl / ca);
        max_gap = max_gap.max(gp);
        max_ovl = max_ovl.max(op);
        if op > 0.1 {
            problems.push(format!(
                "community {}: grids overlap on {op:.3}% of its area",
                c.code
            ));
        }
        if gp > 0.1 {
            problems.push(format!(
                "community {}: {gp:.3}% of its area is in no grid",
                c.code
            ));
        }
        if 100.0 * out / ca > 0.1 {
            problems.push(format!(
                "community {}: grids reach {:.3}% outside it",
                c.code,
                100.0 * out / ca
            ));
        }
    }
    (max_gap, max_ovl)
}

/// Households and buildings per grid (by each footprint's interior point), buildings split
/// (less than 99 % of the footprint in its grid), buildings with households in no grid.
fn buildings_in_grids(
    communities: &[Community],
    buildings: &[Building],
    polys: &[Option<Polygon>],
    tree: &RTree<Boxed>,
) -> (Vec<u64>, Vec<usize>, usize, usize) {
    let mut hh = vec![0u64; polys.len()];
    let mut n = vec![0usize; polys.len()];
    let (mut split, mut unassigned) = (0, 0);
    let owner = crate::partition::assign_buildings(communities, buildings);
    for (b, o) in buildings.iter().zip(owner) {
        let Some((ci, _)) = o else { continue };
        let Some(ip) = interior_point(&b.geometry) else {
            continue;
        };
        let mut hits: Vec<usize> = tree
            .locate_in_envelope_intersecting(&AABB::from_point([ip.x, ip.y]))
            .map(|x| x.0)
            .filter(|&i| {
                polys[i]
                    .as_ref()
                    .is_some_and(|p| crate::geom::point_in_polygons(std::slice::from_ref(p), ip))
            })
            .collect();
        hits.sort_unstable();
        let Some(&g) = hits.first() else {
            if b.households > 0 {
                unassigned += 1;
            }
            continue;
        };
        hh[g] += u64::from(b.households);
        n[g] += 1;
        let Some(p) = &polys[g] else { continue };
        let c = &communities[ci].geometry;
        let area = b.geometry.unsigned_area();
        if area <= 0.0 {
            continue;
        }
        let whole = c.intersection(&b.geometry).unsigned_area() >= 0.99 * area;
        let inside = MultiPolygon(vec![p.clone()])
            .intersection(&b.geometry)
            .unsigned_area();
        if whole && inside / area < 0.99 {
            split += 1;
        }
    }
    (hh, n, split, unassigned)
}

struct Seg(Coord, Coord);
impl RTreeObject for Seg {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_corners(
            [self.0.x.min(self.1.x), self.0.y.min(self.1.y)],
            [self.0.x.max(self.1.x), self.0.y.max(self.1.y)],
        )
    }
}

fn near(tree: &RTree<Seg>, p: Coord, d: f64) -> bool {
    tree.locate_in_envelope_intersecting(&AABB::from_corners(
        [p.x - d, p.y - d],
        [p.x + d, p.y + d],
    ))
    .any(|s| crate::geom::seg_point_dist(s.0, s.1, p) <= d)
}

/// The grids' boundaries in metres, each edge once, noded at the vertices lying on it (as a
/// union of lines is).
fn noded_boundaries(metres: &[Option<Polygon>]) -> Vec<(Coord, Coord)> {
    let key = |c: Coord| ((c.x * 1e6).round() as i64, (c.y * 1e6).round() as i64);
    let mut verts: Vec<Coord> = Vec::new();
    let mut vseen: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut segs: Vec<(Coord, Coord)> = Vec::new();
    let mut sseen: BTreeSet<((i64, i64), (i64, i64))> = BTreeSet::new();
    for m in metres.iter().flatten() {
        for r in std::iter::once(m.exterior()).chain(m.interiors()) {
            for w in r.0.windows(2) {
                if vseen.insert(key(w[0])) {
                    verts.push(w[0]);
                }
                let (ka, kb) = (key(w[0]), key(w[1]));
                if ka != kb && sseen.insert(if ka < kb { (ka, kb) } else { (kb, ka) }) {
                    segs.push((w[0], w[1]));
                }
            }
        }
    }
    let vtree = RTree::bulk_load(verts.iter().map(|v| [v.x, v.y]).collect::<Vec<_>>());
    let mut pieces: Vec<(Coord, Coord)> = Vec::new();
    let mut pseen: BTreeSet<((i64, i64), (i64, i64))> = BTreeSet::new();
    for (a, b) in segs {
        let e = 1e-6;
        let env = AABB::from_corners(
            [a.x.min(b.x) - e, a.y.min(b.y) - e],
            [a.x.max(b.x) + e, a.y.max(b.y) + e],
        );
        let len2 = (b.x - a.x).powi(2) + (b.y - a.y).powi(2);
        let mut cuts: Vec<(f64, Coord)> = vtree
            .locate_in_envelope(&env)
            .map(|p| Coord { x: p[0], y: p[1] })
            .filter(|&p| {
                key(p) != key(a) && key(p) != key(b) && crate::geom::seg_point_dist(a, b, p) < e
            })
            .map(|p| {
                (
                    ((p.x - a.x) * (b.x - a.x) + (p.y - a.y) * (b.y - a.y)) / len2,
                    p,
                )
            })
            .collect();
        cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut prev = a;
        for p in cuts.into_iter().map(|c| c.1).chain(std::iter::once(b)) {
            let (ka, kb) = (key(prev), key(p));
            if ka != kb && pseen.insert(if ka < kb { (ka, kb) } else { (kb, ka) }) {
                pieces.push((prev, p));
            }
            prev = p;
        }
    }
    pieces
}

/// The checker's road figure: internal boundaries sampled every 5 m, points within 1 m of a
/// community edge left out, the share within 20 m of a road.
fn road_following(
    communities: &[Community],
    metres: &[Option<Polygon>],
    roads: &[Road],
    frame: &LocalFrame,
) -> f64 {
    let road_tree = RTree::bulk_load(
        roads
            .iter()
            .flat_map(|r| {
                r.line
                    .0
                    .windows(2)
                    .map(|w| Seg(frame.fwd(w[0]), frame.fwd(w[1])))
            })
            .collect(),
    );
    let edge_tree = RTree::bulk_load(
        communities
            .iter()
            .flat_map(|c| c.geometry.0.iter())
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
            .flat_map(|r| {
                r.0.windows(2)
                    .map(|w| Seg(frame.fwd(w[0]), frame.fwd(w[1])))
            })
            .collect::<Vec<_>>(),
    );
    let pieces = noded_boundaries(metres);
    let mut counts = (0usize, 0usize);
    for (a, b) in pieces {
        let len = ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt();
        let n = (len / 5.0).ceil().max(1.0) as usize;
        // both ends, as the checker's union of boundaries (split into single segments) gives them
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let p = Coord {
                x: a.x + (b.x - a.x) * t,
                y: a.y + (b.y - a.y) * t,
            };
            if near(&edge_tree, p, 1.0) {
                continue;
            }
            counts.1 += 1;
            if near(&road_tree, p, 20.0) {
                counts.0 += 1;
            }
        }
    }
    if counts.1 == 0 {
        100.0
    } else {
        100.0 * counts.0 as f64 / counts.1 as f64
    }
}
