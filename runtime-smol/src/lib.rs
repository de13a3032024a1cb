//! Drives the tincan sans-IO core over smol tasks and async-io timers; the
//! same core as every other runtime. The adapter arrives with the runtime
//! work; this crate currently only fixes the workspace layout.

#![forbid(unsafe_code)]

pub use tincan_core as core;
