//! Geometry: CRSs, local frames, validation, interior points.

pub mod crs;
pub mod frame;
pub mod interior_point;
#[cfg(feature = "proj")]
pub mod proj_ffi;
pub mod snap;
pub mod validate;

use geo::{Coord, Polygon};

/// True when a coordinate lies beyond ±180° longitude or ±90° latitude (the one test every
/// reader of degrees applies; non-finite values are refused before it).
#[must_use]
pub fn beyond_lonlat(c: Coord) -> bool {
    c.x.abs() > 180.0 || c.y.abs() > 90.0
}

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

/// The part of segment a–b inside the box [x0, y0, x1, y1] (Liang–Barsky); None when it lies
/// outside. Used by the tile encoder (lines cut to the tile and its buffer) and by printed maps
/// (road names kept inside the frame).
#[must_use]
pub fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    bx: [f64; 4],
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - bx[0]),
        (dx, bx[2] - a.0),
        (-dy, a.1 - bx[1]),
        (dy, bx[3] - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}
