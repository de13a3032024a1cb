//! Receiving side of the chunk stream: bytes in, [`RawMessage`]s out.
//!
//! The decoder is the first thing a peer's bytes touch after the handshake,
//! so everything it keeps is bounded by [`DecoderLimits`] and grows only with
//! bytes that actually arrived: a header that *declares* a 16 MiB message
//! costs nothing until the 16 MiB are on the wire.
//!
//! The conventions it follows where implementations disagree are listed
//! in the [`chunk`](super) module docs.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use super::{RawMessage, DEFAULT_CHUNK_SIZE};
use crate::message::type_id;
use crate::time::MediaTime;

/// The largest chunk size the protocol can express: Set Chunk Size carries 31
/// bits, the top bit must be zero.
const PROTOCOL_MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// The 24-bit timestamp value that announces a 4-byte extended timestamp.
const EXTENDED_MARKER: u32 = 0x00FF_FFFF;

/// How much an assembled message reserves before more of it arrives, so that
/// a declared length never allocates ahead of received bytes.
const INITIAL_ASSEMBLY_CAPACITY: usize = 4096;

/// Bounds on what a peer can make the decoder hold.
///
/// Every field is something the remote side controls by what it sends; each
/// has its own [`ChunkError`] so an operator can tell which one tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// The largest chunk size a Set Chunk Size may select.
    pub max_chunk_size: u32,
    /// The largest message length a header may declare.
    pub max_message_len: usize,
    /// How many chunk streams may have a message half received at once.
    pub max_partial_streams: usize,
    /// How many distinct chunk stream ids the peer may use (each keeps its
    /// last header so later compressed headers can refer to it).
    pub max_chunk_streams: usize,
    /// The most bytes held at once: unparsed input plus partially assembled
    /// messages. Must stay above `max_message_len` plus a few headers, or a
    /// legal message can never complete.
    pub max_buffered_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            // Payload is buffered as it arrives, not by chunk size, so a huge
            // chunk size costs no memory; the protocol maximum keeps every
            // real encoder working (some send 0x7FFFFFFF to mean "never
            // split"). Lower it only to reject odd peers.
            max_chunk_size: PROTOCOL_MAX_CHUNK_SIZE,
            // 4K keyframes at high bitrates reach a few MiB; 8 MiB leaves
            // headroom while keeping one message well under the buffer cap.
            max_message_len: 8 * 1024 * 1024,
            // Real encoders interleave audio, video, data and commands: a
            // handful of chunk streams. 32 is generous and still bounds the
            // per-stream bookkeeping.
            max_partial_streams: 32,
            // Clients use fewer than ten chunk stream ids; 256 tolerates
            // unusual but legal allocators while bounding the header map.
            max_chunk_streams: 256,
            // Twice the largest message: one message can complete while
            // other streams hold partial ones.
            max_buffered_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the chunk stream can no longer be parsed.
///
/// Each variant names one rule the peer broke, so logs and metrics say which
/// limit or protocol rule tripped. Errors are sticky: once returned, every
/// later call returns the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Accepting the input would hold more than
    /// [`DecoderLimits::max_buffered_bytes`].
    #[error("buffered bytes would reach {buffered}, above the limit of {limit}")]
    BufferLimit {
        /// What would have been buffered.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A header declared a message longer than
    /// [`DecoderLimits::max_message_len`].
    #[error("chunk stream {csid} declared a {len}-byte message, above the limit of {limit}")]
    MessageTooLong {
        /// The chunk stream of the header.
        csid: u32,
        /// The declared length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More chunk streams than [`DecoderLimits::max_partial_streams`] would
    /// have a message in progress.
    #[error("more than {limit} chunk streams with a partial message")]
    TooManyPartialStreams {
        /// The configured limit.
        limit: usize,
    },
    /// More distinct chunk stream ids than
    /// [`DecoderLimits::max_chunk_streams`] were used.
    #[error("more than {limit} chunk streams in use")]
    TooManyChunkStreams {
        /// The configured limit.
        limit: usize,
    },
    /// A compressed header (type 1, 2 or 3) referred to a chunk stream with
    /// no earlier header to take the missing fields from.
    #[error("type-{fmt} chunk header on chunk stream {csid}, which has no previous header")]
    UnknownChunkStream {
        /// The chunk stream of the header.
        csid: u32,
        /// The header type (1, 2 or 3).
        fmt: u8,
    },
    /// A header in the middle of a message changed its length, type or
    /// stream id (the shape of FFmpeg CVE-2016-10191).
    #[error("chunk stream {csid} changed its message header in the middle of a message")]
    HeaderChangedMidMessage {
        /// The chunk stream of the header.
        csid: u32,
    },
    /// Set Chunk Size asked for 0 or set the reserved top bit.
    #[error("invalid chunk size {size}")]
    InvalidChunkSize {
        /// The requested size.
        size: u32,
    },
    /// Set Chunk Size asked for more than
    /// [`DecoderLimits::max_chunk_size`].
    #[error("chunk size {size} is above the limit of {limit}")]
    ChunkSizeAboveLimit {
        /// The requested size.
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// A control message the decoder must apply had a payload too short to
    /// carry its value.
    #[error("control message of type {type_id} has a {len}-byte payload")]
    MalformedControl {
        /// The message type.
        type_id: u8,
        /// The payload length received.
        len: usize,
    },
}

/// What the decoder remembers about one chunk stream: the last header, so
/// that compressed headers can fill in what they leave out, and the message
/// being assembled, if any.
#[derive(Debug)]
struct StreamState {
    /// Timestamp of the last message started here: the base for deltas.
    timestamp: MediaTime,
    /// The last timestamp field value (absolute for type 0, a delta for
    /// types 1 and 2), which a type-3 header starting a message adds again.
    delta: u32,
    /// Whether that field was sent as an extended timestamp, which makes
    /// type-3 chunks (may) carry 4 more bytes.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    partial: Option<Partial>,
}

/// A message whose first chunks have arrived.
#[derive(Debug)]
struct Partial {
    timestamp: MediaTime,
    /// Grown towards the declared length as chunks arrive (never beyond it),
    /// then handed out as `Bytes` without a copy.
    payload: Vec<u8>,
}

/// What one parsing step achieved.
enum Step {
    /// Not enough bytes buffered for the next chunk.
    NeedMore,
    /// A chunk was consumed without completing a message.
    Progress,
    /// A message completed.
    Message(RawMessage),
}

/// The fields of a chunk header as read from the wire, before they are
/// merged with the chunk stream's remembered state.
struct WireHeader {
    fmt: u8,
    csid: u32,
    /// The 24-bit timestamp or delta field (types 0-2).
    ts_field: Option<u32>,
    length: Option<u32>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
    /// Bytes taken by the basic and message headers.
    len: usize,
}

/// Turns the bytes of an RTMP connection (after the handshake) into complete
/// messages.
///
/// Sans-IO: feed bytes with [`handle_input`](Self::handle_input), then drain
/// [`poll_message`](Self::poll_message) until it returns `Ok(None)` and
/// [`poll_acknowledgement`](Self::poll_acknowledgement) until `None`.
/// Set Chunk Size, Abort and Window Acknowledgement Size are applied the
/// moment they complete, so the very next chunk is read under the new rules.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    /// Received bytes not yet parsed into chunks.
    buf: BytesMut,
    chunk_size: u32,
    streams: HashMap<u32, StreamState>,
    /// Chunk streams whose `partial` is `Some`.
    partial_streams: usize,
    /// Bytes held in partial payloads, for the buffer limit.
    partial_bytes: usize,
    /// Bytes received in total (handshake included if the session adds it).
    bytes_received: u64,
    /// `bytes_received` when the last acknowledgement was due.
    last_ack: u64,
    /// The peer's acknowledgement window; 0 until it sends one.
    ack_window: u32,
    error: Option<ChunkError>,
}

impl ChunkDecoder {
    /// A decoder at the start of a connection: chunk size 128, no chunk
    /// streams known, no acknowledgement window.
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            buf: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            partial_streams: 0,
            partial_bytes: 0,
            bytes_received: 0,
            last_ack: 0,
            ack_window: 0,
            error: None,
        }
    }

    /// The chunk size the peer currently sends with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Every byte counted towards acknowledgements so far (not wrapped; the
    /// Acknowledgement message carries it modulo 2^32).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes held right now: unparsed input plus partially assembled
    /// messages. This is what [`DecoderLimits::max_buffered_bytes`] bounds.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.partial_bytes
    }

    /// The acknowledgement window the peer asked for, 0 if it has not.
    pub fn window_ack_size(&self) -> u32 {
        self.ack_window
    }

    /// Sets the acknowledgement window as if the peer had sent Window
    /// Acknowledgement Size; 0 stops acknowledging. The decoder already does
    /// this itself when the message arrives; this is for sessions that learn
    /// the window another way.
    pub fn set_window_ack_size(&mut self, window: u32) {
        self.ack_window = window;
    }

    /// Counts bytes the session consumed before the chunk layer (the
    /// handshake, 3073 bytes from a client), so acknowledgements report
    /// every byte of the connection as librtmp and SRS do. Leave it out to
    /// count like FFmpeg, which starts after the handshake.
    pub fn add_handshake_bytes(&mut self, n: u64) {
        self.bytes_received = self.bytes_received.wrapping_add(n);
    }

    /// Buffers received bytes.
    ///
    /// Fails with [`ChunkError::BufferLimit`] (and buffers nothing) if the
    /// decoder would then hold more than
    /// [`DecoderLimits::max_buffered_bytes`]; drain
    /// [`poll_message`](Self::poll_message) between inputs to stay under it.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ChunkError> {
        self.check_error()?;
        let buffered = self.buffered_bytes().saturating_add(data.len());
        if buffered > self.limits.max_buffered_bytes {
            return Err(self.fail(ChunkError::BufferLimit {
                buffered,
                limit: self.limits.max_buffered_bytes,
            }));
        }
        self.buf.extend_from_slice(data);
        self.bytes_received = self.bytes_received.wrapping_add(data.len() as u64);
        Ok(())
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// A message that arrived in one chunk shares the input buffer (no
    /// copy); longer ones are assembled. Control messages the decoder
    /// applies are returned too, so upper layers can see them.
    #[must_use = "a decoded message or error must be handled"]
    pub fn poll_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        self.check_error()?;
        loop {
            match self.step() {
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Progress) => continue,
                Ok(Step::Message(msg)) => {
                    if let Err(e) = self.apply_control(&msg) {
                        return Err(self.fail(e));
                    }
                    return Ok(Some(msg));
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// The sequence number to send in an Acknowledgement, once the bytes
    /// received since the last one reach the peer's window.
    ///
    /// The number is the total received modulo 2^32, as the protocol's
    /// 32-bit field wraps.
    #[must_use = "a due acknowledgement must be sent"]
    pub fn poll_acknowledgement(&mut self) -> Option<u32> {
        if self.ack_window == 0 {
            return None;
        }
        let since = self.bytes_received.wrapping_sub(self.last_ack);
        if since < u64::from(self.ack_window) {
            return None;
        }
        self.last_ack = self.bytes_received;
        // Truncation is the protocol's modulo 2^32.
        Some(self.bytes_received as u32)
    }

    /// Starts the byte counter at `n`, to exercise the 2^32 wrap.
    #[cfg(test)]
    pub(crate) fn set_bytes_received(&mut self, n: u64) {
        self.bytes_received = n;
        self.last_ack = n;
    }

    fn check_error(&self) -> Result<(), ChunkError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error so every later call repeats it.
    fn fail(&mut self, e: ChunkError) -> ChunkError {
        tracing::debug!(error = %e, "chunk stream failed");
        self.error = Some(e.clone());
        e
    }

    /// Reads the basic and message header at the front of the buffer without
    /// consuming anything; `None` if they have not fully arrived.
    fn peek_header(&self) -> Option<WireHeader> {
        let b = &self.buf[..];
        let b0 = *b.first()?;
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => (64 + u32::from(*b.get(1)?), 2),
            1 => {
                let lo = u32::from(*b.get(1)?);
                let hi = u32::from(*b.get(2)?);
                (64 + lo + (hi << 8), 3)
            }
            n => (u32::from(n), 1),
        };
        let mh_len = [11, 7, 3, 0][usize::from(fmt)];
        let mh = b.get(pos..pos + mh_len)?;
        pos += mh_len;
        let be24 = |s: &[u8]| u32::from(s[0]) << 16 | u32::from(s[1]) << 8 | u32::from(s[2]);
        let mut h = WireHeader {
            fmt,
            csid,
            ts_field: None,
            length: None,
            type_id: None,
            stream_id: None,
            len: pos,
        };
        if fmt <= 2 {
            h.ts_field = Some(be24(&mh[0..3]));
        }
        if fmt <= 1 {
            h.length = Some(be24(&mh[3..6]));
            h.type_id = Some(mh[6]);
        }
        if fmt == 0 {
            h.stream_id = Some(u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]));
        }
        Some(h)
    }

    /// Parses one chunk if it is entirely buffered. Nothing is consumed or
    /// changed unless the whole chunk is there, so a partial chunk is simply
    /// parsed again when more bytes arrive.
    fn step(&mut self) -> Result<Step, ChunkError> {
        let Some(h) = self.peek_header() else {
            return Ok(Step::NeedMore);
        };
        let csid = h.csid;
        let state = self.streams.get(&csid);
        let Some(state) = state else {
            return self.step_fresh(h);
        };

        // Extended timestamp: always after an 0xFFFFFF field; after a type-3
        // header only if it is there (see the module docs).
        let mut pos = h.len;
        let ext = match h.ts_field {
            Some(EXTENDED_MARKER) => {
                let Some(v) = read_be32(&self.buf, pos) else {
                    return Ok(Step::NeedMore);
                };
                pos += 4;
                Some(v)
            }
            Some(_) => None,
            None if state.extended => {
                let Some(v) = read_be32(&self.buf, pos) else {
                    return Ok(Step::NeedMore);
                };
                let matches_abs = state
                    .partial
                    .as_ref()
                    .is_some_and(|p| p.timestamp.as_millis() == v);
                if v == state.delta || matches_abs {
                    pos += 4;
                }
                None
            }
            None => None,
        };

        if let Some(partial) = &state.partial {
            // Continuation of a message in progress.
            if h.length.is_some_and(|l| l != state.length)
                || h.type_id.is_some_and(|t| t != state.type_id)
                || h.stream_id.is_some_and(|s| s != state.stream_id)
            {
                return Err(ChunkError::HeaderChangedMidMessage { csid });
            }
            let remaining = state.length as usize - partial.payload.len();
            let n = remaining.min(self.chunk_size as usize);
            if self.buf.len() < pos + n {
                return Ok(Step::NeedMore);
            }
            self.buf.advance(pos);
            let chunk = self.buf.split_to(n);
            let Some(state) = self.streams.get_mut(&csid) else {
                unreachable!("found above in this step");
            };
            let Some(partial) = state.partial.as_mut() else {
                unreachable!("checked above in this step");
            };
            grow_towards(&mut partial.payload, n, state.length as usize);
            partial.payload.extend_from_slice(&chunk);
            self.partial_bytes += n;
            if n < remaining {
                return Ok(Step::Progress);
            }
            let msg = RawMessage {
                csid,
                timestamp: partial.timestamp,
                type_id: state.type_id,
                stream_id: state.stream_id,
                payload: Bytes::new(),
            };
            let payload = state.partial.take().map(|p| p.payload).unwrap_or_default();
            self.partial_streams -= 1;
            self.partial_bytes -= payload.len();
            return Ok(Step::Message(RawMessage {
                payload: Bytes::from(payload),
                ..msg
            }));
        }

        // A new message on a known chunk stream.
        let (timestamp, delta, extended) = match (h.fmt, h.ts_field) {
            (0, Some(field)) => {
                let abs = ext.unwrap_or(field);
                (MediaTime::from_millis(abs), abs, field == EXTENDED_MARKER)
            }
            (_, Some(field)) => {
                let d = ext.unwrap_or(field);
                (state.timestamp.wrapping_add(d), d, field == EXTENDED_MARKER)
            }
            (_, None) => (
                state.timestamp.wrapping_add(state.delta),
                state.delta,
                state.extended,
            ),
        };
        let length = h.length.unwrap_or(state.length);
        let type_id = h.type_id.unwrap_or(state.type_id);
        let stream_id = h.stream_id.unwrap_or(state.stream_id);
        let header = NewMessage {
            csid,
            timestamp,
            delta,
            extended,
            length,
            type_id,
            stream_id,
            pos,
        };
        self.start_message(header)
    }

    /// A header on a chunk stream never seen before.
    fn step_fresh(&mut self, h: WireHeader) -> Result<Step, ChunkError> {
        let librtmp_ping = h.fmt == 1 && h.csid == 2;
        if h.fmt != 0 && !librtmp_ping {
            return Err(ChunkError::UnknownChunkStream {
                csid: h.csid,
                fmt: h.fmt,
            });
        }
        if self.streams.len() >= self.limits.max_chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                limit: self.limits.max_chunk_streams,
            });
        }
        // Both header kinds allowed here carry a timestamp field.
        let field = h.ts_field.unwrap_or(0);
        let mut pos = h.len;
        let mut value = field;
        if field == EXTENDED_MARKER {
            let Some(v) = read_be32(&self.buf, pos) else {
                return Ok(Step::NeedMore);
            };
            pos += 4;
            value = v;
        }
        // A type-1 header here is a delta from a zero base.
        let header = NewMessage {
            csid: h.csid,
            timestamp: MediaTime::from_millis(value),
            delta: value,
            extended: field == EXTENDED_MARKER,
            length: h.length.unwrap_or(0),
            type_id: h.type_id.unwrap_or(0),
            stream_id: h.stream_id.unwrap_or(0),
            pos,
        };
        self.start_message(header)
    }

    /// Checks the limits for a new message, then, if its first chunk is
    /// buffered, records the header and consumes the chunk.
    fn start_message(&mut self, m: NewMessage) -> Result<Step, ChunkError> {
        let length = m.length as usize;
        if length > self.limits.max_message_len {
            return Err(ChunkError::MessageTooLong {
                csid: m.csid,
                len: length,
                limit: self.limits.max_message_len,
            });
        }
        let n = length.min(self.chunk_size as usize);
        let single = n == length;
        if !single && self.partial_streams >= self.limits.max_partial_streams {
            return Err(ChunkError::TooManyPartialStreams {
                limit: self.limits.max_partial_streams,
            });
        }
        if self.buf.len() < m.pos + n {
            return Ok(Step::NeedMore);
        }
        self.buf.advance(m.pos);
        let partial = if single {
            None
        } else {
            let mut payload = Vec::with_capacity(length.min(INITIAL_ASSEMBLY_CAPACITY.max(n)));
            payload.extend_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            self.partial_streams += 1;
            self.partial_bytes += n;
            Some(Partial {
                timestamp: m.timestamp,
                payload,
            })
        };
        let state = StreamState {
            timestamp: m.timestamp,
            delta: m.delta,
            extended: m.extended,
            length: m.length,
            type_id: m.type_id,
            stream_id: m.stream_id,
            partial,
        };
        self.streams.insert(m.csid, state);
        if !single {
            return Ok(Step::Progress);
        }
        // The whole message is in this chunk: hand out the input buffer's
        // bytes themselves.
        let payload = self.buf.split_to(n).freeze();
        Ok(Step::Message(RawMessage {
            csid: m.csid,
            timestamp: m.timestamp,
            type_id: m.type_id,
            stream_id: m.stream_id,
            payload,
        }))
    }

    /// Applies the control messages that change how chunks are read.
    fn apply_control(&mut self, msg: &RawMessage) -> Result<(), ChunkError> {
        let value = || {
            read_be32(&msg.payload, 0).ok_or(ChunkError::MalformedControl {
                type_id: msg.type_id,
                len: msg.payload.len(),
            })
        };
        match msg.type_id {
            type_id::SET_CHUNK_SIZE => {
                let size = value()?;
                if size == 0 || size > PROTOCOL_MAX_CHUNK_SIZE {
                    return Err(ChunkError::InvalidChunkSize { size });
                }
                if size > self.limits.max_chunk_size {
                    return Err(ChunkError::ChunkSizeAboveLimit {
                        size,
                        limit: self.limits.max_chunk_size,
                    });
                }
                tracing::trace!(size, "peer chunk size");
                self.chunk_size = size;
            }
            type_id::ABORT => {
                let csid = value()?;
                if let Some(state) = self.streams.get_mut(&csid) {
                    if let Some(p) = state.partial.take() {
                        self.partial_streams -= 1;
                        self.partial_bytes -= p.payload.len();
                        tracing::trace!(csid, "aborted partial message");
                    }
                }
            }
            type_id::WINDOW_ACK_SIZE => {
                self.ack_window = value()?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A new message's header, merged with the chunk stream's state.
struct NewMessage {
    csid: u32,
    timestamp: MediaTime,
    delta: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Where the chunk payload starts in the buffer.
    pos: usize,
}

fn read_be32(b: &[u8], pos: usize) -> Option<u32> {
    let s = b.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Makes room for `n` more bytes, doubling at most up to the declared
/// `total`, so the final buffer is exactly the message and memory tracks
/// received bytes (never more than twice them).
fn grow_towards(v: &mut Vec<u8>, n: usize, total: usize) {
    let needed = v.len() + n;
    if needed > v.capacity() {
        let target = needed.max(v.capacity() * 2).min(total).max(needed);
        v.reserve_exact(target - v.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkEncoder;

    fn msg(csid: u32, ts: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid,
            timestamp: MediaTime::from_millis(ts),
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 1) as u8).collect()
    }

    /// A type-0 header on a one-byte csid.
    fn fmt0(csid: u8, ts: u32, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
        let mut v = vec![csid];
        v.extend_from_slice(&ts.min(EXTENDED_MARKER).to_be_bytes()[1..]);
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(type_id);
        v.extend_from_slice(&stream_id.to_le_bytes());
        if ts >= EXTENDED_MARKER {
            v.extend_from_slice(&ts.to_be_bytes());
        }
        v
    }

    fn control(type_id: u8, value: u32) -> Vec<u8> {
        let mut v = fmt0(2, 0, 4, type_id, 0);
        v.extend_from_slice(&value.to_be_bytes());
        v
    }

    fn drain(d: &mut ChunkDecoder) -> Result<Vec<RawMessage>, ChunkError> {
        let mut out = Vec::new();
        while let Some(m) = d.poll_message()? {
            out.push(m);
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Vec<RawMessage>, ChunkError> {
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(bytes)?;
        drain(&mut d)
    }

    fn encode(msgs: &[RawMessage]) -> Vec<u8> {
        let mut e = ChunkEncoder::new();
        let mut out = Vec::new();
        for m in msgs {
            e.write(m, &mut out);
        }
        out.concat()
    }

    #[test]
    fn fmt0_single_chunk_message_decodes() {
        let mut bytes = fmt0(3, 0, 5, 20, 0);
        bytes.extend_from_slice(b"hello");
        assert_eq!(decode(&bytes).unwrap(), vec![msg(3, 0, 20, 0, b"hello")]);
    }

    #[test]
    fn single_chunk_payload_shares_the_input_buffer() {
        let mut bytes = fmt0(3, 0, 100, 9, 1);
        bytes.extend_from_slice(&pattern(100));
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(&bytes).unwrap();
        let start = d.buf.as_ptr() as usize;
        let end = start + d.buf.len();
        let m = d.poll_message().unwrap().unwrap();
        let p = m.payload.as_ptr() as usize;
        assert!(
            p >= start && p + m.payload.len() <= end,
            "payload was copied"
        );
    }

    #[test]
    fn every_basic_header_width_decodes() {
        for csid in [2, 63, 64, 319, 320, 65599] {
            let m = msg(csid, 7, 8, 1, &pattern(3));
            assert_eq!(decode(&encode(std::slice::from_ref(&m))).unwrap(), vec![m]);
        }
    }

    #[test]
    fn fmt3_new_message_after_fmt0_adds_the_absolute_timestamp() {
        // SRS's FMLE example: type 0 at 26 ms, then a bare 0xC4.
        let mut bytes = fmt0(4, 26, 2, 8, 1);
        bytes.extend_from_slice(&[1, 2, 0xC4, 3, 4]);
        let got = decode(&bytes).unwrap();
        assert_eq!(got[1], msg(4, 52, 8, 1, &[3, 4]));
    }

    #[test]
    fn fmt1_and_fmt2_add_deltas_and_fmt3_repeats_the_last_delta() {
        let mut bytes = fmt0(4, 100, 1, 8, 1);
        bytes.push(0xAA);
        bytes.extend_from_slice(&[0x44, 0, 0, 10, 0, 0, 2, 9, 0xBB, 0xBB]); // +10, len 2, video
        bytes.extend_from_slice(&[0x84, 0, 0, 30, 0xCC, 0xCC]); // +30
        bytes.extend_from_slice(&[0xC4, 0xDD, 0xDD]); // +30 again
        let got = decode(&bytes).unwrap();
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp.as_millis()).collect();
        assert_eq!(ts, vec![100, 110, 140, 170]);
        assert!(got[1..].iter().all(|m| m.type_id == 9 && m.stream_id == 1));
    }

    #[test]
    fn extended_timestamp_on_fmt0_is_absolute() {
        let mut bytes = fmt0(3, 0x0123_4567, 1, 9, 1);
        bytes.push(0);
        assert_eq!(
            decode(&bytes).unwrap()[0].timestamp.as_millis(),
            0x0123_4567
        );
    }

    #[test]
    fn extended_delta_on_fmt1_and_fmt2_is_added() {
        let mut bytes = fmt0(3, 5, 0, 9, 1);
        bytes.extend_from_slice(&[0x43, 0xFF, 0xFF, 0xFF, 0, 0, 0, 8]);
        bytes.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        bytes.extend_from_slice(&[0x83, 0xFF, 0xFF, 0xFF]);
        bytes.extend_from_slice(&0x0200_0000u32.to_be_bytes());
        let got = decode(&bytes).unwrap();
        assert_eq!(got[1].timestamp.as_millis(), 0x0100_0005);
        assert_eq!(got[1].type_id, 8);
        assert_eq!(got[2].timestamp.as_millis(), 0x0300_0005);
    }

    /// A 200-byte message at an extended timestamp, cut at 128 bytes, with
    /// or without the extended timestamp repeated on the continuation.
    fn extended_two_chunks(repeat: bool) -> (Vec<u8>, RawMessage) {
        let body = pattern(200);
        let mut bytes = fmt0(3, 0x0100_0000, 200, 9, 1);
        bytes.extend_from_slice(&body[..128]);
        bytes.push(0xC3);
        if repeat {
            bytes.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        }
        bytes.extend_from_slice(&body[128..]);
        (bytes, msg(3, 0x0100_0000, 9, 1, &body))
    }

    #[test]
    fn type3_continuation_with_repeated_extended_timestamp_decodes() {
        let (bytes, want) = extended_two_chunks(true);
        assert_eq!(decode(&bytes).unwrap(), vec![want]);
    }

    #[test]
    fn type3_continuation_without_extended_timestamp_decodes() {
        let (bytes, want) = extended_two_chunks(false);
        assert_eq!(decode(&bytes).unwrap(), vec![want]);
    }

    #[test]
    fn type3_continuation_repeating_the_absolute_timestamp_after_fmt1_decodes() {
        // Some encoders repeat the message's absolute timestamp, not the delta.
        let body = pattern(200);
        let mut bytes = fmt0(3, 10, 0, 9, 1);
        bytes.extend_from_slice(&[0x43, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9]);
        bytes.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        bytes.extend_from_slice(&body[..128]);
        bytes.push(0xC3);
        bytes.extend_from_slice(&0x0100_000Au32.to_be_bytes());
        bytes.extend_from_slice(&body[128..]);
        let got = decode(&bytes).unwrap();
        assert_eq!(got[1], msg(3, 0x0100_000A, 9, 1, &body));
    }

    #[test]
    fn type3_new_message_after_extended_header_reads_the_repeated_delta() {
        let mut bytes = fmt0(3, 0x0100_0000, 1, 9, 1);
        bytes.push(1);
        bytes.push(0xC3);
        bytes.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        bytes.push(2);
        let got = decode(&bytes).unwrap();
        assert_eq!(got[1], msg(3, 0x0200_0000, 9, 1, &[2]));
    }

    #[test]
    fn timestamps_wrap_at_2_pow_32() {
        let mut bytes = fmt0(3, u32::MAX - 9, 0, 9, 1);
        bytes.extend_from_slice(&[0x83, 0, 0, 20]);
        let got = decode(&bytes).unwrap();
        assert_eq!(got[1].timestamp.as_millis(), 10);
    }

    #[test]
    fn zero_length_message_completes_at_its_header() {
        let bytes = fmt0(5, 1, 0, 18, 1);
        assert_eq!(decode(&bytes).unwrap(), vec![msg(5, 1, 18, 1, &[])]);
    }

    #[test]
    fn set_chunk_size_applies_mid_message_on_another_csid() {
        let body = pattern(300);
        let mut bytes = fmt0(4, 0, 300, 9, 1);
        bytes.extend_from_slice(&body[..128]);
        bytes.extend_from_slice(&control(type_id::SET_CHUNK_SIZE, 4096));
        bytes.push(0xC4);
        bytes.extend_from_slice(&body[128..]); // 172 bytes: one chunk now
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(&bytes).unwrap();
        let got = drain(&mut d).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].type_id, type_id::SET_CHUNK_SIZE);
        assert_eq!(got[1], msg(4, 0, 9, 1, &body));
        assert_eq!(d.chunk_size(), 4096);
    }

    #[test]
    fn chunk_size_zero_is_invalid() {
        let e = decode(&control(type_id::SET_CHUNK_SIZE, 0)).unwrap_err();
        assert_eq!(e, ChunkError::InvalidChunkSize { size: 0 });
    }

    #[test]
    fn chunk_size_with_top_bit_is_invalid() {
        let e = decode(&control(type_id::SET_CHUNK_SIZE, 0x8000_0000)).unwrap_err();
        assert_eq!(e, ChunkError::InvalidChunkSize { size: 0x8000_0000 });
    }

    #[test]
    fn chunk_size_above_limit_is_refused() {
        let limits = DecoderLimits {
            max_chunk_size: 65536,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        d.handle_input(&control(type_id::SET_CHUNK_SIZE, 65537))
            .unwrap();
        assert_eq!(
            d.poll_message().unwrap_err(),
            ChunkError::ChunkSizeAboveLimit {
                size: 65537,
                limit: 65536
            }
        );
    }

    #[test]
    fn short_set_chunk_size_payload_is_malformed() {
        let mut bytes = fmt0(2, 0, 2, type_id::SET_CHUNK_SIZE, 0);
        bytes.extend_from_slice(&[0, 1]);
        assert_eq!(
            decode(&bytes).unwrap_err(),
            ChunkError::MalformedControl {
                type_id: type_id::SET_CHUNK_SIZE,
                len: 2
            }
        );
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut bytes = fmt0(4, 0, 300, 9, 1);
        bytes.extend_from_slice(&pattern(128));
        bytes.extend_from_slice(&control(type_id::ABORT, 4));
        bytes.extend_from_slice(&fmt0(4, 40, 3, 8, 1));
        bytes.extend_from_slice(b"new");
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(&bytes).unwrap();
        let got = drain(&mut d).unwrap();
        assert_eq!(got[0].type_id, type_id::ABORT);
        assert_eq!(got[1], msg(4, 40, 8, 1, b"new"));
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(d.partial_streams, 0);
    }

    #[test]
    fn message_longer_than_limit_is_refused_at_its_header() {
        let limits = DecoderLimits {
            max_message_len: 1000,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        d.handle_input(&fmt0(3, 0, 1001, 9, 1)).unwrap();
        assert_eq!(
            d.poll_message().unwrap_err(),
            ChunkError::MessageTooLong {
                csid: 3,
                len: 1001,
                limit: 1000
            }
        );
    }

    #[test]
    fn too_many_partial_streams_is_refused() {
        let limits = DecoderLimits {
            max_partial_streams: 2,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        for csid in 3..=5 {
            d.handle_input(&fmt0(csid, 0, 200, 9, 1)).unwrap();
            d.handle_input(&pattern(128)).unwrap();
        }
        assert_eq!(
            drain(&mut d).unwrap_err(),
            ChunkError::TooManyPartialStreams { limit: 2 }
        );
    }

    #[test]
    fn too_many_chunk_streams_is_refused() {
        let limits = DecoderLimits {
            max_chunk_streams: 3,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        for csid in 3..=6 {
            d.handle_input(&fmt0(csid, 0, 0, 9, 1)).unwrap();
        }
        let e = drain(&mut d).unwrap_err();
        assert_eq!(e, ChunkError::TooManyChunkStreams { limit: 3 });
    }

    #[test]
    fn buffering_past_the_limit_is_refused() {
        let limits = DecoderLimits {
            max_buffered_bytes: 1000,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        d.handle_input(&[0xC3; 600]).unwrap();
        assert_eq!(
            d.handle_input(&[0xC3; 401]).unwrap_err(),
            ChunkError::BufferLimit {
                buffered: 1001,
                limit: 1000
            }
        );
    }

    #[test]
    fn partial_payloads_count_towards_the_buffer_limit() {
        let limits = DecoderLimits {
            max_buffered_bytes: 300,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        d.handle_input(&fmt0(3, 0, 1000, 9, 1)).unwrap();
        d.handle_input(&pattern(128)).unwrap();
        assert_eq!(d.poll_message(), Ok(None));
        assert_eq!(d.buffered_bytes(), 128);
        assert!(d.handle_input(&[0; 173]).is_err());
    }

    #[test]
    fn declared_huge_length_allocates_only_what_arrived() {
        let limits = DecoderLimits {
            max_message_len: MAX_MESSAGE_LEN_FOR_TEST,
            ..DecoderLimits::default()
        };
        let mut d = ChunkDecoder::new(limits);
        d.handle_input(&fmt0(3, 0, 0x00FF_FFFF, 9, 1)).unwrap();
        assert_eq!(d.poll_message(), Ok(None));
        assert_eq!(d.buffered_bytes(), 12, "only the header is held");
        d.handle_input(&pattern(128)).unwrap();
        assert_eq!(d.poll_message(), Ok(None));
        assert_eq!(d.buffered_bytes(), 128);
        let partial = d.streams[&3].partial.as_ref().unwrap();
        assert!(partial.payload.capacity() <= INITIAL_ASSEMBLY_CAPACITY);
    }

    const MAX_MESSAGE_LEN_FOR_TEST: usize = 16 * 1024 * 1024;

    #[test]
    fn multi_chunk_message_is_assembled_into_an_owned_payload() {
        let body = pattern(10_000);
        let bytes = encode(&[msg(3, 0, 9, 1, &body)]);
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(&bytes).unwrap();
        let m = d.poll_message().unwrap().unwrap();
        assert_eq!(&m.payload[..], &body[..]);
        // Converted from the assembly Vec without a copy or a shrink.
        assert!(m.payload.is_unique());
    }

    #[test]
    fn header_changing_length_mid_message_is_refused() {
        // CVE-2016-10191: a continuation that changes the message length.
        let mut bytes = fmt0(3, 0, 300, 9, 1);
        bytes.extend_from_slice(&pattern(128));
        bytes.extend_from_slice(&[0x43, 0, 0, 0, 0x10, 0, 0, 9]); // len 1 MiB
        bytes.extend_from_slice(&pattern(128));
        assert_eq!(
            decode(&bytes).unwrap_err(),
            ChunkError::HeaderChangedMidMessage { csid: 3 }
        );
    }

    #[test]
    fn header_changing_type_mid_message_is_refused() {
        let mut bytes = fmt0(3, 0, 300, 9, 1);
        bytes.extend_from_slice(&pattern(128));
        bytes.extend_from_slice(&[0x43, 0, 0, 0, 0, 1, 44, 8]);
        assert_eq!(
            decode(&bytes).unwrap_err(),
            ChunkError::HeaderChangedMidMessage { csid: 3 }
        );
    }

    #[test]
    fn fmt2_header_mid_message_continues_it() {
        let body = pattern(200);
        let mut bytes = fmt0(3, 7, 200, 9, 1);
        bytes.extend_from_slice(&body[..128]);
        bytes.extend_from_slice(&[0x83, 0, 0, 99]);
        bytes.extend_from_slice(&body[128..]);
        assert_eq!(decode(&bytes).unwrap(), vec![msg(3, 7, 9, 1, &body)]);
    }

    #[test]
    fn compressed_header_on_unknown_csid_is_refused() {
        for (first, fmt) in [(0x43u8, 1u8), (0x83, 2), (0xC3, 3)] {
            let bytes = [first, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0];
            assert_eq!(
                decode(&bytes).unwrap_err(),
                ChunkError::UnknownChunkStream { csid: 3, fmt }
            );
        }
    }

    #[test]
    fn librtmp_fmt1_on_fresh_csid_2_is_accepted() {
        // librtmp's first user-control message: type 1 on chunk stream 2.
        let bytes = [0x42, 0, 0, 0, 0, 0, 6, 4, 0, 3, 0, 0, 0, 1];
        let got = decode(&bytes).unwrap();
        assert_eq!(got, vec![msg(2, 0, 4, 0, &[0, 3, 0, 0, 0, 1])]);
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.handle_input(&[0xC3, 0, 0, 0]).unwrap();
        let e = d.poll_message().unwrap_err();
        assert_eq!(d.poll_message().unwrap_err(), e);
        assert_eq!(d.handle_input(&fmt0(3, 0, 0, 9, 1)).unwrap_err(), e);
    }

    #[test]
    fn acknowledgement_is_due_at_the_window() {
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        let wnd = control(type_id::WINDOW_ACK_SIZE, 100);
        d.handle_input(&wnd).unwrap();
        drain(&mut d).unwrap();
        assert_eq!(d.poll_acknowledgement(), None); // 16 bytes so far
        d.handle_input(&[0; 83]).unwrap(); // 99
        assert_eq!(d.poll_acknowledgement(), None);
        d.handle_input(&[0; 1]).unwrap(); // 100
        assert_eq!(d.poll_acknowledgement(), Some(100));
        assert_eq!(d.poll_acknowledgement(), None);
        d.handle_input(&[0; 150]).unwrap();
        assert_eq!(d.poll_acknowledgement(), Some(250));
    }

    #[test]
    fn acknowledgement_sequence_wraps_at_2_pow_32() {
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.set_bytes_received(u64::from(u32::MAX) - 9);
        d.set_window_ack_size(100);
        d.handle_input(&[0; 99]).unwrap();
        assert_eq!(d.poll_acknowledgement(), None);
        d.handle_input(&[0; 1]).unwrap();
        assert_eq!(d.poll_acknowledgement(), Some(90));
        assert_eq!(d.bytes_received(), u64::from(u32::MAX) + 91);
    }

    #[test]
    fn handshake_bytes_count_towards_acknowledgements() {
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        d.add_handshake_bytes(3073);
        d.set_window_ack_size(3000);
        assert_eq!(d.poll_acknowledgement(), Some(3073));
    }

    #[test]
    fn input_split_at_every_byte_decodes_identically() {
        let mut msgs = vec![
            msg(3, 0, 20, 0, &pattern(5)),
            msg(4, 0x0100_0000, 9, 1, &pattern(300)),
            msg(4, 0x0100_0040, 9, 1, &pattern(300)),
            msg(320, 5, 8, 1, &pattern(130)),
            msg(64, 0, 18, 1, &[]),
        ];
        msgs.push(msg(4, 0x0100_0080, 9, 1, &pattern(300)));
        let bytes = encode(&msgs);
        for i in 0..=bytes.len() {
            let mut d = ChunkDecoder::new(DecoderLimits::default());
            d.handle_input(&bytes[..i]).unwrap();
            let mut got = drain(&mut d).unwrap();
            d.handle_input(&bytes[i..]).unwrap();
            got.extend(drain(&mut d).unwrap());
            assert_eq!(got, msgs, "split at {i}");
        }
        let mut d = ChunkDecoder::new(DecoderLimits::default());
        let mut got = Vec::new();
        for b in &bytes {
            d.handle_input(std::slice::from_ref(b)).unwrap();
            got.extend(drain(&mut d).unwrap());
        }
        assert_eq!(got, msgs, "byte by byte");
    }
}
