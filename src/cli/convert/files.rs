//! Converting a CSV's coordinate columns and a GeoJSON object's coordinates.

use super::*;

/// A CSV with its coordinate columns converted, other columns as they were.
pub(crate) fn convert_csv(a: &ConvertArgs, tf: &Transformer, name: &str) -> Result<Vec<u8>> {
    let mut rd =
        csv::Reader::from_path(&a.input).with_context(|| format!("{name}: cannot read"))?;
    let headers = rd
        .headers()
        .with_context(|| format!("{name}: no header row"))?
        .clone();
    let (xi, yi) = super::super::coord_columns(name, &headers, &a.lon_field, &a.lat_field)?;
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
            tf,
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
    w.into_inner().map_err(|e| anyhow!("{e}"))
}

/// A GeoJSON object (collection, feature or geometry) with every coordinate converted, and its
/// `crs` member naming the target (none for WGS84).
pub(crate) fn convert_geojson(
    a: &ConvertArgs,
    tf: &Transformer,
    to: Crs,
    name: &str,
) -> Result<Vec<u8>> {
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
                    convert_geometry(g, tf, &format!("{name}: feature #{i}"))?;
                }
            }
        }
        Some("Feature") => {
            if let Some(g) = v.get_mut("geometry") {
                convert_geometry(g, tf, &format!("{name}: feature"))?;
            }
        }
        Some(_) => convert_geometry(&mut v, tf, name)?,
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
    Ok(serde_json::to_vec(&v)?)
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
        convert_csv(a, &tf, &name)?
    } else {
        convert_geojson(a, &tf, to, &name)?
    };
    write_atomic(&a.output, &bytes)?;
    Ok(())
}
