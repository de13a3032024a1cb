//! One server-side connection: handshake, chunk stream, the NetConnection /
//! NetStream command dialogue, and per-subscriber real-time treatment.
//!
//! A [`Session`] is a sans-IO machine. The runtime feeds it socket bytes with
//! [`Session::handle_input`], broker decisions and media with
//! [`Session::handle_broker_event`], and deadlines with
//! [`Session::handle_timeout`]; it drains, in this order:
//!
//! 1. [`Session::poll_transmit`] while the socket is writable: each
//!    [`Transmit`] is a short list of buffers for one vectored write. The
//!    session keeps media it could not hand out yet in a bounded per-player
//!    backlog and applies the real-time policy (audio/video lifetimes, bytes)
//!    to it, so a runtime must only poll when it can write: polling eagerly
//!    and buffering elsewhere would defeat the policy.
//! 2. [`Session::poll_event`] until `None`, handing each [`SessionEvent`] to
//!    the broker.
//! 3. [`Session::poll_timeout`] to arm its one timer.
//!
//! After [`SessionEvent::Closed`] has been polled and every transmit written,
//! [`Session::is_closed`] is true and the runtime drops the connection.
//!
//! # Contract details
//!
//! * Every command is answered at once and in order, or not at all: the
//!   decisions the session waits for are `publish` and `play`, from the
//!   broker (or the server's embedder first), and `connect` when
//!   [`SessionConfig::hold_connect`] is set.
//!   Replies use their request's framing (a type 17 command gets a type 17
//!   reply); statuses use the framing of the client's last command.
//! * Events queue up only within one `handle_*` call (bounded by the input
//!   it was given); drain them after every call.
//! * Output is bounded too: player media by [`RealTimeConfig`], and what
//!   may never be dropped (replies, configuration, data) by fixed caps past
//!   which the peer is closed with [`SessionError::SlowPeer`].
//! * Closing is sticky: the session keeps the error, ignores input, drops
//!   queued media, still hands out what it owes (an error or close status)
//!   for a few seconds, and emits [`SessionEvent::Closed`] exactly once,
//!   whatever the cause and even if it never connected.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chunk::{ChunkDecoder, ChunkEncoder, RawMessage};
use crate::entropy::Entropy;
use crate::event::{BrokerEvent, Denial, Frame, FrameKind, SessionEvent};
use crate::handshake::ServerHandshake;
use crate::message::{type_id, Command, Encoding, Message, UserControl, Value};
use crate::time::MediaTime;

use backlog::Backlog;
use pacing::Pacing;

pub(crate) mod backlog;
pub(crate) use dialogue::split_query;
mod caps;
mod config;
mod dialogue;
mod flows;
mod input;
mod output;
mod pacing;
mod stream_map;
mod tc;
pub(crate) mod tracks;
mod transmit;

pub use caps::{
    EnhancedCaps, CAPS_EX_MOD_EX, CAPS_EX_MULTITRACK, CAPS_EX_RECONNECT,
    CAPS_EX_TIMESTAMP_NANO_OFFSET, FOURCC_CAN_DECODE, FOURCC_CAN_ENCODE, FOURCC_CAN_FORWARD,
    MAX_FOURCC_ENTRIES, SERVER_CAPS_EX, SERVER_FOURCC_LIST,
};
pub use config::{AppSettings, RealTimeConfig, SessionConfig};
pub use transmit::Transmit;

/// Why a session closed. Kept (sticky) after the fact for logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
    /// The chunk stream broke a rule or a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] crate::chunk::ChunkError),
    /// A message could not be decoded.
    #[error("message: {0}")]
    Message(#[from] crate::message::MessageError),
    /// `connect` named no App (neither `app` nor `tcUrl`).
    #[error("connect rejected: {0}")]
    ConnectRejected(String),
    /// The client did something the protocol forbids at this point (a
    /// command before `connect`, a second `connect`...).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// No `connect` within the connect timeout.
    #[error("no connect within {0:?}")]
    ConnectTimeout(Duration),
    /// A publisher sent no media within the idle timeout.
    #[error("publisher idle for {0:?}")]
    PublisherIdle(Duration),
    /// Nothing heard from the peer within the dead-peer timeout.
    #[error("peer silent for {0:?}")]
    PeerDead(Duration),
    /// The peer closed its side of the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The server closed the session ([`Session::close`]).
    #[error("closed by the server: {0}")]
    ClosedByServer(String),
    /// The peer stopped reading: what the session must still deliver
    /// (replies, decoder configuration, data frames, none of which may be
    /// dropped) outgrew its bound. Closing is the only way to keep memory
    /// bounded then.
    #[error("peer is not reading: {0}")]
    SlowPeer(&'static str),
    /// An outbound connection ([`crate::server::Server::connect`]) ended:
    /// it could not be dialed, or its RTMP client failed or was closed.
    #[error("outbound: {0}")]
    Outbound(String),
    /// The peer sent more of something costly than its rate bound allows
    /// (`relay`/`broadcast` past [`SessionConfig::max_relays_per_second`]
    /// or [`SessionConfig::max_relay_bytes_per_second`]).
    #[error("flood: {0}")]
    Flood(String),
    /// An RTWebSocket peer broke that protocol or one of its limits
    /// ([`crate::rtws::RtwsConfig`]).
    #[error("rtwebsocket: {0}")]
    Rtws(#[from] crate::rtws::RtwsError),
}

/// One server-side RTMP connection; see the module docs for the run loop.
#[derive(Debug)]
// `repr(C)` keeps the declared order: the fields every frame touches
// (fan-out hands each player its frames one by one) come first, so a
// frame costs a few adjacent cache lines of a ~2 KB struct instead of
// one line from each end of it. Measured in docs/performance.md.
#[repr(C)]
pub struct Session {
    phase: Phase,
    closed_polled: bool,
    /// Input not handled yet: the last turn's budget ran out (complete
    /// messages may wait in the decoder, bytes in `held`).
    input_pending: bool,
    /// How statuses are framed: the way the client framed its last
    /// command (replies always use their request's framing).
    encoding: Encoding,
    next_stream_id: u32,
    control_bytes: usize,
    /// Media frames handed out to this connection's players.
    frames_out: u64,
    /// TC over RTWebSocket flows instead of the handshake and chunk
    /// stream ([`Session::new_rtws`]). Boxed: the RTMP session, the one on
    /// the fan-out path, pays one pointer and one branch per call for it.
    flows: Option<Box<flows::Flows>>,
    error: Option<SessionError>,
    /// Message streams created with `createStream`, by id.
    streams: stream_map::StreamMap<NetStream>,
    /// Media for players, under the real-time policy.
    backlog: Backlog,
    /// Protocol control and command messages, sent before any media.
    control: VecDeque<Outgoing>,
    /// A large message part way through being handed out.
    partial: Option<Partial>,
    timers: Timers,
    last_input: Instant,
    last_ping: Option<Instant>,
    events: VecDeque<SessionEvent>,
    encoder: ChunkEncoder,
    /// The buffer list of the last finished [`Partial`], reused.
    spare_chunks: Vec<Bytes>,
    /// Sizes transmits to the peer's drain rate.
    pacing: Pacing,
    /// Its hot knobs come first (see [`SessionConfig`]).
    config: SessionConfig,
    // Cold from here: connect, handshake, statistics, TC extras.
    connection_id: String,
    /// When the session started: the zero of ping timestamps.
    started: Instant,
    /// Present until the handshake completes. Boxed: its 184 bytes are
    /// needed for a connection's first milliseconds only, so an
    /// established (or idle) connection keeps a pointer's worth.
    handshake: Option<Box<ServerHandshake>>,
    /// Bytes the handshake consumed, counted towards acknowledgements.
    handshake_bytes: u64,
    decoder: ChunkDecoder,
    app: Option<String>,
    /// Messages abandoned part way, with an Abort.
    aborted: u64,
    /// Addresses from `setPeerInfo` (TC), bounded.
    peer_info: Vec<String>,
    /// The user name of a user-token `connect` (TC auth).
    user: Option<String>,
    /// The `flashVer` of `connect`, for stats.
    flash_ver: Option<String>,
    /// The `tcUrl` of `connect`, for decisions.
    tc_url: Option<String>,
    /// The wall clock as the runtime last told it: the Unix time (seconds)
    /// at an instant. Token time bounds are checked against it.
    unix_anchor: Option<(Instant, f64)>,
    /// Most simultaneous publishes (the token's `pub`).
    max_publishes: Option<u32>,
    /// What the client announced about Enhanced RTMP in `connect`.
    client_caps: EnhancedCaps,
    /// The next publish or play request's number.
    next_seq: u64,
    /// A `connect` waiting for an outside decision.
    pending_connect: Option<Box<PendingConnect>>,
    /// Messages that arrived while `connect` waited, replayed in order
    /// once it is approved. Bounded by [`MAX_HELD_MESSAGES`] and
    /// [`MAX_HELD_BYTES`].
    held_messages: VecDeque<RawMessage>,
    held_messages_bytes: usize,
    /// Media frames received from this connection's accepted publishes.
    frames_in: u64,
    /// `relay`/`broadcast` sent in the current second.
    relay_meter: tc::RelayMeter,
    /// Input not yet given to the decoder, in order.
    held: Vec<u8>,
}

/// Most messages a client may send while its `connect` waits for a
/// decision: clients send nothing or a few pipelined commands then.
const MAX_HELD_MESSAGES: usize = 64;
/// Most bytes of them.
const MAX_HELD_BYTES: usize = 256 * 1024;

/// What answering a held `connect` needs.
#[derive(Debug)]
struct PendingConnect {
    encoding: Encoding,
    transaction_id: f64,
    object_encoding: f64,
    info: crate::event::ConnectInfo,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    AwaitConnect,
    /// `connect` passed the session's checks and waits for an outside
    /// decision; input is held.
    ConnectPending,
    Connected,
    /// An error or a close happened: only owed output is flushed.
    Closing,
}

/// One message stream (`createStream`) and what it does.
#[derive(Debug, Default)]
struct NetStream {
    state: StreamState,
}

#[derive(Debug, Default)]
enum StreamState {
    #[default]
    Idle,
    /// Asked the broker, no answer yet; media is dropped meanwhile. Only
    /// the answer that echoes `seq` applies: earlier ones are for requests
    /// this one superseded.
    PublishPending { name: String, seq: u64 },
    /// Asked to play, no answer yet.
    PlayPending(Box<PendingPlay>),
    /// Accepted: media is forwarded.
    Publishing { name: String, last_media: Instant },
    /// Inline, not boxed: fan-out reads its flags for every frame, and a
    /// box would cost each player another cache line per frame.
    Playing(PlayState),
}

/// A play waiting for its answer, with what starting it needs.
#[derive(Debug)]
struct PendingPlay {
    seq: u64,
    /// The plain name, for statuses.
    name: String,
    rt: RealTimeConfig,
    reset: bool,
    /// The player's own real-time options (play Object, name query), kept
    /// to apply them again over a decider's real-time grant.
    options: Option<Value>,
    query: String,
    /// Which tracks it gets.
    tracks: tracks::TrackFilter,
}

/// A player's switches (pause, receiveAudio/Video) and what it must get
/// when it turns them back on.
#[derive(Debug)]
struct PlayState {
    name: String,
    paused: bool,
    audio: bool,
    video: bool,
    /// Configuration and data frames that arrived while their kind was off,
    /// delivered on resume so the player can decode again. Bounded.
    stash: VecDeque<Frame>,
    /// Which tracks of a multitrack stream it gets, and how.
    tracks: tracks::TrackFilter,
}

impl PlayState {
    fn wants(&self, kind: FrameKind) -> bool {
        !self.paused
            && match kind {
                FrameKind::Audio => self.audio,
                FrameKind::Video => self.video,
                FrameKind::Data => true,
            }
    }
}

/// One queued outbound item, encoded only when polled so the encoder's
/// header state follows the order the peer sees.
#[derive(Debug)]
enum Outgoing {
    /// Handshake bytes, sent as is.
    Raw(Bytes),
    Message(RawMessage),
    /// Announce a chunk size and switch the encoder to it.
    SetChunkSize(u32),
    /// Tell the peer to drop its partial message on this chunk stream.
    Abort(u32),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Raw(b) => b.len(),
            Outgoing::Message(m) => m.payload.len() + CHUNK_HEADER_ESTIMATE,
            Outgoing::SetChunkSize(_) | Outgoing::Abort(_) => 4 + CHUNK_HEADER_ESTIMATE,
        }
    }
}

/// A message being handed out chunk by chunk: what of its encoding is not
/// yet in a transmit. Only one at a time; nothing else is handed out until
/// it is finished or abandoned, so chunks of different messages never
/// interleave on the wire (some clients cannot reassemble that).
#[derive(Debug)]
struct Partial {
    stream: u32,
    csid: u32,
    kind: FrameKind,
    /// When it must be complete; `None` if it is never abandoned.
    finish_by: Option<Instant>,
    /// The message payload, to tell its slices from chunk headers.
    payload: Bytes,
    /// Header buffers and payload slices; each chunk ends with a payload
    /// slice. Those before `next` are handed out (left empty).
    bufs: Vec<Bytes>,
    next: usize,
}

impl Partial {
    /// Whether `b` is a slice of the payload (the end of a chunk) rather
    /// than a header the encoder wrote.
    fn is_payload_slice(&self, b: &Bytes) -> bool {
        let start = self.payload.as_ptr() as usize;
        let p = b.as_ptr() as usize;
        !b.is_empty() && p >= start && p < start + self.payload.len()
    }
}

/// The deadlines a session keeps; one slot each in [`Timers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Handshake,
    Connect,
    PublisherIdle,
    Ping,
    DeadPeer,
    /// How long a closing session keeps trying to flush what it owes.
    Linger,
    /// When media held by the merge window must go out.
    Merge,
    /// When a player's queued media may next outlive its lifetime.
    Expire,
    /// When the login's token expires (its `exp` or `exi`).
    Login,
}

const TIMER_COUNT: usize = 9;

/// A fixed table of deadlines indexed by [`Timer`]; the next one is a min.
#[derive(Debug, Default)]
struct Timers([Option<Instant>; TIMER_COUNT]);

impl Timers {
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at;
    }

    fn is_due(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }

    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    fn clear(&mut self) {
        self.0 = [None; TIMER_COUNT];
    }
}

/// Chunk stream for protocol control and user control messages.
const CSID_CONTROL: u32 = 2;
/// Chunk stream for commands on message stream 0.
const CSID_COMMAND: u32 = 3;

/// The most message streams one connection can hold at once: each live
/// stream has its own set of three chunk stream ids (see `stream_csids`),
/// and there are 20 sets, all below 64 so every basic header is one byte.
/// Two live streams on one set would corrupt each other's compressed
/// headers. Clients use one or two streams.
pub const MAX_STREAMS: u32 = 20;

/// Chunk streams of message stream `stream`: status/data, audio, video.
/// Each stream gets its own three (cycling), all below 64 so every basic
/// header is one byte, and audio and video never share header state.
fn stream_csids(stream: u32) -> (u32, u32, u32) {
    let base = 4 + 3 * (stream.wrapping_sub(1) % MAX_STREAMS);
    (base, base + 1, base + 2)
}

/// Rough header cost of one queued message, for the control bound.
const CHUNK_HEADER_ESTIMATE: usize = 16;
/// Most bytes of replies and statuses held for a peer that does not read.
/// Replies answer the peer's own commands, so only a peer that sends
/// without reading can reach it.
const MAX_CONTROL_BYTES: usize = 1024 * 1024;
/// Most messages one [`Session::handle_input`] call acts on; the rest of
/// the input waits for the next call. A message can fan out to every
/// player of a stream (or, as a broadcast, to every member of an App), so
/// this bounds the work one connection's read may cause before other
/// connections get a turn: a read of thousands of tiny messages would
/// otherwise keep a whole server busy for seconds. A real publisher's
/// read holds a handful of frames.
pub const MAX_MESSAGES_PER_TURN: usize = 64;
/// Most payload bytes of messages one [`Session::handle_input`] call acts
/// on (AMF decoding and copies grow with bytes, not messages); at least
/// one message is always handled, however large.
pub const MAX_PAYLOAD_PER_TURN: usize = 256 * 1024;
/// Most buffers in one [`Transmit`]: a chunk of a large message costs two
/// (header, payload slice), so this lets the largest batch (256 KiB of
/// 4 KiB chunks) through while staying well under IOV_MAX (1024).
const MAX_TRANSMIT_BUFS: usize = 256;
/// How long a closing session keeps owed output (an error status) for a
/// runtime that cannot write it; then it gives up and reports closed.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most configuration/data frames stashed per paused player.
const MAX_STASH: usize = 32;

impl Session {
    /// Starts a session whose handshake deadline runs from `now`. `entropy`
    /// provides the handshake bytes and the connection ID.
    pub fn new(now: Instant, config: SessionConfig, entropy: &mut dyn Entropy) -> Self {
        let handshake = ServerHandshake::new(now, config.handshake.clone(), entropy);
        let mut id = [0u8; 16];
        entropy.fill(&mut id);
        let connection_id = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut timers = Timers::default();
        timers.set(Timer::Handshake, handshake.poll_timeout());
        Session {
            decoder: ChunkDecoder::new(config.decoder_limits),
            encoder: ChunkEncoder::new(),
            backlog: Backlog::new(config.real_time.max_backlog_bytes),
            partial: None,
            spare_chunks: Vec::new(),
            aborted: 0,
            pacing: Pacing::default(),
            config,
            connection_id,
            started: now,
            phase: Phase::Handshake,
            handshake: Some(Box::new(handshake)),
            handshake_bytes: 0,
            app: None,
            encoding: Encoding::Amf0,
            error: None,
            streams: stream_map::StreamMap::default(),
            next_stream_id: 1,
            control: VecDeque::new(),
            control_bytes: 0,
            events: VecDeque::new(),
            closed_polled: false,
            timers,
            last_input: now,
            last_ping: None,
            peer_info: Vec::new(),
            user: None,
            flash_ver: None,
            tc_url: None,
            unix_anchor: None,
            max_publishes: None,
            client_caps: EnhancedCaps::default(),
            next_seq: 1,
            pending_connect: None,
            held_messages: VecDeque::new(),
            held_messages_bytes: 0,
            frames_in: 0,
            frames_out: 0,
            relay_meter: tc::RelayMeter::default(),
            input_pending: false,
            held: Vec::new(),
            flows: None,
        }
    }

    /// Starts a session that speaks TC over RTWebSocket flows (RFC 7425
    /// section 5.1 semantics, as the reference JavaScript client does)
    /// rather than RTMP's handshake and chunk stream: the WebSocket
    /// already did the handshake, so it waits for `connect` from `now`.
    /// Each [`Session::handle_input`] is one whole WebSocket binary
    /// message and each [`Transmit`] is one; the dialogue (and everything
    /// after `connect`) is the RTMP session's. See docs/rtwebsocket.md,
    /// "TC over flows".
    pub fn new_rtws(now: Instant, config: SessionConfig, entropy: &mut dyn Entropy) -> Self {
        let rtws = config.rtws.clone();
        let mut session = Session::new(now, config, entropy);
        session.start_rtws(now, rtws);
        session
    }

    /// The server-assigned connection ID (random hex), sent to the client in
    /// the `connect` result as `connectionID`.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The App this connection joined, once `connect` succeeded.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The `flashVer` the client sent in `connect` (its name and version).
    pub fn flash_ver(&self) -> Option<&str> {
        self.flash_ver.as_deref()
    }

    /// The wall clock: the Unix time `unix_secs` is now. Tokens whose user
    /// name bounds them in time (`nbf`, `exp`, `use_by`) can only be
    /// checked once the runtime has said; the core never reads a clock.
    pub fn handle_unix_time(&mut self, now: Instant, unix_secs: f64) {
        self.unix_anchor = Some((now, unix_secs));
    }

    /// The Unix time at `now`, from the last anchor.
    fn unix_now(&self, now: Instant) -> Option<f64> {
        self.unix_anchor
            .map(|(at, secs)| secs + now.saturating_duration_since(at).as_secs_f64())
    }

    /// The `tcUrl` the client sent in `connect`.
    pub fn tc_url(&self) -> Option<&str> {
        self.tc_url.as_deref()
    }

    /// What the client announced about Enhanced RTMP v2 in `connect`
    /// (`fourCcList`, the FourCC info maps, `capsEx`); empty for a legacy
    /// client or before `connect`.
    pub fn client_caps(&self) -> &EnhancedCaps {
        &self.client_caps
    }

    /// Whether `connect` succeeded and the session is not closing.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Media and data messages received from this connection's accepted
    /// publishes.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Media and data messages this connection's players were handed
    /// (started on the wire; abandoned ones are in
    /// [`Session::dropped_frames`] instead).
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Approves a `connect` held for an outside decision
    /// ([`SessionEvent::ConnectRequest`]): the client gets its `_result`
    /// and [`SessionEvent::Connected`] follows. Returns false (and does
    /// nothing) if no `connect` waits.
    pub fn approve_connect(&mut self, now: Instant) -> bool {
        if self.phase != Phase::ConnectPending {
            return false;
        }
        let Some(pending) = self.pending_connect.take() else {
            return false;
        };
        self.finish_connect(*pending);
        // What the client sent meanwhile, in order, as if it arrived now.
        while let Some(raw) = self.held_messages.pop_front() {
            if self.phase != Phase::Connected {
                break;
            }
            self.handle_message(now, raw);
        }
        self.held_messages.clear();
        self.held_messages_bytes = 0;
        self.settle(now);
        true
    }

    /// Refuses a `connect` held for an outside decision: the client gets
    /// `_error` `NetConnection.Connect.Rejected` with the denial's
    /// description, and the session closes. Returns false (and does
    /// nothing) if no `connect` waits.
    pub fn deny_connect(&mut self, now: Instant, denial: &Denial) -> bool {
        if self.phase != Phase::ConnectPending {
            return false;
        }
        let Some(pending) = self.pending_connect.take() else {
            return false;
        };
        self.held_messages.clear();
        self.held_messages_bytes = 0;
        tracing::info!(app = %pending.info.app, reason = %denial, "connect refused");
        self.reject_connect(
            now,
            pending.encoding,
            pending.transaction_id,
            &denial.description,
            format!("refused: {}", denial.description),
        );
        self.settle(now);
        true
    }

    /// Why the session closed (or is closing), if it is.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// True once [`SessionEvent::Closed`] has been polled and nothing is left
    /// to transmit: the runtime may drop the socket.
    pub fn is_closed(&self) -> bool {
        self.closed_polled && self.control.is_empty() && !self.rtws_pending()
    }

    /// Media frames the real-time policy abandoned for this connection's
    /// players (too old, over the byte budget, rest of a broken GOP), for
    /// stats. Frames a player turned off (pause, receiveVideo) are not
    /// counted.
    pub fn dropped_frames(&self) -> u64 {
        let expired = self.flows.as_ref().map_or(0, |f| f.expired().0);
        self.backlog.dropped_frames() + expired
    }

    /// Payload bytes of [`Session::dropped_frames`] (over RTWebSocket, an
    /// abandoned message's TC header is counted too).
    pub fn dropped_bytes(&self) -> u64 {
        let expired = self.flows.as_ref().map_or(0, |f| f.expired().1);
        self.backlog.dropped_bytes() + expired
    }

    /// Payload bytes of media waiting for the socket right now.
    pub fn backlog_bytes(&self) -> usize {
        self.backlog.queued_bytes()
    }

    /// Entries (frames and in-band statuses) waiting in the players'
    /// backlog right now, for stats and tests of its bounds.
    pub fn backlog_entries(&self) -> usize {
        self.backlog.len()
    }

    /// Whether input given to [`Session::handle_input`] is not all handled
    /// yet: a call handles at most one turn's worth
    /// ([`MAX_MESSAGES_PER_TURN`] messages or [`MAX_PAYLOAD_PER_TURN`]
    /// bytes of their payload) and keeps the rest. The runtime should not
    /// read more from this peer meanwhile, but let other connections have
    /// their turn and then call `handle_input(now, &[])` to continue.
    pub fn has_pending_input(&self) -> bool {
        self.input_pending && self.error.is_none()
    }

    /// Messages whose transmission started but that were abandoned before
    /// the end (their finish-by deadline passed) with an RTMP Abort; they
    /// are also counted in [`Session::dropped_frames`].
    pub fn aborted_messages(&self) -> u64 {
        self.aborted
    }

    /// Bytes of peer input the chunk decoder holds (partial messages), for
    /// fuzz targets checking it stays within
    /// [`DecoderLimits::max_buffered_bytes`](crate::chunk::DecoderLimits).
    #[doc(hidden)]
    pub fn input_buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes() + self.flows.as_ref().map_or(0, |f| f.buffered_bytes())
    }

    /// The peer closed its side (read returned 0): the session closes.
    pub fn handle_eof(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        // Nobody is left to read what we still owe.
        self.control.clear();
        self.control_bytes = 0;
        self.rtws_give_up();
        self.fail(now, SessionError::PeerClosed);
    }

    /// A decision, status or frame from the broker for this session.
    pub fn handle_broker_event(&mut self, now: Instant, event: BrokerEvent) {
        if self.phase != Phase::Connected {
            tracing::trace!(?event, "broker event for a session not connected, ignored");
            return;
        }
        if let BrokerEvent::Frame { stream, frame } = event {
            // A frame moves only this player's backlog (and may close it
            // as too slow): of the deadlines `settle` re-arms, only the
            // backlog's expiry can change. This runs per player per
            // frame, and a full settle touches lines (the timers, the
            // ping and liveness state, the streams) nothing here changed.
            self.deliver(now, stream, frame);
            if self.phase == Phase::Connected {
                self.timers.set(Timer::Expire, self.backlog.next_expiry());
            }
            return;
        }
        self.on_broker_event(now, event);
        self.settle(now);
    }

    /// Deadlines have passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(flows) = &mut self.flows {
            flows.handle_timeout(now);
        }
        match self.phase {
            Phase::Closing => {
                if self.timers.is_due(Timer::Linger, now) {
                    tracing::debug!("gave up flushing a closing session");
                    self.control.clear();
                    self.control_bytes = 0;
                    self.rtws_give_up();
                    self.timers.set(Timer::Linger, None);
                }
                return;
            }
            Phase::Handshake => {
                let result = self.handshake.as_mut().map(|hs| hs.handle_timeout(now));
                if let Some(Err(e)) = result {
                    self.fail(now, SessionError::Handshake(e));
                }
            }
            // The server's decision deadline covers a held connect.
            Phase::ConnectPending => {}
            Phase::AwaitConnect => {
                if self.timers.is_due(Timer::Connect, now) {
                    self.fail(
                        now,
                        SessionError::ConnectTimeout(self.config.connect_timeout),
                    );
                }
            }
            Phase::Connected => {
                if self.timers.is_due(Timer::Merge, now) {
                    // Held media is due: the next poll hands it out.
                    self.timers.set(Timer::Merge, None);
                }
                if self.timers.is_due(Timer::Expire, now) {
                    // A player that is not polled (its socket takes
                    // nothing) still loses media past its lifetime.
                    self.backlog.expire(now);
                }
                if self.timers.is_due(Timer::Login, now) {
                    self.timers.set(Timer::Login, None);
                    tracing::info!("login expired");
                    self.close(now, "login expired");
                    return;
                }
                if self.timers.is_due(Timer::DeadPeer, now) {
                    self.fail(now, SessionError::PeerDead(self.config.dead_peer_timeout));
                } else if self.timers.is_due(Timer::PublisherIdle, now) {
                    self.fail(
                        now,
                        SessionError::PublisherIdle(self.config.publish_idle_timeout),
                    );
                } else if self.timers.is_due(Timer::Ping, now) {
                    let stamp = now.saturating_duration_since(self.started).as_millis() as u32;
                    tracing::trace!(stamp, "pinging a silent peer");
                    match &mut self.flows {
                        // RTWebSocket has its own ping.
                        Some(flows) => flows.ping(stamp),
                        None => {
                            self.send_control(Message::UserControl(UserControl::PingRequest(stamp)))
                        }
                    }
                    self.last_ping = Some(now);
                }
            }
        }
        self.settle(now);
    }

    /// The server closes this session (shutdown, eviction): it sends a
    /// status where the protocol has one, then closes.
    pub fn close(&mut self, now: Instant, reason: &str) {
        if self.error.is_some() {
            return;
        }
        if self.phase == Phase::Connected {
            self.send_status(0, "status", "NetConnection.Connect.Closed", reason, vec![]);
        }
        self.fail(now, SessionError::ClosedByServer(reason.to_owned()));
    }

    /// The server is going away (graceful shutdown): a connected client is
    /// told `NetConnection.Shutdown.Notify` so it can leave on its own terms
    /// (TC semantics) and keeps being served until then; a session that
    /// has not connected yet has nothing to lose and is closed at once.
    pub fn notify_shutdown(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        if self.phase == Phase::Connected {
            self.send_status(
                0,
                "status",
                "NetConnection.Shutdown.Notify",
                "server shutting down",
                vec![],
            );
            self.settle(now);
        } else {
            self.fail(
                now,
                SessionError::ClosedByServer("server shutting down".to_owned()),
            );
        }
    }

    /// Asks the client to reconnect (Enhanced RTMP v2): sends `onStatus`
    /// `NetConnection.Connect.ReconnectRequest` on stream 0, with `tcUrl`
    /// when `tc_url` is given (another node, or a relative reference the
    /// client resolves against its current `tcUrl`; without it the client
    /// reconnects to the same `tcUrl`). Only a connected client that
    /// announced the capability in `connect` (`capsEx` Reconnect) gets it;
    /// returns whether it was sent. The session keeps serving the client
    /// until it leaves, as the specification asks: it reconnects at its
    /// next media boundary.
    pub fn request_reconnect(
        &mut self,
        now: Instant,
        tc_url: Option<&str>,
        description: &str,
    ) -> bool {
        if self.phase != Phase::Connected || !self.client_caps.supports_reconnect() {
            return false;
        }
        let extra = tc_url
            .map(|url| vec![("tcUrl", Value::from(url))])
            .unwrap_or_default();
        tracing::info!(tc_url, "reconnect requested");
        self.send_status(
            0,
            "status",
            "NetConnection.Connect.ReconnectRequest",
            description,
            extra,
        );
        self.settle(now);
        true
    }

    /// Whether [`Session::poll_event`] has something: lets the server skip
    /// the broker round trip after a transmit that raised nothing.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event for the broker.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let event = self.events.pop_front()?;
        if event == SessionEvent::Closed {
            self.closed_polled = true;
        }
        Some(event)
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.next();
        match self.flows.as_ref().and_then(|f| f.poll_timeout()) {
            Some(flows) => Some(own.map_or(flows, |own| own.min(flows))),
            None => own,
        }
    }

    /// After every input: enforce the bound on owed output and re-arm the
    /// timers that follow the session's state.
    fn settle(&mut self, now: Instant) {
        if self.control_bytes > MAX_CONTROL_BYTES && self.error.is_none() {
            self.control.clear();
            self.control_bytes = 0;
            self.fail(
                now,
                SessionError::SlowPeer("replies to its commands piled up"),
            );
        }
        if self.phase != Phase::Connected {
            return;
        }
        self.timers.set(Timer::Expire, self.backlog.next_expiry());
        let c = &self.config;
        let heard = self
            .last_input
            .max(self.last_ping.unwrap_or(self.last_input));
        self.timers
            .set(Timer::Ping, heard.checked_add(c.ping_interval));
        self.timers.set(
            Timer::DeadPeer,
            self.last_input.checked_add(c.dead_peer_timeout),
        );
        let idle = self
            .streams
            .values()
            .filter_map(|s| match &s.state {
                StreamState::Publishing { last_media, .. } => Some(*last_media),
                _ => None,
            })
            .min()
            .and_then(|last| last.checked_add(c.publish_idle_timeout));
        self.timers.set(Timer::PublisherIdle, idle);
    }

    /// Moves to closing: remembers why, drops what is no longer worth
    /// sending (media), keeps what is owed (statuses), and tells the broker.
    fn fail(&mut self, now: Instant, error: SessionError) {
        if self.error.is_some() {
            return;
        }
        match &error {
            SessionError::PeerClosed | SessionError::ClosedByServer(_) => {
                tracing::info!(%error, "session closed");
            }
            _ => tracing::info!(%error, "session closed on error"),
        }
        self.error = Some(error);
        self.phase = Phase::Closing;
        self.handshake = None;
        // Input is ignored from now on.
        self.held = Vec::new();
        self.input_pending = false;
        self.backlog.clear();
        // Nobody will read the rest of it; what is still owed goes on
        // other chunk streams.
        self.partial = None;
        if let Some(flows) = &mut self.flows {
            flows.abandon_media(None);
        }
        self.timers.clear();
        if !self.control.is_empty() || self.rtws_pending() {
            self.timers
                .set(Timer::Linger, now.checked_add(CLOSE_FLUSH_TIMEOUT));
        }
        self.events.push_back(SessionEvent::Closed);
    }

    fn push(&mut self, out: Outgoing) {
        self.control_bytes += out.len();
        self.control.push_back(out);
    }

    /// Queues a protocol or user control message (chunk stream 2, stream 0).
    fn send_control(&mut self, msg: Message) {
        self.send_message(CSID_CONTROL, 0, msg);
    }

    fn send_message(&mut self, csid: u32, stream: u32, msg: Message) {
        match msg.to_raw(csid, MediaTime::ZERO, stream) {
            Ok(raw) => self.push(Outgoing::Message(raw)),
            // Our own messages are plain values; this cannot happen, and if
            // it did, dropping one reply beats tearing down the session.
            Err(e) => tracing::warn!(%e, "could not encode an outgoing message"),
        }
    }

    /// Queues a command on `stream` (chunk stream 3 for stream 0, else the
    /// stream's status chunk stream).
    fn send_command(&mut self, stream: u32, encoding: Encoding, command: Command) {
        let csid = if stream == 0 {
            CSID_COMMAND
        } else {
            stream_csids(stream).0
        };
        self.send_message(csid, stream, Message::Command { encoding, command });
    }

    /// Queues `onStatus` on `stream` with the standard info object plus
    /// `extra` members.
    fn send_status(
        &mut self,
        stream: u32,
        level: &str,
        code: &str,
        description: &str,
        extra: Vec<(&str, Value)>,
    ) {
        let info = status_info(level, code, description, extra);
        self.send_command(stream, self.encoding, Command::OnStatus { info });
    }
}

/// The info object of a status or error: level, code, description, then
/// `extra`.
fn status_info(level: &str, code: &str, description: &str, extra: Vec<(&str, Value)>) -> Value {
    let mut members = vec![
        ("level", Value::from(level)),
        ("code", Value::from(code)),
        ("description", Value::from(description)),
    ];
    members.extend(extra);
    Value::object(members)
}

/// A player's media frame as the message it travels as.
fn frame_to_raw(stream: u32, frame: Frame) -> RawMessage {
    let (status, audio, video) = stream_csids(stream);
    let (csid, type_id) = match frame.kind {
        FrameKind::Audio => (audio, type_id::AUDIO),
        FrameKind::Video => (video, type_id::VIDEO),
        FrameKind::Data => (status, type_id::DATA_AMF0),
    };
    RawMessage {
        csid,
        timestamp: frame.timestamp,
        type_id,
        stream_id: stream,
        payload: frame.payload,
    }
}

#[cfg(test)]
mod ertmp_tests;
#[cfg(test)]
mod tc_tests;
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;
