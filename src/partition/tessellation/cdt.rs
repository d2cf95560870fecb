//! Insertion into spade's constrained Delaunay triangulation: points with their original
//! WGS84 coordinates, densified rings and polylines as constraints, and the rings of given
//! polygons snapped onto what is already in place.
//!
//! spade asserts on some near-degenerate constraint crossings. Those panics are caught where
//! they happen ([`guarded`]) and counted; the library installs no panic hook. A program that
//! wants them silent asks [`catching_panics`] in its own hook (the `wangge` binary does).

use super::noding::RingPoints;
use super::prims::{dist, lerp, near};
use super::{ALONG_M, SNAP_CELL_M, SNAP_M, TessellationError};
use crate::geom::floor_i64;
use crate::partition::buckets::SegIndex;
use geo::Coord;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use spade::handles::FixedVertexHandle;
use spade::{ConstrainedDelaunayTriangulation, Point2, Triangulation};

thread_local! {
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while this thread runs triangulation code whose panics are caught and handled, so a
/// panic hook may stay silent about them.
#[must_use]
pub fn catching_panics() -> bool {
    CATCHING.with(std::cell::Cell::get)
}

/// Run `f`, catching a panic (`None`).
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let was = CATCHING.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    r.ok()
}

/// The triangulation under construction.
pub(super) struct Builder {
    pub(super) cdt: ConstrainedDelaunayTriangulation<Point2<f64>>,
    /// Original WGS84 coordinate by vertex index.
    pub(super) orig: HashMap<usize, Coord>,
    /// Whether a vertex was only added to densify a straight edge.
    pub(super) steiner: HashMap<usize, bool>,
    /// Constraint pieces spade could not insert (near-degenerate crossings); skipped.
    pub(super) skipped: usize,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            cdt: ConstrainedDelaunayTriangulation::new(),
            orig: HashMap::default(),
            steiner: HashMap::default(),
            skipped: 0,
        }
    }

    pub(super) fn insert(
        &mut self,
        p: Coord,
        orig: Option<Coord>,
        steiner: bool,
    ) -> Result<FixedVertexHandle, TessellationError> {
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
    pub(super) fn constraint(&mut self, a: FixedVertexHandle, b: FixedVertexHandle) {
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
    pub(super) fn ring(
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

    /// Insert a polyline (rings arrive closed: last point = first) as constraints, with no
    /// original coordinates.
    pub(super) fn polyline(&mut self, pts: &[Coord]) -> Result<(), TessellationError> {
        if pts.len() < 2 {
            return Ok(());
        }
        let mut prev = self.insert(pts[0], None, false)?;
        for &b in &pts[1..] {
            let h = self.insert(b, None, false)?;
            if h != prev {
                self.constraint(prev, h);
            }
            prev = h;
        }
        Ok(())
    }

    /// Insert the rings of given polygons (the grids kept by a rebalance, locked grids). They
    /// were drawn on an earlier tessellation of the same layers, so their points come back as
    /// the same constructions rounded through WGS84: each point within [`SNAP_M`] of a vertex
    /// already in place is that vertex, edges that run along the community edge are left to
    /// it, and an edge shared by two rings goes in once. Otherwise near-coincident copies of
    /// one line leave zero-width slivers that a free grid would run into.
    pub(super) fn given_rings(
        &mut self,
        rings: &[RingPoints],
        community: &SegIndex,
    ) -> Result<(), TessellationError> {
        let cell = |p: Coord| (floor_i64(p.x / SNAP_CELL_M), floor_i64(p.y / SNAP_CELL_M));
        let mut grid: HashMap<(i64, i64), Vec<(Coord, FixedVertexHandle)>> = HashMap::default();
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
            let mut prev: Option<FixedVertexHandle> = None;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_none_and_the_flag_is_restored() {
        assert!(!catching_panics());
        let r: Option<()> = guarded(|| {
            assert!(catching_panics());
            let inner = guarded(|| 1);
            assert_eq!(inner, Some(1));
            assert!(catching_panics(), "an inner guard keeps the outer one");
            panic!("spade-like assertion");
        });
        assert!(r.is_none());
        assert!(!catching_panics());
    }

    #[test]
    fn a_densified_ring_keeps_original_coordinates_at_its_corners() {
        let mut b = Builder::new();
        let c = |x: f64, y: f64| Coord { x, y };
        let pts = [c(0.0, 0.0), c(10.0, 0.0), c(10.0, 10.0), c(0.0, 0.0)];
        let orig = [
            Some(c(1.0, 1.0)),
            Some(c(2.0, 2.0)),
            None,
            Some(c(1.0, 1.0)),
        ];
        b.ring(&pts, &orig, 4.0).unwrap();
        // 10 m edges split in 3, the diagonal (14.1 m) in 4: 3 corners + 2 + 2 + 3 steiner points
        assert_eq!(b.cdt.num_vertices(), 10);
        assert_eq!(b.orig.len(), 2);
        assert_eq!(b.steiner.values().filter(|&&s| s).count(), 7);
        assert_eq!(b.skipped, 0);
        assert_eq!(b.cdt.num_constraints(), 10);
    }
}
