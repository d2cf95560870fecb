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

mod balance;
pub use balance::*;
