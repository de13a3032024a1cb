//! The conformance suite, run against the smol runtime.

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Refusal, Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats};
use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// smol, driven by `smol::block_on` on the server's own thread.
struct Smol;

struct SmolControl(tincan_smol::Handle);

impl Control for SmolControl {
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
    fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.0.connect(config)
    }
}

impl Runtime for Smol {
    const NAME: &'static str = "smol";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let server = tincan_smol::Server::bind(&[EPHEMERAL], config)?;
            // Subscribed before serving and forwarded beside `run` on the
            // same thread: the stream ends when `run` returns.
            let mut events = server.events();
            let tx = ready.events();
            let forward = async move {
                while let Some(e) = events.next().await {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
            };
            ready.ready(server.local_addrs()[0], SmolControl(server.handle()));
            smol::block_on(smol::future::zip(server.run(), forward)).0
        })
    }
}

tincan_tests::conformance_suite!(Smol);
