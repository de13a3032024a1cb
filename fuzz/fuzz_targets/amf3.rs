//! See `tincan_fuzz::amf3` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::amf3(data));
