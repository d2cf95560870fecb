//! Straightening of in-block boundaries.
//!
//! Between two buildings of one block the tessellation's boundary runs through triangle
//! midpoints and centroids: a zigzag of many short steps that is off any road, adds perimeter
//! and — to anyone sampling the boundary by its vertices — weighs far more than its length.
//! Each such run between two fixed points (a footprint corner, a road, the community edge, a
//! point where three grids meet) is replaced greedily by the longest straight shortcuts that
//! move no building: a shortcut is taken only if it crosses no constraint edge (footprint,
//! road, community or kept-grid ring) and no other boundary, and the area it sweeps holds no
//! vertex of either. Both grids of a run drop the same points, so they keep sharing the edge.

use super::buckets::{Box2, Buckets};
use super::tessellation::{NONE, Pt, Tessellation};
use crate::geom::seg_point_dist;
use geo::Coord;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Obstacle segments (ends and their point ids) in a bucket grid; shortcuts are added as taken.
/// The boundary's own segments carry, per item, whether it is still there and which run drew
/// it (a shortcut); the fixed constraints carry neither (always there).
struct Segs {
    list: Vec<(Coord, Coord, (Pt, Pt))>,
    grid: Buckets,
    alive: Vec<bool>,
    run: Vec<Option<RunKey>>,
}

/// Obstacle points in a bucket grid (`alive` as for [`Segs`]).
struct Pts {
    list: Vec<(Coord, Pt)>,
    grid: Buckets,
    alive: Vec<bool>,
}

/// A run is known by the anchor it is walked from and its first point: runs are straightened
/// in this order, each seeing the shortcuts of the runs before it.
type RunKey = (Pt, Pt);

impl Segs {
    /// Is item `id` an obstacle for the run `key`: still there, and not a shortcut of a later run.
    #[inline]
    fn visible(&self, id: usize, key: RunKey) -> bool {
        self.alive.is_empty() || (self.alive[id] && self.run[id].is_none_or(|r| r <= key))
    }

    fn push(&mut self, s: (Coord, Coord, (Pt, Pt)), run: Option<RunKey>) -> u32 {
        let id = self.list.len() as u32;
        self.grid.insert(id, &seg_box(s.0, s.1));
        self.list.push(s);
        self.alive.push(true);
        self.run.push(run);
        id
    }
}

impl Pts {
    #[inline]
    fn visible(&self, id: usize) -> bool {
        self.alive.is_empty() || self.alive[id]
    }

    fn push(&mut self, p: (Coord, Pt)) -> u32 {
        let id = self.list.len() as u32;
        self.grid.insert(id, &[p.0.x, p.0.y, p.0.x, p.0.y]);
        self.list.push(p);
        self.alive.push(true);
        id
    }
}

fn seg_box(a: Coord, b: Coord) -> Box2 {
    [a.x.min(b.x), a.y.min(b.y), a.x.max(b.x), a.y.max(b.y)]
}

/// No obstacle may come closer than this to a shortcut (metres).
const CLEARANCE_M: f64 = 0.3;
/// Most run points one shortcut replaces (bounds the work of each check).
const MAX_SPAN: usize = 40;

/// The boundary graph: undirected edges with how many grids hold them, point positions, and
/// each point's neighbours.
struct Boundary {
    count: HashMap<(Pt, Pt), u8>,
    pos: HashMap<Pt, Coord>,
    nbrs: HashMap<Pt, Vec<Pt>>,
}

impl Boundary {
    fn new(t: &Tessellation, edges: &[Vec<(Pt, Pt, usize)>]) -> Boundary {
        let mut b = Boundary {
            count: HashMap::default(),
            pos: HashMap::default(),
            nbrs: HashMap::default(),
        };
        for es in edges {
            for &(p, q, f) in es {
                let k = if p < q { (p, q) } else { (q, p) };
                let c = b.count.entry(k).or_insert(0);
                if *c == 0 {
                    b.nbrs.entry(p).or_default().push(q);
                    b.nbrs.entry(q).or_default().push(p);
                }
                *c = c.saturating_add(1);
                b.pos.entry(p).or_insert_with(|| t.pos(p, f));
                b.pos.entry(q).or_insert_with(|| t.pos(q, f));
            }
        }
        b
    }
}

/// What no shortcut may cross or come near whichever grid holds which atom: the constraint
/// edges (footprints, roads, the community edge) and their vertices. A plan keeps them per
/// fabric part, so an edit does not gather them again.
pub struct Constraints {
    segs: Segs,
    pts: Pts,
    fixed_vertex: HashSet<u32>,
}

/// The [`Constraints`] of a tessellation.
#[must_use]
pub fn constraints(t: &Tessellation) -> Constraints {
    let mut seen_edge = HashSet::default();
    let mut list: Vec<(Coord, Coord, (Pt, Pt))> = Vec::new();
    let mut fixed_vertex: HashSet<u32> = HashSet::default();
    for f in 1..t.faces.len() {
        if !t.inside[f] {
            continue;
        }
        for k in 0..3 {
            let e = t.edge[f][k];
            if e == NONE || !t.is_constraint_edge(e) || !seen_edge.insert(e) {
                continue;
            }
            let (va, vb) = (t.faces[f][k], t.faces[f][(k + 1) % 3]);
            fixed_vertex.insert(va);
            fixed_vertex.insert(vb);
            let (a, c) = (t.verts[va as usize], t.verts[vb as usize]);
            list.push((a, c, (Pt(va), Pt(vb))));
        }
    }
    let pts: Vec<(Coord, Pt)> = fixed_vertex
        .iter()
        .map(|&v| (t.verts[v as usize], Pt(v)))
        .collect();
    Constraints {
        segs: segs_of(list),
        pts: pts_of(pts),
        fixed_vertex,
    }
}

fn segs_of(list: Vec<(Coord, Coord, (Pt, Pt))>) -> Segs {
    let boxes: Vec<Box2> = list.iter().map(|s| seg_box(s.0, s.1)).collect();
    Segs {
        grid: Buckets::new(&boxes),
        list,
        alive: Vec::new(),
        run: Vec::new(),
    }
}

fn pts_of(list: Vec<(Coord, Pt)>) -> Pts {
    let boxes: Vec<Box2> = list.iter().map(|p| [p.0.x, p.0.y, p.0.x, p.0.y]).collect();
    Pts {
        grid: Buckets::new(&boxes),
        list,
        alive: Vec::new(),
    }
}

/// May point `p` be dropped: between exactly two grids on both sides, and only a densify
/// point, an edge midpoint off constraints, or a face centroid.
fn is_free(
    t: &Tessellation,
    b: &Boundary,
    fixed_vertex: &HashSet<u32>,
    (p, n): (Pt, &[Pt]),
) -> bool {
    let (nv, ne) = (t.verts.len() as u32, t.n_edges as u32);
    if n.len() != 2 {
        return false;
    }
    // both edges between two grids (an edge held once lies on the community's edge)
    if n.iter().any(|&q| {
        let k = if p < q { (p, q) } else { (q, p) };
        b.count.get(&k).copied().unwrap_or(0) != 2
    }) {
        return false;
    }
    if p.0 < nv {
        t.steiner[p.0 as usize] && !fixed_vertex.contains(&p.0)
    } else if p.0 < nv + ne {
        !t.is_constraint_edge(p.0 - nv)
    } else {
        true
    }
}

/// Points to drop from the grid rings. `edges[g]` are grid `g`'s directed boundary edges
/// (from, to, face for positions).
#[must_use]
pub fn straighten(t: &Tessellation, edges: &[Vec<(Pt, Pt, usize)>]) -> HashSet<Pt> {
    let c = {
        let _s = tracing::debug_span!("constraints").entered();
        constraints(t)
    };
    straighten_with(t, &c, edges)
}

/// [`straighten`] with the tessellation's [`Constraints`] gathered already.
#[must_use]
pub fn straighten_with(
    t: &Tessellation,
    c: &Constraints,
    edges: &[Vec<(Pt, Pt, usize)>],
) -> HashSet<Pt> {
    Straightener::build(t, c, edges).drop
}

/// Replace a run's points by the longest shortcuts that hold, left to right; each shortcut
/// becomes an obstacle for later runs. The shortcuts as (from, to) run indices, and their
/// obstacle ids.
fn shortcut_run(
    run: &[Pt],
    pos: &HashMap<Pt, Coord>,
    (fixed, segs, pts): (&Constraints, &mut Segs, &Pts),
) -> (Vec<(u32, u32)>, Vec<u32>) {
    let key = (run[0], run[1]);
    let coords: Vec<Coord> = run.iter().map(|p| pos[p]).collect();
    let index: HashMap<Pt, usize> = run.iter().enumerate().map(|(k, &p)| (p, k)).collect();
    let (mut cuts, mut ids) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i + 1 < run.len() {
        // the farthest end that can be reached: spans grow by doubling while the shortcut
        // holds, then the last step is bisected (a few checks per shortcut instead of one
        // per point)
        let last = (run.len() - 1).min(i + MAX_SPAN);
        let ok = |k: usize| shortcut_ok(run, &index, &coords, (i, k), (fixed, segs, pts), key);
        let mut j = i + 1;
        let mut step = 1;
        let mut bad = last + 1;
        while j < last {
            let k = (j + step).min(last);
            if ok(k) {
                j = k;
                step *= 2;
            } else {
                bad = k;
                break;
            }
        }
        while bad - j > 1 {
            let k = j + (bad - j) / 2;
            if ok(k) {
                j = k;
            } else {
                bad = k;
            }
        }
        if j > i + 1 {
            // later runs must respect the new edge as well as the old path
            cuts.push((i as u32, j as u32));
            ids.push(segs.push((coords[i], coords[j], (run[i], run[j])), Some(key)));
        }
        i = j;
    }
    (cuts, ids)
}

/// The bounding box of `pts` grown by the clearance, as [x0, y0, x1, y1].
#[inline]
fn padded_envelope(pts: &[Coord]) -> [f64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in pts {
        x0 = x0.min(p.x);
        y0 = y0.min(p.y);
        x1 = x1.max(p.x);
        y1 = y1.max(p.y);
    }
    [
        x0 - CLEARANCE_M,
        y0 - CLEARANCE_M,
        x1 + CLEARANCE_M,
        y1 + CLEARANCE_M,
    ]
}

/// May the shortcut a–b be drawn beside an obstacle edge from `shared` (an end of the shortcut)
/// to `other`? Not when it folds back along the edge, nor when the edge's far end comes too
/// close (unless the edge joins both ends).
#[inline]
fn endpoint_edge_ok(
    (a, b): (Coord, Coord),
    touches_a: bool,
    touches_b: bool,
    shared: Coord,
    other: Coord,
) -> bool {
    let far = if touches_a { b } else { a };
    let (ux, uy) = (far.x - shared.x, far.y - shared.y);
    let (vx, vy) = (other.x - shared.x, other.y - shared.y);
    let cross = ux * vy - uy * vx;
    let (lu, lv) = (ux.hypot(uy), vx.hypot(vy));
    if cross.abs() <= 1e-3 * lu * lv && ux * vx + uy * vy > 0.0 {
        return false;
    }
    // the far end of that edge must keep its distance too
    !(seg_point_dist(a, b, other) < CLEARANCE_M && !(touches_a && touches_b))
}

/// Where `p` lies in the stretch `i..=j` of the run being replaced (a closed run starts and
/// ends at one anchor).
#[inline]
fn stretch_index(
    run: &[Pt],
    index: &HashMap<Pt, usize>,
    (i, j): (usize, usize),
    p: Pt,
) -> Option<usize> {
    if p == run[i] {
        Some(i)
    } else if p == run[j] {
        Some(j)
    } else {
        index.get(&p).copied().filter(|&k| k > i && k < j)
    }
}

/// May the run's points strictly between `i` and `j` be replaced by the segment i–j?
fn shortcut_ok(
    run: &[Pt],
    index: &HashMap<Pt, usize>,
    c: &[Coord],
    (i, j): (usize, usize),
    (fixed, segs, pts): (&Constraints, &Segs, &Pts),
    key: RunKey,
) -> bool {
    let (a, b) = (c[i], c[j]);
    if (a.x - b.x).abs() < 1e-9 && (a.y - b.y).abs() < 1e-9 {
        return false;
    }
    let at = |p: &Pt| stretch_index(run, index, (i, j), *p);
    // no obstacle segment crosses or comes too close to the shortcut
    let eb = padded_envelope(&[a, b]);
    let seg_clear = |(p0, q0, (p, q)): (Coord, Coord, (Pt, Pt))| {
        if p0.x.max(q0.x) < eb[0]
            || p0.x.min(q0.x) > eb[2]
            || p0.y.max(q0.y) < eb[1]
            || p0.y.min(q0.y) > eb[3]
        {
            return true;
        }
        if let (Some(kp), Some(kq)) = (at(&p), at(&q))
            && kp.abs_diff(kq) == 1
        {
            return true; // an edge of the stretch being replaced
        }
        let touches_a = p == run[i] || q == run[i];
        let touches_b = p == run[j] || q == run[j];
        if touches_a || touches_b {
            // an edge leaving an endpoint: only a fold back along it is wrong
            let (shared, other) = if p == run[i] || p == run[j] {
                (p0, q0)
            } else {
                (q0, p0)
            };
            return endpoint_edge_ok((a, b), touches_a, touches_b, shared, other);
        }
        seg_seg_dist(a, b, p0, q0) >= CLEARANCE_M
    };
    // (obstacles in two sets, the fixed constraints and this boundary's own: a shortcut must
    // clear both, so the answer is that of one set)
    let clear = [&fixed.segs, segs].iter().all(|s| {
        s.grid.all(&eb, |id| {
            !s.visible(id as usize, key) || seg_clear(s.list[id as usize])
        })
    });
    if !clear {
        return false;
    }
    // the swept area holds no obstacle point
    let poly = &c[i..=j];
    let eb = padded_envelope(poly);
    let pt_clear = |(p, o): (Coord, Pt)| {
        if p.x < eb[0] || p.x > eb[2] || p.y < eb[1] || p.y > eb[3] {
            return true;
        }
        if at(&o).is_some() {
            return true;
        }
        if (p.x - a.x).abs() < 1e-9 && (p.y - a.y).abs() < 1e-9
            || (p.x - b.x).abs() < 1e-9 && (p.y - b.y).abs() < 1e-9
        {
            return true;
        }
        !(seg_point_dist(a, b, p) < CLEARANCE_M || inside(poly, p))
    };
    [&fixed.pts, pts].iter().all(|s| {
        s.grid.all(&eb, |id| {
            !s.visible(id as usize) || pt_clear(s.list[id as usize])
        })
    })
}

/// Inside the closed ring `r` (last point joins the first) by even–odd or by winding.
fn inside(r: &[Coord], p: Coord) -> bool {
    let n = r.len();
    let mut odd = false;
    let mut wind = 0i32;
    let mut j = n - 1;
    for i in 0..n {
        let (u, v) = (r[j], r[i]);
        if (u.y > p.y) != (v.y > p.y) {
            let x = (v.x - u.x) * (p.y - u.y) / (v.y - u.y) + u.x;
            if p.x < x {
                odd = !odd;
                wind += if v.y > u.y { 1 } else { -1 };
            }
        }
        j = i;
    }
    odd || wind != 0
}

fn seg_seg_dist(a: Coord, b: Coord, p: Coord, q: Coord) -> f64 {
    let orient =
        |u: Coord, v: Coord, w: Coord| (v.x - u.x) * (w.y - u.y) - (v.y - u.y) * (w.x - u.x);
    let (d1, d2) = (orient(a, b, p), orient(a, b, q));
    let (d3, d4) = (orient(p, q, a), orient(p, q, b));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return 0.0;
    }
    seg_point_dist(a, b, p)
        .min(seg_point_dist(a, b, q))
        .min(seg_point_dist(p, q, a))
        .min(seg_point_dist(p, q, b))
}

mod incremental;
pub use incremental::Straightener;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let c = |x, y| Coord { x, y };
        assert!((seg_point_dist(c(0.0, 0.0), c(10.0, 0.0), c(5.0, 3.0)) - 3.0).abs() < 1e-12);
        assert_eq!(
            seg_seg_dist(c(0.0, 0.0), c(10.0, 0.0), c(5.0, -1.0), c(5.0, 1.0)),
            0.0
        );
        assert!(
            (seg_seg_dist(c(0.0, 0.0), c(10.0, 0.0), c(12.0, 0.0), c(14.0, 5.0)) - 2.0).abs()
                < 1e-12
        );
    }

    #[test]
    fn inside_ring() {
        let r: Vec<Coord> = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
            .iter()
            .map(|&(x, y)| Coord { x, y })
            .collect();
        assert!(inside(&r, Coord { x: 1.0, y: 1.0 }));
        assert!(!inside(&r, Coord { x: 5.0, y: 1.0 }));
    }
}
