//! The case loop and statistics from the command line, on the real 311 requests.
#![expect(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, one step after another"
)]

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn import_transition_escalate_and_stats() {
    let m = manhattan();
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    let grids = m.join("nyc_community_districts.geojson");
    let o = wangge(&[
        "incidents",
        "import",
        "--grids",
        s(&grids),
        "--points",
        s(&m.join("incidents_311.csv")),
        "--open",
        "--out",
        s(&cases),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (n, bad) = (
        v["cases"].as_u64().unwrap(),
        v["bad_rows"].as_u64().unwrap(),
    );
    assert_eq!(n + bad, 2122, "every row is a case or a reported bad row");
    assert!(
        bad > 0 && bad < 150,
        "types outside the catalogue are reported: {bad}"
    );
    assert!(
        v["bad"][0][1]
            .as_str()
            .unwrap()
            .contains("unknown category")
    );
    assert!(v["possible_duplicates"].as_u64().unwrap() > 0);

    let t = |args: &[&str]| {
        let mut a = vec![
            "incidents",
            "transition",
            "--cases",
            s(&cases),
            "--id",
            "54049402",
            "--who",
            "dispatcher",
        ];
        a.extend_from_slice(args);
        wangge(&a)
    };
    // illegal: 409-style refusal listing the allowed actions, nothing written
    let before = std::fs::read(&cases).unwrap();
    let o = t(&["--action", "close", "--at", "2022-05-01 09:00"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot close") && err.contains("dispatch"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cases).unwrap(), before);
    // a void without a reason is refused
    assert!(
        !t(&["--action", "void", "--at", "2022-05-01 09:00"])
            .status
            .success()
    );
    for args in [
        vec![
            "--action",
            "dispatch",
            "--unit",
            "网格员",
            "--at",
            "2022-05-02 09:00",
        ],
        vec!["--action", "handle", "--at", "2022-05-02 09:30"],
        vec![
            "--action",
            "verify",
            "--passed",
            "false",
            "--at",
            "2022-05-02 09:40",
        ],
        vec!["--action", "handle", "--at", "2022-05-02 09:50"],
        vec!["--action", "verify", "--at", "2022-05-02 10:00"],
        vec!["--action", "close", "--at", "2022-05-02 10:05"],
    ] {
        let o = t(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = std::fs::read_to_string(&cases).unwrap();
    let case: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["id"] == "54049402")
        .unwrap();
    assert_eq!(case["state"], "closed");
    assert_eq!(
        case["history"].as_array().unwrap().len(),
        8,
        "accept, open (import) + 6 transitions"
    );
    assert_eq!(case["grid"], "204");

    // everything still open a week later escalates one level
    let out = wangge_ok(&[
        "incidents",
        "escalate",
        "--cases",
        s(&cases),
        "--now",
        "2022-05-09",
    ]);
    let esc: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(esc > 1000, "{out}");

    let o = wangge_ok(&[
        "stats",
        "--grids",
        s(&grids),
        "--incidents",
        s(&cases),
        "--by",
        "grid",
        "--now",
        "2022-05-09",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(o.trim()).unwrap();
    let g204 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "204")
        .unwrap()
        .clone();
    assert!(g204["closed"].as_u64().unwrap() >= 1);
    assert_eq!(g204["on_time_rate_pct"], 100.0);
    let total: u64 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["received"].as_u64().unwrap())
        .sum();
    assert_eq!(total, n);
    let h3: u64 = v["h3"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_u64().unwrap())
        .sum();
    assert_eq!(h3, n);

    // 网格员考核: the same cases by grid worker, from a grid layer that names them
    let mut layer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&grids).unwrap()).unwrap();
    for f in layer["features"].as_array_mut().unwrap() {
        let code = f["properties"]["code"].as_str().unwrap().to_string();
        let w = if code == "204" { "张三" } else { "李四" };
        f["properties"]["worker_name"] = serde_json::json!(w);
    }
    let named = cases.with_file_name("grids-with-workers.geojson");
    std::fs::write(&named, layer.to_string()).unwrap();
    let o = wangge_ok(&[
        "stats",
        "--grids",
        s(&named),
        "--incidents",
        s(&cases),
        "--by",
        "worker",
        "--now",
        "2022-05-09",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_str(o.trim()).unwrap();
    let zs = w["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "张三")
        .unwrap()
        .clone();
    assert_eq!(zs["received"], g204["received"], "{zs}");
    assert_eq!(zs["grids"], serde_json::json!(["204"]));
    // without workers in the layer, a clear error
    let o = wangge(&[
        "stats",
        "--grids",
        s(&grids),
        "--incidents",
        s(&cases),
        "--by",
        "worker",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--by worker needs the grids' workers"));
}

#[test]
fn strict_import_fails_on_the_first_bad_row() {
    let m = manhattan();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.jsonl");
    let o = wangge(&[
        "incidents",
        "import",
        "--grids",
        s(&m.join("nyc_community_districts.geojson")),
        "--points",
        s(&m.join("incidents_311.csv")),
        "--strict",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("row 33"));
    assert!(!out.exists());
}

/// `wangge calendar check`: coverage, the warning from 1 December, exit 1 for an uncovered year,
/// and a calendar file's problems named.
#[test]
fn calendar_check_shows_coverage() {
    let ok = common::wangge(&["calendar", "check", "--today", "2026-11-30", "--json"]);
    assert!(ok.status.success());
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(j["time_zone"], "Asia/Shanghai");
    assert_eq!(j["covered"], "2025–2026");
    assert!(j["warning"].is_null());
    let dec = common::wangge(&["calendar", "check", "--today", "2026-12-01", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&dec.stdout).unwrap();
    assert!(j["warning"].as_str().unwrap().contains("2027"), "{j}");
    let late = common::wangge(&["calendar", "check", "--today", "2027-01-04"]);
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stderr).contains("does not cover 2027"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cal.toml");
    std::fs::write(
        &f,
        "years = [2026]\nmorning = [\"08:30\", \"12:00\"]\nafternoon = [\"13:30\", \"17:30\"]\n\
         weekend = [\"Sat\", \"Sun\"]\nholidays = [\"2027-01-01\"]\nmakeup_workdays = [\"2026-03-04\"]\n",
    )
    .unwrap();
    let o = common::wangge(&[
        "calendar",
        "check",
        "--calendar",
        f.to_str().unwrap(),
        "--today",
        "2026-06-01",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = j["problems"].to_string();
    assert!(
        p.contains("2026-03-04 is not a weekend day") && p.contains("2027-01-01"),
        "{p}"
    );
}
