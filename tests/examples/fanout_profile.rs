//! An in-memory fan-out workload for profiling the core's hot path:
//! one publisher sending 720p30-like media (≈2.7 Mbit/s: a 60 KB keyframe
//! every 2 s, 9.5 KB inter frames, 340-byte AAC frames at 46.9/s) to N
//! players through one [`Server`], with every transmit drained as a
//! runtime with unlimited sockets would. No sockets or threads, so
//! `valgrind --tool=callgrind` counts are repeatable on a busy machine:
//!
//! ```text
//! cargo build --release -p tincan-tests --example fanout_profile
//! valgrind --tool=callgrind --toggle-collect=fanout_profile::hot_phase \
//!     target/release/examples/fanout_profile 500 3
//! ```
//!
//! Arguments: players (default 500), seconds of media (default 3).
//! Prints transmits, buffers and bytes delivered, and the wall time of
//! the hot phase.

use std::time::{Duration, Instant};

use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};
use tincan_core::session::Transmit;
use tincan_tests::sim::media::{aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header};
use tincan_tests::sim::SimClient;

/// Counts allocations, to check that fan-out allocates nothing per frame
/// per player.
struct CountingAlloc;

static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts calls.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_add(new, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

struct Conn {
    id: SessionId,
    client: SimClient,
    /// Once playing, output is counted and dropped instead of decoded.
    discard: bool,
    /// Reused for every transmit, as the runtimes do.
    transmit: Transmit,
}

#[derive(Default, Debug)]
struct Counts {
    transmits: u64,
    bufs: u64,
    bytes: u64,
}

/// Moves client bytes in and server output out until nothing moves.
fn pump(server: &mut Server, conns: &mut [Conn], base: Instant, now: Instant, c: &mut Counts) {
    loop {
        let mut moved = false;
        for conn in conns.iter_mut() {
            for b in conn.client.take_outbound() {
                moved = true;
                let _ = server.handle_input(now, conn.id, &b);
            }
        }
        while let Some(id) = server.poll_ready() {
            let Some(conn) = conns.iter_mut().find(|c| c.id == id) else {
                continue;
            };
            while let Some(t) = server.poll_transmit(now, id) {
                if conn.discard {
                    c.transmits += 1;
                    c.bufs += t.bufs.len() as u64;
                    c.bytes += t.len() as u64;
                } else {
                    moved = true;
                    for b in &t.bufs {
                        conn.client.handle_input(now - base, b);
                    }
                }
            }
        }
        if !moved {
            return;
        }
    }
}

/// The same, for the hot phase: only the publisher sends, and the ready
/// players' output is counted (indexed by id, no search).
fn drain(server: &mut Server, conns: &mut [Conn], index: &[usize], now: Instant, c: &mut Counts) {
    while let Some(id) = server.poll_ready() {
        let i = index[id_index(id)];
        let mut t = std::mem::take(&mut conns[i].transmit);
        while server.poll_transmit_into(now, id, &mut t) {
            if conns[i].discard {
                c.transmits += 1;
                c.bufs += t.bufs.len() as u64;
                c.bytes += t.len() as u64;
            } else {
                for b in &t.bufs {
                    conns[i].client.handle_input(Duration::ZERO, b);
                }
            }
            // Written: the buffers are released, the list is kept.
            t.bufs.clear();
        }
        conns[i].transmit = t;
    }
}

fn id_index(id: SessionId) -> usize {
    usize::try_from(id.0).unwrap_or(0)
}

#[inline(never)]
fn hot_phase(
    server: &mut Server,
    conns: &mut [Conn],
    index: &[usize],
    base: Instant,
    secs: u32,
) -> Counts {
    let mut c = Counts::default();
    let key = avc_keyframe(&vec![0x55; 60_000]);
    let inter = avc_inter(&vec![0x66; 9_500]);
    let audio = aac_raw(&vec![0x77; 340]);
    // Media time in ms; video every 33.3 ms, audio every 21.3 ms.
    let mut v = 0u32;
    let mut a = 0u32;
    let end = secs * 1000;
    while v < end || a < end {
        let vt = v * 1000 / 30;
        let at = a * 1024 * 1000 / 48_000;
        if vt >= end && at >= end {
            break;
        }
        let now = base + Duration::from_secs(1) + Duration::from_millis(u64::from(vt.min(at)));
        let p = &mut conns[0].client;
        if vt <= at {
            let payload = if v % 60 == 0 {
                key.clone()
            } else {
                inter.clone()
            };
            p.send_video(1, vt, payload);
            v += 1;
        } else {
            p.send_audio(1, at, audio.clone());
            a += 1;
        }
        for b in conns[0].client.take_outbound() {
            let _ = server.handle_input(now, conns[0].id, &b);
        }
        drain(server, conns, index, now, &mut c);
        if server.poll_timeout().is_some_and(|d| d <= now) {
            server.handle_timeout(now);
            drain(server, conns, index, now, &mut c);
        }
    }
    c
}

fn main() {
    let mut args = std::env::args().skip(1);
    let players: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let secs: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);

    let base = Instant::now();
    let mut server = Server::new(ServerConfig::default());
    let mut conns = Vec::new();
    for n in 0..=players {
        let id = server
            .accept(base, None, &mut SeededEntropy::new(n as u64))
            .expect("accepted");
        conns.push(Conn {
            id,
            client: SimClient::new(base, n as u64 + 1_000_000),
            discard: false,
            transmit: Transmit::default(),
        });
    }
    let mut setup = Counts::default();
    pump(&mut server, &mut conns, base, base, &mut setup);
    // Publisher: connect, createStream (id 1), publish; then its config.
    conns[0].client.connect("live");
    conns[0].client.create_stream();
    conns[0].client.publish(1, "s");
    pump(&mut server, &mut conns, base, base, &mut setup);
    let p = &mut conns[0].client;
    p.send_video(1, 0, avc_sequence_header(&[1, 0x64, 0, 0x1f, 0xff]));
    p.send_audio(1, 0, aac_config(&[0x11, 0x90]));
    pump(&mut server, &mut conns, base, base, &mut setup);
    for conn in &mut conns[1..] {
        conn.client.connect("live");
        conn.client.create_stream();
        conn.client.play(1, "s", -2.0);
    }
    pump(&mut server, &mut conns, base, base, &mut setup);
    let playing = conns[1..]
        .iter()
        .filter(|c| {
            c.client
                .statuses(1)
                .iter()
                .any(|s| s == "NetStream.Play.Start")
        })
        .count();
    assert_eq!(playing, players, "every player is playing");
    for conn in &mut conns[1..] {
        conn.discard = true;
    }
    let mut index = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let n = id_index(c.id);
        if index.len() <= n {
            index.resize(n + 1, 0);
        }
        index[n] = i;
    }

    let a0 = ALLOCS.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let c = hot_phase(&mut server, &mut conns, &index, base, secs);
    let wall = t0.elapsed();
    let allocs = ALLOCS.load(std::sync::atomic::Ordering::Relaxed) - a0;
    // What the server holds per player: drop the clients' side first.
    for conn in &mut conns {
        conn.client = SimClient::new(base, 0);
        conn.transmit = Transmit::default();
    }
    let clients = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    drop(conns);
    let held = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    let server_heap = held;
    let per_client = (clients - held) / (players + 1);
    drop(server);
    let server_heap = server_heap - LIVE.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "server heap after the run: {} KiB ({} B per player; a fresh client is {} B)",
        server_heap / 1024,
        server_heap / players.max(1),
        per_client
    );
    println!(
        "players {players} secs {secs}: transmits {} bufs {} bytes {} ({:.1} bufs/transmit, {:.0} bytes/transmit), allocations {} ({:.2}/transmit), hot phase {:.3} s = {:.2} CPU-s/GB",
        c.transmits,
        c.bufs,
        c.bytes,
        c.bufs as f64 / c.transmits.max(1) as f64,
        c.bytes as f64 / c.transmits.max(1) as f64,
        allocs,
        allocs as f64 / c.transmits.max(1) as f64,
        wall.as_secs_f64(),
        wall.as_secs_f64() / (c.bytes as f64 / 1e9),
    );
}
