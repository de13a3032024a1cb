//! The conformance suite, run against the mio runtime.

use tincan_core::event::{Denial, SessionId};
use tincan_core::server::{Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats};
use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// mio's blocking event loop on the server's own thread.
struct Mio;

/// The handle answers from the suite's threads, through the loop's waker.
struct MioControl(tincan_mio::Handle);

impl Control for MioControl {
    fn shutdown(&self) {
        self.0.shutdown();
    }
    fn stop(&self) {
        self.0.stop();
    }
    fn approve(&self, ticket: Ticket) -> Result<(), TicketError> {
        self.0.approve(ticket)
    }
    fn deny(&self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        self.0.deny(ticket, denial)
    }
    fn connection_stats(&self, id: SessionId) -> Option<ConnectionStats> {
        self.0.connection_stats(id)
    }
    fn connections(&self) -> Vec<(SessionId, ConnectionStats)> {
        self.0.connections()
    }
    fn stream_stats(&self, app: &str, name: &str) -> Option<StreamStats> {
        self.0.stream_stats(app, name)
    }
    fn streams(&self) -> Vec<StreamStats> {
        self.0.streams()
    }
}

impl Runtime for Mio {
    const NAME: &'static str = "mio";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let server = tincan_mio::Server::bind(&[EPHEMERAL], config)?;
            let events = ready.events();
            ready.ready(server.local_addrs()[0], MioControl(server.handle()));
            // The callback runs on the loop's thread and must not block:
            // an unbounded std channel never does.
            server.run_with(move |_turn, event| {
                let _ = events.send(event);
            })
        })
    }
}

tincan_tests::conformance_suite!(Mio);
