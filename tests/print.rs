//! Printed signboards and atlases (issue 20) on the shipped sample district: the real binary
//! prints, and poppler (`pdftotext`, `pdffonts`, `pdfinfo`, `pdftoppm`) and zbar (`zbarimg`)
//! read the result as a user's tools would. Rendered pages are left in `target/print-test/` to
//! look at.

mod common;

use common::{Server, load_sample, token, wangge, wangge_ok};
use std::path::{Path, PathBuf};
use std::process::Command;

const BASE: &str = "https://grid.example.gov.cn";
/// A grid of the sample bounded on the west by the arterial 发展大道.
const GRID: &str = "420502001001003";
const COMMUNITY: &str = "420502001001";

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/print-test")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is missing ({e}): scripts/setup installs poppler-utils and zbar-tools")
    });
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text_of(pdf: &Path) -> String {
    tool("pdftotext", &["-layout", pdf.to_str().unwrap(), "-"])
}

/// A store with the sample district published, and a worker with a photo on GRID.
fn sample_store(d: &Path) -> String {
    let db = d.join("sample.gpkg").to_str().unwrap().to_string();
    load_sample(&db);
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/doc/map.png");
    wangge_ok(&[
        "worker",
        "set",
        GRID,
        "--name",
        "张晓梅",
        "--phone",
        "0717-6221234",
        "--photo",
        photo.to_str().unwrap(),
        "--database",
        &db,
    ]);
    db
}

fn print(db: &str, extra: &[&str]) -> std::process::Output {
    let mut a = vec!["print", "--database", db, "--base-url", BASE];
    a.extend_from_slice(extra);
    wangge(&a)
}

fn print_ok(db: &str, extra: &[&str]) {
    let o = print(db, extra);
    assert!(
        o.status.success(),
        "wangge print {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_signboard_reads_back_with_poppler_and_zbar() {
    let d = dir("signboard");
    let db = sample_store(&d);
    let pdf = d.join("signboard.pdf");
    print_ok(&db, &["--grid", GRID, "--out", pdf.to_str().unwrap()]);
    let text = text_of(&pdf);
    for want in [
        GRID,
        "白龙里社区第三网格",
        "张晓梅",
        "0717-6221234",
        "四至范围",
        "西至 发展大道",
    ] {
        assert!(text.contains(want), "the signboard lacks {want:?}:\n{text}");
    }
    assert!(
        !text.contains("户数"),
        "no household count on a public signboard:\n{text}"
    );
    // the CJK font embedded as a subset
    let fonts = tool("pdffonts", &[pdf.to_str().unwrap()]);
    let cjk: Vec<&str> = fonts
        .lines()
        .filter(|l| l.contains("NotoSansCJK"))
        .collect();
    assert!(!cjk.is_empty(), "{fonts}");
    for l in &cjk {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let n = cols.len();
        assert_eq!(
            &cols[n - 5..n - 2],
            ["yes", "yes", "yes"],
            "emb sub uni: {l}"
        );
        assert!(cols[0].contains('+'), "a subset font is tagged: {l}");
    }
    // rendered by poppler, kept to look at; the QR code decodes to the grid's page
    let png = d.join("signboard");
    tool(
        "pdftoppm",
        &[
            "-r",
            "150",
            "-png",
            "-singlefile",
            pdf.to_str().unwrap(),
            png.to_str().unwrap(),
        ],
    );
    let qr = tool(
        "zbarimg",
        &["-q", "--raw", d.join("signboard.png").to_str().unwrap()],
    );
    assert_eq!(qr.trim(), format!("{BASE}/?grid={GRID}"));
    // the same input, the same bytes
    let again = d.join("again.pdf");
    print_ok(&db, &["--grid", GRID, "--out", again.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&pdf).unwrap(),
        std::fs::read(&again).unwrap(),
        "deterministic PDF"
    );
    variants(&d, &db);
}

/// The office's copy, A3 landscape, and a PNG straight from wangge.
fn variants(d: &Path, db: &str) {
    // the office's copy: households, buildings, band
    let internal = d.join("internal.pdf");
    print_ok(
        db,
        &[
            "--grid",
            GRID,
            "--out",
            internal.to_str().unwrap(),
            "--internal",
        ],
    );
    let t = text_of(&internal);
    assert!(t.contains("户数") && t.contains("内部资料"), "{t}");
    // A3 landscape, and a PNG straight from wangge
    let a3 = d.join("a3.pdf");
    print_ok(
        db,
        &[
            "--grid",
            GRID,
            "--out",
            a3.to_str().unwrap(),
            "--size",
            "A3",
            "--landscape",
        ],
    );
    let info = tool("pdfinfo", &[a3.to_str().unwrap()]);
    assert!(info.contains("1190.55 x 841.89"), "A3 landscape: {info}");
    let p = d.join("own.png");
    print_ok(
        db,
        &[
            "--grid",
            GRID,
            "--out",
            p.to_str().unwrap(),
            "--png",
            "--dpi",
            "100",
        ],
    );
    let bytes = std::fs::read(&p).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let qr = tool("zbarimg", &["-q", "--raw", p.to_str().unwrap()]);
    assert_eq!(qr.trim(), format!("{BASE}/?grid={GRID}"));
}

#[test]
fn an_atlas_has_an_overview_a_table_and_a_page_per_grid() {
    let d = dir("atlas");
    let db = sample_store(&d);
    let pdf = d.join("atlas.pdf");
    print_ok(
        &db,
        &["--community", COMMUNITY, "--out", pdf.to_str().unwrap()],
    );
    let text = text_of(&pdf);
    let codes: Vec<String> = (1..=40)
        .map(|i| format!("{COMMUNITY}{i:03}"))
        .filter(|c| text.contains(c.as_str()))
        .collect();
    assert!(codes.len() >= 5, "{codes:?}");
    assert!(text.contains("网格图册") && text.contains("网格一览") && text.contains("张晓梅"));
    assert!(
        text.contains("户数"),
        "the atlas is the office's: households on grid pages"
    );
    let info = tool("pdfinfo", &[pdf.to_str().unwrap()]);
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pages, 1 + codes.len().div_ceil(34) + codes.len(), "{info}");
    tool(
        "pdftoppm",
        &[
            "-r",
            "100",
            "-png",
            "-f",
            "1",
            "-l",
            "2",
            pdf.to_str().unwrap(),
            d.join("page").to_str().unwrap(),
        ],
    );
    // every community at once, one file each
    let all = d.join("all");
    print_ok(&db, &["--community", "all", "--out", all.to_str().unwrap()]);
    assert_eq!(std::fs::read_dir(&all).unwrap().count(), 12);
}

#[test]
fn print_refuses_bad_input_and_writes_nothing() {
    let d = dir("bad");
    let db = sample_store(&d);
    let out = d.join("x.pdf");
    let o = &out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--grid", "420502001001999", "--out", o],
            "420502001001999",
        ),
        (&["--community", "999", "--out", o], "999"),
        (&["--community", COMMUNITY, "--out", o, "--png"], "--png"),
        (&["--grid", GRID, "--out", o, "--size", "B5"], "B5"),
        (&["--grid", GRID, "--out", o, "--plan", "42"], "42"),
    ];
    for (args, named) in cases {
        let r = print(&db, args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(named),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} left a file");
    }
    // the QR needs the public address
    let r = Command::new(common::bin())
        .args(["print", "--database", &db, "--grid", GRID, "--out", o])
        .env_remove("WANGGE_PUBLIC_URL")
        .output()
        .unwrap();
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("--base-url"));
    let r = print(&db, &["--grid", GRID, "--out", o, "--base-url", "ftp://x"]);
    assert!(!r.status.success());
    // a photo that is not an image
    let fake = d.join("photo.jpg");
    std::fs::write(&fake, b"not a picture").unwrap();
    let r = wangge(&[
        "worker",
        "set",
        GRID,
        "--name",
        "李",
        "--photo",
        fake.to_str().unwrap(),
        "--database",
        &db,
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("photo.jpg") && err.contains("JPEG or PNG"),
        "{err}"
    );
}

/// Every street a signboard names bounds its grid: a named road of the sample within reach of
/// the grid's boundary; every other name is a grid of the plan.
#[test]
fn the_four_boundaries_name_streets_that_bound_the_grid() {
    use geo::{Distance, Euclidean};
    let d = dir("sizhi");
    let db = sample_store(&d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = wangge::store::open(Some(&db)).await.unwrap();
        let src = wangge::print::source::Source::load(store.as_ref(), None, 1_800_000_000)
            .await
            .unwrap();
        let roads = store.roads().await.unwrap();
        let names: std::collections::HashSet<String> =
            src.grids.iter().map(wangge::print::short_name).collect();
        let mut named_roads = 0;
        for g in &src.grids {
            let (sheet, _) = src.grid_sheet(store.as_ref(), &g.code, BASE).await.unwrap();
            for side in &sheet.sizhi {
                for n in side {
                    if names.contains(n) || src.grids.iter().any(|o| &o.name == n) {
                        continue;
                    }
                    named_roads += 1;
                    // within 40 m (≈ 0.0004° here) of the grid
                    let near = roads
                        .iter()
                        .filter(|r| r.name.as_deref() == Some(n.as_str()))
                        .any(|r| {
                            g.geometry
                                .0
                                .iter()
                                .any(|p| Euclidean.distance(p.exterior(), &r.line) < 0.0004)
                        });
                    assert!(near, "grid {}: {n} does not run along it", g.code);
                }
            }
        }
        assert!(named_roads > 50, "streets named on {named_roads} sides");
        let (s, _) = src.grid_sheet(store.as_ref(), GRID, BASE).await.unwrap();
        assert_eq!(s.sizhi[2], vec!["发展大道".to_string()], "west of {GRID}");
    });
}

#[test]
fn signboards_and_atlases_over_http() {
    let d = dir("http");
    let db = sample_store(&d);
    let viewer = token(&db, "viewer", None);
    let scoped = token(&db, "viewer", Some("420502002001"));
    let admin = token(&db, "admin", None);
    let planner = token(&db, "planner", None);
    let srv = Server::start(&db);
    let get = |path: &str, tok: Option<&str>| {
        let mut r = ureq::get(&srv.url(path));
        if let Some(t) = tok {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        match r.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let body = |r: ureq::Response| {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut b).unwrap();
        b
    };
    // the public signboard
    let r = get(&format!("/grids/{GRID}/signboard.pdf"), None);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    let pdf = d.join("http.pdf");
    std::fs::write(&pdf, body(r)).unwrap();
    let t = text_of(&pdf);
    assert!(t.contains("张晓梅") && !t.contains("户数"), "{t}");
    // the QR code points at the address the request came to (no public_base_url configured)
    assert!(t.contains(GRID));
    // the office's copy needs staff
    assert_eq!(
        get(&format!("/grids/{GRID}/signboard.pdf?internal=true"), None).status(),
        401
    );
    let r = get(
        &format!("/grids/{GRID}/signboard.pdf?internal=true"),
        Some(&viewer),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    std::fs::write(&pdf, body(r)).unwrap();
    assert!(text_of(&pdf).contains("户数"));
    // PNG
    let r = get(&format!("/grids/{GRID}/signboard.png?dpi=72"), None);
    assert_eq!(r.header("content-type"), Some("image/png"));
    // errors as JSON naming what was wrong
    for (path, status, named) in [
        ("/grids/nope/signboard.pdf", 404, "nope"),
        (&*format!("/grids/{GRID}/signboard.pdf?size=B5"), 400, "B5"),
        (
            &*format!("/grids/{GRID}/signboard.pdf?landscape=maybe"),
            400,
            "landscape",
        ),
        (
            &*format!("/grids/{GRID}/signboard.png?dpi=5000"),
            400,
            "dpi",
        ),
        (
            &*format!("/grids/{GRID}/signboard.pdf?plan=1"),
            401,
            "plans",
        ),
    ] {
        let r = get(path, None);
        assert_eq!(r.status(), status, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body(r)).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains(named),
            "{path}: {v}"
        );
    }
    // the atlas: staff only, and a scoped token only for its own community or street
    let atlas = format!("/communities/{COMMUNITY}/atlas.pdf");
    assert_eq!(get(&atlas, None).status(), 401);
    assert_eq!(get(&atlas, Some(&scoped)).status(), 403);
    let r = get(&atlas, Some(&viewer));
    assert_eq!(r.status(), 200);
    assert!(body(r).starts_with(b"%PDF-"));
    assert_eq!(
        get("/communities/420502002001/atlas.pdf", Some(&scoped)).status(),
        200
    );
    // the worker's photo: public to read, admin to set (an image), an empty body removes it
    let photo = format!("/grids/{GRID}/worker/photo");
    let r = get(&photo, None);
    assert_eq!(
        (r.status(), r.header("content-type")),
        (200, Some("image/png"))
    );
    let post = |tok: &str, bytes: &[u8]| match ureq::post(&srv.url(&photo))
        .set("Authorization", &format!("Bearer {tok}"))
        .send_bytes(bytes)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r.status(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(post(&planner, b"\xFF\xD8\xFF"), 403);
    assert_eq!(post(&admin, b"GIF89a......"), 422);
    assert_eq!(post(&admin, b""), 200);
    assert_eq!(get(&photo, None).status(), 404);
}
