//! Enhanced RTMP v2 through the whole core server in memory, with the
//! core's own `ClientSession` at the other end of each connection:
//! the `connect` negotiation as a client sees it, multitrack publishing
//! through the broker (fast start included) to a legacy player, a player
//! that announced multitrack and one that picked a track, and reconnect
//! requests (on demand and before the graceful shutdown notice).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};
use tincan_core::session::{EnhancedCaps, Transmit, CAPS_EX_MULTITRACK, CAPS_EX_RECONNECT};
use tincan_core::time::MediaTime;

/// One server and its clients, joined by in-memory pipes.
struct World {
    now: Instant,
    server: Server,
    clients: Vec<(ClientSession, SessionId, Vec<ClientEvent>)>,
    seed: u64,
}

impl World {
    fn new(config: ServerConfig) -> Self {
        World {
            now: Instant::now(),
            server: Server::new(config),
            clients: Vec::new(),
            seed: 1,
        }
    }

    fn entropy(&mut self) -> SeededEntropy {
        self.seed += 1;
        SeededEntropy::new(self.seed)
    }

    /// A client on `stream` with `caps_ex` announced (if any), connected.
    fn client(&mut self, role: Role, stream: &str, caps_ex: Option<u32>) -> usize {
        let mut e = self.entropy();
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000 + self.clients.len() as u16));
        let id = self.server.accept(self.now, Some(peer), &mut e).unwrap();
        let mut config = ClientConfig::new("rtmp://127.0.0.1/live", "live", stream, role);
        config.caps_ex = caps_ex;
        let mut e = self.entropy();
        let session = ClientSession::new(self.now, config, &mut e);
        self.clients.push((session, id, Vec::new()));
        self.run();
        self.clients.len() - 1
    }

    /// Moves bytes both ways until nothing moves.
    fn run(&mut self) {
        let mut t = Transmit::default();
        for _ in 0..100 {
            let mut moved = false;
            for (client, id, events) in &mut self.clients {
                let mut up = Vec::new();
                while client.poll_transmit_into(self.now, &mut t) {
                    up.append(&mut t.bufs);
                }
                for b in &up {
                    let _ = self.server.handle_input(self.now, *id, b);
                }
                while self.server.has_pending_input(*id) {
                    let _ = self.server.handle_input(self.now, *id, &[]);
                }
                let mut down = Vec::new();
                while self.server.poll_transmit_into(self.now, *id, &mut t) {
                    down.append(&mut t.bufs);
                }
                for b in &down {
                    let _ = client.handle_input(self.now, b);
                }
                events.extend(std::iter::from_fn(|| client.poll_event()));
                moved |= !up.is_empty() || !down.is_empty();
            }
            while self.server.poll_ready().is_some() {}
            if !moved {
                return;
            }
        }
    }

    fn events(&mut self, c: usize) -> Vec<ClientEvent> {
        std::mem::take(&mut self.clients[c].2)
    }

    fn publish(&mut self, c: usize, kind: MediaKind, ts: u32, payload: Bytes) {
        self.clients[c]
            .0
            .send_media(kind, MediaTime::from_millis(ts), payload)
            .expect("publishing");
        self.run();
    }
}

/// The media a client received, as (kind, payload).
fn media(events: &[ClientEvent]) -> Vec<(MediaKind, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media { kind, payload, .. } => Some((*kind, payload.to_vec())),
            _ => None,
        })
        .collect()
}

fn status_codes(events: &[ClientEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status(s) => Some(s.code.as_str()),
            ClientEvent::ReconnectRequest { .. } => Some("<reconnect request>"),
            _ => None,
        })
        .collect()
}

/// A ManyTracks message of `fourcc` tracks 0 and 1 (`ex` is the first byte).
fn two_track(ex: u8, packet_type: u8, fourcc: &[u8; 4], t0: &[u8], t1: &[u8]) -> Bytes {
    let mut v = vec![ex, 0x10 | packet_type];
    v.extend_from_slice(fourcc);
    for (id, body) in [(0u8, t0), (1, t1)] {
        v.push(id);
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
    }
    Bytes::from(v)
}

#[test]
fn a_client_sees_the_servers_enhanced_rtmp_answer() {
    let mut w = World::new(ServerConfig::default());
    let c = w.client(Role::Connect, "x", Some(CAPS_EX_RECONNECT));
    let caps = w.clients[c].0.server_caps().clone();
    assert_eq!(caps, EnhancedCaps::server());
    assert!(caps.supports_multitrack() && caps.supports_reconnect());
    // And the server kept what the client announced.
    let id = w.clients[c].1;
    let session = w.server.session(id).expect("session");
    assert!(session.client_caps().supports_reconnect());
    assert!(!session.client_caps().supports_multitrack());
}

#[test]
fn multitrack_publish_reaches_each_player_in_the_form_it_can_play() {
    let mut w = World::new(ServerConfig::default());
    let publisher = w.client(Role::Publish, "cam", None);
    assert!(w.events(publisher).contains(&ClientEvent::Publishing));
    let key = |fill: u8| [vec![0, 0, 0x28], vec![fill; 20_000]].concat();
    let sent = [
        (
            MediaKind::Video,
            two_track(0x96, 0, b"avc1", b"cfg0", b"cfg1"),
        ),
        (
            MediaKind::Audio,
            two_track(0x95, 0, b"mp4a", &[0x12, 0x10], &[0x11, 0x90]),
        ),
        (
            MediaKind::Video,
            two_track(0x96, 1, b"avc1", &key(0xA0), &key(0xA1)),
        ),
        (
            MediaKind::Audio,
            two_track(0x95, 1, b"mp4a", &[0x21, 0], &[0x21, 1]),
        ),
    ];
    // The first two players join after config and keyframe: fast start.
    for (i, (kind, payload)) in sent.iter().take(3).enumerate() {
        w.publish(publisher, *kind, 40 * i as u32, payload.clone());
    }
    let legacy = w.client(Role::Play, "cam", None);
    let multi = w.client(Role::Play, "cam", Some(CAPS_EX_MULTITRACK));
    let picked = w.client(Role::Play, "cam?videoTrack=1&audioTrack=1", None);
    let (kind, payload) = &sent[3];
    w.publish(publisher, *kind, 120, payload.clone());

    let v = MediaKind::Video;
    let a = MediaKind::Audio;
    let legacy_of = |cfg: &[u8], key: Vec<u8>, asc: &[u8], aac: &[u8]| {
        vec![
            (v, [&[0x17, 0, 0, 0, 0][..], cfg].concat()),
            (a, [&[0xAF, 0][..], asc].concat()),
            (v, [vec![0x17, 1], key].concat()),
            (a, [&[0xAF, 1][..], aac].concat()),
        ]
    };
    let got = media(&w.events(legacy));
    assert_eq!(
        got,
        legacy_of(b"cfg0", key(0xA0), &[0x12, 0x10], &[0x21, 0])
    );
    let got = media(&w.events(picked));
    assert_eq!(
        got,
        legacy_of(b"cfg1", key(0xA1), &[0x11, 0x90], &[0x21, 1])
    );
    let as_sent: Vec<(MediaKind, Vec<u8>)> = sent.iter().map(|(k, p)| (*k, p.to_vec())).collect();
    assert_eq!(media(&w.events(multi)), as_sent);
}

#[test]
fn a_reconnect_request_goes_only_to_clients_that_announced_it() {
    let mut w = World::new(ServerConfig::default());
    let capable = w.client(Role::Play, "cam", Some(CAPS_EX_RECONNECT));
    let legacy = w.client(Role::Play, "cam", None);
    w.events(capable);
    w.events(legacy);
    let (now, id) = (w.now, w.clients[capable].1);
    assert!(w.server.request_reconnect(
        now,
        id,
        Some("rtmp://edge2.example.com/live"),
        "moving you"
    ));
    let id = w.clients[legacy].1;
    assert!(!w.server.request_reconnect(now, id, None, "moving you"));
    w.run();
    assert_eq!(
        w.events(capable),
        [ClientEvent::ReconnectRequest {
            tc_url: Some("rtmp://edge2.example.com/live".to_owned()),
            description: "moving you".to_owned(),
        }]
    );
    assert_eq!(w.events(legacy), []);
    // The capable client is still served: it leaves when it is ready.
    assert!(w.clients[capable].0.is_active());
}

#[test]
fn graceful_shutdown_asks_capable_clients_to_reconnect_before_the_notice() {
    let config = ServerConfig {
        shutdown_reconnect_url: Some("rtmp://other.example.com/live".to_owned()),
        shutdown_deadline: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let mut w = World::new(config);
    let capable = w.client(Role::Play, "cam", Some(CAPS_EX_RECONNECT));
    let legacy = w.client(Role::Play, "cam", None);
    w.events(capable);
    w.events(legacy);
    let now = w.now;
    w.server.shutdown(now);
    w.run();
    let events = w.events(capable);
    assert_eq!(
        status_codes(&events),
        ["<reconnect request>", "NetConnection.Shutdown.Notify"]
    );
    assert!(events.contains(&ClientEvent::ReconnectRequest {
        tc_url: Some("rtmp://other.example.com/live".to_owned()),
        description: "server shutting down".to_owned(),
    }));
    assert_eq!(
        status_codes(&w.events(legacy)),
        ["NetConnection.Shutdown.Notify"]
    );

    // Without a target, nobody is asked to reconnect.
    let mut w = World::new(ServerConfig::default());
    let capable = w.client(Role::Play, "cam", Some(CAPS_EX_RECONNECT));
    w.events(capable);
    let now = w.now;
    w.server.shutdown(now);
    w.run();
    assert_eq!(
        status_codes(&w.events(capable)),
        ["NetConnection.Shutdown.Notify"]
    );
}
