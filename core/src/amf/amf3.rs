//! AMF3, used by Flash/AIR clients inside AMF0 messages (the AVM+ switch)
//! and in type 17/15 messages.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{capacity, enter, enter_within, AmfError, Reader};

/// One decoded AMF3 value.
///
/// Strings are `Arc<str>` because AMF3's string reference table lets a few
/// input bytes name a long string again and again: sharing keeps decoded
/// memory proportional to the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Marker 0x00.
    Undefined,
    /// Marker 0x01.
    Null,
    /// Markers 0x02 (false) and 0x03 (true).
    Boolean(bool),
    /// Marker 0x04: a 29-bit signed integer.
    Integer(i32),
    /// Marker 0x05.
    Double(f64),
    /// Marker 0x06.
    String(Arc<str>),
    /// Marker 0x07: legacy XML document.
    XmlDocument(Arc<str>),
    /// Marker 0x08: milliseconds since the Unix epoch.
    Date(f64),
    /// Marker 0x09: an array with an associative part and a dense part.
    Array {
        /// Named members, in wire order.
        assoc: Vec<(Arc<str>, Value)>,
        /// Dense members.
        dense: Vec<Value>,
    },
    /// Marker 0x0a: an object with traits.
    Object(Object),
    /// Marker 0x0b: E4X XML as text.
    Xml(Arc<str>),
    /// Marker 0x0c.
    ByteArray(Bytes),
    /// Marker 0x0d.
    VectorInt {
        /// Whether the vector has a fixed length.
        fixed: bool,
        /// The items.
        items: Vec<i32>,
    },
    /// Marker 0x0e.
    VectorUint {
        /// Whether the vector has a fixed length.
        fixed: bool,
        /// The items.
        items: Vec<u32>,
    },
    /// Marker 0x0f.
    VectorDouble {
        /// Whether the vector has a fixed length.
        fixed: bool,
        /// The items.
        items: Vec<f64>,
    },
    /// Marker 0x10.
    VectorObject {
        /// Whether the vector has a fixed length.
        fixed: bool,
        /// The element class name ("*" for any).
        type_name: Arc<str>,
        /// The items.
        items: Vec<Value>,
    },
    /// Marker 0x11.
    Dictionary {
        /// Whether the keys are weakly held (meaningless off the AVM).
        weak_keys: bool,
        /// Key/value pairs in wire order.
        entries: Vec<(Value, Value)>,
    },
    /// A reference to the n-th complex value (object, array, date, XML,
    /// byte array, vector, dictionary) opened earlier in the same AMF3
    /// context: one [`decode`] call, one [`Decoder`], or all the AVM+ values
    /// of one AMF0 message. It may name an object that encloses it (a cycle).
    /// Kept unresolved so that references cannot multiply memory.
    ObjectReference(u32),
}

/// An AMF3 object: its traits and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Class alias; empty for anonymous objects.
    pub class_name: Arc<str>,
    /// Sealed members, in trait order.
    pub sealed: Vec<(Arc<str>, Value)>,
    /// Dynamic members (only when the traits are dynamic), in wire order.
    pub dynamic: Option<Vec<(Arc<str>, Value)>>,
}

impl Value {
    /// Heap memory this value holds beyond its own size, by capacity (a
    /// string shared through the AMF3 reference table is counted at each
    /// use: an overestimate, never an underestimate).
    pub fn heap_size(&self) -> usize {
        fn members(m: &[(Arc<str>, Value)], cap: usize) -> usize {
            cap * std::mem::size_of::<(Arc<str>, Value)>()
                + m.iter()
                    .map(|(k, v)| k.len() + v.heap_size())
                    .sum::<usize>()
        }
        fn values(v: &Vec<Value>) -> usize {
            v.capacity() * std::mem::size_of::<Value>()
                + v.iter().map(Value::heap_size).sum::<usize>()
        }
        match self {
            Value::String(s) | Value::XmlDocument(s) | Value::Xml(s) => s.len(),
            Value::Array { assoc, dense } => members(assoc, assoc.capacity()) + values(dense),
            Value::Object(o) => {
                o.class_name.len()
                    + members(&o.sealed, o.sealed.capacity())
                    + o.dynamic.as_ref().map_or(0, |d| members(d, d.capacity()))
            }
            Value::ByteArray(b) => b.len(),
            Value::VectorInt { items, .. } => items.capacity() * 4,
            Value::VectorUint { items, .. } => items.capacity() * 4,
            Value::VectorDouble { items, .. } => items.capacity() * 8,
            Value::VectorObject {
                type_name, items, ..
            } => type_name.len() + values(items),
            Value::Dictionary { entries, .. } => {
                entries.capacity() * std::mem::size_of::<(Value, Value)>()
                    + entries
                        .iter()
                        .map(|(k, v)| k.heap_size() + v.heap_size())
                        .sum::<usize>()
            }
            _ => 0,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::XmlDocument(s) | Value::Xml(s) => Some(s),
            _ => None,
        }
    }

    /// The numeric value of an integer or double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(f64::from(*i)),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is `null` or `undefined`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Undefined)
    }

    /// Whether this value has named members.
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_) | Value::Array { .. })
    }

    /// A named member of an object (sealed, then dynamic) or of an array's
    /// associative part.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => find_member(&o.sealed, key)
                .or_else(|| o.dynamic.as_deref().and_then(|d| find_member(d, key))),
            Value::Array { assoc, .. } => find_member(assoc, key),
            _ => None,
        }
    }
}

fn find_member<'a>(members: &'a [(Arc<str>, Value)], key: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
}

/// Type markers, named as in the AMF3 specification.
mod marker {
    pub(super) const UNDEFINED: u8 = 0x00;
    pub(super) const NULL: u8 = 0x01;
    pub(super) const FALSE: u8 = 0x02;
    pub(super) const TRUE: u8 = 0x03;
    pub(super) const INTEGER: u8 = 0x04;
    pub(super) const DOUBLE: u8 = 0x05;
    pub(super) const STRING: u8 = 0x06;
    pub(super) const XML_DOCUMENT: u8 = 0x07;
    pub(super) const DATE: u8 = 0x08;
    pub(super) const ARRAY: u8 = 0x09;
    pub(super) const OBJECT: u8 = 0x0a;
    pub(super) const XML: u8 = 0x0b;
    pub(super) const BYTE_ARRAY: u8 = 0x0c;
    pub(super) const VECTOR_INT: u8 = 0x0d;
    pub(super) const VECTOR_UINT: u8 = 0x0e;
    pub(super) const VECTOR_DOUBLE: u8 = 0x0f;
    pub(super) const VECTOR_OBJECT: u8 = 0x10;
    pub(super) const DICTIONARY: u8 = 0x11;
}

/// The class alias of Flex's `ArrayCollection`, the one externalizable class
/// Flash clients commonly send. It decodes to an [`Object`] with this class
/// name and a single sealed member `source` holding the wrapped array, and an
/// object of exactly that shape encodes back as externalizable.
pub const ARRAY_COLLECTION_CLASS: &str = "flex.messaging.io.ArrayCollection";

/// The class alias of Flex's `ObjectProxy`: decoded like
/// [`ARRAY_COLLECTION_CLASS`], with the single sealed member `object`
/// holding the wrapped value.
pub const OBJECT_PROXY_CLASS: &str = "flex.messaging.io.ObjectProxy";

/// The largest integer the 29-bit `Integer` type holds; larger ones are
/// written as doubles.
const INT_MAX: i32 = (1 << 28) - 1;
/// The smallest integer the 29-bit `Integer` type holds.
const INT_MIN: i32 = -(1 << 28);
/// The largest length, count or reference index a `U29` header carries next
/// to its one flag bit.
const U28_MAX: usize = (1 << 28) - 1;

/// A class definition ("traits") from the trait table.
///
/// Cloning is two reference-count increments: a trait reference must not
/// copy the member-name list, or a short input naming a long trait many
/// times would multiply memory.
#[derive(Debug, Clone)]
struct Traits {
    class_name: Arc<str>,
    members: Arc<[Arc<str>]>,
    dynamic: bool,
    externalizable: bool,
}

/// The three AMF3 reference tables, which live as long as one AMF3 value
/// stream: one [`Decoder`], or one AMF0 message with AVM+ switches.
#[derive(Debug)]
pub(crate) struct Tables {
    /// Non-empty strings in order of first appearance (the spec never
    /// stores the empty string).
    strings: Vec<Arc<str>>,
    traits: Vec<Traits>,
    /// How many complex values have been opened. References stay unresolved,
    /// so validating an index needs only the count.
    objects: usize,
    /// Nesting limit of this decode (at most [`MAX_DEPTH`](super::MAX_DEPTH)).
    pub(crate) max_depth: usize,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            strings: Vec::new(),
            traits: Vec::new(),
            objects: 0,
            max_depth: super::MAX_DEPTH,
        }
    }
}

/// Decodes a stream of AMF3 values that share reference tables, as
/// consecutive values in one AMF3 context do.
///
/// Errors are sticky: after a failure, every later call returns the same
/// error and the position stays at the start of the value that failed.
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    tables: Tables,
    failed: Option<AmfError>,
}

impl<'a> Decoder<'a> {
    /// Starts decoding `input` with empty reference tables.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            tables: Tables::default(),
            failed: None,
        }
    }

    /// Like [`Decoder::new`], refusing nesting deeper than `max_depth`
    /// (capped at [`MAX_DEPTH`](super::MAX_DEPTH)) with
    /// [`AmfError::TooDeep`].
    pub fn with_max_depth(input: &'a [u8], max_depth: usize) -> Self {
        let mut d = Self::new(input);
        d.tables.max_depth = max_depth.min(super::MAX_DEPTH);
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

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes the next value, with the tables left by the previous ones.
    pub fn decode(&mut self) -> Result<Value, AmfError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut r = Reader::new(self.input, self.pos);
        match self.tables.value(&mut r, 0) {
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

/// Decodes one AMF3 value (with fresh reference tables) from `input`,
/// returning it and the number of bytes consumed.
pub fn decode(input: &[u8]) -> Result<(Value, usize), AmfError> {
    let mut d = Decoder::new(input);
    let v = d.decode()?;
    Ok((v, d.position()))
}

/// Reads a `U29`: one to four bytes, seven bits each from the first three
/// (high bit = more follows) and all eight from the fourth.
fn read_u29(r: &mut Reader<'_>) -> Result<u32, AmfError> {
    let mut v: u32 = 0;
    for _ in 0..3 {
        let b = r.u8()?;
        v = (v << 7) | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Ok((v << 8) | u32::from(r.u8()?))
}

/// A `U29` header's payload as a length or count.
fn payload(header: u32) -> usize {
    (header >> 1) as usize
}

fn bad_ref(table: &'static str, index: u32, len: usize) -> AmfError {
    AmfError::BadReference {
        version: 3,
        table,
        index,
        len,
    }
}

impl Tables {
    /// Reads one value (marker included) with `depth` enclosing containers.
    pub(crate) fn value(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let m = r.u8()?;
        Ok(match m {
            marker::UNDEFINED => Value::Undefined,
            marker::NULL => Value::Null,
            marker::FALSE => Value::Boolean(false),
            marker::TRUE => Value::Boolean(true),
            marker::INTEGER => {
                let v = read_u29(r)?;
                // Sign-extend from 29 bits; the cast is lossless below 2^29.
                Value::Integer(((v << 3) as i32) >> 3)
            }
            marker::DOUBLE => Value::Double(r.f64()?),
            marker::STRING => Value::String(self.string(r)?),
            marker::XML_DOCUMENT => match self.text(r)? {
                Ok(s) => Value::XmlDocument(s),
                Err(reference) => reference,
            },
            marker::XML => match self.text(r)? {
                Ok(s) => Value::Xml(s),
                Err(reference) => reference,
            },
            marker::DATE => {
                let h = read_u29(r)?;
                if h & 1 == 0 {
                    return self.object_ref(h >> 1);
                }
                self.objects += 1;
                Value::Date(r.f64()?)
            }
            marker::ARRAY => self.array(r, depth)?,
            marker::OBJECT => self.object(r, depth)?,
            marker::BYTE_ARRAY => {
                let h = read_u29(r)?;
                if h & 1 == 0 {
                    return self.object_ref(h >> 1);
                }
                let bytes = r.bytes(payload(h))?;
                self.objects += 1;
                Value::ByteArray(Bytes::copy_from_slice(bytes))
            }
            // Same big-endian bits, read as two's complement.
            marker::VECTOR_INT => match self.vector(r, 4, |r| r.u32().map(|v| v as i32))? {
                Ok((fixed, items)) => Value::VectorInt { fixed, items },
                Err(reference) => reference,
            },
            marker::VECTOR_UINT => match self.vector(r, 4, |r| r.u32())? {
                Ok((fixed, items)) => Value::VectorUint { fixed, items },
                Err(reference) => reference,
            },
            marker::VECTOR_DOUBLE => match self.vector(r, 8, |r| r.f64())? {
                Ok((fixed, items)) => Value::VectorDouble { fixed, items },
                Err(reference) => reference,
            },
            marker::VECTOR_OBJECT => self.vector_object(r, depth)?,
            marker::DICTIONARY => self.dictionary(r, depth)?,
            _ => {
                return Err(AmfError::UnknownMarker {
                    version: 3,
                    marker: m,
                })
            }
        })
    }

    /// Reads a `UTF-8-vr`: an inline string (added to the string table
    /// unless empty) or a reference into that table, sharing its `Arc`.
    fn string(&mut self, r: &mut Reader<'_>) -> Result<Arc<str>, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            let index = h >> 1;
            return self
                .strings
                .get(index as usize)
                .cloned()
                .ok_or_else(|| bad_ref("string", index, self.strings.len()));
        }
        let len = payload(h);
        let s: Arc<str> = Arc::from(r.str(len)?);
        if len > 0 {
            self.strings.push(Arc::clone(&s));
        }
        Ok(s)
    }

    /// Reads the body of an XML value: inline text (which, unlike strings,
    /// joins the object table) or a reference, returned as `Err(value)`.
    fn text(&mut self, r: &mut Reader<'_>) -> Result<Result<Arc<str>, Value>, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1).map(Err);
        }
        let s = Arc::from(r.str(payload(h))?);
        self.objects += 1;
        Ok(Ok(s))
    }

    /// Validates an object-table index and keeps it unresolved: resolving
    /// would clone (or alias) a whole subtree per reference, the "billion
    /// laughs" shape, and a reference may name an object still being decoded.
    fn object_ref(&self, index: u32) -> Result<Value, AmfError> {
        if index as usize >= self.objects {
            return Err(bad_ref("object", index, self.objects));
        }
        Ok(Value::ObjectReference(index))
    }

    fn array(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1);
        }
        let depth = enter_within(depth, self.max_depth)?;
        let dense_count = payload(h);
        self.objects += 1;
        let mut assoc = Vec::new();
        loop {
            let key = self.string(r)?;
            if key.is_empty() {
                break;
            }
            assoc.push((key, self.value(r, depth)?));
        }
        // Every dense item takes at least its marker byte.
        r.require(dense_count)?;
        let mut dense = Vec::with_capacity(capacity(dense_count, r.remaining(), 1));
        for _ in 0..dense_count {
            dense.push(self.value(r, depth)?);
        }
        Ok(Value::Array { assoc, dense })
    }

    fn object(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1);
        }
        let depth = enter_within(depth, self.max_depth)?;
        let traits = self.traits(r, h)?;
        // The object joins the table after its traits and before its
        // members, so members may refer to it (a cycle, kept unresolved).
        self.objects += 1;
        if traits.externalizable {
            return self.externalizable(r, depth, traits.class_name);
        }
        // Every sealed value takes at least its marker byte.
        r.require(traits.members.len())?;
        let mut sealed = Vec::with_capacity(capacity(traits.members.len(), r.remaining(), 1));
        for name in traits.members.iter() {
            sealed.push((Arc::clone(name), self.value(r, depth)?));
        }
        let dynamic = if traits.dynamic {
            let mut members = Vec::new();
            loop {
                let key = self.string(r)?;
                if key.is_empty() {
                    break;
                }
                members.push((key, self.value(r, depth)?));
            }
            Some(members)
        } else {
            None
        };
        Ok(Value::Object(Object {
            class_name: traits.class_name,
            sealed,
            dynamic,
        }))
    }

    /// Reads an object's traits after the `U29O` header `h` (whose low bit,
    /// "not an object reference", is already checked): a trait reference
    /// (bit 1 clear), externalizable traits (bits 1 and 2 set) or inline
    /// traits with a dynamic flag (bit 3) and a sealed member count (bits
    /// 4..).
    fn traits(&mut self, r: &mut Reader<'_>, h: u32) -> Result<Traits, AmfError> {
        if h & 0b10 == 0 {
            let index = h >> 2;
            return self
                .traits
                .get(index as usize)
                .cloned()
                .ok_or_else(|| bad_ref("trait", index, self.traits.len()));
        }
        let externalizable = h & 0b100 != 0;
        let dynamic = !externalizable && h & 0b1000 != 0;
        // Externalizable traits carry no member names; the count bits mean
        // nothing there.
        let count = if externalizable { 0 } else { (h >> 4) as usize };
        let class_name = self.string(r)?;
        // Each sealed member needs a name now and a value later, at least a
        // byte each: refuse a count the input cannot hold before allocating
        // (librtmp's CVE-2015-8272 trusted this count).
        r.require(count.saturating_mul(2))?;
        let mut names = Vec::with_capacity(capacity(count, r.remaining(), 1));
        for _ in 0..count {
            names.push(self.string(r)?);
        }
        let traits = Traits {
            class_name,
            members: names.into(),
            dynamic,
            externalizable,
        };
        self.traits.push(traits.clone());
        Ok(traits)
    }

    /// Externalizable classes serialize themselves in a private format; the
    /// only ones we can read are the Flex wrappers whose body is one AMF3
    /// value.
    fn externalizable(
        &mut self,
        r: &mut Reader<'_>,
        depth: usize,
        class_name: Arc<str>,
    ) -> Result<Value, AmfError> {
        let member = match &*class_name {
            ARRAY_COLLECTION_CLASS => "source",
            OBJECT_PROXY_CLASS => "object",
            other => return Err(AmfError::Unsupported(unsupported_class(other))),
        };
        let inner = self.value(r, depth)?;
        Ok(Value::Object(Object {
            class_name,
            sealed: vec![(Arc::from(member), inner)],
            dynamic: None,
        }))
    }

    /// Reads a vector of fixed-size numbers, each `size` bytes; a reference
    /// comes back as `Err(value)`.
    fn vector<T>(
        &mut self,
        r: &mut Reader<'_>,
        size: usize,
        read: impl Fn(&mut Reader<'_>) -> Result<T, AmfError>,
    ) -> Result<Result<(bool, Vec<T>), Value>, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1).map(Err);
        }
        let count = payload(h);
        let fixed = r.u8()? != 0;
        r.require(count.saturating_mul(size))?;
        self.objects += 1;
        let mut items = Vec::with_capacity(capacity(count, r.remaining(), size));
        for _ in 0..count {
            items.push(read(r)?);
        }
        Ok(Ok((fixed, items)))
    }

    fn vector_object(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1);
        }
        let depth = enter_within(depth, self.max_depth)?;
        let count = payload(h);
        let fixed = r.u8()? != 0;
        let type_name = self.string(r)?;
        r.require(count)?;
        self.objects += 1;
        let mut items = Vec::with_capacity(capacity(count, r.remaining(), 1));
        for _ in 0..count {
            items.push(self.value(r, depth)?);
        }
        Ok(Value::VectorObject {
            fixed,
            type_name,
            items,
        })
    }

    fn dictionary(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Value, AmfError> {
        let h = read_u29(r)?;
        if h & 1 == 0 {
            return self.object_ref(h >> 1);
        }
        let depth = enter_within(depth, self.max_depth)?;
        let count = payload(h);
        let weak_keys = r.u8()? != 0;
        // A key and a value, at least a byte each.
        r.require(count.saturating_mul(2))?;
        self.objects += 1;
        let mut entries = Vec::with_capacity(capacity(count, r.remaining(), 2));
        for _ in 0..count {
            let key = self.value(r, depth)?;
            let value = self.value(r, depth)?;
            entries.push((key, value));
        }
        Ok(Value::Dictionary { weak_keys, entries })
    }
}

/// The peer's class name for an error message, cut short so that a hostile
/// name cannot make the error (and the log line) as large as the message.
fn unsupported_class(name: &str) -> String {
    const MAX: usize = 128;
    let mut end = name.len().min(MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("AMF3 externalizable class {:?}", &name[..end])
}

/// Appends the encoding of `value` (with fresh reference tables) to `out`.
///
/// The encoder never emits string or trait references (every string and
/// every trait is written inline): references are optional for a writer,
/// and inline output means the same bytes regardless of whether the peer
/// scopes its tables per value or per message. An explicit
/// [`Value::ObjectReference`] is written as given, under the object marker
/// (a reference means the same under any complex marker to Flash and
/// BlazeDS, which only look up the table), but only if it names a complex
/// value already written: anything else fails with
/// [`AmfError::OutOfRange`] rather than produce bytes no decoder accepts.
///
/// [`Value::Integer`]s outside the 29-bit range (−2^28 ..= 2^28 − 1) are
/// written as doubles, as Flash does for `int` values that do not fit, so
/// they decode as [`Value::Double`]. Lengths, counts and indices above
/// 2^28 − 1, more than 2^25 − 1 sealed members, an empty dynamic-member or
/// associative key (the empty string ends those lists) and nesting deeper
/// than [`MAX_DEPTH`](super::MAX_DEPTH) fail with [`AmfError::OutOfRange`]
/// or [`AmfError::TooDeep`]; on error `out` is left as it was.
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), AmfError> {
    let start = out.len();
    let result = write_value(value, out, 0, &mut 0);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Writes a `U29`; `v` must be below 2^29.
fn write_u29(out: &mut BytesMut, v: u32) {
    debug_assert!(v < 1 << 29);
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v < 0x4000 {
        out.put_u8(((v >> 7) | 0x80) as u8);
        out.put_u8((v & 0x7f) as u8);
    } else if v < 0x20_0000 {
        out.put_u8(((v >> 14) | 0x80) as u8);
        out.put_u8((((v >> 7) & 0x7f) | 0x80) as u8);
        out.put_u8((v & 0x7f) as u8);
    } else {
        out.put_u8((((v >> 22) & 0x7f) | 0x80) as u8);
        out.put_u8((((v >> 15) & 0x7f) | 0x80) as u8);
        out.put_u8((((v >> 8) & 0x7f) | 0x80) as u8);
        out.put_u8((v & 0xff) as u8);
    }
}

/// Writes a `U29` header carrying `n` (a length, count or index) above the
/// flag bit `flag`.
fn write_header(
    out: &mut BytesMut,
    n: usize,
    flag: bool,
    what: &'static str,
) -> Result<(), AmfError> {
    if n > U28_MAX {
        return Err(AmfError::OutOfRange(what));
    }
    // Lossless: n < 2^28.
    write_u29(out, ((n as u32) << 1) | u32::from(flag));
    Ok(())
}

/// Writes an inline `UTF-8-vr`.
fn write_string(out: &mut BytesMut, s: &str) -> Result<(), AmfError> {
    write_header(out, s.len(), true, "AMF3 string longer than 2^28 - 1 bytes")?;
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Writes dynamic members or an array's associative part, ended by the
/// empty string.
fn write_named(
    out: &mut BytesMut,
    members: &[(Arc<str>, Value)],
    depth: usize,
    objects: &mut usize,
) -> Result<(), AmfError> {
    for (key, value) in members {
        if key.is_empty() {
            return Err(AmfError::OutOfRange(
                "empty AMF3 member name (the empty string ends the member list)",
            ));
        }
        write_string(out, key)?;
        write_value(value, out, depth, objects)?;
    }
    out.put_u8(0x01);
    Ok(())
}

/// Writes `value`, marker first, with `depth` enclosing containers; shared
/// with the AMF0 encoder for AVM+ values so the depth limit spans both.
pub(crate) fn write_value(
    value: &Value,
    out: &mut BytesMut,
    depth: usize,
    objects: &mut usize,
) -> Result<(), AmfError> {
    match value {
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::Null => out.put_u8(marker::NULL),
        Value::Boolean(false) => out.put_u8(marker::FALSE),
        Value::Boolean(true) => out.put_u8(marker::TRUE),
        Value::Integer(i) if (INT_MIN..=INT_MAX).contains(i) => {
            out.put_u8(marker::INTEGER);
            write_u29(out, (*i as u32) & 0x1fff_ffff);
        }
        Value::Integer(i) => {
            out.put_u8(marker::DOUBLE);
            out.put_f64(f64::from(*i));
        }
        Value::Double(d) => {
            out.put_u8(marker::DOUBLE);
            out.put_f64(*d);
        }
        Value::String(s) => {
            out.put_u8(marker::STRING);
            write_string(out, s)?;
        }
        Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            *objects += 1;
            write_string(out, s)?;
        }
        Value::Xml(s) => {
            out.put_u8(marker::XML);
            *objects += 1;
            write_string(out, s)?;
        }
        Value::Date(millis) => {
            out.put_u8(marker::DATE);
            *objects += 1;
            write_u29(out, 1);
            out.put_f64(*millis);
        }
        Value::Array { assoc, dense } => {
            let depth = enter(depth)?;
            out.put_u8(marker::ARRAY);
            *objects += 1;
            write_header(
                out,
                dense.len(),
                true,
                "AMF3 array with more than 2^28 - 1 items",
            )?;
            write_named(out, assoc, depth, objects)?;
            for item in dense {
                write_value(item, out, depth, objects)?;
            }
        }
        Value::Object(o) => {
            let depth = enter(depth)?;
            out.put_u8(marker::OBJECT);
            // Counted before its members, as the decoder counts it.
            *objects += 1;
            write_object(o, out, depth, objects)?;
        }
        Value::ByteArray(b) => {
            out.put_u8(marker::BYTE_ARRAY);
            *objects += 1;
            write_header(
                out,
                b.len(),
                true,
                "AMF3 byte array longer than 2^28 - 1 bytes",
            )?;
            out.put_slice(b);
        }
        Value::VectorInt { fixed, items } => {
            out.put_u8(marker::VECTOR_INT);
            *objects += 1;
            write_header(out, items.len(), true, "AMF3 vector longer than 2^28 - 1")?;
            out.put_u8(u8::from(*fixed));
            items.iter().for_each(|i| out.put_i32(*i));
        }
        Value::VectorUint { fixed, items } => {
            out.put_u8(marker::VECTOR_UINT);
            *objects += 1;
            write_header(out, items.len(), true, "AMF3 vector longer than 2^28 - 1")?;
            out.put_u8(u8::from(*fixed));
            items.iter().for_each(|i| out.put_u32(*i));
        }
        Value::VectorDouble { fixed, items } => {
            out.put_u8(marker::VECTOR_DOUBLE);
            *objects += 1;
            write_header(out, items.len(), true, "AMF3 vector longer than 2^28 - 1")?;
            out.put_u8(u8::from(*fixed));
            items.iter().for_each(|d| out.put_f64(*d));
        }
        Value::VectorObject {
            fixed,
            type_name,
            items,
        } => {
            let depth = enter(depth)?;
            out.put_u8(marker::VECTOR_OBJECT);
            *objects += 1;
            write_header(out, items.len(), true, "AMF3 vector longer than 2^28 - 1")?;
            out.put_u8(u8::from(*fixed));
            write_string(out, type_name)?;
            for item in items {
                write_value(item, out, depth, objects)?;
            }
        }
        Value::Dictionary { weak_keys, entries } => {
            let depth = enter(depth)?;
            out.put_u8(marker::DICTIONARY);
            *objects += 1;
            write_header(
                out,
                entries.len(),
                true,
                "AMF3 dictionary larger than 2^28 - 1",
            )?;
            out.put_u8(u8::from(*weak_keys));
            for (key, value) in entries {
                write_value(key, out, depth, objects)?;
                write_value(value, out, depth, objects)?;
            }
        }
        Value::ObjectReference(index) => {
            // A reference the output's own table cannot resolve would be
            // refused by every decoder, ours included: never write one.
            if *index as usize >= *objects {
                return Err(AmfError::OutOfRange(
                    "AMF3 object reference to a value not written before it",
                ));
            }
            out.put_u8(marker::OBJECT);
            write_header(
                out,
                *index as usize,
                false,
                "AMF3 object reference above 2^28 - 1",
            )?;
        }
    }
    Ok(())
}

/// Writes an object's traits (always inline) and members after its marker.
fn write_object(
    o: &Object,
    out: &mut BytesMut,
    depth: usize,
    objects: &mut usize,
) -> Result<(), AmfError> {
    if let Some(inner) = externalized(o) {
        // U29O-traits-ext: inline, externalizable, no member names.
        write_u29(out, 0b0111);
        write_string(out, &o.class_name)?;
        return write_value(inner, out, depth, objects);
    }
    let count = o.sealed.len();
    if count >= 1 << 25 {
        return Err(AmfError::OutOfRange(
            "AMF3 object with 2^25 or more sealed members",
        ));
    }
    // Lossless: count < 2^25, so the header is below 2^29.
    let header = ((count as u32) << 4) | (u32::from(o.dynamic.is_some()) << 3) | 0b011;
    write_u29(out, header);
    write_string(out, &o.class_name)?;
    for (name, _) in &o.sealed {
        write_string(out, name)?;
    }
    for (_, value) in &o.sealed {
        write_value(value, out, depth, objects)?;
    }
    if let Some(dynamic) = &o.dynamic {
        write_named(out, dynamic, depth, objects)?;
    }
    Ok(())
}

/// The wrapped value when `o` has the shape the decoder gives the known
/// externalizable Flex wrappers.
fn externalized(o: &Object) -> Option<&Value> {
    let member = match &*o.class_name {
        ARRAY_COLLECTION_CLASS => "source",
        OBJECT_PROXY_CLASS => "object",
        _ => return None,
    };
    match (o.sealed.as_slice(), &o.dynamic) {
        ([(name, inner)], None) if &**name == member => Some(inner),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::amf::MAX_DEPTH;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(v, &mut out).expect("encodable");
        out.to_vec()
    }

    fn dec(bytes: &[u8]) -> Result<Value, AmfError> {
        decode(bytes).map(|(v, _)| v)
    }

    fn round_trip(v: &Value) {
        let bytes = enc(v);
        let (back, used) = decode(&bytes).expect("decodes");
        assert_eq!(&back, v);
        assert_eq!(used, bytes.len());
    }

    fn s(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    /// An inline `UTF-8-vr` as raw bytes (lengths below 64).
    fn vr(text: &str) -> Vec<u8> {
        let mut v = vec![((text.len() as u8) << 1) | 1];
        v.extend_from_slice(text.as_bytes());
        v
    }

    fn u29(v: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_u29(&mut out, v);
        out.to_vec()
    }

    #[test]
    fn integer_u29_edges_encode_to_known_bytes() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (0x7f, &[0x7f]),
            (0x80, &[0x81, 0x00]),
            (0x3fff, &[0xff, 0x7f]),
            (0x4000, &[0x81, 0x80, 0x00]),
            (0x1f_ffff, &[0xff, 0xff, 0x7f]),
            (0x20_0000, &[0x80, 0xc0, 0x80, 0x00]),
            (0x0fff_ffff, &[0xbf, 0xff, 0xff, 0xff]),
            (-1, &[0xff, 0xff, 0xff, 0xff]),
            (-0x1000_0000, &[0xc0, 0x80, 0x80, 0x00]),
        ];
        for (i, bytes) in cases {
            let mut want = vec![0x04];
            want.extend_from_slice(bytes);
            assert_eq!(enc(&Value::Integer(*i)), want, "{i:#x}");
            assert_eq!(dec(&want), Ok(Value::Integer(*i)), "{i:#x}");
        }
    }

    #[test]
    fn integer_outside_29_bits_encodes_as_double() {
        for i in [1 << 28, -(1 << 28) - 1, i32::MAX, i32::MIN] {
            let bytes = enc(&Value::Integer(i));
            assert_eq!(bytes[0], 0x05);
            assert_eq!(dec(&bytes), Ok(Value::Double(f64::from(i))));
        }
    }

    #[test]
    fn scalars_round_trip() {
        for v in [
            Value::Undefined,
            Value::Null,
            Value::Boolean(false),
            Value::Boolean(true),
            Value::Integer(-5),
            Value::Double(1.5),
            Value::String(s("")),
            Value::String(s("héllo")),
            Value::XmlDocument(s("<a/>")),
            Value::Date(1.7e12),
            Value::Xml(s("<b/>")),
            Value::ByteArray(Bytes::from_static(b"\x00\x01\xff")),
            Value::VectorInt {
                fixed: true,
                items: vec![i32::MIN, -1, 0, i32::MAX],
            },
            Value::VectorUint {
                fixed: false,
                items: vec![0, u32::MAX],
            },
            Value::VectorDouble {
                fixed: false,
                items: vec![0.5, f64::INFINITY],
            },
        ] {
            round_trip(&v);
        }
    }

    #[test]
    fn markers_encode_as_specified() {
        assert_eq!(enc(&Value::Undefined), [0x00]);
        assert_eq!(enc(&Value::Null), [0x01]);
        assert_eq!(enc(&Value::Boolean(false)), [0x02]);
        assert_eq!(enc(&Value::Boolean(true)), [0x03]);
        assert_eq!(enc(&Value::String(s("ab"))), [0x06, 0x05, b'a', b'b']);
        assert_eq!(enc(&Value::String(s(""))), [0x06, 0x01]);
        assert_eq!(enc(&Value::Date(0.0)), [0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn containers_round_trip() {
        let anon = Value::Object(Object {
            class_name: s(""),
            sealed: vec![(s("a"), Value::Integer(1)), (s(""), Value::Null)],
            dynamic: Some(vec![(s("d"), Value::String(s("x")))]),
        });
        let typed = Value::Object(Object {
            class_name: s("com.example.Point"),
            sealed: vec![(s("x"), Value::Double(1.0)), (s("y"), Value::Double(2.0))],
            dynamic: None,
        });
        for v in [
            Value::Array {
                assoc: vec![(s("k"), Value::Integer(7))],
                dense: vec![Value::Null, Value::String(s("k"))],
            },
            anon.clone(),
            typed.clone(),
            Value::VectorObject {
                fixed: false,
                type_name: s("*"),
                items: vec![typed.clone(), Value::Null],
            },
            Value::Dictionary {
                weak_keys: true,
                entries: vec![(anon, Value::Integer(1)), (Value::String(s("k")), typed)],
            },
            Value::Array {
                assoc: vec![],
                dense: vec![Value::Date(1.0), Value::ObjectReference(0)],
            },
        ] {
            round_trip(&v);
        }
    }

    #[test]
    fn string_reference_shares_the_arc() {
        let mut bytes = vec![0x09, 0x05, 0x01, 0x06];
        bytes.extend(vr("abc"));
        bytes.extend([0x06, 0x00]);
        let Value::Array { dense, .. } = dec(&bytes).unwrap() else {
            panic!("not an array")
        };
        let (Value::String(a), Value::String(b)) = (&dense[0], &dense[1]) else {
            panic!("not strings")
        };
        assert_eq!(&**b, "abc");
        assert!(Arc::ptr_eq(a, b));
    }

    #[test]
    fn empty_string_is_not_put_in_string_table() {
        let bytes = [0x09, 0x05, 0x01, 0x06, 0x01, 0x06, 0x00];
        assert_eq!(
            dec(&bytes),
            Err(AmfError::BadReference {
                version: 3,
                table: "string",
                index: 0,
                len: 0
            })
        );
    }

    #[test]
    fn string_reference_out_of_range_is_rejected() {
        assert!(matches!(
            dec(&[0x06, 0x02]),
            Err(AmfError::BadReference {
                table: "string",
                index: 1,
                ..
            })
        ));
    }

    #[test]
    fn object_reference_out_of_range_is_rejected() {
        assert!(matches!(
            dec(&[0x0a, 0x00]),
            Err(AmfError::BadReference {
                table: "object",
                index: 0,
                len: 0,
                ..
            })
        ));
        // The array itself is entry 0; entry 1 does not exist.
        assert!(matches!(
            dec(&[0x09, 0x03, 0x01, 0x09, 0x02]),
            Err(AmfError::BadReference {
                table: "object",
                index: 1,
                len: 1,
                ..
            })
        ));
    }

    #[test]
    fn object_referring_to_itself_stays_unresolved() {
        // Dynamic anonymous object { me: <reference to itself> }.
        let mut bytes = vec![0x0a, 0x0b, 0x01];
        bytes.extend(vr("me"));
        bytes.extend([0x0a, 0x00, 0x01]);
        let v = dec(&bytes).unwrap();
        assert_eq!(v.get("me"), Some(&Value::ObjectReference(0)));
    }

    #[test]
    fn trait_reference_to_nonexistent_trait_is_rejected() {
        // CVE-2015-8270/8271 shape: U29O with bit 1 clear names trait 0.
        assert!(matches!(
            dec(&[0x0a, 0x01, 0x01]),
            Err(AmfError::BadReference {
                table: "trait",
                index: 0,
                len: 0,
                ..
            })
        ));
    }

    #[test]
    fn huge_sealed_member_count_with_few_bytes_is_rejected() {
        // CVE-2015-8272 shape: 2^24 sealed members declared, 3 bytes follow.
        let mut bytes = vec![0x0a];
        bytes.extend(u29((1 << 24 << 4) | 0b011));
        bytes.extend([0x01, 0x03, 0x61, 0x01]);
        assert!(matches!(dec(&bytes), Err(AmfError::Truncated { .. })));
    }

    #[test]
    fn trait_reference_from_inside_its_own_object_decodes() {
        // Outer object declares traits ["child"]; its child object reuses
        // trait 0 while the outer object is still being decoded.
        let mut bytes = vec![0x0a, 0x13, 0x01];
        bytes.extend(vr("child"));
        bytes.extend([0x0a, 0x01, 0x01]);
        let v = dec(&bytes).unwrap();
        let Value::Object(outer) = &v else {
            panic!("not an object")
        };
        let Value::Object(inner) = &outer.sealed[0].1 else {
            panic!("child not an object")
        };
        assert_eq!(inner.sealed, vec![(s("child"), Value::Null)]);
        // The member name list is shared, not copied.
        assert!(Arc::ptr_eq(&outer.sealed[0].0, &inner.sealed[0].0));
    }

    #[test]
    fn trait_reference_reuses_member_names() {
        let mut bytes = vec![0x09, 0x05, 0x01, 0x0a, 0x13, 0x01];
        bytes.extend(vr("n"));
        bytes.extend([0x04, 0x01, 0x0a, 0x01, 0x04, 0x02]);
        let Value::Array { dense, .. } = dec(&bytes).unwrap() else {
            panic!("not an array")
        };
        assert_eq!(dense[0].get("n"), Some(&Value::Integer(1)));
        assert_eq!(dense[1].get("n"), Some(&Value::Integer(2)));
    }

    #[test]
    fn array_collection_decodes_and_re_encodes_externalizable() {
        let mut bytes = vec![0x0a, 0x07];
        bytes.extend(vr(ARRAY_COLLECTION_CLASS));
        bytes.extend([0x09, 0x03, 0x01, 0x04, 0x01]);
        let v = dec(&bytes).unwrap();
        assert_eq!(
            v.get("source"),
            Some(&Value::Array {
                assoc: vec![],
                dense: vec![Value::Integer(1)]
            })
        );
        assert_eq!(enc(&v), bytes);
    }

    #[test]
    fn object_proxy_decodes() {
        let mut bytes = vec![0x0a, 0x07];
        bytes.extend(vr(OBJECT_PROXY_CLASS));
        bytes.extend([0x0a, 0x0b, 0x01]);
        bytes.extend(vr("k"));
        bytes.extend([0x03, 0x01]);
        let v = dec(&bytes).unwrap();
        let inner = v.get("object").expect("wrapped object");
        assert_eq!(inner.get("k"), Some(&Value::Boolean(true)));
        assert_eq!(enc(&v), bytes);
    }

    #[test]
    fn unknown_externalizable_class_is_unsupported() {
        let mut bytes = vec![0x0a, 0x07];
        bytes.extend(vr("DSK"));
        bytes.push(0x01);
        assert!(matches!(dec(&bytes), Err(AmfError::Unsupported(c)) if c.contains("DSK")));
    }

    fn nested_arrays(levels: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            bytes.extend([0x09, 0x03, 0x01]);
        }
        bytes.push(0x01);
        bytes
    }

    #[test]
    fn a_lower_depth_limit_refuses_what_the_default_accepts() {
        let input = nested_arrays(4);
        assert!(dec(&input).is_ok());
        assert_eq!(
            Decoder::with_max_depth(&input, 3).decode(),
            Err(AmfError::TooDeep { limit: 3 })
        );
    }

    fn nested_objects(levels: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            // An anonymous dynamic object whose only member "a" is the next level.
            bytes.extend([0x0a, 0x0b, 0x01, 0x03, b'a']);
        }
        bytes.push(0x01);
        bytes.extend(std::iter::repeat(0x01).take(levels));
        bytes
    }

    #[test]
    fn arrays_nested_max_depth_decode() {
        assert!(dec(&nested_arrays(MAX_DEPTH)).is_ok());
    }

    #[test]
    fn arrays_nested_beyond_max_depth_are_too_deep() {
        assert_eq!(
            dec(&nested_arrays(MAX_DEPTH + 1)),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
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
    fn encoding_beyond_max_depth_is_too_deep() {
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH {
            v = Value::Array {
                assoc: vec![],
                dense: vec![v],
            };
        }
        let mut out = BytesMut::from(&b"keep"[..]);
        assert_eq!(
            encode(&v, &mut out),
            Err(AmfError::TooDeep { limit: MAX_DEPTH })
        );
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn huge_declared_counts_with_few_bytes_fail_fast() {
        let big = u29((0x0fff_ffff << 1) | 1);
        for m in [0x06, 0x07, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11] {
            let mut bytes = vec![m];
            bytes.extend(&big);
            bytes.extend([0x01, 0x01, 0x01]);
            assert!(
                matches!(dec(&bytes), Err(AmfError::Truncated { .. })),
                "marker {m:#x}: {:?}",
                dec(&bytes)
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let v = Value::Array {
            assoc: vec![(s("k"), Value::Double(2.0))],
            dense: vec![
                Value::Object(Object {
                    class_name: s("C"),
                    sealed: vec![(s("x"), Value::String(s("abc")))],
                    dynamic: Some(vec![(s("y"), Value::Integer(300))]),
                }),
                Value::VectorDouble {
                    fixed: true,
                    items: vec![1.0],
                },
                Value::Dictionary {
                    weak_keys: false,
                    entries: vec![(
                        Value::Integer(1),
                        Value::ByteArray(Bytes::from_static(b"ab")),
                    )],
                },
            ],
        };
        let bytes = enc(&v);
        for n in 0..bytes.len() {
            assert!(dec(&bytes[..n]).is_err(), "prefix {n} decoded");
        }
    }

    #[test]
    fn unknown_marker_is_rejected() {
        assert_eq!(
            dec(&[0x12]),
            Err(AmfError::UnknownMarker {
                version: 3,
                marker: 0x12
            })
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert_eq!(dec(&[0x06, 0x03, 0xff]), Err(AmfError::InvalidUtf8));
    }

    #[test]
    fn decode_reports_bytes_consumed() {
        assert_eq!(
            decode(&[0x04, 0x81, 0x00, 0xaa]),
            Ok((Value::Integer(0x80), 3))
        );
    }

    #[test]
    fn decoder_shares_tables_across_values() {
        let mut bytes = vec![0x06];
        bytes.extend(vr("hi"));
        bytes.extend([0x06, 0x00]);
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.decode(), Ok(Value::String(s("hi"))));
        assert_eq!(d.decode(), Ok(Value::String(s("hi"))));
        assert!(d.is_empty());
    }

    #[test]
    fn decoder_errors_are_sticky() {
        let bytes = [0x04, 0x01, 0x06, 0x02, 0x01];
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.decode(), Ok(Value::Integer(1)));
        let e = d.decode().unwrap_err();
        assert_eq!(d.decode(), Err(e));
        assert_eq!(d.remaining(), &bytes[2..]);
    }

    #[test]
    fn empty_dynamic_key_cannot_be_encoded() {
        let v = Value::Object(Object {
            class_name: s(""),
            sealed: vec![],
            dynamic: Some(vec![(s(""), Value::Null)]),
        });
        assert!(matches!(
            encode(&v, &mut BytesMut::new()),
            Err(AmfError::OutOfRange(_))
        ));
    }

    #[test]
    fn object_reference_encodes_under_the_object_marker() {
        let v = Value::Array {
            assoc: vec![],
            dense: vec![
                Value::Date(1.0),
                Value::Date(2.0),
                Value::Date(3.0),
                Value::ObjectReference(3),
            ],
        };
        let bytes = enc(&v);
        assert_eq!(&bytes[bytes.len() - 2..], [0x0a, 0x06]);
    }

    #[test]
    fn object_reference_to_a_value_not_yet_written_is_not_encoded() {
        let v = Value::Array {
            assoc: vec![],
            dense: vec![Value::ObjectReference(1)],
        };
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(encode(&v, &mut out), Err(AmfError::OutOfRange(_))));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn object_reference_beyond_28_bits_cannot_be_encoded() {
        assert!(matches!(
            encode(&Value::ObjectReference(1 << 28), &mut BytesMut::new()),
            Err(AmfError::OutOfRange(_))
        ));
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_map(|f| if f.is_nan() { 0.0 } else { f })
    }

    fn text() -> impl Strategy<Value = Arc<str>> {
        "\\PC{0,8}".prop_map(|t: String| Arc::from(t))
    }

    fn key() -> impl Strategy<Value = Arc<str>> {
        "\\PC{1,8}".prop_map(|t: String| Arc::from(t))
    }

    /// Arbitrary encodable AMF3 values without references (whose validity
    /// depends on position) and with integers in the 29-bit range.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Undefined),
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            (INT_MIN..=INT_MAX).prop_map(Value::Integer),
            finite().prop_map(Value::Double),
            text().prop_map(Value::String),
            text().prop_map(Value::XmlDocument),
            text().prop_map(Value::Xml),
            finite().prop_map(Value::Date),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::ByteArray(b.into())),
            (any::<bool>(), prop::collection::vec(any::<i32>(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorInt { fixed, items }),
            (any::<bool>(), prop::collection::vec(any::<u32>(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorUint { fixed, items }),
            (any::<bool>(), prop::collection::vec(finite(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorDouble { fixed, items }),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let members = |inner: BoxedStrategy<Value>| prop::collection::vec((key(), inner), 0..4);
            prop_oneof![
                (
                    members(inner.clone()),
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(assoc, dense)| Value::Array { assoc, dense }),
                (
                    "[a-z.]{0,6}",
                    prop::collection::vec((text(), inner.clone()), 0..4),
                    prop::option::of(members(inner.clone())),
                )
                    .prop_map(|(class_name, sealed, dynamic)| {
                        Value::Object(Object {
                            class_name: Arc::from(class_name),
                            sealed,
                            dynamic,
                        })
                    }),
                (
                    any::<bool>(),
                    text(),
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(fixed, type_name, items)| Value::VectorObject {
                        fixed,
                        type_name,
                        items
                    }),
                (
                    any::<bool>(),
                    prop::collection::vec((inner.clone(), inner), 0..3)
                )
                    .prop_map(|(weak_keys, entries)| Value::Dictionary { weak_keys, entries }),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_values_round_trip(v in arb_value()) {
            let bytes = enc(&v);
            let (back, used) = decode(&bytes).expect("decodes");
            prop_assert_eq!(back, v);
            prop_assert_eq!(used, bytes.len());
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_corrupted_encodings(
            v in arb_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = enc(&v);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes);
        }
    }
}
