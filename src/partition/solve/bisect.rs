//! Recursive bisection: sweeps in 16 directions, the best balanced cut, and its repair into
//! connected halves.

use super::*;

pub(super) fn set_weight(g: &AtomGraph, set: &[u32]) -> f64 {
    set.iter().map(|&a| g.atoms[a as usize].weight).sum()
}

/// What a split aims at: the first part's ideal weight, the weight per grid, and the length
/// scale of the set.
pub(super) struct Target {
    ideal: f64,
    per: f64,
    scale: f64,
}

/// Grow a first part from the atom farthest against direction `(dx, dy)`, always taking the
/// frontier atom lowest along it; after each atom, `prefix(score, length, weight)` hears the
/// cut cost (off-road cut + 0.15 × cut + imbalance) of that prefix. Returns the growth order.
pub(super) fn sweep(
    ctx: &mut Ctx,
    set: &[u32],
    st: u32,
    (dx, dy): (f64, f64),
    t: &Target,
    mut prefix: impl FnMut(f64, usize, f64),
) -> Vec<u32> {
    let g = ctx.g;
    let proj = |a: u32| {
        let c = g.atoms[a as usize].centroid;
        c.x * dx + c.y * dy
    };
    let start = *set
        .iter()
        .min_by(|&&a, &&b| proj(a).total_cmp(&proj(b)).then(a.cmp(&b)))
        .unwrap_or(&set[0]);
    let s1 = ctx.next_stamp();
    let mut heap = BinaryHeap::new();
    heap.push(std::cmp::Reverse((
        crate::partition::OrdF(proj(start)),
        start,
    )));
    ctx.mark[start as usize] = s1;
    let mut order = Vec::with_capacity(set.len());
    let mut w1 = 0.0;
    let mut cut_off = 0.0;
    let mut cut_all = 0.0;
    let mut member = HashSet::default();
    while let Some(std::cmp::Reverse((_, a))) = heap.pop() {
        order.push(a);
        member.insert(a);
        w1 += g.atoms[a as usize].weight;
        for e in g.nbrs(a as usize) {
            let b = e.nbr;
            if ctx.stamp[b as usize] != st {
                continue;
            }
            if member.contains(&b) {
                cut_off -= e.len - e.road;
                cut_all -= e.len;
            } else {
                cut_off += e.len - e.road;
                cut_all += e.len;
                if ctx.mark[b as usize] != s1 {
                    ctx.mark[b as usize] = s1;
                    heap.push(std::cmp::Reverse((crate::partition::OrdF(proj(b)), b)));
                }
            }
        }
        if order.len() < set.len() {
            let dev = (w1 - t.ideal) / t.per;
            let score = cut_off + 0.15 * cut_all + t.scale * 0.8 * dev * dev;
            prefix(score, order.len(), w1);
        }
    }
    order
}

/// Cuts tried by sweeps of `set`, and their atoms in sweep order per direction.
pub(super) type Cuts = (
    Vec<(f64, usize, usize)>,
    Vec<Vec<u32>>,
    Vec<(f64, f64, usize, usize)>,
);

/// Candidate cuts of `set` (stamped `st`) from sweeps in 16 directions: the prefixes whose weight
/// falls in [lo, hi] as (score, direction, prefix length), the sweep orders, and the prefixes
/// outside as (miss, score, direction, prefix length), a last resort ranked by imbalance.
pub(super) fn candidates(
    ctx: &mut Ctx,
    set: &[u32],
    st: u32,
    target: &Target,
    (lo, hi): (f64, f64),
) -> Cuts {
    // candidates: (score, direction, prefix length)
    let mut cands: Vec<(f64, usize, usize)> = Vec::new();
    let mut orders: Vec<Vec<u32>> = Vec::new();
    let mut fallback: Vec<(f64, f64, usize, usize)> = Vec::new();
    const DIRS: usize = 16;
    for di in 0..DIRS {
        let ang = std::f64::consts::PI * 2.0 * di as f64 / DIRS as f64;
        let order = sweep(
            ctx,
            set,
            st,
            (ang.cos(), ang.sin()),
            target,
            |score, len, w1| {
                if w1 >= lo - 1e-9 && w1 <= hi + 1e-9 {
                    cands.push((score, orders.len(), len));
                } else {
                    // outside the feasible range: kept as a last resort, ranked by imbalance
                    let miss = if w1 < lo { lo - w1 } else { w1 - hi };
                    fallback.push((miss, score, orders.len(), len));
                }
            },
        );
        orders.push(order);
    }
    (cands, orders, fallback)
}

/// The best candidate prefix of `set` and the rest, when no cut gave a clean split: the best
/// in-range cut, else the least imbalanced one; `None` when no cut was tried.
pub(super) fn best_prefix(
    set: &[u32],
    cands: &[(f64, usize, usize)],
    fallback: &mut [(f64, f64, usize, usize)],
    orders: &[Vec<u32>],
) -> Option<(Vec<u32>, Vec<u32>)> {
    let best = cands.first().map(|c| (c.1, c.2)).or_else(|| {
        fallback.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        fallback.first().map(|c| (c.2, c.3))
    });
    let (d, len) = best?;
    let s1: Vec<u32> = orders[d][..len].to_vec();
    let mut in1 = HashSet::default();
    in1.extend(s1.iter().copied());
    let s2: Vec<u32> = set.iter().copied().filter(|a| !in1.contains(a)).collect();
    Some((s1, s2))
}

pub(super) fn bisect(ctx: &mut Ctx, set: Vec<u32>, k: usize, out: &mut Vec<Vec<u32>>) {
    if k <= 1 || set.len() <= 1 {
        out.push(set);
        return;
    }
    let Some((s1, s2)) = cut(ctx, &set, k) else {
        out.push(set);
        return;
    };
    let (g, band) = (ctx.g, ctx.band);
    let k1 = k / 2;
    let k2 = k - k1;
    let comps = components(ctx, &s2);
    let s2_len = s2.len();
    let rest = move |ctx: &mut Ctx, out: &mut Vec<Vec<u32>>| {
        for comp in comps {
            let cw = set_weight(g, &comp);
            let ck = if comp.len() == s2_len {
                k2
            } else {
                choose_k(cw, &band)
            };
            bisect(ctx, comp, ck, out);
        }
    };
    if k < FORK_MIN_GRIDS {
        rest(ctx, out);
        bisect(ctx, s1, k1, out);
        return;
    }
    // the two sides are independent: a free core takes the first part with scratch of its own
    // (stamps are only compared for equality, so fresh ones draw the same cuts); the parts come
    // out in the order of the sequential recursion
    let mut fresh = Ctx::new(g, band);
    let (mut first, second) = rayon::join(
        || {
            let mut o = Vec::new();
            bisect(&mut fresh, s1, k1, &mut o);
            o
        },
        || {
            let mut o = Vec::new();
            rest(ctx, &mut o);
            o
        },
    );
    out.extend(second);
    out.append(&mut first);
}

/// The cut of `set` into a part for `k / 2` grids and a connected rest, `None` when there is none.
fn cut(ctx: &mut Ctx, set: &[u32], k: usize) -> Option<(Vec<u32>, Vec<u32>)> {
    let g = ctx.g;
    let band = ctx.band;
    let w = set_weight(g, set);
    let k1 = k / 2;
    let k2 = k - k1;
    let ideal = w * k1 as f64 / k as f64;
    let mut lo = (k1 as f64 * band.min()).max(w - k2 as f64 * band.max());
    let mut hi = (k1 as f64 * band.max()).min(w - k2 as f64 * band.min());
    if lo > hi {
        let per = w / k as f64;
        lo = ideal - 0.5 * per;
        hi = ideal + 0.5 * per;
    }
    let area: f64 = set.iter().map(|&a| g.atoms[a as usize].area).sum();
    let scale = area.sqrt().max(1.0);
    let per = w / k as f64;
    let st = ctx.next_stamp();
    for &a in set {
        ctx.stamp[a as usize] = st;
    }
    let target = Target { ideal, per, scale };
    let (mut cands, orders, mut fallback) = candidates(ctx, set, st, &target, (lo, hi));
    cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut chosen: Option<(Vec<u32>, Vec<u32>)> = None;
    if cands.is_empty() {
        fallback.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let tol = fallback.first().map_or(0.0, |f| f.0) + 1e-9;
        lo -= tol;
        hi += tol;
        cands.extend(
            fallback
                .iter()
                .filter(|f| f.0 <= tol)
                .map(|f| (f.1, f.2, f.3)),
        );
    }
    for &(_, d, len) in cands.iter().take(12) {
        let s1: Vec<u32> = orders[d][..len].to_vec();
        if let Some(split) = fix_split(ctx, set, s1, lo, hi, st) {
            chosen = Some(split);
            break;
        }
    }
    match chosen {
        Some(x) => Some(x),
        // no clean split: take the best prefix anyway and let the parts sort themselves out
        None => best_prefix(set, &cands, &mut fallback, &orders),
    }
}

/// Sets to be split into at least this many grids fork their two sides onto the pool (below
/// it the scratch arrays of a fork cost more than the work shared).
const FORK_MIN_GRIDS: usize = 8;

/// Connected components of `set` (induced subgraph), largest first.
pub(super) fn components(ctx: &mut Ctx, set: &[u32]) -> Vec<Vec<u32>> {
    let g = ctx.g;
    let st = ctx.next_stamp();
    for &a in set {
        ctx.stamp[a as usize] = st;
    }
    let seen_st = ctx.next_stamp();
    let mut comps = Vec::new();
    for &s in set {
        if ctx.mark[s as usize] == seen_st {
            continue;
        }
        ctx.mark[s as usize] = seen_st;
        let mut comp = vec![s];
        let mut i = 0;
        while i < comp.len() {
            let a = comp[i];
            i += 1;
            for e in g.nbrs(a as usize) {
                let b = e.nbr as usize;
                if ctx.stamp[b] == st && ctx.mark[b] != seen_st {
                    ctx.mark[b] = seen_st;
                    comp.push(b as u32);
                }
            }
        }
        comps.push(comp);
    }
    comps.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    comps
}

/// Make S2 = set − S1 connected by moving its smaller pieces into S1, if the weight allows.
pub(super) fn fix_split(
    ctx: &mut Ctx,
    set: &[u32],
    s1: Vec<u32>,
    lo: f64,
    hi: f64,
    _st: u32,
) -> Option<(Vec<u32>, Vec<u32>)> {
    let g = ctx.g;
    let in1: HashSet<u32> = s1.iter().copied().collect();
    let s2: Vec<u32> = set.iter().copied().filter(|a| !in1.contains(a)).collect();
    if s2.is_empty() {
        return None;
    }
    let comps = components(ctx, &s2);
    if comps.len() == 1 {
        return Some((s1, s2));
    }
    let mut s1 = s1;
    let mut w1 = set_weight(g, &s1);
    let mut it = comps.into_iter();
    let main = it.next()?;
    for c in it {
        w1 += set_weight(g, &c);
        s1.extend(c);
    }
    if w1 < lo - 1e-9 || w1 > hi + 1e-9 {
        return None;
    }
    Some((s1, main))
}
