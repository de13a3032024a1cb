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

use bytes::{Bytes, BytesMut};

use super::{RawMessage, DEFAULT_CHUNK_SIZE, MAX_CSID, MAX_MESSAGE_LEN, MIN_CSID};
use crate::message::type_id;
use crate::time::MediaTime;

/// Payloads shorter than this are copied next to their header rather than
/// referenced: one contiguous piece beats two iovecs for small messages
/// (audio frames, commands, control messages).
const SMALL_PAYLOAD: usize = 256;

/// The first scratch block: enough for a connection's first replies, so an
/// idle connection holds well under a KiB of it.
const SCRATCH_FIRST_BLOCK: usize = 512;
/// The largest block the scratch buffer grows to. Blocks double each time
/// a new one is needed while the previous is still referenced (by output
/// not yet written, or a large message's pre-cut chunk headers); once the
/// output is written the block is reclaimed in place, so a player in
/// steady state allocates nothing. 2 KiB holds a transmit's worth of
/// headers; with 16 KiB, 5,000 lagging players held twice the memory
/// (172 MB against 95 MB peak RSS).
const SCRATCH_MAX_BLOCK: usize = 2 * 1024;

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
    /// Size of the next scratch block to allocate.
    block: usize,
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
            block: SCRATCH_FIRST_BLOCK,
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
            &[],
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
        self.write_prefixed(msg, &[], out);
    }

    /// Appends `msg` whose payload on the wire is `prefix` followed by
    /// `msg.payload`: a rewritten media tag header in front of a shared
    /// slice of the original payload. The prefix is copied next to the
    /// first chunk header; the payload is referenced as [`Self::write`]
    /// does, never copied when large.
    ///
    /// Every chunk still ends with a slice of `msg.payload` when the
    /// prefix is shorter than the chunk size and the payload is shared.
    pub fn write_prefixed(&mut self, msg: &RawMessage, prefix: &[u8], out: &mut Vec<Bytes>) {
        let total = prefix.len() + msg.payload.len();
        let shared = (total >= SMALL_PAYLOAD).then_some(&msg.payload);
        self.encode(
            msg.csid,
            msg.timestamp,
            msg.type_id,
            msg.stream_id,
            prefix,
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

    /// Writes one message whose payload is `prefix` then `body`; when
    /// `shared` is given it is the same bytes as `body` as a `Bytes` and
    /// chunks reference it instead of being copied (the prefix is always
    /// copied).
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &mut self,
        csid: u32,
        timestamp: MediaTime,
        type_id: u8,
        stream_id: u32,
        prefix: &[u8],
        body: &[u8],
        shared: Option<&Bytes>,
        out: &mut Vec<Bytes>,
    ) {
        let total = prefix.len() + body.len();
        if total > MAX_MESSAGE_LEN {
            tracing::warn!(len = total, "message too long for RTMP, dropped");
            return;
        }
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let length = total as u32;

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
        let chunks = total.div_ceil(chunk).max(1);
        let mut need = MAX_FIRST_HEADER + (chunks - 1) * MAX_CONT_HEADER + prefix.len();
        if shared.is_none() {
            need += body.len();
        }
        if self.scratch.capacity() - self.scratch.len() < need && !self.scratch.try_reclaim(need) {
            if self.scratch.capacity() > 0 {
                // The old block is still referenced by output in flight:
                // the next one is larger, so a busy connection soon needs
                // no more.
                self.block = (self.block * 2).min(SCRATCH_MAX_BLOCK);
            }
            self.scratch.reserve(need.max(self.block));
        }

        // First chunk header, built on the stack and appended at once.
        let mut first = [0u8; MAX_FIRST_HEADER];
        let mut n = put_basic_header(&mut first, fmt, csid);
        if fmt <= 2 {
            first[n..n + 3].copy_from_slice(&u24(ts_value.min(EXTENDED_MARKER)));
            n += 3;
        }
        if fmt <= 1 {
            first[n..n + 3].copy_from_slice(&u24(length));
            first[n + 3] = type_id;
            n += 4;
        }
        if fmt == 0 {
            first[n..n + 4].copy_from_slice(&stream_id.to_le_bytes());
            n += 4;
        }
        if extended {
            first[n..n + 4].copy_from_slice(&ts_value.to_be_bytes());
            n += 4;
        }
        let first_len = n;
        self.scratch.extend_from_slice(&first[..first_len]);
        // Continuation: a type-3 header, repeating the extended timestamp
        // as the spec, FFmpeg and librtmp expect.
        let mut cont = [0u8; MAX_CONT_HEADER];
        let mut cont_len = put_basic_header(&mut cont, 3, csid);
        if extended {
            cont[cont_len..cont_len + 4].copy_from_slice(&ts_value.to_be_bytes());
            cont_len += 4;
        }

        // Every chunk's header bytes (and any prefix) go into scratch; a
        // shared body is then cut from one frozen block, so the headers
        // cost one split, not one per chunk.
        let mut start = 0;
        loop {
            let end = (start + chunk).min(total);
            if start < prefix.len() {
                self.scratch
                    .extend_from_slice(&prefix[start..end.min(prefix.len())]);
            }
            if shared.is_none() {
                let (from, to) = body_range(start, end, prefix.len());
                self.scratch.extend_from_slice(&body[from..to]);
            }
            start = end;
            if start >= total {
                break;
            }
            self.scratch.extend_from_slice(&cont[..cont_len]);
        }
        if self.scratch.is_empty() {
            return;
        }
        let heads = self.scratch.split().freeze();
        let Some(bytes) = shared else {
            out.push(heads);
            return;
        };
        // The same walk again: each chunk is its header (and prefix) from
        // `heads`, then its slice of the body.
        // `at`: the first header byte not yet handed out; `pos`: the end
        // of this chunk's header and prefix bytes.
        let (mut start, mut at, mut pos) = (0, 0, 0);
        loop {
            let end = (start + chunk).min(total);
            let header = if start == 0 { first_len } else { cont_len };
            pos += header + end.min(prefix.len()).saturating_sub(start);
            let (from, to) = body_range(start, end, prefix.len());
            if from < to {
                out.push(heads.slice(at..pos));
                out.push(bytes.slice(from..to));
                at = pos;
            }
            start = end;
            if start >= total {
                break;
            }
        }
        if at < heads.len() {
            out.push(heads.slice(at..));
        }
    }
}

/// The part of the body within message positions `start..end`, where
/// positions run over the prefix then the body.
fn body_range(start: usize, end: usize, prefix: usize) -> (usize, usize) {
    (start.max(prefix) - prefix, end.max(prefix) - prefix)
}

/// A 24-bit big-endian field.
fn u24(v: u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Writes the 1-, 2- or 3-byte basic header for `csid` (already in range).
fn put_basic_header(buf: &mut [u8], fmt: u8, csid: u32) -> usize {
    let fmt = fmt << 6;
    if csid < 64 {
        buf[0] = fmt | csid as u8;
        1
    } else if csid < 64 + 256 {
        buf[0] = fmt;
        buf[1] = (csid - 64) as u8;
        2
    } else {
        buf[0] = fmt | 1;
        buf[1..3].copy_from_slice(&((csid - 64) as u16).to_le_bytes());
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(csid: u32, ts: u32, type_id: u8, stream_id: u32, payload: Bytes) -> RawMessage {
        RawMessage {
            csid,
            timestamp: MediaTime::from_millis(ts),
            type_id,
            stream_id,
            payload,
        }
    }

    fn small(csid: u32, ts: u32, type_id: u8, stream_id: u32, len: usize) -> RawMessage {
        msg(csid, ts, type_id, stream_id, Bytes::from(vec![0xAB; len]))
    }

    /// The header bytes written for `m`, with the payload removed.
    fn header_of(e: &mut ChunkEncoder, m: &RawMessage) -> Vec<u8> {
        let mut out = Vec::new();
        e.write(m, &mut out);
        let all = out.concat();
        all[..all.len() - m.payload.len()].to_vec()
    }

    #[test]
    fn first_message_gets_a_full_fmt0_header() {
        let mut e = ChunkEncoder::new();
        let mut out = Vec::new();
        e.write(&msg(3, 0, 20, 0, Bytes::from_static(b"hello")), &mut out);
        assert_eq!(out.len(), 1, "small message coalesced with its header");
        assert_eq!(
            &out[0][..],
            &[3, 0, 0, 0, 0, 0, 5, 0x14, 0, 0, 0, 0, b'h', b'e', b'l', b'l', b'o']
        );
    }

    #[test]
    fn basic_header_widths_at_their_boundaries() {
        let cases: [(u32, &[u8]); 6] = [
            (2, &[0x02]),
            (63, &[0x3F]),
            (64, &[0x00, 0x00]),
            (319, &[0x00, 0xFF]),
            (320, &[0x01, 0x00, 0x01]),
            (65599, &[0x01, 0xFF, 0xFF]),
        ];
        for (csid, basic) in cases {
            let mut e = ChunkEncoder::new();
            let h = header_of(&mut e, &small(csid, 0, 9, 1, 1));
            assert_eq!(&h[..basic.len()], basic, "csid {csid}");
            assert_eq!(h.len(), basic.len() + 11);
        }
    }

    #[test]
    fn picks_fmt1_when_length_changes() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 0, 8, 1, 5));
        let h = header_of(&mut e, &small(4, 20, 8, 1, 6));
        assert_eq!(h, [0x44, 0, 0, 20, 0, 0, 6, 8]);
    }

    #[test]
    fn picks_fmt2_when_only_the_delta_changes() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 0, 8, 1, 5));
        header_of(&mut e, &small(4, 20, 8, 1, 5)); // delta 20 != field 0: fmt 2
        let h = header_of(&mut e, &small(4, 50, 8, 1, 5));
        assert_eq!(h, [0x84, 0, 0, 30]);
    }

    #[test]
    fn picks_fmt3_when_the_delta_repeats() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 0, 8, 1, 5));
        header_of(&mut e, &small(4, 20, 8, 1, 5));
        let h = header_of(&mut e, &small(4, 40, 8, 1, 5));
        assert_eq!(h, [0xC4]);
    }

    #[test]
    fn fmt3_after_fmt0_only_when_the_absolute_timestamp_repeats_as_delta() {
        // The peer adds a type-0 header's absolute timestamp on a bare type 3.
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 26, 8, 1, 5));
        assert_eq!(header_of(&mut e, &small(4, 52, 8, 1, 5)), [0xC4]);
    }

    #[test]
    fn picks_fmt0_when_the_stream_id_changes() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 0, 8, 1, 5));
        let h = header_of(&mut e, &small(4, 10, 8, 2, 5));
        assert_eq!(h[0], 0x04);
        assert_eq!(h.len(), 12);
    }

    #[test]
    fn picks_fmt0_when_the_timestamp_goes_backwards() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 100, 8, 1, 5));
        let h = header_of(&mut e, &small(4, 99, 8, 1, 5));
        assert_eq!(&h[..4], [0x04, 0, 0, 99]);
    }

    #[test]
    fn delta_crosses_the_2_pow_32_wrap_without_fmt0() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, u32::MAX - 9, 8, 1, 5));
        let h = header_of(&mut e, &small(4, 10, 8, 1, 5));
        assert_eq!(h, [0x84, 0, 0, 20]);
    }

    #[test]
    fn extended_timestamp_follows_the_message_header() {
        let mut e = ChunkEncoder::new();
        let h = header_of(&mut e, &small(3, 0x0100_0000, 9, 1, 1));
        assert_eq!(&h[1..4], [0xFF, 0xFF, 0xFF]);
        assert_eq!(&h[12..], [1, 0, 0, 0]);
    }

    #[test]
    fn continuation_chunks_are_fmt3_and_repeat_the_extended_timestamp() {
        let mut e = ChunkEncoder::new();
        let payload = Bytes::from(vec![7u8; 300]);
        let mut out = Vec::new();
        e.write(&msg(3, 0x0100_0000, 9, 1, payload.clone()), &mut out);
        // header, 128, C3+ext, 128, C3+ext, 44
        let lens: Vec<usize> = out.iter().map(|b| b.len()).collect();
        assert_eq!(lens, [16, 128, 5, 128, 5, 44]);
        assert_eq!(&out[2][..], [0xC3, 1, 0, 0, 0]);
        // Payload chunks are slices of the shared payload, not copies.
        assert_eq!(out[1].as_ptr(), payload.as_ptr());
        assert_eq!(out[3].as_ptr(), payload[128..].as_ptr());
    }

    #[test]
    fn set_chunk_size_is_written_with_the_old_size_then_applied() {
        let mut e = ChunkEncoder::new();
        let mut out = Vec::new();
        e.set_chunk_size(4096, &mut out);
        assert_eq!(
            out.concat(),
            [2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0]
        );
        assert_eq!(e.chunk_size(), 4096);
        let mut out = Vec::new();
        e.write(&small(3, 0, 9, 1, 1000), &mut out);
        assert_eq!(out.len(), 2, "one chunk: header and payload");
    }

    #[test]
    fn reset_stream_forces_fmt0() {
        let mut e = ChunkEncoder::new();
        header_of(&mut e, &small(4, 0, 8, 1, 5));
        e.reset_stream(4);
        assert_eq!(header_of(&mut e, &small(4, 0, 8, 1, 5)).len(), 12);
        header_of(&mut e, &small(400, 0, 8, 1, 5));
        e.reset_stream(400);
        assert_eq!(header_of(&mut e, &small(400, 0, 8, 1, 5)).len(), 14);
    }

    #[test]
    fn header_scratch_is_reclaimed_once_output_is_written() {
        let mut e = ChunkEncoder::new();
        let mut firsts = Vec::new();
        for i in 0..1000 {
            let mut out = Vec::new();
            e.write(&small(4, i * 40, 9, 1, 1000), &mut out);
            firsts.push(out[0].as_ptr() as usize);
            // `out` is dropped here: written.
        }
        // Every header was carved from the first small block, reused once
        // the output before it was gone: no allocation per message.
        let (lo, hi) = (firsts.iter().min(), firsts.iter().max());
        assert!(hi.zip(lo).is_some_and(|(h, l)| h - l < SCRATCH_FIRST_BLOCK));
    }

    #[test]
    fn header_scratch_grows_in_few_blocks_while_output_is_held() {
        let mut e = ChunkEncoder::new();
        let mut held = Vec::new();
        for i in 0..2000 {
            e.write(&small(4, i * 40, 9, 1, 1000), &mut held);
        }
        // Headers stay valid while held, and come from a handful of
        // blocks (doubling up to the cap), not one allocation each: a
        // header not right behind the previous one starts a new block.
        let headers: Vec<&Bytes> = held.iter().step_by(2).collect();
        let blocks = 1 + headers
            .windows(2)
            .filter(|w| w[1].as_ptr() as usize != w[0].as_ptr() as usize + w[0].len())
            .count();
        assert!(blocks < 12, "{blocks} blocks for 2000 headers");
    }

    #[test]
    fn a_prefixed_message_is_the_same_bytes_as_the_joined_one() {
        // Wide chunk stream ids and extended timestamps change the header
        // sizes the shared pieces are cut at.
        let cases = [(128, 10), (128, 300), (4096, 9000), (3, 300), (128, 123)];
        let headers = [
            (6, 40),
            (70, 40),
            (400, 40),
            (6, 0x0100_0000),
            (400, 0x0100_0000),
        ];
        for ((chunk, len), (csid, ts)) in cases.into_iter().flat_map(|c| headers.map(|h| (c, h))) {
            let body = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let prefix = [0x17, 1, 0, 0, 0];
            let joined = [&prefix[..], &body[..]].concat();
            let wire = |m: &RawMessage, prefix: &[u8]| {
                let mut e = ChunkEncoder::new();
                let mut out = Vec::new();
                e.set_chunk_size(chunk, &mut out);
                // A second message too: its headers are compressed.
                e.write_prefixed(m, prefix, &mut out);
                let next = RawMessage {
                    timestamp: MediaTime::from_millis(m.timestamp.as_millis() + 33),
                    ..m.clone()
                };
                e.write_prefixed(&next, prefix, &mut out);
                out.concat()
            };
            let expected = wire(&msg(csid, ts, 9, 1, Bytes::from(joined)), &[]);
            let got = wire(&msg(csid, ts, 9, 1, body.clone()), &prefix);
            assert_eq!(
                got, expected,
                "chunk {chunk}, body {len}, csid {csid}, ts {ts}"
            );
        }
        // Large payloads stay shared: the body goes out as slices of it.
        let body = Bytes::from(vec![7u8; 9000]);
        let mut e = ChunkEncoder::new();
        let mut out = Vec::new();
        e.write_prefixed(&msg(6, 0, 9, 1, body.clone()), &[1, 2], &mut out);
        let start = body.as_ptr() as usize;
        let shared: usize = out
            .iter()
            .filter(|b| (start..start + body.len()).contains(&(b.as_ptr() as usize)))
            .map(Bytes::len)
            .sum();
        assert_eq!(shared, body.len());
    }
}
