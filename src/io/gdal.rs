//! Reading vector layers through the system GDAL library: Shapefile (attribute encoding from
//! `.cpg`, the LDID byte or `--encoding`), GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV with a
//! WKT column or lon/lat columns, GeoJSONSeq, and whatever else the library was built with.
//! Features come back as [`RawFeature`]s (properties as JSON values, geometry as a GeoJSON
//! object), so the layer readers name features and fields the same way for every format.

use super::error::InputError;
use super::geojson::RawFeature;
use super::layer::{Layer, Role, crs_from_name};
use crate::geom::crs::Crs;
use gdal::vector::{FieldValue, Geometry, LayerAccess};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Mutex, Once};

/// Messages GDAL reported since the last [`take_messages`] (kept off the terminal).
static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn quiet_gdal() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gdal::config::set_error_handler(|kind, _num, msg| {
            if let Ok(mut m) = MESSAGES.lock()
                && m.len() < 50
            {
                m.push(format!("{kind:?}: {msg}"));
            }
        });
    });
}

fn take_messages() -> String {
    let m = MESSAGES
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    m.join("; ")
}

fn extension(file: &Path) -> String {
    file.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Open options for the file's driver: the Shapefile encoding, CSV geometry columns.
fn open_options(file: &Path, encoding: Option<&str>) -> Vec<String> {
    let mut o = Vec::new();
    match extension(file).as_str() {
        "shp" | "dbf" => {
            if let Some(e) = encoding
                .map(str::to_string)
                .or_else(|| guess_dbf_encoding(file))
            {
                o.push(format!("ENCODING={e}"));
            }
        }
        "csv" | "tsv" => {
            o.push("GEOM_POSSIBLE_NAMES=WKT,wkt,geometry,geom,the_geom,wkt_geom,shape".into());
            o.push("X_POSSIBLE_NAMES=lon,lng,longitude,x,经度".into());
            o.push("Y_POSSIBLE_NAMES=lat,latitude,y,纬度".into());
            o.push("KEEP_GEOM_COLUMNS=NO".into());
        }
        _ => {}
    }
    o
}

/// The encoding of a `.dbf` that says nothing of its own (no `.cpg`, language byte 0, where
/// GDAL would assume ISO-8859-1): UTF-8 when its bytes are valid UTF-8, else GB18030 (the
/// superset of GBK that Chinese desktop GIS writes).
fn guess_dbf_encoding(file: &Path) -> Option<String> {
    let dbf = file.with_extension("dbf");
    let has_cpg = ["cpg", "CPG"]
        .iter()
        .any(|e| file.with_extension(e).exists());
    if has_cpg {
        return None;
    }
    let bytes = std::fs::read(&dbf).ok()?;
    if bytes.len() < 32 || bytes[29] != 0 {
        return None;
    }
    let header = usize::from(u16::from_le_bytes([bytes[8], bytes[9]])).min(bytes.len());
    let data = &bytes[header..];
    if data.is_ascii() {
        return None;
    }
    Some(
        if std::str::from_utf8(data.strip_suffix(&[0x1a]).unwrap_or(data)).is_ok() {
            "UTF-8".into()
        } else {
            "GB18030".into()
        },
    )
}

/// Read the layer of `file` for `role` (or the one named `layer`).
pub(super) fn read(
    file: &Path,
    layer: Option<&str>,
    role: Role,
    encoding: Option<&str>,
) -> Result<Layer, InputError> {
    quiet_gdal();
    take_messages();
    if let (Some(e), "dxf") = (encoding, extension(file).as_str()) {
        let _ = gdal::config::set_thread_local_config_option("DXF_ENCODING", e);
    }
    let opts = open_options(file, encoding);
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let ds = Dataset::open_ex(
        file,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
            open_options: Some(&refs),
            ..Default::default()
        },
    )
    .map_err(|_| {
        let said = take_messages();
        InputError::file(
            file,
            format!(
                "not a vector format wangge reads: expected GeoJSON, GeoJSONSeq, Shapefile, \
                 GeoPackage, FlatGeobuf, KML, FileGDB, DXF or CSV with a WKT column{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(" (GDAL: {said})")
                }
            ),
        )
    })?;
    let format = ds.driver().long_name();
    let mut lyr = pick_layer(file, &ds, layer, role)?;
    let crs = layer_crs(file, &lyr)?;
    let fields = field_info(&lyr);
    let lower_case = lower_case_names(&fields);
    let mut features = Vec::new();
    for (index, f) in lyr.features().enumerate() {
        features.push(feature(file, index, &f, &fields, &lower_case, role)?);
    }
    let said = take_messages();
    if features.is_empty() && !said.is_empty() {
        return Err(InputError::file(
            file,
            format!("GDAL read no features: {said}"),
        ));
    }
    Ok(Layer {
        features,
        crs,
        format,
    })
}

fn pick_layer<'a>(
    file: &Path,
    ds: &'a Dataset,
    named: Option<&str>,
    role: Role,
) -> Result<gdal::vector::Layer<'a>, InputError> {
    let names: Vec<String> = ds.layers().map(|l| l.name()).collect();
    if let Some(n) = named {
        return ds.layer_by_name(n).map_err(|_| {
            InputError::file(
                file,
                format!("has no layer {n:?}; its layers are {}", names.join(", ")),
            )
        });
    }
    let index = match names.len() {
        0 => return Err(InputError::file(file, "has no vector layers")),
        1 => 0,
        _ => names
            .iter()
            .position(|n| {
                let n = n.to_lowercase();
                role.layer_names().iter().any(|w| n == *w)
            })
            .ok_or_else(|| {
                InputError::file(
                    file,
                    format!(
                        "has {} layers ({}) and none is called {}; name one as {}#LAYER",
                        names.len(),
                        names.join(", "),
                        role.layer_names()[0],
                        file.display()
                    ),
                )
            })?,
    };
    ds.layer(index)
        .map_err(|e| InputError::file(file, format!("cannot open layer {}: {e}", names[index])))
}

/// The EPSG code of the layer's CRS, identified from its WKT when the file gives no code.
fn layer_crs(file: &Path, lyr: &gdal::vector::Layer<'_>) -> Result<Option<Crs>, InputError> {
    let Some(mut srs) = lyr.spatial_ref() else {
        return Ok(None);
    };
    let code = |s: &gdal::spatial_ref::SpatialRef| {
        (s.auth_name().as_deref() == Some("EPSG"))
            .then(|| s.auth_code().ok())
            .flatten()
    };
    let mut found = code(&srs);
    if found.is_none() && srs.auto_identify_epsg().is_ok() {
        found = code(&srs);
    }
    if found.is_none() {
        found = best_match(&srs);
    }
    match found.and_then(|c| u32::try_from(c).ok()) {
        Some(c) => Ok(crs_from_name(&format!("EPSG:{c}"))),
        None => Err(InputError::file(
            file,
            format!(
                "states a coordinate system ({}) that has no EPSG code; reproject it \
                 (ogr2ogr -t_srs EPSG:4326) or give --crs",
                srs.name().unwrap_or_else(|| "unnamed".into())
            ),
        )),
    }
}

/// The EPSG code PROJ finds for a CRS without one (ESRI `.prj` text beside a CSV, say), when
/// it is at least 70 % sure.
fn best_match(srs: &gdal::spatial_ref::SpatialRef) -> Option<i32> {
    // SAFETY: OSRFindMatches returns an array of `n` new references and a confidence array,
    // both freed here; the handle of `srs` stays valid throughout.
    unsafe {
        let mut n = 0;
        let mut confidence: *mut i32 = std::ptr::null_mut();
        let list = gdal_sys::OSRFindMatches(
            srs.to_c_hsrs(),
            std::ptr::null_mut(),
            &raw mut n,
            &raw mut confidence,
        );
        if list.is_null() {
            return None;
        }
        let mut out = None;
        if n > 0 && !confidence.is_null() && *confidence >= 70 {
            let first = *list;
            let name = gdal_sys::OSRGetAuthorityName(first, std::ptr::null());
            let code = gdal_sys::OSRGetAuthorityCode(first, std::ptr::null());
            if !name.is_null() && !code.is_null() {
                let name = std::ffi::CStr::from_ptr(name).to_string_lossy();
                let code = std::ffi::CStr::from_ptr(code).to_string_lossy();
                if name == "EPSG" {
                    out = code.parse().ok();
                }
            }
        }
        gdal_sys::OSRFreeSRSArray(list);
        gdal_sys::VSIFree(confidence.cast());
        out
    }
}

/// Per field: its name, and whether it holds booleans (an integer subtype in GDAL).
type FieldInfo = Vec<(String, bool)>;

fn field_info(lyr: &gdal::vector::Layer<'_>) -> FieldInfo {
    let defn = lyr.defn();
    // SAFETY: the layer handle is valid for as long as `lyr`; the field definitions belong to it.
    let c_defn = unsafe { gdal_sys::OGR_L_GetLayerDefn(lyr.c_layer()) };
    defn.fields()
        .enumerate()
        .map(|(i, f)| {
            let boolean = i32::try_from(i).is_ok_and(|i| {
                // SAFETY: `i` is below the field count of this definition.
                unsafe {
                    let fd = gdal_sys::OGR_FD_GetFieldDefn(c_defn, i);
                    !fd.is_null()
                        && gdal_sys::OGR_Fld_GetSubType(fd)
                            == gdal_sys::OGRFieldSubType::OFSTBoolean
                }
            });
            (f.name(), boolean)
        })
        .collect()
}

/// Field names are matched without regard to case (DBF, FileGDB and KML write `CODE`, `Name`):
/// a name is read in lower case unless that would clash with another field.
fn lower_case_names(fields: &FieldInfo) -> Vec<String> {
    fields
        .iter()
        .map(|(n, _)| {
            let l = n.to_lowercase();
            let clash = fields.iter().any(|(o, _)| o != n && o.to_lowercase() == l);
            if clash { n.clone() } else { l }
        })
        .collect()
}

fn field_json(v: FieldValue, boolean: bool) -> Value {
    match v {
        FieldValue::IntegerValue(i) if boolean => Value::Bool(i != 0),
        FieldValue::IntegerValue(i) => Value::from(i),
        FieldValue::Integer64Value(i) => Value::from(i),
        FieldValue::RealValue(r) => {
            serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
        }
        FieldValue::StringValue(s) => Value::String(s),
        FieldValue::DateValue(d) => Value::String(d.format("%Y-%m-%d").to_string()),
        FieldValue::DateTimeValue(t) => Value::String(t.to_rfc3339()),
        FieldValue::IntegerListValue(l) => Value::from(l),
        FieldValue::Integer64ListValue(l) => Value::from(l),
        FieldValue::RealListValue(l) => Value::from(l),
        FieldValue::StringListValue(l) => Value::from(l),
    }
}

fn feature(
    file: &Path,
    index: usize,
    f: &gdal::vector::Feature<'_>,
    fields: &FieldInfo,
    names: &[String],
    role: Role,
) -> Result<RawFeature, InputError> {
    let mut properties = Map::new();
    for (i, (name, boolean)) in fields.iter().enumerate() {
        // SAFETY: `i` is below the feature's field count.
        let set = i32::try_from(i)
            .is_ok_and(|i| unsafe { gdal_sys::OGR_F_IsFieldSetAndNotNull(f.c_feature(), i) } != 0);
        if !set {
            properties.insert(names[i].clone(), Value::Null);
            continue;
        }
        let v = f.field(i).map_err(|e| {
            InputError::item(file, format!("feature #{index}"), Some(name), e.to_string())
        })?;
        properties.insert(
            names[i].clone(),
            v.map_or(Value::Null, |v| field_json(v, *boolean)),
        );
    }
    let geometry = match f.geometry() {
        None => None,
        Some(g) => Some(geometry_json(g, role).map_err(|m| {
            InputError::item(file, format!("feature #{index}"), Some("geometry"), m)
        })?),
    };
    Ok(RawFeature {
        index,
        id: f.fid().map(|id| id.to_string()),
        properties,
        geometry,
    })
}

/// The GeoJSON object of a GDAL geometry: curves are approximated by lines (CAD arcs, FileGDB
/// curves), Z and M dropped; for areal roles a closed CAD polyline is read as a polygon.
fn geometry_json(g: &Geometry, role: Role) -> Result<Value, String> {
    // SAFETY: `g` is a valid geometry; OGR_G_GetLinearGeometry returns a new geometry we own.
    let linear = unsafe {
        let h = gdal_sys::OGR_G_GetLinearGeometry(g.c_geometry(), 0.0, std::ptr::null_mut());
        if h.is_null() {
            return Err("GDAL cannot approximate this geometry by lines".into());
        }
        let wkb_len = gdal_sys::OGR_G_WkbSize(h);
        let mut buf = vec![0u8; usize::try_from(wkb_len).unwrap_or(0)];
        let rc =
            gdal_sys::OGR_G_ExportToIsoWkb(h, gdal_sys::OGRwkbByteOrder::wkbNDR, buf.as_mut_ptr());
        gdal_sys::OGR_G_DestroyGeometry(h);
        if rc != gdal_sys::OGRErr::OGRERR_NONE {
            return Err("GDAL cannot write this geometry as WKB".into());
        }
        buf
    };
    let geo = crate::store::wkb::from_wkb(&linear).map_err(|e| e.to_string())?;
    let geo = match geo {
        geo::Geometry::LineString(l) if role.is_areal() && l.is_closed() && l.0.len() >= 4 => {
            geo::Geometry::Polygon(geo::Polygon::new(l, vec![]))
        }
        g => g,
    };
    Ok(super::write::geometry_json(&geo))
}
