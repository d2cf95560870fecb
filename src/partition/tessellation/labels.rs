//! Phase 5: labels of free land. Blocks are the free faces connected without crossing a road.
//! Every triangle corner in free space takes the atom of the nearest building of its block,
//! by shortest path along triangle edges (Dijkstra over (vertex, block) nodes); blocks without
//! buildings take the labels of their neighbours across the road, and only blocks nothing
//! reaches become atoms of their own.

use super::mesh::Mesh;
use super::prims::dist;
use super::{Atom, F_ROAD, NONE};
use rustc_hash::FxHashMap as HashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The block of every free face, and the number of blocks.
pub(super) fn blocks(m: &Mesh, free: &[bool]) -> (Vec<u32>, u32) {
    let nf = m.len();
    let mut block = vec![NONE; nf];
    let mut nblocks = 0u32;
    let mut stack = Vec::new();
    for f0 in 1..nf {
        if !free[f0] || block[f0] != NONE {
            continue;
        }
        block[f0] = nblocks;
        stack.push(f0);
        while let Some(f) = stack.pop() {
            for k in 0..3 {
                let g = m.nbr[f][k];
                if g == NONE || !free[g as usize] || block[g as usize] != NONE {
                    continue;
                }
                if m.edge_has(f, k, F_ROAD) {
                    continue;
                }
                block[g as usize] = nblocks;
                stack.push(g as usize);
            }
        }
        nblocks += 1;
    }
    (block, nblocks)
}

/// The (vertex, block) nodes of free faces and their edges (CSR), with the distances and
/// labels found so far.
struct Nodes {
    /// Node of each corner of each free face.
    fnode: Vec<[u32; 3]>,
    start: Vec<usize>,
    adj: Vec<(u32, f64)>,
    dist: Vec<f64>,
    label: Vec<u32>,
}

impl Nodes {
    /// Most vertices lie in one block: (block, node) per vertex, a map only for the others.
    fn new(m: &Mesh, free: &[bool], block: &[u32]) -> Nodes {
        let nf = m.len();
        let mut vnode: Vec<(u32, u32)> = vec![(NONE, NONE); m.verts.len()];
        let mut extra_nodes: HashMap<u64, u32> = HashMap::default();
        let mut nn = 0usize;
        let mut fnode = vec![[NONE; 3]; nf];
        for f in (1..nf).filter(|&f| free[f]) {
            for k in 0..3 {
                let v = m.faces[f][k] as usize;
                let bk = block[f];
                fnode[f][k] = if vnode[v].0 == NONE {
                    vnode[v] = (bk, nn as u32);
                    nn += 1;
                    (nn - 1) as u32
                } else if vnode[v].0 == bk {
                    vnode[v].1
                } else {
                    let key = ((v as u64) << 32) | u64::from(bk);
                    *extra_nodes.entry(key).or_insert_with(|| {
                        nn += 1;
                        (nn - 1) as u32
                    })
                };
            }
        }
        let mut deg = vec![0usize; nn + 1];
        for f in (1..nf).filter(|&f| free[f]) {
            for k in 0..3 {
                deg[fnode[f][k] as usize] += 2;
            }
        }
        let mut start = vec![0usize; nn + 1];
        for i in 0..nn {
            start[i + 1] = start[i] + deg[i];
        }
        let mut fill = start.clone();
        let mut adj = vec![(0u32, 0.0f64); start[nn]];
        for f in (1..nf).filter(|&f| free[f]) {
            for k in 0..3 {
                let (u, v) = (fnode[f][k], fnode[f][(k + 1) % 3]);
                let l = dist(
                    m.verts[m.faces[f][k] as usize],
                    m.verts[m.faces[f][(k + 1) % 3] as usize],
                );
                adj[fill[u as usize]] = (v, l);
                fill[u as usize] += 1;
                adj[fill[v as usize]] = (u, l);
                fill[v as usize] += 1;
            }
        }
        Nodes {
            fnode,
            start,
            adj,
            dist: vec![f64::INFINITY; nn],
            label: vec![NONE; nn],
        }
    }

    /// Settle the heap: shortest distances, ties to the lower label; only nodes for which
    /// `open` holds are relaxed.
    fn settle(&mut self, heap: &mut BinaryHeap<Reverse<u128>>, open: impl Fn(usize) -> bool) {
        while let Some(Reverse(top)) = heap.pop() {
            let (kd, l, n) = unkey(top);
            // a node is pushed again whenever it improves: only its last entry counts
            if kd != total_key(self.dist[n]) || l != self.label[n] {
                continue;
            }
            let d = self.dist[n];
            for &(m, w) in &self.adj[self.start[n]..self.start[n + 1]] {
                let m = m as usize;
                if !open(m) {
                    continue;
                }
                let nd = d + w;
                if nd < self.dist[m] || (nd == self.dist[m] && l < self.label[m]) {
                    self.dist[m] = nd;
                    self.label[m] = l;
                    heap.push(Reverse(key(nd, l, m as u32)));
                }
            }
        }
    }
}

/// `f64::total_cmp`'s order as an unsigned integer.
fn total_key(x: f64) -> u64 {
    let b = x.to_bits() as i64;
    ((b ^ ((((b >> 63) as u64) >> 1) as i64)) as u64) ^ (1 << 63)
}

/// A heap entry ordered by (distance in `total_cmp` order, label, node): one integer compare
/// where the tuple of three took a float compare and two more (the Dijkstra's heap was 3 % of
/// a Manhattan regrid's instructions).
fn key(d: f64, label: u32, node: u32) -> u128 {
    (u128::from(total_key(d)) << 64) | (u128::from(label) << 32) | u128::from(node)
}

/// The distance key, label and node of a heap entry.
fn unkey(k: u128) -> (u64, u32, usize) {
    ((k >> 64) as u64, (k >> 32) as u32, (k as u32) as usize)
}

/// Nearest building atom of every node within its block.
fn nearest_buildings(nodes: &mut Nodes, free: &[bool], face_atom: &[u32]) {
    for f in (1..face_atom.len()).filter(|&f| free[f] && face_atom[f] != NONE) {
        for k in 0..3 {
            let n = nodes.fnode[f][k] as usize;
            if nodes.dist[n] > 0.0 || face_atom[f] < nodes.label[n] {
                nodes.dist[n] = 0.0;
                nodes.label[n] = face_atom[f];
            }
        }
    }
    let mut heap = BinaryHeap::new();
    for n in 0..nodes.dist.len() {
        if nodes.dist[n] == 0.0 {
            heap.push(Reverse(key(0.0, nodes.label[n], n as u32)));
        }
    }
    nodes.settle(&mut heap, |_| true);
}

/// Blocks without buildings (strips between parallel roads, plazas, small parks) are shared by
/// the neighbouring blocks' atoms: labels continue across the road at shared vertices. Seeds
/// come only across a road edge, from the corners of the triangle on the other side, so that
/// every piece joins its atom along an edge, never at a lone point.
fn across_roads(nodes: &mut Nodes, m: &Mesh, free: &[bool], block: &[u32]) {
    let mut seeds: Vec<(f64, u32, u32)> = Vec::new();
    for f in (1..m.len()).filter(|&f| free[f]) {
        for k in 0..3 {
            let g = m.nbr[f][k];
            if g == NONE || !free[g as usize] || block[g as usize] == block[f] {
                continue;
            }
            for kk in [k, (k + 1) % 3] {
                let n = nodes.fnode[f][kk];
                if nodes.label[n as usize] != NONE {
                    continue;
                }
                let v = m.faces[f][kk];
                let gi = g as usize;
                if let Some(j) = (0..3).find(|&j| m.faces[gi][j] == v) {
                    let mm = nodes.fnode[gi][j] as usize;
                    if nodes.label[mm] != NONE {
                        seeds.push((nodes.dist[mm], nodes.label[mm], n));
                    }
                }
            }
        }
    }
    seeds.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let open: Vec<bool> = nodes.label.iter().map(|&l| l == NONE).collect();
    let mut heap = BinaryHeap::new();
    for (d, l, n) in seeds {
        let nu = n as usize;
        if d < nodes.dist[nu] || (d == nodes.dist[nu] && l < nodes.label[nu]) {
            nodes.dist[nu] = d;
            nodes.label[nu] = l;
            heap.push(Reverse(key(d, l, n)));
        }
    }
    nodes.settle(&mut heap, |n| open[n]);
}

/// The atom label of every corner of every free face. Blocks that nothing reached become atoms
/// of their own (pushed onto `atoms`).
pub(super) fn corners(
    m: &Mesh,
    free: &[bool],
    (block, nblocks): (&[u32], u32),
    face_atom: &[u32],
    atoms: &mut Vec<Atom>,
) -> Vec<[u32; 3]> {
    let mut nodes = Nodes::new(m, free, block);
    nearest_buildings(&mut nodes, free, face_atom);
    across_roads(&mut nodes, m, free, block);
    let nf = m.len();
    let mut block_atom = vec![NONE; nblocks as usize];
    let mut corner = vec![[NONE; 3]; nf];
    for f in (1..nf).filter(|&f| free[f]) {
        for k in 0..3 {
            corner[f][k] = if face_atom[f] != NONE {
                face_atom[f]
            } else {
                let n = nodes.fnode[f][k] as usize;
                if nodes.dist[n] == 0.0 {
                    // v lies on a footprint (maybe on several that meet there): take the
                    // building reached first when turning around v, so every piece stays
                    // connected to its building through an edge, not just a point.
                    nearest_around(m, free, face_atom, f, m.faces[f][k]).unwrap_or(nodes.label[n])
                } else if nodes.label[n] == NONE {
                    let bk = block[f] as usize;
                    if block_atom[bk] == NONE {
                        block_atom[bk] = atoms.len() as u32;
                        atoms.push(Atom::default());
                    }
                    block_atom[bk]
                } else {
                    nodes.label[n]
                }
            };
        }
    }
    corner
}

/// Turning around vertex `v` from face `f` in both directions (not crossing roads or leaving
/// the free land), the atom of the first building face met; the nearer side wins, ties go
/// counter-clockwise.
fn nearest_around(m: &Mesh, free: &[bool], face_atom: &[u32], f: usize, v: u32) -> Option<u32> {
    let walk = |dir: usize| -> Option<(usize, u32)> {
        let mut cur = f;
        for step in 1..64 {
            let k = m.faces[cur].iter().position(|&x| x == v)?;
            // dir 0: cross the edge leaving v (v → next); dir 1: the edge arriving at v
            let e = if dir == 0 { k } else { (k + 2) % 3 };
            if m.edge_has(cur, e, F_ROAD) {
                return None;
            }
            let g = m.nbr[cur][e];
            if g == NONE || !free[g as usize] || g as usize == f {
                return None;
            }
            cur = g as usize;
            if face_atom[cur] != NONE {
                return Some((step, face_atom[cur]));
            }
        }
        None
    };
    match (walk(0), walk(1)) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b.1 } else { a.1 }),
        (Some(a), None) => Some(a.1),
        (None, Some(b)) => Some(b.1),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{key, total_key, unkey};

    #[test]
    fn heap_keys_order_as_the_tuples_they_replace() {
        let ds = [
            f64::NEG_INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-300,
            0.1,
            0.30000000000000004,
            2.0,
            7.25e12,
            f64::INFINITY,
        ];
        let mut entries = Vec::new();
        for &d in &ds {
            for l in [0, 1, 7, u32::MAX - 1] {
                for n in [0, 3, u32::MAX] {
                    entries.push((d, l, n));
                }
            }
        }
        for a in &entries {
            for b in &entries {
                let tuple = a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
                assert_eq!(
                    key(a.0, a.1, a.2).cmp(&key(b.0, b.1, b.2)),
                    tuple,
                    "{a:?} {b:?}"
                );
            }
            let (kd, l, n) = unkey(key(a.0, a.1, a.2));
            assert_eq!((kd, l, n as u32), (total_key(a.0), a.1, a.2));
        }
    }
}
