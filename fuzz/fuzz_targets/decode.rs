//! libFuzzer entry point for the `decode` target (body in `facegate_fuzz::decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::decode(data));
