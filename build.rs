// Embeds the web map's built assets (src/web/dist, made by `scripts/setup`: npm ci + esbuild).
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    embed_web();
}

/// `$OUT_DIR/web_assets.rs`: `ASSETS`, each built file of src/web/dist as (name, MIME type,
/// bytes). Without a build (no Node on this machine yet) the table is empty and the service
/// answers `/` with a page saying how to build the map.
fn embed_web() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let dist = Path::new(&manifest).join("src/web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("pub const ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for n in &names {
        let mime = match n.rsplit('.').next().unwrap_or("") {
            "html" => "text/html; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "json" => "application/json",
            "png" => "image/png",
            "svg" => "image/svg+xml",
            _ => continue,
        };
        let path = dist.join(n);
        let _ = writeln!(
            out,
            "    ({n:?}, {mime:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("web_assets.rs");
    if std::fs::read_to_string(&target).ok().as_deref() != Some(out.as_str()) {
        std::fs::write(&target, out).expect("write web_assets.rs");
    }
}
