//! Assembling a part's grid polygons again after an edit, from what the last assembly kept:
//! each grid's boundary edges, chained rings and polygon (by code), and the straightened
//! boundary ([`Straightener`]). A grid is chained again only when its edges changed, and drawn
//! again only when its rings did or one of their points was dropped or kept differently; the
//! answer is the one an assembly from scratch gives, byte for byte.

use super::assemble::{
    AssembleError, AtomEdges, GridPolygon, Ring, chain, finish_rings, grid_edges, grid_polygon,
};
use super::buckets::Box2;
use super::straighten::{Constraints, Straightener};
use super::tessellation::{Pt, Tessellation};
use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// Past this share of obstacles added or gone, the boundary is straightened from scratch (the
/// grids' rings and polygons are kept).
const STALE: f64 = 1.0;

type Edges = Vec<(Pt, Pt, usize)>;

struct GridEntry {
    edges: Edges,
    rings: Vec<Ring>,
    poly: Option<GridPolygon>,
    /// Box of the rings' points (metres).
    bbox: Box2,
}

/// What one part's last assembly kept.
#[derive(Default)]
pub struct PartFollow {
    st: Option<Straightener>,
    grids: HashMap<String, GridEntry>,
}

fn bbox_of(rings: &[Ring]) -> Box2 {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for (_, c) in rings.iter().flatten() {
        b = [b[0].min(c.x), b[1].min(c.y), b[2].max(c.x), b[3].max(c.y)];
    }
    b
}

impl PartFollow {
    /// The polygons of the part's grids (`codes[k]` is local grid `k`), as
    /// [`super::assemble::assemble_with`] with nothing given draws them.
    ///
    /// # Errors
    /// The first grid (in local order) that is empty or falls apart.
    pub fn assemble(
        &mut self,
        t: &Tessellation,
        (ae, c): (&AtomEdges, &Constraints),
        grid_of_atom: &[u32],
        codes: &[&str],
    ) -> Result<Vec<GridPolygon>, AssembleError> {
        let n = codes.len();
        let edges = grid_edges(ae, grid_of_atom, n);
        let scratch = self.st.is_none();
        let (redrawn, changed_drop) = if scratch {
            self.grids.clear();
            let (st, rings) = rayon::join(
                || Straightener::build(t, c, &edges),
                || edges.par_iter().map(|es| chain(t, es)).collect::<Vec<_>>(),
            );
            self.st = Some(st);
            (rings.into_iter().map(Some).collect(), HashSet::default())
        } else {
            self.follow(t, c, &edges, codes)
        };
        let Some(st) = self.st.as_ref() else {
            unreachable!("straightened above")
        };
        // the dropped points that changed, where they lie
        let moved: Vec<(Pt, geo::Coord)> = changed_drop
            .iter()
            .filter_map(|&p| st.pos(p).map(|c| (p, c)))
            .collect();
        let _s = tracing::debug_span!("follow.polygons", moved = moved.len()).entered();
        let mut out = Vec::with_capacity(n);
        for (k, (rings, es)) in redrawn.into_iter().zip(edges).enumerate() {
            out.push(grid(
                &mut self.grids,
                (t, &st.drop),
                (k, codes[k]),
                (rings, es),
                &moved,
            ));
        }
        out.into_iter().collect()
    }

    /// Follow the edit: the straightened boundary updated by the edges that came or went, each
    /// grid's rings chained again where its edges changed (`None` where they did not), and the
    /// points whose drop may have changed.
    fn follow(
        &mut self,
        t: &Tessellation,
        c: &Constraints,
        edges: &[Edges],
        codes: &[&str],
    ) -> (Vec<Option<Vec<Ring>>>, HashSet<Pt>) {
        let mut delta: BTreeMap<(Pt, Pt), (i32, usize)> = BTreeMap::new();
        let mut add = |es: &Edges, d: i32| {
            for &(p, q, f) in es {
                let k = if p < q { (p, q) } else { (q, p) };
                let e = delta.entry(k).or_insert((0, f));
                e.0 += d;
            }
        };
        let here: HashSet<&str> = codes.iter().copied().collect();
        let mut gone: Vec<String> = Vec::new();
        for (code, e) in &self.grids {
            if !here.contains(code.as_str()) {
                add(&e.edges, -1);
                gone.push(code.clone());
            }
        }
        for code in gone {
            self.grids.remove(&code);
        }
        let mut changed = vec![false; codes.len()];
        for (k, code) in codes.iter().enumerate() {
            match self.grids.get(*code) {
                Some(e) if e.edges == edges[k] => {}
                old => {
                    if let Some(e) = old {
                        add(&e.edges, -1);
                    }
                    add(&edges[k], 1);
                    changed[k] = true;
                }
            }
        }
        let _s = tracing::debug_span!("follow.straighten").entered();
        let dropped = match self.st.as_mut() {
            // past STALE, the boundary is straightened again from scratch, which compacts its
            // obstacles; the grids are kept, and drawn again only where a drop changed
            Some(st) if st.staleness() > STALE => {
                let fresh = Straightener::build(t, c, edges);
                let changed: Vec<Pt> = st.drop.symmetric_difference(&fresh.drop).copied().collect();
                *st = fresh;
                changed
            }
            Some(st) => st.update(t, c, &delta),
            None => Vec::new(),
        };
        drop(_s);
        let _s = tracing::debug_span!("follow.chain", n = changed.iter().filter(|c| **c).count())
            .entered();
        let rings = changed
            .par_iter()
            .zip(edges)
            .map(|(&ch, es)| ch.then(|| chain(t, es)))
            .collect();
        (rings, dropped.into_iter().collect())
    }
}

/// Local grid `k` (code `code`) with its boundary edges `es` and, when chained again,
/// rings: drawn again when its rings changed or `moved` (points whose drop changed) holds
/// one of their points, else as kept.
fn grid(
    grids: &mut HashMap<String, GridEntry>,
    (t, drop): (&Tessellation, &HashSet<Pt>),
    (k, code): (usize, &str),
    (rings, es): (Option<Vec<Ring>>, Edges),
    moved: &[(Pt, geo::Coord)],
) -> Result<GridPolygon, AssembleError> {
    if es.is_empty() {
        grids.remove(code);
        return Err(AssembleError::Empty { grid: k });
    }
    let e = grids.entry(code.to_string()).or_insert_with(|| GridEntry {
        edges: Vec::new(),
        rings: Vec::new(),
        poly: None,
        bbox: [0.0; 4],
    });
    let rings = match rings {
        Some(r) => Some(r),
        None if e.edges != es => Some(chain(t, &es)),
        None => None,
    };
    if let Some(r) = rings {
        e.bbox = bbox_of(&r);
        e.rings = r;
        e.edges = es;
        e.poly = None;
    } else if e.poly.is_some()
        && moved.iter().any(|(p, c)| {
            c.x >= e.bbox[0]
                && c.x <= e.bbox[2]
                && c.y >= e.bbox[1]
                && c.y <= e.bbox[3]
                && e.rings.iter().flatten().any(|(q, _)| q == p)
        })
    {
        e.poly = None;
    }
    if let Some(p) = &e.poly {
        return Ok(p.clone());
    }
    let p = grid_polygon(t, k, finish_rings(t, e.rings.clone(), drop), 0)?;
    e.poly = Some(p.clone());
    Ok(p)
}

/// What the last derivation of a fabric's grids kept: per part, and the snap rounding of the
/// whole community.
#[derive(Default)]
pub struct Followed {
    pub parts: Vec<PartFollow>,
    pub snap: crate::geom::snap::SnapFollow,
}

/// A fabric's [`Followed`], behind a lock (a derivation that finds it taken starts afresh).
#[derive(Default)]
pub struct FabricFollow(pub std::sync::Mutex<Option<Box<Followed>>>);

impl FabricFollow {
    /// True when a derivation is kept (and not being followed right now).
    #[must_use]
    pub fn is_warm(&self) -> bool {
        self.0.try_lock().is_ok_and(|g| g.is_some())
    }
}

impl Clone for FabricFollow {
    fn clone(&self) -> Self {
        FabricFollow::default()
    }
}

impl std::fmt::Debug for FabricFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FabricFollow")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::RegridParams;
    use crate::partition::assemble::assemble_with;
    use crate::partition::fabric::Fabric;
    use crate::partition::straighten::straighten_with;
    use rand::{Rng, SeedableRng};

    fn fabric() -> Fabric {
        let (c, b, r) = crate::partition::tests::sample_layers(11, 6);
        // the community with the most atoms
        c.iter()
            .map(|c| Fabric::build(c, &b, &r, &RegridParams::default()).unwrap())
            .max_by_key(|f| f.parts[0].graph.len())
            .unwrap()
    }

    /// Random relabellings of a community's atoms (moves of single atoms and of whole grids to
    /// a neighbour, grids coming and going): after each, the straightening and the polygons
    /// that followed the change are exactly those drawn from scratch.
    #[test]
    fn following_edits_equals_drawing_from_scratch() {
        let f = fabric();
        let part = &f.parts[0];
        let a = part.assembly();
        let n = part.graph.len();
        assert!(n > 100, "{n} atoms");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // grids grown from seeds over the atom graph
        let k = 12u32;
        let mut grid = vec![u32::MAX; n];
        let mut queue: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
        for g in 0..k {
            let s = rng.random_range(0..n);
            if grid[s] == u32::MAX {
                grid[s] = g;
                queue.push_back(s);
            }
        }
        while let Some(x) = queue.pop_front() {
            for e in part.graph.nbrs(x) {
                if grid[e.nbr as usize] == u32::MAX {
                    grid[e.nbr as usize] = grid[x];
                    queue.push_back(e.nbr as usize);
                }
            }
        }
        for g in &mut grid {
            if *g == u32::MAX {
                *g = 0;
            }
        }
        let codes: Vec<String> = (0..64).map(|g| format!("G{g:02}")).collect();
        let mut follow = PartFollow::default();
        let mut redrawn = 0;
        let steps: usize = std::env::var("WANGGE_FOLLOW_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120);
        for step in 0..steps {
            // grids numbered by first appearance (as a derivation numbers a part's grids)
            let mut local = vec![u32::MAX; 64];
            let mut names: Vec<&str> = Vec::new();
            let mut of = Vec::with_capacity(n);
            for &g in &grid {
                if local[g as usize] == u32::MAX {
                    local[g as usize] = names.len() as u32;
                    names.push(&codes[g as usize]);
                }
                of.push(local[g as usize]);
            }
            let got = follow.assemble(&part.tess, (&a.edges, &a.constraints), &of, &names);
            let want = assemble_with(&part.tess, (&a.edges, &a.constraints), &of, names.len(), 0);
            assert!(
                format!("{got:?}") == format!("{want:?}"),
                "step {step}: polygons differ"
            );
            let edges = grid_edges(&a.edges, &of, names.len());
            let drop = straighten_with(&part.tess, &a.constraints, &edges);
            let st = follow.st.as_ref().unwrap();
            assert!(st.drop == drop, "step {step}: dropped points differ");
            redrawn += 1;
            // the next change
            match rng.random_range(0..10) {
                0 => {
                    // a whole grid into a neighbour's
                    let x = rng.random_range(0..n);
                    if let Some(e) = part
                        .graph
                        .nbrs(x)
                        .iter()
                        .find(|e| grid[e.nbr as usize] != grid[x])
                    {
                        let (from, to) = (grid[x], grid[e.nbr as usize]);
                        for g in &mut grid {
                            if *g == from {
                                *g = to;
                            }
                        }
                    }
                }
                1 => {
                    // a new grid of a few atoms
                    let used: HashSet<u32> = grid.iter().copied().collect();
                    if let Some(new) = (0..64u32).find(|g| !used.contains(g)) {
                        let x = rng.random_range(0..n);
                        grid[x] = new;
                        for e in part.graph.nbrs(x) {
                            grid[e.nbr as usize] = new;
                        }
                    }
                }
                _ => {
                    for _ in 0..rng.random_range(1..4) {
                        let x = rng.random_range(0..n);
                        let nb = part.graph.nbrs(x);
                        if !nb.is_empty() {
                            grid[x] = grid[nb[rng.random_range(0..nb.len())].nbr as usize];
                        }
                    }
                }
            }
        }
        assert_eq!(redrawn, steps);
    }
}
