//! A bounds-checked cursor over a media payload.
//!
//! Every read either returns the bytes or [`MediaError::Truncated`] naming
//! the field that did not fit, so the parsers above never index a slice
//! directly and cannot panic on a short or hostile payload.

use bytes::Bytes;

use super::{FourCc, MediaError};

/// Cursor over a shared payload; slices it without copying.
pub(super) struct Reader<'a> {
    buf: &'a Bytes,
    // Invariant: `pos <= buf.len()`; every method that advances checks it.
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the beginning of `buf`.
    pub(super) fn new(buf: &'a Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    /// Resumes at `pos` (clamped to the end, so a stale position is harmless).
    pub(super) fn at(buf: &'a Bytes, pos: usize) -> Self {
        Self {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// Offset of the next unread byte.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// True once every byte has been consumed.
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Borrows the next `n` bytes.
    pub(super) fn slice(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MediaError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(MediaError::Truncated { what })?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(MediaError::Truncated { what })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MediaError> {
        let s = self.slice(N, what)?;
        s.try_into().map_err(|_| MediaError::Truncated { what })
    }

    /// Reads a UI8.
    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, MediaError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a big-endian UI16.
    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian UI24.
    pub(super) fn u24(&mut self, what: &'static str) -> Result<u32, MediaError> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// Reads a big-endian SI24, sign-extended to `i32`.
    pub(super) fn i24(&mut self, what: &'static str) -> Result<i32, MediaError> {
        let [a, b, c] = self.array(what)?;
        // Place the 24 bits at the top, then shift back arithmetically.
        Ok(i32::from_be_bytes([a, b, c, 0]) >> 8)
    }

    /// Reads a big-endian UI32.
    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, MediaError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a FourCC.
    pub(super) fn fourcc(&mut self, what: &'static str) -> Result<FourCc, MediaError> {
        Ok(FourCc(self.array(what)?))
    }

    /// Takes the next `n` bytes as a zero-copy slice of the payload.
    pub(super) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, MediaError> {
        let start = self.pos;
        self.slice(n, what)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// Takes everything left as a zero-copy slice of the payload.
    pub(super) fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }
}
