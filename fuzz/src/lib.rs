//! The bodies of tincan's fuzz targets, as plain functions.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling `<name>(data)`, so the
//! same code runs under libFuzzer (`cargo fuzz run <name>`) and in a plain
//! `cargo test` that replays every committed corpus and regression file
//! (`tests/tests/fuzz_replay.rs`) on the stable toolchain, without a
//! fuzzer. Every function takes the raw fuzz input and panics on a broken
//! invariant; any input is valid. See docs/fuzzing.md.

#![forbid(unsafe_code)]

mod broker;
pub mod client;
mod codec;
pub mod rtws;
pub mod script;
pub mod seed;
mod server;
mod session;
pub mod tc_rtws;

pub use broker::{broker, op as broker_op};
pub use client::client;
pub use codec::{amf0, amf3, chunk_decoder, chunk_roundtrip, handshake, media_tag, message};
pub use rtws::{op as rtws_op, rtws, rtws_seeds};
pub use server::{connection_ids, op as server_op, server, server_run, ServerRun};
pub use session::{op as session_op, session};
pub use tc_rtws::{op as tc_rtws_op, tc_rtws, tc_rtws_seeds};

/// A target's body: panics on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name, for replay and seeding.
pub const TARGETS: &[(&str, Target)] = &[
    ("amf0", amf0),
    ("amf3", amf3),
    ("broker", broker),
    ("chunk_decoder", chunk_decoder),
    ("chunk_roundtrip", chunk_roundtrip),
    ("client", client),
    ("handshake", handshake),
    ("media_tag", media_tag),
    ("message", message),
    ("rtws", rtws),
    ("server", server),
    ("session", session),
    ("tc_rtws", tc_rtws),
];
