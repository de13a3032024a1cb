//! One connection's task: socket in, session, socket out.

use std::io;
use std::sync::Arc;

use tincan_core::event::SessionId;
use tincan_core::session::{SessionError, Transmit};
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::shared::{Shared, TokioBell};

/// Bytes read from the socket per `read`; one read is handed to the core at
/// once.
const READ_BUF: usize = 64 * 1024;
/// Transmits written in one go before the task lets reads and other tasks
/// in, so a player with a deep backlog cannot starve its own input.
const WRITE_BUDGET: usize = 64;
/// How long a closed connection waits for the peer to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Runs one accepted connection until its session closes or the socket
/// fails; the core decides everything else (shutdown, limits, timers).
pub(crate) async fn run(shared: Arc<Shared>, id: SessionId, stream: TcpStream) {
    info!("accepted");
    tincan_net::configure(&stream);
    let bell = TokioBell::default();
    shared.register(id, bell.clone());
    let mut pending = Transmit::default();
    let mut read_open = true;
    let mut closed_at = None;
    let outcome: io::Result<()> = loop {
        // 1. Write while the socket takes it, taking the next transmit from
        //    the core only once the previous one is fully written.
        let mut budget = WRITE_BUDGET;
        let more_output = loop {
            // One buffer list per connection, refilled in place: no
            // allocation per write.
            if pending.is_empty()
                && !shared.with(|s, now| s.poll_transmit_into(now, id, &mut pending))
            {
                break Ok(false);
            }
            match tincan_net::write_transmit(&mut pending, |s| stream.try_write_vectored(s)) {
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
        // pending here is ours to finish before the socket goes, but only
        // briefly: a peer that stopped reading must not keep a closed
        // connection (and a shutting-down server) alive.
        if closed_at.is_none() && shared.with(|s, _| s.is_closed(id)) {
            closed_at = Some(tokio::time::Instant::now());
        }
        if closed_at.is_some() && pending.is_empty() {
            break Ok(());
        }
        let give_up = async {
            match closed_at {
                Some(at) => tokio::time::sleep_until(at + LINGER).await,
                None => std::future::pending().await,
            }
        };
        // Input the core has not handled yet: read no more, let other
        // tasks have a turn, then continue it.
        let busy = shared.with(|s, _| s.has_pending_input(id));
        // 2. Wait for whatever can move this connection next.
        tokio::select! {
            r = stream.readable(), if read_open && !busy => {
                if let Err(e) = r {
                    break Err(e);
                }
                match read(&shared, id, &stream) {
                    Ok(true) => {}
                    Ok(false) => read_open = false,
                    Err(e) => break Err(e),
                }
            }
            r = stream.writable(), if !pending.is_empty() => {
                if let Err(e) = r {
                    break Err(e);
                }
            }
            () = bell.0.notified() => {}
            () = give_up => break Ok(()),
            () = tokio::task::yield_now(), if more_output || busy => {
                if busy {
                    if let Err(e) = shared.with(|s, now| s.handle_input(now, id, &[])) {
                        debug!(error = %e, "session error");
                    }
                }
            }
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
        Box::pin(linger(stream)).await;
    }
}

thread_local! {
    /// The read buffer of every connection this worker thread runs: a read
    /// is handed to the core before the task awaits again, so one buffer
    /// per thread serves them all, and an idle connection costs no 64 KiB.
    static READ: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Reads what the socket has into the core. `Ok(false)` once the peer has
/// closed its side.
fn read(shared: &Shared, id: SessionId, stream: &TcpStream) -> io::Result<bool> {
    READ.with(|buf| {
        let mut buf = buf.borrow_mut();
        match stream.try_read(&mut buf) {
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

/// Closes our side and reads what the peer still sends until it closes too,
/// briefly. Closing a socket with unread input makes the kernel send a
/// reset, and a reset can destroy the goodbye status we just wrote before
/// the peer reads it.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection costs its task's size for as long as it lives, so
    /// nothing large (a close-time read buffer) may sit in it.
    #[tokio::test]
    async fn a_connection_task_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (shared, _timer) = crate::shared::new(tincan_core::server::ServerConfig::default());
        let task = run(shared, SessionId(1), stream);
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "connection task is {size} bytes");
    }
}
