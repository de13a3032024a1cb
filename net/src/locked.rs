//! The core [`Server`] behind one short lock, for adapters that run a task
//! per connection (tokio, smol): every core call runs under the lock, and
//! the connections it names ready are written once the lock is released,
//! by the calling task itself when their socket takes it (as the mio loop
//! writes in the same turn), their own task woken only when it does not.
//!
//! The lock is also where the core's [`ServerEvent`]s leave it: drained
//! under the lock after every call into the subscriber's bounded channel
//! ([`EventSink`]), never waiting on it; and where its outbound
//! connections leave it: drained into a queue the adapter's serving loop
//! takes ([`LockedServer::take_dials`]) and dials.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::{Dial, OutboundConfig};
use tincan_core::server::{
    Grant, IdMap, Refusal, Server, ServerConfig, ServerEvent, Ticket, TicketError,
};
use tincan_core::session::Transmit;
use tincan_core::stats::{ConnectionStats, StreamStats, Totals};
use tracing::{debug, info, warn};

/// How many events an adapter's event stream holds by default before it
/// drops reports: a burst of a few thousand connections (a benchmark, a
/// reconnect storm) fits, and a stalled embedder costs at most this many
/// events of memory.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// Why an [`EventSink`] did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkError {
    /// The channel is full: the embedder is behind. The event is dropped
    /// and counted; nothing waits for room.
    Full,
    /// The receiving side is gone: the embedder stopped listening.
    Closed,
}

/// The sending side of an executor's bounded channel, as [`LockedServer`]
/// uses it: called under the core's lock, so it must never wait.
pub trait EventSink: Send {
    /// Hands `event` to the embedder without waiting.
    fn try_send(&self, event: ServerEvent) -> Result<(), SinkError>;
}

/// The subscriber of a [`LockedServer`]'s events, and what was lost on
/// the way to it.
#[derive(Default)]
struct Subscription {
    sink: Option<Box<dyn EventSink>>,
    /// Set once the adapter stopped serving: a later subscriber's stream
    /// ends at once instead of waiting forever.
    finished: bool,
    /// Reports dropped because the channel was full, in total.
    dropped: u64,
    /// Reports dropped in the current burst (0: delivering), so a stalled
    /// embedder costs one warning per burst, not one per event.
    burst: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("subscribed", &self.sink.is_some())
            .field("finished", &self.finished)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl Subscription {
    /// Drains every event the core has queued into the sink, in the
    /// core's order. A request the embedder will never see (no
    /// subscriber, a full channel, a receiver gone) is denied at once, as
    /// the core does when its own queue is full, so its client is not
    /// left waiting for the decision deadline.
    fn deliver(&mut self, server: &mut Server, now: Instant) {
        while let Some(event) = server.poll_event() {
            let ticket = request_ticket(&event);
            let Some(sink) = &self.sink else {
                if let Some(ticket) = ticket {
                    let _ = server.deny(now, ticket, Denial::policy("no decider"));
                }
                continue;
            };
            match sink.try_send(event) {
                Ok(()) => {
                    if self.burst > 0 {
                        info!(dropped = self.burst, "event subscriber caught up");
                        self.burst = 0;
                    }
                }
                Err(SinkError::Full) => {
                    if self.burst == 0 {
                        warn!(
                            "event subscriber is behind and its channel is full: \
                             dropping reports and denying requests until it catches up"
                        );
                    }
                    self.burst += 1;
                    self.dropped += 1;
                    if let Some(ticket) = ticket {
                        let _ = server.deny(now, ticket, Denial::policy("server busy"));
                    }
                }
                Err(SinkError::Closed) => {
                    debug!("event subscriber gone");
                    self.sink = None;
                    if let Some(ticket) = ticket {
                        let _ = server.deny(now, ticket, Denial::policy("no decider"));
                    }
                }
            }
        }
    }
}

/// The ticket of a request event.
fn request_ticket(event: &ServerEvent) -> Option<Ticket> {
    match event {
        ServerEvent::ConnectRequest { ticket, .. }
        | ServerEvent::PublishRequest { ticket, .. }
        | ServerEvent::PlayRequest { ticket, .. } => Some(*ticket),
        _ => None,
    }
}

/// How an executor wakes a waiting task. A ring sent before the task waits
/// must not be lost (tokio's `Notify` keeps a permit; a one-slot channel
/// keeps a message).
pub trait Bell: Clone {
    /// Wakes the task, now or at its next wait.
    fn ring(&self);
}

/// Transmits the calling task writes for one ready connection before it
/// hands the rest to the connection's own task: a player's usual output
/// is one transmit per frame, and a deep backlog is its own task's work.
const DIRECT_BUDGET: usize = 4;

/// A connection's output side, shared by its task and whichever task makes
/// it ready: the one transmit being written (so transmits stay in order,
/// whoever writes them), the socket itself and the bell of the task that
/// owns it.
///
/// Without it, a frame fanned out to N players costs N task wake-ups, each
/// a trip through the executor (and, across threads, a futex) only to make
/// one `writev`; with it, the task that produced the frame makes the writes
/// itself, and a player's task wakes only when its socket is full.
///
/// All three live in one allocation, the socket last so the adapters keep
/// their own stream type (`W`) while the core's lock sees any writer as
/// `DirectWriter<B>`: a fan-out touches each player's writer once, and a
/// bell or socket behind pointers of their own would be more cache lines
/// to miss per player per frame (docs/performance.md).
pub struct DirectWriter<B, W: ?Sized = dyn VectoredWrite> {
    /// The transmit in progress; empty when fully written. Locked by the
    /// connection's task for its writes, and tried (never waited for) by
    /// other tasks.
    pending: Mutex<Transmit>,
    /// The connection's task's bell, rung for what another task's write
    /// leaves (a full socket, more output, a close).
    bell: B,
    io: W,
}

/// A socket's non-blocking vectored writes, as a [`DirectWriter`] makes
/// them; `WouldBlock` when the socket is full.
pub trait VectoredWrite: Send + Sync + 'static {
    /// The connection's own task's write: it must leave the executor's
    /// readiness state right, since the task waits for writability when
    /// this would block.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Another task's write. One that would block rings the connection's
    /// task, whose own [`VectoredWrite::write_vectored`] then tries again,
    /// so this may skip the executor's readiness bookkeeping (tokio's is
    /// a cache line of its own per socket). By default the same write.
    fn write_direct(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
}

impl<F> VectoredWrite for F
where
    F: Fn(&[IoSlice<'_>]) -> io::Result<usize> + Send + Sync + 'static,
{
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self(bufs)
    }
}

impl<B, W: ?Sized> std::fmt::Debug for DirectWriter<B, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter").finish_non_exhaustive()
    }
}

impl<B, W: VectoredWrite> DirectWriter<B, W> {
    /// A writer over `io` (the socket), whose task is woken by `bell`.
    pub fn new(bell: B, io: W) -> Self {
        DirectWriter {
            pending: Mutex::new(Transmit::default()),
            bell,
            io,
        }
    }
}

impl<B, W: VectoredWrite + ?Sized> DirectWriter<B, W> {
    /// The pending transmit, for the connection's own task (waits while
    /// another task is writing it).
    pub fn pending(&self) -> MutexGuard<'_, Transmit> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The socket, for the connection's own task's reads and waits.
    pub fn io(&self) -> &W {
        &self.io
    }

    /// The connection's own task writes as much of `t` as the socket
    /// takes (see [`crate::write_transmit`]).
    pub fn write(&self, t: &mut Transmit) -> io::Result<bool> {
        crate::write_transmit(t, |b| self.io.write_vectored(b))
    }

    /// Another task writes as much of `t` as the socket takes.
    fn write_direct(&self, t: &mut Transmit) -> io::Result<bool> {
        crate::write_transmit(t, |b| self.io.write_direct(b))
    }
}

/// Ready connections whose transmits one lock takes before they are
/// written: bounds how long a fan-out holds the core from other tasks
/// (about a microsecond per connection), while sparing all but one lock
/// per this many players.
const WRITE_BATCH: usize = 64;

/// A ready connection whose writer this task holds, so nobody else writes
/// it until its transmit is out.
struct Held<'a, B> {
    id: SessionId,
    writer: &'a DirectWriter<B>,
    pending: MutexGuard<'a, Transmit>,
}

/// What the core said of a held connection's next transmit: whether one
/// was filled, whether the connection is closed, whether it may have more.
type Polled = (bool, bool, bool);

/// Takes `h`'s next transmit from the core (under its lock).
fn poll_held<B>(s: &mut Server, now: Instant, h: &mut Held<'_, B>) -> Polled {
    (
        s.poll_transmit_into(now, h.id, &mut h.pending),
        s.is_closed(h.id),
        s.has_output(h.id),
    )
}

/// Writes the transmit just taken for `h`, counting it in `written`; true
/// when it went out whole and the connection may have more to send. Rings
/// the connection's task for what this leaves: a close, a full socket, an
/// error.
fn write_polled<B: Bell>(
    h: &mut Held<'_, B>,
    (filled, closed, more): Polled,
    written: &mut usize,
) -> bool {
    if !filled {
        if closed {
            h.writer.bell.ring();
        }
        return false;
    }
    *written += 1;
    match h.writer.write_direct(&mut h.pending) {
        // Everything it had is written: no second call (and lock) per
        // player per frame just to hear that.
        Ok(true) => more || closed,
        Ok(false) | Err(_) => {
            h.writer.bell.ring();
            false
        }
    }
}

/// A connection the core named ready, to be written or woken once the lock
/// is released. One reference per connection is taken under the lock: its
/// writer (which holds its bell) once it has one, else its bell.
enum Ready<B> {
    Direct(SessionId, Arc<DirectWriter<B>>),
    Ring(B),
}

impl<B: Bell> Ready<B> {
    fn ring(&self) {
        match self {
            Ready::Direct(_, w) => w.bell.ring(),
            Ready::Ring(bell) => bell.ring(),
        }
    }
}

/// A connection task's bell, and its writer once its socket is connected.
#[derive(Debug)]
struct Conn<B> {
    bell: B,
    writer: Option<Arc<DirectWriter<B>>>,
}

#[derive(Debug)]
struct State<B> {
    server: Server,
    /// Each connection task's bell, rung when the core names it ready and
    /// its output cannot be written directly; and its writer.
    bells: IdMap<Conn<B>>,
    /// The deadline the timer task sleeps toward.
    timer_armed: Option<Instant>,
    /// Where the core's events go.
    events: Subscription,
    /// Outbound connections the core asked for that the serving loop has
    /// not taken yet.
    dials: Vec<Dial>,
}

/// The core shared by the accept loop, the timer task and every connection
/// task.
#[derive(Debug)]
pub struct LockedServer<B> {
    state: Mutex<State<B>>,
    timer: B,
    /// Rung when the core asks for a dial: the serving loop owns the
    /// connections' tasks, so it is the one that starts a dial's.
    dialer: B,
    /// Set once serving ended: nothing would dial a new connection.
    finished: AtomicBool,
    clock: fn() -> Instant,
    /// Wait and hold times of `state`'s lock (docs/performance.md).
    #[cfg(feature = "lock-stats")]
    lock_stats: crate::lock_stats::LockStats,
}

#[cfg(feature = "lock-stats")]
impl<B> Drop for LockedServer<B> {
    fn drop(&mut self) {
        info!("{}", self.lock_stats.report());
    }
}

/// The guard of the core's lock: timed when measuring.
#[cfg(feature = "lock-stats")]
type Guard<'a, B> = crate::lock_stats::Timed<'a, MutexGuard<'a, State<B>>>;
#[cfg(not(feature = "lock-stats"))]
type Guard<'a, B> = MutexGuard<'a, State<B>>;

impl<B: Bell> LockedServer<B> {
    /// A server whose timer task is woken by `timer`, whose serving loop
    /// is woken by `dialer` when there is an outbound connection to dial
    /// ([`LockedServer::take_dials`]), and whose time comes from `clock`
    /// (tokio's clock, so a paused test clock stays meaningful;
    /// `Instant::now` elsewhere).
    pub fn new(config: ServerConfig, timer: B, dialer: B, clock: fn() -> Instant) -> Self {
        LockedServer {
            state: Mutex::new(State {
                server: Server::new(config),
                bells: IdMap::default(),
                timer_armed: None,
                events: Subscription::default(),
                dials: Vec::new(),
            }),
            timer,
            dialer,
            finished: AtomicBool::new(false),
            clock,
            #[cfg(feature = "lock-stats")]
            lock_stats: crate::lock_stats::LockStats::new(),
        }
    }

    fn lock(&self) -> Guard<'_, B> {
        // A panic in one task must not take every connection down with it.
        let take = || {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        #[cfg(feature = "lock-stats")]
        return self.lock_stats.timed(take);
        #[cfg(not(feature = "lock-stats"))]
        take()
    }

    /// Runs `f` on the core under the lock, then, with the lock released,
    /// writes or wakes every connection the core named ready (see
    /// [`DirectWriter`]), rings the timer task if the core's deadline moved
    /// earlier, and the serving loop if the core asked for a dial. Every
    /// core call goes through here, so no wake-up (and no dial, whichever
    /// call asked for it) is ever missed, and no lock is held across a
    /// write.
    pub fn with<R>(&self, f: impl FnOnce(&mut Server, Instant) -> R) -> R {
        self.with_counted(f).0
    }

    /// [`LockedServer::with`], also telling how many transmits this call
    /// wrote directly for the connections it made ready (a publisher's
    /// players, mostly): work done for others, which a connection task
    /// weighs to let other tasks in (see
    /// [`crate::driver::DIRECT_WRITE_BUDGET`]).
    pub fn with_counted<R>(&self, f: impl FnOnce(&mut Server, Instant) -> R) -> (R, usize) {
        let (result, ready) = self.call(f);
        let written = self.write_ready(&ready);
        (result, written)
    }

    /// Writes the connections the core named ready from this task while
    /// their sockets take it, up to [`DIRECT_BUDGET`] transmits each; wakes
    /// a connection's own task for whatever this leaves: a full socket, a
    /// writer in use (by its task or another), more output, a close, an
    /// error. Returns the transmits it wrote.
    ///
    /// A frame fanned out makes hundreds of players ready at once: their
    /// first transmits are taken [`WRITE_BATCH`] at a time under one lock,
    /// not one lock (and clock read, and deadline check) per player, and
    /// written after it is released.
    fn write_ready(&self, ready: &[Ready<B>]) -> usize {
        let mut written = 0;
        let mut batch: Vec<Held<'_, B>> = Vec::new();
        for r in ready {
            let Ready::Direct(id, writer) = r else {
                r.ring();
                continue;
            };
            let Ok(pending) = writer.pending.try_lock() else {
                r.ring();
                continue;
            };
            if !pending.is_empty() {
                // Its task waits for the socket to drain.
                r.ring();
                continue;
            }
            batch.push(Held {
                id: *id,
                writer,
                pending,
            });
            if batch.len() == WRITE_BATCH {
                written += self.write_batch(&mut batch);
            }
        }
        if !batch.is_empty() {
            written += self.write_batch(&mut batch);
        }
        written
    }

    /// Takes each held connection's next transmit under one lock, then
    /// writes them with the lock released; a connection with more to
    /// send goes on alone ([`LockedServer::write_more`]).
    fn write_batch(&self, batch: &mut Vec<Held<'_, B>>) -> usize {
        let (polled, others) = self.call(|s, now| {
            batch
                .iter_mut()
                .map(|h| poll_held(s, now, h))
                .collect::<Vec<_>>()
        });
        // Whatever those made ready is rare (events a transmit raised); its
        // own task takes it, so this cannot recurse.
        for other in others {
            other.ring();
        }
        let mut written = 0;
        for (mut h, polled) in batch.drain(..).zip(polled) {
            if write_polled(&mut h, polled, &mut written) {
                written += self.write_more(h, DIRECT_BUDGET - 1);
            }
        }
        written
    }

    /// Goes on writing one held connection, a transmit per lock, up to
    /// `budget` more; then leaves the rest to its task.
    fn write_more(&self, mut h: Held<'_, B>, budget: usize) -> usize {
        let mut written = 0;
        for _ in 0..budget {
            let (polled, ready) = self.call(|s, now| poll_held(s, now, &mut h));
            for other in ready {
                other.ring();
            }
            if !write_polled(&mut h, polled, &mut written) {
                return written;
            }
        }
        h.writer.bell.ring();
        written
    }

    /// Runs `f` under the lock; returns its result and the connections
    /// the core named ready, having rung the timer and the serving loop.
    fn call<R>(&self, f: impl FnOnce(&mut Server, Instant) -> R) -> (R, Vec<Ready<B>>) {
        let mut rung = Vec::new();
        let (result, retime, dial) = {
            let mut state = self.lock();
            let State {
                server,
                bells,
                timer_armed,
                events,
                dials,
            } = &mut *state;
            let now = (self.clock)();
            let result = f(server, now);
            // Under the lock, so events reach the channel in the core's
            // order even when tasks on several threads call in at once;
            // `try_send` never waits, so no connection task is held up by
            // a slow subscriber.
            events.deliver(server, now);
            let queued = dials.len();
            while let Some(d) = server.poll_dial() {
                dials.push(d);
            }
            let dial = dials.len() > queued;
            while let Some(id) = server.poll_ready() {
                if let Some(c) = bells.get(&id) {
                    rung.push(match &c.writer {
                        Some(w) => Ready::Direct(id, Arc::clone(w)),
                        None => Ready::Ring(c.bell.clone()),
                    });
                }
            }
            let retime = match (server.poll_timeout(), *timer_armed) {
                (Some(d), Some(armed)) => d < armed,
                (Some(_), None) => true,
                (None, _) => false,
            };
            (result, retime, dial)
        };
        if retime {
            self.timer.ring();
        }
        if dial {
            self.dialer.ring();
        }
        (result, rung)
    }

    /// [`Server::connect`]: opens an outbound connection, which the
    /// serving loop dials once it runs (a connection asked for before
    /// `run` waits for it). Refused with [`Refusal::ShuttingDown`] once
    /// serving has ended, since nothing would ever dial it.
    pub fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        // Read under the lock: `finish` sets the flag before it removes
        // every connection under the lock, so a connection opened here is
        // either refused or removed by it, never left behind.
        self.with(|s, now| {
            if self.finished.load(Ordering::SeqCst) {
                return Err(Refusal::ShuttingDown);
            }
            s.connect(now, config, &mut crate::os_entropy)
        })
    }

    /// The outbound connections to dial now (each once), with the span of
    /// its connection for its task; see [`crate::driver::dial`].
    pub fn take_dials(&self) -> Vec<(Dial, tracing::Span)> {
        let mut state = self.lock();
        let dials = std::mem::take(&mut state.dials);
        dials
            .into_iter()
            .map(|d| {
                let span = state.server.span(d.id).unwrap_or_else(tracing::Span::none);
                (d, span)
            })
            .collect()
    }

    /// Runs `f` on the core under the lock, for what only reads it
    /// (statistics): nothing can become ready, so nothing is rung.
    pub fn inspect<R>(&self, f: impl FnOnce(&Server, Instant) -> R) -> R {
        let state = self.lock();
        f(&state.server, (self.clock)())
    }

    /// Sends every event from now on to `sink`, replacing (and so ending)
    /// any earlier subscriber. Events drained before the first subscriber
    /// came were dropped; subscribe before serving to see them all.
    pub fn subscribe(&self, sink: Box<dyn EventSink>) {
        let mut state = self.lock();
        if state.events.finished {
            return; // dropping the sink ends the subscriber's stream
        }
        state.events.sink = Some(sink);
    }

    /// Reports the embedder never got because its channel (or the core's
    /// own queue) was full.
    pub fn events_dropped(&self) -> u64 {
        let state = self.lock();
        state.events.dropped + state.server.events_dropped()
    }

    /// [`Server::approve`], waking whatever the answer makes ready.
    pub fn approve(&self, ticket: Ticket) -> Result<(), TicketError> {
        self.with(|s, now| s.approve(now, ticket))
    }

    /// [`Server::approve_with`]: approves with what the decider grants
    /// (a publish priority, a play's real-time treatment).
    pub fn approve_with(&self, ticket: Ticket, grant: Grant) -> Result<(), TicketError> {
        self.with(|s, now| s.approve_with(now, ticket, grant))
    }

    /// [`Server::set_config`]: a reloaded configuration for connections
    /// accepted from now on.
    pub fn set_config(&self, config: ServerConfig) {
        self.with(|s, _| s.set_config(config));
    }

    /// [`Server::end_publish`]: ends a live publish, waking its publisher
    /// and players.
    pub fn end_publish(&self, app: &str, name: &str, description: &str) -> Option<SessionId> {
        self.with(|s, now| s.end_publish(now, app, name, description))
    }

    /// [`Server::totals`] now.
    pub fn totals(&self) -> Totals {
        self.inspect(|s, _| *s.totals())
    }

    /// [`Server::deny`], waking whatever the answer makes ready.
    pub fn deny(&self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        self.with(|s, now| s.deny(now, ticket, denial))
    }

    /// [`Server::close`]: closes connection `id` from the server's side
    /// with `reason`, waking its task to flush the goodbye. False if no
    /// such connection is served.
    pub fn close(&self, id: SessionId, reason: &str) -> bool {
        self.with(|s, now| {
            let known = s.connection_ids().any(|c| c == id);
            s.close(now, id, reason);
            known
        })
    }

    /// [`Server::request_reconnect`] now: whether the request was sent
    /// (false for an unknown connection or one that did not announce
    /// reconnect support).
    pub fn request_reconnect(
        &self,
        id: SessionId,
        tc_url: Option<&str>,
        description: &str,
    ) -> bool {
        self.with(|s, now| s.request_reconnect(now, id, tc_url, description))
    }

    /// [`Server::connection_stats`] now.
    pub fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats> {
        self.inspect(|s, now| s.connection_stats(now, id))
    }

    /// Every connection's statistics now, by id.
    pub fn connections(&self) -> Vec<(SessionId, ConnectionStats)> {
        self.inspect(|s, now| {
            let mut all: Vec<_> = s
                .connection_ids()
                .filter_map(|id| s.connection_stats(now, id).map(|st| (id, st)))
                .collect();
            all.sort_unstable_by_key(|(id, _)| *id);
            all
        })
    }

    /// [`Server::stream_stats`] now.
    pub fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats> {
        self.inspect(|s, now| s.stream_stats(now, app, name))
    }

    /// Every stream's statistics now.
    pub fn streams(&self) -> Vec<StreamStats> {
        self.inspect(|s, now| s.streams_stats(now).collect())
    }

    /// Ends serving: connections whose tasks were dropped before they
    /// finished (a stop past its flush time) are removed, so each still
    /// gets its `Closed` event, then the event stream ends once its
    /// subscriber has read what is left.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.with(|s, now| {
            let ids: Vec<SessionId> = s.connection_ids().collect();
            for id in ids {
                let _ = s.remove(now, id);
            }
        });
        let mut state = self.lock();
        state.dials.clear(); // their connections are gone
        state.events.sink = None;
        state.events.finished = true;
    }

    /// Gives connection `id` the bell its task waits on.
    pub fn register(&self, id: SessionId, bell: B) {
        self.lock().bells.insert(id, Conn { bell, writer: None });
    }

    /// Gives connection `id` (registered) the writer other tasks write its
    /// output with once it is ready (see [`DirectWriter`]).
    pub fn register_writer(&self, id: SessionId, writer: Arc<DirectWriter<B>>) {
        if let Some(c) = self.lock().bells.get_mut(&id) {
            c.writer = Some(writer);
        }
    }

    /// Forgets connection `id`'s bell once its task is ending.
    pub fn unregister(&self, id: SessionId) {
        self.lock().bells.remove(&id);
    }

    /// The deadline the timer task should sleep until (remembered, so the
    /// task is rung only when a call moves it earlier).
    pub fn arm_timer(&self) -> Option<Instant> {
        let mut state = self.lock();
        let deadline = state.server.poll_timeout();
        state.timer_armed = deadline;
        deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicU32>);

    impl Count {
        fn rings(&self) -> u32 {
            self.0.load(Ordering::Relaxed)
        }
    }

    impl Bell for Count {
        fn ring(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_connection_the_core_names_ready_is_rung_and_the_timer_when_its_deadline_appears() {
        let timer = Count::default();
        let shared = LockedServer::new(
            ServerConfig::default(),
            timer.clone(),
            Count::default(),
            Instant::now,
        );
        let conn = Count::default();
        let id = shared
            .with(|s, now| s.accept(now, None, &mut |b: &mut [u8]| b.fill(7)))
            .unwrap();
        shared.register(id, conn.clone());
        // The new session's handshake deadline is the first the timer sees.
        assert_eq!(timer.rings(), 1);
        assert!(shared.arm_timer().is_some());
        shared.with(|s, now| s.handle_input(now, id, &[3])).unwrap();
        assert_eq!(conn.rings(), 1);
        // The deadline did not move earlier: the timer is not rung again.
        assert_eq!(timer.rings(), 1);
    }

    /// Gives `id` a writer whose socket takes everything; returns what it
    /// was given, in order.
    fn register_recording_writer(
        shared: &LockedServer<Count>,
        id: SessionId,
        bell: &Count,
    ) -> Arc<Mutex<Vec<u8>>> {
        let socket = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&socket);
        shared.register_writer(
            id,
            Arc::new(DirectWriter::new(
                bell.clone(),
                move |bufs: &[IoSlice<'_>]| {
                    let mut out = sink.lock().unwrap();
                    let before = out.len();
                    for b in bufs {
                        out.extend_from_slice(b);
                    }
                    Ok(out.len() - before)
                },
            )),
        );
        socket
    }

    /// A server whose timer and dial bells nobody checks.
    fn quiet_server() -> LockedServer<Count> {
        LockedServer::new(
            ServerConfig::default(),
            Count::default(),
            Count::default(),
            Instant::now,
        )
    }

    /// C0 and a simple-handshake C1: the server answers with S0+S1+S2.
    fn c0_c1() -> Vec<u8> {
        let mut v = vec![3u8];
        v.resize(1 + 1536, 0);
        v
    }

    #[test]
    fn a_ready_connection_is_written_by_the_calling_task_without_waking_its_own() {
        let shared = quiet_server();
        let conn = Count::default();
        let id = accept(&shared);
        shared.register(id, conn.clone());
        let socket = register_recording_writer(&shared, id, &conn);
        shared
            .with(|s, now| s.handle_input(now, id, &c0_c1()))
            .unwrap();
        let written = socket.lock().unwrap().clone();
        assert_eq!(written.len(), 1 + 1536 + 1536, "S0+S1+S2 written");
        assert_eq!(written[0], 3);
        assert_eq!(conn.rings(), 0, "its task was woken for nothing");
    }

    #[test]
    fn a_call_counts_the_transmits_it_wrote_directly() {
        let shared = quiet_server();
        let id = accept(&shared);
        shared.register(id, Count::default());
        shared.register_writer(
            id,
            Arc::new(DirectWriter::new(
                Count::default(),
                |bufs: &[IoSlice<'_>]| Ok(bufs.iter().map(|b| b.len()).sum()),
            )),
        );
        // C0 alone makes no output; C1 then makes S0+S1+S2, one transmit.
        let ((), written) = shared.with_counted(|s, now| s.handle_input(now, id, &[3]).unwrap());
        assert_eq!(written, 0);
        let ((), written) =
            shared.with_counted(|s, now| s.handle_input(now, id, &c0_c1()[1..]).unwrap());
        assert_eq!(written, 1);
    }

    #[test]
    fn every_connection_one_call_makes_ready_is_written_across_batches_without_waking_any() {
        let shared = quiet_server();
        // More than two batches' worth, the last one partial.
        let n = 2 * WRITE_BATCH + 7;
        let mut conns = Vec::new();
        for _ in 0..n {
            let id = accept(&shared);
            let bell = Count::default();
            shared.register(id, bell.clone());
            let socket = register_recording_writer(&shared, id, &bell);
            conns.push((id, bell, socket));
        }
        // One call gives every connection its C0+C1, as one publisher's
        // read gives every player a frame.
        let ((), written) = shared.with_counted(|s, now| {
            for (id, _, _) in &conns {
                s.handle_input(now, *id, &c0_c1()).unwrap();
            }
        });
        assert_eq!(written, n);
        for (id, bell, socket) in &conns {
            let out = socket.lock().unwrap();
            assert_eq!(out.len(), 1 + 1536 + 1536, "{id:?}: S0+S1+S2 written");
            assert_eq!(out[0], 3);
            assert_eq!(bell.rings(), 0, "{id:?}: its task was woken for nothing");
        }
    }

    #[test]
    fn a_ready_connection_whose_writer_is_in_use_wakes_its_task_and_the_others_are_written() {
        let shared = quiet_server();
        let mut conns = Vec::new();
        for _ in 0..3 {
            let id = accept(&shared);
            let bell = Count::default();
            shared.register(id, bell.clone());
            let writer = Arc::new(DirectWriter::new(bell.clone(), |bufs: &[IoSlice<'_>]| {
                Ok(bufs.iter().map(|b| b.len()).sum())
            }));
            shared.register_writer(id, Arc::clone(&writer) as Arc<DirectWriter<Count>>);
            conns.push((id, bell, writer));
        }
        // The middle connection's own task is writing.
        let busy = conns[1].2.pending();
        let ((), written) = shared.with_counted(|s, now| {
            for (id, _, _) in &conns {
                s.handle_input(now, *id, &c0_c1()).unwrap();
            }
        });
        drop(busy);
        assert_eq!(written, 2);
        let rung: Vec<u32> = conns.iter().map(|(_, b, _)| b.rings()).collect();
        assert_eq!(rung, [0, 1, 0]);
        // Its output waits in the core for its task, not lost.
        let (id, _, writer) = &conns[1];
        let mut pending = writer.pending();
        assert!(shared.with(|s, now| s.poll_transmit_into(now, *id, &mut pending)));
        assert_eq!(pending.len(), 1 + 1536 + 1536);
    }

    /// A socket that counts which write each path made.
    #[derive(Default)]
    struct TwoWrites {
        own: AtomicU32,
        direct: AtomicU32,
    }

    impl VectoredWrite for Arc<TwoWrites> {
        fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.own.fetch_add(1, Ordering::Relaxed);
            Ok(bufs.iter().map(|b| b.len()).sum())
        }

        fn write_direct(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.direct.fetch_add(1, Ordering::Relaxed);
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
    }

    #[test]
    fn another_tasks_write_goes_through_write_direct_and_the_own_tasks_through_write_vectored() {
        let shared = quiet_server();
        let conn = Count::default();
        let id = accept(&shared);
        shared.register(id, conn.clone());
        let socket = Arc::new(TwoWrites::default());
        let writer = Arc::new(DirectWriter::new(conn.clone(), Arc::clone(&socket)));
        shared.register_writer(id, Arc::clone(&writer) as Arc<DirectWriter<Count>>);
        // The call that makes it ready writes S0+S1+S2 for it, directly.
        shared
            .with(|s, now| s.handle_input(now, id, &c0_c1()))
            .unwrap();
        assert_eq!(socket.direct.load(Ordering::Relaxed), 1);
        assert_eq!(socket.own.load(Ordering::Relaxed), 0);
        // Its own task's write (here of a transmit it fills itself) takes
        // the path that keeps the executor's readiness right.
        let mut t = Transmit::default();
        t.bufs.push(bytes::Bytes::from_static(b"own"));
        assert!(writer.write(&mut t).unwrap());
        assert_eq!(socket.own.load(Ordering::Relaxed), 1);
        assert_eq!(socket.direct.load(Ordering::Relaxed), 1);
        assert_eq!(conn.rings(), 0);
    }

    #[test]
    fn a_ready_connection_whose_socket_is_full_wakes_its_task_with_the_rest_kept() {
        let shared = quiet_server();
        let conn = Count::default();
        let id = accept(&shared);
        shared.register(id, conn.clone());
        // Takes 100 bytes, then is full.
        let taken = Arc::new(Mutex::new(0usize));
        let count = Arc::clone(&taken);
        let writer = Arc::new(DirectWriter::new(
            conn.clone(),
            move |bufs: &[IoSlice<'_>]| {
                let mut n = count.lock().unwrap();
                if *n >= 100 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let len = bufs.iter().map(|b| b.len()).sum::<usize>().min(100 - *n);
                *n += len;
                Ok(len)
            },
        ));
        shared.register_writer(id, Arc::clone(&writer) as Arc<DirectWriter<Count>>);
        shared
            .with(|s, now| s.handle_input(now, id, &c0_c1()))
            .unwrap();
        assert_eq!(*taken.lock().unwrap(), 100);
        assert_eq!(conn.rings(), 1, "its task must wait for the socket");
        assert_eq!(writer.pending().len(), 1 + 1536 + 1536 - 100);
    }

    /// A bounded channel as a sink, as the adapters' are.
    struct Bounded(std::sync::mpsc::SyncSender<ServerEvent>);

    impl EventSink for Bounded {
        fn try_send(&self, event: ServerEvent) -> Result<(), SinkError> {
            self.0.try_send(event).map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(_) => SinkError::Full,
                std::sync::mpsc::TrySendError::Disconnected(_) => SinkError::Closed,
            })
        }
    }

    fn accept(shared: &LockedServer<Count>) -> SessionId {
        shared
            .with(|s, now| s.accept(now, None, &mut |b: &mut [u8]| b.fill(7)))
            .unwrap()
    }

    fn opened(event: ServerEvent) -> SessionId {
        match event {
            ServerEvent::Opened { id, .. } => id,
            other => panic!("Opened expected, got {other:?}"),
        }
    }

    #[test]
    fn events_reach_the_subscriber_in_the_order_the_core_produced_them() {
        let shared = quiet_server();
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        shared.subscribe(Box::new(Bounded(tx)));
        let ids: Vec<SessionId> = (0..3).map(|_| accept(&shared)).collect();
        let seen: Vec<SessionId> = rx.try_iter().map(opened).collect();
        assert_eq!(seen, ids);
        assert_eq!(shared.events_dropped(), 0);
    }

    #[test]
    fn a_full_channel_drops_and_counts_reports_and_never_waits() {
        let shared = quiet_server();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        shared.subscribe(Box::new(Bounded(tx)));
        let first = accept(&shared);
        accept(&shared);
        accept(&shared);
        assert_eq!(shared.events_dropped(), 2);
        assert_eq!(opened(rx.try_recv().unwrap()), first);
        // Caught up: the next report is delivered again.
        let fourth = accept(&shared);
        assert_eq!(opened(rx.try_recv().unwrap()), fourth);
        assert_eq!(shared.events_dropped(), 2);
    }

    #[test]
    fn without_a_subscriber_events_are_drained_and_the_stream_ends_with_the_server() {
        let shared = quiet_server();
        let early = accept(&shared);
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        shared.subscribe(Box::new(Bounded(tx)));
        // Nothing from before the subscription is kept for it.
        assert!(rx.try_recv().is_err());
        shared.finish();
        // The connection left behind gets its Closed, then the stream ends.
        match rx.try_recv() {
            Ok(ServerEvent::Closed { id, .. }) => assert_eq!(id, early),
            other => panic!("Closed expected, got {other:?}"),
        }
        assert_eq!(
            rx.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        );
        // A subscriber that comes after the end sees the end at once.
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        shared.subscribe(Box::new(Bounded(tx)));
        assert_eq!(
            rx.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        );
        assert_eq!(shared.connections(), vec![]);
    }

    fn outbound() -> OutboundConfig {
        use tincan_core::client::{ClientConfig, Role};
        use tincan_core::outbound::Link;
        OutboundConfig {
            target: "127.0.0.1:1935".to_owned(),
            client: ClientConfig::new("rtmp://127.0.0.1/live", "live", "out", Role::Publish),
            link: Link::None,
            tls: None,
        }
    }

    #[test]
    fn a_dial_the_core_asks_for_rings_the_serving_loop_once_and_is_taken_once() {
        let dialer = Count::default();
        let shared = LockedServer::new(
            ServerConfig::default(),
            Count::default(),
            dialer.clone(),
            Instant::now,
        );
        let id = shared.connect(outbound()).unwrap();
        assert_eq!(dialer.rings(), 1);
        let dials = shared.take_dials();
        assert_eq!(dials.len(), 1);
        assert_eq!(dials[0].0.id, id);
        assert_eq!(dials[0].0.target, "127.0.0.1:1935");
        assert!(shared.take_dials().is_empty());
        // A call that asks for no dial rings nothing.
        accept(&shared);
        assert_eq!(dialer.rings(), 1);
    }

    #[test]
    fn once_serving_ended_a_connect_is_refused_and_nothing_is_left_to_dial() {
        let shared = quiet_server();
        shared.connect(outbound()).unwrap();
        shared.finish();
        assert!(shared.take_dials().is_empty());
        assert_eq!(shared.connect(outbound()), Err(Refusal::ShuttingDown));
        assert_eq!(shared.connections(), vec![]);
    }
}
