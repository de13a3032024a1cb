//! The knobs of one connection: [`SessionConfig`] and its real-time
//! treatment of players, [`RealTimeConfig`].

use std::time::Duration;

use crate::auth::AuthKeys;
use crate::chunk::DecoderLimits;
use crate::handshake::HandshakeConfig;

/// Knobs of one connection. The defaults interoperate with FFmpeg,
/// librtmp (rtmpdump, OBS), GStreamer and Flash-era clients.
#[derive(Debug, Clone, PartialEq)]
// `repr(C)` keeps the declared order: the knobs a session reads for every
// frame (merging, timers) share its first cache line.
#[repr(C)]
pub struct SessionConfig {
    /// Adaptive write merging (the throughput mode), its time bound: how
    /// long a player's media may wait so that what arrives meanwhile goes
    /// out in the same write (SRS's merged write). Zero (the default)
    /// writes every message as soon as it arrives. On loopback, one
    /// `writev` per message per player is most of a server's CPU: with
    /// 500 players of a 2.7 Mbit/s stream a 20 ms window cut it by ~30 %,
    /// 50 ms by ~40 %, at up to that much added latency. Held media goes
    /// when its oldest message is this old or [`Self::merge_bytes`] are
    /// queued, whichever comes first; replies, statuses and the start of
    /// a keyframe never wait (a joining or recovering player decodes from
    /// a keyframe, so holding one delays the picture, not just a frame).
    pub merge_window: Duration,
    /// Adaptive write merging, its size bound: held media goes in one write
    /// as soon as this many bytes are queued (default 64 KiB, about
    /// 200 ms of a 2.7 Mbit/s stream, so at common bitrates the time bound
    /// decides). A write while merging carries up to this much, or the
    /// pacing budget if larger. Only used with a non-zero
    /// [`Self::merge_window`].
    pub merge_bytes: usize,
    /// A ping request is sent after this long without hearing from the peer.
    pub ping_interval: Duration,
    /// The peer is declared dead after this long without a byte from it.
    pub dead_peer_timeout: Duration,
    /// A publisher that sends no media for this long is disconnected.
    pub publish_idle_timeout: Duration,
    /// Handshake versions and deadline.
    pub handshake: HandshakeConfig,
    /// Bounds on what the peer can make the chunk decoder hold.
    pub decoder_limits: DecoderLimits,
    /// Largest command or data message accepted (AMF decoding cost).
    pub max_amf_message_len: usize,
    /// Deepest nesting of objects and arrays accepted in a command or data
    /// message; at most [`crate::amf::MAX_DEPTH`], the stack-safety ceiling.
    pub max_amf_depth: usize,
    /// Chunk size announced and used for everything we send. A large
    /// message goes out chunk by chunk, and a chunk is the smallest piece
    /// of a message that can be abandoned (RTMP Abort) when its finish-by
    /// deadline passes; 4096, as FFmpeg, OBS and nginx-rtmp use, keeps that
    /// piece a fraction of a second even on a slow link, at one header
    /// byte per chunk.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer, and the Set Peer
    /// Bandwidth size.
    pub window_ack_size: u32,
    /// Message streams (createStream) one connection may hold at once; at
    /// most [`MAX_STREAMS`](super::MAX_STREAMS) (a larger value acts as it).
    pub max_streams: u32,
    /// The time from the end of the handshake allowed for `connect`.
    pub connect_timeout: Duration,
    /// Default real-time treatment of each player's backlog; a player may
    /// override it in its `play` options within [`RealTimeConfig::cap`].
    pub real_time: RealTimeConfig,
    /// Most `relay` and `broadcast` commands one connection may send per
    /// second. Each costs the broker an entry per recipient (every member
    /// of the App for a broadcast), so a client sending them as fast as it
    /// can write is closed
    /// ([`SessionError::Flood`](super::SessionError::Flood)). TC chat and
    /// signalling apps send a few per second.
    pub max_relays_per_second: u32,
    /// Most bytes of `relay` and `broadcast` bodies one connection may
    /// send per second; past it, closed as for
    /// [`SessionConfig::max_relays_per_second`].
    pub max_relay_bytes_per_second: usize,
    /// The `fmsVer` property sent in the `connect` result.
    pub fms_version: String,
    /// TC's simplified RTMP dialect, for clients that mishandle parts of
    /// the protocol: every message starts with a full (type 0) chunk
    /// header, the chunk size stays at the protocol's 128 (no Set Chunk
    /// Size) and no Set Peer Bandwidth is sent. See docs/tc-parity.md.
    pub simplified_rtmp: bool,
    /// TC authentication master keys; when any is set, `connect` must carry
    /// a token made with one of them (see [`crate::auth`]).
    pub auth_keys: AuthKeys,
    /// Sent as `serverInfo` in the `connect` result's info object (TC), so
    /// an operator can tell clients which server or build they reached.
    pub server_info: Option<String>,
    /// Whether a `connect` that passed the session's own checks waits for
    /// an outside decision
    /// ([`SessionEvent::ConnectRequest`](crate::event::SessionEvent::ConnectRequest),
    /// answered with [`Session::approve_connect`](super::Session::approve_connect)
    /// / [`Session::deny_connect`](super::Session::deny_connect)) instead of
    /// succeeding at once. The server sets it from its approval settings.
    pub hold_connect: bool,
    /// The highest publish priority this connection may ask for with
    /// `?priority=N` (higher asks are capped to it), and the bound below
    /// which its `releaseStream` evicts a live publish. 0, the default,
    /// means a live name cannot be taken over and `releaseStream` evicts
    /// nobody (see docs/tc-parity.md).
    pub max_publish_priority: u32,
    /// Settings that differ per App (an operator's `[app.NAME]` sections),
    /// applied when `connect` names the App: its auth keys replace
    /// [`Self::auth_keys`] for the token check, its real-time treatment
    /// replaces [`Self::real_time`] for the connection's players. Shared,
    /// so every session's copy of the configuration costs a pointer.
    pub apps: std::sync::Arc<std::collections::BTreeMap<String, AppSettings>>,
    /// Limits of a TC-over-RTWebSocket session's endpoint
    /// ([`crate::session::Session::new_rtws`]): flows, message and buffer
    /// sizes, send queues. The default takes a message as long as the
    /// chunk decoder does (an RTMP message plus its 5-byte TC header), so a
    /// browser publisher's keyframe fits exactly where an RTMP one would.
    pub rtws: crate::rtws::RtwsConfig,
    /// This server's node id and hop limit for relay chains: a relay's
    /// `connect` whose chain names this server, or is at the limit, is
    /// refused (see [`crate::via`]).
    pub loop_guard: crate::via::LoopGuard,
}

/// [`SessionConfig::rtws`]'s default: the endpoint's, with room for the
/// largest RTMP message, and receive flows bounded to what a client of
/// [`SessionConfig::max_streams`] streams can use (a control flow and up
/// to three per stream, with room to spare).
fn default_rtws() -> crate::rtws::RtwsConfig {
    crate::rtws::RtwsConfig {
        max_message_size: DecoderLimits::default().max_message_len + 5,
        max_recv_flows: 64,
        ..crate::rtws::RtwsConfig::default()
    }
}

/// What one App changes of the server-wide settings; `None` keeps them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppSettings {
    /// The master keys a `connect` to this App must carry a token of
    /// (an empty set turns authentication off for it).
    pub auth_keys: Option<AuthKeys>,
    /// The default real-time treatment of this App's players (their own
    /// play options still apply within its caps).
    pub real_time: Option<RealTimeConfig>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            handshake: HandshakeConfig::default(),
            decoder_limits: DecoderLimits::default(),
            max_amf_message_len: crate::message::MAX_AMF_MESSAGE_LEN,
            max_amf_depth: crate::amf::MAX_DEPTH,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_streams: 16,
            connect_timeout: Duration::from_secs(10),
            publish_idle_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            dead_peer_timeout: Duration::from_secs(60),
            real_time: RealTimeConfig::default(),
            merge_window: Duration::ZERO,
            merge_bytes: 64 * 1024,
            max_relays_per_second: 100,
            max_relay_bytes_per_second: 1024 * 1024,
            fms_version: "FMS/3,5,7,7009".to_owned(),
            simplified_rtmp: false,
            auth_keys: AuthKeys::default(),
            server_info: None,
            hold_connect: false,
            max_publish_priority: 0,
            apps: std::sync::Arc::default(),
            rtws: default_rtws(),
            loop_guard: crate::via::LoopGuard::default(),
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
    /// Extra time, past its lifetime, that a message whose transmission
    /// already started gets to finish (TC's `finishByMargin`). Large
    /// messages are handed out chunk by chunk; one still partly unsent at
    /// arrival + lifetime + this margin is abandoned with an RTMP Abort
    /// message, so the player's chunk decoder drops the partial message
    /// and stays in step (video also skips to its next keyframe).
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
        let cap = |default: Duration| default.saturating_mul(2).max(Duration::from_secs(10));
        RealTimeConfig {
            audio_lifetime: cap(self.audio_lifetime),
            video_lifetime: cap(self.video_lifetime),
            finish_by_margin: cap(self.finish_by_margin),
            // Expiring the previous GOP only ever sends less: always allowed.
            expire_previous_gop: true,
            // Not a player option: the server's budget stands.
            max_backlog_bytes: self.max_backlog_bytes,
        }
    }
}
