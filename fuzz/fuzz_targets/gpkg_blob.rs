#![no_main]
//! `cargo +nightly fuzz run gpkg_blob` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::gpkg_blob(data));
