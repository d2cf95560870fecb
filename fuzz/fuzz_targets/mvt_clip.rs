#![no_main]
//! `cargo +nightly fuzz run mvt_clip` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::mvt_clip(data));
