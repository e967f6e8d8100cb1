//! libFuzzer entry point for the `scenario` target (body in `facegate_fuzz::scenario`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::scenario(data));
