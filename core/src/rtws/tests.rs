//! Two endpoints over an in-memory pipe with a virtual clock, and raw
//! messages fed to one endpoint to pin the ack rules of `protocol`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::testing::test_now;

fn b(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

fn decode(bytes: &Bytes) -> Message {
    Message::decode(bytes).expect("the endpoint writes valid messages")
}

/// Two endpoints and the messages in flight between them.
struct Pair {
    a: RtwsEndpoint,
    b: RtwsEndpoint,
    now: Instant,
    a_to_b: VecDeque<Bytes>,
    b_to_a: VecDeque<Bytes>,
    a_events: Vec<RtwsEvent>,
    b_events: Vec<RtwsEvent>,
}

impl Pair {
    fn new(a: RtwsConfig, b: RtwsConfig) -> Pair {
        Pair {
            a: RtwsEndpoint::new(a),
            b: RtwsEndpoint::new(b),
            now: test_now(),
            a_to_b: VecDeque::new(),
            b_to_a: VecDeque::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    fn default() -> Pair {
        Pair::new(RtwsConfig::default(), RtwsConfig::default())
    }

    /// Takes everything `a` and `b` want to send, without delivering it.
    fn collect(&mut self) {
        while let Some(m) = self.a.poll_transmit() {
            self.a_to_b.push_back(m);
        }
        while let Some(m) = self.b.poll_transmit() {
            self.b_to_a.push_back(m);
        }
    }

    fn events(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    /// Delivers what is in flight, both ways.
    fn deliver(&mut self) {
        while let Some(m) = self.a_to_b.pop_front() {
            self.b
                .handle_input(self.now, &m)
                .expect("b accepts a's message");
        }
        while let Some(m) = self.b_to_a.pop_front() {
            self.a
                .handle_input(self.now, &m)
                .expect("a accepts b's message");
        }
        self.events();
    }

    /// Exchanges messages until both are quiet, without moving the clock.
    fn drive(&mut self) {
        for _ in 0..100_000 {
            self.collect();
            if self.a_to_b.is_empty() && self.b_to_a.is_empty() {
                self.events();
                return;
            }
            self.deliver();
        }
        panic!("the endpoints never went quiet");
    }

    /// Drives, jumping the clock to each deadline, until `until` from now.
    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            self.drive();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.a.handle_timeout(end);
        self.b.handle_timeout(end);
        self.drive();
    }

    fn b_messages(&self) -> Vec<(RecvFlowId, Bytes)> {
        messages(&self.b_events)
    }
}

fn messages(events: &[RtwsEvent]) -> Vec<(RecvFlowId, Bytes)> {
    events
        .iter()
        .filter_map(|e| match e {
            RtwsEvent::Message { flow, data } => Some((*flow, data.clone())),
            _ => None,
        })
        .collect()
}

fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn flows_open_both_ways_with_metadata_and_a_return_association() {
    let mut p = Pair::default();
    let control =
        p.a.open_flow(b(b"TC control"), None, Priority::ROUTINE)
            .unwrap();
    p.a.send(control, b(b"connect"), None).unwrap();
    p.drive();
    assert_eq!(
        p.b_events[0],
        RtwsEvent::FlowOpened {
            flow: RecvFlowId(control.0),
            metadata: b(b"TC control"),
            return_association: None,
        }
    );
    assert_eq!(p.b_messages(), [(RecvFlowId(control.0), b(b"connect"))]);

    let back =
        p.b.open_flow(b(b"reply"), Some(RecvFlowId(control.0)), Priority::ROUTINE)
            .unwrap();
    p.b.send(back, b(b"_result"), None).unwrap();
    p.drive();
    assert_eq!(
        p.a_events[0],
        RtwsEvent::FlowOpened {
            flow: RecvFlowId(back.0),
            metadata: b(b"reply"),
            return_association: Some(control),
        }
    );
    assert_eq!(messages(&p.a_events), [(RecvFlowId(back.0), b(b"_result"))]);
}

#[test]
fn flow_open_goes_out_before_the_first_fragment() {
    let mut e = RtwsEndpoint::new(RtwsConfig::default());
    let f = e.open_flow(b(b"m"), None, Priority::ROUTINE).unwrap();
    e.send(f, b(b"x"), None).unwrap();
    assert_eq!(e.poll_transmit().unwrap().as_ref(), b"\x10\x00m");
    assert_eq!(e.poll_transmit().unwrap().as_ref(), b"\x1d\x00x");
    assert_eq!(e.poll_transmit(), None);
}

#[test]
fn a_large_message_is_fragmented_and_reassembled() {
    let mut p = Pair::default();
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    let big = pattern(100_000);
    p.a.send(f, big.clone(), None).unwrap();
    p.a.send(f, b(b"after"), None).unwrap();
    p.collect();
    let fragments: Vec<Message> = p.a_to_b.iter().map(decode).collect();
    assert_eq!(fragments.len(), 100_000usize.div_ceil(1400) + 1);
    for (i, m) in fragments.iter().enumerate() {
        let Message::Data { more, fragment, .. } = m else {
            panic!("data, got {m:?}");
        };
        assert!(fragment.len() <= 1400);
        assert_eq!(*more, i + 2 < fragments.len(), "fragment {i}");
    }
    p.drive();
    assert_eq!(
        p.b_messages(),
        [(RecvFlowId(f.0), big), (RecvFlowId(f.0), b(b"after"))]
    );
    assert_eq!(p.b.buffered_bytes(), 0);
}

/// A receiver with one open flow 1 from a raw peer, its open ack taken.
fn receiver(config: RtwsConfig) -> (RtwsEndpoint, Instant) {
    let now = test_now();
    let mut e = RtwsEndpoint::new(config);
    e.handle_input(now, b"\x10\x01meta").unwrap();
    let ack = e.poll_transmit().expect("an ack at once on flow open");
    assert_eq!(
        decode(&ack),
        Message::DataAck {
            flow: 1,
            delta_bytes: 0,
            buffer_advertisement: 2_097_151,
        }
    );
    assert_eq!(e.poll_transmit(), None);
    assert!(matches!(e.poll_event(), Some(RtwsEvent::FlowOpened { .. })));
    (e, now)
}

fn data(flow: u8, more: bool, len: usize) -> Vec<u8> {
    let mut m = vec![if more { 0x3d } else { 0x1d }, flow];
    m.resize(2 + len, 0xab);
    m
}

#[test]
fn small_data_is_acked_within_250_ms_not_before() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.handle_input(t0, &data(1, false, 100)).unwrap();
    assert_eq!(e.poll_transmit(), None, "below every threshold");
    assert_eq!(e.poll_timeout(), Some(t0 + ACK_DELAY));
    // More data does not push the deadline back.
    e.handle_input(t0 + Duration::from_millis(200), &data(1, false, 100))
        .unwrap();
    assert_eq!(e.poll_timeout(), Some(t0 + ACK_DELAY));
    e.handle_timeout(t0 + Duration::from_millis(249));
    assert_eq!(e.poll_transmit(), None);
    e.handle_timeout(t0 + ACK_DELAY);
    assert_eq!(
        decode(&e.poll_transmit().unwrap()),
        Message::DataAck {
            flow: 1,
            delta_bytes: 2 * 102,
            buffer_advertisement: 2_097_151,
        }
    );
    assert_eq!(e.poll_transmit(), None);
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn an_ack_already_due_is_not_a_deadline_until_it_is_transmitted() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.handle_input(t0, &data(1, false, 100)).unwrap();
    e.handle_timeout(t0 + ACK_DELAY);
    // Due, but the caller has not polled yet: a deadline now or in the
    // past would only wake it again for nothing.
    assert_eq!(e.poll_timeout(), None);
    assert!(
        e.poll_transmit().is_some(),
        "the ack goes with the next poll"
    );
}

#[test]
fn every_ack_window_of_data_is_acked_at_once_for_all_flows() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.handle_input(t0, b"\x10\x02").unwrap();
    while e.poll_transmit().is_some() {}
    // 2 × 1000 + 802: below 2800 on one message short of it.
    e.handle_input(t0, &data(1, false, 998)).unwrap();
    e.handle_input(t0, &data(2, false, 998)).unwrap();
    e.handle_input(t0, &data(1, false, 797)).unwrap();
    assert_eq!(e.poll_transmit(), None, "2799 bytes");
    e.handle_input(t0, &data(2, false, 1)).unwrap();
    let acks: Vec<Message> = std::iter::from_fn(|| e.poll_transmit())
        .map(|m| decode(&m))
        .collect();
    assert_eq!(
        acks,
        [
            Message::DataAck {
                flow: 1,
                delta_bytes: 1000 + 799,
                buffer_advertisement: 2_097_151
            },
            Message::DataAck {
                flow: 2,
                delta_bytes: 1000 + 3,
                buffer_advertisement: 2_097_151
            },
        ]
    );
    assert_eq!(e.poll_timeout(), None, "nothing owed any more");
}

#[test]
fn set_ack_window_raises_the_threshold_but_never_below_2800() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.handle_input(t0, &[0x0a, 0x01]).unwrap();
    assert_eq!(e.ack_window(), MIN_ACK_WINDOW);
    let mut set = vec![0x0a];
    super::vlu::encode_vlu(10_000, &mut set);
    e.handle_input(t0, &set).unwrap();
    assert_eq!(e.ack_window(), 10_000);
    e.handle_input(t0, &data(1, false, 5000)).unwrap();
    assert_eq!(e.poll_transmit(), None, "5002 < 10000");
    e.handle_input(t0, &data(1, false, 4998)).unwrap();
    assert!(e.poll_transmit().is_some(), "10000 bytes since the set");
}

#[test]
fn half_the_advertised_buffer_is_acked_at_once() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.set_recv_buffer(RecvFlowId(1), 2000).unwrap();
    assert_eq!(
        decode(&e.poll_transmit().unwrap()),
        Message::DataAck {
            flow: 1,
            delta_bytes: 0,
            buffer_advertisement: 2000,
        },
        "a new advertisement goes out at once"
    );
    e.handle_input(t0, &data(1, true, 900)).unwrap();
    assert_eq!(e.poll_transmit(), None, "902 < 1000");
    e.handle_input(t0, &data(1, false, 98)).unwrap();
    assert_eq!(
        decode(&e.poll_transmit().unwrap()),
        Message::DataAck {
            flow: 1,
            delta_bytes: 1002,
            buffer_advertisement: 2000,
        }
    );
}

#[test]
fn abandon_and_close_are_acked_at_once_and_close_ack_follows_the_ack() {
    let (mut e, t0) = receiver(RtwsConfig::default());
    e.handle_input(t0, &data(1, true, 10)).unwrap();
    assert_eq!(e.buffered_bytes(), 10);
    e.handle_input(t0, &[0x1a, 0x01]).unwrap();
    assert_eq!(e.buffered_bytes(), 0, "the partial message is dropped");
    assert!(matches!(
        decode(&e.poll_transmit().unwrap()),
        Message::DataAck {
            delta_bytes: 12,
            ..
        }
    ));
    e.handle_input(t0, &data(1, true, 10)).unwrap();
    e.handle_input(t0, &[0x1c, 0x01]).unwrap();
    assert_eq!(e.buffered_bytes(), 0);
    let out: Vec<Message> = std::iter::from_fn(|| e.poll_transmit())
        .map(|m| decode(&m))
        .collect();
    assert_eq!(
        out,
        [
            Message::DataAck {
                flow: 1,
                delta_bytes: 12,
                buffer_advertisement: 0
            },
            Message::FlowCloseAck { flow: 1 },
        ]
    );
    assert_eq!(
        e.poll_event(),
        Some(RtwsEvent::FlowClosed {
            flow: RecvFlowId(1)
        })
    );
    assert_eq!(e.recv_flow_count(), 0);
    // The ID is free again.
    e.handle_input(t0, b"\x10\x01again").unwrap();
    assert_eq!(e.recv_flow_count(), 1);
}

#[test]
fn flow_control_stalls_the_sender_at_the_window_and_resumes_on_ack() {
    let b_config = RtwsConfig {
        recv_buffer: 10_000,
        ..RtwsConfig::default()
    };
    let mut p = Pair::new(RtwsConfig::default(), b_config);
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    assert_eq!(p.a.send_window(f), Some(10_000));
    let big = pattern(50_000);
    p.a.send(f, big.clone(), None).unwrap();
    p.collect();
    let sent: usize = p.a_to_b.iter().map(Bytes::len).sum();
    // The window counts whole data messages; like the references, the last
    // fragment may pass it by its header (here 2 bytes), so a tiny window
    // still makes progress.
    assert_eq!(sent, 10_002, "the advertised window, headers included");
    assert_eq!(p.a.send_window(f), Some(0));
    assert_eq!(p.a.poll_transmit(), None, "stalled");
    // The receiver acks; the sender goes on, and everything arrives.
    p.drive();
    assert_eq!(p.b_messages(), [(RecvFlowId(f.0), big)]);
    assert_eq!(p.a.queued_bytes(f), Some(0));
    assert!(
        p.a.bytes_in_flight() > 0,
        "the tail waits for the delayed ack"
    );
    p.run_for(ACK_DELAY);
    assert_eq!(p.a.bytes_in_flight(), 0, "all acknowledged");
}

#[test]
fn a_zero_advertisement_stops_the_sender_until_reopened() {
    let mut p = Pair::default();
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    p.b.set_recv_buffer(RecvFlowId(f.0), 0).unwrap();
    p.drive();
    p.a.send(f, b(b"held"), None).unwrap();
    p.drive();
    assert!(p.b_messages().is_empty());
    p.b.set_recv_buffer(RecvFlowId(f.0), 5000).unwrap();
    p.drive();
    assert_eq!(p.b_messages(), [(RecvFlowId(f.0), b(b"held"))]);
}

#[test]
fn an_expired_message_is_abandoned_mid_way_and_the_receiver_drops_its_part() {
    let b_config = RtwsConfig {
        recv_buffer: 3000,
        ..RtwsConfig::default()
    };
    let mut p = Pair::new(RtwsConfig::default(), b_config);
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    let t0 = p.now;
    p.a.send(f, pattern(20_000), Some(t0 + Duration::from_secs(1)))
        .unwrap();
    p.a.send(f, pattern(500), Some(t0 + Duration::from_millis(1500)))
        .unwrap();
    p.a.send(f, b(b"on time"), None).unwrap();
    // Only the first window goes out; its acks are slow to come back.
    p.collect();
    while let Some(m) = p.a_to_b.pop_front() {
        p.b.handle_input(p.now, &m).unwrap();
    }
    let slow_acks: Vec<Bytes> = std::iter::from_fn(|| p.b.poll_transmit()).collect();
    assert!(p.b.buffered_bytes() > 0, "part of the message is held");
    assert_eq!(p.a.poll_timeout(), Some(t0 + Duration::from_secs(1)));

    // Past both expiries: one abandon for the started message and the
    // unstarted one behind it.
    p.now = t0 + Duration::from_secs(2);
    p.a.handle_timeout(p.now);
    let abandon = p.a.poll_transmit().expect("the abandon");
    assert_eq!(
        decode(&abandon),
        Message::Abandon {
            flow: f.0,
            count: 2
        }
    );
    p.a_to_b.push_back(abandon);
    p.deliver();
    assert_eq!(p.b.buffered_bytes(), 0);
    assert!(p.b_messages().is_empty());
    p.b_to_a.extend(slow_acks);
    // The receiver's ack for the abandon reopens the window; the last
    // message arrives alone.
    p.drive();
    assert_eq!(p.b_messages(), [(RecvFlowId(f.0), b(b"on time"))]);
}

#[test]
fn a_message_expired_before_it_starts_is_never_sent() {
    let mut p = Pair::default();
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    p.a.send(f, b(b"late"), Some(p.now)).unwrap();
    p.a.send(f, b(b"fine"), None).unwrap();
    p.collect();
    let out: Vec<Message> = p.a_to_b.iter().map(decode).collect();
    assert_eq!(
        out[0],
        Message::Abandon {
            flow: f.0,
            count: 1
        }
    );
    p.drive();
    assert_eq!(p.b_messages(), [(RecvFlowId(f.0), b(b"fine"))]);
}

#[test]
fn the_close_handshake_frees_both_ids() {
    let mut p = Pair::default();
    let f = p.a.open_flow(b(b"m"), None, Priority::ROUTINE).unwrap();
    p.a.send(f, pattern(5000), None).unwrap();
    p.a.close_flow(f).unwrap();
    assert_eq!(p.a.send(f, b(b"x"), None), Err(SendError::FlowClosed));
    p.collect();
    let last = decode(p.a_to_b.back().unwrap());
    assert_eq!(
        last,
        Message::FlowClose { flow: f.0 },
        "after the queued data"
    );
    p.drive();
    assert_eq!(p.b_messages().len(), 1);
    assert_eq!(
        p.b_events.last(),
        Some(&RtwsEvent::FlowClosed {
            flow: RecvFlowId(f.0)
        })
    );
    assert_eq!(p.a_events, [RtwsEvent::SendFlowFinished { flow: f }]);
    assert_eq!(p.a.send_flow_count(), 0);
    assert_eq!(p.b.recv_flow_count(), 0);
    assert_eq!(p.a.send(f, b(b"x"), None), Err(SendError::UnknownFlow));
}

#[test]
fn a_refused_flow_is_abandoned_and_closed_by_its_sender() {
    let mut p = Pair::default();
    let f = p.a.open_flow(b(b"no"), None, Priority::ROUTINE).unwrap();
    p.drive();
    p.a.send(f, pattern(3000), None).unwrap();
    p.b.refuse_flow(RecvFlowId(f.0), 7, "not here").unwrap();
    p.drive();
    assert!(
        p.b_messages().is_empty(),
        "data after the refusal is dropped"
    );
    assert_eq!(
        p.a_events[0],
        RtwsEvent::FlowException {
            flow: f,
            reason: Some(ExceptionReason {
                code: 7,
                description: "not here".into()
            }),
        }
    );
    assert_eq!(p.a_events[1], RtwsEvent::SendFlowFinished { flow: f });
    assert_eq!(p.a.send_flow_count(), 0);
    assert_eq!(p.b.recv_flow_count(), 0);
    assert!(!p
        .b_events
        .iter()
        .any(|e| matches!(e, RtwsEvent::FlowClosed { .. })));
}

#[test]
fn a_return_association_to_no_open_flow_is_refused() {
    let mut p = Pair::default();
    let f = p.a.open_flow(b(b"x"), None, Priority::ROUTINE).unwrap();
    p.drive();
    p.a.close_flow(f).unwrap();
    // b answers a flow that a is closing, before hearing of the close.
    let back =
        p.b.open_flow(b(b"late"), Some(RecvFlowId(f.0)), Priority::ROUTINE)
            .unwrap();
    p.drive();
    assert!(!p
        .a_events
        .iter()
        .any(|e| matches!(e, RtwsEvent::FlowOpened { .. })));
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        RtwsEvent::FlowException { flow, reason: Some(r) }
            if *flow == back && r.description == "return association not found"
    )));
    assert_eq!(p.a.recv_flow_count(), 0);
    assert_eq!(p.b.send_flow_count(), 0);
}

#[test]
fn higher_priority_flows_send_first_and_equal_ones_take_turns() {
    let mut e = RtwsEndpoint::new(RtwsConfig::default());
    let low = e.open_flow(Bytes::new(), None, Priority::BULK).unwrap();
    let high = e.open_flow(Bytes::new(), None, Priority::FLASH).unwrap();
    let high2 = e.open_flow(Bytes::new(), None, Priority::FLASH).unwrap();
    for f in [low, high, high2] {
        e.send(f, pattern(3000), None).unwrap();
    }
    let order: Vec<u64> = std::iter::from_fn(|| e.poll_transmit())
        .map(|m| match decode(&m) {
            Message::FlowOpen { flow, .. } | Message::Data { flow, .. } => flow,
            other => panic!("{other:?}"),
        })
        .collect();
    let (h, h2, l) = (high.0, high2.0, low.0);
    assert_eq!(order, [h, h2, h, h2, h, h2, h, h2, l, l, l, l]);
    // A priority change applies to the next turn.
    e.send(low, b(b"x"), None).unwrap();
    e.send(high, b(b"y"), None).unwrap();
    e.set_priority(low, Priority::FLASH_OVERRIDE).unwrap();
    let first = decode(&e.poll_transmit().unwrap());
    assert!(matches!(first, Message::Data { flow, .. } if flow == l));
}

#[test]
fn ping_is_answered_with_the_same_bytes() {
    let mut p = Pair::default();
    p.a.ping(b"hello");
    p.drive();
    assert_eq!(p.a_events, [RtwsEvent::PingReply(b(b"hello"))]);
}

#[test]
fn unknown_types_and_empty_messages_are_ignored() {
    let mut e = RtwsEndpoint::new(RtwsConfig::default());
    let now = test_now();
    e.handle_input(now, &[]).unwrap();
    e.handle_input(now, &[0x77, 1, 2, 3]).unwrap();
    assert_eq!(e.poll_transmit(), None);
}

fn assert_sticky(e: &mut RtwsEndpoint, now: Instant, error: RtwsError) {
    assert_eq!(e.error(), Some(&error));
    assert_eq!(e.handle_input(now, b"\x01ping"), Err(error.clone()));
    assert_eq!(e.poll_transmit(), None);
    assert_eq!(e.poll_timeout(), None);
    assert!(matches!(
        e.open_flow(Bytes::new(), None, Priority::ROUTINE),
        Err(SendError::Failed(_))
    ));
}

#[test]
fn data_on_an_unknown_flow_is_a_sticky_error() {
    let (mut e, now) = receiver(RtwsConfig::default());
    let error = RtwsError::UnknownFlow {
        kind: 0x1d,
        flow: 9,
    };
    assert_eq!(e.handle_input(now, &data(9, false, 1)), Err(error.clone()));
    assert_sticky(&mut e, now, error);
}

#[test]
fn a_flow_id_in_use_is_a_sticky_error() {
    let (mut e, now) = receiver(RtwsConfig::default());
    assert_eq!(
        e.handle_input(now, b"\x10\x01"),
        Err(RtwsError::FlowIdInUse(1))
    );
    assert_sticky(&mut e, now, RtwsError::FlowIdInUse(1));
}

#[test]
fn acks_and_closes_of_unknown_send_flows_are_errors() {
    let now = test_now();
    for (input, kind) in [
        (&[0x5a, 3, 0, 0][..], 0x5a),
        (&[0x5c, 3], 0x5c),
        (&[0x5e, 3], 0x5e),
    ] {
        let mut e = RtwsEndpoint::new(RtwsConfig::default());
        assert_eq!(
            e.handle_input(now, input),
            Err(RtwsError::UnknownFlow { kind, flow: 3 })
        );
    }
    let mut e = RtwsEndpoint::new(RtwsConfig::default());
    let f = e.open_flow(Bytes::new(), None, Priority::ROUTINE).unwrap();
    assert_eq!(
        e.handle_input(now, &[0x5c, f.0 as u8]),
        Err(RtwsError::UnexpectedCloseAck(f.0)),
        "a close ack for a flow never closed"
    );
}

#[test]
fn flow_count_metadata_message_and_buffer_limits_are_sticky_errors() {
    let config = RtwsConfig {
        max_recv_flows: 2,
        max_metadata_len: 4,
        max_message_size: 3000,
        max_buffered_bytes: 5000,
        ..RtwsConfig::default()
    };
    let now = test_now();

    let mut e = RtwsEndpoint::new(config.clone());
    e.handle_input(now, b"\x10\x01").unwrap();
    e.handle_input(now, b"\x10\x02").unwrap();
    assert_eq!(
        e.handle_input(now, b"\x10\x03"),
        Err(RtwsError::TooManyFlows(2))
    );

    let mut e = RtwsEndpoint::new(config.clone());
    assert_eq!(
        e.handle_input(now, b"\x10\x0112345"),
        Err(RtwsError::MetadataTooLarge { len: 5, limit: 4 })
    );

    let mut e = RtwsEndpoint::new(config.clone());
    e.handle_input(now, b"\x10\x01").unwrap();
    e.handle_input(now, &data(1, true, 2000)).unwrap();
    assert_eq!(
        e.handle_input(now, &data(1, true, 1001)),
        Err(RtwsError::MessageTooLarge {
            flow: 1,
            limit: 3000
        })
    );
    assert!(e.buffered_bytes() <= 5000);

    let mut e = RtwsEndpoint::new(config);
    e.handle_input(now, b"\x10\x01").unwrap();
    e.handle_input(now, b"\x10\x02").unwrap();
    e.handle_input(now, &data(1, true, 2500)).unwrap();
    e.handle_input(now, &data(2, true, 2500)).unwrap();
    assert_eq!(
        e.handle_input(now, &data(1, true, 1)),
        Err(RtwsError::BufferedTooMuch(5000))
    );
    assert_eq!(e.buffered_bytes(), 5000);
}

#[test]
fn the_send_queue_is_bounded() {
    let config = RtwsConfig {
        max_send_queue_bytes: 100,
        max_send_flows: 1,
        ..RtwsConfig::default()
    };
    let mut e = RtwsEndpoint::new(config);
    let f = e.open_flow(Bytes::new(), None, Priority::ROUTINE).unwrap();
    e.send(f, pattern(60), None).unwrap();
    assert_eq!(e.send(f, pattern(41), None), Err(SendError::BufferFull));
    assert_eq!(
        e.open_flow(Bytes::new(), None, Priority::ROUTINE),
        Err(SendError::TooManyFlows)
    );
}

#[test]
fn bytes_in_flight_bound_the_data_sent_ahead_of_acks() {
    let a = RtwsConfig {
        max_bytes_in_flight: 5000,
        ..RtwsConfig::default()
    };
    let mut p = Pair::new(a, RtwsConfig::default());
    let f =
        p.a.open_flow(Bytes::new(), None, Priority::ROUTINE)
            .unwrap();
    p.drive();
    p.a.send(f, pattern(30_000), None).unwrap();
    p.collect();
    let sent: usize = p.a_to_b.iter().map(Bytes::len).sum();
    assert!((5000..5000 + 1402).contains(&sent), "{sent}");
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.b_messages(), [(RecvFlowId(f.0), pattern(30_000))]);
}

/// A raw message that is often valid: a type code of the protocol, small
/// flow IDs, and a tail.
fn raw_message() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    (
        prop::sample::select(vec![
            0x01u8, 0x41, 0x0a, 0x10, 0x30, 0x1d, 0x3d, 0x1a, 0x1c, 0x5a, 0x5c, 0x5e, 0xee,
        ]),
        0u8..4,
        prop::collection::vec(any::<u8>(), 0..40),
        0usize..3000,
    )
        .prop_map(|(kind, flow, tail, pad)| {
            let mut m = vec![kind, flow];
            m.extend_from_slice(&tail);
            if kind == 0x1d || kind == 0x3d {
                m.resize(m.len() + pad, 0x55);
            }
            m
        })
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics_and_bounds_hold(
        inputs in proptest::collection::vec((raw_message(), 0u64..400, proptest::bool::ANY), 0..60),
    ) {
        let config = RtwsConfig {
            max_recv_flows: 3,
            max_message_size: 4000,
            max_buffered_bytes: 6000,
            max_metadata_len: 16,
            ..RtwsConfig::default()
        };
        let mut e = RtwsEndpoint::new(config);
        let mut now = test_now();
        let mine = e.open_flow(Bytes::new(), None, Priority::ROUTINE).unwrap();
        let _ = e.send(mine, pattern(5000), Some(now + Duration::from_millis(300)));
        let mut failed: Option<RtwsError> = None;
        for (input, step, drain) in inputs {
            now += Duration::from_millis(step);
            e.handle_timeout(now);
            let result = e.handle_input(now, &input);
            if let Some(error) = &failed {
                proptest::prop_assert_eq!(result, Err(error.clone()));
            } else if let Err(error) = result {
                failed = Some(error);
            }
            proptest::prop_assert!(e.buffered_bytes() <= 6000);
            proptest::prop_assert!(e.recv_flow_count() <= 3);
            if drain {
                while let Some(m) = e.poll_transmit() {
                    proptest::prop_assert!(Message::decode(&m).is_ok());
                }
                while e.poll_event().is_some() {}
            }
            if let Some(t) = e.poll_timeout() {
                proptest::prop_assert!(t > now || failed.is_none());
            }
        }
    }
}
