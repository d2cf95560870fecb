#![no_main]
//! `cargo +nightly fuzz run csv_rows` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::csv_rows(data));
