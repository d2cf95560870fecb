//! Self-intersection: where a polygon's rings cross or touch themselves.
//!
//! Rings of one polygon may touch at one shared vertex when neither crosses the other (a hole
//! touching its shell at one point, as OGC simple features, GEOS and PostGIS allow); a ring
//! touching itself, two rings meeting at two or more points (which cuts the interior in two),
//! a crossing, or an overlap is an intersection.

use super::*;

struct Seg {
    a: Coord,
    b: Coord,
    ring: usize,
    idx: usize,
    len: usize,
}

impl Seg {
    /// Index in its ring of the vertex `p` (an endpoint of this segment).
    fn vertex(&self, p: Coord) -> usize {
        if self.a == p {
            self.idx
        } else {
            (self.idx + 1) % self.len
        }
    }
}

/// Where two rings meet at one shared vertex: the rings and the vertex's index in each.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Touch {
    rings: (usize, usize),
    at: (usize, usize),
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

/// Neighbouring segments of one ring share an endpoint; they are wrong only if they fold back.
fn folds_back(si: &Seg, sj: &Seg) -> Option<Coord> {
    let (shared, p1, p2) = if si.b == sj.a {
        (si.b, si.a, sj.b)
    } else {
        (si.a, si.b, sj.a)
    };
    (orient(p1, shared, p2) == 0.0
        && (p1.x - shared.x) * (p2.x - shared.x) + (p1.y - shared.y) * (p2.y - shared.y) > 0.0)
        .then_some(shared)
}

/// Segments of two different rings that share exactly one endpoint and meet nowhere else.
fn endpoint_touch(si: &Seg, sj: &Seg) -> Option<Touch> {
    let shared = [si.a, si.b].into_iter().find(|&p| p == sj.a || p == sj.b)?;
    let (oi, oj) = (
        if si.a == shared { si.b } else { si.a },
        if sj.a == shared { sj.b } else { sj.a },
    );
    // Collinear and pointing the same way: the segments overlap beyond the shared point.
    if orient(shared, oi, oj) == 0.0
        && (oi.x - shared.x) * (oj.x - shared.x) + (oi.y - shared.y) * (oj.y - shared.y) > 0.0
    {
        return None;
    }
    let (first, second) = if si.ring < sj.ring {
        (si, sj)
    } else {
        (sj, si)
    };
    Some(Touch {
        rings: (first.ring, second.ring),
        at: (first.vertex(shared), second.vertex(shared)),
    })
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

/// Of the one-vertex touches between rings, the first that is not allowed: a pair of rings
/// meeting at two places, or one ring passing through the other at the shared vertex.
fn improper_touch(p: &Polygon, mut touches: Vec<Touch>) -> Option<Coord> {
    touches.sort_unstable();
    touches.dedup();
    let rings: Vec<&LineString> = std::iter::once(p.exterior()).chain(p.interiors()).collect();
    let mut last: Option<Touch> = None;
    for t in touches {
        let at = rings[t.rings.0].0[t.at.0];
        if last.is_some_and(|l| l.rings == t.rings) {
            return Some(at);
        }
        last = Some(t);
        if crosses_at(rings[t.rings.0], t.at.0, rings[t.rings.1], t.at.1) {
            return Some(at);
        }
    }
    None
}

/// The neighbours of vertex `k` in a closed ring of `ring.0.len() - 1` distinct positions.
fn neighbours(ring: &LineString, k: usize) -> (Coord, Coord) {
    let n = ring.0.len() - 1;
    (ring.0[(k + n - 1) % n], ring.0[(k + 1) % n])
}

/// True when ring `b` passes through ring `a` at their shared vertex: `b`'s two neighbours lie
/// on different sides of the wedge `a`'s two edges make there.
fn crosses_at(a: &LineString, ka: usize, b: &LineString, kb: usize) -> bool {
    let centre = a.0[ka];
    let angle = |q: Coord| (q.y - centre.y).atan2(q.x - centre.x);
    let (a0, a1) = neighbours(a, ka);
    let (b0, b1) = neighbours(b, kb);
    let (lo, hi) = {
        let (x, y) = (angle(a0), angle(a1));
        (x.min(y), x.max(y))
    };
    let inside = |q: Coord| {
        let t = angle(q);
        t > lo && t < hi
    };
    inside(b0) != inside(b1)
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
