//! A uniform grid of buckets for many small boxes (footprint edges, boundary steps, vertices)
//! in one community's metre frame.
//!
//! Built in two linear passes (count, then fill a compressed row array), it replaces an R-tree
//! where the items are short, evenly spread and queried by small boxes: bulk-loading an R-tree
//! of 130,000 segments took most of the straightening time. Items added later go to a small
//! side table. A query visits every item whose box shares a cell with the query box; an item
//! spanning several cells may be visited more than once, so callers must not count visits.

use crate::geom::{floor_i64, seg_point_dist2};
use geo::Coord;
use rustc_hash::FxHashMap as HashMap;

/// Axis-aligned box: `[min_x, min_y, max_x, max_y]`.
pub type Box2 = [f64; 4];

/// Uniform grid over the boxes it was built from.
pub struct Buckets {
    x0: f64,
    y0: f64,
    inv: f64,
    nx: usize,
    ny: usize,
    start: Vec<u32>,
    ids: Vec<u32>,
    extra: HashMap<usize, Vec<u32>>,
}

impl Buckets {
    /// Index `boxes` (item `i` is `boxes[i]`), with cells sized so that there are about as many
    /// cells as items.
    #[must_use]
    pub fn new(boxes: &[Box2]) -> Self {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for b in boxes {
            x0 = x0.min(b[0]);
            y0 = y0.min(b[1]);
            x1 = x1.max(b[2]);
            y1 = y1.max(b[3]);
        }
        if boxes.is_empty() {
            (x0, y0, x1, y1) = (0.0, 0.0, 1.0, 1.0);
        }
        let (w, h) = ((x1 - x0).max(1e-6), (y1 - y0).max(1e-6));
        let cell = ((w * h / boxes.len().max(1) as f64).sqrt()).max(0.5);
        let nx = ((w / cell).ceil() as usize).clamp(1, 4096);
        let ny = ((h / cell).ceil() as usize).clamp(1, 4096);
        let inv = (nx as f64 / w).min(ny as f64 / h);
        let mut g = Buckets {
            x0,
            y0,
            inv,
            nx,
            ny,
            start: vec![0; nx * ny + 1],
            ids: Vec::new(),
            extra: HashMap::default(),
        };
        for b in boxes {
            let (cx0, cy0, cx1, cy1) = g.cells(b);
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    g.start[cy * nx + cx + 1] += 1;
                }
            }
        }
        for k in 1..g.start.len() {
            g.start[k] += g.start[k - 1];
        }
        let mut fill = g.start.clone();
        g.ids = vec![0; g.start[nx * ny] as usize];
        for (i, b) in boxes.iter().enumerate() {
            let (cx0, cy0, cx1, cy1) = g.cells(b);
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    let c = cy * nx + cx;
                    g.ids[fill[c] as usize] = i as u32;
                    fill[c] += 1;
                }
            }
        }
        g
    }

    fn cells(&self, b: &Box2) -> (usize, usize, usize, usize) {
        let cx = |x: f64| (floor_i64((x - self.x0) * self.inv).max(0) as usize).min(self.nx - 1);
        let cy = |y: f64| (floor_i64((y - self.y0) * self.inv).max(0) as usize).min(self.ny - 1);
        (cx(b[0]), cy(b[1]), cx(b[2]), cy(b[3]))
    }

    /// Add item `id` with box `b` after building.
    pub fn insert(&mut self, id: u32, b: &Box2) {
        let (cx0, cy0, cx1, cy1) = self.cells(b);
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                self.extra.entry(cy * self.nx + cx).or_default().push(id);
            }
        }
    }

    /// Call `f` on every item that may meet box `b` until it returns false; true when it never
    /// did.
    pub fn all(&self, b: &Box2, mut f: impl FnMut(u32) -> bool) -> bool {
        let (cx0, cy0, cx1, cy1) = self.cells(b);
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                let c = cy * self.nx + cx;
                for &id in &self.ids[self.start[c] as usize..self.start[c + 1] as usize] {
                    if !f(id) {
                        return false;
                    }
                }
                if let Some(more) = self.extra.get(&c) {
                    for &id in more {
                        if !f(id) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

/// Segments, asked whether any lies within a distance of a point.
pub struct SegIndex {
    segs: Vec<(Coord, Coord)>,
    grid: Buckets,
}

impl SegIndex {
    #[must_use]
    pub fn new(segs: impl Iterator<Item = (Coord, Coord)>) -> Self {
        let segs: Vec<(Coord, Coord)> = segs.collect();
        let boxes: Vec<Box2> = segs
            .iter()
            .map(|(a, b)| [a.x.min(b.x), a.y.min(b.y), a.x.max(b.x), a.y.max(b.y)])
            .collect();
        SegIndex {
            grid: Buckets::new(&boxes),
            segs,
        }
    }

    /// Is some segment within `d` of `p` (distance ≤ d)?
    #[must_use]
    pub fn near(&self, p: Coord, d: f64) -> bool {
        if self.segs.is_empty() {
            return false;
        }
        let d2 = d * d;
        !self.grid.all(&[p.x - d, p.y - d, p.x + d, p.y + d], |i| {
            let (a, b) = self.segs[i as usize];
            seg_point_dist2(a, b, p) > d2
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_box_that_meets_the_query() {
        // a 30 × 30 lattice of small boxes, plus long ones spanning many cells
        let mut boxes: Vec<Box2> = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                let (x, y) = (f64::from(i) * 3.0, f64::from(j) * 3.0);
                boxes.push([x, y, x + 1.0, y + 1.0]);
            }
        }
        boxes.push([0.0, 45.0, 90.0, 45.5]);
        let mut g = Buckets::new(&boxes);
        g.insert(9999, &[10.0, 10.0, 11.0, 11.0]);
        let meets =
            |a: &Box2, b: &Box2| a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
        for q in [
            [4.5, 4.5, 9.2, 6.1],
            [-5.0, -5.0, 0.5, 0.5],
            [88.0, 44.0, 200.0, 46.0],
            [10.5, 10.5, 10.6, 10.6],
        ] {
            let mut seen = std::collections::BTreeSet::new();
            assert!(g.all(&q, |id| {
                seen.insert(id);
                true
            }));
            for (i, b) in boxes.iter().enumerate() {
                if meets(b, &q) {
                    assert!(seen.contains(&(i as u32)), "box {i} missed by {q:?}");
                }
            }
            assert_eq!(seen.contains(&9999), meets(&[10.0, 10.0, 11.0, 11.0], &q));
        }
        // segments near a point
        let c = |x, y| Coord { x, y };
        let si = SegIndex::new(
            [(c(0.0, 0.0), c(100.0, 0.0)), (c(50.0, 10.0), c(50.0, 30.0))].into_iter(),
        );
        assert!(si.near(c(70.0, 0.5), 0.5));
        assert!(!si.near(c(70.0, 0.6), 0.5));
        assert!(si.near(c(49.0, 20.0), 1.0));
        assert!(!si.near(c(49.0, 5.0), 1.0));
        assert!(!SegIndex::new(std::iter::empty()).near(c(0.0, 0.0), 10.0));
        // early stop
        let mut n = 0;
        assert!(!g.all(&[0.0, 0.0, 90.0, 90.0], |_| {
            n += 1;
            n < 5
        }));
        assert_eq!(n, 5);
    }
}
