//! Action Message Format, versions 0 and 3: the encoding of every RTMP
//! command and data message.
//!
//! Both decoders treat the input as hostile: nesting is capped at
//! [`MAX_DEPTH`], every length and count is checked against the bytes actually
//! present before anything is allocated, and references are checked against
//! the tables built so far. Neither ever panics on any input.

pub mod amf0;
pub mod amf3;

/// How deeply objects and arrays may nest before a decoder refuses the input.
///
/// Real clients nest three or four levels at most; the cap exists because
/// recursion on attacker-chosen depth exhausts the stack.
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
