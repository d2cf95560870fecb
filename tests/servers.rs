//! More than one `wangge serve` on one store: a plan published through one server is what the
//! other answers within a second (PostgreSQL LISTEN/NOTIFY; SQLite's data_version for a
//! GeoPackage), without waiting for any cache to expire.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn get(url: &str) -> (u16, serde_json::Value) {
    let r = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let st = r.status();
    (st, serde_json::from_str(&r.into_string().unwrap()).unwrap())
}

/// A point inside the first grid of plan 1 and that grid's code, from the regrid's GeoJSON.
fn inside_point(grids: &Path) -> (f64, f64, String) {
    let fc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(grids).unwrap()).unwrap();
    let f = &fc["features"][0];
    let code = f["properties"]["code"].as_str().unwrap().to_string();
    let ring: Vec<geo::Coord> = f["geometry"]["coordinates"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| geo::coord! { x: p[0].as_f64().unwrap(), y: p[1].as_f64().unwrap() })
        .collect();
    let poly = geo::Polygon::new(geo::LineString(ring), vec![]);
    let p = geo::InteriorPoint::interior_point(&poly).unwrap();
    (p.x(), p.y(), code)
}

/// Two servers on `db`; publish plan 1 through the first; the second's `/locate` answers with
/// the new grid within a second. Returns how long the second took to follow.
fn second_server_follows(db: &str, dir: &Path) -> Duration {
    sample(dir, 3, 3);
    import_dir(dir, db);
    let grids = dir.join("plan1.geojson");
    wangge_ok(&["regrid", "--database", db, "--out", grids.to_str().unwrap()]);
    let planner = token(db, "planner", None);
    let (x, y, code) = inside_point(&grids);
    let a = Server::start(db);
    let b = Server::start(db);
    let at = format!("/locate?lon={x}&lat={y}");
    // the second server has built its locator: nothing is published yet
    let (st, before) = get(&b.url(&at));
    assert_eq!(st, 404, "{before}");
    // publish through the first server
    let r = ureq::get(&a.url("/plans/1"))
        .set("Authorization", &format!("Bearer {planner}"))
        .call()
        .unwrap();
    let etag = r.header("ETag").unwrap().to_string();
    let r = ureq::post(&a.url("/plans/1/publish"))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("If-Match", &etag)
        .set("Content-Type", "application/json")
        .send_string(r#"{"valid_from":"2026-01-01","exceptions":{"*":"样例：户数少"}}"#)
        .unwrap();
    assert_eq!(r.status(), 200);
    let published = Instant::now();
    assert_eq!(get(&a.url(&at)).1["grid"]["code"], code.as_str());
    loop {
        let (st, v) = get(&b.url(&at));
        if st == 200 {
            assert_eq!(v["grid"]["code"], code.as_str());
            let took = published.elapsed();
            jobs_are_the_stores(db, &a, &b, &planner);
            return took;
        }
        assert!(
            published.elapsed() < Duration::from_secs(1),
            "the second server still answers {st} {v} a second after the publication"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn authed(url: &str, token: &str) -> (u16, serde_json::Value) {
    let r = match ureq::get(url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let st = r.status();
    (st, serde_json::from_str(&r.into_string().unwrap()).unwrap())
}

/// A regrid job started on one server is followed on the other, to its plan; its id outlives
/// both servers, and the next job's id follows it.
fn jobs_are_the_stores(db: &str, a: &Server, b: &Server, planner: &str) {
    let r = ureq::post(&a.url("/plans"))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"seed":5}"#)
        .unwrap();
    assert_eq!(r.status(), 202);
    let j: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    let id = j["job"].as_i64().unwrap();
    let started = Instant::now();
    let plan = loop {
        let (st, v) = authed(&b.url(&format!("/jobs/{id}")), planner);
        assert_eq!(st, 200, "{v}");
        assert_ne!(v["state"], "failed", "{v}");
        if v["state"] == "done" {
            assert_eq!(
                v["progress"]["communities_done"],
                v["progress"]["communities"]
            );
            break v["plan"].as_i64().unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(authed(&b.url(&format!("/plans/{plan}")), planner).0, 200);
    // a new server (as after a restart) knows the job, and numbers the next one after it
    let c = Server::start(db);
    let (st, v) = authed(&c.url(&format!("/jobs/{id}")), planner);
    assert_eq!(
        (st, v["state"].as_str(), v["plan"].as_i64()),
        (200, Some("done"), Some(plan))
    );
    let r = ureq::post(&c.url("/plans"))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("Content-Type", "application/json")
        .send_string("{}")
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(j["job"].as_i64(), Some(id + 1));
    assert_eq!(authed(&a.url("/jobs/999"), planner).0, 404);
}

#[test]
fn a_plan_published_through_one_geopackage_server_is_what_the_other_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg");
    let took = second_server_follows(db.to_str().unwrap(), dir.path());
    eprintln!("GeoPackage: the second server followed in {took:?}");
}

#[test]
fn a_plan_published_through_one_postgis_server_is_what_the_other_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_pg();
    let took = second_server_follows(&db, dir.path());
    eprintln!("PostGIS: the second server followed in {took:?}");
}

fn psql(url: &str, sql: &str) -> String {
    let o = std::process::Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn grids_count(srv: &Server) -> usize {
    let (st, v) = get(&srv.url("/collections/grids/items?limit=1000"));
    assert_eq!(st, 200, "{v}");
    v["features"].as_array().unwrap().len()
}

/// `--read-database`: a server's map reads come from the streaming replica — while the replica's
/// replay is paused it does not see a plan published on the primary, and once replay resumes it
/// does within a second. Writes (the publication) go to the primary.
#[test]
fn map_reads_come_from_the_read_replica() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = fresh_pg();
    let name = &db[db.rfind('/').unwrap() + 1..];
    let standby = std::env::var("WANGGE_TEST_REPLICA_URL")
        .expect("WANGGE_TEST_REPLICA_URL is not set: scripts/test starts a standby (scripts/pg-start --replica)");
    let replica = format!("{}/{name}", &standby[..standby.rfind('/').unwrap()]);
    sample(d, 4, 2);
    let f = |n: &str| d.join(n).to_str().unwrap().to_string();
    import_dir(d, &db);
    wangge_ok(&["regrid", "--database", &db]);
    // the standby has replayed the new database and its schema
    let t = Instant::now();
    while std::process::Command::new("psql")
        .args([
            replica.as_str(),
            "-Atc",
            "SELECT max(version) FROM wangge_schema",
        ])
        .output()
        .map_or(true, |o| {
            !o.status.success()
                || String::from_utf8_lossy(&o.stdout).trim()
                    != wangge::store::SCHEMA_VERSION.to_string()
        })
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the standby did not catch up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(psql(&replica, "SELECT pg_is_in_recovery()"), "t");
    let a = Server::start(&db);
    let b = Server::start_with(&db, &["--read-database", &replica]);
    assert_eq!(grids_count(&b), 0, "nothing published yet");
    psql(&replica, "SELECT pg_wal_replay_pause()");
    wangge_ok(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-01-01",
        "--exception",
        "*=样例：学校与商业用地为主，户数少",
        "--database",
        &db,
    ]);
    let n = grids_count(&a);
    assert!(n > 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        grids_count(&b),
        0,
        "replay paused: the replica has not seen the publication"
    );
    psql(&replica, "SELECT pg_wal_replay_resume()");
    let resumed = Instant::now();
    while grids_count(&b) != n {
        assert!(
            resumed.elapsed() < Duration::from_secs(1),
            "the replica's reads did not follow"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "replica: followed {:?} after replay resumed",
        resumed.elapsed()
    );
    // a replica for a GeoPackage, or a primary given as a replica, is refused with the reason
    let o = wangge(&[
        "serve",
        "--database",
        &f("w.gpkg"),
        "--read-database",
        &replica,
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs a PostGIS primary"),
        "{o:?}"
    );
}
