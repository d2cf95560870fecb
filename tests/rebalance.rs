//! Rebalance (动态调整) and locks: grids in band stay exactly as they are; changes stay local.

mod common;
use common::*;
use geo::{Contains, Distance, Euclidean, Point, Polygon};
use serde_json::{Value, json};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn poly(v: &Value) -> Polygon {
    let ring = |r: &Value| {
        geo::LineString::from(
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()))
                .collect::<Vec<_>>(),
        )
    };
    let rings = v["coordinates"].as_array().unwrap();
    Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
}

/// A base plan in which every grid of the chosen community is in band.
fn base(d: &Path) -> (Value, String) {
    sample(d, 18, 4);
    wangge_ok(&[
        "regrid",
        "--communities",
        s(&d.join("communities.geojson")),
        "--buildings",
        s(&d.join("buildings.geojson")),
        "--roads",
        s(&d.join("roads.geojson")),
        "--out",
        s(&d.join("g0.geojson")),
        "--assignments",
        s(&d.join("a0.csv")),
    ]);
    let g = read(&d.join("g0.geojson"));
    let mut by: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for f in g["features"].as_array().unwrap() {
        by.entry(f["properties"]["community"].as_str().unwrap().into())
            .or_default()
            .push(f["properties"]["households"].as_u64().unwrap());
    }
    let comm = by
        .iter()
        .filter(|(_, hh)| hh.iter().all(|h| (200..=400).contains(h)))
        .max_by_key(|(_, hh)| hh.len())
        .map(|(c, _)| c.clone())
        .expect("a community wholly in band");
    (g, comm)
}

fn rebalance(d: &Path, buildings: &str) -> Value {
    wangge_ok(&[
        "rebalance",
        "--grids",
        s(&d.join("g0.geojson")),
        "--previous-assignments",
        s(&d.join("a0.csv")),
        "--communities",
        s(&d.join("communities.geojson")),
        "--buildings",
        s(&d.join(buildings)),
        "--roads",
        s(&d.join("roads.geojson")),
        "--out",
        s(&d.join("g1.geojson")),
        "--report",
        s(&d.join("r1.json")),
    ]);
    let (ok, _, text) = check(
        &d.join("communities.geojson"),
        &d.join(buildings),
        Some(&d.join("roads.geojson")),
        &d.join("g1.geojson"),
        90.0,
    );
    assert!(ok, "checker: {text}");
    let r = read(&d.join("r1.json"));
    // every community was redrawn where it had to be (no fallback to keeping it whole)
    assert_eq!(
        r["changes"]["kept_communities"],
        json!([]),
        "{}",
        r["changes"]
    );
    r
}

/// The geometry of the grid with `code` in a grid layer.
fn geom(g: &Value, code: &str) -> Option<Value> {
    g["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["code"] == code)
        .map(|f| f["geometry"].clone())
}

fn kept_exactly(d: &Path, r: &Value) {
    let g0 = read(&d.join("g0.geojson"));
    let g1 = read(&d.join("g1.geojson"));
    for code in r["changes"]["kept_grids"].as_array().unwrap() {
        let c = code.as_str().unwrap();
        assert_eq!(
            geom(&g0, c),
            geom(&g1, c),
            "kept grid {c} changed its boundary"
        );
    }
}

#[test]
fn a_new_tower_changes_at_most_three_grids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (g, comm) = base(d);
    let mut b = read(&d.join("buildings.geojson"));
    let fps: Vec<Polygon> = b["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| poly(&f["geometry"]))
        .collect();
    // the emptiest spot of the community's grids
    let mut best = (0.0, Point::new(0.0, 0.0));
    for f in g["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["community"] == comm.as_str())
    {
        let p = poly(&f["geometry"]);
        let r = geo::BoundingRect::bounding_rect(&p).unwrap();
        for i in 0..24 {
            for j in 0..24 {
                let q = Point::new(
                    r.min().x + r.width() * (f64::from(i) + 0.5) / 24.0,
                    r.min().y + r.height() * (f64::from(j) + 0.5) / 24.0,
                );
                if !p.contains(&q) {
                    continue;
                }
                let clear = fps
                    .iter()
                    .map(|fp| Euclidean.distance(&q, fp))
                    .fold(f64::INFINITY, f64::min)
                    .min(Euclidean.distance(&q, p.exterior()));
                if clear > best.0 {
                    best = (clear, q);
                }
            }
        }
    }
    assert!(best.0 > 0.00012, "room for a tower: {}", best.0);
    let (x, y) = (best.1.x(), best.1.y());
    let t = 0.00006;
    b["features"].as_array_mut().unwrap().push(json!({ "type": "Feature", "properties": { "id": "TOWER", "building": "apartments", "households": 500 },
        "geometry": { "type": "Polygon", "coordinates": [[[x - t, y - t], [x + t, y - t], [x + t, y + t], [x - t, y + t], [x - t, y - t]]] } }));
    std::fs::write(d.join("b1.geojson"), b.to_string()).unwrap();
    let r = rebalance(d, "b1.geojson");
    let c = &r["changes"];
    let changed = c["redrawn_grids"].as_array().unwrap().len()
        + c["new_grids"].as_array().unwrap().len()
        + c["retired_grids"].as_array().unwrap().len();
    assert!(changed <= 3, "grids changed: {c}");
    let (hh, moved) = (
        c["per_community"][&comm][0].as_f64().unwrap(),
        c["per_community"][&comm][1].as_f64().unwrap(),
    );
    assert!(moved < 0.10 * hh, "moved {moved} of {hh}");
    kept_exactly(d, &r);
}

#[test]
fn a_demolished_block_and_corrected_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (g, comm) = base(d);
    let b = read(&d.join("buildings.geojson"));
    // corrected counts: one building a little different, its grid still in band → nothing moves
    let mut b2 = b.clone();
    let f0 = &mut b2["features"][0]["properties"]["households"];
    *f0 = json!(f0.as_u64().unwrap() + 1);
    std::fs::write(d.join("b2.geojson"), b2.to_string()).unwrap();
    let r = rebalance(d, "b2.geojson");
    let grid_of_first = r["changes"]["redrawn_grids"].as_array().unwrap().len()
        + r["changes"]["new_grids"].as_array().unwrap().len();
    if grid_of_first == 0 {
        assert_eq!(r["changes"]["moved_households"], 0);
    }
    kept_exactly(d, &r);
    // demolished: every building of one grid of the community removed
    let victim = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["community"] == comm.as_str())
        .unwrap();
    let vp = poly(&victim["geometry"]);
    let mut b3 = b.clone();
    b3["features"].as_array_mut().unwrap().retain(|f| {
        let p = poly(&f["geometry"]);
        let c = geo::Centroid::centroid(&p).unwrap();
        !vp.contains(&c)
    });
    std::fs::write(d.join("b3.geojson"), b3.to_string()).unwrap();
    let r = rebalance(d, "b3.geojson");
    let c = &r["changes"];
    assert!(
        c["retired_grids"].as_array().unwrap().len() + c["redrawn_grids"].as_array().unwrap().len()
            >= 1,
        "{c}"
    );
    let kept = c["kept_grids"].as_array().unwrap().len();
    let total = g["features"].as_array().unwrap().len();
    assert!(
        kept + 8 >= total,
        "only the demolished grid's neighbourhood moves: kept {kept} of {total}"
    );
    kept_exactly(d, &r);
}

#[test]
fn locked_grids_are_kept_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (g, comm) = base(d);
    let codes: Vec<String> = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["community"] == comm.as_str())
        .take(2)
        .map(|f| f["properties"]["code"].as_str().unwrap().to_string())
        .collect();
    std::fs::write(d.join("lock.txt"), codes.join("\n")).unwrap();
    let out = d.join("g2.geojson");
    wangge_ok(&[
        "regrid",
        "--communities",
        s(&d.join("communities.geojson")),
        "--buildings",
        s(&d.join("buildings.geojson")),
        "--roads",
        s(&d.join("roads.geojson")),
        "--seed",
        "9",
        "--grids",
        s(&d.join("g0.geojson")),
        "--lock",
        s(&d.join("lock.txt")),
        "--out",
        s(&out),
    ]);
    let (ok, _, text) = check(
        &d.join("communities.geojson"),
        &d.join("buildings.geojson"),
        Some(&d.join("roads.geojson")),
        &out,
        90.0,
    );
    assert!(ok, "checker: {text}");
    let g2 = read(&out);
    for code in &codes {
        let a = g["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["properties"]["code"] == code.as_str())
            .unwrap();
        let b = g2["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["properties"]["code"] == code.as_str())
            .expect("locked code kept");
        assert_eq!(a["geometry"], b["geometry"]);
        assert_eq!(a["properties"]["households"], b["properties"]["households"]);
    }
    // a lock naming an unknown grid is a named error
    std::fs::write(d.join("bad.txt"), "nope-001\n").unwrap();
    let o = wangge(&[
        "regrid",
        "--communities",
        s(&d.join("communities.geojson")),
        "--buildings",
        s(&d.join("buildings.geojson")),
        "--grids",
        s(&d.join("g0.geojson")),
        "--lock",
        s(&d.join("bad.txt")),
        "--out",
        s(&d.join("x.geojson")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"));
}

/// The Manhattan layers, and the plan of a plain regrid of them in `d` (g0.geojson, a0.csv).
fn manhattan_base(d: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let m = manhattan();
    regrid_in(
        &m,
        &[
            "--out",
            s(&d.join("g0.geojson")),
            "--assignments",
            s(&d.join("a0.csv")),
        ],
    );
    (
        m.join("communities.geojson"),
        m.join("buildings.geojson"),
        m.join("roads.geojson"),
    )
}

/// Real data: grids of the Manhattan plan, spread over the four districts, locked; the rest is
/// partitioned again around them: 10 locks (every 60th grid), 24 (every 25th: a locked grid's
/// ring passes within centimetres of footprints and roads of the free land around it), 59 (every
/// 10th: kept points and points computed in metres fold by a millimetre once in degrees), 117
/// (every 5th: land enclosed by locked grids) and 45 (every 13th: a 10 cm spike at a kept corner).
/// The checker passes (at least 97.5 % in band: since input rings are oriented on reading, the
/// five cases give 99.07, 98.14, 97.96, 98.34 and 98.52 %) and the locked grids are
/// byte-identical.
#[test]
fn locks_on_manhattan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (comms, blds, roads) = manhattan_base(d);
    let g0 = read(&d.join("g0.geojson"));
    let all: Vec<String> = g0["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["code"].as_str().unwrap().to_string())
        .collect();
    for (skip, step, n) in [
        (5, 60, 10),
        (0, 25, 24),
        (1, 10, 59),
        (1, 5, 117),
        (5, 13, 45),
    ] {
        let codes: Vec<String> = all.iter().skip(skip).step_by(step).cloned().collect();
        assert_eq!(codes.len(), n);
        std::fs::write(d.join("lock.txt"), codes.join("\n")).unwrap();
        regrid_in(
            &manhattan(),
            &[
                "--grids",
                s(&d.join("g0.geojson")),
                "--lock",
                s(&d.join("lock.txt")),
                "--out",
                s(&d.join("g1.geojson")),
            ],
        );
        let (ok, fig, text) = check(&comms, &blds, Some(&roads), &d.join("g1.geojson"), 97.5);
        assert!(ok, "{n} locks, checker: {text}");
        assert_eq!(fig["split_buildings"], 0, "{n} locks");
        let g1 = read(&d.join("g1.geojson"));
        for c in &codes {
            assert!(geom(&g0, c).is_some());
            assert_eq!(geom(&g0, c), geom(&g1, c), "locked grid {c} changed");
        }
    }
}

/// Real data: the Manhattan plan, then 500 more households in one building, one district at a
/// time (8th Avenue's OSM w264668298, 97 → 597, and the median building with households of each
/// district's grids). Every time the plan stays valid by the checker, the kept grids keep their
/// boundaries, the building's grid is redrawn, at most 3 grids of its community change and at
/// most 600 households move (the goal of 动态调整 without churn).
#[test]
fn a_tower_in_manhattan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (comms, blds, roads) = manhattan_base(d);
    let a0 = std::fs::read_to_string(d.join("a0.csv")).unwrap();
    for tower in [
        "w264668298",
        "w250490491",
        "w264628414",
        "w265042557",
        "w264761880",
    ] {
        tower_in(d, (&comms, &blds, &roads), &a0, tower);
    }
}

fn tower_in(d: &Path, (comms, blds, roads): (&Path, &Path, &Path), a0: &str, tower: &str) {
    let old_grid = a0
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tower},")))
        .expect("the building is in the plan")
        .to_string();
    let comm = old_grid.split('-').next().unwrap().to_string();
    raise_households(blds, tower, 500, &d.join("b1.geojson"));
    wangge_ok(&[
        "rebalance",
        "--grids",
        s(&d.join("g0.geojson")),
        "--previous-assignments",
        s(&d.join("a0.csv")),
        "--communities",
        s(comms),
        "--buildings",
        s(&d.join("b1.geojson")),
        "--roads",
        s(roads),
        "--out",
        s(&d.join("g1.geojson")),
        "--report",
        s(&d.join("r1.json")),
    ]);
    let (ok, fig, text) = check(
        comms,
        &d.join("b1.geojson"),
        Some(roads),
        &d.join("g1.geojson"),
        98.0,
    );
    assert!(ok, "{tower}: checker: {text}");
    assert_eq!(fig["split_buildings"], 0);
    let r = read(&d.join("r1.json"));
    let c = &r["changes"];
    kept_exactly(d, &r);
    // the building's own community was redrawn, not kept whole
    let kept_whole = c["kept_communities"].as_array().unwrap();
    assert!(
        kept_whole.iter().all(|k| k[0] != comm.as_str()),
        "community {comm} kept whole: {c}"
    );
    // any community kept whole says why in the report
    for k in kept_whole {
        let code = k[0].as_str().unwrap();
        let notes = r["communities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["code"] == code)
            .map(|x| x["notes"].to_string())
            .unwrap_or_default();
        assert!(
            notes.contains("every grid kept as it was"),
            "{code}: {notes}"
        );
    }
    // the old grid was redrawn, and the change stays small
    let changed: Vec<&str> = ["redrawn_grids", "new_grids", "retired_grids"]
        .iter()
        .flat_map(|k| c[*k].as_array().unwrap().iter())
        .filter_map(|v| v.as_str())
        .filter(|g| g.starts_with(&format!("{comm}-")))
        .collect();
    assert!(changed.contains(&old_grid.as_str()), "{tower}: {changed:?}");
    assert!(
        changed.len() <= 3,
        "{tower}: grids changed in {comm}: {changed:?}"
    );
    let (hh, moved) = (
        c["per_community"][&comm][0].as_f64().unwrap(),
        c["per_community"][&comm][1].as_f64().unwrap(),
    );
    assert!(moved <= 600.0, "{tower}: moved {moved} of {hh}");
}

/// 动态调整 from files with nothing changed: the Manhattan plan rebalanced on its own layers
/// (with and without the previous assignments) is written back byte for byte, 0 grids redrawn,
/// 0 buildings moved.
#[test]
fn unchanged_manhattan_comes_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (c, b, r) = manhattan_base(d);
    let [g0, g1, a0, a1, r1] =
        ["g0.geojson", "g1.geojson", "a0.csv", "a1.csv", "r1.json"].map(|f| d.join(f));
    for prev in [true, false] {
        let mut args = vec![
            "rebalance",
            "--communities",
            s(&c),
            "--buildings",
            s(&b),
            "--roads",
            s(&r),
            "--grids",
            s(&g0),
            "--out",
            s(&g1),
            "--assignments",
            s(&a1),
            "--report",
            s(&r1),
        ];
        if prev {
            args.extend(["--previous-assignments", s(&a0)]);
        }
        wangge_ok(&args);
        assert!(
            std::fs::read(&g0).unwrap() == std::fs::read(&g1).unwrap(),
            "grids differ (previous assignments: {prev})"
        );
        assert!(
            std::fs::read(&a0).unwrap() == std::fs::read(&a1).unwrap(),
            "assignments differ (previous assignments: {prev})"
        );
        let rep = read(&r1);
        let ch = &rep["changes"];
        assert_eq!(ch["moved_buildings"], 0, "{ch}");
        assert_eq!(
            ch["redrawn_grids"].as_array().map(Vec::len),
            Some(0),
            "{ch}"
        );
    }
}
