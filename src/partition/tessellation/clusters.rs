//! Phase 4: building atoms. Footprints that overlap for real become one cluster (union-find);
//! each cluster with a face in this part becomes an atom, numbered by its smallest building,
//! after one atom per given polygon.

use super::membership::Footprints;
use super::prims::find;
use super::{Atom, BuildingPart, FixedRegion, NONE};

/// The atoms of the given polygons and of the building clusters, and each face's building
/// atom ([`NONE`] for land without a building).
pub(super) fn building_atoms(
    buildings: &[BuildingPart],
    fixed: &[FixedRegion],
    fp: Footprints,
    merge_overlap_m2: f64,
) -> (Vec<Atom>, Vec<u32>) {
    let mut parent: Vec<usize> = (0..buildings.len()).collect();
    let mut pairs: Vec<_> = fp.overlap.into_iter().collect();
    pairs.sort_by_key(|a| a.0);
    for ((i, j), a) in pairs {
        let (i, j) = (i as usize, j as usize);
        // merge real overlaps, and any overlap that is a noticeable share of the smaller footprint
        // (a sliver building inside another would otherwise be split between grids)
        if a > merge_overlap_m2 || a > 0.005 * fp.area[i].min(fp.area[j]) {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            if ri != rj {
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    let mut has_face = vec![false; buildings.len()];
    for &b in fp.face_bld.iter().skip(1) {
        if b != NONE {
            has_face[b as usize] = true;
        }
    }
    let mut cluster_atom = vec![NONE; buildings.len()];
    let mut atoms: Vec<Atom> = fixed
        .iter()
        .enumerate()
        .map(|(j, fr)| Atom {
            buildings: fr.buildings.clone(),
            households: fr.households,
            weight: fr.weight,
            fixed: Some(j as u32),
            ..Atom::default()
        })
        .collect();
    for i in 0..buildings.len() {
        let r = find(&mut parent, i);
        if !has_face[i] && cluster_atom[r] == NONE {
            // a footprint with no triangle inside this part (outside, or degenerate)
            let any = (0..buildings.len()).any(|j| has_face[j] && find(&mut parent, j) == r);
            if !any {
                continue;
            }
        }
        if cluster_atom[r] == NONE {
            cluster_atom[r] = atoms.len() as u32;
            atoms.push(Atom::default());
        }
        let a = &mut atoms[cluster_atom[r] as usize];
        a.buildings.push(buildings[i].building);
        a.households += u64::from(buildings[i].households);
        a.weight += buildings[i].weight;
    }
    let face_atom = fp
        .face_bld
        .iter()
        .map(|&b| {
            if b == NONE {
                NONE
            } else {
                cluster_atom[find(&mut parent, b as usize)]
            }
        })
        .collect();
    (atoms, face_atom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;
    use rustc_hash::FxHashMap as HashMap;

    fn part(i: u32, households: u32) -> BuildingPart {
        BuildingPart {
            building: 10 + i,
            polygons: vec![polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 0.0, y: 1.0)]],
            households,
            weight: f64::from(households),
        }
    }

    #[test]
    fn overlapping_footprints_make_one_atom() {
        let parts = [part(0, 5), part(1, 7), part(2, 11), part(3, 13)];
        let mut overlap = HashMap::default();
        overlap.insert((0, 1), 3.0); // real overlap: merged
        overlap.insert((1, 2), 0.01); // a digitising sliver of large footprints: kept apart
        // faces: 0 is the outer face; building 3 has no face and drops out
        let fp = Footprints {
            face_bld: vec![NONE, 0, 1, 2, NONE],
            overlap,
            area: vec![100.0, 100.0, 100.0, 100.0],
        };
        let (atoms, face_atom) = building_atoms(&parts, &[], fp, 0.05);
        assert_eq!(atoms.len(), 2);
        assert_eq!(atoms[0].buildings, vec![10, 11]);
        assert_eq!(atoms[0].households, 12);
        assert_eq!(atoms[1].buildings, vec![12]);
        assert_eq!(face_atom, vec![NONE, 0, 0, 1, NONE]);
    }
}
