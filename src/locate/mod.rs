//! Point → grid (and community, street) location: exact, fast, time-aware.
//!
//! The answer equals exact point-in-polygon. A point on an edge shared by two grids belongs to
//! exactly one of them, by the half-open crossing rule: **the grid to its east**, or for an
//! east–west edge **the grid to its north** (a shared vertex follows the same rule). So every
//! point of a seamless grid layer has exactly one grid, unlike `ST_Covers`, which gives two.
//!
//! How: a uniform cell index over the layer. Cells that no edge crosses know their grid(s)
//! outright (scan-filled), so most points cost one array lookup. Cells crossed by edges keep
//! their candidate polygons, tested exactly against only the edges of the cell's row.
//! Grids may carry `valid_from`/`valid_to` (seconds since the epoch): a point with a time is
//! located among the grids in force then, so old cases keep their old grid (as MapIt keeps
//! boundary generations).
//!
//! No I/O: zones in, answers out.

use crate::geom::floor_i64;
use geo::{Coord, MultiPolygon};
use rstar::{PointDistance, RTree, primitives::GeomWithData, primitives::Line};
use std::sync::OnceLock;

/// One polygon of the layer (a grid, or a community when used as such).
#[derive(Debug, Clone)]
pub struct Zone {
    pub code: String,
    pub name: Option<String>,
    pub community: Option<String>,
    pub street: Option<String>,
    /// In force from (inclusive), seconds since the epoch; None = always.
    pub valid_from: Option<i64>,
    /// In force until (exclusive); None = still in force.
    pub valid_to: Option<i64>,
    /// WGS84.
    pub polygon: MultiPolygon,
}

impl Zone {
    /// True when the zone is in force at `t` (None = now: zones without an end).
    #[must_use]
    pub fn in_force(&self, t: Option<i64>) -> bool {
        match t {
            None => self.valid_to.is_none(),
            Some(t) => {
                self.valid_from.is_none_or(|f| f <= t) && self.valid_to.is_none_or(|e| t < e)
            }
        }
    }
}

/// The answer for one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Located {
    /// Inside zone `i`.
    Inside(usize),
    /// In no zone; the nearest zone in force and the distance to it in metres.
    Outside { nearest: usize, distance_m: f64 },
    /// No zone in force at that time.
    NoZone,
}

/// Errors building a locator.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("the layer has no polygons")]
    Empty,
}

/// An edge in scaled degrees, with its zone and whether it lies inside the layer's union (an
/// edge two zones in force now share from opposite sides).
type Seg = GeomWithData<Line<[f64; 2]>, (u32, bool)>;

/// A prepared point locator.
pub struct Locator {
    zones: Vec<Zone>,
    /// The cell index's grid.
    g: CellGrid,
    /// Per cell: offset into `lists`, length, and whether edges cross it.
    cells: Vec<(u32, u16, bool)>,
    lists: Vec<u32>,
    /// Per zone: its edges binned by cell row: (row → range into `zedges`).
    zrows: Vec<(usize, Vec<(u32, u32)>)>,
    zedges: Vec<(Coord, Coord)>,
    /// Nearest-edge search for points outside, in scaled degrees (x·cos φ0, y).
    edges_tree: RTree<Seg>,
    /// Per cell of a coarse grid around the layer: the edges that can be nearest to a point
    /// in that cell (zones in force now), so most outside points skip the tree search.
    near: NearCells,
    /// Per vertex (scaled) of a zone in force now: the lowest such zone having it, for ties at
    /// a vertex that other zones reach only by shared edges.
    vertex_zone: std::collections::HashMap<[u64; 2], u32>,
    /// No zone has a `valid_from` or `valid_to`: every zone is in force at every time.
    forever: bool,
    kx: f64,
}

impl Locator {
    /// Build a locator over zones.
    ///
    /// # Errors
    /// An empty layer.
    pub fn new(zones: Vec<Zone>) -> Result<Self, LocateError> {
        let (lo, hi, nverts) = extent(&zones).ok_or(LocateError::Empty)?;
        let kx = ((lo[1] + hi[1]) / 2.0).to_radians().cos().max(0.01);
        let g = CellGrid::new(lo, hi, nverts, kx);
        let ncell = g.nx * g.ny;
        // per cell candidate sets: edges crossing (mixed) and centre-inside (cover)
        let mut mixed: Vec<Vec<u32>> = vec![Vec::new(); ncell];
        let mut cover: Vec<Vec<u32>> = vec![Vec::new(); ncell];
        let mut zedges: Vec<(Coord, Coord)> = Vec::new();
        let mut zrows: Vec<(usize, Vec<(u32, u32)>)> = Vec::with_capacity(zones.len());
        let mut segs: Vec<Seg> = Vec::new();
        let mut flat: Vec<u32> = Vec::new();
        // each zone's edges once, with the side it lies on
        let sided: Vec<Vec<(Coord, Coord, bool)>> = zones.iter().map(sided_edges).collect();
        let shared = shared_edges(&zones, &sided);
        let mut vertex_zone = std::collections::HashMap::new();
        for (zi, es) in sided.iter().enumerate() {
            let zi32 = zi as u32;
            let edges: Vec<(Coord, Coord)> = es.iter().map(|&(a, b, _)| (a, b)).collect();
            if zones[zi].in_force(None) {
                for &(a, _) in &edges {
                    vertex_zone.entry(vkey(a.x * kx, a.y)).or_insert(zi32);
                }
            }
            for (k, &(a, b)) in edges.iter().enumerate() {
                segs.push(GeomWithData::new(
                    Line::new([a.x * kx, a.y], [b.x * kx, b.y]),
                    (zi32, shared[zi][k]),
                ));
            }
            g.mark_crossed(&edges, zi32, &mut mixed);
            let (zr0, zr1) = g.scan_fill(&edges, zi32, &mut cover);
            // edges binned by row for exact tests
            let mut by_row: Vec<Vec<u32>> = vec![Vec::new(); zr1.saturating_sub(zr0) + 1];
            let base = zedges.len();
            for (k, &(a, b)) in edges.iter().enumerate() {
                for rr in g.row(a.y.min(b.y))..=g.row(a.y.max(b.y)) {
                    by_row[rr - zr0].push((base + k) as u32);
                }
            }
            zedges.extend(edges);
            // flatten: per row a range into an index list stored in zedges order
            let mut rows = Vec::with_capacity(by_row.len());
            for list in by_row {
                rows.push((flat.len() as u32, list.len() as u32));
                flat.extend(list);
            }
            zrows.push((zr0, rows));
        }
        let (cells, lists) = cell_lists(&mixed, &cover, flat, &mut zrows);
        let near = NearCells::new(lo, hi, kx);
        let forever = zones
            .iter()
            .all(|z| z.valid_from.is_none() && z.valid_to.is_none());
        Ok(Locator {
            zones,
            g,
            cells,
            lists,
            zrows,
            zedges,
            edges_tree: RTree::bulk_load(segs),
            near,
            vertex_zone,
            forever,
            kx,
        })
    }

    /// The zones, in input order.
    #[must_use]
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Exact crossing-number test of zone `z` using only the edges of the point's row.
    fn inside(&self, z: usize, p: Coord, rr: usize) -> bool {
        let (r0, rows) = &self.zrows[z];
        if rr < *r0 || rr >= r0 + rows.len() {
            return false;
        }
        let (s, l) = rows[rr - r0];
        let mut inside = false;
        for &e in &self.lists[s as usize..(s + l) as usize] {
            let (a, b) = self.zedges[e as usize];
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
        }
        inside
    }

    /// Locate a WGS84 point among the zones in force at `t` (None: the current zones).
    #[must_use]
    pub fn locate(&self, lon: f64, lat: f64, t: Option<i64>) -> Located {
        let p = Coord { x: lon, y: lat };
        if let Some(i) = self.find_inside(p, t) {
            return Located::Inside(i);
        }
        self.nearest(p, t)
    }

    /// [`Locator::locate`], and every zone containing the point put in `all` (more than one
    /// only where zones overlap), with one pass over the point's cell.
    pub fn locate_all(&self, lon: f64, lat: f64, t: Option<i64>, all: &mut Vec<usize>) -> Located {
        let p = Coord { x: lon, y: lat };
        all.clear();
        self.each_inside(p, t, |z| all.push(z));
        match all.len() {
            0 => self.nearest(p, t),
            1 => Located::Inside(all[0]),
            _ => Located::Inside(self.deepest(all, p)),
        }
    }

    /// Only the inside test (no nearest search): the zone index, if any. Where zones overlap
    /// (a layer that is not seamless), the zone the point lies deepest in wins.
    #[inline]
    #[must_use]
    pub fn find_inside(&self, p: Coord, t: Option<i64>) -> Option<usize> {
        let mut first = None;
        let mut more = false;
        self.each_inside(p, t, |z| {
            if first.is_none() {
                first = Some(z);
            } else {
                more = true;
            }
        });
        if more {
            let mut all = Vec::new();
            self.each_inside(p, t, |z| all.push(z));
            return Some(self.deepest(&all, p));
        }
        first
    }

    /// Of several zones containing `p`, the one it lies deepest in (the first on a tie).
    fn deepest(&self, all: &[usize], p: Coord) -> usize {
        let mut best = (all[0], self.depth(all[0], p));
        for &z in &all[1..] {
            let d = self.depth(z, p);
            if d > best.1 || (d == best.1 && z < best.0) {
                best = (z, d);
            }
        }
        best.0
    }

    /// Every zone in force at `t` that contains `p` (more than one only where zones overlap).
    #[must_use]
    pub fn all_inside(&self, p: Coord, t: Option<i64>) -> Vec<usize> {
        let mut all = Vec::new();
        self.each_inside(p, t, |z| all.push(z));
        all
    }

    #[inline]
    fn each_inside(&self, p: Coord, t: Option<i64>, mut f: impl FnMut(usize)) {
        let fx = (p.x - self.g.x0) / self.g.cw;
        let fy = (p.y - self.g.y0) / self.g.ch;
        if !(fx >= 0.0 && fy >= 0.0) {
            return;
        }
        let (cx, cy) = (fx as usize, fy as usize);
        if cx >= self.g.nx || cy >= self.g.ny {
            return;
        }
        let (s, l, mixed) = self.cells[cy * self.g.nx + cx];
        for &z in &self.lists[s as usize..s as usize + l as usize] {
            let z = z as usize;
            if (self.forever || self.zones[z].in_force(t)) && (!mixed || self.inside(z, p, cy)) {
                f(z);
            }
        }
    }

    /// Distance (scaled degrees) from `p` to the boundary of zone `z`.
    fn depth(&self, z: usize, p: Coord) -> f64 {
        let mut best = f64::INFINITY;
        for poly in &self.zones[z].polygon.0 {
            for r in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for w in r.0.windows(2) {
                    let (a, b) = (
                        Coord {
                            x: w[0].x * self.kx,
                            y: w[0].y,
                        },
                        Coord {
                            x: w[1].x * self.kx,
                            y: w[1].y,
                        },
                    );
                    let q = Coord {
                        x: p.x * self.kx,
                        y: p.y,
                    };
                    best = best.min(crate::geom::seg_point_dist(a, b, q));
                }
            }
        }
        best
    }

    /// The nearest zone in force at `t` to a point in none, and the distance: the least
    /// distance to any of its edges, the lowest zone index among equally near zones.
    fn nearest(&self, p: Coord, t: Option<i64>) -> Located {
        let q = [p.x * self.kx, p.y];
        if t.is_none()
            && let Some(cands) = self.near.candidates(
                q,
                |c, r2| {
                    self.edges_tree
                        .locate_within_distance(c, r2)
                        .filter(|s| !s.data.1 && self.zones[s.data.0 as usize].in_force(None))
                        .copied()
                        .collect()
                },
                |c| self.tree_nearest(c, None).map(|(_, d2)| d2),
            )
        {
            // the least distance; among equally near edges the lowest zone, where a zone
            // reaching the nearest point only at a vertex counts too
            let at_vertex = |s: &Seg| -> u32 {
                let v = s.geom().nearest_point(&q);
                if v == s.geom().from || v == s.geom().to {
                    let at = self.vertex_zone.get(&vkey(v[0], v[1]));
                    at.map_or(s.data.0, |&o| o.min(s.data.0))
                } else {
                    s.data.0
                }
            };
            let mut best: Option<(f64, u32, &Seg, bool)> = None;
            for s in cands {
                let d2 = s.geom().distance_2(&q);
                match &mut best {
                    Some((bd, _, _, _)) if d2 > *bd => {}
                    Some((bd, bz, bs, resolved)) if d2 == *bd => {
                        if !*resolved {
                            *bz = (*bz).min(at_vertex(bs));
                            *resolved = true;
                        }
                        *bz = (*bz).min(at_vertex(s));
                    }
                    _ => best = Some((d2, s.data.0, s, false)),
                }
            }
            let best = best
                .map(|(d2, z, s, resolved)| (d2, if resolved { z } else { z.min(at_vertex(s)) }));
            return match best {
                Some((d2, z)) => Located::Outside {
                    nearest: z as usize,
                    distance_m: d2.sqrt() * 111_195.0,
                },
                None => Located::NoZone,
            };
        }
        match self.tree_nearest(q, t) {
            Some((z, d2)) => Located::Outside {
                nearest: z,
                distance_m: d2.sqrt() * 111_195.0,
            },
            None => Located::NoZone,
        }
    }

    /// Nearest edge of a zone in force at `t` by the tree: (zone, squared scaled distance),
    /// the lowest zone index among equally near edges.
    fn tree_nearest(&self, q: [f64; 2], t: Option<i64>) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (seg, d2) in self.edges_tree.nearest_neighbor_iter_with_distance_2(&q) {
            if let Some((_, bd)) = best
                && d2 > bd
            {
                break;
            }
            let z = seg.data.0 as usize;
            if self.zones[z].in_force(t) && best.is_none_or(|(bz, _)| z < bz) {
                best = Some((z, d2));
            }
        }
        best
    }
}

/// A coarse grid over the layer's extent and a margin as wide as the extent on every side,
/// in scaled degrees. Each cell, on first use, keeps the edges that can be nearest to some
/// point of the cell: with `c` its centre, `h` its half-diagonal and `u` the distance from `c`
/// to the nearest edge, every point of the cell is within `u + h` of that edge, so only edges
/// within `u + 2h` of `c` can be nearer.
struct NearCells {
    x0: f64,
    y0: f64,
    cw: f64,
    ch: f64,
    n: usize,
    cells: Vec<OnceLock<Box<[Seg]>>>,
}

impl NearCells {
    const SIDE: usize = 256;

    fn new(lo: [f64; 2], hi: [f64; 2], kx: f64) -> NearCells {
        let (w, h) = (((hi[0] - lo[0]) * kx).max(1e-9), (hi[1] - lo[1]).max(1e-9));
        let n = Self::SIDE;
        NearCells {
            x0: lo[0] * kx - w,
            y0: lo[1] - h,
            cw: 3.0 * w / n as f64,
            ch: 3.0 * h / n as f64,
            n,
            cells: (0..n * n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The candidate edges for the scaled point `q`, or None outside the grid. `within(c, r2)`
    /// gives the edges within √r2 of `c`; `nearest(c)` the squared distance to the nearest.
    fn candidates(
        &self,
        q: [f64; 2],
        within: impl FnOnce([f64; 2], f64) -> Vec<Seg>,
        nearest: impl FnOnce([f64; 2]) -> Option<f64>,
    ) -> Option<&[Seg]> {
        let fx = (q[0] - self.x0) / self.cw;
        let fy = (q[1] - self.y0) / self.ch;
        if !(fx >= 0.0 && fy >= 0.0) || fx >= self.n as f64 || fy >= self.n as f64 {
            return None;
        }
        let (cx, cy) = (fx as usize, fy as usize);
        let cell = self.cells[cy * self.n + cx].get_or_init(|| {
            let c = [
                self.x0 + (cx as f64 + 0.5) * self.cw,
                self.y0 + (cy as f64 + 0.5) * self.ch,
            ];
            let h = 0.5 * self.cw.hypot(self.ch);
            match nearest(c) {
                Some(d2) => {
                    let r = d2.sqrt() + 2.0 * h;
                    within(c, (r * (1.0 + 1e-9) + 1e-12).powi(2)).into_boxed_slice()
                }
                None => Box::new([]),
            }
        });
        Some(cell)
    }
}

/// x-range of segment ab within the horizontal band [y0, y1].
fn clip_x(a: Coord, b: Coord, y0: f64, y1: f64) -> (f64, f64) {
    if a.y == b.y {
        return (a.x, b.x);
    }
    let at = |y: f64| a.x + (b.x - a.x) * (y - a.y) / (b.y - a.y);
    let (lo, hi) = (a.y.min(b.y).max(y0), a.y.max(b.y).min(y1));
    (at(lo), at(hi))
}

/// The bounding box of every vertex and their number; `None` without zones or vertices.
fn extent(zones: &[Zone]) -> Option<([f64; 2], [f64; 2], usize)> {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    let mut nverts = 0usize;
    for z in zones {
        for p in &z.polygon.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                for c in &r.0 {
                    lo = [lo[0].min(c.x), lo[1].min(c.y)];
                    hi = [hi[0].max(c.x), hi[1].max(c.y)];
                    nverts += 1;
                }
            }
        }
    }
    (!zones.is_empty() && lo[0].is_finite()).then_some((lo, hi, nverts))
}

/// A vertex as a map key.
fn vkey(x: f64, y: f64) -> [u64; 2] {
    [x.to_bits(), y.to_bits()]
}

/// A zone's ring edges (repeated points skipped), each with whether the zone lies to its left
/// (an exterior ring counter-clockwise, a hole clockwise).
fn sided_edges(z: &Zone) -> Vec<(Coord, Coord, bool)> {
    let mut edges = Vec::new();
    for p in &z.polygon.0 {
        for (k, r) in std::iter::once(p.exterior())
            .chain(p.interiors())
            .enumerate()
        {
            let twice_area: f64 =
                r.0.windows(2)
                    .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
                    .sum();
            let left = (twice_area > 0.0) == (k == 0);
            for w in r.0.windows(2) {
                if w[0] != w[1] {
                    edges.push((w[0], w[1], left));
                }
            }
        }
    }
    edges
}

/// Per zone, per edge of [`sided_edges`]: true where another zone in force now has the same edge
/// with itself on the other side, so the edge lies inside the layer's union and is never the
/// nearest edge to a point outside every zone.
fn shared_edges(zones: &[Zone], sided: &[Vec<(Coord, Coord, bool)>]) -> Vec<Vec<bool>> {
    let key = |a: Coord, b: Coord| [a.x.to_bits(), a.y.to_bits(), b.x.to_bits(), b.y.to_bits()];
    // each edge directed with its zone on the left
    let directed = |&(a, b, left): &(Coord, Coord, bool)| if left { (a, b) } else { (b, a) };
    let mut owner: std::collections::HashMap<[u64; 4], u32> = std::collections::HashMap::new();
    for (zi, es) in sided.iter().enumerate() {
        if zones[zi].in_force(None) {
            for e in es {
                let (a, b) = directed(e);
                owner.entry(key(a, b)).or_insert(zi as u32);
            }
        }
    }
    sided
        .iter()
        .enumerate()
        .map(|(zi, es)| {
            es.iter()
                .map(|e| {
                    let (a, b) = directed(e);
                    zones[zi].in_force(None)
                        && owner.get(&key(b, a)).is_some_and(|&o| o as usize != zi)
                })
                .collect()
        })
        .collect()
}

/// The uniform cell grid over the zones' extent: about four cells per vertex, square in
/// metres, at most 8192 × 8192.
struct CellGrid {
    x0: f64,
    y0: f64,
    cw: f64,
    ch: f64,
    nx: usize,
    ny: usize,
}

impl CellGrid {
    fn new(lo: [f64; 2], hi: [f64; 2], nverts: usize, kx: f64) -> CellGrid {
        let target = (nverts * 4).clamp(1024, 4_000_000) as f64;
        let (w, h) = ((hi[0] - lo[0]).max(1e-9) * kx, (hi[1] - lo[1]).max(1e-9));
        let side = (w * h / target).sqrt().max(1e-7);
        let nx = ((w / side).ceil() as usize).clamp(1, 8192);
        let ny = ((h / side).ceil() as usize).clamp(1, 8192);
        CellGrid {
            x0: lo[0],
            y0: lo[1],
            cw: (hi[0] - lo[0]).max(1e-9) / nx as f64 * (1.0 + 1e-9),
            ch: (hi[1] - lo[1]).max(1e-9) / ny as f64 * (1.0 + 1e-9),
            nx,
            ny,
        }
    }

    fn col(&self, x: f64) -> usize {
        (floor_i64((x - self.x0) / self.cw).max(0) as usize).min(self.nx - 1)
    }

    fn row(&self, y: f64) -> usize {
        (floor_i64((y - self.y0) / self.ch).max(0) as usize).min(self.ny - 1)
    }

    /// Mark the cells each edge crosses (conservative: the edge's cells along its rows).
    fn mark_crossed(&self, edges: &[(Coord, Coord)], zi: u32, mixed: &mut [Vec<u32>]) {
        for &(a, b) in edges {
            let (r0, r1) = (self.row(a.y.min(b.y)), self.row(a.y.max(b.y)));
            for rr in r0..=r1 {
                // x-range of the edge within this row band
                let yb0 = self.y0 + rr as f64 * self.ch;
                let yb1 = yb0 + self.ch;
                let (xa, xb) = clip_x(a, b, yb0, yb1);
                for cc in self.col(xa.min(xb))..=self.col(xa.max(xb)) {
                    let m = &mut mixed[rr * self.nx + cc];
                    if m.last() != Some(&zi) {
                        m.push(zi);
                    }
                }
            }
        }
    }

    /// Scan-fill: the cells whose centre is inside the zone get it in `cover`. Returns the
    /// zone's row range.
    fn scan_fill(
        &self,
        edges: &[(Coord, Coord)],
        zi: u32,
        cover: &mut [Vec<u32>],
    ) -> (usize, usize) {
        let (mut zr0, mut zr1) = (usize::MAX, 0usize);
        for &(a, b) in edges {
            zr0 = zr0.min(self.row(a.y.min(b.y)));
            zr1 = zr1.max(self.row(a.y.max(b.y)));
        }
        let mut xs: Vec<f64> = Vec::new();
        for rr in zr0..=zr1 {
            let yc = self.y0 + (rr as f64 + 0.5) * self.ch;
            xs.clear();
            for &(a, b) in edges {
                if (a.y > yc) != (b.y > yc) {
                    xs.push((b.x - a.x) * (yc - a.y) / (b.y - a.y) + a.x);
                }
            }
            xs.sort_by(f64::total_cmp);
            for pair in xs.chunks(2) {
                if pair.len() < 2 {
                    break;
                }
                // cells whose centre x lies in [pair0, pair1)
                let c0 = ((pair[0] - self.x0) / self.cw - 0.5).ceil().max(0.0) as usize;
                let c1f = (pair[1] - self.x0) / self.cw - 0.5;
                if c1f < 0.0 {
                    continue;
                }
                let c1 = (floor_i64(c1f).max(0) as usize).min(self.nx - 1);
                for cc in c0..=c1 {
                    if c0 > c1 {
                        break;
                    }
                    cover[rr * self.nx + cc].push(zi);
                }
            }
        }
        (zr0, zr1)
    }
}

/// Cell entries (start, length, mixed) into one index list: mixed cells list edge zones ∪
/// cover zones, pure cells their cover zones; the per-row edge lists follow, and the zones'
/// row ranges are moved past the cell lists.
fn cell_lists(
    mixed: &[Vec<u32>],
    cover: &[Vec<u32>],
    flat: Vec<u32>,
    zrows: &mut [(usize, Vec<(u32, u32)>)],
) -> (Vec<(u32, u16, bool)>, Vec<u32>) {
    let mut cells = Vec::with_capacity(mixed.len());
    let mut lists: Vec<u32> = Vec::new();
    for i in 0..mixed.len() {
        let start = lists.len() as u32;
        let is_mixed = !mixed[i].is_empty();
        let mut l: Vec<u32> = mixed[i].iter().chain(cover[i].iter()).copied().collect();
        l.sort_unstable();
        l.dedup();
        let len = l.len().min(u16::MAX as usize) as u16;
        lists.extend(l.into_iter().take(len as usize));
        cells.push((start, len, is_mixed));
    }
    let flat_base = lists.len() as u32;
    lists.extend(flat);
    for z in zrows.iter_mut() {
        for r in &mut z.1 {
            r.0 += flat_base;
        }
    }
    (cells, lists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn sq(code: &str, x: f64, y: f64) -> Zone {
        Zone {
            code: code.into(),
            name: None,
            community: None,
            street: None,
            valid_from: None,
            valid_to: None,
            polygon: MultiPolygon(vec![
                polygon![(x: x, y: y), (x: x + 1.0, y: y), (x: x + 1.0, y: y + 1.0), (x: x, y: y + 1.0)],
            ]),
        }
    }

    #[test]
    fn every_point_of_a_tiling_has_exactly_one_zone() {
        let l = Locator::new(vec![
            sq("sw", 0.0, 0.0),
            sq("se", 1.0, 0.0),
            sq("nw", 0.0, 1.0),
            sq("ne", 1.0, 1.0),
        ])
        .unwrap();
        // on the shared north-south edge: east wins
        assert_eq!(l.locate(1.0, 0.5, None), Located::Inside(1));
        // on the shared east-west edge: north wins
        assert_eq!(l.locate(0.5, 1.0, None), Located::Inside(2));
        // the shared vertex: north-east
        assert_eq!(l.locate(1.0, 1.0, None), Located::Inside(3));
        // a dense sweep: every interior point is in exactly one zone, matching brute force
        for i in 1..200 {
            for j in 1..200 {
                let (x, y) = (f64::from(i) / 100.0, f64::from(j) / 100.0);
                let got = l.find_inside(Coord { x, y }, None);
                let want = match (x >= 1.0, y >= 1.0) {
                    (false, false) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (true, true) => 3,
                };
                assert_eq!(got, Some(want), "{x},{y}");
            }
        }
    }

    #[test]
    /// Outside points: the cell shortcut answers exactly as a search over every edge would —
    /// the least distance, the lowest zone index among equally near zones — inside the coarse
    /// grid, in the layer's gaps and far beyond it.
    fn outside_cells_agree_with_every_edge() {
        // a 4 × 3 block of unit squares with two missing (gaps), and a far one
        let mut zones = Vec::new();
        for (i, j) in [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 0),
            (0, 1),
            (3, 1),
            (0, 2),
            (1, 2),
            (2, 2),
            (3, 2),
        ] {
            zones.push(sq(&format!("{i}{j}"), f64::from(i), f64::from(j)));
        }
        zones.push(sq("far", 9.0, 7.0));
        let l = Locator::new(zones.clone()).unwrap();
        let kx = l.kx;
        let brute = |x: f64, y: f64| -> (usize, f64) {
            let q = [x * kx, y];
            let mut best = (usize::MAX, f64::INFINITY);
            for (zi, z) in zones.iter().enumerate() {
                for (a, b, _) in sided_edges(z) {
                    let s = Line::new([a.x * kx, a.y], [b.x * kx, b.y]);
                    let d2 = s.distance_2(&q);
                    if d2 < best.1 || (d2 == best.1 && zi < best.0) {
                        best = (zi, d2);
                    }
                }
            }
            (best.0, best.1.sqrt() * 111_195.0)
        };
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut outside = 0;
        for k in 0..20_000 {
            // grid points every 1/8 make exact ties at shared corners; others at random
            let (x, y) = if k < 2_000 {
                (f64::from(k % 50) / 8.0 - 2.0, f64::from(k / 50) / 8.0 - 2.0)
            } else {
                (rnd() * 40.0 - 15.0, rnd() * 30.0 - 11.0)
            };
            if let Located::Outside {
                nearest,
                distance_m,
            } = l.locate(x, y, None)
            {
                outside += 1;
                let (bz, bd) = brute(x, y);
                assert_eq!((nearest, distance_m), (bz, bd), "at ({x}, {y})");
                // the tree path (a time given) gives the same answer
                assert_eq!(
                    l.locate(x, y, Some(0)),
                    Located::Outside {
                        nearest,
                        distance_m
                    }
                );
            }
        }
        assert!(outside > 15_000, "{outside}");
    }

    #[test]
    fn outside_gives_the_nearest_and_distance() {
        let l = Locator::new(vec![sq("a", 0.0, 0.0)]).unwrap();
        match l.locate(1.001, 0.5, None) {
            Located::Outside {
                nearest,
                distance_m,
            } => {
                assert_eq!(nearest, 0);
                assert!((distance_m - 111.0).abs() < 2.0, "{distance_m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn generations() {
        let mut old = sq("old", 0.0, 0.0);
        old.valid_to = Some(100);
        let mut new = sq("new", 0.0, 0.0);
        new.valid_from = Some(100);
        let l = Locator::new(vec![old, new]).unwrap();
        assert_eq!(l.locate(0.5, 0.5, Some(50)), Located::Inside(0));
        assert_eq!(l.locate(0.5, 0.5, Some(100)), Located::Inside(1));
        assert_eq!(l.locate(0.5, 0.5, None), Located::Inside(1));
    }
}
