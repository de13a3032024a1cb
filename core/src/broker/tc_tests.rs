//! Event-level tests of TC messaging in the broker: relay, broadcast and
//! watch, with sessions simulated by the events they would emit.

use std::time::Instant;

use bytes::Bytes;

use super::tc::MAX_WATCHES_PER_SESSION;
use super::{Broker, BrokerConfig};
use crate::event::{BrokerEvent, SessionEvent, SessionId};

struct Harness {
    broker: Broker,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Harness {
            broker: Broker::new(BrokerConfig::default()),
            now: crate::testing::test_now(),
        }
    }

    /// A session connected to `app` with connection ID `conn-<id>`.
    fn connect(&mut self, app: &str) -> SessionId {
        let id = self.broker.open_session();
        self.send(
            id,
            SessionEvent::Connected(Box::new(crate::event::ConnectInfo {
                app: app.to_owned(),
                connection_id: conn(id),
                ..Default::default()
            })),
        );
        id
    }

    fn send(&mut self, id: SessionId, event: SessionEvent) {
        self.broker.handle_event(self.now, id, event);
    }

    fn drain(&mut self) -> Vec<(SessionId, BrokerEvent)> {
        std::iter::from_fn(|| self.broker.poll_output()).collect()
    }
}

fn conn(id: SessionId) -> String {
    format!("conn-{id}")
}

fn relay(body: &Bytes) -> BrokerEvent {
    BrokerEvent::Relay { body: body.clone() }
}

fn disconnected(id: SessionId) -> BrokerEvent {
    BrokerEvent::Disconnected {
        connection_id: conn(id),
    }
}

#[test]
fn relay_reaches_its_target_in_another_app() {
    let mut h = Harness::new();
    let a = h.connect("live/1");
    let b = h.connect("other/2");
    let body = Bytes::from_static(b"onRelay body");
    h.send(
        a,
        SessionEvent::Relay {
            target: conn(b),
            body: body.clone(),
        },
    );
    assert_eq!(h.drain(), [(b, relay(&body))]);
}

#[test]
fn relay_to_a_connection_id_not_connected_goes_nowhere() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("live");
    h.send(b, SessionEvent::Closed);
    h.send(
        a,
        SessionEvent::Relay {
            target: conn(b),
            body: Bytes::from_static(b"x"),
        },
    );
    h.send(
        a,
        SessionEvent::Relay {
            target: "nobody".to_owned(),
            body: Bytes::from_static(b"x"),
        },
    );
    assert_eq!(h.drain(), []);
}

#[test]
fn broadcast_reaches_every_member_of_the_app_including_the_sender_only() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("live");
    let _elsewhere = h.connect("other");
    let c = h.connect("live");
    let body = Bytes::from_static(b"onRelay broadcast");
    h.send(a, SessionEvent::Broadcast { body: body.clone() });
    assert_eq!(
        h.drain(),
        [(a, relay(&body)), (b, relay(&body)), (c, relay(&body))]
    );
}

#[test]
fn broadcast_shares_one_payload_among_its_recipients() {
    let mut h = Harness::new();
    let a = h.connect("live");
    h.connect("live");
    let body = Bytes::from(vec![7u8; 4096]);
    h.send(a, SessionEvent::Broadcast { body: body.clone() });
    let out = h.drain();
    assert_eq!(out.len(), 2);
    for (_, e) in out {
        let BrokerEvent::Relay { body: got } = e else {
            panic!("expected a relay, got {e:?}");
        };
        assert_eq!(got.as_ptr(), body.as_ptr(), "payload was copied");
    }
}

#[test]
fn broadcast_skips_members_that_closed() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("live");
    h.send(b, SessionEvent::Closed);
    let body = Bytes::from_static(b"x");
    h.send(a, SessionEvent::Broadcast { body: body.clone() });
    assert_eq!(h.drain(), [(a, relay(&body))]);
}

#[test]
fn watch_of_a_connection_not_connected_answers_at_once() {
    let mut h = Harness::new();
    let a = h.connect("live");
    h.send(
        a,
        SessionEvent::Watch {
            target: "ghost".to_owned(),
        },
    );
    assert_eq!(
        h.drain(),
        [(
            a,
            BrokerEvent::Disconnected {
                connection_id: "ghost".to_owned()
            }
        )]
    );
}

#[test]
fn watcher_is_told_once_when_its_target_closes() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("elsewhere");
    for _ in 0..2 {
        h.send(a, SessionEvent::Watch { target: conn(b) });
    }
    assert_eq!(h.drain(), []);
    h.send(b, SessionEvent::Closed);
    assert_eq!(h.drain(), [(a, disconnected(b))]);
}

#[test]
fn every_watcher_of_a_target_is_told() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("live");
    let t = h.connect("live");
    h.send(a, SessionEvent::Watch { target: conn(t) });
    h.send(b, SessionEvent::Watch { target: conn(t) });
    h.send(t, SessionEvent::Closed);
    assert_eq!(h.drain(), [(a, disconnected(t)), (b, disconnected(t))]);
}

#[test]
fn watcher_that_closed_first_is_forgotten() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("live");
    h.send(a, SessionEvent::Watch { target: conn(b) });
    h.send(a, SessionEvent::Closed);
    h.send(b, SessionEvent::Closed);
    assert_eq!(h.drain(), []);
    assert_eq!(h.broker.watches.count(a), 0);
}

#[test]
fn watches_beyond_the_per_session_cap_are_ignored() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let targets: Vec<SessionId> = (0..=MAX_WATCHES_PER_SESSION)
        .map(|_| h.connect("live"))
        .collect();
    for &t in &targets {
        h.send(a, SessionEvent::Watch { target: conn(t) });
    }
    assert_eq!(h.broker.watches.count(a), MAX_WATCHES_PER_SESSION);
    let last = targets[MAX_WATCHES_PER_SESSION];
    h.send(last, SessionEvent::Closed);
    assert_eq!(h.drain(), [], "the watch past the cap was not kept");
    let first = targets[0];
    h.send(first, SessionEvent::Closed);
    assert_eq!(h.drain(), [(a, disconnected(first))]);
}
