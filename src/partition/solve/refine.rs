//! Local search: single-atom moves between neighbouring grids that lower the cost (band,
//! compactness) and keep every grid connected.

use super::*;

/// Per-grid running totals.
#[derive(Clone, Copy, Default)]
pub(super) struct GridStat {
    w: f64,
    area: f64,
    perim: f64,
    off_road: f64,
    size: usize,
}

pub(super) fn grid_cost(s: &GridStat, band: &Band, o: &Objective) -> f64 {
    let t = band.target().max(1e-9);
    let viol = (band.min() - s.w).max(0.0) + (s.w - band.max()).max(0.0);
    let mut c = 0.0;
    if viol > 1e-9 {
        c += o.band * (1.0 + viol / t);
    }
    let dev = (s.w - band.target()) / t;
    c += o.deviation * dev * dev;
    if s.area > 0.0 {
        c += o.shape * s.perim * s.perim / (4.0 * std::f64::consts::PI * s.area);
        c += o.off_road * s.off_road / s.area.sqrt();
    }
    c
}

/// Weight, area, size, perimeter and off-road perimeter of every grid.
pub(super) fn grid_stats(g: &AtomGraph, sol: &Solution) -> Vec<GridStat> {
    let mut st = vec![GridStat::default(); sol.n_grids];
    for a in 0..g.len() {
        if sol.grid_of[a] == u32::MAX {
            continue;
        }
        let gi = sol.grid_of[a] as usize;
        let s = &mut st[gi];
        s.w += g.atoms[a].weight;
        s.area += g.atoms[a].area;
        s.size += 1;
        s.perim += g.atoms[a].outer;
        for e in g.nbrs(a) {
            if sol.grid_of[e.nbr as usize] as usize != gi {
                s.perim += e.len;
                s.off_road += e.len - e.road;
            }
        }
    }
    st
}

/// One boundary atom's move: the grid it leaves, how that grid looks without it, and the
/// grids around it with the length (and off-road length) shared with each.
pub(super) struct Move<'a> {
    a: usize,
    from: usize,
    by_grid: &'a [(u32, f64, f64)],
    /// The atom's total boundary length and its off-road part.
    tot: (f64, f64),
}

impl Move<'_> {
    /// The best grid to move to (cost change, grid, its new figures), if any lowers the cost.
    fn best(
        &self,
        g: &AtomGraph,
        st: &[GridStat],
        fixed_grid: &[bool],
        (band, o): (&Band, &Objective),
    ) -> Option<(GridStat, usize, GridStat)> {
        let (a, from) = (self.a, self.from);
        let (l_from, nr_from) = self
            .by_grid
            .iter()
            .find(|x| x.0 as usize == from)
            .map_or((0.0, 0.0), |x| (x.1, x.2));
        let at = &g.atoms[a];
        let (lt, nrt) = self.tot;
        let mut f_new = st[from];
        f_new.w -= at.weight;
        f_new.area -= at.area;
        f_new.size -= 1;
        f_new.perim += -(lt - l_from) - at.outer + l_from;
        f_new.off_road += -(nrt - nr_from) + nr_from;
        let base_from = grid_cost(&st[from], band, o);
        let new_from = grid_cost(&f_new, band, o);
        let mut best: Option<(f64, usize, GridStat)> = None;
        for &(gi, l_to, nr_to) in self.by_grid {
            let to = gi as usize;
            if to == from || fixed_grid[to] {
                continue;
            }
            let mut t_new = st[to];
            t_new.w += at.weight;
            t_new.area += at.area;
            t_new.size += 1;
            t_new.perim += (lt - l_to) + at.outer - l_to;
            t_new.off_road += (nrt - nr_to) - nr_to;
            let d = new_from + grid_cost(&t_new, band, o) - base_from - grid_cost(&st[to], band, o);
            if d < -1e-9 && best.as_ref().is_none_or(|b| d < b.0) {
                best = Some((d, to, t_new));
            }
        }
        best.map(|(_, to, t_new)| (f_new, to, t_new))
    }
}

/// True when grid `from` stays connected without atom `a` (`size` atoms with it).
pub(super) fn connected_without(
    g: &AtomGraph,
    sol: &Solution,
    (a, from, size): (usize, usize, usize),
    (mark, stamp): (&mut [u32], u32),
) -> bool {
    let Some(startn) = g
        .nbrs(a)
        .iter()
        .map(|e| e.nbr as usize)
        .find(|&b| sol.grid_of[b] as usize == from)
    else {
        return false;
    };
    mark[a] = stamp;
    mark[startn] = stamp;
    let mut q = vec![startn];
    let mut cnt = 1usize;
    while let Some(x) = q.pop() {
        for e in g.nbrs(x) {
            let y = e.nbr as usize;
            if mark[y] != stamp && sol.grid_of[y] as usize == from {
                mark[y] = stamp;
                cnt += 1;
                q.push(y);
            }
        }
    }
    cnt == size - 1
}

/// Local search: atoms on grid boundaries move to a neighbouring grid while the objective drops
/// and the grid they leave stays connected; passes in a seeded random order until none moves.
pub(super) fn refine(
    g: &AtomGraph,
    sol: &mut Solution,
    fixed: &[bool],
    band: Band,
    seed: u64,
    o: Objective,
) {
    let n = g.len();
    let ng = sol.n_grids;
    let mut st = grid_stats(g, sol);
    let tot_len: Vec<(f64, f64)> = (0..n)
        .map(|a| {
            g.nbrs(a)
                .iter()
                .fold((0.0, 0.0), |acc, e| (acc.0 + e.len, acc.1 + e.len - e.road))
        })
        .collect();
    let fixed_grid: Vec<bool> = {
        let mut f = vec![false; ng];
        for a in 0..n {
            if fixed[a] && sol.grid_of[a] != u32::MAX {
                f[sol.grid_of[a] as usize] = true;
            }
        }
        f
    };
    let mut order: Vec<usize> = (0..n).filter(|&a| !fixed[a]).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut mark = vec![0u32; n];
    let mut stamp = 0u32;
    let mut by_grid: Vec<(u32, f64, f64)> = Vec::new();
    for _pass in 0..60 {
        order.shuffle(&mut rng);
        let mut moved = 0usize;
        for &a in &order {
            let from = sol.grid_of[a] as usize;
            if st[from].size <= 1 {
                continue;
            }
            // shared lengths with each neighbouring grid
            by_grid.clear();
            for e in g.nbrs(a) {
                let gi = sol.grid_of[e.nbr as usize];
                if gi == u32::MAX {
                    continue;
                }
                match by_grid.iter_mut().find(|x| x.0 == gi) {
                    Some(x) => {
                        x.1 += e.len;
                        x.2 += e.len - e.road;
                    }
                    None => by_grid.push((gi, e.len, e.len - e.road)),
                }
            }
            if by_grid.iter().all(|x| x.0 as usize == from) {
                continue;
            }
            let mv = Move {
                a,
                from,
                by_grid: &by_grid,
                tot: tot_len[a],
            };
            let Some((f_new, to, t_new)) = mv.best(g, &st, &fixed_grid, (&band, &o)) else {
                continue;
            };
            stamp += 1;
            if !connected_without(g, sol, (a, from, st[from].size), (&mut mark, stamp)) {
                continue;
            }
            sol.grid_of[a] = to as u32;
            st[from] = f_new;
            st[to] = t_new;
            moved += 1;
        }
        tracing::trace!(pass = _pass, moved, "refine pass");
        if moved == 0 {
            break;
        }
    }
}
