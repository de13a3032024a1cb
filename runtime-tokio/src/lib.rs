//! Drives the tincan sans-IO core over tokio sockets. The reference server
//! binary `tincan` is built on it in `server/` (crate `tincan-server`).
//!
//! The adapter is deliberately thin: the whole server (sessions, broker,
//! timers, limits, graceful shutdown) is the core's
//! [`Server`](tincan_core::server::Server), kept behind one short lock. Each
//! accepted connection gets a task that owns its socket: it hands bytes read
//! to the core, writes the core's transmits with vectored I/O (one pending
//! transmit at a time, so the session's real-time backlog stays the only
//! queue) with the lock released, and sleeps until its socket or its bell
//! (rung when the core names it ready) wakes it. One more task sleeps until
//! the core's next deadline.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let addr = "127.0.0.1:1935".parse().unwrap();
//! let server = tincan_tokio::Server::bind(&[addr], Default::default()).await?;
//! let handle = server.handle();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     handle.shutdown(); // graceful: NetConnection.Shutdown.Notify to all
//! });
//! server.run().await
//! # }
//! ```
//!
//! The [`Handle`] is also the embedder's way in: [`Handle::events`] streams
//! the core's [`ServerEvent`](tincan_core::server::ServerEvent)s (bounded,
//! in order, never holding up a connection), [`Handle::approve`] and
//! [`Handle::deny`] answer the requests
//! [`ServerConfig::approvals`] gives to the embedder, the statistics
//! getters read connections and streams, and [`Handle::connect`] opens an
//! outbound connection (a relay's push or pull), which the server dials and
//! then serves like an accepted one; docs/embedding.md has a worked
//! example.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod connection;
mod events;
mod shared;
#[cfg(feature = "tls")]
mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

pub use tincan_core as core;
pub use tincan_core::server::ServerConfig;
pub use tincan_net::{DriverConfig, DEFAULT_EVENT_CAPACITY};

pub use crate::events::Events;
#[cfg(feature = "tls")]
pub use crate::tls::TLS_BUFFER;
/// The TLS crates RTMPS listeners take their acceptor from
/// ([`Server::listen_tls`]), re-exported so an embedder builds it with the
/// very versions this crate uses.
#[cfg(feature = "tls")]
pub use tokio_rustls::{self, rustls};

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Grant, Refusal, Ticket, TicketError, Transport};
use tincan_core::stats::{ConnectionStats, StreamStats, Totals};

use crate::shared::{Shared, TokioBell};

/// docs/embedding.md, whose tokio example is compiled as this crate's doc
/// test so the guide cannot drift from the API (its other code blocks are
/// `ignore` or not Rust).
#[cfg(doctest)]
#[doc = include_str!("../../docs/embedding.md")]
struct EmbeddingGuide;

/// What the owner of a [`Handle`] asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Shutdown,
    Stop,
}

/// One bound listener: plain RTMP, or RTMPS with its TLS acceptor.
struct Listener {
    tcp: TcpListener,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.tcp.local_addr().ok())
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl Listener {
    fn plain(tcp: TcpListener) -> Listener {
        Listener {
            tcp,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }
}

/// Bound listeners and the core that will serve them.
#[derive(Debug)]
pub struct Server {
    listeners: Vec<Listener>,
    /// Created at bind time, not in [`Server::run`], so a [`Handle`] can
    /// subscribe to events, answer tickets and read statistics before and
    /// while the server runs.
    shared: Arc<Shared>,
    timer_bell: TokioBell,
    /// Rung when the core asks for a dial.
    dial_bell: TokioBell,
    driver: DriverConfig,
    control: Arc<watch::Sender<Control>>,
    /// Dials outbound connections that ask for TLS (RTMPS relays).
    #[cfg(feature = "tls")]
    tls_connector: Option<TlsDialer>,
}

/// The connector of RTMPS dials; rustls' connector has no `Debug`.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct TlsDialer(tokio_rustls::TlsConnector);

#[cfg(feature = "tls")]
impl std::fmt::Debug for TlsDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

/// The embedder's side of a [`Server`], from any thread or task: stop it,
/// take its events, answer its requests, read its statistics. Cheap to
/// clone; every clone reaches the same server. This is what an HTTP API,
/// metrics or an auth hook are built on.
#[derive(Debug, Clone)]
pub struct Handle {
    control: Arc<watch::Sender<Control>>,
    shared: Arc<Shared>,
}

impl Handle {
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

    /// Closes connection `id` from the server's side, as an operator's
    /// "kick": a connected client is told `NetConnection.Connect.Closed`
    /// with `reason`, its publishes and plays end as on any close (players
    /// get the usual statuses after the republish grace), and its task
    /// flushes and drops the socket. False if no such connection is served.
    pub fn close_connection(&self, id: SessionId, reason: &str) -> bool {
        self.shared.close(id, reason)
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
    /// resolved on tokio's blocking pool and connected within
    /// [`DriverConfig::dial_timeout`]. Asked before [`Server::run`], it is
    /// dialed once `run` starts; refused (`Refusal::ShuttingDown`) during a
    /// shutdown or once `run` has returned.
    pub fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.shared.connect(config)
    }

    /// Graceful shutdown (TC semantics): new connections are refused,
    /// connected clients are told `NetConnection.Shutdown.Notify`, and
    /// [`Server::run`] returns once they have all gone, or closes the rest
    /// at [`ServerConfig::shutdown_deadline`].
    pub fn shutdown(&self) {
        self.control.send_if_modified(|c| {
            let changed = *c == Control::Run;
            if changed {
                *c = Control::Shutdown;
            }
            changed
        });
    }

    /// Stops at once: every session is closed, gets
    /// [`DriverConfig::stop_flush`] to flush its goodbye, then
    /// [`Server::run`] returns.
    pub fn stop(&self) {
        self.control.send_replace(Control::Stop);
    }
}

impl Server {
    /// Binds one listener per address, exactly as given. An IPv6 address is
    /// bound IPv6-only, so `0.0.0.0:1935` and `[::]:1935` can both be
    /// listened on without colliding. Must be called inside a tokio runtime.
    pub async fn bind(addrs: &[SocketAddr], config: ServerConfig) -> io::Result<Server> {
        let listeners = addrs
            .iter()
            .map(|addr| bind_one(*addr).map(Listener::plain))
            .collect::<io::Result<_>>()?;
        let (shared, timer_bell, dial_bell) = shared::new(config);
        Ok(Server {
            listeners,
            shared,
            timer_bell,
            dial_bell,
            driver: DriverConfig::default(),
            control: Arc::new(watch::channel(Control::Run).0),
            #[cfg(feature = "tls")]
            tls_connector: None,
        })
    }

    /// Replaces the close-time timings (linger, stop flush), for an
    /// embedder whose peers need other values than the defaults.
    pub fn with_driver_config(mut self, driver: DriverConfig) -> Server {
        self.driver = driver;
        self
    }

    /// Adds one RTMPS listener per address (bound as [`Server::bind`]
    /// binds), whose connections run the TLS handshake with `acceptor` and
    /// are then served exactly like plain ones. A TLS connection is
    /// accepted by the core before its TLS handshake starts, so it counts
    /// against the connection limits from its first byte, and the core's
    /// handshake deadline (which starts at accept) bounds the TLS
    /// handshake too: a client that stalls in it is dropped like one that
    /// stalls in the RTMP handshake.
    ///
    /// The acceptor's `ServerConfig` is used as given: for a certificate
    /// that changes while the server runs, give it a
    /// [`ResolvesServerCert`](rustls::server::ResolvesServerCert) that
    /// swaps its certificate (the `tincan` binary's reloads its files on
    /// `SIGHUP` and when they change). Must be called inside a tokio
    /// runtime.
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        mut self,
        addrs: &[SocketAddr],
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> io::Result<Server> {
        for addr in addrs {
            self.listeners.push(Listener {
                tcp: bind_one(*addr)?,
                tls: Some(acceptor.clone()),
            });
        }
        Ok(self)
    }

    /// Outbound connections that ask for TLS
    /// ([`OutboundConfig::tls`]: relays to `rtmps://`) run their TLS
    /// handshake with `connector`, which decides which certificates are
    /// trusted. Without one such a dial fails: an RTMPS relay never goes
    /// out in the clear.
    #[cfg(feature = "tls")]
    pub fn dial_tls_with(mut self, connector: tokio_rustls::TlsConnector) -> Server {
        self.tls_connector = Some(TlsDialer(connector));
        self
    }

    /// The addresses actually bound for plain RTMP (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| !l.is_tls())
            .filter_map(|l| l.tcp.local_addr().ok())
            .collect()
    }

    /// The addresses actually bound for RTMPS ([`Server::listen_tls`]).
    #[cfg(feature = "tls")]
    pub fn tls_local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.is_tls())
            .filter_map(|l| l.tcp.local_addr().ok())
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
    /// Connections are spawned onto the current runtime and run in parallel
    /// on a multi-threaded one.
    pub async fn run(self) -> io::Result<()> {
        for l in &self.listeners {
            if let Ok(addr) = l.tcp.local_addr() {
                if l.is_tls() {
                    info!(%addr, "listening for RTMPS");
                } else {
                    info!(%addr, "listening");
                }
            }
        }
        let shared = self.shared;
        let timer = tokio::spawn(shared::run_timer(shared.clone(), self.timer_bell));
        let mut control = self.control.subscribe();
        let mut listeners = self.listeners;
        let mut conns = JoinSet::new();
        let mut stopping = false;
        let mut draining = false;
        loop {
            // Dialed here, not where they were asked for: the loop owns the
            // connections' tasks (a stop waits for them, then drops them),
            // and a `Handle` may ask from outside any runtime.
            for (dial, span) in shared.take_dials() {
                #[cfg(feature = "tls")]
                if let (Some(name), Some(connector)) = (&dial.tls, &self.tls_connector) {
                    let name = name.clone();
                    let connector = connector.0.clone();
                    let tls = tls::dial(shared.clone(), dial, name, connector, self.driver);
                    conns.spawn(tls.instrument(span));
                    continue;
                }
                conns.spawn(connection::dial(shared.clone(), dial, self.driver).instrument(span));
            }
            // Read the state itself, not only its changes: a shutdown asked
            // for before `run` started is already "seen" by a new receiver.
            match *control.borrow_and_update() {
                Control::Stop => {
                    stopping = true;
                    break;
                }
                Control::Shutdown if !draining => {
                    draining = true;
                    // Closing the listeners makes the kernel refuse new
                    // connections outright.
                    listeners.clear();
                    shared.with(|s, now| s.shutdown(now));
                }
                _ => {}
            }
            if draining && conns.is_empty() {
                break;
            }
            tokio::select! {
                accepted = accept_any(&listeners) => match accepted {
                    Ok((stream, peer, listener)) => accept(
                        &shared,
                        self.driver,
                        &mut conns,
                        stream,
                        peer,
                        &listeners[listener],
                    ),
                    Err(e) => {
                        // Usually out of file descriptors: back off instead
                        // of spinning; it clears as connections close.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // The sender lives in `self` as long as this loop runs.
                _ = control.changed() => {}
                // A `Notify` keeps a ring from before this wait.
                () = self.dial_bell.0.notified() => {}
                // Reap finished connections so the set does not grow with
                // the number ever served.
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        if stopping {
            drop(listeners);
            info!(connections = conns.len(), "stopping");
            shared.with(|s, now| s.close_all(now, "server shutting down"));
            let flushed = tokio::time::timeout(self.driver.stop_flush, async {
                while conns.join_next().await.is_some() {}
            })
            .await;
            if flushed.is_err() {
                warn!(
                    connections = conns.len(),
                    "connections still flushing at the deadline; dropping them"
                );
                conns.shutdown().await;
            }
        }
        timer.abort();
        // Connections dropped at the flush deadline still get their
        // `Closed`, then the event stream ends.
        shared.finish();
        info!("stopped");
        Ok(())
    }
}

fn accept(
    shared: &Arc<Shared>,
    driver: DriverConfig,
    conns: &mut JoinSet<()>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
) {
    let accepted = shared.with(|s, now| {
        // The wall clock for token time bounds, fresh for every accept.
        s.handle_unix_time(now, tincan_net::unix_now());
        let transport = if listener.is_tls() {
            Transport::Rtmps
        } else {
            Transport::Rtmp
        };
        s.accept_as(now, Some(peer), transport, &mut tincan_net::os_entropy)
            .map(|id| (id, s.span(id)))
    });
    match accepted {
        Ok((id, span)) => {
            let span = span.unwrap_or_else(tracing::Span::none);
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &listener.tls {
                let tls = tls::run(shared.clone(), id, stream, acceptor.clone(), driver);
                conns.spawn(tls.instrument(span));
                return;
            }
            conns.spawn(connection::run(shared.clone(), id, stream, driver).instrument(span));
        }
        Err(refusal) => warn!(%peer, %refusal, tls = listener.is_tls(), "connection refused"),
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::from_std(tincan_net::bind(addr)?)
}

/// The next connection from whichever listener has one, and that
/// listener's index.
async fn accept_any(listeners: &[Listener]) -> io::Result<(TcpStream, SocketAddr, usize)> {
    if listeners.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for (i, l) in listeners.iter().enumerate() {
            if let Poll::Ready(r) = l.tcp.poll_accept(cx) {
                return Poll::Ready(r.map(|(stream, peer)| (stream, peer, i)));
            }
        }
        Poll::Pending
    })
    .await
}
