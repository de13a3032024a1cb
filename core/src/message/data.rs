//! Data messages (types 18 and 15): `@setDataFrame`, `@clearDataFrame` and
//! other handlers, with the metadata body kept as the publisher's bytes.

use bytes::Bytes;

use super::{MessageError, Value};
use crate::amf::amf0;

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

pub(super) fn decode_data(body: Bytes, max_depth: usize) -> Result<Data, MessageError> {
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
