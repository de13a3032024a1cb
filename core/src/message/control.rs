//! Protocol control's typed parts: User Control events (type 4) and Set
//! Peer Bandwidth's limit type, with their fixed binary layouts.

use bytes::{BufMut, Bytes, BytesMut};

use super::{be_u32, MessageError};

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

pub(super) fn decode_user_control(p: &Bytes) -> Result<UserControl, MessageError> {
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

pub(super) fn encode_user_control(uc: &UserControl) -> Bytes {
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
