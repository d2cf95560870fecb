//! `wangge convert`: CSV and GeoJSON between WGS84, GCJ-02, BD-09 and EPSG codes.

use crate::geom::crs::{Crs, Transformer};
use crate::io::write::write_atomic;
use anyhow::{Context, Result, anyhow, bail};
use geo::Coord;
use serde_json::Value;
use std::path::PathBuf;

/// Arguments of `wangge convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Source CRS: wgs84, gcj02, bd09, or EPSG:<code>.
    #[arg(long)]
    pub from: String,
    /// Target CRS.
    #[arg(long)]
    pub to: String,
    /// Longitude (x) column of a CSV file.
    #[arg(long, default_value = "lon")]
    pub lon_field: String,
    /// Latitude (y) column of a CSV file.
    #[arg(long, default_value = "lat")]
    pub lat_field: String,
    /// Input file (.csv or .geojson/.json).
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
}

/// One coordinate converted; longitude/latitude out of range, or a result that is not finite,
/// is an error (PROJ and the GCJ-02 formulas would pass some of them through).
fn transform(tf: &Transformer, c: Coord) -> Result<Coord> {
    let t = |v: f64| {
        if v.abs() >= 1e9 {
            format!("{v:e}")
        } else {
            v.to_string()
        }
    };
    if tf.from().is_geographic() && crate::geom::beyond_lonlat(c) {
        bail!(
            "coordinate ({}, {}) is out of range for longitude/latitude",
            t(c.x),
            t(c.y)
        );
    }
    let out = tf.apply(c)?;
    if !(out.x.is_finite() && out.y.is_finite()) {
        bail!("coordinate ({}, {}) has no finite result", t(c.x), t(c.y));
    }
    Ok(out)
}

fn convert_coords(v: &mut Value, tf: &Transformer, path: &str) -> Result<()> {
    match v {
        Value::Array(a) if a.len() >= 2 && a[0].is_number() && a[1].is_number() => {
            let x = a[0]
                .as_f64()
                .ok_or_else(|| anyhow!("{path}: not a number"))?;
            let y = a[1]
                .as_f64()
                .ok_or_else(|| anyhow!("{path}: not a number"))?;
            let c = transform(tf, Coord { x, y }).with_context(|| path.to_string())?;
            a[0] = serde_json::json!(c.x);
            a[1] = serde_json::json!(c.y);
            Ok(())
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                convert_coords(x, tf, path)?;
            }
            Ok(())
        }
        _ => bail!("{path}: coordinates must be arrays of numbers"),
    }
}

fn convert_geometry(g: &mut Value, tf: &Transformer, path: &str) -> Result<()> {
    if g.is_null() {
        return Ok(());
    }
    if let Some(gs) = g.get_mut("geometries").and_then(Value::as_array_mut) {
        for (i, x) in gs.iter_mut().enumerate() {
            convert_geometry(x, tf, &format!("{path}, geometry {i}"))?;
        }
        return Ok(());
    }
    let c = g
        .get_mut("coordinates")
        .ok_or_else(|| anyhow!("{path}: geometry has no coordinates"))?;
    convert_coords(c, tf, path)
}

/// Run `wangge convert`.
///
/// # Errors
/// Unknown CRS, unreadable input, or a coordinate that cannot be converted (named).
pub fn run(a: &ConvertArgs) -> Result<()> {
    let from: Crs = a.from.parse()?;
    let to: Crs = a.to.parse()?;
    let tf = Transformer::new(from, to)?;
    let name = a.input.display().to_string();
    let ext = a
        .input
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = if ext == "csv" {
        let mut rd =
            csv::Reader::from_path(&a.input).with_context(|| format!("{name}: cannot read"))?;
        let headers = rd
            .headers()
            .with_context(|| format!("{name}: no header row"))?
            .clone();
        let (xi, yi) = super::coord_columns(&name, &headers, &a.lon_field, &a.lat_field)?;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&headers)?;
        for (i, rec) in rd.records().enumerate() {
            let row = i + 2;
            let rec = rec.with_context(|| format!("{name}: row {row}: not valid CSV"))?;
            let num = |k: usize, f: &str| -> Result<f64> {
                let s = rec.get(k).unwrap_or("").trim();
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        anyhow!("{name}: row {row}: field `{f}`: expected a number, found {s:?}")
                    })
            };
            let c = transform(
                &tf,
                Coord {
                    x: num(xi, &a.lon_field)?,
                    y: num(yi, &a.lat_field)?,
                },
            )
            .with_context(|| format!("{name}: row {row}"))?;
            let out: Vec<String> = rec
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    if k == xi {
                        format!("{}", c.x)
                    } else if k == yi {
                        format!("{}", c.y)
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            w.write_record(&out)?;
        }
        w.into_inner().map_err(|e| anyhow!("{e}"))?
    } else {
        let text = std::fs::read(&a.input).with_context(|| format!("{name}: cannot read"))?;
        let mut v: Value =
            serde_json::from_slice(&text).with_context(|| format!("{name}: not valid JSON"))?;
        match v.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => {
                let feats = v
                    .get_mut("features")
                    .and_then(Value::as_array_mut)
                    .ok_or_else(|| anyhow!("{name}: no features array"))?;
                for (i, f) in feats.iter_mut().enumerate() {
                    if let Some(g) = f.get_mut("geometry") {
                        convert_geometry(g, &tf, &format!("{name}: feature #{i}"))?;
                    }
                }
            }
            Some("Feature") => {
                if let Some(g) = v.get_mut("geometry") {
                    convert_geometry(g, &tf, &format!("{name}: feature"))?;
                }
            }
            Some(_) => convert_geometry(&mut v, &tf, &name)?,
            None => bail!("{name}: not a GeoJSON object"),
        }
        if let Some(o) = v.as_object_mut() {
            if to == Crs::Wgs84 {
                o.remove("crs");
            } else {
                o.insert(
                    "crs".into(),
                    serde_json::json!({ "type": "name", "properties": { "name": to.to_string() } }),
                );
            }
        }
        serde_json::to_vec(&v)?
    };
    write_atomic(&a.output, &bytes)?;
    Ok(())
}
