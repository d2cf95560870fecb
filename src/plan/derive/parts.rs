//! Assembling a community's grid polygons from the atoms of each grid.

use super::*;

/// Each grid's polygon in WGS84 and metres, assembled part by part.
pub(crate) type Polys = (Vec<Option<Polygon>>, Vec<Option<Polygon>>);

pub(crate) fn assemble_parts(
    f: &Fabric,
    st: &State,
    members: &[Vec<u32>],
    mut follow: Option<&mut Vec<crate::partition::follow::PartFollow>>,
) -> Result<Polys, EditError> {
    if let Some(fw) = follow.as_mut() {
        fw.resize_with(f.parts.len(), Default::default);
    }
    let n = st.grids.len();
    let mut polys: Vec<Option<Polygon>> = vec![None; n];
    let mut metres: Vec<Option<Polygon>> = vec![None; n];
    let offsets = f.offsets();
    for (pi, part) in f.parts.iter().enumerate() {
        let base = offsets[pi];
        let na = part.graph.len();
        // grids present in this part, numbered locally
        let mut local = vec![u32::MAX; n];
        let mut globals = Vec::new();
        let mut grid_of = Vec::with_capacity(na);
        for a in 0..na {
            let g = st.atoms[base + a] as usize;
            if local[g] == u32::MAX {
                local[g] = globals.len() as u32;
                globals.push(g);
            }
            grid_of.push(local[g]);
        }
        for &g in &globals {
            if polys[g].is_some() {
                return Err(EditError::Refused(format!(
                    "grid {} would lie in two separate parts of community {}",
                    st.grids[g].code, f.community
                )));
            }
        }
        let a = part.assembly();
        let codes: Vec<&str> = globals.iter().map(|&g| st.grids[g].code.as_str()).collect();
        let inputs = (&a.edges, &a.constraints);
        let out = match follow.as_mut().and_then(|fw| fw.get_mut(pi)) {
            Some(fw) => fw.assemble(&part.tess, inputs, &grid_of, &codes),
            None => assemble::assemble_with(&part.tess, inputs, &grid_of, globals.len(), 0),
        }
        .map_err(|e| {
            let which = match &e {
                assemble::AssembleError::NotContiguous { grid, .. }
                | assemble::AssembleError::Empty { grid } => globals
                    .get(*grid)
                    .map_or_else(String::new, |&g| st.grids[g].code.clone()),
            };
            EditError::Refused(format!("grid {which}: {e}"))
        })?;
        for (k, gp) in out.into_iter().enumerate() {
            let g = globals[k];
            // a grid that is exactly one kept polygon is drawn as that polygon
            let fixed = match members[g].as_slice() {
                [a] => f.atom(*a as usize).and_then(|at| at.fixed),
                _ => None,
            };
            if let Some(k) = fixed.and_then(|k| part.fixed.get(k as usize)) {
                let m = project(&part.tess.frame, k);
                polys[g] = Some(k.clone());
                metres[g] = Some(m);
            } else {
                polys[g] = Some(gp.wgs84);
                metres[g] = Some(gp.metres);
            }
        }
    }
    Ok((polys, metres))
}

pub(crate) fn project(frame: &crate::geom::frame::LocalFrame, p: &Polygon) -> Polygon {
    let r = |l: &LineString| LineString(l.0.iter().map(|c| frame.fwd(*c)).collect());
    Polygon::new(r(p.exterior()), p.interiors().iter().map(r).collect())
}
