//! Helpers shared by the integration tests.
#![expect(dead_code, reason = "each test crate uses some of these helpers")]

pub mod app;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `wangge` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wangge"))
}

/// `../shared/data/manhattan` beside the checkout.
pub fn manhattan() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/manhattan")
}

/// The independent checker.
pub fn checker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/check_grids.py")
}

/// Python with shapely and pyproj (scripts/test sets WANGGE_PYTHON to .venv/bin/python).
pub fn python() -> String {
    if let Ok(p) = std::env::var("WANGGE_PYTHON") {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

/// Run wangge with arguments.
pub fn wangge(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run wangge")
}

/// `wangge regrid` on the communities, buildings and roads GeoJSON files in `layers`, with
/// further arguments; insists it succeeds.
pub fn regrid_in(layers: &Path, extra: &[&str]) -> String {
    let f = |n: &str| layers.join(n).to_string_lossy().into_owned();
    let (c, b, r) = (
        f("communities.geojson"),
        f("buildings.geojson"),
        f("roads.geojson"),
    );
    let mut args = vec![
        "regrid",
        "--communities",
        &c,
        "--buildings",
        &b,
        "--roads",
        &r,
    ];
    args.extend_from_slice(extra);
    wangge_ok(&args)
}

/// Run wangge and insist it succeeds.
pub fn wangge_ok(args: &[&str]) -> String {
    let o = wangge(args);
    assert!(
        o.status.success(),
        "wangge {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run the independent checker with the band 200–400; returns (ok, its last line parsed as JSON).
pub fn check(
    communities: &Path,
    buildings: &Path,
    roads: Option<&Path>,
    grids: &Path,
    min_in_band: f64,
) -> (bool, serde_json::Value, String) {
    check_band(
        communities,
        buildings,
        roads,
        grids,
        (200, 400),
        min_in_band,
    )
}

/// Run the independent checker with a band (min, max).
pub fn check_band(
    communities: &Path,
    buildings: &Path,
    roads: Option<&Path>,
    grids: &Path,
    (min, max): (u32, u32),
    min_in_band: f64,
) -> (bool, serde_json::Value, String) {
    let mut c = Command::new(python());
    c.arg(checker())
        .arg("--communities")
        .arg(communities)
        .arg("--buildings")
        .arg(buildings)
        .arg("--grids")
        .arg(grids)
        .args([
            "--min",
            &min.to_string(),
            "--max",
            &max.to_string(),
            "--min-in-band",
            &min_in_band.to_string(),
        ]);
    if let Some(r) = roads {
        c.arg("--roads").arg(r);
    }
    let o = c
        .output()
        .expect("run the checker (python with shapely, pyproj: run scripts/test)");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("OK") || out.contains("FAIL"),
        "checker did not run (needs python with shapely and pyproj; run scripts/test):\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = out.lines().last().unwrap_or("");
    let json = last
        .split_once(' ')
        .map(|(_, j)| serde_json::from_str(j).unwrap_or_default())
        .unwrap_or_default();
    (o.status.success(), json, out)
}

/// Generate a sample city into `dir`.
pub fn sample(dir: &Path, seed: u64, communities: usize) {
    wangge_ok(&[
        "sample-city",
        "--seed",
        &seed.to_string(),
        "--communities",
        &communities.to_string(),
        "--out",
        dir.to_str().unwrap(),
    ]);
}

/// A new empty PostGIS database on the test cluster (scripts/test starts it and sets
/// WANGGE_TEST_DATABASE_URL). PostGIS tests are never skipped: without the variable they fail.
pub fn fresh_pg() -> String {
    let base = std::env::var("WANGGE_TEST_DATABASE_URL").expect(
        "WANGGE_TEST_DATABASE_URL is not set: run scripts/test, which starts a PostGIS cluster (scripts/pg-start)",
    );
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "wt_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let o = Command::new("psql")
        .args([base.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        o.status.success(),
        "cannot create a test database on {base}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("WANGGE_TEST_DATABASE_URL has no database part: {base}"),
    }
}

/// `wangge import` of the communities, buildings and roads of a sample-city folder into `db`.
pub fn import_dir(dir: &Path, db: &str) {
    let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
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
}

/// The sample district imported into `db`, regridded and published from 2025-01-01; returns
/// the number of grids.
pub fn load_sample(db: &str) -> u64 {
    import_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"),
        db,
    );
    let out = wangge_ok(&["regrid", "--database", db, "--json"]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    wangge_ok(&[
        "plans",
        "publish",
        "1",
        "--valid-from",
        "2025-01-01",
        "--exception",
        "*=样例街道：学校与商业用地为主，户数少",
        "--database",
        db,
    ]);
    j["total"]["grids"].as_u64().unwrap()
}

/// A copy of a building layer in `out` with `extra` more households in the building whose
/// `osm_id` is `osm_id`.
pub fn raise_households(buildings: &Path, osm_id: &str, extra: u64, out: &Path) {
    let mut b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(buildings).unwrap()).unwrap();
    for f in b["features"].as_array_mut().unwrap() {
        if f["properties"]["osm_id"] == osm_id {
            let h = f["properties"]["households"].as_u64().unwrap();
            f["properties"]["households"] = serde_json::json!(h + extra);
        }
    }
    std::fs::write(out, b.to_string()).unwrap();
}

/// A new API token of `role` (scoped to a code when given) on `db`.
pub fn token(db: &str, role: &str, scope: Option<&str>) -> String {
    let mut args = vec![
        "token",
        "create",
        "--role",
        role,
        "--database",
        db,
        "--json",
        "--label",
        role,
    ];
    if let Some(s) = scope {
        args.extend(["--scope", s]);
    }
    let j: serde_json::Value = serde_json::from_str(wangge_ok(&args).trim()).unwrap();
    j["token"].as_str().unwrap().to_string()
}

/// A `wangge serve` child on a free port, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
}

impl Server {
    /// Serve `db` with the default settings.
    pub fn start(db: &str) -> Server {
        Server::start_with(db, &[])
    }

    /// Serve `db` with extra arguments (e.g. `--config FILE`).
    pub fn start_with(db: &str, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(bin())
            .args(["serve", "--database", db, "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start wangge serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the serving line");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, base }
    }

    /// The full URL of a path.
    pub fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every grid valid in WGS84 and after projection to Web Mercator, CGCS2000 3° Gauss-Krüger
/// (CM 111°E, the sample's zone) and a local metric frame.
pub fn valid_everywhere(layer: &serde_json::Value) {
    type Fwd = Box<dyn Fn(geo::Coord) -> geo::Coord>;
    let frames: Vec<(&str, Fwd)> = vec![
        ("WGS84", Box::new(|c| c)),
        ("EPSG:3857", {
            let t = wangge::geom::crs::Transformer::new(
                wangge::geom::crs::Crs::Wgs84,
                "EPSG:3857".parse::<wangge::geom::crs::Crs>().unwrap(),
            )
            .unwrap();
            Box::new(move |c| t.apply(c).unwrap())
        }),
        ("EPSG:4546", {
            let t = wangge::geom::crs::Transformer::new(
                wangge::geom::crs::Crs::Wgs84,
                "EPSG:4546".parse::<wangge::geom::crs::Crs>().unwrap(),
            )
            .unwrap();
            Box::new(move |c| t.apply(c).unwrap())
        }),
        ("local", {
            let f = wangge::geom::frame::LocalFrame::new(111.3, 30.7);
            Box::new(move |c| f.fwd(c))
        }),
    ];
    let features = layer["features"].as_array().unwrap();
    // every failure, so a failing run says how many grids and where
    let mut bad = Vec::new();
    for feat in features {
        let code = feat["properties"]["code"].as_str().unwrap();
        for (name, fwd) in &frames {
            for p in polygons(&feat["geometry"]) {
                let r =
                    |l: &geo::LineString| geo::LineString(l.0.iter().map(|c| fwd(*c)).collect());
                let q = geo::Polygon::new(r(p.exterior()), p.interiors().iter().map(r).collect());
                if let Some(at) = wangge::geom::validate::find_self_intersection(&q) {
                    bad.push(format!("grid {code} crosses itself in {name} near {at:?}"));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} problems in {} grids:\n{}",
        bad.len(),
        features.len(),
        bad.join("\n")
    );
}

pub fn polygons(g: &serde_json::Value) -> Vec<geo::Polygon> {
    let ring = |r: &serde_json::Value| {
        geo::LineString(
            r.as_array()
                .unwrap()
                .iter()
                .map(|p| geo::Coord {
                    x: p[0].as_f64().unwrap(),
                    y: p[1].as_f64().unwrap(),
                })
                .collect(),
        )
    };
    let poly = |rs: &serde_json::Value| {
        let rs = rs.as_array().unwrap();
        geo::Polygon::new(ring(&rs[0]), rs[1..].iter().map(ring).collect())
    };
    match g["type"].as_str().unwrap() {
        "Polygon" => vec![poly(&g["coordinates"])],
        _ => g["coordinates"]
            .as_array()
            .unwrap()
            .iter()
            .map(poly)
            .collect(),
    }
}
