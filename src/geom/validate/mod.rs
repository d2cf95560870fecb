//! Validation and safe repair of input polygons.
//!
//! Checked: finite coordinates (and within ±180/±90 for geographic CRSs), rings of at least
//! four positions, closed rings (an open ring is closed), no repeated consecutive points,
//! non-zero area, no self-intersection. A self-intersecting polygon is repaired (resolved into
//! simple parts by a boolean union) only when the repair keeps its area within 1 %; otherwise it
//! is rejected, naming the feature.

use geo::{Area, BooleanOps, Coord, LineString, MultiPolygon, Polygon, Validation};

/// What is wrong with a polygon.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonProblem {
    #[error("coordinate {0} is not a finite number")]
    NotFinite(usize),
    #[error(
        "coordinate ({x}, {y}) is out of range for longitude/latitude (expected -180..180, -90..90)"
    )]
    OutOfRange { x: f64, y: f64 },
    #[error("a ring has {0} distinct positions; a polygon ring needs at least 3")]
    TooFewPoints(usize),
    #[error("the polygon has zero area")]
    ZeroArea,
    #[error(
        "the polygon intersects itself near ({x:.7}, {y:.7}) and cannot be repaired safely (repair would change its area by {change_pct:.1}%)"
    )]
    SelfIntersection { x: f64, y: f64, change_pct: f64 },
    /// A hole that is not inside its shell, or holes that overlap (found by `geo`'s
    /// `Validation`, run on polygons with holes only: it is 1.9× slower than the check above).
    #[error("the polygon's holes are not valid: {0}")]
    Holes(String),
}

/// Outcome of validating one polygon.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The polygon, possibly repaired.
    pub geometry: MultiPolygon,
    /// True when a self-intersection was repaired.
    pub repaired: bool,
}

/// Clean a ring: check values, drop repeated points, close it.
///
/// # Errors
/// A [`PolygonProblem`] for non-finite or out-of-range values or too few points.
pub fn clean_ring(ring: &LineString, geographic: bool) -> Result<LineString, PolygonProblem> {
    let mut out: Vec<Coord> = Vec::with_capacity(ring.0.len() + 1);
    for (i, c) in ring.0.iter().enumerate() {
        if !c.x.is_finite() || !c.y.is_finite() {
            return Err(PolygonProblem::NotFinite(i));
        }
        if geographic && super::beyond_lonlat(*c) {
            return Err(PolygonProblem::OutOfRange { x: c.x, y: c.y });
        }
        if out.last() != Some(c) {
            out.push(*c);
        }
    }
    if out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    if out.len() < 3 {
        return Err(PolygonProblem::TooFewPoints(out.len()));
    }
    out.push(out[0]);
    Ok(LineString(out))
}

fn orient(a: Coord, b: Coord, c: Coord) -> f64 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

fn on_segment(a: Coord, b: Coord, p: Coord) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// True when segments `ab` and `cd` intersect (including touching and collinear overlap).
fn segments_meet(a: Coord, b: Coord, c: Coord, d: Coord) -> bool {
    let (d1, d2, d3, d4) = (
        orient(c, d, a),
        orient(c, d, b),
        orient(a, b, c),
        orient(a, b, d),
    );
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(c, d, a))
        || (d2 == 0.0 && on_segment(c, d, b))
        || (d3 == 0.0 && on_segment(a, b, c))
        || (d4 == 0.0 && on_segment(a, b, d))
}

mod intersect;
mod touch;
pub use intersect::*;

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn bowtie_is_rejected() {
        let p = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 1.0), (x: 1.0, y: 0.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)];
        assert!(matches!(
            check_polygon(&p, true),
            Err(PolygonProblem::SelfIntersection { .. })
        ));
    }

    #[test]
    fn square_is_fine_and_spike_is_repaired() {
        let sq = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.0, y: 1.0)];
        assert!(!check_polygon(&sq, true).unwrap().repaired);
        // a zero-width spike going back on itself
        let spike = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.5, y: 1.0),
            (x: 0.5, y: 1.5), (x: 0.5, y: 1.0), (x: 0.0, y: 1.0)];
        let c = check_polygon(&spike, true).unwrap();
        assert!(c.repaired);
        assert!((c.geometry.unsigned_area() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_hole_outside_its_shell_is_named() {
        let shell = LineString::from(vec![
            (0.0, 0.0),
            (0.001, 0.0),
            (0.001, 0.001),
            (0.0, 0.001),
            (0.0, 0.0),
        ]);
        let inside = LineString::from(vec![
            (0.0002, 0.0002),
            (0.0004, 0.0002),
            (0.0004, 0.0004),
            (0.0002, 0.0002),
        ]);
        let outside = LineString::from(vec![
            (0.002, 0.002),
            (0.003, 0.002),
            (0.003, 0.003),
            (0.002, 0.002),
        ]);
        assert!(check_polygon(&Polygon::new(shell.clone(), vec![inside]), true).is_ok());
        let e = check_polygon(&Polygon::new(shell, vec![outside]), true).unwrap_err();
        assert!(matches!(e, PolygonProblem::Holes(_)), "{e}");
        assert!(e.to_string().contains("holes are not valid"), "{e}");
    }

    fn ring(points: &[(f64, f64)]) -> LineString {
        let mut v = points.to_vec();
        v.push(points[0]);
        LineString::from(v)
    }

    #[test]
    fn a_hole_may_touch_its_shell_at_one_vertex_but_not_cross_it() {
        let shell = ring(&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (2.0, 4.0), (0.0, 4.0)]);
        // touches the shell at (2, 4) only: valid in OGC simple features
        let touching = ring(&[(2.0, 4.0), (1.0, 2.0), (3.0, 2.0)]);
        let one = Polygon::new(shell.clone(), vec![touching]);
        assert!(find_self_intersection(&one).is_none());
        assert!(check_polygon(&one, false).is_ok());
        // touches at two vertices: the interior is cut in two
        let shell2 = ring(&[
            (0.0, 0.0),
            (2.0, 0.0),
            (4.0, 0.0),
            (4.0, 4.0),
            (2.0, 4.0),
            (0.0, 4.0),
        ]);
        let twice = ring(&[(2.0, 4.0), (1.0, 2.0), (2.0, 0.0), (3.0, 2.0)]);
        assert!(find_self_intersection(&Polygon::new(shell2, vec![twice])).is_some());
        // shares a vertex with the shell but passes through it to the outside
        let through = ring(&[(2.0, 4.0), (1.0, 2.0), (3.0, 5.0)]);
        assert!(find_self_intersection(&Polygon::new(shell.clone(), vec![through])).is_some());
        // a ring touching itself is still wrong
        let pinched = ring(&[
            (0.0, 0.0),
            (2.0, 2.0),
            (4.0, 0.0),
            (4.0, 4.0),
            (2.0, 2.0),
            (0.0, 4.0),
        ]);
        assert!(find_self_intersection(&Polygon::new(pinched, vec![])).is_some());
    }

    #[test]
    fn out_of_range() {
        let p = polygon![(x: 0.0, y: 0.0), (x: 200.0, y: 0.0), (x: 1.0, y: 1.0)];
        assert!(matches!(
            check_polygon(&p, true),
            Err(PolygonProblem::OutOfRange { .. })
        ));
        assert!(check_polygon(&p, false).is_ok());
    }
}
