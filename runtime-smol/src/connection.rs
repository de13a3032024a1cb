//! One connection's task: socket in, session, socket out.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::{self, FutureExt};
use smol::{Async, Timer};
use tincan_core::event::SessionId;
use tincan_core::session::{SessionError, Transmit};
use tracing::{debug, info};

use crate::shared::Shared;

/// Bytes read from the socket per `read`; one read is handed to the core
/// at once.
const READ_BUF: usize = 64 * 1024;
/// Transmits written in one go before the task lets reads and other tasks
/// in, so a player with a deep backlog cannot starve its own input.
const WRITE_BUDGET: usize = 64;
/// How long a closed connection waits for the peer to take its last
/// transmit, and then for the peer to close its side.
const LINGER: Duration = Duration::from_millis(500);

/// What woke a waiting connection.
enum Wake {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    /// The core named it ready.
    Again,
    /// It yielded with output or input left: other tasks had a turn.
    Yielded,
    /// The session is over but the peer never took its last transmit.
    GiveUp,
}

/// Runs one accepted connection until its session closes or the socket
/// fails; the core decides everything else (shutdown, limits, timers).
pub(crate) async fn run(shared: Arc<Shared>, id: SessionId, stream: Async<TcpStream>) {
    info!("accepted");
    tincan_net::configure(stream.get_ref());
    let bell = crate::shared::register(&shared, id);
    let mut pending = Transmit::default();
    let mut read_open = true;
    // Once the session is closed, how long its last transmit may take.
    let mut give_up = None;
    let outcome: io::Result<()> = loop {
        // 1. Write while the socket takes it, taking the next transmit from
        //    the core only once the previous one is fully written.
        let mut budget = WRITE_BUDGET;
        let more_output = loop {
            if pending.is_empty() {
                // Refilled in place: no allocation per write.
                if !shared.with(|s, now| s.poll_transmit_into(now, id, &mut pending)) {
                    break Ok(false);
                }
            }
            match tincan_net::write_transmit(&mut pending, |b| stream.get_ref().write_vectored(b)) {
                Ok(true) => {
                    budget -= 1;
                    if budget == 0 {
                        break Ok(true);
                    }
                }
                Ok(false) => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        let more_output = match more_output {
            Ok(more) => more,
            Err(e) => break Err(e),
        };
        // The core counts a transmit as sent once handed out; what is still
        // pending here is ours to finish before the socket goes.
        if shared.with(|s, _| s.is_closed(id)) {
            if pending.is_empty() {
                break Ok(());
            }
            // A peer that stopped reading must not keep the task (and a
            // graceful shutdown) alive forever.
            give_up.get_or_insert_with(|| Instant::now() + LINGER);
        }
        // 2. Wait for whatever can move this connection next. The `poll_*`
        //    forms keep this task's interest registered between waits; the
        //    `readable()` future drops it, costing an `epoll_ctl` per wake.
        // Input the core has not handled yet: read no more, let other
        // tasks have a turn, then continue it.
        let busy = shared.with(|s, _| s.has_pending_input(id));
        let readable = when(read_open && !busy, async {
            Wake::Readable(future::poll_fn(|cx| stream.poll_readable(cx)).await)
        });
        let writable = when(!pending.is_empty(), async {
            Wake::Writable(future::poll_fn(|cx| stream.poll_writable(cx)).await)
        });
        let rung = async {
            bell.wait().await;
            Wake::Again
        };
        let yielded = when(more_output || busy, async {
            future::yield_now().await;
            Wake::Yielded
        });
        let late = async {
            match give_up {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            Wake::GiveUp
        };
        match readable.or(writable).or(rung).or(yielded).or(late).await {
            Wake::GiveUp => {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer did not take the last transmit",
                ))
            }
            Wake::Readable(Err(e)) | Wake::Writable(Err(e)) => break Err(e),
            Wake::Readable(Ok(())) => match read(&shared, id, stream.get_ref()) {
                Ok(true) => {}
                Ok(false) => read_open = false,
                Err(e) => break Err(e),
            },
            Wake::Yielded if busy => {
                if let Err(e) = shared.with(|s, now| s.handle_input(now, id, &[])) {
                    debug!(error = %e, "session error");
                }
            }
            Wake::Writable(Ok(())) | Wake::Again | Wake::Yielded => {}
        }
    };
    shared.unregister(id);
    let closed = shared.with(|s, now| s.remove(now, id));
    let reason = closed
        .as_ref()
        .and_then(|c| c.error.as_ref().map(SessionError::to_string));
    let reason = reason.as_deref().unwrap_or("none");
    let (dropped_frames, dropped_bytes) = closed
        .map(|c| (c.dropped_frames, c.dropped_bytes))
        .unwrap_or_default();
    match &outcome {
        Ok(()) => info!(reason, dropped_frames, dropped_bytes, "closed"),
        Err(e) => {
            info!(error = %e, reason, dropped_frames, dropped_bytes, "closed on socket error")
        }
    }
    if outcome.is_ok() && read_open {
        // Boxed: its read buffer would otherwise be part of every
        // connection's task for the whole life of the connection.
        Box::pin(linger(&stream)).await;
    }
}

thread_local! {
    /// The read buffer of every connection this thread runs: a read is
    /// handed to the core before the task awaits again, so one buffer per
    /// thread serves them all, and an idle connection costs no 64 KiB.
    static READ: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Reads what the socket has into the core. `Ok(false)` once the peer has
/// closed its side.
fn read(shared: &Shared, id: SessionId, mut stream: &TcpStream) -> io::Result<bool> {
    READ.with(|buf| {
        let mut buf = buf.borrow_mut();
        match stream.read(&mut buf) {
            Ok(0) => {
                shared.with(|s, now| s.handle_eof(now, id));
                Ok(false)
            }
            Ok(n) => {
                // An error closes the session, which flushes the status it
                // owes; the task carries on until the core says closed.
                if let Err(e) = shared.with(|s, now| s.handle_input(now, id, &buf[..n])) {
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

/// `fut` if `cond`, else a future that never completes (a disabled branch).
async fn when<T>(cond: bool, fut: impl std::future::Future<Output = T>) -> T {
    if cond {
        fut.await
    } else {
        future::pending().await
    }
}

/// Closes our side and reads what the peer still sends until it closes too,
/// briefly. Closing a socket with unread input makes the kernel send a
/// reset, and a reset can destroy the goodbye status we just wrote before
/// the peer reads it.
async fn linger(stream: &Async<TcpStream>) {
    if stream.get_ref().shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let drain = async {
        while matches!(stream.read_with(|mut s| s.read(&mut buf)).await, Ok(n) if n > 0) {}
    };
    drain
        .or(async {
            Timer::after(LINGER).await;
        })
        .await;
}
