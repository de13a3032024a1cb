//! A viewer joining a live stream: what the server pays to take a new
//! player from `accept` to its first video, and what a connection costs in
//! memory while it stays.
//!
//! The [`Server`] has one publisher on the air, 1 s into a GOP (a keyframe
//! and 29 P-frames cached for fast start). One iteration of `join/player`
//! is, for a fresh connection: [`Server::accept`], the digest handshake
//! (FFmpeg's scheme-0 C1, answered by the in-memory client), one read
//! holding `connect`, `createStream` and `play` (pre-encoded: only the
//! handshake is client work in the timed part), then every transmit the
//! server has for it drained: replies, statuses, metadata, sequence headers
//! and the whole cached GOP, ready for `writev`. The connection is removed
//! outside the timed part. This is the server's CPU share of a late
//! joiner's time to first frame (the keyframe is in the first transmits).
//!
//! At setup the bench also prints the server's heap per connection, from a
//! counting global allocator (requested bytes, not allocator overhead):
//! idle (handshake and `connect` done) and playing (fast start drained).
//! The target is under 8 KiB per idle connection.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tincan_core::chunk::ChunkEncoder;
use tincan_core::event::SessionId;
use tincan_core::message::{Command, Connect, Encoding, Message, Play, Value};
use tincan_core::server::Server;
use tincan_core::time::MediaTime;

mod common;
use common::{drain_bytes, has_status, Live, Peer, STREAM_NAME};

/// Counts the bytes currently allocated through it, so setup can tell how
/// much heap the server holds per connection.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Frames of the current GOP cached when viewers join (1 s at 30 fps).
const GOP_SO_FAR: usize = 30;
/// Connections created to average the heap per connection over.
const SAMPLE: usize = 200;

/// What a joining client sends after the handshake, encoded once.
struct Requests {
    /// `connect` only.
    connect: Vec<u8>,
    /// `connect`, `createStream` and `play`, pipelined in one read.
    join: Vec<u8>,
}

fn requests() -> Requests {
    let mut enc = ChunkEncoder::new();
    let mut bufs = Vec::new();
    let mut write = |message: Message, csid, stream, bufs: &mut Vec<_>| {
        let raw = message
            .to_raw(csid, MediaTime::ZERO, stream)
            .expect("request encodes");
        enc.write(&raw, bufs);
    };
    let command = |command| Message::Command {
        encoding: Encoding::Amf0,
        command,
    };
    write(
        command(Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([
                ("app", Value::from("live")),
                ("flashVer", Value::from("LNX 9,0,124,2")),
                ("tcUrl", Value::from("rtmp://127.0.0.1/live")),
                ("objectEncoding", Value::Number(0.0)),
            ]),
            args: vec![],
        })),
        3,
        0,
        &mut bufs,
    );
    let connect = bufs.concat();
    write(
        command(Command::CreateStream {
            transaction_id: 2.0,
        }),
        3,
        0,
        &mut bufs,
    );
    // The first createStream of a connection is answered with stream 1
    // (checked at setup).
    write(
        command(Command::Play(Play {
            transaction_id: 4.0,
            name: STREAM_NAME.to_owned(),
            start: -2000.0,
            duration: -1.0,
            reset: true,
            options: None,
        })),
        8,
        1,
        &mut bufs,
    );
    Requests {
        connect,
        join: bufs.concat(),
    }
}

/// Accepts a connection and completes the client side of the handshake
/// against it; returns the id.
fn handshake(server: &mut Server, now: Instant, seed: u64) -> SessionId {
    let peer = Peer::handshaken(server, now, seed);
    peer.id
}

/// One viewer joins: handshake, the pipelined requests, every transmit
/// drained. Returns the id and the bytes the server handed out. Not
/// inlined, so a profiler can count exactly this (`--toggle-collect`).
#[inline(never)]
fn join(server: &mut Server, now: Instant, seed: u64, requests: &[u8]) -> (SessionId, usize) {
    let id = handshake(server, now, seed);
    server.handle_input(now, id, requests).expect("requests");
    let mut bytes = 0;
    while let Some(t) = server.poll_transmit(now, id) {
        bytes += t.len();
        std::hint::black_box(t);
    }
    (id, bytes)
}

/// The live server with a GOP in progress, after checking that a joiner
/// gets what a player needs from the pre-encoded requests.
fn live(requests: &Requests) -> Live {
    let mut live = Live::new();
    let keyframe = live.publish_video();
    for _ in 1..GOP_SO_FAR {
        live.publish_video();
    }
    drain_bytes(&mut live.server, live.now, live.publisher.id);
    while live.server.poll_ready().is_some() {}

    // A joiner decodes: Play.Start, both sequence headers, the keyframe,
    // then the rest of the GOP.
    let mut peer = Peer::handshaken(&mut live.server, live.now, 99);
    live.server
        .handle_input(live.now, peer.id, &requests.join)
        .expect("requests");
    let got = peer.receive(&mut live.server, live.now);
    assert!(has_status(&got, "NetStream.Play.Start"), "play started");
    let video: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            Message::Video(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(video.len(), 1 + GOP_SO_FAR, "sequence header and the GOP");
    assert_eq!(*video[1], keyframe, "the GOP starts at its keyframe");
    live.server.remove(live.now, peer.id);
    while live.server.poll_ready().is_some() {}
    live
}

/// Prints the server's heap per idle and per playing connection.
fn report_memory(requests: &Requests) {
    let mut live = live(requests);
    let (now, server) = (live.now, &mut live.server);
    let before = heap();
    let idle: Vec<SessionId> = (0..SAMPLE as u64)
        .map(|n| {
            let id = handshake(server, now, 1_000 + n);
            server
                .handle_input(now, id, &requests.connect)
                .expect("connect");
            drain_bytes(server, now, id);
            id
        })
        .collect();
    while server.poll_ready().is_some() {}
    let per_idle = (heap() - before) / SAMPLE as isize;
    for id in idle {
        server.remove(now, id);
    }
    while server.poll_ready().is_some() {}

    let before = heap();
    let playing: Vec<SessionId> = (0..SAMPLE as u64)
        .map(|n| join(server, now, 2_000 + n, &requests.join).0)
        .collect();
    while server.poll_ready().is_some() {}
    let per_playing = (heap() - before) / SAMPLE as isize;
    for id in playing {
        server.remove(now, id);
    }
    eprintln!(
        "join: server heap per connection, averaged over {SAMPLE}: \
         idle (handshake + connect) {per_idle} B, playing (fast start drained) {per_playing} B \
         (a Session is {} B inline; server-wide maps' amortized growth is included, so \
         figures move by up to about that much from run to run)",
        std::mem::size_of::<tincan_core::session::Session>()
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

fn join_bench(c: &mut Criterion) {
    let requests = requests();
    report_memory(&requests);
    let mut live = live(&requests);
    let mut seed = 10_000;
    let mut group = c.benchmark_group("join");
    group.throughput(Throughput::Elements(1));
    group.bench_function("player", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                seed += 1;
                // Timing the join is the bench's job, not the core's.
                #[allow(clippy::disallowed_methods)]
                let start = Instant::now();
                let (id, bytes) = join(&mut live.server, live.now, seed, &requests.join);
                spent += start.elapsed();
                assert!(bytes > GOP_SO_FAR * common::VIDEO_LEN, "the GOP went out");
                live.server.remove(live.now, id);
                while live.server.poll_ready().is_some() {}
            }
            spent
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = join_bench
}
criterion_main!(benches);
