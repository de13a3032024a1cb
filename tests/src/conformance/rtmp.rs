//! A raw RTMP client over a real TCP socket, for what real clients cannot
//! be made to do on cue: stop reading, vanish mid-handshake or mid-message,
//! report the exact statuses and frames the server sent.
//!
//! It is the simulation's [`SimClient`] (the core's own client handshake,
//! chunk codec and typed messages) with a socket instead of an in-memory
//! pipe; every received message carries its real arrival time since the
//! client connected.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_core::message::Value;

use crate::sim::{Media, SimClient};

/// How long a raw client waits for any one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One raw client connection.
#[derive(Debug)]
pub struct RtmpClient {
    sock: TcpStream,
    sim: SimClient,
    started: Instant,
    eof: bool,
    buf: Vec<u8>,
}

impl RtmpClient {
    /// Connects to `addr` and queues the handshake (C0+C1 and a Set Chunk
    /// Size, as FFmpeg does); nothing is sent before the first pump.
    pub fn connect(addr: SocketAddr) -> Self {
        let sock = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::from_socket(sock)
    }

    /// Like [`RtmpClient::connect`], with a receive buffer of about `bytes`
    /// set before connecting (the kernel's window is sized from it), so a
    /// client that stops reading pushes back on the server within a few
    /// kilobytes instead of megabytes of loopback autotuning.
    pub fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> Self {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .expect("a TCP socket");
        socket
            .set_recv_buffer_size(bytes)
            .expect("set the receive buffer");
        socket
            .connect(&addr.into())
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::from_socket(socket.into())
    }

    fn from_socket(sock: TcpStream) -> Self {
        sock.set_nonblocking(true).expect("non-blocking socket");
        sock.set_nodelay(true).expect("TCP_NODELAY");
        let started = Instant::now();
        RtmpClient {
            sock,
            sim: SimClient::new(started, 1),
            started,
            eof: false,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Connects, runs `connect` to app `live`, `createStream` and `play
    /// name` (live, as FFmpeg asks), and returns once the server answered
    /// the `createStream`; panics with what was seen otherwise.
    pub fn play(addr: SocketAddr, name: &str) -> Self {
        let mut c = Self::connect(addr);
        c.play_on_this(name);
        c
    }

    /// As [`RtmpClient::play`] on an already connected client.
    pub fn play_on_this(&mut self, name: &str) -> u32 {
        self.connect_app();
        let stream = self.create_stream();
        self.sim.play(stream, name, -2000.0);
        self.flush();
        stream
    }

    /// Sends `connect` for app `live` and waits for a successful reply.
    pub fn connect_app(&mut self) {
        let t = self.sim.connect("live");
        let ok = self.pump_until(REPLY_TIMEOUT, |s| s.reply(t).is_some());
        let reply = self.sim.reply(t);
        assert!(
            ok && reply.as_ref().is_some_and(|r| r.ok),
            "connect was not accepted: {reply:?}; {}",
            self.describe()
        );
    }

    /// Sends `createStream` and returns the stream id the server gave.
    pub fn create_stream(&mut self) -> u32 {
        let t = self.sim.create_stream();
        self.pump_until(REPLY_TIMEOUT, |s| s.reply(t).is_some());
        let id = self
            .sim
            .reply(t)
            .filter(|r| r.ok)
            .and_then(|r| r.args.first().and_then(Value::as_f64));
        match id {
            Some(id) if id >= 1.0 && id <= f64::from(u32::MAX) => id as u32,
            _ => panic!("createStream failed: {}", self.describe()),
        }
    }

    /// The scripted client: queue commands on it, inspect what arrived.
    pub fn sim(&self) -> &SimClient {
        &self.sim
    }

    /// The scripted client, to queue commands (sent at the next pump).
    pub fn sim_mut(&mut self) -> &mut SimClient {
        &mut self.sim
    }

    /// When the client connected; arrival times count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether the server closed the connection.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Writes every queued byte and reads whatever has arrived, without
    /// waiting for more.
    pub fn poll(&mut self) {
        self.flush();
        self.read_available();
    }

    /// Polls until `done` holds, the server closes, or `timeout`; returns
    /// whether `done` held.
    pub fn pump_until(&mut self, timeout: Duration, done: impl Fn(&SimClient) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if done(&self.sim) {
                return true;
            }
            if self.eof || Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Polls for `duration`.
    pub fn pump_for(&mut self, duration: Duration) {
        self.pump_until(duration, |_| false);
    }

    /// Writes `bytes` as they are, bypassing the client's encoder (a torn
    /// message, a partial handshake).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.sock.write(rest) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The bytes the client has queued but not sent, taken out of it (to
    /// send only part of them).
    pub fn take_queued(&mut self) -> Vec<u8> {
        self.sim.take_outbound().concat()
    }

    fn flush(&mut self) {
        let out: Vec<Bytes> = self.sim.take_outbound();
        for b in out {
            if self.write_raw(&b).is_err() {
                // The server is gone; reads will report it.
                return;
            }
        }
    }

    fn read_available(&mut self) {
        while !self.eof {
            match self.sock.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    let at = self.started.elapsed();
                    self.sim.handle_input(at, &self.buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset is the server closing too, less politely.
                Err(_) => self.eof = true,
            }
        }
    }

    /// Video messages received on any stream, in order.
    pub fn videos(&self) -> Vec<Media> {
        self.media_of(FrameKind::Video)
    }

    /// Media of `kind` on any stream, in order.
    pub fn media_of(&self, kind: FrameKind) -> Vec<Media> {
        let streams: std::collections::BTreeSet<u32> =
            self.sim.received().iter().map(|r| r.stream_id).collect();
        let mut all: Vec<Media> = streams
            .into_iter()
            .flat_map(|s| self.sim.media(s))
            .filter(|m| m.kind == kind)
            .collect();
        all.sort_by_key(|m| m.at);
        all
    }

    /// Video frames received so far.
    pub fn video_count(&self) -> usize {
        self.videos().len()
    }

    /// Polls until `more` video frames beyond those already received have
    /// arrived, or `timeout`; returns whether they did.
    pub fn wait_for_more_video(&mut self, more: usize, timeout: Duration) -> bool {
        let target = self.video_count() + more;
        self.pump_until(timeout, |s| {
            s.received()
                .iter()
                .filter(|r| matches!(r.message, tincan_core::message::Message::Video(_)))
                .count()
                >= target
        })
    }

    /// The `code` of every `onStatus` received on any stream, in order.
    pub fn statuses(&self) -> Vec<String> {
        let streams: std::collections::BTreeSet<u32> =
            self.sim.received().iter().map(|r| r.stream_id).collect();
        streams
            .into_iter()
            .flat_map(|s| self.sim.statuses(s))
            .collect()
    }

    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "raw client: eof {}, {} bytes, {} video, statuses {:?}, errors {:?}",
            self.eof,
            self.sim.bytes_received(),
            self.video_count(),
            self.statuses(),
            self.sim.errors()
        )
    }
}

/// Whether an FLV video tag body is an AVC or HEVC sequence header (the
/// decoder configuration a player needs before any frame).
pub fn is_video_config(payload: &[u8]) -> bool {
    match payload {
        // Enhanced RTMP: IsExHeader bit, PacketType 0 = SequenceStart.
        [b0, ..] if b0 & 0x80 != 0 => b0 & 0x0f == 0,
        [_, packet_type, ..] => *packet_type == 0,
        _ => false,
    }
}

/// Whether an FLV video tag body is a keyframe carrying picture data (not a
/// sequence header).
pub fn is_keyframe(payload: &[u8]) -> bool {
    !is_video_config(payload) && payload.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
}
