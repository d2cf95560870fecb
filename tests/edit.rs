//! Editable plans on both stores: edits through the CLI (move, merge, split, lock, resolve, new
//! grid, undo, redo, log, check, handover, copy), each result checked by the independent
//! checker and for validity after projection; refusals named; hand-drawn layers imported with
//! every defect named; random edit sequences with undo back to the same bytes.

mod common;

use common::{check, fresh_pg, load_sample, polygons, valid_everywhere, wangge, wangge_ok};
use geo::{BooleanOps, BoundingRect, Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use wangge::plan::{self, EditRequest, Op};

fn sample_file(n: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(n)
}

fn export(db: &str, plan: i64, out: &Path) -> Value {
    wangge_ok(&[
        "export",
        "--layer",
        "grids",
        "--plan",
        &plan.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--database",
        db,
    ]);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// A grid layer's features by code (the store's row order changes as grids are rewritten).
fn by_code(layer: &Value) -> std::collections::BTreeMap<String, Value> {
    layer["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["properties"]["code"].as_str().unwrap().to_string(),
                f.clone(),
            )
        })
        .collect()
}

fn same_grids(a: &Value, b: &Value, what: &str) {
    let (a, b) = (by_code(a), by_code(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: codes"
    );
    for (k, f) in &a {
        assert!(f == &b[k], "{what}: grid {k} differs");
    }
}

/// A draft copy of the published sample plan 1 (edits apply to drafts only): its id.
fn draft_of_plan_1(db: &str) -> i64 {
    json_of(&wangge_ok(&[
        "plans",
        "copy",
        "1",
        "--json",
        "--database",
        db,
    ]))["plan"]
        .as_i64()
        .unwrap()
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Hard rules by the independent checker (band not held against edits).
fn checker_ok(grids: &Path) -> Value {
    let (ok, fig, text) = check(
        &sample_file("communities.geojson"),
        &sample_file("buildings.geojson"),
        Some(&sample_file("roads.geojson")),
        grids,
        0.0,
    );
    assert!(ok, "checker: {text}");
    fig
}

/// A move that the plan accepts: a building on the edge of its grid, and the neighbouring grid.
async fn a_valid_move(db: &str, id: i64) -> (String, String, String) {
    let store = wangge::store::open(Some(db)).await.unwrap();
    let p = store.plan(id).await.unwrap();
    for c in &p.communities {
        let (l, st) = plan::load(store.as_ref(), None, &p, c).await.unwrap();
        let f = &l.fabric;
        for a in 0..f.n_atoms() {
            let at = f.atom(a).unwrap();
            if at.buildings.len() != 1 {
                continue;
            }
            let g = st.atoms[a];
            for e in f.neighbours(a) {
                let h = st.atoms[e.nbr as usize];
                if h == g || e.len < 5.0 {
                    continue;
                }
                let b = f.buildings[at.buildings[0] as usize].id.clone();
                let to = st.grids[h as usize].code.clone();
                let op = Op::Move {
                    buildings: vec![b.clone()],
                    atoms: vec![],
                    to: to.clone(),
                };
                let req = EditRequest {
                    dry_run: true,
                    ..EditRequest::default()
                };
                if plan::edit(store.as_ref(), None, id, &op, &req)
                    .await
                    .is_ok()
                {
                    return (b, st.grids[g as usize].code.clone(), to);
                }
            }
        }
    }
    panic!("no valid move in plan {id}");
}

/// An atom whose move would cut its grid in two (an articulation of the grid), with a
/// neighbouring grid: (community, atom, to).
async fn a_cutting_move(db: &str, id: i64) -> Option<(String, u32, String)> {
    let store = wangge::store::open(Some(db)).await.unwrap();
    let p = store.plan(id).await.unwrap();
    for c in &p.communities {
        let (l, st) = plan::load(store.as_ref(), None, &p, c).await.unwrap();
        let f = &l.fabric;
        for a in 0..f.n_atoms() {
            let g = st.atoms[a];
            let Some(h) = f
                .neighbours(a)
                .iter()
                .map(|e| st.atoms[e.nbr as usize])
                .find(|&h| h != g)
            else {
                continue;
            };
            let rest: Vec<usize> = (0..f.n_atoms())
                .filter(|&x| x != a && st.atoms[x] == g)
                .collect();
            if rest.len() < 2 {
                continue;
            }
            let mut seen = std::collections::HashSet::from([rest[0]]);
            let mut stack = vec![rest[0]];
            while let Some(x) = stack.pop() {
                for e in f.neighbours(x) {
                    let y = e.nbr as usize;
                    if y != a && e.len > 0.0 && st.atoms[y] == g && seen.insert(y) {
                        stack.push(y);
                    }
                }
            }
            if seen.len() < rest.len() {
                return Some((c.clone(), a as u32, st.grids[h as usize].code.clone()));
            }
        }
    }
    None
}

fn edits_on(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    load_sample(db);
    // plan 1 is published: edits go to a draft copy
    let o = wangge(&["plans", "edit", "1", "--lock", "x", "--database", db]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("only a draft can be edited"));
    let id = draft_of_plan_1(db);
    let id_s = id.to_string();
    let before = export(db, id, &d.join("before.geojson"));
    let rt = tokio::runtime::Runtime::new().unwrap();

    // move one building to its neighbour
    let (b, from, to) = rt.block_on(a_valid_move(db, id));
    let dry = json_of(&wangge_ok(&[
        "plans",
        "edit",
        &id_s,
        "--move",
        &b,
        "--to",
        &to,
        "--dry-run",
        "--json",
        "--database",
        db,
    ]));
    assert_eq!(dry["dry_run"], true);
    let o = json_of(&wangge_ok(&[
        "plans",
        "edit",
        &id_s,
        "--move",
        &b,
        "--to",
        &to,
        "--reason",
        "street door faces east",
        "--json",
        "--database",
        db,
    ]));
    assert_eq!(
        o["changed"], dry["changed"],
        "a dry run answers as the edit"
    );
    assert_eq!(o["moved"][0]["building"], b.as_str());
    assert_eq!(o["moved"][0]["from"], from.as_str());
    assert!(o["changed"]["features"].as_array().unwrap().len() >= 2);
    let after = export(db, id, &d.join("after.geojson"));
    checker_ok(&d.join("after.geojson"));
    valid_everywhere(&after);

    // undo gives back exactly the grids before; redo the ones after
    wangge_ok(&["plans", "undo", &id_s, "--database", db]);
    same_grids(&export(db, id, &d.join("undo.geojson")), &before, "undo");
    wangge_ok(&["plans", "redo", &id_s, "--database", db]);
    same_grids(&export(db, id, &d.join("redo.geojson")), &after, "redo");

    more_edits(db, d, id, (&b, &from, &to));
}

/// Merge, split, lock, resolve, refusals, new grid, log, check and handover on draft `id`.
fn more_edits(db: &str, d: &Path, id: i64, (b, from, to): (&str, &str, &str)) {
    let id_s = id.to_string();
    // merge two neighbours, split the result, lock and refuse, unlock
    let m = json_of(&wangge_ok(&[
        "plans",
        "edit",
        &id_s,
        "--merge",
        &format!("{from},{to}"),
        "--json",
        "--database",
        db,
    ]));
    assert_eq!(m["removed"][0], to);
    let s = json_of(&wangge_ok(&[
        "plans",
        "edit",
        &id_s,
        "--split",
        from,
        "--json",
        "--database",
        db,
    ]));
    let new_code = s["changed"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["code"].as_str().unwrap().to_string())
        .find(|c| c != from)
        .unwrap();
    // a new grid takes the next sequence number and its name follows its code
    let f = s["changed"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["code"] == new_code.as_str())
        .unwrap();
    let n = new_code[new_code.len() - 3..].parse::<usize>().unwrap();
    assert!(
        f["properties"]["name"]
            .as_str()
            .unwrap()
            .ends_with(&format!("第{}网格", wangge::model::chinese_ordinal(n)))
    );
    wangge_ok(&["plans", "edit", &id_s, "--lock", from, "--database", db]);
    let o = wangge(&[
        "plans",
        "edit",
        &id_s,
        "--merge",
        &format!("{from},{new_code}"),
        "--database",
        db,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("grid {from} is locked")));
    wangge_ok(&["plans", "edit", &id_s, "--unlock", from, "--database", db]);
    let r = json_of(&wangge_ok(&[
        "plans",
        "edit",
        &id_s,
        "--resolve",
        &format!("{from},{new_code}"),
        "--json",
        "--database",
        db,
    ]));
    let sm = r["summary"].as_str().unwrap();
    assert!(
        sm.contains("resolved") || sm.contains("already in band"),
        "{r}"
    );

    refusals_log_check(db, d, id, (b, to));
}

/// Refused edits (nothing written), a new grid, the log, the check against the checker, the
/// handover list.
fn refusals_log_check(db: &str, d: &Path, id: i64, (b, to): (&str, &str)) {
    let id_s = id.to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // refused: a move that cuts a grid in two, a grid left empty
    if let Some((_, atom, to2)) = rt.block_on(a_cutting_move(db, id)) {
        let o = wangge(&[
            "plans",
            "edit",
            &id_s,
            "--move-atoms",
            &atom.to_string(),
            "--to",
            &to2,
            "--database",
            db,
        ]);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("would cut grid") && e.contains("pieces"), "{e}");
    }
    let st_before = export(db, id, &d.join("mid.geojson"));
    let o = wangge(&[
        "plans",
        "edit",
        &id_s,
        "--new-grid",
        b,
        "--move",
        b,
        "--to",
        to,
        "--database",
        db,
    ]);
    assert!(!o.status.success(), "two operations at once are refused");
    assert_eq!(
        export(db, id, &d.join("mid2.geojson")),
        st_before,
        "nothing written by a refused edit"
    );

    // new grid from a building, then the log, check and handover
    wangge_ok(&["plans", "edit", &id_s, "--new-grid", b, "--database", db]);
    let log = json_of(&wangge_ok(&[
        "plans",
        "log",
        &id_s,
        "--json",
        "--database",
        db,
    ]));
    let log = log.as_array().unwrap();
    assert!(log.len() >= 7, "{log:?}");
    assert_eq!(log[0]["reason"], "street door faces east");
    let final_layer = export(db, id, &d.join("final.geojson"));
    let fig = checker_ok(&d.join("final.geojson"));
    valid_everywhere(&final_layer);
    let mine = json_of(&wangge_ok(&[
        "plans",
        "check",
        &id_s,
        "--json",
        "--database",
        db,
    ]));
    assert_eq!(mine["ok"], true);
    for k in ["in_band_pct", "polsby_popper_mean", "road_following_pct"] {
        let (a, b) = (mine[k].as_f64().unwrap(), fig[k].as_f64().unwrap());
        assert!((a - b).abs() <= 0.1, "{k}: ours {a}, the checker's {b}");
    }
    wangge_ok(&[
        "plans",
        "handover",
        "1",
        &id_s,
        "--out",
        d.join("h.csv").to_str().unwrap(),
        "--database",
        db,
    ]);
    let csv = std::fs::read_to_string(d.join("h.csv")).unwrap();
    assert!(csv.starts_with("building_id,community,from_grid,to_grid,households"));
    assert!(csv.contains(b));
}

#[test]
fn edits_on_a_geopackage() {
    let dir = tempfile::tempdir().unwrap();
    edits_on(dir.path().join("w.gpkg").to_str().unwrap());
}

#[test]
fn edits_on_postgis() {
    edits_on(&fresh_pg());
}

/// The exported layer as a planner might return it: one grid removed, the west half of a
/// building of the second grid drawn into the first, a grid drawn twice, a code that is not
/// the community's. Returns the layer and the removed grid's code.
fn hand_edited(layer: &Value) -> (Value, String) {
    let mut layer = layer.clone();
    let feats = layer["features"].as_array_mut().unwrap();
    let removed = feats.remove(3);
    let removed_code = removed["properties"]["code"].as_str().unwrap().to_string();
    // grow grid 0 over the west half of a building of another grid: the drawn boundary cuts it
    let g0 = MultiPolygon(polygons(&feats[0]["geometry"]));
    let bl: Value =
        serde_json::from_slice(&std::fs::read(sample_file("buildings.geojson")).unwrap()).unwrap();
    let target = bl["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| MultiPolygon(polygons(&f["geometry"])))
        .find(|b| {
            let r = b.bounding_rect().unwrap();
            let c = Coord {
                x: (r.min().x + r.max().x) / 2.0,
                y: (r.min().y + r.max().y) / 2.0,
            };
            let in_g = |g: &MultiPolygon| wangge::geom::point_in_polygons(&g.0, c);
            !in_g(&g0) && in_g(&MultiPolygon(polygons(&feats[1]["geometry"])))
        })
        .expect("a building in the second grid");
    let r = target.bounding_rect().unwrap();
    let mid = (r.min().x + r.max().x) / 2.0;
    let half = Polygon::new(
        LineString(vec![
            Coord {
                x: r.min().x - 1e-6,
                y: r.min().y - 1e-6,
            },
            Coord {
                x: mid,
                y: r.min().y - 1e-6,
            },
            Coord {
                x: mid,
                y: r.max().y + 1e-6,
            },
            Coord {
                x: r.min().x - 1e-6,
                y: r.max().y + 1e-6,
            },
            Coord {
                x: r.min().x - 1e-6,
                y: r.min().y - 1e-6,
            },
        ]),
        vec![],
    );
    let g1 = MultiPolygon(polygons(&feats[1]["geometry"]));
    let shrunk = g1.difference(&MultiPolygon(vec![half.clone()]));
    let grown = g0.union(&MultiPolygon(vec![half]));
    feats[0]["geometry"] = wangge::io::write::geometry_json(&geo::Geometry::MultiPolygon(grown));
    feats[1]["geometry"] = wangge::io::write::geometry_json(&geo::Geometry::MultiPolygon(shrunk));
    // a grid drawn twice: an overlap
    let mut dup = feats[4].clone();
    dup["properties"]["code"] = json!("dup");
    feats.push(dup);
    feats[2]["properties"]["code"] = json!("not-a-code");
    (layer, removed_code)
}

/// A hand-edited layer: one grid removed (a gap), one grown over its neighbour and half a
/// building (an overlap and a cut building), a code that is not the community's.
fn import_on(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    load_sample(db);
    let (layer, removed_code) = hand_edited(&export(db, 1, &d.join("g.geojson")));
    std::fs::write(d.join("drawn.geojson"), serde_json::to_vec(&layer).unwrap()).unwrap();
    let r = json_of(&wangge_ok(&[
        "plans",
        "import",
        "--grids",
        d.join("drawn.geojson").to_str().unwrap(),
        "--json",
        "--database",
        db,
    ]));
    let id = r["plan"].as_i64().unwrap();
    assert!(
        !r["gaps"].as_array().unwrap().is_empty(),
        "the removed grid {removed_code} leaves a gap: {r}"
    );
    assert!(!r["overlaps"].as_array().unwrap().is_empty(), "{r}");
    assert!(!r["cut_buildings"].as_array().unwrap().is_empty(), "{r}");
    for c in r["cut_buildings"].as_array().unwrap() {
        assert!(!c["went_to"].as_str().unwrap().is_empty());
    }
    assert!(
        r["codes_new"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c[1] == "not-a-code"),
        "{r}"
    );
    // the plan itself is sound: no building split, no gap, every grid whole
    let out = export(db, id, &d.join("imported.geojson"));
    checker_ok(&d.join("imported.geojson"));
    valid_everywhere(&out);
    // a layer that is not one is a named error
    std::fs::write(d.join("bad.geojson"), r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]}"#).unwrap();
    let o = wangge(&[
        "plans",
        "import",
        "--grids",
        d.join("bad.geojson").to_str().unwrap(),
        "--database",
        db,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("feature 0"));
}

#[test]
fn import_hand_edits_on_a_geopackage() {
    let dir = tempfile::tempdir().unwrap();
    import_on(dir.path().join("w.gpkg").to_str().unwrap());
}

#[test]
fn import_hand_edits_on_postgis() {
    import_on(&fresh_pg());
}

/// Random edit sequences (moves, merges, splits, locks, re-solves, new grids, undo, redo) on
/// the sample district: every accepted edit leaves every grid valid in every projection; every
/// sequence undone gives back the first plan's bytes; the checker's hard rules hold at the end.
/// `WANGGE_EDIT_SEQUENCES` sets the count (scripts/fuzz-edits runs 200).
#[test]
fn random_edit_sequences() {
    use rand::{Rng, SeedableRng};
    let n: usize = std::env::var("WANGGE_EDIT_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("w.gpkg").to_str().unwrap().to_string();
    load_sample(&db);
    let id = draft_of_plan_1(&db);
    let first = export(&db, id, &d.join("first.geojson"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(wangge::store::open(Some(&db))).unwrap();
    // edits go through a fabric cache, as in the server: each edit's grids are checked below
    // against a derivation from a freshly decoded fabric
    let cache = plan::FabricCache::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut applied_total = 0;
    let mut compared = 0;
    for seq in 0..n {
        let mut applied = 0;
        for _ in 0..6 {
            let p = rt.block_on(store.plan(id)).unwrap();
            let c = p.communities[rng.random_range(0..p.communities.len())].clone();
            let (l, st) = rt
                .block_on(plan::load(store.as_ref(), None, &p, &c))
                .unwrap();
            let op = random_op(&mut rng, &l.fabric, &st, &c);
            let req = EditRequest {
                who: "fuzz".into(),
                ..EditRequest::default()
            };
            match rt.block_on(plan::edit(store.as_ref(), Some(&cache), id, &op, &req)) {
                Ok(o) => {
                    applied += 1;
                    compared +=
                        same_as_from_scratch(&rt, store.as_ref(), (id, &cache), &c, &o.changed);
                    let fc = json!({"type": "FeatureCollection", "features": o.changed});
                    valid_everywhere(&fc);
                }
                Err(plan::EditError::Refused(_) | plan::EditError::Invalid(_)) => {}
                Err(e) => panic!("sequence {seq}: {op:?}: {e}"),
            }
            if rng.random_range(0..4) == 0 && applied > 0 {
                let redo = rng.random_range(0..2) == 0;
                let _ = rt.block_on(plan::undo_redo(
                    store.as_ref(),
                    Some(&cache),
                    id,
                    redo,
                    &req,
                ));
            }
        }
        if seq % 4 == 0 {
            let out = export(&db, id, &d.join("seq.geojson"));
            checker_ok(&d.join("seq.geojson"));
            valid_everywhere(&out);
        }
        // undo everything applied
        let req = EditRequest {
            who: "fuzz".into(),
            ..EditRequest::default()
        };
        while rt
            .block_on(plan::undo_redo(
                store.as_ref(),
                Some(&cache),
                id,
                false,
                &req,
            ))
            .is_ok()
        {}
        same_grids(
            &export(&db, id, &d.join("back.geojson")),
            &first,
            &format!("sequence {seq}: undo all"),
        );
        applied_total += applied;
    }
    assert!(applied_total > n, "too few edits accepted: {applied_total}");
    assert!(
        compared > n,
        "too few grids compared with a derivation from scratch: {compared}"
    );
}

/// One random edit of community `c`'s state: a move, merge, split, lock, unlock, re-solve or
/// new grid around a random atom.
fn random_op(
    rng: &mut rand_chacha::ChaCha8Rng,
    f: &wangge::partition::fabric::Fabric,
    st: &plan::State,
    c: &str,
) -> Op {
    use rand::Rng;
    let a = rng.random_range(0..f.n_atoms());
    let g = st.grids[st.atoms[a] as usize].code.clone();
    let nb = f
        .neighbours(a)
        .iter()
        .map(|e| st.grids[st.atoms[e.nbr as usize] as usize].code.clone())
        .find(|h| *h != g);
    match (rng.random_range(0..8), nb) {
        (0 | 1, Some(h)) => Op::Move {
            buildings: vec![],
            atoms: vec![a as u32],
            to: h,
        },
        (2, Some(h)) => Op::Merge { grids: vec![g, h] },
        (3, _) => Op::Split {
            grid: g,
            line: None,
        },
        (4, _) => Op::Lock { grids: vec![g] },
        (5, _) => Op::Unlock { grids: vec![g] },
        (6, Some(h)) => Op::Resolve { grids: vec![g, h] },
        _ => Op::NewGrid {
            buildings: vec![],
            atoms: vec![a as u32],
            community: Some(c.to_string()),
        },
    }
}

/// The grids an edit answered with (through the fabric cache, whose fabric follows edits and
/// redraws only what changed) are those a derivation from a freshly decoded fabric gives for
/// the community's new state, byte for byte — and so is every grid the cached fabric now
/// holds, changed or not.
fn same_as_from_scratch(
    rt: &tokio::runtime::Runtime,
    store: &dyn wangge::store::Store,
    (id, cache): (i64, &plan::FabricCache),
    community: &str,
    changed: &[Value],
) -> usize {
    let p = rt.block_on(store.plan(id)).unwrap();
    let (l, st) = rt.block_on(plan::load(store, None, &p, community)).unwrap();
    let fresh: std::collections::BTreeMap<String, Value> =
        plan::derive(&l.fabric, &st, plan::plan_band(&p))
            .unwrap()
            .iter()
            .map(|d| (d.code.clone(), d.feature(&l.fabric)))
            .collect();
    let (cl, cst) = rt
        .block_on(plan::load(store, Some(cache), &p, community))
        .unwrap();
    assert_eq!(cst, st);
    let followed: std::collections::BTreeMap<String, Value> =
        plan::derive(&cl.fabric, &cst, plan::plan_band(&p))
            .unwrap()
            .iter()
            .map(|d| (d.code.clone(), d.feature(&cl.fabric)))
            .collect();
    assert!(
        followed == fresh,
        "the followed derivation differs from one from scratch"
    );
    let mut compared = 0;
    for f in changed {
        let code = f["properties"]["code"].as_str().unwrap();
        if let Some(g) = fresh.get(code) {
            assert_eq!(
                f["geometry"], g["geometry"],
                "grid {code}: the cached derivation differs from one from scratch"
            );
            compared += 1;
        }
    }
    compared
}

/// 动态调整 on atoms: unchanged layers give the same grids; a building raised by 500 households
/// changes at most three grids and moves at most its own households plus 100.
fn rebalance_on(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    load_sample(db);
    let first = export(db, 1, &d.join("g1.geojson"));
    let r = json_of(&wangge_ok(&[
        "plans",
        "rebalance",
        "1",
        "--json",
        "--database",
        db,
    ]));
    assert_eq!(r["grids_changed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["households_moved"], 0);
    // every community read as when its fabric was made: kept, not tessellated again
    let communities = r["communities"].as_array().unwrap();
    assert!(communities.len() > 1, "{r}");
    assert!(communities.iter().all(|c| c["unchanged"] == true), "{r}");
    let blobs_after_first = fabric_blobs(db);
    let same = export(db, r["plan"].as_i64().unwrap(), &d.join("g2.geojson"));
    let strip = |v: &Value| {
        let mut m = by_code(v);
        for f in m.values_mut() {
            f["properties"]["plan"] = Value::Null;
            f["properties"]["valid_from"] = Value::Null;
        }
        m
    };
    assert_eq!(
        strip(&same),
        strip(&first),
        "unchanged layers, unchanged grids"
    );
    // a tower: one building of an in-band grid gets 500 more households
    let mut bl: Value =
        serde_json::from_slice(&std::fs::read(sample_file("buildings.geojson")).unwrap()).unwrap();
    let feats = bl["features"].as_array_mut().unwrap();
    let f = feats
        .iter_mut()
        .filter(|f| f["properties"]["households"].as_u64().unwrap_or(0) > 20)
        .nth(40)
        .unwrap();
    let old = f["properties"]["households"].as_u64().unwrap();
    f["properties"]["households"] = json!(old + 500);
    std::fs::write(d.join("b.geojson"), serde_json::to_vec(&bl).unwrap()).unwrap();
    wangge_ok(&[
        "import",
        "--buildings",
        d.join("b.geojson").to_str().unwrap(),
        "--database",
        db,
    ]);
    let r = json_of(&wangge_ok(&[
        "plans",
        "rebalance",
        "1",
        "--json",
        "--database",
        db,
    ]));
    let changed = r["grids_changed"].as_array().unwrap().len();
    assert!((1..=3).contains(&changed), "{r}");
    // only the tower's community was drawn again; the others kept as stored, byte for byte
    let first_changed = r["grids_changed"][0].as_str().unwrap();
    let tower_comm = r["communities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["community"].as_str().unwrap().to_string())
        .find(|c| first_changed.starts_with(c.as_str()))
        .unwrap();
    for c in r["communities"].as_array().unwrap() {
        let kept = c["community"] != tower_comm.as_str();
        assert_eq!(c["unchanged"] == true, kept, "{c}");
    }
    assert!(
        r["households_moved"].as_u64().unwrap() <= old + 500 + 100,
        "{r}"
    );
    let id = r["plan"].as_i64().unwrap();
    let out = export(db, id, &d.join("g3.geojson"));
    let (after, before) = (strip(&out), strip(&first));
    for (code, f) in &before {
        if f["properties"]["community"] != tower_comm.as_str() {
            assert_eq!(after.get(code), Some(f), "grid {code} of a kept community");
        }
    }
    // the kept communities' fabrics are referenced, not copied: one new blob (the tower's)
    if let Some((n0, n1)) = blobs_after_first.zip(fabric_blobs(db)) {
        assert_eq!(n1, n0 + 1, "fabric blobs");
    }
    valid_everywhere(&out);
    let (ok, fig, text) = check(
        &sample_file("communities.geojson"),
        &d.join("b.geojson"),
        Some(&sample_file("roads.geojson")),
        &d.join("g3.geojson"),
        0.0,
    );
    assert!(ok, "checker: {text}");
    assert_eq!(fig["split_buildings"], 0);
}

/// The number of fabric blobs in a GeoPackage store (`None` for PostGIS).
fn fabric_blobs(db: &str) -> Option<i64> {
    if db.starts_with("postgres") {
        return None;
    }
    let c = rusqlite::Connection::open(db).unwrap();
    Some(
        c.query_row("SELECT count(*) FROM fabric_blobs", [], |r| r.get(0))
            .unwrap(),
    )
}

#[test]
fn rebalance_on_a_geopackage() {
    let dir = tempfile::tempdir().unwrap();
    rebalance_on(dir.path().join("w.gpkg").to_str().unwrap());
}

#[test]
fn rebalance_on_postgis() {
    rebalance_on(&fresh_pg());
}

/// A draft a planner opens is prepared for editing: every community's fabric decoded and derived
/// once (so the first edit follows that derivation); once only; only within the planner's
/// scope; never a published plan.
#[test]
fn a_draft_is_prepared_for_editing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg").to_str().unwrap().to_string();
    load_sample(&db);
    let id = draft_of_plan_1(&db);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(wangge::store::open(Some(&db))).unwrap();
    let p = rt.block_on(store.plan(id)).unwrap();
    assert!(p.communities.len() > 1 && p.communities.len() <= plan::WARM_MAX);
    let warm_here = |cache: &plan::FabricCache, c: &str| {
        let (l, _) = rt
            .block_on(plan::load(store.as_ref(), Some(cache), &p, c))
            .unwrap();
        l.fabric.follow.is_warm()
    };

    let cache = plan::FabricCache::default();
    let n = rt
        .block_on(plan::warm(store.as_ref(), &cache, id, None))
        .unwrap();
    assert_eq!(n, p.communities.len());
    for c in &p.communities {
        assert!(warm_here(&cache, c), "community {c} not prepared");
    }
    let again = rt
        .block_on(plan::warm(store.as_ref(), &cache, id, None))
        .unwrap();
    assert_eq!(again, 0, "prepared twice");

    // a planner scoped to one community prepares that one only
    let scoped = plan::FabricCache::default();
    let one = p.communities[1].clone();
    let n = rt
        .block_on(plan::warm(store.as_ref(), &scoped, id, Some(&one)))
        .unwrap();
    assert_eq!(n, 1);
    assert!(warm_here(&scoped, &one));
    assert!(!warm_here(&scoped, &p.communities[0]));

    // the published plan is not edited, so not prepared
    let published = plan::FabricCache::default();
    let n = rt
        .block_on(plan::warm(store.as_ref(), &published, 1, None))
        .unwrap();
    assert_eq!(n, 0);

    // an edit on the prepared fabric draws what one on an unprepared fabric draws
    let (b, _, to) = rt.block_on(a_valid_move(&db, id));
    let op = Op::Move {
        buildings: vec![b],
        atoms: vec![],
        to,
    };
    let dry = EditRequest {
        dry_run: true,
        ..EditRequest::default()
    };
    let a = rt
        .block_on(plan::edit(store.as_ref(), Some(&cache), id, &op, &dry))
        .unwrap();
    let b = rt
        .block_on(plan::edit(store.as_ref(), None, id, &op, &dry))
        .unwrap();
    assert!(!a.changed.is_empty());
    assert_eq!(
        serde_json::to_string(&a.changed).unwrap(),
        serde_json::to_string(&b.changed).unwrap()
    );
}
