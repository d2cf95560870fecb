//! Grid polygons from the labelled tessellation: keep the piece edges whose two sides lie in
//! different grids, chain them into rings, and sort rings into one shell with holes per grid.
//!
//! Rings are built from shared point ids, so neighbouring grids share their edges exactly.
//! Where a grid touches itself at a point, the walk takes the edge that turns most sharply,
//! which yields a shell and a hole that touch at that point (valid), never a self-crossing ring.

use super::tessellation::{NONE, Pt, Tessellation};
use geo::{Coord, LineString, Polygon};
use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Why a grid polygon could not be formed.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("grid {grid} is not contiguous ({shells} separate parts)")]
    NotContiguous { grid: usize, shells: usize },
    #[error("grid {grid} has no boundary")]
    Empty { grid: usize },
}

/// With given polygons: stray parts of a grid smaller than this in all (m²) are dropped.
const CRUMB_M2: f64 = 25.0;

/// One grid's polygon in metres and in WGS84, with its perimeter.
#[derive(Debug, Clone)]
pub struct GridPolygon {
    pub metres: Polygon,
    pub wgs84: Polygon,
}

/// Assemble the polygons of `n_grids` grids; `grid_of_atom` maps atom labels to grids.
///
/// # Errors
/// When a grid is empty or falls apart into several shells.
pub fn assemble(
    t: &Tessellation,
    grid_of_atom: &[u32],
    n_grids: usize,
    given: usize,
) -> Result<Vec<GridPolygon>, AssembleError> {
    assemble_with(
        t,
        (&atom_edges(t), &super::straighten::constraints(t)),
        grid_of_atom,
        n_grids,
        given,
    )
}

/// [`assemble`] with the tessellation's [`AtomEdges`] and straightening constraints gathered
/// already (a plan keeps them per fabric part).
///
/// # Errors
/// When a grid is empty or falls apart into several shells.
pub fn assemble_with(
    t: &Tessellation,
    (ae, constraints): (&AtomEdges, &super::straighten::Constraints),
    grid_of_atom: &[u32],
    n_grids: usize,
    given: usize,
) -> Result<Vec<GridPolygon>, AssembleError> {
    let _span = tracing::debug_span!("assemble", grids = n_grids).entered();
    let edges = {
        let _span = tracing::debug_span!("boundary_edges").entered();
        grid_edges(ae, grid_of_atom, n_grids)
    };
    // straightening and chaining the grids' rings do not depend on each other: both at once
    let (drop, chained) = rayon::join(
        || {
            let _span = tracing::debug_span!("straighten").entered();
            super::straighten::straighten_with(t, constraints, &edges)
        },
        || {
            let _span = tracing::debug_span!("chain").entered();
            chain_all(t, &edges, given)
        },
    );
    let _span = tracing::debug_span!("assemble_edges").entered();
    polygons_of(t, chained, given, &drop)
}

/// Each grid's boundary edges chained into rings, before any point is dropped (grids in
/// parallel; `None` for the grids the caller has already and for empty ones).
fn chain_all(
    t: &Tessellation,
    edges: &[Vec<(Pt, Pt, usize)>],
    given: usize,
) -> Vec<Option<Vec<Ring>>> {
    edges
        .par_iter()
        .enumerate()
        .map(|(gi, es)| (gi >= given && !es.is_empty()).then(|| chain(t, es)))
        .collect()
}

/// Grid polygons from chained rings, leaving out the points in `drop` (grids in parallel,
/// collected in order; the first failing grid is the one named).
fn polygons_of(
    t: &Tessellation,
    chained: Vec<Option<Vec<Ring>>>,
    given: usize,
    drop: &HashSet<Pt>,
) -> Result<Vec<GridPolygon>, AssembleError> {
    chained
        .into_par_iter()
        .enumerate()
        .map(|(gi, rings)| {
            if gi < given {
                // the caller has this grid's polygon already (a kept grid)
                return Ok(GridPolygon {
                    metres: Polygon::new(LineString(vec![]), vec![]),
                    wgs84: Polygon::new(LineString(vec![]), vec![]),
                });
            }
            let Some(rings) = rings else {
                return Err(AssembleError::Empty { grid: gi });
            };
            grid_polygon(t, gi, finish_rings(t, rings, drop), given)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// The piece edges between two different atoms, in the order [`boundary_edges`] meets them:
/// (from, to, face for positions, atom on the left, atom on the right or `NONE` outside). They
/// do not depend on which grid holds which atom, so a plan keeps them per fabric part.
#[derive(Debug, Clone, Default)]
pub struct AtomEdges(Vec<(Pt, Pt, u32, u32, u32)>);

/// The [`AtomEdges`] of a tessellation.
#[must_use]
pub fn atom_edges(t: &Tessellation) -> AtomEdges {
    let mut out = Vec::new();
    for f in 1..t.faces.len() {
        if !t.inside[f] {
            continue;
        }
        let lab = t.corner[f];
        t.face_segments(
            f,
            lab,
            |a, b, l, r, k, corner| {
                let r = match r {
                    Some(r) => r,
                    None => {
                        let nb = t.nbr[f][k];
                        if nb == NONE || !t.inside[nb as usize] {
                            NONE
                        } else {
                            t.corner_label(nb as usize, t.faces[f][corner], &t.corner)
                        }
                    }
                };
                if l != NONE && l != r {
                    out.push((a, b, f as u32, l, r));
                }
            },
            |_, _, _| {},
        );
    }
    AtomEdges(out)
}

/// Directed boundary edges per grid (from, to, face for positions), the grid on their left.
#[must_use]
pub fn boundary_edges(
    t: &Tessellation,
    grid_of_atom: &[u32],
    n_grids: usize,
) -> Vec<Vec<(Pt, Pt, usize)>> {
    grid_edges(&atom_edges(t), grid_of_atom, n_grids)
}

/// [`boundary_edges`] from the tessellation's [`AtomEdges`].
#[must_use]
pub fn grid_edges(
    ae: &AtomEdges,
    grid_of_atom: &[u32],
    n_grids: usize,
) -> Vec<Vec<(Pt, Pt, usize)>> {
    let gl = |l: u32| {
        if l == NONE {
            NONE
        } else {
            grid_of_atom[l as usize]
        }
    };
    let mut edges: Vec<Vec<(Pt, Pt, usize)>> = vec![Vec::new(); n_grids];
    for &(a, b, f, l, r) in &ae.0 {
        let g = gl(l);
        if g != NONE && g != gl(r) {
            edges[g as usize].push((a, b, f as usize));
        }
    }
    edges
}

/// Grid polygons from [`boundary_edges`], leaving out the points in `drop` (from
/// [`super::straighten::straighten`] of these edges or of a finer nested level's).
///
/// # Errors
/// When a grid is empty or falls apart into several shells.
pub fn assemble_edges(
    t: &Tessellation,
    edges: &[Vec<(Pt, Pt, usize)>],
    given: usize,
    drop: &HashSet<Pt>,
) -> Result<Vec<GridPolygon>, AssembleError> {
    // grids in parallel, collected in order; the first failing grid is the one named
    polygons_of(t, chain_all(t, edges, given), given, drop)
}

/// One grid's polygon, in metres and in WGS84, from its boundary edges.
pub(super) fn grid_polygon(
    t: &Tessellation,
    gi: usize,
    rings: Vec<Ring>,
    given: usize,
) -> Result<GridPolygon, AssembleError> {
    if tracing::enabled!(tracing::Level::DEBUG)
        && rings.iter().filter(|r| signed_area(r) > 0.0).count() != 1
    {
        for r in &rings {
            let c = t.frame.inv(r[0].1);
            tracing::debug!(
                grid = gi,
                area_m2 = signed_area(r),
                lon = c.x,
                lat = c.y,
                points = r.len(),
                "grid with other than one outer ring"
            );
        }
    }
    let (shell, holes) = shell_and_holes(t, gi, rings, given)?;
    let to_ll = |r: &[(Pt, Coord)]| -> LineString {
        let mut v: Vec<Coord> = r
            .iter()
            .map(|(p, c)| {
                if (p.0 as usize) < t.verts.len() {
                    t.orig[p.0 as usize].unwrap_or_else(|| t.frame.inv(*c))
                } else {
                    t.frame.inv(*c)
                }
            })
            .collect();
        v.push(v[0]);
        LineString(v)
    };
    let to_m = |r: &[(Pt, Coord)]| -> LineString {
        let mut v: Vec<Coord> = r.iter().map(|(_, c)| *c).collect();
        v.push(v[0]);
        LineString(v)
    };
    let metres = Polygon::new(to_m(&shell), holes.iter().map(|h| to_m(h)).collect());
    let wgs84 = Polygon::new(to_ll(&shell), holes.iter().map(|h| to_ll(h)).collect());
    let wgs84 = clean_polygon(wgs84);
    Ok(GridPolygon { metres, wgs84 })
}

/// Ring of a grid's boundary: points with their position in metres.
pub(super) type Ring = Vec<(Pt, Coord)>;

/// A grid's one shell and its holes from its rings; rings of zero area are slivers, and extra
/// shells small enough (zero-width slivers at road ends, crumbs where kept grids and the new
/// layers do not meet exactly) are dropped into the gap budget.
fn shell_and_holes(
    t: &Tessellation,
    gi: usize,
    rings: Vec<Ring>,
    given: usize,
) -> Result<(Ring, Vec<Ring>), AssembleError> {
    let mut shells = Vec::new();
    let mut holes = Vec::new();
    for r in rings {
        let a = signed_area(&r);
        // rings of (numerically) zero area are slivers of the triangulation, not holes
        if a > 1e-4 {
            shells.push((a, r));
        } else if a < -1e-4 {
            holes.push(r);
        }
    }
    if shells.len() > 1 {
        // slivers of zero width left over at road ends, and crumbs cut off where given
        // polygons (kept grids) and the new layers do not meet exactly, become part of the
        // gap budget
        shells.sort_by(|a, b| b.0.total_cmp(&a.0));
        let main = shells[0].0;
        let rest: f64 = shells[1..].iter().map(|(a, _)| *a).sum();
        let crumbs = if given > 0 {
            CRUMB_M2.min(main * 0.01)
        } else {
            1.0_f64.max(main * 1e-6)
        };
        if rest < crumbs {
            shells.truncate(1);
        }
    }
    if shells.len() != 1 {
        for (a, r) in &shells {
            let c = t.frame.inv(r[0].1);
            tracing::debug!(
                grid = gi,
                area_m2 = a,
                lon = c.x,
                lat = c.y,
                "shell of a grid in pieces"
            );
        }
        return Err(AssembleError::NotContiguous {
            grid: gi,
            shells: shells.len(),
        });
    }
    let (_, shell) = shells.pop().ok_or(AssembleError::Empty { grid: gi })?;
    Ok((shell, holes))
}

fn signed_area(r: &[(Pt, Coord)]) -> f64 {
    let mut a = 0.0;
    for i in 0..r.len() {
        let (p, q) = (r[i].1, r[(i + 1) % r.len()].1);
        a += p.x * q.y - q.x * p.y;
    }
    a / 2.0
}

/// Chained rings without the straightened points, and without midpoints and collinear
/// densify points; rings left with fewer than three points are gone.
pub(super) fn finish_rings(t: &Tessellation, rings: Vec<Ring>, drop: &HashSet<Pt>) -> Vec<Ring> {
    rings
        .into_iter()
        .filter_map(|mut ring| {
            ring.retain(|(p, _)| !drop.contains(p));
            (ring.len() >= 3).then(|| simplify(t, ring))
        })
        .collect()
}

/// Chain directed edges into closed rings (every point kept; see [`finish_rings`]).
pub(super) fn chain(t: &Tessellation, es: &[(Pt, Pt, usize)]) -> Vec<Ring> {
    let mut out_of: HashMap<Pt, Vec<usize>> =
        HashMap::with_capacity_and_hasher(es.len(), rustc_hash::FxBuildHasher);
    for (i, e) in es.iter().enumerate() {
        out_of.entry(e.0).or_default().push(i);
    }
    let pos = |p: Pt, f: usize| t.pos(p, f);
    let mut used = vec![false; es.len()];
    let mut rings = Vec::new();
    // deterministic start order
    let mut starts: Vec<usize> = (0..es.len()).collect();
    starts.sort_by_key(|&i| (es[i].0, es[i].1));
    for s in starts {
        if used[s] {
            continue;
        }
        let mut ring: Vec<(Pt, Coord)> = Vec::new();
        let mut cur = s;
        loop {
            used[cur] = true;
            let (a, b, f) = es[cur];
            ring.push((a, pos(a, f)));
            if b == es[s].0 {
                break;
            }
            let Some(cands) = out_of.get(&b) else { break };
            let free: Vec<usize> = cands.iter().copied().filter(|&i| !used[i]).collect();
            let next = match free.len() {
                0 => break,
                1 => free[0],
                _ => {
                    // sharpest turn: first outgoing edge clockwise from the reversed incoming one
                    let pb = pos(b, f);
                    let pa = pos(a, f);
                    let back = (pa.y - pb.y).atan2(pa.x - pb.x);
                    *free
                        .iter()
                        .min_by(|&&i, &&j| {
                            let ang = |k: usize| {
                                let q = pos(es[k].1, es[k].2);
                                let mut d = back - (q.y - pb.y).atan2(q.x - pb.x);
                                while d <= 0.0 {
                                    d += std::f64::consts::TAU;
                                }
                                d
                            };
                            ang(i).total_cmp(&ang(j)).then(i.cmp(&j))
                        })
                        .unwrap_or(&free[0])
                }
            };
            cur = next;
        }
        rings.push(ring);
    }
    rings
}

fn simplify(t: &Tessellation, ring: Vec<(Pt, Coord)>) -> Vec<(Pt, Coord)> {
    let nv = t.verts.len() as u32;
    let ne = t.n_edges as u32;
    let removable = |p: Pt| (p.0 >= nv && p.0 < nv + ne) || (p.0 < nv && t.steiner[p.0 as usize]);
    let mut r = ring;
    loop {
        // points a few nanometres apart (spade may split an edge right beside a vertex) are one
        let close = |a: Coord, b: Coord| (a.x - b.x).abs() < 1e-6 && (a.y - b.y).abs() < 1e-6;
        r.dedup_by(|a, b| close(a.1, b.1));
        while r.len() > 1 && close(r[0].1, r[r.len() - 1].1) {
            r.pop();
        }
        let n = r.len();
        if n <= 3 {
            return r;
        }
        let mut keep = vec![true; n];
        let mut changed = false;
        for i in 0..n {
            let (p, c) = r[i];
            let prev = (i + n - 1) % n;
            let next = (i + 1) % n;
            if !keep[prev] {
                continue;
            }
            // zero-width spikes (a sliver triangle on a straight boundary) are folded away
            let (a, b) = (r[prev].1, r[next].1);
            let (ux, uy, vx, vy) = (a.x - c.x, a.y - c.y, b.x - c.x, b.y - c.y);
            let (lu, lv) = (ux.hypot(uy), vx.hypot(vy));
            if lu > 0.0
                && lv > 0.0
                && (ux * vy - uy * vx).abs() <= 1e-9 * lu * lv
                && ux * vx + uy * vy > 0.0
            {
                keep[i] = false;
                changed = true;
                continue;
            }
            if !removable(p) {
                continue;
            }
            let cross = (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
            let len2 = (b.x - a.x).powi(2) + (b.y - a.y).powi(2);
            let dot = (c.x - a.x) * (b.x - a.x) + (c.y - a.y) * (b.y - a.y);
            if cross.abs() <= 1e-9 * len2.max(1e-12) && dot > 0.0 && dot < len2 {
                keep[i] = false;
                changed = true;
            }
        }
        if !changed {
            if tracing::enabled!(tracing::Level::TRACE) {
                let n = r.len();
                for i in 0..n {
                    let (a, c, b) = (r[(i + n - 1) % n].1, r[i].1, r[(i + 1) % n].1);
                    let (ux, uy, vx, vy) = (a.x - c.x, a.y - c.y, b.x - c.x, b.y - c.y);
                    let (lu, lv) = (ux.hypot(uy), vx.hypot(vy));
                    if (ux * vy - uy * vx).abs() <= 1e-6 * lu * lv && ux * vx + uy * vy > 0.0 {
                        let ll = t.frame.inv(c);
                        tracing::trace!(lon = ll.x, lat = ll.y, "spike left in a ring");
                    }
                }
            }
            return r;
        }
        r = r
            .into_iter()
            .zip(keep)
            .filter_map(|(x, k)| k.then_some(x))
            .collect();
    }
}

/// Final clean-up in output coordinates: drop repeated points and zero-width spikes, and rings
/// that collapse (points a few nanometres apart can coincide once written in degrees).
fn clean_ring(r: &LineString) -> Option<LineString> {
    let mut v: Vec<Coord> = r.0.clone();
    v.pop();
    loop {
        let before = v.len();
        v.dedup();
        while v.len() > 1 && v.first() == v.last() {
            v.pop();
        }
        let n = v.len();
        if n < 3 {
            return None;
        }
        let mut keep = vec![true; n];
        for i in 0..n {
            let (a, b, c) = (v[(i + n - 1) % n], v[i], v[(i + 1) % n]);
            let cross = (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
            let dot = (b.x - a.x) * (c.x - b.x) + (b.y - a.y) * (c.y - b.y);
            let (la, lc) = ((b.x - a.x).hypot(b.y - a.y), (c.x - b.x).hypot(c.y - b.y));
            // a spike: the path turns back, and its tip lies within SPIKE_DEG of the line it
            // came along (in degrees, rounding alone leaves crosses far above zero)
            if a == c || (dot < 0.0 && cross.abs() <= SPIKE_DEG * la.max(lc)) {
                keep[i] = false;
                break; // one at a time: neighbours change
            }
        }
        v = v
            .into_iter()
            .zip(keep)
            .filter_map(|(x, k)| k.then_some(x))
            .collect();
        if v.len() == before {
            unloop(&mut v);
        }
        if v.len() == before {
            break;
        }
    }
    if v.len() < 3 {
        return None;
    }
    v.push(v[0]);
    Some(LineString(v))
}

/// Widest spike (degrees, about 0.1 mm) that [`clean_ring`] folds away.
const SPIKE_DEG: f64 = 1e-9;

/// Largest loop (degrees, about 10 cm) that [`unloop`] cuts off.
const LOOP_DEG: f64 = 1e-6;

/// A ring whose edge i and edge i+2 meet makes a tiny loop through points i+1 and i+2 (a fold of
/// a millimetre where a kept polygon's exact points and points computed in metres meet once both
/// are in degrees). The loop is cut at the crossing: points i+1 and i+2 become the crossing point.
/// One loop at a time; the caller repeats.
fn unloop(v: &mut Vec<Coord>) {
    let n = v.len();
    if n < 5 {
        return;
    }
    for i in 0..n {
        let (a, b, c, d) = (v[i], v[(i + 1) % n], v[(i + 2) % n], v[(i + 3) % n]);
        let Some(x) = crossing(a, b, c, d) else {
            continue;
        };
        let far = |p: Coord| (p.x - x.x).abs().max((p.y - x.y).abs());
        if far(b) > LOOP_DEG || far(c) > LOOP_DEG {
            continue;
        }
        let (j, k) = ((i + 1) % n, (i + 2) % n);
        v[j] = x;
        if k == 0 {
            v.remove(0);
        } else {
            v.remove(k);
        }
        return;
    }
}

/// Where segments a–b and c–d meet (touching counts), if they do.
fn crossing(a: Coord, b: Coord, c: Coord, d: Coord) -> Option<Coord> {
    let (rx, ry) = (b.x - a.x, b.y - a.y);
    let (sx, sy) = (d.x - c.x, d.y - c.y);
    let den = rx * sy - ry * sx;
    if den == 0.0 {
        return None;
    }
    let (qx, qy) = (c.x - a.x, c.y - a.y);
    let t = (qx * sy - qy * sx) / den;
    let u = (qx * ry - qy * rx) / den;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u)).then_some(Coord {
        x: a.x + t * rx,
        y: a.y + t * ry,
    })
}

fn clean_polygon(p: Polygon) -> Polygon {
    let (ext, ints) = p.into_inner();
    let shell = clean_ring(&ext).unwrap_or(ext);
    let holes = ints.iter().filter_map(clean_ring).collect();
    Polygon::new(shell, holes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_millimetre_loop_is_cut_and_a_real_turn_is_not() {
        let c = |x: f64, y: f64| Coord { x, y };
        // a square of 0.001° whose bottom edge makes a 1e-8° loop near its middle: the path
        // runs right past x = 0.0005, comes back up-left across itself, then goes on
        let looped = LineString(vec![
            c(0.0, 0.0),
            c(0.000_500_01, 0.0),
            c(0.000_500_01, 0.000_000_01),
            c(0.000_499_99, -0.000_000_01),
            c(0.001, 0.0),
            c(0.001, 0.001),
            c(0.0, 0.001),
            c(0.0, 0.0),
        ]);
        let p = Polygon::new(looped.clone(), vec![]);
        assert!(crate::geom::validate::find_self_intersection(&p).is_some());
        let r = clean_ring(&looped).unwrap();
        assert_eq!(r.0.len(), looped.0.len() - 1, "{r:?}");
        assert!(crate::geom::validate::find_self_intersection(&Polygon::new(r, vec![])).is_none());
        // an L-shaped ring: nothing to cut
        let l = LineString(vec![
            c(0.0, 0.0),
            c(0.002, 0.0),
            c(0.002, 0.001),
            c(0.001, 0.001),
            c(0.001, 0.002),
            c(0.0, 0.002),
            c(0.0, 0.0),
        ]);
        assert_eq!(clean_ring(&l).unwrap(), l);
    }
}
