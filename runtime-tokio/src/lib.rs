//! Drives the tincan sans-IO core over tokio sockets; the reference server
//! binary `tincan` lives here.
//!
//! The runtime is deliberately thin. Each accepted connection gets one task
//! that owns its socket and a [`Session`](tincan_core::session::Session): it
//! reads bytes into the session, writes the session's transmits with
//! vectored I/O (one pending transmit at a time, so the session's real-time
//! backlog stays the only queue), and arms the session's one timer. The
//! server-wide [`Broker`](tincan_core::broker::Broker) sits behind a short
//! lock shared by every task; a small task drives its republish-grace timer.
//!
//! Lock discipline: the broker lock is always taken before a session lock,
//! never the reverse. Broker output is handed to its sessions while the
//! broker lock is held, so every session sees events in the broker's order;
//! a connection task releases its own session before it takes the broker
//! lock, and the woken tasks run once it is released.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listeners = tincan_tokio::bind(&["127.0.0.1:1935".parse().unwrap()]).await?;
//! tincan_tokio::serve(listeners, tincan_tokio::ServerConfig::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod connection;
mod hub;

use std::future::Future;
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
use tincan_core::broker::BrokerConfig;
use tincan_core::session::SessionConfig;

use crate::hub::Shared;

/// Everything the server needs to know besides its listeners.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Knobs given to every new connection's session.
    pub session: SessionConfig,
    /// Knobs of the server-wide broker.
    pub broker: BrokerConfig,
    /// How long sessions get to flush their goodbye after shutdown starts
    /// before the remaining connections are dropped. `None` uses
    /// [`DEFAULT_SHUTDOWN_FLUSH`].
    pub shutdown_flush: Option<Duration>,
}

/// How long closing sessions may flush on shutdown by default: long enough
/// for a status message to reach a healthy peer, short enough that a stuck
/// peer cannot hold the process.
pub const DEFAULT_SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// Binds one listener per address, exactly as given. An IPv6 address is
/// bound IPv6-only, so `0.0.0.0:1935` and `[::]:1935` can both be listened
/// on without colliding.
pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    addrs.iter().map(|addr| bind_one(*addr)).collect()
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A restarted server must not wait out TIME_WAIT connections of the old one.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Serves RTMP on `listeners` until `shutdown` completes, then stops
/// accepting, asks every session to close ("server shutting down"), gives
/// them up to [`ServerConfig::shutdown_flush`] to flush and returns.
///
/// Must run inside a tokio runtime with I/O and time enabled; connections
/// are spawned onto it and run in parallel on a multi-threaded runtime.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    for l in &listeners {
        info!(addr = %l.local_addr()?, "listening");
    }
    let flush = config.shutdown_flush.unwrap_or(DEFAULT_SHUTDOWN_FLUSH);
    let shared = Arc::new(Shared::new(config));
    let (stop_tx, stop_rx) = watch::channel(false);
    let timer = tokio::spawn(hub::run_broker_timer(shared.clone(), stop_rx.clone()));
    let mut conns = JoinSet::new();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accept_any(&listeners) => match accepted {
                Ok((stream, peer)) => {
                    spawn_connection(&mut conns, &shared, stream, peer, stop_rx.clone());
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, the condition clears as connections close.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow with the
            // number of connections ever served.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }

    info!(connections = conns.len(), "shutting down");
    drop(listeners);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(flush, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            connections = conns.len(),
            "connections still flushing at the deadline; dropping them"
        );
        conns.shutdown().await;
    }
    timer.abort();
    Ok(())
}

fn spawn_connection(
    conns: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let (id, slot) = shared.open_session();
    let span = tracing::info_span!("conn", id = %id, peer = %peer);
    conns.spawn(connection::run(shared.clone(), id, slot, stream, stop).instrument(span));
}

/// The next connection from whichever listener has one.
async fn accept_any(listeners: &[TcpListener]) -> io::Result<(TcpStream, SocketAddr)> {
    if listeners.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for l in listeners {
            if let Poll::Ready(r) = l.poll_accept(cx) {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    })
    .await
}
