//! Action Message Format, versions 0 and 3: the encoding of every RTMP
//! command and data message.
//!
//! Both decoders treat the input as hostile: nesting is capped at
//! [`MAX_DEPTH`], every length and count is checked against the bytes actually
//! present before anything is allocated, and references are checked against
//! the tables built so far. Neither ever panics on any input.
//!
//! # Memory
//!
//! References (AMF0 marker 0x07, AMF3 object references) are validated and
//! kept unresolved, and AMF3 strings named through the string table share one
//! `Arc<str>`, so every decoded node costs at least one input byte and decoded
//! memory is linear in the input (a bounded constant factor, the size of a
//! `Value` per byte at worst). No shape can multiply memory, which is why
//! [`AmfError::ExpansionBudget`] is reserved and never returned today; callers
//! bound the input itself through the chunk layer's message-size limit.
//!
//! # AMF3 inside AMF0
//!
//! An [`amf0::Decoder`] keeps one set of AMF3 reference tables (strings,
//! objects, traits) for all the AVM+ (0x11) values of the message it decodes,
//! the way BlazeDS (`Amf0Input` keeps one `Amf3Input` until `reset()`) and
//! PyAMF (one AMF3 context per AMF0 context) do. Our encoders never emit
//! string or trait references, so what they write is read correctly whichever
//! scope the peer assumes.

pub mod amf0;
pub mod amf3;

/// How deeply objects and arrays may nest before a decoder refuses the input.
///
/// Real clients nest three or four levels at most; the cap exists because
/// recursion on attacker-chosen depth exhausts the stack. It is the default
/// and the ceiling: a decoder can be given a lower limit
/// ([`amf0::Decoder::with_max_depth`], [`amf3::Decoder::with_max_depth`]),
/// never a higher one, since the stack a thread has is not ours to know.
pub const MAX_DEPTH: usize = 64;

pub use error::AmfError;

mod error {
    /// Why an AMF payload was refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum AmfError {
        /// The input ended inside a value.
        #[error("AMF input truncated: needed {needed} more bytes")]
        Truncated {
            /// How many more bytes the value declared or needed.
            needed: usize,
        },
        /// A type marker that the format does not define.
        #[error("unknown AMF{version} marker 0x{marker:02x}")]
        UnknownMarker {
            /// 0 or 3.
            version: u8,
            /// The offending byte.
            marker: u8,
        },
        /// A marker the format reserves but no encoder may send (AMF0
        /// MovieClip and RecordSet).
        #[error("unsupported AMF{version} marker 0x{marker:02x}")]
        UnsupportedMarker {
            /// 0 or 3.
            version: u8,
            /// The offending byte.
            marker: u8,
        },
        /// Nesting deeper than [`super::MAX_DEPTH`].
        #[error("AMF nesting deeper than {limit}")]
        TooDeep {
            /// The configured limit.
            limit: usize,
        },
        /// A reference to a table entry that does not exist (yet).
        #[error("AMF{version} {table} reference {index} out of range ({len} entries)")]
        BadReference {
            /// 0 or 3.
            version: u8,
            /// Which table: "object", "string" or "trait".
            table: &'static str,
            /// The index the input asked for.
            index: u32,
            /// How many entries the table held.
            len: usize,
        },
        /// A string that is not UTF-8.
        #[error("AMF string is not valid UTF-8")]
        InvalidUtf8,
        /// An AMF3 integer outside the 29-bit range, or a value whose length
        /// cannot be written in the format's length field.
        #[error("value out of range for AMF encoding: {0}")]
        OutOfRange(&'static str),
        /// References would expand the decoded value far beyond the input's
        /// size (the "billion laughs" shape).
        #[error("AMF references expand beyond the decode budget of {budget} bytes")]
        ExpansionBudget {
            /// The budget that was exceeded.
            budget: usize,
        },
        /// A structure the decoder understands but cannot represent, such as
        /// an AMF3 externalizable object of an unknown class.
        #[error("unsupported AMF construct: {0}")]
        Unsupported(String),
        /// An object end marker or other structural byte in the wrong place.
        #[error("malformed AMF: {0}")]
        Malformed(&'static str),
    }
}

/// A bounds-checked cursor over one message body, shared by both decoders so
/// that an AVM+ switch continues on the same bytes.
///
/// Every read checks the bytes actually remaining and reports how many were
/// missing; nothing here indexes past the end or allocates.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], pos: usize) -> Self {
        Reader { input, pos }
    }

    /// Offset of the next unread byte in the whole input.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest().len()
    }

    /// Fails unless at least `n` more bytes are present, without consuming
    /// them; used before allocating for a declared count.
    pub(crate) fn require(&self, n: usize) -> Result<(), AmfError> {
        let have = self.remaining();
        if have < n {
            return Err(AmfError::Truncated { needed: n - have });
        }
        Ok(())
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        self.require(n)?;
        let out = self.rest().get(..n).unwrap_or_default();
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AmfError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, AmfError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, AmfError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, AmfError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn f64(&mut self) -> Result<f64, AmfError> {
        self.array().map(f64::from_be_bytes)
    }

    /// Borrows `n` bytes as UTF-8 text, without copying.
    pub(crate) fn str(&mut self, n: usize) -> Result<&'a str, AmfError> {
        std::str::from_utf8(self.bytes(n)?).map_err(|_| AmfError::InvalidUtf8)
    }
}

/// Fails with [`AmfError::TooDeep`] when a container would open at `depth`
/// enclosing containers (so [`MAX_DEPTH`] levels are accepted).
pub(crate) fn enter(depth: usize) -> Result<usize, AmfError> {
    enter_within(depth, MAX_DEPTH)
}

/// [`enter`] against a decoder's own `limit` (at most [`MAX_DEPTH`]).
pub(crate) fn enter_within(depth: usize, limit: usize) -> Result<usize, AmfError> {
    if depth >= limit {
        return Err(AmfError::TooDeep { limit });
    }
    Ok(depth + 1)
}

/// Initial capacity for a collection whose count the peer declared: never
/// more than the bytes left could fill (`min_size` bytes per element), and
/// never a large up-front block, so a lying count cannot reserve memory.
pub(crate) fn capacity(declared: usize, remaining: usize, min_size: usize) -> usize {
    declared.min(remaining / min_size.max(1)).min(1024)
}
