//! Reading GeoJSON layers (communities, buildings, roads) with errors that name the file, the
//! feature and the field.

use super::error::InputError;
use super::layer::{Layer, Role, read_layer};
use crate::geom::crs::Transformer;
use crate::geom::validate::check_polygon;
use crate::model::{Building, Community, EstimateParams, HouseholdSource, Road};
use geo::orient::{Direction, Orient};
use geo::{Area, Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

/// One feature as read, before it is interpreted as a layer's type.
#[derive(Debug, Clone)]
pub struct RawFeature {
    /// 0-based position in the file.
    pub index: usize,
    /// The GeoJSON feature `id`, as text.
    pub id: Option<String>,
    /// Properties (empty when null).
    pub properties: Map<String, Value>,
    /// The geometry object (None when null).
    pub geometry: Option<Value>,
}

impl RawFeature {
    /// How errors name this feature.
    #[must_use]
    pub fn label(&self) -> String {
        let id = self
            .id
            .clone()
            .or_else(|| self.properties.get("code").and_then(value_text))
            .or_else(|| self.properties.get("id").and_then(value_text));
        match id {
            Some(i) => format!("feature #{} (id {i})", self.index),
            None => format!("feature #{}", self.index),
        }
    }
}

/// A required text value that must be unique in the layer: `what` names it in errors.
fn unique_text(
    path: &Path,
    label: &str,
    field: &str,
    value: Option<String>,
    missing: &str,
    what: &str,
    seen: &mut HashSet<String>,
) -> Result<String, InputError> {
    let v = value.ok_or_else(|| InputError::item(path, label, Some(field), missing))?;
    if !seen.insert(v.clone()) {
        return Err(InputError::item(
            path,
            label,
            Some(field),
            format!("duplicate {what} {v:?}"),
        ));
    }
    Ok(v)
}

/// Text of a string or number value.
#[must_use]
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A yes from `true`, `1`, `"true"`, `"yes"`, `"是"` (GDAL formats store booleans as integers).
#[must_use]
pub fn value_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "y" | "1" | "是"
        ),
        _ => false,
    }
}

/// A number from a number or numeric string (`"12"`, `"30 m"` → 30).
#[must_use]
pub fn value_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) => {
            let t = s.trim().trim_end_matches('m').trim();
            t.parse::<f64>().ok().filter(|x| x.is_finite())
        }
        _ => None,
    }
}

/// Read the features of a layer in any format wangge reads (see [`super::layer::read_layer`]),
/// without regard to the CRS it states.
///
/// # Errors
/// Unreadable file, invalid JSON (with line and column), not a FeatureCollection, or a format
/// GDAL cannot read.
pub fn read_features(path: &Path) -> Result<Vec<RawFeature>, InputError> {
    Ok(read_layer(path, Role::Points)?.features)
}

/// Parse GeoJSON (a FeatureCollection, a single Feature) or GeoJSONSeq (one Feature per line,
/// optionally RFC 8142 record separators).
///
/// # Errors
/// Invalid JSON (with line and column), not a FeatureCollection, an unreadable `crs` member.
pub fn parse_layer(path: &Path, bytes: &[u8]) -> Result<Layer, InputError> {
    let cleaned: Cow<[u8]> = if bytes.contains(&0x1e) {
        Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b == 0x1e { b'\n' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(bytes)
    };
    let mut values = Vec::new();
    for v in serde_json::Deserializer::from_slice(&cleaned).into_iter::<Value>() {
        values.push(v.map_err(|e| InputError::file(path, format!("not valid JSON: {e}")))?);
    }
    if values.len() == 1 {
        let v = values.pop().unwrap_or(Value::Null);
        let crs = super::layer::geojson_crs(path, v.get("crs"))?;
        return Ok(Layer {
            features: parse_features(path, v)?,
            crs,
            format: "GeoJSON".into(),
        });
    }
    if values.is_empty() {
        return Err(InputError::file(
            path,
            "is empty; expected a GeoJSON FeatureCollection",
        ));
    }
    let mut features = Vec::with_capacity(values.len());
    for (index, v) in values.into_iter().enumerate() {
        if v.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err(InputError::item(
                path,
                format!("feature #{index}"),
                None,
                "expected a GeoJSON Feature on each line of a GeoJSON sequence",
            ));
        }
        let mut one = parse_features(path, v)?;
        if let Some(mut f) = one.pop() {
            f.index = index;
            features.push(f);
        }
    }
    Ok(Layer {
        features,
        crs: None,
        format: "GeoJSONSeq".into(),
    })
}

fn parse_features(path: &Path, v: Value) -> Result<Vec<RawFeature>, InputError> {
    let Value::Object(mut obj) = v else {
        return Err(InputError::file(
            path,
            "expected a GeoJSON object (FeatureCollection)",
        ));
    };
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let feats = match kind.as_str() {
        "FeatureCollection" => match obj.remove("features") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(InputError::file(
                    path,
                    "FeatureCollection has no `features` array",
                ));
            }
        },
        "Feature" => vec![Value::Object(obj)],
        other => {
            return Err(InputError::file(
                path,
                format!("expected a GeoJSON FeatureCollection, found type {other:?}"),
            ));
        }
    };
    feats
        .into_iter()
        .enumerate()
        .map(|(index, f)| raw_feature(path, index, f))
        .collect()
}

/// One feature object as a [`RawFeature`].
fn raw_feature(path: &Path, index: usize, f: Value) -> Result<RawFeature, InputError> {
    let Value::Object(mut f) = f else {
        return Err(InputError::item(
            path,
            format!("feature #{index}"),
            None,
            "is not a JSON object",
        ));
    };
    let id = f.get("id").and_then(value_text);
    let properties = match f.remove("properties") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(_) => {
            return Err(InputError::item(
                path,
                format!("feature #{index}"),
                Some("properties"),
                "expected an object",
            ));
        }
    };
    let geometry = match f.remove("geometry") {
        Some(Value::Null) | None => None,
        Some(g) => Some(g),
    };
    Ok(RawFeature {
        index,
        id,
        properties,
        geometry,
    })
}

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The streaming reader's state: the callback, where it stopped, what was seen.
struct Top<'a, 'b> {
    path: &'a Path,
    each: &'a mut dyn FnMut(RawFeature) -> Result<(), InputError>,
    stopped: &'b mut Option<InputError>,
    collection: bool,
    /// Features handed out, and whether a `features` member was seen.
    streamed: usize,
    features: bool,
}
/// The `features` array, visited element by element.
struct Features<'a, 'b, 'c>(&'c mut Top<'a, 'b>);
impl<'de> Visitor<'de> for Features<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a `features` array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            let top = &mut *self.0;
            if let Err(e) = raw_feature(top.path, index, v).and_then(|r| (top.each)(r)) {
                *top.stopped = Some(e);
                return Err(A::Error::custom("stopped"));
            }
            top.streamed += 1;
            index += 1;
        }
        Ok(())
    }
}
impl<'de> DeserializeSeed<'de> for Features<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}
impl<'de> Visitor<'de> for &mut Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a GeoJSON FeatureCollection")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match k.as_ref() {
                "type" => {
                    let t = map.next_value::<std::borrow::Cow<'de, str>>()?;
                    if t != "FeatureCollection" {
                        return Err(A::Error::custom("not a collection"));
                    }
                    self.collection = true;
                }
                "features" => {
                    self.features = true;
                    map.next_value_seed(Features(&mut *self))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Visit the features of a GeoJSON FeatureCollection one at a time, never holding more than one
/// as JSON values, so a large layer costs its compact form only. `Ok(false)`: the text is not a
/// FeatureCollection that can be read so (it states a `crs`, which may follow the features, or it
/// is a single Feature or a sequence) — read it whole with [`parse_layer`].
///
/// # Errors
/// Text that is not JSON, a bad feature, or the first error `each` returns.
pub fn stream_features(
    path: &Path,
    bytes: &[u8],
    each: &mut dyn FnMut(RawFeature) -> Result<(), InputError>,
) -> Result<bool, InputError> {
    use serde::de::Deserializer as _;
    if bytes.contains(&0x1e) || memchr::memmem::find(bytes, b"\"crs\"").is_some() {
        return Ok(false);
    }
    let mut stopped = None;
    let mut top = Top {
        path,
        each,
        stopped: &mut stopped,
        collection: false,
        streamed: 0,
        features: false,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = (&mut de).deserialize_map(&mut top).and_then(|()| de.end());
    let (collection, streamed, features) = (top.collection, top.streamed, top.features);
    if let Some(e) = stopped {
        return Err(e);
    }
    let not_collection = || {
        InputError::file(
            path,
            "expected a GeoJSON FeatureCollection (`type` is missing or another)",
        )
    };
    match r {
        Ok(()) if collection && !features => Err(InputError::file(
            path,
            "FeatureCollection has no `features` array",
        )),
        Ok(()) if collection => Ok(true),
        // features already handed out cannot be read again whole
        Ok(()) if streamed > 0 => Err(not_collection()),
        Ok(()) => Ok(false),
        Err(e) if e.to_string().starts_with("not a collection") => {
            if streamed > 0 {
                Err(not_collection())
            } else {
                Ok(false)
            }
        }
        Err(e) => Err(InputError::file(path, format!("not valid JSON: {e}"))),
    }
}

/// A geometry read from GeoJSON.
#[derive(Debug, Clone)]
pub enum Geom {
    Point(Coord),
    Lines(Vec<LineString>),
    Polygons(MultiPolygon),
}

fn coord(v: &Value) -> Result<Coord, String> {
    let a = v.as_array().ok_or("a position must be an array [x, y]")?;
    if a.len() < 2 {
        return Err("a position needs at least two numbers".into());
    }
    let x = a[0].as_f64().ok_or("a coordinate is not a number")?;
    let y = a[1].as_f64().ok_or("a coordinate is not a number")?;
    if !x.is_finite() || !y.is_finite() {
        return Err("a coordinate is not a finite number".into());
    }
    Ok(Coord { x, y })
}

fn line(v: &Value) -> Result<LineString, String> {
    let a = v.as_array().ok_or("expected an array of positions")?;
    a.iter()
        .map(coord)
        .collect::<Result<Vec<_>, _>>()
        .map(LineString)
}

fn polygon(v: &Value) -> Result<Polygon, String> {
    let rings = v.as_array().ok_or("expected an array of rings")?;
    if rings.is_empty() {
        return Err("a polygon has no rings".into());
    }
    let mut it = rings.iter().map(line);
    let shell = it.next().ok_or("a polygon has no rings")??;
    let holes = it.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(shell, holes))
}

/// Parse a GeoJSON geometry object.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_geometry(g: &Value) -> Result<Geom, String> {
    let t = g
        .get("type")
        .and_then(Value::as_str)
        .ok_or("geometry has no `type`")?;
    let c = g.get("coordinates");
    let need = || c.ok_or_else(|| format!("{t} geometry has no `coordinates`"));
    match t {
        "Point" => Ok(Geom::Point(coord(need()?)?)),
        "LineString" => Ok(Geom::Lines(vec![line(need()?)?])),
        "MultiLineString" => {
            let a = need()?.as_array().ok_or("expected an array of lines")?;
            Ok(Geom::Lines(a.iter().map(line).collect::<Result<_, _>>()?))
        }
        "Polygon" => Ok(Geom::Polygons(MultiPolygon(vec![polygon(need()?)?]))),
        "MultiPolygon" => {
            let a = need()?.as_array().ok_or("expected an array of polygons")?;
            Ok(Geom::Polygons(MultiPolygon(
                a.iter().map(polygon).collect::<Result<_, _>>()?,
            )))
        }
        other => Err(format!("unsupported geometry type {other}")),
    }
}

/// Input coordinates in degrees are kept on a grid of 1e-9° (about 0.1 mm): the same point
/// read from a format that stores coordinates on an integer grid (FileGDB) or through a
/// projection comes back as the same double, so every format gives the same grids.
const SNAP: f64 = 1e9;

fn snap(c: Coord) -> Coord {
    Coord {
        x: (c.x * SNAP).round() / SNAP,
        y: (c.y * SNAP).round() / SNAP,
    }
}

fn transform_coord(tf: &Transformer, c: Coord) -> Result<Coord, String> {
    let w = tf.apply(c).map_err(|e| e.to_string())?;
    Ok(if tf.to().is_geographic() { snap(w) } else { w })
}

fn transform_mp(tf: &Transformer, mp: MultiPolygon) -> Result<MultiPolygon, String> {
    let ring = |l: &LineString| -> Result<LineString, String> {
        l.0.iter()
            .map(|c| transform_coord(tf, *c))
            .collect::<Result<Vec<_>, _>>()
            .map(LineString)
    };
    mp.0.iter()
        .map(|p| {
            Ok(Polygon::new(
                ring(p.exterior())?,
                p.interiors().iter().map(ring).collect::<Result<_, _>>()?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(MultiPolygon)
}

/// Validate a polygonal feature: transform to WGS84, check, repair if safe.
fn polygons_of(
    path: &Path,
    f: &RawFeature,
    tf: &Transformer,
    repaired: &mut Vec<String>,
) -> Result<MultiPolygon, InputError> {
    let label = f.label();
    let g = f.geometry.as_ref().ok_or_else(|| {
        InputError::item(
            path,
            &label,
            Some("geometry"),
            "is missing; expected a Polygon or MultiPolygon",
        )
    })?;
    let mp =
        match parse_geometry(g).map_err(|m| InputError::item(path, &label, Some("geometry"), m))? {
            Geom::Polygons(mp) => mp,
            Geom::Point(_) => {
                return Err(InputError::item(
                    path,
                    &label,
                    Some("geometry"),
                    "is a Point; expected a Polygon or MultiPolygon",
                ));
            }
            Geom::Lines(_) => {
                return Err(InputError::item(
                    path,
                    &label,
                    Some("geometry"),
                    "is a line; expected a Polygon or MultiPolygon",
                ));
            }
        };
    let mp =
        transform_mp(tf, mp).map_err(|m| InputError::item(path, &label, Some("geometry"), m))?;
    // Exterior rings counter-clockwise, holes clockwise (RFC 7946), so the same polygon read
    // from any format (Shapefiles store exteriors clockwise) gives the same grids.
    let mp = mp.orient(Direction::Default);
    let mut parts = Vec::new();
    let mut was_repaired = false;
    for p in &mp.0 {
        let c = check_polygon(p, true)
            .map_err(|e| InputError::item(path, &label, Some("geometry"), e.to_string()))?;
        was_repaired |= c.repaired;
        parts.extend(c.geometry.0);
    }
    if parts.is_empty() {
        return Err(InputError::item(
            path,
            &label,
            Some("geometry"),
            "is empty; expected a Polygon or MultiPolygon",
        ));
    }
    if was_repaired {
        repaired.push(label);
    }
    Ok(MultiPolygon(parts))
}

mod layers;
pub use layers::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> (Result<bool, InputError>, Vec<RawFeature>) {
        let mut got = Vec::new();
        let r = stream_features(Path::new("t.geojson"), text.as_bytes(), &mut |f| {
            got.push(f);
            Ok(())
        });
        (r, got)
    }

    const F: &str = r#"{"type":"Feature","id":7,"properties":{"households":3},"geometry":{"type":"Point","coordinates":[1,2]}}"#;

    /// Streaming gives the features the whole-file reader gives, and steps aside where it
    /// cannot (a `crs` member that may follow the features, a single Feature, a sequence).
    #[test]
    fn streamed_features_are_the_whole_readers() {
        let text = format!(r#"{{"features":[{F},{F}],"type":"FeatureCollection","name":"x"}}"#);
        let (r, got) = stream(&text);
        assert!(r.unwrap());
        let whole = parse_layer(Path::new("t.geojson"), text.as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        for (a, b) in got.iter().zip(&whole.features) {
            assert_eq!(
                (a.index, &a.id, &a.properties, &a.geometry),
                (b.index, &b.id, &b.properties, &b.geometry)
            );
        }
        let crs = format!(
            r#"{{"type":"FeatureCollection","features":[{F}],"crs":{{"type":"name","properties":{{"name":"EPSG:4490"}}}}}}"#
        );
        assert!(!stream(&crs).0.unwrap());
        let (r, got) = stream(F);
        assert!(!r.unwrap() && got.is_empty());
        assert!(!stream(&format!("\x1e{F}\n\x1e{F}\n")).0.unwrap());
    }

    #[test]
    fn streaming_names_bad_input_and_stops_at_the_first_error() {
        let (r, _) = stream(r#"{"type":"FeatureCollection"}"#);
        assert!(r.unwrap_err().to_string().contains("no `features` array"));
        let (r, _) = stream(r#"{"type":"FeatureCollection","features":[1]}"#);
        assert!(r.unwrap_err().to_string().contains("feature #0"));
        let (r, _) = stream(&format!(r#"{{"features":[{F}]}}"#));
        assert!(r.unwrap_err().to_string().contains("FeatureCollection"));
        let (r, _) = stream(r#"{"type":"FeatureCollection","features":[{"#);
        assert!(r.unwrap_err().to_string().contains("not valid JSON"));
        let mut n = 0;
        let text = format!(r#"{{"type":"FeatureCollection","features":[{F},{F},{F}]}}"#);
        let r = stream_features(Path::new("t.geojson"), text.as_bytes(), &mut |f| {
            n += 1;
            if f.index == 1 {
                Err(InputError::item(
                    Path::new("t.geojson"),
                    "feature #1",
                    Some("id"),
                    "dup",
                ))
            } else {
                Ok(())
            }
        });
        assert!(r.unwrap_err().to_string().contains("dup"));
        assert_eq!(n, 2, "nothing read after the error");
    }
}
