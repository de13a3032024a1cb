//! Sending side of the chunk stream: messages in, header bytes and shared
//! payload slices out.
//!
//! This runs once per subscriber for every frame, so it never copies a large
//! payload and never allocates per message: chunk headers go into one
//! scratch buffer that is reserved in large blocks and split off as frozen
//! [`Bytes`], and each chunk of payload is a `slice` of the message's shared
//! `Bytes`. Small payloads are copied next to their header instead (the h2
//! trick), since an iovec costs more than copying a few hundred bytes.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::{RawMessage, DEFAULT_CHUNK_SIZE, MAX_CSID, MAX_MESSAGE_LEN, MIN_CSID};
use crate::message::type_id;
use crate::time::MediaTime;

/// Payloads shorter than this are copied next to their header rather than
/// referenced: one contiguous piece beats two iovecs for small messages
/// (audio frames, commands, control messages).
const SMALL_PAYLOAD: usize = 256;

/// The scratch buffer grows by at least this much at a time, so header
/// writes allocate once per many messages.
const SCRATCH_BLOCK: usize = 16 * 1024;

/// The 24-bit timestamp value that announces a 4-byte extended timestamp.
const EXTENDED_MARKER: u32 = 0x00FF_FFFF;

/// Chunk stream ids below this are kept in a directly indexed table; the
/// rarely used larger ids go to a map.
const DIRECT_CSIDS: usize = 64;

/// The most header bytes one message's first chunk can take: a 3-byte basic
/// header, an 11-byte message header and an extended timestamp.
const MAX_FIRST_HEADER: usize = 3 + 11 + 4;
/// The most header bytes a continuation chunk can take: a 3-byte basic
/// header and a repeated extended timestamp.
const MAX_CONT_HEADER: usize = 3 + 4;

/// What the encoder last sent on one chunk stream, so the next header can
/// leave out what the peer already knows.
#[derive(Debug, Clone, Copy)]
struct OutState {
    timestamp: MediaTime,
    /// The last timestamp field value (absolute after type 0, else the
    /// delta): a type-3 header starting a message makes the peer add it.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Cuts messages into chunks with the most compact headers, for one
/// connection's outgoing direction.
///
/// Output is appended to a `Vec<Bytes>` ready for a vectored write; payloads
/// are shared with every other subscriber of the same message.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    /// Header state for csids below [`DIRECT_CSIDS`], indexed by csid.
    direct: Vec<Option<OutState>>,
    /// Header state for larger csids.
    other: HashMap<u32, OutState>,
    /// Pending header bytes (and small payloads) not yet handed out.
    scratch: BytesMut,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder at the start of a connection: chunk size 128 and no
    /// header state, so every chunk stream starts with a type-0 header.
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            direct: Vec::new(),
            other: HashMap::new(),
            scratch: BytesMut::new(),
        }
    }

    /// The chunk size messages are currently cut with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Tells the peer the new chunk size and switches to it.
    ///
    /// The Set Chunk Size message (chunk stream 2, message stream 0) is
    /// itself written with the old size and only then does the encoder
    /// switch, so the order cannot go wrong. `size` is clamped to the
    /// protocol's 1..=0x7FFFFFFF.
    pub fn set_chunk_size(&mut self, size: u32, out: &mut Vec<Bytes>) {
        let size = size.clamp(1, 0x7FFF_FFFF);
        let body = size.to_be_bytes();
        self.encode(
            MIN_CSID,
            MediaTime::ZERO,
            type_id::SET_CHUNK_SIZE,
            0,
            &body,
            None,
            out,
        );
        self.chunk_size = size;
    }

    /// Appends `msg` as chunks: header bytes and payload slices.
    ///
    /// `msg.csid` must be in [`MIN_CSID`]..=[`MAX_CSID`]; other values are
    /// clamped into that range rather than corrupt the stream. A payload
    /// longer than [`MAX_MESSAGE_LEN`] cannot be described by RTMP; it is
    /// dropped with a warning (the decoder never produces one).
    pub fn write(&mut self, msg: &RawMessage, out: &mut Vec<Bytes>) {
        let shared = (msg.payload.len() >= SMALL_PAYLOAD).then_some(&msg.payload);
        self.encode(
            msg.csid,
            msg.timestamp,
            msg.type_id,
            msg.stream_id,
            &msg.payload,
            shared,
            out,
        );
    }

    /// Forgets what was sent on `csid`, so its next message starts with a
    /// type-0 header. Use after sending an Abort for that chunk stream, when
    /// the peer may have dropped the state the compressed headers rely on.
    pub fn reset_stream(&mut self, csid: u32) {
        match usize::try_from(csid) {
            Ok(i) if i < DIRECT_CSIDS => {
                if let Some(slot) = self.direct.get_mut(i) {
                    *slot = None;
                }
            }
            _ => {
                self.other.remove(&csid);
            }
        }
    }

    fn state(&self, csid: u32) -> Option<OutState> {
        match usize::try_from(csid) {
            Ok(i) if i < DIRECT_CSIDS => self.direct.get(i).copied().flatten(),
            _ => self.other.get(&csid).copied(),
        }
    }

    fn set_state(&mut self, csid: u32, s: OutState) {
        match usize::try_from(csid) {
            Ok(i) if i < DIRECT_CSIDS => {
                if self.direct.len() <= i {
                    self.direct.resize(i + 1, None);
                }
                self.direct[i] = Some(s);
            }
            _ => {
                self.other.insert(csid, s);
            }
        }
    }

    /// Writes one message. `body` is the payload; when `shared` is given it
    /// is the same bytes as a `Bytes` and chunks reference it instead of
    /// being copied.
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &mut self,
        csid: u32,
        timestamp: MediaTime,
        type_id: u8,
        stream_id: u32,
        body: &[u8],
        shared: Option<&Bytes>,
        out: &mut Vec<Bytes>,
    ) {
        if body.len() > MAX_MESSAGE_LEN {
            tracing::warn!(len = body.len(), "message too long for RTMP, dropped");
            return;
        }
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let length = body.len() as u32;

        // Pick the most compact header the peer can expand correctly.
        let prev = self.state(csid);
        let (fmt, ts_value) = match prev {
            Some(p) if p.stream_id == stream_id && timestamp.since(p.timestamp) >= 0 => {
                let delta = timestamp.as_millis().wrapping_sub(p.timestamp.as_millis());
                if length != p.length || type_id != p.type_id {
                    (1u8, delta)
                } else if delta != p.delta {
                    (2, delta)
                } else {
                    (3, delta)
                }
            }
            _ => (0u8, timestamp.as_millis()),
        };
        // After a type-3 header too: the peer's last field was extended.
        let extended = ts_value >= EXTENDED_MARKER;
        self.set_state(
            csid,
            OutState {
                timestamp,
                delta: ts_value,
                length,
                type_id,
                stream_id,
            },
        );

        let chunk = self.chunk_size as usize;
        let chunks = body.len().div_ceil(chunk).max(1);
        let mut need = MAX_FIRST_HEADER + (chunks - 1) * MAX_CONT_HEADER;
        if shared.is_none() {
            need += body.len();
        }
        if self.scratch.capacity() - self.scratch.len() < need {
            self.scratch.reserve(need.max(SCRATCH_BLOCK));
        }

        // First chunk header.
        put_basic_header(&mut self.scratch, fmt, csid);
        if fmt <= 2 {
            put_u24(&mut self.scratch, ts_value.min(EXTENDED_MARKER));
        }
        if fmt <= 1 {
            put_u24(&mut self.scratch, length);
            self.scratch.put_u8(type_id);
        }
        if fmt == 0 {
            self.scratch.put_u32_le(stream_id);
        }
        if extended {
            self.scratch.put_u32(ts_value);
        }

        let mut start = 0;
        loop {
            let end = (start + chunk).min(body.len());
            match shared {
                Some(bytes) => {
                    out.push(self.scratch.split().freeze());
                    out.push(bytes.slice(start..end));
                }
                None => self.scratch.extend_from_slice(&body[start..end]),
            }
            start = end;
            if start >= body.len() {
                break;
            }
            // Continuation: a type-3 header, repeating the extended
            // timestamp as the spec, FFmpeg and librtmp expect.
            put_basic_header(&mut self.scratch, 3, csid);
            if extended {
                self.scratch.put_u32(ts_value);
            }
        }
        if !self.scratch.is_empty() {
            out.push(self.scratch.split().freeze());
        }
    }
}

/// Writes the 1-, 2- or 3-byte basic header for `csid` (already in range).
fn put_basic_header(buf: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    if csid < 64 {
        buf.put_u8(fmt | csid as u8);
    } else if csid < 64 + 256 {
        buf.put_u8(fmt);
        buf.put_u8((csid - 64) as u8);
    } else {
        buf.put_u8(fmt | 1);
        buf.put_u16_le((csid - 64) as u16);
    }
}

fn put_u24(buf: &mut BytesMut, v: u32) {
    let b = v.to_be_bytes();
    buf.extend_from_slice(&b[1..]);
}
