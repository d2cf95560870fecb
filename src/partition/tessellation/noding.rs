//! Phase 1: the community boundary, the rings of given polygons and the block-cutting roads,
//! noded against each other before anything is triangulated.
//!
//! Roads are deduplicated, cut where they cross the community boundary, and only their inside
//! pieces kept. Crossing points (and road ends that stop on the boundary) are added to the
//! rings as vertices, so no road constraint ever crosses or grazes a boundary constraint.

use super::cdt::Builder;
use super::prims::{RingIndex, dist, lerp, mid, near, project_within, seg_intersection, seg_tree};
use super::{FixedRegion, TessellationError};
use crate::partition::buckets::SegIndex;
use geo::{Coord, LineString, Polygon};
use rstar::AABB;

/// A ring's points in metres with their original WGS84 coordinates (`None` for points made
/// here).
pub(super) type RingPoints = (Vec<Coord>, Vec<Option<Coord>>);

/// A point added to ring `.0`'s segment at parameter `.1`: (segment, parameter, point).
type RingCut = (usize, f64, Coord);

/// The rings of one community part and of the given polygons in it, with their indexes.
pub(super) struct Boundary<'a> {
    /// (metres, WGS84) rings: the community's first, then the given polygons'.
    pub(super) rings: Vec<(&'a LineString, &'a LineString)>,
    /// How many of `rings` are the community's.
    pub(super) n_comm_rings: usize,
    /// Every ring segment, and its (ring, segment) index.
    segs: Vec<(Coord, Coord)>,
    seg_ids: Vec<(usize, usize)>,
    /// All ring segments.
    pub(super) tree: SegIndex,
    /// The community's own ring segments.
    pub(super) comm_segs: Vec<(Coord, Coord)>,
    /// Inside the community part (even-odd).
    pub(super) inside: RingIndex,
    /// One index per given polygon.
    fixed: Vec<RingIndex>,
}

impl<'a> Boundary<'a> {
    pub(super) fn new(part: &'a Polygon, part_ll: &'a Polygon, fixed: &'a [FixedRegion]) -> Self {
        let mut rings: Vec<(&LineString, &LineString)> =
            std::iter::once((part.exterior(), part_ll.exterior()))
                .chain(part.interiors().iter().zip(part_ll.interiors()))
                .collect();
        let n_comm_rings = rings.len();
        for fr in fixed {
            rings.push((fr.metres.exterior(), fr.wgs84.exterior()));
            rings.extend(fr.metres.interiors().iter().zip(fr.wgs84.interiors()));
        }
        let fixed_index = fixed
            .iter()
            .map(|fr| {
                let segs: Vec<(Coord, Coord)> = std::iter::once(fr.metres.exterior())
                    .chain(fr.metres.interiors())
                    .flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>())
                    .collect();
                RingIndex::new(&segs)
            })
            .collect();
        let mut segs = Vec::new();
        let mut seg_ids: Vec<(usize, usize)> = Vec::new();
        for (ri, (r, _)) in rings.iter().enumerate() {
            for (si, w) in r.0.windows(2).enumerate() {
                segs.push((w[0], w[1]));
                seg_ids.push((ri, si));
            }
        }
        let tree = seg_tree(segs.iter().copied());
        let comm_segs: Vec<(Coord, Coord)> = segs
            .iter()
            .zip(&seg_ids)
            .filter(|(_, id)| id.0 < n_comm_rings)
            .map(|(s, _)| *s)
            .collect();
        let inside = RingIndex::new(&comm_segs);
        Boundary {
            rings,
            n_comm_rings,
            segs,
            seg_ids,
            tree,
            comm_segs,
            inside,
            fixed: fixed_index,
        }
    }

    /// The given polygon holding `p`, if any.
    pub(super) fn in_fixed(&self, p: Coord) -> Option<usize> {
        self.fixed.iter().position(|ix| ix.contains(p))
    }

    /// The block-cutting road pieces inside the part, and the points they add to each ring.
    pub(super) fn node_roads(
        &self,
        cut_roads: &[(Coord, Coord)],
    ) -> (Vec<(Coord, Coord)>, Vec<Vec<RingCut>>) {
        let mut ring_extra: Vec<Vec<RingCut>> = vec![Vec::new(); self.rings.len()];
        let mut road_used = Vec::new();
        for (a, c) in dedup_segments(cut_roads) {
            let mut cuts = self.cut_road(a, c, &mut ring_extra);
            cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
            for w in cuts.windows(2) {
                let (p, q) = (w[0].1, w[1].1);
                if dist(p, q) < 1e-3 {
                    continue;
                }
                let m = mid(p, q);
                if !self.inside.contains(m) || self.in_fixed(m).is_some() {
                    continue;
                }
                if near(&self.tree, m, 3.0) && near(&self.tree, p, 3.0) && near(&self.tree, q, 3.0)
                {
                    continue; // hugs the boundary, which already bounds the block there
                }
                road_used.push((p, q));
            }
        }
        (road_used, ring_extra)
    }

    /// Where road ac crosses (or stops within 0.5 m of) a ring: the cut parameters on the
    /// road, with the crossing points also recorded on their ring.
    fn cut_road(&self, a: Coord, c: Coord, ring_extra: &mut [Vec<RingCut>]) -> Vec<(f64, Coord)> {
        let mut cuts: Vec<(f64, Coord)> = vec![(0.0, a), (1.0, c)];
        let env = AABB::from_corners(
            [a.x.min(c.x) - 0.5, a.y.min(c.y) - 0.5],
            [a.x.max(c.x) + 0.5, a.y.max(c.y) + 0.5],
        );
        for k in 0..self.segs.len() {
            let (p, q) = self.segs[k];
            let e2 = AABB::from_corners([p.x.min(q.x), p.y.min(q.y)], [p.x.max(q.x), p.y.max(q.y)]);
            if !rstar::Envelope::intersects(&env, &e2) {
                continue;
            }
            let (ri, si) = self.seg_ids[k];
            if let Some((t, u)) = seg_intersection(a, c, p, q) {
                let x = lerp(p, q, u);
                ring_extra[ri].push((si, u, x));
                cuts.push((t, x));
            } else {
                // a road that stops on (or within 0.5 m of) the boundary ends exactly on it
                for (t, e) in [(0.0, a), (1.0, c)] {
                    if let Some(u) = project_within(e, p, q, 0.5) {
                        let x = lerp(p, q, u);
                        ring_extra[ri].push((si, u, x));
                        if t == 0.0 {
                            cuts[0].1 = x;
                        } else {
                            cuts[1].1 = x;
                        }
                    }
                }
            }
        }
        cuts
    }

    /// Insert the community rings with the points the roads added (original WGS84
    /// coordinates kept); returns the given polygons' rings, which go in last.
    pub(super) fn insert_rings(
        &self,
        b: &mut Builder,
        mut ring_extra: Vec<Vec<RingCut>>,
        densify_m: f64,
    ) -> Result<Vec<RingPoints>, TessellationError> {
        let mut fixed_rings = Vec::new();
        for (ri, (r, rl)) in self.rings.iter().enumerate() {
            let (pts, orig) = with_cuts(r, rl, std::mem::take(&mut ring_extra[ri]));
            if ri < self.n_comm_rings {
                b.ring(&pts, &orig, densify_m)?;
            } else {
                fixed_rings.push((pts, orig));
            }
        }
        Ok(fixed_rings)
    }
}

/// Road segments with their ends in order, sorted, without repeats.
fn dedup_segments(roads: &[(Coord, Coord)]) -> Vec<(Coord, Coord)> {
    let mut uniq: Vec<(Coord, Coord)> = roads
        .iter()
        .map(|&(a, c)| {
            if (a.x, a.y) <= (c.x, c.y) {
                (a, c)
            } else {
                (c, a)
            }
        })
        .collect();
    uniq.sort_by(|p, q| {
        (p.0.x, p.0.y, p.1.x, p.1.y)
            .partial_cmp(&(q.0.x, q.0.y, q.1.x, q.1.y))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    uniq.dedup();
    uniq
}

/// A ring's points with the cut points inserted in order along their segments; cut points
/// have no original coordinate.
fn with_cuts(r: &LineString, rl: &LineString, mut extra: Vec<RingCut>) -> RingPoints {
    extra.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    let mut pts = Vec::with_capacity(r.0.len() + extra.len());
    let mut orig = Vec::with_capacity(pts.capacity());
    let mut e = 0;
    for i in 0..r.0.len() {
        pts.push(r.0[i]);
        orig.push(Some(rl.0[i]));
        while e < extra.len() && extra[e].0 == i {
            let x = extra[e].2;
            if pts.last().is_none_or(|l| dist(*l, x) > 1e-9)
                && dist(x, r.0[(i + 1).min(r.0.len() - 1)]) > 1e-9
            {
                pts.push(x);
                orig.push(None);
            }
            e += 1;
        }
    }
    (pts, orig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn c(x: f64, y: f64) -> Coord {
        Coord { x, y }
    }

    #[test]
    fn a_road_across_the_part_is_cut_at_the_boundary() {
        let part = polygon![(x: 0.0, y: 0.0), (x: 100.0, y: 0.0), (x: 100.0, y: 100.0), (x: 0.0, y: 100.0)];
        let b = Boundary::new(&part, &part, &[]);
        // crosses the west and east edges; a duplicate (reversed) goes in once
        let roads = [
            (c(-20.0, 50.0), c(120.0, 50.0)),
            (c(120.0, 50.0), c(-20.0, 50.0)),
        ];
        let (used, extra) = b.node_roads(&roads);
        assert_eq!(used.len(), 1);
        let (p, q) = used[0];
        assert!(
            dist(p, c(0.0, 50.0)) < 1e-9 && dist(q, c(100.0, 50.0)) < 1e-9,
            "{used:?}"
        );
        // the crossing points are on the ring (each once, even from the duplicate road)
        let (pts, orig) = with_cuts(part.exterior(), part.exterior(), extra[0].clone());
        assert_eq!(pts.len(), 7);
        assert_eq!(orig.iter().filter(|o| o.is_none()).count(), 2);
    }

    #[test]
    fn a_road_hugging_the_boundary_is_left_to_it() {
        let part = polygon![(x: 0.0, y: 0.0), (x: 100.0, y: 0.0), (x: 100.0, y: 100.0), (x: 0.0, y: 100.0)];
        let b = Boundary::new(&part, &part, &[]);
        let (used, _) = b.node_roads(&[(c(10.0, 1.0), c(90.0, 1.0))]);
        assert!(used.is_empty());
        // a road ending 0.3 m short of the boundary is extended onto it
        let (used, _) = b.node_roads(&[(c(50.0, 50.0), c(50.0, 99.7))]);
        assert_eq!(used.len(), 1);
        assert!(dist(used[0].1, c(50.0, 100.0)) < 1e-9);
    }
}
