//! smol's half of the per-connection driver: [`Smol`] forwards the
//! driver's needs (readiness, non-blocking IO, a bell, a timer) to smol and
//! async-io; the driver itself is [`tincan_net::driver::drive`], shared
//! with tokio.

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use smol::{Async, Timer};
use tincan_core::event::SessionId;
use tincan_core::outbound::Dial;
use tincan_net::DriverConfig;

use crate::shared::{bell, Bell, Shared, Waiter};

/// smol, as the connection driver sees it.
#[derive(Debug)]
pub(crate) struct Smol;

impl tincan_net::Runtime for Smol {
    type Stream = Async<TcpStream>;
    type Bell = Bell;
    type Waiter = Waiter;

    fn bell() -> (Bell, Waiter) {
        bell()
    }

    fn rung(waiter: &Waiter) -> impl Future<Output = ()> {
        waiter.wait()
    }

    fn now() -> Instant {
        Instant::now()
    }

    async fn sleep_until(deadline: Instant) {
        Timer::at(deadline).await;
    }

    fn yield_now() -> impl Future<Output = ()> {
        smol::future::yield_now()
    }

    // The `poll_*` forms keep this task's interest registered between
    // waits; the `readable()` future drops it, costing an `epoll_ctl` per
    // wake.
    fn poll_readable(stream: &Async<TcpStream>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream.poll_readable(cx)
    }

    fn poll_writable(stream: &Async<TcpStream>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream.poll_writable(cx)
    }

    fn try_read(stream: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
        stream.get_ref().read(buf)
    }

    fn try_write_vectored(stream: &Async<TcpStream>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        stream.get_ref().write_vectored(bufs)
    }

    fn resolve(target: String) -> impl Future<Output = io::Result<Vec<SocketAddr>>> {
        // getaddrinfo on smol's blocking pool (an IP literal skips it).
        smol::net::resolve(target)
    }

    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Async<TcpStream>>> {
        Async::<TcpStream>::connect(addr)
    }
}

/// Runs one accepted connection until its session closes or the socket
/// fails; the core decides everything else (shutdown, limits, timers).
pub(crate) fn run(
    shared: Arc<Shared>,
    id: SessionId,
    stream: Async<TcpStream>,
    config: DriverConfig,
) -> impl Future<Output = ()> + Send {
    tincan_net::driver::drive::<Smol>(shared, id, stream, config)
}

/// Dials one outbound connection and then runs it as [`run`] runs an
/// accepted one.
pub(crate) fn dial(
    shared: Arc<Shared>,
    dial: Dial,
    config: DriverConfig,
) -> impl Future<Output = ()> + Send {
    tincan_net::driver::dial::<Smol>(shared, dial, config)
}
