//! libFuzzer entry point for the `site` target (body in `facegate_fuzz::site`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::site(data));
