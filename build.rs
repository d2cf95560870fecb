// Links the system PROJ library when the `proj` feature is on (Debian: libproj-dev).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_PROJ").is_some() {
        println!("cargo:rustc-link-lib=proj");
    }
}
