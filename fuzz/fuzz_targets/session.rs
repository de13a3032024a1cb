//! See `tincan_fuzz::session` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::session(data));
