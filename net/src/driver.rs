//! The one per-connection driver of the task-per-connection adapters
//! (tokio, smol): socket in, session, socket out, and the close sequence.
//!
//! What differs between executors (how a socket reports readiness, how a
//! task sleeps, yields and is woken, how a name is resolved and a socket
//! connected) sits behind [`Runtime`], in the style of quinn's runtime
//! trait: each adapter implements it in a few dozen lines, spawns [`drive`]
//! once per accepted connection and [`dial`] once per outbound connection
//! the core asks for. Everything that decides behaviour (the write budget,
//! one pending transmit, the read buffer, linger, the dial timeout, the
//! close log) lives here once.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tincan_core::event::SessionId;
use tincan_core::outbound::Dial;
use tincan_core::server::Closed;
use tincan_core::session::SessionError;
use tracing::{debug, info};

use crate::{Bell, LockedServer};
use crate::{DirectWriter, VectoredWrite};

/// Bytes read from the socket per read; one read is handed to the core at
/// once, so a buffer this size serves every connection of a thread.
pub const READ_BUF: usize = 64 * 1024;

/// Transmits written in one go before a connection lets reads and other
/// tasks in, so a player with a deep backlog cannot starve its own input
/// or its neighbours.
pub const WRITE_BUDGET: usize = 64;

/// Transmits a connection task writes for other connections (a publisher's
/// task writing its players' frames, see [`crate::DirectWriter`]) before it
/// lets other tasks in, reading no more input until it had a turn back:
/// with one worker and thousands of players, a publisher whose input never
/// runs dry would otherwise hold the worker for seconds, and connections
/// arriving meanwhile would not get through their handshake. A frame's
/// fan-out is never split; a large audience means a yield after each frame.
pub const DIRECT_WRITE_BUDGET: usize = 256;

/// The close-time timings every adapter uses. They are settings, not
/// constants, because what is right depends on the peers: a server whose
/// players sit behind slow links may give them longer to take their
/// goodbye, a test may want them short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// How long a closed connection may take to write its last transmit,
    /// and then how long it waits for the peer to close its side (default
    /// 500 ms each). Long enough for a healthy peer to read its goodbye
    /// status; short enough that a peer that stopped reading cannot keep
    /// a closed connection, or a shutting-down server, alive.
    pub linger: Duration,
    /// How long sessions get to flush their goodbye after a stop (the
    /// adapters' `Handle::stop`) before the remaining connections are
    /// dropped (default 2 s): long enough for a status message to reach a
    /// healthy peer, short enough that a stuck peer cannot hold the
    /// process.
    pub stop_flush: Duration,
    /// How long resolving and connecting an outbound connection may take
    /// before it fails with `SessionError::Outbound` (default 10 s, as the
    /// client's default handshake and start deadlines, which run from
    /// `connect` and so also end a dial still under way). A setting of
    /// its own because those deadlines may be set to never, and a dial to
    /// a host that drops SYNs would otherwise hold its slot for the
    /// kernel's minutes of retries, closing with a reason that says
    /// nothing about the dial.
    pub dial_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            linger: Duration::from_millis(500),
            stop_flush: Duration::from_secs(2),
            dial_timeout: Duration::from_secs(10),
        }
    }
}

/// What [`drive`] needs from an executor: readiness and non-blocking IO on
/// its TCP stream, a bell, a timer, a yield and its clock. Implemented on
/// a marker type by each adapter; every method is a thin forward to the
/// executor's own API.
pub trait Runtime: 'static {
    /// The executor's registered, non-blocking TCP stream. Shared between
    /// the connection's task and the tasks that write its output directly
    /// (see [`DirectWriter`]), so it must be usable from any thread.
    type Stream: AsFd + Send + Sync + 'static;
    /// The ringing side of a connection's bell, which the core's ready
    /// queue rings (see [`LockedServer::with`]).
    type Bell: Bell;
    /// The waiting side of a connection's bell.
    type Waiter;

    /// A new bell and its waiting side. A ring before the task waits must
    /// not be lost.
    fn bell() -> (Self::Bell, Self::Waiter);

    /// Resolves once rung (at once if rung since the last wait).
    fn rung(waiter: &Self::Waiter) -> impl Future<Output = ()>;

    /// The executor's clock (tokio's, so that a paused test clock stays
    /// meaningful).
    fn now() -> Instant;

    /// Resolves at `deadline`, as measured by [`Runtime::now`].
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()>;

    /// Lets other tasks run before this one continues.
    fn yield_now() -> impl Future<Output = ()>;

    /// Ready once the stream may have something to read (or an error).
    /// Keeps the task's interest registered between calls where the
    /// executor allows it.
    fn poll_readable(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ready once the stream may take more bytes (or an error).
    fn poll_writable(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// A non-blocking read; `WouldBlock` when nothing is there, which must
    /// make the next [`Runtime::poll_readable`] wait for new readiness.
    fn try_read(stream: &Self::Stream, buf: &mut [u8]) -> io::Result<usize>;

    /// A non-blocking vectored write; `WouldBlock` when the socket is full,
    /// which must make the next [`Runtime::poll_writable`] wait for new
    /// readiness.
    fn try_write_vectored(stream: &Self::Stream, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// A non-blocking vectored write by a task other than the
    /// connection's (see [`VectoredWrite::write_direct`]): may leave the
    /// executor's readiness state alone, since a write that would block
    /// wakes the connection's task, which then writes with
    /// [`Runtime::try_write_vectored`]. By default that same write.
    fn write_direct(stream: &Self::Stream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Self::try_write_vectored(stream, bufs)
    }

    /// The addresses of `target` (`host:port`), without blocking the
    /// executor's threads: name lookups are blocking calls, run on the
    /// executor's blocking pool.
    fn resolve(target: String) -> impl Future<Output = io::Result<Vec<SocketAddr>>>;

    /// A TCP stream connected to `addr`, registered with the executor.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;
}

/// What woke a waiting connection.
enum Wake {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    /// The core named it ready.
    Again,
    /// It yielded, with output or input left.
    Yielded,
    /// The session is over but the peer never took its last transmit.
    GiveUp,
}

/// Runs one accepted connection until its session closes or the socket
/// fails; the core decides everything else (shutdown, limits, timers).
///
/// Call it inside the connection's span (the core's
/// [`span`](tincan_core::server::Server::span)): its logs name no session.
/// Its future is small (the read buffer is per thread, the close-time
/// buffer boxed) because an idle connection costs its task's size for as
/// long as it lives.
pub async fn drive<R: Runtime>(
    shared: Arc<LockedServer<R::Bell>>,
    id: SessionId,
    stream: R::Stream,
    config: DriverConfig,
) {
    info!("accepted");
    let (bell, waiter) = R::bell();
    shared.register(id, bell.clone());
    serve::<R>(shared, id, stream, bell, waiter, config).await;
}

/// Dials outbound connection `dial` (from
/// [`Server::poll_dial`](tincan_core::server::Server::poll_dial)), reports
/// the outcome to the core, and then drives the connected socket exactly as
/// [`drive`] drives an accepted one. A dial that fails (no address, every
/// address refused, [`DriverConfig::dial_timeout`]) closes the connection
/// with `SessionError::Outbound` naming why; one the core gives up on
/// while it is under way (its handshake or start deadline, a stop) is
/// abandoned. Either way the connection is removed, so the embedder sees
/// its `Closed`.
///
/// Call it inside the connection's span, as [`drive`].
pub async fn dial<R: Runtime>(
    shared: Arc<LockedServer<R::Bell>>,
    dial: Dial,
    config: DriverConfig,
) {
    let id = dial.id;
    if dial.tls.is_some() {
        // This driver speaks plain TCP only: an RTMPS relay must not go
        // out in the clear. (The tokio adapter's `tls` feature dials TLS
        // itself and never hands such a dial here.)
        shared.with(|s, now| {
            s.handle_dialed(now, id, Err("this runtime cannot dial RTMPS".to_owned()))
        });
        let closed = shared.with(|s, now| s.remove(now, id));
        log_closed(closed.as_ref(), None);
        return;
    }
    debug!(target = %dial.target, "dialing");
    // Registered before dialing, so a core that closes the connection
    // meanwhile (its timers, a stop) wakes this task.
    let (bell, waiter) = R::bell();
    shared.register(id, bell.clone());
    // Boxed: the connection lives far longer than its dial, and its task
    // should not carry the resolver's and connector's state all that time.
    let outcome = Box::pin(connect_unless_closed::<R>(
        &shared,
        id,
        dial.target,
        &waiter,
        config.dial_timeout,
    ))
    .await;
    match outcome {
        Some(Ok((stream, peer))) => {
            shared.with(|s, now| s.handle_dialed(now, id, Ok(peer)));
            serve::<R>(shared, id, stream, bell, waiter, config).await;
        }
        Some(Err(why)) => {
            shared.with(|s, now| s.handle_dialed(now, id, Err(why)));
            shared.unregister(id);
            let closed = shared.with(|s, now| s.remove(now, id));
            log_closed(closed.as_ref(), None);
        }
        None => {
            shared.unregister(id);
            let closed = shared.with(|s, now| s.remove(now, id));
            log_closed(closed.as_ref(), None);
        }
    }
}

/// Resolves and connects `target` within `timeout`: the stream and the
/// address it reached, or why not; `None` if the core closed connection
/// `id` first.
async fn connect_unless_closed<R: Runtime>(
    shared: &LockedServer<R::Bell>,
    id: SessionId,
    target: String,
    waiter: &R::Waiter,
    timeout: Duration,
) -> Option<Result<(R::Stream, SocketAddr), String>> {
    let mut connecting = pin!(connect_any::<R>(target));
    // No deadline past what an `Instant` can hold: the core's own start
    // timeout still ends the dial.
    let mut late = pin!(R::now().checked_add(timeout).map(R::sleep_until));
    loop {
        if shared.with(|s, _| s.is_closed(id)) {
            return None;
        }
        let mut rung = pin!(R::rung(waiter));
        let woke = poll_fn(|cx| {
            if let Poll::Ready(r) = connecting.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if let Some(l) = late.as_mut().as_pin_mut() {
                if l.poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(format!("no connection within {timeout:?}"))));
                }
            }
            if rung.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(result) = woke {
            return Some(result);
        }
    }
}

/// Resolves `target` and connects to its addresses in order, as
/// `std::net::TcpStream::connect` does: the first that answers, or the
/// last error.
async fn connect_any<R: Runtime>(target: String) -> Result<(R::Stream, SocketAddr), String> {
    let addrs = R::resolve(target.clone())
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?;
    let mut last = format!("{target} resolves to no address");
    for addr in addrs {
        match R::connect(addr).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => {
                debug!(%addr, error = %e, "connect failed");
                last = format!("cannot connect to {addr}: {e}");
            }
        }
    }
    Err(last)
}

/// A connection's socket, as its [`DirectWriter`] writes it.
struct Socket<R: Runtime>(R::Stream);

impl<R: Runtime> VectoredWrite for Socket<R> {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        R::try_write_vectored(&self.0, bufs)
    }

    fn write_direct(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        R::write_direct(&self.0, bufs)
    }
}

/// The connection's life once its socket is connected, accepted or
/// dialed: socket in, session, socket out, the close sequence. Its bell is
/// registered already.
async fn serve<R: Runtime>(
    shared: Arc<LockedServer<R::Bell>>,
    id: SessionId,
    stream: R::Stream,
    bell: R::Bell,
    waiter: R::Waiter,
    config: DriverConfig,
) {
    crate::configure(&stream);
    // One buffer list per connection, refilled in place: no allocation per
    // write. It lives in the writer, with the socket, so that the task that
    // makes this connection ready (a publisher's, for a player) can write
    // to it too.
    let writer = Arc::new(DirectWriter::new(bell, Socket::<R>(stream)));
    shared.register_writer(id, Arc::clone(&writer) as Arc<DirectWriter<R::Bell>>);
    let stream = &writer.io().0;
    let mut read_open = true;
    // Transmits written for other connections since this task last let
    // other tasks in.
    let mut for_others = 0usize;
    // Once the session is closed, how long its last transmit may take.
    let mut give_up = None;
    let outcome: io::Result<()> = loop {
        // 1. Write while the socket takes it, taking the next transmit from
        //    the core only once the previous one is fully written.
        let more_output = match write::<R::Bell>(&shared, id, &writer) {
            Ok(more) => more,
            Err(e) => break Err(e),
        };
        // The core counts a transmit as sent once handed out; what is still
        // pending here is ours to finish before the socket goes.
        let (closed, busy) = shared.with(|s, _| (s.is_closed(id), s.has_pending_input(id)));
        if closed {
            if writer.pending().is_empty() {
                break Ok(());
            }
            // A peer that stopped reading must not keep the task (and a
            // graceful shutdown) alive forever.
            give_up.get_or_insert_with(|| R::now() + config.linger);
        }
        // 2. Wait for whatever can move this connection next. Input the
        //    core has not handled yet (`busy`: its turn's budget ran out)
        //    means: read no more, let other tasks have a turn, then go on
        //    with it.
        let owe_turn = for_others >= DIRECT_WRITE_BUDGET;
        let mut rung = pin!(R::rung(&waiter));
        let mut yielded = pin!((more_output || busy || owe_turn).then(R::yield_now));
        let mut late = pin!(give_up.map(R::sleep_until));
        let wake = poll_fn(|cx| {
            if read_open && !busy && !owe_turn {
                if let Poll::Ready(r) = R::poll_readable(stream, cx) {
                    return Poll::Ready(Wake::Readable(r));
                }
            }
            if !writer.pending().is_empty() {
                if let Poll::Ready(r) = R::poll_writable(stream, cx) {
                    return Poll::Ready(Wake::Writable(r));
                }
            }
            if rung.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Again);
            }
            if let Some(y) = yielded.as_mut().as_pin_mut() {
                if y.poll(cx).is_ready() {
                    return Poll::Ready(Wake::Yielded);
                }
            }
            if let Some(l) = late.as_mut().as_pin_mut() {
                if l.poll(cx).is_ready() {
                    return Poll::Ready(Wake::GiveUp);
                }
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::GiveUp => {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer did not take the last transmit",
                ))
            }
            Wake::Readable(Err(e)) | Wake::Writable(Err(e)) => break Err(e),
            Wake::Readable(Ok(())) => match read::<R>(&shared, id, stream, &mut for_others) {
                Ok(true) => {}
                Ok(false) => read_open = false,
                Err(e) => break Err(e),
            },
            Wake::Yielded if busy => {
                for_others = 0;
                let (result, written) = shared.with_counted(|s, now| s.handle_input(now, id, &[]));
                for_others += written;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "session error");
                }
            }
            Wake::Yielded => for_others = 0,
            Wake::Writable(Ok(())) | Wake::Again => {}
        }
    };
    shared.unregister(id);
    let closed = shared.with(|s, now| s.remove(now, id));
    log_closed(
        closed.as_ref(),
        outcome.as_ref().err().map(|e| e as &dyn std::fmt::Display),
    );
    if outcome.is_ok() && read_open {
        // Boxed: its read buffer would otherwise be part of every
        // connection's task for the whole life of the connection.
        Box::pin(linger::<R>(stream, config.linger)).await;
    }
}

/// Writes transmits while the socket takes them, up to [`WRITE_BUDGET`].
/// `Ok(true)` when the budget ran out with output left (the task should
/// yield and come back).
fn write<B: Bell>(
    shared: &LockedServer<B>,
    id: SessionId,
    writer: &DirectWriter<B, impl VectoredWrite>,
) -> io::Result<bool> {
    let mut pending = writer.pending();
    let mut budget = WRITE_BUDGET;
    loop {
        if pending.is_empty() && !shared.with(|s, now| s.poll_transmit_into(now, id, &mut pending))
        {
            return Ok(false);
        }
        if !writer.write(&mut pending)? {
            return Ok(false);
        }
        budget -= 1;
        if budget == 0 {
            return Ok(true);
        }
    }
}

thread_local! {
    /// The read buffer of every connection this thread runs: a read is
    /// handed to the core before the task awaits again, so one buffer per
    /// thread serves them all, and an idle connection costs no 64 KiB.
    static READ: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Reads what the socket has into the core, adding to `for_others` the
/// transmits written for other connections meanwhile. `Ok(false)` once the
/// peer has closed its side.
fn read<R: Runtime>(
    shared: &LockedServer<R::Bell>,
    id: SessionId,
    stream: &R::Stream,
    for_others: &mut usize,
) -> io::Result<bool> {
    READ.with(|buf| {
        let mut buf = buf.borrow_mut();
        match R::try_read(stream, &mut buf) {
            Ok(0) => {
                shared.with(|s, now| s.handle_eof(now, id));
                Ok(false)
            }
            Ok(n) => {
                // An error closes the session, which flushes the status it
                // owes; the task carries on until the core says closed.
                let (result, written) =
                    shared.with_counted(|s, now| s.handle_input(now, id, &buf[..n]));
                *for_others += written;
                if let Err(e) = result {
                    debug!(error = %e, "session error");
                }
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    })
}

/// Closes our side and reads what the peer still sends until it closes too,
/// for at most `limit`. Closing a socket with unread input makes the kernel
/// send a reset, and a reset can destroy the goodbye status we just wrote
/// before the peer reads it.
async fn linger<R: Runtime>(stream: &R::Stream, limit: Duration) {
    if socket2::SockRef::from(stream)
        .shutdown(Shutdown::Write)
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut late = pin!(R::sleep_until(R::now() + limit));
    poll_fn(|cx| {
        if late.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            match R::poll_readable(stream, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            match R::try_read(stream, &mut buf) {
                Ok(0) => return Poll::Ready(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Poll::Ready(()),
            }
        }
    })
    .await;
}

/// Logs how a connection ended, the same way in every adapter (the mio
/// loop too): `closed`, or `closed on socket error` with the error, each
/// with the session's close reason and what its real-time policy dropped.
/// `closed` is what [`Server::remove`](tincan_core::server::Server::remove)
/// returned; call it inside the connection's span.
pub fn log_closed(closed: Option<&Closed>, socket_error: Option<&dyn std::fmt::Display>) {
    let reason = closed
        .and_then(|c| c.error.as_ref().map(SessionError::to_string))
        .unwrap_or_else(|| "none".to_owned());
    let reason = reason.as_str();
    let (dropped_frames, dropped_bytes) = closed
        .map(|c| (c.dropped_frames, c.dropped_bytes))
        .unwrap_or_default();
    match socket_error {
        None => info!(reason, dropped_frames, dropped_bytes, "closed"),
        Some(e) => {
            info!(error = %e, reason, dropped_frames, dropped_bytes, "closed on socket error")
        }
    }
}
