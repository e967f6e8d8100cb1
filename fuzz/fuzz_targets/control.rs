//! libFuzzer entry point for the `control` target (body in `facegate_fuzz::control`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::control(data));
