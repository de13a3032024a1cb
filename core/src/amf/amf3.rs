//! AMF3, used by Flash/AIR clients inside AMF0 messages (the AVM+ switch)
//! and in type 17/15 messages.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::AmfError;

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
    /// byte array, vector, dictionary) decoded earlier in the same value.
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

/// Decodes one AMF3 value (with fresh reference tables) from `input`,
/// returning it and the number of bytes consumed.
pub fn decode(input: &[u8]) -> Result<(Value, usize), AmfError> {
    let _ = input;
    todo!("AMF3 decode")
}

/// Appends the encoding of `value` (with fresh reference tables) to `out`.
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), AmfError> {
    let _ = (value, out);
    todo!("AMF3 encode")
}
