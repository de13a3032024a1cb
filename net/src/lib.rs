//! What every tincan runtime adapter shares: how listeners are bound,
//! which options an accepted socket gets, how a [`Transmit`] is written to
//! a non-blocking socket, where randomness comes from, the close-time
//! settings ([`DriverConfig`]) and close log, and, for the
//! task-per-connection adapters, the core behind one lock
//! ([`LockedServer`], which also hands the core's events to a bounded
//! [`EventSink`] and takes answers back) and the one per-connection driver
//! ([`driver::drive`]) behind a small [`Runtime`] trait. With the `cli`
//! feature, `cli` holds the one command-line definition of the core's
//! settings that every serving program uses.
//!
//! It is plain `std` + `socket2`, executor-agnostic: tokio, mio and smol
//! sockets all expose the file descriptor and a non-blocking vectored
//! write, so each adapter keeps only the glue its executor needs. The core
//! itself stays sans-IO; this crate is the one place that knows sockets
//! without knowing an executor.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod driver;
#[cfg(feature = "lock-stats")]
mod lock_stats;
mod locked;

pub use driver::{DriverConfig, Runtime};
pub use locked::{
    Bell, DirectWriter, EventSink, LockedServer, SinkError, VectoredWrite, DEFAULT_EVENT_CAPACITY,
};

use std::io::{self, IoSlice};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;

use tincan_core::session::Transmit;

/// Buffers passed to one `writev`; well under every platform's IOV_MAX.
pub const MAX_IOVECS: usize = 64;

/// Most bytes left unsent in the kernel before a socket stops reporting
/// writable. 16 KiB (the value web servers use for HTTP/2 prioritisation)
/// is refilled every few milliseconds even at 20 Mbit/s, and on a
/// 160 kbit/s player it is under a second of media past the real-time
/// policy, where Linux's default lets seconds pile up.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Binds one non-blocking listener exactly as given. An IPv6 address is
/// bound IPv6-only, so `0.0.0.0:1935` and `[::]:1935` can both be listened
/// on without colliding; the error names the address.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A restarted server must not wait out TIME_WAIT connections of the old one.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The options every accepted connection gets. Failures are logged, not
/// fatal: the connection still works, only less well.
pub fn configure(stream: &impl AsFd) {
    let sock = socket2::SockRef::from(stream);
    // Media is latency-sensitive and every transmit is already a whole
    // batch: Nagle would only delay it.
    if let Err(e) = sock.set_tcp_nodelay(true) {
        tracing::debug!(error = %e, "cannot disable Nagle");
    }
    // The session applies the real-time policy to what it has not handed
    // out yet; bytes parked unsent in the kernel are past it. Linux's
    // autotuning lets that queue grow to megabytes (seconds of media for a
    // slow player), so only report the socket writable while little is
    // unsent. In-flight (sent, unacknowledged) data is not limited, so
    // throughput on long fat links is unaffected.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = sock.set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(error = %e, "cannot set TCP_NOTSENT_LOWAT");
    }
}

/// A vectored write straight to a non-blocking socket's descriptor,
/// past whatever readiness the executor caches for it: for a runtime's
/// [`Runtime::write_direct`], where that cache would be one more cache
/// line touched per player per frame. `WouldBlock` when the socket is
/// full.
pub fn send_vectored(stream: &impl AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_vectored(bufs)
}

/// Writes as much of `t` as a non-blocking socket takes, through
/// `write_vectored` (the socket's own non-blocking vectored write).
/// `Ok(true)` once all of it is written, `Ok(false)` when the socket would
/// block; the rest stays in `t` for the next call.
pub fn write_transmit(
    t: &mut Transmit,
    mut write_vectored: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<bool> {
    while !t.is_empty() {
        // On the stack: this runs for every transmit of every player.
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = t.io_slices(&mut slices);
        match write_vectored(&slices[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => t.advance(written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Randomness for handshakes and connection IDs, from the OS.
///
/// # Panics
///
/// Only on a broken system (no getrandom(2), no /dev/urandom): no peer can
/// cause it, and serving with predictable handshakes would be worse than
/// stopping.
pub fn os_entropy(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random generator is unavailable");
}

/// The wall clock as Unix seconds, for [`tincan_core::server::Server::handle_unix_time`]:
/// the core checks token time bounds against it and never reads a clock
/// itself. A clock before 1970 reads as 0.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_transmit_written_in_pieces_arrives_whole_and_in_order() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (mut server_side, _) = loop {
            match listener.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        configure(&client);
        let mut t = Transmit {
            bufs: vec![
                bytes::Bytes::from_static(b"ab"),
                bytes::Bytes::new(),
                bytes::Bytes::from_static(b"cdef"),
            ],
        };
        // A socket that takes three bytes at a time.
        let mut c = &client;
        let done = write_transmit(&mut t, |s| {
            let first: Vec<u8> = s.iter().flat_map(|b| b.iter().copied()).take(3).collect();
            std::io::Write::write(&mut c, &first)
        })
        .unwrap();
        assert!(done && t.is_empty());
        let mut got = [0u8; 6];
        server_side.set_nonblocking(false).unwrap();
        server_side.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcdef");
    }

    #[test]
    fn a_socket_that_would_block_keeps_the_rest() {
        let mut t = Transmit {
            bufs: vec![bytes::Bytes::from_static(b"abc")],
        };
        let mut calls = 0;
        let done = write_transmit(&mut t, |_| {
            calls += 1;
            if calls == 1 {
                Ok(1)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        })
        .unwrap();
        assert!(!done);
        assert_eq!(t.bufs, vec![bytes::Bytes::from_static(b"bc")]);
    }

    #[test]
    fn binding_a_taken_address_names_it() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(addr).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
