//! Partition figures: households, band share, Polsby-Popper compactness, road following, and
//! the explanation of grids that miss the band.

use super::solve::{Band, Solution};
use super::tessellation::AtomGraph;
use super::{CommunityReport, Figures, Grid};
use geo::{Area, Polygon};

/// Area (m²) and perimeter (m) of a polygon in metres.
#[must_use]
pub fn area_perimeter(p: &Polygon) -> (f64, f64) {
    let mut per = 0.0;
    for r in std::iter::once(p.exterior()).chain(p.interiors()) {
        for w in r.0.windows(2) {
            per += ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt();
        }
    }
    (p.unsigned_area(), per)
}

fn base(grids: &[&Grid], band: Band) -> Figures {
    let mut f = Figures {
        grids: grids.len(),
        ..Figures::default()
    };
    let mut counted = 0usize;
    let mut pp = Vec::new();
    for g in grids {
        f.households += g.households;
        f.buildings += g.buildings.len();
        if g.oversize {
            f.oversize_grids += 1;
        } else {
            counted += 1;
            if band.contains(g.weight) {
                f.in_band += 1;
            }
        }
        pp.push(g.polsby_popper);
    }
    f.in_band_pct = if counted > 0 {
        100.0 * f.in_band as f64 / counted as f64
    } else {
        100.0
    };
    f.weight = grids.iter().map(|g| g.weight).sum();
    f.weight_min = grids.iter().map(|g| g.weight).fold(f64::INFINITY, f64::min);
    f.weight_max = grids.iter().map(|g| g.weight).fold(0.0, f64::max);
    if grids.is_empty() {
        f.weight_min = 0.0;
    }
    f.households_min = grids.iter().map(|g| g.households).min().unwrap_or(0);
    f.households_max = grids.iter().map(|g| g.households).max().unwrap_or(0);
    if !pp.is_empty() {
        f.polsby_popper_mean = pp.iter().sum::<f64>() / pp.len() as f64;
        f.polsby_popper_min = pp.iter().copied().fold(f64::INFINITY, f64::min);
    }
    f
}

/// Figures of one community.
#[must_use]
pub fn community_figures(
    grids: &[Grid],
    band: Band,
    has_roads: bool,
    internal: f64,
    road: f64,
    seconds: f64,
) -> Figures {
    let refs: Vec<&Grid> = grids.iter().collect();
    let mut f = base(&refs, band);
    f.internal_boundary_m = internal;
    f.road_following_pct = has_roads.then(|| {
        if internal > 0.0 {
            100.0 * road / internal
        } else {
            100.0
        }
    });
    f.seconds = seconds;
    f
}

/// Figures over all communities.
#[must_use]
pub fn total_figures(
    grids: &[Grid],
    reports: &[CommunityReport],
    band: Band,
    has_roads: bool,
) -> Figures {
    let refs: Vec<&Grid> = grids.iter().collect();
    let mut f = base(&refs, band);
    let internal: f64 = reports.iter().map(|r| r.figures.internal_boundary_m).sum();
    let road: f64 = reports
        .iter()
        .map(|r| {
            r.figures.road_following_pct.unwrap_or(0.0) / 100.0 * r.figures.internal_boundary_m
        })
        .sum();
    f.internal_boundary_m = internal;
    f.road_following_pct = has_roads.then(|| {
        if internal > 0.0 {
            100.0 * road / internal
        } else {
            100.0
        }
    });
    f.seconds = reports.iter().map(|r| r.figures.seconds).sum();
    f
}

/// Why grid `g` misses the band.
#[must_use]
pub fn explain(graph: &AtomGraph, sol: &Solution, g: usize, band: Band, w: f64) -> String {
    let atoms: Vec<usize> = (0..graph.len())
        .filter(|&a| sol.grid_of[a] as usize == g)
        .collect();
    let heaviest = atoms
        .iter()
        .map(|&a| graph.atoms[a].weight)
        .fold(0.0, f64::max);
    let comp_w: f64 = {
        // weight reachable without crossing oversize grids: the enclave this grid sits in
        let mut seen = vec![false; graph.len()];
        let mut stack: Vec<usize> = atoms.clone();
        for &a in &atoms {
            seen[a] = true;
        }
        let mut total = 0.0;
        while let Some(a) = stack.pop() {
            total += graph.atoms[a].weight;
            for e in graph.nbrs(a) {
                let b = e.nbr as usize;
                let gb = sol.grid_of[b] as usize;
                if !seen[b]
                    && !sol.oversize.get(gb).copied().unwrap_or(false)
                    && graph.atoms[b].weight <= band.max()
                {
                    seen[b] = true;
                    stack.push(b);
                }
            }
        }
        total
    };
    if w > band.max() && heaviest > band.max() {
        format!(
            "a grid of {w:.0} holds a single building cluster of {heaviest:.0}, above the maximum {:.0} (overlapping footprints cannot be split)",
            band.max()
        )
    } else if w < band.min() && comp_w < band.min() {
        format!(
            "a grid of {w:.0} lies in an area of only {comp_w:.0} cut off by giant buildings or the boundary; below the minimum {:.0}",
            band.min()
        )
    } else if w < band.min() {
        format!(
            "a grid of {w:.0}: below the minimum {:.0}; its neighbours could not give it more without leaving the band or breaking contiguity",
            band.min()
        )
    } else {
        format!(
            "a grid of {w:.0}: above the maximum {:.0}; its buildings ({heaviest:.0} the largest) could not be shared with neighbours within the band",
            band.max()
        )
    }
}
