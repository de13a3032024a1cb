//! Tokio's half of the per-connection driver: [`Tokio`] forwards the
//! driver's needs (readiness, non-blocking IO, a bell, a timer) to tokio;
//! the driver itself is [`tincan_net::driver::drive`], shared with smol.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tincan_core::event::SessionId;
use tincan_core::outbound::Dial;
use tincan_net::DriverConfig;
use tokio::net::TcpStream;

use crate::shared::{Shared, TokioBell};

/// tokio, as the connection driver sees it.
#[derive(Debug)]
pub(crate) struct Tokio;

impl tincan_net::Runtime for Tokio {
    type Stream = TcpStream;
    type Bell = TokioBell;
    // A `Notify` is both sides of the bell: it keeps a permit rung before
    // the task waits, so no wake-up is lost.
    type Waiter = TokioBell;

    fn bell() -> (TokioBell, TokioBell) {
        let bell = TokioBell::default();
        (bell.clone(), bell)
    }

    fn rung(waiter: &TokioBell) -> impl Future<Output = ()> {
        waiter.0.notified()
    }

    fn now() -> Instant {
        crate::shared::now()
    }

    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> {
        tokio::time::sleep_until(deadline.into())
    }

    fn yield_now() -> impl Future<Output = ()> {
        // tokio's own yield defers the wake to the end of the scheduler's
        // tick, so other tasks really run first.
        tokio::task::yield_now()
    }

    fn poll_readable(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream.poll_read_ready(cx)
    }

    fn poll_writable(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream.poll_write_ready(cx)
    }

    fn try_read(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        stream.try_read(buf)
    }

    fn try_write_vectored(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        stream.try_write_vectored(bufs)
    }

    fn write_direct(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // tokio's own write reads (and on `WouldBlock` clears) the
        // readiness it caches per socket, in an allocation of its own: a
        // cache miss per player per frame of a fan-out. A direct write
        // that would block wakes this connection's task, whose tokio
        // write then clears it, so skipping it here loses no wake-up.
        tincan_net::send_vectored(stream, bufs)
    }

    async fn resolve(target: String) -> io::Result<Vec<SocketAddr>> {
        // getaddrinfo on tokio's blocking pool (an IP literal skips it).
        Ok(tokio::net::lookup_host(target).await?.collect())
    }

    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> {
        TcpStream::connect(addr)
    }
}

/// Runs one accepted connection until its session closes or the socket
/// fails; the core decides everything else (shutdown, limits, timers).
pub(crate) fn run(
    shared: Arc<Shared>,
    id: SessionId,
    stream: TcpStream,
    config: DriverConfig,
) -> impl Future<Output = ()> + Send {
    tincan_net::driver::drive::<Tokio>(shared, id, stream, config)
}

/// Dials one outbound connection and then runs it as [`run`] runs an
/// accepted one.
pub(crate) fn dial(
    shared: Arc<Shared>,
    dial: Dial,
    config: DriverConfig,
) -> impl Future<Output = ()> + Send {
    tincan_net::driver::dial::<Tokio>(shared, dial, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection costs its task's size for as long as it lives, so
    /// nothing large (a read buffer, a close-time read buffer) may sit in it.
    #[tokio::test]
    async fn a_connection_task_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (shared, _timer, _dialer) =
            crate::shared::new(tincan_core::server::ServerConfig::default());
        let task = run(shared, SessionId(1), stream, DriverConfig::default());
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "connection task is {size} bytes");
    }

    /// A dialed connection lives in its dial task, so that task must be as
    /// small: the resolver's and connector's state is boxed, gone once
    /// connected.
    #[tokio::test]
    async fn a_dial_task_is_small() {
        let (shared, _timer, _dialer) =
            crate::shared::new(tincan_core::server::ServerConfig::default());
        let target = "127.0.0.1:1935".to_owned();
        let task = dial(
            shared,
            Dial {
                id: SessionId(1),
                target,
                tls: None,
            },
            DriverConfig::default(),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "dial task is {size} bytes");
    }
}
