//! Drives the tincan sans-IO core over smol tasks and async-io timers.
//!
//! The adapter is deliberately thin: the whole server (sessions, broker,
//! timers, limits, graceful shutdown) is the core's
//! [`Server`](tincan_core::server::Server), kept behind one short `std`
//! lock that is never held across an await or a write. Each accepted
//! connection gets a task that owns its socket: it hands bytes read to the
//! core, writes the core's transmits with vectored I/O (one pending transmit
//! at a time, so the session's real-time backlog stays the only queue) with
//! the lock released, and sleeps until its socket or its bell (rung when the
//! core names it ready) wakes it. One more task sleeps until the core's next
//! deadline. The tasks run on a [`smol::Executor`] that [`Server::run`]
//! owns and drives, so whoever awaits `run` decides the thread.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let addr = "127.0.0.1:1935".parse().unwrap();
//! let server = tincan_smol::Server::bind(&[addr], Default::default())?;
//! let handle = server.handle();
//! // Elsewhere (a signal thread): `handle.shutdown()` to drain gracefully,
//! // `handle.stop()` to close everything now.
//! # drop(handle);
//! smol::block_on(server.run())
//! # }
//! ```
//!
//! The [`Handle`] is also the embedder's way in: [`Handle::events`] streams
//! the core's [`ServerEvent`](tincan_core::server::ServerEvent)s (bounded,
//! in order, never holding up a connection), [`Handle::approve`] and
//! [`Handle::deny`] answer the requests [`ServerConfig::approvals`] gives
//! to the embedder, the statistics getters read connections and streams,
//! and [`Handle::connect`] opens an outbound connection (a relay's push or
//! pull), which the server dials and then serves like an accepted one.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use tincan_smol::core::server::ServerEvent;
//!
//! let server = tincan_smol::Server::bind(&["127.0.0.1:1935".parse().unwrap()], Default::default())?;
//! let mut events = server.events(); // before run(): nothing is missed
//! let log = async move {
//!     while let Some(event) = events.next().await {
//!         if let ServerEvent::Connected { id, info } = event {
//!             println!("{id} connected to {}", info.app);
//!         }
//!     }
//! };
//! // The event stream ends once `run` has returned.
//! smol::block_on(smol::future::zip(server.run(), log)).0
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod connection;
mod events;
mod shared;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use smol::future::{self, FutureExt};
use smol::{Async, Executor, Task, Timer};
use tracing::{info, warn, Instrument};

pub use tincan_core as core;
pub use tincan_core::server::ServerConfig;
pub use tincan_net::{DriverConfig, DEFAULT_EVENT_CAPACITY};

pub use crate::events::Events;

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Grant, Refusal, Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats, Totals};

use crate::shared::{bell, Bell, Shared, Waiter};
use tincan_net::Bell as _;

const RUN: u8 = 0;
const SHUTDOWN: u8 = 1;
const STOP: u8 = 2;

/// Bound listeners and the core that will serve them.
#[derive(Debug)]
pub struct Server {
    listeners: Vec<Async<TcpListener>>,
    /// Created at bind time, not in [`Server::run`], so a [`Handle`] can
    /// subscribe to events, answer tickets and read statistics before and
    /// while the server runs.
    shared: Arc<Shared>,
    timer_waiter: Waiter,
    driver: DriverConfig,
    control: Arc<Control>,
    waiter: Waiter,
}

/// The embedder's side of a [`Server`], from any thread or task: stop it,
/// take its events, answer its requests, read its statistics. Cheap to
/// clone; every clone reaches the same server. This is what an HTTP API,
/// metrics or an auth hook are built on.
#[derive(Debug, Clone)]
pub struct Handle {
    control: Arc<Control>,
    shared: Arc<Shared>,
}

/// What the owner of a [`Handle`] asked for, and the bell that tells the
/// accept loop to look (at that, and at dials the core asked for).
#[derive(Debug)]
struct Control {
    state: AtomicU8,
    bell: Bell,
}

impl Handle {
    /// Graceful shutdown (TC semantics): new connections are refused,
    /// connected clients are told `NetConnection.Shutdown.Notify`, and
    /// [`Server::run`] returns once they have all gone, or closes the rest
    /// at [`ServerConfig::shutdown_deadline`].
    pub fn shutdown(&self) {
        self.set(SHUTDOWN);
    }

    /// Stops at once: every session is closed, gets
    /// [`DriverConfig::stop_flush`] to flush its goodbye, then
    /// [`Server::run`] returns.
    pub fn stop(&self) {
        self.set(STOP);
    }

    /// Opens an outbound RTMP connection (see
    /// [`Server::connect`](tincan_core::server::Server::connect)): a relay
    /// pushing a local stream to another server or pulling one from it.
    /// It is a connection like an accepted one (an id, limits, events,
    /// statistics with `Transport::RtmpOut`), so the embedder follows it
    /// through the same [`Handle::events`]: what the remote server says
    /// arrives as `ServerEvent::Outbound`, and a dial that fails as a
    /// `Closed` whose error is `SessionError::Outbound`.
    ///
    /// The serving loop dials it on a task of its own: the target is
    /// resolved on smol's blocking pool and connected within
    /// [`DriverConfig::dial_timeout`]. Asked before [`Server::run`], it is
    /// dialed once `run` starts; refused (`Refusal::ShuttingDown`) during a
    /// shutdown or once `run` has returned.
    pub fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.shared.connect(config)
    }

    /// The server's [`ServerEvent`](tincan_core::server::ServerEvent)s from
    /// now on, in the order they happened, through a channel of
    /// [`DEFAULT_EVENT_CAPACITY`] events. One subscriber at a time: a new
    /// call ends the previous stream. Subscribe before [`Server::run`] to
    /// miss nothing; without a subscriber, events cost nothing and requests
    /// are denied at once.
    ///
    /// Connection tasks never wait for the subscriber: if it falls behind
    /// and the channel fills, reports are dropped (counted by
    /// [`Handle::events_dropped`], one warning per burst) and requests are
    /// denied at once with "server busy".
    pub fn events(&self) -> Events {
        self.events_with_capacity(DEFAULT_EVENT_CAPACITY)
    }

    /// [`Handle::events`] with a channel of `capacity` events (at least
    /// one), for an embedder whose bursts or pauses differ from the
    /// default's.
    pub fn events_with_capacity(&self, capacity: usize) -> Events {
        let (events, sink) = events::channel(capacity);
        self.shared.subscribe(Box::new(sink));
        events
    }

    /// Reports the subscriber never got because it was behind.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events_dropped()
    }

    /// Approves the request waiting on `ticket` (from a
    /// `ConnectRequest`, `PublishRequest` or `PlayRequest` event); see
    /// [`Server::approve`](tincan_core::server::Server::approve). An
    /// approved publish or play may still be refused by the broker.
    pub fn approve(&self, ticket: Ticket) -> Result<(), TicketError> {
        self.shared.approve(ticket)
    }

    /// Refuses the request waiting on `ticket`: the client gets the
    /// status `denial` picks, with its description; see
    /// [`Server::deny`](tincan_core::server::Server::deny).
    pub fn deny(&self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        self.shared.deny(ticket, denial)
    }

    /// Approves as [`Handle::approve`], with what the decider grants (a
    /// token's publish priority, an App's real-time treatment for a play).
    pub fn approve_with(&self, ticket: Ticket, grant: Grant) -> Result<(), TicketError> {
        self.shared.approve_with(ticket, grant)
    }

    /// A reloaded configuration: connections accepted from now on get it,
    /// limits and broker settings apply from the next request, nobody
    /// connected is dropped (listen addresses are the binary's to rebind).
    pub fn set_config(&self, config: ServerConfig) {
        self.shared.set_config(config);
    }

    /// Ends the live publish of stream `name` of App `app` (an operator's
    /// API call, a control command): the publisher is told
    /// `NetStream.Publish.Denied` with `description` and keeps its
    /// connection; players get the usual statuses after the republish
    /// grace. The publisher's id, if the stream was live.
    pub fn end_publish(&self, app: &str, name: &str, description: &str) -> Option<SessionId> {
        self.shared.end_publish(app, name, description)
    }

    /// Server-wide counters since start, for metrics (they only go up).
    pub fn totals(&self) -> Totals {
        self.shared.totals()
    }

    /// Connection `id`'s statistics now, if it is still served.
    pub fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats> {
        self.shared.connection_stats(id)
    }

    /// Every connection's statistics now, by id.
    pub fn connections(&self) -> Vec<(SessionId, ConnectionStats)> {
        self.shared.connections()
    }

    /// Stream `name` of App `app`'s statistics now, if it exists.
    pub fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats> {
        self.shared.stream_stats(app, name)
    }

    /// Every stream's statistics now.
    pub fn streams(&self) -> Vec<StreamStats> {
        self.shared.streams()
    }

    fn set(&self, state: u8) {
        // `fetch_max`: a stop is never undone by a later shutdown.
        self.control.state.fetch_max(state, Ordering::SeqCst);
        self.control.bell.ring();
    }
}

impl Server {
    /// Binds one listener per address, exactly as given. An IPv6 address is
    /// bound IPv6-only, so `0.0.0.0:1935` and `[::]:1935` can both be
    /// listened on without colliding.
    pub fn bind(addrs: &[SocketAddr], config: ServerConfig) -> io::Result<Server> {
        let listeners = addrs
            .iter()
            .map(|addr| Async::new(tincan_net::bind(*addr)?))
            .collect::<io::Result<_>>()?;
        let (bell, waiter) = bell();
        let (shared, timer_waiter) = shared::new(config, bell.clone());
        Ok(Server {
            listeners,
            shared,
            timer_waiter,
            driver: DriverConfig::default(),
            control: Arc::new(Control {
                state: AtomicU8::new(RUN),
                bell,
            }),
            waiter,
        })
    }

    /// Replaces the close-time timings (linger, stop flush), for an
    /// embedder whose peers need other values than the defaults.
    pub fn with_driver_config(mut self, driver: DriverConfig) -> Server {
        self.driver = driver;
        self
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.get_ref().local_addr().ok())
            .collect()
    }

    /// A handle to the server: shut it down, take its events, answer its
    /// requests, read its statistics.
    pub fn handle(&self) -> Handle {
        Handle {
            control: self.control.clone(),
            shared: self.shared.clone(),
        }
    }

    /// The server's events; [`Handle::events`] on this server's handle.
    pub fn events(&self) -> Events {
        self.handle().events()
    }

    /// Serves RTMP until a [`Handle`] shuts it down or stops it.
    ///
    /// Connections run on an executor this future owns and drives, so they
    /// run on whichever thread polls it (`smol::block_on(server.run())`).
    pub async fn run(self) -> io::Result<()> {
        let ex = Executor::new();
        ex.run(self.serve(&ex)).await
    }

    async fn serve(self, ex: &Executor<'_>) -> io::Result<()> {
        for addr in self.local_addrs() {
            info!(%addr, "listening");
        }
        let shared = self.shared;
        let timer = ex.spawn(shared::run_timer(shared.clone(), self.timer_waiter));
        let mut listeners = self.listeners;
        let mut conns: Vec<Task<()>> = Vec::new();
        let stopping = loop {
            // Dialed here, not where they were asked for: the loop owns the
            // connections' tasks (a stop waits for them, then drops them).
            // The core's call that asked rang this loop's bell.
            for (dial, span) in shared.take_dials() {
                conns.retain(|c| !c.is_finished());
                let conn = connection::dial(shared.clone(), dial, self.driver).instrument(span);
                conns.push(ex.spawn(conn));
            }
            let state = self.control.state.load(Ordering::SeqCst);
            if state == STOP {
                break true;
            }
            if state == SHUTDOWN && !listeners.is_empty() {
                // Graceful: closing the listeners makes the kernel refuse
                // new connections outright.
                listeners.clear();
                shared.with(|s, now| s.shutdown(now));
            }
            if listeners.is_empty() {
                // Shutting down: wait for every connection, or a stop.
                let all_gone = async {
                    while let Some(conn) = conns.last_mut() {
                        conn.await;
                        conns.pop();
                    }
                    false
                };
                let stopped = async {
                    self.waiter.wait().await;
                    true
                };
                if all_gone.or(stopped).await {
                    continue; // look at the state again
                }
                break false;
            }
            let accepted = async { Some(accept_any(&listeners).await) };
            let rung = async {
                self.waiter.wait().await;
                None
            };
            match accepted.or(rung).await {
                Some(Ok((stream, peer))) => {
                    // Reap finished connections so the list does not grow
                    // with the number ever served.
                    conns.retain(|c| !c.is_finished());
                    if let Some(task) = accept(ex, &shared, self.driver, stream, peer) {
                        conns.push(task);
                    }
                }
                Some(Err(e)) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning; it clears as connections close.
                    warn!(error = %e, "accept failed");
                    Timer::after(Duration::from_millis(100)).await;
                }
                None => {}
            }
        };
        if stopping {
            drop(listeners);
            info!(connections = conns.len(), "stopping");
            shared.with(|s, now| s.close_all(now, "server shutting down"));
            let flushed = async {
                for conn in &mut conns {
                    conn.await;
                }
                true
            };
            let late = async {
                Timer::after(self.driver.stop_flush).await;
                false
            };
            if !flushed.or(late).await {
                warn!(
                    connections = conns.iter().filter(|c| !c.is_finished()).count(),
                    "connections still flushing at the deadline; dropping them"
                );
            }
        }
        drop(conns); // cancels whatever is left
        drop(timer);
        // Connections dropped at the flush deadline still get their
        // `Closed`, then the event stream ends.
        shared.finish();
        info!("stopped");
        Ok(())
    }
}

/// Gives an accepted socket to the core and spawns its task, or closes it
/// if the core refuses it.
fn accept(
    ex: &Executor<'_>,
    shared: &Arc<Shared>,
    driver: DriverConfig,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<Task<()>> {
    let accepted = shared.with(|s, now| {
        // The wall clock for token time bounds, fresh for every accept.
        s.handle_unix_time(now, tincan_net::unix_now());
        s.accept(now, Some(peer), &mut tincan_net::os_entropy)
            .map(|id| (id, s.span(id)))
    });
    let (id, span) = match accepted {
        Ok(accepted) => accepted,
        Err(refusal) => {
            warn!(%peer, %refusal, "connection refused");
            return None;
        }
    };
    let span = span.unwrap_or_else(tracing::Span::none);
    match Async::new(stream) {
        Ok(stream) => {
            let conn = connection::run(shared.clone(), id, stream, driver).instrument(span);
            Some(ex.spawn(conn))
        }
        Err(e) => {
            span.in_scope(|| warn!(error = %e, "cannot register a connection"));
            let _ = shared.with(|s, now| s.remove(now, id));
            None
        }
    }
}

/// The next connection from whichever listener has one.
///
/// Readiness first, `accept` second: this future is polled whenever any
/// task on the executor wakes, and a syscall per poll would cost more than
/// serving the connections.
async fn accept_any(listeners: &[Async<TcpListener>]) -> io::Result<(TcpStream, SocketAddr)> {
    future::poll_fn(|cx| {
        for l in listeners {
            loop {
                match l.poll_readable(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
                match l.get_ref().accept() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {} // re-arm
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    accepted => return Poll::Ready(accepted),
                }
            }
        }
        Poll::Pending
    })
    .await
}
