//! Phase 6: every atom one connected region. Marching triangles can leave pieces of an atom
//! that touch the rest of it only at a point; they become atoms of their own.

use super::mesh::Mesh;
use super::prims::{find, tri_area};
use super::{Atom, BuildingPart, NONE};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Make every atom one connected region: pieces of an atom that touch the rest of it only at a
/// point (or not at all) become building-less atoms of their own, which the partitioner then
/// attaches to a neighbour. Pieces are tracked as triangle corners: corners of one triangle with
/// the same label form one piece, and pieces on either side of a half-edge with the same label
/// are joined.
pub(super) fn split_fragments(
    m: &Mesh,
    inside: &[bool],
    face_atom: &[u32],
    (face_bld, buildings): (&[u32], &[BuildingPart]),
    corner: &mut [[u32; 3]],
    atoms: &mut Vec<Atom>,
) {
    let mut parent = corner_pieces(m, inside, corner);
    let comp_info = pieces(m, inside, face_atom, corner, &mut parent);
    let mut best: HashMap<u32, (u32, bool, f64)> = HashMap::default(); // atom -> (root, has building, area)
    let mut roots: Vec<(&u32, &(u32, f64, bool))> = comp_info.iter().collect();
    roots.sort_by_key(|x| *x.0);
    for &(&r, &(atom, area, bld)) in &roots {
        let e = best.entry(atom).or_insert((r, bld, area));
        if (bld, area) > (e.1, e.2) {
            *e = (r, bld, area);
        }
    }
    let home = building_homes(m, inside, face_bld, &mut parent);
    let home_roots: HashSet<u32> = home.values().map(|&(r, _)| r).collect();
    let mut new_id: HashMap<u32, u32> = HashMap::default();
    for &(&r, &(atom, _, bld)) in &roots {
        // the main piece stays, and so does a stray piece of a footprint (kept with its building)
        if best.get(&atom).map(|b| b.0) == Some(r) || (bld && !home_roots.contains(&r)) {
            continue;
        }
        new_id.insert(r, atoms.len() as u32);
        atoms.push(Atom::default());
    }
    // buildings move with their piece
    let mut homes: Vec<(u32, u32)> = home.iter().map(|(&b, &(r, _))| (b, r)).collect();
    homes.sort_unstable();
    for (b, r) in homes {
        let Some(&id) = new_id.get(&r) else { continue };
        let atom = comp_info.get(&r).map_or(NONE, |x| x.0);
        let bp = &buildings[b as usize];
        if atom != NONE {
            let from = &mut atoms[atom as usize];
            if let Some(i) = from.buildings.iter().position(|&x| x == bp.building) {
                from.buildings.remove(i);
                from.households -= u64::from(bp.households);
                from.weight -= bp.weight;
            }
        }
        let to = &mut atoms[id as usize];
        to.buildings.push(bp.building);
        to.households += u64::from(bp.households);
        to.weight += bp.weight;
    }
    if new_id.is_empty() {
        return;
    }
    for f in (1..m.len()).filter(|&f| inside[f]) {
        for k in 0..3 {
            let r = find(&mut parent, (f * 3 + k) as u32);
            if let Some(&id) = new_id.get(&r) {
                corner[f][k] = id;
            }
        }
    }
}

/// Union-find over triangle corners (slot `3f + k`): corners of one triangle with the same
/// label are one piece, and so are corners on either side of a half-edge with the same label.
fn corner_pieces(m: &Mesh, inside: &[bool], corner: &[[u32; 3]]) -> Vec<u32> {
    let (faces, nbr) = (&m.faces, &m.nbr);
    let nf = faces.len();
    let slot = |f: usize, k: usize| f * 3 + k;
    let mut parent: Vec<u32> = (0..(nf * 3) as u32).collect();
    let union = |p: &mut Vec<u32>, a: usize, b: usize| {
        let (ra, rb) = (find(p, a as u32), find(p, b as u32));
        if ra != rb {
            p[ra.max(rb) as usize] = ra.min(rb);
        }
    };
    for f in (1..nf).filter(|&f| inside[f]) {
        let l = corner[f];
        for k in 0..3 {
            let k2 = (k + 1) % 3;
            if l[k] == l[k2] {
                union(&mut parent, slot(f, k), slot(f, k2));
            }
            let g = nbr[f][k];
            if g == NONE || !inside[g as usize] || (g as usize) < f {
                continue;
            }
            let g = g as usize;
            for kk in [k, k2] {
                let v = faces[f][kk];
                if let Some(j) = (0..3).find(|&j| faces[g][j] == v)
                    && corner[g][j] == l[kk]
                {
                    union(&mut parent, slot(f, kk), slot(g, j));
                }
            }
        }
    }
    parent
}

/// Per piece (its root): its atom, its area, and whether it holds building triangles.
fn pieces(
    m: &Mesh,
    inside: &[bool],
    face_atom: &[u32],
    corner: &[[u32; 3]],
    parent: &mut [u32],
) -> HashMap<u32, (u32, f64, bool)> {
    let mut comp_info: HashMap<u32, (u32, f64, bool)> = HashMap::default();
    for f in (1..m.len()).filter(|&f| inside[f]) {
        let [a, b, c] = m.faces[f].map(|v| m.verts[v as usize]);
        let area = tri_area(a, b, c).abs() / 3.0;
        for k in 0..3 {
            let r = find(parent, (f * 3 + k) as u32);
            let e = comp_info.entry(r).or_insert((corner[f][k], 0.0, false));
            e.1 += area;
            e.2 |= face_atom[f] != NONE;
        }
    }
    comp_info
}

/// The piece each building mostly lies in (building → (root, area)). A cluster of overlapping
/// footprints whose link was taken by a given polygon falls apart into pieces that each hold
/// whole buildings.
fn building_homes(
    m: &Mesh,
    inside: &[bool],
    face_bld: &[u32],
    parent: &mut [u32],
) -> HashMap<u32, (u32, f64)> {
    let mut bpiece: HashMap<(u32, u32), f64> = HashMap::default(); // (building, root) -> area
    for f in (1..m.len()).filter(|&f| inside[f] && face_bld[f] != NONE) {
        let [a, b, c] = m.faces[f].map(|v| m.verts[v as usize]);
        let area = tri_area(a, b, c).abs() / 3.0;
        for k in 0..3 {
            let r = find(parent, (f * 3 + k) as u32);
            *bpiece.entry((face_bld[f], r)).or_insert(0.0) += area;
        }
    }
    let mut home: HashMap<u32, (u32, f64)> = HashMap::default();
    let mut bp: Vec<((u32, u32), f64)> = bpiece.into_iter().collect();
    bp.sort_by_key(|x| x.0);
    for ((b, r), a) in bp {
        let e = home.entry(b).or_insert((r, a));
        if a > e.1 {
            *e = (r, a);
        }
    }
    home
}
