//! Buildings and roads straight from an OpenStreetMap PBF extract.
//!
//! Buildings: closed ways tagged `building=*` and multipolygon relations tagged `building=*`
//! (outer rings assembled from member ways that are closed on their own). Roads: ways tagged
//! `highway=*`. Households are estimated unless a `households` tag is present.

use super::error::InputError;
use crate::geom::validate::check_polygon;
use crate::io::geojson::{LoadNotes, geodesic_area_m2};
use crate::model::{Building, EstimateParams, HouseholdSource, Road};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use osmpbf::{Element, ElementReader};
use std::collections::HashMap;
use std::path::Path;

/// A building relation: id, (member way, role), tags.
type RelRec = (i64, Vec<(i64, String)>, HashMap<String, String>);

struct WayRec {
    id: i64,
    nodes: Vec<i64>,
    tags: HashMap<String, String>,
}

/// What one pass over a PBF file keeps: every node's position, the building and highway ways,
/// every way's node list (relation members), and building multipolygon relations.
#[derive(Default)]
struct Parsed {
    nodes: HashMap<i64, Coord>,
    ways: Vec<WayRec>,
    way_nodes: HashMap<i64, Vec<i64>>,
    rels: Vec<RelRec>,
}

impl Parsed {
    fn read(path: &Path) -> Result<Parsed, InputError> {
        let reader = ElementReader::from_path(path)
            .map_err(|e| InputError::file(path, format!("cannot open as OSM PBF: {e}")))?;
        let mut p = Parsed::default();
        reader
            .for_each(|el| match el {
                Element::Node(n) => {
                    p.nodes.insert(
                        n.id(),
                        Coord {
                            x: n.lon(),
                            y: n.lat(),
                        },
                    );
                }
                Element::DenseNode(n) => {
                    p.nodes.insert(
                        n.id(),
                        Coord {
                            x: n.lon(),
                            y: n.lat(),
                        },
                    );
                }
                Element::Way(w) => {
                    let tags: HashMap<String, String> = w
                        .tags()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    let refs: Vec<i64> = w.refs().collect();
                    if tags.contains_key("building") || tags.contains_key("highway") {
                        p.ways.push(WayRec {
                            id: w.id(),
                            nodes: refs.clone(),
                            tags,
                        });
                    }
                    p.way_nodes.insert(w.id(), refs);
                }
                Element::Relation(r) => {
                    let tags: HashMap<String, String> = r
                        .tags()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    if tags.contains_key("building")
                        && tags.get("type").map(String::as_str) == Some("multipolygon")
                    {
                        let members = r
                            .members()
                            .filter(|m| m.member_type == osmpbf::RelMemberType::Way)
                            .map(|m| (m.member_id, m.role().unwrap_or("").to_string()))
                            .collect();
                        p.rels.push((r.id(), members, tags));
                    }
                }
            })
            .map_err(|e| InputError::file(path, format!("corrupt OSM PBF: {e}")))?;
        Ok(p)
    }

    /// The line through these nodes, when all are in the extract.
    fn line_of(&self, refs: &[i64]) -> Option<LineString> {
        refs.iter()
            .map(|r| self.nodes.get(r).copied())
            .collect::<Option<Vec<_>>>()
            .map(LineString)
    }
}

/// A building from its footprint and tags: invalid parts repaired or skipped (and noted),
/// households from `households` or estimated from floors, footprint and use.
fn building(
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
