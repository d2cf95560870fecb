//! Phase 3: what each inside face belongs to — a given polygon (locked or kept grid), a
//! building footprint, or free land — and how much footprints overlap.

use super::mesh::Mesh;
use super::noding::Boundary;
use super::prims::{dist, tri_area};
use super::{BuildingPart, F_BOUNDARY, F_CONSTRAINT, GAP_M, GAP_PIECE_M2, NONE};
use rstar::{AABB, RTree, RTreeObject};
use rustc_hash::FxHashMap as HashMap;

/// The faces of given polygons (their index) and the free faces (inside, in no given polygon).
pub(super) fn fixed_faces(
    m: &Mesh,
    inside: &[bool],
    bnd: &Boundary,
    any_fixed: bool,
) -> (Vec<u32>, Vec<bool>) {
    let nf = m.len();
    let mut face_fixed = vec![NONE; nf];
    if any_fixed {
        for f in 1..nf {
            if inside[f]
                && let Some(j) = bnd.in_fixed(m.centroid(f))
            {
                face_fixed[f] = j as u32;
            }
        }
    }
    let free = (0..nf)
        .map(|f| inside[f] && face_fixed[f] == NONE)
        .collect();
    (face_fixed, free)
}

/// Footprint membership of the free faces.
pub(super) struct Footprints {
    /// The building (index into the parts) of each face, or [`NONE`].
    pub(super) face_bld: Vec<u32>,
    /// Area shared by each pair of overlapping footprints (lower index first).
    pub(super) overlap: HashMap<(u32, u32), f64>,
    /// Footprint area of each building part.
    pub(super) area: Vec<f64>,
}

#[derive(Clone)]
struct BBox(usize, AABB<[f64; 2]>);
impl RTreeObject for BBox {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.1
    }
}

/// The building of every free face (the largest footprint holding its centroid) and the
/// overlaps of footprints. When every constraint made it into the triangulation
/// (`all_constrained`), the triangles between constraint edges form regions that lie wholly
/// inside or outside each footprint: one point test per region decides for all its
/// triangles. Otherwise every triangle is tested.
pub(super) fn footprints(
    m: &Mesh,
    free: &[bool],
    buildings: &[BuildingPart],
    all_constrained: bool,
) -> Footprints {
    let nf = m.len();
    let mut boxes = Vec::new();
    let mut barea = vec![0.0; buildings.len()];
    for (i, bp) in buildings.iter().enumerate() {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in &bp.polygons {
            for c in &p.exterior().0 {
                lo = [lo[0].min(c.x), lo[1].min(c.y)];
                hi = [hi[0].max(c.x), hi[1].max(c.y)];
            }
            barea[i] += geo::Area::unsigned_area(p);
        }
        if lo[0].is_finite() {
            boxes.push(BBox(i, AABB::from_corners(lo, hi)));
        }
    }
    let btree = RTree::bulk_load(boxes);
    let mut face_bld = vec![NONE; nf];
    let mut overlap: HashMap<(u32, u32), f64> = HashMap::default();
    let mut hits: Vec<usize> = Vec::new();
    let (rep, region_area) = if all_constrained {
        constraint_regions(m, free)
    } else {
        (vec![NONE; nf], vec![0.0; nf])
    };
    for f in 1..nf {
        if !free[f] || (rep[f] != NONE && rep[f] as usize != f) {
            continue; // not free, or decided with its region's representative
        }
        let c = m.centroid(f);
        hits.clear();
        for bb in btree.locate_in_envelope_intersecting(&AABB::from_point([c.x, c.y])) {
            if crate::geom::point_in_polygons(&buildings[bb.0].polygons, c) {
                hits.push(bb.0);
            }
        }
        if hits.is_empty() {
            continue;
        }
        hits.sort_unstable();
        // the largest footprint keeps an overlap that is not merged
        let best = *hits
            .iter()
            .max_by(|&&x, &&y| barea[x].total_cmp(&barea[y]).then(y.cmp(&x)))
            .unwrap_or(&hits[0]);
        face_bld[f] = best as u32;
        if hits.len() > 1 {
            let a = if rep[f] as usize == f {
                region_area[f]
            } else {
                m.area(f)
            };
            for i in 0..hits.len() {
                for j in i + 1..hits.len() {
                    *overlap
                        .entry((hits[i] as u32, hits[j] as u32))
                        .or_insert(0.0) += a;
                }
            }
        }
    }
    if all_constrained {
        for f in 1..nf {
            if free[f] && rep[f] != NONE && rep[f] as usize != f {
                face_bld[f] = face_bld[rep[f] as usize];
            }
        }
    }
    Footprints {
        face_bld,
        overlap,
        area: barea,
    }
}

/// Regions of free faces between constraint edges: each face's representative (the region's
/// largest face) and, at the representative, the region's area.
fn constraint_regions(m: &Mesh, free: &[bool]) -> (Vec<u32>, Vec<f64>) {
    let nf = m.len();
    let mut rep = vec![NONE; nf];
    let mut region_area = vec![0.0; nf];
    let mut stack = Vec::new();
    for f0 in 1..nf {
        if !free[f0] || rep[f0] != NONE {
            continue;
        }
        rep[f0] = f0 as u32;
        stack.push(f0);
        let mut best = (m.area(f0), f0);
        let mut members = vec![f0];
        while let Some(f) = stack.pop() {
            for k in 0..3 {
                let g = m.nbr[f][k];
                if g == NONE
                    || !free[g as usize]
                    || rep[g as usize] != NONE
                    || m.edge_has(f, k, F_CONSTRAINT)
                {
                    continue;
                }
                rep[g as usize] = f0 as u32;
                stack.push(g as usize);
                members.push(g as usize);
                let a = m.area(g as usize);
                if a > best.0 {
                    best = (a, g as usize);
                }
            }
        }
        let total: f64 = members.iter().map(|&f| m.area(f)).sum();
        for f in members {
            rep[f] = best.1 as u32;
        }
        region_area[best.1] = total;
    }
    (rep, region_area)
}

/// Thin gaps between a given polygon and the community edge (or another given polygon), left
/// where the plan in force does not meet the boundary exactly, stay with the given polygon: a
/// free grid reaching into such a sliver would run along both of its sides and fold onto
/// itself when collinear points are dropped. A gap triangle has all three corners on boundary
/// lines and no width; footprints are never flooded (zero-width triangles inside one would cut
/// its building in two), nor are the fans of skinny triangles that open from a boundary vertex
/// into free land (they have a corner off the boundary) — flooding those cut real pockets of
/// land off their free neighbours.
pub(super) fn flood_thin_gaps(
    m: &Mesh,
    face_fixed: &mut [u32],
    free: &mut [bool],
    face_bld: &[u32],
) {
    let nf = m.len();
    let mut on_boundary = vec![false; m.verts.len()];
    for f in 1..nf {
        for k in 0..3 {
            if m.faces[f][0] != NONE && m.edge_has(f, k, F_BOUNDARY) {
                on_boundary[m.faces[f][k] as usize] = true;
                on_boundary[m.faces[f][(k + 1) % 3] as usize] = true;
            }
        }
    }
    let thin = |f: usize| {
        let [a, b, c] = m.faces[f].map(|v| m.verts[v as usize]);
        let perimeter = dist(a, b) + dist(b, c) + dist(c, a);
        m.faces[f]
            .iter()
            .filter(|&&v| on_boundary[v as usize])
            .count()
            == 3
            && 2.0 * tri_area(a, b, c) < GAP_M * perimeter
    };
    let mut queue: std::collections::VecDeque<usize> =
        (1..nf).filter(|&f| face_fixed[f] != NONE).collect();
    while let Some(f) = queue.pop_front() {
        for k in 0..3 {
            let g = m.nbr[f][k];
            if g == NONE {
                continue;
            }
            let g = g as usize;
            if free[g] && face_bld[g] == NONE && thin(g) {
                face_fixed[g] = face_fixed[f];
                free[g] = false;
                queue.push_back(g);
            }
        }
    }
}

/// What the thin gaps leave cut off from the free land: small building-less pieces bounded
/// only by given polygons and the community edge stay with a given polygon (the lowest index
/// among those around it).
pub(super) fn absorb_gap_pieces(
    m: &Mesh,
    face_fixed: &mut [u32],
    free: &mut [bool],
    face_bld: &[u32],
) {
    let nf = m.len();
    let mut comp = vec![NONE; nf];
    let mut stack = Vec::new();
    for f0 in 1..nf {
        if !free[f0] || comp[f0] != NONE {
            continue;
        }
        comp[f0] = f0 as u32;
        stack.push(f0);
        let mut members = vec![f0];
        let mut host = NONE;
        let mut area = 0.0;
        let mut built = false;
        while let Some(f) = stack.pop() {
            area += m.area(f);
            built |= face_bld[f] != NONE;
            for k in 0..3 {
                let g = m.nbr[f][k];
                if g == NONE {
                    continue;
                }
                let g = g as usize;
                if face_fixed[g] != NONE {
                    host = host.min(face_fixed[g]);
                } else if free[g] && comp[g] == NONE {
                    comp[g] = f0 as u32;
                    stack.push(g);
                    members.push(g);
                }
            }
        }
        if host != NONE && !built && area < GAP_PIECE_M2 {
            for f in members {
                face_fixed[f] = host;
                free[f] = false;
            }
        }
    }
}
