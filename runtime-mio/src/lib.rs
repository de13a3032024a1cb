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

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod event_loop;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};
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

/// Asks a running [`Server`] to shut down, from any thread.
#[derive(Debug, Clone)]
pub struct Handle {
    control: Arc<Control>,
}

#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) state: AtomicU8,
    waker: Waker,
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

    fn set(&self, state: u8) {
        // `fetch_max`: a stop is never undone by a later shutdown.
        self.control.state.fetch_max(state, Ordering::SeqCst);
        if let Err(e) = self.control.waker.wake() {
            warn!(error = %e, "cannot wake the event loop");
        }
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

    /// A handle to shut the server down from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            control: self.control.clone(),
        }
    }

    /// Serves on this thread until drained after [`Handle::shutdown`], or
    /// after [`Handle::stop`]. Errors only if the poller itself fails.
    pub fn run(self) -> io::Result<()> {
        for addr in self.local_addrs() {
            info!(%addr, "listening");
        }
        let core = tincan_core::server::Server::new(self.config);
        EventLoop::new(core, self.poll, self.listeners, self.control, self.driver).run()
    }
}
