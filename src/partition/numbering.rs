//! Grid codes and names: grids numbered west→east within rows taken north→south (DB11/T 2157
//! reading order), kept grids keeping theirs; nested levels numbered within their parents.

use super::{AtomOut, CommunityReport, Grid};
use crate::geom::frame::LocalFrame;
use crate::geom::interior_point::interior_point;
use crate::model::{Community, grid_code, grid_name};
use geo::{BoundingRect, Coord, MultiPolygon};

/// Number grids west→east within rows taken north→south (DB11/T 2157 reading order). Kept
/// grids keep their codes; new grids take sequence numbers after the highest kept one.
pub(super) fn number_grids(grids: &mut [Grid], c: &Community, frame: &LocalFrame) {
    if grids.is_empty() {
        return;
    }
    let mean_area = grids.iter().map(|g| g.area_m2).sum::<f64>() / grids.len() as f64;
    let row_h = mean_area.sqrt().max(1.0);
    let top = c
        .geometry
        .bounding_rect()
        .map_or(0.0, |r| frame.fwd(r.max()).y);
    let used: usize = grids
        .iter()
        .filter(|g| g.kept)
        .filter_map(|g| {
            let digits: String = g
                .code
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits
                .get(digits.len().saturating_sub(3)..)
                .and_then(|d| d.parse::<usize>().ok())
        })
        .max()
        .unwrap_or(0);
    let mut keys: Vec<(i64, f64, usize)> = grids
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.kept)
        .map(|(i, g)| {
            let p = interior_point(&MultiPolygon(vec![g.geometry.clone()]))
                .unwrap_or(Coord { x: 0.0, y: 0.0 });
            let m = frame.fwd(p);
            (((top - m.y) / row_h).floor() as i64, m.x, i)
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (seq, k) in keys.iter().enumerate() {
        let n = used + seq + 1;
        let g = &mut grids[k.2];
        g.code = grid_code(&c.code, n).to_string();
        g.name = c.name.as_deref().map(|nm| grid_name(nm, n));
    }
}

/// An upper level of one community: grids, parent index in the level above, internal boundary
/// length and its part near roads.
pub(super) type Upper = (Vec<Grid>, Vec<usize>, f64, f64);

/// What one community gives: its grids, report, atoms (when asked) and upper levels.
pub(super) type CommunityOutcome = (
    Vec<Grid>,
    CommunityReport,
    Vec<AtomOut>,
    Vec<Upper>,
    Option<super::FabricOut>,
);

/// Codes for nested levels: units of the first level are numbered in the community, each lower
/// level's polygons within their parent (`parent` indexes the level above); each level sorted.
pub(super) fn number_levels(
    c: &Community,
    frame: &LocalFrame,
    upper: &mut [Upper],
    grids: &mut Vec<Grid>,
    final_parent: &[usize],
) {
    let n_upper = upper.len();
    for l in 0..=n_upper {
        let (above, rest) = upper.split_at_mut(l);
        let (level, parents): (&mut Vec<Grid>, &[usize]) = if l == n_upper {
            (grids, final_parent)
        } else {
            let (g, p, _, _) = &mut rest[0];
            (g, p.as_slice())
        };
        if l == 0 {
            number_grids(level, c, frame);
        } else {
            let up = &above[l - 1].0;
            let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, &p) in parents.iter().enumerate() {
                groups.entry(p).or_default().push(i);
            }
            for (p, idx) in groups {
                let Some(pg) = up.get(p) else { continue };
                let unit = Community {
                    code: pg.code.clone(),
                    name: None,
                    street: Some(c.code.clone()),
                    geometry: MultiPolygon(vec![pg.geometry.clone()]),
                };
                let mut mine: Vec<Grid> = idx.iter().map(|&i| level[i].clone()).collect();
                number_grids(&mut mine, &unit, frame);
                for (k, g) in idx.iter().zip(mine) {
                    level[*k] = Grid {
                        community: unit.code.clone(),
                        street: Some(c.code.clone()),
                        ..g
                    };
                }
            }
        }
    }
    for (g, _, _, _) in upper.iter_mut() {
        g.sort_by(|a, b| a.code.cmp(&b.code));
    }
    grids.sort_by(|a, b| a.code.cmp(&b.code));
}
