//! libFuzzer entry point for the `frame` target (body in `facegate_fuzz::frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::frame(data));
