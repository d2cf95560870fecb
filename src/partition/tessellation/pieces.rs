//! The pieces of a labelled tessellation: point ids (vertices, edge midpoints, face
//! centroids), and each face cut through its edge midpoints and centroid where its corner
//! labels differ (marching triangles). Grid polygons are assembled from these segments.

use super::prims::mid;
use super::{F_CONSTRAINT, F_ROAD, NONE, Tessellation};
use geo::Coord;

/// A point of the subdivision: a vertex, an edge midpoint or a face centroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pt(pub u32);

impl Tessellation {
    /// Id of a vertex.
    #[must_use]
    pub fn vpt(&self, v: u32) -> Pt {
        Pt(v)
    }
    /// Id of the midpoint of undirected edge `e`.
    #[must_use]
    pub fn mpt(&self, e: u32) -> Pt {
        Pt(self.verts.len() as u32 + e)
    }
    /// Id of the centroid of face `f`.
    #[must_use]
    pub fn cpt(&self, f: usize) -> Pt {
        Pt((self.verts.len() + self.n_edges + f) as u32)
    }

    /// Position (metres) of a point id; `face_hint` gives a face whose edges include it.
    #[must_use]
    pub fn pos(&self, p: Pt, face_hint: usize) -> Coord {
        let nv = self.verts.len() as u32;
        let ne = self.n_edges as u32;
        if p.0 < nv {
            self.verts[p.0 as usize]
        } else if p.0 < nv + ne {
            let e = p.0 - nv;
            let f = &self.faces[face_hint];
            for k in 0..3 {
                if self.edge[face_hint][k] == e {
                    return mid(
                        self.verts[f[k] as usize],
                        self.verts[f[(k + 1) % 3] as usize],
                    );
                }
            }
            Coord {
                x: f64::NAN,
                y: f64::NAN,
            }
        } else {
            let fi = (p.0 - nv - ne) as usize;
            let [a, b, c] = self.faces[fi].map(|v| self.verts[v as usize]);
            Coord {
                x: (a.x + b.x + c.x) / 3.0,
                y: (a.y + b.y + c.y) / 3.0,
            }
        }
    }

    /// Visit the directed boundary segments of face `f` between pieces of different labels,
    /// as `(from, to, left_label, right_label)`, where the right label is `None` for a triangle
    /// half-edge (the caller looks across to the neighbour) and `Some` inside the triangle.
    /// Also reports each piece's area and centroid through `piece`.
    pub fn face_segments(
        &self,
        f: usize,
        lab: [u32; 3],
        mut seg: impl FnMut(Pt, Pt, u32, Option<u32>, usize, usize),
        mut piece: impl FnMut(u32, f64, Coord),
    ) {
        let v = self.faces[f];
        let p = v.map(|x| self.verts[x as usize]);
        let m = [0, 1, 2].map(|k| mid(p[k], p[(k + 1) % 3]));
        let mp = [0, 1, 2].map(|k| self.mpt(self.edge[f][k]));
        // triangle half-edges: vertex k → mid k (edge k is v[k]→v[k+1]) and mid k → vertex k+1
        for k in 0..3 {
            seg(Pt(v[k]), mp[k], lab[k], None, k, k);
            seg(
                mp[k],
                Pt(v[(k + 1) % 3]),
                lab[(k + 1) % 3],
                None,
                k,
                (k + 1) % 3,
            );
        }
        let g = Coord {
            x: (p[0].x + p[1].x + p[2].x) / 3.0,
            y: (p[0].y + p[1].y + p[2].y) / 3.0,
        };
        let poly_area_centroid = |pts: &[Coord]| {
            let mut a = 0.0;
            let (mut cx, mut cy) = (0.0, 0.0);
            for i in 0..pts.len() {
                let (q, r) = (pts[i], pts[(i + 1) % pts.len()]);
                let cr = q.x * r.y - r.x * q.y;
                a += cr;
                cx += (q.x + r.x) * cr;
                cy += (q.y + r.y) * cr;
            }
            if a.abs() < 1e-300 {
                return (0.0, pts[0]);
            }
            (
                a / 2.0,
                Coord {
                    x: cx / (3.0 * a),
                    y: cy / (3.0 * a),
                },
            )
        };
        if lab[0] == lab[1] && lab[1] == lab[2] {
            let (a, c) = poly_area_centroid(&p);
            piece(lab[0], a, c);
            return;
        }
        if lab[0] != lab[1] && lab[1] != lab[2] && lab[0] != lab[2] {
            let cp = self.cpt(f);
            for k in 0..3 {
                // piece around vertex k: v[k], m[k], G, m[k-1]
                let km1 = (k + 2) % 3;
                let (a, c) = poly_area_centroid(&[p[k], m[k], g, m[km1]]);
                piece(lab[k], a, c);
                // cut m[k] → G has piece k on its left, piece k+1 on its right
                seg(mp[k], cp, lab[k], Some(lab[(k + 1) % 3]), k, k);
                seg(cp, mp[km1], lab[k], Some(lab[km1]), k, k);
            }
            return;
        }
        // two labels: rotate so that corner 2 is the odd one
        let r = if lab[0] == lab[1] {
            0
        } else if lab[1] == lab[2] {
            1
        } else {
            2
        };
        let (a, b, c) = (r, (r + 1) % 3, (r + 2) % 3);
        // edges: b→c is edge b, c→a is edge c
        let (pc_a, pc_c) = poly_area_centroid(&[m[b], p[c], m[c]]);
        piece(lab[c], pc_a, pc_c);
        let (pa_a, pa_c) = poly_area_centroid(&[p[a], m[a], p[b], m[b], m[c]]);
        piece(lab[a], pa_a, pa_c);
        seg(mp[c], mp[b], lab[c], Some(lab[a]), c, c);
        seg(mp[b], mp[c], lab[a], Some(lab[c]), a, a);
    }

    /// The label of vertex `v` as a corner of face `f`.
    #[must_use]
    pub fn corner_label(&self, f: usize, v: u32, labels: &[[u32; 3]]) -> u32 {
        let fv = self.faces[f];
        for k in 0..3 {
            if fv[k] == v {
                return labels[f][k];
            }
        }
        NONE
    }

    /// True when undirected edge `e` is a block-cutting road.
    #[must_use]
    pub fn is_road_edge(&self, e: u32) -> bool {
        self.edge_flags[e as usize] & F_ROAD != 0
    }

    /// True when undirected edge `e` is a constraint (footprint, road, boundary or fixed ring).
    #[must_use]
    pub fn is_constraint_edge(&self, e: u32) -> bool {
        self.edge_flags[e as usize] & F_CONSTRAINT != 0
    }
}
