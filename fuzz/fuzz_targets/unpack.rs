#![no_main]
//! Fuzz target (filled in by its own change).
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
