//! Writing a layer as a standalone GeoPackage file (wangge export --format gpkg).

use super::*;

/// Write one layer as a new GeoPackage file (for `wangge export --format gpkg`): a feature table
/// `name` with the given columns, created whole under a temporary name and renamed into place.
///
/// # Errors
/// The file cannot be written.
pub fn write_layer(
    path: &Path,
    name: &str,
    geometry_type: &str,
    columns: &[(String, &'static str)],
    features: &[crate::store::Feature],
) -> Result<()> {
    let tmp = path.with_extension(format!("gpkg.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<()> {
        let c = Connection::open(&tmp)
            .map_err(|e| StoreError::Backend(format!("{}: cannot create: {e}", tmp.display())))?;
        register_functions(&c).map_err(be)?;
        c.execute_batch("BEGIN").map_err(be)?;
        create_core(&c).map_err(be)?;
        let cols: Vec<String> = columns
            .iter()
            .map(|(n, t)| format!("\"{}\" {t}", n.replace('"', "")))
            .collect();
        create_feature_table(&c, name, geometry_type, &cols.join(", ")).map_err(be)?;
        super::styles::write_styles(&c, &[name]).map_err(be)?;
        if name == "buildings" && columns.iter().any(|(n, _)| n == "grid") {
            let codes: std::collections::BTreeSet<&str> = features
                .iter()
                .filter_map(|f| f.properties.get("grid").and_then(Value::as_str))
                .collect();
            let codes: Vec<&str> = codes.into_iter().collect();
            super::styles::write_style(&c, name, &super::styles::buildings_by_grid(&codes))
                .map_err(be)?;
        }
        let marks: Vec<String> = (0..=columns.len()).map(|i| format!("?{}", i + 1)).collect();
        let names: Vec<String> = columns
            .iter()
            .map(|(n, _)| format!("\"{}\"", n.replace('"', "")))
            .collect();
        let sql = format!(
            "INSERT INTO \"{name}\" (geom, {}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let mut st = c.prepare(&sql).map_err(be)?;
        for f in features {
            let mut vals: Vec<rusqlite::types::Value> = vec![match &f.geometry {
                Some(g) => rusqlite::types::Value::Blob(to_gpkg(g, 4326)),
                None => rusqlite::types::Value::Null,
            }];
            for (n, _) in columns {
                vals.push(match f.properties.get(n) {
                    Some(Value::String(s)) => rusqlite::types::Value::Text(s.clone()),
                    Some(Value::Number(x)) if x.is_i64() => {
                        rusqlite::types::Value::Integer(x.as_i64().unwrap_or(0))
                    }
                    Some(Value::Number(x)) => {
                        rusqlite::types::Value::Real(x.as_f64().unwrap_or(0.0))
                    }
                    Some(Value::Bool(b)) => rusqlite::types::Value::Integer(i64::from(*b)),
                    Some(Value::Null) | None => rusqlite::types::Value::Null,
                    Some(v) => rusqlite::types::Value::Text(v.to_string()),
                });
            }
            st.execute(params_from_iter(vals)).map_err(be)?;
        }
        drop(st);
        touch(&c, name)?;
        c.execute_batch("COMMIT").map_err(be)?;
        Ok(())
    })();
    match r {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::Backend(format!("{}: cannot write: {e}", path.display()))
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
