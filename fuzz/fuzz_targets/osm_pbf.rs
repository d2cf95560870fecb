#![no_main]
//! `cargo +nightly fuzz run osm_pbf` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::osm_pbf(data));
