//! `tincan-bench floor`: the kernel's cost of a fan-out, measured by a
//! server that does nothing else.
//!
//! It accepts the load tool's publisher and players, speaks only the
//! dialogue they need (handshake, `connect`, `createStream`, `publish` or
//! `play`), and writes every received media message to every player as
//! the chunk stream tincan writes: chunk size 4096, the same chunk stream
//! ids and header compression (the core's [`ChunkEncoder`]), the payload
//! untouched (so the load tool's latency marker survives). There is no
//! broker, no backlog, no real-time policy and no timer beyond the batch
//! bound: one thread, one epoll set (mio).
//!
//! A server's CPU per delivered GB over the floor's says what it costs on
//! top of the syscalls and copies any server of this traffic pays.
//!
//! - `--writes per-frame`: one vectored write per message per player, as
//!   tincan's default mode writes.
//! - `--writes batched --batch-ms N --batch-bytes B`: a player's messages
//!   accumulate until the oldest is N ms old or B bytes are queued, then go
//!   in one vectored write: the floor of any write-merging mode.
//! - `--writes uring-per-frame` (Linux): the per-frame writes as io_uring
//!   operations, all of a frame's in one submission (see [`uring`]): the
//!   experiment of whether fewer kernel entries lower the floor itself.
//!
//! A new player starts at the next keyframe, after the last sequence
//! headers and metadata, so every frame it gets decodes. A player whose
//! unsent bytes pass [`MAX_QUEUED`] is disconnected: the floor holds no
//! more for a peer than that.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use tincan_core::amf::amf0;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{HandshakeConfig, ServerHandshake};
use tincan_core::message::{
    type_id, BandwidthLimit, Command, Encoding, Message, UserControl, Value,
};
use tincan_core::time::MediaTime;

use super::{FloorArgs, Writes};

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod uring;
#[cfg(target_os = "linux")]
use uring::Uring;

/// Elsewhere there is no io_uring: the mode refuses to start.
#[cfg(not(target_os = "linux"))]
struct Uring;

#[cfg(not(target_os = "linux"))]
impl Uring {
    fn new() -> std::io::Result<Uring> {
        Err(std::io::Error::other("io_uring needs Linux"))
    }
}

/// The listener's token; connections use their slot index + 1.
const LISTENER: Token = Token(0);
/// The io_uring's token: its completions wait.
const RING: Token = Token(usize::MAX);
/// Bytes read per `read` call.
const READ_BUF: usize = 64 * 1024;
/// Most unsent bytes held for one peer; past it the peer is dropped.
const MAX_QUEUED: usize = 16 * 1024 * 1024;
/// Most buffers in one vectored write (Linux's IOV_MAX is 1024).
const MAX_IOV: usize = 512;
/// The chunk size tincan writes with (`SessionConfig::out_chunk_size`).
const OUT_CHUNK_SIZE: u32 = 4096;
/// The acknowledgement window tincan announces.
const WINDOW_ACK_SIZE: u32 = 2_500_000;
/// The one message stream every connection gets.
const STREAM: u32 = 1;
/// Chunk streams as tincan uses them for message stream 1: control,
/// commands on stream 0, then status/data, audio and video.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_STATUS: u32 = 4;
const CSID_AUDIO: u32 = 5;
const CSID_VIDEO: u32 = 6;

/// What a connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Not yet publishing or playing.
    Pending,
    Publisher,
    /// Playing; `started` once it got its first keyframe.
    Player {
        started: bool,
    },
}

struct Conn {
    stream: TcpStream,
    handshake: Option<ServerHandshake>,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    role: Role,
    /// Encoded, not yet written.
    out: VecDeque<Bytes>,
    queued: usize,
    /// When the oldest queued media arrived (batched mode).
    oldest: Option<Instant>,
    /// The last write stopped at `WouldBlock`: wait for writable.
    blocked: bool,
    /// An io_uring write is in flight: its buffers left `out`, and
    /// nothing else may write until it completes, or bytes would reorder.
    in_flight: bool,
    /// Tells this connection's completions from those of the slot's
    /// previous one.
    serial: u32,
}

impl Conn {
    fn push(&mut self, bufs: &mut Vec<Bytes>) {
        for b in bufs.drain(..) {
            self.queued += b.len();
            self.out.push_back(b);
        }
    }

    /// Writes what is queued, one vectored write at a time, until done or
    /// the socket is full.
    fn flush(&mut self) -> std::io::Result<()> {
        self.oldest = None;
        while !self.out.is_empty() && !self.blocked && !self.in_flight {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let mut n = 0;
                for (slot, b) in slices.iter_mut().zip(&self.out) {
                    *slot = IoSlice::new(b);
                    n += 1;
                }
                match self.stream.write_vectored(&slices[..n]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.blocked = true;
                        return Ok(());
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.queued -= written;
            let mut left = written;
            while left > 0 {
                let Some(front) = self.out.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.out.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        Ok(())
    }
}

/// The stream's last sequence headers and metadata, for new players.
#[derive(Default)]
struct Headers {
    meta: Option<RawMessage>,
    audio: Option<RawMessage>,
    video: Option<RawMessage>,
}

struct Floor {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Slots of every playing connection.
    players: Vec<usize>,
    headers: Headers,
    writes: Writes,
    batch: Duration,
    batch_bytes: usize,
    /// Reused encoder output.
    scratch: Vec<Bytes>,
    /// The ring of `--writes uring-per-frame`.
    uring: Option<Uring>,
    /// The next connection's serial.
    serial: u32,
    /// Players whose io_uring write completed with bytes left to send.
    again: Vec<usize>,
}

/// Runs the floor server until killed.
pub(crate) fn run(args: &FloorArgs) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen).map_err(|e| format!("{}: {e}", args.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let poll = Poll::new().map_err(|e| e.to_string())?;
    let mut floor = Floor {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        players: Vec::new(),
        headers: Headers::default(),
        writes: args.writes,
        batch: Duration::from_millis(args.batch_ms),
        batch_bytes: args.batch_bytes,
        scratch: Vec::new(),
        uring: None,
        serial: 0,
        again: Vec::new(),
    };
    floor
        .poll
        .registry()
        .register(&mut floor.listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    if args.writes == Writes::UringPerFrame {
        let ring = Uring::new().map_err(|e| format!("io_uring: {e}"))?;
        #[cfg(target_os = "linux")]
        floor
            .poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&ring.fd()),
                RING,
                Interest::READABLE,
            )
            .map_err(|e| e.to_string())?;
        floor.uring = Some(ring);
    }
    // The address a caller asked port 0 for: scripts and tests read it.
    println!("floor listening on {addr}");
    let _ = std::io::stdout().flush();
    floor.serve().map_err(|e| e.to_string())
}

impl Floor {
    fn serve(&mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept()?;
                    continue;
                }
                if event.token() == RING {
                    self.pump();
                    continue;
                }
                let slot = event.token().0 - 1;
                if event.is_writable() {
                    let uring = self.uring.is_some();
                    if let Some(c) = self.conn(slot) {
                        c.blocked = false;
                        let player = matches!(c.role, Role::Player { .. });
                        if uring && player {
                            // A write that met a full socket resumes on
                            // the ring, so writes stay in order.
                            self.again.push(slot);
                            self.pump();
                        } else if c.flush().is_err() {
                            self.close(slot);
                            continue;
                        }
                    }
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(slot, &mut buf);
                }
            }
            if self.writes == Writes::Batched {
                self.flush_due(Instant::now());
            }
        }
    }

    fn conn(&mut self, slot: usize) -> Option<&mut Conn> {
        self.conns.get_mut(slot).and_then(Option::as_mut)
    }

    fn accept(&mut self) -> std::io::Result<()> {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Out of descriptors or the like: refuse this one, keep
                // serving the rest.
                Err(e) => {
                    eprintln!("floor: accept: {e}");
                    return Ok(());
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            self.poll.registry().register(
                &mut stream,
                Token(slot + 1),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let now = Instant::now();
            self.serial = self.serial.wrapping_add(1);
            self.conns[slot] = Some(Conn {
                stream,
                handshake: Some(ServerHandshake::new(
                    now,
                    HandshakeConfig::default(),
                    &mut SeededEntropy::new(slot as u64),
                )),
                decoder: ChunkDecoder::new(DecoderLimits::default()),
                encoder: ChunkEncoder::new(),
                role: Role::Pending,
                out: VecDeque::new(),
                queued: 0,
                oldest: None,
                blocked: false,
                in_flight: false,
                serial: self.serial,
            });
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) {
            #[cfg(target_os = "linux")]
            if c.in_flight {
                if let Some(ring) = &mut self.uring {
                    // The write's buffers stay in the ring until its
                    // completion; the socket closes once it is done.
                    let _ = ring.cancel(uring::user_data(slot, c.serial));
                }
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.players.retain(|&p| p != slot);
            self.free.push(slot);
        }
    }

    /// Reads until the socket is drained, acting on every message.
    fn read(&mut self, slot: usize, buf: &mut [u8]) {
        loop {
            let Some(c) = self.conn(slot) else {
                return;
            };
            let n = match c.stream.read(buf) {
                Ok(0) => {
                    self.close(slot);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(slot);
                    return;
                }
            };
            if self.input(slot, &buf[..n]).is_err() {
                self.close(slot);
                return;
            }
        }
    }

    /// Feeds `data` to connection `slot` and acts on what it completes.
    fn input(&mut self, slot: usize, data: &[u8]) -> Result<(), String> {
        let c = self.conn(slot).ok_or("gone")?;
        let mut data = data;
        if let Some(hs) = &mut c.handshake {
            let used = hs.handle_input(data).map_err(|e| e.to_string())?;
            data = &data[used..];
            while let Some(b) = hs.poll_transmit() {
                c.queued += b.len();
                c.out.push_back(b);
            }
            if hs.is_complete() {
                c.handshake = None;
            }
            c.flush().map_err(|e| e.to_string())?;
        }
        if c.handshake.is_some() || data.is_empty() {
            return Ok(());
        }
        c.decoder.handle_input(data).map_err(|e| e.to_string())?;
        loop {
            let Some(c) = self.conn(slot) else {
                return Ok(());
            };
            let Some(raw) = c.decoder.poll_message().map_err(|e| e.to_string())? else {
                break;
            };
            match (c.role, raw.type_id) {
                (Role::Publisher, type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0) => {
                    self.fan_out(raw)?;
                }
                (_, type_id::COMMAND_AMF0) => self.command(slot, &raw)?,
                // Acknowledgements, Set Chunk Size (the decoder applied
                // it), buffer lengths: nothing to do.
                _ => {}
            }
        }
        let c = self.conn(slot).ok_or("gone")?;
        c.flush().map_err(|e| e.to_string())
    }

    /// Answers the commands the load tool's clients send.
    fn command(&mut self, slot: usize, raw: &RawMessage) -> Result<(), String> {
        let Ok(Message::Command { command, .. }) = Message::decode(raw) else {
            return Ok(());
        };
        let mut out = std::mem::take(&mut self.scratch);
        let headers = &self.headers;
        let c = self
            .conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .ok_or("gone")?;
        let mut became_player = false;
        match command {
            Command::Connect(connect) => {
                send(
                    c,
                    &Message::WindowAckSize(WINDOW_ACK_SIZE),
                    CSID_CONTROL,
                    0,
                    &mut out,
                );
                send(
                    c,
                    &Message::SetPeerBandwidth {
                        size: WINDOW_ACK_SIZE,
                        limit: BandwidthLimit::Dynamic,
                    },
                    CSID_CONTROL,
                    0,
                    &mut out,
                );
                c.encoder.set_chunk_size(OUT_CHUNK_SIZE, &mut out);
                let properties = Value::object([
                    ("fmsVer", Value::from("FMS/3,5,7,7009")),
                    ("capabilities", Value::from(31.0)),
                ]);
                let info = status("NetConnection.Connect.Success", "Connection succeeded.");
                let result = command_message(Command::Result {
                    transaction_id: connect.transaction_id,
                    command_object: properties,
                    args: vec![info],
                });
                send(c, &result, CSID_COMMAND, 0, &mut out);
            }
            Command::CreateStream { transaction_id } => {
                let result = command_message(Command::Result {
                    transaction_id,
                    command_object: Value::Null,
                    args: vec![Value::from(f64::from(STREAM))],
                });
                send(c, &result, CSID_COMMAND, 0, &mut out);
            }
            Command::Publish { .. } => {
                c.role = Role::Publisher;
                let info = status("NetStream.Publish.Start", "Publishing.");
                send(c, &on_status(info), CSID_STATUS, STREAM, &mut out);
            }
            Command::Play(play) => {
                let begin = Message::UserControl(UserControl::StreamBegin(STREAM));
                send(c, &begin, CSID_CONTROL, 0, &mut out);
                for (code, what) in [
                    ("NetStream.Play.Reset", "Playing and resetting"),
                    ("NetStream.Play.Start", "Started playing"),
                ] {
                    let info = status(code, &format!("{what} {}.", play.name));
                    send(c, &on_status(info), CSID_STATUS, STREAM, &mut out);
                }
                let mut body = BytesMut::new();
                let values = [
                    Value::from("|RtmpSampleAccess"),
                    Value::from(true),
                    Value::from(true),
                ];
                amf0::encode_all(&values, &mut body).map_err(|e| e.to_string())?;
                let access = RawMessage {
                    csid: CSID_STATUS,
                    timestamp: MediaTime::ZERO,
                    type_id: type_id::DATA_AMF0,
                    stream_id: STREAM,
                    payload: body.freeze(),
                };
                c.encoder.write(&access, &mut out);
                // Already as the player's messages (see `fan_out`).
                for h in [&headers.meta, &headers.video, &headers.audio]
                    .into_iter()
                    .flatten()
                {
                    c.encoder.write(h, &mut out);
                }
                c.role = Role::Player { started: false };
                became_player = true;
            }
            // releaseStream, FCPublish, deleteStream...: nothing the load
            // tool waits for.
            _ => {}
        }
        c.push(&mut out);
        self.scratch = out;
        if became_player {
            self.players.push(slot);
        }
        Ok(())
    }

    /// Writes one of the publisher's messages to every player.
    fn fan_out(&mut self, raw: RawMessage) -> Result<(), String> {
        let p = &raw.payload;
        let is_header = p.len() >= 2
            && p[1] == 0
            && match raw.type_id {
                type_id::AUDIO => p[0] >> 4 == 10,
                type_id::VIDEO => p[0] & 0x0f == 7,
                _ => false,
            };
        let keyframe =
            raw.type_id == type_id::VIDEO && !is_header && p.first().is_some_and(|b| b >> 4 == 1);
        let msg = for_player(&raw);
        match raw.type_id {
            type_id::DATA_AMF0 => self.headers.meta = Some(msg.clone()),
            type_id::AUDIO if is_header => self.headers.audio = Some(msg.clone()),
            type_id::VIDEO if is_header => self.headers.video = Some(msg.clone()),
            _ => {}
        }
        let now = Instant::now();
        let mut out = std::mem::take(&mut self.scratch);
        let mut dropped = Vec::new();
        for &slot in &self.players {
            let Some(Some(c)) = self.conns.get_mut(slot) else {
                continue;
            };
            if let Role::Player { started } = &mut c.role {
                if !*started {
                    if !keyframe {
                        continue;
                    }
                    *started = true;
                }
            }
            c.encoder.write(&msg, &mut out);
            c.push(&mut out);
            if c.queued > MAX_QUEUED {
                dropped.push(slot);
                continue;
            }
            let write_now = match self.writes {
                Writes::PerFrame => true,
                Writes::UringPerFrame => {
                    self.again.push(slot);
                    false
                }
                Writes::Batched => {
                    let oldest = *c.oldest.get_or_insert(now);
                    c.queued >= self.batch_bytes
                        || now.saturating_duration_since(oldest) >= self.batch
                }
            };
            if write_now && c.flush().is_err() {
                dropped.push(slot);
            }
        }
        self.scratch = out;
        for slot in dropped {
            self.close(slot);
        }
        if self.uring.is_some() {
            self.pump();
        }
        Ok(())
    }

    /// Starts an io_uring write for every player in `again` that has bytes
    /// and no write in flight, submits them all at once, and handles the
    /// completions, until no completed write leaves bytes to start again.
    #[cfg(target_os = "linux")]
    fn pump(&mut self) {
        let Some(mut ring) = self.uring.take() else {
            return;
        };
        let mut dropped = Vec::new();
        let mut again = std::mem::take(&mut self.again);
        loop {
            for slot in again.drain(..) {
                let Some(Some(c)) = self.conns.get_mut(slot) else {
                    continue;
                };
                if c.in_flight || c.blocked || c.out.is_empty() {
                    continue;
                }
                let n = c.out.len().min(MAX_IOV);
                let ud = uring::user_data(slot, c.serial);
                if ring
                    .write(c.stream.as_raw_fd(), ud, c.out.drain(..n))
                    .is_err()
                {
                    dropped.push(slot);
                    continue;
                }
                c.in_flight = true;
            }
            if let Err(e) = ring.submit() {
                eprintln!("floor: io_uring submit: {e}");
            }
            let conns = &mut self.conns;
            ring.complete(|ud, result, unsent| {
                let slot = (ud >> 32) as usize;
                let Some(Some(c)) = conns.get_mut(slot) else {
                    return;
                };
                if c.serial != ud as u32 {
                    return;
                }
                c.in_flight = false;
                for b in unsent.drain(..).rev() {
                    c.out.push_front(b);
                }
                match result {
                    Ok(0) => dropped.push(slot),
                    Ok(n) => {
                        c.queued -= n;
                        again.push(slot);
                    }
                    // Not seen with sockets, whose writes the kernel
                    // retries when space frees; handled all the same.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => again.push(slot),
                    Err(_) => dropped.push(slot),
                }
            });
            if again.is_empty() {
                break;
            }
        }
        self.again = again;
        self.uring = Some(ring);
        for slot in dropped {
            self.close(slot);
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn pump(&mut self) {}

    /// The earliest batch deadline (batched mode).
    fn next_deadline(&self) -> Option<Instant> {
        if self.writes != Writes::Batched {
            return None;
        }
        self.players
            .iter()
            .filter_map(|&s| self.conns.get(s)?.as_ref()?.oldest)
            .min()
            .map(|t| t + self.batch)
    }

    /// Writes every batch whose time bound has passed.
    fn flush_due(&mut self, now: Instant) {
        let mut dropped = Vec::new();
        for &slot in &self.players {
            let Some(Some(c)) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.oldest
                .is_some_and(|t| now.saturating_duration_since(t) >= self.batch)
                && c.flush().is_err()
            {
                dropped.push(slot);
            }
        }
        for slot in dropped {
            self.close(slot);
        }
    }
}

/// The publisher's message as a player's: message stream 1 on tincan's
/// chunk stream for its kind, the payload shared.
fn for_player(raw: &RawMessage) -> RawMessage {
    let csid = match raw.type_id {
        type_id::AUDIO => CSID_AUDIO,
        type_id::VIDEO => CSID_VIDEO,
        _ => CSID_STATUS,
    };
    RawMessage {
        csid,
        timestamp: raw.timestamp,
        type_id: raw.type_id,
        stream_id: STREAM,
        payload: raw.payload.clone(),
    }
}

fn status(code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::from("status")),
        ("code", Value::from(code)),
        ("description", Value::from(description)),
    ])
}

fn command_message(command: Command) -> Message {
    Message::Command {
        encoding: Encoding::Amf0,
        command,
    }
}

fn on_status(info: Value) -> Message {
    command_message(Command::OnStatus { info })
}

/// Encodes `msg` on `csid` and message stream `stream` into `out`.
fn send(c: &mut Conn, msg: &Message, csid: u32, stream: u32, out: &mut Vec<Bytes>) {
    if let Ok(raw) = msg.to_raw(csid, MediaTime::ZERO, stream) {
        c.encoder.write(&raw, out);
    }
}
