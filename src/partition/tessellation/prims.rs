//! Small planar helpers of the tessellation: points, segments, triangles and an even-odd
//! ring index. Coordinates are the community frame's metres.

use crate::geom::floor_i64;
use crate::partition::buckets::SegIndex;
use geo::Coord;

/// A bucket index over segments.
pub(super) fn seg_tree(segs: impl Iterator<Item = (Coord, Coord)>) -> SegIndex {
    SegIndex::new(segs)
}

/// True when a segment of `tree` lies within `d` of `p`.
pub(super) fn near(tree: &SegIndex, p: Coord, d: f64) -> bool {
    tree.near(p, d)
}

pub(super) fn lerp(a: Coord, b: Coord, t: f64) -> Coord {
    Coord {
        x: a.x + (b.x - a.x) * t,
        y: a.y + (b.y - a.y) * t,
    }
}

/// Proper crossing of segments ab and pq: parameters (t on ab, u on pq), both strictly inside.
pub(super) fn seg_intersection(a: Coord, b: Coord, p: Coord, q: Coord) -> Option<(f64, f64)> {
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
pub(super) fn project_within(e: Coord, p: Coord, q: Coord, tol: f64) -> Option<f64> {
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
pub(super) struct RingIndex {
    y0: f64,
    h: f64,
    bins: Vec<Vec<(Coord, Coord)>>,
}

impl RingIndex {
    pub(super) fn new(segs: &[(Coord, Coord)]) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (a, b) in segs {
            lo = lo.min(a.y.min(b.y));
            hi = hi.max(a.y.max(b.y));
        }
        let nb = (segs.len() / 4).clamp(1, 4096);
        let h = ((hi - lo) / nb as f64).max(1e-9);
        let mut bins = vec![Vec::new(); nb];
        for &(a, b) in segs {
            let i0 = (floor_i64((a.y.min(b.y) - lo) / h).max(0) as usize).min(nb - 1);
            let i1 = (floor_i64((a.y.max(b.y) - lo) / h).max(0) as usize).min(nb - 1);
            for bin in &mut bins[i0..=i1] {
                bin.push((a, b));
            }
        }
        RingIndex { y0: lo, h, bins }
    }

    pub(super) fn contains(&self, p: Coord) -> bool {
        if p.y.is_nan() || p.y < self.y0 {
            return false;
        }
        let i = floor_i64((p.y - self.y0) / self.h).max(0) as usize;
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

/// Signed area of triangle abc (positive counter-clockwise).
pub(super) fn tri_area(a: Coord, b: Coord, c: Coord) -> f64 {
    ((b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)) / 2.0
}

pub(super) fn dist(a: Coord, b: Coord) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

pub(super) fn mid(a: Coord, b: Coord) -> Coord {
    Coord {
        x: (a.x + b.x) / 2.0,
        y: (a.y + b.y) / 2.0,
    }
}

/// Root of `x` in a union-find forest, halving the path on the way.
pub(super) fn find<T: Copy + PartialEq + TryInto<usize>>(p: &mut [T], mut x: T) -> T {
    let ix = |v: T| v.try_into().unwrap_or(usize::MAX);
    while p[ix(x)] != x {
        p[ix(x)] = p[ix(p[ix(x)])];
        x = p[ix(x)];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64, y: f64) -> Coord {
        Coord { x, y }
    }

    #[test]
    fn crossing_segments_meet_inside_both() {
        let (t, u) = seg_intersection(c(0.0, 0.0), c(2.0, 0.0), c(1.0, -1.0), c(1.0, 3.0)).unwrap();
        assert!((t - 0.5).abs() < 1e-12 && (u - 0.25).abs() < 1e-12);
        // touching at an end is not a proper crossing; parallel lines never cross
        assert!(seg_intersection(c(0.0, 0.0), c(1.0, 0.0), c(1.0, 0.0), c(1.0, 1.0)).is_none());
        assert!(seg_intersection(c(0.0, 0.0), c(1.0, 0.0), c(0.0, 1.0), c(1.0, 1.0)).is_none());
    }

    #[test]
    fn a_point_projects_within_tolerance_only() {
        let (p, q) = (c(0.0, 0.0), c(10.0, 0.0));
        assert_eq!(project_within(c(4.0, 0.3), p, q, 0.5), Some(0.4));
        assert_eq!(project_within(c(4.0, 0.6), p, q, 0.5), None);
        assert_eq!(project_within(c(-1.0, 0.0), p, q, 0.5), None);
    }

    #[test]
    fn ring_index_is_even_odd() {
        let sq = |a: f64, b: f64| {
            vec![
                (c(a, a), c(b, a)),
                (c(b, a), c(b, b)),
                (c(b, b), c(a, b)),
                (c(a, b), c(a, a)),
            ]
        };
        let mut segs = sq(0.0, 10.0);
        segs.extend(sq(4.0, 6.0)); // a hole
        let ix = RingIndex::new(&segs);
        assert!(ix.contains(c(1.0, 1.0)));
        assert!(!ix.contains(c(5.0, 5.0)));
        assert!(!ix.contains(c(11.0, 5.0)));
        assert!(!ix.contains(c(5.0, f64::NAN)));
    }

    #[test]
    fn union_find_roots() {
        let mut p: Vec<u32> = vec![0, 0, 1, 3];
        assert_eq!(find(&mut p, 2u32), 0);
        assert_eq!(p[2], 0, "path halved");
        assert_eq!(find(&mut p, 3u32), 3);
        let mut q: Vec<usize> = vec![1, 1];
        assert_eq!(find(&mut q, 0usize), 1);
    }

    #[test]
    fn triangle_area_is_signed() {
        assert_eq!(tri_area(c(0.0, 0.0), c(2.0, 0.0), c(0.0, 2.0)), 2.0);
        assert_eq!(tri_area(c(0.0, 0.0), c(0.0, 2.0), c(2.0, 0.0)), -2.0);
        assert_eq!(dist(c(0.0, 0.0), c(3.0, 4.0)), 5.0);
        assert_eq!(mid(c(0.0, 0.0), c(2.0, 4.0)), c(1.0, 2.0));
    }
}
