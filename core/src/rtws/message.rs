//! The RTWebSocket messages, one per WebSocket binary message.
//!
//! Every message starts with a type byte; the rest is VLU numbers
//! ([`super::vlu`]) and byte strings that run to the end of the message
//! (the WebSocket frame gives the length). The layouts, from `protocol`:
//!
//! | code | message | fields |
//! | --- | --- | --- |
//! | `01` | ping | bytes |
//! | `41` | ping reply | the ping's bytes |
//! | `0a` | set ack window | vlu ack window |
//! | `10` | flow open | vlu flow ID, metadata |
//! | `30` | flow open with return association | vlu flow ID, vlu return association, metadata |
//! | `1d` | user data, last fragment | vlu flow ID, fragment |
//! | `3d` | user data, more fragments follow | vlu flow ID, fragment |
//! | `1a` | abandon | vlu flow ID, optional vlu count − 1 |
//! | `1c` | flow close | vlu flow ID |
//! | `5a` | data ack | vlu flow ID, vlu delta byte count, vlu buffer advertisement |
//! | `5c` | flow close ack | vlu flow ID |
//! | `5e` | flow exception | vlu flow ID, optional vlu reason code, optional UTF-8 description |
//!
//! Bytes after the last field of a fixed-field message are ignored, as both
//! reference implementations ignore them. An unknown type code is
//! [`DecodeError::UnknownType`]; the endpoint skips such messages as the
//! references do, so a later protocol revision can add types.

use bytes::Bytes;
use thiserror::Error;

use super::vlu::{decode_vlu, encode_vlu, vlu_len, VluError};

/// Ping: the peer answers with a [`Message::PingReply`] of the same bytes.
pub const MSG_PING: u8 = 0x01;
/// Ping reply.
pub const MSG_PING_REPLY: u8 = 0x41;
/// Set ack window.
pub const MSG_ACK_WINDOW: u8 = 0x0a;
/// Flow open.
pub const MSG_FLOW_OPEN: u8 = 0x10;
/// Flow open with a return association.
pub const MSG_FLOW_OPEN_RETURN: u8 = 0x30;
/// User data, the last (or only) fragment of a message.
pub const MSG_DATA_LAST: u8 = 0x1d;
/// User data, more fragments of the message follow.
pub const MSG_DATA_MORE: u8 = 0x3d;
/// Abandon message(s).
pub const MSG_DATA_ABANDON: u8 = 0x1a;
/// Flow close.
pub const MSG_FLOW_CLOSE: u8 = 0x1c;
/// Data ack with buffer advertisement.
pub const MSG_DATA_ACK: u8 = 0x5a;
/// Flow close ack.
pub const MSG_FLOW_CLOSE_ACK: u8 = 0x5c;
/// Flow exception (the receiver refuses or ends a flow).
pub const MSG_FLOW_EXCEPTION: u8 = 0x5e;

/// The reason a receiver gives in a [`Message::FlowException`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionReason {
    /// The reason code (the references use 0 for "refused").
    pub code: u64,
    /// A human-readable description; empty when absent (an empty one is
    /// not written, as the references do).
    pub description: String,
}

/// One RTWebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `01`: asks the peer to echo `data` in a ping reply.
    Ping(Bytes),
    /// `41`: the echo of a ping.
    PingReply(Bytes),
    /// `0a`: the sender asks for a data ack at least every this many bytes
    /// of user data messages (the receiver raises it to its minimum, 2800).
    SetAckWindow(u64),
    /// `10` / `30`: the sender opens a flow.
    FlowOpen {
        /// The new flow's ID, in the sender's ID space.
        flow: u64,
        /// The receiver's own sending flow that this flow answers, if any
        /// (`30` when present).
        return_association: Option<u64>,
        /// The flow's metadata: the rest of the message.
        metadata: Bytes,
    },
    /// `1d` / `3d`: a fragment of a user message.
    Data {
        /// The flow.
        flow: u64,
        /// `true` (`3d`) when more fragments of the same message follow,
        /// `false` (`1d`) on the last one. A whole message is one `1d`.
        more: bool,
        /// The fragment: the rest of the message.
        fragment: Bytes,
    },
    /// `1a`: the sender abandons `count` messages: the one being assembled,
    /// if any, and then messages never sent.
    Abandon {
        /// The flow.
        flow: u64,
        /// How many messages (at least 1; the wire carries count − 1,
        /// omitted when the count is 1).
        count: u64,
    },
    /// `1c`: the sender closes the flow; no more data follows.
    FlowClose {
        /// The flow.
        flow: u64,
    },
    /// `5a`: the receiver acknowledges bytes and advertises its buffer.
    DataAck {
        /// The acknowledged flow (in the data sender's ID space).
        flow: u64,
        /// Bytes of user data messages, headers included, received on the
        /// flow since the previous ack.
        delta_bytes: u64,
        /// How many bytes past everything acknowledged the sender may send.
        buffer_advertisement: u64,
    },
    /// `5c`: the receiver acknowledges a flow close; the sender may reuse
    /// the ID.
    FlowCloseAck {
        /// The flow.
        flow: u64,
    },
    /// `5e`: the receiver refuses or ends a flow.
    FlowException {
        /// The flow (in the data sender's ID space).
        flow: u64,
        /// Code and description, when given.
        reason: Option<ExceptionReason>,
    },
}

/// Why bytes are not an RTWebSocket message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A WebSocket message of no bytes.
    #[error("an empty message")]
    Empty,
    /// A type code `protocol` does not define.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// A VLU field is missing, truncated or too long.
    #[error("message type {kind:#04x}: bad VLU field: {error}")]
    Vlu {
        /// The message type.
        kind: u8,
        /// What was wrong.
        error: VluError,
    },
    /// An abandon count of 2^64 (count − 1 = 2^64 − 1 cannot be written by
    /// the 63-bit VLUs either; kept for totality).
    #[error("abandon count overflows")]
    AbandonCountOverflow,
}

/// A cursor over the fields of one message.
struct Fields<'a> {
    kind: u8,
    rest: &'a [u8],
}

impl Fields<'_> {
    fn vlu(&mut self) -> Result<u64, DecodeError> {
        let kind = self.kind;
        let (value, len) =
            decode_vlu(self.rest).map_err(|error| DecodeError::Vlu { kind, error })?;
        self.rest = &self.rest[len..];
        Ok(value)
    }

    fn has_more(&self) -> bool {
        !self.rest.is_empty()
    }

    /// How many bytes were read so far from `whole`.
    fn offset_in(&self, whole: &Bytes) -> usize {
        whole.len() - self.rest.len()
    }
}

impl Message {
    /// Decodes one WebSocket binary message. Byte strings (ping data,
    /// metadata, fragments) are slices of `input`, not copies.
    pub fn decode(input: &Bytes) -> Result<Message, DecodeError> {
        let (&kind, rest) = input.split_first().ok_or(DecodeError::Empty)?;
        let mut f = Fields { kind, rest };
        let message = match kind {
            MSG_PING => Message::Ping(input.slice(1..)),
            MSG_PING_REPLY => Message::PingReply(input.slice(1..)),
            MSG_ACK_WINDOW => Message::SetAckWindow(f.vlu()?),
            MSG_FLOW_OPEN | MSG_FLOW_OPEN_RETURN => {
                let flow = f.vlu()?;
                let return_association = if kind == MSG_FLOW_OPEN_RETURN {
                    Some(f.vlu()?)
                } else {
                    None
                };
                Message::FlowOpen {
                    flow,
                    return_association,
                    metadata: input.slice(f.offset_in(input)..),
                }
            }
            MSG_DATA_LAST | MSG_DATA_MORE => {
                let flow = f.vlu()?;
                Message::Data {
                    flow,
                    more: kind == MSG_DATA_MORE,
                    fragment: input.slice(f.offset_in(input)..),
                }
            }
            MSG_DATA_ABANDON => {
                let flow = f.vlu()?;
                let count_minus_one = if f.has_more() { f.vlu()? } else { 0 };
                let count = count_minus_one
                    .checked_add(1)
                    .ok_or(DecodeError::AbandonCountOverflow)?;
                Message::Abandon { flow, count }
            }
            MSG_FLOW_CLOSE => Message::FlowClose { flow: f.vlu()? },
            MSG_DATA_ACK => Message::DataAck {
                flow: f.vlu()?,
                delta_bytes: f.vlu()?,
                buffer_advertisement: f.vlu()?,
            },
            MSG_FLOW_CLOSE_ACK => Message::FlowCloseAck { flow: f.vlu()? },
            MSG_FLOW_EXCEPTION => {
                let flow = f.vlu()?;
                let reason = if f.has_more() {
                    let code = f.vlu()?;
                    // Invalid UTF-8 is replaced, not refused: the JavaScript
                    // reference skips bad bytes too, and the text is only
                    // ever shown to a person.
                    let description = String::from_utf8_lossy(f.rest).into_owned();
                    Some(ExceptionReason { code, description })
                } else {
                    None
                };
                Message::FlowException { flow, reason }
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        Ok(message)
    }

    /// The type code this message is written with.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Ping(_) => MSG_PING,
            Message::PingReply(_) => MSG_PING_REPLY,
            Message::SetAckWindow(_) => MSG_ACK_WINDOW,
            Message::FlowOpen {
                return_association: None,
                ..
            } => MSG_FLOW_OPEN,
            Message::FlowOpen { .. } => MSG_FLOW_OPEN_RETURN,
            Message::Data { more: false, .. } => MSG_DATA_LAST,
            Message::Data { more: true, .. } => MSG_DATA_MORE,
            Message::Abandon { .. } => MSG_DATA_ABANDON,
            Message::FlowClose { .. } => MSG_FLOW_CLOSE,
            Message::DataAck { .. } => MSG_DATA_ACK,
            Message::FlowCloseAck { .. } => MSG_FLOW_CLOSE_ACK,
            Message::FlowException { .. } => MSG_FLOW_EXCEPTION,
        }
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Message::Ping(data) | Message::PingReply(data) => data.len(),
            Message::SetAckWindow(window) => vlu_len(*window),
            Message::FlowOpen {
                flow,
                return_association,
                metadata,
            } => vlu_len(*flow) + return_association.map_or(0, vlu_len) + metadata.len(),
            Message::Data { flow, fragment, .. } => vlu_len(*flow) + fragment.len(),
            Message::Abandon { flow, count } => {
                vlu_len(*flow) + if *count > 1 { vlu_len(count - 1) } else { 0 }
            }
            Message::FlowClose { flow } | Message::FlowCloseAck { flow } => vlu_len(*flow),
            Message::DataAck {
                flow,
                delta_bytes,
                buffer_advertisement,
            } => vlu_len(*flow) + vlu_len(*delta_bytes) + vlu_len(*buffer_advertisement),
            Message::FlowException { flow, reason } => {
                vlu_len(*flow)
                    + reason
                        .as_ref()
                        .map_or(0, |r| vlu_len(r.code) + r.description.len())
            }
        }
    }

    /// Appends the message's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.kind());
        match self {
            Message::Ping(data) | Message::PingReply(data) => out.extend_from_slice(data),
            Message::SetAckWindow(window) => encode_vlu(*window, out),
            Message::FlowOpen {
                flow,
                return_association,
                metadata,
            } => {
                encode_vlu(*flow, out);
                if let Some(assoc) = return_association {
                    encode_vlu(*assoc, out);
                }
                out.extend_from_slice(metadata);
            }
            Message::Data { flow, fragment, .. } => {
                encode_vlu(*flow, out);
                out.extend_from_slice(fragment);
            }
            Message::Abandon { flow, count } => {
                encode_vlu(*flow, out);
                // As the references write it: count − 1 only when not 0.
                if *count > 1 {
                    encode_vlu(count - 1, out);
                }
            }
            Message::FlowClose { flow } | Message::FlowCloseAck { flow } => encode_vlu(*flow, out),
            Message::DataAck {
                flow,
                delta_bytes,
                buffer_advertisement,
            } => {
                encode_vlu(*flow, out);
                encode_vlu(*delta_bytes, out);
                encode_vlu(*buffer_advertisement, out);
            }
            Message::FlowException { flow, reason } => {
                encode_vlu(*flow, out);
                if let Some(reason) = reason {
                    encode_vlu(reason.code, out);
                    out.extend_from_slice(reason.description.as_bytes());
                }
            }
        }
    }

    /// The message as one WebSocket binary message.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(bytes: &[u8]) -> Bytes {
        Bytes::copy_from_slice(bytes)
    }

    /// `message` encodes to exactly `wire`, and `wire` decodes to `message`.
    fn layout(message: Message, wire: &[u8]) {
        assert_eq!(message.encode().as_ref(), wire, "{message:?}");
        assert_eq!(message.encoded_len(), wire.len(), "{message:?}");
        assert_eq!(Message::decode(&b(wire)), Ok(message));
    }

    #[test]
    fn ping_and_reply_carry_their_bytes() {
        layout(Message::Ping(b(b"ping!")), b"\x01ping!");
        layout(Message::PingReply(b(b"ping!")), b"\x41ping!");
        layout(Message::Ping(Bytes::new()), b"\x01");
    }

    #[test]
    fn set_ack_window_is_one_vlu() {
        layout(Message::SetAckWindow(2800), &[0x0a, 0x95, 0x70]);
    }

    #[test]
    fn flow_open_without_and_with_return_association() {
        layout(
            Message::FlowOpen {
                flow: 5,
                return_association: None,
                metadata: b(b"TC"),
            },
            &[0x10, 0x05, b'T', b'C'],
        );
        layout(
            Message::FlowOpen {
                flow: 200,
                return_association: Some(3),
                metadata: b(&[0x00, 0x54, 0x43]),
            },
            &[0x30, 0x81, 0x48, 0x03, 0x00, 0x54, 0x43],
        );
        layout(
            Message::FlowOpen {
                flow: 0,
                return_association: None,
                metadata: Bytes::new(),
            },
            &[0x10, 0x00],
        );
    }

    #[test]
    fn data_fragments_last_and_more() {
        layout(
            Message::Data {
                flow: 1,
                more: false,
                fragment: b(b"whole"),
            },
            b"\x1d\x01whole",
        );
        layout(
            Message::Data {
                flow: 1,
                more: true,
                fragment: b(b"first"),
            },
            b"\x3d\x01first",
        );
        layout(
            Message::Data {
                flow: 130,
                more: false,
                fragment: Bytes::new(),
            },
            &[0x1d, 0x81, 0x02],
        );
    }

    #[test]
    fn abandon_omits_count_minus_one_when_zero() {
        layout(Message::Abandon { flow: 2, count: 1 }, &[0x1a, 0x02]);
        layout(Message::Abandon { flow: 2, count: 3 }, &[0x1a, 0x02, 0x02]);
        // An explicit zero is accepted too.
        assert_eq!(
            Message::decode(&b(&[0x1a, 0x02, 0x00])),
            Ok(Message::Abandon { flow: 2, count: 1 })
        );
    }

    #[test]
    fn flow_close_and_its_ack() {
        layout(Message::FlowClose { flow: 7 }, &[0x1c, 0x07]);
        layout(Message::FlowCloseAck { flow: 7 }, &[0x5c, 0x07]);
    }

    #[test]
    fn data_ack_has_delta_then_advertisement() {
        layout(
            Message::DataAck {
                flow: 1,
                delta_bytes: 1402,
                buffer_advertisement: 2_097_151,
            },
            &[0x5a, 0x01, 0x8a, 0x7a, 0xff, 0xff, 0x7f],
        );
    }

    #[test]
    fn flow_exception_with_nothing_a_code_or_a_description() {
        layout(
            Message::FlowException {
                flow: 4,
                reason: None,
            },
            &[0x5e, 0x04],
        );
        layout(
            Message::FlowException {
                flow: 4,
                reason: Some(ExceptionReason {
                    code: 0,
                    description: String::new(),
                }),
            },
            &[0x5e, 0x04, 0x00],
        );
        layout(
            Message::FlowException {
                flow: 4,
                reason: Some(ExceptionReason {
                    code: 0,
                    description: "not accepted".into(),
                }),
            },
            b"\x5e\x04\x00not accepted",
        );
    }

    #[test]
    fn invalid_utf8_in_a_description_is_replaced() {
        let Ok(Message::FlowException {
            reason: Some(reason),
            ..
        }) = Message::decode(&b(&[0x5e, 0x01, 0x00, 0xff, b'x']))
        else {
            panic!("an exception");
        };
        assert_eq!(reason.description, "\u{fffd}x");
    }

    #[test]
    fn trailing_bytes_after_fixed_fields_are_ignored() {
        assert_eq!(
            Message::decode(&b(&[0x1c, 0x07, 0xaa])),
            Ok(Message::FlowClose { flow: 7 })
        );
        assert_eq!(
            Message::decode(&b(&[0x0a, 0x01, 0x02])),
            Ok(Message::SetAckWindow(1))
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert_eq!(Message::decode(&Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Message::decode(&b(&[0x99])),
            Err(DecodeError::UnknownType(0x99))
        );
        assert_eq!(
            Message::decode(&b(&[0x5a, 0x01, 0x02])),
            Err(DecodeError::Vlu {
                kind: 0x5a,
                error: VluError::Truncated
            })
        );
        assert_eq!(
            Message::decode(&b(&[0x1d, 0xff, 0xff])),
            Err(DecodeError::Vlu {
                kind: 0x1d,
                error: VluError::Truncated
            })
        );
        let mut long = vec![0x10];
        long.extend_from_slice(&[0x80; 12]);
        assert_eq!(
            Message::decode(&b(&long)),
            Err(DecodeError::Vlu {
                kind: 0x10,
                error: VluError::TooLong
            })
        );
        assert!(
            Message::decode(&b(&[0x30, 0x01])).is_err(),
            "return association missing"
        );
    }

    #[test]
    fn decoded_byte_strings_share_the_input() {
        let input = b(b"\x1d\x01payload");
        let Ok(Message::Data { fragment, .. }) = Message::decode(&input) else {
            panic!("data");
        };
        assert_eq!(fragment.as_ptr(), input[2..].as_ptr());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_and_reencode_stably(input in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(message) = Message::decode(&Bytes::from(input)) {
                let again = Message::decode(&message.encode());
                proptest::prop_assert_eq!(again, Ok(message));
            }
        }
    }
}
