//! 动态调整 on atoms: a plan's communities tessellated again from the store's current layers;
//! every new atom inherits the grid of its buildings (or, for land and new buildings, of the old
//! grid holding its centroid); only grids out of band are redrawn, by moving boundary atoms
//! between them and their neighbours (fewest households first), a building above the band
//! becoming a grid of its own. A community whose layers did not change keeps its fabric and
//! state exactly, so its grids come out byte-identical.

use super::ops::{self, greedy_repair};
use super::state::State;
use super::{Derived, derive};
use crate::partition::Band;
use crate::partition::fabric::Fabric;
use crate::store::GridRecord;
use geo::Coord;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What a rebalance of one community did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommunityChange {
    pub community: String,
    /// The layers are as they were: fabric and state kept.
    pub unchanged: bool,
    /// Grids that were out of band after inheriting and were redrawn.
    pub redrawn: Vec<String>,
    /// Grids out of band even after redrawing (code, households).
    pub still_out: Vec<(String, u64)>,
    /// Grids made for a building above the band.
    pub new_grids: Vec<String>,
}

/// Each atom of `new` in the grid its buildings were in (`old_code` by building id, weighted by
/// households), else in the old grid polygon holding its centroid, else its neighbour's.
#[must_use]
pub fn inherit(
    new: &Fabric,
    old: &State,
    old_code: &HashMap<String, String>,
    old_grids: &[GridRecord],
) -> State {
    let mut st = State {
        grids: old.grids.clone(),
        atoms: vec![u32::MAX; new.n_atoms()],
    };
    let frame = new.frame();
    for a in 0..new.n_atoms() {
        let Some(at) = new.atom(a) else { continue };
        let mut votes: BTreeMap<usize, u64> = BTreeMap::new();
        for &b in &at.buildings {
            let fb = &new.buildings[b as usize];
            if let Some(g) = old_code.get(&fb.id).and_then(|c| st.index(c)) {
                *votes.entry(g).or_default() += u64::from(fb.households) + 1;
            }
        }
        let by_vote = votes
            .into_iter()
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
            .map(|x| x.0);
        let by_place = || {
            let p: Coord = frame?.inv(at.centroid);
            old_grids
                .iter()
                .find(|g| crate::geom::point_in_polygons(&g.geometry.0, p))
                .and_then(|g| st.index(&g.code))
        };
        if let Some(g) = by_vote.or_else(by_place) {
            st.atoms[a] = g as u32;
        }
    }
    for _ in 0..st.atoms.len() {
        let mut left = false;
        let mut changed = false;
        for a in 0..st.atoms.len() {
            if st.atoms[a] != u32::MAX {
                continue;
            }
            let best = new
                .neighbours(a)
                .into_iter()
                .filter(|e| st.atoms[e.nbr as usize] != u32::MAX)
                .max_by(|x, y| x.len.total_cmp(&y.len).then(y.nbr.cmp(&x.nbr)));
            match best {
                Some(e) => {
                    st.atoms[a] = st.atoms[e.nbr as usize];
                    changed = true;
                }
                None => left = true,
            }
        }
        if !left || !changed {
            break;
        }
    }
    if st.grids.is_empty() {
        st.push(crate::model::grid_code(&new.community, 1).to_string());
    }
    for g in &mut st.atoms {
        if *g == u32::MAX {
            *g = 0;
        }
    }
    st.normalize();
    st
}

fn weights(f: &Fabric, st: &State) -> Vec<(f64, usize)> {
    let mut w = vec![(0.0, 0usize); st.grids.len()];
    for (a, &g) in st.atoms.iter().enumerate() {
        if let Some(at) = f.atom(a) {
            w[g as usize].0 += at.weight;
            w[g as usize].1 += at.buildings.len();
        }
    }
    w
}

/// Redraw the grids out of band (not locked, not one building above the band) with their
/// neighbours, fewest households moved; a building above the band becomes a grid of its own.
pub fn balance(f: &Fabric, st: &mut State, band: Band, change: &mut CommunityChange) {
    let out = |st: &State| -> Vec<usize> {
        weights(f, st)
            .iter()
            .enumerate()
            .filter(|(g, (w, n))| {
                let oversize = *n == 1 && *w > band.max();
                !(band.contains(*w) || oversize || st.grids[*g].locked)
            })
            .map(|(g, _)| g)
            .collect()
    };
    let codes: Vec<String> = out(st).iter().map(|&g| st.grids[g].code.clone()).collect();
    for code in codes {
        let Some(g) = st.index(&code) else { continue };
        if band.contains(weights(f, st)[g].0) {
            continue;
        }
        // a building above the band alone
        let members = st.members();
        if members[g].len() > 1
            && let Some(&big) = members[g]
                .iter()
                .find(|&&a| f.atom(a as usize).is_some_and(|x| x.weight > band.max()))
        {
            let c = st.next_code(&f.community);
            let n = st.push(c.clone());
            st.atoms[big as usize] = n;
            if ops::pieces_of(f, st, g) > 1 {
                st.atoms[big as usize] = g as u32;
                st.grids.pop();
            } else {
                change.new_grids.push(c);
            }
        }
        let mut gs: Vec<usize> = vec![g];
        for &a in &st.members()[g] {
            for e in f.neighbours(a as usize) {
                let h = st.atoms[e.nbr as usize] as usize;
                if !gs.contains(&h) && !st.grids[h].locked {
                    gs.push(h);
                }
            }
        }
        gs.sort_unstable();
        if greedy_repair(st, f, &gs, band) > 0 || !change.new_grids.is_empty() {
            change.redrawn.push(code);
        }
    }
    st.normalize();
    let w = weights(f, st);
    change.still_out = out(st)
        .into_iter()
        .map(|g| (st.grids[g].code.clone(), w[g].0.round() as u64))
        .collect();
}

/// A community rebalanced: (fabric, state, derived grids).
///
/// # Errors
/// A grid that cannot be drawn.
pub fn community(
    new: Fabric,
    old: (&Fabric, &State),
    old_grids: &[GridRecord],
    band: Band,
) -> Result<(Fabric, State, Vec<Derived>, CommunityChange), super::EditError> {
    let mut change = CommunityChange {
        community: new.community.clone(),
        ..CommunityChange::default()
    };
    let st = if new.encode() == old.0.encode() {
        change.unchanged = true;
        old.1.clone()
    } else {
        let mut code = HashMap::new();
        for (a, &g) in old.1.atoms.iter().enumerate() {
            if let Some(at) = old.0.atom(a) {
                for &b in &at.buildings {
                    code.insert(
                        old.0.buildings[b as usize].id.clone(),
                        old.1.grids[g as usize].code.clone(),
                    );
                }
            }
        }
        let mut st = inherit(&new, old.1, &code, old_grids);
        balance(&new, &mut st, band, &mut change);
        st
    };
    let d = derive(&new, &st, band)?;
    Ok((new, st, d, change))
}
