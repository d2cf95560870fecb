//! Every format planners hold, read through GDAL: a generated district written by `ogr2ogr` as
//! GBK Shapefiles, GeoPackage, FlatGeobuf, KML, FileGDB, CSV with WKT, GeoJSONSeq, a projected
//! CGCS2000 Gauss-Krüger Shapefile and DXF, each regridded and compared with the GeoJSON run.

mod common;
use common::{check, sample, wangge, wangge_ok};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ogr2ogr(args: &[&str]) {
    let o = Command::new("ogr2ogr")
        .args(args)
        .output()
        .expect("ogr2ogr (gdal-bin, installed by scripts/setup)");
    assert!(
        o.status.success(),
        "ogr2ogr {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Regrid with the three layers; the grids sorted by code (FlatGeobuf's spatial index
/// reorders features, and with them the output order).
fn regrid(c: &Path, b: &Path, r: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "regrid",
        "--communities",
        p(c),
        "--buildings",
        p(b),
        "--roads",
        p(r),
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    wangge_ok(&args);
    let v: Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    let mut f = v["features"].as_array().unwrap().clone();
    f.sort_by(|a, b| {
        a["properties"]["code"]
            .as_str()
            .cmp(&b["properties"]["code"].as_str())
    });
    f
}

struct District {
    dir: PathBuf,
    base: Vec<Value>,
}

impl District {
    fn new(name: &str) -> District {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        sample(&dir.join("city"), 3, 6);
        let base = regrid(
            &dir.join("city/communities.geojson"),
            &dir.join("city/buildings.geojson"),
            &dir.join("city/roads.geojson"),
            &dir.join("base.geojson"),
            &[],
        );
        assert!(base.len() > 20);
        District { dir, base }
    }

    fn src(&self, layer: &str) -> PathBuf {
        self.dir.join(format!("city/{layer}.geojson"))
    }

    /// Write the three layers with ogr2ogr in one format; returns their paths.
    fn convert(&self, sub: &str, ext: &str, driver: &str, extra: &[&str]) -> [PathBuf; 3] {
        let d = self.dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        ["communities", "buildings", "roads"].map(|l| {
            let out = d.join(format!("{l}.{ext}"));
            let src = self.src(l);
            let mut args = vec!["-f", driver, p(&out), p(&src)];
            args.extend_from_slice(extra);
            ogr2ogr(&args);
            out
        })
    }

    fn same_grids(&self, layers: &[PathBuf; 3], what: &str, extra: &[&str]) {
        let got = self.same_households(layers, what, extra);
        for (g, e) in got.iter().zip(&self.base) {
            assert_eq!(g, e, "{what}: grid {} differs", e["properties"]["code"]);
        }
    }

    /// The same grids by households and buildings (boundaries may straighten differently when
    /// a format reorders the features).
    fn same_households(&self, [c, b, r]: &[PathBuf; 3], what: &str, extra: &[&str]) -> Vec<Value> {
        let out = self.dir.join(format!("grids-{what}.geojson"));
        let got = regrid(c, b, r, &out, extra);
        assert_eq!(got.len(), self.base.len(), "{what}: number of grids");
        for (g, e) in got.iter().zip(&self.base) {
            for k in ["code", "community", "households", "buildings"] {
                assert_eq!(
                    g["properties"][k], e["properties"][k],
                    "{what}: {k} of {}",
                    e["properties"]["code"]
                );
            }
        }
        // Chinese names came through intact (every community's name ends in 社区).
        assert!(
            got.iter()
                .all(|f| f["properties"]["name"].as_str().unwrap().contains("社区第")),
            "{what}: names {:?}",
            got[0]["properties"]["name"]
        );
        got
    }
}

#[test]
fn every_format_regrids_to_the_same_grids() {
    let d = District::new("formats");
    let gbk = d.convert("shp", "shp", "ESRI Shapefile", &["-lco", "ENCODING=GBK"]);
    assert_eq!(
        std::fs::read_to_string(gbk[0].with_extension("cpg")).unwrap(),
        "GBK"
    );
    d.same_grids(&gbk, "shapefile-gbk", &[]);
    let (ok, _, out) = check(
        &d.src("communities"),
        &d.src("buildings"),
        Some(&d.src("roads")),
        &d.dir.join("grids-shapefile-gbk.geojson"),
        0.9,
    );
    assert!(ok, "checker on the Shapefile run:\n{out}");

    // Without its spatial index, which would store the features in Hilbert order (the grids
    // depend on the order of the buildings in the file; see ARCHITECTURE.md, "Inputs").
    d.same_grids(
        &d.convert(
            "fgb-seq",
            "fgb",
            "FlatGeobuf",
            &["-lco", "SPATIAL_INDEX=NO"],
        ),
        "flatgeobuf-in-order",
        &[],
    );
    d.same_grids(&d.convert("kml", "kml", "LIBKML", &[]), "kml", &[]);
    d.same_grids(
        &d.convert("csv", "csv", "CSV", &["-lco", "GEOMETRY=AS_WKT"]),
        "csv-wkt",
        &[],
    );
    d.same_grids(
        &d.convert("seq", "geojsons", "GeoJSONSeq", &[]),
        "geojsonseq",
        &[],
    );
    // FileGDB keeps coordinates on an integer grid; read back they are within 1e-12° of the
    // originals and land on the same 1e-9° input grid.
    d.same_grids(&d.convert("gdb", "gdb", "OpenFileGDB", &[]), "filegdb", &[]);
    // Gauss-Krüger metres (CGCS2000, 3° zone CM 111°E) with the CRS in the .prj: no --crs.
    d.same_grids(
        &d.convert(
            "gk",
            "shp",
            "ESRI Shapefile",
            &["-t_srs", "EPSG:4546", "-lco", "ENCODING=UTF-8"],
        ),
        "gauss-kruger",
        &[],
    );
}

#[test]
fn one_geopackage_holds_all_three_layers() {
    let d = District::new("formats-gpkg");
    let g = d.dir.join("city.gpkg");
    for l in ["communities", "buildings", "roads"] {
        let src = d.src(l);
        let mut args = vec!["-f", "GPKG", p(&g), p(&src), "-nln", l];
        if g.exists() {
            args.push("-update");
        }
        ogr2ogr(&args);
    }
    // Each role picks its layer by name.
    d.same_grids(&[g.clone(), g.clone(), g.clone()], "gpkg", &[]);
    // A layer named explicitly, after a rename that no role recognises.
    let other = d.dir.join("other.gpkg");
    ogr2ogr(&[
        "-f",
        "GPKG",
        p(&other),
        p(&g),
        "buildings",
        "-nln",
        "楼栋数据",
    ]);
    ogr2ogr(&[
        "-f",
        "GPKG",
        "-update",
        p(&other),
        p(&g),
        "roads",
        "-nln",
        "路网",
    ]);
    let o = wangge(&[
        "regrid",
        "--communities",
        p(&g),
        "--buildings",
        p(&other),
        "--roads",
        p(&g),
        "--out",
        p(&d.dir.join("x.geojson")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("has 2 layers (楼栋数据, 路网)") && err.contains("other.gpkg#LAYER"),
        "{err}"
    );
    let named = PathBuf::from(format!("{}#楼栋数据", other.display()));
    d.same_grids(&[g.clone(), named, g.clone()], "gpkg-named-layer", &[]);
}

#[test]
fn a_shapefile_without_cpg_is_read_as_gbk_or_as_told() {
    let d = District::new("formats-nocpg");
    let shp = d.convert("shp", "shp", "ESRI Shapefile", &["-lco", "ENCODING=GBK"]);
    for f in &shp {
        std::fs::remove_file(f.with_extension("cpg")).unwrap();
    }
    // Nothing says GBK: the bytes are not UTF-8, so GB18030 (a superset of GBK) is assumed.
    d.same_grids(&shp, "nocpg-guessed", &[]);
    // Told explicitly.
    d.same_grids(&shp, "nocpg-told", &["--encoding", "GBK"]);
}

#[test]
fn cad_drawings_give_buildings_from_closed_polylines() {
    let d = District::new("formats-dxf");
    let dxf = d.dir.join("buildings.dxf");
    // CAD draws footprints as closed polylines, not polygons.
    ogr2ogr(&[
        "-f",
        "DXF",
        p(&dxf),
        p(&d.src("buildings")),
        "-nlt",
        "LINESTRING",
        "-explodecollections",
    ]);
    let out = d.dir.join("dxf-grids.geojson");
    let report = d.dir.join("dxf-report.json");
    wangge_ok(&[
        "regrid",
        "--communities",
        p(&d.src("communities")),
        "--buildings",
        p(&dxf),
        "--roads",
        p(&d.src("roads")),
        "--out",
        p(&out),
        "--report",
        p(&report),
    ]);
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let n_src = serde_json::from_slice::<Value>(&std::fs::read(d.src("buildings")).unwrap())
        .unwrap()["features"]
        .as_array()
        .unwrap()
        .len();
    // Every footprint was read (households estimated: a drawing carries no attributes).
    assert_eq!(
        report["inputs"]["buildings"].as_u64(),
        Some(n_src as u64),
        "{report}"
    );
    assert_eq!(
        report["inputs"]["households_estimated_buildings"].as_u64(),
        Some(n_src as u64),
        "{report}"
    );
}

#[test]
fn unreadable_and_conflicting_inputs_are_named() {
    let d = District::new("formats-errors");
    let junk = d.dir.join("drawing.bin");
    std::fs::write(&junk, b"\x00\x01not a layer").unwrap();
    let (b, r, e) = (d.src("buildings"), d.src("roads"), d.dir.join("e.geojson"));
    let run = |c: &Path, extra: &[&str]| {
        let mut args = vec![
            "regrid",
            "--communities",
            p(c),
            "--buildings",
            p(&b),
            "--roads",
            p(&r),
            "--out",
            p(&e),
        ];
        args.extend_from_slice(extra);
        let o = wangge(&args);
        assert!(!o.status.success());
        assert!(!d.dir.join("e.geojson").exists(), "nothing half-written");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&junk, &[]);
    assert!(
        e.contains("drawing.bin: not a vector format wangge reads") && e.contains("FileGDB"),
        "{e}"
    );
    // The file states CGCS2000 Gauss-Krüger; --crs says another zone.
    let gk = d.convert("gk", "shp", "ESRI Shapefile", &["-t_srs", "EPSG:4546"]);
    let e = run(&gk[0], &["--crs", "EPSG:4547"]);
    assert!(
        e.contains("communities.shp: the file states its coordinates are in EPSG:4546, but --crs says EPSG:4547"),
        "{e}"
    );
    // A per-feature error names the feature and field, as for GeoJSON.
    let fgb = d.dir.join("nocode.fgb");
    ogr2ogr(&[
        "-f",
        "FlatGeobuf",
        p(&fgb),
        p(&d.src("communities")),
        "-sql",
        "SELECT name, street FROM communities",
    ]);
    let e = run(&fgb, &[]);
    assert!(
        e.contains("nocode.fgb: feature #0") && e.contains("field `code`: is missing"),
        "{e}"
    );
    // A UTF-8 byte-order mark before GeoJSON is accepted.
    let bom = d.dir.join("bom.geojson");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(d.src("communities")).unwrap());
    std::fs::write(&bom, bytes).unwrap();
    let got = regrid(&bom, &b, &r, &d.dir.join("bom-grids.geojson"), &[]);
    assert_eq!(got, d.base);
}

/// GDAL is opened only when a file needs it: without it, GeoJSON is regridded as before and a
/// Shapefile is refused with what to install, exit 1, nothing written.
#[test]
fn without_gdal_geojson_is_read_and_other_formats_say_what_is_missing() {
    let d = District::new("formats-no-gdal");
    let shp = d.convert("shp-no-gdal", "shp", "ESRI Shapefile", &[]);
    let out = d.dir.join("no-gdal.geojson");
    let run = |c: &Path| {
        Command::new(common::bin())
            .env("WANGGE_GDAL_LIBRARY", "libwangge-no-such-gdal.so")
            .args(["regrid", "--communities", p(c), "--buildings"])
            .arg(d.src("buildings"))
            .arg("--roads")
            .arg(d.src("roads"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(&shp[0]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("communities.shp: is not GeoJSON; reading it needs the GDAL library")
            && e.contains("libwangge-no-such-gdal.so")
            && e.contains("apt-get install libgdal32"),
        "{e}"
    );
    assert!(!out.exists(), "nothing half-written");
    let o = run(&d.src("communities"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mut f = v["features"].as_array().unwrap().clone();
    f.sort_by(|a, b| {
        a["properties"]["code"]
            .as_str()
            .cmp(&b["properties"]["code"].as_str())
    });
    assert_eq!(f, d.base);
}

#[test]
fn locate_and_plan_import_read_gdal_formats() {
    let d = District::new("formats-other-commands");
    // The regrid output as a GBK Shapefile of grids: plans import takes it.
    let grids_shp = d.dir.join("grids.shp");
    ogr2ogr(&[
        "-f",
        "ESRI Shapefile",
        p(&grids_shp),
        p(&d.dir.join("base.geojson")),
        "-lco",
        "ENCODING=GBK",
    ]);
    // Points as a GeoPackage in Web Mercator: located without --crs.
    let pts = d.dir.join("points.geojson");
    let feats: Vec<Value> = d
        .base
        .iter()
        .take(5)
        .map(|g| {
            let ring = &g["geometry"]["coordinates"][0];
            let n = ring.as_array().unwrap().len() - 1;
            let (mut x, mut y) = (0.0, 0.0);
            for c in ring.as_array().unwrap().iter().take(n) {
                x += c[0].as_f64().unwrap();
                y += c[1].as_f64().unwrap();
            }
            serde_json::json!({"type":"Feature","properties":{"want": g["properties"]["code"]},
                "geometry":{"type":"Point","coordinates":[x / n as f64, y / n as f64]}})
        })
        .collect();
    std::fs::write(
        &pts,
        serde_json::to_vec(&serde_json::json!({"type":"FeatureCollection","features":feats}))
            .unwrap(),
    )
    .unwrap();
    let pts_gpkg = d.dir.join("points.gpkg");
    ogr2ogr(&["-f", "GPKG", "-t_srs", "EPSG:3857", p(&pts_gpkg), p(&pts)]);
    let out = d.dir.join("located.geojson");
    wangge_ok(&[
        "locate",
        "--points",
        p(&pts_gpkg),
        "--grids",
        p(&grids_shp),
        "--out",
        p(&out),
    ]);
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for f in v["features"].as_array().unwrap() {
        // Centroids of convex-ish grids: the vertex mean lies inside for this district.
        assert_eq!(f["properties"]["grid"], f["properties"]["want"], "{f}");
    }
    let store = d.dir.join("store.gpkg");
    let s = p(&store);
    wangge_ok(&[
        "import",
        "--database",
        s,
        "--communities",
        p(&d.src("communities")),
        "--buildings",
        p(&d.src("buildings")),
    ]);
    let o = wangge_ok(&[
        "plans",
        "import",
        "--database",
        s,
        "--grids",
        p(&grids_shp),
        "--json",
    ]);
    let r: Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    assert_eq!(r["grids"].as_u64(), Some(d.base.len() as u64), "{r}");
}
