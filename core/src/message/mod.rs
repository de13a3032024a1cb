//! Typed RTMP messages: what a [`RawMessage`]'s payload means.
//!
//! Parse, don't validate: a decoded message is a [`Message`] whose variants
//! carry typed fields (a `publish` has a stream name and a [`PublishKind`],
//! a `play` has its start, duration and options), so later layers match on
//! meaning instead of poking at AMF arrays. Media payloads (audio, video,
//! aggregate) stay as shared [`Bytes`]: they are forwarded far more often
//! than they are looked into, and [`crate::media`] interprets them when
//! needed.
//!
//! The code is split along the message families, so each can be read on its
//! own: `control.rs` (User Control events, Set Peer Bandwidth), `command.rs`
//! (every typed command), `data.rs` (data messages) and `aggregate.rs`
//! (splitting aggregates). This file holds [`Message`] itself, the type ids,
//! the errors, and the dispatch of decoding and encoding; every public item
//! is re-exported here, so paths stay `tincan_core::message::*`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf::{amf0, AmfError};
use crate::chunk::RawMessage;
use crate::time::MediaTime;

pub use amf0::Value;

mod aggregate;
mod command;
mod control;
mod data;

pub use aggregate::{split_aggregate, AggregateIter};
pub use command::{Command, Connect, GenericCommand, Play, PublishKind};
pub use control::{BandwidthLimit, UserControl};
pub use data::Data;

use command::decode_command;
use control::{decode_user_control, encode_user_control};
use data::decode_data;

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

#[cfg(test)]
mod tests;
