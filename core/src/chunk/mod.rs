//! The RTMP chunk stream: how messages are cut into chunks, interleaved on
//! one connection, and put back together.
//!
//! [`ChunkDecoder`] turns received bytes into [`RawMessage`]s, applying the
//! two control messages that change chunk parsing itself (Set Chunk Size and
//! Abort) at the exact point they arrive, and counting bytes for
//! acknowledgements. [`ChunkEncoder`] does the reverse without copying
//! payloads: it writes compressed chunk headers and hands back slices of the
//! shared payload, ready for a vectored write.

use bytes::Bytes;

use crate::time::MediaTime;

mod decoder;
mod encoder;

pub use decoder::{ChunkDecoder, ChunkError, DecoderLimits};
pub use encoder::ChunkEncoder;

/// The chunk size every RTMP connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// The largest message payload RTMP can describe (a 24-bit length field).
pub const MAX_MESSAGE_LEN: usize = 0x00FF_FFFF;

/// The smallest and largest chunk stream ids: ids 0 and 1 select the 2- and
/// 3-byte basic header forms, and 2 is reserved for protocol control.
pub const MIN_CSID: u32 = 2;
/// See [`MIN_CSID`]: 65599 = 64 + 65535, the reach of the 3-byte form.
pub const MAX_CSID: u32 = 65599;

/// One complete RTMP message as it crossed the chunk layer, before its
/// payload is interpreted.
///
/// The payload is a shared [`Bytes`]: cloning a `RawMessage` to hand it to
/// many subscribers costs a reference count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream the message travelled on (2..=65599).
    pub csid: u32,
    /// The absolute timestamp, after deltas and extended timestamps.
    pub timestamp: MediaTime,
    /// The message type id (see [`crate::message::type_id`]).
    pub type_id: u8,
    /// The message stream id (0 for the connection itself).
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}
