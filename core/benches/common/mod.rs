//! What the server benches share: media that looks like a live 720p30
//! H.264+AAC stream, an in-memory RTMP client ([`Peer`]) built from the
//! crate's own handshake and chunk layers, and [`Live`], a [`Server`] with
//! one publisher on the air.

// Each bench uses its own subset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tincan_core::message::{Command, Connect, Encoding, Message, Play, PublishKind, Value};
use tincan_core::server::{Server, ServerConfig};
use tincan_core::time::MediaTime;

/// Video frame interval (30 fps) and GOP length (2 s).
pub const VIDEO_MS: u32 = 33;
pub const GOP: u64 = 60;
/// AAC frame interval at 48 kHz (1024 samples).
pub const AUDIO_MS: u32 = 21;
/// A P-frame of a 2.7 Mbit/s 720p30 stream; keyframes here are the same
/// size so frames cost the same whatever their position in the GOP.
pub const VIDEO_LEN: usize = 12 * 1024;
pub const AUDIO_LEN: usize = 200;
pub const STREAM_NAME: &str = "bench";

// ---------------------------------------------------------------- media

/// An FLV video tag body: AVC NALU packet (`keyframe` or inter frame)
/// with one length-prefixed NAL unit, `len` bytes in all.
pub fn avc_frame(keyframe: bool, len: usize) -> Bytes {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    let nal_len = (len - 9) as u32;
    v.extend_from_slice(&nal_len.to_be_bytes());
    v.push(if keyframe { 0x65 } else { 0x41 });
    v.extend((1..nal_len).map(|i| (i * 13) as u8 | 1));
    assert_eq!(v.len(), len);
    Bytes::from(v)
}

/// The AVC sequence header (decoder configuration record) for High@3.1.
pub fn avc_sequence_header() -> Bytes {
    Bytes::from_static(&[
        0x17, 0x00, 0, 0, 0, // AVC sequence header
        0x01, 0x64, 0x00, 0x1f, 0xff, // version, High, 3.1, 4-byte lengths
        0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, // one SPS
        0x01, 0x00, 0x04, 0x68, 0xee, 0x3c, 0x80, // one PPS
    ])
}

/// The AAC sequence header (AudioSpecificConfig: LC, 48 kHz, stereo).
pub fn aac_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90])
}

/// An AAC raw frame, `len` bytes with its FLV audio header.
pub fn aac_frame(len: usize) -> Bytes {
    let mut v = vec![0xaf, 0x01];
    v.extend((2..len).map(|i| (i * 7) as u8));
    Bytes::from(v)
}

// ---------------------------------------------------------------- client

/// A client connection of the in-memory server.
pub struct Peer {
    pub id: SessionId,
    pub encoder: ChunkEncoder,
    pub decoder: ChunkDecoder,
    /// Message stream id from `createStream`.
    pub stream: u32,
}

/// Everything the server has for `id` now, as bytes.
pub fn drain_bytes(server: &mut Server, now: Instant, id: SessionId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = server.poll_transmit(now, id) {
        for b in &t.bufs {
            out.extend_from_slice(b);
        }
    }
    out
}

impl Peer {
    /// A connection through the handshake, as a client sees it.
    pub fn handshaken(server: &mut Server, now: Instant, seed: u64) -> Peer {
        let id = server
            .accept(now, None, &mut SeededEntropy::new(seed))
            .expect("accepted");
        let mut hs = ClientHandshake::new(
            now,
            HandshakeConfig::default(),
            &mut SeededEntropy::new(seed + 1_000_000),
        );
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        loop {
            while let Some(b) = hs.poll_transmit() {
                server.handle_input(now, id, &b).expect("handshake");
            }
            if hs.is_complete() {
                break;
            }
            let out = drain_bytes(server, now, id);
            assert!(!out.is_empty(), "the server stalled in the handshake");
            let used = hs.handle_input(&out).expect("server handshake valid");
            if let Some(rest) = out.get(used..).filter(|r| !r.is_empty()) {
                decoder.handle_input(rest).expect("chunk stream");
            }
        }
        Peer {
            id,
            encoder: ChunkEncoder::new(),
            decoder,
            stream: 0,
        }
    }

    /// Encodes `message` and hands it to the server as one read.
    pub fn send(
        &mut self,
        server: &mut Server,
        now: Instant,
        message: &Message,
        csid: u32,
        ts: u32,
    ) {
        let raw = message
            .to_raw(csid, MediaTime::from_millis(ts), self.stream)
            .expect("message encodes");
        let mut bufs = Vec::new();
        self.encoder.write(&raw, &mut bufs);
        server
            .handle_input(now, self.id, &bufs.concat())
            .expect("valid input");
    }

    pub fn command(&mut self, server: &mut Server, now: Instant, command: Command) {
        let csid = if self.stream == 0 { 3 } else { 8 };
        let message = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        self.send(server, now, &message, csid, 0);
    }

    /// Every message the server sent since the last call, decoded.
    pub fn receive(&mut self, server: &mut Server, now: Instant) -> Vec<Message> {
        let bytes = drain_bytes(server, now, self.id);
        self.decoder.handle_input(&bytes).expect("server output");
        let mut got = Vec::new();
        while let Some(raw) = self.decoder.poll_message().expect("server output") {
            got.push(Message::decode(&raw).expect("server message"));
        }
        got
    }

    /// `connect` to App "live" as FFmpeg does, then `createStream`.
    pub fn connected(server: &mut Server, now: Instant, seed: u64) -> Peer {
        let mut peer = Peer::handshaken(server, now, seed);
        peer.command(
            server,
            now,
            Command::Connect(Connect {
                transaction_id: 1.0,
                properties: Value::object([
                    ("app", Value::from("live")),
                    ("flashVer", Value::from("LNX 9,0,124,2")),
                    ("tcUrl", Value::from("rtmp://127.0.0.1/live")),
                    ("objectEncoding", Value::Number(0.0)),
                ]),
                args: vec![],
            }),
        );
        assert!(
            result_of(&peer.receive(server, now), 1.0).is_some(),
            "connect answered"
        );
        peer.command(
            server,
            now,
            Command::CreateStream {
                transaction_id: 2.0,
            },
        );
        let args = result_of(&peer.receive(server, now), 2.0).expect("createStream answered");
        let stream = args.last().and_then(Value::as_f64).expect("a stream id");
        peer.stream = stream as u32;
        peer
    }

    /// `play` of the bench stream as FFmpeg sends it (nothing drained).
    pub fn play(&mut self, server: &mut Server, now: Instant) {
        self.command(
            server,
            now,
            Command::Play(Play {
                transaction_id: 4.0,
                name: STREAM_NAME.to_owned(),
                start: -2000.0,
                duration: -1.0,
                reset: true,
                options: None,
            }),
        );
    }
}

/// The arguments of the `_result` for `transaction_id`.
pub fn result_of(messages: &[Message], transaction_id: f64) -> Option<Vec<Value>> {
    messages.iter().find_map(|m| match m {
        Message::Command {
            command:
                Command::Result {
                    transaction_id: t,
                    args,
                    ..
                },
            ..
        } if *t == transaction_id => Some(args.clone()),
        _ => None,
    })
}

/// Whether `messages` hold an `onStatus` with `code`.
pub fn has_status(messages: &[Message], code: &str) -> bool {
    messages.iter().any(|m| {
        matches!(m, Message::Command { command: Command::OnStatus { info }, .. }
            if info.get("code").and_then(Value::as_str) == Some(code))
    })
}

// ---------------------------------------------------------------- server

/// A [`Server`] (default configuration) with one publisher on the air:
/// it published [`STREAM_NAME`] and sent both sequence headers.
pub struct Live {
    pub server: Server,
    /// The virtual clock, moved with media time.
    pub now: Instant,
    pub publisher: Peer,
    /// Reused: the publisher's chunk output for one frame.
    bufs: Vec<Bytes>,
    input: Vec<u8>,
    /// Media time of the last frame, audio or video (one timeline).
    pub media_ts: u32,
    /// Video frames sent so far.
    pub frames: u64,
    pub payload_key: Bytes,
    pub payload_inter: Bytes,
    pub payload_audio: Bytes,
}

impl Live {
    pub fn new() -> Self {
        Self::with_config(ServerConfig::default())
    }

    /// As [`Live::new`], with `config` (e.g. write merging on).
    pub fn with_config(config: ServerConfig) -> Self {
        let mut server = Server::new(config);
        // A bench measures real time; the clock is the caller's here, as
        // it is a runtime's (core/clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut publisher = Peer::connected(&mut server, now, 1);
        // FFmpeg and OBS raise their chunk size before media.
        let mut bufs = Vec::new();
        publisher.encoder.set_chunk_size(4096, &mut bufs);
        server
            .handle_input(now, publisher.id, &bufs.concat())
            .expect("set chunk size");
        publisher.command(
            &mut server,
            now,
            Command::Publish {
                transaction_id: 5.0,
                name: Some(STREAM_NAME.to_owned()),
                kind: PublishKind::Live,
            },
        );
        assert!(
            has_status(
                &publisher.receive(&mut server, now),
                "NetStream.Publish.Start"
            ),
            "publish accepted"
        );
        publisher.send(
            &mut server,
            now,
            &Message::Video(avc_sequence_header()),
            6,
            0,
        );
        publisher.send(
            &mut server,
            now,
            &Message::Audio(aac_sequence_header()),
            4,
            0,
        );
        Live {
            server,
            now,
            publisher,
            bufs,
            input: Vec::new(),
            media_ts: 0,
            frames: 0,
            payload_key: avc_frame(true, VIDEO_LEN),
            payload_inter: avc_frame(false, VIDEO_LEN),
            payload_audio: aac_frame(AUDIO_LEN),
        }
    }

    /// Sends the next video frame (a keyframe every [`GOP`] frames) from
    /// the publisher, without draining anyone; returns its payload.
    pub fn publish_video(&mut self) -> Bytes {
        let keyframe = self.frames % GOP == 0;
        self.frames += 1;
        self.media_ts = self.media_ts.wrapping_add(VIDEO_MS);
        self.now += Duration::from_millis(u64::from(VIDEO_MS));
        let payload = if keyframe {
            self.payload_key.clone()
        } else {
            self.payload_inter.clone()
        };
        self.publish(Message::Video(payload.clone()), 6);
        payload
    }

    /// Sends the next audio frame from the publisher, without draining.
    pub fn publish_audio(&mut self) {
        self.media_ts = self.media_ts.wrapping_add(AUDIO_MS);
        self.now += Duration::from_millis(u64::from(AUDIO_MS));
        self.publish(Message::Audio(self.payload_audio.clone()), 4);
    }

    fn publish(&mut self, message: Message, csid: u32) {
        let raw = message
            .to_raw(
                csid,
                MediaTime::from_millis(self.media_ts),
                self.publisher.stream,
            )
            .expect("media encodes");
        self.bufs.clear();
        self.publisher.encoder.write(&raw, &mut self.bufs);
        self.input.clear();
        for b in &self.bufs {
            self.input.extend_from_slice(b);
        }
        self.server
            .handle_input(self.now, self.publisher.id, &self.input)
            .expect("media accepted");
    }
}
