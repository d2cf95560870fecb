//! Golden outputs: the bytes the house redesign (issue 14) must not change.
//!
//! Each test produces a set of named outputs — regrids of Manhattan and of the sample district
//! (grids, assignments, reports), a rebalance of Manhattan with one tower raised, a lock run,
//! a PMTiles archive of every layer at z12–16, served tiles, OGC API pages, `/locate`, the case
//! API and Open311 answers for every role — hashes them with SHA-256, writes them under
//! `target/golden/<test>/` and compares the hashes with `tests/golden/<test>.sha256`.
//!
//! A mismatch names every output that changed; the files beside it in `target/golden/` are
//! there to diff. After an intended change of output, record anew with
//! `WANGGE_GOLDEN_RECORD=1 cargo test --release --test golden` and say why in the commit.
#![expect(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, one step after another"
)]

mod common;

use common::{Server, manhattan, regrid_in, token, wangge_ok};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Named outputs of one test, compared with its recorded hashes when dropped into `finish`.
struct Golden {
    name: &'static str,
    dir: PathBuf,
    got: BTreeMap<String, String>,
}

impl Golden {
    fn new(name: &'static str) -> Golden {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/golden")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Golden {
            name,
            dir,
            got: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: &str, bytes: &[u8]) {
        assert!(
            !self.got.contains_key(key),
            "output {key} recorded twice in {}",
            self.name
        );
        std::fs::write(self.dir.join(key.replace('/', "_")), bytes).unwrap();
        self.got
            .insert(key.to_string(), hex(&Sha256::digest(bytes)));
    }

    fn add_file(&mut self, key: &str, path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.add(key, &bytes);
    }

    /// A JSON report, its run times left out.
    fn add_report(&mut self, key: &str, path: &Path) {
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        normalise(&mut v, "\u{0}");
        self.add(key, &serde_json::to_vec_pretty(&v).unwrap());
    }

    fn finish(self) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{}.sha256", self.name));
        let text: String = self
            .got
            .iter()
            .map(|(k, h)| format!("{h}  {k}\n"))
            .collect();
        if std::env::var_os("WANGGE_GOLDEN_RECORD").is_some() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &text).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (record with WANGGE_GOLDEN_RECORD=1)",
                file.display()
            )
        });
        let want: BTreeMap<String, String> = want
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(h, k)| (k.to_string(), h.to_string()))
            .collect();
        let mut diffs = Vec::new();
        for (k, h) in &want {
            match self.got.get(k) {
                None => diffs.push(format!("{k}: not produced")),
                Some(g) if g != h => diffs.push(format!("{k}: changed")),
                Some(_) => {}
            }
        }
        for k in self.got.keys() {
            if !want.contains_key(k) {
                diffs.push(format!("{k}: new output, not recorded"));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} golden outputs differ from {} (the outputs are in {}):\n{}",
            diffs.len(),
            want.len(),
            file.display(),
            self.dir.display(),
            diffs.join("\n")
        );
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Regrids of Manhattan and the sample district, a rebalance with a tower and a lock run.
#[test]
fn regrid_outputs_are_unchanged() {
    let mut g = Golden::new("regrid");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    for (name, layers) in [("manhattan", manhattan()), ("sample", sample)] {
        let (grids, assign, report) = (
            d.join(format!("{name}.geojson")),
            d.join(format!("{name}.csv")),
            d.join(format!("{name}.json")),
        );
        regrid_in(
            &layers,
            &[
                "--out",
                s(&grids),
                "--assignments",
                s(&assign),
                "--report",
                s(&report),
            ],
        );
        g.add_file(&format!("{name}/grids.geojson"), &grids);
        g.add_file(&format!("{name}/assignments.csv"), &assign);
        g.add_report(&format!("{name}/report.json"), &report);
    }

    // rebalance: one Manhattan building raised by 500 households
    let m = manhattan();
    common::raise_households(
        &m.join("buildings.geojson"),
        "w264668298",
        500,
        &d.join("b1.geojson"),
    );
    wangge_ok(&[
        "rebalance",
        "--grids",
        s(&d.join("manhattan.geojson")),
        "--previous-assignments",
        s(&d.join("manhattan.csv")),
        "--communities",
        s(&m.join("communities.geojson")),
        "--buildings",
        s(&d.join("b1.geojson")),
        "--roads",
        s(&m.join("roads.geojson")),
        "--out",
        s(&d.join("rebalanced.geojson")),
        "--report",
        s(&d.join("rebalanced.json")),
    ]);
    g.add_file("rebalance/grids.geojson", &d.join("rebalanced.geojson"));
    g.add_report("rebalance/report.json", &d.join("rebalanced.json"));

    // every 10th Manhattan grid locked
    let g0: Value =
        serde_json::from_slice(&std::fs::read(d.join("manhattan.geojson")).unwrap()).unwrap();
    let codes: Vec<&str> = g0["features"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .step_by(10)
        .map(|f| f["properties"]["code"].as_str().unwrap())
        .collect();
    std::fs::write(d.join("lock.txt"), codes.join("\n")).unwrap();
    regrid_in(
        &m,
        &[
            "--grids",
            s(&d.join("manhattan.geojson")),
            "--lock",
            s(&d.join("lock.txt")),
            "--out",
            s(&d.join("locked.geojson")),
        ],
    );
    g.add_file("locks/grids.geojson", &d.join("locked.geojson"));

    // the generated district
    let city = d.join("city");
    common::sample(&city, 7, 5);
    for f in ["communities.geojson", "buildings.geojson", "roads.geojson"] {
        g.add_file(&format!("sample-city/{f}"), &city.join(f));
    }
    g.finish();
}

/// Keys whose values come from the clock or a random source (incident ids, times): replaced
/// before hashing so that what is compared is the shape and the redaction of each answer.
const VOLATILE: &[&str] = &[
    "service_request_id",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "reported_at",
    "due_at",
    "at",
    "closed_at",
    "timeStamp",
    "token",
    "seconds",
    "created_at",
    "published_at",
];

/// An incident id (`YYYYMMDD-NNNNNNNN`, from the clock).
fn is_case_id(t: &str) -> bool {
    t.len() > 9
        && t.as_bytes()[8] == b'-'
        && t.bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
}

fn normalise(v: &mut Value, base: &str) {
    match v {
        Value::Object(m) => {
            // a case (it has a state) has an id from the clock
            let case = m.contains_key("state") || m.contains_key("service_code");
            for (k, x) in m.iter_mut() {
                let volatile = VOLATILE.contains(&k.as_str()) || (case && k == "id");
                if volatile && (x.is_string() || x.is_number()) {
                    *x = json!("<volatile>");
                } else {
                    normalise(x, base);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, base)),
        Value::String(t) if is_case_id(t) => *t = "<volatile>".into(),
        Value::String(t) => {
            // the test server's port changes from run to run
            if t.contains(base) {
                *t = t.replace(base, "<base>");
            }
            // case links carry the case id
            if let Some(i) = t.find("/incidents/").or_else(|| t.find("/requests/")) {
                t.truncate(i);
                t.push_str("/<id>");
            }
        }
        _ => {}
    }
}

/// (status, body) of a GET with an optional token.
fn fetch(url: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut r = ureq::get(url);
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match r.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, body)
}

/// Slippy tile of a point.
fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let r = lat.to_radians();
    let y = ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

/// The sample district in the embedded store: a PMTiles archive, then the service as each role
/// sees it (OGC pages, tiles, locate, cases, Open311, statistics).
#[test]
fn service_outputs_are_unchanged() {
    let mut g = Golden::new("service");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("w.gpkg");
    let db = s(&db);
    common::load_sample(db);
    wangge_ok(&["regrid", "--database", db, "--community", "420502001001"]);
    let archive = d.join("all.pmtiles");
    wangge_ok(&[
        "tiles",
        "--database",
        db,
        "--out",
        s(&archive),
        "--layers",
        "all",
        "--minzoom",
        "12",
        "--maxzoom",
        "16",
    ]);
    g.add_file("archive/all.pmtiles", &archive);

    let exported = d.join("grids.geojson");
    wangge_ok(&[
        "export",
        "--layer",
        "grids",
        "--format",
        "geojson",
        "--out",
        s(&exported),
        "--database",
        db,
    ]);
    g.add_file("export/grids.geojson", &exported);
    let grids: Value = serde_json::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    let first = &grids["features"][0]["properties"];
    let (code, community) = (
        first["code"].as_str().unwrap().to_string(),
        first["community"].as_str().unwrap().to_string(),
    );
    let worker_args = [
        "worker",
        "set",
        code.as_str(),
        "--name",
        "王芳",
        "--phone",
        "0717-1234567",
        "--database",
        db,
    ];
    wangge_ok(&worker_args);

    let tokens: Vec<(&str, Option<String>)> = vec![
        ("public", None),
        ("viewer", Some(token(db, "viewer", None))),
        ("planner", Some(token(db, "planner", None))),
        ("dispatcher", Some(token(db, "dispatcher", None))),
        (
            "grid_worker",
            Some(token(db, "grid_worker", Some(&community))),
        ),
        ("admin", Some(token(db, "admin", None))),
    ];
    let server = Server::start(db);

    // a few residents' reports, in fixed order, at fixed places of the first grid
    let (lon, lat) = centre(&grids["features"][0]["geometry"]);
    for (i, svc) in ["01-01", "01-02", "01-03"].iter().enumerate() {
        let body = format!(
            "service_code={svc}&lat={}&long={}&description=golden+{i}&first_name=Li&last_name=Lei&phone=13800000000",
            lat + 1e-5 * i as f64,
            lon
        );
        let r = ureq::post(&server.url("/open311/v2/requests.json"))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&body);
        let status = match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{e}"),
        };
        g.add(
            &format!("open311/post{i}.status"),
            status.to_string().as_bytes(),
        );
    }

    let mut paths: Vec<String> = vec![
        "/".into(),
        "/conformance".into(),
        "/collections".into(),
        "/openapi.json".into(),
        "/plans".into(),
        "/plans/1".into(),
        "/plans/1/diff/2".into(),
        "/incidents".into(),
        "/stats".into(),
        "/stats/h3".into(),
        "/open311/v2/services.json".into(),
        "/open311/v2/requests.json".into(),
        format!("/locate?lon={lon}&lat={lat}"),
        format!("/communities/{community}"),
    ];
    for c in ["streets", "communities", "grids", "buildings", "incidents"] {
        paths.push(format!("/collections/{c}"));
        paths.push(format!("/collections/{c}/items?limit=7"));
        paths.push(format!("/collections/{c}/items?limit=5&offset=11"));
    }
    paths.push("/collections/grids/items?plan=2&limit=5".into());
    paths.push(format!("/collections/grids/items/{code}"));
    paths.push(format!(
        "/collections/grids/items?bbox={},{},{},{}",
        lon - 0.003,
        lat - 0.003,
        lon + 0.003,
        lat + 0.003
    ));
    for layer in [
        "communities",
        "grids",
        "buildings",
        "incidents",
        "heat",
        "all",
    ] {
        paths.push(format!("/tiles/{layer}.json"));
        for z in 12..=16 {
            let (x, y) = tile_of(lon, lat, z);
            paths.push(format!("/tiles/{layer}/{z}/{x}/{y}.mvt"));
        }
    }
    for (role, tok) in &tokens {
        for p in &paths {
            let (status, mut body) = fetch(&server.url(p), tok.as_deref());
            // tiles with cases carry their clock-made ids: only the status is compared
            let staff = matches!(*role, "dispatcher" | "grid_worker" | "admin");
            if staff && (p.starts_with("/tiles/incidents/") || p.starts_with("/tiles/all/")) {
                body.clear();
            }
            let body = match serde_json::from_slice::<Value>(&body) {
                Ok(mut v) => {
                    normalise(&mut v, &server.base);
                    serde_json::to_vec_pretty(&v).unwrap()
                }
                Err(_) => body,
            };
            let key = format!("{role}{}", p.replace(['?', '&', '='], "_"));
            let mut out = format!("{status}\n").into_bytes();
            out.extend_from_slice(&body);
            g.add(&key, &out);
        }
    }
    drop(server);
    g.finish();
}

/// Mean of a polygon's outer ring.
fn centre(geom: &Value) -> (f64, f64) {
    let ring = if geom["type"] == "MultiPolygon" {
        &geom["coordinates"][0][0]
    } else {
        &geom["coordinates"][0]
    };
    let pts = ring.as_array().unwrap();
    let n = (pts.len() - 1) as f64;
    let (mut x, mut y) = (0.0, 0.0);
    for p in &pts[..pts.len() - 1] {
        x += p[0].as_f64().unwrap();
        y += p[1].as_f64().unwrap();
    }
    (x / n, y / n)
}
