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
//! graceful shutdown, and the embedder's side: the server's events, requests
//! it approves or denies by ticket from another thread, statistics, and
//! outbound connections the runtime dials (a server relaying to itself, a
//! dial that fails).
//!
//! Every server runs on a thread of its own, so the test thread is free to
//! drive clients and the three suites can run side by side: ports are
//! ephemeral and temporary files live in per-test directories.

pub mod cases;
pub mod embedder;
pub mod media;
pub mod outbound;
pub mod rtmp;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Refusal, ServerEvent, Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats};

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
/// runtime's own handle implements it, usable from any thread.
pub trait Control: Send + Sync {
    /// Graceful shutdown: refuse new connections, tell every client
    /// `NetConnection.Shutdown.Notify`, return once they are gone or at the
    /// configured deadline.
    fn shutdown(&self);
    /// Close everything now and return.
    fn stop(&self);
    /// Approves the request waiting on `ticket`.
    fn approve(&self, ticket: Ticket) -> Result<(), TicketError>;
    /// Refuses the request waiting on `ticket` with `denial`.
    fn deny(&self, ticket: Ticket, denial: Denial) -> Result<(), TicketError>;
    /// Connection `id`'s statistics now.
    fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats>;
    /// Every connection's statistics now.
    fn connections(&self) -> Vec<(SessionId, ConnectionStats)>;
    /// A stream's statistics now.
    fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats>;
    /// Every stream's statistics now.
    fn streams(&self) -> Vec<StreamStats>;
    /// Opens an outbound connection, which the runtime dials and drives.
    fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal>;
}

/// Handed to a runtime's serving closure: subscribe to the server's events
/// and forward them to [`Ready::events`], then call [`Ready::ready`] once
/// the listener is bound, before running the server.
#[derive(Debug)]
pub struct Ready {
    tx: mpsc::Sender<(SocketAddr, Box<dyn Control>)>,
    events: mpsc::Sender<ServerEvent>,
}

impl std::fmt::Debug for dyn Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Ready {
    /// Where the runtime forwards every event its server reports, in
    /// order; the suite reads them with [`Running::wait_event`].
    pub fn events(&self) -> mpsc::Sender<ServerEvent> {
        self.events.clone()
    }

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
    control: Arc<dyn Control>,
    /// Events not yet read into `log`.
    events: Mutex<mpsc::Receiver<ServerEvent>>,
    /// Every event read so far, in order.
    log: Mutex<Vec<ServerEvent>>,
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
        let (events_tx, events_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("tincan-{name}"))
            .spawn(move || {
                let result = serve(Ready {
                    tx: ready_tx,
                    events: events_tx,
                });
                let _ = done_tx.send(result);
            })
            .expect("spawn the server thread");
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok((addr, control)) => Running {
                name,
                addr,
                control: control.into(),
                events: Mutex::new(events_rx),
                log: Mutex::new(Vec::new()),
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

    /// The server's control, to use from another thread.
    pub fn control(&self) -> Arc<dyn Control> {
        self.control.clone()
    }

    /// The first event so far, or arriving within `timeout`, for which
    /// `matches` holds (earlier events count too: every event is kept).
    pub fn wait_event(
        &self,
        timeout: Duration,
        matches: impl Fn(&ServerEvent) -> bool,
    ) -> Option<ServerEvent> {
        let deadline = Instant::now() + timeout;
        let events = self.events.lock().expect("events lock");
        let mut log = self.log.lock().expect("log lock");
        // Whatever already arrived first, so the log is complete.
        log.extend(events.try_iter());
        if let Some(e) = log.iter().find(|e| matches(e)) {
            return Some(e.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(e) => {
                    let hit = matches(&e);
                    log.push(e.clone());
                    if hit {
                        return Some(e);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Every event the server reported so far, in order.
    pub fn events(&self) -> Vec<ServerEvent> {
        let events = self.events.lock().expect("events lock");
        let mut log = self.log.lock().expect("log lock");
        log.extend(events.try_iter());
        log.clone()
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
            events_report_a_connection_from_open_to_close,
            embedder_approves_a_publish_from_another_thread,
            embedder_denied_play_gets_stream_not_found_and_connection_stays_usable,
            embedder_denied_connect_is_rejected_with_the_description,
            handle_statistics_show_a_published_stream_and_its_players,
            outbound_push_to_itself_relays_the_publishers_frames,
            outbound_pull_from_itself_republishes_the_remote_stream,
            outbound_dial_to_a_closed_port_closes_with_the_reason,
            graceful_shutdown_ends_an_outbound_connection,
            merged_writes_deliver_every_frame_in_order,
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
