//! Putting a community back in band: moving atoms between neighbouring grids, fewest households first.

use super::*;

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
/// `same`: `new` is known to be the old fabric (the layers' digest is the stored one).
pub fn community(
    new: Fabric,
    old: (&Fabric, &State),
    same: bool,
    old_grids: &[GridRecord],
    band: Band,
) -> Result<(Fabric, State, Vec<Derived>, CommunityChange), super::super::EditError> {
    let mut change = CommunityChange {
        community: new.community.clone(),
        ..CommunityChange::default()
    };
    let st = if same || new.raw() == old.0.raw() {
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
