//! Rebalance (动态调整): adjust the grids in force to updated buildings while changing as little
//! as possible (不推倒重来). Grids still in band stay exactly as they are (code and boundary);
//! only grids out of band are redrawn — first alone, then with their neighbours if that is not
//! enough. Redrawn grids inherit the old code they share most households with; the rest get new
//! codes.

use super::{
    Band, FixedGrid, Grid, RegridCache, RegridError, RegridParams, RegridResult, regrid_with,
};
use crate::geom::interior_point::interior_point;
use crate::model::{Building, Community, Road};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a rebalance changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    pub kept_grids: Vec<String>,
    pub redrawn_grids: Vec<String>,
    pub new_grids: Vec<String>,
    pub retired_grids: Vec<String>,
    pub moved_buildings: usize,
    pub moved_households: u64,
    /// Households that changed grid ÷ households of the communities concerned (percent).
    pub moved_households_pct: f64,
    /// Per community: (households, moved households).
    pub per_community: BTreeMap<String, (u64, u64)>,
    /// Buildings that changed grid: (building id, old code, new code).
    pub moved: Vec<(String, String, String)>,
    pub stage: u8,
    /// Communities kept whole because their grids could not be redrawn: (code, why).
    pub kept_communities: Vec<(String, String)>,
}

/// The old grid of each building (by its interior point), or None.
fn old_grid_of(buildings: &[Building], old: &[FixedGrid]) -> Vec<Option<usize>> {
    buildings
        .iter()
        .map(|b| {
            let p = interior_point(&b.geometry)?;
            old.iter()
                .position(|g| crate::geom::point_in_polygons(std::slice::from_ref(&g.polygon), p))
        })
        .collect()
}

/// Grids that share an edge (at least two vertices).
fn neighbours(old: &[FixedGrid]) -> Vec<HashSet<usize>> {
    let mut by_vertex: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (i, g) in old.iter().enumerate() {
        let mut seen = HashSet::new();
        for r in std::iter::once(g.polygon.exterior()).chain(g.polygon.interiors()) {
            for c in &r.0 {
                let k = (c.x.to_bits(), c.y.to_bits());
                if seen.insert(k) {
                    by_vertex.entry(k).or_default().push(i);
                }
            }
        }
    }
    let mut shared: HashMap<(usize, usize), usize> = HashMap::new();
    for gs in by_vertex.values() {
        for a in 0..gs.len() {
            for b in a + 1..gs.len() {
                *shared
                    .entry((gs[a].min(gs[b]), gs[a].max(gs[b])))
                    .or_insert(0) += 1;
            }
        }
    }
    let mut n = vec![HashSet::new(); old.len()];
    for ((a, b), k) in shared {
        if k >= 2 {
            n[a].insert(b);
            n[b].insert(a);
        }
    }
    n
}

/// The grids where something changed since they were drawn: households that differ from those
/// the grid held (`FixedGrid::households`), or buildings that differ from those the previous
/// assignments gave it (a building new, gone or standing in another grid). A grid that knows
/// neither counts as changed.
fn changed_grids(
    buildings: &[Building],
    old: &[FixedGrid],
    (owner, was): (&[Option<usize>], &[Option<usize>]),
    previous: Option<&HashMap<String, String>>,
    code_index: &HashMap<&str, usize>,
) -> Vec<bool> {
    let mut hh = vec![0u64; old.len()];
    let mut changed = vec![false; old.len()];
    for (b, o) in buildings.iter().zip(owner) {
        if let Some(g) = o {
            hh[*g] += u64::from(b.households);
        }
    }
    if let Some(prev) = previous {
        // listed buildings per grid, against those of them still standing
        let mut listed = vec![0usize; old.len()];
        for c in prev.values() {
            if let Some(&g) = code_index.get(c.as_str()) {
                listed[g] += 1;
            }
        }
        let mut present = vec![0usize; old.len()];
        for (o, w) in owner.iter().zip(was) {
            if let Some(g) = w {
                present[*g] += 1;
            }
            if o != w {
                for g in [o, w].into_iter().flatten() {
                    changed[*g] = true;
                }
            }
        }
        for g in 0..old.len() {
            changed[g] |= listed[g] != present[g];
        }
    }
    for (g, grid) in old.iter().enumerate() {
        changed[g] |= match grid.households {
            Some(h) => h != hh[g],
            None => previous.is_none(),
        };
    }
    changed
}

/// The grid each building was in: from the previous assignments when given, else `owner`.
fn was_in(
    buildings: &[Building],
    code_index: &HashMap<&str, usize>,
    previous: Option<&HashMap<String, String>>,
    owner: &[Option<usize>],
) -> Vec<Option<usize>> {
    match previous {
        Some(prev) => buildings
            .iter()
            .map(|b| {
                prev.get(&b.id)
                    .and_then(|c| code_index.get(c.as_str()).copied())
            })
            .collect(),
        None => owner.to_vec(),
    }
}

/// Households per old grid, which grids are out of band where something changed (a grid of one
/// building over the maximum and a locked grid are fine), and the grids free at first: those,
/// with the neighbours in their community of any below the minimum.
fn first_free(
    buildings: &[Building],
    old: &[FixedGrid],
    (owner, changed): (&[Option<usize>], &[bool]),
    nbrs: &[HashSet<usize>],
    locked: &HashSet<String>,
    band: Band,
) -> (Vec<f64>, Vec<bool>, HashSet<usize>) {
    let mut w = vec![0.0; old.len()];
    let mut nb = vec![0usize; old.len()];
    let mut single_big = vec![false; old.len()];
    for (b, o) in buildings.iter().zip(owner) {
        if let Some(g) = o {
            w[*g] += b.weight;
            nb[*g] += 1;
            single_big[*g] = b.weight > band.max();
        }
    }
    let out_of_band: Vec<bool> = (0..old.len())
        .map(|g| {
            let fine = band.contains(w[g]) || locked.contains(&old[g].code);
            changed[g] && !(fine || (nb[g] == 1 && single_big[g]))
        })
        .collect();
    // a grid below the minimum cannot be put right alone: its neighbours join from the start
    let mut free: HashSet<usize> = (0..old.len()).filter(|&g| out_of_band[g]).collect();
    let short: Vec<usize> = free
        .iter()
        .copied()
        .filter(|&g| w[g] < band.min())
        .collect();
    for g in short {
        free.extend(
            nbrs[g].iter().copied().filter(|&h| {
                old[h].community == old[g].community && !locked.contains(&old[h].code)
            }),
        );
    }
    (w, out_of_band, free)
}

/// Rebalance `old` grids for updated `buildings`.
///
/// # Errors
/// As [`regrid`].
// Layers, the plan in force, locks, previous assignments and settings are all distinct inputs.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
pub fn rebalance(
    communities: &[Community],
    buildings: &[Building],
    roads: &[Road],
    old: &[FixedGrid],
    locked: &HashSet<String>,
    previous: Option<&HashMap<String, String>>,
    params: &RegridParams,
    progress: &(dyn Fn() + Sync),
) -> Result<(RegridResult, Changes), RegridError> {
    let band = params.band;
    let owner = old_grid_of(buildings, old);
    // the grid each building was in: from the previous assignments when given (buildings not
    // listed there are new and cannot have moved), else from where the building stands
    let code_index: HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, g)| (g.code.as_str(), i))
        .collect();
    let was = was_in(buildings, &code_index, previous, &owner);
    // only grids where something changed are redrawn at first (their neighbours join in stage 2
    // when that is not enough): a grid left as it was is kept, in band or not, so a change stays
    // local to where it happened
    let changed = changed_grids(buildings, old, (&owner, &was), previous, &code_index);
    let nbrs = neighbours(old);
    let (w, out_of_band, mut free) =
        first_free(buildings, old, (&owner, &changed), &nbrs, locked, band);
    let mut last: Option<(RegridResult, Changes)> = None;
    // stage 1: each grid out of band is redrawn alone; stage 2: those that could not be put
    // right alone are redrawn with their neighbours of the same community
    let mut kept_whole: Vec<(String, String)> = Vec::new();
    let cache = RegridCache::default();
    // one attempt with the grids outside `free` kept: regrid, codes, change report, notes
    let redraw = |free: &mut HashSet<usize>,
                  kept_whole: &mut Vec<(String, String)>,
                  stage: u8|
     -> Result<(RegridResult, Changes), RegridError> {
        let run = attempt(
            (communities, buildings, roads, old),
            params,
            progress,
            (free, &cache),
            kept_whole,
        )?;
        Ok(finish(
            run,
            old,
            (&owner, &was),
            free,
            buildings,
            stage,
            kept_whole,
        ))
    };
    for stage in 1..=2u8 {
        if stage == 2 {
            let Some((res, _)) = &last else { break };
            let ctx = (old, nbrs.as_slice(), locked, owner.as_slice());
            // first with one neighbour each (the likeliest to make a grid in band with what is
            // left), so that a short remainder joins one grid rather than redrawing all around
            if let Some(won) = narrowly(res, ctx, (&free, &kept_whole), (band, &w), &redraw)? {
                (free, kept_whole, last) = (won.0, won.1, Some(won.2));
                break;
            }
            let Some((res, _)) = &last else { break };
            if !widen(res, ctx, &mut free, band) {
                break;
            }
        }
        last = Some(redraw(&mut free, &mut kept_whole, stage)?);
        if free.is_empty() {
            break;
        }
    }
    // A community whose redraw left more grids out of band than it had (a lumpy remainder
    // around many kept grids) is better kept as it was: redrawing it changed grids for nothing.
    while let Some((res, ch)) = &last {
        let worse = made_worse(res, old, &free, &out_of_band, band);
        if worse.is_empty() {
            break;
        }
        let stage = ch.stage;
        free.retain(|&g| worse.iter().all(|(c, _)| old[g].community != *c));
        kept_whole.extend(worse);
        last = Some(redraw(&mut free, &mut kept_whole, stage)?);
    }
    last.ok_or(RegridError::Band {
        min: band.min(),
        max: band.max(),
    })
}

/// Communities whose redraw left more grids out of band than they had, with why.
fn made_worse(
    res: &RegridResult,
    old: &[FixedGrid],
    free: &HashSet<usize>,
    out_of_band: &[bool],
    band: Band,
) -> Vec<(String, String)> {
    let mut worse: Vec<(String, String)> = Vec::new();
    let codes: std::collections::BTreeSet<&str> =
        free.iter().map(|&g| old[g].community.as_str()).collect();
    for code in &codes {
        let before = free
            .iter()
            .filter(|&&g| old[g].community == *code && out_of_band[g])
            .count();
        let after = res
            .grids
            .iter()
            .filter(|gr| {
                gr.community == *code && !gr.kept && !gr.oversize && !band.contains(gr.weight)
            })
            .count();
        if after > before {
            worse.push((
                (*code).to_string(),
                format!("redrawing left {after} grids out of band where {before} were"),
            ));
        }
    }
    worse
}

/// The plan in force as rebalance sees it: grids, their neighbours, the locked codes, and
/// each building's grid.
type Plan<'a> = (
    &'a [FixedGrid],
    &'a [HashSet<usize>],
    &'a HashSet<String>,
    &'a [Option<usize>],
);

/// Stage 2: the grids that could not be put right alone are redrawn with their neighbours of
/// the same community (locked ones excepted). False when nothing is left to add.
fn widen(
    res: &RegridResult,
    (old, nbrs, locked, owner): Plan<'_>,
    free: &mut HashSet<usize>,
    band: Band,
) -> bool {
    let failing = failing(res, owner, free, band);
    if failing.is_empty() {
        return false;
    }
    let extra: Vec<usize> = failing
        .keys()
        .flat_map(|&g| {
            nbrs[g]
                .iter()
                .copied()
                .filter(move |&h| old[h].community == old[g].community)
        })
        .filter(|&h| !locked.contains(&old[h].code))
        .collect();
    let before = free.len();
    free.extend(extra);
    free.len() != before
}

/// A free set, the communities kept whole and the attempt's result.
type Won = (
    HashSet<usize>,
    Vec<(String, String)>,
    (RegridResult, Changes),
);

/// Stage 2 with one neighbour per failing grid ([`narrow`]): the first attempt that leaves no
/// redrawn grid out of band and no community given up on.
fn narrowly(
    res: &RegridResult,
    ctx: Plan<'_>,
    (free, kept_whole): (&HashSet<usize>, &[(String, String)]),
    (band, w): (Band, &[f64]),
    redraw: &impl Fn(
        &mut HashSet<usize>,
        &mut Vec<(String, String)>,
        u8,
    ) -> Result<(RegridResult, Changes), RegridError>,
) -> Result<Option<Won>, RegridError> {
    for extra in narrow(res, ctx, free, band, w) {
        let mut f = free.clone();
        f.extend(extra);
        let mut kw = kept_whole.to_vec();
        let run = redraw(&mut f, &mut kw, 2)?;
        if kw.len() == kept_whole.len() && failing(&run.0, ctx.3, &f, band).is_empty() {
            return Ok(Some((f, kw, run)));
        }
    }
    Ok(None)
}

/// The free old grids whose buildings ended in a redrawn grid out of band, with the weight of
/// those grids (each counted once, for the old grid holding most of its weight).
fn failing(
    res: &RegridResult,
    owner: &[Option<usize>],
    free: &HashSet<usize>,
    band: Band,
) -> BTreeMap<usize, f64> {
    let mut share: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for &(b, g) in &res.assignment {
        let gr = &res.grids[g];
        if !gr.kept
            && !gr.oversize
            && !band.contains(gr.weight)
            && let Some(o) = owner[b].filter(|o| free.contains(o))
        {
            *share.entry((g, o)).or_default() += 1;
        }
    }
    let mut best: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (&(g, o), &n) in &share {
        let e = best.entry(g).or_insert((n, o));
        if n > e.0 {
            *e = (n, o);
        }
    }
    let mut out: BTreeMap<usize, f64> = share.keys().map(|&(_, o)| (o, 0.0)).collect();
    for (g, (_, o)) in best {
        *out.entry(o).or_default() += res.grids[g].weight;
    }
    out
}

/// Stage 2 tried narrowly first: up to three sets of extra grids, each with one neighbour per
/// failing grid — the neighbours (same community, not locked, not free) whose weight with what
/// is left out of band comes nearest the target, in band first.
fn narrow(
    res: &RegridResult,
    (old, nbrs, locked, owner): Plan<'_>,
    free: &HashSet<usize>,
    band: Band,
    w: &[f64],
) -> Vec<Vec<usize>> {
    let failing = failing(res, owner, free, band);
    let ranked: Vec<Vec<usize>> = failing
        .iter()
        .map(|(&g, &left)| {
            let mut hs: Vec<usize> = nbrs[g]
                .iter()
                .copied()
                .filter(|&h| {
                    old[h].community == old[g].community
                        && !locked.contains(&old[h].code)
                        && !free.contains(&h)
                })
                .collect();
            let key = |h: usize| {
                let sum = left + w[h];
                (!band.contains(sum), (sum - band.target()).abs())
            };
            hs.sort_by(|&a, &b| {
                let (x, y) = (key(a), key(b));
                x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)).then(a.cmp(&b))
            });
            hs
        })
        .collect();
    (0..3)
        .map(|k| {
            ranked
                .iter()
                .filter_map(|hs| hs.get(k).copied())
                .collect::<Vec<usize>>()
        })
        .filter(|x| !x.is_empty())
        .collect()
}

/// Regrid with every grid outside `free` kept. A community whose grids cannot be redrawn around
/// the kept ones (their polygons and the updated layers do not fit together there) keeps every
/// grid as it was, and the report says so: never a broken plan.
fn attempt(
    (communities, buildings, roads, old): (&[Community], &[Building], &[Road], &[FixedGrid]),
    params: &RegridParams,
    progress: &(dyn Fn() + Sync),
    (free, cache): (&mut HashSet<usize>, &RegridCache),
    kept_whole: &mut Vec<(String, String)>,
) -> Result<RegridResult, RegridError> {
    loop {
        let fixed: Vec<FixedGrid> = old
            .iter()
            .enumerate()
            .filter(|(i, _)| !free.contains(i))
            .map(|(_, g)| g.clone())
            .collect();
        let mut p = params.clone();
        p.fixed = fixed;
        match regrid_with(communities, buildings, roads, &p, progress, Some(cache)) {
            Ok(r) => return Ok(r),
            Err(RegridError::Community { code, message })
                if free.iter().any(|&g| old[g].community == code) =>
            {
                free.retain(|&g| old[g].community != code);
                kept_whole.push((
                    code,
                    format!("redrawing around the kept grids failed ({message})"),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Codes, the change report and the notes of communities kept whole.
fn finish(
    mut result: RegridResult,
    old: &[FixedGrid],
    (owner, was): (&[Option<usize>], &[Option<usize>]),
    free: &HashSet<usize>,
    buildings: &[Building],
    stage: u8,
    kept_whole: &[(String, String)],
) -> (RegridResult, Changes) {
    inherit_codes(&mut result, old, owner, free, buildings);
    let mut changes = changes(&result, old, was, free, buildings, stage);
    changes.kept_communities = kept_whole.to_vec();
    for (code, why) in kept_whole {
        if let Some(c) = result.communities.iter_mut().find(|c| &c.code == code) {
            c.notes.push(format!("every grid kept as it was: {why}"));
        }
    }
    (result, changes)
}

/// Redrawn grids inherit the old code they share most households with.
fn inherit_codes(
    result: &mut RegridResult,
    old: &[FixedGrid],
    owner: &[Option<usize>],
    free: &HashSet<usize>,
    buildings: &[Building],
) {
    let mut shared: Vec<(u64, usize, usize)> = Vec::new(); // (households, new grid, old grid)
    let mut m: HashMap<(usize, usize), u64> = HashMap::new();
    for &(b, g) in &result.assignment {
        if result.grids[g].kept {
            continue;
        }
        if let Some(o) = owner[b].filter(|o| free.contains(o)) {
            *m.entry((g, o)).or_insert(0) += u64::from(buildings[b].households) + 1;
        }
    }
    for ((g, o), h) in m {
        shared.push((h, g, o));
    }
    shared.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut used_new = HashSet::new();
    let mut used_old = HashSet::new();
    let mut rename: Vec<(usize, String, Option<String>)> = Vec::new();
    for (_, g, o) in shared {
        if used_new.contains(&g)
            || used_old.contains(&o)
            || old[o].community != result.grids[g].community
        {
            continue;
        }
        used_new.insert(g);
        used_old.insert(o);
        rename.push((g, old[o].code.clone(), old[o].name.clone()));
    }
    // new grids that inherit nothing take sequence numbers after every code of their community
    let taken: HashSet<String> = old.iter().map(|g| g.code.clone()).collect();
    for (g, code, name) in rename {
        result.grids[g].code = code;
        result.grids[g].name = name;
    }
    number_new_grids(result, old, &used_new, &taken);
    in_old_order(result, old);
}

/// Grids that inherit no code take the next sequence numbers of their community, after every
/// code it had and skipping codes taken anywhere.
fn number_new_grids(
    result: &mut RegridResult,
    old: &[FixedGrid],
    used_new: &HashSet<usize>,
    taken: &HashSet<String>,
) {
    let mut next: HashMap<String, usize> = HashMap::new();
    for g in 0..result.grids.len() {
        let gr = &result.grids[g];
        if gr.kept || used_new.contains(&g) {
            continue;
        }
        let comm = gr.community.clone();
        let n = next.entry(comm.clone()).or_insert_with(|| {
            old.iter()
                .filter(|o| o.community == comm)
                .filter_map(|o| {
                    o.code
                        .get(o.code.len().saturating_sub(3)..)
                        .and_then(|d| d.parse::<usize>().ok())
                })
                .max()
                .unwrap_or(0)
        });
        loop {
            *n += 1;
            let code = crate::model::grid_code(&comm, *n).to_string();
            if !taken.contains(&code) {
                let grid: &mut Grid = &mut result.grids[g];
                grid.code = code;
                break;
            }
        }
    }
}

/// The grids in the order of the plan in force, new ones after it (by community and code), so
/// that a plan rebalanced without change is written byte for byte as it was read; the
/// assignment renumbered to match.
fn in_old_order(result: &mut RegridResult, old: &[FixedGrid]) {
    let at: HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, g)| (g.code.as_str(), i))
        .collect();
    let key: Vec<usize> = result
        .grids
        .iter()
        .map(|g| at.get(g.code.as_str()).copied().unwrap_or(usize::MAX))
        .collect();
    let mut order: Vec<usize> = (0..result.grids.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&result.grids[a], &result.grids[b]);
        key[a]
            .cmp(&key[b])
            .then(x.community.cmp(&y.community))
            .then(x.code.cmp(&y.code))
    });
    let mut grids: Vec<Option<Grid>> = std::mem::take(&mut result.grids)
        .into_iter()
        .map(Some)
        .collect();
    result.grids = order.iter().filter_map(|&i| grids[i].take()).collect();
    // assignments refer to grid indices: rebuild them
    let mut assignment = Vec::new();
    for (gi, g) in result.grids.iter().enumerate() {
        for &b in &g.buildings {
            assignment.push((b, gi));
        }
    }
    assignment.sort_unstable();
    result.assignment = assignment;
}

fn changes(
    result: &RegridResult,
    old: &[FixedGrid],
    owner: &[Option<usize>],
    free: &HashSet<usize>,
    buildings: &[Building],
    stage: u8,
) -> Changes {
    let mut c = Changes {
        stage,
        ..Changes::default()
    };
    let new_codes: HashSet<&str> = result.grids.iter().map(|g| g.code.as_str()).collect();
    let old_codes: HashSet<&str> = old.iter().map(|g| g.code.as_str()).collect();
    for g in &result.grids {
        if g.kept {
            c.kept_grids.push(g.code.clone());
        } else if old_codes.contains(g.code.as_str()) {
            c.redrawn_grids.push(g.code.clone());
        } else {
            c.new_grids.push(g.code.clone());
        }
    }
    for (i, g) in old.iter().enumerate() {
        if free.contains(&i) && !new_codes.contains(g.code.as_str()) {
            c.retired_grids.push(g.code.clone());
        }
    }
    for &(b, g) in &result.assignment {
        let comm = &result.grids[g].community;
        let e = c.per_community.entry(comm.clone()).or_insert((0, 0));
        e.0 += u64::from(buildings[b].households);
        if let Some(o) = owner[b]
            && old[o].code != result.grids[g].code
        {
            c.moved_buildings += 1;
            c.moved_households += u64::from(buildings[b].households);
            e.1 += u64::from(buildings[b].households);
            c.moved.push((
                buildings[b].id.clone(),
                old[o].code.clone(),
                result.grids[g].code.clone(),
            ));
        }
    }
    // the share is taken over the communities where grids were redrawn
    let concerned: HashSet<&str> = free.iter().map(|&g| old[g].community.as_str()).collect();
    let touched: u64 = c
        .per_community
        .iter()
        .filter(|(k, _)| concerned.contains(k.as_str()))
        .map(|(_, v)| v.0)
        .sum();
    c.moved_households_pct = if touched > 0 {
        100.0 * c.moved_households as f64 / touched as f64
    } else {
        0.0
    };
    c.kept_grids.sort();
    c.redrawn_grids.sort();
    c.new_grids.sort();
    c.retired_grids.sort();
    c
}
