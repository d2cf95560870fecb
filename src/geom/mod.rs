//! Geometry: CRSs, local frames, validation, interior points.

pub mod crs;
pub mod frame;
pub mod interior_point;
#[cfg(feature = "proj")]
pub mod proj_ffi;
pub mod validate;

use geo::Coord;

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
