//! Helpers for the abuse tests: hostile peers against the real `tincan`
//! binary while a healthy publisher and player keep media flowing.
//!
//! Every abuse test has the same shape: start a [`TestServer`], start a
//! [`Load`] (a publisher sending synthetic H.264-tagged frames at 25 fps and
//! a player counting the video frames it receives), take the server's RSS
//! baseline, run the attack, then check three things a user would see: the
//! attacker's connection was closed (or refused), the player's media kept
//! arriving during and after the attack, and the server's memory came back
//! to its baseline.
//!
//! The clients are [`SimClient`]s (the core's own client-side handshake,
//! chunk encoder and decoder) moved over real loopback sockets by
//! [`NetClient`]: cheap enough that a 2-core machine can run several abuse
//! tests side by side, and precise enough to send exactly the bytes an
//! attack needs.
//!
//! [`TestServer`]: crate::server::TestServer

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::chunk::{ChunkEncoder, RawMessage};
use tincan_core::message::{type_id, Command, Message};
use tincan_core::time::MediaTime;

use crate::sim::media;
use crate::sim::SimClient;

/// Frames per second the [`Load`] publisher sends.
pub const LOAD_FPS: u64 = 25;

/// The server's resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Waits up to `timeout` for the server's RSS to come back within
/// `margin_kib` of `baseline_kib`; returns the last RSS seen. Freed memory
/// reaches the OS a little after the connection that used it is gone.
pub fn rss_settles(pid: u32, baseline_kib: u64, margin_kib: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let rss = rss_kib(pid);
        if rss <= baseline_kib + margin_kib || Instant::now() >= deadline {
            return rss;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to `timeout` for the server log to contain `needle`.
pub fn log_shows(server: &crate::server::TestServer, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if server.logs().contains(needle) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A [`SimClient`] over a real, non-blocking loopback socket.
#[derive(Debug)]
pub struct NetClient {
    sim: SimClient,
    sock: TcpStream,
    started: Instant,
    /// Bytes the socket did not take yet.
    pending: Vec<u8>,
    eof: bool,
    /// An encoder of our own for messages sent after a chunk size change
    /// the simulated client's encoder does not know about.
    own: Option<ChunkEncoder>,
    next_transaction: f64,
}

impl NetClient {
    /// Connects from 127.0.0.1 to the server on `port`; `seed` makes the
    /// handshake bytes reproducible.
    pub fn connect(port: u16, seed: u64) -> Self {
        Self::connect_from(Ipv4Addr::LOCALHOST, port, seed)
    }

    /// Connects from the loopback address `from` (any 127.x.y.z works on
    /// Linux), so a test can open more connections than one address may.
    pub fn connect_from(from: Ipv4Addr, port: u16, seed: u64) -> Self {
        let sock = tcp_from(from, port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        Self::over(sock, seed)
    }

    /// Connects with a receive buffer of about `rcvbuf` bytes (set before
    /// connecting, so the TCP window the server sees is that small too).
    pub fn connect_with_rcvbuf(port: u16, seed: u64, rcvbuf: usize) -> Self {
        let sock = tcp_with(Ipv4Addr::LOCALHOST, port, Some(rcvbuf))
            .unwrap_or_else(|e| panic!("connect to {port}: {e}"));
        Self::over(sock, seed)
    }

    fn over(sock: TcpStream, seed: u64) -> Self {
        NetClient {
            sim: SimClient::new(Instant::now(), seed),
            sock,
            started: Instant::now(),
            pending: Vec::new(),
            eof: false,
            own: None,
            next_transaction: 10_000.0,
        }
    }

    /// The scripted client, to queue commands and inspect replies.
    pub fn sim(&mut self) -> &mut SimClient {
        &mut self.sim
    }

    /// The scripted client, read only.
    pub fn sim_ref(&self) -> &SimClient {
        &self.sim
    }

    /// Whether the server closed the connection (or it broke).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Moves bytes both ways once, without blocking.
    pub fn pump(&mut self) {
        for b in self.sim.take_outbound() {
            self.pending.extend_from_slice(&b);
        }
        while !self.pending.is_empty() && !self.eof {
            match self.sock.write(&self.pending) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
        let mut buf = [0u8; 64 * 1024];
        while !self.eof {
            match self.sock.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.sim.handle_input(self.started.elapsed(), &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// Pumps until `done` holds (true), the connection ends or `timeout`
    /// passes (false).
    pub fn run_until(&mut self, timeout: Duration, done: impl Fn(&SimClient) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if done(&self.sim) {
                return true;
            }
            if self.eof || Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Pumps (discarding nothing: replies are kept) until the server closes
    /// the connection; false if it is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        self.run_until(timeout, |_| false);
        self.eof
    }

    /// Bytes given to [`NetClient::send_bytes`] the socket has not taken
    /// yet.
    pub fn unsent(&self) -> usize {
        self.pending.len()
    }

    /// Writes `bytes` as they are, after anything queued before.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.pump();
        self.pending.extend_from_slice(bytes);
        self.pump();
    }

    /// Completes the handshake and `connect`s to `app`; panics if the
    /// server does not accept.
    pub fn connect_app(&mut self, app: &str) {
        let tid = self.sim.connect(app);
        let ok = self.run_until(Duration::from_secs(10), |s| s.reply(tid).is_some());
        let reply = self.sim.reply(tid);
        assert!(
            ok && reply.as_ref().is_some_and(|r| r.ok),
            "connect to {app} failed: {reply:?}, eof {}",
            self.eof
        );
    }

    /// `createStream`; the new stream id.
    pub fn create_stream(&mut self) -> u32 {
        let tid = self.sim.create_stream();
        self.run_until(Duration::from_secs(10), |s| s.reply(tid).is_some());
        let reply = self.sim.reply(tid);
        reply
            .as_ref()
            .filter(|r| r.ok)
            .and_then(|r| r.args.first())
            .and_then(|v| v.as_f64())
            .map(|id| id as u32)
            .unwrap_or_else(|| panic!("createStream failed: {reply:?}"))
    }

    /// Publishes `name` live and waits for `NetStream.Publish.Start`;
    /// returns the stream id.
    pub fn start_publish(&mut self, name: &str) -> u32 {
        let stream = self.create_stream();
        self.sim.publish(stream, name);
        let ok = self.run_until(Duration::from_secs(10), |s| {
            s.statuses(stream)
                .iter()
                .any(|c| c == "NetStream.Publish.Start")
        });
        assert!(
            ok,
            "publish {name} not started: {:?}",
            self.sim.statuses(stream)
        );
        stream
    }

    /// Plays `name` live and waits for `NetStream.Play.Start`; returns the
    /// stream id.
    pub fn start_play(&mut self, name: &str) -> u32 {
        let stream = self.create_stream();
        self.sim.play(stream, name, -2.0);
        let ok = self.run_until(Duration::from_secs(10), |s| {
            s.statuses(stream)
                .iter()
                .any(|c| c == "NetStream.Play.Start")
        });
        assert!(
            ok,
            "play {name} not started: {:?}",
            self.sim.statuses(stream)
        );
        stream
    }

    /// Announces chunk size `size` and from then on sends through an
    /// encoder of our own that uses it (see [`NetClient::send_own`]).
    pub fn set_chunk_size(&mut self, size: u32) {
        let mut enc = ChunkEncoder::new();
        let mut out = Vec::new();
        enc.set_chunk_size(size, &mut out);
        self.own = Some(enc);
        self.write_all_bufs(&out);
    }

    /// Sends `createStream` through the encoder of
    /// [`NetClient::set_chunk_size`]; returns its transaction id.
    pub fn create_stream_own(&mut self) -> f64 {
        let transaction_id = self.next_transaction;
        self.next_transaction += 1.0;
        let msg = Message::Command {
            encoding: tincan_core::message::Encoding::Amf0,
            command: Command::CreateStream { transaction_id },
        };
        let raw = msg
            .to_raw(3, MediaTime::ZERO, 0)
            .expect("createStream encodes");
        self.send_own(&raw);
        transaction_id
    }

    /// Encodes `raw` with the encoder of [`NetClient::set_chunk_size`].
    pub fn send_own(&mut self, raw: &RawMessage) {
        let mut out = Vec::new();
        self.own
            .as_mut()
            .expect("set_chunk_size first")
            .write(raw, &mut out);
        self.write_all_bufs(&out);
    }

    fn write_all_bufs(&mut self, bufs: &[Bytes]) {
        self.pump();
        for b in bufs {
            self.pending.extend_from_slice(b);
        }
        self.pump();
    }
}

/// A blocking-connect, then non-blocking, TCP socket from `from` to
/// 127.0.0.1:`port`.
pub fn tcp_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    tcp_with(from, port, None)
}

fn tcp_with(from: Ipv4Addr, port: u16, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(size) = rcvbuf {
        sock.set_recv_buffer_size(size)?;
    }
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    sock.connect(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).into())?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    Ok(sock.into())
}

/// The bytes of one chunk with a type-0 header: `csid` (any valid id),
/// the declared message `len`, `type_id` and `stream_id`, followed by
/// `body` (which may be shorter than `len`: the rest is owed).
pub fn chunk_type0(csid: u32, len: u32, type_id: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + body.len());
    match csid {
        2..=63 => out.push(csid as u8),
        64..=319 => out.extend_from_slice(&[0, (csid - 64) as u8]),
        _ => {
            let v = csid - 64;
            out.extend_from_slice(&[1, (v & 0xFF) as u8, (v >> 8) as u8]);
        }
    }
    out.extend_from_slice(&[0, 0, 0]); // timestamp
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A Set Chunk Size control message asking for `size`, as raw bytes (so
/// sizes no encoder would send, 0 among them, can be sent).
pub fn set_chunk_size_bytes(size: u32) -> Vec<u8> {
    chunk_type0(2, 4, type_id::SET_CHUNK_SIZE, 0, &size.to_be_bytes())
}

/// A healthy publisher and player on one stream, each on its own thread,
/// running until dropped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    video: Arc<AtomicU64>,
    published: Arc<AtomicU64>,
    player_eof: Arc<AtomicBool>,
    publisher_eof: Arc<AtomicBool>,
    /// Longest time (ms) the player went without video since the last
    /// [`Load::reset_gap`].
    max_gap_ms: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts publishing `name` on the server at `port` (video frames of
    /// `frame_bytes`, a keyframe every second, plus AAC audio) and a player
    /// of it; returns once the player has its first video frame.
    pub fn start(port: u16, name: &str, frame_bytes: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let video = Arc::new(AtomicU64::new(0));
        let published = Arc::new(AtomicU64::new(0));
        let player_eof = Arc::new(AtomicBool::new(false));
        let publisher_eof = Arc::new(AtomicBool::new(false));
        let max_gap_ms = Arc::new(AtomicU64::new(0));
        let mut publisher = NetClient::connect(port, 1);
        publisher.connect_app("live");
        let pub_stream = publisher.start_publish(name);
        let mut player = NetClient::connect(port, 2);
        player.connect_app("live");
        player.sim().keep_payloads_up_to(16);
        let play_stream = player.start_play(name);

        let mut threads = Vec::new();
        {
            let (stop, eof, published) = (stop.clone(), publisher_eof.clone(), published.clone());
            threads.push(thread::spawn(move || {
                publish_loop(publisher, pub_stream, frame_bytes, &published, &stop);
                eof.store(true, Ordering::SeqCst);
            }));
        }
        {
            let (stop, eof, video) = (stop.clone(), player_eof.clone(), video.clone());
            let gap = max_gap_ms.clone();
            threads.push(thread::spawn(move || {
                play_loop(player, play_stream, &video, &gap, &stop);
                eof.store(true, Ordering::SeqCst);
            }));
        }
        let load = Load {
            stop,
            video,
            published,
            player_eof,
            publisher_eof,
            max_gap_ms,
            threads,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while load.video_frames() == 0 {
            assert!(
                Instant::now() < deadline,
                "the healthy player got no video within 10 s"
            );
            thread::sleep(Duration::from_millis(10));
        }
        load
    }

    /// Whether both healthy clients are still connected.
    pub fn is_connected(&self) -> bool {
        !self.player_eof.load(Ordering::SeqCst) && !self.publisher_eof.load(Ordering::SeqCst)
    }

    /// Video frames the publisher sent so far (the next frame's number).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    /// Starts measuring [`Load::max_gap`] afresh.
    pub fn reset_gap(&self) {
        self.max_gap_ms.store(0, Ordering::SeqCst);
    }

    /// The longest the healthy player went without a video frame since
    /// [`Load::reset_gap`] (or the start).
    pub fn max_gap(&self) -> Duration {
        Duration::from_millis(self.max_gap_ms.load(Ordering::SeqCst))
    }

    /// Video frames the healthy player received so far.
    pub fn video_frames(&self) -> u64 {
        self.video.load(Ordering::SeqCst)
    }

    /// Asserts the healthy player receives video for the next `window` at
    /// no less than half the publisher's rate, and both healthy clients are
    /// still connected; `when` names the moment for the failure message.
    pub fn assert_flowing(&self, window: Duration, when: &str) {
        let before = self.video_frames();
        thread::sleep(window);
        let got = self.video_frames() - before;
        let want = (window.as_millis() as u64 * LOAD_FPS / 1000) / 2;
        assert!(
            !self.player_eof.load(Ordering::SeqCst),
            "{when}: the healthy player was disconnected"
        );
        assert!(
            !self.publisher_eof.load(Ordering::SeqCst),
            "{when}: the healthy publisher was disconnected"
        );
        assert!(
            got >= want.max(1),
            "{when}: the healthy player got {got} video frames in {window:?}, want >= {want}"
        );
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The number the [`Load`] publisher writes into the first 8 bytes of
/// video frame `n`'s body (after the 5-byte AVC tag header), so a player
/// can tell which frame it got and how stale it is.
pub fn frame_number(payload: &[u8]) -> Option<u64> {
    let b = payload.get(5..13)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn publish_loop(
    mut c: NetClient,
    stream: u32,
    frame_bytes: usize,
    published: &AtomicU64,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    c.sim()
        .send_video(stream, 0, media::avc_sequence_header(b"avc-config"));
    c.sim()
        .send_audio(stream, 0, media::aac_config(&[0x12, 0x10]));
    let mut body: Vec<u8> = (0..frame_bytes.max(8)).map(|i| (i * 7 + 3) as u8).collect();
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) && !c.is_eof() {
        let due = start + Duration::from_millis(n * 1000 / LOAD_FPS);
        let now = Instant::now();
        if now < due {
            c.pump();
            thread::sleep((due - now).min(Duration::from_millis(5)));
            continue;
        }
        let ts = (n * 1000 / LOAD_FPS) as u32;
        body[..8].copy_from_slice(&n.to_be_bytes());
        let frame = if n % LOAD_FPS == 0 {
            media::avc_keyframe(&body)
        } else {
            media::avc_inter(&body)
        };
        c.sim().send_video(stream, ts, frame);
        c.sim().send_audio(stream, ts, media::aac_raw(&[0x21; 64]));
        c.pump();
        n += 1;
        published.store(n, Ordering::SeqCst);
    }
}

fn play_loop(
    mut c: NetClient,
    stream: u32,
    video: &AtomicU64,
    max_gap_ms: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut seen = 0;
    let mut last_video = Instant::now();
    while !stop.load(Ordering::SeqCst) && !c.is_eof() {
        c.pump();
        let received = c.sim_ref().received();
        let new = received[seen..]
            .iter()
            .filter(|r| r.stream_id == stream && matches!(r.message, Message::Video(_)))
            .count();
        seen = received.len();
        video.fetch_add(new as u64, Ordering::SeqCst);
        let gap = last_video.elapsed().as_millis() as u64;
        max_gap_ms.fetch_max(gap, Ordering::SeqCst);
        if new > 0 {
            last_video = Instant::now();
        }
        thread::sleep(Duration::from_millis(5));
    }
}
