//! The transmit being written to one socket.

use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};
use tincan_core::session::Transmit;

/// Buffers passed to one `writev`; well under every platform's IOV_MAX.
const MAX_IOVECS: usize = 64;

/// The core hands out the next transmit only when this one is gone, so the
/// session's real-time backlog stays the only queue.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    bufs: Vec<Bytes>,
    /// Index of the first buffer not fully written.
    first: usize,
}

impl Pending {
    pub(crate) fn is_done(&self) -> bool {
        self.first >= self.bufs.len()
    }

    pub(crate) fn set(&mut self, t: Transmit) {
        self.bufs = t.bufs;
        self.first = 0;
        self.skip_empty();
    }

    fn skip_empty(&mut self) {
        while self.first < self.bufs.len() && self.bufs[self.first].is_empty() {
            self.first += 1;
        }
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 && !self.is_done() {
            let buf = &mut self.bufs[self.first];
            let step = n.min(buf.len());
            buf.advance(step);
            n -= step;
            self.skip_empty();
        }
    }

    /// Writes as much as the non-blocking `out` takes. `Ok(true)` once
    /// everything is written, `Ok(false)` when it would block.
    pub(crate) fn write_to(&mut self, mut out: impl Write) -> io::Result<bool> {
        while !self.is_done() {
            // On the stack: this runs for every transmit of every player.
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, buf) in slices.iter_mut().zip(&self.bufs[self.first..]) {
                *slot = IoSlice::new(buf);
                count += 1;
            }
            match out.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bufs.clear();
        self.first = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(parts: &[&'static [u8]]) -> Pending {
        let mut p = Pending::default();
        p.set(Transmit {
            bufs: parts.iter().map(|b| Bytes::from_static(b)).collect(),
        });
        p
    }

    /// Takes at most `limit` bytes per call, then would block.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_partial_write_resumes_inside_a_buffer() {
        let mut p = pending(&[b"abc", b"defg"]);
        let mut out = Trickle {
            out: Vec::new(),
            limit: 2,
            calls_left: 2,
        };
        assert!(!p.write_to(&mut out).unwrap());
        out.calls_left = 10;
        assert!(p.write_to(&mut out).unwrap());
        assert_eq!(out.out, b"abcdefg");
    }

    #[test]
    fn empty_buffers_never_hold_up_completion() {
        let mut p = pending(&[b"", b"ab", b"", b""]);
        p.advance(2);
        assert!(p.is_done());
    }
}
