#![no_main]
//! `cargo +nightly fuzz run geojson` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::geojson(data));
