//! One conformance suite for every runtime.
//!
//! The suite is written once against [`Runtime`]: start a server on an
//! ephemeral loopback port with a given [`ServerConfig`], then shut it down
//! gracefully or stop it. [`conformance_suite!`](crate::conformance_suite)
//! expands to one `#[test]` per case in [`cases`]; each runtime's test file
//! (`tests/tests/conformance_<runtime>.rs`) implements the trait in a few
//! lines and invokes the macro, so tokio, mio and smol are held to exactly
//! the same behaviour: real clients (FFmpeg, rtmpdump, GStreamer) publishing
//! and playing, several streams at once, play before publish, republish, fast
//! start, a reader that stops reading, clients that vanish in every phase,
//! and graceful shutdown.
//!
//! Every server runs on a thread of its own, so the test thread is free to
//! drive clients and the three suites can run side by side: ports are
//! ephemeral and temporary files live in per-test directories.

pub mod cases;
pub mod media;
pub mod rtmp;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use tincan_core::server::ServerConfig;

/// The loopback address with port 0: every server in the suite binds it so
/// the kernel picks a free port, and parallel suites never collide.
pub const EPHEMERAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// How long a runtime may take to bind before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long dropping a [`Running`] waits for a stopped server to return.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A runtime under test: it starts a tincan server and hands back control
/// of it.
pub trait Runtime {
    /// The runtime's name, for thread names and failure messages.
    const NAME: &'static str;

    /// Starts a server bound to [`EPHEMERAL`] with `config` on a thread of
    /// its own (see [`Running::spawn`]) and returns once it accepts
    /// connections.
    fn start(config: ServerConfig) -> Running;
}

/// What the suite can ask of a running server, whatever its runtime; the
/// runtime's own handle implements it.
pub trait Control: Send + Sync {
    /// Graceful shutdown: refuse new connections, tell every client
    /// `NetConnection.Shutdown.Notify`, return once they are gone or at the
    /// configured deadline.
    fn shutdown(&self);
    /// Close everything now and return.
    fn stop(&self);
}

/// Handed to a runtime's serving closure: call [`Ready::ready`] once the
/// listener is bound, before running the server.
#[derive(Debug)]
pub struct Ready {
    tx: mpsc::Sender<(SocketAddr, Box<dyn Control>)>,
}

impl std::fmt::Debug for dyn Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Ready {
    /// The server listens on `addr` and is controlled through `control`.
    pub fn ready(self, addr: SocketAddr, control: impl Control + 'static) {
        // The receiver is gone only if the test already gave up on us.
        let _ = self.tx.send((addr, Box::new(control)));
    }
}

/// A server running on its own thread; dropping it stops the server.
#[derive(Debug)]
pub struct Running {
    name: &'static str,
    addr: SocketAddr,
    control: Box<dyn Control>,
    done: mpsc::Receiver<io::Result<()>>,
    /// What `run` returned, once it did.
    result: Option<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Runs `serve` on a new thread named after the runtime. `serve` binds,
    /// calls [`Ready::ready`] with the bound address and a [`Control`], and
    /// then runs the server until it returns. Panics (failing the test) if
    /// the server does not become ready.
    pub fn spawn<F>(name: &'static str, serve: F) -> Running
    where
        F: FnOnce(Ready) -> io::Result<()> + Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("tincan-{name}"))
            .spawn(move || {
                let result = serve(Ready { tx: ready_tx });
                let _ = done_tx.send(result);
            })
            .expect("spawn the server thread");
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok((addr, control)) => Running {
                name,
                addr,
                control,
                done: done_rx,
                result: None,
                thread: Some(thread),
            },
            Err(_) => {
                let why = match done_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Err(e)) => format!("it failed: {e}"),
                    Ok(Ok(())) => "it returned without becoming ready".to_owned(),
                    Err(_) => "it panicked or hung".to_owned(),
                };
                panic!("the {name} server did not start within {START_TIMEOUT:?}: {why}");
            }
        }
    }

    /// The runtime's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://{}/live/{name}", self.addr)
    }

    /// Starts a graceful shutdown (see [`Control::shutdown`]).
    pub fn shutdown(&self) {
        self.control.shutdown();
    }

    /// Stops the server at once (see [`Control::stop`]).
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Waits up to `timeout` for the server's `run` to return and gives
    /// back what it returned; `TimedOut` if it is still running.
    pub fn join(&mut self, timeout: Duration) -> io::Result<()> {
        if self.result.is_none() {
            match self.done.recv_timeout(timeout) {
                Ok(r) => {
                    self.result = Some(r);
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the {} server still runs after {timeout:?}", self.name),
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.result = Some(Err(io::Error::other(format!(
                        "the {} server thread panicked",
                        self.name
                    ))));
                }
            }
        }
        match &self.result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => unreachable!("result was set above"),
        }
    }

    /// Whether the server's `run` has returned (without waiting).
    pub fn has_returned(&mut self) -> bool {
        let _ = self.join(Duration::ZERO);
        self.result.is_some()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.result.is_some() {
            return;
        }
        self.control.stop();
        // A server that does not stop is left behind rather than hanging
        // the test process; the test that owned it has its verdict already.
        let _ = self.join(STOP_TIMEOUT);
    }
}

/// Expands to one `#[test]` per conformance case for the [`Runtime`] type
/// given, e.g. `tincan_tests::conformance_suite!(Tokio);`.
#[macro_export]
macro_rules! conformance_suite {
    ($runtime:ty) => {
        $crate::conformance_suite!(@cases $runtime;
            ffmpeg_publish_ffmpeg_play_decodes,
            rtmpdump_play_decodes,
            gstreamer_play_decodes,
            concurrent_publishers_and_players,
            play_before_publish_starts_when_publish_begins,
            republish_keeps_player_playing,
            fast_start_late_joiner_gets_keyframe_first,
            slow_reader_that_stops_reading_is_dropped_or_resumes_per_policy,
            stalled_player_holds_up_neither_publisher_nor_other_player,
            stalled_player_gets_newest_keyframe_when_it_reads_again,
            stalled_player_cannot_hold_shutdown_past_deadline,
            disconnect_mid_handshake,
            disconnect_mid_message,
            disconnect_during_publish,
            graceful_shutdown_notifies_then_exits,
            graceful_shutdown_closes_stragglers_at_deadline,
            graceful_shutdown_refuses_new_connections,
            graceful_shutdown_of_idle_server_returns_at_once,
            stop_closes_every_connection_and_returns,
        );
    };
    (@cases $runtime:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::cases::$case::<$runtime>();
            }
        )*
    };
}
