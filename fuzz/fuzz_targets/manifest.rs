//! libFuzzer entry point for the `manifest` target (body in `facegate_fuzz::manifest`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::manifest(data));
