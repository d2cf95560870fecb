//! Atoms: a planar subdivision of one community part into indivisible pieces, one per building
//! cluster (overlapping footprints merged) plus one per block without buildings.
//!
//! How: a constrained Delaunay triangulation (spade) of the community boundary, the footprints
//! and the block-cutting roads, all densified so that the triangles are small near walls.
//! Triangles inside a footprint belong to its building. Blocks are the triangles connected
//! without crossing a road. Every triangle corner in free space takes the label of the nearest
//! building of its block, by shortest path along triangle edges (Dijkstra), and each triangle is
//! then cut through its edge midpoints and centroid where its corner labels differ (marching
//! triangles). So atoms meet half-way between buildings, along roads where blocks meet, and
//! along the shared wall of buildings that touch — never through a footprint.
//!
//! The same pieces give the atom graph (areas, shared boundary lengths, how much of each
//! shared boundary runs along a road) and, after partitioning, the grid polygons, whose
//! shared edges are identical by construction (no gaps, no overlaps).

use super::buckets::SegIndex;
use crate::geom::frame::LocalFrame;
use geo::{Coord, LineString, Polygon};
use rstar::{AABB, RTree, RTreeObject};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use spade::{ConstrainedDelaunayTriangulation, Point2, Triangulation};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// No face / no label.
pub const NONE: u32 = u32::MAX;

const F_BOUNDARY: u8 = 1;
const F_ROAD: u8 = 2;
const F_CONSTRAINT: u8 = 4;
/// Free triangles narrower than this (inradius, metres) between given polygons and the
/// community edge belong to the given polygon.
const GAP_M: f64 = 0.05;
/// Building-less free land smaller than this (m²), cut off by given polygons, belongs to one.
const GAP_PIECE_M2: f64 = 100.0;
/// A point of a given polygon this close (metres) to a vertex in place is that vertex.
const SNAP_M: f64 = 1e-6;
const SNAP_CELL_M: f64 = 1e-5;
/// An edge of a given polygon this close (metres) to the community edge runs along it.
const ALONG_M: f64 = 1e-3;

/// A building handed to the tessellation (coordinates in the frame's metres).
#[derive(Debug, Clone)]
pub struct BuildingPart {
    /// Index of the building in the caller's list.
    pub building: u32,
    /// Footprint in metres.
    pub polygons: Vec<Polygon>,
    /// Households.
    pub households: u32,
    /// Balancing weight.
    pub weight: f64,
}

/// A grid kept exactly as it is (locked, or untouched by a rebalance): its polygon becomes one
/// atom whose boundary is the polygon's own rings.
#[derive(Debug, Clone)]
pub struct FixedRegion {
    /// The polygon in metres and in WGS84 (the same rings).
    pub metres: Polygon,
    pub wgs84: Polygon,
    /// Buildings (caller's indices) that belong to it.
    pub buildings: Vec<u32>,
    pub households: u64,
    pub weight: f64,
}

/// Settings of the tessellation.
#[derive(Debug, Clone, Copy)]
pub struct TessellationSettings {
    /// Longest edge along walls, boundaries and roads before it is split (metres).
    pub densify_m: f64,
    /// Distance within which a boundary counts as following a road (metres).
    pub road_near_m: f64,
    /// Minimum triangle angle of the Delaunay refinement (0 = no refinement).
    pub refine_angle_deg: f64,
    /// Largest triangle the refinement leaves (m²).
    pub max_triangle_m2: f64,
    /// Overlap (m²) above which two footprints become one atom (smaller ones are slivers of digitising).
    pub merge_overlap_m2: f64,
}

impl Default for TessellationSettings {
    fn default() -> Self {
        TessellationSettings {
            densify_m: 6.0,
            road_near_m: 20.0,
            merge_overlap_m2: 0.05,
            refine_angle_deg: 20.0,
            max_triangle_m2: 400.0,
        }
    }
}

/// An indivisible piece of a community.
#[derive(Debug, Clone, Default)]
pub struct Atom {
    /// Buildings (caller's indices) whose footprint it holds.
    pub buildings: Vec<u32>,
    /// Households in it.
    pub households: u64,
    /// Balancing weight.
    pub weight: f64,
    /// Area in m².
    pub area: f64,
    /// Area centroid (metres).
    pub centroid: Coord,
    /// Length of community boundary it touches (metres).
    pub outer: f64,
    /// Index of the fixed region this atom is, if it is one.
    pub fixed: Option<u32>,
}

/// One adjacency: neighbour, shared boundary length, and the part of it near a road.
#[derive(Debug, Clone, Copy)]
pub struct Adj {
    pub nbr: u32,
    pub len: f64,
    pub road: f64,
}

/// The atoms and their adjacency (CSR).
#[derive(Debug, Clone, Default)]
pub struct AtomGraph {
    pub atoms: Vec<Atom>,
    pub start: Vec<usize>,
    pub adj: Vec<Adj>,
}

impl AtomGraph {
    /// Neighbours of atom `a`.
    #[must_use]
    pub fn nbrs(&self, a: usize) -> &[Adj] {
        &self.adj[self.start[a]..self.start[a + 1]]
    }
    /// Number of atoms.
    #[must_use]
    pub fn len(&self) -> usize {
        self.atoms.len()
    }
    /// True when there are no atoms.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }
}

/// The triangulated, labelled community part.
#[derive(Debug, Clone)]
pub struct Tessellation {
    pub frame: LocalFrame,
    pub verts: Vec<Coord>,
    /// Original WGS84 coordinate of input vertices (output exactly as given).
    pub orig: Vec<Option<Coord>>,
    /// Vertices added only to densify a straight edge (dropped from output rings when collinear).
    pub steiner: Vec<bool>,
    pub faces: Vec<[u32; 3]>,
    pub nbr: Vec<[u32; 3]>,
    pub edge: Vec<[u32; 3]>,
    pub edge_flags: Vec<u8>,
    pub inside: Vec<bool>,
    /// Atom label of each corner of each inside face.
    pub corner: Vec<[u32; 3]>,
    pub n_edges: usize,
}

/// Why a tessellation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TessellationError {
    #[error("coordinate ({0:.3}, {1:.3}) m cannot be triangulated")]
    Insert(f64, f64),
    #[error("the triangulation failed on degenerate geometry")]
    Degenerate,
}

fn seg_tree(segs: impl Iterator<Item = (Coord, Coord)>) -> SegIndex {
    SegIndex::new(segs)
}

fn near(tree: &SegIndex, p: Coord, d: f64) -> bool {
    tree.near(p, d)
}

fn lerp(a: Coord, b: Coord, t: f64) -> Coord {
    Coord {
        x: a.x + (b.x - a.x) * t,
        y: a.y + (b.y - a.y) * t,
    }
}

/// Proper crossing of segments ab and pq: parameters (t on ab, u on pq), both strictly inside.
fn seg_intersection(a: Coord, b: Coord, p: Coord, q: Coord) -> Option<(f64, f64)> {
    let (rx, ry) = (b.x - a.x, b.y - a.y);
    let (sx, sy) = (q.x - p.x, q.y - p.y);
    let den = rx * sy - ry * sx;
    if den.abs() < 1e-12 * (rx.hypot(ry) * sx.hypot(sy)).max(1e-30) {
        return None;
    }
    let t = ((p.x - a.x) * sy - (p.y - a.y) * sx) / den;
    let u = ((p.x - a.x) * ry - (p.y - a.y) * rx) / den;
    (t > 1e-9 && t < 1.0 - 1e-9 && u > 1e-9 && u < 1.0 - 1e-9).then_some((t, u))
}

/// Parameter of the projection of `e` on pq when it lies strictly inside pq within `tol`.
fn project_within(e: Coord, p: Coord, q: Coord, tol: f64) -> Option<f64> {
    let (dx, dy) = (q.x - p.x, q.y - p.y);
    let l2 = dx * dx + dy * dy;
    if l2 <= 0.0 {
        return None;
    }
    let u = ((e.x - p.x) * dx + (e.y - p.y) * dy) / l2;
    if u <= 1e-6 || u >= 1.0 - 1e-6 {
        return None;
    }
    (dist(e, lerp(p, q, u)) <= tol).then_some(u)
}

/// Even-odd point-in-polygon over ring segments binned by y.
struct RingIndex {
    y0: f64,
    h: f64,
    bins: Vec<Vec<(Coord, Coord)>>,
}

impl RingIndex {
    fn new(segs: &[(Coord, Coord)]) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (a, b) in segs {
            lo = lo.min(a.y.min(b.y));
            hi = hi.max(a.y.max(b.y));
        }
        let nb = (segs.len() / 4).clamp(1, 4096);
        let h = ((hi - lo) / nb as f64).max(1e-9);
        let mut bins = vec![Vec::new(); nb];
        for &(a, b) in segs {
            let i0 = (((a.y.min(b.y) - lo) / h).floor() as usize).min(nb - 1);
            let i1 = (((a.y.max(b.y) - lo) / h).floor() as usize).min(nb - 1);
            for bin in &mut bins[i0..=i1] {
                bin.push((a, b));
            }
        }
        RingIndex { y0: lo, h, bins }
    }

    fn contains(&self, p: Coord) -> bool {
        if p.y.is_nan() || p.y < self.y0 {
            return false;
        }
        let i = ((p.y - self.y0) / self.h).floor() as usize;
        let Some(bin) = self.bins.get(i) else {
            return false;
        };
        let mut inside = false;
        for &(a, b) in bin {
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
        }
        inside
    }
}

fn tri_area(a: Coord, b: Coord, c: Coord) -> f64 {
    ((b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)) / 2.0
}

fn dist(a: Coord, b: Coord) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

fn mid(a: Coord, b: Coord) -> Coord {
    Coord {
        x: (a.x + b.x) / 2.0,
        y: (a.y + b.y) / 2.0,
    }
}

struct Builder {
    cdt: ConstrainedDelaunayTriangulation<Point2<f64>>,
    orig: HashMap<usize, Coord>,
    steiner: HashMap<usize, bool>,
    /// Constraint pieces spade could not insert (near-degenerate crossings); skipped.
    skipped: usize,
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Install (once) a panic hook that stays silent for panics caught inside the triangulation,
/// and defers to the previous hook otherwise.
fn quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                prev(info);
            }
        }));
    });
}

/// Run `f` with panics silenced and caught.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    quiet_hook();
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.ok()
}

impl Builder {
    fn insert(
        &mut self,
        p: Coord,
        orig: Option<Coord>,
        steiner: bool,
    ) -> Result<spade::handles::FixedVertexHandle, TessellationError> {
        let h = self
            .cdt
            .insert(Point2::new(p.x, p.y))
            .map_err(|_| TessellationError::Insert(p.x, p.y))?;
        if let Some(o) = orig {
            self.orig.entry(h.index()).or_insert(o);
        }
        let e = self.steiner.entry(h.index()).or_insert(steiner);
        *e = *e && steiner;
        Ok(h)
    }

    /// Add one constraint edge, splitting crossed constraints; a piece that spade cannot
    /// resolve (it asserts on some near-degenerate crossings) is skipped and counted.
    fn constraint(
        &mut self,
        a: spade::handles::FixedVertexHandle,
        b: spade::handles::FixedVertexHandle,
    ) {
        let cdt = &mut self.cdt;
        if guarded(|| {
            cdt.add_constraint_and_split(a, b, |p| p);
        })
        .is_none()
        {
            self.skipped += 1;
        }
    }

    /// Insert a closed ring whose points may lack original coordinates (`None`), densified.
    fn ring(
        &mut self,
        pts: &[Coord],
        orig: &[Option<Coord>],
        densify: f64,
    ) -> Result<(), TessellationError> {
        let n = pts.len();
        if n < 2 {
            return Ok(());
        }
        let mut prev = self.insert(pts[0], orig[0], false)?;
        for i in 1..n {
            let (a, b) = (pts[i - 1], pts[i]);
            let k = (dist(a, b) / densify).ceil().max(1.0) as usize;
            for j in 1..=k {
                let h = if j == k {
                    self.insert(b, orig[i], false)?
                } else {
                    let t = j as f64 / k as f64;
                    self.insert(lerp(a, b, t), None, true)?
                };
                if h != prev {
                    self.constraint(prev, h);
                }
                prev = h;
            }
        }
        Ok(())
    }

    /// Insert the rings of given polygons (the grids kept by a rebalance, locked grids). They
    /// were drawn on an earlier tessellation of the same layers, so their points come back as
    /// the same constructions rounded through WGS84: each point within [`SNAP_M`] of a vertex
    /// already in place is that vertex, edges that run along the community edge are left to
    /// it, and an edge shared by two rings goes in once. Otherwise near-coincident copies of
    /// one line leave zero-width slivers that a free grid would run into.
    fn given_rings(
        &mut self,
        rings: &[(Vec<Coord>, Vec<Option<Coord>>)],
        community: &SegIndex,
    ) -> Result<(), TessellationError> {
        let cell = |p: Coord| {
            (
                (p.x / SNAP_CELL_M).floor() as i64,
                (p.y / SNAP_CELL_M).floor() as i64,
            )
        };
        let mut grid: HashMap<(i64, i64), Vec<(Coord, spade::handles::FixedVertexHandle)>> =
            HashMap::default();
        for v in self.cdt.vertices() {
            let p = Coord {
                x: v.position().x,
                y: v.position().y,
            };
            grid.entry(cell(p)).or_default().push((p, v.fix()));
        }
        let along = |a: Coord, c: Coord| {
            [0.0, 0.25, 0.5, 0.75, 1.0]
                .iter()
                .all(|&t| near(community, lerp(a, c, t), ALONG_M))
        };
        let mut done = HashSet::default();
        for (pts, orig) in rings {
            let mut prev: Option<spade::handles::FixedVertexHandle> = None;
            for (i, &p) in pts.iter().enumerate() {
                let (cx, cy) = cell(p);
                let mut found = None;
                for dx in -1..=1 {
                    for dy in -1..=1 {
                        for &(q, h) in grid.get(&(cx + dx, cy + dy)).into_iter().flatten() {
                            let d = dist(p, q);
                            if d <= SNAP_M && found.is_none_or(|(bd, _)| d < bd) {
                                found = Some((d, h));
                            }
                        }
                    }
                }
                let h = match found {
                    Some((_, h)) => h,
                    None => {
                        let h = self.insert(p, orig[i], false)?;
                        grid.entry(cell(p)).or_default().push((p, h));
                        h
                    }
                };
                if let Some(g) = prev {
                    let key = (g.index().min(h.index()), g.index().max(h.index()));
                    if g != h && !along(pts[i - 1], p) && done.insert(key) {
                        self.constraint(g, h);
                    }
                }
                prev = Some(h);
            }
        }
        Ok(())
    }

    /// Insert a polyline (closed if `closed`) as constraints, densified.
    fn polyline(
        &mut self,
        pts: &[Coord],
        orig: Option<&[Coord]>,
        closed: bool,
        densify: f64,
    ) -> Result<(), TessellationError> {
        let n = pts.len();
        if n < 2 {
            return Ok(());
        }
        let _ = closed; // rings arrive closed (last point = first)
        let last = n - 1;
        let mut prev = self.insert(pts[0], orig.map(|o| o[0]), false)?;
        for i in 1..=last {
            let (a, b) = (pts[i - 1], pts[i]);
            let len = dist(a, b);
            let k = (len / densify).ceil().max(1.0) as usize;
            for j in 1..=k {
                let h = if j == k {
                    self.insert(b, orig.map(|o| o[i]), false)?
                } else {
                    let t = j as f64 / k as f64;
                    self.insert(
                        Coord {
                            x: a.x + (b.x - a.x) * t,
                            y: a.y + (b.y - a.y) * t,
                        },
                        None,
                        true,
                    )?
                };
                if h != prev {
                    self.constraint(prev, h);
                }
                prev = h;
            }
        }
        Ok(())
    }
}

/// Build the tessellation and atom graph of one community part.
///
/// `part` and `parts_ll` are the same polygon in metres and in WGS84; `cut_roads` are the
/// block-cutting road segments and `near_roads` all road segments (both in metres).
///
/// # Errors
/// When the triangulation cannot be built (degenerate input).
// The inputs are the distinct layers of one community part; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn tessellate(
    frame: LocalFrame,
    part: &Polygon,
    part_ll: &Polygon,
    buildings: &[BuildingPart],
    cut_roads: &[(Coord, Coord)],
    near_roads: &[(Coord, Coord)],
    fixed: &[FixedRegion],
    s: &TessellationSettings,
) -> Result<(Tessellation, AtomGraph), TessellationError> {
    // spade asserts on some degenerate configurations; never let input bring the process
    // down: retry without the roads, and give a clear error if even that fails.
    if let Some(Ok(r)) = guarded(|| {
        build(
            frame, part, part_ll, buildings, cut_roads, near_roads, fixed, s,
        )
    }) {
        return Ok(r);
    }
    if std::env::var_os("WANGGE_DEBUG").is_some() {
        eprintln!("tessellation: refined attempt failed, retrying without refinement");
    }
    let plain = TessellationSettings {
        refine_angle_deg: 0.0,
        ..*s
    };
    if let Some(Ok(r)) = guarded(|| {
        build(
            frame, part, part_ll, buildings, cut_roads, near_roads, fixed, &plain,
        )
    }) {
        return Ok(r);
    }
    match guarded(|| {
        build(
            frame,
            part,
            part_ll,
            buildings,
            &[],
            near_roads,
            fixed,
            &plain,
        )
    }) {
        Some(r) => r,
        None => Err(TessellationError::Degenerate),
    }
}

#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
fn build(
    frame: LocalFrame,
    part: &Polygon,
    part_ll: &Polygon,
    buildings: &[BuildingPart],
    cut_roads: &[(Coord, Coord)],
    near_roads: &[(Coord, Coord)],
    fixed: &[FixedRegion],
    s: &TessellationSettings,
) -> Result<(Tessellation, AtomGraph), TessellationError> {
    let t0 = std::time::Instant::now();
    let debug = std::env::var_os("WANGGE_DEBUG").is_some();
    let tick = |what: &str| {
        if debug {
            eprintln!("  tess {what}: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
        }
    };
    let mut b = Builder {
        cdt: ConstrainedDelaunayTriangulation::new(),
        orig: HashMap::default(),
        steiner: HashMap::default(),
        skipped: 0,
    };
    let mut rings: Vec<(&LineString, &LineString)> =
        std::iter::once((part.exterior(), part_ll.exterior()))
            .chain(part.interiors().iter().zip(part_ll.interiors()))
            .collect();
    let n_comm_rings = rings.len();
    for fr in fixed {
        rings.push((fr.metres.exterior(), fr.wgs84.exterior()));
        rings.extend(fr.metres.interiors().iter().zip(fr.wgs84.interiors()));
    }
    let fixed_index: Vec<RingIndex> = fixed
        .iter()
        .map(|fr| {
            let segs: Vec<(Coord, Coord)> = std::iter::once(fr.metres.exterior())
                .chain(fr.metres.interiors())
                .flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>())
                .collect();
            RingIndex::new(&segs)
        })
        .collect();
    let in_fixed = |p: Coord| fixed_index.iter().position(|ix| ix.contains(p));
    let mut boundary_segs = Vec::new();
    let mut seg_ids: Vec<(usize, usize)> = Vec::new();
    for (ri, (r, _)) in rings.iter().enumerate() {
        for (si, w) in r.0.windows(2).enumerate() {
            boundary_segs.push((w[0], w[1]));
            seg_ids.push((ri, si));
        }
    }
    let boundary_tree = seg_tree(boundary_segs.iter().copied());
    let comm_segs: Vec<(Coord, Coord)> = boundary_segs
        .iter()
        .zip(&seg_ids)
        .filter(|(_, id)| id.0 < n_comm_rings)
        .map(|(s, _)| *s)
        .collect();
    let ring_index = RingIndex::new(&comm_segs);
    // Roads: deduplicated, cut where they cross the community boundary, inside pieces kept.
    // Crossing points (and road ends that stop on the boundary) are added to the rings as
    // vertices, so no road constraint ever crosses or grazes a boundary constraint.
    let mut uniq: Vec<(Coord, Coord)> = cut_roads
        .iter()
        .map(|&(a, c)| {
            if (a.x, a.y) <= (c.x, c.y) {
                (a, c)
            } else {
                (c, a)
            }
        })
        .collect();
    uniq.sort_by(|p, q| {
        (p.0.x, p.0.y, p.1.x, p.1.y)
            .partial_cmp(&(q.0.x, q.0.y, q.1.x, q.1.y))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    uniq.dedup();
    let mut ring_extra: Vec<Vec<(usize, f64, Coord)>> = vec![Vec::new(); rings.len()];
    let mut road_used = Vec::new();
    for &(a, c) in &uniq {
        let mut cuts: Vec<(f64, Coord)> = vec![(0.0, a), (1.0, c)];
        let env = AABB::from_corners(
            [a.x.min(c.x) - 0.5, a.y.min(c.y) - 0.5],
            [a.x.max(c.x) + 0.5, a.y.max(c.y) + 0.5],
        );
        for k in 0..boundary_segs.len() {
            let (p, q) = boundary_segs[k];
            let e2 = AABB::from_corners([p.x.min(q.x), p.y.min(q.y)], [p.x.max(q.x), p.y.max(q.y)]);
            if !rstar::Envelope::intersects(&env, &e2) {
                continue;
            }
            let (ri, si) = seg_ids[k];
            if let Some((t, u)) = seg_intersection(a, c, p, q) {
                let x = lerp(p, q, u);
                ring_extra[ri].push((si, u, x));
                cuts.push((t, x));
            } else {
                // a road that stops on (or within 0.5 m of) the boundary ends exactly on it
                for (t, e) in [(0.0, a), (1.0, c)] {
                    if let Some(u) = project_within(e, p, q, 0.5) {
                        let x = lerp(p, q, u);
                        ring_extra[ri].push((si, u, x));
                        if t == 0.0 {
                            cuts[0].1 = x
                        } else {
                            cuts[1].1 = x
                        }
                    }
                }
            }
        }
        cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
        for w in cuts.windows(2) {
            let (p, q) = (w[0].1, w[1].1);
            if dist(p, q) < 1e-3 {
                continue;
            }
            let m = mid(p, q);
            if !ring_index.contains(m) || in_fixed(m).is_some() {
                continue;
            }
            if near(&boundary_tree, m, 3.0)
                && near(&boundary_tree, p, 3.0)
                && near(&boundary_tree, q, 3.0)
            {
                continue; // hugs the boundary, which already bounds the block there
            }
            road_used.push((p, q));
        }
    }
    tick("roads pre-noded");
    // community rings, with the extra vertices, original WGS84 coordinates kept; the rings of
    // given polygons go in last (below)
    let mut fixed_rings: Vec<(Vec<Coord>, Vec<Option<Coord>>)> = Vec::new();
    for (ri, (r, rl)) in rings.iter().enumerate() {
        let mut extra = std::mem::take(&mut ring_extra[ri]);
        extra.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
        let mut pts = Vec::with_capacity(r.0.len() + extra.len());
        let mut orig = Vec::with_capacity(pts.capacity());
        let mut e = 0;
        for i in 0..r.0.len() {
            pts.push(r.0[i]);
            orig.push(Some(rl.0[i]));
            while e < extra.len() && extra[e].0 == i {
                let x = extra[e].2;
                if pts.last().is_none_or(|l| dist(*l, x) > 1e-9)
                    && dist(x, r.0[(i + 1).min(r.0.len() - 1)]) > 1e-9
                {
                    pts.push(x);
                    orig.push(None);
                }
                e += 1;
            }
        }
        if ri < n_comm_rings {
            b.ring(&pts, &orig, s.densify_m)?;
        } else {
            fixed_rings.push((pts, orig));
        }
    }
    tick("rings inserted");
    // footprints
    for bp in buildings {
        for p in &bp.polygons {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                b.polyline(&r.0, None, true, f64::INFINITY)?;
            }
        }
    }
    for &(p, q) in &road_used {
        b.polyline(&[p, q], None, false, f64::INFINITY)?;
    }
    if !fixed_rings.is_empty() {
        b.given_rings(&fixed_rings, &seg_tree(comm_segs.iter().copied()))?;
    }
    let road_tree = seg_tree(road_used.iter().copied());
    let near_tree = seg_tree(near_roads.iter().copied());
    tick("constraints");
    if s.refine_angle_deg > 0.0 {
        // Delaunay refinement: no sliver triangles, so cuts through triangles stay short and
        // boundaries between buildings run close to the medial line.
        let nv0 = b.cdt.num_vertices();
        let params = spade::RefinementParameters::<f64>::new()
            .with_angle_limit(spade::AngleLimit::from_deg(s.refine_angle_deg))
            .with_min_required_area(0.5)
            .with_max_allowed_area(s.max_triangle_m2)
            .with_max_additional_vertices(nv0 * 4);
        b.cdt.refine(params);
    }
    tick("constraints+refine");
    let cdt = &b.cdt;
    let skipped = b.skipped;

    // compact arrays
    let nv = cdt.num_vertices();
    let mut verts = vec![Coord { x: 0.0, y: 0.0 }; nv];
    let mut orig = vec![None; nv];
    let mut steiner = vec![false; nv];
    for v in cdt.vertices() {
        let i = v.fix().index();
        let p = v.position();
        verts[i] = Coord { x: p.x, y: p.y };
        orig[i] = b.orig.get(&i).copied();
        steiner[i] = b.steiner.get(&i).copied().unwrap_or(true);
    }
    let ne = cdt.num_undirected_edges();
    let mut edge_flags = vec![0u8; ne];
    for e in cdt.undirected_edges() {
        let ei = e.fix().index();
        if !cdt.is_constraint_edge(e.fix()) {
            continue;
        }
        edge_flags[ei] |= F_CONSTRAINT;
        let [p, q] = e.positions();
        let m = Coord {
            x: (p.x + q.x) / 2.0,
            y: (p.y + q.y) / 2.0,
        };
        if near(&boundary_tree, m, 1e-4) {
            edge_flags[ei] |= F_BOUNDARY;
        }
        if near(&road_tree, m, 1e-4) {
            edge_flags[ei] |= F_ROAD;
        }
    }
    // faces: spade's inner face indices start at 1 (0 is the outer face)
    let nf = cdt.num_all_faces();
    let mut faces = vec![[NONE; 3]; nf];
    let mut nbr = vec![[NONE; 3]; nf];
    let mut edge = vec![[NONE; 3]; nf];
    for f in cdt.inner_faces() {
        let fi = f.fix().index();
        let es = f.adjacent_edges();
        for k in 0..3 {
            faces[fi][k] = es[k].from().fix().index() as u32;
            edge[fi][k] = es[k].as_undirected().fix().index() as u32;
            nbr[fi][k] = es[k]
                .rev()
                .face()
                .as_inner()
                .map_or(NONE, |g| g.index() as u32);
        }
    }
    tick("compact arrays");
    // inside: regions of triangles bounded by boundary constraints are wholly in or out; each
    // region takes the area-weighted vote of its triangles' centroids (exact point-in-polygon).
    // Where a boundary piece is missing (a rare near-degenerate crossing), the region is mixed
    // and its substantial triangles decide for themselves.
    let face_area = |f: usize| {
        let [p, q, r] = faces[f].map(|v| verts[v as usize]);
        tri_area(p, q, r)
    };
    let face_pip = |f: usize| {
        let [p, q, r] = faces[f].map(|v| verts[v as usize]);
        ring_index.contains(Coord {
            x: (p.x + q.x + r.x) / 3.0,
            y: (p.y + q.y + r.y) / 3.0,
        })
    };
    let mut region = vec![NONE; nf];
    let mut inside = vec![false; nf];
    let mut stack = Vec::new();
    for f0 in 1..nf {
        if region[f0] != NONE || faces[f0][0] == NONE {
            continue;
        }
        region[f0] = f0 as u32;
        stack.clear();
        stack.push(f0);
        let mut members = Vec::new();
        while let Some(f) = stack.pop() {
            members.push(f);
            for k in 0..3 {
                let g = nbr[f][k];
                if g == NONE
                    || region[g as usize] != NONE
                    || edge_flags[edge[f][k] as usize] & F_BOUNDARY != 0
                {
                    continue;
                }
                region[g as usize] = f0 as u32;
                stack.push(g as usize);
            }
        }
        let (mut ain, mut aout) = (0.0, 0.0);
        let votes: Vec<bool> = members.iter().map(|&f| face_pip(f)).collect();
        for (&f, &v) in members.iter().zip(&votes) {
            if v {
                ain += face_area(f)
            } else {
                aout += face_area(f)
            }
        }
        let total = ain + aout;
        let mixed =
            ain > 1e-6 * total.max(1e-12) && aout > 1e-6 * total.max(1e-12) && ain.min(aout) > 1.0;
        for (&f, &v) in members.iter().zip(&votes) {
            inside[f] = if mixed && face_area(f) > 0.01 {
                v
            } else {
                ain >= aout
            };
        }
    }
    let centroid = |f: usize| {
        let [a, bb, c] = faces[f].map(|v| verts[v as usize]);
        Coord {
            x: (a.x + bb.x + c.x) / 3.0,
            y: (a.y + bb.y + c.y) / 3.0,
        }
    };
    let farea = |f: usize| {
        let [a, bb, c] = faces[f].map(|v| verts[v as usize]);
        tri_area(a, bb, c)
    };

    tick("inside");
    // triangles of fixed regions (locked grids) take no part in the labelling of free space
    let mut face_fixed = vec![NONE; nf];
    if !fixed.is_empty() {
        for f in 1..nf {
            if inside[f] {
                if let Some(j) = in_fixed(centroid(f)) {
                    face_fixed[f] = j as u32;
                }
            }
        }
    }
    let mut free: Vec<bool> = (0..nf)
        .map(|f| inside[f] && face_fixed[f] == NONE)
        .collect();
    // building membership of inside faces
    #[derive(Clone)]
    struct BBox(usize, AABB<[f64; 2]>);
    impl RTreeObject for BBox {
        type Envelope = AABB<[f64; 2]>;
        fn envelope(&self) -> Self::Envelope {
            self.1
        }
    }
    let mut boxes = Vec::new();
    let mut barea = vec![0.0; buildings.len()];
    for (i, bp) in buildings.iter().enumerate() {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in &bp.polygons {
            for c in &p.exterior().0 {
                lo = [lo[0].min(c.x), lo[1].min(c.y)];
                hi = [hi[0].max(c.x), hi[1].max(c.y)];
            }
            barea[i] += geo::Area::unsigned_area(p);
        }
        if lo[0].is_finite() {
            boxes.push(BBox(i, AABB::from_corners(lo, hi)));
        }
    }
    let btree = RTree::bulk_load(boxes);
    let mut face_bld = vec![NONE; nf];
    let mut overlap: HashMap<(u32, u32), f64> = HashMap::default();
    let mut hits: Vec<usize> = Vec::new();
    // When every constraint made it into the triangulation, the triangles between constraint
    // edges form regions that lie wholly inside or outside each footprint: one point test per
    // region then decides for all its triangles. Otherwise every triangle is tested.
    let mut rep = vec![NONE; nf];
    let mut region_area = vec![0.0; nf];
    if skipped == 0 {
        for f0 in 1..nf {
            if !free[f0] || rep[f0] != NONE {
                continue;
            }
            rep[f0] = f0 as u32;
            stack.clear();
            stack.push(f0);
            let mut best = (farea(f0), f0);
            let mut members = vec![f0];
            while let Some(f) = stack.pop() {
                for k in 0..3 {
                    let g = nbr[f][k];
                    if g == NONE
                        || !free[g as usize]
                        || rep[g as usize] != NONE
                        || edge_flags[edge[f][k] as usize] & F_CONSTRAINT != 0
                    {
                        continue;
                    }
                    rep[g as usize] = f0 as u32;
                    stack.push(g as usize);
                    members.push(g as usize);
                    let a = farea(g as usize);
                    if a > best.0 {
                        best = (a, g as usize);
                    }
                }
            }
            let total: f64 = members.iter().map(|&m| farea(m)).sum();
            for m in members {
                rep[m] = best.1 as u32;
            }
            region_area[best.1] = total;
        }
    }
    for f in 1..nf {
        if !free[f] {
            continue;
        }
        if rep[f] != NONE && rep[f] as usize != f {
            continue; // decided with its region's representative below
        }
        let c = centroid(f);
        hits.clear();
        for bb in btree.locate_in_envelope_intersecting(&AABB::from_point([c.x, c.y])) {
            if crate::geom::point_in_polygons(&buildings[bb.0].polygons, c) {
                hits.push(bb.0);
            }
        }
        if hits.is_empty() {
            continue;
        }
        hits.sort_unstable();
        // the largest footprint keeps an overlap that is not merged
        let best = *hits
            .iter()
            .max_by(|&&x, &&y| barea[x].total_cmp(&barea[y]).then(y.cmp(&x)))
            .unwrap_or(&hits[0]);
        face_bld[f] = best as u32;
        if hits.len() > 1 {
            let a = if rep[f] as usize == f {
                region_area[f]
            } else {
                farea(f)
            };
            for i in 0..hits.len() {
                for j in i + 1..hits.len() {
                    *overlap
                        .entry((hits[i] as u32, hits[j] as u32))
                        .or_insert(0.0) += a;
                }
            }
        }
    }
    if skipped == 0 {
        for f in 1..nf {
            if free[f] && rep[f] != NONE && rep[f] as usize != f {
                face_bld[f] = face_bld[rep[f] as usize];
            }
        }
    }
    if !fixed.is_empty() {
        let mut on_boundary = vec![false; nv];
        for e in cdt.undirected_edges() {
            if edge_flags[e.fix().index()] & F_BOUNDARY != 0 {
                for v in e.vertices() {
                    on_boundary[v.fix().index()] = true;
                }
            }
        }
        // Thin gaps between a given polygon and the community edge (or another given polygon),
        // left where the plan in force does not meet the boundary exactly, stay with the given
        // polygon: a free grid reaching into such a sliver would run along both of its sides
        // and fold onto itself when collinear points are dropped. A gap triangle has all three
        // corners on boundary lines and no width; footprints are never flooded (zero-width
        // triangles inside one would cut its building in two), nor are the fans of skinny
        // triangles that open from a boundary vertex into free land (they have a corner off
        // the boundary) — flooding those cut real pockets of land off their free neighbours.
        let thin = |f: usize| {
            let [a, bb, c] = faces[f].map(|v| verts[v as usize]);
            let perimeter = dist(a, bb) + dist(bb, c) + dist(c, a);
            faces[f]
                .iter()
                .filter(|&&v| on_boundary[v as usize])
                .count()
                == 3
                && 2.0 * tri_area(a, bb, c) < GAP_M * perimeter
        };
        let mut queue: std::collections::VecDeque<usize> =
            (1..nf).filter(|&f| face_fixed[f] != NONE).collect();
        while let Some(f) = queue.pop_front() {
            for k in 0..3 {
                let g = nbr[f][k];
                if g == NONE {
                    continue;
                }
                let g = g as usize;
                if free[g] && face_bld[g] == NONE && thin(g) {
                    face_fixed[g] = face_fixed[f];
                    free[g] = false;
                    queue.push_back(g);
                }
            }
        }
    }
    if !fixed.is_empty() {
        // what the thin gaps leave cut off from the free land: small building-less pieces
        // bounded only by given polygons and the community edge stay with a given polygon
        let mut comp = vec![NONE; nf];
        for f0 in 1..nf {
            if !free[f0] || comp[f0] != NONE {
                continue;
            }
            comp[f0] = f0 as u32;
            stack.clear();
            stack.push(f0);
            let mut members = vec![f0];
            let mut host = NONE;
            let mut area = 0.0;
            let mut built = false;
            while let Some(f) = stack.pop() {
                area += farea(f);
                built |= face_bld[f] != NONE;
                for k in 0..3 {
                    let g = nbr[f][k];
                    if g == NONE {
                        continue;
                    }
                    let g = g as usize;
                    if face_fixed[g] != NONE {
                        host = host.min(face_fixed[g]);
                    } else if free[g] && comp[g] == NONE {
                        comp[g] = f0 as u32;
                        stack.push(g);
                        members.push(g);
                    }
                }
            }
            if host != NONE && !built && area < GAP_PIECE_M2 {
                for f in members {
                    face_fixed[f] = host;
                    free[f] = false;
                }
            }
        }
    }
    tick("membership");
    // clusters of overlapping buildings (union-find)
    let mut parent: Vec<usize> = (0..buildings.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut pairs: Vec<_> = overlap.into_iter().collect();
    pairs.sort_by_key(|a| a.0);
    for ((i, j), a) in pairs {
        let (i, j) = (i as usize, j as usize);
        // merge real overlaps, and any overlap that is a noticeable share of the smaller footprint
        // (a sliver building inside another would otherwise be split between grids)
        if a > s.merge_overlap_m2 || a > 0.005 * barea[i].min(barea[j]) {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            if ri != rj {
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    // atoms for clusters that have faces, numbered by their smallest building
    let mut has_face = vec![false; buildings.len()];
    for f in 1..nf {
        if face_bld[f] != NONE {
            has_face[face_bld[f] as usize] = true;
        }
    }
    let mut cluster_atom = vec![NONE; buildings.len()];
    let mut atoms: Vec<Atom> = fixed
        .iter()
        .enumerate()
        .map(|(j, fr)| Atom {
            buildings: fr.buildings.clone(),
            households: fr.households,
            weight: fr.weight,
            fixed: Some(j as u32),
            ..Atom::default()
        })
        .collect();
    for i in 0..buildings.len() {
        let r = find(&mut parent, i);
        if !has_face[i] && cluster_atom[r] == NONE {
            // a footprint with no triangle inside this part (outside, or degenerate)
            let any = (0..buildings.len()).any(|j| has_face[j] && find(&mut parent, j) == r);
            if !any {
                continue;
            }
        }
        if cluster_atom[r] == NONE {
            cluster_atom[r] = atoms.len() as u32;
            atoms.push(Atom::default());
        }
        let a = &mut atoms[cluster_atom[r] as usize];
        a.buildings.push(buildings[i].building);
        a.households += u64::from(buildings[i].households);
        a.weight += buildings[i].weight;
    }
    let face_atom: Vec<u32> = (0..nf)
        .map(|f| {
            if face_bld[f] == NONE {
                NONE
            } else {
                cluster_atom[find(&mut parent, face_bld[f] as usize)]
            }
        })
        .collect();

    // blocks
    let mut block = vec![NONE; nf];
    let mut nblocks = 0u32;
    for f0 in 1..nf {
        if !free[f0] || block[f0] != NONE {
            continue;
        }
        block[f0] = nblocks;
        stack.clear();
        stack.push(f0);
        while let Some(f) = stack.pop() {
            for k in 0..3 {
                let g = nbr[f][k];
                if g == NONE || !free[g as usize] || block[g as usize] != NONE {
                    continue;
                }
                if edge_flags[edge[f][k] as usize] & F_ROAD != 0 {
                    continue;
                }
                block[g as usize] = nblocks;
                stack.push(g as usize);
            }
        }
        nblocks += 1;
    }
    tick("blocks");
    // Dijkstra over (vertex, block) nodes
    // most vertices lie in one block: (block, node) per vertex, a map only for the others
    let mut vnode: Vec<(u32, u32)> = vec![(NONE, NONE); verts.len()];
    let mut extra_nodes: HashMap<u64, u32> = HashMap::default();
    let mut nn = 0usize;
    let mut fnode = vec![[NONE; 3]; nf];
    for f in 1..nf {
        if !free[f] {
            continue;
        }
        for k in 0..3 {
            let v = faces[f][k] as usize;
            let bk = block[f];
            fnode[f][k] = if vnode[v].0 == NONE {
                vnode[v] = (bk, nn as u32);
                nn += 1;
                (nn - 1) as u32
            } else if vnode[v].0 == bk {
                vnode[v].1
            } else {
                let key = ((v as u64) << 32) | u64::from(bk);
                *extra_nodes.entry(key).or_insert_with(|| {
                    nn += 1;
                    (nn - 1) as u32
                })
            };
        }
    }
    let mut deg = vec![0usize; nn + 1];
    for f in 1..nf {
        if free[f] {
            for k in 0..3 {
                deg[fnode[f][k] as usize] += 2;
            }
        }
    }
    let mut start = vec![0usize; nn + 1];
    for i in 0..nn {
        start[i + 1] = start[i] + deg[i];
    }
    let mut fill = start.clone();
    let mut adjn = vec![(0u32, 0.0f64); start[nn]];
    for f in 1..nf {
        if !free[f] {
            continue;
        }
        for k in 0..3 {
            let (u, v) = (fnode[f][k], fnode[f][(k + 1) % 3]);
            let l = dist(
                verts[faces[f][k] as usize],
                verts[faces[f][(k + 1) % 3] as usize],
            );
            adjn[fill[u as usize]] = (v, l);
            fill[u as usize] += 1;
            adjn[fill[v as usize]] = (u, l);
            fill[v as usize] += 1;
        }
    }
    let mut dist_n = vec![f64::INFINITY; nn];
    let mut label = vec![NONE; nn];
    let mut heap = BinaryHeap::new();
    for f in 1..nf {
        if free[f] && face_atom[f] != NONE {
            for k in 0..3 {
                let n = fnode[f][k] as usize;
                if dist_n[n] > 0.0 || face_atom[f] < label[n] {
                    dist_n[n] = 0.0;
                    label[n] = face_atom[f];
                }
            }
        }
    }
    for n in 0..nn {
        if dist_n[n] == 0.0 {
            heap.push(Reverse((OrdF(0.0), label[n], n as u32)));
        }
    }
    while let Some(Reverse((OrdF(d), l, n))) = heap.pop() {
        let n = n as usize;
        if d > dist_n[n] || l != label[n] {
            continue;
        }
        for &(m, w) in &adjn[start[n]..start[n + 1]] {
            let nd = d + w;
            let m = m as usize;
            if nd < dist_n[m] || (nd == dist_n[m] && l < label[m]) {
                dist_n[m] = nd;
                label[m] = l;
                heap.push(Reverse((OrdF(nd), l, m as u32)));
            }
        }
    }
    tick("dijkstra");
    // Blocks without buildings (strips between parallel roads, plazas, small parks) are shared
    // by the neighbouring blocks' atoms: labels continue across the road at shared vertices.
    // Only blocks that nothing reaches become atoms of their own.
    {
        let mut open = vec![false; nn];
        // seeds only across a road edge, from the corners of the triangle on the other side, so
        // that every piece joins its atom along an edge, never at a lone point
        let mut seeds: Vec<(f64, u32, u32)> = Vec::new();
        for f in 1..nf {
            if !free[f] {
                continue;
            }
            for k in 0..3 {
                let g = nbr[f][k];
                if g == NONE || !free[g as usize] || block[g as usize] == block[f] {
                    continue;
                }
                for kk in [k, (k + 1) % 3] {
                    let n = fnode[f][kk];
                    if label[n as usize] != NONE {
                        continue;
                    }
                    let v = faces[f][kk];
                    let gi = g as usize;
                    if let Some(j) = (0..3).find(|&j| faces[gi][j] == v) {
                        let m = fnode[gi][j] as usize;
                        if label[m] != NONE {
                            seeds.push((dist_n[m], label[m], n));
                        }
                    }
                }
            }
        }
        seeds.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for n in 0..nn {
            if label[n] == NONE {
                open[n] = true;
            }
        }
        for (d, l, n) in seeds {
            let nu = n as usize;
            if d < dist_n[nu] || (d == dist_n[nu] && l < label[nu]) {
                dist_n[nu] = d;
                label[nu] = l;
                heap.push(Reverse((OrdF(d), l, n)));
            }
        }
        while let Some(Reverse((OrdF(d), l, n))) = heap.pop() {
            let n = n as usize;
            if d > dist_n[n] || l != label[n] {
                continue;
            }
            for &(m, w) in &adjn[start[n]..start[n + 1]] {
                let m = m as usize;
                if !open[m] {
                    continue;
                }
                let nd = d + w;
                if nd < dist_n[m] || (nd == dist_n[m] && l < label[m]) {
                    dist_n[m] = nd;
                    label[m] = l;
                    heap.push(Reverse((OrdF(nd), l, m as u32)));
                }
            }
        }
    }
    // blocks that nothing reached become atoms of their own
    let mut block_atom = vec![NONE; nblocks as usize];
    let mut corner = vec![[NONE; 3]; nf];
    for f in 1..nf {
        if !free[f] {
            continue;
        }
        for k in 0..3 {
            corner[f][k] = if face_atom[f] != NONE {
                face_atom[f]
            } else {
                let n = fnode[f][k] as usize;
                if dist_n[n] == 0.0 {
                    // v lies on a footprint (maybe on several that meet there): take the
                    // building reached first when turning around v, so every piece stays
                    // connected to its building through an edge, not just a point.
                    nearest_around(
                        &faces,
                        &nbr,
                        &edge,
                        &edge_flags,
                        &free,
                        &face_atom,
                        f,
                        faces[f][k],
                    )
                    .unwrap_or(label[n])
                } else if label[n] == NONE {
                    let bk = block[f] as usize;
                    if block_atom[bk] == NONE {
                        block_atom[bk] = atoms.len() as u32;
                        atoms.push(Atom::default());
                    }
                    block_atom[bk]
                } else {
                    label[n]
                }
            };
        }
    }

    tick("corners");
    for f in 1..nf {
        if face_fixed[f] != NONE {
            corner[f] = [face_fixed[f]; 3];
        }
    }
    let face_atom: Vec<u32> = (0..nf)
        .map(|f| {
            if face_fixed[f] != NONE {
                face_fixed[f]
            } else {
                face_atom[f]
            }
        })
        .collect();
    split_fragments(
        &faces,
        &nbr,
        &inside,
        &face_atom,
        (&face_bld, buildings),
        &verts,
        &mut corner,
        &mut atoms,
    );
    let tess = Tessellation {
        frame,
        verts,
        orig,
        steiner,
        faces,
        nbr,
        edge,
        edge_flags,
        inside,
        corner,
        n_edges: ne,
    };
    tick("fragments");
    let graph = atom_graph(&tess, atoms, &near_tree, s.road_near_m);
    tick("atom graph");
    Ok((tess, graph))
}

/// Turning around vertex `v` from face `f` in both directions (not crossing roads or leaving
/// the community), the atom of the first building face met; the nearer side wins, ties go
/// counter-clockwise.
#[allow(clippy::too_many_arguments)]
fn nearest_around(
    faces: &[[u32; 3]],
    nbr: &[[u32; 3]],
    edge: &[[u32; 3]],
    flags: &[u8],
    inside: &[bool],
    face_atom: &[u32],
    f: usize,
    v: u32,
) -> Option<u32> {
    let walk = |dir: usize| -> Option<(usize, u32)> {
        let mut cur = f;
        for step in 1..64 {
            let k = faces[cur].iter().position(|&x| x == v)?;
            // dir 0: cross the edge leaving v (v → next); dir 1: the edge arriving at v
            let e = if dir == 0 { k } else { (k + 2) % 3 };
            if flags[edge[cur][e] as usize] & F_ROAD != 0 {
                return None;
            }
            let g = nbr[cur][e];
            if g == NONE || !inside[g as usize] || g as usize == f {
                return None;
            }
            cur = g as usize;
            if face_atom[cur] != NONE {
                return Some((step, face_atom[cur]));
            }
        }
        None
    };
    match (walk(0), walk(1)) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b.1 } else { a.1 }),
        (Some(a), None) => Some(a.1),
        (None, Some(b)) => Some(b.1),
        (None, None) => None,
    }
}

/// Make every atom one connected region: pieces of an atom that touch the rest of it only at a
/// point (or not at all) become building-less atoms of their own, which the partitioner then
/// attaches to a neighbour. Pieces are tracked as triangle corners: corners of one triangle with
/// the same label form one piece, and pieces on either side of a half-edge with the same label
/// are joined.
#[allow(clippy::too_many_arguments)]
fn split_fragments(
    faces: &[[u32; 3]],
    nbr: &[[u32; 3]],
    inside: &[bool],
    face_atom: &[u32],
    (face_bld, buildings): (&[u32], &[BuildingPart]),
    verts: &[Coord],
    corner: &mut [[u32; 3]],
    atoms: &mut Vec<Atom>,
) {
    let nf = faces.len();
    let slot = |f: usize, k: usize| f * 3 + k;
    let mut parent: Vec<u32> = (0..(nf * 3) as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    let union = |p: &mut Vec<u32>, a: usize, b: usize| {
        let (ra, rb) = (find(p, a as u32), find(p, b as u32));
        if ra != rb {
            p[ra.max(rb) as usize] = ra.min(rb);
        }
    };
    for f in 1..nf {
        if !inside[f] {
            continue;
        }
        let l = corner[f];
        for k in 0..3 {
            let k2 = (k + 1) % 3;
            if l[k] == l[k2] {
                union(&mut parent, slot(f, k), slot(f, k2));
            }
            let g = nbr[f][k];
            if g == NONE || !inside[g as usize] || (g as usize) < f {
                continue;
            }
            let g = g as usize;
            for kk in [k, k2] {
                let v = faces[f][kk];
                if let Some(j) = (0..3).find(|&j| faces[g][j] == v) {
                    if corner[g][j] == l[kk] {
                        union(&mut parent, slot(f, kk), slot(g, j));
                    }
                }
            }
        }
    }
    // per atom: its components, with area and whether they hold building triangles
    let mut comp_info: HashMap<u32, (u32, f64, bool)> = HashMap::default(); // root -> (atom, area, has building)
    for f in 1..nf {
        if !inside[f] {
            continue;
        }
        let [a, b, c] = faces[f].map(|v| verts[v as usize]);
        let area = tri_area(a, b, c).abs() / 3.0;
        for k in 0..3 {
            let r = find(&mut parent, slot(f, k) as u32);
            let e = comp_info.entry(r).or_insert((corner[f][k], 0.0, false));
            e.1 += area;
            e.2 |= face_atom[f] != NONE;
        }
    }
    let mut best: HashMap<u32, (u32, bool, f64)> = HashMap::default(); // atom -> (root, has building, area)
    let mut roots: Vec<(&u32, &(u32, f64, bool))> = comp_info.iter().collect();
    roots.sort_by_key(|x| *x.0);
    for &(&r, &(atom, area, bld)) in &roots {
        let e = best.entry(atom).or_insert((r, bld, area));
        if (bld, area) > (e.1, e.2) {
            *e = (r, bld, area);
        }
    }
    // each building lies (mostly) in one piece; a cluster of overlapping footprints whose
    // link was taken by a given polygon falls apart into pieces that each hold whole buildings
    let mut bpiece: HashMap<(u32, u32), f64> = HashMap::default(); // (building, root) -> area
    for f in 1..nf {
        if !inside[f] || face_bld[f] == NONE {
            continue;
        }
        let [a, b, c] = faces[f].map(|v| verts[v as usize]);
        let area = tri_area(a, b, c).abs() / 3.0;
        for k in 0..3 {
            let r = find(&mut parent, slot(f, k) as u32);
            *bpiece.entry((face_bld[f], r)).or_insert(0.0) += area;
        }
    }
    let mut home: HashMap<u32, (u32, f64)> = HashMap::default(); // building -> (root, area)
    let mut bp: Vec<((u32, u32), f64)> = bpiece.into_iter().collect();
    bp.sort_by_key(|x| x.0);
    for ((b, r), a) in bp {
        let e = home.entry(b).or_insert((r, a));
        if a > e.1 {
            *e = (r, a);
        }
    }
    let home_roots: HashSet<u32> = home.values().map(|&(r, _)| r).collect();
    let mut new_id: HashMap<u32, u32> = HashMap::default();
    for &(&r, &(atom, _, bld)) in &roots {
        // the main piece stays, and so does a stray piece of a footprint (kept with its building)
        if best.get(&atom).map(|b| b.0) == Some(r) || (bld && !home_roots.contains(&r)) {
            continue;
        }
        new_id.insert(r, atoms.len() as u32);
        atoms.push(Atom::default());
    }
    // buildings move with their piece
    let mut homes: Vec<(u32, u32)> = home.iter().map(|(&b, &(r, _))| (b, r)).collect();
    homes.sort_unstable();
    for (b, r) in homes {
        let Some(&id) = new_id.get(&r) else { continue };
        let atom = comp_info.get(&r).map_or(NONE, |x| x.0);
        let bp = &buildings[b as usize];
        if atom != NONE {
            let from = &mut atoms[atom as usize];
            if let Some(i) = from.buildings.iter().position(|&x| x == bp.building) {
                from.buildings.remove(i);
                from.households -= u64::from(bp.households);
                from.weight -= bp.weight;
            }
        }
        let to = &mut atoms[id as usize];
        to.buildings.push(bp.building);
        to.households += u64::from(bp.households);
        to.weight += bp.weight;
    }
    if new_id.is_empty() {
        return;
    }
    for f in 1..nf {
        if !inside[f] {
            continue;
        }
        for k in 0..3 {
            let r = find(&mut parent, slot(f, k) as u32);
            if let Some(&id) = new_id.get(&r) {
                corner[f][k] = id;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF(f64);
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

/// A point of the subdivision: a vertex, an edge midpoint or a face centroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pt(pub u32);

impl Tessellation {
    /// Id of a vertex.
    #[must_use]
    pub fn vpt(&self, v: u32) -> Pt {
        Pt(v)
    }
    /// Id of the midpoint of undirected edge `e`.
    #[must_use]
    pub fn mpt(&self, e: u32) -> Pt {
        Pt(self.verts.len() as u32 + e)
    }
    /// Id of the centroid of face `f`.
    #[must_use]
    pub fn cpt(&self, f: usize) -> Pt {
        Pt((self.verts.len() + self.n_edges + f) as u32)
    }

    /// Position (metres) of a point id; `face_hint` gives a face whose edges include it.
    #[must_use]
    pub fn pos(&self, p: Pt, face_hint: usize) -> Coord {
        let nv = self.verts.len() as u32;
        let ne = self.n_edges as u32;
        if p.0 < nv {
            self.verts[p.0 as usize]
        } else if p.0 < nv + ne {
            let e = p.0 - nv;
            let f = &self.faces[face_hint];
            for k in 0..3 {
                if self.edge[face_hint][k] == e {
                    return mid(
                        self.verts[f[k] as usize],
                        self.verts[f[(k + 1) % 3] as usize],
                    );
                }
            }
            Coord {
                x: f64::NAN,
                y: f64::NAN,
            }
        } else {
            let fi = (p.0 - nv - ne) as usize;
            let [a, b, c] = self.faces[fi].map(|v| self.verts[v as usize]);
            Coord {
                x: (a.x + b.x + c.x) / 3.0,
                y: (a.y + b.y + c.y) / 3.0,
            }
        }
    }

    /// Visit the directed boundary segments of face `f` between pieces of different labels,
    /// as `(from, to, left_label, right_label)`, where the right label is `None` for a triangle
    /// half-edge (the caller looks across to the neighbour) and `Some` inside the triangle.
    /// Also reports each piece's area and centroid through `piece`.
    pub fn face_segments(
        &self,
        f: usize,
        lab: [u32; 3],
        mut seg: impl FnMut(Pt, Pt, u32, Option<u32>, usize, usize),
        mut piece: impl FnMut(u32, f64, Coord),
    ) {
        let v = self.faces[f];
        let p = v.map(|x| self.verts[x as usize]);
        let m = [0, 1, 2].map(|k| mid(p[k], p[(k + 1) % 3]));
        let mp = [0, 1, 2].map(|k| self.mpt(self.edge[f][k]));
        // triangle half-edges: vertex k → mid k (edge k is v[k]→v[k+1]) and mid k → vertex k+1
        for k in 0..3 {
            seg(Pt(v[k]), mp[k], lab[k], None, k, k);
            seg(
                mp[k],
                Pt(v[(k + 1) % 3]),
                lab[(k + 1) % 3],
                None,
                k,
                (k + 1) % 3,
            );
        }
        let g = Coord {
            x: (p[0].x + p[1].x + p[2].x) / 3.0,
            y: (p[0].y + p[1].y + p[2].y) / 3.0,
        };
        let poly_area_centroid = |pts: &[Coord]| {
            let mut a = 0.0;
            let (mut cx, mut cy) = (0.0, 0.0);
            for i in 0..pts.len() {
                let (q, r) = (pts[i], pts[(i + 1) % pts.len()]);
                let cr = q.x * r.y - r.x * q.y;
                a += cr;
                cx += (q.x + r.x) * cr;
                cy += (q.y + r.y) * cr;
            }
            if a.abs() < 1e-300 {
                return (0.0, pts[0]);
            }
            (
                a / 2.0,
                Coord {
                    x: cx / (3.0 * a),
                    y: cy / (3.0 * a),
                },
            )
        };
        if lab[0] == lab[1] && lab[1] == lab[2] {
            let (a, c) = poly_area_centroid(&p);
            piece(lab[0], a, c);
            return;
        }
        if lab[0] != lab[1] && lab[1] != lab[2] && lab[0] != lab[2] {
            let cp = self.cpt(f);
            for k in 0..3 {
                // piece around vertex k: v[k], m[k], G, m[k-1]
                let km1 = (k + 2) % 3;
                let (a, c) = poly_area_centroid(&[p[k], m[k], g, m[km1]]);
                piece(lab[k], a, c);
                // cut m[k] → G has piece k on its left, piece k+1 on its right
                seg(mp[k], cp, lab[k], Some(lab[(k + 1) % 3]), k, k);
                seg(cp, mp[km1], lab[k], Some(lab[km1]), k, k);
            }
            return;
        }
        // two labels: rotate so that corner 2 is the odd one
        let r = if lab[0] == lab[1] {
            0
        } else if lab[1] == lab[2] {
            1
        } else {
            2
        };
        let (a, b, c) = (r, (r + 1) % 3, (r + 2) % 3);
        // edges: b→c is edge b, c→a is edge c
        let (pc_a, pc_c) = poly_area_centroid(&[m[b], p[c], m[c]]);
        piece(lab[c], pc_a, pc_c);
        let (pa_a, pa_c) = poly_area_centroid(&[p[a], m[a], p[b], m[b], m[c]]);
        piece(lab[a], pa_a, pa_c);
        seg(mp[c], mp[b], lab[c], Some(lab[a]), c, c);
        seg(mp[b], mp[c], lab[a], Some(lab[c]), a, a);
    }

    /// The label of vertex `v` as a corner of face `f`.
    #[must_use]
    pub fn corner_label(&self, f: usize, v: u32, labels: &[[u32; 3]]) -> u32 {
        let fv = self.faces[f];
        for k in 0..3 {
            if fv[k] == v {
                return labels[f][k];
            }
        }
        NONE
    }

    /// True when undirected edge `e` is a block-cutting road.
    #[must_use]
    pub fn is_road_edge(&self, e: u32) -> bool {
        self.edge_flags[e as usize] & F_ROAD != 0
    }

    /// True when undirected edge `e` is a constraint (footprint, road, boundary or fixed ring).
    #[must_use]
    pub fn is_constraint_edge(&self, e: u32) -> bool {
        self.edge_flags[e as usize] & F_CONSTRAINT != 0
    }
}

fn atom_graph(
    t: &Tessellation,
    mut atoms: Vec<Atom>,
    near_tree: &SegIndex,
    near_m: f64,
) -> AtomGraph {
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64); atoms.len()];
    let mut pairs: HashMap<(u32, u32), (f64, f64)> = HashMap::default();
    let nf = t.faces.len();
    for f in 1..nf {
        if !t.inside[f] {
            continue;
        }
        let lab = t.corner[f];
        let mut cuts: Vec<(Coord, Coord, u32, u32)> = Vec::new();
        let mut halves: Vec<(usize, usize, u32)> = Vec::new();
        t.face_segments(
            f,
            lab,
            |a, b, l, r, k, corner| match r {
                Some(r) => {
                    if l < r {
                        cuts.push((t.pos(a, f), t.pos(b, f), l, r));
                    }
                }
                None => {
                    let _ = (a, b);
                    halves.push((k, corner, l));
                }
            },
            |l, a, c| {
                let s = &mut sums[l as usize];
                s.0 += a;
                s.1 += a * c.x;
                s.2 += a * c.y;
            },
        );
        for (p, q, l, r) in cuts {
            let len = dist(p, q);
            let road = if near(near_tree, mid(p, q), near_m) {
                len
            } else {
                0.0
            };
            let e = pairs.entry((l, r)).or_insert((0.0, 0.0));
            e.0 += len;
            e.1 += road;
        }
        for (k, corner, l) in halves {
            let v = t.faces[f];
            let (p, q) = (t.verts[v[k] as usize], t.verts[v[(k + 1) % 3] as usize]);
            let half = dist(p, q) / 2.0;
            let g = t.nbr[f][k];
            if g == NONE || !t.inside[g as usize] {
                atoms[l as usize].outer += half;
                continue;
            }
            if (g as usize) < f {
                continue; // counted from the other side
            }
            let r = t.corner_label(g as usize, v[corner], &t.corner);
            if r == l || r == NONE {
                continue;
            }
            let c = if corner == k { p } else { q };
            let m = mid(p, q);
            let is_road = t.is_road_edge(t.edge[f][k]) || near(near_tree, mid(c, m), near_m);
            let key = if l < r { (l, r) } else { (r, l) };
            let e = pairs.entry(key).or_insert((0.0, 0.0));
            e.0 += half;
            if is_road {
                e.1 += half;
            }
        }
    }
    for (a, s) in atoms.iter_mut().zip(&sums) {
        a.area = s.0;
        a.centroid = if s.0 > 0.0 {
            Coord {
                x: s.1 / s.0,
                y: s.2 / s.0,
            }
        } else {
            Coord { x: 0.0, y: 0.0 }
        };
    }
    let mut list: Vec<((u32, u32), (f64, f64))> =
        pairs.into_iter().filter(|(_, v)| v.0 > 1e-9).collect();
    list.sort_by_key(|a| a.0);
    let n = atoms.len();
    let mut deg = vec![0usize; n];
    for ((a, b), _) in &list {
        deg[*a as usize] += 1;
        deg[*b as usize] += 1;
    }
    let mut start = vec![0usize; n + 1];
    for i in 0..n {
        start[i + 1] = start[i] + deg[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![
        Adj {
            nbr: 0,
            len: 0.0,
            road: 0.0
        };
        start[n]
    ];
    for ((a, b), (len, road)) in list {
        adj[fill[a as usize]] = Adj { nbr: b, len, road };
        fill[a as usize] += 1;
        adj[fill[b as usize]] = Adj { nbr: a, len, road };
        fill[b as usize] += 1;
    }
    for a in 0..n {
        adj[start[a]..start[a + 1]].sort_by_key(|x| x.nbr);
    }
    AtomGraph { atoms, start, adj }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn part(i: u32, p: Polygon, households: u32) -> BuildingPart {
        BuildingPart {
            building: i,
            polygons: vec![p],
            households,
            weight: f64::from(households),
        }
    }

    #[test]
    fn a_sliver_overlapping_a_building_joins_its_atom() {
        // regression (Manhattan w265432772): a footprint of a few cm² lying half inside another
        // was left unmerged (overlap below the absolute threshold) and could be split
        let frame = LocalFrame::new(116.0, 39.0);
        let community = polygon![(x: 0.0, y: 0.0), (x: 100.0, y: 0.0), (x: 100.0, y: 100.0), (x: 0.0, y: 100.0)];
        let ll = Polygon::new(
            LineString(
                community
                    .exterior()
                    .0
                    .iter()
                    .map(|c| frame.inv(*c))
                    .collect(),
            ),
            vec![],
        );
        let big = polygon![(x: 10.0, y: 10.0), (x: 40.0, y: 10.0), (x: 40.0, y: 40.0), (x: 10.0, y: 40.0)];
        let sliver = polygon![(x: 39.95, y: 20.0), (x: 40.05, y: 20.0), (x: 40.0, y: 20.1)];
        let other = polygon![(x: 60.0, y: 60.0), (x: 80.0, y: 60.0), (x: 80.0, y: 80.0), (x: 60.0, y: 80.0)];
        let (_, g) = tessellate(
            frame,
            &community,
            &ll,
            &[part(0, big, 100), part(1, sliver, 0), part(2, other, 50)],
            &[],
            &[],
            &[],
            &TessellationSettings::default(),
        )
        .unwrap();
        let atom_of = |b: u32| {
            g.atoms
                .iter()
                .position(|a| a.buildings.contains(&b))
                .unwrap()
        };
        assert_eq!(
            atom_of(0),
            atom_of(1),
            "the sliver merges with the building it overlaps"
        );
        assert_ne!(atom_of(0), atom_of(2));
    }
}
