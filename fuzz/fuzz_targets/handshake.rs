//! See `tincan_fuzz::handshake` (fuzz/src/) for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tincan_fuzz::handshake(data));
