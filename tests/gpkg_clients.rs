//! Our GeoPackages in the tools planners use (issue 18): GDAL's own validator
//! (`validate_gpkg.py`, GDAL 3.6) passes on the store and on exports, and QGIS (PyQGIS 3.22,
//! headless) opens every layer styled from `layer_styles` — grids coloured by band with name and
//! code labels, communities and streets outlined, roads named. The rendered map is left in
//! `target/gpkg-clients/qgis.png` to look at.

mod common;

use common::{load_sample, wangge_ok};
use std::path::Path;
use std::process::Command;

const VALIDATOR: &str = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py";

fn validate(path: &Path) {
    let o = Command::new("/usr/bin/python3")
        .arg(VALIDATOR)
        .arg(path)
        .output()
        .expect("run validate_gpkg.py (python3-gdal, installed with gdal-bin by scripts/setup)");
    assert!(
        o.status.success(),
        "{}: {}{}",
        path.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn gdal_validates_and_qgis_opens_styled() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/gpkg-clients");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let db = d.join("store.gpkg");
    let dbs = db.to_str().unwrap();
    load_sample(dbs);
    // the store, checkpointed so that a plain copy is complete
    wangge_ok(&[
        "export",
        "--layer",
        "grids",
        "--format",
        "gpkg",
        "--out",
        d.join("grids.gpkg").to_str().unwrap(),
        "--database",
        dbs,
    ]);
    wangge_ok(&[
        "export",
        "--layer",
        "buildings",
        "--format",
        "gpkg",
        "--out",
        d.join("buildings.gpkg").to_str().unwrap(),
        "--database",
        dbs,
    ]);
    validate(&db);
    validate(&d.join("grids.gpkg"));
    validate(&d.join("buildings.gpkg"));
    let (out, png) = qgis(&d, dbs);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by = |n: &str| {
        rows.iter()
            .find(|r| r["layer"] == n)
            .unwrap_or_else(|| panic!("{n} not opened: {out}"))
            .clone()
    };
    let g = by("grids");
    assert_eq!(g["renderer"], "categorizedSymbol", "{g}");
    assert_eq!(g["attr"], "band");
    assert_eq!(
        g["categories"],
        serde_json::json!(["in", "under", "over", "oversize"])
    );
    assert_eq!(g["labels"], true);
    assert!(
        g["label_field"].as_str().unwrap().contains("\"name\""),
        "{g}"
    );
    assert_eq!(g["label_font"], "Noto Sans CJK SC");
    assert_eq!(g["features"], 133);
    let c = by("communities");
    assert_eq!(
        (c["renderer"].as_str(), c["labels"].as_bool()),
        (Some("singleSymbol"), Some(true))
    );
    assert_eq!(c["outline"], "#b71c1c", "{c}");
    assert_eq!(by("streets")["outline"], "#4a148c");
    assert_eq!(by("roads")["label_field"], "name");
    assert_eq!(by("buildings")["colour"], "#d6d0c4");
    // the export alone is styled too
    // the exported buildings carry their grid and are coloured by it
    let b = by("buildings.gpkg");
    assert_eq!(
        (b["renderer"].as_str(), b["attr"].as_str()),
        (Some("categorizedSymbol"), Some("grid")),
        "{b}"
    );
    assert_eq!(
        b["categories"].as_array().unwrap().len(),
        133 + 1,
        "one per grid and one for none"
    );
    let e = by("grids.gpkg");
    assert_eq!(e["renderer"], "categorizedSymbol", "{e}");
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "a rendered map"
    );
}

/// Open the store's layers and the grids export in PyQGIS; its JSON lines and the map it drew.
fn qgis(d: &Path, dbs: &str) -> (String, std::path::PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qgis/open_styled.py");
    let png = d.join("qgis.png");
    let runtime = d.join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let layer = |n: &str| format!("{dbs}|layername={n}");
    let o = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&png)
        .args([
            layer("grids"),
            layer("communities"),
            layer("streets"),
            layer("buildings"),
            layer("roads"),
        ])
        .arg(d.join("grids.gpkg"))
        .arg(d.join("buildings.gpkg"))
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .expect("run PyQGIS (python3-qgis, installed by scripts/setup)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (out, png)
}
