//! libFuzzer entry point for the `gallery` target (body in `facegate_fuzz::gallery`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::gallery(data));
