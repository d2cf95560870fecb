#![no_main]
//! `cargo +nightly fuzz run mvt_clip` (see scripts/fuzz).
//!
//! The clipper catches panics of geo's boolean operations (`catch_unwind`) and leaves such a
//! feature out; libFuzzer's panic hook would abort before that, so this target installs a
//! silent hook. A panic nothing catches still unwinds into libfuzzer-sys, which reports it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    wangge::fuzz::mvt_clip(data);
});
