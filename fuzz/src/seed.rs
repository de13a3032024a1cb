//! Seed making: turns recorded client connections into inputs of each
//! target, and writes the hand-made scenario and regression inputs. Used by
//! `fuzz/make-seeds` (the `make_seeds` example); kept in the library so the
//! formats live next to the targets that read them.

use std::collections::BTreeMap;

use tincan_core::amf::amf0::Value;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use tincan_core::message::{Command, Connect, Encoding, Message, Play, PublishKind};
use tincan_core::time::MediaTime;

use crate::script::ScriptWriter;
use crate::{broker_op, connection_ids, server_op, session_op};

/// Size of C0+C1 (and of S0+S1): the first handshake flight.
pub const HELLO_LEN: usize = 1 + 1536;
/// Size of the whole client handshake, C0+C1+C2.
pub const HANDSHAKE_LEN: usize = 1 + 2 * 1536;

/// The reads of a capture file: each a 4-byte big-endian length and the
/// bytes of one `recv()`, as `fuzz/capture-clients` writes them.
pub fn parse_capture(mut file: &[u8]) -> Vec<Vec<u8>> {
    let mut reads = Vec::new();
    while file.len() >= 4 {
        let n = u32::from_be_bytes([file[0], file[1], file[2], file[3]]) as usize;
        let end = (4 + n).min(file.len());
        reads.push(file[4..end].to_vec());
        file = &file[end..];
    }
    reads
}

/// The reads, cut so their concatenation is at most `limit` bytes.
pub fn truncate_reads(reads: &[Vec<u8>], limit: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut left = limit;
    for r in reads {
        if left == 0 {
            break;
        }
        let n = r.len().min(left);
        out.push(r[..n].to_vec());
        left -= n;
    }
    out
}

/// The reads with the first `skip` bytes (the handshake) removed.
pub fn skip_reads(reads: &[Vec<u8>], mut skip: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for r in reads {
        if skip >= r.len() {
            skip -= r.len();
            continue;
        }
        out.push(r[skip..].to_vec());
        skip = 0;
    }
    out
}

/// A handshake seed: the machine on the receiving side of `reads`.
pub fn handshake_seed(client_side: bool, reads: &[Vec<u8>]) -> Vec<u8> {
    let mut w = ScriptWriter::default();
    w.u8(u8::from(client_side)).u32(1);
    // C0+C1+C2 from a client, S0+S1+S2 from a server: the same length.
    for r in truncate_reads(reads, HANDSHAKE_LEN) {
        w.runs(&[0], &r);
    }
    w.bytes
}

/// A chunk decoder seed: the chunk stream after the handshake, in its
/// recorded reads, under the loosest limits the target allows.
pub fn chunk_decoder_seed(reads: &[Vec<u8>], window: u16, limit: usize) -> Vec<u8> {
    let mut w = ScriptWriter::default();
    w.u16(u16::MAX).u8(u8::MAX).u8(u8::MAX).u16(window);
    for r in truncate_reads(&skip_reads(reads, HANDSHAKE_LEN), limit) {
        w.runs(&[], &r);
    }
    w.bytes
}

/// The messages of a chunk stream (handshake skipped), as (type id,
/// timestamp, payload).
pub fn messages(reads: &[Vec<u8>]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut d = ChunkDecoder::new(DecoderLimits::default());
    let mut out = Vec::new();
    for r in skip_reads(reads, HANDSHAKE_LEN) {
        if d.handle_input(&r).is_err() {
            break;
        }
        while let Ok(Some(m)) = d.poll_message() {
            out.push((m.type_id, m.timestamp.as_millis(), m.payload.to_vec()));
        }
    }
    out
}

/// Per-target seeds taken from the messages of one direction of a capture:
/// typed messages, AMF0 bodies, AMF3 bodies and media tags, a few of each
/// kind (the first config, keyframe and inter frame of each codec), each
/// at most `max_len` bytes.
pub fn message_seeds(
    msgs: &[(u8, u32, Vec<u8>)],
    max_len: usize,
) -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut out: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    // Per (type id, first two payload bytes): the first few.
    let mut seen: BTreeMap<(u8, u8, u8), usize> = BTreeMap::new();
    for (type_id, ts, payload) in msgs {
        let key = (
            *type_id,
            payload.first().copied().unwrap_or(0),
            payload.get(1).copied().unwrap_or(0),
        );
        let n = seen.entry(key).or_default();
        *n += 1;
        if *n > 2 {
            continue;
        }
        let payload = &payload[..payload.len().min(max_len)];
        let mut m = vec![*type_id];
        m.extend_from_slice(&ts.to_le_bytes());
        m.extend_from_slice(payload);
        out.entry("message").or_default().push(m);
        match type_id {
            18 | 20 => out.entry("amf0").or_default().push(payload.to_vec()),
            15 | 17 => {
                out.entry("amf0")
                    .or_default()
                    .push(payload.get(1..).unwrap_or_default().to_vec());
            }
            8 | 9 => out.entry("media_tag").or_default().push(payload.to_vec()),
            _ => {}
        }
    }
    out
}

/// A session seed: the client's reads as input, the session's output
/// drained after each; at most `limit` bytes of input.
pub fn session_seed(manual: bool, reads: &[Vec<u8>], limit: usize) -> Vec<u8> {
    let mut w = ScriptWriter::default();
    w.u8(u8::from(manual));
    for r in truncate_reads(reads, limit) {
        w.runs(&[session_op::INPUT], &r);
        w.u8(session_op::DRAIN).u8(0);
    }
    w.u8(session_op::DEADLINE);
    w.bytes
}

/// A server seed: a publisher connects and sends its first reads, a player
/// connects and sends all of its, then the publisher goes on; a runtime
/// turn follows every read. At most `limit` bytes of each client's input.
pub fn server_seed(publisher: &[Vec<u8>], player: &[Vec<u8>], limit: usize) -> Vec<u8> {
    let publisher = truncate_reads(publisher, limit);
    let player = truncate_reads(player, limit);
    let mut w = ScriptWriter::default();
    w.u8(server_op::ACCEPT).u8(0);
    let head = publisher.len().min(12);
    for r in &publisher[..head] {
        w.runs(&[server_op::INPUT, 0], r);
        w.u8(server_op::TURN);
    }
    w.u8(server_op::ACCEPT).u8(1);
    for r in &player {
        w.runs(&[server_op::INPUT, 1], r);
        w.u8(server_op::TURN);
    }
    for r in &publisher[head..] {
        w.runs(&[server_op::INPUT, 0], r);
        w.u8(server_op::TURN);
        w.u8(server_op::ADVANCE).u16(20);
    }
    w.u8(server_op::SHUTDOWN).u8(server_op::TURN);
    w.u8(server_op::DEADLINE).u8(server_op::TURN);
    w.bytes
}

/// Hand-written broker scenarios: publish and play, late join after a GOP,
/// republish within the grace, eviction by `releaseStream`, hashed and
/// `asis:` players, close of a publisher with players waiting, TC relay,
/// broadcast and watch.
pub fn broker_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use broker_op as op;
    let frame = |w: &mut ScriptWriter, s: u8, flags: u8, ts: u32, payload: &[u8]| {
        w.u8(op::FRAME).u8(s).u8(1).u8(flags).u32(ts);
        w.u16(payload.len() as u16).raw(payload);
    };
    // A legacy AVC sequence header, keyframe, inter frame; an AAC config
    // and frame.
    let avc_config = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff];
    let avc_key = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
    let avc_inter = [0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a];
    let aac_config = [0xaf, 0, 0x12, 0x10];
    let aac = [0xaf, 1, 0x21, 0x10];
    let media = |w: &mut ScriptWriter, s: u8, from: u32| {
        frame(w, s, 1 | 0x30, from, &avc_config);
        frame(w, s, 0x20, from, &aac_config);
        for i in 0..6u32 {
            let ts = from + i * 40;
            if i % 3 == 0 {
                frame(w, s, 1 | 0x10, ts, &avc_key);
            } else {
                frame(w, s, 1, ts, &avc_inter);
            }
            frame(w, s, 0, ts, &aac);
        }
    };
    let mut seeds = Vec::new();

    let mut w = ScriptWriter::default();
    w.u8(op::CONNECT).u8(0).u8(0); // session 0
    w.u8(op::CONNECT).u8(0).u8(1); // session 1
    w.u8(op::PUBLISH).u8(0).u8(1).u8(0).u8(0);
    w.u8(op::SET_DATA).u8(0).u8(1).u8(0).u16(3).raw(&[2, 0, 0]);
    media(&mut w, 0, 0);
    w.u8(op::PLAY).u8(1).u8(1).u8(0);
    media(&mut w, 0, 240);
    w.u8(op::CLOSE).u8(1);
    w.u8(op::UNPUBLISH).u8(0).u8(1);
    seeds.push(("publish-play-late-join", w.bytes));

    let mut w = ScriptWriter::default();
    w.u8(op::CONNECT).u8(0).u8(0);
    w.u8(op::CONNECT).u8(0).u8(1);
    w.u8(op::CONNECT).u8(0).u8(2);
    w.u8(op::PLAY).u8(1).u8(1).u8(3); // sha256: name of "a"
    w.u8(op::PLAY).u8(2).u8(1).u8(2); // asis:a
    w.u8(op::PUBLISH).u8(0).u8(1).u8(0).u8(0);
    media(&mut w, 0, 1000);
    w.u8(op::CLOSE).u8(0);
    w.u8(op::ADVANCE).u16(500);
    w.u8(op::CONNECT).u8(0).u8(3); // republish within the grace
    w.u8(op::PUBLISH).u8(2).u8(2).u8(0).u8(0);
    media(&mut w, 2, 0);
    w.u8(op::UNPUBLISH).u8(2).u8(2);
    w.u8(op::ADVANCE).u16(1500); // grace expires
    seeds.push(("hashed-and-asis-players-republish-grace", w.bytes));

    let mut w = ScriptWriter::default();
    w.u8(op::CONNECT).u8(0).u8(0);
    w.u8(op::CONNECT).u8(0).u8(1);
    w.u8(op::CONNECT).u8(1).u8(2); // another App
    w.u8(op::PUBLISH).u8(0).u8(1).u8(0).u8(0);
    w.u8(op::PUBLISH).u8(1).u8(1).u8(0).u8(0); // already publishing
    w.u8(op::PUBLISH).u8(2).u8(1).u8(0).u8(0); // same name, other App
    w.u8(op::PLAY).u8(2).u8(2).u8(0);
    w.u8(op::RELEASE).u8(1).u8(0); // evicts session 0
    w.u8(op::PUBLISH).u8(1).u8(1).u8(0).u8(0);
    media(&mut w, 1, 0);
    w.u8(op::PUBLISH).u8(1).u8(2).u8(3).u8(0); // bad names
    w.u8(op::PUBLISH).u8(1).u8(2).u8(4).u8(0);
    w.u8(op::STRAY);
    w.u8(op::CLOSE).u8(1);
    w.u8(op::CLOSE).u8(0);
    seeds.push(("release-evicts-and-bad-names", w.bytes));

    let mut w = ScriptWriter::default();
    w.u8(op::CONNECT).u8(0).u8(0); // session 0 is c0
    w.u8(op::CONNECT).u8(0).u8(1); // session 1 is c1
    w.u8(op::CONNECT).u8(1).u8(2); // session 2 is c2, another App
    w.u8(op::WATCH).u8(0).u8(1);
    w.u8(op::WATCH).u8(2).u8(1);
    w.u8(op::WATCH).u8(1).u8(9); // nobody: answered at once
    w.u8(op::RELAY).u8(2).u8(0).u16(2).raw(b"hi");
    w.u8(op::BROADCAST).u8(0).u16(2).raw(b"yo");
    w.u8(op::CLOSE).u8(1); // c1 goes: 0 and 2 are told
    w.u8(op::BROADCAST).u8(0).u16(2).raw(b"yo");
    w.u8(op::CLOSE).u8(0);
    w.u8(op::CLOSE).u8(0);
    seeds.push(("relay-broadcast-watch", w.bytes));
    seeds
}

/// Hand-made AMF3 values: integer, string and its reference, dynamic and
/// sealed objects, a trait reference, a dense+associative array, a byte
/// array.
pub fn amf3_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("integer", vec![0x04, 0xff, 0xff, 0xff, 0x7f]),
        ("string", vec![0x06, 0x07, b'a', b'b', b'c']),
        (
            "dynamic-object",
            vec![
                0x0a, 0x0b, 0x01, 0x03, b'a', 0x04, 0x01, 0x03, b'b', 0x06, 0x03, b'x', 0x01,
            ],
        ),
        (
            "sealed-object-and-trait-reference",
            vec![
                0x09, 0x05, 0x01, // array of 2
                0x0a, 0x13, 0x03, b'C', 0x03, b'm', 0x04, 0x05, // class C {m: 2}
                0x0a, 0x01, 0x04, 0x07, // trait reference 0, m: 3
            ],
        ),
        (
            "array-with-associative-part",
            vec![0x09, 0x03, 0x03, b'k', 0x02, 0x01, 0x06, 0x00],
        ),
        ("byte-array", vec![0x0c, 0x07, 1, 2, 3]),
    ]
}

/// Known attacks on RTMP parsers, as inputs of the targets that must
/// survive them (each also a unit test in the core; docs/fuzzing.md lists
/// both).
pub fn regressions() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // A fmt0 header on csid 3: timestamp, length, type, stream id.
    let fmt0 = |len: u32, type_id: u8| {
        let l = len.to_be_bytes();
        vec![0x03, 0, 0, 0, l[1], l[2], l[3], type_id, 1, 0, 0, 0]
    };
    let decoder = |stream: &[u8]| {
        let mut w = ScriptWriter::default();
        w.u16(u16::MAX).u8(8).u8(8).u16(0);
        w.runs(&[], stream);
        w.bytes
    };
    // CVE-2016-10191 (FFmpeg): a continuation that changes the length.
    let mut cve = fmt0(300, 9);
    cve.extend_from_slice(&[0xaa; 128]);
    cve.extend_from_slice(&[0x43, 0, 0, 0, 0x10, 0, 0, 9]);
    cve.extend_from_slice(&[0xbb; 128]);
    out.push((
        "chunk_decoder",
        "cve-2016-10191-length-changed-mid-message",
        decoder(&cve),
    ));
    // A 16 MiB declared length with a few bytes behind it: nothing may be
    // allocated up front.
    let mut huge = fmt0(0xff_ffff, 9);
    huge.extend_from_slice(&[0; 64]);
    out.push((
        "chunk_decoder",
        "declared-16-mib-message-allocates-nothing-up-front",
        decoder(&huge),
    ));
    // The same two through a whole session, after a simple handshake.
    for (name, stream) in [
        ("cve-2016-10191-length-changed-mid-message", &cve),
        ("declared-16-mib-message", &huge),
    ] {
        let mut w = ScriptWriter::default();
        w.u8(0);
        let mut hello = vec![3u8];
        hello.resize(HANDSHAKE_LEN, 0);
        w.runs(&[session_op::INPUT], &hello);
        w.runs(&[session_op::INPUT], stream);
        w.u8(session_op::DRAIN).u8(0);
        out.push(("session", name, w.bytes));
    }
    // CVE-2015-8270/8271 (librtmp): a trait reference to no trait.
    out.push((
        "amf3",
        "cve-2015-8270-trait-reference-to-nothing",
        vec![0x0a, 0x01, 0x01],
    ));
    // CVE-2015-8272 (librtmp): 2^24 sealed members declared, 3 bytes follow.
    out.push((
        "amf3",
        "cve-2015-8272-huge-sealed-member-count",
        vec![0x0a, 0xc0, 0x80, 0x80, 0x03, 0x01, 0x03, 0x61, 0x01],
    ));
    // String and object references past their tables.
    out.push(("amf3", "string-reference-out-of-range", vec![0x06, 0x08]));
    out.push(("amf3", "object-reference-out-of-range", vec![0x09, 0x06]));
    // Deep nesting that would exhaust the stack of a recursive decoder.
    let mut deep0 = Vec::new();
    for _ in 0..2_000 {
        deep0.extend_from_slice(&[0x0a, 0, 0, 0, 1]); // strict array of 1
    }
    out.push(("amf0", "strict-arrays-nested-2000-deep", deep0));
    let mut deep_obj = Vec::new();
    for _ in 0..2_000 {
        deep_obj.extend_from_slice(&[0x03, 0, 1, b'a']); // {a: ...
    }
    out.push(("amf0", "objects-nested-2000-deep", deep_obj));
    let mut deep3 = Vec::new();
    for _ in 0..2_000 {
        deep3.extend_from_slice(&[0x09, 0x03, 0x01]); // [ ...
    }
    out.push(("amf3", "arrays-nested-2000-deep", deep3));
    // AMF0 strict array declaring 2^32-1 elements with none behind it.
    out.push((
        "amf0",
        "strict-array-declaring-4g-elements",
        vec![0x0a, 0xff, 0xff, 0xff, 0xff],
    ));
    out
}

/// A client's bytes: a simple handshake (C0+C1+C2), then `commands` as
/// AMF0 command messages on message stream 0.
fn client_bytes(commands: Vec<Command>) -> Vec<u8> {
    client_bytes_on(commands.into_iter().map(|c| (0, c)).collect())
}

/// [`client_bytes`] with each command on its own message stream.
fn client_bytes_on(commands: Vec<(u32, Command)>) -> Vec<u8> {
    let mut bytes = vec![3u8];
    bytes.resize(HANDSHAKE_LEN, 0);
    let mut enc = ChunkEncoder::new();
    let mut out = Vec::new();
    for (stream, command) in commands {
        let msg = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        if let Ok(raw) = msg.to_raw(3, MediaTime::ZERO, stream) {
            enc.write(&raw, &mut out);
        }
    }
    for b in out {
        bytes.extend_from_slice(&b);
    }
    bytes
}

fn connect(app: &str) -> Command {
    Command::Connect(Connect {
        transaction_id: 1.0,
        properties: Value::object([
            ("app", Value::from(app)),
            ("tcUrl", Value::from(format!("rtmp://localhost/{app}"))),
            ("objectEncoding", Value::Number(0.0)),
        ]),
        args: vec![],
    })
}

/// A server seed for TC messaging: three clients connect (two to one
/// App); the first watches the second and relays to it, the third
/// broadcasts, the second hangs up (the first is told), then the first
/// relays to the gone connection.
pub fn server_tc_seed() -> Vec<u8> {
    let ids = connection_ids(3);
    let (Some(first), Some(second)) = (ids.first(), ids.get(1)) else {
        return Vec::new();
    };
    let args = vec![Value::from("hello"), Value::Number(1.0)];
    let clients = [
        client_bytes(vec![
            connect("live"),
            Command::Watch {
                target: second.clone(),
            },
            Command::Relay {
                target: second.clone(),
                args: args.clone(),
            },
        ]),
        client_bytes(vec![
            connect("live"),
            Command::Broadcast { args: args.clone() },
        ]),
        client_bytes(vec![
            connect("other"),
            Command::Relay {
                target: first.clone(),
                args: args.clone(),
            },
            Command::Watch {
                target: "nobody".to_owned(),
            },
        ]),
    ];
    let mut w = ScriptWriter::default();
    for (i, bytes) in clients.iter().enumerate() {
        w.u8(server_op::ACCEPT).u8(i as u8);
        w.runs(&[server_op::INPUT, i as u8], bytes);
        w.u8(server_op::TURN);
    }
    w.u8(server_op::EOF).u8(1).u8(server_op::TURN);
    let relay_to_gone = client_bytes(vec![Command::Relay {
        target: second.clone(),
        args,
    }]);
    // Only the command, not a second handshake.
    w.runs(&[server_op::INPUT, 0], &relay_to_gone[HANDSHAKE_LEN..]);
    w.u8(server_op::TURN);
    w.u8(server_op::REMOVE).u8(2).u8(server_op::TURN);
    w.bytes
}

/// A client that connects to App `live`, creates message stream 1 and
/// publishes (`publish`) or plays `name` on it.
fn stream_client(publish: bool, name: &str) -> Vec<u8> {
    let request = if publish {
        Command::Publish {
            transaction_id: 0.0,
            name: Some(name.to_owned()),
            kind: PublishKind::Live,
        }
    } else {
        Command::Play(Play {
            transaction_id: 0.0,
            name: name.to_owned(),
            start: -2.0,
            duration: -1.0,
            reset: true,
            options: None,
        })
    };
    client_bytes_on(vec![
        (0, connect("live")),
        (
            0,
            Command::CreateStream {
                transaction_id: 2.0,
            },
        ),
        (1, request),
    ])
}

/// Server seeds where the embedder decides (`server_op::APPROVALS`): its
/// connect, publish and play tickets approved, refused, answered twice,
/// left to time out, and refused for it when it does not drain events.
pub fn server_decision_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use server_op as op;
    let publisher = stream_client(true, "cam");
    let player = stream_client(false, "cam");
    // Connects a client, approves its connect (the newest ticket) and then
    // answers its stream request with `answer` (ops and arguments).
    let client = |w: &mut ScriptWriter, i: u8, bytes: &[u8], answer: &[u8]| {
        w.u8(op::ACCEPT).u8(i);
        w.runs(&[op::INPUT, i], bytes);
        w.u8(op::TURN).u8(op::EVENTS).u8(op::APPROVE).u8(0);
        w.u8(op::TURN).u8(op::EVENTS).raw(answer).u8(op::TURN);
    };
    let mut out = Vec::new();

    // All three decided: a publish approved, a play refused (not found)
    // then answered again (stale), a second player left to time out, a
    // second publisher of the live name approved and refused by the
    // broker.
    let mut w = ScriptWriter::default();
    w.u8(op::APPROVALS).u8(0b111);
    client(&mut w, 0, &publisher, &[op::APPROVE, 0]);
    client(&mut w, 1, &player, &[op::DENY, 0, 2, op::APPROVE, 0]);
    client(&mut w, 2, &player, &[]);
    w.u8(op::DECISION_TIMEOUT).u8(op::TURN);
    client(&mut w, 3, &publisher, &[op::APPROVE, 0, op::DENY, 0, 0]);
    w.u8(op::SHUTDOWN).u8(op::TURN).u8(op::EVENTS);
    w.u8(op::DEADLINE).u8(op::TURN);
    out.push(("decisions-approve-deny-stale-timeout", w.bytes));

    // Only publish and play decided: a play approved before the publish,
    // the publisher removed with its request pending (its ticket stale).
    let mut w = ScriptWriter::default();
    w.u8(op::APPROVALS).u8(0b110);
    for (i, bytes) in [(0u8, &player), (1, &publisher)] {
        w.u8(op::ACCEPT).u8(i);
        w.runs(&[op::INPUT, i], bytes);
        w.u8(op::TURN);
    }
    w.u8(op::EVENTS).u8(op::APPROVE).u8(1);
    w.u8(op::REMOVE).u8(1).u8(op::TURN);
    w.u8(op::APPROVE).u8(0).u8(op::DENY).u8(0).u8(1);
    w.u8(op::EVENTS).u8(op::TURN);
    out.push(("decisions-publish-play-removed", w.bytes));

    // A small event queue nobody drains: later requests are refused
    // ("server busy") and their connections closed.
    let mut w = ScriptWriter::default();
    w.u8(op::APPROVALS).u8(0b1111);
    for i in 0..6u8 {
        w.u8(op::ACCEPT).u8(i % 3);
        w.runs(&[op::INPUT, i], &player);
        w.u8(op::TURN);
    }
    w.u8(op::EVENTS).u8(op::APPROVE).u8(0).u8(op::APPROVE).u8(3);
    w.u8(op::TURN).u8(op::EVENTS).u8(op::DEADLINE).u8(op::TURN);
    out.push(("decisions-busy", w.bytes));
    out
}

/// A session seed for TC messaging: connect, then relay, broadcast, watch
/// and setPeerInfo, answered by the target's loopback broker.
pub fn session_tc_seed() -> Vec<u8> {
    let args = vec![Value::from("hello"), Value::Number(1.0)];
    let bytes = client_bytes(vec![
        connect("live"),
        Command::Relay {
            target: "c1".to_owned(),
            args: args.clone(),
        },
        Command::Broadcast { args },
        Command::Watch {
            target: "c2".to_owned(),
        },
        Command::SetPeerInfo {
            addresses: vec!["10.0.0.1:1935".to_owned()],
        },
    ]);
    let mut w = ScriptWriter::default();
    w.u8(0);
    w.runs(&[session_op::INPUT], &bytes);
    w.u8(session_op::DRAIN).u8(0);
    w.bytes
}

/// Client seeds: what the core `Server` sends a client in memory, for a
/// player of a live stream, a publisher and a connect-only client, each
/// read whole and in small pieces. The recorded client uses the fuzz
/// target's own config and entropy seed, so the server's S2 echoes the C1
/// the fuzzed client sends.
pub fn client_seeds() -> Vec<(String, Vec<u8>)> {
    use tincan_core::client::Role;
    let mut seeds = Vec::new();
    for (name, role) in [
        ("play", Role::Play),
        ("publish", Role::Publish),
        ("connect", Role::Connect),
    ] {
        let bytes = record_server_to_client(role);
        for (piece, steps) in [("whole", 63u8), ("pieces", 2)] {
            let mut input = vec![crate::client::head(role, steps)];
            input.extend_from_slice(&bytes);
            seeds.push((format!("{name}-{piece}"), input));
        }
    }
    seeds
}

/// The bytes a core `Server` sends one client of `role`, with a second
/// client publishing a sequence header and frames on the stream it plays.
fn record_server_to_client(role: tincan_core::client::Role) -> Vec<u8> {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use tincan_core::client::{ClientConfig, ClientSession, MediaKind, Role};
    use tincan_core::entropy::SeededEntropy;
    use tincan_core::server::{Server, ServerConfig};

    let mut now = Instant::now();
    let mut server = Server::new(ServerConfig::default());
    let addr = |n: u8| Some(SocketAddr::from((Ipv4Addr::new(10, 0, 0, n), 40_000)));
    let mut clients = Vec::new();
    // The feeder publishes when the recorded client plays, and plays when it
    // publishes, so the recorded side sees a live stream either way.
    let feeder_role = if role == Role::Play {
        Role::Publish
    } else {
        Role::Play
    };
    let stream_config = |r: Role| ClientConfig::new("rtmp://fuzz.invalid/live", "live", "s", r);
    if role == Role::Play {
        let id = server.accept(now, addr(2), &mut SeededEntropy::new(7));
        let c = ClientSession::new(now, stream_config(feeder_role), &mut SeededEntropy::new(8));
        clients.push((id, c));
    }
    let id = server.accept(now, addr(1), &mut SeededEntropy::new(3));
    let c = ClientSession::new(
        now,
        crate::client::config(role),
        &mut SeededEntropy::new(crate::client::CLIENT_SEED),
    );
    clients.push((id, c));
    let recorded = clients.len() - 1;
    let mut out = Vec::new();
    let mut sent = 0u32;
    for _ in 0..200 {
        now += Duration::from_millis(33);
        for (i, (id, c)) in clients.iter_mut().enumerate() {
            let Ok(id) = id else { continue };
            while let Some(t) = c.poll_transmit() {
                for b in t.bufs {
                    let _ = server.handle_input(now, *id, &b);
                }
            }
            while server.poll_ready().is_some() {}
            while let Some(t) = server.poll_transmit(now, *id) {
                for b in t.bufs {
                    if i == recorded {
                        out.extend_from_slice(&b);
                    }
                    let _ = c.handle_input(now, &b);
                }
            }
            while c.poll_event().is_some() {}
            let publishing = (i != recorded && feeder_role == Role::Publish)
                || (i == recorded && role == Role::Publish);
            if publishing && c.is_active() && sent < 12 {
                let body: &'static [u8] = if sent == 0 {
                    // AVC sequence header: baseline profile, one SPS/PPS.
                    b"\x17\x00\x00\x00\x00\x01\x42\xc0\x1e\xff\xe1\x00\x04\x67\x42\xc0\x1e\x01\x00\x02\x68\xce"
                } else if sent % 6 == 1 {
                    b"\x17\x01\x00\x00\x00\x00\x00\x00\x02\x65\x88"
                } else {
                    b"\x27\x01\x00\x00\x00\x00\x00\x00\x02\x41\x9a"
                };
                let ts = MediaTime::from_millis(sent * 33);
                if c.send_media(MediaKind::Video, ts, Bytes::from_static(body))
                    .is_ok()
                {
                    sent += 1;
                }
            }
        }
        if out.len() > 16 * 1024 {
            break;
        }
    }
    out
}
