//! The client side of one RTMP connection, as a sans-IO state machine.
//!
//! A server needs a client session for three jobs: pushing a stream to a
//! remote server (relay push), pulling one from it (relay pull), and driving
//! load against a server from the same code base (`tincan bench`). All three
//! want the same thing: a well-behaved publisher or player that does the
//! dialogue by itself and hands media in and out without copying payloads.
//!
//! [`ClientSession`] is built from the core's own layers
//! ([`ClientHandshake`], [`ChunkEncoder`], [`ChunkDecoder`], typed
//! [`Message`]s) and follows the core's run-loop contract: bytes from the
//! socket go in through [`ClientSession::handle_input`], what to write comes
//! out of [`ClientSession::poll_transmit`] (a vectored [`Transmit`] whose
//! media payloads are the caller's own [`Bytes`], shared by reference
//! count), and what happened comes out of [`ClientSession::poll_event`].
//!
//! The dialogue is FFmpeg's, the order servers are most tested against:
//! Set Chunk Size and `connect` as soon as the handshake allows, then
//! (publishers) `releaseStream` and `FCPublish`, `createStream`, and finally
//! `publish` or `play` (followed by Set Buffer Length) on the new stream.
//! On its own the session acknowledges bytes by the server's window, answers
//! pings, honours Set Chunk Size and Abort (the chunk decoder applies
//! them), pings a server it has not heard from for a while, and gives up on
//! one silent for longer ([`ClientError::PeerDead`]), so a relay notices a
//! vanished origin; its deadlines are a fixed table behind
//! [`ClientSession::poll_timeout`], and time is always a parameter. A
//! server that breaks the protocol yields a sticky [`ClientError`], never a
//! panic.
//!
//! A publisher's media waits in a bounded queue until the socket takes it:
//! [`ClientSession::send_frame`] (the relay path) applies the same
//! real-time policy a server applies to a slow player, reusing its backlog,
//! so a remote server that reads slower than the stream makes the client
//! drop stale audio and broken GOPs rather than grow; configuration and
//! data are never dropped, and past their own bound the session closes
//! ([`ClientError::SlowPeer`]). Messages always go out whole: what is in a
//! transmit is at most about 64 KiB of media, so the client never needs
//! to abandon a message part way with an RTMP Abort.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, DecoderLimits, RawMessage};
use crate::entropy::Entropy;
use crate::event::{Frame, FrameKind};
use crate::handshake::{ClientHandshake, HandshakeConfig, HandshakeError};
use crate::message::{
    type_id, Command, Connect, Data, Encoding, Message, MessageError, Play, PublishKind,
    UserControl, Value,
};
use crate::session::backlog::{Backlog, Item, Overflow};
use crate::session::{EnhancedCaps, RealTimeConfig, Transmit};
use crate::time::MediaTime;

#[cfg(test)]
mod tests;

/// Chunk stream ids, after FFmpeg's habits: one for protocol control, one
/// for commands, one per media kind. Servers do not care, but keeping media
/// kinds apart lets header compression work per kind.
mod csid {
    pub(super) const CONTROL: u32 = 2;
    pub(super) const COMMAND: u32 = 3;
    pub(super) const AUDIO: u32 = 4;
    pub(super) const DATA: u32 = 5;
    pub(super) const VIDEO: u32 = 6;
}

/// What the client does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publish a live stream under [`ClientConfig::stream`].
    Publish,
    /// Play the stream [`ClientConfig::stream`].
    Play,
    /// Only `connect`, then stay: for connection-level work (calls, idle
    /// connections in a load test) that needs no message stream.
    Connect,
}

/// How a client session connects, and the bounds on what the server can make
/// it hold.
///
/// Its `Debug` output leaves out the secrets a config may carry (stream
/// key, query, connect arguments): configs end up in logs.
#[derive(Clone)]
pub struct ClientConfig {
    /// The `tcUrl` sent in `connect` (`rtmp://host:port/app`): servers use it
    /// for virtual hosting and logs.
    pub tc_url: String,
    /// The App (`app` in `connect`).
    pub app: String,
    /// The stream name given to `publish` or `play` (and, for a publisher,
    /// `releaseStream` and `FCPublish`), before [`query`](Self::query).
    pub stream: String,
    /// A URL query appended to the stream name as `name?query` (joined with
    /// `&` if the name already has one), the way FFmpeg and OBS pass the
    /// query of an RTMP URL: many servers and CDNs take per-stream tokens
    /// there (`live/cam?token=...`). `None` or empty sends the bare name.
    pub query: Option<String>,
    /// Extra arguments after the `connect` command object, in order. TC
    /// authentication tokens travel here (one App-wide token string, or a
    /// user name and a user token; see [`crate::auth`]), as do FFmpeg's
    /// `-rtmp_conn` values (`S:<token>` is one string argument).
    pub connect_args: Vec<Value>,
    /// `swfUrl` in `connect`, when set. Flash-era servers may check it
    /// against an allow list; FFmpeg sends it with `-rtmp_swfurl`.
    pub swf_url: Option<String>,
    /// `pageUrl` in `connect`, when set: the web page a Flash player was
    /// embedded in, which some servers log or check (`-rtmp_pageurl`).
    pub page_url: Option<String>,
    /// Enhanced RTMP: when set, `connect` announces these FourCCs (e.g.
    /// `hvc1`, `av01`, `vp09`, `Opus`) as `fourCcList`, telling a server
    /// that this client can send or receive them. Off by default, as a
    /// legacy client connects: some servers change what they send once a
    /// client claims Enhanced RTMP support.
    pub four_cc_list: Option<Vec<String>>,
    /// Enhanced RTMP v2: when set, `connect` announces these `capsEx`
    /// flags ([`crate::session::CAPS_EX_RECONNECT`],
    /// [`crate::session::CAPS_EX_MULTITRACK`], ...). With Reconnect the
    /// server may ask the client to reconnect, reported as
    /// [`ClientEvent::ReconnectRequest`]; with Multitrack a player gets
    /// every track of a multitrack stream as sent. Off by default.
    pub caps_ex: Option<u32>,
    /// Publish or play.
    pub role: Role,
    /// The chunk size announced right after the handshake. Large chunks
    /// mean fewer headers per message; FFmpeg and OBS use 4096, and a
    /// publisher of big frames gains from more.
    pub out_chunk_size: u32,
    /// `flashVer` in `connect`; some servers log or branch on it.
    pub flash_ver: String,
    /// Bounds on the server's chunk stream, like the server's own bounds on
    /// clients: a bad server must not make the client grow without limit.
    pub limits: DecoderLimits,
    /// Handshake knobs (digest or simple C1, how hard to check the server).
    pub handshake: HandshakeConfig,
    /// How long the server gets, from [`ClientSession::new`], to confirm the
    /// publish or play (`NetStream.Publish.Start` / `NetStream.Play.Start`).
    /// A server that answers nothing would otherwise hold the client
    /// forever.
    pub start_timeout: Duration,
    /// A User Control PingRequest is sent after this long without a byte
    /// from the server (and again every interval while it stays silent).
    /// A publisher hears little from a server (an acknowledgement every
    /// few megabytes), so the ping's answer is what shows it is alive.
    /// `Duration::MAX` never pings.
    pub ping_interval: Duration,
    /// The server is declared dead, and the session closed with
    /// [`ClientError::PeerDead`], after this long without a byte from it: a
    /// relay must notice a vanished origin (no FIN, no RST) to reconnect.
    /// `Duration::MAX` never gives up.
    pub dead_peer_timeout: Duration,
    /// The buffer length a player announces (Set Buffer Length), in
    /// milliseconds; FFmpeg sends 3000.
    pub buffer_ms: u32,
    /// Whether a publisher sends `releaseStream` and `FCPublish` before
    /// `createStream`, as FFmpeg and OBS do. On a TC server `releaseStream`
    /// evicts whoever publishes the name now; turn it off to be refused
    /// instead.
    pub release_stream: bool,
    /// How a publisher's outbound media (what [`ClientSession::send_frame`]
    /// queues) is kept real-time when the server reads slower than the
    /// stream: the same policy, and the same defaults, as a server applies
    /// to its players. Audio and video older than their lifetimes are
    /// abandoned (video with the rest of its GOP), droppable media never
    /// holds more than `max_backlog_bytes`, and decoder configuration and
    /// data are never dropped. `finish_by_margin` is not used: a message
    /// whose first chunk went out is always finished.
    pub real_time: RealTimeConfig,
    /// The relay chain announced in `connect` ([`crate::via`]): the node
    /// ids the carried stream passed through, this server's last. Empty
    /// (the default) sends none, as an ordinary client.
    pub via: Vec<String>,
}

impl ClientConfig {
    /// A config for `role` on `app`/`stream` at `tc_url`, with FFmpeg-like
    /// defaults for the rest.
    pub fn new(
        tc_url: impl Into<String>,
        app: impl Into<String>,
        stream: impl Into<String>,
        role: Role,
    ) -> Self {
        ClientConfig {
            tc_url: tc_url.into(),
            app: app.into(),
            stream: stream.into(),
            role,
            out_chunk_size: 4096,
            flash_ver: "FMLE/3.0 (compatible; tincan)".to_owned(),
            limits: DecoderLimits::default(),
            handshake: HandshakeConfig::default(),
            start_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            dead_peer_timeout: Duration::from_secs(60),
            buffer_ms: 3000,
            release_stream: true,
            real_time: RealTimeConfig::default(),
            query: None,
            connect_args: Vec::new(),
            via: Vec::new(),
            swf_url: None,
            page_url: None,
            four_cc_list: None,
            caps_ex: None,
        }
    }

    /// The name sent to `publish` or `play`: [`stream`](Self::stream) with
    /// [`query`](Self::query) appended.
    pub fn stream_name(&self) -> String {
        match self.query.as_deref().map(|q| q.trim_start_matches('?')) {
            None | Some("") => self.stream.clone(),
            Some(q) => {
                let sep = if self.stream.contains('?') { '&' } else { '?' };
                format!("{}{sep}{q}", self.stream)
            }
        }
    }

    /// The `connect` command object: FFmpeg's members in FFmpeg's order,
    /// the optional ones only when set.
    fn connect_object(&self) -> Value {
        let mut members = vec![
            ("app", Value::from(self.app.as_str())),
            ("type", Value::from("nonprivate")),
            ("flashVer", Value::from(self.flash_ver.as_str())),
        ];
        if let Some(swf_url) = &self.swf_url {
            members.push(("swfUrl", Value::from(swf_url.as_str())));
        }
        members.push(("tcUrl", Value::from(self.tc_url.as_str())));
        if let Some(page_url) = &self.page_url {
            members.push(("pageUrl", Value::from(page_url.as_str())));
        }
        if let Some(list) = &self.four_cc_list {
            let list = list.iter().map(|f| Value::from(f.as_str())).collect();
            members.push(("fourCcList", Value::StrictArray(list)));
        }
        if let Some(caps) = self.caps_ex {
            members.push(("capsEx", Value::Number(f64::from(caps))));
        }
        if !self.via.is_empty() {
            let via = self.via.iter().map(|id| Value::from(id.as_str())).collect();
            members.push((crate::via::VIA_PROPERTY, Value::StrictArray(via)));
        }
        members.push(("objectEncoding", Value::from(0.0)));
        Value::object(members)
    }
}

impl std::fmt::Debug for ClientConfig {
    /// Stream keys, queries and connect arguments are secrets (tokens):
    /// only their sizes are shown, and `tcUrl` without its query.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tc_url = match self.tc_url.split_once('?') {
            Some((base, _)) => format!("{base}?<redacted>"),
            None => self.tc_url.clone(),
        };
        f.debug_struct("ClientConfig")
            .field("tc_url", &tc_url)
            .field("app", &self.app)
            .field("stream", &format_args!("<{} bytes>", self.stream.len()))
            .field(
                "query",
                &self.query.as_ref().map(|q| format!("<{} bytes>", q.len())),
            )
            .field(
                "connect_args",
                &format_args!("<{} values>", self.connect_args.len()),
            )
            .field("swf_url", &self.swf_url)
            .field("page_url", &self.page_url)
            .field("four_cc_list", &self.four_cc_list)
            .field("caps_ex", &self.caps_ex)
            .field("role", &self.role)
            .field("out_chunk_size", &self.out_chunk_size)
            .field("flash_ver", &self.flash_ver)
            .field("limits", &self.limits)
            .field("handshake", &self.handshake)
            .field("start_timeout", &self.start_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("dead_peer_timeout", &self.dead_peer_timeout)
            .field("buffer_ms", &self.buffer_ms)
            .field("release_stream", &self.release_stream)
            .field("real_time", &self.real_time)
            .field("via", &self.via)
            .finish()
    }
}

/// Audio or video, for media the client sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// RTMP audio (type 8): an FLV audio tag body.
    Audio,
    /// RTMP video (type 9): an FLV video tag body.
    Video,
}

/// A status the server reported: an `onStatus` info object, or the info
/// object of an `_error` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `status`, `warning` or `error`.
    pub level: String,
    /// E.g. `NetStream.Play.Start`, `NetConnection.Connect.Rejected`.
    pub code: String,
    /// Free text from the server.
    pub description: String,
}

/// Something that happened on the connection, drained with
/// [`ClientSession::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted `connect`.
    Connected,
    /// The server confirmed the publish: media may be sent now.
    Publishing,
    /// The server confirmed the play: media follows.
    Playing,
    /// A status from the server (every `onStatus`, and `_error` replies).
    Status(Status),
    /// Audio or video on the played stream.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// The timestamp on the wire.
        timestamp: MediaTime,
        /// The FLV tag body, as the chunk layer assembled it.
        payload: Bytes,
    },
    /// The server asked the client to reconnect (Enhanced RTMP v2
    /// `NetConnection.Connect.ReconnectRequest`, sent only to clients that
    /// announced `capsEx` Reconnect, see [`ClientConfig::caps_ex`]). The
    /// session carries on: the embedder reconnects at its next media
    /// boundary (a keyframe) and then closes this one.
    ReconnectRequest {
        /// Where to reconnect: an absolute `rtmp://` URL or a reference
        /// relative to the current `tcUrl`; `None` means the current one.
        tc_url: Option<String>,
        /// The server's free text.
        description: String,
    },
    /// A data message on the played stream (`onMetaData`...).
    Data {
        /// The timestamp on the wire.
        timestamp: MediaTime,
        /// The AMF0 body, handler first.
        body: Bytes,
    },
    /// The session is over: the server refused, closed or broke the
    /// protocol. Reported once; nothing more is read or sent after it
    /// except what was already queued.
    Closed(String),
}

/// Why the server's bytes could not be understood. Sticky: once returned,
/// every later [`ClientSession::handle_input`] returns it again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream broke a rule or a bound.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message did not decode.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// The server did something no correct server does.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// The server stopped reading: what the client may not drop (replies,
    /// decoder configuration, data, media sent with
    /// [`ClientSession::send_media`]) outgrew its bound. Closing is the
    /// only way to keep memory bounded then.
    #[error("the server is not reading: {0}")]
    SlowPeer(&'static str),
    /// Nothing at all came from the server for
    /// [`ClientConfig::dead_peer_timeout`].
    #[error("server silent for {0:?}")]
    PeerDead(Duration),
    /// The configuration cannot be put on the wire (connect arguments that
    /// do not encode as AMF0); the session closes at once.
    #[error("configuration: {0}")]
    Config(String),
}

/// Why [`ClientSession::send_frame`], [`ClientSession::send_media`] or
/// [`ClientSession::send_data`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Media may only be sent once the server confirmed the publish.
    #[error("not publishing")]
    NotPublishing,
    /// The session is closed (or closed on this call: [`ClientSession::error`]
    /// says why, e.g. [`ClientError::SlowPeer`]).
    #[error("session closed")]
    Closed,
    /// RTMP cannot describe a message this long (16 MiB - 1).
    #[error("payload of {0} bytes is too long for RTMP")]
    TooLong(usize),
}

/// Where the dialogue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Handshake under way; `connect` is queued behind it.
    Handshake,
    /// `connect` sent, waiting for its `_result`.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `publish` or `play` sent on the new stream.
    Starting,
    /// Publishing or playing.
    Active,
    /// Over.
    Closed,
}

/// Most payload bytes of queued media one transmit carries (it always
/// carries at least one whole message). What is in a transmit is past the
/// real-time policy's judgement, so this is what a slow server can be
/// handed beyond the lifetimes: half a second at 1 Mbit/s.
const MAX_BATCH: usize = 64 * 1024;
/// Most buffers in one transmit, well under IOV_MAX (1024); a chunk of a
/// large message costs two (header, payload slice). A single message may
/// exceed it: messages are never split across transmits.
const MAX_TRANSMIT_BUFS: usize = 256;
/// Most bytes of encoded replies and commands (acknowledgements, pongs)
/// held for a server that does not read. Only a server that sends without
/// reading can reach it.
const MAX_CONTROL_BYTES: usize = 1024 * 1024;

/// The deadlines a client keeps; one slot each in [`Timers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The handshake's own deadline.
    Handshake,
    /// The publish or play must have started ([`ClientConfig::start_timeout`]).
    Start,
    /// Ping a silent server.
    Ping,
    /// Give up on a silent server.
    DeadPeer,
}

const TIMER_COUNT: usize = 4;

/// A fixed table of deadlines indexed by [`Timer`]; the next one is a min.
#[derive(Debug, Default)]
struct Timers([Option<Instant>; TIMER_COUNT]);

impl Timers {
    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at;
    }

    fn is_due(&self, t: Timer, now: Instant) -> bool {
        self.0[t as usize].is_some_and(|at| at <= now)
    }

    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    fn clear(&mut self) {
        self.0 = [None; TIMER_COUNT];
    }
}

/// Transaction ids: fixed, since the dialogue sends each command once.
mod txn {
    pub(super) const CONNECT: f64 = 1.0;
    pub(super) const RELEASE_STREAM: f64 = 2.0;
    pub(super) const FC_PUBLISH: f64 = 3.0;
    pub(super) const CREATE_STREAM: f64 = 4.0;
    pub(super) const PUBLISH: f64 = 5.0;
}

/// One client connection: see the [module docs](self).
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    phase: Phase,
    /// Encoded handshake, control and command bytes for the server, in
    /// order; they go before any queued media.
    outbound: Vec<Bytes>,
    /// Bytes in `outbound`, for [`MAX_CONTROL_BYTES`].
    outbound_bytes: usize,
    /// Media and data waiting for the socket, under the real-time policy;
    /// encoded only when handed out, so the encoder's header state follows
    /// the order the server sees.
    backlog: Backlog,
    /// The latest time the session was told: judges the backlog in
    /// [`ClientSession::poll_transmit`], which has no time parameter.
    now: Instant,
    /// Chunk-stream bytes queued before the handshake completed: they may
    /// only follow C2.
    held: Vec<Bytes>,
    events: VecDeque<ClientEvent>,
    /// The message stream `createStream` gave us (0 until then).
    stream_id: u32,
    /// When the publish or play must have started (`None`: never).
    start_deadline: Option<Instant>,
    timers: Timers,
    /// When the session started: the zero of ping timestamps.
    started: Instant,
    /// When the server last sent anything (handshake included).
    last_input: Instant,
    /// When the last ping went out, while the server stays silent.
    last_ping: Option<Instant>,
    error: Option<ClientError>,
    /// What the server stated about Enhanced RTMP in its `connect` result.
    server_caps: EnhancedCaps,
}

impl ClientSession {
    /// Starts a connection opened at `now`: queues C0+C1, and Set Chunk Size
    /// plus `connect` to follow C2.
    pub fn new(now: Instant, config: ClientConfig, entropy: &mut dyn Entropy) -> Self {
        let mut handshake = ClientHandshake::new(now, config.handshake.clone(), entropy);
        let mut outbound = Vec::new();
        while let Some(b) = handshake.poll_transmit() {
            outbound.push(b);
        }
        let mut encoder = ChunkEncoder::new();
        let mut held = Vec::new();
        encoder.set_chunk_size(config.out_chunk_size, &mut held);
        let mut session = ClientSession {
            start_deadline: now.checked_add(config.start_timeout),
            timers: Timers::default(),
            started: now,
            last_input: now,
            last_ping: None,
            decoder: ChunkDecoder::new(config.limits),
            backlog: Backlog::new(config.real_time.max_backlog_bytes),
            now,
            outbound_bytes: 0,
            config,
            handshake,
            encoder,
            phase: Phase::Handshake,
            outbound,
            held,
            events: VecDeque::new(),
            stream_id: 0,
            error: None,
            server_caps: EnhancedCaps::default(),
        };
        let connect = Command::Connect(Connect {
            transaction_id: txn::CONNECT,
            properties: session.config.connect_object(),
            args: session.config.connect_args.clone(),
        });
        let message = Message::Command {
            encoding: Encoding::Amf0,
            command: connect,
        };
        // Only the embedder's connect arguments can fail to encode (an AMF
        // reference to nothing): a session that cannot connect says so now
        // rather than at the start deadline.
        match message.to_raw(csid::COMMAND, MediaTime::ZERO, 0) {
            Ok(raw) => session.encoder.write(&raw, &mut session.held),
            Err(e) => {
                session.fail(ClientError::Config(format!("connect does not encode: {e}")));
            }
        }
        session.settle();
        session
    }

    // ---- getters --------------------------------------------------------

    /// What the server stated about Enhanced RTMP v2 in its `connect`
    /// result (`fourCcList`, FourCC info maps, `capsEx`); empty before
    /// [`ClientEvent::Connected`] or from a legacy server.
    pub fn server_caps(&self) -> &EnhancedCaps {
        &self.server_caps
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the server confirmed the publish or play (the `connect`, for
    /// [`Role::Connect`]).
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The message stream id the server assigned, 0 before `createStream`
    /// was answered.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The protocol error that ended the session, if one did.
    pub fn error(&self) -> Option<&ClientError> {
        self.error.as_ref()
    }

    /// Bytes of the chunk stream read from the server so far (the handshake
    /// not included).
    pub fn bytes_received(&self) -> u64 {
        self.decoder.bytes_received()
    }

    /// Media frames the real-time policy abandoned because the server read
    /// too slowly (too old, over the byte budget, rest of a broken GOP),
    /// for stats; see [`ClientConfig::real_time`].
    pub fn dropped_frames(&self) -> u64 {
        self.backlog.dropped_frames()
    }

    /// Payload bytes of [`dropped_frames`](Self::dropped_frames).
    pub fn dropped_bytes(&self) -> u64 {
        self.backlog.dropped_bytes()
    }

    /// Payload bytes of media and data queued for the server and not yet
    /// handed out in a transmit: how far behind the server's reading is.
    pub fn queued_bytes(&self) -> usize {
        self.backlog.queued_bytes()
    }

    // ---- inputs ---------------------------------------------------------

    /// Feeds bytes read from the server. Media and statuses come out of
    /// [`poll_event`](Self::poll_event); replies (acknowledgements, pongs,
    /// the next command of the dialogue) out of
    /// [`poll_transmit`](Self::poll_transmit).
    ///
    /// # Errors
    ///
    /// The first protocol error the server made; the session is then closed
    /// (a [`ClientEvent::Closed`] is queued) and the error is sticky.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), ClientError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.tick(now);
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if !data.is_empty() {
            self.last_input = self.now;
            self.last_ping = None;
        }
        let result = self.feed(data);
        if result.is_ok() && self.outbound_bytes > MAX_CONTROL_BYTES {
            self.outbound.clear();
            self.outbound_bytes = 0;
            return Err(self.fail(ClientError::SlowPeer("replies to the server piled up")));
        }
        self.settle();
        result
    }

    /// The server closed the connection: the session ends, and what was
    /// queued for it is forgotten.
    pub fn handle_eof(&mut self, now: Instant) {
        self.tick(now);
        self.end("the server closed the connection");
    }

    /// Checks the deadlines: the handshake's, the start of publish or play,
    /// the ping of a silent server and giving up on a dead one. Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Handshake {
            if let Err(e) = self.handshake.handle_timeout(now) {
                self.fail(e.into());
                return;
            }
        }
        if self.timers.is_due(Timer::DeadPeer, now) {
            self.fail(ClientError::PeerDead(self.config.dead_peer_timeout));
            return;
        }
        if self.timers.is_due(Timer::Start, now) {
            self.end("the server did not start the stream in time");
            return;
        }
        if self.timers.is_due(Timer::Ping, now) {
            // Milliseconds since the session started, wrapping like every
            // RTMP timestamp.
            let stamp = now.saturating_duration_since(self.started).as_millis() as u32;
            self.send_control(&Message::UserControl(UserControl::PingRequest(stamp)));
            self.last_ping = Some(now);
        }
        self.settle();
    }

    // ---- application mutators --------------------------------------------

    /// Queues a frame of the published stream at `now`, under the real-time
    /// policy of [`ClientConfig::real_time`]: the relay push path, fed with
    /// the core's own [`Frame`]s (their `keyframe` and `config` flags say
    /// what may be dropped). The frame waits until
    /// [`poll_transmit`](Self::poll_transmit) hands it out, which a runtime
    /// does as the socket takes bytes; if the server reads slower than the
    /// stream, audio and video too old to be worth sending are abandoned
    /// (video until its next keyframe), so memory stays bounded and the
    /// server gets what is current. Decoder configuration and data are never
    /// dropped. A data frame's body (handler first, as a player receives
    /// it) is sent behind `@setDataFrame`, so the server keeps it for late
    /// joiners, as it would have from the original publisher.
    ///
    /// Memory is bounded by bytes and by entries: droppable media by
    /// `max_backlog_bytes`, what is never dropped by the larger of 1 MiB and
    /// that budget, and the number of queued messages by a fixed cap (16 Ki).
    /// Media payloads are not copied: they are the broker's shared `Bytes`,
    /// alive for at most their lifetime here. Configuration and data (small,
    /// never dropped, so they may wait longest) are copied into their own
    /// allocation, so a waiting one never pins a larger receive buffer and
    /// the bound counts their true size.
    ///
    /// # Errors
    ///
    /// [`SendError::NotPublishing`] before the server confirmed the publish,
    /// [`SendError::Closed`] after the end, [`SendError::TooLong`] for a
    /// payload RTMP cannot frame. If never-dropped frames pile up past
    /// their bound (the server stopped reading altogether) the session
    /// closes with [`ClientError::SlowPeer`] and this returns
    /// [`SendError::Closed`].
    pub fn send_frame(&mut self, now: Instant, mut frame: Frame) -> Result<(), SendError> {
        self.tick(now);
        self.check_publishing()?;
        if frame.kind == FrameKind::Data {
            frame.payload = set_data_frame(&frame.payload);
        } else if frame.config {
            // Never dropped, so it may wait longest: a zero-copy slice would
            // pin the whole receive buffer it came from, which the queue's
            // byte bound cannot see. Configuration is small and rare.
            frame.payload = Bytes::copy_from_slice(&frame.payload);
        }
        if frame.payload.len() > crate::chunk::MAX_MESSAGE_LEN {
            return Err(SendError::TooLong(frame.payload.len()));
        }
        let pushed = self.backlog.push_frame(self.now, self.stream_id, frame);
        self.overflowed(pushed)
    }

    /// Queues an audio or video message (an FLV tag body) on the published
    /// stream, never to be dropped: for a caller that paces itself (the
    /// load tool) or must deliver everything. It keeps its place among
    /// frames queued with [`send_frame`](Self::send_frame). The payload is
    /// not copied: the transmit holds the caller's `Bytes` behind the chunk
    /// headers.
    ///
    /// # Errors
    ///
    /// [`SendError::NotPublishing`] before the server confirmed the publish,
    /// [`SendError::Closed`] after the end, [`SendError::TooLong`] for a
    /// payload RTMP cannot frame. What is never dropped is bounded (the
    /// larger of 1 MiB and the real-time byte budget); past that the
    /// session closes with [`ClientError::SlowPeer`] and this returns
    /// [`SendError::Closed`].
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: MediaTime,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let (csid, type_id) = match kind {
            MediaKind::Audio => (csid::AUDIO, type_id::AUDIO),
            MediaKind::Video => (csid::VIDEO, type_id::VIDEO),
        };
        self.send_stream_message(csid, type_id, timestamp, payload)
    }

    /// Queues an AMF0 data message whose body (handler first, e.g.
    /// `onMetaData` and its values, as an FLV script tag carries it) is sent
    /// behind `@setDataFrame`, so the server keeps it for late joiners.
    ///
    /// # Errors
    ///
    /// As [`send_media`](Self::send_media).
    pub fn send_data(&mut self, timestamp: MediaTime, body: &[u8]) -> Result<(), SendError> {
        self.send_stream_message(
            csid::DATA,
            type_id::DATA_AMF0,
            timestamp,
            set_data_frame(body),
        )
    }

    /// Ends the session from this side: reports [`ClientEvent::Closed`],
    /// and unpublishes or stops playing with `deleteStream`, queued behind
    /// the media still waiting, so a relay that stops hands the server
    /// what it had (still under the real-time policy). Flush
    /// [`poll_transmit`](Self::poll_transmit) before closing the socket.
    pub fn close(&mut self, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.stream_id != 0 {
            let delete = Message::Command {
                encoding: Encoding::Amf0,
                command: Command::DeleteStream {
                    transaction_id: 0.0,
                    stream_id: f64::from(self.stream_id),
                },
            };
            let queued = delete
                .to_raw(csid::COMMAND, MediaTime::ZERO, 0)
                .ok()
                .is_some_and(|raw| self.backlog.push_message(self.now, 0, raw).is_ok());
            if !queued {
                // Cannot happen (a small message; the bound is at least
                // 1 MiB), but a stuck queue must not keep the server's
                // stream alive: drop the media and say goodbye first.
                self.backlog.clear();
                self.send_message(&delete, csid::COMMAND, 0);
            }
        }
        self.phase = Phase::Closed;
        self.timers.clear();
        self.events
            .push_back(ClientEvent::Closed(reason.to_owned()));
    }

    // ---- outputs ----------------------------------------------------------

    /// The next vectored write, judged at the latest time the session was
    /// told (by any `handle_*` call or [`send_frame`](Self::send_frame)).
    /// Call it only when the socket can take bytes, and write each transmit
    /// whole before polling the next: media not yet polled is what the
    /// real-time policy can still drop. See
    /// [`poll_transmit_into`](Self::poll_transmit_into).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let mut t = Transmit::default();
        self.poll_transmit_into(self.now, &mut t).then_some(t)
    }

    /// The next vectored write into `t` (cleared first, its buffer list
    /// reused), judged at `now`; returns whether there is one. Replies and
    /// commands come first, then queued media and data in order, each
    /// frame checked against the real-time policy as it leaves the queue.
    /// A transmit carries at most about 64 KiB of media, but always whole
    /// messages: the client never abandons a message part way (no RTMP
    /// Abort is ever needed), since what matters on a relay link is that
    /// every message the server gets is complete, and one message in
    /// flight adds at most its own size of lateness.
    #[must_use]
    pub fn poll_transmit_into(&mut self, now: Instant, t: &mut Transmit) -> bool {
        self.tick(now);
        t.bufs.clear();
        t.bufs.append(&mut self.outbound);
        self.outbound_bytes = 0;
        let mut media = 0;
        while media < MAX_BATCH && t.bufs.len() < MAX_TRANSMIT_BUFS {
            let Some(next) = self.backlog.pop(self.now) else {
                break;
            };
            let raw = match next.item {
                Item::Message(raw) => raw,
                Item::Frame(frame) => frame_message(next.stream, frame),
            };
            media += raw.payload.len();
            self.encoder.write(&raw, &mut t.bufs);
        }
        !t.bufs.is_empty()
    }

    /// The next thing that happened, in order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called:
    /// the earliest of the session's deadlines; `None` once it closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- internals ----------------------------------------------------------

    /// Time passed: the latest `now` judges the backlog (times given out of
    /// order never move it back).
    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Re-arms the timer table from the session's state, after every change
    /// of it.
    fn settle(&mut self) {
        if self.phase == Phase::Closed {
            self.timers.clear();
            return;
        }
        let c = &self.config;
        let handshake = (self.phase == Phase::Handshake)
            .then(|| self.handshake.poll_timeout())
            .flatten();
        self.timers.set(Timer::Handshake, handshake);
        let start = (self.phase != Phase::Active)
            .then_some(self.start_deadline)
            .flatten();
        self.timers.set(Timer::Start, start);
        // A ping needs the chunk stream: not before the handshake is done.
        let ping = self
            .handshake
            .is_complete()
            .then(|| {
                let heard = self
                    .last_ping
                    .map_or(self.last_input, |p| p.max(self.last_input));
                heard.checked_add(c.ping_interval)
            })
            .flatten();
        self.timers.set(Timer::Ping, ping);
        self.timers.set(
            Timer::DeadPeer,
            self.last_input.checked_add(c.dead_peer_timeout),
        );
    }

    /// Feeds server bytes through the handshake and the chunk stream.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), ClientError> {
        if self.phase == Phase::Handshake {
            let used = match self.handshake.handle_input(data) {
                Ok(used) => used,
                Err(e) => return Err(self.fail(e.into())),
            };
            while let Some(b) = self.handshake.poll_transmit() {
                self.push_outbound(b);
            }
            if self.handshake.is_complete() {
                self.phase = Phase::Connecting;
                for b in std::mem::take(&mut self.held) {
                    self.push_outbound(b);
                }
            }
            data = data.get(used..).unwrap_or_default();
        }
        if data.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.decoder.handle_input(data) {
            return Err(self.fail(e.into()));
        }
        loop {
            match self.decoder.poll_message() {
                Ok(Some(raw)) => {
                    if let Err(e) = self.handle_message(raw) {
                        return Err(self.fail(e));
                    }
                    if self.phase == Phase::Closed {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            }
        }
        while let Some(sequence) = self.decoder.poll_acknowledgement() {
            self.send_control(&Message::Acknowledgement { sequence });
        }
        Ok(())
    }

    fn fail(&mut self, e: ClientError) -> ClientError {
        self.error = Some(e.clone());
        // Nobody will read queued media: the connection is broken.
        self.backlog.clear();
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(ClientEvent::Closed(e.to_string()));
        }
        self.timers.clear();
        e
    }

    /// Ends the session because of the server (a refusal, its close, a
    /// deadline): queued media is forgotten, `deleteStream` still goes.
    fn end(&mut self, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.backlog.clear();
        if self.stream_id != 0 {
            self.command(
                0,
                Command::DeleteStream {
                    transaction_id: 0.0,
                    stream_id: f64::from(self.stream_id),
                },
            );
        }
        self.phase = Phase::Closed;
        self.timers.clear();
        self.events
            .push_back(ClientEvent::Closed(reason.to_owned()));
    }

    /// Whether media may be queued now.
    fn check_publishing(&self) -> Result<(), SendError> {
        match (self.phase, self.config.role) {
            (Phase::Closed, _) => Err(SendError::Closed),
            (Phase::Active, Role::Publish) => Ok(()),
            _ => Err(SendError::NotPublishing),
        }
    }

    /// The outcome of queueing something never dropped: past its bound the
    /// server is not reading, and the session closes.
    fn overflowed(&mut self, pushed: Result<(), Overflow>) -> Result<(), SendError> {
        if pushed.is_err() {
            self.fail(ClientError::SlowPeer(
                "configuration, data or unpaced media piled up",
            ));
            return Err(SendError::Closed);
        }
        Ok(())
    }

    fn send_stream_message(
        &mut self,
        csid: u32,
        type_id: u8,
        timestamp: MediaTime,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.check_publishing()?;
        if payload.len() > crate::chunk::MAX_MESSAGE_LEN {
            return Err(SendError::TooLong(payload.len()));
        }
        let raw = RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id: self.stream_id,
            payload,
        };
        let pushed = self.backlog.push_message(self.now, self.stream_id, raw);
        self.overflowed(pushed)
    }

    fn command(&mut self, stream: u32, command: Command) {
        let message = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        self.send_message(&message, csid::COMMAND, stream);
    }

    fn send_control(&mut self, message: &Message) {
        self.send_message(message, csid::CONTROL, 0);
    }

    fn send_message(&mut self, message: &Message, csid: u32, stream: u32) {
        // Every message the session builds itself encodes: they are
        // commands and control messages of fixed, small shapes.
        let Ok(raw) = message.to_raw(csid, MediaTime::ZERO, stream) else {
            return;
        };
        if !self.handshake.is_complete() {
            self.encoder.write(&raw, &mut self.held);
            return;
        }
        let start = self.outbound.len();
        self.encoder.write(&raw, &mut self.outbound);
        self.outbound_bytes += self.outbound[start..].iter().map(Bytes::len).sum::<usize>();
    }

    fn push_outbound(&mut self, b: Bytes) {
        self.outbound_bytes += b.len();
        self.outbound.push(b);
    }

    fn handle_message(&mut self, raw: RawMessage) -> Result<(), ClientError> {
        // Media is the hot path of a player: no decoding beyond the type.
        // node-media-server sends a player's media and metadata on message
        // stream 0 rather than the played stream; FFmpeg accepts that, and
        // a client plays one stream at most, so both mean "the stream".
        let ours =
            self.phase == Phase::Active && (raw.stream_id == self.stream_id || raw.stream_id == 0);
        match raw.type_id {
            type_id::AUDIO | type_id::VIDEO => {
                if ours {
                    let kind = if raw.type_id == type_id::AUDIO {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    self.events.push_back(ClientEvent::Media {
                        kind,
                        timestamp: raw.timestamp,
                        payload: raw.payload,
                    });
                }
                return Ok(());
            }
            type_id::DATA_AMF0 if ours => {
                self.events.push_back(ClientEvent::Data {
                    timestamp: raw.timestamp,
                    body: raw.payload,
                });
                return Ok(());
            }
            _ => {}
        }
        match Message::decode(&raw)? {
            Message::UserControl(UserControl::PingRequest(t)) => {
                self.send_control(&Message::UserControl(UserControl::PingResponse(t)));
            }
            Message::Command { command, .. } => self.handle_command(command)?,
            // AMF3-framed data (type 15): hand over the AMF0 body.
            Message::Data {
                data: Data::Other { body, .. } | Data::SetDataFrame { body, .. },
                ..
            } if ours => {
                self.events.push_back(ClientEvent::Data {
                    timestamp: raw.timestamp,
                    body,
                });
            }
            // Set Chunk Size, Window Acknowledgement Size and Abort are
            // applied by the chunk decoder; the rest needs nothing.
            _ => {}
        }
        Ok(())
    }

    fn handle_command(&mut self, command: Command) -> Result<(), ClientError> {
        match command {
            Command::Result {
                transaction_id,
                command_object,
                args,
            } => {
                if transaction_id == txn::CONNECT && self.phase == Phase::Connecting {
                    self.server_caps = EnhancedCaps::from_object(&command_object);
                }
                self.handle_result(transaction_id, &args)
            }
            Command::Error {
                transaction_id,
                args,
                ..
            } => {
                let status = status_of(args.first());
                self.events.push_back(ClientEvent::Status(status.clone()));
                // Replies to releaseStream and FCPublish are advisory: many
                // servers answer them with errors and carry on.
                if transaction_id == txn::RELEASE_STREAM || transaction_id == txn::FC_PUBLISH {
                    return Ok(());
                }
                self.end(&format!("the server refused: {}", status.code));
                Ok(())
            }
            Command::OnStatus { info } => {
                let status = status_of(Some(&info));
                if status.code == "NetConnection.Connect.ReconnectRequest" {
                    let tc_url = info.get("tcUrl").and_then(Value::as_str).map(str::to_owned);
                    self.events.push_back(ClientEvent::ReconnectRequest {
                        tc_url,
                        description: status.description,
                    });
                    return Ok(());
                }
                let started = match (self.phase, self.config.role, status.code.as_str()) {
                    (Phase::Starting, Role::Publish, "NetStream.Publish.Start") => {
                        Some(ClientEvent::Publishing)
                    }
                    (Phase::Starting, Role::Play, "NetStream.Play.Start") => {
                        Some(ClientEvent::Playing)
                    }
                    _ => None,
                };
                let fatal = status.level == "error";
                let code = status.code.clone();
                self.events.push_back(ClientEvent::Status(status));
                if let Some(event) = started {
                    self.phase = Phase::Active;
                    if self.config.role == Role::Publish {
                        self.backlog
                            .open_lane(self.stream_id, self.config.real_time);
                    }
                    self.events.push_back(event);
                } else if fatal {
                    self.end(&format!("the server reported {code}"));
                }
                Ok(())
            }
            // onBWDone, onFCPublish, |RtmpSampleAccess and friends.
            _ => Ok(()),
        }
    }

    fn handle_result(&mut self, transaction_id: f64, args: &[Value]) -> Result<(), ClientError> {
        if transaction_id == txn::CONNECT && self.phase == Phase::Connecting {
            self.events.push_back(ClientEvent::Connected);
            if self.config.role == Role::Connect {
                self.phase = Phase::Active;
                return Ok(());
            }
            if self.config.role == Role::Publish && self.config.release_stream {
                let name = self.config.stream_name();
                self.command(
                    0,
                    Command::ReleaseStream {
                        transaction_id: txn::RELEASE_STREAM,
                        name: name.clone(),
                    },
                );
                self.command(
                    0,
                    Command::FcPublish {
                        transaction_id: txn::FC_PUBLISH,
                        name,
                    },
                );
            }
            self.command(
                0,
                Command::CreateStream {
                    transaction_id: txn::CREATE_STREAM,
                },
            );
            self.phase = Phase::CreatingStream;
        } else if transaction_id == txn::CREATE_STREAM && self.phase == Phase::CreatingStream {
            let id = args
                .iter()
                .find_map(Value::as_f64)
                .ok_or(ClientError::Protocol(
                    "createStream result without a stream id",
                ))?;
            if !(1.0..=f64::from(u32::MAX)).contains(&id) || id.fract() != 0.0 {
                return Err(ClientError::Protocol(
                    "createStream result with a bad stream id",
                ));
            }
            // In range and integral, checked above.
            self.stream_id = id as u32;
            self.start();
        }
        Ok(())
    }

    /// Sends `publish` or `play` on the new stream.
    fn start(&mut self) {
        let stream = self.stream_id;
        let name = self.config.stream_name();
        match self.config.role {
            Role::Publish => self.command(
                stream,
                Command::Publish {
                    transaction_id: txn::PUBLISH,
                    name: Some(name),
                    kind: PublishKind::Live,
                },
            ),
            Role::Connect => {}
            Role::Play => {
                self.command(
                    stream,
                    Command::Play(Play {
                        transaction_id: 0.0,
                        name,
                        start: -2.0,
                        duration: -1.0,
                        reset: true,
                        options: None,
                    }),
                );
                let millis = self.config.buffer_ms;
                self.send_control(&Message::UserControl(UserControl::SetBufferLength {
                    stream_id: stream,
                    millis,
                }));
            }
        }
        self.phase = Phase::Starting;
    }
}

/// The level, code and description of an info object (empty strings for
/// members the server left out).
fn status_of(info: Option<&Value>) -> Status {
    let member = |key: &str| {
        info.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Status {
        level: member("level"),
        code: member("code"),
        description: member("description"),
    }
}

/// `body` (an AMF0 data body, handler first) behind the AMF0 string
/// `@setDataFrame`, which tells a server to keep it for late joiners.
fn set_data_frame(body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(16 + body.len());
    // The AMF0 string "@setDataFrame": marker 0x02, u16 length, bytes.
    b.put_u8(0x02);
    b.put_u16(13);
    b.put_slice(b"@setDataFrame");
    b.put_slice(body);
    b.freeze()
}

/// A published frame as the message it travels as on `stream`.
fn frame_message(stream: u32, frame: Frame) -> RawMessage {
    let (csid, type_id) = match frame.kind {
        FrameKind::Audio => (csid::AUDIO, type_id::AUDIO),
        FrameKind::Video => (csid::VIDEO, type_id::VIDEO),
        FrameKind::Data => (csid::DATA, type_id::DATA_AMF0),
    };
    RawMessage {
        csid,
        timestamp: frame.timestamp,
        type_id,
        stream_id: stream,
        payload: frame.payload,
    }
}
