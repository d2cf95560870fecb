//! Self-intersection: where a polygon's rings cross or touch themselves.
//!
//! Rings of one polygon may touch at one shared vertex when neither crosses the other (a hole
//! touching its shell at one point, as OGC simple features, GEOS and PostGIS allow); a ring
//! touching itself, two rings meeting at two or more points (which cuts the interior in two),
//! a crossing, or an overlap is an intersection.

use super::touch::*;
use super::*;

pub(crate) struct Seg {
    pub(crate) a: Coord,
    pub(crate) b: Coord,
    pub(crate) ring: usize,
    pub(crate) idx: usize,
    pub(crate) len: usize,
}

impl Seg {
    /// Index in its ring of the vertex `p` (an endpoint of this segment).
    pub(crate) fn vertex(&self, p: Coord) -> usize {
        if self.a == p {
            self.idx
        } else {
            (self.idx + 1) % self.len
        }
    }
}

fn segments_of(p: &Polygon) -> Vec<Seg> {
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
    segs
}

/// True when `p` and `q` lie on one ray from `shared` (segments from `shared` to them overlap).
pub(crate) fn same_way(shared: Coord, p: Coord, q: Coord) -> bool {
    orient(p, shared, q) == 0.0
        && (p.x - shared.x) * (q.x - shared.x) + (p.y - shared.y) * (q.y - shared.y) > 0.0
}

/// Neighbouring segments of one ring share an endpoint; they are wrong only if they fold back.
fn folds_back(si: &Seg, sj: &Seg) -> Option<Coord> {
    let (shared, p1, p2) = if si.b == sj.a {
        (si.b, si.a, sj.b)
    } else {
        (si.a, si.b, sj.a)
    };
    same_way(shared, p1, p2).then_some(shared)
}

/// The first place where the rings of a polygon cross or touch improperly, if any.
/// Segments are swept in x order, so large rings cost O(n log n + k).
#[must_use]
pub fn find_self_intersection(p: &Polygon) -> Option<Coord> {
    let mut segs = segments_of(p);
    segs.sort_by(|s, t| s.a.x.min(s.b.x).total_cmp(&t.a.x.min(t.b.x)));
    let mut active: Vec<usize> = Vec::new();
    let mut touches = Vec::new();
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
                if let Some(at) = folds_back(si, sj) {
                    return Some(at);
                }
                continue;
            }
            if segments_meet(si.a, si.b, sj.a, sj.b) {
                match (si.ring != sj.ring)
                    .then(|| endpoint_touch(si, sj))
                    .flatten()
                {
                    Some(t) => touches.push(t),
                    None => return Some(sj.a),
                }
            }
        }
        active.push(j);
    }
    improper_touch(p, touches)
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
