//! Drives the tincan sans-IO core over mio readiness events.
//!
//! One thread owns everything: the core [`tincan_core::server::Server`]
//! (every session and the broker) and every socket. Each turn of the loop
//! waits in `epoll`/`kqueue` until a socket is ready, the [`Handle`] wakes
//! it, or the core's next deadline; then it accepts, reads into the core,
//! fires due timers and writes what the core's ready connections owe. There
//! are no locks and no tasks: what the core does is what happens, in order.
//!
//! Interest follows the core: a connection is registered READABLE for its
//! whole life and WRITABLE only while a transmit is partly written, so a
//! quiet server sleeps until something happens.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use tincan_mio::{Server, ServerConfig};
//!
//! let server = Server::bind(&["127.0.0.1:1935".parse().unwrap()], ServerConfig::default())?;
//! let handle = server.handle();
//! // Elsewhere (a signal thread): `handle.shutdown()` to drain gracefully,
//! // `handle.stop()` to close everything now.
//! # drop(handle);
//! server.run() // blocks until drained or stopped
//! # }
//! ```
//!
//! # Events and decisions
//!
//! [`Server::run_with`] calls its callback on the loop's thread with each
//! [`ServerEvent`], in the order they happened, and a [`Turn`] that answers
//! tickets and reads statistics right there. Another thread answers
//! through [`Handle::approve`] / [`Handle::deny`] and reads statistics
//! through the handle's getters; those wake the loop and wait for its next
//! turn to carry them out.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use tincan_mio::core::event::Denial;
//! use tincan_mio::core::server::{Approvals, Decider, ServerEvent};
//! use tincan_mio::{Server, ServerConfig};
//!
//! let config = ServerConfig {
//!     approvals: Approvals { publish: Decider::Embedder, ..Approvals::default() },
//!     ..ServerConfig::default()
//! };
//! let server = Server::bind(&["127.0.0.1:1935".parse().unwrap()], config)?;
//! server.run_with(|turn, event| {
//!     if let ServerEvent::PublishRequest { ticket, request, .. } = event {
//!         let _ = if request.query == "key=secret" {
//!             turn.approve(ticket)
//!         } else {
//!             turn.deny(ticket, Denial::policy("wrong key"))
//!         };
//!     }
//! })
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod event_loop;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Instant;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};
use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Refusal, ServerEvent, Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats};
use tracing::{info, warn};

pub use tincan_core as core;
pub use tincan_core::server::ServerConfig;
pub use tincan_net::DriverConfig;

use crate::event_loop::EventLoop;

/// Tokens at the top of the range; sessions use their id, which counts up
/// from zero and never gets there.
pub(crate) const WAKER: Token = Token(usize::MAX);
pub(crate) const LISTENER_BASE: usize = usize::MAX - 1;

/// What the owner of a [`Handle`] asked for; only ever raised.
pub(crate) const RUNNING: u8 = 0;
pub(crate) const SHUTDOWN: u8 = 1;
pub(crate) const STOP: u8 = 2;

/// Bound listeners and the configuration to serve them with.
#[derive(Debug)]
pub struct Server {
    listeners: Vec<TcpListener>,
    config: ServerConfig,
    driver: DriverConfig,
    poll: Poll,
    control: Arc<Control>,
}

/// The embedder's side of a [`Server`] from other threads: shut it down,
/// answer its requests, read its statistics. Cheap to clone.
///
/// Everything but `shutdown` and `stop` is carried out by the loop: the
/// call wakes it and waits for its next turn (microseconds on a quiet
/// loop, at most one turn on a busy one), so it must not be called on the
/// loop's own thread (inside [`Server::run_with`]'s callback, use the
/// [`Turn`]); it panics there rather than deadlock. Before [`Server::run`]
/// starts, such a call waits for it; once the loop has returned, it finds
/// nothing (`None`, empty, or [`TicketError::Stale`]).
#[derive(Debug, Clone)]
pub struct Handle {
    control: Arc<Control>,
}

/// Work another thread asked the loop to do on the core.
type Request = Box<dyn FnOnce(&mut tincan_core::server::Server, Instant) + Send>;

/// A name lookup a helper thread finished: the connection, its target, and
/// the addresses or why there are none.
pub(crate) type Resolved = (SessionId, String, io::Result<Vec<SocketAddr>>);

#[derive(Default)]
pub(crate) struct Requests {
    queue: Vec<Request>,
    /// Lookups finished since the last turn.
    resolved: Vec<Resolved>,
    /// The loop's thread, once it runs; a request from it would wait on
    /// itself.
    thread: Option<ThreadId>,
    /// Set when the loop returned: nothing will carry a request out.
    finished: bool,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("queued", &self.queue.len())
            .field("resolved", &self.resolved.len())
            .field("finished", &self.finished)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) state: AtomicU8,
    waker: Waker,
    requests: Mutex<Requests>,
}

impl Control {
    fn requests(&self) -> MutexGuard<'_, Requests> {
        // A panic in a request must not stop every later one.
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the loop as running on this thread.
    pub(crate) fn start(&self) {
        self.requests().thread = Some(std::thread::current().id());
    }

    /// What other threads asked for since the last turn.
    pub(crate) fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.requests().queue)
    }

    /// Lookups helper threads finished since the last turn.
    pub(crate) fn take_resolved(&self) -> Vec<Resolved> {
        std::mem::take(&mut self.requests().resolved)
    }

    /// Resolves `target` on a thread of its own, because `getaddrinfo`
    /// blocks (for seconds, with a slow DNS server) and the loop's thread
    /// serves every connection. The result waits for the loop's next turn,
    /// which the waker starts.
    pub(crate) fn resolve(self: &Arc<Self>, id: SessionId, target: String) -> io::Result<()> {
        let control = self.clone();
        std::thread::Builder::new()
            .name("tincan-resolve".to_owned())
            .spawn(move || {
                let addrs = target.to_socket_addrs().map(Iterator::collect);
                let mut requests = control.requests();
                if requests.finished {
                    return; // nothing will dial it any more
                }
                requests.resolved.push((id, target, addrs));
                drop(requests);
                if let Err(e) = control.waker.wake() {
                    warn!(error = %e, "cannot wake the event loop");
                }
            })
            .map(drop)
    }

    /// The loop returned: requests still queued are dropped (their callers
    /// see nothing) and later ones are refused at once.
    pub(crate) fn finish(&self) {
        let mut requests = self.requests();
        requests.finished = true;
        requests.queue.clear();
        requests.resolved.clear();
    }
}

/// The loop between two polls, as [`Server::run_with`]'s callback sees it:
/// answer tickets and read statistics at once, on the loop's thread, with
/// no lock and no wait.
#[derive(Debug)]
pub struct Turn<'a> {
    pub(crate) core: &'a mut tincan_core::server::Server,
    pub(crate) now: Instant,
}

impl Turn<'_> {
    /// Approves the request waiting on `ticket`; see
    /// [`Server::approve`](tincan_core::server::Server::approve). The
    /// connections it makes ready are written in this same turn.
    pub fn approve(&mut self, ticket: Ticket) -> Result<(), TicketError> {
        self.core.approve(self.now, ticket)
    }

    /// Refuses the request waiting on `ticket` with the status and
    /// description `denial` picks; see
    /// [`Server::deny`](tincan_core::server::Server::deny).
    pub fn deny(&mut self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        self.core.deny(self.now, ticket, denial)
    }

    /// Connection `id`'s statistics now, if it is still served.
    pub fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats> {
        self.core.connection_stats(self.now, id)
    }

    /// Every connection's statistics now, by id.
    pub fn connections(&self) -> Vec<(SessionId, ConnectionStats)> {
        connections(self.core, self.now)
    }

    /// Stream `name` of App `app`'s statistics now, if it exists.
    pub fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats> {
        self.core.stream_stats(self.now, app, name)
    }

    /// Every stream's statistics now.
    pub fn streams(&self) -> Vec<StreamStats> {
        self.core.streams_stats(self.now).collect()
    }

    /// Opens an outbound RTMP connection (see
    /// [`Server::connect`](tincan_core::server::Server::connect)), which
    /// the loop dials at the end of this turn and then serves like an
    /// accepted one; see [`Handle::connect`] for how it is dialed. Its
    /// events come to this same callback.
    pub fn connect(&mut self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.core
            .connect(self.now, config, &mut tincan_net::os_entropy)
    }

    /// The core itself, read-only, for anything the getters above leave out.
    pub fn core(&self) -> &tincan_core::server::Server {
        self.core
    }
}

fn connections(
    core: &tincan_core::server::Server,
    now: Instant,
) -> Vec<(SessionId, ConnectionStats)> {
    let mut all: Vec<_> = core
        .connection_ids()
        .filter_map(|id| core.connection_stats(now, id).map(|st| (id, st)))
        .collect();
    all.sort_unstable_by_key(|(id, _)| *id);
    all
}

impl Handle {
    /// Graceful shutdown: new connections are refused, every client is
    /// told `NetConnection.Shutdown.Notify`, and [`Server::run`] returns
    /// once they have all left or [`ServerConfig::shutdown_deadline`]
    /// passed and the rest were closed.
    pub fn shutdown(&self) {
        self.set(SHUTDOWN);
    }

    /// Closes every connection now ("server shutting down"), lets them
    /// flush for [`DriverConfig::stop_flush`], and makes [`Server::run`]
    /// return.
    pub fn stop(&self) {
        self.set(STOP);
    }

    /// Approves the request waiting on `ticket`, at the loop's next turn.
    pub fn approve(&self, ticket: Ticket) -> Result<(), TicketError> {
        self.ask(move |s, now| s.approve(now, ticket))
            .unwrap_or(Err(TicketError::Stale(ticket)))
    }

    /// Refuses the request waiting on `ticket`, at the loop's next turn.
    pub fn deny(&self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        self.ask(move |s, now| s.deny(now, ticket, denial))
            .unwrap_or(Err(TicketError::Stale(ticket)))
    }

    /// Connection `id`'s statistics, as of the loop's next turn.
    pub fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats> {
        self.ask(move |s, now| s.connection_stats(now, id))
            .flatten()
    }

    /// Every connection's statistics, as of the loop's next turn, by id.
    pub fn connections(&self) -> Vec<(SessionId, ConnectionStats)> {
        self.ask(|s, now| connections(s, now)).unwrap_or_default()
    }

    /// Stream `name` of App `app`'s statistics, as of the loop's next turn.
    pub fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats> {
        let (app, name) = (app.to_owned(), name.to_owned());
        self.ask(move |s, now| s.stream_stats(now, &app, &name))
            .flatten()
    }

    /// Every stream's statistics, as of the loop's next turn.
    pub fn streams(&self) -> Vec<StreamStats> {
        self.ask(|s, now| s.streams_stats(now).collect())
            .unwrap_or_default()
    }

    /// Opens an outbound RTMP connection (see
    /// [`Server::connect`](tincan_core::server::Server::connect)) at the
    /// loop's next turn: a relay pushing a local stream to another server
    /// or pulling one from it. It is a connection like an accepted one (an
    /// id, limits, events, statistics with `Transport::RtmpOut`): what the
    /// remote server says reaches [`Server::run_with`]'s callback as
    /// `ServerEvent::Outbound`, and a dial that fails as a `Closed` whose
    /// error is `SessionError::Outbound`.
    ///
    /// The loop never blocks on a dial: an `IP:port` target is connected
    /// at once with a non-blocking `connect`; a host name is resolved on a
    /// short-lived helper thread first (`getaddrinfo` blocks). Either must
    /// connect within [`DriverConfig::dial_timeout`]. Refused
    /// (`Refusal::ShuttingDown`) during a shutdown or once the loop has
    /// returned.
    pub fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.ask(move |s, now| s.connect(now, config, &mut tincan_net::os_entropy))
            .unwrap_or(Err(Refusal::ShuttingDown))
    }

    /// Runs `f` on the core at the loop's next turn and waits for its
    /// result; `None` if the loop has returned.
    ///
    /// # Panics
    ///
    /// On the loop's own thread, where waiting for the loop would never end.
    fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut tincan_core::server::Server, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let mut requests = self.control.requests();
            assert!(
                requests.thread != Some(std::thread::current().id()),
                "tincan_mio::Handle called on the event loop's thread: use the Turn"
            );
            if requests.finished {
                return None;
            }
            requests.queue.push(Box::new(move |s, now| {
                let _ = tx.send(f(s, now));
            }));
        }
        self.wake();
        // The loop drops the request unanswered only when it returns.
        rx.recv().ok()
    }

    fn wake(&self) {
        if let Err(e) = self.control.waker.wake() {
            warn!(error = %e, "cannot wake the event loop");
        }
    }

    fn set(&self, state: u8) {
        // `fetch_max`: a stop is never undone by a later shutdown.
        self.control.state.fetch_max(state, Ordering::SeqCst);
        self.wake();
    }
}

impl Server {
    /// Binds one listener per address, exactly as given (IPv6 addresses
    /// IPv6-only, so `0.0.0.0:1935` and `[::]:1935` can both be served).
    pub fn bind(addrs: &[SocketAddr], config: ServerConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let mut listeners = Vec::with_capacity(addrs.len());
        for (i, addr) in addrs.iter().enumerate() {
            let mut l = TcpListener::from_std(tincan_net::bind(*addr)?);
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE - i), Interest::READABLE)?;
            listeners.push(l);
        }
        let control = Arc::new(Control {
            state: AtomicU8::new(RUNNING),
            waker,
            requests: Mutex::new(Requests::default()),
        });
        Ok(Server {
            listeners,
            config,
            driver: DriverConfig::default(),
            poll,
            control,
        })
    }

    /// Replaces the close-time timings (linger, stop flush), for an
    /// embedder whose peers need other values than the defaults.
    pub fn with_driver_config(mut self, driver: DriverConfig) -> Server {
        self.driver = driver;
        self
    }

    /// The addresses actually bound (a port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// A handle to shut the server down, answer its requests and read its
    /// statistics from other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            control: self.control.clone(),
        }
    }

    /// Serves on this thread until drained after [`Handle::shutdown`], or
    /// after [`Handle::stop`]. Errors only if the poller itself fails.
    ///
    /// Events are drained and dropped, and requests (only asked for when
    /// [`ServerConfig::approvals`] gives decisions to the embedder) are
    /// denied at once: use [`Server::run_with`] to take them.
    pub fn run(self) -> io::Result<()> {
        self.serve(None)
    }

    /// [`Server::run`], calling `on_event` on this thread with every
    /// [`ServerEvent`] in the order they happened, and a [`Turn`] to answer
    /// requests and read statistics at once. Answers may also come later,
    /// from any thread, through a [`Handle`]; a request left unanswered is
    /// denied at [`Approvals::deadline`](tincan_core::server::Approvals).
    ///
    /// The callback runs inside the loop: while it runs, no connection is
    /// served, so it must not block (hand slow work, such as an HTTP
    /// callback, to another thread and answer through a [`Handle`]).
    pub fn run_with(self, mut on_event: impl FnMut(&mut Turn<'_>, ServerEvent)) -> io::Result<()> {
        self.serve(Some(&mut on_event))
    }

    fn serve(self, on_event: event_loop::OnEvent<'_>) -> io::Result<()> {
        for addr in self.local_addrs() {
            info!(%addr, "listening");
        }
        let core = tincan_core::server::Server::new(self.config);
        self.control.start();
        // Even if the loop panics (in the callback, say), threads waiting
        // on a request must not wait forever.
        let _finish = Finish(self.control.clone());
        EventLoop::new(core, self.poll, self.listeners, self.control, self.driver).run(on_event)
    }
}

/// Ends the loop's service to other threads when the loop ends, however.
struct Finish(Arc<Control>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}
