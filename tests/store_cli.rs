//! The store from the command line: import, regrid into a draft plan, publish, diff, export —
//! on the embedded GeoPackage (read back by GDAL's ogrinfo) and on PostGIS; bad input; and a
//! crash test (kill -9 during acknowledged inserts).
#![expect(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, one step after another"
)]

mod common;

use common::{check, sample, wangge, wangge_ok};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// ogrinfo -al -so: layer name → feature count.
fn ogr_layers(file: &Path) -> std::collections::BTreeMap<String, u64> {
    let o = Command::new("ogrinfo")
        .args(["-al", "-so", "-ro"])
        .arg(file)
        .output()
        .expect("ogrinfo (gdal-bin) is installed by scripts/setup");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "ogrinfo failed: {text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut m = std::collections::BTreeMap::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Layer name: ") {
            name = n.trim().to_string();
        }
        if let Some(c) = line.strip_prefix("Feature Count: ") {
            m.insert(name.clone(), c.trim().parse().unwrap());
        }
    }
    m
}

fn flow(db: &str, dir: &Path, gpkg_file: Option<&Path>) {
    let city = dir.join("city");
    sample(&city, 5, 4);
    let (c, b, r) = (
        city.join("communities.geojson"),
        city.join("buildings.geojson"),
        city.join("roads.geojson"),
    );
    let out = wangge_ok(&[
        "import",
        "--communities",
        s(&c),
        "--buildings",
        s(&b),
        "--roads",
        s(&r),
        "--database",
        db,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let nb = j["buildings"]["inserted"].as_u64().unwrap();
    assert!(nb > 500, "{j}");
    assert_eq!(j["communities"]["inserted"], 4);
    // re-import updates, never duplicates
    let out = wangge_ok(&[
        "import",
        "--communities",
        s(&c),
        "--buildings",
        s(&b),
        "--database",
        db,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["buildings"]["inserted"], 0);
    assert_eq!(j["buildings"]["updated"].as_u64().unwrap(), nb);
    // regrid from the store → draft plan 1 (and a GeoJSON copy)
    let g1 = dir.join("g1.geojson");
    let out = wangge_ok(&["regrid", "--database", db, "--out", s(&g1), "--json"]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["plan"], 1);
    let (ok, figures, text) = check(&c, &b, Some(&r), &g1, 90.0);
    assert!(ok, "checker on the stored plan:\n{text}");
    assert_eq!(
        figures["unassigned_buildings"].as_u64().unwrap_or(0),
        0,
        "{figures}"
    );
    // publishing is refused while a grid out of band has no reason (the exception register),
    // naming each such grid; with a reason per grid it goes through and the register keeps them
    let shown: serde_json::Value =
        serde_json::from_str(wangge_ok(&["plans", "show", "1", "--database", db, "--json"]).trim())
            .unwrap();
    let mut out_of_band: Vec<String> = shown["grids"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["band"] == "under" || g["band"] == "over")
        .map(|g| g["code"].as_str().unwrap().to_string())
        .collect();
    out_of_band.sort();
    assert!(
        !out_of_band.is_empty(),
        "the sample plan has a grid out of band"
    );
    let o = wangge(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-03-01",
        "--database",
        db,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("without a reason"), "{err}");
    for code in &out_of_band {
        assert!(err.contains(code.as_str()), "{code} named: {err}");
    }
    let o = wangge(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-03-01",
        "--exception",
        "999-999=x",
        "--database",
        db,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("999-999, which is not out of band"),
        "{o:?}"
    );
    let mut args: Vec<String> = [
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-03-01",
        "--database",
        db,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for code in &out_of_band {
        args.push("--exception".into());
        args.push(format!("{code}=临街商铺与学校为主，户数少"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wangge_ok(&refs);
    assert!(text.contains("exception register"), "{text}");
    let out = wangge_ok(&["plans", "exceptions", "1", "--database", db, "--json"]);
    let register: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    let named: Vec<&str> = register
        .iter()
        .filter(|e| e["band"] != "oversize")
        .map(|e| e["grid"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        out_of_band.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        register
            .iter()
            .all(|e| e["reason"].as_str().is_some_and(|r| !r.is_empty()) && e["who"] == "cli"),
        "{out}"
    );
    let out = wangge_ok(&["plans", "list", "--database", db, "--json"]);
    let plans: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(plans[0]["status"], "published");
    // publishing twice is refused, with the reason
    let o = wangge(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-04-01",
        "--database",
        db,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only a draft"),
        "{o:?}"
    );
    // a tower: one building's households up, re-import, regrid one community → plan 2; diff
    let mut fc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    let f0 = &mut fc["features"][0];
    f0["properties"]["households"] = serde_json::json!(380);
    let tower = f0["properties"]["id"].as_str().unwrap().to_string();
    let b2 = dir.join("b2.geojson");
    std::fs::write(&b2, fc.to_string()).unwrap();
    wangge_ok(&["import", "--buildings", s(&b2), "--database", db]);
    let comm = {
        let cs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&c).unwrap()).unwrap();
        cs["features"][0]["properties"]["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let out = wangge_ok(&["regrid", "--database", db, "--community", &comm, "--json"]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["plan"], 2);
    let out = wangge_ok(&["plans", "diff", "1", "2", "--database", db, "--json"]);
    let d: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let moved = d["moved"].as_array().unwrap();
    assert!(!moved.is_empty(), "the tower changes the partition: {d}");
    for m in moved {
        assert_ne!(m[1], m[2]);
    }
    let _ = tower;
    let out = wangge_ok(&["plans", "show", "2", "--database", db, "--json"]);
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(p["plan"]["status"], "draft");
    assert_eq!(p["plan"]["communities"], serde_json::json!([comm]));
    // export the grids in force as GeoJSON and GeoPackage; the checker reads the GeoJSON
    let eg = dir.join("export.geojson");
    wangge_ok(&[
        "export",
        "--layer",
        "grids",
        "--out",
        s(&eg),
        "--database",
        db,
    ]);
    let (ok, _, text) = check(&c, &b, Some(&r), &eg, 90.0);
    assert!(ok, "checker on the exported grids:\n{text}");
    let gp = dir.join("export.gpkg");
    wangge_ok(&[
        "export",
        "--layer",
        "grids",
        "--plan",
        "2",
        "--format",
        "gpkg",
        "--out",
        s(&gp),
        "--database",
        db,
    ]);
    let layers = ogr_layers(&gp);
    assert_eq!(
        layers.get("grids").copied(),
        Some(p["grids"].as_array().unwrap().len() as u64)
    );
    // worker contact (on a grid of the plan: a grid that does not exist is refused)
    let bad = wangge(&["worker", "set", "X1", "--name", "李娜", "--database", db]);
    assert!(
        !bad.status.success(),
        "a worker on a grid that does not exist"
    );
    let grid_code = p["grids"][0]["code"].as_str().unwrap().to_string();
    wangge_ok(&[
        "worker",
        "set",
        &grid_code,
        "--name",
        "李娜",
        "--phone",
        "010-1",
        "--database",
        db,
    ]);
    if let Some(f) = gpkg_file {
        let layers = ogr_layers(f);
        for l in [
            "communities",
            "buildings",
            "grids",
            "incidents",
            "streets",
            "roads",
            "plans",
        ] {
            assert!(layers.contains_key(l), "layer {l} missing: {layers:?}");
        }
        assert_eq!(layers["communities"], 4);
        assert_eq!(layers["buildings"], nb);
        let n1 = plans[0]["grids"].as_u64().unwrap();
        assert_eq!(
            layers["grids"],
            n1 + p["grids"].as_array().unwrap().len() as u64
        );
        assert_eq!(layers["plans"], 2);
        assert_eq!(layers["grid_workers"], 1);
    }
}

#[test]
fn gpkg_flow_and_gdal_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("store/w.gpkg");
    flow(s(&f), dir.path(), Some(&f));
}

#[test]
fn postgis_flow() {
    let dir = tempfile::tempdir().unwrap();
    flow(&common::fresh_pg(), dir.path(), None);
}

#[test]
fn store_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg");
    // an empty store cannot be regridded
    let o = wangge(&["regrid", "--database", s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds no communities"),
        "{o:?}"
    );
    // a bad building file: named, and nothing written
    let city = dir.path().join("city");
    sample(&city, 2, 2);
    wangge_ok(&[
        "import",
        "--communities",
        s(&city.join("communities.geojson")),
        "--database",
        s(&db),
    ]);
    let before = std::fs::read(&db).unwrap();
    let bad = dir.path().join("bad.geojson");
    std::fs::write(&bad, r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"x","households":"many"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}"#).unwrap();
    let o = wangge(&["import", "--buildings", s(&bad), "--database", s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.geojson") && err.contains("households"),
        "{err}"
    );
    let out = wangge_ok(&[
        "export",
        "--layer",
        "buildings",
        "--out",
        s(&dir.path().join("b.geojson")),
        "--database",
        s(&db),
    ]);
    let _ = out;
    let fc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b.geojson")).unwrap())
            .unwrap();
    assert_eq!(
        fc["features"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );
    let _ = before;
    // unknown plan, bad date, unknown layer
    let o = wangge(&[
        "plans",
        "publish",
        "7",
        "--valid-from",
        "2025-01-01",
        "--database",
        s(&db),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plan \"7\" not found"),
        "{o:?}"
    );
    let o = wangge(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "tomorrow",
        "--database",
        s(&db),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--valid-from"),
        "{o:?}"
    );
    let o = wangge(&[
        "export",
        "--layer",
        "parcels",
        "--out",
        "x",
        "--database",
        s(&db),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown layer"),
        "{o:?}"
    );
    // a file that is not a GeoPackage is refused and left alone
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let o = wangge(&["plans", "list", "--database", s(&txt)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a GeoPackage"),
        "{o:?}"
    );
    assert_eq!(std::fs::read_to_string(&txt).unwrap(), "hello");
    // an unreachable server
    let o = wangge(&[
        "plans",
        "list",
        "--database",
        "postgres://wangge@127.0.0.1:9/none",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach"),
        "{o:?}"
    );
    // file inputs and the store do not mix
    let o = wangge(&["regrid", "--database", s(&db), "--buildings", s(&bad)]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--communities"),
        "{o:?}"
    );
}

/// kill -9 during acknowledged inserts: every acknowledged id is in the reopened file, and
/// SQLite's integrity check passes.
#[test]
fn gpkg_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.gpkg");
    // create the store first so the child spends its time inserting
    wangge_ok(&["plans", "list", "--database", s(&db)]);
    for round in 0..3u64 {
        let mut child = Command::new(common::bin())
            .args([
                "store-load",
                "--database",
                s(&db),
                "--count",
                "10000000",
                "--concurrency",
                "8",
                "--print-acks",
            ])
            .arg("--prefix")
            .arg(format!("R{round}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // a pseudo-random moment between 0.3 and 1.5 s after the first acknowledgement
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("no acknowledgement");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        std::thread::sleep(std::time::Duration::from_millis(
            300 + (nanos + round * 397) % 1200,
        ));
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        reader.join().unwrap();
        let mut acked = vec![first];
        acked.extend(rx.try_iter());
        let ids: Vec<String> = acked
            .iter()
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_string))
            .collect();
        assert!(
            ids.len() > 50,
            "round {round}: only {} acknowledgements",
            ids.len()
        );
        let c = rusqlite::Connection::open(&db).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let mut st = c
            .prepare("SELECT 1 FROM incidents WHERE incident_id = ?1")
            .unwrap();
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !st.exists([id.as_str()]).unwrap())
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged ids lost, e.g. {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
        let rtree: i64 = c
            .query_row("SELECT count(*) FROM rtree_incidents_geom", [], |r| {
                r.get(0)
            })
            .unwrap();
        let rows: i64 = c
            .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rtree, rows, "spatial index matches the table");
        eprintln!("round {round}: {} acknowledged, {rows} rows", ids.len());
    }
}
