//! Targets over the codecs: handshake, chunk layer, AMF, media tags and
//! typed messages.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use tincan_core::amf::{amf0, amf3};
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig, HandshakeError, ServerHandshake};
use tincan_core::media::{
    parse_audio, parse_video, AudioPacket, MediaInfo, VideoPacket, MAX_DESCRIBED_TRACKS,
};
use tincan_core::message::{split_aggregate, Message};
use tincan_core::time::MediaTime;

use crate::script::Script;

/// AMF0: decoding arbitrary bytes never panics, and whatever decodes
/// re-encodes and decodes to the same encoding.
pub fn amf0(data: &[u8]) {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut out = BytesMut::new();
    // References decode unresolved and may not re-encode against a fresh
    // table; everything else must.
    if amf0::encode_all(&values, &mut out).is_ok() {
        if let Ok(again) = amf0::decode_all(&out) {
            // NaN != NaN, so compare the encodings instead of the values.
            let mut out2 = BytesMut::new();
            amf0::encode_all(&again, &mut out2).expect("re-encoding decoded values");
            assert_eq!(out, out2);
        }
    }
}

/// AMF3: decoding arbitrary bytes never panics or over-reads, and whatever
/// decodes re-encodes stably.
pub fn amf3(data: &[u8]) {
    let Ok((value, used)) = amf3::decode(data) else {
        return;
    };
    assert!(used <= data.len());
    let mut out = BytesMut::new();
    if amf3::encode(&value, &mut out).is_ok() {
        if let Ok((again, _)) = amf3::decode(&out) {
            let mut out2 = BytesMut::new();
            amf3::encode(&again, &mut out2).expect("re-encoding decoded value");
            assert_eq!(out, out2);
        }
    }
}

fn inside(payload: &Bytes, part: &Bytes) {
    let (start, end) = (
        payload.as_ptr() as usize,
        payload.as_ptr() as usize + payload.len(),
    );
    let p = part.as_ptr() as usize;
    assert!(part.is_empty() || (p >= start && p + part.len() <= end));
}

/// Media tags: arbitrary audio/video payloads parse or fail with a typed
/// error, never panic, and every slice a parsed tag hands out lies inside
/// the payload.
pub fn media_tag(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(tag) = parse_video(&payload) {
        let _ = (
            tag.is_keyframe(),
            tag.is_config(),
            tag.is_sequence_end(),
            tag.codec(),
        );
        let _ = tag.composition_time();
        for track in tag.tracks() {
            match &track.packet {
                VideoPacket::SequenceStart(b)
                | VideoPacket::Metadata(b)
                | VideoPacket::Mpeg2TsSequenceStart(b)
                | VideoPacket::CodedFrames { data: b, .. } => inside(&payload, b),
                VideoPacket::SequenceEnd => {}
            }
        }
    }
    if let Ok(tag) = parse_audio(&payload) {
        let _ = (
            tag.is_config(),
            tag.is_sequence_end(),
            tag.codec(),
            tag.sound_params(),
        );
        for track in tag.tracks() {
            match &track.packet {
                AudioPacket::SequenceStart(b) | AudioPacket::CodedFrames(b) => inside(&payload, b),
                AudioPacket::SequenceEnd | AudioPacket::MultichannelConfig(_) => {}
            }
        }
    }
    describe(&payload);
}

/// `MediaInfo` on the same payload: the sequence header parsers (SPS, OBU,
/// ASC, ...) never panic, the change flag is honest, and the track cap
/// holds.
fn describe(payload: &Bytes) {
    let mut info = MediaInfo::new();
    let changed = info.update_from_video(payload);
    assert_eq!(changed, !info.is_empty(), "video change flag");
    let before = info.clone();
    let changed = info.update_from_audio(payload);
    assert_eq!(changed, before != info, "audio change flag");
    assert!(info.video().len() <= MAX_DESCRIBED_TRACKS);
    assert!(info.audio().len() <= MAX_DESCRIBED_TRACKS);
}

/// Input of [`message`]: byte 0 the type id, bytes 1..5 the timestamp, the
/// rest the payload (the `arbitrary` layout, kept for the committed corpus).
#[derive(Arbitrary, Debug)]
struct MessageInput {
    type_id: u8,
    timestamp: u32,
    payload: Vec<u8>,
}

/// Typed messages: any type id with any payload decodes or fails cleanly,
/// and a decoded message re-encodes to a payload that decodes the same way.
pub fn message(data: &[u8]) {
    let Ok(input) = MessageInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let raw = RawMessage {
        csid: 3,
        timestamp: MediaTime::from_millis(input.timestamp),
        type_id: input.type_id,
        stream_id: 1,
        payload: Bytes::from(input.payload),
    };
    if let Ok(Message::Aggregate(_)) = Message::decode(&raw) {
        for sub in split_aggregate(&raw) {
            let Ok(sub) = sub else { break };
            assert!(sub.payload.len() <= raw.payload.len());
            let _ = Message::decode(&sub);
        }
    }
    let Ok(msg) = Message::decode(&raw) else {
        return;
    };
    if let Ok(again) = msg.to_raw(3, raw.timestamp, 1) {
        let decoded = Message::decode(&again).expect("a re-encoded message decodes");
        assert_eq!(decoded.type_id(), msg.type_id());
    }
}

/// Chunk decoder: arbitrary bytes in arbitrary splits, under small limits,
/// never panic, never hold more than the buffered-bytes bound, never yield
/// a message over the length bound, and stay failed once failed.
///
/// Script: u16 max message length - 1, u8 max partial streams - 1, u8 max
/// chunk streams - 1, u16 window acknowledgement size (0: none), then byte
/// runs, one per read.
pub fn chunk_decoder(data: &[u8]) {
    let mut s = Script::new(data);
    let max_message_len = usize::from(s.u16()) + 1;
    let limits = DecoderLimits {
        max_message_len,
        max_partial_streams: usize::from(s.u8()) + 1,
        max_chunk_streams: usize::from(s.u8()) + 1,
        max_buffered_bytes: 2 * max_message_len + 64,
        ..DecoderLimits::default()
    };
    let mut d = ChunkDecoder::new(limits);
    let window = s.u16();
    if window != 0 {
        d.set_window_ack_size(u32::from(window));
    }
    while !s.is_empty() {
        let read = s.run();
        if let Err(e) = d.handle_input(read) {
            assert_eq!(d.poll_message(), Err(e), "errors are sticky");
            return;
        }
        loop {
            assert!(d.buffered_bytes() <= limits.max_buffered_bytes);
            match d.poll_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= max_message_len);
                    assert!((2..=65599).contains(&m.csid));
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.poll_message(), Err(e), "errors are sticky");
                    return;
                }
            }
        }
        while d.poll_acknowledgement().is_some() {}
    }
}

#[derive(Arbitrary, Debug)]
enum RoundtripOp {
    Send {
        csid: u16,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        len: u16,
    },
    ChunkSize(u16),
}

#[derive(Arbitrary, Debug)]
struct RoundtripInput {
    ops: Vec<RoundtripOp>,
    splits: Vec<u8>,
}

/// Chunk encode -> decode: any sequence of messages, written with any chunk
/// sizes (changed mid-sequence) and read back in any splits, decodes to the
/// same messages.
pub fn chunk_roundtrip(data: &[u8]) {
    let Ok(input) = RoundtripInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut enc = ChunkEncoder::new();
    let mut wire: Vec<Bytes> = Vec::new();
    let mut sent = Vec::new();
    for op in input.ops {
        match op {
            RoundtripOp::Send {
                csid,
                timestamp,
                type_id,
                stream_id,
                len,
            } => {
                // Types 1, 2 and 5 change how the decoder reads; they are
                // exercised through ChunkSize below and by the decoder target.
                let type_id = if matches!(type_id, 1 | 2 | 5) {
                    8
                } else {
                    type_id
                };
                let msg = RawMessage {
                    csid: u32::from(csid).clamp(3, 65599),
                    timestamp: MediaTime::from_millis(timestamp),
                    type_id,
                    stream_id,
                    payload: Bytes::from(vec![type_id; usize::from(len)]),
                };
                enc.write(&msg, &mut wire);
                sent.push(msg);
            }
            RoundtripOp::ChunkSize(size) => enc.set_chunk_size(u32::from(size).max(1), &mut wire),
        }
    }
    let bytes: Vec<u8> = wire.iter().flat_map(|b| b.iter().copied()).collect();
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_chunk_streams: 65600,
        max_partial_streams: 65600,
        ..DecoderLimits::default()
    });
    let mut got = Vec::new();
    let mut rest = &bytes[..];
    let mut splits = input.splits.iter().cycle();
    while !rest.is_empty() {
        let n = usize::from(*splits.next().unwrap_or(&255)).clamp(1, rest.len());
        d.handle_input(&rest[..n])
            .expect("own encoding is within limits");
        rest = &rest[n..];
        while let Some(m) = d.poll_message().expect("own encoding decodes") {
            if m.type_id != 1 {
                got.push(m);
            }
        }
    }
    assert_eq!(got.len(), sent.len());
    for (a, b) in got.iter().zip(&sent) {
        assert_eq!(
            (a.csid, a.type_id, a.stream_id),
            (b.csid, b.type_id, b.stream_id)
        );
        assert_eq!(a.payload, b.payload);
        // The encoder may carry time as deltas; the absolute value must match.
        assert_eq!(a.timestamp, b.timestamp);
    }
}

/// The shape both handshake machines share, so one driver fuzzes both.
trait Machine {
    fn input(&mut self, b: &[u8]) -> Result<usize, HandshakeError>;
    fn timeout(&mut self, now: Instant) -> Result<(), HandshakeError>;
    fn drain(&mut self);
    fn deadline(&self) -> Option<Instant>;
}

macro_rules! machine {
    ($t:ty) => {
        impl Machine for $t {
            fn input(&mut self, b: &[u8]) -> Result<usize, HandshakeError> {
                self.handle_input(b)
            }
            fn timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
                self.handle_timeout(now)
            }
            fn drain(&mut self) {
                while self.poll_transmit().is_some() {}
            }
            fn deadline(&self) -> Option<Instant> {
                self.poll_timeout()
            }
        }
    };
}
machine!(ClientHandshake);
machine!(ServerHandshake);

fn drive_handshake(hs: &mut dyn Machine, start: Instant, s: &mut Script<'_>) {
    let mut now = start;
    while let Some(op) = s.op() {
        hs.drain();
        if op % 2 == 0 {
            let b = s.run();
            match hs.input(b) {
                Ok(used) => assert!(used <= b.len()),
                Err(e) => {
                    assert_eq!(hs.input(b), Err(e), "errors are sticky");
                    return;
                }
            }
        } else {
            now += Duration::from_millis(u64::from(s.u16()) * 16);
            if hs.timeout(now).is_err() {
                assert!(hs.deadline().is_none());
                return;
            }
        }
    }
}

/// Handshake: server and client machines fed arbitrary bytes in arbitrary
/// splits, with timer events in between, never panic, never consume more
/// than they are given, and stay failed once failed.
///
/// Script: u8 (bit 0: the client machine), u32 entropy seed, then
/// operations: even byte + run = bytes from the peer, odd byte + u16 =
/// time passes (units of 16 ms).
pub fn handshake(data: &[u8]) {
    let mut s = Script::new(data);
    let client_side = s.u8() & 1 == 1;
    let mut entropy = SeededEntropy::new(u64::from(s.u32()));
    let start = Instant::now();
    let config = HandshakeConfig::default();
    if client_side {
        let mut hs = ClientHandshake::new(start, config, &mut entropy);
        drive_handshake(&mut hs, start, &mut s);
    } else {
        let mut hs = ServerHandshake::new(start, config, &mut entropy);
        drive_handshake(&mut hs, start, &mut s);
    }
}
