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

/// `x.floor() as i64` without the floating-point rounding call: the build targets baseline
/// x86-64, where `f64::floor` is a software routine (3 % of a Manhattan regrid's instructions,
/// spent on grid-cell indices). Same value for every input, NaN (0) and the saturated ends
/// included.
#[must_use]
#[inline]
pub fn floor_i64(x: f64) -> i64 {
    // truncation toward zero, then one down for negative non-integers
    let t = x as i64;
    if (t as f64) > x {
        t.saturating_sub(1)
    } else {
        t
    }
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

#[cfg(test)]
mod tests {
    use super::floor_i64;

    #[test]
    fn floor_i64_is_floor_cast_everywhere() {
        let edge = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            -1.0000000000000002,
            2.9999999999999996,
            -2.9999999999999996,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            9.223_372_036_854_775e18,
            -9.223_372_036_854_775e18,
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        // and a sweep of ordinary cell coordinates on both sides of zero
        let sweep = (-20_000..20_000).map(|i| f64::from(i) * 0.037_5 + 1e-9 * f64::from(i % 7));
        for x in edge.into_iter().chain(sweep) {
            assert_eq!(floor_i64(x), x.floor() as i64, "x = {x:e}");
        }
    }
}
