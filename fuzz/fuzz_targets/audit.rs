//! libFuzzer entry point for the `audit` target (body in `facegate_fuzz::audit`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::audit(data));
