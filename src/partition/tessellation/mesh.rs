//! Phase 2: the mesh. The footprints, the road pieces and the given rings go into the
//! triangulation as constraints, spade refines it (no sliver triangles, so cuts through
//! triangles stay short and boundaries between buildings run close to the medial line), and
//! the result is copied into flat arrays indexed by spade's vertex, edge and face indices.

use super::cdt::Builder;
use super::noding::Boundary;
use super::noding::RingPoints;
use super::prims::{near, seg_tree, tri_area};
use super::{
    BuildingPart, F_BOUNDARY, F_CONSTRAINT, F_ROAD, NONE, TessellationError, TessellationSettings,
};
use crate::partition::buckets::SegIndex;
use geo::Coord;
use spade::Triangulation;

/// A triangulation as flat arrays. Face 0 is spade's outer face; inner faces start at 1.
pub(super) struct Mesh {
    pub(super) verts: Vec<Coord>,
    /// Original WGS84 coordinate of input vertices.
    pub(super) orig: Vec<Option<Coord>>,
    /// Vertices added only to densify a straight edge.
    pub(super) steiner: Vec<bool>,
    /// Corner vertices of each face, counter-clockwise.
    pub(super) faces: Vec<[u32; 3]>,
    /// The face across edge k (from corner k to corner k+1), or [`NONE`].
    pub(super) nbr: Vec<[u32; 3]>,
    /// The undirected edge index of edge k.
    pub(super) edge: Vec<[u32; 3]>,
    /// `F_*` flags by undirected edge.
    pub(super) edge_flags: Vec<u8>,
    pub(super) n_edges: usize,
}

impl Mesh {
    /// Number of faces, the outer face included.
    pub(super) fn len(&self) -> usize {
        self.faces.len()
    }

    /// Signed area of face `f`.
    pub(super) fn area(&self, f: usize) -> f64 {
        let [a, b, c] = self.faces[f].map(|v| self.verts[v as usize]);
        tri_area(a, b, c)
    }

    /// Centroid of face `f`.
    pub(super) fn centroid(&self, f: usize) -> Coord {
        let [a, b, c] = self.faces[f].map(|v| self.verts[v as usize]);
        Coord {
            x: (a.x + b.x + c.x) / 3.0,
            y: (a.y + b.y + c.y) / 3.0,
        }
    }

    /// True when edge k of face `f` carries `flag`.
    pub(super) fn edge_has(&self, f: usize, k: usize, flag: u8) -> bool {
        self.edge_flags[self.edge[f][k] as usize] & flag != 0
    }
}

/// Footprints, road pieces and given rings as constraints, then the refinement.
pub(super) fn constrain(
    b: &mut Builder,
    buildings: &[BuildingPart],
    road_used: &[(Coord, Coord)],
    fixed_rings: &[RingPoints],
    bnd: &Boundary,
    s: &TessellationSettings,
) -> Result<(), TessellationError> {
    for bp in buildings {
        for p in &bp.polygons {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                b.polyline(&r.0)?;
            }
        }
    }
    for &(p, q) in road_used {
        b.polyline(&[p, q])?;
    }
    if !fixed_rings.is_empty() {
        b.given_rings(fixed_rings, &seg_tree(bnd.comm_segs.iter().copied()))?;
    }
    if s.refine_angle_deg > 0.0 {
        let _span = tracing::debug_span!("refine").entered();
        let nv0 = b.cdt.num_vertices();
        let params = spade::RefinementParameters::<f64>::new()
            .with_angle_limit(spade::AngleLimit::from_deg(s.refine_angle_deg))
            .with_min_required_area(0.5)
            .with_max_allowed_area(s.max_triangle_m2)
            .with_max_additional_vertices(nv0 * 4);
        b.cdt.refine(params);
    }
    Ok(())
}

impl Mesh {
    /// Copy the triangulation into flat arrays; constraint edges are flagged, and so are those
    /// on the boundary rings and on the block-cutting roads.
    pub(super) fn from_builder(b: &Builder, boundary: &SegIndex, roads: &SegIndex) -> Mesh {
        let cdt = &b.cdt;
        let nv = cdt.num_vertices();
        let mut verts = vec![Coord { x: 0.0, y: 0.0 }; nv];
        let mut orig = vec![None; nv];
        let mut steiner = vec![false; nv];
        for v in cdt.vertices() {
            let i = v.fix().index();
            let p = v.position();
            verts[i] = Coord { x: p.x, y: p.y };
            orig[i] = b.orig.get(&i).copied();
            steiner[i] = b.steiner.get(&i).copied().unwrap_or(true);
        }
        let ne = cdt.num_undirected_edges();
        let mut edge_flags = vec![0u8; ne];
        for e in cdt.undirected_edges() {
            let ei = e.fix().index();
            if !cdt.is_constraint_edge(e.fix()) {
                continue;
            }
            edge_flags[ei] |= F_CONSTRAINT;
            let [p, q] = e.positions();
            let m = Coord {
                x: (p.x + q.x) / 2.0,
                y: (p.y + q.y) / 2.0,
            };
            if near(boundary, m, 1e-4) {
                edge_flags[ei] |= F_BOUNDARY;
            }
            if near(roads, m, 1e-4) {
                edge_flags[ei] |= F_ROAD;
            }
        }
        let nf = cdt.num_all_faces();
        let mut faces = vec![[NONE; 3]; nf];
        let mut nbr = vec![[NONE; 3]; nf];
        let mut edge = vec![[NONE; 3]; nf];
        for f in cdt.inner_faces() {
            let fi = f.fix().index();
            let es = f.adjacent_edges();
            for k in 0..3 {
                faces[fi][k] = es[k].from().fix().index() as u32;
                edge[fi][k] = es[k].as_undirected().fix().index() as u32;
                nbr[fi][k] = es[k]
                    .rev()
                    .face()
                    .as_inner()
                    .map_or(NONE, |g| g.index() as u32);
            }
        }
        Mesh {
            verts,
            orig,
            steiner,
            faces,
            nbr,
            edge,
            edge_flags,
            n_edges: ne,
        }
    }
}

/// A region of triangles bounded by boundary constraints with less area than this in all (m²)
/// is outside, whatever its centroids say.
const SLIVER_REGION_M2: f64 = 1e-6;

/// Which faces lie inside the community part. Regions of triangles bounded by boundary
/// constraints are wholly in or out; each region takes the area-weighted vote of its
/// triangles' centroids (exact point-in-polygon). Where a boundary piece is missing (a rare
/// near-degenerate crossing), the region is mixed and its substantial triangles decide for
/// themselves. Regions of slivers alone (under [`SLIVER_REGION_M2`]) are outside.
pub(super) fn inside(m: &Mesh, bnd: &Boundary) -> Vec<bool> {
    let nf = m.len();
    let mut region = vec![NONE; nf];
    let mut inside = vec![false; nf];
    let mut stack = Vec::new();
    for f0 in 1..nf {
        if region[f0] != NONE || m.faces[f0][0] == NONE {
            continue;
        }
        region[f0] = f0 as u32;
        stack.push(f0);
        let mut members = Vec::new();
        while let Some(f) = stack.pop() {
            members.push(f);
            for k in 0..3 {
                let g = m.nbr[f][k];
                if g == NONE || region[g as usize] != NONE || m.edge_has(f, k, F_BOUNDARY) {
                    continue;
                }
                region[g as usize] = f0 as u32;
                stack.push(g as usize);
            }
        }
        let (mut ain, mut aout) = (0.0, 0.0);
        let votes: Vec<bool> = members
            .iter()
            .map(|&f| bnd.inside.contains(m.centroid(f)))
            .collect();
        for (&f, &v) in members.iter().zip(&votes) {
            if v {
                ain += m.area(f);
            } else {
                aout += m.area(f);
            }
        }
        let total = ain + aout;
        if total < SLIVER_REGION_M2 {
            // only slivers: pockets between a straight boundary edge's densify points and the
            // hull chord (or another boundary piece) that rounding left on either side; their
            // centroids' votes are noise, and land of no width is not the community's
            continue;
        }
        let mixed =
            ain > 1e-6 * total.max(1e-12) && aout > 1e-6 * total.max(1e-12) && ain.min(aout) > 1.0;
        for (&f, &v) in members.iter().zip(&votes) {
            inside[f] = if mixed && m.area(f) > 0.01 {
                v
            } else {
                ain >= aout
            };
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn a_square_with_a_hole_and_a_footprint() {
        let part = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 30.0, y: 0.0), (x: 30.0, y: 30.0), (x: 0.0, y: 30.0), (x: 0.0, y: 0.0)],
            interiors: [[(x: 20.0, y: 20.0), (x: 25.0, y: 20.0), (x: 25.0, y: 25.0), (x: 20.0, y: 25.0), (x: 20.0, y: 20.0)]],
        );
        let bnd = Boundary::new(&part, &part, &[]);
        let mut b = Builder::new();
        let (used, extra) = bnd.node_roads(&[]);
        bnd.insert_rings(&mut b, extra, 6.0).unwrap();
        let foot =
            polygon![(x: 5.0, y: 5.0), (x: 10.0, y: 5.0), (x: 10.0, y: 10.0), (x: 5.0, y: 10.0)];
        let bp = BuildingPart {
            building: 0,
            polygons: vec![foot],
            households: 1,
            weight: 1.0,
        };
        let s = TessellationSettings::default();
        constrain(&mut b, &[bp], &used, &[], &bnd, &s).unwrap();
        let m = Mesh::from_builder(&b, &bnd.tree, &seg_tree(std::iter::empty()));
        let inside = inside(&m, &bnd);
        let area: f64 = (1..m.len()).filter(|&f| inside[f]).map(|f| m.area(f)).sum();
        assert!((area - (900.0 - 25.0)).abs() < 1e-6, "inside area {area}");
        // every inside face is counter-clockwise, and neighbours agree
        for f in 1..m.len() {
            assert!(m.area(f) > 0.0);
            for k in 0..3 {
                let g = m.nbr[f][k];
                if g != NONE {
                    assert!(m.nbr[g as usize].contains(&(f as u32)));
                }
            }
        }
        // the footprint's four walls are constraints, not boundary
        let walls = (0..m.n_edges)
            .filter(|&e| m.edge_flags[e] == F_CONSTRAINT)
            .count();
        assert_eq!(walls, 4);
        assert!(m.edge_flags.iter().all(|&f| f & F_ROAD == 0));
    }

    #[test]
    fn slivers_beside_a_long_straight_edge_are_never_inside() {
        // long skew edges on the hull: their densify points fall a rounding error either side of
        // the line, and the slivers between them and the hull must not count as land
        let part = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 1000.3, y: 7.1), (x: 1003.7, y: 611.9), (x: 3.3, y: 597.7), (x: 0.0, y: 0.0)],
            interiors: [],
        );
        let bnd = Boundary::new(&part, &part, &[]);
        let mut b = Builder::new();
        let (used, extra) = bnd.node_roads(&[]);
        bnd.insert_rings(&mut b, extra, 6.0).unwrap();
        constrain(
            &mut b,
            &[],
            &used,
            &[],
            &bnd,
            &TessellationSettings::default(),
        )
        .unwrap();
        let m = Mesh::from_builder(&b, &bnd.tree, &seg_tree(std::iter::empty()));
        let inside = inside(&m, &bnd);
        // every inside face reaches real land without crossing the boundary: no pocket of
        // slivers alone counts as inside
        let mut seen = vec![false; m.len()];
        for f0 in (1..m.len()).filter(|&f| inside[f]) {
            if seen[f0] {
                continue;
            }
            let (mut stack, mut area) = (vec![f0], 0.0);
            seen[f0] = true;
            while let Some(f) = stack.pop() {
                area += m.area(f);
                for k in 0..3 {
                    let g = m.nbr[f][k];
                    if g != NONE && !seen[g as usize] && !m.edge_has(f, k, F_BOUNDARY) {
                        seen[g as usize] = true;
                        stack.push(g as usize);
                    }
                }
            }
            assert!(
                area > 1.0,
                "an inside region of slivers alone ({area} m²) at face {f0}"
            );
        }
        let area: f64 = (1..m.len()).filter(|&f| inside[f]).map(|f| m.area(f)).sum();
        let want = geo::Area::unsigned_area(&part);
        assert!(
            (area - want).abs() < 1e-6 * want,
            "inside area {area} of {want}"
        );
    }
}
