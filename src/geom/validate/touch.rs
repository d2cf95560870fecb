//! Rings of one polygon meeting at one shared vertex: allowed when neither crosses the other and
//! no two rings meet twice (OGC simple features).

use super::*;

/// Where two rings meet at one shared vertex: the rings and the vertex's index in each.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Touch {
    rings: (usize, usize),
    at: (usize, usize),
}

/// Segments of two different rings that share exactly one endpoint and meet nowhere else.
pub(crate) fn endpoint_touch(si: &Seg, sj: &Seg) -> Option<Touch> {
    let shared = [si.a, si.b].into_iter().find(|&p| p == sj.a || p == sj.b)?;
    let (oi, oj) = (
        if si.a == shared { si.b } else { si.a },
        if sj.a == shared { sj.b } else { sj.a },
    );
    // Collinear and pointing the same way: the segments overlap beyond the shared point.
    if same_way(shared, oi, oj) {
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

/// Of the one-vertex touches between rings, the first that is not allowed: a pair of rings
/// meeting at two places, or one ring passing through the other at the shared vertex.
pub(crate) fn improper_touch(p: &Polygon, mut touches: Vec<Touch>) -> Option<Coord> {
    if touches.is_empty() {
        return None;
    }
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
