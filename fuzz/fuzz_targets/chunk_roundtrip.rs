//! See `tincan_fuzz::chunk_roundtrip` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::chunk_roundtrip(data));
