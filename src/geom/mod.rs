//! Geometry: CRSs, local frames, validation, interior points.

pub mod crs;
pub mod frame;
pub mod interior_point;
#[cfg(feature = "proj")]
pub mod proj_ffi;
pub mod snap;
pub mod validate;

use geo::{Coord, Polygon};

/// Squared distance from `p` to the segment a–b (metres² in a local frame).
#[must_use]
pub fn seg_point_dist2(a: Coord, b: Coord, p: Coord) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let l2 = dx * dx + dy * dy;
    let t = if l2 > 0.0 {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (a.x + t * dx - p.x, a.y + t * dy - p.y);
    ex * ex + ey * ey
}

/// Distance from `p` to the segment a–b (metres in a local frame).
#[must_use]
pub fn seg_point_dist(a: Coord, b: Coord, p: Coord) -> f64 {
    seg_point_dist2(a, b, p).sqrt()
}

/// Point in polygons (with holes), even–odd over all rings: for a multipolygon's parts, or a
/// building's footprints.
#[must_use]
pub fn point_in_polygons(polys: &[Polygon], p: Coord) -> bool {
    let mut inside = false;
    for poly in polys {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            let pts = &ring.0;
            let n = pts.len();
            if n < 2 {
                continue;
            }
            let mut j = n - 1;
            for i in 0..n {
                let (a, b) = (pts[i], pts[j]);
                if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x
                {
                    inside = !inside;
                }
                j = i;
            }
        }
    }
    inside
}
