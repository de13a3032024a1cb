//! Typed RTMP messages: what a [`RawMessage`]'s payload means.
//!
//! Parse, don't validate: a decoded message is a [`Message`] whose variants
//! carry typed fields (a `publish` has a stream name and a [`PublishKind`],
//! a `play` has its start, duration and options), so later layers match on
//! meaning instead of poking at AMF arrays. Media payloads (audio, video,
//! aggregate) stay as shared [`Bytes`]: they are forwarded far more often
//! than they are looked into, and [`crate::media`] interprets them when
//! needed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf::{amf0, AmfError};
use crate::chunk::RawMessage;
use crate::time::MediaTime;

pub use amf0::Value;

/// RTMP message type ids.
pub mod type_id {
    /// Protocol control: Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Protocol control: Abort Message.
    pub const ABORT: u8 = 2;
    /// Protocol control: Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Protocol control: Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Protocol control: Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 flavour (a format byte, then AMF0 values).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object message, AMF3 flavour.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3 flavour (a format byte, then AMF0 values).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message (`@setDataFrame`, `onMetaData`, ...), AMF0.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object message, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message (`connect`, `play`, ...), AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message: FLV tags back to back.
    pub const AGGREGATE: u8 = 22;
}

/// The largest command or data message [`Message::decode`] will interpret.
///
/// Media may be megabytes, but AMF expands as it decodes: a run of one-byte
/// `null` markers becomes tens of bytes of [`Value`] each. Real commands and
/// data messages (connect, publish, `onMetaData`, cue points, TC relays) are
/// at most a few kilobytes, so 256 KiB leaves two orders of magnitude of room
/// while bounding what one message can make the decoder allocate.
pub const MAX_AMF_MESSAGE_LEN: usize = 256 * 1024;

/// Why a message payload could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A command or data message longer than the AMF limit (see
    /// [`MAX_AMF_MESSAGE_LEN`]).
    #[error("type {type_id} message of {len} bytes exceeds the AMF message limit of {limit}")]
    AmfTooLong {
        /// The message type id.
        type_id: u8,
        /// The payload length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A fixed-layout message (protocol or user control) was too short.
    #[error("{kind} message needs {needed} bytes, got {got}")]
    TooShort {
        /// Which message.
        kind: &'static str,
        /// Bytes its layout needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A Set Peer Bandwidth limit type other than hard, soft or dynamic.
    #[error("unknown Set Peer Bandwidth limit type {0}")]
    UnknownBandwidthLimit(u8),
    /// An AMF3-flavoured (type 15/17) message whose leading format byte is
    /// not zero.
    #[error("AMF3 message format byte must be 0, got {0}")]
    BadFormatByte(u8),
    /// The AMF body did not decode.
    #[error("bad AMF in {context}: {source}")]
    Amf {
        /// Which message the AMF belonged to.
        context: &'static str,
        /// What the AMF decoder refused.
        #[source]
        source: AmfError,
    },
    /// A command or data message whose first value is not a string name.
    #[error("{0} message does not start with a string name")]
    MissingName(&'static str),
    /// A known command whose arguments do not have the shape clients send.
    #[error("command {name:?} is malformed: {reason}")]
    BadCommand {
        /// The command name.
        name: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// An aggregate message whose embedded tags do not fit its payload.
    #[error("aggregate message truncated at offset {offset}")]
    AggregateTruncated {
        /// Where in the aggregate payload the bad tag starts.
        offset: usize,
    },
    /// An aggregate carrying a message type that may not be aggregated
    /// (only audio, video and data may; nested aggregates would recurse).
    #[error("aggregate message contains a type {0} message")]
    AggregateType(u8),
}

/// How AMF was framed in a command or data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Type 20 / 18: plain AMF0 values.
    Amf0,
    /// Type 17 / 15: a zero format byte, then AMF0 values that may switch to
    /// AMF3. Flash/AIR clients with `objectEncoding` 3 send these, and
    /// expect replies in kind.
    Amf3,
}

/// Set Peer Bandwidth's limit type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BandwidthLimit {
    /// 0: the peer must limit its output to the window.
    Hard,
    /// 1: limit to the window or the limit already in effect, whichever is
    /// smaller.
    Soft,
    /// 2: hard if the previous limit was hard, else ignore.
    Dynamic,
}

/// A User Control message (type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// Event 0: a stream became functional; players wait for it before media.
    StreamBegin(u32),
    /// Event 1: playback of the stream ended.
    StreamEof(u32),
    /// Event 2: no more data on the stream for now.
    StreamDry(u32),
    /// Event 3: the client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        /// The stream the buffer belongs to.
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// Event 4: the stream is recorded, not live.
    StreamIsRecorded(u32),
    /// Event 6: the server checks the client is alive; carries a timestamp
    /// the client echoes.
    PingRequest(u32),
    /// Event 7: the answer to a ping request, echoing its timestamp.
    PingResponse(u32),
    /// Any other event (SWF verification, buffer empty/ready...), kept as is
    /// so that it can be logged or forwarded without loss.
    Other {
        /// The event type.
        event_type: u16,
        /// The event data after the type.
        data: Bytes,
    },
}

/// How a publisher asked its stream to be treated. tincan serves everything
/// live, but keeps the client's word for logs and hooks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishKind {
    /// `"live"`, or no type given.
    Live,
    /// `"record"`.
    Record,
    /// `"append"`.
    Append,
    /// Anything else a client sent (e.g. `"appendWithGap"`).
    Other(String),
}

impl PublishKind {
    fn parse(s: Option<&str>) -> Self {
        match s {
            None | Some("live") => PublishKind::Live,
            Some("record") => PublishKind::Record,
            Some("append") => PublishKind::Append,
            Some(other) => PublishKind::Other(other.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            PublishKind::Live => "live",
            PublishKind::Record => "record",
            PublishKind::Append => "append",
            PublishKind::Other(s) => s,
        }
    }
}

/// The `connect` command: the first thing every client says.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// Transaction id the `_result` must echo (1 for every known client).
    pub transaction_id: f64,
    /// The command object as sent (app, tcUrl, flashVer, objectEncoding...).
    pub properties: Value,
    /// Extra arguments after the command object: TC-style auth tokens (one
    /// App-wide token, or a user name and a user token) or FFmpeg's
    /// `-rtmp_conn` values.
    pub args: Vec<Value>,
}

impl Connect {
    /// The `app` member, if the client sent one.
    pub fn app(&self) -> Option<&str> {
        self.properties.get("app").and_then(Value::as_str)
    }

    /// The `tcUrl` member, if the client sent one.
    pub fn tc_url(&self) -> Option<&str> {
        self.properties.get("tcUrl").and_then(Value::as_str)
    }

    /// The AMF encoding the client asked for (0 when absent, as Flash does).
    pub fn object_encoding(&self) -> f64 {
        self.properties
            .get("objectEncoding")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }

    /// The App this connection belongs to: the `app` member, else the path of
    /// `tcUrl` without its leading slash (the TC convention). `None` when
    /// neither is present: such a connect must be rejected.
    pub fn resolved_app(&self) -> Option<String> {
        if let Some(app) = self.app() {
            return Some(app.to_owned());
        }
        let url = self.tc_url()?;
        // scheme://authority/path?query -> path
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
        let path = path.split(['?', '#']).next().unwrap_or("");
        Some(path.trim_start_matches('/').to_owned())
    }
}

/// The `play` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    /// Transaction id (0 from most clients; they expect no `_result`).
    pub transaction_id: f64,
    /// The stream name, possibly prefixed (`asis:`, `sha256:`).
    pub name: String,
    /// Start position: -2 (the default) and any negative value mean live;
    /// FFmpeg sends -2000, rtmpdump -1000, GStreamer -2.
    pub start: f64,
    /// Duration: -1 (the default) means until the end.
    pub duration: f64,
    /// Whether to flush previous playlists (`reset`), default true.
    pub reset: bool,
    /// A TC-style object after the name that overrides real-time treatment
    /// (`audioLifetime`, `videoLifetime`, `finishByMargin`,
    /// `expirePreviousGop`).
    pub options: Option<Value>,
}

/// A command message with its arguments typed by name.
///
/// Commands this server acts on have their own variants; everything else
/// (including replies a client-side session receives) is kept whole in
/// [`Command::Other`], so nothing a peer sends is lost.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `connect`.
    Connect(Connect),
    /// `createStream`.
    CreateStream {
        /// Transaction id the `_result` must echo.
        transaction_id: f64,
    },
    /// `deleteStream`: the message stream id to delete.
    DeleteStream {
        /// Transaction id (0 from every known client).
        transaction_id: f64,
        /// The stream being deleted.
        stream_id: f64,
    },
    /// `closeStream`, sent on the stream it closes.
    CloseStream {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `releaseStream`: FFmpeg and OBS send it before publishing; TC uses it
    /// to evict a stuck publisher of that name.
    ReleaseStream {
        /// Transaction id.
        transaction_id: f64,
        /// The plain stream name.
        name: String,
    },
    /// `FCPublish` (Flash Media Live Encoder convention; answered with
    /// `onFCPublish`).
    FcPublish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `FCUnpublish`.
    FcUnpublish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `publish`, sent on the stream to publish on. A `false`/`null` name is
    /// Flash's way of stopping a publish, hence `Option`.
    Publish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name, or `None` to unpublish.
        name: Option<String>,
        /// The publishing type.
        kind: PublishKind,
    },
    /// `play`.
    Play(Play),
    /// `pause`.
    Pause {
        /// Transaction id.
        transaction_id: f64,
        /// True to pause, false to resume.
        pause: bool,
        /// The stream time at which the client paused, in milliseconds.
        millis: f64,
    },
    /// `seek` (meaningless for live streams; kept so it can be refused).
    Seek {
        /// Transaction id.
        transaction_id: f64,
        /// Target position in milliseconds.
        millis: f64,
    },
    /// `receiveAudio`: whether to send this stream's audio.
    ReceiveAudio(bool),
    /// `receiveVideo`: whether to send this stream's video.
    ReceiveVideo(bool),
    /// `setPeerInfo`: the client's addresses, for P2P introduction.
    SetPeerInfo {
        /// Address strings as sent.
        addresses: Vec<String>,
    },
    /// TC `relay`: deliver `args` to another connection as `onRelay`.
    Relay {
        /// The recipient's connection ID.
        target: String,
        /// Arguments to forward as given.
        args: Vec<Value>,
    },
    /// TC `broadcast`: deliver `args` to every client of the sender's App.
    Broadcast {
        /// Arguments to forward as given.
        args: Vec<Value>,
    },
    /// TC `watch`: be told with `onDisconnected` when `target` disconnects.
    Watch {
        /// The connection ID to watch.
        target: String,
    },
    /// `_checkbw` (FMLE and some players; answered with a result).
    CheckBw {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `getStreamLength` (sent by some players before `play`).
    GetStreamLength {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `_result`: a successful reply.
    Result {
        /// The transaction being answered.
        transaction_id: f64,
        /// The command object (properties for `connect`, else null).
        command_object: Value,
        /// The reply values (info object, new stream id...).
        args: Vec<Value>,
    },
    /// `_error`: a failed reply.
    Error {
        /// The transaction being answered.
        transaction_id: f64,
        /// Usually null.
        command_object: Value,
        /// Usually one info object with `level`, `code`, `description`.
        args: Vec<Value>,
    },
    /// `onStatus`: a NetStream / NetConnection status event.
    OnStatus {
        /// The info object (`level`, `code`, `description`, ...).
        info: Value,
    },
    /// Any other command, kept whole.
    Other(GenericCommand),
}

/// A command in its wire shape: name, transaction id, command object and
/// arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericCommand {
    /// The command name.
    pub name: String,
    /// The transaction id; 0 means the sender expects no reply.
    pub transaction_id: f64,
    /// The command object (null for most commands).
    pub command_object: Value,
    /// The remaining arguments.
    pub args: Vec<Value>,
}

/// A data message (type 18 / 15).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `@setDataFrame handler values...`: the publisher sets a data keyframe
    /// that every subscriber, including late joiners, must receive.
    SetDataFrame {
        /// The handler name subscribers see (usually `onMetaData`).
        handler: String,
        /// The decoded values after the handler.
        values: Vec<Value>,
        /// The AMF body subscribers receive (`handler values...`), sliced
        /// from the publisher's payload without a copy.
        body: Bytes,
    },
    /// `@clearDataFrame handler`: drop a data keyframe.
    ClearDataFrame {
        /// The handler whose data keyframe is dropped.
        handler: String,
    },
    /// Any other data message (`onMetaData` sent directly, `onTextData`,
    /// `onCuePoint`, `|RtmpSampleAccess`...).
    Other {
        /// The handler name.
        handler: String,
        /// The decoded values after the handler.
        values: Vec<Value>,
        /// The whole AMF body (handler included), for forwarding as is.
        body: Bytes,
    },
}

impl Data {
    /// The handler name subscribers see.
    pub fn handler(&self) -> &str {
        match self {
            Data::SetDataFrame { handler, .. }
            | Data::ClearDataFrame { handler }
            | Data::Other { handler, .. } => handler,
        }
    }
}

/// One decoded RTMP message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// Type 1: the sender's new chunk size.
    SetChunkSize(u32),
    /// Type 2: discard the partial message on a chunk stream.
    Abort {
        /// The chunk stream whose partial message is dropped.
        csid: u32,
    },
    /// Type 3: the receiver has seen this many bytes (mod 2^32).
    Acknowledgement {
        /// Bytes received so far, wrapping at 2^32.
        sequence: u32,
    },
    /// Type 5: acknowledge every this many bytes.
    WindowAckSize(u32),
    /// Type 6: limit your output bandwidth.
    SetPeerBandwidth {
        /// The window size in bytes.
        size: u32,
        /// How to apply it.
        limit: BandwidthLimit,
    },
    /// Type 4.
    UserControl(UserControl),
    /// Types 20 / 17.
    Command {
        /// How the AMF was framed.
        encoding: Encoding,
        /// The typed command.
        command: Command,
    },
    /// Types 18 / 15.
    Data {
        /// How the AMF was framed.
        encoding: Encoding,
        /// The typed data message.
        data: Data,
    },
    /// Type 8: an FLV audio tag body, see [`crate::media::parse_audio`].
    Audio(Bytes),
    /// Type 9: an FLV video tag body, see [`crate::media::parse_video`].
    Video(Bytes),
    /// Type 22: FLV tags back to back, see [`split_aggregate`].
    Aggregate(Bytes),
    /// Shared-object messages and any type id RTMP does not define: kept
    /// whole, never an error, so that a server can ignore them gracefully.
    Unknown {
        /// The message type id.
        type_id: u8,
        /// The payload.
        payload: Bytes,
    },
}

fn be_u32(payload: &[u8], kind: &'static str, needed: usize) -> Result<u32, MessageError> {
    match payload.get(..4) {
        Some(b) if payload.len() >= needed => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        _ => Err(MessageError::TooShort {
            kind,
            needed,
            got: payload.len(),
        }),
    }
}

impl Message {
    /// Interprets a raw message. Only what the payload says is checked; what
    /// is allowed on which stream is the session's business.
    pub fn decode(raw: &RawMessage) -> Result<Message, MessageError> {
        Self::decode_with_amf_limit(raw, MAX_AMF_MESSAGE_LEN)
    }

    /// [`Message::decode`] with a different bound on command and data
    /// messages, for embedders whose applications relay larger AMF payloads.
    pub fn decode_with_amf_limit(
        raw: &RawMessage,
        max_amf_len: usize,
    ) -> Result<Message, MessageError> {
        Self::decode_with_amf_limits(raw, max_amf_len, crate::amf::MAX_DEPTH)
    }

    /// [`Message::decode_with_amf_limit`] that also refuses AMF nesting
    /// deeper than `max_amf_depth` (at most [`crate::amf::MAX_DEPTH`]), for
    /// a server that wants a tighter bound than the stack-safety ceiling.
    pub fn decode_with_amf_limits(
        raw: &RawMessage,
        max_amf_len: usize,
        max_amf_depth: usize,
    ) -> Result<Message, MessageError> {
        let depth = max_amf_depth;
        let p = &raw.payload;
        let carries_amf = matches!(
            raw.type_id,
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 | type_id::DATA_AMF0 | type_id::DATA_AMF3
        );
        if carries_amf && p.len() > max_amf_len {
            return Err(MessageError::AmfTooLong {
                type_id: raw.type_id,
                len: p.len(),
                limit: max_amf_len,
            });
        }
        Ok(match raw.type_id {
            type_id::SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(p, "Set Chunk Size", 4)?),
            type_id::ABORT => Message::Abort {
                csid: be_u32(p, "Abort", 4)?,
            },
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence: be_u32(p, "Acknowledgement", 4)?,
            },
            type_id::WINDOW_ACK_SIZE => {
                Message::WindowAckSize(be_u32(p, "Window Acknowledgement Size", 4)?)
            }
            type_id::SET_PEER_BANDWIDTH => {
                let size = be_u32(p, "Set Peer Bandwidth", 5)?;
                let limit = match p[4] {
                    0 => BandwidthLimit::Hard,
                    1 => BandwidthLimit::Soft,
                    2 => BandwidthLimit::Dynamic,
                    other => return Err(MessageError::UnknownBandwidthLimit(other)),
                };
                Message::SetPeerBandwidth { size, limit }
            }
            type_id::USER_CONTROL => Message::UserControl(decode_user_control(p)?),
            type_id::COMMAND_AMF0 => Message::Command {
                encoding: Encoding::Amf0,
                command: decode_command(p, depth)?,
            },
            type_id::COMMAND_AMF3 => Message::Command {
                encoding: Encoding::Amf3,
                command: decode_command(&strip_format_byte(p)?, depth)?,
            },
            type_id::DATA_AMF0 => Message::Data {
                encoding: Encoding::Amf0,
                data: decode_data(p.clone(), depth)?,
            },
            type_id::DATA_AMF3 => Message::Data {
                encoding: Encoding::Amf3,
                data: decode_data(strip_format_byte(p)?, depth)?,
            },
            type_id::AUDIO => Message::Audio(p.clone()),
            type_id::VIDEO => Message::Video(p.clone()),
            type_id::AGGREGATE => Message::Aggregate(p.clone()),
            other => Message::Unknown {
                type_id: other,
                payload: p.clone(),
            },
        })
    }

    /// The type id this message travels as.
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Message::Abort { .. } => type_id::ABORT,
            Message::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Message::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Message::UserControl(_) => type_id::USER_CONTROL,
            Message::Command {
                encoding: Encoding::Amf0,
                ..
            } => type_id::COMMAND_AMF0,
            Message::Command {
                encoding: Encoding::Amf3,
                ..
            } => type_id::COMMAND_AMF3,
            Message::Data {
                encoding: Encoding::Amf0,
                ..
            } => type_id::DATA_AMF0,
            Message::Data {
                encoding: Encoding::Amf3,
                ..
            } => type_id::DATA_AMF3,
            Message::Audio(_) => type_id::AUDIO,
            Message::Video(_) => type_id::VIDEO,
            Message::Aggregate(_) => type_id::AGGREGATE,
            Message::Unknown { type_id, .. } => *type_id,
        }
    }

    /// The payload bytes. Media and unknown payloads are returned by
    /// reference count, never copied.
    pub fn encode_payload(&self) -> Result<Bytes, MessageError> {
        let amf_err = |context| move |source| MessageError::Amf { context, source };
        Ok(match self {
            Message::SetChunkSize(v)
            | Message::Abort { csid: v }
            | Message::Acknowledgement { sequence: v }
            | Message::WindowAckSize(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Message::SetPeerBandwidth { size, limit } => {
                let mut b = BytesMut::with_capacity(5);
                b.put_u32(*size);
                b.put_u8(match limit {
                    BandwidthLimit::Hard => 0,
                    BandwidthLimit::Soft => 1,
                    BandwidthLimit::Dynamic => 2,
                });
                b.freeze()
            }
            Message::UserControl(uc) => encode_user_control(uc),
            Message::Command { encoding, command } => {
                let mut b = BytesMut::with_capacity(128);
                if *encoding == Encoding::Amf3 {
                    b.put_u8(0);
                }
                let (name, tid, object, args) = command.wire_parts();
                // One encoder for the whole body: a reference in the
                // arguments is only written if what it names is written too.
                let mut e = amf0::Encoder::new();
                [Value::String(name.into_owned()), Value::Number(tid), object]
                    .iter()
                    .chain(&args)
                    .try_for_each(|v| e.encode(v, &mut b))
                    .map_err(amf_err("command"))?;
                b.freeze()
            }
            Message::Data { encoding, data } => {
                let mut b = BytesMut::new();
                if *encoding == Encoding::Amf3 {
                    b.put_u8(0);
                }
                match data {
                    Data::SetDataFrame { body, .. } => {
                        amf0::encode(&Value::from("@setDataFrame"), &mut b)
                            .map_err(amf_err("data"))?;
                        b.extend_from_slice(body);
                    }
                    Data::ClearDataFrame { handler } => {
                        amf0::encode(&Value::from("@clearDataFrame"), &mut b)
                            .map_err(amf_err("data"))?;
                        amf0::encode(&Value::from(handler.as_str()), &mut b)
                            .map_err(amf_err("data"))?;
                    }
                    Data::Other { body, .. } => {
                        if *encoding == Encoding::Amf0 {
                            return Ok(body.clone());
                        }
                        b.extend_from_slice(body);
                    }
                }
                b.freeze()
            }
            Message::Audio(p) | Message::Video(p) | Message::Aggregate(p) => p.clone(),
            Message::Unknown { payload, .. } => payload.clone(),
        })
    }

    /// Builds the raw message to hand to a [`crate::chunk::ChunkEncoder`].
    pub fn to_raw(
        &self,
        csid: u32,
        timestamp: MediaTime,
        stream_id: u32,
    ) -> Result<RawMessage, MessageError> {
        Ok(RawMessage {
            csid,
            timestamp,
            type_id: self.type_id(),
            stream_id,
            payload: self.encode_payload()?,
        })
    }
}

fn strip_format_byte(p: &Bytes) -> Result<Bytes, MessageError> {
    match p.first() {
        None => Err(MessageError::MissingName("AMF3")),
        Some(0) => Ok(p.slice(1..)),
        Some(&b) => Err(MessageError::BadFormatByte(b)),
    }
}

fn decode_user_control(p: &Bytes) -> Result<UserControl, MessageError> {
    let kind = "User Control";
    if p.len() < 2 {
        return Err(MessageError::TooShort {
            kind,
            needed: 2,
            got: p.len(),
        });
    }
    let event_type = u16::from_be_bytes([p[0], p[1]]);
    let data = &p[2..];
    let word = |needed: usize| -> Result<u32, MessageError> {
        be_u32(data, kind, needed).map_err(|_| MessageError::TooShort {
            kind,
            needed: needed + 2,
            got: p.len(),
        })
    };
    Ok(match event_type {
        0 => UserControl::StreamBegin(word(4)?),
        1 => UserControl::StreamEof(word(4)?),
        2 => UserControl::StreamDry(word(4)?),
        3 => UserControl::SetBufferLength {
            stream_id: word(8)?,
            millis: be_u32(&data[4..], kind, 4)?,
        },
        4 => UserControl::StreamIsRecorded(word(4)?),
        6 => UserControl::PingRequest(word(4)?),
        7 => UserControl::PingResponse(word(4)?),
        _ => UserControl::Other {
            event_type,
            data: p.slice(2..),
        },
    })
}

fn encode_user_control(uc: &UserControl) -> Bytes {
    let mut b = BytesMut::with_capacity(10);
    let (event, words): (u16, &[u32]) = match uc {
        UserControl::StreamBegin(id) => (0, std::slice::from_ref(id)),
        UserControl::StreamEof(id) => (1, std::slice::from_ref(id)),
        UserControl::StreamDry(id) => (2, std::slice::from_ref(id)),
        UserControl::SetBufferLength { stream_id, millis } => {
            b.put_u16(3);
            b.put_u32(*stream_id);
            b.put_u32(*millis);
            return b.freeze();
        }
        UserControl::StreamIsRecorded(id) => (4, std::slice::from_ref(id)),
        UserControl::PingRequest(t) => (6, std::slice::from_ref(t)),
        UserControl::PingResponse(t) => (7, std::slice::from_ref(t)),
        UserControl::Other { event_type, data } => {
            b.put_u16(*event_type);
            b.extend_from_slice(data);
            return b.freeze();
        }
    };
    b.put_u16(event);
    words.iter().for_each(|w| b.put_u32(*w));
    b.freeze()
}

/// The AMF values of a command body, in wire order.
struct CommandParts {
    name: String,
    transaction_id: f64,
    command_object: Value,
    args: Vec<Value>,
}

impl CommandParts {
    fn arg(&self, i: usize) -> Option<&Value> {
        self.args.get(i)
    }

    fn string_arg(&self, i: usize, name: &'static str) -> Result<String, MessageError> {
        self.arg(i)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(MessageError::BadCommand {
                name,
                reason: "expected a string stream name",
            })
    }

    fn number_arg(&self, i: usize) -> Option<f64> {
        self.arg(i).and_then(Value::as_f64)
    }

    /// Flash sends booleans; some tools send 0/1 numbers.
    fn flag_arg(&self, i: usize) -> Option<bool> {
        let v = self.arg(i)?;
        v.as_bool().or_else(|| v.as_f64().map(|n| n != 0.0))
    }
}

fn decode_command(p: &[u8], max_depth: usize) -> Result<Command, MessageError> {
    let amf = |source| MessageError::Amf {
        context: "command",
        source,
    };
    let mut d = amf0::Decoder::with_max_depth(p, max_depth);
    let name = d
        .decode()
        .map_err(amf)?
        .as_str()
        .map(str::to_owned)
        .ok_or(MessageError::MissingName("command"))?;
    // Some encoders stop after the name (or after the transaction id) for
    // argument-less commands; missing values read as 0 and null.
    let transaction_id = if d.is_empty() {
        0.0
    } else {
        d.decode().map_err(amf)?.as_f64().unwrap_or(0.0)
    };
    let command_object = if d.is_empty() {
        Value::Null
    } else {
        d.decode().map_err(amf)?
    };
    let mut args = Vec::new();
    while !d.is_empty() {
        args.push(d.decode().map_err(amf)?);
    }
    CommandParts {
        name,
        transaction_id,
        command_object,
        args,
    }
    .into_command()
}

impl CommandParts {
    fn into_command(self) -> Result<Command, MessageError> {
        let tid = self.transaction_id;
        Ok(match self.name.as_str() {
            "connect" => {
                if !self.command_object.is_object() {
                    return Err(MessageError::BadCommand {
                        name: "connect",
                        reason: "the command object must be an object",
                    });
                }
                Command::Connect(Connect {
                    transaction_id: tid,
                    properties: self.command_object,
                    args: self.args,
                })
            }
            "createStream" => Command::CreateStream {
                transaction_id: tid,
            },
            "deleteStream" => match self.number_arg(0) {
                Some(stream_id) => Command::DeleteStream {
                    transaction_id: tid,
                    stream_id,
                },
                // GStreamer's rtmp2sink names the stream (a string) instead
                // of giving its id, right after its FCUnpublish. Kept as a
                // generic command so it cannot fail the connection at the
                // end of every GStreamer publish.
                None => self.generic(),
            },
            "closeStream" => Command::CloseStream {
                transaction_id: tid,
            },
            "releaseStream" => Command::ReleaseStream {
                transaction_id: tid,
                name: self.string_arg(0, "releaseStream")?,
            },
            "FCPublish" => Command::FcPublish {
                transaction_id: tid,
                name: self.string_arg(0, "FCPublish")?,
            },
            "FCUnpublish" => Command::FcUnpublish {
                transaction_id: tid,
                name: self.string_arg(0, "FCUnpublish")?,
            },
            "publish" => {
                let name = match self.arg(0) {
                    Some(v) if v.as_str().is_some() => v.as_str().map(str::to_owned),
                    Some(v) if v.is_null() || v.as_bool() == Some(false) => None,
                    _ => {
                        return Err(MessageError::BadCommand {
                            name: "publish",
                            reason: "expected a string stream name or false",
                        })
                    }
                };
                Command::Publish {
                    transaction_id: tid,
                    name,
                    kind: PublishKind::parse(self.arg(1).and_then(Value::as_str)),
                }
            }
            "play" => {
                let name = self.string_arg(0, "play")?;
                // TC: an object right after the name carries real-time
                // options; otherwise the classic start/duration/reset.
                let (options, rest) = match self.arg(1) {
                    Some(v) if v.is_object() => (Some(v.clone()), 2),
                    _ => (None, 1),
                };
                Command::Play(Play {
                    transaction_id: tid,
                    name,
                    start: self.number_arg(rest).unwrap_or(-2.0),
                    duration: self.number_arg(rest + 1).unwrap_or(-1.0),
                    reset: self.flag_arg(rest + 2).unwrap_or(true),
                    options,
                })
            }
            "pause" | "pauseRaw" => Command::Pause {
                transaction_id: tid,
                pause: self.flag_arg(0).ok_or(MessageError::BadCommand {
                    name: "pause",
                    reason: "expected a boolean pause flag",
                })?,
                millis: self.number_arg(1).unwrap_or(0.0),
            },
            "seek" => Command::Seek {
                transaction_id: tid,
                millis: self.number_arg(0).unwrap_or(0.0),
            },
            "receiveAudio" => Command::ReceiveAudio(self.flag_arg(0).unwrap_or(true)),
            "receiveVideo" => Command::ReceiveVideo(self.flag_arg(0).unwrap_or(true)),
            "setPeerInfo" => Command::SetPeerInfo {
                addresses: self
                    .args
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            },
            "relay" => {
                let mut args = self.args;
                let target = match args.first().and_then(Value::as_str) {
                    Some(t) => t.to_owned(),
                    None => {
                        return Err(MessageError::BadCommand {
                            name: "relay",
                            reason: "expected the recipient's connection ID",
                        })
                    }
                };
                args.remove(0);
                Command::Relay { target, args }
            }
            "broadcast" => Command::Broadcast { args: self.args },
            "watch" => Command::Watch {
                target: self.string_arg(0, "watch")?,
            },
            "_checkbw" => Command::CheckBw {
                transaction_id: tid,
            },
            "getStreamLength" => Command::GetStreamLength {
                transaction_id: tid,
                name: self.string_arg(0, "getStreamLength")?,
            },
            "_result" => Command::Result {
                transaction_id: tid,
                command_object: self.command_object,
                args: self.args,
            },
            "_error" => Command::Error {
                transaction_id: tid,
                command_object: self.command_object,
                args: self.args,
            },
            "onStatus" => match self.args.into_iter().next() {
                Some(info) => Command::OnStatus { info },
                None => {
                    return Err(MessageError::BadCommand {
                        name: "onStatus",
                        reason: "expected an info object",
                    })
                }
            },
            _ => self.generic(),
        })
    }

    fn generic(self) -> Command {
        Command::Other(GenericCommand {
            name: self.name,
            transaction_id: self.transaction_id,
            command_object: self.command_object,
            args: self.args,
        })
    }
}

impl Command {
    /// The command name as it goes on the wire.
    pub fn name(&self) -> &str {
        match self {
            Command::Connect(_) => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::DeleteStream { .. } => "deleteStream",
            Command::CloseStream { .. } => "closeStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::Publish { .. } => "publish",
            Command::Play(_) => "play",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::ReceiveAudio(_) => "receiveAudio",
            Command::ReceiveVideo(_) => "receiveVideo",
            Command::SetPeerInfo { .. } => "setPeerInfo",
            Command::Relay { .. } => "relay",
            Command::Broadcast { .. } => "broadcast",
            Command::Watch { .. } => "watch",
            Command::CheckBw { .. } => "_checkbw",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::Result { .. } => "_result",
            Command::Error { .. } => "_error",
            Command::OnStatus { .. } => "onStatus",
            Command::Other(g) => &g.name,
        }
    }

    /// The transaction id a reply must echo; 0 for commands that expect none.
    pub fn transaction_id(&self) -> f64 {
        match self {
            Command::Connect(c) => c.transaction_id,
            Command::Play(p) => p.transaction_id,
            Command::CreateStream { transaction_id }
            | Command::DeleteStream { transaction_id, .. }
            | Command::CloseStream { transaction_id }
            | Command::ReleaseStream { transaction_id, .. }
            | Command::FcPublish { transaction_id, .. }
            | Command::FcUnpublish { transaction_id, .. }
            | Command::Publish { transaction_id, .. }
            | Command::Pause { transaction_id, .. }
            | Command::Seek { transaction_id, .. }
            | Command::CheckBw { transaction_id }
            | Command::GetStreamLength { transaction_id, .. }
            | Command::Result { transaction_id, .. }
            | Command::Error { transaction_id, .. } => *transaction_id,
            Command::Other(g) => g.transaction_id,
            Command::ReceiveAudio(_)
            | Command::ReceiveVideo(_)
            | Command::SetPeerInfo { .. }
            | Command::Relay { .. }
            | Command::Broadcast { .. }
            | Command::Watch { .. }
            | Command::OnStatus { .. } => 0.0,
        }
    }

    /// The command in its wire shape (name, transaction id, command object,
    /// arguments), for encoding.
    fn wire_parts(&self) -> (std::borrow::Cow<'_, str>, f64, Value, Vec<Value>) {
        use std::borrow::Cow;
        let tid = self.transaction_id();
        let name = Cow::Borrowed(self.name());
        let s = |v: &str| Value::String(v.to_owned());
        let (object, args) = match self {
            Command::Connect(c) => (c.properties.clone(), c.args.clone()),
            Command::CreateStream { .. }
            | Command::CloseStream { .. }
            | Command::CheckBw { .. } => (Value::Null, vec![]),
            Command::DeleteStream { stream_id, .. } => {
                (Value::Null, vec![Value::Number(*stream_id)])
            }
            Command::ReleaseStream { name, .. }
            | Command::FcPublish { name, .. }
            | Command::FcUnpublish { name, .. }
            | Command::GetStreamLength { name, .. } => (Value::Null, vec![s(name)]),
            Command::Publish { name, kind, .. } => (
                Value::Null,
                vec![
                    name.as_deref().map_or(Value::Boolean(false), s),
                    s(kind.as_str()),
                ],
            ),
            Command::Play(p) => {
                let mut args = vec![s(&p.name)];
                if let Some(o) = &p.options {
                    args.push(o.clone());
                }
                args.extend([
                    Value::Number(p.start),
                    Value::Number(p.duration),
                    Value::Boolean(p.reset),
                ]);
                (Value::Null, args)
            }
            Command::Pause { pause, millis, .. } => (
                Value::Null,
                vec![Value::Boolean(*pause), Value::Number(*millis)],
            ),
            Command::Seek { millis, .. } => (Value::Null, vec![Value::Number(*millis)]),
            Command::ReceiveAudio(b) | Command::ReceiveVideo(b) => {
                (Value::Null, vec![Value::Boolean(*b)])
            }
            Command::SetPeerInfo { addresses } => {
                (Value::Null, addresses.iter().map(|a| s(a)).collect())
            }
            Command::Relay { target, args } => {
                let mut all = Vec::with_capacity(args.len() + 1);
                all.push(s(target));
                all.extend(args.iter().cloned());
                (Value::Null, all)
            }
            Command::Broadcast { args } => (Value::Null, args.clone()),
            Command::Watch { target } => (Value::Null, vec![s(target)]),
            Command::Result {
                command_object,
                args,
                ..
            }
            | Command::Error {
                command_object,
                args,
                ..
            } => (command_object.clone(), args.clone()),
            Command::OnStatus { info } => (Value::Null, vec![info.clone()]),
            Command::Other(g) => (g.command_object.clone(), g.args.clone()),
        };
        (name, tid, object, args)
    }
}

fn decode_data(body: Bytes, max_depth: usize) -> Result<Data, MessageError> {
    let amf = |source| MessageError::Amf {
        context: "data",
        source,
    };
    let mut d = amf0::Decoder::with_max_depth(&body, max_depth);
    let first = d.decode().map_err(amf)?;
    let name = first
        .as_str()
        .ok_or(MessageError::MissingName("data"))?
        .to_owned();
    let after_name = body.len() - d.remaining().len();
    let rest = body.slice(after_name..);
    let mut values = Vec::new();
    let decode_rest = |d: &mut amf0::Decoder<'_>, values: &mut Vec<Value>| {
        while !d.is_empty() {
            values.push(d.decode().map_err(amf)?);
        }
        Ok::<(), MessageError>(())
    };
    Ok(match name.as_str() {
        "@setDataFrame" => {
            // The handler is re-read from `rest` with a fresh decoder so that
            // `body` is exactly what subscribers will receive.
            let mut inner = amf0::Decoder::with_max_depth(&rest, max_depth);
            let handler = inner
                .decode()
                .map_err(amf)?
                .as_str()
                .map(str::to_owned)
                .ok_or(MessageError::MissingName("@setDataFrame"))?;
            decode_rest(&mut inner, &mut values)?;
            Data::SetDataFrame {
                handler,
                values,
                body: rest,
            }
        }
        "@clearDataFrame" => {
            let handler = d
                .decode()
                .map_err(amf)?
                .as_str()
                .map(str::to_owned)
                .ok_or(MessageError::MissingName("@clearDataFrame"))?;
            Data::ClearDataFrame { handler }
        }
        _ => {
            decode_rest(&mut d, &mut values)?;
            Data::Other {
                handler: name,
                values,
                body,
            }
        }
    })
}

/// Splits an aggregate message (type 22) into the messages it carries.
///
/// Each embedded FLV tag becomes a [`RawMessage`] on the aggregate's chunk
/// stream and message stream, its payload sliced from the aggregate's
/// without a copy. Timestamps keep their spacing but are moved so that the
/// first sub-message has the aggregate's own timestamp (which is what the
/// chunk layer rebased). Iteration stops at the first malformed tag.
pub fn split_aggregate(aggregate: &RawMessage) -> AggregateIter {
    AggregateIter {
        payload: aggregate.payload.clone(),
        offset: 0,
        csid: aggregate.csid,
        stream_id: aggregate.stream_id,
        base: aggregate.timestamp,
        first_tag_time: None,
        failed: false,
    }
}

/// The messages inside an aggregate; see [`split_aggregate`].
#[derive(Debug, Clone)]
pub struct AggregateIter {
    payload: Bytes,
    offset: usize,
    csid: u32,
    stream_id: u32,
    base: MediaTime,
    first_tag_time: Option<MediaTime>,
    failed: bool,
}

/// FLV tag header: type(1) size(3) timestamp(3) timestamp-ext(1) stream(3).
const TAG_HEADER_LEN: usize = 11;
/// The back pointer (previous tag size) after each tag body.
const BACK_POINTER_LEN: usize = 4;

impl Iterator for AggregateIter {
    type Item = Result<RawMessage, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.payload.len() {
            return None;
        }
        let start = self.offset;
        let rest = &self.payload[start..];
        let Some(h) = rest.get(..TAG_HEADER_LEN) else {
            self.failed = true;
            return Some(Err(MessageError::AggregateTruncated { offset: start }));
        };
        let type_id = h[0];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let tag_time = MediaTime::from_millis(u32::from_be_bytes([h[7], h[4], h[5], h[6]]));
        if !matches!(
            type_id,
            type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 | type_id::DATA_AMF3
        ) {
            self.failed = true;
            return Some(Err(MessageError::AggregateType(type_id)));
        }
        let body_start = start + TAG_HEADER_LEN;
        let body_end = body_start + size;
        if body_end > self.payload.len() {
            self.failed = true;
            return Some(Err(MessageError::AggregateTruncated { offset: start }));
        }
        // Some muxers leave out the last back pointer; that loses nothing.
        self.offset = (body_end + BACK_POINTER_LEN).min(self.payload.len());
        let first = *self.first_tag_time.get_or_insert(tag_time);
        let timestamp = self
            .base
            .wrapping_add(tag_time.as_millis().wrapping_sub(first.as_millis()));
        Some(Ok(RawMessage {
            csid: self.csid,
            timestamp,
            type_id,
            stream_id: self.stream_id,
            payload: self.payload.slice(body_start..body_end),
        }))
    }
}

#[cfg(test)]
mod tests;
