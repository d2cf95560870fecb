//! The edit operations on one community's state: each is a reassignment of atoms, so the grids
//! tile the community and no building is split by construction. Every operation checks that
//! the grids it touches stay whole (one piece, not empty) and leaves locked grids alone.

use super::EditError;
use super::state::State;
use crate::partition::Band;
use crate::partition::fabric::Fabric;
use crate::partition::solve::{self, Objective};
use crate::partition::tessellation::{Adj, AtomGraph};
use geo::Coord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An edit of a draft plan, as the CLI and `POST /plans/{id}/edits` take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Move buildings (by id) and atoms (by id within the community of `to`) into grid `to`.
    Move {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buildings: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        atoms: Vec<u32>,
        to: String,
    },
    /// Merge two or more adjacent grids into the first one's code.
    Merge {
        grids: Vec<String>,
    },
    /// Split a grid in two: balanced, or along `line` (a GeoJSON LineString in WGS84).
    Split {
        grid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<Value>,
    },
    /// Lock grids: no automatic step changes them, and edits refuse to touch them.
    Lock {
        grids: Vec<String>,
    },
    Unlock {
        grids: Vec<String>,
    },
    /// Redraw these grids so that all are in band, moving the fewest households; nothing
    /// outside them changes.
    Resolve {
        grids: Vec<String>,
    },
    /// A new grid of these buildings and atoms (atoms need `community`).
    NewGrid {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buildings: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        atoms: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        community: Option<String>,
    },
}

impl Op {
    /// The grid codes the operation names.
    #[must_use]
    pub fn codes(&self) -> Vec<&str> {
        match self {
            Op::Move { to, .. } => vec![to.as_str()],
            Op::Merge { grids }
            | Op::Lock { grids }
            | Op::Unlock { grids }
            | Op::Resolve { grids } => grids.iter().map(String::as_str).collect(),
            Op::Split { grid, .. } => vec![grid.as_str()],
            Op::NewGrid { .. } => Vec::new(),
        }
    }

    /// The building ids the operation names.
    #[must_use]
    pub fn buildings(&self) -> &[String] {
        match self {
            Op::Move { buildings, .. } | Op::NewGrid { buildings, .. } => buildings,
            _ => &[],
        }
    }

    /// The operation's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Op::Move { .. } => "move",
            Op::Merge { .. } => "merge",
            Op::Split { .. } => "split",
            Op::Lock { .. } => "lock",
            Op::Unlock { .. } => "unlock",
            Op::Resolve { .. } => "resolve",
            Op::NewGrid { .. } => "new_grid",
        }
    }
}

/// JSON schema of an edit (OpenAPI): one object per operation, told apart by `op`.
#[must_use]
pub fn op_schema() -> Value {
    let codes = serde_json::json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    let ids = serde_json::json!({"type": "array", "items": {"type": "string"}});
    let atoms = serde_json::json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": u32::MAX}});
    let reason = serde_json::json!({"type": "string", "nullable": true, "description": "why (kept in the edit log)"});
    let one = |op: &str, req: &[&str], props: Value| {
        let mut p = props;
        p["op"] = serde_json::json!({"const": op});
        p["reason"] = reason.clone();
        let mut r = vec!["op"];
        r.extend_from_slice(req);
        serde_json::json!({"type": "object", "required": r, "properties": p, "additionalProperties": false})
    };
    serde_json::json!({"oneOf": [
        one("move", &["to"], serde_json::json!({"buildings": ids, "atoms": atoms, "to": {"type": "string"}})),
        one("merge", &["grids"], serde_json::json!({"grids": codes})),
        one("split", &["grid"], serde_json::json!({"grid": {"type": "string"}, "line": {"type": "object", "nullable": true, "description": "GeoJSON LineString (WGS84)"}})),
        one("lock", &["grids"], serde_json::json!({"grids": codes})),
        one("unlock", &["grids"], serde_json::json!({"grids": codes})),
        one("resolve", &["grids"], serde_json::json!({"grids": codes})),
        one("new_grid", &[], serde_json::json!({"buildings": ids, "atoms": atoms, "community": {"type": "string", "nullable": true}})),
    ]})
}

/// What an operation did: the new state, a summary, warnings.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state: State,
    pub summary: String,
    pub warnings: Vec<String>,
}

/// What an operation reads besides the state.
pub struct Input<'a> {
    pub fabric: &'a Fabric,
    pub band: Band,
    /// Fabric building index of each building id named by the operation.
    pub buildings: &'a std::collections::HashMap<String, u32>,
}

/// What one operation did: summary, warnings, the grids it touched (indices in the new state).
type Done = (String, Vec<String>, Vec<usize>);

/// Apply `op` to `st`.
///
/// # Errors
/// A grid or building that is not there, a locked grid touched, or a result that would cut a
/// grid in two or leave it empty.
pub fn apply(op: &Op, st: &State, i: &Input) -> Result<Applied, EditError> {
    let mut s = st.clone();
    let (summary, mut warnings, touched) = match op {
        Op::Move {
            buildings,
            atoms,
            to,
        } => op_move(&mut s, i, (buildings, atoms), to, op)?,
        Op::Merge { grids } => op_merge(&mut s, grids)?,
        Op::Split { grid: code, line } => op_split(&mut s, i, code, line.as_ref())?,
        Op::Lock { grids } | Op::Unlock { grids } => {
            op_lock(&mut s, grids, matches!(op, Op::Lock { .. }))?
        }
        Op::Resolve { grids } => resolve(&mut s, i, grids)?,
        Op::NewGrid {
            buildings, atoms, ..
        } => op_new_grid(&mut s, i, (buildings, atoms), op)?,
    };
    check_whole(i.fabric, &s, &touched)?;
    let codes: Vec<String> = touched.iter().map(|&g| s.grids[g].code.clone()).collect();
    s.normalize();
    for c in codes {
        if let Some(g) = s.index(&c) {
            let w: f64 = s
                .atoms
                .iter()
                .enumerate()
                .filter(|(_, x)| **x as usize == g)
                .filter_map(|(a, _)| i.fabric.atom(a).map(|at| at.weight))
                .sum();
            if !i.band.contains(w) {
                warnings.push(format!(
                    "grid {c} holds {w:.0}, outside the band {:.0}–{:.0}",
                    i.band.min(),
                    i.band.max()
                ));
            }
        }
    }
    Ok(Applied {
        state: s,
        summary,
        warnings,
    })
}

fn op_move(
    s: &mut State,
    i: &Input,
    (buildings, atoms): (&[String], &[u32]),
    to: &str,
    op: &Op,
) -> Result<Done, EditError> {
    let set = selection(i, s, buildings, atoms)?;
    let t = grid(s, to)?;
    unlocked(s, &[t])?;
    let from: Vec<usize> = distinct(set.iter().map(|&a| s.atoms[a as usize] as usize));
    unlocked(s, &from)?;
    if from == [t] {
        return Err(EditError::Refused(format!(
            "the selection is in grid {to} already"
        )));
    }
    let borders = set.iter().any(|&a| {
        s.atoms[a as usize] as usize == t
            || i.fabric
                .neighbours(a as usize)
                .iter()
                .any(|e| s.atoms[e.nbr as usize] as usize == t && !set.contains(&e.nbr))
    });
    if !borders {
        return Err(EditError::Refused(format!(
            "grid {to} does not border the selection; move it to a neighbouring grid"
        )));
    }
    let names: Vec<String> = from.iter().map(|&g| s.grids[g].code.clone()).collect();
    for &a in &set {
        s.atoms[a as usize] = t as u32;
    }
    let mut touched = from;
    touched.push(t);
    Ok((
        format!(
            "moved {} atoms ({} households) from {} to {to}",
            set.len(),
            households(i.fabric, &set),
            names.join(", ")
        ),
        cluster_warnings(i, &set, op),
        touched,
    ))
}

fn op_merge(s: &mut State, grids: &[String]) -> Result<Done, EditError> {
    if grids.len() < 2 {
        return Err(EditError::Invalid("merge needs two or more grids".into()));
    }
    let gs: Vec<usize> = grids.iter().map(|c| grid(s, c)).collect::<Result<_, _>>()?;
    if distinct(gs.iter().copied()).len() != gs.len() {
        return Err(EditError::Invalid("merge names a grid twice".into()));
    }
    unlocked(s, &gs)?;
    for a in &mut s.atoms {
        if gs.contains(&(*a as usize)) {
            *a = gs[0] as u32;
        }
    }
    Ok((
        format!("merged {} into {}", grids[1..].join(", "), grids[0]),
        Vec::new(),
        vec![gs[0]],
    ))
}

fn op_split(s: &mut State, i: &Input, code: &str, line: Option<&Value>) -> Result<Done, EditError> {
    let g = grid(s, code)?;
    unlocked(s, &[g])?;
    let members: Vec<u32> = s.members().swap_remove(g);
    if members.len() < 2 {
        return Err(EditError::Refused(format!(
            "grid {code} is a single atom and cannot be split"
        )));
    }
    let side = match line {
        Some(l) => split_by_line(i.fabric, &members, l)?,
        None => split_balanced(i.fabric, &members, i.band),
    };
    let new_code = s.next_code(&i.fabric.community);
    let n = s.push(new_code.clone());
    let (mut hh_a, mut hh_b) = (0u64, 0u64);
    for (&a, &sd) in members.iter().zip(&side) {
        let h = i.fabric.atom(a as usize).map_or(0, |x| x.households);
        if sd {
            hh_b += h;
        } else {
            hh_a += h;
        }
    }
    // the larger side keeps the code
    let moved_side = hh_b <= hh_a;
    for (&a, &sd) in members.iter().zip(&side) {
        if sd == moved_side {
            s.atoms[a as usize] = n;
        }
    }
    Ok((
        format!(
            "split {code} into {code} ({}) and {new_code} ({})",
            hh_a.max(hh_b),
            hh_a.min(hh_b)
        ),
        Vec::new(),
        vec![g, n as usize],
    ))
}

fn op_lock(s: &mut State, grids: &[String], lock: bool) -> Result<Done, EditError> {
    let gs: Vec<usize> = grids.iter().map(|c| grid(s, c)).collect::<Result<_, _>>()?;
    for &g in &gs {
        s.grids[g].locked = lock;
    }
    Ok((
        format!(
            "{} {}",
            if lock { "locked" } else { "unlocked" },
            grids.join(", ")
        ),
        Vec::new(),
        Vec::new(),
    ))
}

fn op_new_grid(
    s: &mut State,
    i: &Input,
    (buildings, atoms): (&[String], &[u32]),
    op: &Op,
) -> Result<Done, EditError> {
    let set = selection(i, s, buildings, atoms)?;
    let from: Vec<usize> = distinct(set.iter().map(|&a| s.atoms[a as usize] as usize));
    unlocked(s, &from)?;
    let code = s.next_code(&i.fabric.community);
    let n = s.push(code.clone());
    for &a in &set {
        s.atoms[a as usize] = n;
    }
    let mut touched = from;
    touched.push(n as usize);
    Ok((
        format!(
            "new grid {code} of {} atoms ({} households)",
            set.len(),
            households(i.fabric, &set)
        ),
        cluster_warnings(i, &set, op),
        touched,
    ))
}

fn distinct(it: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn households(f: &Fabric, set: &[u32]) -> u64 {
    set.iter()
        .filter_map(|&a| f.atom(a as usize))
        .map(|a| a.households)
        .sum()
}

fn grid(s: &State, code: &str) -> Result<usize, EditError> {
    s.index(code).ok_or_else(|| {
        EditError::NotFound(format!("grid {code} is not in this community of the plan"))
    })
}

fn unlocked(s: &State, gs: &[usize]) -> Result<(), EditError> {
    for &g in gs {
        if s.grids[g].locked {
            return Err(EditError::Refused(format!(
                "grid {} is locked; unlock it first",
                s.grids[g].code
            )));
        }
    }
    Ok(())
}

/// The atoms of the named buildings and atom ids.
fn selection(
    i: &Input,
    st: &State,
    buildings: &[String],
    atoms: &[u32],
) -> Result<Vec<u32>, EditError> {
    if buildings.is_empty() && atoms.is_empty() {
        return Err(EditError::Invalid(
            "name the buildings or atoms to move".into(),
        ));
    }
    let of = i.fabric.atom_of_building();
    let mut set = Vec::new();
    for b in buildings {
        let k = i.buildings.get(b).ok_or_else(|| {
            EditError::NotFound(format!(
                "building {b} is not in community {}",
                i.fabric.community
            ))
        })?;
        set.push(of[*k as usize]);
    }
    for &a in atoms {
        if a as usize >= st.atoms.len() {
            return Err(EditError::NotFound(format!(
                "atom {a} is not in community {} (it has {} atoms)",
                i.fabric.community,
                st.atoms.len()
            )));
        }
        set.push(a);
    }
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

/// Buildings that go along because they share an atom with a named one.
fn cluster_warnings(i: &Input, set: &[u32], op: &Op) -> Vec<String> {
    let named: std::collections::HashSet<&str> =
        op.buildings().iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for &a in set {
        if let Some(at) = i.fabric.atom(a as usize) {
            let ids: Vec<&str> = at
                .buildings
                .iter()
                .map(|&b| i.fabric.buildings[b as usize].id.as_str())
                .collect();
            if ids.iter().any(|x| named.contains(x)) {
                let along: Vec<&str> = ids.iter().copied().filter(|x| !named.contains(x)).collect();
                if !along.is_empty() {
                    out.push(format!(
                        "buildings {} overlap a named building and go with it",
                        along.join(", ")
                    ));
                }
            }
        }
    }
    out
}

/// Every touched grid is one piece and not empty.
fn check_whole(f: &Fabric, s: &State, touched: &[usize]) -> Result<(), EditError> {
    let members = s.members();
    for &g in touched {
        let m = &members[g];
        if m.is_empty() {
            return Err(EditError::Refused(format!(
                "the edit would leave grid {} empty",
                s.grids[g].code
            )));
        }
        let pieces = pieces(f, s, m);
        if pieces > 1 {
            return Err(EditError::Refused(format!(
                "the edit would cut grid {} into {pieces} pieces",
                s.grids[g].code
            )));
        }
    }
    Ok(())
}

/// Connected pieces of grid `g` of `s`.
pub(super) fn pieces_of(f: &Fabric, s: &State, g: usize) -> usize {
    let m: Vec<u32> = (0..s.atoms.len() as u32)
        .filter(|&a| s.atoms[a as usize] as usize == g)
        .collect();
    if m.is_empty() { 0 } else { pieces(f, s, &m) }
}

/// Connected pieces of the atoms `m` (all in one grid of `s`).
fn pieces(f: &Fabric, s: &State, m: &[u32]) -> usize {
    let g = s.atoms[m[0] as usize];
    let mut seen: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let mut n = 0;
    for &start in m {
        if !seen.insert(start) {
            continue;
        }
        n += 1;
        let mut stack = vec![start];
        while let Some(a) = stack.pop() {
            for e in f.neighbours(a as usize) {
                if e.len > 0.0 && s.atoms[e.nbr as usize] == g && seen.insert(e.nbr) {
                    stack.push(e.nbr);
                }
            }
        }
    }
    n
}

/// The atoms `m` as a graph of their own (ids in `m`'s order); edges to others count as outer
/// boundary; kept polygons are plain atoms here.
pub(super) fn subgraph(f: &Fabric, m: &[u32]) -> AtomGraph {
    let idx: std::collections::HashMap<u32, u32> =
        m.iter().enumerate().map(|(k, &a)| (a, k as u32)).collect();
    let mut atoms = Vec::with_capacity(m.len());
    let mut start = Vec::with_capacity(m.len() + 1);
    let mut adj = Vec::new();
    for &a in m {
        start.push(adj.len());
        let mut at = f.atom(a as usize).cloned().unwrap_or_default();
        at.fixed = None;
        for e in f.neighbours(a as usize) {
            match idx.get(&e.nbr) {
                Some(&k) => adj.push(Adj { nbr: k, ..e }),
                None => at.outer += e.len,
            }
        }
        atoms.push(at);
    }
    start.push(adj.len());
    AtomGraph { atoms, start, adj }
}

/// Two balanced halves (true = second) by the partitioner's bisection and local search.
fn split_balanced(f: &Fabric, m: &[u32], band: Band) -> Vec<bool> {
    let g = subgraph(f, m);
    let w: f64 = g.atoms.iter().map(|a| a.weight).sum();
    let half = w / 2.0;
    let b = Band::new(band.min().min(half), half, band.max().max(half)).unwrap_or(band);
    let sol = solve::partition_k(&g, b, Some(2), 0, Objective::default());
    let first = sol.grid_of.first().copied().unwrap_or(0);
    sol.grid_of.iter().map(|&x| x != first).collect()
}

/// The side of `line` each atom's centroid lies on (true = left of the line's direction).
fn split_by_line(f: &Fabric, m: &[u32], line: &Value) -> Result<Vec<bool>, EditError> {
    let pts = line_coords(line)?;
    let frame = f
        .frame()
        .ok_or_else(|| EditError::Invalid("community without extent".into()))?;
    let pm: Vec<Coord> = pts.iter().map(|&c| frame.fwd(c)).collect();
    let side: Vec<bool> = m
        .iter()
        .map(|&a| {
            let c = f
                .atom(a as usize)
                .map_or(Coord { x: 0.0, y: 0.0 }, |x| x.centroid);
            side_of(&pm, c)
        })
        .collect();
    if side.iter().all(|&x| x) || side.iter().all(|&x| !x) {
        return Err(EditError::Refused(
            "the line does not cross the grid: every atom lies on one side of it".into(),
        ));
    }
    Ok(side)
}

/// A GeoJSON LineString (geometry or feature) as coordinates.
fn line_coords(v: &Value) -> Result<Vec<Coord>, EditError> {
    let g = if v.get("type").and_then(Value::as_str) == Some("Feature") {
        &v["geometry"]
    } else {
        v
    };
    if g.get("type").and_then(Value::as_str) != Some("LineString") {
        return Err(EditError::Invalid(
            "line: expected a GeoJSON LineString (a geometry or a feature)".into(),
        ));
    }
    let pts: Vec<Coord> = g["coordinates"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some(Coord {
                        x: p.get(0)?.as_f64()?,
                        y: p.get(1)?.as_f64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if pts.len() < 2 || pts.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return Err(EditError::Invalid(
            "line: a LineString needs two or more [lon, lat] positions".into(),
        ));
    }
    Ok(pts)
}

/// Left of the polyline: by the nearest segment (its ends extended beyond the first and last).
fn side_of(pl: &[Coord], p: Coord) -> bool {
    let mut best = (f64::INFINITY, 0.0);
    for w in pl.windows(2) {
        let (a, b) = (w[0], w[1]);
        let d = crate::geom::seg_point_dist(a, b, p);
        let cross = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
        if d < best.0 {
            best = (d, cross);
        }
    }
    best.1 > 0.0
}

/// Redraw the selected grids: first by moving boundary atoms between them (fewest households),
/// then, if grids are still out of band, by partitioning their union afresh when that leaves
/// fewer out of band; codes go to the new grids sharing most households with them.
fn resolve(
    s: &mut State,
    i: &Input,
    grids: &[String],
) -> Result<(String, Vec<String>, Vec<usize>), EditError> {
    let gs: Vec<usize> = grids.iter().map(|c| grid(s, c)).collect::<Result<_, _>>()?;
    let gs = distinct(gs.into_iter());
    unlocked(s, &gs)?;
    let f = i.fabric;
    let band = i.band;
    let weight_of = |s: &State, g: usize| -> f64 {
        s.atoms
            .iter()
            .enumerate()
            .filter(|(_, x)| **x as usize == g)
            .filter_map(|(a, _)| f.atom(a).map(|at| at.weight))
            .sum()
    };
    let out_of_band = |s: &State| {
        gs.iter()
            .filter(|&&g| !band.contains(weight_of(s, g)))
            .count()
    };
    let before = out_of_band(s);
    if before == 0 {
        return Ok((
            format!("{} already in band; nothing changed", grids.join(", ")),
            Vec::new(),
            gs,
        ));
    }
    let original = s.clone();
    let moved = greedy_repair(s, f, &gs, band);
    if out_of_band(s) == 0 {
        return Ok((
            format!(
                "resolved {}: {moved} households moved between them",
                grids.join(", ")
            ),
            Vec::new(),
            gs,
        ));
    }
    let (fresh, touched, n_new) = afresh(&original, f, &gs, band);
    let fresh_out = touched
        .iter()
        .filter(|&&g| {
            let w = weight_of(&fresh, g);
            w > 0.0 && !band.contains(w)
        })
        .count();
    if fresh_out < out_of_band(s) {
        let moved: u64 = (0..s.atoms.len())
            .filter(|&a| fresh.atoms[a] != original.atoms[a])
            .filter_map(|a| f.atom(a))
            .map(|x| x.households)
            .sum();
        *s = fresh;
        Ok((
            format!(
                "resolved {} afresh into {n_new} grids: {moved} households moved",
                grids.join(", ")
            ),
            Vec::new(),
            touched,
        ))
    } else {
        Ok((
            format!(
                "resolved {}: {moved} households moved between them",
                grids.join(", ")
            ),
            Vec::new(),
            gs,
        ))
    }
}

/// The union of grids `gs` partitioned afresh, each new grid taking the code of the old one it
/// shares most households with (new codes for the rest): the state, the grids touched, their number.
fn afresh(original: &State, f: &Fabric, gs: &[usize], band: Band) -> (State, Vec<usize>, usize) {
    let members: Vec<u32> = (0..original.atoms.len() as u32)
        .filter(|&a| gs.contains(&(original.atoms[a as usize] as usize)))
        .collect();
    let sub = subgraph(f, &members);
    let sol = solve::partition(&sub, band, 0, Objective::default());
    let mut fresh = original.clone();
    let mut share = vec![vec![0u64; gs.len()]; sol.n_grids];
    for (k, &a) in members.iter().enumerate() {
        let old = gs
            .iter()
            .position(|&g| g == original.atoms[a as usize] as usize)
            .unwrap_or(0);
        share[sol.grid_of[k] as usize][old] += f.atom(a as usize).map_or(0, |x| x.households) + 1;
    }
    let mut pairs: Vec<(u64, usize, usize)> = Vec::new();
    for (n, row) in share.iter().enumerate() {
        for (o, &h) in row.iter().enumerate() {
            pairs.push((h, n, o));
        }
    }
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut new_of = vec![u32::MAX; sol.n_grids];
    let mut used = vec![false; gs.len()];
    for (_, n, o) in pairs {
        if new_of[n] == u32::MAX && !used[o] {
            new_of[n] = gs[o] as u32;
            used[o] = true;
        }
    }
    let mut touched = gs.to_vec();
    for slot in &mut new_of {
        if *slot == u32::MAX {
            let code = fresh.next_code(&f.community);
            *slot = fresh.push(code);
            touched.push(*slot as usize);
        }
    }
    for (k, &a) in members.iter().enumerate() {
        fresh.atoms[a as usize] = new_of[sol.grid_of[k] as usize];
    }
    // old grids left without atoms are dropped by the caller's normalisation
    touched.retain(|&g| fresh.atoms.iter().any(|&x| x as usize == g));
    (fresh, touched, sol.n_grids)
}

/// Move boundary atoms between the grids `gs` while that lowers their total distance from
/// the band, smallest households first; every move keeps both grids whole. Households moved.
pub(super) fn greedy_repair(s: &mut State, f: &Fabric, gs: &[usize], band: Band) -> u64 {
    let viol = |w: f64| (band.min() - w).max(0.0) + (w - band.max()).max(0.0);
    let mut w: Vec<f64> = vec![0.0; s.grids.len()];
    for (a, &g) in s.atoms.iter().enumerate() {
        w[g as usize] += f.atom(a).map_or(0.0, |x| x.weight);
    }
    let mut moved = 0u64;
    for _ in 0..10_000 {
        let mut best: Option<(f64, u64, u32, usize)> = None;
        for a in 0..s.atoms.len() as u32 {
            let from = s.atoms[a as usize] as usize;
            if !gs.contains(&from) {
                continue;
            }
            let Some(at) = f.atom(a as usize) else {
                continue;
            };
            for e in f.neighbours(a as usize) {
                let to = s.atoms[e.nbr as usize] as usize;
                if to == from || !gs.contains(&to) || e.len <= 0.0 {
                    continue;
                }
                let gain = viol(w[from]) + viol(w[to])
                    - viol(w[from] - at.weight)
                    - viol(w[to] + at.weight);
                if gain <= 1e-9 {
                    continue;
                }
                let key = (gain, at.households, a, to);
                let better = match best {
                    None => true,
                    Some(b) => {
                        gain > b.0 + 1e-9
                            || ((gain - b.0).abs() <= 1e-9
                                && (at.households, a, to) < (b.1, b.2, b.3))
                    }
                };
                if better {
                    best = Some(key);
                }
            }
        }
        let Some((_, _, a, to)) = best else { break };
        let from = s.atoms[a as usize] as usize;
        s.atoms[a as usize] = to as u32;
        let from_members: Vec<u32> = (0..s.atoms.len() as u32)
            .filter(|&x| s.atoms[x as usize] as usize == from)
            .collect();
        if from_members.is_empty() || pieces(f, s, &from_members) > 1 {
            s.atoms[a as usize] = from as u32;
            // try no other move of this atom this round: mark by breaking ties next time
            if !try_other(s, f, gs, band, &mut w, &mut moved, a) {
                break;
            }
            continue;
        }
        let at = f
            .atom(a as usize)
            .map_or((0.0, 0), |x| (x.weight, x.households));
        w[from] -= at.0;
        w[to] += at.0;
        moved += at.1;
    }
    moved
}

/// After the best move would cut its grid: the best move of any other atom that keeps grids whole.
fn try_other(
    s: &mut State,
    f: &Fabric,
    gs: &[usize],
    band: Band,
    w: &mut [f64],
    moved: &mut u64,
    skip: u32,
) -> bool {
    let viol = |x: f64| (band.min() - x).max(0.0) + (x - band.max()).max(0.0);
    let mut cands: Vec<(f64, u64, u32, usize)> = Vec::new();
    for a in 0..s.atoms.len() as u32 {
        if a == skip {
            continue;
        }
        let from = s.atoms[a as usize] as usize;
        if !gs.contains(&from) {
            continue;
        }
        let Some(at) = f.atom(a as usize) else {
            continue;
        };
        for e in f.neighbours(a as usize) {
            let to = s.atoms[e.nbr as usize] as usize;
            if to == from || !gs.contains(&to) || e.len <= 0.0 {
                continue;
            }
            let gain =
                viol(w[from]) + viol(w[to]) - viol(w[from] - at.weight) - viol(w[to] + at.weight);
            if gain > 1e-9 {
                cands.push((gain, at.households, a, to));
            }
        }
    }
    cands.sort_by(|x, y| {
        y.0.total_cmp(&x.0)
            .then(x.1.cmp(&y.1))
            .then(x.2.cmp(&y.2))
            .then(x.3.cmp(&y.3))
    });
    cands.dedup_by(|x, y| x.2 == y.2 && x.3 == y.3);
    for (_, _, a, to) in cands.into_iter().take(200) {
        let from = s.atoms[a as usize] as usize;
        s.atoms[a as usize] = to as u32;
        let m: Vec<u32> = (0..s.atoms.len() as u32)
            .filter(|&x| s.atoms[x as usize] as usize == from)
            .collect();
        if !m.is_empty() && pieces(f, s, &m) == 1 {
            let at = f
                .atom(a as usize)
                .map_or((0.0, 0), |x| (x.weight, x.households));
            w[from] -= at.0;
            w[to] += at.0;
            *moved += at.1;
            return true;
        }
        s.atoms[a as usize] = from as u32;
    }
    false
}
