#![no_main]
//! `cargo +nightly fuzz run pmtiles` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::pmtiles(data));
