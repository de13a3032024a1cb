//! Drives the tincan sans-IO core over mio readiness events; the same
//! core as every other runtime. The event loop arrives with the runtime
//! work; this crate currently only fixes the workspace layout.

#![forbid(unsafe_code)]

pub use tincan_core as core;
