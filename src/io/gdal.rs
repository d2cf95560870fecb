//! Reading vector layers through the system GDAL library: Shapefile (attribute encoding from
//! `.cpg`, the LDID byte or `--encoding`), GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV with a
//! WKT column or lon/lat columns, GeoJSONSeq, and whatever else the library was built with.
//! Features come back as [`RawFeature`]s (properties as JSON values, geometry as a GeoJSON
//! object), so the layer readers name features and fields the same way for every format.

use super::error::InputError;
use super::geojson::RawFeature;
use super::layer::{Layer, Role, crs_from_name};
use crate::geom::crs::Crs;
use serde_json::{Map, Value};
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// A GDAL handle (dataset, driver, layer, feature, field or layer definition, geometry, CRS).
type H = *mut c_void;
/// `CPLErrorHandler`.
type ErrorHandler = unsafe extern "C" fn(c_int, c_int, *const c_char);

crate::syslib::c_functions! {
    /// The GDAL functions used (C API, stable since GDAL 3.0).
    #[expect(non_snake_case, reason = "the fields are the C functions' own names")]
    struct Gdal {
        GDALAllRegister: fn();
        CPLSetErrorHandler: fn(Option<ErrorHandler>) -> Option<ErrorHandler>;
        CPLSetThreadLocalConfigOption: fn(*const c_char, *const c_char);
        GDALOpenEx: fn(*const c_char, c_uint, *const *const c_char, *const *const c_char, *const *const c_char) -> H;
        GDALClose: fn(H);
        GDALGetDatasetDriver: fn(H) -> H;
        GDALGetDriverLongName: fn(H) -> *const c_char;
        GDALDatasetGetLayerCount: fn(H) -> c_int;
        GDALDatasetGetLayer: fn(H, c_int) -> H;
        GDALDatasetGetLayerByName: fn(H, *const c_char) -> H;
        OGR_L_GetName: fn(H) -> *const c_char;
        OGR_L_GetSpatialRef: fn(H) -> H;
        OGR_L_GetLayerDefn: fn(H) -> H;
        OGR_L_ResetReading: fn(H);
        OGR_L_GetNextFeature: fn(H) -> H;
        OGR_FD_GetFieldCount: fn(H) -> c_int;
        OGR_FD_GetFieldDefn: fn(H, c_int) -> H;
        OGR_Fld_GetNameRef: fn(H) -> *const c_char;
        OGR_Fld_GetType: fn(H) -> c_int;
        OGR_Fld_GetSubType: fn(H) -> c_int;
        OGR_F_Destroy: fn(H);
        OGR_F_GetFID: fn(H) -> i64;
        OGR_F_IsFieldSetAndNotNull: fn(H, c_int) -> c_int;
        OGR_F_GetFieldAsInteger: fn(H, c_int) -> c_int;
        OGR_F_GetFieldAsInteger64: fn(H, c_int) -> i64;
        OGR_F_GetFieldAsDouble: fn(H, c_int) -> f64;
        OGR_F_GetFieldAsString: fn(H, c_int) -> *const c_char;
        OGR_F_GetFieldAsIntegerList: fn(H, c_int, *mut c_int) -> *const c_int;
        OGR_F_GetFieldAsInteger64List: fn(H, c_int, *mut c_int) -> *const i64;
        OGR_F_GetFieldAsDoubleList: fn(H, c_int, *mut c_int) -> *const f64;
        OGR_F_GetFieldAsStringList: fn(H, c_int) -> *const *const c_char;
        OGR_F_GetFieldAsDateTime: fn(H, c_int, *mut c_int, *mut c_int, *mut c_int, *mut c_int, *mut c_int, *mut c_int, *mut c_int) -> c_int;
        OGR_F_GetGeometryRef: fn(H) -> H;
        OGR_G_GetLinearGeometry: fn(H, f64, *const *const c_char) -> H;
        OGR_G_WkbSize: fn(H) -> c_int;
        OGR_G_ExportToIsoWkb: fn(H, c_int, *mut u8) -> c_int;
        OGR_G_DestroyGeometry: fn(H);
        OSRClone: fn(H) -> H;
        OSRDestroySpatialReference: fn(H);
        OSRGetAuthorityName: fn(H, *const c_char) -> *const c_char;
        OSRGetAuthorityCode: fn(H, *const c_char) -> *const c_char;
        OSRAutoIdentifyEPSG: fn(H) -> c_int;
        OSRGetName: fn(H) -> *const c_char;
        OSRFindMatches: fn(H, *const *const c_char, *mut c_int, *mut *mut c_int) -> *mut H;
        OSRFreeSRSArray: fn(*mut H);
        VSIFree: fn(*mut c_void);
    }
}

// GDAL's constants (gdal.h, ogr_core.h, cpl_error.h).
const GDAL_OF_VECTOR: c_uint = 0x04;
const WKB_NDR: c_int = 1;
const OFT_INTEGER: c_int = 0;
const OFT_INTEGER_LIST: c_int = 1;
const OFT_REAL: c_int = 2;
const OFT_REAL_LIST: c_int = 3;
const OFT_STRING_LIST: c_int = 5;
const OFT_WIDE_STRING_LIST: c_int = 7;
const OFT_DATE: c_int = 9;
const OFT_DATE_TIME: c_int = 11;
const OFT_INTEGER64: c_int = 12;
const OFT_INTEGER64_LIST: c_int = 13;
const OFST_BOOLEAN: c_int = 1;

/// GDAL, opened and its drivers registered at the first file that needs it (`libgdal.so`, or
/// the runtime names of GDAL 3.0 to 3.12: sonames 26 to 37; `WANGGE_GDAL_LIBRARY` names
/// another), with its messages sent to [`MESSAGES`] instead of the terminal.
fn gdal() -> Result<&'static Gdal, String> {
    static GDAL: OnceLock<Result<Gdal, String>> = OnceLock::new();
    GDAL.get_or_init(|| {
        let lib = crate::syslib::Library::open(
            "WANGGE_GDAL_LIBRARY",
            &crate::syslib::candidates("libgdal", 26..=40),
        )?;
        let g = Gdal::load(&lib)?;
        // SAFETY: registering drivers and installing a handler that neither unwinds nor
        // keeps the message pointer.
        unsafe {
            (g.GDALAllRegister)();
            (g.CPLSetErrorHandler)(Some(on_message));
        }
        Ok(g)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Messages GDAL reported since the last [`take_messages`] (kept off the terminal).
static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// GDAL's error handler: keep the message (at most 50 between reads).
unsafe extern "C" fn on_message(class: c_int, _num: c_int, msg: *const c_char) {
    let kind = match class {
        0 => "None",
        1 => "Debug",
        2 => "Warning",
        3 => "Failure",
        4 => "Fatal",
        _ => "Error",
    };
    // SAFETY: GDAL passes null or a NUL-terminated message valid during the call.
    let text = unsafe { text(msg) }.unwrap_or_default();
    if let Ok(mut m) = MESSAGES.lock()
        && m.len() < 50
    {
        m.push(format!("{kind}: {text}"));
    }
}

/// The text of a C string GDAL returns (null: none).
///
/// # Safety
/// `p` is null or NUL-terminated and valid for the call.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: as the caller promises.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn take_messages() -> String {
    let m = MESSAGES
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    m.join("; ")
}

/// An open dataset, closed when dropped.
struct Dataset<'g>(&'g Gdal, H);
impl Drop for Dataset<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by GDALOpenEx, closed once; its layers are not used after this.
        unsafe { (self.0.GDALClose)(self.1) }
    }
}

/// A feature read from a layer, destroyed when dropped.
struct Feature<'g>(&'g Gdal, H);
impl Drop for Feature<'_> {
    fn drop(&mut self) {
        // SAFETY: returned by OGR_L_GetNextFeature, owned here, destroyed once.
        unsafe { (self.0.OGR_F_Destroy)(self.1) }
    }
}

/// A copy of a layer's CRS, destroyed when dropped.
struct Srs<'g>(&'g Gdal, H);
impl Drop for Srs<'_> {
    fn drop(&mut self) {
        // SAFETY: made by OSRClone, owned here, destroyed once.
        unsafe { (self.0.OSRDestroySpatialReference)(self.1) }
    }
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
    let g = gdal().map_err(|e| {
        InputError::file(
            file,
            format!(
                "is not GeoJSON; reading it needs the GDAL library, which was not found: {e}; \
                 install it (Debian: apt-get install libgdal32) or convert the file to GeoJSON"
            ),
        )
    })?;
    take_messages();
    let c =
        |s: &str| CString::new(s).map_err(|_| InputError::file(file, "a name holds a NUL byte"));
    if let (Some(e), "dxf") = (encoding, extension(file).as_str()) {
        let (k, v) = (c("DXF_ENCODING")?, c(e)?);
        // SAFETY: NUL-terminated strings, copied by GDAL.
        unsafe { (g.CPLSetThreadLocalConfigOption)(k.as_ptr(), v.as_ptr()) };
    }
    let opts = open_options(file, encoding)
        .iter()
        .map(|o| c(o))
        .collect::<Result<Vec<CString>, _>>()?;
    let mut opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    opt_ptrs.push(std::ptr::null());
    let path = {
        use std::os::unix::ffi::OsStrExt;
        CString::new(file.as_os_str().as_bytes())
            .map_err(|_| InputError::file(file, "the path holds a NUL byte"))?
    };
    // SAFETY: a NUL-terminated path and a null-terminated list of options, read during the call.
    let h = unsafe {
        (g.GDALOpenEx)(
            path.as_ptr(),
            GDAL_OF_VECTOR,
            std::ptr::null(),
            opt_ptrs.as_ptr(),
            std::ptr::null(),
        )
    };
    if h.is_null() {
        let said = take_messages();
        return Err(InputError::file(
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
        ));
    }
    let ds = Dataset(g, h);
    // SAFETY: the dataset is open; the driver and its name belong to GDAL.
    let format = unsafe { text((g.GDALGetDriverLongName)((g.GDALGetDatasetDriver)(ds.1))) }
        .unwrap_or_default();
    let lyr = pick_layer(file, &ds, layer, role)?;
    let crs = layer_crs(g, file, lyr)?;
    let fields = field_info(g, lyr);
    let lower_case = lower_case_names(&fields);
    let mut features = Vec::new();
    // SAFETY: the layer belongs to the open dataset `ds`; each feature returned is ours.
    unsafe { (g.OGR_L_ResetReading)(lyr) };
    loop {
        // SAFETY: as above.
        let f = unsafe { (g.OGR_L_GetNextFeature)(lyr) };
        if f.is_null() {
            break;
        }
        let f = Feature(g, f);
        let index = features.len();
        features.push(feature(file, index, &f, &fields, &lower_case, role)?);
    }
    drop(ds);
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

/// The layer named, else the only one, else the one named for the role.
fn pick_layer(file: &Path, ds: &Dataset, named: Option<&str>, role: Role) -> Result<H, InputError> {
    let g = ds.0;
    // SAFETY: the dataset is open; layers and their names belong to it.
    let names: Vec<String> = unsafe {
        (0..(g.GDALDatasetGetLayerCount)(ds.1).max(0))
            .map(|i| text((g.OGR_L_GetName)((g.GDALDatasetGetLayer)(ds.1, i))).unwrap_or_default())
            .collect()
    };
    if let Some(n) = named {
        let missing = || {
            InputError::file(
                file,
                format!("has no layer {n:?}; its layers are {}", names.join(", ")),
            )
        };
        let cn = CString::new(n).map_err(|_| missing())?;
        // SAFETY: the dataset is open; a NUL-terminated name.
        let h = unsafe { (g.GDALDatasetGetLayerByName)(ds.1, cn.as_ptr()) };
        return if h.is_null() { Err(missing()) } else { Ok(h) };
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
    // SAFETY: the index is below the layer count.
    let h = unsafe { (g.GDALDatasetGetLayer)(ds.1, c_int::try_from(index).unwrap_or(c_int::MAX)) };
    if h.is_null() {
        return Err(InputError::file(
            file,
            format!("cannot open layer {}: {}", names[index], take_messages()),
        ));
    }
    Ok(h)
}

/// The EPSG code of the layer's CRS, identified from its WKT when the file gives no code.
fn layer_crs(g: &Gdal, file: &Path, lyr: H) -> Result<Option<Crs>, InputError> {
    // SAFETY: the layer is open; its CRS (borrowed) is copied, the copy is ours.
    let srs = unsafe {
        let r = (g.OGR_L_GetSpatialRef)(lyr);
        if r.is_null() {
            return Ok(None);
        }
        let c = (g.OSRClone)(r);
        if c.is_null() {
            return Ok(None);
        }
        Srs(g, c)
    };
    let code = || {
        // SAFETY: a live CRS; the strings returned belong to it and are copied at once.
        let (name, code) = unsafe {
            (
                text((g.OSRGetAuthorityName)(srs.1, std::ptr::null())),
                text((g.OSRGetAuthorityCode)(srs.1, std::ptr::null())),
            )
        };
        (name.as_deref() == Some("EPSG"))
            .then(|| code.and_then(|c| c.parse::<i32>().ok()))
            .flatten()
    };
    let mut found = code();
    // SAFETY: a live CRS that is ours to change.
    if found.is_none() && unsafe { (g.OSRAutoIdentifyEPSG)(srs.1) } == 0 {
        found = code();
    }
    if found.is_none() {
        found = best_match(g, srs.1);
    }
    match found.and_then(|c| u32::try_from(c).ok()) {
        Some(c) => Ok(crs_from_name(&format!("EPSG:{c}"))),
        None => Err(InputError::file(
            file,
            format!(
                "states a coordinate system ({}) that has no EPSG code; reproject it \
                 (ogr2ogr -t_srs EPSG:4326) or give --crs",
                // SAFETY: a live CRS; its name is copied at once.
                unsafe { text((g.OSRGetName)(srs.1)) }.unwrap_or_else(|| "unnamed".into())
            ),
        )),
    }
}

/// The EPSG code PROJ finds for a CRS without one (ESRI `.prj` text beside a CSV, say), when
/// it is at least 70 % sure.
fn best_match(g: &Gdal, srs: H) -> Option<i32> {
    // SAFETY: OSRFindMatches returns an array of `n` new references and a confidence array,
    // both freed here; the handle `srs` stays valid throughout.
    unsafe {
        let mut n = 0;
        let mut confidence: *mut c_int = std::ptr::null_mut();
        let list = (g.OSRFindMatches)(srs, std::ptr::null(), &raw mut n, &raw mut confidence);
        if list.is_null() {
            return None;
        }
        let mut out = None;
        if n > 0 && !confidence.is_null() && *confidence >= 70 {
            let first = *list;
            let name = text((g.OSRGetAuthorityName)(first, std::ptr::null()));
            let code = text((g.OSRGetAuthorityCode)(first, std::ptr::null()));
            if let (Some(name), Some(code)) = (name, code)
                && name == "EPSG"
            {
                out = code.parse().ok();
            }
        }
        (g.OSRFreeSRSArray)(list);
        (g.VSIFree)(confidence.cast());
        out
    }
}

/// Per field: its name, its GDAL type, and whether it holds booleans (an integer subtype).
type FieldInfo = Vec<(String, c_int, bool)>;

fn field_info(g: &Gdal, lyr: H) -> FieldInfo {
    // SAFETY: the layer is open; its definition and field definitions belong to it, and each
    // index is below the field count.
    unsafe {
        let defn = (g.OGR_L_GetLayerDefn)(lyr);
        if defn.is_null() {
            return Vec::new();
        }
        (0..(g.OGR_FD_GetFieldCount)(defn).max(0))
            .map(|i| {
                let fd = (g.OGR_FD_GetFieldDefn)(defn, i);
                if fd.is_null() {
                    return (format!("field{i}"), -1, false);
                }
                let kind = (g.OGR_Fld_GetType)(fd);
                let boolean = kind == OFT_INTEGER && (g.OGR_Fld_GetSubType)(fd) == OFST_BOOLEAN;
                (
                    text((g.OGR_Fld_GetNameRef)(fd)).unwrap_or_default(),
                    kind,
                    boolean,
                )
            })
            .collect()
    }
}

/// Field names are matched without regard to case (DBF, FileGDB and KML write `CODE`, `Name`):
/// a name is read in lower case unless that would clash with another field.
fn lower_case_names(fields: &FieldInfo) -> Vec<String> {
    fields
        .iter()
        .map(|(n, _, _)| {
            let l = n.to_lowercase();
            let clash = fields
                .iter()
                .any(|(o, _, _)| o != n && o.to_lowercase() == l);
            if clash { n.clone() } else { l }
        })
        .collect()
}

/// The JSON value of field `i` (set and not null) of feature `f`, of GDAL type `kind`: numbers,
/// strings and lists as themselves, booleans as booleans, dates as `YYYY-MM-DD`, date-times in
/// RFC 3339 with their offset (`+00:00` when the file states none), times and binary as GDAL
/// writes them as text.
fn field_json(f: &Feature, i: c_int, kind: c_int, boolean: bool) -> Result<Value, String> {
    let (g, h) = (f.0, f.1);
    // SAFETY: a live feature and an index below its field count; lists and strings returned
    // belong to the feature and are copied before the next call on it.
    unsafe {
        Ok(match kind {
            OFT_INTEGER if boolean => Value::Bool((g.OGR_F_GetFieldAsInteger)(h, i) != 0),
            OFT_INTEGER => Value::from((g.OGR_F_GetFieldAsInteger)(h, i)),
            OFT_INTEGER64 => Value::from((g.OGR_F_GetFieldAsInteger64)(h, i)),
            OFT_REAL => serde_json::Number::from_f64((g.OGR_F_GetFieldAsDouble)(h, i))
                .map_or(Value::Null, Value::Number),
            OFT_INTEGER_LIST => {
                let mut n = 0;
                list_json((g.OGR_F_GetFieldAsIntegerList)(h, i, &raw mut n), n)
            }
            OFT_INTEGER64_LIST => {
                let mut n = 0;
                list_json((g.OGR_F_GetFieldAsInteger64List)(h, i, &raw mut n), n)
            }
            OFT_REAL_LIST => {
                let mut n = 0;
                list_json((g.OGR_F_GetFieldAsDoubleList)(h, i, &raw mut n), n)
            }
            OFT_STRING_LIST | OFT_WIDE_STRING_LIST => {
                let mut out = Vec::new();
                let p = (g.OGR_F_GetFieldAsStringList)(h, i);
                if !p.is_null() {
                    let mut k = 0;
                    while !(*p.add(k)).is_null() {
                        out.push(Value::String(text(*p.add(k)).unwrap_or_default()));
                        k += 1;
                    }
                }
                Value::Array(out)
            }
            OFT_DATE | OFT_DATE_TIME => {
                let mut t = [0 as c_int; 7];
                let [y, mo, d, hh, mi, ss, tz] = &mut t;
                let ok = (g.OGR_F_GetFieldAsDateTime)(h, i, y, mo, d, hh, mi, ss, tz);
                if ok == 0 {
                    return Err("GDAL cannot read this date".into());
                }
                Value::String(date_text(kind == OFT_DATE, t)?)
            }
            // strings, times (HH:MM:SS), binary (hex) and types of newer GDAL: as text
            _ => text((g.OGR_F_GetFieldAsString)(h, i)).map_or(Value::Null, Value::String),
        })
    }
}

/// The JSON array of a list field from GDAL's pointer and count (null or none: `[]`).
///
/// # Safety
/// `p` is null or points to `n` values that stay valid during the call.
unsafe fn list_json<T: Copy + Into<Value>>(p: *const T, n: c_int) -> Value {
    match usize::try_from(n) {
        // SAFETY: as the caller promises.
        Ok(n) if n > 0 && !p.is_null() => unsafe { std::slice::from_raw_parts(p, n) }
            .iter()
            .map(|&x| x.into())
            .collect(),
        _ => Value::Array(Vec::new()),
    }
}

/// `YYYY-MM-DD`, or the RFC 3339 date-time with its offset, of GDAL's broken-down date
/// (year, month, day, hour, minute, second, time-zone flag: 0 unknown, 1 local time, 100 UTC,
/// 100 ± n: n quarter-hours east or west; unknown and local are written as `+00:00`).
fn date_text(date_only: bool, [y, mo, d, hh, mi, ss, tz]: [c_int; 7]) -> Result<String, String> {
    use chrono::TimeZone;
    let bad = || format!("not a valid date: {y}-{mo:02}-{d:02} {hh:02}:{mi:02}:{ss:02}");
    let offset = if tz == 0 || tz == 1 || tz == 100 {
        0
    } else {
        (tz - 100) * 15 * 60
    };
    let u = |v: c_int| u32::try_from(v).map_err(|_| bad());
    let t = chrono::FixedOffset::east_opt(offset)
        .ok_or_else(bad)?
        .with_ymd_and_hms(y, u(mo)?, u(d)?, u(hh)?, u(mi)?, u(ss)?)
        .single()
        .ok_or_else(bad)?;
    Ok(if date_only {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.to_rfc3339()
    })
}

fn feature(
    file: &Path,
    index: usize,
    f: &Feature,
    fields: &FieldInfo,
    names: &[String],
    role: Role,
) -> Result<RawFeature, InputError> {
    let g = f.0;
    let mut properties = Map::new();
    for (i, (name, kind, boolean)) in fields.iter().enumerate() {
        let Ok(ci) = c_int::try_from(i) else { break };
        // SAFETY: a live feature and an index below its field count.
        let set = unsafe { (g.OGR_F_IsFieldSetAndNotNull)(f.1, ci) } != 0;
        let v = if set {
            field_json(f, ci, *kind, *boolean)
                .map_err(|m| InputError::item(file, format!("feature #{index}"), Some(name), m))?
        } else {
            Value::Null
        };
        properties.insert(names[i].clone(), v);
    }
    // SAFETY: the geometry (or null) belongs to the live feature.
    let geom = unsafe { (g.OGR_F_GetGeometryRef)(f.1) };
    let geometry = if geom.is_null() {
        None
    } else {
        Some(geometry_json(g, geom, role).map_err(|m| {
            InputError::item(file, format!("feature #{index}"), Some("geometry"), m)
        })?)
    };
    // SAFETY: a live feature.
    let fid = unsafe { (g.OGR_F_GetFID)(f.1) };
    Ok(RawFeature {
        index,
        id: (fid >= 0).then(|| fid.to_string()),
        properties,
        geometry,
    })
}

/// The GeoJSON object of a GDAL geometry: curves are approximated by lines (CAD arcs, FileGDB
/// curves), Z and M dropped; for areal roles a closed CAD polyline is read as a polygon.
fn geometry_json(g: &Gdal, geom: H, role: Role) -> Result<Value, String> {
    // SAFETY: `geom` is a valid geometry; OGR_G_GetLinearGeometry returns a new geometry we own
    // and destroy here, after writing it into a buffer of the size GDAL states.
    let linear = unsafe {
        let h = (g.OGR_G_GetLinearGeometry)(geom, 0.0, std::ptr::null());
        if h.is_null() {
            return Err("GDAL cannot approximate this geometry by lines".into());
        }
        let wkb_len = (g.OGR_G_WkbSize)(h);
        let mut buf = vec![0u8; usize::try_from(wkb_len).unwrap_or(0)];
        let rc = (g.OGR_G_ExportToIsoWkb)(h, WKB_NDR, buf.as_mut_ptr());
        (g.OGR_G_DestroyGeometry)(h);
        if rc != 0 {
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

#[cfg(test)]
mod tests {
    use super::date_text;
    use crate::io::layer::Role;
    use serde_json::json;

    /// A GeoPackage written by `ogr2ogr` (gdal-bin) from GeoJSON whose properties GDAL types as
    /// date, date-time, time, boolean, integer, real and string.
    #[test]
    fn typed_fields_come_back_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("b.geojson");
        let gpkg = dir.path().join("b.gpkg");
        let props = json!({ "name": "甲楼", "households": 12, "height": 31.5, "lift": true,
            "built": "2019-05-01", "surveyed": "2026-03-09T14:05:07+08:00", "opens": "08:30:00" });
        let fc = json!({ "type": "FeatureCollection", "features": [{ "type": "Feature",
            "properties": props, "geometry": { "type": "Polygon", "coordinates":
            [[[116.0, 39.0], [116.001, 39.0], [116.001, 39.001], [116.0, 39.0]]] } }] });
        std::fs::write(&src, fc.to_string()).unwrap();
        let o = std::process::Command::new("ogr2ogr")
            .args(["-f", "GPKG"])
            .arg(&gpkg)
            .arg(&src)
            .output()
            .expect("ogr2ogr (gdal-bin, installed by scripts/setup)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let layer = super::read(&gpkg, None, Role::Buildings, None).unwrap();
        assert_eq!(layer.format, "GeoPackage");
        assert_eq!(layer.features.len(), 1);
        let f = &layer.features[0];
        let got = serde_json::Value::Object(f.properties.clone());
        assert_eq!(
            got,
            json!({ "name": "甲楼", "households": 12, "height": 31.5, "lift": true,
                "built": "2019-05-01", "surveyed": "2026-03-09T14:05:07+08:00",
                "opens": "08:30:00" })
        );
        assert_eq!(f.id.as_deref(), Some("1"));
        assert_eq!(f.geometry.as_ref().unwrap()["type"], "Polygon");
        // a layer that is not there is named with the ones that are
        let e = super::read(&gpkg, Some("roads"), Role::Roads, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no layer \"roads\"") && e.contains('b'),
            "{e}"
        );
    }

    #[test]
    fn lists_are_copied_and_an_empty_or_null_list_is_empty() {
        let v = [1.5, f64::NAN, -2.0];
        // SAFETY: a live array of 3.
        assert_eq!(
            unsafe { super::list_json(v.as_ptr(), 3) },
            serde_json::json!([1.5, null, -2.0])
        );
        let ints = [7i64, -8];
        // SAFETY: as above, and a null pointer.
        unsafe {
            assert_eq!(
                super::list_json(ints.as_ptr(), 2),
                serde_json::json!([7, -8])
            );
            assert_eq!(super::list_json(ints.as_ptr(), 0), serde_json::json!([]));
            assert_eq!(
                super::list_json(std::ptr::null::<i32>(), 4),
                serde_json::json!([])
            );
        }
    }

    #[test]
    fn dates_and_times_keep_their_offset() {
        assert_eq!(
            date_text(true, [2026, 3, 9, 0, 0, 0, 0]).unwrap(),
            "2026-03-09"
        );
        assert_eq!(
            date_text(false, [2026, 3, 9, 14, 5, 7, 100]).unwrap(),
            "2026-03-09T14:05:07+00:00"
        );
        // Beijing: 8 hours = 32 quarter-hours east
        assert_eq!(
            date_text(false, [2026, 3, 9, 14, 5, 7, 132]).unwrap(),
            "2026-03-09T14:05:07+08:00"
        );
        assert_eq!(
            date_text(false, [2026, 3, 9, 14, 5, 7, 80]).unwrap(),
            "2026-03-09T14:05:07-05:00"
        );
        let bad = date_text(false, [2026, 2, 30, 0, 0, 0, 0]).unwrap_err();
        assert!(bad.contains("2026-02-30"), "{bad}");
        assert!(date_text(false, [2026, -1, 1, 0, 0, 0, 0]).is_err());
    }
}
