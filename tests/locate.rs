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

/// A CSV of `n` points in and around Midtown (some outside the districts, in the rivers and
/// New Jersey) with quoted fields, GBK bytes, short rows and blank lines, the same points as
/// GeoJSON features (without the bad row), and the bad row's number.
fn big_csv(n: u32) -> (Vec<u8>, Vec<serde_json::Value>, Vec<u32>) {
    let mut csv: Vec<u8> = b"\xEF\xBB\xBFid,lon,lat,desc\n".to_vec();
    let mut feats = Vec::new();
    let mut expected_bad = Vec::new();
    for i in 0..n {
        let lon = -74.06 + f64::from(i % 389) * 0.0003;
        let lat = 40.70 + f64::from((i * 7919) % 521) * 0.0002;
        let row = i + 2; // the header is row 1
        let line: Vec<u8> = match i % 1000 {
            // a quoted description with a comma, a quote and a line break
            7 => format!("{i},{lon:.6},{lat:.6},\"said \"\"hi\"\", then\nleft\"\n").into_bytes(),
            // GBK bytes (道路) in the description: not UTF-8, kept as they are
            8 => [
                format!("{i},{lon:.6},{lat:.6},").into_bytes(),
                vec![0xB5, 0xC0, 0xC2, 0xB7, b'\n'],
            ]
            .concat(),
            // a short row: no description
            9 => format!("{i},{lon:.6},{lat:.6}\n").into_bytes(),
            // a blank line before the row
            10 => format!("\n{i},{lon:.6},{lat:.6},plain\n").into_bytes(),
            _ if i == 90_001 => {
                expected_bad.push(row);
                format!("{i},east,{lat:.6},bad\n").into_bytes()
            }
            _ => format!("{i},{lon:.6},{lat:.6},r{i}\n").into_bytes(),
        };
        csv.extend_from_slice(&line);
        if i != 90_001 {
            feats.push(serde_json::json!({"type": "Feature", "properties": {"id": i},
                "geometry": {"type": "Point", "coordinates": [(lon * 1e6).round() / 1e6, (lat * 1e6).round() / 1e6]}}));
        }
    }
    (csv, feats, expected_bad)
}

/// The output rows of the big CSV: its fields as read, in order, the grids and notes of the
/// GeoJSON run.
fn check_rows(d: &Path, csv: &[u8], n: u32) {
    let out = std::fs::read(d.join("o.csv")).unwrap();
    assert!(out.starts_with(b"\xEF\xBB\xBFid,lon,lat,desc,grid,community,locate_note\n"));
    let mut rd = csv::ReaderBuilder::new().from_reader(&out[3..]);
    let mut inp = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&csv[3..]);
    let located: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("o.geojson")).unwrap()).unwrap();
    let mut by_id = std::collections::HashMap::new();
    for f in located["features"].as_array().unwrap() {
        by_id.insert(
            f["properties"]["id"].as_u64().unwrap(),
            f["properties"].clone(),
        );
    }
    let (mut rows, mut gbk) = (0, 0);
    for (r, i) in rd.byte_records().zip(inp.byte_records()) {
        let (r, i) = (r.unwrap(), i.unwrap());
        assert_eq!(r.len(), 7, "every row as wide as the header");
        for k in 0..4 {
            assert_eq!(
                r.get(k),
                Some(i.get(k).unwrap_or_default()),
                "row {}",
                rows + 2
            );
        }
        if i.get(3) == Some(&[0xB5, 0xC0, 0xC2, 0xB7][..]) {
            gbk += 1;
        }
        let id: u64 = std::str::from_utf8(&r[0]).unwrap().parse().unwrap();
        assert_eq!(id, rows as u64, "input order");
        if let Some(p) = by_id.get(&id) {
            assert_eq!(
                &r[4],
                p["grid"].as_str().unwrap().as_bytes(),
                "row {}",
                rows + 2
            );
            assert_eq!(
                &r[6],
                p["locate_note"].as_str().unwrap().as_bytes(),
                "row {}",
                rows + 2
            );
        } else {
            assert!(
                std::str::from_utf8(&r[6])
                    .unwrap()
                    .starts_with("error: field `lon`")
            );
        }
        rows += 1;
    }
    assert_eq!(rows, n as usize);
    assert_eq!(gbk, 120);
}

/// A CSV of several megabytes goes through the parallel chunked path: every row comes back in
/// input order with its fields as read (quoted fields, blank lines, short rows, GBK bytes in a
/// field, a byte-order mark), the grids are those of the sequential GeoJSON path for the same
/// points, and bad rows far past the first chunk carry their true row numbers.
#[test]
fn a_large_csv_is_located_in_chunks_in_order_with_its_bytes_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grids = manhattan().join("nyc_community_districts.geojson");
    let n = 120_000u32;
    let (csv, feats, expected_bad) = big_csv(n);
    assert!(csv.len() > 3 << 20, "several chunks: {} bytes", csv.len());
    std::fs::write(d.join("p.csv"), &csv).unwrap();
    std::fs::write(
        d.join("p.geojson"),
        serde_json::to_vec(&serde_json::json!({"type": "FeatureCollection", "features": feats}))
            .unwrap(),
    )
    .unwrap();
    let run = |points: &str, out: &str| -> serde_json::Value {
        let o = wangge(&[
            "locate",
            "--grids",
            s(&grids),
            "--points",
            s(&d.join(points)),
            "--out",
            s(&d.join(out)),
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = run("p.csv", "o.csv");
    assert_eq!(v["points"], n);
    assert_eq!(v["bad_rows"], 1);
    assert_eq!(v["bad"][0][0].as_u64().unwrap(), u64::from(expected_bad[0]));
    let g = run("p.geojson", "o.geojson");
    assert_eq!(g["inside"], v["inside"]);
    assert_eq!(g["outside"], v["outside"]);

    check_rows(d, &csv, n);

    // --strict names the same row, and nothing is written
    let o = wangge(&[
        "locate",
        "--grids",
        s(&grids),
        "--points",
        s(&d.join("p.csv")),
        "--out",
        s(&d.join("strict.csv")),
        "--strict",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("row {}", expected_bad[0])),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!d.join("strict.csv").exists());
}

/// A row wider than the header is a bad row, kept with its extra fields in the note.
#[test]
fn a_row_wider_than_its_header_is_a_bad_row_not_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.csv"),
        "id,lon,lat\n1,-73.99,40.75\n2,-73.99,40.75,x,y\n3,-73.98,40.76\n",
    )
    .unwrap();
    let grids = manhattan().join("nyc_community_districts.geojson");
    let sum = wangge_ok(&[
        "locate",
        "--grids",
        s(&grids),
        "--points",
        s(&d.join("p.csv")),
        "--out",
        s(&d.join("o.csv")),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(sum.trim()).unwrap();
    assert_eq!(v["bad_rows"], 1);
    assert_eq!(v["bad"][0][0], 3);
    let rows = read_csv(&d.join("o.csv"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["id"], "2");
    assert!(
        rows[1]["locate_note"].contains("5 fields where the header has 3"),
        "{}",
        rows[1]["locate_note"]
    );
    assert!(rows[1]["locate_note"].contains("x,y"));
    assert!(!rows[2]["grid"].is_empty());
}
