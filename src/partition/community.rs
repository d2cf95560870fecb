//! One community: each of its parts tessellated into atoms, solved (flat, or level by level on
//! the same atoms), assembled into grid polygons; then the grids numbered and reported.

use super::numbering::{CommunityOutcome, Upper, number_grids, number_levels};
use super::tessellation::{self, AtomGraph, BuildingPart, FixedRegion, Tessellation};
use super::{
    AtomOut, Band, Boxed, CommunityReport, FixedGrid, Grid, RegridError, RegridParams, assemble,
    metrics, project_poly, solve, straighten,
};
use crate::geom::frame::LocalFrame;
use crate::geom::interior_point::interior_point;
use crate::model::{Building, Community};
use geo::{BoundingRect, Coord, MultiPolygon, Polygon};
use rstar::{AABB, RTree};
use std::collections::HashSet;

/// Segments in metres.
type Segments = Vec<(Coord, Coord)>;

/// What the parts of one community add up to.
#[derive(Default)]
struct Acc {
    notes: Vec<String>,
    grids: Vec<Grid>,
    internal_len: f64,
    internal_road: f64,
    atoms_out: Vec<AtomOut>,
    /// Upper levels: (grids, parent index in the level above, internal length, near roads).
    upper: Vec<Upper>,
    final_parent: Vec<usize>,
    /// With `collect_fabric`: each part's tessellation, atoms, kept polygons, and each atom's grid
    /// (index into `grids`).
    fabric: Vec<(Tessellation, AtomGraph, Vec<Polygon>, Vec<usize>)>,
}

/// One part of a community, tessellated.
pub(super) struct Part<'a> {
    pub(super) tess: Tessellation,
    pub(super) graph: AtomGraph,
    /// The locked or kept grids in it.
    pub(super) fixed: Vec<&'a FixedGrid>,
}

/// What every step of one community reads.
pub(super) struct Ctx<'a> {
    c: &'a Community,
    frame: LocalFrame,
    band: Band,
    params: &'a RegridParams,
}

impl<'a> Ctx<'a> {
    /// The context of community `c`, its frame centred on its bounding box; `None` without extent.
    pub(super) fn new(c: &'a Community, params: &'a RegridParams) -> Option<Ctx<'a>> {
        let bb = c.geometry.bounding_rect()?;
        Some(Ctx {
            c,
            frame: LocalFrame::new(
                (bb.min().x + bb.max().x) / 2.0,
                (bb.min().y + bb.max().y) / 2.0,
            ),
            band: params.band,
            params,
        })
    }
    fn err(&self, m: String) -> RegridError {
        RegridError::Community {
            code: self.c.code.clone(),
            message: m,
        }
    }
}

/// Grids, report, atoms and upper levels of one community.
pub(super) fn regrid_community(
    c: &Community,
    buildings: &[Building],
    mine: &[(usize, usize)],
    roads: (&[(Coord, Coord, bool)], &RTree<Boxed>),
    has_roads: bool,
    params: &RegridParams,
) -> Result<CommunityOutcome, RegridError> {
    let t0 = std::time::Instant::now();
    let err = |m: String| RegridError::Community {
        code: c.code.clone(),
        message: m,
    };
    let Some(cx) = Ctx::new(c, params) else {
        return Err(err("empty geometry".into()));
    };
    let mut acc = Acc {
        upper: vec![(Vec::new(), Vec::new(), 0.0, 0.0); params.levels.len()],
        ..Acc::default()
    };
    let fixed_here: Vec<&FixedGrid> = params
        .fixed
        .iter()
        .filter(|f| f.community == c.code)
        .collect();
    for (pi, part_ll) in c.geometry.0.iter().enumerate() {
        let Some(part) = tessellate_part(&cx, (pi, part_ll), buildings, mine, roads, &fixed_here)?
        else {
            continue;
        };
        if let Some(note) = part.tess.degradation.note() {
            acc.notes.push(note.to_string());
        }
        if part.graph.is_empty() {
            continue;
        }
        if params.collect_atoms {
            collect_atoms(&cx, &part, &mut acc.atoms_out);
        }
        if params.levels.is_empty() {
            solve_flat(&cx, &part, &mut acc)?;
        } else {
            solve_levels(&cx, &part, &mut acc)?;
        }
    }
    let mut fabric = None;
    if params.levels.is_empty() {
        number_grids(&mut acc.grids, c, &cx.frame);
        snap_grids(&mut acc.grids, &cx.frame);
        if params.collect_fabric {
            let digest =
                super::fabric::inputs_digest(c, buildings, mine, roads, &fixed_here, params);
            fabric = Some(fabric_out(c, buildings, &mut acc, digest));
        }
        acc.grids.sort_by(|a, b| a.code.cmp(&b.code));
    } else {
        number_levels(
            c,
            &cx.frame,
            &mut acc.upper,
            &mut acc.grids,
            &acc.final_parent,
        );
    }
    let figures = metrics::community_figures(
        &acc.grids,
        cx.band,
        has_roads,
        acc.internal_len,
        acc.internal_road,
        t0.elapsed().as_secs_f64(),
    );
    acc.notes.sort();
    acc.notes.dedup();
    Ok((
        acc.grids,
        CommunityReport {
            code: c.code.clone(),
            name: c.name.clone(),
            figures,
            notes: acc.notes,
        },
        acc.atoms_out,
        acc.upper,
        fabric,
    ))
}

/// The grids' polygons on the written coordinate grid, shared edges kept shared
/// ([`crate::geom::snap`]), and their figures those of the polygons written: a grid read back
/// from the output and kept (a rebalance, a lock) has the figures it was written with.
pub(super) fn snap_grids(grids: &mut [Grid], frame: &LocalFrame) {
    // grids kept exactly (locks, a rebalance's untouched grids) keep their given coordinates;
    // the free grids around them snap to those
    let keep: Vec<bool> = grids.iter().map(|g| g.kept).collect();
    let mut polys: Vec<Polygon> = grids
        .iter_mut()
        .map(|g| {
            std::mem::replace(
                &mut g.geometry,
                Polygon::new(geo::LineString(vec![]), vec![]),
            )
        })
        .collect();
    // a finer grid where the written one would pinch a ring (only around kept grids, whose
    // given coordinates meet computed ones)
    let steps: &[f64] = if keep.contains(&true) {
        &[crate::geom::snap::GRID_DEG, 1e-8, 1e-9]
    } else {
        &[crate::geom::snap::GRID_DEG]
    };
    if !steps
        .iter()
        .any(|&st| crate::geom::snap::snap_round_keeping(&mut polys, &keep, st))
    {
        tracing::debug!("snap rounding would make a ring touch itself; coordinates left as drawn");
        // as drawn, small knots (a ring crossing itself around a lobe of a few m²) are cut off
        for (p, k) in polys.iter_mut().zip(&keep) {
            if !k
                && crate::geom::validate::find_self_intersection(p).is_some()
                && let Some(r) = crate::geom::snap::repair_lobes(p)
            {
                *p = r;
            }
        }
    }
    for (g, p) in grids.iter_mut().zip(polys) {
        if !g.kept {
            let (area, perim) = metrics::area_perimeter(&project_poly(frame, &p));
            g.area_m2 = area;
            g.perimeter_m = perim;
            g.polsby_popper = if perim > 0.0 {
                4.0 * std::f64::consts::PI * area / (perim * perim)
            } else {
                0.0
            };
        }
        g.geometry = p;
    }
}

/// The community's fabric and the code of each atom's grid (after numbering).
fn fabric_out(
    c: &Community,
    buildings: &[Building],
    acc: &mut Acc,
    digest: [u8; 32],
) -> super::FabricOut {
    let mut atom_codes = Vec::new();
    let mut parts = Vec::new();
    for (tess, graph, fixed, grid_of) in std::mem::take(&mut acc.fabric) {
        atom_codes.extend(grid_of.iter().map(|&g| acc.grids[g].code.clone()));
        parts.push((tess, graph, fixed));
    }
    super::FabricOut {
        fabric: super::fabric::Fabric::from_parts(c, buildings, parts, Some(digest)),
        atom_codes,
    }
}

/// The locked or kept grids of a part as fixed regions, with the buildings inside them; and
/// the set of those buildings.
fn fixed_regions<'a>(
    cx: &Ctx,
    (pi, part_ll): (usize, &Polygon),
    buildings: &[Building],
    mine: &[(usize, usize)],
    fixed_here: &[&'a FixedGrid],
) -> (Vec<&'a FixedGrid>, Vec<FixedRegion>, HashSet<usize>) {
    let fixed_part: Vec<&FixedGrid> = fixed_here
        .iter()
        .copied()
        .filter(|f| {
            interior_point(&MultiPolygon(vec![f.polygon.clone()]))
                .is_some_and(|p| crate::geom::point_in_polygons(std::slice::from_ref(part_ll), p))
        })
        .collect();
    let mut regions: Vec<FixedRegion> = fixed_part
        .iter()
        .map(|f| FixedRegion {
            metres: project_poly(&cx.frame, &f.polygon),
            wgs84: f.polygon.clone(),
            buildings: Vec::new(),
            households: 0,
            weight: 0.0,
        })
        .collect();
    let mut in_region = HashSet::new();
    if !regions.is_empty() {
        for &(bi, p) in mine {
            if p != pi {
                continue;
            }
            let Some(ip) = interior_point(&buildings[bi].geometry) else {
                continue;
            };
            if let Some(j) = fixed_part
                .iter()
                .position(|f| crate::geom::point_in_polygons(std::slice::from_ref(&f.polygon), ip))
            {
                regions[j].buildings.push(bi as u32);
                regions[j].households += u64::from(buildings[bi].households);
                regions[j].weight += buildings[bi].weight;
                in_region.insert(bi);
            }
        }
    }
    (fixed_part, regions, in_region)
}

/// The road pieces (indices, ascending) near a part: in its bounding box grown by ~50 m.
pub(super) fn near_road_ids(part_ll: &Polygon, seg_tree: &RTree<Boxed>) -> Option<Vec<usize>> {
    let pb = part_ll.bounding_rect()?;
    let pad = 0.0005;
    let env = AABB::from_corners(
        [pb.min().x - pad, pb.min().y - pad],
        [pb.max().x + pad, pb.max().y + pad],
    );
    let mut ids: Vec<usize> = seg_tree
        .locate_in_envelope_intersecting(&env)
        .map(|b| b.0)
        .collect();
    ids.sort_unstable();
    Some(ids)
}

/// The road segments near a part in metres: (block-cutting ones, all).
fn roads_near(
    frame: &LocalFrame,
    part_ll: &Polygon,
    (segs, seg_tree): (&[(Coord, Coord, bool)], &RTree<Boxed>),
) -> Option<(Segments, Segments)> {
    let ids = near_road_ids(part_ll, seg_tree)?;
    let mut cut_roads = Vec::new();
    let mut near_roads = Vec::new();
    for i in ids {
        let (a, b, is_cut) = segs[i];
        let s = (frame.fwd(a), frame.fwd(b));
        near_roads.push(s);
        if is_cut {
            cut_roads.push(s);
        }
    }
    Some((cut_roads, near_roads))
}

/// Atoms of one part: fixed regions, the free buildings, the roads near it; buildings that got
/// no triangle (degenerate footprints) join the nearest atom. `None` for a part without extent.
pub(super) fn tessellate_part<'a>(
    cx: &Ctx,
    (pi, part_ll): (usize, &Polygon),
    buildings: &[Building],
    mine: &[(usize, usize)],
    roads: (&[(Coord, Coord, bool)], &RTree<Boxed>),
    fixed_here: &[&'a FixedGrid],
) -> Result<Option<Part<'a>>, RegridError> {
    let part = project_poly(&cx.frame, part_ll);
    let (fixed, regions, in_region) = fixed_regions(cx, (pi, part_ll), buildings, mine, fixed_here);
    let Some((cut_roads, near_roads)) = roads_near(&cx.frame, part_ll, roads) else {
        return Ok(None);
    };
    let parts_b: Vec<BuildingPart> = mine
        .iter()
        .filter(|(bi, p)| *p == pi && !in_region.contains(bi))
        .map(|&(bi, _)| BuildingPart {
            building: bi as u32,
            polygons: buildings[bi]
                .geometry
                .0
                .iter()
                .map(|p| project_poly(&cx.frame, p))
                .collect(),
            households: buildings[bi].households,
            weight: buildings[bi].weight,
        })
        .collect();
    let (tess, mut graph) = tessellation::tessellate(
        cx.frame,
        &part,
        part_ll,
        &parts_b,
        &cut_roads,
        &near_roads,
        &regions,
        &cx.params.tessellation,
    )
    .map_err(|e| cx.err(e.to_string()))?;
    place_unplaced(&mut graph, &parts_b);
    Ok(Some(Part { tess, graph, fixed }))
}

/// Buildings that got no triangle (degenerate footprints) join the nearest atom.
fn place_unplaced(graph: &mut AtomGraph, parts_b: &[BuildingPart]) {
    let mut placed = HashSet::new();
    for a in &graph.atoms {
        placed.extend(a.buildings.iter().copied());
    }
    for bp in parts_b {
        if placed.contains(&bp.building) || graph.atoms.is_empty() {
            continue;
        }
        let p =
            interior_point(&MultiPolygon(bp.polygons.clone())).unwrap_or(Coord { x: 0.0, y: 0.0 });
        let best = (0..graph.atoms.len())
            .min_by(|&i, &j| {
                let d = |k: usize| {
                    let c = graph.atoms[k].centroid;
                    (c.x - p.x).powi(2) + (c.y - p.y).powi(2)
                };
                d(i).total_cmp(&d(j)).then(i.cmp(&j))
            })
            .unwrap_or(0);
        let a = &mut graph.atoms[best];
        a.buildings.push(bp.building);
        a.households += u64::from(bp.households);
        a.weight += bp.weight;
    }
}

/// The atoms as polygons (for comparisons with other partitioners on the same units).
fn collect_atoms(cx: &Ctx, p: &Part, out: &mut Vec<AtomOut>) {
    let identity: Vec<u32> = (0..p.graph.len() as u32).collect();
    if let Ok(polys) = assemble::assemble(&p.tess, &identity, p.graph.len(), 0) {
        for (a, poly) in p.graph.atoms.iter().zip(polys) {
            out.push(AtomOut {
                community: cx.c.code.clone(),
                households: a.households,
                buildings: a.buildings.len(),
                geometry: poly.wgs84,
            });
        }
    }
}

/// Grids of one part in one level: solve, assemble, check what was drawn around kept grids.
fn solve_flat(cx: &Ctx, p: &Part, acc: &mut Acc) -> Result<(), RegridError> {
    let (graph, band, params) = (&p.graph, cx.band, cx.params);
    // the partition and what assembly needs of the tessellation alone (the edges between
    // atoms, the straightening constraints) do not depend on each other: a free core takes
    // the latter (the last large community of a run is otherwise alone on one core)
    let (sol, (atom_edges, constraints)) = rayon::join(
        || {
            let _span = tracing::debug_span!("solve", community = %cx.c.code).entered();
            solve::partition(graph, band, params.seed, params.objective)
        },
        || {
            rayon::join(
                || assemble::atom_edges(&p.tess),
                || super::straighten::constraints(&p.tess),
            )
        },
    );
    let polys = assemble::assemble_with(
        &p.tess,
        (&atom_edges, &constraints),
        &sol.grid_of,
        sol.n_grids,
        p.fixed.len(),
    )
    .map_err(|e| {
            if let assemble::AssembleError::NotContiguous { grid, .. } = &e {
                debug_atoms_of(graph, &sol.grid_of, *grid, &cx.frame);
            }
            if p.fixed.is_empty() {
                cx.err(e.to_string())
            } else {
                cx.err(format!(
                    "{e}: the grids kept or locked here ({}) and the current buildings and roads do not fit together; lock fewer grids in this community or regrid it whole",
                    p.fixed.len()
                ))
            }
        })?;
    if !p.fixed.is_empty() {
        // grids drawn around given polygons are checked before anything is written
        for (g, poly) in polys.iter().enumerate().skip(p.fixed.len()) {
            // in the coordinates written (tiny loops are cut there, see assemble)
            if let Some(at) = crate::geom::validate::find_self_intersection(&poly.wgs84) {
                return Err(cx.err(format!(
                    "grid {g} drawn around the kept grids crosses itself at {:.7},{:.7}",
                    at.x, at.y
                )));
            }
        }
    }
    if params.collect_fabric {
        let base = acc.grids.len();
        acc.fabric.push((
            p.tess.clone(),
            p.graph.clone(),
            p.fixed.iter().map(|f| f.polygon.clone()).collect(),
            sol.grid_of.iter().map(|&g| base + g as usize).collect(),
        ));
    }
    let (len, road) = collect_grids(
        graph,
        &sol,
        polys,
        band,
        &p.fixed,
        cx.c,
        &cx.frame,
        &mut acc.grids,
        &mut acc.notes,
    );
    acc.internal_len += len;
    acc.internal_road += road;
    Ok(())
}

/// Each level of `chain` partitions every polygon of the one above, on the same atoms: per
/// level its band, solution, and each polygon's parent (index among this part's polygons of the
/// level above).
fn nest(
    graph: &AtomGraph,
    chain: &[Band],
    params: &RegridParams,
) -> Vec<(Band, solve::Solution, Vec<usize>)> {
    let mut parent = vec![0u32; graph.len()];
    let mut n_parent = 1usize;
    let mut solved = Vec::new();
    for b in chain {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_parent];
        for (a, &p) in parent.iter().enumerate() {
            members[p as usize].push(a);
        }
        let mut label = vec![0u32; graph.len()];
        let mut oversize: Vec<bool> = Vec::new();
        let mut parent_of: Vec<usize> = Vec::new();
        for (p, m) in members.iter().enumerate() {
            if m.is_empty() {
                continue;
            }
            let sub = subgraph(graph, m, &parent, p as u32);
            let s = solve::partition(&sub, *b, params.seed, params.objective);
            let base = oversize.len() as u32;
            for (k, &a) in m.iter().enumerate() {
                label[a] = base + s.grid_of[k];
            }
            let mut ov = s.oversize;
            ov.resize(s.n_grids, false);
            oversize.extend(ov);
            parent_of.extend(std::iter::repeat_n(p, s.n_grids));
        }
        let sol = solve::Solution {
            n_grids: oversize.len(),
            grid_of: label,
            oversize,
        };
        parent.clone_from(&sol.grid_of);
        n_parent = sol.n_grids;
        solved.push((*b, sol, parent_of));
    }
    solved
}

/// Nested levels of one part: solved top down on the same atoms, boundaries straightened once
/// on the finest level and the same points left out of every level, so that each level's
/// polygons are exactly unions of the ones below.
fn solve_levels(cx: &Ctx, p: &Part, acc: &mut Acc) -> Result<(), RegridError> {
    let chain: Vec<Band> = cx
        .params
        .levels
        .iter()
        .copied()
        .chain(std::iter::once(cx.band))
        .collect();
    let solved = nest(&p.graph, &chain, cx.params);
    let finest = solved.last().map(|(_, s, _)| s);
    let drop = finest.map_or_else(Default::default, |s| {
        straighten::straighten(
            &p.tess,
            &assemble::boundary_edges(&p.tess, &s.grid_of, s.n_grids),
        )
    });
    let mut prev_base = 0usize;
    let n_levels = solved.len();
    for (l, (b, sol, parent_of)) in solved.into_iter().enumerate() {
        let edges = assemble::boundary_edges(&p.tess, &sol.grid_of, sol.n_grids);
        let polys = assemble::assemble_edges(&p.tess, &edges, 0, &drop)
            .map_err(|e| cx.err(format!("level {}: {e}", l + 1)))?;
        let last = l + 1 == n_levels;
        let (out, out_parent) = if last {
            (&mut acc.grids, &mut acc.final_parent)
        } else {
            let u = &mut acc.upper[l];
            (&mut u.0, &mut u.1)
        };
        let my_base = out.len();
        let mut level_notes = Vec::new();
        let (len, road) = collect_grids(
            &p.graph,
            &sol,
            polys,
            b,
            &[],
            cx.c,
            &cx.frame,
            out,
            &mut level_notes,
        );
        out_parent.extend(parent_of.into_iter().map(|q| prev_base + q));
        if last {
            acc.internal_len += len;
            acc.internal_road += road;
            acc.notes.extend(level_notes);
        } else {
            acc.upper[l].2 += len;
            acc.upper[l].3 += road;
            acc.notes.extend(
                level_notes
                    .into_iter()
                    .map(|n| format!("level {}: {n}", l + 1)),
            );
        }
        prev_base = my_base;
    }
    Ok(())
}

/// The atoms labelled `p` as a graph of their own; edges to other labels count as outer boundary.
fn subgraph(
    g: &tessellation::AtomGraph,
    members: &[usize],
    label: &[u32],
    p: u32,
) -> tessellation::AtomGraph {
    let mut idx = vec![u32::MAX; g.len()];
    for (k, &a) in members.iter().enumerate() {
        idx[a] = k as u32;
    }
    let mut atoms = Vec::with_capacity(members.len());
    let mut start = Vec::with_capacity(members.len() + 1);
    let mut adj = Vec::new();
    for &a in members {
        start.push(adj.len());
        let mut at = g.atoms[a].clone();
        for e in g.nbrs(a) {
            if label[e.nbr as usize] == p {
                adj.push(tessellation::Adj {
                    nbr: idx[e.nbr as usize],
                    ..*e
                });
            } else {
                at.outer += e.len;
            }
        }
        atoms.push(at);
    }
    start.push(adj.len());
    tessellation::AtomGraph { atoms, start, adj }
}

/// Grid records of one solved part: households, weights, buildings and figures per grid,
/// explanations of misses into `notes`. Returns the internal boundary length and its part near roads.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
fn collect_grids(
    graph: &tessellation::AtomGraph,
    sol: &solve::Solution,
    polys: Vec<assemble::GridPolygon>,
    band: Band,
    fixed_part: &[&FixedGrid],
    c: &Community,
    frame: &LocalFrame,
    grids: &mut Vec<Grid>,
    notes: &mut Vec<String>,
) -> (f64, f64) {
    let mut internal_len = 0.0;
    let mut internal_road = 0.0;
    // per grid figures
    let mut hh = vec![0u64; sol.n_grids];
    let mut wt = vec![0.0; sol.n_grids];
    let mut blds: Vec<Vec<usize>> = vec![Vec::new(); sol.n_grids];
    for (a, atom) in graph.atoms.iter().enumerate() {
        let g = sol.grid_of[a] as usize;
        hh[g] += atom.households;
        wt[g] += atom.weight;
        blds[g].extend(atom.buildings.iter().map(|&b| b as usize));
        for e in graph.nbrs(a) {
            if sol.grid_of[e.nbr as usize] as usize != g && (e.nbr as usize) > a {
                internal_len += e.len;
                internal_road += e.road;
            }
        }
    }
    for (g, poly) in polys.into_iter().enumerate() {
        let kept = g < fixed_part.len();
        let (area, perim) = if kept {
            metrics::area_perimeter(&project_poly(frame, &fixed_part[g].polygon))
        } else {
            metrics::area_perimeter(&poly.metres)
        };
        let mut b = std::mem::take(&mut blds[g]);
        b.sort_unstable();
        // a kept grid that is one building above the maximum is an oversize grid like any other
        let oversize = (sol.oversize[g] || (kept && wt[g] > band.max())) && b.len() == 1;
        if kept && !band.contains(wt[g]) && !oversize {
            notes.push(format!(
                "kept grid {} holds {:.0}: outside the band, kept as given (locked, or left as it was by a rebalance)",
                fixed_part[g].code, wt[g]
            ));
        } else if !band.contains(wt[g]) && !oversize {
            notes.push(metrics::explain(graph, sol, g, band, wt[g]));
        }
        grids.push(Grid {
            code: if kept {
                fixed_part[g].code.clone()
            } else {
                String::new()
            },
            name: if kept {
                fixed_part[g].name.clone()
            } else {
                None
            },
            kept,
            community: c.code.clone(),
            street: c.street.clone(),
            households: hh[g],
            weight: wt[g],
            buildings: b,
            area_m2: area,
            perimeter_m: perim,
            polsby_popper: if perim > 0.0 {
                4.0 * std::f64::consts::PI * area / (perim * perim)
            } else {
                0.0
            },
            oversize,
            geometry: if kept {
                fixed_part[g].polygon.clone()
            } else {
                poly.wgs84
            },
        });
    }
    (internal_len, internal_road)
}

/// The atoms of a grid that came out in pieces, as debug events (developers read them with
/// `RUST_LOG=wangge=debug`).
fn debug_atoms_of(
    graph: &tessellation::AtomGraph,
    grid_of: &[u32],
    grid: usize,
    frame: &LocalFrame,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for (a, at) in graph.atoms.iter().enumerate() {
        if grid_of[a] as usize == grid {
            let p = frame.inv(at.centroid);
            let nbrs: Vec<(u32, u32, f64)> = graph
                .nbrs(a)
                .iter()
                .map(|e| (e.nbr, grid_of[e.nbr as usize], e.len))
                .collect();
            tracing::debug!(grid, atom = a, area_m2 = at.area, buildings = ?at.buildings, lon = p.x, lat = p.y, neighbours = ?nbrs, "atom of a grid in pieces");
        }
    }
}
