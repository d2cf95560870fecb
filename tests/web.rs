//! The planners' web map in a real browser: the real binary serves Manhattan from the embedded
//! store (plan 1 published, plan 2 its draft copy), and `src/web/test/e2e.mjs` drives Debian's
//! chromium through playwright-core (headless, software WebGL) as the public, a planner, a
//! dispatcher and an administrator. Screenshots of every step and `report.json` (timings,
//! transfer sizes) are left in `target/web-e2e/` to look at.

mod common;

use common::{Server, manhattan, wangge_ok};
use std::path::Path;
use std::process::Command;

fn token(db: &str, role: &str, label: &str) -> String {
    let out = wangge_ok(&[
        "token",
        "create",
        "--role",
        role,
        "--label",
        label,
        "--json",
        "--database",
        db,
    ]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    j["token"].as_str().unwrap().to_string()
}

#[test]
fn the_web_map_in_a_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/web-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("manhattan.gpkg");
    let db = db.to_str().unwrap();
    let m = manhattan();
    let f = |n: &str| m.join(n).to_str().unwrap().to_string();
    wangge_ok(&[
        "import",
        "--communities",
        &f("communities.geojson"),
        "--buildings",
        &f("buildings.geojson"),
        "--roads",
        &f("roads.geojson"),
        "--database",
        db,
    ]);
    wangge_ok(&["regrid", "--database", db]);
    wangge_ok(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-01-01",
        "--exception",
        "*=样例：学校与商业用地为主，户数少",
        "--database",
        db,
    ]);
    wangge_ok(&["plans", "copy", "1", "--database", db]);
    let planner = token(db, "planner", "planner");
    let planner2 = token(db, "planner", "planner2");
    let dispatcher = token(db, "dispatcher", "dispatcher");
    let admin = token(db, "admin", "admin");
    let srv = Server::start(db);

    let web = root.join("src/web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "src/web/node_modules is missing: run scripts/setup (npm ci)"
    );
    let artefacts = dir.join("shots");
    let out = Command::new("node")
        .arg("test/e2e.mjs")
        .current_dir(&web)
        .env("WANGGE_URL", &srv.base)
        .env("WANGGE_PLANNER", &planner)
        .env("WANGGE_PLANNER2", &planner2)
        .env("WANGGE_DISPATCHER", &dispatcher)
        .env("WANGGE_ADMIN", &admin)
        .env("WANGGE_DRAFT", "2")
        .env("WANGGE_IN_FORCE", "1")
        .env("WANGGE_ARTEFACTS", &artefacts)
        .output()
        .expect("run node (scripts/setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(artefacts.join("report.json")).unwrap()).unwrap();
    println!("{report:#}");
    // figures are measured, not asserted as speed goals (see scripts/bench-web); they must exist
    assert!(report["edit_visible_ms"]["n"].as_u64().unwrap() >= 1);
    assert!(report["planner_grids_drawn_ms"].as_u64().is_some());
    let kb = report["transfer"]["total_kb"].as_u64().unwrap();
    assert!(kb < 600, "JS + CSS transferred: {kb} KB gzip, over 600");
    for n in [
        "01-public",
        "02-public-panel",
        "04-selection-pending",
        "05-assigned",
        "08-compare",
        "09-conflict",
        "10-published",
        "11-dispatcher-case",
        "12-admin-worker",
    ] {
        assert!(
            artefacts.join(format!("{n}.png")).exists(),
            "screenshot {n}"
        );
    }
}
