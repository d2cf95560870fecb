//! `wangge serve` end to end: the real binary on a real port, driven by real HTTP clients (ureq,
//! GDAL's OGC API client): OGC API – Features, locate, Open311, the case API, plans with jobs and
//! ETags, roles and privacy, errors, OpenAPI, graceful shutdown.
#![expect(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, one step after another"
)]

mod common;

use common::{Server, load_sample, token, wangge, wangge_ok};
use serde_json::{Value, json};

use std::path::{Path, PathBuf};
use std::process::Command;

/// (status, JSON body) of a request; errors are responses too.
fn call(req: ureq::Request, body: Option<&str>) -> (u16, Value) {
    let r = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    if status == 204 || status == 304 {
        return (status, Value::Null);
    }
    let ct = resp.content_type().to_string();
    let text = resp.into_string().unwrap();
    if (ct == "text/csv" && status == 200) || ct == "text/xml" {
        // the handover list: CSV by design; Open311's XML format
        return (status, Value::String(text));
    }
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: not JSON ({ct}): {text}"));
    (status, v)
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = ureq::get(url);
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    call(r, None)
}

fn post(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut r = ureq::post(url);
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    call(r, Some(body))
}

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

/// The centre of the first building of the sample.
fn first_building() -> (f64, f64) {
    let fc: Value = serde_json::from_str(
        &std::fs::read_to_string(sample_dir().join("buildings.geojson")).unwrap(),
    )
    .unwrap();
    let ring = &fc["features"][0]["geometry"]["coordinates"][0];
    let n = ring.as_array().unwrap().len() - 1;
    let (mut x, mut y) = (0.0, 0.0);
    for i in 0..n {
        x += ring[i][0].as_f64().unwrap();
        y += ring[i][1].as_f64().unwrap();
    }
    (x / n as f64, y / n as f64)
}

fn no_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => !m.contains_key(key) && m.values().all(|x| no_key(x, key)),
        Value::Array(a) => a.iter().all(|x| no_key(x, key)),
        _ => true,
    }
}

#[test]
fn service_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg");
    let db = db.to_str().unwrap();
    let grids = load_sample(db);
    let (x, y) = first_building();
    let admin = token(db, "admin", None);
    let planner = token(db, "planner", None);
    let dispatcher = token(db, "dispatcher", None);
    let viewer = token(db, "viewer", None);
    let srv = Server::start(db);

    // health, readiness, OpenAPI
    assert_eq!(get(&srv.url("/health"), None).0, 200);
    assert_eq!(get(&srv.url("/ready"), None).0, 200);
    let (st, doc) = get(&srv.url("/openapi.json"), None);
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    // every documented route exists (no 404 from the router, no 405)
    for (p, ops) in paths {
        for m in ops.as_object().unwrap().keys() {
            let concrete = p
                .replace("{collectionId}", "grids")
                .replace("{featureId}", "x")
                .replace("{serviceCode}", "01-01.json")
                .replace("{requestId}", "x.json")
                .replace("{id}", "1")
                .replace("{layer}", "grids")
                .replace("{z}", "14")
                .replace("{x}", "0")
                .replace("{y}", "0.mvt")
                .replace("{name}", "grids.json")
                .replace("{a}", "1")
                .replace("{b}", "1");
            let req = match m.as_str() {
                "get" => ureq::get(&srv.url(&concrete)),
                _ => ureq::post(&srv.url(&concrete)),
            };
            let (st, body) = call(
                req.set("Authorization", &format!("Bearer {admin}")),
                if m == "post" { Some("{}") } else { None },
            );
            assert!(st != 405, "{m} {p}: 405");
            assert!(
                !(st == 404
                    && body["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("no such route")),
                "{m} {p}: not routed"
            );
        }
    }

    // OGC API – Features: landing, conformance, collections, paging through every grid
    let (_, landing) = get(&srv.url("/"), None);
    assert!(
        landing["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "conformance")
    );
    let (_, conf) = get(&srv.url("/conformance"), None);
    assert!(
        conf["conformsTo"]
            .to_string()
            .contains("ogcapi-features-1/1.0/conf/core")
    );
    let mut next = Some(srv.url("/collections/grids/items?limit=50"));
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    while let Some(u) = next {
        let (st, page) = get(&u, None);
        assert_eq!(st, 200);
        assert_eq!(page["numberMatched"].as_u64().unwrap(), grids);
        for f in page["features"].as_array().unwrap() {
            assert!(
                seen.insert(f["id"].as_str().unwrap().to_string()),
                "duplicate across pages"
            );
            assert!(
                f["properties"].get("households").is_none(),
                "public sees no households"
            );
            assert!(f["properties"].get("worker_name").is_some());
        }
        next = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .map(|l| l["href"].as_str().unwrap().to_string());
        pages += 1;
    }
    assert_eq!(seen.len() as u64, grids);
    assert!(pages >= 3);
    // bbox and property filters, single item, viewer sees households
    let (_, p) = get(
        &srv.url(&format!(
            "/collections/grids/items?bbox={},{},{},{}",
            x - 1e-4,
            y - 1e-4,
            x + 1e-4,
            y + 1e-4
        )),
        None,
    );
    assert!(p["numberMatched"].as_u64().unwrap() >= 1);
    let code = p["features"][0]["id"].as_str().unwrap().to_string();
    let comm = p["features"][0]["properties"]["community"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, p) = get(
        &srv.url(&format!(
            "/collections/grids/items?community={comm}&limit=1000"
        )),
        Some(&viewer),
    );
    assert!(
        p["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["properties"]["community"] == comm.as_str())
    );
    assert!(
        p["features"][0]["properties"]["households"]
            .as_u64()
            .unwrap()
            > 0,
        "viewer sees households"
    );
    let (st, one) = get(&srv.url(&format!("/collections/grids/items/{code}")), None);
    assert_eq!(st, 200);
    assert_eq!(one["id"], code.as_str());
    let (st, e) = get(&srv.url("/collections/grids/items?colour=red"), None);
    assert_eq!((st, e["error"].as_str()), (400, Some("bad_request")));
    let (st, _) = get(&srv.url("/collections/parcels/items"), None);
    assert_eq!(st, 404);
    let (st, _) = get(&srv.url("/collections/incidents/items"), None);
    assert_eq!(st, 401, "incidents are restricted");
    let (st, _) = get(&srv.url("/collections/incidents/items"), Some(&viewer));
    assert_eq!(st, 403);
    let (_, b) = get(&srv.url("/collections/buildings/items?limit=5"), None);
    assert!(no_key(&b, "households"));

    // GDAL's OGC API client reads the public collections with the right counts
    for (layer, want) in [
        ("grids", grids),
        ("communities", 12),
        ("streets", 2),
        ("buildings", 2434),
    ] {
        let o = Command::new("ogrinfo")
            .args(["-ro", "-so", &format!("OAPIF:{}", srv.base), layer])
            .output()
            .expect("ogrinfo (gdal-bin)");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "ogrinfo {layer}: {text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let n: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Feature Count: "))
            .unwrap_or_else(|| panic!("no count for {layer}: {text}"))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(n, want, "ogrinfo {layer}");
    }

    // locate, in WGS84 and in GCJ-02; outside; bad input
    let (st, loc) = get(&srv.url(&format!("/locate?lon={x}&lat={y}")), None);
    assert_eq!(st, 200, "{loc}");
    assert_eq!(loc["grid"]["code"], code.as_str());
    let g = wangge::geom::crs::Transformer::new(
        wangge::geom::crs::Crs::Wgs84,
        wangge::geom::crs::Crs::Gcj02,
    )
    .unwrap()
    .apply(geo::coord! { x: x, y: y })
    .unwrap();
    let (_, loc2) = get(
        &srv.url(&format!("/locate?lon={}&lat={}&crs=gcj02", g.x, g.y)),
        None,
    );
    assert_eq!(loc2["grid"]["code"], code.as_str());
    let (st, e) = get(&srv.url("/locate?lon=0&lat=0"), None);
    assert_eq!((st, e["error"].as_str()), (404, Some("not_found")));
    let (st, _) = get(&srv.url("/locate?lon=abc&lat=0"), None);
    assert_eq!(st, 400);
    let (st, _) = get(
        &srv.url(&format!("/locate?lon={x}&lat={y}&at=2024-06-01")),
        None,
    );
    assert_eq!(st, 404, "no plan in force before 2025");

    // Open311 as a client would: services, a report, the request list
    let (_, svcs) = get(&srv.url("/open311/v2/services.json"), None);
    let sc = svcs[0]["service_code"].as_str().unwrap().to_string();
    let (st, _) = get(&srv.url(&format!("/open311/v2/services/{sc}.json")), None);
    assert_eq!(st, 200);
    let resp = ureq::post(&srv.url("/open311/v2/requests.json"))
        .send_form(&[
            ("service_code", sc.as_str()),
            ("lat", &y.to_string()),
            ("long", &x.to_string()),
            ("description", "路灯不亮"),
            ("first_name", "张"),
            ("phone", "13800000000"),
        ])
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    let rid = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        created[0]["service_notice"]
            .as_str()
            .unwrap()
            .contains(&code)
    );
    let bad = ureq::post(&srv.url("/open311/v2/requests.json")).send_form(&[
        ("service_code", "nope"),
        ("lat", "1"),
        ("long", "1"),
    ]);
    assert!(matches!(bad, Err(ureq::Error::Status(404, _))));
    let (st, public) = get(&srv.url("/open311/v2/requests.json"), None);
    assert_eq!(st, 200, "the public lists requests");
    assert!(
        !public.to_string().contains("13800000000") && !public.to_string().contains("路灯不亮"),
        "without personal fields: {public}"
    );
    let (st, list) = get(
        &srv.url("/open311/v2/requests.json?status=open"),
        Some(&dispatcher),
    );
    assert_eq!(st, 200);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service_request_id"] == rid.as_str())
        .unwrap();
    assert_eq!(mine["status"], "open");
    assert!(mine["expected_datetime"].is_string());
    assert_eq!(
        mine["reporter"], "张 13800000000",
        "dispatchers see the reporter"
    );
    let (_, list) = get(
        &srv.url("/open311/v2/requests.json?status=closed"),
        Some(&dispatcher),
    );
    assert!(list.as_array().unwrap().is_empty());
    let (st, one) = get(
        &srv.url(&format!("/open311/v2/requests/{rid}.json")),
        Some(&dispatcher),
    );
    assert_eq!(st, 200);
    assert_eq!(one[0]["service_code"], sc.as_str());

    // the case API: grid workers in scope, transitions, the allowed list on refusal
    let worker_here = token(db, "grid_worker", Some(&code));
    let worker_elsewhere = token(db, "grid_worker", Some("nowhere-grid"));
    let (st, c) = get(&srv.url(&format!("/incidents/{rid}")), Some(&worker_here));
    assert_eq!(st, 200);
    assert!(
        c.get("reporter").is_none(),
        "grid workers do not see reporters"
    );
    assert_eq!(c["grid"], code.as_str());
    let (st, _) = get(
        &srv.url(&format!("/incidents/{rid}")),
        Some(&worker_elsewhere),
    );
    assert_eq!(st, 403);
    let (st, c) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&dispatcher),
        r#"{"action":"accept"}"#,
    );
    assert_eq!((st, c["state"].as_str()), (200, Some("accepted")));
    let (st, e) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&dispatcher),
        r#"{"action":"close"}"#,
    );
    assert_eq!(st, 409);
    assert_eq!(e["error"], "illegal_transition");
    assert_eq!(e["allowed"], json!(["open", "reject", "void"]));
    let (st, _) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&dispatcher),
        r#"{"action":"reject"}"#,
    );
    assert_eq!(st, 422, "a rejection needs a reason");
    let (st, _) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&worker_elsewhere),
        r#"{"action":"open"}"#,
    );
    assert_eq!(st, 403);
    let (st, _) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&viewer),
        r#"{"action":"open"}"#,
    );
    assert_eq!(st, 403);
    let (st, _) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        None,
        r#"{"action":"open"}"#,
    );
    assert_eq!(st, 401);
    let (st, c) = post(
        &srv.url(&format!("/incidents/{rid}/transitions")),
        Some(&worker_here),
        r#"{"action":"open"}"#,
    );
    assert_eq!((st, c["state"].as_str()), (200, Some("opened")));
    let (_, l) = get(
        &srv.url(&format!("/incidents?grid={code}")),
        Some(&dispatcher),
    );
    assert_eq!(l["matched"], 1);
    assert_eq!(l["incidents"][0]["history"].as_array().unwrap().len(), 2);
    let (_, l) = get(&srv.url("/incidents"), Some(&worker_elsewhere));
    assert_eq!(l["matched"], 0, "scope limits lists");
    // statistics: aggregates for viewers, nothing for the public
    let (st, s) = get(&srv.url("/stats?by=grid"), Some(&viewer));
    assert_eq!(st, 200);
    assert_eq!(s["groups"][0]["received"], 1);
    assert!(no_key(&s, "reporter"));
    assert_eq!(get(&srv.url("/stats"), None).0, 401);
    // a viewer's cells are as coarse as the public heat layer: one case is not shown
    let (st, h) = get(&srv.url("/stats/h3?resolution=8"), Some(&viewer));
    assert_eq!(st, 200);
    assert_eq!(h["cells"], serde_json::json!([]));
    let (st, h) = get(&srv.url("/stats/h3?resolution=8"), Some(&dispatcher));
    assert_eq!(st, 200);
    assert_eq!(h["cells"][0]["count"], 1);

    // plans: a regrid job, ETags, If-Match
    let (st, _) = post(&srv.url("/plans"), Some(&viewer), "{}");
    assert_eq!(st, 403);
    let (st, job) = post(
        &srv.url("/plans"),
        Some(&planner),
        &format!(r#"{{"communities":["{comm}"],"seed":2}}"#),
    );
    assert_eq!(st, 202, "{job}");
    let job_url = job["status_url"].as_str().unwrap().to_string();
    let mut plan_id = None;
    for _ in 0..100 {
        let (_, j) = get(&job_url, Some(&planner));
        if j["state"] == "done" {
            plan_id = j["plan"].as_i64();
            break;
        }
        assert_ne!(j["state"], "failed", "{j}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let plan_id = plan_id.expect("the job finished");
    let r = ureq::get(&srv.url(&format!("/plans/{plan_id}")))
        .set("Authorization", &format!("Bearer {planner}"))
        .call()
        .unwrap();
    let etag = r.header("ETag").unwrap().to_string();
    let (st, e) = post(
        &srv.url(&format!("/plans/{plan_id}/publish")),
        Some(&planner),
        r#"{"valid_from":"2026-01-01"}"#,
    );
    assert_eq!(
        (st, e["error"].as_str()),
        (428, Some("precondition_required"))
    );
    let stale = ureq::post(&srv.url(&format!("/plans/{plan_id}/publish")))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("If-Match", "\"plan-1-v1\"");
    assert_eq!(call(stale, Some(r#"{"valid_from":"2026-01-01"}"#)).0, 412);
    // every grid of this plan is in band: no reason needed, the register is empty
    let ok = ureq::post(&srv.url(&format!("/plans/{plan_id}/publish")))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("If-Match", &etag);
    let (st, pub_) = call(ok, Some(r#"{"valid_from":"2026-01-01"}"#));
    assert_eq!(
        (st, pub_["plan"]["status"].as_str()),
        (200, Some("published")),
        "{pub_}"
    );
    assert_eq!(pub_["exceptions"], serde_json::json!([]));
    let again = ureq::post(&srv.url(&format!("/plans/{plan_id}/publish")))
        .set("Authorization", &format!("Bearer {planner}"))
        .set("If-Match", &etag);
    assert_eq!(
        call(again, Some(r#"{"valid_from":"2026-02-01"}"#)).0,
        412,
        "the old ETag is stale now"
    );
    let (st, d) = get(&srv.url(&format!("/plans/1/diff/{plan_id}")), Some(&viewer));
    assert_eq!(st, 200);
    assert!(d["moved"].is_array());

    // errors: too large, unknown route, bad JSON — all JSON
    {
        // a body over the limit is refused from its Content-Length, before it is read
        use std::io::{Read, Write};
        let addr = srv.base.trim_start_matches("http://").to_string();
        let mut t = std::net::TcpStream::connect(&addr).unwrap();
        write!(t, "POST /plans HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {planner}\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        t.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(resp.contains(r#""error":"payload_too_large""#), "{resp}");
    }
    let (st, e) = get(&srv.url("/nowhere"), None);
    assert_eq!((st, e["error"].as_str()), (404, Some("not_found")));
    let (st, _) = post(&srv.url("/plans"), Some(&planner), "{not json");
    assert_eq!(st, 422);
    let (st, _) = get(&srv.url("/plans"), Some("wg_0000"));
    assert_eq!(st, 401, "unknown token");

    // the audit log has the personal-data reads; revocation works at once
    let out = wangge_ok(&["token", "list", "--database", db]);
    let disp_id: String = out
        .lines()
        .find(|l| l.contains("dispatcher"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    wangge_ok(&["token", "revoke", &disp_id, "--database", db]);
    let (st, e) = get(&srv.url("/incidents"), Some(&dispatcher));
    assert_eq!(
        (st, e["message"].as_str()),
        (401, Some("the token has been revoked"))
    );
    let c = rusqlite::Connection::open(db).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'read_personal'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n >= 2, "personal reads are audited ({n})");

    // graceful shutdown on SIGTERM
    let mut srv = srv;
    unsafe {
        libc::kill(srv.child.id() as i32, libc::SIGTERM);
    }
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "exit on SIGTERM: {status:?}");
}

#[test]
fn service_on_postgis() {
    let db = common::fresh_pg();
    let grids = load_sample(&db);
    let srv = Server::start(&db);
    let (st, r) = get(&srv.url("/ready"), None);
    assert_eq!(st, 200);
    assert!(r["store"].as_str().unwrap().starts_with("PostGIS"));
    let (_, p) = get(&srv.url("/collections/grids/items?limit=1000"), None);
    assert_eq!(p["numberMatched"].as_u64().unwrap(), grids);
    let (x, y) = first_building();
    let (st, loc) = get(&srv.url(&format!("/locate?lon={x}&lat={y}")), None);
    assert_eq!(st, 200, "{loc}");
    let resp = ureq::post(&srv.url("/open311/v2/requests.json"))
        .send_form(&[
            ("service_code", "01-01"),
            ("lat", &y.to_string()),
            ("long", &x.to_string()),
        ])
        .unwrap();
    assert_eq!(resp.status(), 201);
    let o = wangge(&["plans", "list", "--database", &db]);
    assert!(o.status.success());
}

/// Each role against each endpoint family: allowed, forbidden (403), anonymous (401), and out of
/// scope (403) — plus that nothing public carries a restricted field.
#[test]
fn roles_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg");
    let db = db.to_str().unwrap();
    load_sample(db);
    let (x, y) = first_building();
    let srv = Server::start(db);
    // one report to read
    let resp = ureq::post(&srv.url("/open311/v2/requests.json"))
        .send_form(&[
            ("service_code", "01-01"),
            ("lat", &y.to_string()),
            ("long", &x.to_string()),
            ("phone", "13900000000"),
        ])
        .unwrap();
    let created: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    let rid = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, loc) = get(&srv.url(&format!("/locate?lon={x}&lat={y}")), None);
    let grid = loc["grid"]["code"].as_str().unwrap().to_string();
    let comm = loc["community"].as_str().unwrap().to_string();
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("public", None),
        ("viewer", Some(token(db, "viewer", None))),
        ("planner", Some(token(db, "planner", None))),
        ("dispatcher", Some(token(db, "dispatcher", Some(&comm)))),
        ("grid_worker", Some(token(db, "grid_worker", Some(&grid)))),
        ("admin", Some(token(db, "admin", None))),
    ];
    let other_worker = token(db, "grid_worker", Some("other-grid"));
    let other_dispatcher = token(db, "dispatcher", Some("other-community"));
    // (family, method, path, body, roles allowed)
    let fams: Vec<(&str, &str, String, &str, &[&str])> = vec![
        (
            "public features",
            "get",
            "/collections/grids/items?limit=5".into(),
            "",
            &[
                "public",
                "viewer",
                "planner",
                "dispatcher",
                "grid_worker",
                "admin",
            ],
        ),
        (
            "locate",
            "get",
            format!("/locate?lon={x}&lat={y}"),
            "",
            &[
                "public",
                "viewer",
                "planner",
                "dispatcher",
                "grid_worker",
                "admin",
            ],
        ),
        (
            "incident features",
            "get",
            "/collections/incidents/items".into(),
            "",
            &["dispatcher", "grid_worker", "admin"],
        ),
        (
            "incident",
            "get",
            format!("/incidents/{rid}"),
            "",
            &["dispatcher", "grid_worker", "admin"],
        ),
        (
            "open311 list",
            "get",
            "/open311/v2/requests.json".into(),
            "",
            // the public and every role; the redaction checks below hold
            &[
                "public",
                "viewer",
                "planner",
                "dispatcher",
                "grid_worker",
                "admin",
            ],
        ),
        (
            "stats",
            "get",
            "/stats?by=community".into(),
            "",
            &["viewer", "planner", "dispatcher", "grid_worker", "admin"],
        ),
        (
            "plans read",
            "get",
            "/plans".into(),
            "",
            &["viewer", "planner", "admin"],
        ),
        (
            "plans write",
            "post",
            "/plans/1/publish".into(),
            r#"{"valid_from":"2030-01-01"}"#,
            &["planner", "admin"],
        ),
    ];
    for (fam, m, path, body, allowed) in &fams {
        for (role, tok) in &tokens {
            let req = match *m {
                "get" => ureq::get(&srv.url(path)),
                _ => ureq::post(&srv.url(path)),
            };
            let req = match tok {
                Some(t) => req.set("Authorization", &format!("Bearer {t}")),
                None => req,
            };
            let (st, v) = call(req, if *m == "post" { Some(body) } else { None });
            if allowed.contains(role) {
                // publishing needs If-Match: 428 means the role passed
                assert!(
                    st == 200 || (*fam == "plans write" && st == 428),
                    "{fam} as {role}: {st} {v}"
                );
            } else if *role == "public" {
                assert_eq!(st, 401, "{fam} as public: {v}");
            } else {
                assert_eq!(st, 403, "{fam} as {role}: {v}");
            }
            if *role == "public" && st == 200 {
                for k in ["households", "reporter", "weight"] {
                    assert!(no_key(&v, k), "{fam}: public response carries {k}");
                }
            }
            if matches!(*role, "viewer" | "planner" | "grid_worker") {
                assert!(no_key(&v, "reporter"), "{fam}: {role} sees a reporter");
            }
        }
    }
    // out of scope
    for t in [&other_worker, &other_dispatcher] {
        let (st, _) = get(&srv.url(&format!("/incidents/{rid}")), Some(t));
        assert_eq!(st, 403);
        let (_, l) = get(&srv.url("/collections/incidents/items"), Some(t));
        assert_eq!(l["numberMatched"], 0);
        let (st, _) = post(
            &srv.url(&format!("/incidents/{rid}/transitions")),
            Some(t),
            r#"{"action":"accept"}"#,
        );
        assert_eq!(st, 403);
    }
}

/// Connection-level hardening on the real port: headers sent slowly are cut off at
/// `header_timeout_seconds` (they used to hold a connection for over a minute); a request target
/// or headers too large get 414/431 with the JSON error, not an empty body.
#[test]
fn slow_headers_are_cut_off_and_large_heads_answered_in_json() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg");
    let db = db.to_str().unwrap();
    common::wangge_ok(&["token", "list", "--database", db]);
    let cfg = dir.path().join("serve.toml");
    std::fs::write(&cfg, "header_timeout_seconds = 1\n").unwrap();
    let srv = common::Server::start_with(db, &["--config", cfg.to_str().unwrap()]);
    let addr = srv.base.trim_start_matches("http://").to_string();

    // a slowloris: one header line, then nothing
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let held = t0.elapsed();
    assert!(
        held < std::time::Duration::from_secs(5),
        "the connection was held {held:?}"
    );
    // a complete request on a fresh connection is served as ever
    assert_eq!(get(&srv.url("/health"), None).0, 200);

    let (st, e) = get(&srv.url(&format!("/health?x={}", "a".repeat(9000))), None);
    assert_eq!(st, 414);
    assert_eq!(e["error"], "uri_too_long", "{e}");
    let mut req = ureq::get(&srv.url("/health"));
    for i in 0..120 {
        req = req.set(&format!("x-h{i}"), "1");
    }
    let (st, e) = call(req, None);
    assert_eq!(st, 431);
    assert_eq!(e["error"], "request_header_fields_too_large", "{e}");
    let (st, e) = call(
        ureq::get(&srv.url("/health")).set("x-big", &"b".repeat(40_000)),
        None,
    );
    assert_eq!(
        (st, e["error"].as_str()),
        (431, Some("request_header_fields_too_large"))
    );
}
