//! The one thread's loop: readiness in, the core in the middle, writes out.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use tincan_core::event::{Denial, SessionId};
use tincan_core::server::{IdMap, Server, ServerEvent};
use tincan_core::session::Transmit;
use tracing::{debug, info, warn};

use tincan_net::DriverConfig;

use crate::{Control, Turn, LISTENER_BASE, SHUTDOWN, STOP, WAKER};

/// The embedder's event callback, if it took the events.
pub(crate) type OnEvent<'a> = Option<&'a mut dyn FnMut(&mut Turn<'_>, ServerEvent)>;

/// Bytes read per `read`; each read is handed to the core at once.
const READ_BUF: usize = 64 * 1024;
/// Reads from one connection per turn (1 MiB), so a publisher on a fast
/// link cannot starve everyone else on this thread either.
const READ_BUDGET: usize = 16;
/// Transmits written to one connection per turn, so a player with a deep
/// backlog on a fast link cannot starve everyone else on this thread.
const WRITE_BUDGET: usize = 64;

/// An outbound connection's socket while its non-blocking `connect` is
/// under way.
#[derive(Debug)]
struct Dialing {
    /// The address being connected.
    addr: SocketAddr,
    /// The target's other addresses, tried in order if this one fails.
    rest: VecDeque<SocketAddr>,
}

/// One accepted or dialed socket.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Set while an outbound connection's socket is still connecting:
    /// readiness then means the connect finished, not input.
    dialing: Option<Dialing>,
    /// The transmit being written; the core hands out the next one only
    /// when this one is gone, so its real-time backlog stays the only queue.
    pending: Transmit,
    read_open: bool,
    /// Whether WRITABLE interest is registered.
    writable: bool,
    /// Set once the core said the session is finished: within the linger
    /// time ([`DriverConfig::linger`])
    /// the last transmit is written and the peer has closed, or the socket
    /// goes anyway.
    finishing: bool,
    /// Whether the core has forgotten it (we only wait for the peer now).
    removed: bool,
}

/// Everything [`crate::Server::run`] owns: the core, the poller, and a
/// socket per connection, addressed by the session's id as its token.
pub(crate) struct EventLoop {
    core: Server,
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// How many tokens below `LISTENER_BASE` are listeners' (fixed at bind).
    listener_tokens: usize,
    control: Arc<Control>,
    conns: IdMap<Conn>,
    buf: Vec<u8>,
    /// Connections that used up their write budget: written again next turn.
    again: Vec<SessionId>,
    /// Connections that used up their read budget, or whose last read the
    /// core has not all handled: read (or continue) next turn (mio is
    /// edge-triggered, so no new event would say so).
    unread: Vec<SessionId>,
    /// Connections the core said are finished, by deadline; always in
    /// order, since every deadline is the time it was pushed plus the linger time.
    finishing: VecDeque<(Instant, SessionId)>,
    /// Set by a stop: when the loop gives up on flushing.
    stop_at: Option<Instant>,
    /// Outbound connections whose target a helper thread is resolving.
    resolving: HashSet<SessionId>,
    /// Outbound connections by the deadline of their dial; in order, since
    /// every deadline is the time the dial started plus the dial timeout.
    dial_deadlines: VecDeque<(Instant, SessionId)>,
    /// How long a finished connection may take to write its last transmit
    /// and then see the peer close, and how long a stop may flush.
    driver: DriverConfig,
}

impl EventLoop {
    pub(crate) fn new(
        core: Server,
        poll: Poll,
        listeners: Vec<TcpListener>,
        control: Arc<Control>,
        driver: DriverConfig,
    ) -> Self {
        EventLoop {
            core,
            poll,
            listener_tokens: listeners.len(),
            listeners,
            control,
            conns: IdMap::default(),
            buf: vec![0; READ_BUF],
            again: Vec::new(),
            unread: Vec::new(),
            finishing: VecDeque::new(),
            stop_at: None,
            resolving: HashSet::new(),
            dial_deadlines: VecDeque::new(),
            driver,
        }
    }

    pub(crate) fn run(&mut self, mut on_event: OnEvent<'_>) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut writable = Vec::new();
        loop {
            let now = Instant::now();
            self.control(now);
            self.flush_all(now, &mut writable);
            // Events after the writes, which may have removed connections
            // (their `Closed`); what an answer in the callback makes ready
            // is written in this same turn, and may report more. Dials
            // the turn's calls asked for (a `Handle`'s, the callback's)
            // start before the loop sleeps.
            loop {
                self.start_dials(now);
                if !self.deliver(now, &mut on_event) {
                    break;
                }
                self.flush_ready(now);
            }
            if self.is_done(now) {
                self.finish_all(now, &mut on_event);
                return Ok(());
            }
            let timeout = if self.again.is_empty() && self.unread.is_empty() {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for id in std::mem::take(&mut self.unread) {
                self.read(now, id);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t > LISTENER_BASE - self.listener_tokens => {
                        self.accept(now, LISTENER_BASE - t);
                    }
                    Token(t) => {
                        let id = SessionId(t as u64);
                        if self.conns.get(&id).is_some_and(|c| c.dialing.is_some()) {
                            self.check_dial(now, id);
                            continue;
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(now, id);
                        }
                        if event.is_writable() {
                            writable.push(id);
                        }
                    }
                }
            }
            self.core.handle_timeout(now);
        }
    }

    /// Applies what the [`Handle`] asked for: answers and statistics from
    /// other threads, shutdown, stop.
    fn control(&mut self, now: Instant) {
        for request in self.control.take_requests() {
            request(&mut self.core, now);
        }
        for (id, target, addrs) in self.control.take_resolved() {
            if !self.resolving.remove(&id) {
                continue; // given up on meanwhile, and removed
            }
            match addrs {
                Ok(addrs) => self.connect_next(
                    now,
                    id,
                    addrs.into(),
                    format!("{target} resolves to no address"),
                ),
                Err(e) => self.fail_dial(now, id, format!("cannot resolve {target}: {e}")),
            }
        }
        let state = self.control.state.load(Ordering::SeqCst);
        if state == SHUTDOWN && !self.core.is_shutting_down() {
            self.listeners.clear(); // refuse at the kernel, not after a handshake
            self.core.shutdown(now);
        }
        if state == STOP && self.stop_at.is_none() {
            info!(connections = self.conns.len(), "stopping");
            self.listeners.clear();
            self.stop_at = Some(now + self.driver.stop_flush);
            self.core.close_all(now, "server shutting down");
        }
    }

    /// Hands every queued event to the callback, in the core's order;
    /// whether there was any. Without a callback they are dropped, and a
    /// request (asked for only when the configuration gives decisions to
    /// the embedder) is denied at once rather than at its deadline.
    fn deliver(&mut self, now: Instant, on_event: &mut OnEvent<'_>) -> bool {
        let mut any = false;
        while let Some(event) = self.core.poll_event() {
            any = true;
            match on_event {
                Some(f) => f(
                    &mut Turn {
                        core: &mut self.core,
                        now,
                    },
                    event,
                ),
                None => match event {
                    ServerEvent::ConnectRequest { ticket, .. }
                    | ServerEvent::PublishRequest { ticket, .. }
                    | ServerEvent::PlayRequest { ticket, .. } => {
                        let _ = self.core.deny(now, ticket, Denial::policy("no decider"));
                    }
                    _ => {}
                },
            }
        }
        any
    }

    /// Writes the connections the core named ready (after an answer).
    fn flush_ready(&mut self, now: Instant) {
        let mut ids = Vec::new();
        while let Some(id) = self.core.poll_ready() {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.flush(now, id);
        }
    }

    /// The loop is over: connections a stop gave up on are removed from
    /// the core, so each still gets its `Closed` event.
    fn finish_all(&mut self, now: Instant, on_event: &mut OnEvent<'_>) {
        let ids: Vec<SessionId> = self.core.connection_ids().collect();
        for id in ids {
            self.conns.remove(&id);
            self.forget(now, id, None);
        }
        while self.deliver(now, on_event) {}
    }

    fn is_done(&self, now: Instant) -> bool {
        match self.stop_at {
            Some(at) => self.conns.is_empty() || now >= at,
            None => self.core.is_drained() && self.conns.is_empty(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let finishing = self.finishing.front().map(|(at, _)| *at);
        let dial = self.dial_deadlines.front().map(|(at, _)| *at);
        [self.core.poll_timeout(), finishing, self.stop_at, dial]
            .into_iter()
            .flatten()
            .min()
    }

    fn accept(&mut self, now: Instant, index: usize) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        loop {
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Usually out of file descriptors; the listener stays
                    // readable and is retried when the next event comes.
                    warn!(error = %e, "accept failed");
                    return;
                }
            };
            // The wall clock for token time bounds, fresh for every accept.
            self.core.handle_unix_time(now, tincan_net::unix_now());
            let id = match self
                .core
                .accept(now, Some(peer), &mut tincan_net::os_entropy)
            {
                Ok(id) => id,
                Err(refusal) => {
                    warn!(%peer, %refusal, "connection refused");
                    continue; // dropping the socket closes it
                }
            };
            tincan_net::configure(&stream);
            let token = Token(id.0 as usize); // ids count up from 0; lossless on 64-bit
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
            {
                warn!(error = %e, "cannot register a connection");
                let _ = self.core.remove(now, id);
                continue;
            }
            if let Some(span) = self.core.span(id) {
                span.in_scope(|| info!("accepted"));
            }
            self.conns.insert(
                id,
                Conn {
                    stream,
                    dialing: None,
                    pending: Transmit::default(),
                    read_open: true,
                    writable: false,
                    finishing: false,
                    removed: false,
                },
            );
        }
    }

    /// Starts every dial the core asked for: an `IP:port` target is
    /// connected at once (non-blocking), a host name goes to a helper
    /// thread to resolve; neither blocks the loop.
    fn start_dials(&mut self, now: Instant) {
        while let Some(dial) = self.core.poll_dial() {
            let id = dial.id;
            if let Some(span) = self.core.span(id) {
                span.in_scope(|| debug!(target = %dial.target, "dialing"));
            }
            if let Some(at) = now.checked_add(self.driver.dial_timeout) {
                self.dial_deadlines.push_back((at, id));
            }
            if let Ok(addr) = dial.target.parse::<SocketAddr>() {
                self.connect_next(now, id, VecDeque::from([addr]), String::new());
                continue;
            }
            match self.control.resolve(id, dial.target.clone()) {
                Ok(()) => {
                    self.resolving.insert(id);
                }
                Err(e) => self.fail_dial(
                    now,
                    id,
                    format!("cannot resolve {}: no thread: {e}", dial.target),
                ),
            }
        }
    }

    /// Starts a non-blocking connect to the first of `addrs` that takes
    /// one; the outcome shows as readiness ([`EventLoop::check_dial`]).
    /// With none left, the dial fails with `last`, the latest error.
    fn connect_next(
        &mut self,
        now: Instant,
        id: SessionId,
        mut addrs: VecDeque<SocketAddr>,
        mut last: String,
    ) {
        if self.core.is_closed(id) {
            // The core gave up on it (a stop, its handshake or start deadline).
            self.forget(now, id, None);
            return;
        }
        while let Some(addr) = addrs.pop_front() {
            let connected = TcpStream::connect(addr).and_then(|mut stream| {
                // Writable once the connect finishes, either way; readable
                // too, for whatever the peer sends right after.
                self.poll.registry().register(
                    &mut stream,
                    Token(id.0 as usize),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            match connected {
                Ok(stream) => {
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            dialing: Some(Dialing { addr, rest: addrs }),
                            pending: Transmit::default(),
                            read_open: true,
                            writable: true,
                            finishing: false,
                            removed: false,
                        },
                    );
                    return;
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        self.fail_dial(now, id, last);
    }

    /// A dialing socket became ready: its connect finished, or failed (then
    /// the target's next address is tried), or the wake was spurious.
    fn check_dial(&mut self, now: Instant, id: SessionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let outcome = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match conn.stream.peer_addr() {
                Ok(peer) => Ok(peer),
                // Not connected yet, and no error: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(peer) => {
                conn.dialing = None;
                // Interest follows the core from now on, as for an
                // accepted connection: WRITABLE only while a transmit is
                // partly written.
                conn.writable = false;
                if let Err(e) = self.poll.registry().reregister(
                    &mut conn.stream,
                    Token(id.0 as usize),
                    Interest::READABLE,
                ) {
                    self.core.handle_dialed(now, id, Ok(peer));
                    self.drop_conn(now, id, &e);
                    return;
                }
                tincan_net::configure(&conn.stream);
                // The core names it ready: its handshake is written in
                // this turn's flush.
                self.core.handle_dialed(now, id, Ok(peer));
            }
            Err(e) => {
                let Some(mut conn) = self.conns.remove(&id) else {
                    return;
                };
                let _ = self.poll.registry().deregister(&mut conn.stream);
                let Dialing { addr, rest } = conn.dialing.take().expect("checked by the caller");
                self.connect_next(now, id, rest, format!("cannot connect to {addr}: {e}"));
            }
        }
    }

    /// An outbound connection could not be dialed: the core closes it with
    /// `why`, and it is removed at once (its `Closed` says why).
    fn fail_dial(&mut self, now: Instant, id: SessionId, why: String) {
        self.conns.remove(&id);
        self.core.handle_dialed(now, id, Err(why));
        self.forget(now, id, None);
    }

    /// Reads until the socket has nothing more (mio is edge-triggered) or
    /// the budget is spent.
    fn read(&mut self, now: Instant, id: SessionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut budget = READ_BUDGET;
        while conn.read_open {
            if budget == 0 {
                self.unread.push(id);
                return;
            }
            if !conn.removed && self.core.has_pending_input(id) {
                // The core keeps the rest of the last read: one turn of it
                // now, reading no more until it is all handled, and every
                // other connection gets its turn in between.
                if let Err(e) = self.core.handle_input(now, id, &[]) {
                    debug!(id = %id, error = %e, "session error");
                }
                if self.core.has_pending_input(id) {
                    self.unread.push(id);
                    return;
                }
            }
            budget -= 1;
            match conn.stream.read(&mut self.buf) {
                Ok(0) => {
                    conn.read_open = false;
                    if conn.removed {
                        // The peer answered our close: nothing left to wait for.
                        self.conns.remove(&id);
                        return;
                    }
                    self.core.handle_eof(now, id);
                }
                Ok(n) if conn.removed => debug!(bytes = n, "discarded input after close"),
                Ok(n) => {
                    // An error closes the session, which still flushes the
                    // status it owes; it is finished like any other.
                    if let Err(e) = self.core.handle_input(now, id, &self.buf[..n]) {
                        debug!(id = %id, error = %e, "session error");
                    }
                    if self.core.has_pending_input(id) {
                        self.unread.push(id);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_conn(now, id, &e);
                    return;
                }
            }
        }
    }

    /// Writes every connection that may have output: the core's ready
    /// ones, those whose socket became writable, and those over budget.
    fn flush_all(&mut self, now: Instant, writable: &mut Vec<SessionId>) {
        let mut ids = std::mem::take(&mut self.again);
        ids.append(writable);
        while let Some(id) = self.core.poll_ready() {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.flush(now, id);
        }
        // Dials that ran out of time fail.
        while let Some(&(at, id)) = self.dial_deadlines.front() {
            if at > now {
                break;
            }
            self.dial_deadlines.pop_front();
            let dialing = self.resolving.remove(&id)
                || self.conns.get(&id).is_some_and(|c| c.dialing.is_some());
            if dialing {
                let timeout = self.driver.dial_timeout;
                self.fail_dial(now, id, format!("no connection within {timeout:?}"));
            }
        }
        // Finished connections that ran out of time are dropped.
        while let Some(&(at, id)) = self.finishing.front() {
            if at > now {
                break;
            }
            self.finishing.pop_front();
            if let Some(conn) = self.conns.remove(&id) {
                if !conn.removed {
                    self.forget(now, id, Some(&"its last transmit timed out"));
                }
            }
        }
    }

    fn flush(&mut self, now: Instant, id: SessionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            // Still resolving: only the core giving up (its deadlines,
            // a stop) can concern it.
            if self.resolving.contains(&id) && self.core.is_closed(id) {
                self.resolving.remove(&id);
                self.forget(now, id, None);
            }
            return;
        };
        if conn.removed {
            return;
        }
        if conn.dialing.is_some() {
            // Nothing to write before the connect finishes; the core may
            // have given up on it (its deadlines, a stop).
            if self.core.is_closed(id) {
                self.conns.remove(&id);
                self.forget(now, id, None);
            }
            return;
        }
        let mut budget = WRITE_BUDGET;
        let result = loop {
            if conn.pending.is_empty() {
                if budget == 0 {
                    self.again.push(id);
                    break Ok(());
                }
                // Refilled in place: no allocation per write.
                if !self.core.poll_transmit_into(now, id, &mut conn.pending) {
                    break Ok(());
                }
                budget -= 1;
            }
            match tincan_net::write_transmit(&mut conn.pending, |b| conn.stream.write_vectored(b)) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = result {
            self.drop_conn(now, id, &e);
            return;
        }
        let want_write = !conn.pending.is_empty();
        if want_write != conn.writable {
            conn.writable = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(id.0 as usize);
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
            {
                self.drop_conn(now, id, &e);
                return;
            }
        }
        if self.core.is_closed(id) {
            if !conn.finishing {
                conn.finishing = true;
                self.finishing.push_back((now + self.driver.linger, id));
            }
            if conn.pending.is_empty() {
                self.finish(now, id);
            }
        }
    }

    /// The session is over and its last byte written: tell the core, close
    /// our side, and keep reading until the peer closes too (or the linger
    /// time runs out).
    /// Dropping a socket with unread input sends a reset, and a reset can
    /// destroy the goodbye status before the peer reads it.
    fn finish(&mut self, now: Instant, id: SessionId) {
        self.forget(now, id, None);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.removed = true;
        if !conn.read_open || conn.stream.shutdown(Shutdown::Write).is_err() {
            self.conns.remove(&id);
            return;
        }
        // The peer may have closed already; only a read can tell.
        self.read(now, id);
    }

    /// A socket error: the connection is gone at once.
    fn drop_conn(&mut self, now: Instant, id: SessionId, error: &io::Error) {
        if let Some(conn) = self.conns.remove(&id) {
            if !conn.removed {
                self.forget(now, id, Some(error));
            }
        }
    }

    /// Removes `id` from the core and logs how it ended.
    fn forget(
        &mut self,
        now: Instant,
        id: SessionId,
        socket_error: Option<&dyn std::fmt::Display>,
    ) {
        let span = self.core.span(id);
        let Some(closed) = self.core.remove(now, id) else {
            return;
        };
        let _entered = span.as_ref().map(|s| s.enter());
        tincan_net::driver::log_closed(Some(&closed), socket_error);
    }
}
