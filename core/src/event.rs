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
//! Publish requests are decisions: the session asks with
//! [`SessionEvent::Publish`] and holds its answer until the broker replies
//! with [`BrokerEvent::PublishAccepted`] or [`BrokerEvent::PublishRejected`],
//! keyed by the message stream id. Play is answered at once by the session
//! (live playback cannot fail for want of a publisher: the player waits).

use bytes::Bytes;

use crate::message::PublishKind;
use crate::time::MediaTime;

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
    /// The name as the player sent it, prefixes included (`asis:`,
    /// `sha256:`); the broker interprets them.
    pub name: String,
}

/// Why the broker refused a publish. Each becomes a
/// `NetStream.Publish.BadName` status whose description says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRejection {
    /// Another connection is already publishing this name in this App.
    #[error("stream name is already being published")]
    AlreadyPublishing,
    /// The name is empty, too long, or uses a reserved prefix (`asis:`,
    /// `sha256:`) that only players may use.
    #[error("stream name is not acceptable: {0}")]
    BadName(&'static str),
    /// The server is at its configured limit of published streams.
    #[error("too many published streams")]
    TooManyStreams,
}

/// What a session tells the broker. Drained with
/// [`crate::session::Session::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// `connect` succeeded: the connection joined `app` and was given
    /// `connection_id`. Always the first event of a session, at most once.
    Connected {
        /// The App (partition) name.
        app: String,
        /// The server-assigned connection ID sent in the `_result`.
        connection_id: String,
    },
    /// The client asked to publish `name` on message stream `stream`. The
    /// session waits for [`BrokerEvent::PublishAccepted`] or
    /// [`BrokerEvent::PublishRejected`] before it answers the client, and
    /// drops media sent on that stream meanwhile.
    Publish {
        /// The message stream id the client publishes on.
        stream: u32,
        /// The plain stream name.
        name: String,
        /// What the client asked for (served live whatever it is).
        kind: PublishKind,
    },
    /// The publish on `stream` ended (FCUnpublish, closeStream, deleteStream,
    /// `publish` with a null name). Not sent for a publish the broker
    /// rejected or evicted.
    Unpublish {
        /// The message stream id.
        stream: u32,
    },
    /// The client started playing on `stream`. A second `play` on the same
    /// stream is sent as [`SessionEvent::StopPlay`] then a new `Play`.
    Play {
        /// The message stream id the player receives media on.
        stream: u32,
        /// What it asked for.
        request: PlayRequest,
    },
    /// The client stopped playing on `stream` (closeStream, deleteStream).
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
    /// session's App (a stuck or crashed publisher). No effect if nobody
    /// publishes it, or if this session itself is the publisher.
    ReleaseStream {
        /// The plain stream name.
        name: String,
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
        /// `sha256:` + lower-case hex of the SHA-256 of the published name,
        /// sent to the publisher as the `hashname` member.
        hashname: String,
    },
    /// The publish on `stream` was refused: answer
    /// `NetStream.Publish.BadName`.
    PublishRejected {
        /// The message stream id.
        stream: u32,
        /// Why.
        reason: PublishRejection,
    },
    /// Another client used `releaseStream` on this session's publish: send
    /// `NetStream.Publish.BadName` and ignore further media on `stream`.
    PublishEvicted {
        /// The message stream id.
        stream: u32,
    },
    /// A publisher started on the name this player waits for or plays:
    /// `NetStream.Play.PublishNotify`. Not sent when a republish lands within
    /// the grace period of the previous publisher (playback just continues).
    PublishNotify {
        /// The player's message stream id.
        stream: u32,
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
