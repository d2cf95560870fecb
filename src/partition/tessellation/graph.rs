//! Phase 7: the atom graph — each atom's area, centroid and length of community edge, and
//! for each pair of neighbouring atoms the shared boundary length and how much of it runs
//! along a road — as compressed adjacency lists.

use super::prims::{dist, mid, near};
use super::{Adj, Atom, AtomGraph, NONE, Tessellation};
use crate::partition::buckets::SegIndex;
use geo::Coord;
use rustc_hash::FxHashMap as HashMap;

pub(super) fn atom_graph(
    t: &Tessellation,
    mut atoms: Vec<Atom>,
    near_tree: &SegIndex,
    near_m: f64,
) -> AtomGraph {
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64); atoms.len()];
    let mut pairs: HashMap<(u32, u32), (f64, f64)> = HashMap::default();
    let nf = t.faces.len();
    // one face's boundary pieces, the lists kept from face to face (a pair of fresh lists per
    // face was a million allocations on a Manhattan district)
    let mut cuts: Vec<(Coord, Coord, u32, u32)> = Vec::new();
    let mut halves: Vec<(usize, usize, u32)> = Vec::new();
    for f in 1..nf {
        if !t.inside[f] {
            continue;
        }
        let lab = t.corner[f];
        cuts.clear();
        halves.clear();
        t.face_segments(
            f,
            lab,
            |a, b, l, r, k, corner| match r {
                Some(r) => {
                    if l < r {
                        cuts.push((t.pos(a, f), t.pos(b, f), l, r));
                    }
                }
                None => {
                    let _ = (a, b);
                    halves.push((k, corner, l));
                }
            },
            |l, a, c| {
                let s = &mut sums[l as usize];
                s.0 += a;
                s.1 += a * c.x;
                s.2 += a * c.y;
            },
        );
        for &(p, q, l, r) in &cuts {
            let len = dist(p, q);
            let road = if near(near_tree, mid(p, q), near_m) {
                len
            } else {
                0.0
            };
            let e = pairs.entry((l, r)).or_insert((0.0, 0.0));
            e.0 += len;
            e.1 += road;
        }
        for &(k, corner, l) in &halves {
            let v = t.faces[f];
            let (p, q) = (t.verts[v[k] as usize], t.verts[v[(k + 1) % 3] as usize]);
            let half = dist(p, q) / 2.0;
            let g = t.nbr[f][k];
            if g == NONE || !t.inside[g as usize] {
                atoms[l as usize].outer += half;
                continue;
            }
            if (g as usize) < f {
                continue; // counted from the other side
            }
            let r = t.corner_label(g as usize, v[corner], &t.corner);
            if r == l || r == NONE {
                continue;
            }
            let c = if corner == k { p } else { q };
            let m = mid(p, q);
            let is_road = t.is_road_edge(t.edge[f][k]) || near(near_tree, mid(c, m), near_m);
            let key = if l < r { (l, r) } else { (r, l) };
            let e = pairs.entry(key).or_insert((0.0, 0.0));
            e.0 += half;
            if is_road {
                e.1 += half;
            }
        }
    }
    for (a, s) in atoms.iter_mut().zip(&sums) {
        a.area = s.0;
        a.centroid = if s.0 > 0.0 {
            Coord {
                x: s.1 / s.0,
                y: s.2 / s.0,
            }
        } else {
            Coord { x: 0.0, y: 0.0 }
        };
    }
    csr(atoms, pairs)
}

/// The adjacency as compressed rows, neighbours in order, pairs without length dropped.
fn csr(atoms: Vec<Atom>, pairs: HashMap<(u32, u32), (f64, f64)>) -> AtomGraph {
    let mut list: Vec<((u32, u32), (f64, f64))> =
        pairs.into_iter().filter(|(_, v)| v.0 > 1e-9).collect();
    list.sort_by_key(|a| a.0);
    let n = atoms.len();
    let mut deg = vec![0usize; n];
    for ((a, b), _) in &list {
        deg[*a as usize] += 1;
        deg[*b as usize] += 1;
    }
    let mut start = vec![0usize; n + 1];
    for i in 0..n {
        start[i + 1] = start[i] + deg[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![
        Adj {
            nbr: 0,
            len: 0.0,
            road: 0.0
        };
        start[n]
    ];
    for ((a, b), (len, road)) in list {
        adj[fill[a as usize]] = Adj { nbr: b, len, road };
        fill[a as usize] += 1;
        adj[fill[b as usize]] = Adj { nbr: a, len, road };
        fill[b as usize] += 1;
    }
    for a in 0..n {
        adj[start[a]..start[a + 1]].sort_by_key(|x| x.nbr);
    }
    AtomGraph { atoms, start, adj }
}
