//! Output files, written atomically: to a temporary file beside the target, synced, then
//! renamed over it, so a failure never leaves a partial file.

use crate::partition::{Grid, RegridResult};
use geo::{LineString, Polygon};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically.
///
/// # Errors
/// Any I/O error, with the path in the message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn ring_json(r: &LineString) -> Value {
    Value::Array(r.0.iter().map(|c| json!([c.x, c.y])).collect())
}

/// GeoJSON geometry of a polygon.
#[must_use]
pub fn polygon_json(p: &Polygon) -> Value {
    let mut rings = vec![ring_json(p.exterior())];
    rings.extend(p.interiors().iter().map(ring_json));
    json!({ "type": "Polygon", "coordinates": rings })
}

/// The grid layer as a GeoJSON FeatureCollection (coordinates already in the output CRS).
#[must_use]
pub fn grids_geojson(grids: &[Grid], geoms: &[Polygon], weighted: bool) -> Value {
    let feats: Vec<Value> = grids
        .iter()
        .zip(geoms)
        .map(|(g, geom)| {
            let mut p = Map::new();
            p.insert("code".into(), json!(g.code));
            if let Some(n) = &g.name {
                p.insert("name".into(), json!(n));
            }
            p.insert("community".into(), json!(g.community));
            if let Some(s) = &g.street {
                p.insert("street".into(), json!(s));
            }
            p.insert("households".into(), json!(g.households));
            if weighted {
                p.insert("weight".into(), json!((g.weight * 1000.0).round() / 1000.0));
            }
            p.insert("buildings".into(), json!(g.buildings.len()));
            p.insert("area_m2".into(), json!((g.area_m2 * 10.0).round() / 10.0));
            p.insert("polsby_popper".into(), json!((g.polsby_popper * 10000.0).round() / 10000.0));
            if g.oversize {
                p.insert("oversize".into(), json!(true));
            }
            json!({ "type": "Feature", "id": g.code, "properties": p, "geometry": polygon_json(geom) })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": feats })
}

/// `building_id,grid_code` for every building in a community, by building id order of input.
#[must_use]
pub fn assignments_csv(result: &RegridResult, building_ids: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["building_id", "grid_code"]);
    for &(b, g) in &result.assignment {
        let _ = w.write_record([building_ids[b].as_str(), result.grids[g].code.as_str()]);
    }
    w.into_inner().unwrap_or_default()
}

/// GeoJSON geometry of any geometry (points, lines, polygons and their multi forms).
#[must_use]
pub fn geometry_json(g: &geo::Geometry) -> Value {
    use geo::Geometry as G;
    let pt = |c: &geo::Coord| json!([c.x, c.y]);
    let line = |l: &LineString| Value::Array(l.0.iter().map(pt).collect());
    let poly = |p: &Polygon| {
        let mut r = vec![line(p.exterior())];
        r.extend(p.interiors().iter().map(line));
        Value::Array(r)
    };
    match g {
        G::Point(p) => json!({ "type": "Point", "coordinates": pt(&p.0) }),
        G::LineString(l) => json!({ "type": "LineString", "coordinates": line(l) }),
        G::Polygon(p) => json!({ "type": "Polygon", "coordinates": poly(p) }),
        G::MultiPoint(m) => {
            json!({ "type": "MultiPoint", "coordinates": m.0.iter().map(|p| pt(&p.0)).collect::<Vec<_>>() })
        }
        G::MultiLineString(m) => {
            json!({ "type": "MultiLineString", "coordinates": m.0.iter().map(line).collect::<Vec<_>>() })
        }
        G::MultiPolygon(m) => {
            json!({ "type": "MultiPolygon", "coordinates": m.0.iter().map(poly).collect::<Vec<_>>() })
        }
        _ => json!({ "type": "GeometryCollection", "geometries": [] }),
    }
}
