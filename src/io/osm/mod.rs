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

mod read;
pub use read::*;
