//! `wangge locate` end to end: real 311 requests, generations, bad rows, CRSs.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_csv(p: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut rd = csv::Reader::from_path(p).unwrap();
    let h = rd.headers().unwrap().clone();
    rd.records()
        .map(|r| {
            h.iter()
                .map(str::to_string)
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

#[test]
fn nyc_311_requests_agree_with_the_city_labels() {
    let m = manhattan();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("located.csv");
    let sum = wangge_ok(&[
        "locate",
        "--grids",
        s(&m.join("nyc_community_districts.geojson")),
        "--points",
        s(&m.join("incidents_311.csv")),
        "--out",
        s(&out),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(sum.trim()).unwrap();
    assert_eq!(v["points"], 2122);
    assert_eq!(
        v["outside"], 7,
        "the data README: 7 requests fall outside every district"
    );
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 2122, "every row is kept");
    let labelled: Vec<_> = rows
        .iter()
        .filter(|r| !r["community_board"].is_empty())
        .collect();
    assert_eq!(labelled.len(), 2115);
    // the answer, and the answer set where the district layer overlaps itself (5 requests)
    let primary = labelled
        .iter()
        .filter(|r| r["grid"] == r["community_board"])
        .count();
    let in_set = labelled
        .iter()
        .filter(|r| {
            r["grid"] == r["community_board"]
                || r["locate_note"]
                    .strip_prefix("overlapping grids: also in ")
                    .is_some_and(|o| o.split(", ").any(|c| c == r["community_board"]))
        })
        .count();
    assert!(
        in_set >= 2096,
        "label in the exact point-in-polygon answer for {in_set} requests"
    );
    assert!(primary >= 2095, "primary answer agrees for {primary}");
    for r in &rows {
        if r["grid"].is_empty() {
            assert!(r["locate_note"].starts_with("outside: "), "{r:?}");
            assert!(r["locate_note"].contains(" m from "), "{r:?}");
        }
    }
}

#[test]
fn points_are_located_against_the_grids_in_force_at_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sq = |x: f64| {
        serde_json::json!([[
            [x, 30.0],
            [x + 0.01, 30.0],
            [x + 0.01, 30.01],
            [x, 30.01],
            [x, 30.0]
        ]])
    };
    let layer = serde_json::json!({ "type": "FeatureCollection", "features": [
        { "type": "Feature", "properties": { "code": "old-001", "valid_to": "2024-01-01" }, "geometry": { "type": "Polygon", "coordinates": sq(111.0) } },
        { "type": "Feature", "properties": { "code": "new-001", "valid_from": "2024-01-01" }, "geometry": { "type": "Polygon", "coordinates": sq(111.0) } },
    ]});
    std::fs::write(d.join("g.geojson"), layer.to_string()).unwrap();
    std::fs::write(d.join("p.csv"), "id,lon,lat,at\n1,111.005,30.005,2023-06-01 10:00:00\n2,111.005,30.005,2024-03-01T08:00:00+08:00\n").unwrap();
    wangge_ok(&[
        "locate",
        "--grids",
        s(&d.join("g.geojson")),
        "--points",
        s(&d.join("p.csv")),
        "--time-field",
        "at",
        "--out",
        s(&d.join("o.csv")),
    ]);
    let rows = read_csv(&d.join("o.csv"));
    assert_eq!(rows[0]["grid"], "old-001");
    assert_eq!(rows[1]["grid"], "new-001");
}

#[test]
fn bad_rows_are_reported_not_dropped_and_strict_makes_them_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = manhattan();
    std::fs::write(
        d.join("p.csv"),
        "id,lon,lat,at\n1,-73.99,40.75,2022-05-01\n2,,40.75,2022-05-01\n3,abc,40.75,2022-05-01\n4,-273.99,40.75,2022-05-01\n5,-73.99,40.75,someday\n",
    )
    .unwrap();
    let grids = m.join("communities.geojson");
    let out = d.join("o.csv");
    let o = wangge(&[
        "locate",
        "--grids",
        s(&grids),
        "--points",
        s(&d.join("p.csv")),
        "--time-field",
        "at",
        "--out",
        s(&out),
        "--json",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bad_rows"], 4);
    let bad: Vec<u64> = v["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[0].as_u64().unwrap())
        .collect();
    assert_eq!(
        bad,
        vec![3, 4, 5, 6],
        "row numbers count the header as row 1"
    );
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["grid"], "105");
    assert!(rows[1]["locate_note"].contains("`lon` is empty"));
    assert!(rows[2]["locate_note"].contains("expected a number"));
    assert!(rows[3]["locate_note"].contains("out of range"));
    assert!(rows[4]["locate_note"].contains("`at`"));
    let strict_out = d.join("strict.csv");
    let o = wangge(&[
        "locate",
        "--grids",
        s(&grids),
        "--points",
        s(&d.join("p.csv")),
        "--time-field",
        "at",
        "--out",
        s(&strict_out),
        "--strict",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("row 3"));
    assert!(!strict_out.exists());
}

#[test]
fn gcj02_points_from_map_apps_land_in_the_right_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d, 4, 2);
    let grids = d.join("grids.geojson");
    let asg = d.join("a.csv");
    wangge_ok(&[
        "regrid",
        "--communities",
        s(&d.join("communities.geojson")),
        "--buildings",
        s(&d.join("buildings.geojson")),
        "--out",
        s(&grids),
        "--assignments",
        s(&asg),
    ]);
    // one point per building: the middle of its first two corners' diagonal
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("buildings.geojson")).unwrap()).unwrap();
    let mut csv = String::from("building,lon,lat\n");
    let n = b["features"].as_array().unwrap().len().min(300);
    assert!(n > 100);
    for f in b["features"].as_array().unwrap().iter().take(n) {
        let r = &f["geometry"]["coordinates"][0];
        let (x, y) = (
            (r[0][0].as_f64().unwrap() + r[2][0].as_f64().unwrap()) / 2.0,
            (r[0][1].as_f64().unwrap() + r[2][1].as_f64().unwrap()) / 2.0,
        );
        csv.push_str(&format!(
            "{},{x},{y}\n",
            f["properties"]["id"].as_str().unwrap()
        ));
    }
    std::fs::write(d.join("p.csv"), csv).unwrap();
    wangge_ok(&[
        "convert",
        "--from",
        "wgs84",
        "--to",
        "gcj02",
        s(&d.join("p.csv")),
        s(&d.join("p_gcj.csv")),
    ]);
    let out = d.join("o.csv");
    wangge_ok(&[
        "locate",
        "--grids",
        s(&grids),
        "--points",
        s(&d.join("p_gcj.csv")),
        "--crs",
        "gcj02",
        "--out",
        s(&out),
    ]);
    let want: std::collections::HashMap<String, String> = read_csv(&asg)
        .into_iter()
        .map(|r| (r["building_id"].clone(), r["grid_code"].clone()))
        .collect();
    let rows = read_csv(&out);
    assert_eq!(rows.len(), n);
    for r in rows {
        assert_eq!(r["grid"], want[&r["building"]], "{r:?}");
        assert!(!r["community"].is_empty());
    }
}
