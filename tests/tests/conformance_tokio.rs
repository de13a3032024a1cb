//! The conformance suite, run against the tokio runtime.

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Refusal, Ticket, TicketError};
use tincan_core::stats::{ConnectionStats, StreamStats};
use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// tokio on a current-thread runtime built in the server's own thread.
struct Tokio;

struct TokioControl(tincan_tokio::Handle);

impl Control for TokioControl {
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

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let server = tincan_tokio::Server::bind(&[EPHEMERAL], config).await?;
                // Subscribed before serving, forwarded by a task of its own:
                // the stream ends when `run` returns.
                let mut events = server.events();
                let forward = ready.events();
                tokio::spawn(async move {
                    while let Some(e) = events.next().await {
                        if forward.send(e).is_err() {
                            break;
                        }
                    }
                });
                ready.ready(server.local_addrs()[0], TokioControl(server.handle()));
                server.run().await
            })
        })
    }
}

tincan_tests::conformance_suite!(Tokio);
