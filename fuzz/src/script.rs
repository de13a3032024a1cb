//! The input format of the stateful targets: a byte string read as a
//! script of operations, simple enough that a seed can be written by hand
//! or made from a capture (see `crate::seed`).
//!
//! Every read is total: past the end, numbers read as 0 and byte runs are
//! empty, so any input is a valid script. A byte run is a 16-bit little
//! endian length and that many bytes (fewer if the input ends first), so a
//! recorded TCP read becomes one run verbatim.

/// A cursor over a fuzz input.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    /// A script over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next operation byte, or `None` at the end of the script.
    pub fn op(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        self.op().unwrap_or(0)
    }

    /// A little-endian u16 (0 past the end).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A little-endian u32 (0 past the end).
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    /// `n` bytes, or what is left.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A byte run: u16 length, then the bytes.
    pub fn run(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Writes scripts: the inverse of [`Script`], for seeds.
#[derive(Debug, Clone, Default)]
pub struct ScriptWriter {
    /// The script so far.
    pub bytes: Vec<u8>,
}

impl ScriptWriter {
    /// One byte.
    pub fn u8(&mut self, b: u8) -> &mut Self {
        self.bytes.push(b);
        self
    }

    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.u16(v as u16).u16((v >> 16) as u16)
    }

    /// Raw bytes.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    /// Byte runs of at most 65535 bytes each, each preceded by `op` (and
    /// `prefix`), covering `data`.
    pub fn runs(&mut self, op: &[u8], data: &[u8]) -> &mut Self {
        for piece in data.chunks(usize::from(u16::MAX)) {
            self.raw(op);
            self.u16(piece.len() as u16).raw(piece);
        }
        self
    }
}
