//! The tokio and smol adapters' fan-out path, without sockets: one
//! publisher's frame through [`LockedServer`] to every player, as the
//! publisher's task does it (the `Server` call under the lock, then each
//! ready player's transmit written by the calling task through its
//! [`DirectWriter`]), against the path it replaced (each ready player's
//! own task woken to take its transmit from the core). The kernel's share
//! is the floor's (docs/performance.md); this is ours.
//!
//! * `locked_fanout/direct/video_12KB/<players>`: the direct writes. Each
//!   player's writer takes everything (a socket with room), so no player
//!   task is woken.
//! * `locked_fanout/woken/video_12KB/<players>`: the same frame, players
//!   without a writer: the call rings each player's bell, then each
//!   player takes its transmit from the core under the lock, as its task
//!   would once woken (the wake itself, a trip through the executor, is
//!   not counted).
//!
//! Throughput is in players: per-player cost in ns is the time per
//! iteration / players. Media is the core benches' 12 KB 720p30 P-frame
//! with a keyframe every 60 frames, on a virtual clock moved with media
//! time.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tincan_core::message::{Command, Message, PublishKind};
use tincan_core::server::ServerConfig;
use tincan_core::session::Transmit;
use tincan_core::time::MediaTime;
use tincan_net::{Bell, DirectWriter, LockedServer};

#[path = "../../core/benches/common/mod.rs"]
mod common;
use common::{
    aac_sequence_header, avc_frame, avc_sequence_header, has_status, Peer, GOP, STREAM_NAME,
    VIDEO_LEN, VIDEO_MS,
};

const AUDIENCES: [usize; 2] = [100, 1_000];

/// The virtual clock: a fixed start moved by media time.
static START: OnceLock<Instant> = OnceLock::new();
static ELAPSED_MS: AtomicU64 = AtomicU64::new(0);

fn clock() -> Instant {
    *START.get_or_init(Instant::now) + Duration::from_millis(ELAPSED_MS.load(Ordering::Relaxed))
}

/// A bell that counts its rings: a player woken is a player not written
/// directly. Each player has its own, as each task has in the adapters:
/// a bell shared by all would sit in the cache for every player but the
/// first, and hide what touching a player's bell costs.
#[derive(Clone, Default)]
struct Counted(Arc<AtomicUsize>);

impl Bell for Counted {
    fn ring(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct Bench {
    shared: LockedServer<Counted>,
    publisher: Peer,
    players: Vec<tincan_core::event::SessionId>,
    rings: Vec<Counted>,
    /// Players have writers (else they are woken).
    direct: bool,
    /// Bytes the players' writers took.
    written: Arc<AtomicUsize>,
    media_ts: u32,
    frames: u64,
    key: Bytes,
    inter: Bytes,
    input: Vec<u8>,
    transmit: Transmit,
}

impl Bench {
    fn new(players: usize, direct: bool) -> Bench {
        let shared = LockedServer::new(
            ServerConfig::default(),
            Counted::default(),
            Counted::default(),
            clock,
        );
        let mut rings = Vec::new();
        let written = Arc::new(AtomicUsize::new(0));
        let publisher = shared.with(|s, now| {
            let mut p = Peer::connected(s, now, 1);
            let mut bufs = Vec::new();
            p.encoder.set_chunk_size(4096, &mut bufs);
            s.handle_input(now, p.id, &bufs.concat()).unwrap();
            p.command(
                s,
                now,
                Command::Publish {
                    transaction_id: 5.0,
                    name: Some(STREAM_NAME.to_owned()),
                    kind: PublishKind::Live,
                },
            );
            assert!(has_status(&p.receive(s, now), "NetStream.Publish.Start"));
            p.send(s, now, &Message::Video(avc_sequence_header()), 6, 0);
            p.send(s, now, &Message::Audio(aac_sequence_header()), 4, 0);
            p
        });
        let ids: Vec<_> = (0..players as u64)
            .map(|n| {
                shared.with(|s, now| {
                    let mut p = Peer::connected(s, now, 10 + n);
                    p.play(s, now);
                    assert!(has_status(&p.receive(s, now), "NetStream.Play.Start"));
                    p.id
                })
            })
            .collect();
        for &id in &ids {
            let bell = Counted::default();
            shared.register(id, bell.clone());
            rings.push(bell.clone());
            if direct {
                let written = Arc::clone(&written);
                shared.register_writer(
                    id,
                    Arc::new(DirectWriter::new(
                        bell.clone(),
                        move |bufs: &[IoSlice<'_>]| {
                            let n = bufs.iter().map(|b| b.len()).sum();
                            written.fetch_add(n, Ordering::Relaxed);
                            Ok(n)
                        },
                    )),
                );
            }
        }
        let mut bench = Bench {
            shared,
            publisher,
            players: ids,
            rings,
            direct,
            written,
            media_ts: 0,
            frames: 0,
            key: avc_frame(true, VIDEO_LEN),
            inter: avc_frame(false, VIDEO_LEN),
            input: Vec::new(),
            transmit: Transmit::default(),
        };
        // A first keyframe reaches every player whole, so the timed loop
        // measures real delivery.
        let before = bench.written.load(Ordering::Relaxed);
        bench.frame();
        if direct {
            assert!(bench.written.load(Ordering::Relaxed) - before >= players * VIDEO_LEN);
            assert_eq!(
                bench
                    .rings
                    .iter()
                    .map(|r| r.0.load(Ordering::Relaxed))
                    .sum::<usize>(),
                0,
                "a player with room in its socket is never woken"
            );
        }
        bench
    }

    /// The publisher's next video frame as one read; then, in the woken
    /// path, every rung player's transmits taken as its task would.
    /// Returns the transmits handed out.
    #[inline(never)]
    fn frame(&mut self) -> usize {
        let keyframe = self.frames % GOP == 0;
        self.frames += 1;
        self.media_ts = self.media_ts.wrapping_add(VIDEO_MS);
        ELAPSED_MS.fetch_add(u64::from(VIDEO_MS), Ordering::Relaxed);
        let payload = if keyframe { &self.key } else { &self.inter };
        let raw = Message::Video(payload.clone())
            .to_raw(
                6,
                MediaTime::from_millis(self.media_ts),
                self.publisher.stream,
            )
            .unwrap();
        let mut bufs = Vec::new();
        self.publisher.encoder.write(&raw, &mut bufs);
        self.input.clear();
        for b in &bufs {
            self.input.extend_from_slice(b);
        }
        let pid = self.publisher.id;
        let input = &self.input;
        let (result, mut transmits) = self
            .shared
            .with_counted(|s, now| s.handle_input(now, pid, input));
        result.unwrap();
        if !self.direct {
            // Woken players: each takes its output from the core.
            for &id in &self.players {
                let t = &mut self.transmit;
                while self.shared.with(|s, now| s.poll_transmit_into(now, id, t)) {
                    transmits += 1;
                    t.bufs.clear();
                }
            }
        }
        // The publisher's own output (acknowledgements) is its task's.
        self.shared.with(|s, now| {
            while s.poll_transmit_into(now, pid, &mut self.transmit) {
                self.transmit.bufs.clear();
            }
        });
        transmits
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("locked_fanout");
    for players in AUDIENCES {
        group.throughput(Throughput::Elements(players as u64));
        for (name, direct) in [("direct", true), ("woken", false)] {
            let mut bench = Bench::new(players, direct);
            group.bench_function(
                BenchmarkId::new(format!("{name}/video_12KB"), players),
                |b| {
                    b.iter(|| {
                        let transmits = bench.frame();
                        assert!(
                            transmits >= players,
                            "{transmits} transmits for {players} players"
                        );
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = fanout
}
criterion_main!(benches);
