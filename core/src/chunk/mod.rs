//! The RTMP chunk stream: how messages are cut into chunks, interleaved on
//! one connection, and put back together.
//!
//! [`ChunkDecoder`] turns received bytes into [`RawMessage`]s, applying the
//! two control messages that change chunk parsing itself (Set Chunk Size and
//! Abort) at the exact point they arrive, and counting bytes for
//! acknowledgements. [`ChunkEncoder`] does the reverse without copying
//! payloads: it writes compressed chunk headers and hands back slices of the
//! shared payload, ready for a vectored write.
//!
//! # Decoding conventions, where implementations disagree
//!
//! * **Extended timestamp on type-3 chunks.** The spec, FFmpeg
//!   (`rtmppkt.c`) and librtmp repeat the 4-byte extended timestamp after
//!   every type-3 chunk header when the last full header on that chunk stream
//!   had one; some encoders (older librtmp forks among them) leave it out.
//!   Like SRS (`SrsProtocol::read_message_header`), we peek at the 4 bytes and
//!   consume them only when they equal the value we expect (the last
//!   extended field, or for a continuation also the message's absolute
//!   timestamp); otherwise they are payload. A conforming stream always
//!   matches, so this only misreads a non-repeating stream whose payload
//!   happens to start with exactly that 32-bit value. Because the decision
//!   needs the 4 bytes, such a chunk waits until 4 bytes follow its basic
//!   header (with a non-repeating peer that then falls silent, the chunk
//!   waits for its next bytes; media keeps flowing in practice, and only
//!   timestamps past 4.6 hours are affected).
//! * **Type-3 header starting a new message** adds the *previous timestamp
//!   field* again: after a type-0 header that is the absolute timestamp
//!   (type 0 at 26 ms then type 3 gives 52 ms), as the spec says and as
//!   FFmpeg, librtmp and SRS all do.
//! * **A type-1 header on a fresh chunk stream 2** is accepted with stream
//!   id 0 and a zero base timestamp: librtmp sends its first user-control
//!   message that way and SRS accepts it for the same reason. Any other
//!   type-1/2/3 header on an unseen chunk stream is
//!   [`ChunkError::UnknownChunkStream`].
//! * **Headers in the middle of a message** (type 0, 1 or 2 where a
//!   continuation was due) are tolerated only if they repeat the message's
//!   length, type and stream id; their timestamp is ignored. Anything else is
//!   [`ChunkError::HeaderChangedMidMessage`] (the FFmpeg CVE-2016-10191
//!   shape).
//! * **Acknowledgement counting** covers every byte given to
//!   [`ChunkDecoder::handle_input`]. librtmp and SRS also count the handshake
//!   (their byte counter sits on the socket), FFmpeg does not; the session
//!   decides with [`ChunkDecoder::add_handshake_bytes`].
//! * **Control messages** (Set Chunk Size, Abort, Window Acknowledgement
//!   Size) take effect whatever chunk stream or message stream they came on,
//!   as in FFmpeg and SRS, and are still returned to the caller.
//! * **Remembered chunk streams** are never evicted: a peer that uses more
//!   than [`DecoderLimits::max_chunk_streams`] ids gets
//!   [`ChunkError::TooManyChunkStreams`]. Evicting a completed stream's
//!   header would make a later compressed header on it fail anyway (or
//!   worse, decode against the wrong base), and real clients use a handful.
//! * **One-chunk messages share the receive buffer**: their payload is a
//!   slice of it, so no copy is made, at the price that a long-lived small
//!   message (a sequence header kept for late joiners) keeps its buffer
//!   block alive.
//!
//! # Encoding
//!
//! The encoder follows the spec and FFmpeg: type 0 for a chunk stream's
//! first message, a new message stream id or a timestamp that goes
//! backwards (on the wrapping timeline); type 1 when length or type change;
//! type 2 when only the delta changes; type 3 when the delta repeats too;
//! and it repeats the extended timestamp on every type-3 chunk.

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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// One step of a generated conversation.
    #[derive(Debug, Clone)]
    enum Op {
        /// A message; `ts` is absolute or a delta from the csid's last one.
        Msg {
            csid: u32,
            ts: Ts,
            type_id: u8,
            stream_id: u32,
            len: usize,
        },
        SetChunkSize(u32),
    }

    #[derive(Debug, Clone)]
    enum Ts {
        Abs(u32),
        Delta(u32),
    }

    fn ts_strategy() -> impl Strategy<Value = Ts> {
        let value = prop_oneof![
            0u32..100,
            any::<u32>(),
            (0xFF_FFF0u32..0x100_0010),
            (u32::MAX - 100..=u32::MAX),
        ];
        prop_oneof![
            value.clone().prop_map(Ts::Abs),
            value.prop_map(Ts::Delta),
            Just(Ts::Delta(20)),
            Just(Ts::Delta(0x0100_0000)),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        let msg = (
            prop::sample::select(vec![2u32, 3, 4, 8, 63, 64, 319, 320, 65599]),
            ts_strategy(),
            // Not 1, 2 or 5: those change the decoder's parsing state.
            prop::sample::select(vec![3u8, 4, 6, 8, 9, 18, 20, 22]),
            prop::sample::select(vec![0u32, 1, 0x0102_0304]),
            prop_oneof![0usize..300, 0usize..1000],
        )
            .prop_map(|(csid, ts, type_id, stream_id, len)| Op::Msg {
                csid,
                ts,
                type_id,
                stream_id,
                len,
            });
        let size = prop_oneof![1u32..300, 300u32..70_000, Just(0x7FFF_FFFF)];
        prop_oneof![10 => msg, 1 => size.prop_map(Op::SetChunkSize)]
    }

    /// Encodes the ops and returns the bytes and the messages the decoder
    /// must produce.
    fn encode_ops(initial_chunk: u32, ops: &[Op]) -> (Vec<u8>, Vec<RawMessage>) {
        let mut enc = ChunkEncoder::new();
        let mut out = Vec::new();
        let mut want = Vec::new();
        let mut last_ts = std::collections::HashMap::new();
        let mut seq = 0u8;
        let set = |enc: &mut ChunkEncoder,
                   out: &mut Vec<Bytes>,
                   want: &mut Vec<RawMessage>,
                   size: u32| {
            enc.set_chunk_size(size, out);
            want.push(RawMessage {
                csid: 2,
                timestamp: MediaTime::ZERO,
                type_id: crate::message::type_id::SET_CHUNK_SIZE,
                stream_id: 0,
                payload: Bytes::copy_from_slice(&size.to_be_bytes()),
            });
        };
        if initial_chunk != DEFAULT_CHUNK_SIZE {
            set(&mut enc, &mut out, &mut want, initial_chunk);
        }
        for op in ops {
            match op {
                Op::Msg {
                    csid,
                    ts,
                    type_id,
                    stream_id,
                    len,
                } => {
                    let prev: MediaTime = last_ts.get(csid).copied().unwrap_or_default();
                    let timestamp = match ts {
                        Ts::Abs(t) => MediaTime::from_millis(*t),
                        Ts::Delta(d) => prev.wrapping_add(*d),
                    };
                    last_ts.insert(*csid, timestamp);
                    seq = seq.wrapping_add(1);
                    let payload: Vec<u8> = (0..*len).map(|i| (i as u8) ^ seq).collect();
                    let m = RawMessage {
                        csid: *csid,
                        timestamp,
                        type_id: *type_id,
                        stream_id: *stream_id,
                        payload: Bytes::from(payload),
                    };
                    enc.write(&m, &mut out);
                    want.push(m);
                }
                Op::SetChunkSize(size) => set(&mut enc, &mut out, &mut want, *size),
            }
        }
        (out.concat(), want)
    }

    /// Feeds `bytes` in pieces of the given sizes (cycled), draining after
    /// each piece.
    fn decode_split(bytes: &[u8], splits: &[usize]) -> Result<Vec<RawMessage>, ChunkError> {
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut got = Vec::new();
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits
                .get(i % splits.len().max(1))
                .copied()
                .unwrap_or(rest.len());
            let n = n.clamp(1, rest.len());
            i += 1;
            dec.handle_input(&rest[..n])?;
            rest = &rest[n..];
            while let Some(m) = dec.poll_message()? {
                got.push(m);
            }
        }
        Ok(got)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encoded_messages_decode_identically_in_any_split(
            initial_chunk in prop_oneof![Just(DEFAULT_CHUNK_SIZE), 1u32..5000],
            ops in prop::collection::vec(op_strategy(), 0..40),
            splits in prop::collection::vec(1usize..700, 1..20),
        ) {
            let (bytes, want) = encode_ops(initial_chunk, &ops);
            let got = decode_split(&bytes, &splits).expect("valid stream must decode");
            prop_assert_eq!(got, want);
        }

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..4000),
            splits in prop::collection::vec(1usize..300, 1..10),
        ) {
            let _ = decode_split(&bytes, &splits);
        }

        #[test]
        fn decoder_never_panics_on_mutated_valid_streams(
            ops in prop::collection::vec(op_strategy(), 1..20),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            splits in prop::collection::vec(1usize..300, 1..10),
        ) {
            let (mut bytes, _) = encode_ops(DEFAULT_CHUNK_SIZE, &ops);
            if !bytes.is_empty() {
                for (at, value) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
            }
            let _ = decode_split(&bytes, &splits);
        }
    }
}
