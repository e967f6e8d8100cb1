//! libFuzzer entry point for the `console` target (body in `facegate_fuzz::console`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::console(data));
