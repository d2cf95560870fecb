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

mod files;
pub use files::*;
