//! See `tincan_fuzz::tc_rtws` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::tc_rtws(data));
