//! A point guaranteed inside a polygon, computed exactly as GEOS (and so shapely's
//! `representative_point`, PostGIS `ST_PointOnSurface`) does: a horizontal scan line at a
//! y that avoids vertices, and the midpoint of its widest interior section.
//!
//! Matching GEOS matters: a building that straddles a community boundary belongs to the
//! community holding this point (DOMAIN rule), and independent checkers use GEOS.

use geo::{Coord, LineString, MultiPolygon, Polygon};

/// The interior point of a polygon and the width of the section it sits in.
fn polygon_interior(p: &Polygon) -> Option<(Coord, f64)> {
    let shell = p.exterior();
    if shell.0.is_empty() {
        return None;
    }
    let (mut miny, mut maxy) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in &shell.0 {
        miny = miny.min(c.y);
        maxy = maxy.max(c.y);
    }
    let centre = (miny + maxy) / 2.0;
    let (mut lo, mut hi) = (miny, maxy);
    for ring in std::iter::once(shell).chain(p.interiors()) {
        for c in &ring.0 {
            if c.y <= centre {
                if c.y > lo {
                    lo = c.y;
                }
            } else if c.y < hi {
                hi = c.y;
            }
        }
    }
    let scan_y = (hi + lo) / 2.0;
    let mut crossings: Vec<f64> = Vec::new();
    for ring in std::iter::once(shell).chain(p.interiors()) {
        scan_ring(ring, scan_y, &mut crossings);
    }
    let mut best = shell.0[0];
    let mut width = 0.0;
    if crossings.is_empty() {
        return Some((best, width));
    }
    crossings.sort_by(f64::total_cmp);
    let mut i = 0;
    while i + 1 < crossings.len() {
        let (x1, x2) = (crossings[i], crossings[i + 1]);
        if x2 - x1 > width {
            width = x2 - x1;
            best = Coord {
                x: (x1 + x2) / 2.0,
                y: scan_y,
            };
        }
        i += 2;
    }
    Some((best, width))
}

fn scan_ring(ring: &LineString, y: f64, out: &mut Vec<f64>) {
    let (mut miny, mut maxy) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in &ring.0 {
        miny = miny.min(c.y);
        maxy = maxy.max(c.y);
    }
    if !(y >= miny && y <= maxy) {
        return;
    }
    for w in ring.0.windows(2) {
        let (p0, p1) = (w[0], w[1]);
        if (p0.y > y && p1.y > y) || (p0.y < y && p1.y < y) {
            continue;
        }
        if p0.y == p1.y {
            continue;
        }
        if (p0.y == y && p1.y < y) || (p1.y == y && p0.y < y) {
            continue;
        }
        let x = if p0.x == p1.x {
            p0.x
        } else {
            let m = (p1.y - p0.y) / (p1.x - p0.x);
            p0.x + (y - p0.y) / m
        };
        out.push(x);
    }
}

/// GEOS-compatible interior point of a multipolygon (the part with the widest section wins).
#[must_use]
pub fn interior_point(mp: &MultiPolygon) -> Option<Coord> {
    let mut best: Option<(Coord, f64)> = None;
    for p in &mp.0 {
        if let Some((c, w)) = polygon_interior(p)
            && best.is_none_or(|(_, bw)| w > bw)
        {
            best = Some((c, w));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, Point, polygon};

    #[test]
    fn l_shape_point_is_inside() {
        let p = polygon![(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 1.0), (x: 1.0, y: 1.0),
            (x: 1.0, y: 10.0), (x: 0.0, y: 10.0), (x: 0.0, y: 0.0)];
        let c = interior_point(&MultiPolygon(vec![p.clone()])).unwrap();
        assert!(p.contains(&Point(c)));
    }

    #[test]
    fn square_point_matches_geos() {
        // GEOS gives POINT (1 1) for this square: scan line at y = 1, section 0..2.
        let p = polygon![(x: 0.0, y: 0.0), (x: 2.0, y: 0.0), (x: 2.0, y: 2.0), (x: 0.0, y: 2.0), (x: 0.0, y: 0.0)];
        assert_eq!(
            interior_point(&MultiPolygon(vec![p])).unwrap(),
            Coord { x: 1.0, y: 1.0 }
        );
    }
}
