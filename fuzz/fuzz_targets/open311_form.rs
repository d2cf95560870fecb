#![no_main]
//! `cargo +nightly fuzz run open311_form` (see scripts/fuzz).
libfuzzer_sys::fuzz_target!(|data: &[u8]| wangge::fuzz::open311_form(data));
