//! [`Transmit`]: what a session hands the runtime to write.

use bytes::Bytes;

/// One vectored write: the buffers in order. Chunk headers are small owned
/// buffers; media payloads are shared with every other player.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transmit {
    /// Buffers to write back to back.
    pub bufs: Vec<Bytes>,
}

impl Transmit {
    /// Total bytes in this write.
    pub fn len(&self) -> usize {
        self.bufs.iter().map(Bytes::len).sum()
    }

    /// Whether there is nothing (left) to write.
    pub fn is_empty(&self) -> bool {
        self.bufs.iter().all(Bytes::is_empty)
    }

    /// Forgets the first `n` bytes after a partial write, so the rest can be
    /// written next time the socket takes bytes. Every runtime needs this
    /// for vectored writes; it never copies a payload.
    pub fn advance(&mut self, mut n: usize) {
        let mut done = 0;
        for b in &mut self.bufs {
            if b.len() > n {
                bytes::Buf::advance(b, n);
                break;
            }
            n -= b.len();
            done += 1;
        }
        self.bufs.drain(..done);
    }

    /// Fills `out` with the non-empty buffers still to write, in order, and
    /// returns how many it filled: the argument of one `write_vectored`. A
    /// transmit holds at most a few hundred buffers; pass a fixed array
    /// (64 slots is plenty per call) so no allocation happens per write.
    pub fn io_slices<'a>(&'a self, out: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, b) in out
            .iter_mut()
            .zip(self.bufs.iter().filter(|b| !b.is_empty()))
        {
            *slot = std::io::IoSlice::new(b);
            filled += 1;
        }
        filled
    }
}
