//! The conformance suite, run against the mio runtime.

use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::OutboundConfig;
use tincan_core::server::{Refusal, Ticket, TicketError};
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
    fn connect(&self, config: OutboundConfig) -> Result<SessionId, Refusal> {
        self.0.connect(config)
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

/// What only mio has: the callback answers on the loop's own thread,
/// through its `Turn`, and a plain `run()` refuses requests at once.
mod mio_only {
    use std::time::Duration;

    use tincan_core::server::{Approvals, Decider, ServerEvent};
    use tincan_core::stats::Role;
    use tincan_tests::conformance::rtmp::RtmpClient;
    use tincan_tests::conformance::{Ready, Running, ServerConfig, EPHEMERAL};
    use tincan_tests::sim::member_str;

    use super::MioControl;

    fn deciding_publishes() -> ServerConfig {
        ServerConfig {
            approvals: Approvals {
                publish: Decider::Embedder,
                ..Approvals::default()
            },
            ..ServerConfig::default()
        }
    }

    /// A connected client's publish of `name`; returns it and its stream
    /// once a status arrived on that stream.
    fn publish(server: &Running, name: &str) -> (RtmpClient, u32) {
        let mut c = RtmpClient::connect(server.addr());
        c.connect_app();
        let stream = c.create_stream();
        c.sim_mut().publish(stream, name);
        let answered = c.pump_until(Duration::from_secs(10), |s| !s.statuses(stream).is_empty());
        assert!(answered, "no status: {}", c.describe());
        (c, stream)
    }

    #[test]
    fn the_callback_approves_through_its_turn_and_reads_statistics_there() {
        let server = Running::spawn("mio", |ready: Ready| {
            let server = tincan_mio::Server::bind(&[EPHEMERAL], deciding_publishes())?;
            ready.ready(server.local_addrs()[0], MioControl(server.handle()));
            server.run_with(|turn, event| {
                if let ServerEvent::PublishRequest { ticket, id, .. } = event {
                    // Read in the turn: the requester is connected, not yet
                    // a publisher.
                    let role = turn.connection_stats(id).map(|s| s.role);
                    if role == Some(Role::Idle) {
                        turn.approve(ticket).expect("a live ticket");
                    }
                }
            })
        });
        let (c, stream) = publish(&server, "turned");
        assert_eq!(
            c.sim().statuses(stream),
            vec!["NetStream.Publish.Start".to_owned()],
            "{}",
            c.describe()
        );
    }

    #[test]
    fn without_a_callback_a_request_is_denied_at_once() {
        let server = Running::spawn("mio", |ready: Ready| {
            let server = tincan_mio::Server::bind(&[EPHEMERAL], deciding_publishes())?;
            ready.ready(server.local_addrs()[0], MioControl(server.handle()));
            server.run()
        });
        let (c, stream) = publish(&server, "unheard");
        let infos = c.sim().status_infos(stream);
        let first = infos.first().expect("a status");
        assert_eq!(
            member_str(first, "code").as_deref(),
            Some("NetStream.Publish.Denied")
        );
        assert_eq!(
            member_str(first, "description").as_deref(),
            Some("no decider")
        );
    }
}
