//! AMF0, the encoding of RTMP command (type 20) and data (type 18) messages.

use bytes::BytesMut;

use super::{amf3, AmfError};

/// One decoded AMF0 value.
///
/// Object-like values keep their members in wire order as a `Vec`, because
/// order is visible to peers (FFmpeg and Flash read `onMetaData` positionally
/// in places) and duplicates must survive a round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Marker 0x00: an IEEE-754 double, AMF0's only number type.
    Number(f64),
    /// Marker 0x01.
    Boolean(bool),
    /// Markers 0x02 (short string) and 0x0c (long string): the encoder
    /// picks the marker by length, so both decode to this variant.
    String(String),
    /// Marker 0x03: an anonymous object.
    Object(Vec<(String, Value)>),
    /// Marker 0x05.
    Null,
    /// Marker 0x06.
    Undefined,
    /// Marker 0x07: a reference to the n-th complex value (object, typed
    /// object, ECMA array, strict array) decoded earlier in the same message.
    /// Kept unresolved so that references cannot multiply memory.
    Reference(u16),
    /// Marker 0x08: an associative array (used by `onMetaData`).
    EcmaArray(Vec<(String, Value)>),
    /// Marker 0x0a: a dense array.
    StrictArray(Vec<Value>),
    /// Marker 0x0b: milliseconds since the Unix epoch, plus a time-zone field
    /// that the specification says to send as zero and ignore.
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Time-zone offset in minutes; kept for round trips only.
        timezone: i16,
    },
    /// Marker 0x0d: an unsupported type placeholder.
    Unsupported,
    /// Marker 0x0f: an XML document as text.
    XmlDocument(String),
    /// Marker 0x10: an object with a registered class name.
    TypedObject {
        /// The class alias.
        class_name: String,
        /// Members in wire order.
        properties: Vec<(String, Value)>,
    },
    /// Marker 0x11: the switch to AMF3 for one value (how Flash/AIR send AMF3
    /// values inside AMF0 messages and inside type 17/15 messages).
    AvmPlus(amf3::Value),
}

impl Value {
    /// The text of a string value, looking through an AMF3 switch, so that
    /// command parsing works the same for AMF0 and AMF3 clients.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::XmlDocument(s) => Some(s),
            Value::AvmPlus(v) => v.as_str(),
            _ => None,
        }
    }

    /// The numeric value, looking through an AMF3 switch (where integers and
    /// doubles are distinct types).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::AvmPlus(v) => v.as_f64(),
            _ => None,
        }
    }

    /// The boolean value, looking through an AMF3 switch.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            Value::AvmPlus(v) => v.as_bool(),
            _ => None,
        }
    }

    /// Whether this is `null` or `undefined` in either encoding; commands use
    /// either for "no command object".
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null | Value::Undefined => true,
            Value::AvmPlus(v) => v.is_null(),
            _ => false,
        }
    }

    /// A member of an AMF0 object, ECMA array or typed object by name (first
    /// match). AMF3 members are reached through [`amf3::Value::get`].
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props)
            | Value::EcmaArray(props)
            | Value::TypedObject {
                properties: props, ..
            } => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether this value is object-like (has named members).
    pub fn is_object(&self) -> bool {
        match self {
            Value::Object(_) | Value::EcmaArray(_) | Value::TypedObject { .. } => true,
            Value::AvmPlus(v) => v.is_object(),
            _ => false,
        }
    }

    /// Shorthand for building the anonymous objects that status replies use.
    pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

/// Decodes a sequence of AMF0 values that share one reference table, as the
/// values of one RTMP message do.
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    // The helper implementing AMF fills in the rest of the state.
}

impl<'a> Decoder<'a> {
    /// Starts decoding `input` with an empty reference table.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder { input }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        self.input
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Value, AmfError> {
        todo!("AMF0 decode")
    }
}

/// Decodes every value in `input` (one message body).
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut d = Decoder::new(input);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.decode()?);
    }
    Ok(out)
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), AmfError> {
    let _ = (value, out);
    todo!("AMF0 encode")
}

/// Appends the encodings of `values`, in order, to `out`.
pub fn encode_all(values: &[Value], out: &mut BytesMut) -> Result<(), AmfError> {
    values.iter().try_for_each(|v| encode(v, out))
}
