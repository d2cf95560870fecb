//! OGC API – Features beyond Part 1 against a real server on the sample store: Part 2 CRSs
//! (checked against pyproj), Part 3 queryables and CQL2 filters and `sortby` (checked against
//! SQL on the GeoPackage), `properties`, and GDAL's OAPIF driver sending filters to the server.

mod common;
use common::{Server, load_sample, python, token};
use serde_json::Value;
use std::process::Command;

struct Fixture {
    server: Server,
    db: String,
    admin: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.gpkg").to_str().unwrap().to_string();
    load_sample(&db);
    let admin = token(&db, "admin", None);
    Fixture {
        server: Server::start(&db),
        db,
        admin,
        _dir: dir,
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Fixture {
    fn get(&self, path: &str, auth: bool) -> (u16, Value, Option<String>) {
        let mut r = ureq::get(&self.server.url(path));
        if auth {
            r = r.set("Authorization", &format!("Bearer {}", self.admin));
        }
        match r.call() {
            Ok(resp) => {
                let crs = resp.header("content-crs").map(str::to_string);
                (
                    resp.status(),
                    serde_json::from_str(&resp.into_string().unwrap()).unwrap(),
                    crs,
                )
            }
            Err(ureq::Error::Status(code, resp)) => (
                code,
                serde_json::from_str(&resp.into_string().unwrap()).unwrap(),
                None,
            ),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn codes(&self, path: &str) -> Vec<String> {
        let (st, v, _) = self.get(path, true);
        assert_eq!(st, 200, "{path}: {v}");
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn sql_codes(&self, sql: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

#[test]
fn filters_and_sorting_give_the_rows_of_sql() {
    let f = fixture();
    let (_, conf, _) = f.get("/conformance", false);
    let classes = conf["conformsTo"].to_string();
    for c in [
        "features-2/1.0/conf/crs",
        "features-3/1.0/conf/filter",
        "cql2/1.0/conf/cql2-text",
    ] {
        assert!(classes.contains(c), "{c} not claimed: {classes}");
    }
    // The SQL: grids of the published plan (the only one in force).
    let cases = [
        (
            "households > 300 AND community = '420502001001'",
            "-households,code",
            "households > 300 AND community = '420502001001' ORDER BY households DESC, code",
        ),
        (
            "(band = 'under' OR households >= 390) AND NOT street = '420502002'",
            "code",
            "(band = 'under' OR households >= 390) AND NOT street = '420502002' ORDER BY code",
        ),
        (
            "name LIKE '%第十%' AND buildings BETWEEN 5 AND 30",
            "-buildings,code",
            "name LIKE '%第十%' AND buildings BETWEEN 5 AND 30 ORDER BY buildings DESC, code",
        ),
        (
            "community IN ('420502001002', '420502001003') AND households <> 300",
            "+households,-code",
            "community IN ('420502001002', '420502001003') AND households <> 300 ORDER BY households, code DESC",
        ),
    ];
    for (filter, sortby, sql) in cases {
        let want = f.sql_codes(&format!(
            "SELECT code FROM grids WHERE plan_id = 1 AND {sql}"
        ));
        assert!(!want.is_empty(), "{sql}: the case should select rows");
        let got = f.codes(&format!(
            "/collections/grids/items?limit=1000&filter={}&sortby={}",
            enc(filter),
            enc(sortby)
        ));
        assert_eq!(got, want, "filter {filter} sortby {sortby}");
        // Paged: numberMatched counts the filtered rows; pages concatenate to the whole.
        let (_, p1, _) = f.get(
            &format!(
                "/collections/grids/items?limit=2&filter={}&sortby={}",
                enc(filter),
                enc(sortby)
            ),
            true,
        );
        assert_eq!(p1["numberMatched"].as_u64(), Some(want.len() as u64));
    }
    // S_INTERSECTS with a BBOX literal gives the rows of the bbox parameter.
    let bbox = "111.29,30.69,111.30,30.70";
    let by_param = f.codes(&format!("/collections/grids/items?limit=1000&bbox={bbox}"));
    let by_filter = f.codes(&format!(
        "/collections/grids/items?limit=1000&filter={}",
        enc(&format!("S_INTERSECTS(geometry, BBOX({bbox}))"))
    ));
    assert!(!by_param.is_empty());
    assert_eq!(by_filter, by_param);
}

#[test]
fn queryables_and_filters_respect_roles() {
    let f = fixture();
    let (st, q, _) = f.get("/collections/grids/queryables", false);
    assert_eq!(st, 200);
    assert!(q["properties"]["code"].is_object() && q["properties"]["geometry"].is_object());
    assert!(q["properties"]["households"].is_null(), "anonymous: {q}");
    let (_, q, _) = f.get("/collections/grids/queryables", true);
    assert_eq!(q["properties"]["households"]["type"], "integer");
    // A field the caller may not read cannot be filtered or sorted on: nothing leaks by count.
    for p in [
        "/collections/grids/items?filter=households%20%3E%20300",
        "/collections/grids/items?sortby=households",
        "/collections/grids/items?properties=households",
    ] {
        let (st, v, _) = f.get(p, false);
        assert_eq!(st, 400, "{p}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("queryables: code"),
            "{v}"
        );
    }
    let bad = [
        ("filter=households%20%3E", "expected a property or a value"),
        (
            "filter=nosuch%20%3D%201",
            "\\\"nosuch\\\" is not a property",
        ),
        ("filter-lang=cql2-json&filter=a", "filter-lang"),
        ("crs=EPSG:2000", "crs=\\\"EPSG:2000\\\""),
        ("bbox-crs=EPSG:3857", "without a bbox"),
    ];
    for (q, want) in bad {
        let (st, v, _) = f.get(&format!("/collections/grids/items?{q}"), true);
        assert_eq!(st, 400, "{q}: {v}");
        assert!(v.to_string().contains(want), "{q}: {v}");
    }
    // properties keeps only what was asked.
    let (_, v, _) = f.get(
        "/collections/grids/items?limit=1&properties=code,households",
        true,
    );
    let props = v["features"][0]["properties"].as_object().unwrap();
    assert_eq!(props.keys().collect::<Vec<_>>(), ["code", "households"]);
}

/// Coordinates of the first grid in CRS84 and in `crs`, and the Content-Crs header.
fn first_ring(f: &Fixture, crs: Option<&str>) -> (Vec<[f64; 2]>, Option<String>) {
    let path = match crs {
        Some(c) => format!("/collections/grids/items?limit=1&crs={}", enc(c)),
        None => "/collections/grids/items?limit=1".into(),
    };
    let (st, v, header) = f.get(&path, false);
    assert_eq!(st, 200, "{v}");
    let ring = v["features"][0]["geometry"]["coordinates"][0][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()])
        .collect();
    (ring, header)
}

#[test]
fn crs_requests_come_back_in_that_crs() {
    let f = fixture();
    let (_, c, _) = f.get("/collections/grids", false);
    let list = c["crs"].to_string();
    assert!(
        list.contains("EPSG/0/4490")
            && list.contains("EPSG/0/4546")
            && list.contains("EPSG/0/3857")
    );
    let (wgs, h) = first_ring(&f, None);
    assert_eq!(
        h.as_deref(),
        Some("<http://www.opengis.net/def/crs/OGC/1.3/CRS84>")
    );
    for code in [4490, 3857, 4546] {
        let uri = format!("http://www.opengis.net/def/crs/EPSG/0/{code}");
        let (got, h) = first_ring(&f, Some(&uri));
        assert_eq!(h, Some(format!("<{uri}>")));
        // pyproj, with the axis order EPSG defines (always_xy off): lat/lon for 4490,
        // northing/easting for the Gauss-Krüger zone, easting/northing for Web Mercator.
        let script = format!(
            "import json,sys\nfrom pyproj import Transformer\nt=Transformer.from_crs('OGC:CRS84','EPSG:{code}')\n\
             print(json.dumps([list(t.transform(x,y)) for x,y in json.load(sys.stdin)]))"
        );
        let mut child = Command::new(python())
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            serde_json::to_string(&wgs).unwrap().as_bytes(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        let want: Vec<[f64; 2]> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("pyproj: {e} {}", String::from_utf8_lossy(&out.stdout)));
        let tol = if code == 4490 { 1e-9 } else { 1e-3 };
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g[0] - w[0]).abs() < tol && (g[1] - w[1]).abs() < tol,
                "EPSG:{code}: {g:?} vs pyproj {w:?}"
            );
        }
    }
    // A bbox in Web Mercator selects the grids of the same box in CRS84.
    let ll = f.codes("/collections/grids/items?limit=1000&bbox=111.29,30.69,111.30,30.70");
    let script = "from pyproj import Transformer\nt=Transformer.from_crs('OGC:CRS84','EPSG:3857',always_xy=True)\n\
                  a=t.transform(111.29,30.69);b=t.transform(111.30,30.70)\nprint(f'{a[0]},{a[1]},{b[0]},{b[1]}')";
    let o = Command::new(python())
        .args(["-c", script])
        .output()
        .unwrap();
    let merc = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let m = f.codes(&format!(
        "/collections/grids/items?limit=1000&bbox={merc}&bbox-crs={}",
        enc("http://www.opengis.net/def/crs/EPSG/0/3857")
    ));
    assert_eq!(m, ll);
}

#[test]
fn gdal_sends_filters_to_the_server() {
    let f = fixture();
    let url = format!("OAPIF:{}", f.server.url("/collections/grids"));
    let o = Command::new("ogrinfo")
        .args([
            "-ro",
            "-al",
            "-q",
            &url,
            "-where",
            "community = '420502001001'",
        ])
        .env("CPL_DEBUG", "ON")
        .output()
        .expect("ogrinfo (gdal-bin)");
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("CQL text detected"), "{err}");
    assert!(
        err.contains("filter=community"),
        "the filter went to the server: {err}"
    );
    assert!(
        !err.contains("Full filter will be evaluated on client side"),
        "{err}"
    );
    let n = out.matches("OGRFeature(grids)").count();
    let want =
        f.sql_codes("SELECT code FROM grids WHERE plan_id = 1 AND community = '420502001001'");
    assert_eq!(n, want.len(), "{out}");
}
