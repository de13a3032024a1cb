//! The typed events that connect the two machines of a live server: one
//! [`crate::session::Session`] per connection and one [`crate::broker::Broker`]
//! per server.
//!
//! Sessions never see each other and the broker never sees bytes on the wire.
//! A runtime drains [`SessionEvent`]s from each session into the broker with
//! [`crate::broker::Broker::handle_event`], and hands each
//! [`BrokerEvent`] the broker addresses to a session back to that session
//! with [`crate::session::Session::handle_broker_event`]. A single-threaded
//! runtime owns both directly; a multi-threaded one keeps the broker behind a
//! short lock and lets each connection's task own its session.
//!
//! Publish and play requests are decisions: the session asks with
//! [`SessionEvent::Publish`] or [`SessionEvent::Play`] and holds its answer
//! until the broker replies with [`BrokerEvent::PublishAccepted`] /
//! [`BrokerEvent::PublishRejected`] or [`BrokerEvent::PlayAccepted`] /
//! [`BrokerEvent::PlayRejected`]. Each request carries a sequence number of
//! its session that the answer echoes, so an answer that arrives late (an
//! embedder's HTTP callback) never lands on a newer request of the same
//! message stream. Live playback does not fail for want of a publisher: an
//! accepted player waits for one.

use bytes::Bytes;

use crate::message::{PublishKind, Value};
use crate::time::MediaTime;

/// Longest [`Denial`] description sent to a client; longer ones are cut.
pub const MAX_DENIAL_DESCRIPTION: usize = 256;

/// A connection as the broker knows it. Handed out by
/// [`crate::broker::Broker::open_session`] so ids never collide, and never
/// reused by one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What kind of message a [`Frame`] carries; decides the RTMP message type a
/// subscriber receives and how the real-time policy may drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// RTMP audio (type 8), legacy or Enhanced RTMP.
    Audio,
    /// RTMP video (type 9), legacy or Enhanced RTMP.
    Video,
    /// An AMF0 data message (type 18) forwarded as is (`onMetaData` sent
    /// directly, `onTextData`, `onCuePoint`...), or the body of a data
    /// keyframe set with `@setDataFrame`.
    Data,
}

/// One message of a live stream, as a publisher's session hands it to the
/// broker and as the broker hands it to each subscriber's session.
///
/// The payload is shared by reference count: fan-out to any number of
/// subscribers clones the [`Bytes`] handle, never the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Audio, video or data.
    pub kind: FrameKind,
    /// From a publisher: the timestamp as the chunk layer decoded it. To a
    /// subscriber: the timestamp to write on the wire (already rebased and
    /// stitched by the broker, or as is for `asis:` players).
    pub timestamp: MediaTime,
    /// The message payload exactly as a subscriber receives it.
    pub payload: Bytes,
    /// A video frame a decoder can start from (legacy frame type 1, or an
    /// Enhanced RTMP key frame), including in multitrack messages.
    pub keyframe: bool,
    /// Decoder configuration (AVC/HEVC/AV1 sequence header, AAC
    /// AudioSpecificConfig, Opus/FLAC headers, multitrack config): a player
    /// cannot decode without it, so it is never dropped and a late joiner
    /// always gets the latest one.
    pub config: bool,
}

impl Frame {
    /// Whether the real-time policy may abandon this frame when its
    /// subscriber falls behind. Decoder configuration and data never are.
    pub fn is_droppable(&self) -> bool {
        !self.config && self.kind != FrameKind::Data
    }
}

/// The playback request a session forwards to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayRequest {
    /// The session's number for this request, echoed in the answer.
    pub seq: u64,
    /// The name as the player sent it without its `?query`, prefixes
    /// included (`asis:`, `sha256:`); the broker interprets them. An
    /// `asis` flag in the query is turned into the `asis:` prefix here.
    pub name: String,
    /// What followed the first `?` of the name (tokens, options), empty
    /// if nothing did.
    pub query: String,
}

/// What a `connect` asked for, as the server's embedder and the broker
/// see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    /// The App (partition) name.
    pub app: String,
    /// The server-assigned connection ID sent in the `_result`.
    pub connection_id: String,
    /// The `tcUrl` member, if sent.
    pub tc_url: Option<String>,
    /// The `flashVer` member (the client's name and version), if sent.
    pub flash_ver: Option<String>,
    /// The whole command object as sent.
    pub command_object: Value,
    /// Extra arguments after the command object (TC tokens, FFmpeg's
    /// `-rtmp_conn` values).
    pub args: Vec<Value>,
    /// The TC user name of a user-token `connect`.
    pub user: Option<String>,
}

impl ConnectInfo {
    /// What the client announced about Enhanced RTMP v2 (`fourCcList`,
    /// the FourCC info maps, `capsEx`), parsed from
    /// [`ConnectInfo::command_object`].
    pub fn enhanced_caps(&self) -> crate::session::EnhancedCaps {
        crate::session::EnhancedCaps::from_object(&self.command_object)
    }

    /// Heap memory it holds (strings, the command object and arguments),
    /// so queues of it can be bounded in true memory.
    pub fn heap_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        self.app.capacity()
            + self.connection_id.capacity()
            + opt(&self.tc_url)
            + opt(&self.flash_ver)
            + opt(&self.user)
            + self.command_object.heap_size()
            + self.args.capacity() * std::mem::size_of::<Value>()
            + self.args.iter().map(Value::heap_size).sum::<usize>()
    }
}

impl Default for ConnectInfo {
    fn default() -> Self {
        ConnectInfo {
            app: String::new(),
            connection_id: String::new(),
            tc_url: None,
            flash_ver: None,
            command_object: Value::Null,
            args: Vec::new(),
            user: None,
        }
    }
}

/// Which status a refused request gets; the description is the
/// [`Denial`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenialKind {
    /// Refused by policy: `NetConnection.Connect.Rejected`,
    /// `NetStream.Publish.Denied`, `NetStream.Play.Failed`.
    Policy,
    /// The name is not acceptable: `NetStream.Publish.BadName` for a
    /// publish (`Connect.Rejected` / `Play.Failed` otherwise).
    BadName,
    /// No such stream: `NetStream.Play.StreamNotFound` for a play
    /// (`Connect.Rejected` / `Publish.Denied` otherwise).
    NotFound,
}

/// A refusal the client is told about: what kind of status, and the
/// description it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Denial {
    /// Which status the client gets.
    pub kind: DenialKind,
    /// What the client reads, at most [`MAX_DENIAL_DESCRIPTION`] bytes of
    /// printable text (cut and cleaned by [`Denial::new`]).
    pub description: String,
}

impl Denial {
    /// A denial whose `description` is cut to [`MAX_DENIAL_DESCRIPTION`]
    /// bytes with control characters replaced, since it goes to the client
    /// and into logs as given.
    pub fn new(kind: DenialKind, description: &str) -> Self {
        let mut d = String::with_capacity(description.len().min(MAX_DENIAL_DESCRIPTION));
        for c in description.chars() {
            if d.len() + c.len_utf8() > MAX_DENIAL_DESCRIPTION {
                break;
            }
            d.push(if c.is_control() { ' ' } else { c });
        }
        Denial {
            kind,
            description: d,
        }
    }

    /// Refused by policy.
    pub fn policy(description: &str) -> Self {
        Denial::new(DenialKind::Policy, description)
    }

    /// The name is not acceptable.
    pub fn bad_name(description: &str) -> Self {
        Denial::new(DenialKind::BadName, description)
    }

    /// No such stream.
    pub fn not_found(description: &str) -> Self {
        Denial::new(DenialKind::NotFound, description)
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Why the broker ended a live publish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Eviction {
    /// Another client's `releaseStream` (`NetStream.Publish.BadName`).
    Released,
    /// Another client published the name at a higher priority
    /// (`NetStream.Publish.BadName`).
    TakenOver,
    /// The server ended it (an operator's API call, a control command);
    /// the client gets `NetStream.Publish.Denied` with this description.
    Ended(String),
}

/// Why the broker refused a publish. Each becomes a
/// `NetStream.Publish.BadName` status whose description says which, except
/// [`PublishRejection::Denied`], whose [`Denial`] chooses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRejection {
    /// Another connection is already publishing this name in this App, at
    /// a priority at least as high as the one asked for.
    #[error("stream name is already being published")]
    AlreadyPublishing,
    /// The name is empty, too long, or uses a reserved prefix (`asis:`,
    /// `sha256:`) that only players may use.
    #[error("stream name is not acceptable: {0}")]
    BadName(&'static str),
    /// The server is at its configured limit of published streams.
    #[error("too many published streams")]
    TooManyStreams,
    /// The embedder (or a deadline) refused it.
    #[error("{0}")]
    Denied(Denial),
}

/// Why a play was refused. [`PlayRejection::Denied`]'s [`Denial`] chooses
/// the status; the others get `NetStream.Play.Failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlayRejection {
    /// The name can never be published (empty, too long, a malformed
    /// `sha256:` hash).
    #[error("stream name is not acceptable: {0}")]
    BadName(&'static str),
    /// Playing it would create a stream past the server's limit, or the
    /// connection holds too many streams.
    #[error("too many streams")]
    TooManyStreams,
    /// The embedder (or a deadline) refused it.
    #[error("{0}")]
    Denied(Denial),
}

/// What a session tells the broker. Drained with
/// [`crate::session::Session::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// `connect` succeeded: the connection joined an App and was given a
    /// connection ID. Always the first event of a session that connects,
    /// at most once.
    Connected(Box<ConnectInfo>),
    /// `connect` passed the session's own checks and waits for an outside
    /// decision ([`crate::session::SessionConfig::hold_connect`]): answer
    /// with [`crate::session::Session::approve_connect`] or
    /// [`crate::session::Session::deny_connect`]. The broker ignores it.
    ConnectRequest(Box<ConnectInfo>),
    /// The client asked to publish `name` on message stream `stream`. The
    /// session waits for [`BrokerEvent::PublishAccepted`] or
    /// [`BrokerEvent::PublishRejected`] with the same `seq` before it
    /// answers the client, and drops media sent on that stream meanwhile.
    Publish {
        /// The message stream id the client publishes on.
        stream: u32,
        /// The session's number for this request, echoed in the answer.
        seq: u64,
        /// The plain stream name (the stream key), without its query.
        name: String,
        /// What followed the first `?` of the name, empty if nothing did.
        query: String,
        /// What the client asked for (served live whatever it is).
        kind: PublishKind,
        /// The priority asked for with `?priority=N`, already capped by the
        /// connection's maximum: it takes over a live publish of a lower
        /// priority.
        priority: u32,
    },
    /// The publish on `stream` ended (FCUnpublish, closeStream, deleteStream,
    /// `publish` with a null name). Not sent for a publish the broker
    /// rejected or evicted.
    Unpublish {
        /// The message stream id.
        stream: u32,
    },
    /// The client asked to play on `stream`; the session waits for
    /// [`BrokerEvent::PlayAccepted`] or [`BrokerEvent::PlayRejected`]. A
    /// second `play` on the same stream is sent as
    /// [`SessionEvent::StopPlay`] then a new `Play`.
    Play {
        /// The message stream id the player receives media on.
        stream: u32,
        /// What it asked for.
        request: PlayRequest,
    },
    /// The client stopped playing on `stream` (closeStream, deleteStream),
    /// or withdrew a play still waiting for its answer.
    StopPlay {
        /// The message stream id.
        stream: u32,
    },
    /// An audio, video or plain data message from an accepted publisher.
    /// Aggregates arrive already split.
    Frame {
        /// The message stream id it was published on.
        stream: u32,
        /// The message; `timestamp` is the publisher's own.
        frame: Frame,
    },
    /// `@setDataFrame`: store `frame` (kind [`FrameKind::Data`], payload the
    /// body subscribers receive, starting with `handler`) as the data
    /// keyframe for `handler`, send it to current subscribers, and to every
    /// future subscriber before any media.
    SetDataFrame {
        /// The message stream id.
        stream: u32,
        /// The handler name, usually `onMetaData`.
        handler: String,
        /// The data message subscribers receive.
        frame: Frame,
    },
    /// `@clearDataFrame`: forget the data keyframe for `handler`.
    ClearDataFrame {
        /// The message stream id.
        stream: u32,
        /// The handler whose data keyframe is dropped.
        handler: String,
    },
    /// `releaseStream`: TC semantics, evict whoever publishes `name` in this
    /// session's App (a stuck or crashed publisher) at a priority below
    /// `max_priority`, or whoever it is if the broker is configured to
    /// (see [`crate::broker::BrokerConfig::release_stream_evicts_any`]).
    /// No effect if nobody publishes it, or if this session itself is the
    /// publisher.
    ReleaseStream {
        /// The plain stream name.
        name: String,
        /// The caller's maximum publish priority.
        max_priority: u32,
    },
    /// TC `relay`: deliver `body` to the connection whose ID is `target`,
    /// in any App. Nothing happens if no such connection is connected.
    Relay {
        /// The recipient's connection ID.
        target: String,
        /// The `onRelay` command the recipient receives, already encoded
        /// (see [`BrokerEvent::Relay`]).
        body: Bytes,
    },
    /// TC `broadcast`: deliver `body` to every connection of this session's
    /// App, the sender included.
    Broadcast {
        /// The `onRelay` command every recipient receives, encoded once and
        /// shared by all of them.
        body: Bytes,
    },
    /// TC `watch`: tell this session with [`BrokerEvent::Disconnected`]
    /// when the connection whose ID is `target` disconnects, or at once if
    /// it is not connected now.
    Watch {
        /// The connection ID to watch.
        target: String,
    },
    /// The session is closed; the broker forgets every publish and
    /// subscription it had. Always the last event, sent exactly once.
    Closed,
}

/// What the broker tells one session. Drained, with its recipient, from
/// [`crate::broker::Broker::poll_output`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// The publish on `stream` is live: answer `NetStream.Publish.Start`.
    PublishAccepted {
        /// The message stream id.
        stream: u32,
        /// The request's number.
        seq: u64,
        /// `sha256:` + lower-case hex of the SHA-256 of the published name,
        /// sent to the publisher as the `hashname` member.
        hashname: String,
    },
    /// The publish on `stream` was refused: answer
    /// `NetStream.Publish.BadName` (or the [`Denial`]'s status).
    PublishRejected {
        /// The message stream id.
        stream: u32,
        /// The request's number.
        seq: u64,
        /// Why.
        reason: PublishRejection,
    },
    /// The broker ended this session's publish on `stream` (another
    /// client's `releaseStream`, a higher priority, the server's embedder):
    /// tell the client why and ignore further media on `stream`.
    PublishEvicted {
        /// The message stream id.
        stream: u32,
        /// Why, which decides the status the client gets.
        reason: Eviction,
    },
    /// The play on `stream` is accepted: answer `NetStream.Play.Start`;
    /// media follows.
    PlayAccepted {
        /// The message stream id.
        stream: u32,
        /// The request's number.
        seq: u64,
    },
    /// The play on `stream` was refused: answer `NetStream.Play.Failed`
    /// (or the [`Denial`]'s status); the connection stays usable.
    PlayRejected {
        /// The message stream id.
        stream: u32,
        /// The request's number.
        seq: u64,
        /// Why.
        reason: PlayRejection,
    },
    /// A publisher started on the name this player waits for or plays:
    /// `NetStream.Play.PublishNotify`. Not sent when a republish lands within
    /// the grace period of the previous publisher (playback just continues).
    PublishNotify {
        /// The player's message stream id.
        stream: u32,
        /// The new publish's priority (`priority` in the status).
        priority: u32,
        /// The publisher's name from its token (TC's `name` property;
        /// `publisherName` in the status), if it has one.
        publisher_name: Option<String>,
    },
    /// The publisher stopped and nobody republished within the grace period:
    /// `NetStream.Play.UnpublishNotify`. The player stays subscribed and gets
    /// [`BrokerEvent::PublishNotify`] if the name is published again.
    UnpublishNotify {
        /// The player's message stream id.
        stream: u32,
    },
    /// A message for the player on `stream`, timestamp already final.
    Frame {
        /// The player's message stream id.
        stream: u32,
        /// The message.
        frame: Frame,
    },
    /// Another connection relayed or broadcast a message to this one: send
    /// `body` as an AMF0 command message (type 20) on message stream 0.
    /// The sender's session encoded it (`"onRelay"`, 0, null, the sender's
    /// connection ID, then the arguments as given), so a broadcast to a
    /// whole App is encoded once and shared by reference count.
    Relay {
        /// The encoded `onRelay` command.
        body: Bytes,
    },
    /// A connection this session watches disconnected (or was not
    /// connected when the watch arrived): send `onDisconnected`.
    Disconnected {
        /// The watched connection ID.
        connection_id: String,
    },
}
