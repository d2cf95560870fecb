//! Reading an OpenStreetMap extract into buildings and roads.

use super::*;

/// A building from its footprint and tags: invalid parts repaired or skipped (and noted),
/// households from `households` or estimated from floors, footprint and use.
pub(crate) fn building(
    id: String,
    mp: &MultiPolygon,
    tags: &HashMap<String, String>,
    est: &EstimateParams,
    notes: &mut LoadNotes,
) -> Option<Building> {
    let mut parts = Vec::new();
    for p in &mp.0 {
        match check_polygon(p, true) {
            Ok(c) => {
                if c.repaired {
                    notes.repaired.push(id.clone());
                }
                parts.extend(c.geometry.0);
            }
            Err(e) => notes.skipped.push(format!("{id}: {e}")),
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mp = MultiPolygon(parts);
    let num = |k: &str| {
        tags.get(k)
            .and_then(|v| v.trim().trim_end_matches('m').trim().parse::<f64>().ok())
    };
    let (households, source) = match num("households") {
        Some(h) if h >= 0.0 => (h.round() as u32, HouseholdSource::Given),
        _ => {
            notes.estimated_households += 1;
            let floors = est.floors(num("floors"), num("building:levels"), num("height"));
            let share = est.residential_share(tags.get("building").map(String::as_str));
            (
                est.estimate(geodesic_area_m2(&mp), floors, share),
                HouseholdSource::Estimated,
            )
        }
    };
    Some(Building {
        id,
        households,
        source,
        weight: f64::from(households),
        geometry: mp,
    })
}

/// Read buildings and roads from a `.osm.pbf` file.
///
/// # Errors
/// Unreadable or corrupt PBF.
pub fn read_osm(
    path: &Path,
    est: &EstimateParams,
) -> Result<(Vec<Building>, Vec<Road>, LoadNotes), InputError> {
    let p = Parsed::read(path)?;
    let mut notes = LoadNotes::default();
    let mut buildings = Vec::new();
    let mut roads = Vec::new();
    for w in &p.ways {
        let Some(line) = p.line_of(&w.nodes) else {
            notes.skipped.push(format!(
                "w{}: references nodes missing from the extract",
                w.id
            ));
            continue;
        };
        if w.tags.contains_key("building")
            && w.nodes.len() >= 4
            && w.nodes.first() == w.nodes.last()
        {
            let mp = MultiPolygon(vec![Polygon::new(line, vec![])]);
            buildings.extend(building(
                format!("w{}", w.id),
                &mp,
                &w.tags,
                est,
                &mut notes,
            ));
        } else if let Some(h) = w.tags.get("highway") {
            roads.push(Road {
                highway: h.clone(),
                name: w.tags.get("name").cloned(),
                line,
            });
        }
    }
    for (id, members, tags) in &p.rels {
        let mut outers = Vec::new();
        let mut inners = Vec::new();
        for (wid, role) in members {
            let Some(refs) = p.way_nodes.get(wid) else {
                continue;
            };
            if refs.len() < 4 || refs.first() != refs.last() {
                continue;
            }
            let Some(l) = p.line_of(refs) else { continue };
            if role == "inner" {
                inners.push(l);
            } else {
                outers.push(l);
            }
        }
        if outers.is_empty() {
            notes.skipped.push(format!("r{id}: no closed outer ring"));
            continue;
        }
        let polys: Vec<Polygon> = if outers.len() == 1 {
            vec![Polygon::new(outers.remove(0), inners)]
        } else {
            outers
                .into_iter()
                .map(|o| Polygon::new(o, vec![]))
                .collect()
        };
        let mp = MultiPolygon(polys);
        buildings.extend(building(format!("r{id}"), &mp, tags, est, &mut notes));
    }
    buildings.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((buildings, roads, notes))
}
