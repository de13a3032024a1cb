//! The `tc_rtws` target: TC over RTWebSocket as a connection kind of the
//! whole [`Server`]. Two connections are accepted as
//! [`Transport::Rtws`] (WebSocket binary messages in, one per input) and
//! one as RTMP, sharing the broker, so a browser session's commands and
//! media reach the others.
//!
//! The script (see [`crate::script`]) is operations; the connection byte
//! `c` picks one of the two RTWebSocket connections (its low bit):
//!
//! | op | arguments | what |
//! | --- | --- | --- |
//! | [`op::RAW`] | c, run | one raw WebSocket binary message |
//! | [`op::OPEN`] | c, u8 flow, u8 stream, u8 association (≥ 0x80: none) | a flow open with TC metadata for the stream |
//! | [`op::TC`] | c, u8 flow, u8 type, u32 timestamp, run payload | one TC message as user data on the flow |
//! | [`op::ACK`] | c, u8 flow, u16 delta, u16 buffer | a data ack for the server's flow |
//! | [`op::ADVANCE`] | u16 ms | time passes |
//! | [`op::DRAIN`] | c, u8 n | the connection's socket takes n transmits (0: all) |
//! | [`op::EOF`] | c | the peer hangs up |
//! | [`op::CONNECT`] | c | a canned `connect` to `live` on flow 0 (stream 0) |
//!
//! Besides "no panic" it checks, after every operation: every transmit
//! is exactly one non-empty, decodable RTWebSocket message; the session's
//! buffered input stays within its RTWebSocket buffer limit; errors are
//! sticky; a closed connection is removed once drained.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tincan_core::amf::amf0;
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::message::Value;
use tincan_core::rtws::vlu::encode_vlu;
use tincan_core::rtws::{Message, RtwsConfig};
use tincan_core::server::{Server, ServerConfig, Transport};
use tincan_core::session::SessionConfig;

use crate::script::{Script, ScriptWriter};

/// The operation codes (the byte is taken modulo 8).
pub mod op {
    /// A raw WebSocket message.
    pub const RAW: u8 = 0;
    /// A TC flow open.
    pub const OPEN: u8 = 1;
    /// A TC message on a flow.
    pub const TC: u8 = 2;
    /// A data ack.
    pub const ACK: u8 = 3;
    /// Time passes.
    pub const ADVANCE: u8 = 4;
    /// The socket takes transmits.
    pub const DRAIN: u8 = 5;
    /// The peer hangs up.
    pub const EOF: u8 = 6;
    /// A canned connect.
    pub const CONNECT: u8 = 7;
}

fn config() -> ServerConfig {
    ServerConfig {
        session: SessionConfig {
            rtws: RtwsConfig {
                max_recv_flows: 8,
                max_message_size: 16 * 1024,
                max_buffered_bytes: 48 * 1024,
                max_metadata_len: 64,
                recv_buffer: 8 * 1024,
                chunk_size: 400,
                max_send_queue_bytes: 32 * 1024,
                max_send_flows: 16,
                max_bytes_in_flight: 16 * 1024,
            },
            ..SessionConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// TC metadata for `stream`.
fn metadata(stream: u8) -> Bytes {
    let mut m = vec![b'T', b'C', 0x04];
    encode_vlu(u64::from(stream), &mut m);
    m.into()
}

/// One TC message as user data on `flow`.
fn tc_data(flow: u8, type_id: u8, timestamp: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(type_id);
    b.put_u32(timestamp);
    b.put_slice(payload);
    Message::Data {
        flow: u64::from(flow),
        more: false,
        fragment: b.freeze(),
    }
    .encode()
}

/// A `connect` command to `live`, AMF0.
fn connect_body() -> Vec<u8> {
    let mut b = BytesMut::new();
    let values = [
        Value::from("connect"),
        Value::Number(1.0),
        Value::object([
            ("app", Value::from("live")),
            ("tcUrl", Value::from("wss://localhost/live")),
        ]),
    ];
    amf0::encode_all(&values, &mut b).expect("constant AMF values encode");
    b.to_vec()
}

struct Conn {
    id: SessionId,
    limit: usize,
}

fn input(server: &mut Server, now: Instant, c: &Conn, message: Bytes) {
    let before = server.session(c.id).and_then(|s| s.error().cloned());
    let result = server.handle_input_bytes(now, c.id, message);
    if let (Some(before), Err(after)) = (before, &result) {
        assert_eq!(&before, after, "errors are sticky");
    }
    if let Some(s) = server.session(c.id) {
        assert!(
            s.input_buffered_bytes() <= c.limit,
            "buffered input past the RTWebSocket limit"
        );
    }
    // A turn left input pending: give it its next turns, as a runtime.
    for _ in 0..64 {
        if !server.has_pending_input(c.id) {
            break;
        }
        let _ = server.handle_input(now, c.id, &[]);
    }
}

/// Writes up to `n` transmits of `id` (0: all), checking each is one
/// RTWebSocket message; removes a connection that closed.
fn drain(server: &mut Server, now: Instant, id: SessionId, n: usize) {
    let n = if n == 0 { 10_000 } else { n };
    for _ in 0..n {
        let Some(t) = server.poll_transmit(now, id) else {
            break;
        };
        assert_eq!(t.bufs.len(), 1, "one WebSocket message per transmit");
        let m = &t.bufs[0];
        assert!(!m.is_empty(), "an empty transmit");
        assert!(Message::decode(m).is_ok(), "an undecodable transmit");
    }
    if server.is_closed(id) {
        let _ = server.remove(now, id);
    }
}

/// The target's body.
pub fn tc_rtws(data: &[u8]) {
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let mut server = Server::new(config());
    let limit = config().session.rtws.max_buffered_bytes;
    let peer = |n: u8| {
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
            9000,
        ))
    };
    let accept = |server: &mut Server, transport, n: u8| {
        server
            .accept_as(
                now,
                peer(n),
                transport,
                &mut SeededEntropy::new(u64::from(n)),
            )
            .expect("room for three connections")
    };
    let conns = [
        Conn {
            id: accept(&mut server, Transport::Rtws, 1),
            limit,
        },
        Conn {
            id: accept(&mut server, Transport::Rtws, 2),
            limit,
        },
    ];
    let rtmp = accept(&mut server, Transport::Rtmp, 3);
    while let Some(code) = s.op() {
        match code % 8 {
            op::RAW => {
                let c = &conns[usize::from(s.u8() & 1)];
                let m = Bytes::copy_from_slice(s.run());
                input(&mut server, now, c, m);
            }
            op::OPEN => {
                let c = &conns[usize::from(s.u8() & 1)];
                let (flow, stream, assoc) = (s.u8(), s.u8(), s.u8());
                let m = Message::FlowOpen {
                    flow: u64::from(flow),
                    return_association: (assoc < 0x80).then_some(u64::from(assoc)),
                    metadata: metadata(stream),
                }
                .encode();
                input(&mut server, now, c, m);
            }
            op::TC => {
                let c = &conns[usize::from(s.u8() & 1)];
                let (flow, type_id, ts) = (s.u8(), s.u8(), s.u32());
                let m = tc_data(flow, type_id, ts, s.run());
                input(&mut server, now, c, m);
            }
            op::ACK => {
                let c = &conns[usize::from(s.u8() & 1)];
                let (flow, delta, buffer) = (s.u8(), s.u16(), s.u16());
                let m = Message::DataAck {
                    flow: u64::from(flow),
                    delta_bytes: u64::from(delta),
                    buffer_advertisement: u64::from(buffer),
                }
                .encode();
                input(&mut server, now, c, m);
            }
            op::ADVANCE => {
                now += Duration::from_millis(u64::from(s.u16()));
                server.handle_timeout(now);
            }
            op::DRAIN => {
                let c = &conns[usize::from(s.u8() & 1)];
                let n = usize::from(s.u8());
                drain(&mut server, now, c.id, n);
            }
            op::EOF => {
                let c = &conns[usize::from(s.u8() & 1)];
                server.handle_eof(now, c.id);
            }
            _ => {
                let c = &conns[usize::from(s.u8() & 1)];
                let open = Message::FlowOpen {
                    flow: 0,
                    return_association: None,
                    metadata: metadata(0),
                }
                .encode();
                input(&mut server, now, c, open);
                input(&mut server, now, c, tc_data(0, 20, 0, &connect_body()));
            }
        }
        while server.poll_event().is_some() {}
        drain(&mut server, now, rtmp, 0);
    }
    // Whatever happened, a closed connection can always be finished.
    for c in &conns {
        server.close(now, c.id, "end of script");
        now += Duration::from_secs(10);
        server.handle_timeout(now);
        drain(&mut server, now, c.id, 0);
    }
}

/// Hand-written seeds: `(name, script)`.
pub fn tc_rtws_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let amf = |values: &[Value]| {
        let mut b = BytesMut::new();
        amf0::encode_all(values, &mut b).expect("seed AMF encodes");
        b.to_vec()
    };
    let tc = |w: &mut ScriptWriter, c: u8, flow: u8, type_id: u8, ts: u32, payload: &[u8]| {
        w.u8(op::TC).u8(c).u8(flow).u8(type_id).u32(ts);
        w.u16(payload.len() as u16).raw(payload);
    };

    // Connect, create a stream, publish on one connection and play on the
    // other, media on separate flows, acks.
    let mut w = ScriptWriter::default();
    for c in 0..2 {
        w.u8(op::CONNECT).u8(c).u8(op::DRAIN).u8(c).u8(0);
        let create = amf(&[Value::from("createStream"), Value::Number(2.0), Value::Null]);
        tc(&mut w, c, 0, 20, 0, &create);
        w.u8(op::DRAIN).u8(c).u8(0);
        w.u8(op::OPEN).u8(c).u8(1).u8(1).u8(0);
    }
    let publish = amf(&[
        Value::from("publish"),
        Value::Number(0.0),
        Value::Null,
        Value::from("cam"),
        Value::from("live"),
    ]);
    tc(&mut w, 0, 1, 20, 0, &publish);
    let play = amf(&[
        Value::from("play"),
        Value::Number(0.0),
        Value::Null,
        Value::from("cam"),
    ]);
    tc(&mut w, 1, 1, 20, 0, &play);
    w.u8(op::OPEN).u8(0).u8(2).u8(1).u8(0);
    w.u8(op::OPEN).u8(0).u8(3).u8(1).u8(0);
    tc(&mut w, 0, 3, 9, 0, b"\x17\x00\x00\x00\x00avc-config");
    tc(&mut w, 0, 2, 8, 0, b"\xaf\x00\x12\x10");
    tc(
        &mut w,
        0,
        3,
        9,
        0,
        &[0x17, 1, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4],
    );
    tc(&mut w, 0, 2, 8, 20, b"\xaf\x01audio");
    w.u8(op::DRAIN).u8(1).u8(0);
    w.u8(op::ACK).u8(1).u8(1).u16(200).u16(4000);
    w.u8(op::ADVANCE).u16(300).u8(op::DRAIN).u8(1).u8(0);
    tc(&mut w, 0, 3, 9, 40, &[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 9, 9]);
    w.u8(op::ADVANCE).u16(5000).u8(op::DRAIN).u8(1).u8(0);
    seeds.push(("publish-and-play", w.bytes));

    // Refusals and errors: non-TC metadata, an unknown stream, a short TC
    // message, a chunk-stream-only message, then garbage.
    let mut w = ScriptWriter::default();
    w.u8(op::CONNECT).u8(0).u8(op::DRAIN).u8(0).u8(0);
    w.u8(op::RAW).u8(0).u16(8).raw(b"\x10\x05notTC");
    w.u8(op::OPEN).u8(0).u8(6).u8(9).u8(0xff);
    tc(&mut w, 0, 6, 9, 0, b"\x17");
    tc(&mut w, 0, 0, 1, 0, &[0, 0, 0x10, 0]);
    w.u8(op::RAW).u8(0).u16(3).raw(&[0x1d, 0, 20]);
    w.u8(op::DRAIN).u8(0).u8(0);
    w.u8(op::RAW).u8(0).u16(3).raw(&[0x1d, 0x63, 1]);
    w.u8(op::ADVANCE).u16(6000).u8(op::DRAIN).u8(0).u8(0);
    seeds.push(("refusals-and-errors", w.bytes));

    seeds
}
