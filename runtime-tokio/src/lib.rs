//! Drives the tincan sans-IO core over tokio sockets; the reference server
//! binary `tincan` lives here. The server itself arrives with the live-server
//! work; this crate currently only fixes the workspace layout.

#![forbid(unsafe_code)]

pub use tincan_core as core;
