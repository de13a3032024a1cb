//! Live fan-out, the server's hot path: what one publisher's frame costs per
//! player, with 1,000 players on one stream (and 100, to show the cost per
//! player does not grow with the audience).
//!
//! * `fanout_broker/video_12KB/<players>`: the [`Broker`] alone.
//!   [`Broker::handle_event`] with the publisher's `Frame`, then
//!   [`Broker::poll_output`] drained (one event per player). This is the
//!   registry's share: routing and timestamp rebasing, no bytes.
//! * `fanout_server/{video_12KB,audio_200B}/<players>`: the whole
//!   [`Server`], as a runtime drives it, with sessions that completed
//!   a real handshake, `connect`, `createStream` and `play` in memory. One
//!   frame's chunk bytes from the publisher go through
//!   [`Server::handle_input`]; then every id [`Server::poll_ready`] names is
//!   drained with [`Server::poll_transmit`]: the buffers a runtime would
//!   hand to `writev`, for every player (and the publisher's
//!   acknowledgements). Sockets, syscalls and the kernel are not included.
//!
//! Video is a 12 KB H.264 P-frame with a keyframe (same size) every 60th
//! frame, so the fast-start GOP cache stays at one 2-second GOP as it does
//! live; frames are 33 ms apart in media time and on the virtual clock.
//! Audio is a 200-byte AAC frame every 21 ms.
//!
//! Throughput is in players (elements): per-player cost in ns is
//! 1e9 / (elements per second), or the time per iteration / players.
//! Setup (connections, sequence headers, a first keyframe and P-frame) is
//! outside the timed loop, and checks that every player decodes those
//! frames whole, so the loop measures real delivery.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tincan_core::broker::{Broker, BrokerConfig};
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::{BrokerEvent, Frame, FrameKind, PlayRequest, SessionEvent, SessionId};
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tincan_core::message::{Command, Connect, Encoding, Message, Play, PublishKind, Value};
use tincan_core::server::{Server, ServerConfig};
use tincan_core::time::MediaTime;

/// Players on the stream: the brief's 1,000, and 100 to show that the
/// per-player cost stays flat as the audience grows.
const AUDIENCES: [usize; 2] = [100, 1_000];
/// Video frame interval (30 fps) and GOP length (2 s).
const VIDEO_MS: u32 = 33;
const GOP: u64 = 60;
/// AAC frame interval at 48 kHz (1024 samples).
const AUDIO_MS: u32 = 21;
const VIDEO_LEN: usize = 12 * 1024;
const AUDIO_LEN: usize = 200;
const STREAM_NAME: &str = "bench";

// ---------------------------------------------------------------- media

/// An FLV video tag body: AVC NALU packet (`keyframe` or inter frame)
/// with one length-prefixed NAL unit, `len` bytes in all.
fn avc_frame(keyframe: bool, len: usize) -> Bytes {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    let nal_len = (len - 9) as u32;
    v.extend_from_slice(&nal_len.to_be_bytes());
    v.push(if keyframe { 0x65 } else { 0x41 });
    v.extend((1..nal_len).map(|i| (i * 13) as u8 | 1));
    assert_eq!(v.len(), len);
    Bytes::from(v)
}

/// The AVC sequence header (decoder configuration record) for High@3.1.
fn avc_sequence_header() -> Bytes {
    Bytes::from_static(&[
        0x17, 0x00, 0, 0, 0, // AVC sequence header
        0x01, 0x64, 0x00, 0x1f, 0xff, // version, High, 3.1, 4-byte lengths
        0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, // one SPS
        0x01, 0x00, 0x04, 0x68, 0xee, 0x3c, 0x80, // one PPS
    ])
}

/// The AAC sequence header (AudioSpecificConfig: LC, 48 kHz, stereo).
fn aac_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90])
}

/// An AAC raw frame, `len` bytes with its FLV audio header.
fn aac_frame(len: usize) -> Bytes {
    let mut v = vec![0xaf, 0x01];
    v.extend((2..len).map(|i| (i * 7) as u8));
    Bytes::from(v)
}

// ---------------------------------------------------------------- broker

/// The broker with one publisher and `players` players on its stream.
struct BrokerBench {
    broker: Broker,
    players: usize,
    now: Instant,
    publisher: SessionId,
    video_ts: u32,
    frames: u64,
    payload_key: Bytes,
    payload_inter: Bytes,
}

impl BrokerBench {
    fn new(players: usize) -> Self {
        let mut broker = Broker::new(BrokerConfig::default());
        let now = Instant::now();
        let connect = |broker: &mut Broker| {
            let id = broker.open_session();
            broker.handle_event(
                now,
                id,
                SessionEvent::Connected {
                    app: "live".to_owned(),
                    connection_id: format!("conn-{id}"),
                },
            );
            id
        };
        let publisher = connect(&mut broker);
        broker.handle_event(
            now,
            publisher,
            SessionEvent::Publish {
                stream: 1,
                name: STREAM_NAME.to_owned(),
                kind: PublishKind::Live,
            },
        );
        for _ in 0..players {
            let id = connect(&mut broker);
            broker.handle_event(
                now,
                id,
                SessionEvent::Play {
                    stream: 1,
                    request: PlayRequest {
                        name: STREAM_NAME.to_owned(),
                    },
                },
            );
        }
        while broker.poll_output().is_some() {}
        let mut bench = BrokerBench {
            broker,
            players,
            now,
            publisher,
            video_ts: 0,
            frames: 0,
            payload_key: avc_frame(true, VIDEO_LEN),
            payload_inter: avc_frame(false, VIDEO_LEN),
        };
        bench.send(Frame {
            kind: FrameKind::Video,
            timestamp: MediaTime::ZERO,
            payload: avc_sequence_header(),
            keyframe: true,
            config: true,
        });
        assert_eq!(bench.drain(), players, "every player gets the header");
        bench
    }

    fn send(&mut self, frame: Frame) {
        self.broker.handle_event(
            self.now,
            self.publisher,
            SessionEvent::Frame { stream: 1, frame },
        );
    }

    /// Drains the broker's output; returns how many frames it carried.
    fn drain(&mut self) -> usize {
        let mut frames = 0;
        while let Some((to, event)) = self.broker.poll_output() {
            if matches!(event, BrokerEvent::Frame { .. }) {
                frames += 1;
            }
            black_box((to, event));
        }
        frames
    }

    /// The next video frame of the GOP pattern.
    fn next_video(&mut self) -> Frame {
        let keyframe = self.frames % GOP == 0;
        self.frames += 1;
        self.video_ts = self.video_ts.wrapping_add(VIDEO_MS);
        self.now += Duration::from_millis(u64::from(VIDEO_MS));
        Frame {
            kind: FrameKind::Video,
            timestamp: MediaTime::from_millis(self.video_ts),
            payload: if keyframe {
                self.payload_key.clone()
            } else {
                self.payload_inter.clone()
            },
            keyframe,
            config: false,
        }
    }
}

// ---------------------------------------------------------------- server

/// A client connection of the in-memory server.
struct Peer {
    id: SessionId,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    /// Message stream id from `createStream`.
    stream: u32,
}

/// Everything the server has for `id` now, as bytes.
fn drain_bytes(server: &mut Server, now: Instant, id: SessionId) -> Vec<u8> {
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
    fn handshaken(server: &mut Server, now: Instant, seed: u64) -> Peer {
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
    fn send(&mut self, server: &mut Server, now: Instant, message: &Message, csid: u32, ts: u32) {
        let raw = message
            .to_raw(csid, MediaTime::from_millis(ts), self.stream)
            .expect("message encodes");
        let mut bufs = Vec::new();
        self.encoder.write(&raw, &mut bufs);
        server
            .handle_input(now, self.id, &bufs.concat())
            .expect("valid input");
    }

    fn command(&mut self, server: &mut Server, now: Instant, command: Command) {
        let csid = if self.stream == 0 { 3 } else { 8 };
        let message = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        self.send(server, now, &message, csid, 0);
    }

    /// Every message the server sent since the last call, decoded.
    fn receive(&mut self, server: &mut Server, now: Instant) -> Vec<Message> {
        let bytes = drain_bytes(server, now, self.id);
        self.decoder.handle_input(&bytes).expect("server output");
        let mut got = Vec::new();
        while let Some(raw) = self.decoder.poll_message().expect("server output") {
            got.push(Message::decode(&raw).expect("server message"));
        }
        got
    }

    /// `connect` to App "live" as FFmpeg does, then `createStream`.
    fn connected(server: &mut Server, now: Instant, seed: u64) -> Peer {
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
}

/// The arguments of the `_result` for `transaction_id`.
fn result_of(messages: &[Message], transaction_id: f64) -> Option<Vec<Value>> {
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
fn has_status(messages: &[Message], code: &str) -> bool {
    messages.iter().any(|m| {
        matches!(m, Message::Command { command: Command::OnStatus { info }, .. }
            if info.get("code").and_then(Value::as_str) == Some(code))
    })
}

/// The in-memory server with one publisher and `players` players.
struct ServerBench {
    server: Server,
    players: usize,
    now: Instant,
    publisher: Peer,
    /// Reused: the publisher's chunk output for one frame.
    bufs: Vec<Bytes>,
    input: Vec<u8>,
    /// Media time of the last frame, audio or video: one timeline, so the
    /// audio bench can follow the video bench on the same server.
    media_ts: u32,
    frames: u64,
    payload_key: Bytes,
    payload_inter: Bytes,
    payload_audio: Bytes,
}

impl ServerBench {
    fn new(players: usize) -> Self {
        let mut server = Server::new(ServerConfig::default());
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
        for (header, csid) in [(avc_sequence_header(), 6), (aac_sequence_header(), 4)] {
            let message = if csid == 6 {
                Message::Video(header)
            } else {
                Message::Audio(header)
            };
            publisher.send(&mut server, now, &message, csid, 0);
        }

        let mut peers: Vec<Peer> = (0..players as u64)
            .map(|n| {
                let mut p = Peer::connected(&mut server, now, 10 + n);
                p.command(
                    &mut server,
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
                p
            })
            .collect();
        for p in &mut peers {
            let got = p.receive(&mut server, now);
            assert!(has_status(&got, "NetStream.Play.Start"), "play started");
            let headers = got
                .iter()
                .filter(|m| matches!(m, Message::Video(_) | Message::Audio(_)))
                .count();
            assert_eq!(headers, 2, "fast start sends both sequence headers");
        }
        let mut bench = ServerBench {
            server,
            players,
            now,
            publisher,
            bufs,
            input: Vec::new(),
            media_ts: 0,
            frames: 0,
            payload_key: avc_frame(true, VIDEO_LEN),
            payload_inter: avc_frame(false, VIDEO_LEN),
            payload_audio: aac_frame(AUDIO_LEN),
        };
        // A first keyframe and P-frame: every player must decode both
        // whole, so the timed loop measures real delivery.
        for _ in 0..2 {
            bench.publish_video();
            let sent = if bench.frames == 1 {
                bench.payload_key.clone()
            } else {
                bench.payload_inter.clone()
            };
            bench.publisher.receive(&mut bench.server, bench.now);
            for p in &mut peers {
                let got = p.receive(&mut bench.server, bench.now);
                assert!(
                    got.iter()
                        .any(|m| matches!(m, Message::Video(v) if *v == sent)),
                    "the frame reaches every player intact: {got:?}"
                );
            }
            while bench.server.poll_ready().is_some() {}
        }
        bench
    }

    /// Sends the next video frame from the publisher (no draining).
    fn publish_video(&mut self) {
        let keyframe = self.frames % GOP == 0;
        self.frames += 1;
        self.media_ts = self.media_ts.wrapping_add(VIDEO_MS);
        self.now += Duration::from_millis(u64::from(VIDEO_MS));
        let payload = if keyframe {
            self.payload_key.clone()
        } else {
            self.payload_inter.clone()
        };
        self.publish(Message::Video(payload), 6, self.media_ts);
    }

    fn publish(&mut self, message: Message, csid: u32, ts: u32) {
        let raw = message
            .to_raw(csid, MediaTime::from_millis(ts), self.publisher.stream)
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

    /// Drains every ready connection as a runtime would; returns the bytes
    /// and the transmits handed out.
    fn flush(&mut self) -> (usize, usize) {
        let (mut bytes, mut writes) = (0, 0);
        while let Some(id) = self.server.poll_ready() {
            while let Some(t) = self.server.poll_transmit(self.now, id) {
                bytes += t.len();
                writes += 1;
                black_box(t);
            }
        }
        (bytes, writes)
    }

    // Not inlined, so a profiler can count exactly the timed work
    // (valgrind --toggle-collect='*video_frame*').
    #[inline(never)]
    fn video_frame(&mut self) -> (usize, usize) {
        self.publish_video();
        self.flush()
    }

    // Not inlined, so a profiler can count exactly the timed work
    // (valgrind --toggle-collect='*video_frame*').
    #[inline(never)]
    fn audio_frame(&mut self) -> (usize, usize) {
        self.media_ts = self.media_ts.wrapping_add(AUDIO_MS);
        self.now += Duration::from_millis(u64::from(AUDIO_MS));
        let message = Message::Audio(self.payload_audio.clone());
        self.publish(message, 4, self.media_ts);
        self.flush()
    }
}

// ---------------------------------------------------------------- benches

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

fn broker(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_broker");
    for players in AUDIENCES {
        let mut bench = BrokerBench::new(players);
        group.throughput(Throughput::Elements(players as u64));
        group.bench_function(BenchmarkId::new("video_12KB", players), |b| {
            b.iter(|| {
                let frame = bench.next_video();
                bench.send(frame);
                assert_eq!(bench.drain(), bench.players);
            });
        });
    }
    group.finish();
}

fn server(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_server");
    for players in AUDIENCES {
        group.throughput(Throughput::Elements(players as u64));
        let mut bench = ServerBench::new(players);
        group.bench_function(BenchmarkId::new("video_12KB", players), |b| {
            b.iter(|| {
                let (bytes, _) = bench.video_frame();
                assert!(bytes >= bench.players * VIDEO_LEN);
            });
        });
        // The same server: audio continues the media timeline.
        group.bench_function(BenchmarkId::new("audio_200B", players), |b| {
            b.iter(|| {
                let (bytes, _) = bench.audio_frame();
                assert!(bytes >= bench.players * AUDIO_LEN);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = broker, server
}
criterion_main!(benches);
