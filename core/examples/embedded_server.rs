//! A whole live server embedded in a program of its own, over plain
//! `std::net` and threads: the embedder decides who may publish, records
//! every approved publish through a tap, and feeds a stream it generates
//! itself through a source.
//!
//! ```sh
//! cargo run -p tincan-core --example embedded_server -- 127.0.0.1:1935 /tmp/rec
//! # approved (the rule: the name's query carries key=letmein), recorded:
//! ffmpeg -re -i input.mp4 -c copy -f flv 'rtmp://127.0.0.1:1935/live/cam?key=letmein'
//! # refused with NetStream.Publish.Denied:
//! ffmpeg -re -i input.mp4 -c copy -f flv rtmp://127.0.0.1:1935/live/cam
//! # the generated stream, a 440 Hz tone:
//! ffplay rtmp://127.0.0.1:1935/live/tone
//! ```
//!
//! The runtime here is the simplest that works, not a fast one: one thread
//! per connection reads and hands bytes to the core under one lock, and
//! one ticker thread runs the deadlines, the embedder's logic and every
//! write. The tokio, mio and smol adapters do the same job properly.

// This example is a runtime: it owns the sockets, files and the clock that
// the core may not touch (core/clippy.toml), so the sans-IO lint is off here.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::event::{Denial, Frame, FrameKind, SessionId};
use tincan_core::server::{Approvals, Decider, Server, ServerConfig, ServerEvent};
use tincan_core::session::Transmit;
use tincan_core::tap::{SourceId, TapId, TapItem};
use tincan_core::time::MediaTime;

#[path = "common/flv.rs"]
mod flv;

/// The publish rule: the name's query must carry this key.
pub const PUBLISH_KEY: &str = "key=letmein";
/// App and name of the generated stream.
pub const TONE: (&str, &str) = ("live", "tone");

/// Linear PCM audio (FLV sound format 3, little endian), 44.1 kHz, 16 bit,
/// mono: the one codec a program can generate with no encoder, and every
/// FFmpeg decodes.
const PCM_HEADER: u8 = (3 << 4) | (3 << 2) | (1 << 1);
const RATE: u32 = 44_100;
const FRAME_MS: u32 = 20;

/// Everything the threads share.
struct Shared {
    server: Server,
    /// Each connection's socket, for writes.
    sockets: HashMap<SessionId, TcpStream>,
    /// A transmit whose socket did not take all of it yet.
    pending: HashMap<SessionId, Transmit>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves until `stop` is set: publishes into `dir` (one FLV per publish
/// named `<app>-<name>.flv`), the tone as [`TONE`].
pub fn run(listener: TcpListener, dir: &Path, stop: Arc<AtomicBool>) -> io::Result<()> {
    let config = ServerConfig {
        approvals: Approvals {
            publish: Decider::Embedder,
            ..Approvals::default()
        },
        ..ServerConfig::default()
    };
    let shared = Arc::new(Mutex::new(Shared {
        server: Server::new(config),
        sockets: HashMap::new(),
        pending: HashMap::new(),
    }));
    let ticker = {
        let (shared, dir, stop) = (shared.clone(), dir.to_owned(), stop.clone());
        std::thread::spawn(move || tick(&shared, &dir, &stop))
    };
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((socket, peer)) => {
                let id = {
                    let mut s = lock(&shared);
                    let accepted = s.server.accept(Instant::now(), Some(peer), &mut os_random);
                    match accepted {
                        Ok(id) => {
                            s.sockets.insert(id, socket.try_clone()?);
                            id
                        }
                        Err(refusal) => {
                            eprintln!("refused {peer}: {refusal}");
                            continue;
                        }
                    }
                };
                let (shared, stop) = (shared.clone(), stop.clone());
                std::thread::spawn(move || read_loop(&shared, id, socket, &stop));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    ticker
        .join()
        .map_err(|_| io::Error::other("ticker panicked"))?
}

/// One connection's reads: bytes to the core, EOF and errors too.
fn read_loop(shared: &Mutex<Shared>, id: SessionId, mut socket: TcpStream, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    while !stop.load(Ordering::Relaxed) {
        let read = socket.read(&mut buf);
        let mut s = lock(shared);
        if !s.sockets.contains_key(&id) {
            return; // removed by the ticker
        }
        match read {
            Ok(0) => {
                s.server.handle_eof(Instant::now(), id);
                return;
            }
            Ok(n) => {
                let _ = s.server.handle_input(Instant::now(), id, &buf[..n]);
                // The core takes a bounded turn per call; finish this read.
                while s.server.has_pending_input(id) {
                    let _ = s.server.handle_input(Instant::now(), id, &[]);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                s.server.remove(Instant::now(), id);
                s.sockets.remove(&id);
                return;
            }
        }
    }
}

/// The embedder's side of an approved publish: a tap recording it.
struct Recording {
    tap: TapId,
    out: BufWriter<File>,
    flv_tags: u64,
}

/// Deadlines, the embedder's decisions, taps, the generated source, and
/// every write, every few milliseconds.
fn tick(shared: &Mutex<Shared>, dir: &Path, stop: &AtomicBool) -> io::Result<()> {
    let mut recordings: Vec<Recording> = Vec::new();
    let started = Instant::now();
    let mut tone: Option<SourceId> = None;
    let mut sent_ms: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        let mut s = lock(shared);
        s.server.handle_timeout(now);
        // The embedder hears what happened and decides.
        while let Some(event) = s.server.poll_event() {
            match event {
                ServerEvent::PublishRequest {
                    ticket, request, ..
                } => {
                    // The rule: a key in the query. A real embedder might
                    // ask an HTTP service here and answer much later.
                    let allowed = request.query.split('&').any(|kv| kv == PUBLISH_KEY);
                    let answer = if allowed {
                        s.server.approve(now, ticket)
                    } else {
                        let denial = Denial::policy("publishing needs a key");
                        s.server.deny(now, ticket, denial)
                    };
                    if let Err(e) = answer {
                        eprintln!("{e}");
                    }
                }
                ServerEvent::PublishStarted { app, name, .. }
                    if (app.as_str(), name.as_str()) != TONE =>
                {
                    // Record it: a tap gets what a player would.
                    match s.server.open_tap(now, &app, &name, None) {
                        Ok(tap) => {
                            let path: PathBuf = dir.join(format!("{app}-{name}.flv"));
                            let mut out = BufWriter::new(File::create(path)?);
                            flv::FlvWriter::new(&mut out)?;
                            recordings.push(Recording {
                                tap,
                                out,
                                flv_tags: 0,
                            });
                        }
                        Err(e) => eprintln!("cannot record {app}/{name}: {e}"),
                    }
                }
                ServerEvent::PublishEnded { app, name, .. } => {
                    eprintln!("{app}/{name} ended");
                }
                _ => {}
            }
        }
        // Drain every tap into its file.
        for rec in &mut recordings {
            let mut flv = flv::FlvWriter::continuing(&mut rec.out, rec.flv_tags);
            while let Some(item) = s.server.poll_tap(now, rec.tap) {
                if let TapItem::Frame(f) = item {
                    flv.write(&Frame {
                        kind: f.kind,
                        timestamp: f.timestamp,
                        payload: f.payload,
                        keyframe: f.keyframe,
                        config: f.config,
                    })?;
                }
            }
            rec.flv_tags = flv.tags;
            rec.out.flush()?;
        }
        while s.server.poll_tap_ready().is_some() {}
        // The generated stream, paced by the clock.
        if tone.is_none() {
            tone = s.server.open_source(now, TONE.0, TONE.1, 0).ok();
        }
        if let Some(source) = tone {
            let due = now.saturating_duration_since(started).as_millis() as u32;
            while sent_ms + FRAME_MS <= due {
                let frame = Frame {
                    kind: FrameKind::Audio,
                    timestamp: MediaTime::from_millis(sent_ms),
                    payload: tone_frame(sent_ms),
                    keyframe: false,
                    config: false,
                };
                if s.server.source_frame(now, source, frame).is_err() {
                    tone = None;
                    break;
                }
                sent_ms += FRAME_MS;
            }
        }
        flush(&mut s, now);
    }
    let mut s = lock(shared);
    for rec in &mut recordings {
        rec.out.flush()?;
    }
    let now = Instant::now();
    s.server.close_all(now, "example stopping");
    flush(&mut s, now);
    Ok(())
}

/// Writes what every connection has, without blocking on a slow one (its
/// rest waits for the next tick), and removes what closed.
fn flush(s: &mut Shared, now: Instant) {
    while s.server.poll_ready().is_some() {}
    let ids: Vec<SessionId> = s.server.connection_ids().collect();
    for id in ids {
        let mut t = s.pending.remove(&id).unwrap_or_default();
        let Some(socket) = s.sockets.get(&id) else {
            continue;
        };
        let _ = socket.set_nonblocking(true);
        let mut failed = false;
        loop {
            if t.is_empty() && !s.server.poll_transmit_into(now, id, &mut t) {
                break;
            }
            let mut slices = [io::IoSlice::new(&[]); 64];
            let n = t.io_slices(&mut slices);
            match (&*socket).write_vectored(&slices[..n]) {
                Ok(written) => t.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed || (s.server.is_closed(id) && t.is_empty()) {
            s.server.remove(now, id);
            if let Some(socket) = s.sockets.remove(&id) {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        } else if !t.is_empty() {
            s.pending.insert(id, t);
        }
    }
}

/// 20 ms of a 440 Hz sine starting at `at_ms`, as an FLV audio tag body.
fn tone_frame(at_ms: u32) -> Bytes {
    let samples = RATE * FRAME_MS / 1000;
    let first = u64::from(at_ms) * u64::from(RATE) / 1000;
    let mut body = Vec::with_capacity(1 + 2 * samples as usize);
    body.push(PCM_HEADER);
    for i in 0..u64::from(samples) {
        let t = (first + i) as f64 / f64::from(RATE);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        body.extend_from_slice(&(v as i16).to_le_bytes());
    }
    Bytes::from(body)
}

/// The core never draws randomness itself; in production hand it the OS's.
fn os_random(buf: &mut [u8]) {
    let mut urandom = File::open("/dev/urandom").expect("/dev/urandom is readable");
    urandom.read_exact(buf).expect("/dev/urandom gives bytes");
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1935".to_owned());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let listener = TcpListener::bind(&addr)?;
    eprintln!(
        "rtmp://{addr}/<app>/<name>?{PUBLISH_KEY} publishes (recorded in {}), \
         rtmp://{addr}/{}/{} plays a tone",
        dir.display(),
        TONE.0,
        TONE.1
    );
    run(listener, &dir, Arc::new(AtomicBool::new(false)))
}
