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
//!   drained with [`Server::poll_transmit_into`]: the buffers a runtime would
//!   hand to `writev`, for every player (and the publisher's
//!   acknowledgements). Sockets, syscalls and the kernel are not included.
//! * `fanout_merge/av_40ms/<players>`: the same with adaptive write
//!   merging on (the throughput mode, a 40 ms bound): one audio and one
//!   video frame per iteration, each followed by a drain, so most drains
//!   find media held (the hold check is the hot path) and about one in
//!   two releases a merged batch of several messages in one transmit.
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
use tincan_core::event::{BrokerEvent, Frame, FrameKind, PlayRequest, SessionEvent, SessionId};
use tincan_core::message::{Message, PublishKind};
use tincan_core::server::ServerConfig;
use tincan_core::session::Transmit;
use tincan_core::time::MediaTime;

mod common;
use common::{
    avc_frame, avc_sequence_header, has_status, Live, Peer, AUDIO_LEN, GOP, STREAM_NAME, VIDEO_LEN,
    VIDEO_MS,
};

/// Players on the stream: the brief's 1,000, and 100 to show that the
/// per-player cost stays flat as the audience grows.
const AUDIENCES: [usize; 2] = [100, 1_000];

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
        // Any starting instant will do; a bench is the caller, as a
        // runtime is (core/clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let connect = |broker: &mut Broker| {
            let id = broker.open_session();
            broker.handle_event(
                now,
                id,
                SessionEvent::Connected(Box::new(tincan_core::event::ConnectInfo {
                    app: "live".to_owned(),
                    connection_id: format!("conn-{id}"),
                    ..Default::default()
                })),
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
                seq: 1,
                query: String::new(),
                priority: 0,
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
                        seq: 1,
                        name: STREAM_NAME.to_owned(),
                        query: String::new(),
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

/// The in-memory server with one publisher and `players` players.
struct ServerBench {
    live: Live,
    players: usize,
    /// The one transmit every drain refills, as a runtime keeps per connection.
    transmit: Transmit,
}

impl ServerBench {
    fn new(players: usize) -> Self {
        Self::with_config(players, ServerConfig::default())
    }

    fn with_config(players: usize, config: ServerConfig) -> Self {
        // With write merging on, a P-frame is held this long.
        let hold = config.session.merge_window;
        let mut live = Live::with_config(config);
        let (server, now) = (&mut live.server, live.now);
        let mut peers: Vec<Peer> = (0..players as u64)
            .map(|n| {
                let mut p = Peer::connected(server, now, 10 + n);
                p.play(server, now);
                p
            })
            .collect();
        for p in &mut peers {
            let got = p.receive(server, now);
            assert!(has_status(&got, "NetStream.Play.Start"), "play started");
            let headers = got
                .iter()
                .filter(|m| matches!(m, Message::Video(_) | Message::Audio(_)))
                .count();
            assert_eq!(headers, 2, "fast start sends both sequence headers");
        }
        // A first keyframe and P-frame: every player must decode both
        // whole, so the timed loop measures real delivery.
        for _ in 0..2 {
            let sent = live.publish_video();
            live.now += hold;
            live.publisher.receive(&mut live.server, live.now);
            for p in &mut peers {
                let got = p.receive(&mut live.server, live.now);
                assert!(
                    got.iter()
                        .any(|m| matches!(m, Message::Video(v) if *v == sent)),
                    "the frame reaches every player intact: {got:?}"
                );
            }
            while live.server.poll_ready().is_some() {}
        }
        ServerBench {
            live,
            players,
            transmit: Transmit::default(),
        }
    }

    /// Drains every ready connection as a runtime would, refilling one
    /// reused `Transmit` (`poll_transmit_into`, as every runtime does, so
    /// nothing is allocated per write); returns the bytes and the
    /// transmits handed out.
    fn flush(&mut self) -> (usize, usize) {
        let (server, now) = (&mut self.live.server, self.live.now);
        let t = &mut self.transmit;
        let (mut bytes, mut writes) = (0, 0);
        while let Some(id) = server.poll_ready() {
            while server.poll_transmit_into(now, id, t) {
                bytes += black_box(&*t).len();
                writes += 1;
                t.bufs.clear();
            }
        }
        (bytes, writes)
    }

    // Not inlined, so a profiler can count exactly the timed work
    // (valgrind --toggle-collect='*video_frame*').
    #[inline(never)]
    fn video_frame(&mut self) -> (usize, usize) {
        self.live.publish_video();
        self.flush()
    }

    // Not inlined, as video_frame.
    #[inline(never)]
    fn audio_frame(&mut self) -> (usize, usize) {
        self.live.publish_audio();
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

fn merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_merge");
    for players in AUDIENCES {
        group.throughput(Throughput::Elements(players as u64));
        let mut config = ServerConfig::default();
        config.session.merge_window = Duration::from_millis(40);
        let mut bench = ServerBench::with_config(players, config);
        group.bench_function(BenchmarkId::new("av_40ms", players), |b| {
            b.iter(|| {
                black_box(bench.audio_frame());
                black_box(bench.video_frame());
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = broker, server, merge
}
criterion_main!(benches);
