//! Unit tests of [`Server`]'s own bookkeeping (the timer heap, the ready
//! queue), driven by clients built from the crate's handshake and chunk
//! layers. Behaviour seen by clients is tested through the whole-server
//! simulation in `tincan-tests` (`sim_server.rs` and friends).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Server, ServerConfig};
use crate::chunk::ChunkEncoder;
use crate::entropy::SeededEntropy;
use crate::event::SessionId;
use crate::handshake::{ClientHandshake, HandshakeConfig};
use crate::message::{Command, Connect, Encoding, Message, Value};
use crate::time::MediaTime;

/// A client connection of the server under test.
struct Peer {
    id: SessionId,
    encoder: ChunkEncoder,
    acked: u32,
}

fn peer_addr(n: u64) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8), 50_000))
}

/// Everything the server has for `id` now.
fn drain(server: &mut Server, now: Instant, id: SessionId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = server.poll_transmit(now, id) {
        for b in t.bufs {
            out.extend_from_slice(&b);
        }
    }
    out
}

/// A connection that completed its handshake and nothing else.
fn handshaken(server: &mut Server, now: Instant, n: u64) -> Peer {
    let id = server
        .accept(now, Some(peer_addr(n)), &mut SeededEntropy::new(n))
        .expect("accepted");
    let mut hs = ClientHandshake::new(
        now,
        HandshakeConfig::default(),
        &mut SeededEntropy::new(n + 1_000),
    );
    loop {
        while let Some(b) = hs.poll_transmit() {
            server
                .handle_input(now, id, &b)
                .expect("handshake accepted");
        }
        if hs.is_complete() {
            break;
        }
        let out = drain(server, now, id);
        assert!(!out.is_empty(), "the server stalled in the handshake");
        hs.handle_input(&out).expect("server handshake valid");
    }
    drain(server, now, id);
    Peer {
        id,
        encoder: ChunkEncoder::new(),
        acked: 0,
    }
}

impl Peer {
    fn send(&mut self, server: &mut Server, now: Instant, message: &Message, csid: u32) {
        let raw = message
            .to_raw(csid, MediaTime::ZERO, 0)
            .expect("test message encodes");
        let mut bufs: Vec<Bytes> = Vec::new();
        self.encoder.write(&raw, &mut bufs);
        for b in bufs {
            server.handle_input(now, self.id, &b).expect("valid input");
        }
    }

    /// Any well-formed message: the session hears from its peer.
    fn ack(&mut self, server: &mut Server, now: Instant) {
        self.acked = self.acked.wrapping_add(1);
        let ack = Message::Acknowledgement {
            sequence: self.acked,
        };
        self.send(server, now, &ack, 2);
    }
}

/// A connection that completed `connect` to `live`.
fn connected(server: &mut Server, now: Instant, n: u64) -> Peer {
    let mut peer = handshaken(server, now, n);
    let connect = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([
                ("app", Value::from("live")),
                ("tcUrl", Value::from("rtmp://test.invalid/live")),
                ("objectEncoding", Value::from(0.0)),
            ]),
            args: vec![],
        }),
    };
    peer.send(server, now, &connect, 3);
    assert!(
        !drain(server, now, peer.id).is_empty(),
        "no answer to connect"
    );
    assert_eq!(
        server.session(peer.id).and_then(|s| s.app()),
        Some("live"),
        "not connected"
    );
    peer
}

/// Every id `poll_ready` names until it has none.
fn ready(server: &mut Server) -> Vec<SessionId> {
    std::iter::from_fn(|| server.poll_ready()).collect()
}

#[test]
fn timer_heap_stays_bounded_while_deadlines_keep_moving() {
    let mut server = Server::new(ServerConfig::default());
    let mut now = crate::testing::test_now();
    let mut peers: Vec<Peer> = (0..8).map(|n| connected(&mut server, now, n)).collect();
    let mut peak = 0;
    let mut moves = 0;
    // Every message moves each session's ping and dead-peer deadlines
    // later; the entry already on the heap stands for them.
    for _ in 0..2_000 {
        now += Duration::from_millis(5);
        for p in &mut peers {
            let before = session_deadline(&server, p.id);
            p.ack(&mut server, now);
            drain(&mut server, now, p.id);
            if session_deadline(&server, p.id) != before {
                moves += 1;
            }
        }
        server.handle_timeout(now);
        let _ = ready(&mut server);
        peak = peak.max(server.timers.len());
    }
    assert!(
        moves >= 1_000 * peers.len(),
        "deadlines moved {moves} times: the test proves nothing"
    );
    assert!(
        peak <= 2 * peers.len(),
        "timer heap reached {peak} entries for {} connections",
        peers.len()
    );
    assert!(peers.iter().all(|p| !server.is_closed(p.id)));
}

/// The next deadline of session `id` itself, not the heap's entry for it.
fn session_deadline(server: &Server, id: SessionId) -> Option<Instant> {
    server.session(id).and_then(|s| s.poll_timeout())
}

#[test]
fn a_deadline_moved_later_fires_at_its_new_time_not_the_old() {
    let mut server = Server::new(ServerConfig::default());
    let start = crate::testing::test_now();
    let mut peer = connected(&mut server, start, 1);
    let first_ping = session_deadline(&server, peer.id).expect("a ping deadline");
    assert_eq!(server.poll_timeout(), Some(first_ping));
    // Heard from the peer: its ping moves later, the heap keeps the old
    // entry.
    let heard = start + Duration::from_secs(5);
    peer.ack(&mut server, heard);
    drain(&mut server, heard, peer.id);
    let moved = session_deadline(&server, peer.id).expect("a ping deadline");
    assert!(moved > first_ping, "the ack moved the ping later");

    // The old entry fires: nothing is due, nothing is sent, and the
    // server's next wake-up is the moved deadline.
    server.handle_timeout(first_ping);
    assert!(
        drain(&mut server, first_ping, peer.id).is_empty(),
        "pinged before the moved deadline"
    );
    assert_eq!(server.poll_timeout(), Some(moved));

    server.handle_timeout(moved);
    assert!(
        !drain(&mut server, moved, peer.id).is_empty(),
        "no ping at the moved deadline"
    );
}

#[test]
fn timer_heap_stays_bounded_as_connections_come_and_go() {
    let mut server = Server::new(ServerConfig::default());
    let mut now = crate::testing::test_now();
    let mut peak = 0;
    // More connections than the heap's slack, so only compaction keeps it
    // bounded.
    for n in 0..1_500 {
        now += Duration::from_millis(1);
        let peer = handshaken(&mut server, now, n);
        server.handle_eof(now, peer.id);
        drain(&mut server, now, peer.id);
        assert!(server.is_closed(peer.id));
        assert!(server.remove(now, peer.id).is_some());
        peak = peak.max(server.timers.len());
    }
    assert_eq!(server.connection_count(), 0);
    // The slack, the one live connection twice, and the few entries one
    // call may push before it compacts.
    assert!(peak <= 1024 + 2 + 4, "timer heap reached {peak} entries");
}

#[test]
fn poll_ready_names_each_touched_connection_once() {
    let mut server = Server::new(ServerConfig::default());
    let now = crate::testing::test_now();
    let mut peers: Vec<Peer> = (0..4).map(|n| connected(&mut server, now, n)).collect();
    let _ = ready(&mut server);

    // Touched several times each, in this order: 2, 0, 2, 2, 0.
    for i in [2, 0, 2, 2, 0] {
        peers[i].ack(&mut server, now);
    }
    assert_eq!(ready(&mut server), vec![peers[2].id, peers[0].id]);
    assert_eq!(ready(&mut server), vec![], "named again without a touch");

    // Shutdown touches everyone once.
    let waiting = handshaken(&mut server, now, 99);
    server.shutdown(now);
    let mut named = ready(&mut server);
    named.sort();
    let mut all: Vec<SessionId> = peers.iter().map(|p| p.id).collect();
    all.push(waiting.id);
    all.sort();
    assert_eq!(named, all);
}

#[test]
fn poll_transmit_into_hands_out_the_same_bytes_in_one_reused_list() {
    let now = crate::testing::test_now();
    let mut a = Server::new(ServerConfig::default());
    let mut b = Server::new(ServerConfig::default());
    // Same seeds: both servers owe the same bytes.
    let mut pa = handshaken(&mut a, now, 1);
    let mut pb = handshaken(&mut b, now, 1);
    let connect = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([("app", Value::from("live"))]),
            args: vec![],
        }),
    };
    let create = |n: f64| Message::Command {
        encoding: Encoding::Amf0,
        command: Command::CreateStream { transaction_id: n },
    };
    let mut t = super::Transmit::default();
    let mut lists = Vec::new();
    for message in [connect, create(2.0), create(3.0)] {
        pa.send(&mut a, now, &message, 3);
        pb.send(&mut b, now, &message, 3);
        let want = drain(&mut a, now, pa.id);
        let mut got = Vec::new();
        while b.poll_transmit_into(now, pb.id, &mut t) {
            lists.push(t.bufs.as_ptr());
            for buf in t.bufs.drain(..) {
                got.extend_from_slice(&buf);
            }
        }
        assert!(
            !want.is_empty(),
            "nothing was owed: the test proves nothing"
        );
        assert_eq!(got, want);
    }
    assert!(lists.len() >= 3);
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "list reallocated");
    assert!(t.bufs.is_empty());
}

impl Peer {
    /// Sends `message` on message stream `stream` at `ts`.
    fn send_on(
        &mut self,
        server: &mut Server,
        now: Instant,
        message: &Message,
        csid: u32,
        stream: u32,
    ) {
        let raw = message
            .to_raw(csid, MediaTime::ZERO, stream)
            .expect("test message encodes");
        let mut bufs: Vec<Bytes> = Vec::new();
        self.encoder.write(&raw, &mut bufs);
        let bytes: Vec<u8> = bufs.concat();
        server
            .handle_input(now, self.id, &bytes)
            .expect("valid input");
    }
}

/// A connection that created stream 1 and sent `publish`/`play` of `name`.
fn on_stream(server: &mut Server, now: Instant, n: u64, verb: &str, name: &str) -> Peer {
    use crate::message::{Play, PublishKind};
    let mut peer = connected(server, now, n);
    let create = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::CreateStream {
            transaction_id: 2.0,
        },
    };
    peer.send(server, now, &create, 3);
    drain(server, now, peer.id);
    let command = match verb {
        "publish" => Command::Publish {
            transaction_id: 0.0,
            name: Some(name.to_owned()),
            kind: PublishKind::Live,
        },
        _ => Command::Play(Play {
            transaction_id: 0.0,
            name: name.to_owned(),
            start: -2.0,
            duration: -1.0,
            reset: true,
            options: None,
        }),
    };
    let msg = Message::Command {
        encoding: Encoding::Amf0,
        command,
    };
    peer.send_on(server, now, &msg, 8, 1);
    drain(server, now, peer.id);
    peer
}

#[test]
fn one_read_of_tiny_media_never_queues_frames_times_players_in_the_broker() {
    let now = crate::testing::test_now();
    let mut server = Server::new(ServerConfig::default());
    let mut publisher = on_stream(&mut server, now, 1, "publish", "flood");
    let players: Vec<Peer> = (0..20)
        .map(|n| on_stream(&mut server, now, 100 + n, "play", "flood"))
        .collect();
    // One 64 KiB read of 1-byte audio messages (2 bytes each on the wire
    // once the header compresses to one byte).
    let mut bytes = Vec::new();
    for _ in 0..32 * 1024 {
        let raw = Message::Audio(Bytes::from_static(&[0xAF]))
            .to_raw(4, MediaTime::ZERO, 1)
            .expect("encodes");
        let mut bufs: Vec<Bytes> = Vec::new();
        publisher.encoder.write(&raw, &mut bufs);
        bytes.extend(bufs.concat());
    }
    bytes.truncate(64 * 1024);
    server
        .handle_input(now, publisher.id, &bytes)
        .expect("valid input");
    // At most one event's fan-out (a frame to each player) waits in the
    // broker at once, and its room is not kept afterwards.
    let entry = crate::broker::OUTPUT_ENTRY_BYTES;
    let peak = server.broker().output_peak_memory();
    assert!(
        peak <= (players.len() + 1) * entry,
        "the broker's output queue peaked at {peak} bytes"
    );
    let kept = server.broker().output_memory();
    assert!(
        kept <= crate::broker::OUTPUT_KEEP_BYTES,
        "the broker keeps {kept} bytes of output queue after the burst"
    );
}

#[test]
fn one_read_is_handled_a_bounded_turn_at_a_time() {
    // A read of thousands of messages must not be one unbounded slice of
    // work: every other connection waits for it.
    let now = crate::testing::test_now();
    let mut server = Server::new(ServerConfig::default());
    let mut publisher = on_stream(&mut server, now, 1, "publish", "flood");
    let player = on_stream(&mut server, now, 100, "play", "flood");
    let mut bytes = Vec::new();
    for n in 0..4096u32 {
        let raw = Message::Audio(Bytes::from(vec![0xAF, 1, n as u8]))
            .to_raw(4, MediaTime::from_millis(n), 1)
            .expect("encodes");
        let mut bufs: Vec<Bytes> = Vec::new();
        publisher.encoder.write(&raw, &mut bufs);
        bytes.extend(bufs.concat());
    }
    server
        .handle_input(now, publisher.id, &bytes)
        .expect("valid input");
    let first = server.session(player.id).map_or(0, |s| s.backlog_entries());
    assert!(
        (1..=crate::session::MAX_MESSAGES_PER_TURN).contains(&first),
        "one turn handed the player {first} frames"
    );
    assert!(server.has_pending_input(publisher.id));
    // The runtime gives other connections a turn, then continues; the
    // rest arrives in order, none lost.
    let mut turns = 1;
    while server.has_pending_input(publisher.id) {
        server
            .handle_input(now, publisher.id, &[])
            .expect("valid input");
        turns += 1;
        assert!(turns < 1000, "the pending input never drains");
    }
    let total = server.session(player.id).map_or(0, |s| s.backlog_entries());
    assert_eq!(total, 4096);
    assert!(turns >= 4096 / crate::session::MAX_MESSAGES_PER_TURN);
}

#[test]
fn a_frame_the_merge_window_holds_sets_the_servers_next_wake_up_to_the_window() {
    let window = Duration::from_millis(40);
    let mut config = ServerConfig::default();
    config.session.merge_window = window;
    let mut server = Server::new(config);
    let now = crate::testing::test_now();
    let mut publisher = on_stream(&mut server, now, 1, "publish", "held");
    let player = on_stream(&mut server, now, 100, "play", "held");
    let _ = ready(&mut server);
    drain(&mut server, now, publisher.id);

    // An audio frame: droppable, no keyframe, far below the size bound.
    let at = now + Duration::from_millis(5);
    let payload = Bytes::from_static(&[0xAF, 0x01, 0x5A, 0x5A, 0x5A]);
    publisher.send_on(&mut server, at, &Message::Audio(payload), 4, 1);
    assert!(
        !ready(&mut server).contains(&player.id),
        "the window holds the player: it is not named ready"
    );
    // The publisher's own read set the player's merge deadline on the
    // server's timer heap: no other input comes before it is due.
    let due = at + window;
    assert_eq!(server.poll_timeout(), Some(due));
    server.handle_timeout(due);
    assert!(ready(&mut server).contains(&player.id));
    let out = drain(&mut server, due, player.id);
    assert!(
        out.windows(3).any(|w| w == [0x5A, 0x5A, 0x5A]),
        "the held frame was not written when its window passed"
    );
}
