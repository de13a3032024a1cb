//! See `tincan_fuzz::message` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::message(data));
