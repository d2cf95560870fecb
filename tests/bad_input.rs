//! Bad input gets a clear error naming the file, feature and field, a non-zero exit, and no
//! output file.

mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};

fn square(x: f64, y: f64, d: f64) -> serde_json::Value {
    json!([[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]])
}

fn fc(features: Vec<serde_json::Value>) -> serde_json::Value {
    json!({ "type": "FeatureCollection", "features": features })
}

fn community(code: serde_json::Value, coords: serde_json::Value) -> serde_json::Value {
    json!({ "type": "Feature", "properties": { "code": code, "name": "测试社区" }, "geometry": { "type": "Polygon", "coordinates": coords } })
}

fn building(id: &str, x: f64, y: f64, hh: serde_json::Value) -> serde_json::Value {
    json!({ "type": "Feature", "properties": { "id": id, "households": hh }, "geometry": { "type": "Polygon", "coordinates": square(x, y, 0.0001) } })
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let c = Case {
            dir: tempfile::tempdir().unwrap(),
        };
        c.write(
            "c.geojson",
            &fc(vec![community(json!("100"), square(116.0, 39.0, 0.003))]),
        );
        let mut bs = Vec::new();
        for i in 0..8 {
            bs.push(building(
                &format!("b{i}"),
                116.0002 + 0.0003 * f64::from(i),
                39.001,
                json!(90),
            ));
        }
        c.write("b.geojson", &fc(bs));
        c
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, v: &serde_json::Value) {
        std::fs::write(self.path(name), serde_json::to_string(v).unwrap()).unwrap();
    }
    fn write_raw(&self, name: &str, s: &str) {
        std::fs::write(self.path(name), s).unwrap();
    }
    /// Run regrid; return (exit ok, stderr), asserting no output file appears on failure.
    fn run(&self, extra: &[&str]) -> (bool, String) {
        let out = self.path("out.geojson");
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "regrid",
            "--communities",
            self.s("c.geojson"),
            "--buildings",
            self.s("b.geojson"),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = wangge(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if !o.status.success() {
            assert!(
                !out.exists(),
                "an output file was written despite the error: {err}"
            );
            assert!(!err.contains("panicked"), "panic: {err}");
        }
        (o.status.success(), err)
    }
    fn s(&self, name: &str) -> &'static str {
        Box::leak(
            self.path(name)
                .to_str()
                .unwrap()
                .to_string()
                .into_boxed_str(),
        )
    }
}

fn fails_with(c: &Case, extra: &[&str], needles: &[&str]) {
    let (ok, err) = c.run(extra);
    assert!(!ok, "expected failure");
    for n in needles {
        assert!(err.contains(n), "error {err:?} does not mention {n:?}");
    }
}

#[test]
fn valid_case_passes() {
    let c = Case::new();
    let (ok, err) = c.run(&[]);
    assert!(ok, "{err}");
}

#[test]
fn invalid_json_names_the_file_and_position() {
    let c = Case::new();
    c.write_raw(
        "c.geojson",
        "{\"type\": \"FeatureCollection\", \"features\": [",
    );
    fails_with(&c, &[], &["c.geojson", "not valid JSON", "line 1"]);
}

#[test]
fn nan_is_not_json() {
    let c = Case::new();
    c.write_raw("b.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"x"},"geometry":{"type":"Polygon","coordinates":[[[NaN,1],[2,2],[3,1],[NaN,1]]]}}]}"#);
    fails_with(&c, &[], &["b.geojson", "not valid JSON"]);
}

#[test]
fn wrong_geometry_type_names_the_feature() {
    let c = Case::new();
    c.write("c.geojson", &fc(vec![json!({ "type": "Feature", "properties": { "code": "7" }, "geometry": { "type": "Point", "coordinates": [116.0, 39.0] } })]));
    fails_with(
        &c,
        &[],
        &[
            "c.geojson",
            "feature #0",
            "id 7",
            "geometry",
            "Point",
            "expected a Polygon",
        ],
    );
}

#[test]
fn self_intersecting_community_is_rejected() {
    let c = Case::new();
    let bow = json!([[
        [116.0, 39.0],
        [116.003, 39.003],
        [116.003, 39.0],
        [116.0, 39.003],
        [116.0, 39.0]
    ]]);
    c.write("c.geojson", &fc(vec![community(json!("100"), bow)]));
    fails_with(&c, &[], &["c.geojson", "feature #0", "intersects itself"]);
}

#[test]
fn self_intersecting_building_with_a_spike_is_repaired() {
    let c = Case::new();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("b.geojson")).unwrap()).unwrap();
    // a zero-width spike: repaired without changing the area
    v["features"][0]["geometry"]["coordinates"] = json!([[
        [116.0002, 39.001],
        [116.0003, 39.001],
        [116.0003, 39.0011],
        [116.00025, 39.0011],
        [116.00025, 39.0012],
        [116.00025, 39.0011],
        [116.0002, 39.0011],
        [116.0002, 39.001]
    ]]);
    c.write("b.geojson", &v);
    let rep = c.path("r.json");
    let (ok, err) = c.run(&["--report", rep.to_str().unwrap()]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rep).unwrap()).unwrap();
    assert_eq!(r["inputs"]["repaired"][0], "feature #0 (id b0)");
}

#[test]
fn missing_and_duplicate_codes() {
    let c = Case::new();
    c.write("c.geojson", &fc(vec![json!({ "type": "Feature", "properties": { "name": "无码" }, "geometry": { "type": "Polygon", "coordinates": square(116.0, 39.0, 0.003) } })]));
    fails_with(&c, &[], &["c.geojson", "feature #0", "`code`", "missing"]);
    c.write(
        "c.geojson",
        &fc(vec![
            community(json!("100"), square(116.0, 39.0, 0.003)),
            community(json!("100"), square(116.01, 39.0, 0.003)),
        ]),
    );
    fails_with(&c, &[], &["c.geojson", "feature #1", "`code`", "duplicate"]);
}

#[test]
fn missing_and_duplicate_building_ids() {
    let c = Case::new();
    c.write("b.geojson", &fc(vec![json!({ "type": "Feature", "properties": { "households": 3 }, "geometry": { "type": "Polygon", "coordinates": square(116.001, 39.001, 0.0001) } })]));
    fails_with(&c, &[], &["b.geojson", "feature #0", "`id`", "missing"]);
    c.write(
        "b.geojson",
        &fc(vec![
            building("x", 116.001, 39.001, json!(3)),
            building("x", 116.002, 39.001, json!(3)),
        ]),
    );
    fails_with(
        &c,
        &[],
        &["b.geojson", "feature #1", "duplicate building id"],
    );
}

#[test]
fn bad_households() {
    let c = Case::new();
    c.write(
        "b.geojson",
        &fc(vec![building("x", 116.001, 39.001, json!(-4))]),
    );
    fails_with(
        &c,
        &[],
        &[
            "b.geojson",
            "id x",
            "`households`",
            "non-negative whole number",
        ],
    );
    c.write(
        "b.geojson",
        &fc(vec![building("x", 116.001, 39.001, json!("many"))]),
    );
    fails_with(&c, &[], &["b.geojson", "`households`"]);
}

#[test]
fn out_of_range_coordinates() {
    let c = Case::new();
    c.write(
        "c.geojson",
        &fc(vec![community(json!("100"), square(216.0, 39.0, 0.003))]),
    );
    fails_with(&c, &[], &["c.geojson", "feature #0", "out of range"]);
}

#[test]
fn empty_layers() {
    let c = Case::new();
    c.write("c.geojson", &fc(vec![]));
    fails_with(&c, &[], &["c.geojson", "no features"]);
    let c = Case::new();
    c.write("b.geojson", &fc(vec![]));
    fails_with(&c, &[], &["b.geojson", "no features"]);
}

#[test]
fn buildings_outside_every_community_are_counted_not_fatal() {
    let c = Case::new();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("b.geojson")).unwrap()).unwrap();
    v["features"]
        .as_array_mut()
        .unwrap()
        .push(building("far", 117.0, 40.0, json!(50)));
    c.write("b.geojson", &v);
    let rep = c.path("r.json");
    let (ok, err) = c.run(&["--report", rep.to_str().unwrap()]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rep).unwrap()).unwrap();
    assert_eq!(r["inputs"]["buildings_outside_communities"], 1);
}

#[test]
fn unknown_crs_and_bad_band() {
    let c = Case::new();
    fails_with(
        &c,
        &["--crs", "mercator-ish"],
        &["unknown CRS", "mercator-ish"],
    );
    fails_with(&c, &["--out-crs", "EPSG:999999"], &["EPSG:999999"]);
    fails_with(
        &c,
        &["--min", "500", "--max", "400"],
        &["--min 500", "--max 400"],
    );
}

#[test]
fn roads_must_be_lines() {
    let c = Case::new();
    c.write("r.geojson", &fc(vec![json!({ "type": "Feature", "properties": { "highway": "primary" }, "geometry": { "type": "Polygon", "coordinates": square(116.0, 39.0, 0.001) } })]));
    let r = c.path("r.geojson");
    fails_with(
        &c,
        &["--roads", r.to_str().unwrap()],
        &["r.geojson", "feature #0", "expected a LineString"],
    );
}

#[test]
fn unreadable_file() {
    let c = Case::new();
    let missing: &Path = Path::new("/nonexistent/b.geojson");
    let out = c.path("out.geojson");
    let o = wangge(&[
        "regrid",
        "--communities",
        c.s("c.geojson"),
        "--buildings",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/b.geojson"));
    assert!(!out.exists());
}

/// `convert` refuses a longitude of 1e308 (the GCJ-02 formulas would pass it through) and
/// writes nothing.
#[test]
fn convert_refuses_coordinates_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.csv"), "id,lon,lat\n1,116.4,39.9\n2,1e308,30\n").unwrap();
    for (from, to) in [("gcj02", "wgs84"), ("wgs84", "EPSG:3857")] {
        let out = d.join(format!("o-{from}.csv"));
        let o = wangge(&[
            "convert",
            "--from",
            from,
            "--to",
            to,
            d.join("p.csv").to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{from}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("row 3") && err.contains("1e308") && err.contains("out of range"),
            "{err}"
        );
        assert!(!out.exists());
    }
}
