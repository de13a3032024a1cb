//! The floor's io_uring write path (`--writes uring-per-frame`): the
//! experiment of whether submitting a frame's writes to every player in
//! one `io_uring_enter` costs less CPU per delivered GB than one `writev`
//! syscall per player.
//!
//! It issues `IORING_OP_WRITEV`, the very operation the epoll path makes as
//! a syscall, so the one difference measured is the way in: one kernel
//! entry per frame instead of one per player. (`SendZc` was left out: on
//! loopback the kernel copies zero-copy sends anyway, and each would post a
//! second, notification completion.)
//!
//! Every operation's buffers and its `iovec` array live in [`Uring::ops`]
//! until its completion is reaped, whatever happens to the connection: a
//! closed connection's operation is cancelled, and its buffers are freed
//! only once the kernel says it is done with them.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use bytes::{Buf, Bytes};
use io_uring::{opcode, types, IoUring};

/// Submission queue entries: a frame's writes to 4,096 players go in one
/// submission; more players take one more `io_uring_enter` per 4,096.
const ENTRIES: u32 = 4096;
/// The user data of cancellations, whose completions need no action.
const CANCEL: u64 = u64::MAX;

/// One write in flight: what the kernel may read until its completion.
#[derive(Default)]
struct Op {
    bufs: Vec<Bytes>,
    iov: Vec<libc::iovec>,
}

/// The ring and the writes it has in flight.
pub(super) struct Uring {
    ring: IoUring,
    /// By user data (`slot << 32 | serial`), each write in flight.
    ops: HashMap<u64, Op>,
    /// Emptied operations, so that a write allocates nothing.
    spare: Vec<Op>,
    /// Entries pushed since the last submission.
    unsubmitted: usize,
    /// Unsent buffers of the completion being handed over.
    unsent: Vec<Bytes>,
}

/// A connection's identity in user data: its slot and a serial that tells
/// a reused slot's new connection from the one whose write completes.
pub(super) fn user_data(slot: usize, serial: u32) -> u64 {
    ((slot as u64) << 32) | u64::from(serial)
}

impl Uring {
    pub(super) fn new() -> io::Result<Uring> {
        let ring = IoUring::builder()
            // Only the floor's one thread submits: the kernel can skip
            // the locking a shared ring needs.
            .setup_single_issuer()
            .build(ENTRIES)?;
        Ok(Uring {
            ring,
            ops: HashMap::new(),
            spare: Vec::new(),
            unsubmitted: 0,
            unsent: Vec::new(),
        })
    }

    /// The ring's descriptor: readable when completions wait, so the epoll
    /// loop wakes for writes that had to wait for socket space.
    pub(super) fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Queues one vectored write of `bufs` (drained) to `fd`; it goes to
    /// the kernel at the next [`Uring::submit`].
    pub(super) fn write(
        &mut self,
        fd: RawFd,
        ud: u64,
        bufs: impl Iterator<Item = Bytes>,
    ) -> io::Result<()> {
        let mut op = self.spare.pop().unwrap_or_default();
        op.bufs.extend(bufs);
        op.iov.extend(op.bufs.iter().map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        }));
        let entry = opcode::Writev::new(types::Fd(fd), op.iov.as_ptr(), op.iov.len() as u32)
            .build()
            .user_data(ud);
        // The map owns the buffers from here; moving `op` into it moves
        // only the vectors' headers, not the heap memory `entry` points at.
        if let Some(old) = self.ops.insert(ud, op) {
            // A connection has at most one write in flight: never reached.
            self.ops.insert(ud, old);
            return Err(io::Error::other("two writes in flight on one connection"));
        }
        self.push(&entry)
    }

    /// Asks the kernel to give up the write with user data `ud` (its
    /// connection is gone); its buffers stay until its completion.
    pub(super) fn cancel(&mut self, ud: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(ud).build().user_data(CANCEL);
        self.push(&entry)?;
        self.submit()
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: a write's entry points at `op.iov` and through it at
            // `op.bufs`, both owned by `self.ops` under the entry's user
            // data. Nothing removes an op from `self.ops` but
            // `complete`, on the completion of that very user data, so the
            // memory stays allocated and unchanged until the kernel is done
            // with it; a cancellation points at no memory.
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                self.unsubmitted += 1;
                return Ok(());
            }
            // The queue is full: hand it to the kernel and go on.
            self.submit()?;
        }
    }

    /// Hands every queued entry to the kernel in one `io_uring_enter`.
    /// The kernel tries each write at once; those that find socket space
    /// complete before it returns.
    pub(super) fn submit(&mut self) -> io::Result<()> {
        while self.unsubmitted > 0 {
            match self.ring.submit() {
                Ok(n) => self.unsubmitted = self.unsubmitted.saturating_sub(n.max(1)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Hands every completion to `done` with the connection's user data,
    /// what the write did and its unsent buffers, in order.
    pub(super) fn complete(
        &mut self,
        mut done: impl FnMut(u64, io::Result<usize>, &mut Vec<Bytes>),
    ) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            if ud == CANCEL {
                continue;
            }
            let Some(mut op) = self.ops.remove(&ud) else {
                continue;
            };
            let result = if cqe.result() >= 0 {
                Ok(cqe.result() as usize)
            } else {
                Err(io::Error::from_raw_os_error(-cqe.result()))
            };
            let mut left = *result.as_ref().unwrap_or(&0);
            for mut b in op.bufs.drain(..) {
                if left >= b.len() {
                    left -= b.len();
                    continue;
                }
                b.advance(left);
                left = 0;
                self.unsent.push(b);
            }
            op.iov.clear();
            self.spare.push(op);
            done(ud, result, &mut self.unsent);
            self.unsent.clear();
        }
    }
}
