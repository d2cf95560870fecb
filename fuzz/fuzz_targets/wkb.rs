#![no_main]
//! `cargo +nightly fuzz run wkb` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::wkb(data));
