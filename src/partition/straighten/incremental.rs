//! Straightening kept between edits of a plan: the boundary graph, its obstacles and each run's
//! shortcuts. An edit changes a few boundary edges; only the runs through them, and the runs
//! whose box meets an obstacle that appeared, went or moved (a changed shortcut of an earlier
//! run), are straightened again — in the same order and against the same obstacles as a
//! straightening from scratch, so the points dropped are exactly the same.

use super::{
    Boundary, Box2, Constraints, Pts, RunKey, Segs, is_free, padded_envelope, pts_of, seg_box,
    segs_of, shortcut_run,
};
use crate::partition::tessellation::{Pt, Tessellation};
use geo::Coord;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// One run: its points from the anchor it is walked from to the other end, its box grown by
/// the clearance, its shortcuts (run indices) and their obstacle ids.
#[derive(Clone)]
struct Run {
    pts: Vec<Pt>,
    bbox: Box2,
    cuts: Vec<(u32, u32)>,
    segs: Vec<u32>,
}

/// A straightened boundary that follows edits (see the module note).
pub struct Straightener {
    b: Boundary,
    segs: Segs,
    edge_seg: HashMap<(Pt, Pt), u32>,
    pts: Pts,
    pt_id: HashMap<Pt, u32>,
    free: HashSet<Pt>,
    runs: BTreeMap<RunKey, Run>,
    /// The run each free point lies on.
    on_run: HashMap<Pt, RunKey>,
    /// Points to drop from the grid rings.
    pub drop: HashSet<Pt>,
    /// Obstacles added or gone since the bucket grids were built.
    stale: usize,
}

fn meets(a: &Box2, b: &Box2) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

fn key_of(p: Pt, q: Pt) -> (Pt, Pt) {
    if p < q { (p, q) } else { (q, p) }
}

impl Straightener {
    /// Straighten the boundary of `edges` (each grid's directed boundary edges) from scratch.
    #[must_use]
    pub fn build(t: &Tessellation, c: &Constraints, edges: &[Vec<(Pt, Pt, usize)>]) -> Self {
        let b = {
            let _s = tracing::debug_span!("boundary").entered();
            Boundary::new(t, edges)
        };
        let _s = tracing::debug_span!("obstacles").entered();
        let seg_list: Vec<_> = b
            .count
            .keys()
            .map(|&(p, q)| (b.pos[&p], b.pos[&q], (p, q)))
            .collect();
        let edge_seg = seg_list
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.2.0, s.2.1), i as u32))
            .collect();
        let mut segs = segs_of(seg_list);
        segs.alive = vec![true; segs.list.len()];
        segs.run = vec![None; segs.list.len()];
        let pt_list: Vec<(Coord, Pt)> = b.pos.iter().map(|(&p, &c)| (c, p)).collect();
        let pt_id = pt_list
            .iter()
            .enumerate()
            .map(|(i, p)| (p.1, i as u32))
            .collect();
        let mut pts = pts_of(pt_list);
        pts.alive = vec![true; pts.list.len()];
        drop(_s);
        let _s = tracing::debug_span!("runs").entered();
        let mut s = Straightener {
            b,
            segs,
            edge_seg,
            pts,
            pt_id,
            free: HashSet::default(),
            runs: BTreeMap::new(),
            on_run: HashMap::default(),
            drop: HashSet::default(),
            stale: 0,
        };
        let mut anchors: Vec<Pt> = Vec::new();
        for (&p, n) in &s.b.nbrs {
            if is_free(t, &s.b, &c.fixed_vertex, (p, n)) {
                s.free.insert(p);
            } else {
                anchors.push(p);
            }
        }
        anchors.sort_unstable();
        for a in anchors {
            s.add_runs_at(a);
        }
        let keys: Vec<RunKey> = s.runs.keys().copied().collect();
        for k in keys {
            s.straighten_run(c, k);
        }
        // (shortcuts go to the grids' side tables from the start: nothing stale yet)
        s.stale = 0;
        s
    }

    /// The runs leaving anchor `a` not known yet, walked from it.
    fn add_runs_at(&mut self, a: Pt) {
        let mut out: Vec<Pt> = self.b.nbrs[&a].clone();
        out.sort_unstable();
        for first in out {
            if !self.free.contains(&first) || self.on_run.contains_key(&first) {
                continue;
            }
            let run = self.walk(a, first);
            let key = (a, first);
            for p in &run[1..run.len() - 1] {
                self.on_run.insert(*p, key);
            }
            let coords: Vec<Coord> = run.iter().map(|p| self.b.pos[p]).collect();
            self.runs.insert(
                key,
                Run {
                    bbox: padded_envelope(&coords),
                    pts: run,
                    cuts: Vec::new(),
                    segs: Vec::new(),
                },
            );
        }
    }

    /// The run a → first → … up to the next anchor.
    fn walk(&self, a: Pt, first: Pt) -> Vec<Pt> {
        let mut run = vec![a, first];
        let (mut prev, mut cur) = (a, first);
        loop {
            let n = &self.b.nbrs[&cur];
            let next = if n[0] == prev { n[1] } else { n[0] };
            run.push(next);
            if !self.free.contains(&next) || next == first {
                return run;
            }
            (prev, cur) = (cur, next);
        }
    }

    /// Straighten run `k` (its old shortcuts removed first); whether its shortcuts changed.
    fn straighten_run(&mut self, c: &Constraints, k: RunKey) -> Option<Vec<Box2>> {
        let run = self.runs.get_mut(&k)?;
        let old_segs = std::mem::take(&mut run.segs);
        let old_cuts = std::mem::take(&mut run.cuts);
        let pts = run.pts.clone();
        for &(i, j) in &old_cuts {
            for p in &pts[i as usize + 1..j as usize] {
                self.drop.remove(p);
            }
        }
        let mut changed: Vec<Box2> = Vec::new();
        for &id in &old_segs {
            self.segs.alive[id as usize] = false;
            self.stale += 1;
        }
        let (cuts, ids) = shortcut_run(&pts, &self.b.pos, (c, &mut self.segs, &self.pts));
        for &(i, j) in &cuts {
            for p in &pts[i as usize + 1..j as usize] {
                self.drop.insert(*p);
            }
        }
        if cuts != old_cuts {
            for &id in old_segs.iter().chain(&ids) {
                let s = &self.segs.list[id as usize];
                changed.push(seg_box(s.0, s.1));
            }
        }
        self.stale += ids.len();
        if let Some(run) = self.runs.get_mut(&k) {
            run.cuts = cuts;
            run.segs = ids;
        }
        Some(changed)
    }

    /// Follow a change of the boundary: `delta` maps undirected edges (lower point first) to the
    /// change in how many grids hold them and a face for positions. Returns the points whose
    /// drop may have changed.
    pub fn update(
        &mut self,
        t: &Tessellation,
        c: &Constraints,
        delta: &BTreeMap<(Pt, Pt), (i32, usize)>,
    ) -> Vec<Pt> {
        // dirty boxes: obstacles that came or went, for every run (None) or for the runs after one
        let mut dirty: Vec<(Box2, Option<RunKey>)> = Vec::new();
        let touched = self.apply(t, delta, &mut dirty);
        let near = self.refree(t, c, &touched);
        let (old, pending) = self.rewalk(&near);
        // old runs gone: their shortcuts and drops go
        let mut dropped: Vec<Pt> = Vec::new();
        for (k, r) in &old {
            dropped.extend(&r.pts[1..r.pts.len() - 1]);
            for &(i, j) in &r.cuts {
                for p in &r.pts[i as usize + 1..j as usize] {
                    self.drop.remove(p);
                }
            }
            for &id in &r.segs {
                self.segs.alive[id as usize] = false;
                self.stale += 1;
                let s = &self.segs.list[id as usize];
                dirty.push((seg_box(s.0, s.1), Some(*k)));
            }
        }
        let again = self.restraighten(c, &pending, &mut dirty, &mut dropped);
        tracing::debug!(
            edges = delta.len(),
            touched = touched.len(),
            new = pending.len(),
            gone = old.len(),
            again,
            dirty = dirty.len(),
            "straightening followed"
        );
        dropped
    }

    /// The edge counts, neighbours and obstacles changed by `delta`; the points of the edges
    /// whose count changed.
    fn apply(
        &mut self,
        t: &Tessellation,
        delta: &BTreeMap<(Pt, Pt), (i32, usize)>,
        dirty: &mut Vec<(Box2, Option<RunKey>)>,
    ) -> Vec<Pt> {
        let mut touched: Vec<Pt> = Vec::new();
        for (&(p, q), &(d, f)) in delta {
            let c0 = i32::from(self.b.count.get(&(p, q)).copied().unwrap_or(0));
            let c1 = (c0 + d).clamp(0, 255);
            if c0 == c1 {
                continue;
            }
            touched.extend([p, q]);
            if c1 == 0 {
                self.b.count.remove(&(p, q));
                self.remove_edge(p, q, dirty);
            } else {
                self.b.count.insert((p, q), c1 as u8);
                if c0 == 0 {
                    self.add_edge(t, (p, q, f), dirty);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// Decide again whether the touched points are free; the points whose runs may differ
    /// (those touched and their neighbours).
    fn refree(&mut self, t: &Tessellation, c: &Constraints, touched: &[Pt]) -> Vec<Pt> {
        let mut near: Vec<Pt> = touched.to_vec();
        for p in touched {
            self.free.remove(p);
            if let Some(n) = self.b.nbrs.get(p) {
                near.extend(n.iter().copied());
                if is_free(t, &self.b, &c.fixed_vertex, (*p, n)) {
                    self.free.insert(*p);
                }
            }
        }
        near.sort_unstable();
        near.dedup();
        near
    }

    /// Take out the old runs through `near` and walk the runs now through them as from
    /// scratch (from the lower anchor). Runs walked again unchanged keep their shortcuts; the
    /// old runs gone, and the new runs (to straighten), are returned.
    fn rewalk(&mut self, near: &[Pt]) -> (BTreeMap<RunKey, Run>, HashSet<RunKey>) {
        let mut old: BTreeMap<RunKey, Run> = BTreeMap::new();
        for p in near {
            if let Some(k) = self.on_run.get(p).copied()
                && let Some(r) = self.runs.remove(&k)
            {
                for q in &r.pts[1..r.pts.len() - 1] {
                    self.on_run.remove(q);
                }
                old.insert(k, r);
            }
        }
        let untouched: HashSet<RunKey> = self.runs.keys().copied().collect();
        for a in self.ends_near(near) {
            self.add_runs_at(a);
        }
        let mut pending: HashSet<RunKey> = HashSet::default();
        let fresh: Vec<RunKey> = self
            .runs
            .keys()
            .filter(|k| !untouched.contains(k))
            .copied()
            .collect();
        for k in fresh {
            match old.remove(&k) {
                Some(o) if o.pts == self.runs[&k].pts => {
                    // walked again unchanged: its shortcuts stand (unless an obstacle moved)
                    if let Some(run) = self.runs.get_mut(&k) {
                        run.cuts = o.cuts;
                        run.segs = o.segs;
                    }
                }
                o => {
                    if let Some(o) = o {
                        old.insert(k, o);
                    }
                    pending.insert(k);
                }
            }
        }
        (old, pending)
    }

    /// The anchors at the ends of the runs (not known) through `near`, ascending.
    fn ends_near(&self, near: &[Pt]) -> Vec<Pt> {
        let mut ends: Vec<Pt> = Vec::new();
        // (free points already walked over: each run is walked once)
        let mut walked: HashSet<Pt> = HashSet::default();
        for p in near {
            if !self.b.nbrs.contains_key(p) || self.on_run.contains_key(p) || walked.contains(p) {
                continue;
            }
            if self.free.contains(p) {
                ends.extend(self.run_ends(*p, None, &mut walked));
            } else {
                ends.push(*p);
                for &q in &self.b.nbrs[p] {
                    if self.free.contains(&q)
                        && !self.on_run.contains_key(&q)
                        && !walked.contains(&q)
                    {
                        ends.extend(self.run_ends(q, Some(*p), &mut walked));
                    }
                }
            }
        }
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    /// Straighten again, in order, every run that is new or whose box meets a change before
    /// it (changed shortcuts are changes for the runs after); how many were.
    fn restraighten(
        &mut self,
        c: &Constraints,
        pending: &HashSet<RunKey>,
        dirty: &mut Vec<(Box2, Option<RunKey>)>,
        dropped: &mut Vec<Pt>,
    ) -> usize {
        let keys: Vec<RunKey> = self.runs.keys().copied().collect();
        let mut again = 0usize;
        let (mut union, mut seen): (Box2, usize) = ([f64::MAX, f64::MAX, f64::MIN, f64::MIN], 0);
        for k in keys {
            let run = &self.runs[&k];
            let new = pending.contains(&k);
            // (the box of every change first: most runs lie far from an edit)
            for (b, _) in &dirty[seen..] {
                union = [
                    union[0].min(b[0]),
                    union[1].min(b[1]),
                    union[2].max(b[2]),
                    union[3].max(b[3]),
                ];
            }
            seen = dirty.len();
            let hit = new
                || meets(&union, &run.bbox)
                    && dirty
                        .iter()
                        .any(|(b, from)| from.is_none_or(|f| f < k) && meets(b, &run.bbox));
            if !hit {
                continue;
            }
            again += 1;
            let inner: Vec<Pt> = run.pts[1..run.pts.len() - 1].to_vec();
            if let Some(ch) = self.straighten_run(c, k) {
                if new || !ch.is_empty() {
                    dropped.extend(inner);
                }
                dirty.extend(ch.into_iter().map(|b| (b, Some(k))));
            }
        }
        again
    }

    /// The anchors at both ends of the run through free point `p` (the one end beyond
    /// `from` when walking away from anchor `from`); none on a loop of free points.
    fn run_ends(&self, p: Pt, from: Option<Pt>, walked: &mut HashSet<Pt>) -> Vec<Pt> {
        let n = &self.b.nbrs[&p];
        let mut ends = Vec::new();
        walked.insert(p);
        for &start in n {
            if Some(start) == from {
                continue;
            }
            let (mut prev, mut cur) = (p, start);
            loop {
                if !self.free.contains(&cur) {
                    ends.push(cur);
                    break;
                }
                if cur == p {
                    return Vec::new();
                }
                walked.insert(cur);
                let m = &self.b.nbrs[&cur];
                let next = if m[0] == prev { m[1] } else { m[0] };
                (prev, cur) = (cur, next);
            }
        }
        ends
    }

    fn remove_edge(&mut self, p: Pt, q: Pt, dirty: &mut Vec<(Box2, Option<RunKey>)>) {
        for (x, y) in [(p, q), (q, p)] {
            if let Some(n) = self.b.nbrs.get_mut(&x) {
                n.retain(|&z| z != y);
            }
        }
        if let Some(id) = self.edge_seg.remove(&key_of(p, q)) {
            self.segs.alive[id as usize] = false;
            self.stale += 1;
            let s = &self.segs.list[id as usize];
            dirty.push((seg_box(s.0, s.1), None));
        }
        for x in [p, q] {
            if self.b.nbrs.get(&x).is_some_and(Vec::is_empty) {
                self.b.nbrs.remove(&x);
                if let Some(c) = self.b.pos.remove(&x) {
                    dirty.push(([c.x, c.y, c.x, c.y], None));
                }
                if let Some(id) = self.pt_id.remove(&x) {
                    self.pts.alive[id as usize] = false;
                    self.stale += 1;
                }
            }
        }
    }

    fn add_edge(
        &mut self,
        t: &Tessellation,
        (p, q, f): (Pt, Pt, usize),
        dirty: &mut Vec<(Box2, Option<RunKey>)>,
    ) {
        for x in [p, q] {
            if let std::collections::hash_map::Entry::Vacant(v) = self.b.pos.entry(x) {
                let c = t.pos(x, f);
                v.insert(c);
                self.pt_id.insert(x, self.pts.push((c, x)));
                self.stale += 1;
                dirty.push(([c.x, c.y, c.x, c.y], None));
            }
        }
        self.b.nbrs.entry(p).or_default().push(q);
        self.b.nbrs.entry(q).or_default().push(p);
        let (a, b) = (self.b.pos[&p], self.b.pos[&q]);
        let id = self.segs.push((a, b, (p, q)), None);
        self.edge_seg.insert(key_of(p, q), id);
        self.stale += 1;
        dirty.push((seg_box(a, b), None));
    }

    /// Where boundary point `p` lies (metres), while it is on the boundary.
    #[must_use]
    pub fn pos(&self, p: Pt) -> Option<Coord> {
        self.b.pos.get(&p).copied()
    }

    /// Obstacles added or gone since the bucket grids were built, against those there: when
    /// this grows large, a straightening from scratch is as quick as following edits.
    #[must_use]
    pub fn staleness(&self) -> f64 {
        self.stale as f64 / self.segs.list.len().max(1) as f64
    }
}
