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

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chunk::DecoderLimits;
use crate::entropy::Entropy;
use crate::event::{BrokerEvent, SessionEvent};
use crate::handshake::HandshakeConfig;

/// Knobs of one connection. The defaults interoperate with FFmpeg,
/// librtmp (rtmpdump, OBS), GStreamer and Flash-era clients.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Handshake versions and deadline.
    pub handshake: HandshakeConfig,
    /// Bounds on what the peer can make the chunk decoder hold.
    pub decoder_limits: DecoderLimits,
    /// Largest command or data message accepted (AMF decoding cost).
    pub max_amf_message_len: usize,
    /// Chunk size announced and used for everything we send. Large, so a
    /// video frame costs few chunk headers; every known client accepts it.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer, and the Set Peer
    /// Bandwidth size.
    pub window_ack_size: u32,
    /// Message streams (createStream) one connection may hold at once.
    pub max_streams: u32,
    /// The time from the end of the handshake allowed for `connect`.
    pub connect_timeout: Duration,
    /// A publisher that sends no media for this long is disconnected.
    pub publish_idle_timeout: Duration,
    /// A ping request is sent after this long without hearing from the peer.
    pub ping_interval: Duration,
    /// The peer is declared dead after this long without a byte from it.
    pub dead_peer_timeout: Duration,
    /// Default real-time treatment of each player's backlog; a player may
    /// override it in its `play` options within [`RealTimeConfig::cap`].
    pub real_time: RealTimeConfig,
    /// The `fmsVer` property sent in the `connect` result.
    pub fms_version: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            handshake: HandshakeConfig::default(),
            decoder_limits: DecoderLimits::default(),
            max_amf_message_len: crate::message::MAX_AMF_MESSAGE_LEN,
            out_chunk_size: 60_000,
            window_ack_size: 2_500_000,
            max_streams: 16,
            connect_timeout: Duration::from_secs(10),
            publish_idle_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            dead_peer_timeout: Duration::from_secs(60),
            real_time: RealTimeConfig::default(),
            fms_version: "FMS/3,5,7,7009".to_owned(),
        }
    }
}

/// How a player's backlog is kept real-time: media older than its lifetime
/// is abandoned rather than sent late, and the backlog never exceeds a byte
/// budget, so a slow player can never make server memory grow with time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RealTimeConfig {
    /// Audio not sent within this long of arriving is abandoned.
    pub audio_lifetime: Duration,
    /// Video not sent within this long of arriving is abandoned, together
    /// with the rest of its GOP (the player resumes at the next keyframe).
    pub video_lifetime: Duration,
    /// Extra time a message whose transmission already started gets to
    /// finish.
    pub finish_by_margin: Duration,
    /// When a new keyframe arrives, drop the unsent rest of the previous GOP
    /// at once.
    pub expire_previous_gop: bool,
    /// Most bytes of media held for one player; past it the oldest droppable
    /// media is abandoned. Configuration frames and data keyframes are never
    /// dropped and not counted against it.
    pub max_backlog_bytes: usize,
}

impl Default for RealTimeConfig {
    fn default() -> Self {
        RealTimeConfig {
            audio_lifetime: Duration::from_secs(2),
            video_lifetime: Duration::from_secs(3),
            finish_by_margin: Duration::from_millis(500),
            expire_previous_gop: false,
            max_backlog_bytes: 8 * 1024 * 1024,
        }
    }
}

impl RealTimeConfig {
    /// The most a player may ask for in its `play` options: each duration is
    /// capped at 10 s or twice its default, whichever is greater (TC rule).
    pub fn cap(&self) -> RealTimeConfig {
        todo!()
    }
}

/// One vectored write: the buffers in order. Chunk headers are small owned
/// buffers; media payloads are shared with every other player.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transmit {
    /// Buffers to write back to back.
    pub bufs: Vec<Bytes>,
}

impl Transmit {
    /// Total bytes in this write.
    pub fn len(&self) -> usize {
        self.bufs.iter().map(Bytes::len).sum()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.bufs.iter().all(Bytes::is_empty)
    }
}

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
}

/// One server-side RTMP connection; see the module docs for the run loop.
#[derive(Debug)]
pub struct Session {
    _private: (),
}

impl Session {
    /// Starts a session whose handshake deadline runs from `now`. `entropy`
    /// provides the handshake bytes and the connection ID.
    pub fn new(now: Instant, config: SessionConfig, entropy: &mut dyn Entropy) -> Self {
        let _ = (now, config, entropy);
        todo!()
    }

    /// The server-assigned connection ID (random hex), sent to the client in
    /// the `connect` result as `connectionID`.
    pub fn connection_id(&self) -> &str {
        todo!()
    }

    /// The App this connection joined, once `connect` succeeded.
    pub fn app(&self) -> Option<&str> {
        todo!()
    }

    /// Why the session closed (or is closing), if it is.
    pub fn error(&self) -> Option<&SessionError> {
        todo!()
    }

    /// True once [`SessionEvent::Closed`] has been polled and nothing is left
    /// to transmit: the runtime may drop the socket.
    pub fn is_closed(&self) -> bool {
        todo!()
    }

    /// Bytes received from the peer. A protocol error moves the session to
    /// closing (it still flushes the error status it owes); the returned
    /// error is the same as [`Session::error`].
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        let _ = (now, data);
        todo!()
    }

    /// The peer closed its side (read returned 0): the session closes.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// A decision, status or frame from the broker for this session.
    pub fn handle_broker_event(&mut self, now: Instant, event: BrokerEvent) {
        let _ = (now, event);
        todo!()
    }

    /// Deadlines have passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The server closes this session (shutdown, eviction): it sends a
    /// status where the protocol has one, then closes.
    pub fn close(&mut self, now: Instant, reason: &str) {
        let _ = (now, reason);
        todo!()
    }

    /// The next vectored write, if any; call only when the socket can take
    /// it (see module docs).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let _ = now;
        todo!()
    }

    /// The next event for the broker.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        todo!()
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
