//! One door for every vector layer wangge reads: GeoJSON and GeoJSONSeq natively, everything
//! else (Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV with WKT …) through GDAL
//! when the `gdal` feature is built in. Every format comes back as [`RawFeature`]s with the
//! coordinate system the file states, so the per-feature errors of the layer readers are the
//! same for all of them.

use super::error::InputError;
use super::geojson::RawFeature;
use crate::geom::crs::{Crs, Transformer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a layer is read as: picks the layer of a multi-layer file and how lines are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Community boundaries (polygons).
    Communities,
    /// Building footprints (polygons).
    Buildings,
    /// Roads (lines).
    Roads,
    /// Grids, or zones to locate in (polygons).
    Grids,
    /// Points to locate, or incident reports.
    Points,
}

impl Role {
    /// Layer names that are taken for this role in a file of several layers.
    #[must_use]
    pub fn layer_names(self) -> &'static [&'static str] {
        match self {
            Role::Communities => &["communities", "community", "社区"],
            Role::Buildings => &["buildings", "building", "建筑", "楼栋"],
            Role::Roads => &["roads", "road", "streets_roads", "道路"],
            Role::Grids => &["grids", "grid", "网格"],
            Role::Points => &["points", "incidents", "cases", "事件"],
        }
    }

    /// True when the role wants areas (a closed CAD line is then read as a polygon).
    #[must_use]
    pub fn is_areal(self) -> bool {
        matches!(self, Role::Communities | Role::Buildings | Role::Grids)
    }
}

/// A layer as read: its features and the coordinate system the file states, if any.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The features, in file order.
    pub features: Vec<RawFeature>,
    /// The CRS the file states (`.prj`, the GeoPackage SRS, a GeoJSON `crs` member, KML's
    /// implied WGS84); `None` when it says nothing.
    pub crs: Option<Crs>,
    /// The format, as a user would name it (`GeoJSON`, `ESRI Shapefile`, …).
    pub format: String,
}

static ENCODING: OnceLock<String> = OnceLock::new();

/// Set the text encoding of Shapefile attribute tables for this process (`--encoding GBK`),
/// overriding the `.cpg` file and the LDID byte. The first call wins.
pub fn set_encoding(encoding: &str) {
    let _ = ENCODING.set(encoding.trim().to_string());
}

/// The encoding set by [`set_encoding`], if any.
#[must_use]
pub fn encoding() -> Option<&'static str> {
    ENCODING.get().map(String::as_str)
}

/// Split `FILE#LAYER` into the file and the named layer when `FILE#LAYER` itself does not exist.
fn split_layer(path: &Path) -> (PathBuf, Option<String>) {
    if path.exists() {
        return (path.to_path_buf(), None);
    }
    let s = path.to_string_lossy();
    match s.rsplit_once('#') {
        Some((file, layer)) if !layer.is_empty() && Path::new(file).exists() => {
            (PathBuf::from(file), Some(layer.to_string()))
        }
        _ => (path.to_path_buf(), None),
    }
}

/// Read the layer at `path` (`FILE#LAYER` names one layer of a multi-layer file).
///
/// # Errors
/// An unreadable file, a format that is neither GeoJSON nor one GDAL reads, a file of several
/// layers none of which is named for `role`, or a feature GDAL cannot read — each naming the file.
pub fn read_layer(path: &Path, role: Role) -> Result<Layer, InputError> {
    let (file, layer) = split_layer(path);
    let head = sniff(&file)?;
    if layer.is_none() && looks_like_json(&head) {
        let bytes = std::fs::read(&file).map_err(|source| InputError::Read {
            file: file.clone(),
            source,
        })?;
        return super::geojson::parse_layer(&file, strip_bom(&bytes));
    }
    read_other(&file, layer.as_deref(), role, &head)
}

/// Visit a layer's features one at a time, each with the transform to read it with (as
/// [`Layer::transformer`] chooses). A GeoJSON FeatureCollection is streamed: never more than one
/// feature is held as JSON values, so a city's buildings cost their compact form only. Other
/// formats are read whole first.
///
/// # Errors
/// As [`read_layer`], a CRS conflict, or the first error `each` returns.
pub fn for_each_feature(
    path: &Path,
    role: Role,
    given: &Transformer,
    each: &mut dyn FnMut(RawFeature, &Transformer) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let (file, layer) = split_layer(path);
    let head = sniff(&file)?;
    let whole = if layer.is_none() && looks_like_json(&head) {
        let bytes = std::fs::read(&file).map_err(|source| InputError::Read {
            file: file.clone(),
            source,
        })?;
        let body = strip_bom(&bytes);
        if super::geojson::stream_features(&file, body, &mut |f| each(f, given))? {
            return Ok(());
        }
        super::geojson::parse_layer(&file, body)?
    } else {
        read_other(&file, layer.as_deref(), role, &head)?
    };
    let tf = whole.transformer(path, given)?;
    for f in whole.features {
        each(f, &tf)?;
    }
    Ok(())
}

fn sniff(file: &Path) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|source| InputError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        // A FileGDB is a folder.
        return Ok(Vec::new());
    }
    let mut head = Vec::with_capacity(64);
    f.take(64)
        .read_to_end(&mut head)
        .map_err(|source| InputError::Read {
            file: file.to_path_buf(),
            source,
        })?;
    Ok(head)
}

/// Bytes without a leading UTF-8 byte-order mark.
#[must_use]
pub fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn looks_like_json(head: &[u8]) -> bool {
    let h = strip_bom(head);
    matches!(
        h.iter().find(|c| !c.is_ascii_whitespace()),
        Some(b'{' | b'\x1e')
    )
}

#[cfg(feature = "gdal")]
fn read_other(
    file: &Path,
    layer: Option<&str>,
    role: Role,
    _head: &[u8],
) -> Result<Layer, InputError> {
    super::gdal::read(file, layer, role, encoding())
}

#[cfg(not(feature = "gdal"))]
fn read_other(
    file: &Path,
    _layer: Option<&str>,
    _role: Role,
    head: &[u8],
) -> Result<Layer, InputError> {
    let what = if head.is_empty() {
        "a folder (a File Geodatabase?)".to_string()
    } else {
        format!(
            "a file starting with {:?}",
            String::from_utf8_lossy(&head[..head.len().min(8)])
        )
    };
    Err(InputError::file(
        file,
        format!(
            "not GeoJSON but {what}; reading Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF \
             or CSV needs wangge built with the `gdal` feature"
        ),
    ))
}

/// The CRS named by a GeoJSON `crs` member (2008 GeoJSON, as GDAL writes for non-WGS84 data).
pub(crate) fn geojson_crs(file: &Path, v: Option<&Value>) -> Result<Option<Crs>, InputError> {
    let Some(v) = v else { return Ok(None) };
    let name = v
        .pointer("/properties/name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            InputError::file(
                file,
                "the `crs` member has no properties.name; expected e.g. \
                 {\"type\":\"name\",\"properties\":{\"name\":\"urn:ogc:def:crs:EPSG::4490\"}}",
            )
        })?;
    crs_from_name(name).map(Some).ok_or_else(|| {
        InputError::file(
            file,
            format!("the `crs` member names {name:?}, which is not an EPSG or OGC CRS84 name"),
        )
    })
}

/// `urn:ogc:def:crs:EPSG::4490`, `EPSG:4490`, `urn:ogc:def:crs:OGC:1.3:CRS84`, an OGC http URI.
#[must_use]
pub fn crs_from_name(name: &str) -> Option<Crs> {
    let n = name.trim();
    let lower = n.to_ascii_lowercase();
    if lower.ends_with("crs84") {
        return Some(Crs::Wgs84);
    }
    if let Ok(c) = n.parse::<Crs>() {
        // Our own names (`GCJ-02`, `BD-09`, `EPSG:4490`), as `wangge convert` writes them.
        return Some(c);
    }
    let code = lower
        .rsplit([':', '/'])
        .find(|p| !p.is_empty())
        .and_then(|p| p.parse::<u32>().ok())?;
    if !lower.contains("epsg") {
        return None;
    }
    Some(if code == 4326 {
        Crs::Wgs84
    } else {
        Crs::Epsg(code)
    })
}

impl Layer {
    /// The transform to apply to this layer's coordinates: from the CRS the file states, else
    /// from `--crs` (`given`). A file that states WGS84 but is given GCJ-02 or BD-09 is read
    /// in the offset system (map apps write offset coordinates into WGS84 KML); a file that
    /// states one EPSG system while `--crs` names another is refused.
    ///
    /// # Errors
    /// The conflict above, or a CRS PROJ cannot use.
    pub fn transformer<'a>(
        &self,
        file: &Path,
        given: &'a Transformer,
    ) -> Result<LayerTransform<'a>, InputError> {
        let Some(stated) = self.crs else {
            return Ok(LayerTransform::Given(given));
        };
        let from = given.from();
        if from == stated || matches!((stated, from), (Crs::Wgs84, Crs::Gcj02 | Crs::Bd09)) {
            return Ok(LayerTransform::Given(given));
        }
        if from != Crs::Wgs84 {
            return Err(InputError::file(
                file,
                format!(
                    "the file states its coordinates are in {stated}, but --crs says {from}; \
                     leave out --crs to use the file's"
                ),
            ));
        }
        Transformer::new(stated, given.to())
            .map(LayerTransform::Stated)
            .map_err(|e| InputError::file(file, format!("its CRS {stated}: {e}")))
    }
}

/// Read a layer in any format as a GeoJSON FeatureCollection in WGS84 (the coordinates
/// transformed from the CRS the file states), for code that takes GeoJSON objects.
///
/// # Errors
/// As [`read_layer`], plus coordinates the file's CRS cannot transform.
pub fn read_as_geojson(path: &Path, role: Role) -> Result<Value, InputError> {
    let layer = read_layer(path, role)?;
    let wgs = Transformer::new(Crs::Wgs84, Crs::Wgs84)
        .map_err(|e| InputError::file(path, e.to_string()))?;
    let tf = layer.transformer(path, &wgs)?;
    let mut features = Vec::with_capacity(layer.features.len());
    for f in layer.features {
        let label = f.label();
        let mut geometry = f.geometry.unwrap_or(Value::Null);
        if !tf.is_identity() {
            transform_positions(&tf, &mut geometry)
                .map_err(|m| InputError::item(path, &label, Some("geometry"), m))?;
        }
        let mut feat = serde_json::json!({
            "type": "Feature",
            "properties": Value::Object(f.properties),
            "geometry": geometry,
        });
        if let Some(id) = f.id {
            feat["id"] = Value::String(id);
        }
        features.push(feat);
    }
    Ok(serde_json::json!({ "type": "FeatureCollection", "features": features }))
}

/// Transform every position of a GeoJSON geometry (or its `coordinates`) in place.
fn transform_positions(tf: &Transformer, v: &mut Value) -> Result<(), String> {
    match v {
        Value::Object(o) => match o.get_mut("coordinates") {
            Some(c) => transform_positions(tf, c),
            None => Ok(()),
        },
        Value::Array(a) if a.first().is_some_and(Value::is_number) => {
            let (Some(x), Some(y)) = (a[0].as_f64(), a.get(1).and_then(Value::as_f64)) else {
                return Err("a position needs two numbers".into());
            };
            let w = tf.apply(geo::Coord { x, y }).map_err(|e| e.to_string())?;
            *a = vec![Value::from(w.x), Value::from(w.y)];
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| transform_positions(tf, x)),
        _ => Ok(()),
    }
}

/// The transform a layer is read with: `--crs`'s, or one from the CRS the file states.
pub enum LayerTransform<'a> {
    /// The transform given on the command line.
    Given(&'a Transformer),
    /// A transform from the file's own CRS.
    Stated(Transformer),
}

impl std::ops::Deref for LayerTransform<'_> {
    type Target = Transformer;
    fn deref(&self) -> &Transformer {
        match self {
            LayerTransform::Given(t) => t,
            LayerTransform::Stated(t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crs_names() {
        assert_eq!(
            crs_from_name("urn:ogc:def:crs:EPSG::4490"),
            Some(Crs::Epsg(4490))
        );
        assert_eq!(crs_from_name("EPSG:4326"), Some(Crs::Wgs84));
        assert_eq!(
            crs_from_name("urn:ogc:def:crs:OGC:1.3:CRS84"),
            Some(Crs::Wgs84)
        );
        assert_eq!(
            crs_from_name("http://www.opengis.net/def/crs/EPSG/0/3857"),
            Some(Crs::Epsg(3857))
        );
        assert_eq!(crs_from_name("something"), None);
        assert_eq!(crs_from_name("GCJ-02"), Some(Crs::Gcj02));
    }

    #[test]
    fn json_is_sniffed_after_a_bom() {
        assert!(looks_like_json(b"\xEF\xBB\xBF  {\"type\""));
        assert!(looks_like_json(b"\x1e{"));
        assert!(!looks_like_json(b"\x00\x00\x27\x0a"));
    }
}
