//! A plan's fabric state from its stored grids and assignment; the parameters it was drawn with.

use super::*;

/// The regrid settings a plan was drawn with.
pub(crate) fn plan_params(p: &Plan) -> RegridParams {
    let mut params = RegridParams {
        band: plan_band(p),
        ..RegridParams::default()
    };
    if let Some(rc) = p.params.get("road_classes").and_then(Value::as_array) {
        let rc: Vec<String> = rc
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        if !rc.is_empty() {
            params.cut_classes = rc;
        }
    }
    params
}

/// A fabric for a plan made before fabrics were kept: the community tessellated again, each
/// atom with a building in its building's grid, the others in the grid holding their centroid
/// (or a neighbour's).
pub(crate) async fn first_fabric(
    store: &dyn Store,
    plan: &Plan,
    community: &str,
) -> Result<FabricRow, EditError> {
    let (cs, bs, roads) = crate::store::regrid::load(store, Some(&[community.to_string()])).await?;
    let grids: Vec<GridRecord> = store.plan_community_grids(plan.id, community).await?;
    let assignment: HashMap<String, String> =
        store.plan_assignment(plan.id).await?.into_iter().collect();
    let params = plan_params(plan);
    let c = cs
        .first()
        .ok_or_else(|| EditError::NotFound(format!("community {community} is not in the store")))?;
    let fabric = heavy(|| Fabric::build(c, &bs, &roads, &params))
        .map_err(|e| EditError::Refused(e.to_string()))?;
    let st = heavy(|| state_from_grids(&fabric, &grids, &assignment));
    Ok(FabricRow {
        fabric: fabric.encode(),
        state: st.to_text(),
    })
}

/// Each atom's grid from a plan's assignment (atoms with buildings) and grid polygons (the rest).
pub(crate) fn state_from_grids(
    f: &Fabric,
    grids: &[GridRecord],
    assignment: &HashMap<String, String>,
) -> State {
    let mut st = State {
        grids: grids
            .iter()
            .map(|g| state::Slot {
                code: g.code.clone(),
                locked: false,
            })
            .collect(),
        atoms: vec![u32::MAX; f.n_atoms()],
    };
    let frame = f.frame();
    for a in 0..f.n_atoms() {
        let Some(at) = f.atom(a) else { continue };
        // the grid most of its households were in
        let mut votes: HashMap<usize, u64> = HashMap::new();
        for &b in &at.buildings {
            let fb = &f.buildings[b as usize];
            if let Some(g) = assignment.get(&fb.id).and_then(|c| st.index(c)) {
                *votes.entry(g).or_default() += u64::from(fb.households) + 1;
            }
        }
        let by_vote = votes
            .into_iter()
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
            .map(|x| x.0);
        let by_place = || {
            let p = frame?.inv(at.centroid);
            grids
                .iter()
                .position(|g| crate::geom::point_in_polygons(&g.geometry.0, p))
        };
        if let Some(g) = by_vote.or_else(by_place) {
            st.atoms[a] = g as u32;
        }
    }
    // atoms still without a grid take a neighbour's, repeatedly
    for _ in 0..64 {
        let mut left = false;
        for a in 0..st.atoms.len() {
            if st.atoms[a] != u32::MAX {
                continue;
            }
            let best = f
                .neighbours(a)
                .into_iter()
                .filter(|e| st.atoms[e.nbr as usize] != u32::MAX)
                .max_by(|x, y| x.len.total_cmp(&y.len).then(y.nbr.cmp(&x.nbr)));
            match best {
                Some(e) => st.atoms[a] = st.atoms[e.nbr as usize],
                None => left = true,
            }
        }
        if !left {
            break;
        }
    }
    if st.grids.is_empty() {
        st.grids.push(state::Slot {
            code: crate::model::grid_code(&f.community, 1).to_string(),
            locked: false,
        });
    }
    for g in &mut st.atoms {
        if *g == u32::MAX {
            *g = 0;
        }
    }
    st.normalize();
    st
}
