//! The `rtws` target: two RTWebSocket endpoints (`tincan_core::rtws`)
//! joined by an in-memory pipe, one of them also fed raw peer messages.
//!
//! The script (see [`crate::script`]) is operations. The low nibble of the
//! operation byte is the kind, bit 4 picks the endpoint (A when clear, B
//! when set) for the application calls:
//!
//! | op | arguments | what |
//! | --- | --- | --- |
//! | [`op::RAW`] | run | one raw WebSocket binary message into A |
//! | [`op::STEP`] | u16 ms | the clock moves; both get `handle_timeout` |
//! | [`op::JUMP`] | | the clock jumps to the earlier deadline |
//! | [`op::PUMP`] | | both exchange messages until quiet (bounded) |
//! | [`op::DELIVER`] | u8 n | at most n of the endpoint's messages reach the other |
//! | [`op::OPEN`] | u8 return association (≥ 0x80: none), u8 priority, run metadata | `open_flow` |
//! | [`op::SEND`] | u8 flow, u16 length, u16 expiry ms (0: none) | `send` |
//! | [`op::CLOSE`] | u8 flow | `close_flow` |
//! | [`op::REFUSE`] | u8 flow, u8 code | `refuse_flow` |
//! | [`op::RECV_BUFFER`] | u8 flow, u16 bytes | `set_recv_buffer` |
//! | [`op::ABANDON`] | u8 flow | `abandon_queued` |
//! | [`op::PING`] | run | `ping` |
//!
//! Besides "no panic" it checks, after every operation and for both
//! endpoints: buffered bytes ≤ `max_buffered_bytes`, receive flows ≤
//! `max_recv_flows`, send flows ≤ `max_send_flows`, every queued send
//! flow ≤ `max_send_queue_bytes`, every transmitted message decodes, no
//! empty transmit, and errors are sticky (a failed endpoint transmits
//! nothing and keeps returning its error).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::rtws::{
    Message, Priority, RecvFlowId, RtwsConfig, RtwsEndpoint, RtwsError, SendFlowId,
};

use crate::script::{Script, ScriptWriter};

/// The operation codes.
pub mod op {
    /// A raw message into A.
    pub const RAW: u8 = 0;
    /// Time passes.
    pub const STEP: u8 = 1;
    /// Jump to the next deadline.
    pub const JUMP: u8 = 2;
    /// Exchange until quiet.
    pub const PUMP: u8 = 3;
    /// Deliver some of one side's messages.
    pub const DELIVER: u8 = 4;
    /// Open a flow.
    pub const OPEN: u8 = 5;
    /// Send a message.
    pub const SEND: u8 = 6;
    /// Close a send flow.
    pub const CLOSE: u8 = 7;
    /// Refuse a receive flow.
    pub const REFUSE: u8 = 8;
    /// Change a receive flow's advertisement.
    pub const RECV_BUFFER: u8 = 9;
    /// Abandon a send flow's queue.
    pub const ABANDON: u8 = 10;
    /// Ping.
    pub const PING: u8 = 11;
    /// Bit 4: the operation is B's, not A's.
    pub const B: u8 = 0x10;
}

fn config() -> RtwsConfig {
    RtwsConfig {
        max_recv_flows: 4,
        max_message_size: 8192,
        max_buffered_bytes: 12_000,
        max_metadata_len: 64,
        recv_buffer: 4000,
        chunk_size: 300,
        max_send_queue_bytes: 20_000,
        max_send_flows: 4,
        max_bytes_in_flight: 10_000,
    }
}

struct Side {
    e: RtwsEndpoint,
    error: Option<RtwsError>,
    /// Send flows opened, by the order they were.
    sent_flows: Vec<SendFlowId>,
    /// Receive flows announced.
    recv_flows: Vec<RecvFlowId>,
    out: Vec<Bytes>,
}

impl Side {
    fn new() -> Side {
        Side {
            e: RtwsEndpoint::new(config()),
            error: None,
            sent_flows: Vec::new(),
            recv_flows: Vec::new(),
            out: Vec::new(),
        }
    }

    fn input(&mut self, now: Instant, message: &[u8]) {
        let result = self.e.handle_input(now, message);
        match (&self.error, result) {
            (Some(error), result) => assert_eq!(result, Err(error.clone()), "errors are sticky"),
            (None, Err(error)) => self.error = Some(error),
            (None, Ok(())) => {}
        }
    }

    /// Drains transmits into `out` and events into the flow lists.
    fn drain(&mut self) {
        while let Some(m) = self.e.poll_transmit() {
            assert!(self.error.is_none(), "a failed endpoint transmits nothing");
            assert!(!m.is_empty(), "an empty transmit");
            assert!(
                Message::decode(&m).is_ok(),
                "an undecodable transmit: {m:?}"
            );
            self.out.push(m);
        }
        while let Some(event) = self.e.poll_event() {
            if let tincan_core::rtws::RtwsEvent::FlowOpened { flow, .. } = event {
                self.recv_flows.push(flow);
            }
        }
    }

    fn check(&self) {
        let c = self.e.config();
        assert!(self.e.buffered_bytes() <= c.max_buffered_bytes);
        assert!(self.e.recv_flow_count() <= c.max_recv_flows);
        assert!(self.e.send_flow_count() <= c.max_send_flows);
        for f in &self.sent_flows {
            if let Some(q) = self.e.queued_bytes(*f) {
                assert!(q <= c.max_send_queue_bytes);
            }
        }
        if let Some(error) = &self.error {
            assert_eq!(self.e.error(), Some(error));
        }
    }

    fn send_flow(&self, i: u8) -> SendFlowId {
        self.sent_flows
            .get(usize::from(i) % self.sent_flows.len().max(1))
            .copied()
            .unwrap_or(SendFlowId(u64::from(i)))
    }

    fn recv_flow(&self, i: u8) -> RecvFlowId {
        self.recv_flows
            .get(usize::from(i) % self.recv_flows.len().max(1))
            .copied()
            .unwrap_or(RecvFlowId(u64::from(i)))
    }
}

/// Moves up to `n` of `from`'s messages into `to`.
fn deliver(now: Instant, from: &mut Side, to: &mut Side, n: usize) {
    from.drain();
    let n = n.min(from.out.len());
    for m in from.out.drain(..n).collect::<Vec<_>>() {
        to.input(now, &m);
    }
}

/// The target's body.
pub fn rtws(data: &[u8]) {
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let (mut a, mut b) = (Side::new(), Side::new());
    while let Some(code) = s.op() {
        let (me, other) = if code & op::B != 0 {
            (&mut b, &mut a)
        } else {
            (&mut a, &mut b)
        };
        match code & 0x0f {
            op::RAW => {
                let m = s.run();
                a.input(now, m);
            }
            op::STEP => {
                now += Duration::from_millis(u64::from(s.u16()));
                a.e.handle_timeout(now);
                b.e.handle_timeout(now);
            }
            op::JUMP => {
                let next = [a.e.poll_timeout(), b.e.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = next {
                    now = now.max(t);
                }
                a.e.handle_timeout(now);
                b.e.handle_timeout(now);
            }
            op::PUMP => {
                for _ in 0..64 {
                    a.drain();
                    b.drain();
                    if a.out.is_empty() && b.out.is_empty() {
                        break;
                    }
                    deliver(now, &mut a, &mut b, usize::MAX);
                    deliver(now, &mut b, &mut a, usize::MAX);
                }
            }
            op::DELIVER => {
                let n = usize::from(s.u8());
                deliver(now, me, other, n);
            }
            op::OPEN => {
                let assoc = s.u8();
                let priority = Priority::new(s.u8());
                let metadata = Bytes::copy_from_slice(s.run());
                let assoc = (assoc < 0x80).then(|| me.recv_flow(assoc));
                if let Ok(f) = me.e.open_flow(metadata, assoc, priority) {
                    me.sent_flows.push(f);
                }
            }
            op::SEND => {
                let flow = me.send_flow(s.u8());
                let len = usize::from(s.u16());
                let expiry = s.u16();
                let expiry = (expiry != 0).then(|| now + Duration::from_millis(u64::from(expiry)));
                let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let _ = me.e.send(flow, message.into(), expiry);
            }
            op::CLOSE => {
                let flow = me.send_flow(s.u8());
                let _ = me.e.close_flow(flow);
            }
            op::REFUSE => {
                let flow = me.recv_flow(s.u8());
                let code = s.u8();
                let _ = me.e.refuse_flow(flow, u64::from(code), "refused");
            }
            op::RECV_BUFFER => {
                let flow = me.recv_flow(s.u8());
                let bytes = s.u16();
                let _ = me.e.set_recv_buffer(flow, u64::from(bytes));
            }
            op::ABANDON => {
                let flow = me.send_flow(s.u8());
                let _ = me.e.abandon_queued(flow);
            }
            op::PING => {
                let data = s.run();
                me.e.ping(data);
            }
            _ => {}
        }
        a.drain();
        b.drain();
        a.check();
        b.check();
    }
}

/// Hand-written seeds: `(name, script)`.
pub fn rtws_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();

    // Flows both ways, a return flow, a large message, a close.
    let mut w = ScriptWriter::default();
    w.u8(op::OPEN).u8(0xff).u8(3).u16(10).raw(b"TC control");
    w.u8(op::SEND).u8(0).u16(5000).u16(0);
    w.u8(op::PUMP);
    w.u8(op::OPEN | op::B).u8(0).u8(5).u16(5).raw(b"reply");
    w.u8(op::SEND | op::B).u8(0).u16(100).u16(0);
    w.u8(op::PUMP).u8(op::STEP).u16(300).u8(op::PUMP);
    w.u8(op::CLOSE).u8(0).u8(op::PUMP);
    w.u8(op::CLOSE | op::B).u8(0).u8(op::PUMP);
    seeds.push(("open-return-close", w.bytes));

    // Flow control and expiry: a small window, a message abandoned part-way.
    let mut w = ScriptWriter::default();
    w.u8(op::OPEN).u8(0xff).u8(3).u16(0);
    w.u8(op::PUMP);
    w.u8(op::RECV_BUFFER | op::B).u8(0).u16(1000);
    w.u8(op::PUMP);
    w.u8(op::SEND).u8(0).u16(8000).u16(500);
    w.u8(op::SEND).u8(0).u16(200).u16(0);
    w.u8(op::DELIVER).u8(4);
    w.u8(op::STEP)
        .u16(600)
        .u8(op::PUMP)
        .u8(op::JUMP)
        .u8(op::PUMP);
    seeds.push(("window-and-expiry", w.bytes));

    // Priorities, a refusal, a ping.
    let mut w = ScriptWriter::default();
    w.u8(op::OPEN).u8(0xff).u8(1).u16(1).raw(b"l");
    w.u8(op::OPEN).u8(0xff).u8(7).u16(1).raw(b"h");
    w.u8(op::SEND).u8(0).u16(3000).u16(0);
    w.u8(op::SEND).u8(1).u16(3000).u16(0);
    w.u8(op::DELIVER).u8(3);
    w.u8(op::REFUSE | op::B).u8(0).u8(9);
    w.u8(op::PING).u16(4).raw(b"ping");
    w.u8(op::PUMP).u8(op::JUMP).u8(op::PUMP);
    seeds.push(("priorities-refusal-ping", w.bytes));

    // Raw peer messages into A: every type, then errors.
    let mut w = ScriptWriter::default();
    let raw: &[&[u8]] = &[
        b"\x01hi",
        b"\x0a\x95\x70",
        b"\x10\x01meta",
        b"\x3d\x01frag",
        b"\x1d\x01ment",
        b"\x3d\x01part",
        b"\x1a\x01",
        b"\x1c\x01",
        b"\x30\x02\x05nope",
        b"\x1a\x02\x03",
        b"\x5e\x02\x00why",
        b"\x41pong",
        b"\x5a\x07\x00\x00",
    ];
    for m in raw {
        w.u8(op::RAW).u16(m.len() as u16).raw(m);
        w.u8(op::DELIVER).u8(8);
    }
    seeds.push(("raw-every-type", w.bytes));

    seeds
}
