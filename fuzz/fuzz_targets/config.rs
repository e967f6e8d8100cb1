//! libFuzzer entry point for the `config` target (body in `facegate_fuzz::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| facegate_fuzz::config(data));
