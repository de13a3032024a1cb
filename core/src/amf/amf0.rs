//! AMF0, the encoding of RTMP command (type 20) and data (type 18) messages.

use bytes::{BufMut, BytesMut};

use super::{amf3, enter, enter_within, AmfError, Reader};

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
    /// Heap memory this value holds beyond its own size (strings, member
    /// lists, nested values), by capacity: what keeping it costs, so queues
    /// of decoded values can be bounded in true memory.
    pub fn heap_size(&self) -> usize {
        let members = |m: &Vec<(String, Value)>| {
            m.capacity() * std::mem::size_of::<(String, Value)>()
                + m.iter()
                    .map(|(k, v)| k.capacity() + v.heap_size())
                    .sum::<usize>()
        };
        match self {
            Value::String(s) | Value::XmlDocument(s) => s.capacity(),
            Value::Object(m) | Value::EcmaArray(m) => members(m),
            Value::TypedObject {
                class_name,
                properties,
            } => class_name.capacity() + members(properties),
            Value::StrictArray(items) => {
                items.capacity() * std::mem::size_of::<Value>()
                    + items.iter().map(Value::heap_size).sum::<usize>()
            }
            Value::AvmPlus(v) => v.heap_size(),
            Value::Number(_)
            | Value::Boolean(_)
            | Value::Null
            | Value::Undefined
            | Value::Reference(_)
            | Value::Date { .. }
            | Value::Unsupported => 0,
        }
    }

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

/// Type markers, named as in the AMF0 specification.
mod marker {
    pub(super) const NUMBER: u8 = 0x00;
    pub(super) const BOOLEAN: u8 = 0x01;
    pub(super) const STRING: u8 = 0x02;
    pub(super) const OBJECT: u8 = 0x03;
    pub(super) const MOVIECLIP: u8 = 0x04;
    pub(super) const NULL: u8 = 0x05;
    pub(super) const UNDEFINED: u8 = 0x06;
    pub(super) const REFERENCE: u8 = 0x07;
    pub(super) const ECMA_ARRAY: u8 = 0x08;
    pub(super) const OBJECT_END: u8 = 0x09;
    pub(super) const STRICT_ARRAY: u8 = 0x0a;
    pub(super) const DATE: u8 = 0x0b;
    pub(super) const LONG_STRING: u8 = 0x0c;
    pub(super) const UNSUPPORTED: u8 = 0x0d;
    pub(super) const RECORDSET: u8 = 0x0e;
    pub(super) const XML_DOCUMENT: u8 = 0x0f;
    pub(super) const TYPED_OBJECT: u8 = 0x10;
    pub(super) const AVMPLUS: u8 = 0x11;
}

/// The bytes that close an object: an empty name, then marker 0x09.
const END_MARKER: [u8; 3] = [0x00, 0x00, marker::OBJECT_END];

/// Decodes a sequence of AMF0 values that share one reference table, as the
/// values of one RTMP message do.
///
/// The AMF0 reference table (marker 0x07) and the AMF3 tables used by AVM+
/// switched values both live as long as the decoder, i.e. one message: a
/// reference may name a complex value from an earlier value of the same
/// message. Errors are sticky: after a failure, every later call returns the
/// same error and [`remaining`](Self::remaining) still starts at the value
/// that failed, because the bytes after it cannot be trusted to be aligned.
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    /// Offset of the first byte of the next value.
    pos: usize,
    /// How many complex values (objects, typed objects, ECMA and strict
    /// arrays) have been opened; only the count is needed to validate a
    /// reference, since references stay unresolved.
    complex_count: usize,
    /// AMF3 string, object and trait tables, shared by every AVM+ value of
    /// this message.
    amf3: amf3::Tables,
    failed: Option<AmfError>,
}

impl<'a> Decoder<'a> {
    /// Starts decoding `input` with an empty reference table.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            complex_count: 0,
            amf3: amf3::Tables::default(),
            failed: None,
        }
    }

    /// Like [`Decoder::new`], refusing nesting deeper than `max_depth`
    /// (capped at [`MAX_DEPTH`](super::MAX_DEPTH), AMF3 values behind
    /// AVM+ switches included) with [`AmfError::TooDeep`].
    pub fn with_max_depth(input: &'a [u8], max_depth: usize) -> Self {
        let mut d = Self::new(input);
        d.amf3.max_depth = max_depth.min(super::MAX_DEPTH);
        d
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    /// How many bytes have been consumed, so that callers can report where a
    /// message went wrong.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Value, AmfError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut r = Reader::new(self.input, self.pos);
        let mut state = State {
            complex_count: &mut self.complex_count,
            amf3: &mut self.amf3,
        };
        match state.value(&mut r, 0) {
            Ok(v) => {
                self.pos = r.pos();
                Ok(v)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// The mutable tables of one decode, split from the input so that the
/// recursive reader can borrow both.
struct State<'t> {
    complex_count: &'t mut usize,
    amf3: &'t mut amf3::Tables,
}

impl State<'_> {
    /// Reads one value (marker included) with `depth` enclosing containers.
    fn value(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let m = r.u8()?;
        Ok(match m {
            marker::NUMBER => Value::Number(r.f64()?),
            marker::BOOLEAN => Value::Boolean(r.u8()? != 0),
            marker::STRING => {
                let len = usize::from(r.u16()?);
                Value::String(r.str(len)?.to_owned())
            }
            marker::OBJECT => {
                let depth = enter_within(depth, self.amf3.max_depth)?;
                *self.complex_count += 1;
                Value::Object(self.members(r, depth, false)?)
            }
            marker::NULL => Value::Null,
            marker::UNDEFINED => Value::Undefined,
            marker::REFERENCE => {
                let index = r.u16()?;
                if usize::from(index) >= *self.complex_count {
                    return Err(AmfError::BadReference {
                        version: 0,
                        table: "object",
                        index: u32::from(index),
                        len: *self.complex_count,
                    });
                }
                Value::Reference(index)
            }
            marker::ECMA_ARRAY => {
                let depth = enter_within(depth, self.amf3.max_depth)?;
                // The count is only a hint: encoders disagree on whether it
                // counts anything at all, so members run to the end marker.
                let _count_hint = r.u32()?;
                *self.complex_count += 1;
                Value::EcmaArray(self.members(r, depth, true)?)
            }
            marker::OBJECT_END => {
                return Err(AmfError::Malformed("object end marker outside an object"))
            }
            marker::STRICT_ARRAY => {
                let depth = enter_within(depth, self.amf3.max_depth)?;
                let count = r.u32()? as usize;
                // Every element takes at least its marker byte.
                r.require(count)?;
                *self.complex_count += 1;
                let mut items = Vec::with_capacity(super::capacity(count, r.remaining(), 1));
                for _ in 0..count {
                    items.push(self.value(r, depth)?);
                }
                Value::StrictArray(items)
            }
            marker::DATE => Value::Date {
                millis: r.f64()?,
                timezone: r.i16()?,
            },
            marker::LONG_STRING => {
                let len = r.u32()? as usize;
                Value::String(r.str(len)?.to_owned())
            }
            marker::UNSUPPORTED => Value::Unsupported,
            marker::XML_DOCUMENT => {
                let len = r.u32()? as usize;
                Value::XmlDocument(r.str(len)?.to_owned())
            }
            marker::TYPED_OBJECT => {
                let depth = enter_within(depth, self.amf3.max_depth)?;
                let len = usize::from(r.u16()?);
                let class_name = r.str(len)?.to_owned();
                *self.complex_count += 1;
                let properties = self.members(r, depth, false)?;
                Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::AVMPLUS => Value::AvmPlus(self.amf3.value(r, depth)?),
            marker::MOVIECLIP | marker::RECORDSET => {
                return Err(AmfError::UnsupportedMarker {
                    version: 0,
                    marker: m,
                })
            }
            _ => {
                return Err(AmfError::UnknownMarker {
                    version: 0,
                    marker: m,
                })
            }
        })
    }

    /// Reads `key value` pairs up to the `00 00 09` end marker.
    ///
    /// An empty key followed by a value marker is an ordinary member (Flash
    /// and BlazeDS accept it; only `09` after an empty key ends the object).
    /// With `lenient_end`, input that stops between members, or with only
    /// part of the end marker (`00` or `00 00`), counts as the end.
    /// librtmp's `AMF_Decode` loops only while bytes remain and so accepts
    /// this, and FFmpeg's FLV demuxer keeps the members it parsed before the
    /// missing marker; some encoders' `onMetaData` ECMA arrays rely on it
    /// when the array is the message's last value. Anywhere else the marker
    /// is required, because without it the next value would be misread as a
    /// member.
    fn members(
        &mut self,
        r: &mut Reader<'_>,
        depth: usize,
        lenient_end: bool,
    ) -> Result<Vec<(String, Value)>, AmfError> {
        let mut members = Vec::new();
        loop {
            if lenient_end && END_MARKER.starts_with(r.rest()) && r.remaining() < 3 {
                r.bytes(r.remaining())?;
                return Ok(members);
            }
            let len = usize::from(r.u16()?);
            let key = r.str(len)?;
            if r.peek_u8() == Some(marker::OBJECT_END) {
                if !key.is_empty() {
                    return Err(AmfError::Malformed("object end marker after a member name"));
                }
                r.u8()?;
                return Ok(members);
            }
            let value = self.value(r, depth)?;
            members.push((key.to_owned(), value));
        }
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

/// Encodes a sequence of AMF0 values that share one reference table, as the
/// values of one RTMP message do: the mirror of [`Decoder`].
///
/// It counts the complex values it writes (and, for AVM+ values, the AMF3
/// object table, scoped per message as the decoder scopes it), so that a
/// [`Value::Reference`] or [`amf3::Value::ObjectReference`] is written only
/// when it names a value already in this output. A typed command that keeps
/// some of a peer's values and drops others could otherwise forward a
/// reference to nothing.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    written: Written,
}

/// How many entries each reference table of the output holds so far.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    complex: usize,
    amf3_objects: usize,
}

impl Encoder {
    /// Starts an output with empty reference tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the encoding of `value` to `out`.
    ///
    /// Strings of 65536 bytes or more use the long-string marker (0x0c).
    /// Names (member keys, class names) have only a 16-bit length field, so a
    /// longer one fails with [`AmfError::OutOfRange`], as does any length or
    /// count beyond 32 bits, a reference to a value not written before it,
    /// and nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH) (checked so
    /// that we never write what a decoder like ours refuses, and a runaway
    /// structure fails instead of overflowing the stack). On error nothing is
    /// appended: `out` is truncated back to its length on entry and the
    /// tables are as they were. AVM+ values never use string or trait
    /// references (see [`amf3::encode`]).
    pub fn encode(&mut self, value: &Value, out: &mut BytesMut) -> Result<(), AmfError> {
        let (start, saved) = (out.len(), self.written);
        let result = write_value(value, out, 0, &mut self.written);
        if result.is_err() {
            out.truncate(start);
            self.written = saved;
        }
        result
    }
}

/// Appends the encoding of `value`, as the first value of a message, to
/// `out`; see [`Encoder::encode`].
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), AmfError> {
    Encoder::new().encode(value, out)
}

/// Appends the encodings of `values`, in order and sharing one reference
/// table, to `out`. On error nothing is appended.
pub fn encode_all(values: &[Value], out: &mut BytesMut) -> Result<(), AmfError> {
    let start = out.len();
    let mut encoder = Encoder::new();
    for value in values {
        if let Err(e) = encoder.encode(value, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

fn write_value(
    value: &Value,
    out: &mut BytesMut,
    depth: usize,
    w: &mut Written,
) -> Result<(), AmfError> {
    match value {
        Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(marker::STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(marker::LONG_STRING);
                write_long_text(s, out)?;
            }
        },
        Value::Object(members) => {
            let depth = enter(depth)?;
            out.put_u8(marker::OBJECT);
            // Counted before its members, as the decoder counts it.
            w.complex += 1;
            write_members(members, out, depth, w)?;
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::Reference(index) => {
            if usize::from(*index) >= w.complex {
                return Err(AmfError::OutOfRange(
                    "AMF0 reference to a value not written before it",
                ));
            }
            out.put_u8(marker::REFERENCE);
            out.put_u16(*index);
        }
        Value::EcmaArray(members) => {
            let depth = enter(depth)?;
            let count = u32::try_from(members.len())
                .map_err(|_| AmfError::OutOfRange("ECMA array with more than 2^32 members"))?;
            out.put_u8(marker::ECMA_ARRAY);
            // Counted before its members, as the decoder counts it.
            w.complex += 1;
            out.put_u32(count);
            write_members(members, out, depth, w)?;
        }
        Value::StrictArray(items) => {
            let depth = enter(depth)?;
            let count = u32::try_from(items.len())
                .map_err(|_| AmfError::OutOfRange("strict array with more than 2^32 items"))?;
            out.put_u8(marker::STRICT_ARRAY);
            // Counted before its members, as the decoder counts it.
            w.complex += 1;
            out.put_u32(count);
            for item in items {
                write_value(item, out, depth, w)?;
            }
        }
        Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
        Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            write_long_text(s, out)?;
        }
        Value::TypedObject {
            class_name,
            properties,
        } => {
            let depth = enter(depth)?;
            out.put_u8(marker::TYPED_OBJECT);
            // Counted before its members, as the decoder counts it.
            w.complex += 1;
            write_name(
                class_name,
                out,
                "typed object class name longer than 65535 bytes",
            )?;
            write_members(properties, out, depth, w)?;
        }
        Value::AvmPlus(v) => {
            out.put_u8(marker::AVMPLUS);
            amf3::write_value(v, out, depth, &mut w.amf3_objects)?;
        }
    }
    Ok(())
}

fn write_members(
    members: &[(String, Value)],
    out: &mut BytesMut,
    depth: usize,
    w: &mut Written,
) -> Result<(), AmfError> {
    for (key, value) in members {
        write_name(key, out, "object key longer than 65535 bytes")?;
        write_value(value, out, depth, w)?;
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
    Ok(())
}

fn write_name(name: &str, out: &mut BytesMut, what: &'static str) -> Result<(), AmfError> {
    let len = u16::try_from(name.len()).map_err(|_| AmfError::OutOfRange(what))?;
    out.put_u16(len);
    out.put_slice(name.as_bytes());
    Ok(())
}

fn write_long_text(s: &str, out: &mut BytesMut) -> Result<(), AmfError> {
    let len = u32::try_from(s.len())
        .map_err(|_| AmfError::OutOfRange("string longer than 2^32 bytes"))?;
    out.put_u32(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::amf::MAX_DEPTH;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(v, &mut out).expect("encodable");
        out.to_vec()
    }

    fn dec(bytes: &[u8]) -> Result<Value, AmfError> {
        Decoder::new(bytes).decode()
    }

    fn round_trip(v: &Value) {
        let bytes = enc(v);
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.decode().as_ref(), Ok(v));
        assert!(d.is_empty());
    }

    /// Raw-bytes builders, independent of the encoder under test.
    fn key(out: &mut Vec<u8>, k: &str) {
        out.extend((k.len() as u16).to_be_bytes());
        out.extend(k.as_bytes());
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.push(0x02);
        key(out, s);
    }

    fn number(out: &mut Vec<u8>, n: f64) {
        out.push(0x00);
        out.extend(n.to_be_bytes());
    }

    const END: [u8; 3] = [0x00, 0x00, 0x09];

    #[test]
    fn connect_string_encodes_to_known_bytes() {
        assert_eq!(
            enc(&Value::from("connect")),
            [0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't']
        );
    }

    #[test]
    fn number_one_encodes_to_known_bytes() {
        assert_eq!(
            enc(&Value::Number(1.0)),
            [0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn reference_encodes_as_marker_and_index() {
        let values: Vec<Value> = std::iter::repeat_with(|| Value::StrictArray(vec![]))
            .take(0x0103)
            .chain([Value::Reference(0x0102)])
            .collect();
        let mut out = BytesMut::new();
        encode_all(&values, &mut out).unwrap();
        assert_eq!(&out[out.len() - 3..], [0x07, 0x01, 0x02]);
    }

    #[test]
    fn reference_to_a_value_not_yet_written_is_not_encoded() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let values = [Value::object([("a", Value::Null)]), Value::Reference(1)];
        assert!(matches!(
            encode_all(&values, &mut out),
            Err(AmfError::OutOfRange(_))
        ));
        assert_eq!(&out[..], b"keep", "nothing appended on error");
    }

    #[test]
    fn encoder_shares_one_table_across_values() {
        let mut e = Encoder::new();
        let mut out = BytesMut::new();
        assert!(e.encode(&Value::Reference(0), &mut out).is_err());
        e.encode(&Value::object([("a", Value::Null)]), &mut out)
            .unwrap();
        e.encode(&Value::Reference(0), &mut out).unwrap();
        assert_eq!(decode_all(&out).unwrap()[1], Value::Reference(0));
    }

    #[test]
    fn avmplus_object_reference_must_name_an_earlier_avmplus_value() {
        use crate::amf::amf3;
        let obj = Value::AvmPlus(amf3::Value::Array {
            assoc: vec![],
            dense: vec![],
        });
        let reference = Value::AvmPlus(amf3::Value::ObjectReference(0));
        let mut out = BytesMut::new();
        assert!(encode_all(std::slice::from_ref(&reference), &mut out).is_err());
        encode_all(&[obj, reference.clone()], &mut out).unwrap();
        assert_eq!(decode_all(&out).unwrap()[1], reference);
    }

    #[test]
    fn small_markers_encode_to_known_bytes() {
        assert_eq!(enc(&Value::Boolean(true)), [0x01, 0x01]);
        assert_eq!(enc(&Value::Null), [0x05]);
        assert_eq!(enc(&Value::Undefined), [0x06]);
        assert_eq!(enc(&Value::Unsupported), [0x0d]);
        assert_eq!(enc(&Value::object::<&str>([])), [0x03, 0x00, 0x00, 0x09]);
        assert_eq!(
            enc(&Value::EcmaArray(vec![])),
            [0x08, 0, 0, 0, 0, 0x00, 0x00, 0x09]
        );
        assert_eq!(
            enc(&Value::StrictArray(vec![Value::Null])),
            [0x0a, 0, 0, 0, 1, 0x05]
        );
    }

    #[test]
    fn every_marker_round_trips() {
        let members = vec![
            ("a".to_owned(), Value::Number(-0.5)),
            (String::new(), Value::Boolean(false)),
        ];
        for v in [
            Value::Number(f64::MAX),
            Value::Boolean(false),
            Value::Boolean(true),
            Value::String(String::new()),
            Value::String("héllo".into()),
            Value::Object(members.clone()),
            Value::Null,
            Value::Undefined,
            Value::EcmaArray(members.clone()),
            Value::StrictArray(vec![Value::Null, Value::Number(1.0)]),
            Value::Date {
                millis: 1.7e12,
                timezone: -60,
            },
            Value::Unsupported,
            Value::XmlDocument("<a/>".into()),
            Value::TypedObject {
                class_name: "com.example.Thing".into(),
                properties: members,
            },
            Value::AvmPlus(amf3::Value::Integer(42)),
        ] {
            round_trip(&v);
        }
    }

    #[test]
    fn reference_round_trips_within_a_message() {
        let values = [Value::object([("a", Value::Null)]), Value::Reference(0)];
        let mut out = BytesMut::new();
        encode_all(&values, &mut out).unwrap();
        assert_eq!(decode_all(&out).unwrap(), values);
    }

    #[test]
    fn string_of_65535_bytes_uses_short_marker() {
        let bytes = enc(&Value::String("x".repeat(65535)));
        assert_eq!(&bytes[..3], [0x02, 0xff, 0xff]);
        assert_eq!(bytes.len(), 3 + 65535);
    }

    #[test]
    fn string_of_65536_bytes_uses_long_marker() {
        let v = Value::String("x".repeat(65536));
        let bytes = enc(&v);
        assert_eq!(&bytes[..5], [0x0c, 0x00, 0x01, 0x00, 0x00]);
        round_trip(&v);
    }

    #[test]
    fn long_string_marker_decodes_short_text() {
        assert_eq!(
            dec(&[0x0c, 0, 0, 0, 2, b'h', b'i']),
            Ok(Value::String("hi".into()))
        );
    }

    #[test]
    fn object_key_longer_than_65535_bytes_is_out_of_range() {
        let v = Value::object([("k".repeat(65536), Value::Null)]);
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(encode(&v, &mut out), Err(AmfError::OutOfRange(_))));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn typed_object_class_name_longer_than_65535_bytes_is_out_of_range() {
        let v = Value::TypedObject {
            class_name: "c".repeat(65536),
            properties: vec![],
        };
        assert!(matches!(
            encode(&v, &mut BytesMut::new()),
            Err(AmfError::OutOfRange(_))
        ));
    }

    /// The body FFmpeg's `gen_connect` sends when publishing.
    fn ffmpeg_connect() -> Vec<u8> {
        let mut b = Vec::new();
        string(&mut b, "connect");
        number(&mut b, 1.0);
        b.push(0x03);
        key(&mut b, "app");
        string(&mut b, "live");
        key(&mut b, "type");
        string(&mut b, "nonprivate");
        key(&mut b, "flashVer");
        string(&mut b, "FMLE/3.0 (compatible; Lavf61.7.100)");
        key(&mut b, "tcUrl");
        string(&mut b, "rtmp://localhost:1935/live");
        key(&mut b, "fpad");
        b.extend([0x01, 0x00]);
        key(&mut b, "capabilities");
        number(&mut b, 15.0);
        key(&mut b, "audioCodecs");
        number(&mut b, 4071.0);
        key(&mut b, "videoCodecs");
        number(&mut b, 252.0);
        key(&mut b, "videoFunction");
        number(&mut b, 1.0);
        b.extend(END);
        b
    }

    #[test]
    fn ffmpeg_connect_command_decodes() {
        let values = decode_all(&ffmpeg_connect()).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        let cmd = &values[2];
        assert!(cmd.is_object());
        assert_eq!(cmd.get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(cmd.get("type").and_then(Value::as_str), Some("nonprivate"));
        assert!(cmd
            .get("flashVer")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("FMLE/3.0")));
        assert_eq!(
            cmd.get("tcUrl").and_then(Value::as_str),
            Some("rtmp://localhost:1935/live")
        );
        assert_eq!(cmd.get("fpad").and_then(Value::as_bool), Some(false));
        assert_eq!(cmd.get("audioCodecs").and_then(Value::as_f64), Some(4071.0));
        assert_eq!(cmd.get("missing"), None);
    }

    #[test]
    fn ffmpeg_connect_command_re_encodes_identically() {
        let bytes = ffmpeg_connect();
        let mut out = BytesMut::new();
        encode_all(&decode_all(&bytes).unwrap(), &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn object_member_with_avmplus_value_decodes() {
        let mut b = vec![0x03];
        key(&mut b, "app");
        // AVM+ switch, then AMF3 string "live".
        b.extend([0x11, 0x06, 0x09, b'l', b'i', b'v', b'e']);
        key(&mut b, "n");
        b.extend([0x11, 0x04, 0x81, 0x00]);
        b.extend(END);
        let v = dec(&b).unwrap();
        assert_eq!(v.get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(v.get("n").and_then(Value::as_f64), Some(128.0));
        assert_eq!(
            v.get("app"),
            Some(&Value::AvmPlus(amf3::Value::String(Arc::from("live"))))
        );
    }

    #[test]
    fn avmplus_values_share_amf3_tables_within_a_message() {
        // Two AVM+ values: the second names the first's string by reference.
        let b = [0x11, 0x06, 0x05, b'h', b'i', 0x11, 0x06, 0x00];
        let values = decode_all(&b).unwrap();
        let (Value::AvmPlus(amf3::Value::String(a)), Value::AvmPlus(amf3::Value::String(c))) =
            (&values[0], &values[1])
        else {
            panic!("not AMF3 strings: {values:?}")
        };
        assert!(Arc::ptr_eq(a, c));
    }

    #[test]
    fn avmplus_tables_do_not_leak_between_messages() {
        assert!(matches!(
            dec(&[0x11, 0x06, 0x00]),
            Err(AmfError::BadReference { version: 3, .. })
        ));
    }

    #[test]
    fn movieclip_and_recordset_are_unsupported_markers() {
        for m in [0x04, 0x0e] {
            assert_eq!(
                dec(&[m]),
                Err(AmfError::UnsupportedMarker {
                    version: 0,
                    marker: m
                })
            );
        }
    }

    #[test]
    fn markers_beyond_avmplus_are_unknown() {
        assert_eq!(
            dec(&[0x12]),
            Err(AmfError::UnknownMarker {
                version: 0,
                marker: 0x12
            })
        );
    }

    #[test]
    fn object_end_outside_an_object_is_malformed() {
        assert!(matches!(dec(&[0x09]), Err(AmfError::Malformed(_))));
    }

    #[test]
    fn object_end_after_a_member_name_is_malformed() {
        let mut b = vec![0x03];
        key(&mut b, "a");
        b.push(0x09);
        assert!(matches!(dec(&b), Err(AmfError::Malformed(_))));
    }

    #[test]
    fn reference_to_a_later_value_is_rejected() {
        assert_eq!(
            dec(&[0x07, 0x00, 0x00]),
            Err(AmfError::BadReference {
                version: 0,
                table: "object",
                index: 0,
                len: 0
            })
        );
    }

    #[test]
    fn reference_to_the_object_being_decoded_stays_unresolved() {
        let mut b = vec![0x03];
        key(&mut b, "me");
        b.extend([0x07, 0x00, 0x00]);
        b.extend(END);
        assert_eq!(dec(&b).unwrap().get("me"), Some(&Value::Reference(0)));
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        for count in [0u32, 1, 100, u32::MAX] {
            let mut b = vec![0x08];
            b.extend(count.to_be_bytes());
            key(&mut b, "width");
            number(&mut b, 1280.0);
            key(&mut b, "height");
            number(&mut b, 720.0);
            b.extend(END);
            let v = dec(&b).unwrap();
            assert_eq!(v.get("height").and_then(Value::as_f64), Some(720.0));
        }
    }

    #[test]
    fn ecma_array_missing_end_marker_at_end_of_input_is_accepted() {
        let mut b = Vec::new();
        string(&mut b, "onMetaData");
        b.push(0x08);
        b.extend(1u32.to_be_bytes());
        key(&mut b, "duration");
        number(&mut b, 0.0);
        let values = decode_all(&b).unwrap();
        assert_eq!(
            values[1],
            Value::EcmaArray(vec![("duration".into(), Value::Number(0.0))])
        );
    }

    #[test]
    fn ecma_array_with_partial_end_marker_at_end_of_input_is_accepted() {
        for tail in [&[0x00][..], &[0x00, 0x00]] {
            let mut b = vec![0x08, 0, 0, 0, 1];
            key(&mut b, "a");
            b.push(0x05);
            b.extend(tail);
            let mut d = Decoder::new(&b);
            assert_eq!(
                d.decode(),
                Ok(Value::EcmaArray(vec![("a".into(), Value::Null)]))
            );
            assert!(d.is_empty());
        }
    }

    #[test]
    fn nested_ecma_array_missing_end_marker_is_truncated() {
        let mut b = vec![0x03];
        key(&mut b, "m");
        b.extend([0x08, 0, 0, 0, 0]);
        key(&mut b, "a");
        b.push(0x05);
        // Leniency ends the array at the end of input, but the enclosing
        // object still needs its own end marker.
        assert!(matches!(dec(&b), Err(AmfError::Truncated { .. })));
    }

    #[test]
    fn object_missing_end_marker_is_truncated() {
        let mut b = vec![0x03];
        key(&mut b, "a");
        b.push(0x05);
        assert!(matches!(dec(&b), Err(AmfError::Truncated { .. })));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let v = Value::StrictArray(vec![
            Value::object([
                ("s", Value::from("abc")),
                (
                    "e",
                    Value::EcmaArray(vec![("n".into(), Value::Number(1.0))]),
                ),
                (
                    "d",
                    Value::Date {
                        millis: 1.0,
                        timezone: 0,
                    },
                ),
            ]),
            Value::TypedObject {
                class_name: "C".into(),
                properties: vec![("x".into(), Value::XmlDocument("<a/>".into()))],
            },
            Value::AvmPlus(amf3::Value::Array {
                assoc: vec![],
                dense: vec![amf3::Value::String(Arc::from("z"))],
            }),
            Value::String("x".repeat(70000)),
        ]);
        let bytes = enc(&v);
        // Every cut inside the headers and small members, then a sample of
        // cuts inside the long string.
        for n in (0..200).chain((200..bytes.len()).step_by(997)) {
            assert!(dec(&bytes[..n]).is_err(), "prefix {n} decoded");
        }
    }

    #[test]
    fn over_long_length_fields_are_truncated() {
        for b in [
            &[0x02, 0xff, 0xff, b'a'][..],
            &[0x0c, 0xff, 0xff, 0xff, 0xff, b'a'],
            &[0x0f, 0x7f, 0xff, 0xff, 0xff],
            &[0x10, 0x00, 0x09, b'C'],
            &[0x03, 0x00, 0x05, b'k'],
        ] {
            assert!(
                matches!(dec(b), Err(AmfError::Truncated { .. })),
                "{b:02x?}"
            );
        }
    }

    #[test]
    fn huge_strict_array_count_with_few_bytes_fails_fast() {
        assert_eq!(
            dec(&[0x0a, 0x0f, 0xff, 0xff, 0xff, 0x05, 0x05, 0x05]),
            Err(AmfError::Truncated {
                needed: 0x0fff_ffff - 3
            })
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert_eq!(dec(&[0x02, 0x00, 0x01, 0xff]), Err(AmfError::InvalidUtf8));
    }

    fn nested_objects(levels: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..levels {
            b.push(0x03);
            key(&mut b, "a");
        }
        b.push(0x05);
        for _ in 0..levels {
            b.extend(END);
        }
        b
    }

    fn nested_strict_arrays(levels: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..levels {
            b.extend([0x0a, 0, 0, 0, 1]);
        }
        b.push(0x05);
        b
    }

    /// `amf0_levels` AMF0 objects, then an AVM+ value of `amf3_levels`
    /// nested AMF3 arrays.
    fn nested_mixed(amf0_levels: usize, amf3_levels: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..amf0_levels {
            b.push(0x03);
            key(&mut b, "a");
        }
        b.push(0x11);
        for _ in 0..amf3_levels {
            b.extend([0x09, 0x03, 0x01]);
        }
        b.push(0x01);
        for _ in 0..amf0_levels {
            b.extend(END);
        }
        b
    }

    #[test]
    fn objects_nested_max_depth_decode() {
        assert!(dec(&nested_objects(MAX_DEPTH)).is_ok());
    }

    #[test]
    fn objects_nested_beyond_max_depth_are_too_deep() {
        assert_eq!(
            dec(&nested_objects(MAX_DEPTH + 1)),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn strict_arrays_nested_max_depth_decode() {
        assert!(dec(&nested_strict_arrays(MAX_DEPTH)).is_ok());
    }

    #[test]
    fn strict_arrays_nested_beyond_max_depth_are_too_deep() {
        assert_eq!(
            dec(&nested_strict_arrays(MAX_DEPTH + 1)),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn a_lower_depth_limit_refuses_what_the_default_accepts() {
        let input = nested_objects(4);
        assert!(dec(&input).is_ok());
        assert_eq!(
            Decoder::with_max_depth(&input, 3).decode(),
            Err(AmfError::TooDeep { limit: 3 })
        );
        assert!(Decoder::with_max_depth(&input, 4).decode().is_ok());
    }

    #[test]
    fn a_depth_limit_above_max_depth_is_capped() {
        let input = nested_objects(MAX_DEPTH + 1);
        assert_eq!(
            Decoder::with_max_depth(&input, MAX_DEPTH * 10).decode(),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn amf3_inside_amf0_counts_toward_max_depth() {
        assert!(dec(&nested_mixed(MAX_DEPTH - 2, 2)).is_ok());
        assert_eq!(
            dec(&nested_mixed(MAX_DEPTH - 2, 3)),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn encoding_beyond_max_depth_is_too_deep() {
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH {
            v = Value::StrictArray(vec![v]);
        }
        assert_eq!(
            encode(&v, &mut BytesMut::new()),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn decoder_errors_are_sticky() {
        let b = [0x05, 0x02, 0x00, 0x05, b'a'];
        let mut d = Decoder::new(&b);
        assert_eq!(d.decode(), Ok(Value::Null));
        let e = d.decode().unwrap_err();
        assert_eq!(d.decode(), Err(e));
        assert_eq!(d.remaining(), &b[1..]);
        assert_eq!(d.position(), 1);
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_map(|f| if f.is_nan() { 0.0 } else { f })
    }

    /// Arbitrary AMF0 values without references (whose validity depends on
    /// position).
    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            finite().prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            "\\PC{0,12}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            (finite(), any::<i16>())
                .prop_map(|(millis, timezone)| Value::Date { millis, timezone }),
            Just(Value::Unsupported),
            "\\PC{0,12}".prop_map(Value::XmlDocument),
            crate::amf::amf3::tests::arb_value().prop_map(Value::AvmPlus),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let members = prop::collection::vec(("\\PC{0,6}", inner.clone()), 0..4);
            prop_oneof![
                members.clone().prop_map(Value::Object),
                members.clone().prop_map(Value::EcmaArray),
                prop::collection::vec(inner, 0..4).prop_map(Value::StrictArray),
                ("[A-Za-z.]{0,8}", members).prop_map(|(class_name, properties)| {
                    Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_values_round_trip(values in prop::collection::vec(arb_value(), 1..4)) {
            let mut out = BytesMut::new();
            encode_all(&values, &mut out).expect("encodable");
            prop_assert_eq!(decode_all(&out).expect("decodes"), values);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn decode_never_panics_on_corrupted_encodings(
            v in arb_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = enc(&v).to_vec();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_all(&bytes);
        }
    }
}
