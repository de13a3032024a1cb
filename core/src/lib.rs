//! The sans-IO protocol core of tincan, a live-media server for RTMP-family
//! ("TC") clients.
//!
//! Nothing in this crate opens a socket, spawns a thread, reads a clock or
//! draws global randomness. Every layer is a plain state machine: bytes and
//! timer events go in through `handle_*` methods, and what the layer owes the
//! peer comes out of `#[must_use] poll_*` methods that are drained until they
//! return `None`. Time is always a parameter ([`std::time::Instant`] for the
//! wall clock, [`time::MediaTime`] for RTMP's media timeline, never mixed),
//! and randomness is injected through [`entropy::Entropy`]. That makes every
//! behaviour reproducible in a test with a virtual clock and in-memory pipes,
//! and lets any executor (tokio, mio, smol, a blocking thread) drive it.
//!
//! ```text
//!            bytes from the socket                 bytes to the socket
//!                    │                                      ▲
//!                    ▼                                      │
//!   ┌──────────── handshake ─────────────┐          Vec<Bytes> (vectored)
//!   │ ServerHandshake / ClientHandshake  │──S0S1S2──────────┤
//!   └────────────────┬───────────────────┘                  │
//!                    ▼ leftover bytes                       │
//!   ┌──────────── chunk stream ──────────┐                  │
//!   │ ChunkDecoder ──► RawMessage        │  ChunkEncoder ───┘
//!   └────────────────┬───────────────────┘    ▲ headers + shared payloads
//!                    ▼                        │
//!   ┌──────────── messages ──────────────┐    │
//!   │ Message::decode: control, commands │────┘ Message::encode
//!   │ (AMF0/AMF3), data, audio, video    │
//!   └────────────────┬───────────────────┘
//!                    ▼
//!            media::{AudioTag, VideoTag}: codec, keyframe, sequence headers
//! ```
//!
//! The run-loop contract every layer follows:
//!
//! 1. Feed input with `handle_input(..)` (and `handle_timeout(now)` when the
//!    deadline from `poll_timeout()` has passed; calling it early is harmless).
//! 2. Drain outputs with `poll_*` until each returns `None`, writing any
//!    transmits to the socket in order.
//! 3. Sleep until more bytes arrive or `poll_timeout()` is reached.
//!
//! Errors are sticky: once a layer has failed, it keeps returning the same
//! error, so a caller can still flush what is queued and then close.
//! Anything the peer controls (chunk size, message length, partial chunk
//! streams, buffered bytes, AMF nesting, counts in AMF or media headers) is
//! bounded, and a declared length never allocates before the bytes arrive.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
// core/clippy.toml bans clock reads, threads, sockets, files and the
// environment in this crate, tests included: a unit test that needs a real
// instant as the arbitrary start of its virtual clock takes
// `testing::test_now()`, the one allowed clock read.

pub mod amf;
pub mod auth;
pub mod broker;
pub mod chunk;
pub mod client;
mod conn;
pub mod entropy;
pub mod event;
pub mod handshake;
pub mod ipnet;
pub mod media;
pub mod message;
pub mod outbound;
mod redact;
pub mod rtws;
pub mod server;
pub mod session;
pub mod stats;
pub mod tap;
pub mod time;
pub mod via;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Instant;

    /// A real instant, as the arbitrary start of a test's virtual clock:
    /// the test acts as the runtime, which is where the clock is read.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn test_now() -> Instant {
        Instant::now()
    }
}
