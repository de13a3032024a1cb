//! One connection's task: socket in, session, socket out.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use tincan_core::event::{SessionEvent, SessionId};
use tincan_core::session::{Session, SessionError, Transmit};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::hub::{lock, now, wake, Deliveries, Shared, Slot};

/// Bytes read from the socket per `read`; one read is handed to the session
/// at once.
const READ_BUF: usize = 64 * 1024;
/// Buffers passed to one `writev`; well under every platform's IOV_MAX.
const MAX_IOVECS: usize = 64;
/// Transmits written in one go before the task lets reads and other tasks
/// in, so a player with a deep backlog cannot starve its own input.
const WRITE_BUDGET: usize = 64;
/// How long a closed connection waits for the peer to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Most bytes left unsent in the kernel before the socket stops reporting
/// writable. 16 KiB (the value web servers use for HTTP/2 prioritisation)
/// is refilled every few milliseconds even at 20 Mbit/s, and on a
/// 160 kbit/s player it is under a second of media past the real-time
/// policy, where Linux's default lets seconds pile up.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 16 * 1024;

/// The transmit being written: the session hands out the next one only when
/// this one is gone, so its real-time backlog stays the only queue.
#[derive(Debug, Default)]
struct Pending {
    bufs: Vec<Bytes>,
    /// Index of the first buffer not fully written.
    first: usize,
}

impl Pending {
    fn is_done(&self) -> bool {
        self.first >= self.bufs.len()
    }

    fn set(&mut self, t: Transmit) {
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

    /// Writes as much as the socket takes without blocking. `Ok(true)` once
    /// everything is written.
    fn write_to(&mut self, stream: &TcpStream) -> io::Result<bool> {
        while !self.is_done() {
            // On the stack: this runs for every transmit of every player.
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, buf) in slices.iter_mut().zip(&self.bufs[self.first..]) {
                *slot = IoSlice::new(buf);
                count += 1;
            }
            match stream.try_write_vectored(&slices[..count]) {
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

/// What one connection task carries between steps.
struct Conn {
    shared: Arc<Shared>,
    id: SessionId,
    slot: Arc<Slot>,
    events: Vec<SessionEvent>,
    deliveries: Deliveries,
    /// Whether the broker has seen this session's `Closed`; if the task ends
    /// without it (socket error), the task sends it so the broker forgets
    /// the session's publishes and subscriptions.
    closed_sent: bool,
}

impl Conn {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        lock(&self.slot.session)
    }

    /// Drains the session's events into the broker and delivers the
    /// broker's answers; it never holds its own session while it takes the
    /// broker lock (the lock order is broker, then session).
    fn dispatch(&mut self, now: Instant) {
        {
            let mut session = lock(&self.slot.session);
            while let Some(event) = session.poll_event() {
                self.events.push(event);
            }
        }
        if self.events.is_empty() {
            return;
        }
        if self.events.contains(&SessionEvent::Closed) {
            self.closed_sent = true;
        }
        self.shared
            .handle_events(now, self.id, self.events.drain(..), &mut self.deliveries);
        wake(&mut self.deliveries);
    }

    /// The socket failed or the task is ending: make sure the broker learns
    /// the session is gone.
    fn finish(&mut self, now: Instant) {
        if !self.closed_sent {
            self.session().handle_eof(now);
            self.dispatch(now);
        }
        if !self.closed_sent {
            self.closed_sent = true;
            self.shared
                .handle_events(now, self.id, [SessionEvent::Closed], &mut self.deliveries);
            wake(&mut self.deliveries);
        }
        self.shared.remove_session(self.id);
    }
}

/// Runs one accepted connection until its session closes, the socket fails,
/// or the server stops and the session has said goodbye.
pub(crate) async fn run(
    shared: Arc<Shared>,
    id: SessionId,
    slot: Arc<Slot>,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    info!("accepted");
    // Media is latency-sensitive and every transmit is already a whole
    // batch: Nagle would only delay it.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "cannot disable Nagle");
    }
    // The session applies the real-time policy to what it has not handed
    // out yet; bytes parked unsent in the kernel are past it. Linux's
    // autotuning lets that queue grow to megabytes (seconds of media for a
    // slow player), so only report the socket writable while little is
    // unsent. In-flight (sent, unacknowledged) data is not limited, so
    // throughput on long fat links is unaffected.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        debug!(error = %e, "cannot set TCP_NOTSENT_LOWAT");
    }
    let mut conn = Conn {
        shared,
        id,
        slot,
        events: Vec::new(),
        deliveries: Vec::new(),
        closed_sent: false,
    };
    let mut buf = vec![0u8; READ_BUF];
    let mut pending = Pending::default();
    let mut read_open = true;
    let mut stopping = false;
    let outcome: io::Result<()> = loop {
        let step_now = now();

        // 1. Write while the socket takes it, polling the next transmit
        //    only once the previous one is fully written.
        let mut budget = WRITE_BUDGET;
        let write = loop {
            if pending.is_done() {
                match conn.session().poll_transmit(step_now) {
                    Some(t) => pending.set(t),
                    None => break Ok(false),
                }
            }
            match pending.write_to(&stream) {
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
        // 2. Events for the broker.
        conn.dispatch(step_now);
        let more_output = match write {
            Ok(more) => more,
            Err(e) => break Err(e),
        };
        // The session counts a transmit as sent once handed out; the bytes
        // still pending here are ours to finish before the socket goes.
        if pending.is_done() && conn.session().is_closed() {
            break Ok(());
        }
        // 3. Wait for whatever can move the session next.
        let deadline = conn.session().poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = stream.readable(), if read_open => {
                if let Err(e) = r {
                    break Err(e);
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => {
                        read_open = false;
                        conn.session().handle_eof(now());
                    }
                    Ok(n) => {
                        // An error closes the session, which flushes the
                        // status it owes; the loop carries on until
                        // `is_closed`.
                        if let Err(e) = conn.session().handle_input(now(), &buf[..n]) {
                            debug!(error = %e, "session error");
                        }
                    }
                    Err(e) if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                    Err(e) => break Err(e),
                }
            }
            r = stream.writable(), if !pending.is_done() => {
                if let Err(e) = r {
                    break Err(e);
                }
            }
            () = conn.slot.wake.notified() => {}
            () = sleep => conn.session().handle_timeout(now()),
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.session().close(now(), "server shutting down");
            }
            () = tokio::task::yield_now(), if more_output => {}
        }
    };
    conn.finish(now());
    let (reason, dropped_frames, dropped_bytes) = {
        let s = conn.session();
        let reason = s.error().map(SessionError::to_string);
        (reason, s.dropped_frames(), s.dropped_bytes())
    };
    let reason = reason.as_deref().unwrap_or("none");
    match &outcome {
        Ok(()) => info!(reason, dropped_frames, dropped_bytes, "closed"),
        Err(e) => {
            info!(error = %e, reason, dropped_frames, dropped_bytes, "closed on socket error")
        }
    }
    if outcome.is_ok() && read_open {
        linger(stream).await;
    }
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

    fn pending(parts: &[&'static [u8]]) -> Pending {
        let mut p = Pending::default();
        p.set(Transmit {
            bufs: parts.iter().map(|b| Bytes::from_static(b)).collect(),
        });
        p
    }

    fn rest(p: &Pending) -> Vec<u8> {
        p.bufs[p.first..].iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn partial_write_resumes_inside_a_buffer() {
        let mut p = pending(&[b"abc", b"defg"]);
        p.advance(4);
        assert_eq!(rest(&p), b"efg");
    }

    #[test]
    fn empty_buffers_never_hold_up_completion() {
        let mut p = pending(&[b"", b"ab", b"", b""]);
        p.advance(2);
        assert!(p.is_done());
    }

    #[test]
    fn an_all_empty_transmit_is_done_at_once() {
        assert!(pending(&[b"", b""]).is_done());
    }
}
