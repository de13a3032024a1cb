//! Outbound connections between whole servers in memory: an edge pulling a
//! stream from an origin, an origin pushing one to another server, and a
//! dial that fails. Each server is the core's `Server`, joined to the
//! others and to RTMP clients by in-memory pipes that this file's small
//! runtime drives the way the real ones do (dial, write while there is
//! output, read, remove what closed).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::media::{select_video_track, TrackSelection};
use tincan_core::outbound::{Link, OutboundConfig};
use tincan_core::server::{Server, ServerConfig, ServerEvent, Transport};
use tincan_core::session::CAPS_EX_MULTITRACK;
use tincan_core::session::{SessionError, Transmit};
use tincan_core::time::MediaTime;
use tincan_core::via::LoopGuard;
use tincan_tests::sim::media::{
    avc_inter, avc_keyframe, avc_sequence_header, multitrack_frames, multitrack_sequence_start,
};

/// One end of a pipe.
enum End {
    Server(usize, SessionId),
    Client(usize),
}

struct Pipe {
    a: End,
    b: End,
    closed: bool,
    /// Nothing of what `a` sends is taken: a peer that stopped reading.
    stalled: bool,
}

struct World {
    now: Instant,
    servers: Vec<Server>,
    clients: Vec<(ClientSession, Vec<ClientEvent>)>,
    pipes: Vec<Pipe>,
    events: Vec<Vec<ServerEvent>>,
    seed: u64,
    /// Hand everything a pipe carries in one step to its reader as one
    /// input, as one socket read of a real runtime would.
    coalesce: bool,
}

fn addr(n: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, n as u8 + 1), 1935))
}

impl World {
    fn new(servers: usize) -> Self {
        World {
            now: Instant::now(),
            servers: (0..servers)
                .map(|_| Server::new(ServerConfig::default()))
                .collect(),
            clients: Vec::new(),
            pipes: Vec::new(),
            events: vec![Vec::new(); servers],
            seed: 1,
            coalesce: false,
        }
    }

    fn entropy(&mut self) -> SeededEntropy {
        self.seed += 1;
        SeededEntropy::new(self.seed)
    }

    /// A client connected to server `s`.
    fn client(&mut self, s: usize, role: Role, stream: &str) -> usize {
        self.client_with(s, role, stream, None)
    }

    /// A client that announces `caps_ex` (Enhanced RTMP v2) in `connect`.
    fn client_with(&mut self, s: usize, role: Role, stream: &str, caps_ex: Option<u32>) -> usize {
        let mut e = self.entropy();
        let id = self.servers[s]
            .accept(self.now, Some(addr(100 + self.clients.len())), &mut e)
            .unwrap();
        let mut config = ClientConfig::new("rtmp://127.0.0.1/live", "live", stream, role);
        config.caps_ex = caps_ex;
        let mut e = self.entropy();
        self.clients
            .push((ClientSession::new(self.now, config, &mut e), Vec::new()));
        let c = self.clients.len() - 1;
        self.pipes.push(Pipe {
            a: End::Client(c),
            b: End::Server(s, id),
            closed: false,
            stalled: false,
        });
        self.run();
        c
    }

    fn outbound(
        &mut self,
        s: usize,
        target: usize,
        role: Role,
        stream: &str,
        link: Link,
    ) -> SessionId {
        let config = OutboundConfig {
            target: format!("server{target}"),
            client: ClientConfig::new("rtmp://127.0.0.1/live", "live", stream, role),
            link,
            tls: None,
        };
        let mut e = self.entropy();
        let id = self.servers[s].connect(self.now, config, &mut e).unwrap();
        self.run();
        id
    }

    /// Everything `end` has to send.
    fn take(&mut self, end: &End) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut t = Transmit::default();
        match *end {
            End::Server(s, id) => {
                while self.servers[s].poll_transmit_into(self.now, id, &mut t) {
                    out.append(&mut t.bufs);
                }
            }
            End::Client(c) => {
                while self.clients[c].0.poll_transmit_into(self.now, &mut t) {
                    out.append(&mut t.bufs);
                }
            }
        }
        out
    }

    fn give(&mut self, end: &End, data: &[Bytes]) {
        let joined;
        let data = if self.coalesce && data.len() > 1 {
            joined = [Bytes::from(data.concat())];
            &joined[..]
        } else {
            data
        };
        match *end {
            End::Server(s, id) => {
                for b in data {
                    let _ = self.servers[s].handle_input(self.now, id, b);
                }
                while self.servers[s].has_pending_input(id) {
                    let _ = self.servers[s].handle_input(self.now, id, &[]);
                }
            }
            End::Client(c) => {
                for b in data {
                    let _ = self.clients[c].0.handle_input(self.now, b);
                }
                let (client, events) = &mut self.clients[c];
                events.extend(std::iter::from_fn(|| client.poll_event()));
            }
        }
    }

    fn closed(&self, end: &End) -> bool {
        match *end {
            End::Server(s, id) => self.servers[s].is_closed(id),
            End::Client(c) => self.clients[c].0.is_closed(),
        }
    }

    fn eof(&mut self, end: &End) {
        match *end {
            End::Server(s, id) => {
                self.servers[s].handle_eof(self.now, id);
                self.servers[s].remove(self.now, id);
            }
            End::Client(c) => self.clients[c].0.handle_eof(self.now),
        }
    }

    fn run(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for s in 0..self.servers.len() {
                while let Some(dial) = self.servers[s].poll_dial() {
                    moved = true;
                    let target = dial
                        .target
                        .strip_prefix("server")
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n < self.servers.len());
                    match target {
                        Some(t) => {
                            let mut e = self.entropy();
                            let accepted = self.servers[t]
                                .accept(self.now, Some(addr(s)), &mut e)
                                .unwrap();
                            self.servers[s].handle_dialed(self.now, dial.id, Ok(addr(t)));
                            self.pipes.push(Pipe {
                                a: End::Server(s, dial.id),
                                b: End::Server(t, accepted),
                                closed: false,
                                stalled: false,
                            });
                        }
                        None => self.servers[s].handle_dialed(
                            self.now,
                            dial.id,
                            Err("connection refused".to_owned()),
                        ),
                    }
                }
            }
            let mut pipes = std::mem::take(&mut self.pipes);
            for p in pipes.iter_mut().filter(|p| !p.closed) {
                let ab = if p.stalled {
                    Vec::new()
                } else {
                    self.take(&p.a)
                };
                let ba = self.take(&p.b);
                moved |= !ab.is_empty() || !ba.is_empty();
                self.give(&p.b, &ab);
                self.give(&p.a, &ba);
                let (ca, cb) = (self.closed(&p.a), self.closed(&p.b));
                if ca || cb {
                    p.closed = true;
                    moved = true;
                    for (closed, other, this) in [(ca, &p.b, &p.a), (cb, &p.a, &p.b)] {
                        if closed {
                            if let End::Server(s, id) = *this {
                                self.servers[s].remove(self.now, id);
                            }
                            self.eof(other);
                        }
                    }
                }
            }
            self.pipes = pipes;
            for (s, server) in self.servers.iter_mut().enumerate() {
                server.handle_timeout(self.now);
                // A dial that failed closes a slot no pipe holds.
                let ids: Vec<SessionId> = server.connection_ids().collect();
                for id in ids {
                    if server.is_closed(id) {
                        server.remove(self.now, id);
                        moved = true;
                    }
                }
                while server.poll_ready().is_some() {}
                self.events[s].extend(std::iter::from_fn(|| server.poll_event()));
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let steps = (by.as_millis() / 10).max(1);
        for _ in 0..steps {
            self.now += Duration::from_millis(10);
            self.run();
        }
    }

    /// Server `s`'s outbound connection `id` stops being read by its
    /// remote server.
    fn stall(&mut self, s: usize, id: SessionId) {
        for p in &mut self.pipes {
            if matches!(p.a, End::Server(a, i) if a == s && i == id) {
                p.stalled = true;
            }
        }
    }

    fn publish(&mut self, c: usize, ts: u32, payload: Bytes) {
        self.clients[c]
            .0
            .send_media(MediaKind::Video, MediaTime::from_millis(ts), payload)
            .expect("publishing");
        self.run();
    }

    fn received(&self, c: usize) -> Vec<Bytes> {
        self.clients[c]
            .1
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Media { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }
}

fn stream() -> Vec<Bytes> {
    vec![
        avc_sequence_header(b"sps"),
        avc_keyframe(b"key"),
        avc_inter(b"p1"),
        avc_inter(b"p2"),
    ]
}

#[test]
fn an_edge_pulls_a_stream_from_its_origin_for_its_players() {
    let mut w = World::new(2);
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = stream();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    let relay = w.outbound(
        1,
        0,
        Role::Play,
        "cam",
        Link::Pull {
            app: "live".into(),
            name: "cam".into(),
            priority: 0,
        },
    );
    let player = w.client(1, Role::Play, "cam");
    w.publish(publisher, 40, frames[2].clone());
    w.publish(publisher, 80, frames[3].clone());
    assert_eq!(w.received(player), frames);
    let now = w.now;
    let stats = w.servers[1].stream_stats(now, "live", "cam").unwrap();
    assert_eq!(stats.publisher, Some(relay));
    let conn = w.servers[1].connection_stats(now, relay).unwrap();
    assert_eq!(conn.transport, Transport::RtmpOut);
    assert!(conn.input.bytes > 0);
    assert!(w.events[1].iter().any(
        |e| matches!(e, ServerEvent::Outbound { id, event: ClientEvent::Playing } if *id == relay)
    ));
}

#[test]
fn an_edge_keeps_the_sequence_header_that_arrives_with_play_start() {
    let mut w = World::new(2);
    w.coalesce = true;
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = stream();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    // The origin's Play.Start and its fast start (sequence header,
    // keyframe) reach the edge in one read.
    w.outbound(
        1,
        0,
        Role::Play,
        "cam",
        Link::Pull {
            app: "live".into(),
            name: "cam".into(),
            priority: 0,
        },
    );
    let player = w.client(1, Role::Play, "cam");
    w.publish(publisher, 40, frames[2].clone());
    assert_eq!(w.received(player), frames[..3]);
}

#[test]
fn an_origin_pushes_a_stream_to_another_server() {
    let mut w = World::new(2);
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = stream();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    let player = w.client(1, Role::Play, "pushed");
    let push = w.outbound(
        0,
        1,
        Role::Publish,
        "pushed",
        Link::Push {
            app: "live".into(),
            name: "cam".into(),
        },
    );
    w.publish(publisher, 40, frames[2].clone());
    w.publish(publisher, 80, frames[3].clone());
    // The push starts from the origin's fast start: the whole GOP arrives.
    assert_eq!(w.received(player), frames);
    assert!(w.events[0].iter().any(
        |e| matches!(e, ServerEvent::Outbound { id, event: ClientEvent::Publishing } if *id == push)
    ));
    let now = w.now;
    assert_eq!(
        w.servers[0]
            .stream_stats(now, "live", "cam")
            .unwrap()
            .subscribers,
        1
    );
}

#[test]
fn a_dial_that_fails_closes_the_connection_with_the_reason() {
    let mut w = World::new(1);
    let id = w.outbound(0, 7, Role::Play, "cam", Link::None);
    w.advance(Duration::from_millis(50));
    assert!(w.servers[0].connection_stats(w.now, id).is_none());
    let closed = w.events[0].iter().find_map(|e| match e {
        ServerEvent::Closed { id: c, error, .. } if *c == id => Some(error.clone()),
        _ => None,
    });
    let Some(Some(SessionError::Outbound(why))) = closed else {
        panic!("a Closed event with the dial error, got {:?}", w.events[0]);
    };
    assert!(why.contains("connection refused"), "{why}");
}

#[test]
fn edge_players_continue_through_a_republish_at_the_origin() {
    let mut w = World::new(2);
    let first = w.client(0, Role::Publish, "cam");
    w.publish(first, 0, avc_keyframe(b"first"));
    w.outbound(
        1,
        0,
        Role::Play,
        "cam",
        Link::Pull {
            app: "live".into(),
            name: "cam".into(),
            priority: 0,
        },
    );
    let player = w.client(1, Role::Play, "cam");
    w.clients[first].0.close("encoder restart");
    w.run();
    w.advance(Duration::from_secs(1));
    assert_eq!(w.servers[0].broker().published_count(), 0);
    // The relay keeps playing the origin's name, so the edge stream stays.
    assert_eq!(w.servers[1].broker().published_count(), 1);
    let second = w.client(0, Role::Publish, "cam");
    w.publish(second, 0, avc_keyframe(b"second"));
    w.publish(second, 40, avc_inter(b"after"));
    let got = w.received(player);
    assert_eq!(
        got,
        [
            avc_keyframe(b"first"),
            avc_keyframe(b"second"),
            avc_inter(b"after")
        ]
    );
    assert!(!w.clients[player].0.is_closed());
}

/// Server 0 is node `a`; server 1 has a publisher of `cam` and pushes it
/// to server 0 announcing relay chain `via`. What server 1 heard back.
fn push_with_chain(via: &[&str]) -> Vec<ClientEvent> {
    let mut w = World::new(2);
    let mut config = ServerConfig::default();
    config.session.loop_guard = LoopGuard {
        node_id: Some("a".into()),
        hop_limit: 4,
    };
    w.servers[0].set_config(config);
    let publisher = w.client(1, Role::Publish, "cam");
    w.publish(publisher, 0, stream()[0].clone());
    let mut client = ClientConfig::new("rtmp://127.0.0.1/live", "live", "back", Role::Publish);
    client.via = via.iter().map(|s| s.to_string()).collect();
    let config = OutboundConfig {
        target: "server0".into(),
        client,
        link: Link::Push {
            app: "live".into(),
            name: "cam".into(),
        },
        tls: None,
    };
    let mut e = w.entropy();
    let id = w.servers[1].connect(w.now, config, &mut e).unwrap();
    w.run();
    w.events[1]
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Outbound { id: o, event } if *o == id => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn rejected_as_loop(events: &[ClientEvent]) -> bool {
    events.iter().any(|e| {
        matches!(e, ClientEvent::Status(s)
            if s.code == "NetConnection.Connect.Rejected" && s.description.contains("relay loop"))
    })
}

#[test]
fn a_relay_whose_chain_names_the_server_is_refused_as_a_loop() {
    let events = push_with_chain(&["a", "b"]);
    assert!(rejected_as_loop(&events), "{events:?}");
    assert!(!events.contains(&ClientEvent::Publishing), "{events:?}");
}

#[test]
fn a_relay_chain_at_the_hop_limit_is_refused() {
    let events = push_with_chain(&["w", "x", "y", "z"]);
    assert!(rejected_as_loop(&events), "{events:?}");
}

#[test]
fn a_relay_chain_without_the_server_is_accepted() {
    let events = push_with_chain(&["b"]);
    assert!(events.contains(&ClientEvent::Publishing), "{events:?}");
}

/// Two HEVC video tracks: a sequence start, a keyframe and two inter
/// frames, each message carrying both tracks.
fn two_tracks() -> Vec<Bytes> {
    vec![
        multitrack_sequence_start(b"hvc1", &[(0, b"cfg-zero"), (1, b"cfg-one")]),
        multitrack_frames(true, b"hvc1", &[(0, b"key-zero"), (1, b"key-one")]),
        multitrack_frames(false, b"hvc1", &[(0, b"p1-zero"), (1, b"p1-one")]),
        multitrack_frames(false, b"hvc1", &[(0, b"p2-zero"), (1, b"p2-one")]),
    ]
}

/// What a legacy player gets of `frames`: track 0 as single-track packets.
fn track_zero(frames: &[Bytes]) -> Vec<Bytes> {
    frames
        .iter()
        .map(|f| match select_video_track(f, 0) {
            TrackSelection::Rewritten { head, body } => {
                let mut v = head.as_slice().to_vec();
                v.extend_from_slice(&body);
                Bytes::from(v)
            }
            other => panic!("not a multitrack message: {other:?}"),
        })
        .collect()
}

#[test]
fn a_pull_brings_every_track_so_edge_players_are_served_as_at_the_origin() {
    let mut w = World::new(2);
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = two_tracks();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    w.outbound(
        1,
        0,
        Role::Play,
        "cam",
        Link::Pull {
            app: "live".into(),
            name: "cam".into(),
            priority: 0,
        },
    );
    let multitrack = w.client_with(1, Role::Play, "cam", Some(CAPS_EX_MULTITRACK));
    let legacy = w.client(1, Role::Play, "cam");
    w.publish(publisher, 40, frames[2].clone());
    w.publish(publisher, 80, frames[3].clone());
    assert_eq!(w.received(multitrack), frames);
    assert_eq!(w.received(legacy), track_zero(&frames));
}

#[test]
fn a_push_forwards_every_track_to_a_destination_that_announced_multitrack() {
    let mut w = World::new(2);
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = two_tracks();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    let multitrack = w.client_with(1, Role::Play, "pushed", Some(CAPS_EX_MULTITRACK));
    let legacy = w.client(1, Role::Play, "pushed");
    w.outbound(
        0,
        1,
        Role::Publish,
        "pushed",
        Link::Push {
            app: "live".into(),
            name: "cam".into(),
        },
    );
    w.publish(publisher, 40, frames[2].clone());
    w.publish(publisher, 80, frames[3].clone());
    // tincan's `_result` announces Multitrack: the destination gets every
    // track and serves its own players as the origin would.
    assert_eq!(w.received(multitrack), frames);
    assert_eq!(w.received(legacy), track_zero(&frames));
}

#[test]
fn a_push_picks_the_track_its_name_asks_for() {
    let mut w = World::new(2);
    let publisher = w.client(0, Role::Publish, "cam");
    let frames = two_tracks();
    w.publish(publisher, 0, frames[0].clone());
    w.publish(publisher, 0, frames[1].clone());
    let multitrack = w.client_with(1, Role::Play, "one", Some(CAPS_EX_MULTITRACK));
    w.outbound(
        0,
        1,
        Role::Publish,
        "one",
        Link::Push {
            app: "live".into(),
            name: "cam?videoTrack=1".into(),
        },
    );
    w.publish(publisher, 40, frames[2].clone());
    let expected: Vec<Bytes> = frames[..3]
        .iter()
        .map(|f| match select_video_track(f, 1) {
            TrackSelection::Rewritten { head, body } => {
                let mut v = head.as_slice().to_vec();
                v.extend_from_slice(&body);
                Bytes::from(v)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    // Track 1 alone arrives, as single-track packets, even at a
    // destination that could take every track.
    assert_eq!(w.received(multitrack), expected);
}

#[test]
fn a_push_destination_that_stops_reading_drops_frames_without_slowing_anyone() {
    let mut w = World::new(3);
    let publisher = w.client(0, Role::Publish, "cam");
    w.publish(publisher, 0, avc_sequence_header(b"sps"));
    w.publish(publisher, 0, avc_keyframe(b"key"));
    let local = w.client(0, Role::Play, "cam");
    let push = |w: &mut World, to: usize| {
        w.outbound(
            0,
            to,
            Role::Publish,
            "cam",
            Link::Push {
                app: "live".into(),
                name: "cam".into(),
            },
        )
    };
    let fast = push(&mut w, 1);
    let slow = push(&mut w, 2);
    let remote = w.client(1, Role::Play, "cam");
    w.stall(0, slow);
    // Ten seconds of 64 KiB frames at 25 per second (13 Mbit/s), a
    // keyframe every second.
    let mut sent = Vec::new();
    for i in 1..250u32 {
        w.now += Duration::from_millis(40);
        let body = vec![i as u8; 64 * 1024];
        let frame = if i % 25 == 0 {
            avc_keyframe(&body)
        } else {
            avc_inter(&body)
        };
        sent.push(frame.clone());
        w.publish(publisher, i * 40, frame);
    }
    // The local player and the destination that reads got every frame.
    let tail = |got: Vec<Bytes>| got[got.len() - sent.len()..].to_vec();
    assert_eq!(tail(w.received(local)), sent);
    assert_eq!(tail(w.received(remote)), sent);
    // The one that stopped reading lost frames instead of growing.
    let now = w.now;
    let stats = w.servers[0]
        .connection_stats(now, slow)
        .expect("still open");
    assert!(stats.dropped_frames > 0, "{stats:?}");
    let fast_stats = w.servers[0].connection_stats(now, fast).unwrap();
    assert_eq!(fast_stats.dropped_frames, 0, "{fast_stats:?}");
}
