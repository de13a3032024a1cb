//! Client sessions against the core [`Server`] in memory: what a publisher
//! sends, a player receives byte for byte, and a refusal surfaces as an
//! event, never a panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ClientConfig, ClientError, ClientEvent, ClientSession, MediaKind, Role, SendError};
use crate::auth::AuthKeys;
use crate::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use crate::entropy::SeededEntropy;
use crate::event::{Frame, FrameKind, SessionId};
use crate::handshake::{HandshakeConfig, ServerHandshake};
use crate::message::{Command, Connect, Encoding, Message, UserControl, Value};
use crate::server::{Server, ServerConfig};
use crate::session::Transmit;
use crate::testing::test_now;
use crate::time::MediaTime;

/// The tests' client config for `role` on `live/<stream>`.
fn config(role: Role, stream: &str) -> ClientConfig {
    ClientConfig::new("rtmp://test.invalid/live", "live", stream, role)
}

/// One client wired to one server connection, with everything it reported.
struct Link {
    id: SessionId,
    client: ClientSession,
    events: Vec<ClientEvent>,
    /// The server does not read from this client (a slow remote): its
    /// transmits wait.
    stalled: bool,
}

struct Net {
    server: Server,
    links: Vec<Link>,
    now: Instant,
}

impl Net {
    fn new(config: ServerConfig) -> Self {
        Net {
            server: Server::new(config),
            links: Vec::new(),
            now: test_now(),
        }
    }

    fn connect(&mut self, role: Role, stream: &str) -> usize {
        self.connect_with(config(role, stream))
    }

    fn connect_with(&mut self, config: ClientConfig) -> usize {
        let n = self.links.len() as u64;
        let addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, n as u8 + 1), 40_000));
        let id = self
            .server
            .accept(self.now, Some(addr), &mut SeededEntropy::new(n))
            .expect("accepted");
        let client = ClientSession::new(self.now, config, &mut SeededEntropy::new(100 + n));
        self.links.push(Link {
            id,
            client,
            events: Vec::new(),
            stalled: false,
        });
        self.run();
        self.links.len() - 1
    }

    /// Moves bytes both ways until nobody has anything more to say.
    fn run(&mut self) {
        let mut t = Transmit::default();
        for _ in 0..1000 {
            let mut moved = false;
            for link in self.links.iter_mut().filter(|l| !l.stalled) {
                while link.client.poll_transmit_into(self.now, &mut t) {
                    moved = true;
                    for b in t.bufs.drain(..) {
                        // The server's own refusals are the client's
                        // business: they arrive as statuses.
                        let _ = self.server.handle_input(self.now, link.id, &b);
                    }
                }
            }
            while self.server.poll_ready().is_some() {}
            for link in &mut self.links {
                while let Some(t) = self.server.poll_transmit(self.now, link.id) {
                    moved = true;
                    for b in t.bufs {
                        link.client
                            .handle_input(self.now, &b)
                            .expect("the tincan server speaks correct RTMP");
                    }
                }
                while let Some(e) = link.client.poll_event() {
                    link.events.push(e);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the link never went quiet");
    }

    fn link(&mut self, i: usize) -> &mut Link {
        &mut self.links[i]
    }
}

fn avc_frames() -> Vec<(MediaKind, u32, Bytes)> {
    vec![
        // AVC sequence header (keyframe, packet type 0).
        (
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0]),
        ),
        // AAC sequence header.
        (
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        ),
        // A keyframe large enough to span several chunks.
        (MediaKind::Video, 0, {
            let mut v = vec![0x17, 1, 0, 0, 0, 0, 0, 0x20, 0x04, 0x65];
            v.extend((0..0x2000u32).map(|i| (i * 7) as u8));
            Bytes::from(v)
        }),
        (
            MediaKind::Audio,
            21,
            Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]),
        ),
        (
            MediaKind::Video,
            33,
            Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]),
        ),
    ]
}

#[test]
fn publisher_and_player_reach_their_start_events() {
    let mut net = Net::new(ServerConfig::default());
    let p = net.connect(Role::Publish, "cam");
    let v = net.connect(Role::Play, "cam");
    assert!(net.link(p).events.contains(&ClientEvent::Publishing));
    assert!(net.link(v).events.contains(&ClientEvent::Playing));
    assert!(net.link(p).events.contains(&ClientEvent::Connected));
    assert!(net.link(p).client.stream_id() > 0);
}

#[test]
fn player_receives_published_frames_byte_identical() {
    let mut net = Net::new(ServerConfig::default());
    let p = net.connect(Role::Publish, "cam");
    let v = net.connect(Role::Play, "cam");
    let frames = avc_frames();
    for (kind, ts, payload) in &frames {
        net.link(p)
            .client
            .send_media(*kind, MediaTime::from_millis(*ts), payload.clone())
            .expect("publishing");
    }
    net.run();
    let got: Vec<(MediaKind, u32, Bytes)> = net
        .link(v)
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media {
                kind,
                timestamp,
                payload,
            } => Some((*kind, timestamp.as_millis(), payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(got, frames);
}

#[test]
fn metadata_sent_as_data_frame_reaches_a_late_player() {
    let mut net = Net::new(ServerConfig::default());
    let p = net.connect(Role::Publish, "cam");
    // "onMetaData" then an empty ECMA array, as an FLV script tag body.
    let body: &[u8] = &[
        0x02, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0x08, 0, 0, 0, 0,
        0, 0, 9,
    ];
    net.link(p)
        .client
        .send_data(MediaTime::ZERO, body)
        .expect("publishing");
    net.run();
    let v = net.connect(Role::Play, "cam");
    let data: Vec<Bytes> = net
        .link(v)
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Data { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect();
    assert!(data.contains(&Bytes::from_static(body)), "{data:?}");
}

#[test]
fn refused_connect_surfaces_as_status_then_closed() {
    let mut config = ServerConfig::default();
    config.session.auth_keys = AuthKeys::new([b"secret".to_vec()]);
    let mut net = Net::new(config);
    let p = net.connect(Role::Publish, "cam");
    let events = &net.link(p).events;
    let status = events.iter().find_map(|e| match e {
        ClientEvent::Status(s) => Some(s.clone()),
        _ => None,
    });
    let status = status.expect("a status for the refusal");
    assert_eq!(status.level, "error");
    assert_eq!(status.code, "NetConnection.Connect.Rejected");
    assert!(matches!(events.last(), Some(ClientEvent::Closed(_))));
    assert!(!events.contains(&ClientEvent::Publishing));
}

#[test]
fn second_publisher_without_release_gets_bad_name_and_closes() {
    let mut net = Net::new(ServerConfig::default());
    net.connect(Role::Publish, "cam");
    let n = net.links.len() as u64;
    let id = net
        .server
        .accept(net.now, None, &mut SeededEntropy::new(n))
        .expect("accepted");
    let mut config = ClientConfig::new("rtmp://test.invalid/live", "live", "cam", Role::Publish);
    config.release_stream = false;
    let client = ClientSession::new(net.now, config, &mut SeededEntropy::new(7));
    net.links.push(Link {
        id,
        client,
        events: Vec::new(),
        stalled: false,
    });
    net.run();
    let events = &net.links[1].events;
    assert!(
        events.iter().any(|e| matches!(e,
            ClientEvent::Status(s) if s.code == "NetStream.Publish.BadName")),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(ClientEvent::Closed(_))));
    assert_eq!(
        net.links[1].client.send_media(
            MediaKind::Video,
            MediaTime::ZERO,
            Bytes::from_static(&[0x17])
        ),
        Err(SendError::Closed)
    );
}

#[test]
fn media_before_publish_start_is_refused() {
    let mut client = ClientSession::new(
        test_now(),
        ClientConfig::new("rtmp://x.invalid/live", "live", "cam", Role::Publish),
        &mut SeededEntropy::new(1),
    );
    assert_eq!(
        client.send_media(
            MediaKind::Audio,
            MediaTime::ZERO,
            Bytes::from_static(&[0xaf])
        ),
        Err(SendError::NotPublishing)
    );
}

#[test]
fn bad_server_version_is_a_sticky_error_not_a_panic() {
    let now = test_now();
    let mut client = ClientSession::new(
        now,
        ClientConfig::new("rtmp://x.invalid/live", "live", "cam", Role::Play),
        &mut SeededEntropy::new(1),
    );
    let garbage = [0x07u8; 3073];
    let first = client.handle_input(now, &garbage);
    assert!(matches!(first, Err(ClientError::Handshake(_))));
    assert_eq!(client.handle_input(now, &garbage), first);
    assert!(client.is_closed());
    assert!(matches!(client.poll_event(), Some(ClientEvent::Closed(_))));
}

#[test]
fn silent_server_times_out_the_start() {
    let now = test_now();
    let mut client = ClientSession::new(
        now,
        ClientConfig::new("rtmp://x.invalid/live", "live", "cam", Role::Play),
        &mut SeededEntropy::new(1),
    );
    let deadline = client.poll_timeout().expect("a deadline while starting");
    assert!(deadline <= now + Duration::from_secs(10));
    client.handle_timeout(deadline);
    assert!(client.is_closed());
    assert!(matches!(client.poll_event(), Some(ClientEvent::Closed(_))));
}

/// A hand-driven server side: handshake, then whatever messages the test
/// writes, decoding what the client answers.
struct RawServer {
    client: ClientSession,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    now: Instant,
    /// What the client sent right after the handshake (Set Chunk Size,
    /// `connect`).
    first: Vec<Message>,
}

impl RawServer {
    fn new() -> Self {
        Self::with_config(ClientConfig::new(
            "rtmp://x.invalid/live",
            "live",
            "cam",
            Role::Play,
        ))
    }

    fn with_config(config: ClientConfig) -> Self {
        let now = test_now();
        let mut client = ClientSession::new(now, config, &mut SeededEntropy::new(1));
        let mut hs =
            ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(2));
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        for _ in 0..3 {
            let bytes: Vec<u8> = client
                .poll_transmit()
                .map(|t| t.bufs.concat())
                .unwrap_or_default();
            let used = hs.handle_input(&bytes).expect("client handshake valid");
            decoder.handle_input(&bytes[used..]).expect("chunk stream");
            while let Some(b) = hs.poll_transmit() {
                client
                    .handle_input(now, &b)
                    .expect("server handshake valid");
            }
        }
        let mut first = Vec::new();
        while let Some(raw) = decoder.poll_message().expect("valid") {
            first.push(Message::decode(&raw).expect("client message decodes"));
        }
        RawServer {
            client,
            encoder: ChunkEncoder::new(),
            decoder,
            now,
            first,
        }
    }

    /// The `connect` the client sent.
    fn connect(&self) -> Connect {
        self.first
            .iter()
            .find_map(|m| match m {
                Message::Command {
                    command: Command::Connect(c),
                    ..
                } => Some(c.clone()),
                _ => None,
            })
            .expect("the client sent connect")
    }

    /// Answers `connect` and `createStream` (stream 1) as a server would.
    fn accept_connect_and_stream(&mut self) {
        self.send(&result(1.0, vec![]), 0);
        self.send(&result(4.0, vec![Value::from(1.0)]), 0);
    }

    /// Confirms the publish or play with `code` on stream 1.
    fn start(&mut self, code: &str) {
        let info = Value::object([
            ("level", Value::from("status")),
            ("code", Value::from(code)),
        ]);
        self.send(
            &Message::Command {
                encoding: Encoding::Amf0,
                command: Command::OnStatus { info },
            },
            1,
        );
    }

    fn send(&mut self, message: &Message, stream: u32) {
        let raw = message
            .to_raw(3, MediaTime::ZERO, stream)
            .expect("test message encodes");
        let mut out = Vec::new();
        self.encoder.write(&raw, &mut out);
        self.client
            .handle_input(self.now, &out.concat())
            .expect("valid server bytes");
    }

    /// What the client sent back since the last call.
    fn answers(&mut self) -> Vec<Message> {
        let mut seen = Vec::new();
        while let Some(t) = self.client.poll_transmit() {
            self.decoder
                .handle_input(&t.bufs.concat())
                .expect("chunk stream");
        }
        while let Some(raw) = self.decoder.poll_message().expect("valid") {
            seen.push(Message::decode(&raw).expect("client message decodes"));
        }
        seen
    }
}

#[test]
fn client_acknowledges_by_the_servers_window() {
    let mut s = RawServer::new();
    s.send(&Message::WindowAckSize(1000), 0);
    s.answers();
    s.send(&Message::Video(Bytes::from(vec![0x27u8; 1500])), 1);
    let answers = s.answers();
    assert!(
        answers
            .iter()
            .any(|m| matches!(m, Message::Acknowledgement { sequence } if *sequence > 1000)),
        "{answers:?}"
    );
}

#[test]
fn client_answers_a_ping_with_its_timestamp() {
    let mut s = RawServer::new();
    s.send(&Message::UserControl(UserControl::PingRequest(4242)), 0);
    assert!(s
        .answers()
        .contains(&Message::UserControl(UserControl::PingResponse(4242))));
}

#[test]
fn client_honours_the_servers_chunk_size() {
    let mut s = RawServer::new();
    s.send(&Message::SetChunkSize(60_000), 0);
    s.encoder.set_chunk_size(60_000, &mut Vec::new());
    // A result for connect, sent in one 60 000-byte-chunk world: the
    // client only understands it if it switched chunk size too.
    let mut result = Vec::new();
    let msg = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Result {
            transaction_id: 1.0,
            command_object: Value::Null,
            args: vec![Value::object([("pad", Value::from("x".repeat(5000)))])],
        },
    };
    let raw = msg.to_raw(3, MediaTime::ZERO, 0).expect("encodes");
    s.encoder.write(&raw, &mut result);
    s.client
        .handle_input(s.now, &result.concat())
        .expect("valid with the new chunk size");
    assert_eq!(s.client.poll_event(), Some(ClientEvent::Connected));
}

#[test]
fn connect_only_client_stays_connected_without_a_stream() {
    let mut net = Net::new(ServerConfig::default());
    let c = net.connect(Role::Connect, "");
    assert_eq!(net.link(c).events, vec![ClientEvent::Connected]);
    assert!(net.link(c).client.is_active());
    assert_eq!(net.link(c).client.stream_id(), 0);
    // Only the silence timers are left: the start deadline is off.
    let now = net.now;
    assert_eq!(
        net.link(c).client.poll_timeout(),
        Some(now + Duration::from_secs(10))
    );
}

/// A `_result` for `transaction_id` with `args` after a null command object.
fn result(transaction_id: f64, args: Vec<Value>) -> Message {
    Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Result {
            transaction_id,
            command_object: Value::Null,
            args,
        },
    }
}

#[test]
fn media_on_stream_zero_reaches_a_player_like_node_media_servers() {
    let mut s = RawServer::new();
    s.accept_connect_and_stream();
    s.start("NetStream.Play.Start");
    let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
    s.send(&Message::Video(frame.clone()), 0);
    let media: Vec<Bytes> = std::iter::from_fn(|| s.client.poll_event())
        .filter_map(|e| match e {
            ClientEvent::Media { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(media, vec![frame]);
}

// ---- connect arguments and names -----------------------------------------

/// Whether `events` include a [`ClientEvent::Status`] with `code`.
fn has_status(events: &[ClientEvent], code: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Status(s) if s.code == code))
}

fn auth_server() -> Net {
    let mut config = ServerConfig::default();
    config.session.auth_keys = AuthKeys::new([b"secret".to_vec()]);
    Net::new(config)
}

#[test]
fn tc_app_token_in_connect_args_is_accepted_by_a_server_with_an_auth_key() {
    let mut net = auth_server();
    let mut c = config(Role::Publish, "cam");
    // What FFmpeg sends for `-rtmp_conn S:<token>`.
    c.connect_args = vec![Value::from(crate::auth::token(b"secret", "live"))];
    let p = net.connect_with(c);
    let events = &net.link(p).events;
    assert!(events.contains(&ClientEvent::Publishing), "{events:?}");
}

#[test]
fn tc_user_token_reaches_the_server_as_two_args() {
    let mut net = auth_server();
    let mut c = config(Role::Play, "cam");
    c.connect_args = vec![
        Value::from("alice"),
        Value::from(crate::auth::token(b"secret", "alice@live")),
    ];
    let v = net.connect_with(c);
    assert!(net.link(v).events.contains(&ClientEvent::Playing));
    let id = net.link(v).id;
    let session = net.server.session(id).expect("still connected");
    assert_eq!(session.user(), Some("alice"));
}

#[test]
fn wrong_tc_token_is_refused() {
    let mut net = auth_server();
    let mut c = config(Role::Publish, "cam");
    c.connect_args = vec![Value::from(crate::auth::token(b"other", "live"))];
    let p = net.connect_with(c);
    let events = &net.link(p).events;
    assert!(has_status(events, "NetConnection.Connect.Rejected"));
    assert!(matches!(events.last(), Some(ClientEvent::Closed(_))));
}

#[test]
fn default_connect_is_ffmpegs_plain_object_without_args() {
    let s = RawServer::new();
    let connect = s.connect();
    let Value::Object(members) = &connect.properties else {
        panic!("connect object: {:?}", connect.properties);
    };
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["app", "type", "flashVer", "tcUrl", "objectEncoding"]);
    assert!(connect.args.is_empty());
}

#[test]
fn connect_object_carries_the_configured_fields_and_four_cc_list() {
    let mut c = ClientConfig::new("rtmp://origin.invalid:1936/edge", "edge", "cam", Role::Play);
    c.flash_ver = "LNX 9,0,124,2".to_owned();
    c.swf_url = Some("http://x.invalid/player.swf".to_owned());
    c.page_url = Some("http://x.invalid/watch".to_owned());
    c.four_cc_list = Some(vec!["hvc1".to_owned(), "av01".to_owned()]);
    c.connect_args = vec![Value::from("token"), Value::from(7.0), Value::Boolean(true)];
    let s = RawServer::with_config(c);
    let connect = s.connect();
    let get = |k: &str| connect.properties.get(k).cloned();
    assert_eq!(connect.app(), Some("edge"));
    assert_eq!(connect.tc_url(), Some("rtmp://origin.invalid:1936/edge"));
    assert_eq!(get("flashVer"), Some(Value::from("LNX 9,0,124,2")));
    assert_eq!(
        get("swfUrl"),
        Some(Value::from("http://x.invalid/player.swf"))
    );
    assert_eq!(get("pageUrl"), Some(Value::from("http://x.invalid/watch")));
    assert_eq!(
        get("fourCcList"),
        Some(Value::StrictArray(vec![
            Value::from("hvc1"),
            Value::from("av01")
        ]))
    );
    assert_eq!(
        connect.args,
        vec![Value::from("token"), Value::from(7.0), Value::Boolean(true)]
    );
}

#[test]
fn connect_args_that_do_not_encode_close_the_session_at_once() {
    let mut c = config(Role::Play, "cam");
    // A reference to a complex value never written.
    c.connect_args = vec![Value::Reference(3)];
    let mut client = ClientSession::new(test_now(), c, &mut SeededEntropy::new(1));
    assert!(client.is_closed());
    assert!(matches!(client.error(), Some(ClientError::Config(_))));
    assert!(matches!(client.poll_event(), Some(ClientEvent::Closed(_))));
}

#[test]
fn query_is_appended_to_the_published_and_played_names() {
    let mut net = Net::new(ServerConfig::default());
    let mut c = config(Role::Publish, "cam");
    c.query = Some("token=abc".to_owned());
    let p = net.connect_with(c);
    assert!(net.link(p).events.contains(&ClientEvent::Publishing));
    // The server keys streams by the name without its query (the query
    // carries tokens and options): every player of "cam" meets the
    // publisher, whatever query it adds.
    let with = net.connect(Role::Play, "cam?token=abc");
    let without = net.connect(Role::Play, "cam");
    let mut c = config(Role::Play, "cam");
    c.query = Some("?token=abc".to_owned());
    let by_query = net.connect_with(c);
    let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
    net.link(p)
        .client
        .send_media(MediaKind::Video, MediaTime::ZERO, frame.clone())
        .expect("publishing");
    net.run();
    let got = |net: &mut Net, i: usize| {
        net.link(i)
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Media { payload, .. } if *payload == frame))
    };
    assert!(got(&mut net, with));
    assert!(got(&mut net, by_query));
    assert!(got(&mut net, without));
    let published = std::iter::from_fn(|| net.server.poll_event()).find_map(|e| match e {
        crate::server::ServerEvent::PublishStarted { name, query, .. } => Some((name, query)),
        _ => None,
    });
    assert_eq!(published, Some(("cam".to_owned(), "token=abc".to_owned())));
}

#[test]
fn query_joins_an_existing_one_and_reaches_every_name_command() {
    let mut c = config(Role::Publish, "cam?a=1");
    c.query = Some("token=abc".to_owned());
    assert_eq!(c.stream_name(), "cam?a=1&token=abc");
    c.query = Some(String::new());
    assert_eq!(c.stream_name(), "cam?a=1");
    let mut c = config(Role::Publish, "cam");
    c.query = Some("token=abc".to_owned());
    let mut s = RawServer::with_config(c);
    s.send(&result(1.0, vec![]), 0);
    s.send(&result(4.0, vec![Value::from(1.0)]), 0);
    let names: Vec<String> = s
        .answers()
        .into_iter()
        .filter_map(|m| match m {
            Message::Command { command, .. } => match command {
                Command::ReleaseStream { name, .. } | Command::FcPublish { name, .. } => Some(name),
                Command::Publish { name, .. } => name,
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(names, ["cam?token=abc"; 3]);
}

#[test]
fn debug_output_hides_stream_key_query_and_tokens() {
    let mut c = ClientConfig::new(
        "rtmp://x.invalid/live?sig=s3cr3t",
        "live",
        "k3y",
        Role::Publish,
    );
    c.query = Some("token=t0ken".to_owned());
    c.connect_args = vec![Value::from("4uth")];
    let shown = format!("{c:?}");
    for secret in ["s3cr3t", "k3y", "t0ken", "4uth"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

// ---- the outbound queue ----------------------------------------------------

/// A numbered frame of a 30 fps stream with one-second GOPs: the index and
/// the send time in milliseconds ride in the payload, so what a player
/// receives can be checked against what was sent.
fn numbered(kind: FrameKind, i: u32, len: usize) -> Frame {
    let ms = i * 33;
    let keyframe = kind == FrameKind::Video && i % 30 == 0;
    let mut p = match kind {
        FrameKind::Video if keyframe => vec![0x17, 1, 0, 0, 0],
        FrameKind::Video => vec![0x27, 1, 0, 0, 0],
        _ => vec![0xaf, 1],
    };
    p.extend(i.to_be_bytes());
    p.extend(ms.to_be_bytes());
    p.resize(len.max(p.len()), 0x5a);
    Frame {
        kind,
        timestamp: MediaTime::from_millis(ms),
        payload: Bytes::from(p),
        keyframe,
        config: false,
    }
}

/// The frame index carried by a payload [`numbered`] made (None for
/// configuration and anything else).
fn index_of(kind: MediaKind, payload: &[u8]) -> Option<u32> {
    let at = match (kind, payload.first()) {
        (MediaKind::Video, Some(0x17 | 0x27)) if payload.get(1) == Some(&1) => 5,
        (MediaKind::Audio, Some(0xaf)) if payload.get(1) == Some(&1) => 2,
        _ => return None,
    };
    let b = payload.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn config_frame(kind: FrameKind, payload: &'static [u8]) -> Frame {
    Frame {
        kind,
        timestamp: MediaTime::ZERO,
        payload: Bytes::from_static(payload),
        keyframe: kind == FrameKind::Video,
        config: true,
    }
}

const AVC_CONFIG: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0];
const AVC_CONFIG_2: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x28, 0xff, 0xe1, 0, 0];
const AAC_CONFIG: &[u8] = &[0xaf, 0, 0x12, 0x10];

#[test]
fn frames_sent_in_time_reach_a_player_byte_identical() {
    let mut net = Net::new(ServerConfig::default());
    let p = net.connect(Role::Publish, "cam");
    let v = net.connect(Role::Play, "cam");
    let now = net.now;
    let mut sent = vec![
        config_frame(FrameKind::Video, AVC_CONFIG),
        config_frame(FrameKind::Audio, AAC_CONFIG),
    ];
    sent.extend((0..60).flat_map(|i| {
        [
            numbered(FrameKind::Video, i, 6000),
            numbered(FrameKind::Audio, i, 300),
        ]
    }));
    for f in &sent {
        net.link(p)
            .client
            .send_frame(now, f.clone())
            .expect("publishing");
    }
    net.run();
    let got: Vec<Bytes> = net
        .link(v)
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<Bytes> = sent.into_iter().map(|f| f.payload).collect();
    assert_eq!(got, want);
    assert_eq!(net.link(p).client.dropped_frames(), 0);
    assert_eq!(net.link(p).client.queued_bytes(), 0);
}

#[test]
fn slow_remote_drops_by_policy_while_memory_stays_bounded() {
    const BUDGET: usize = 200_000;
    let mut net = Net::new(ServerConfig::default());
    let mut c = config(Role::Publish, "cam");
    c.real_time.max_backlog_bytes = BUDGET;
    let p = net.connect_with(c);
    let v = net.connect(Role::Play, "cam");
    let start = net.now;
    let at = |i: u32| start + Duration::from_millis(u64::from(i) * 33);
    let send = |net: &mut Net, f: Frame, now: Instant| {
        net.now = now;
        net.link(p).client.send_frame(now, f).expect("publishing");
    };
    send(&mut net, config_frame(FrameKind::Video, AVC_CONFIG), start);
    send(&mut net, config_frame(FrameKind::Audio, AAC_CONFIG), start);
    // 2 s in time, 10 s with a server that reads nothing, 2 s in time.
    let (stall, resume, end) = (60, 360, 420);
    let metadata: &[u8] = &[0x02, 0, 6, b'o', b'n', b'C', b'u', b'e', b'!', 0x05];
    for i in 0..end {
        let now = at(i);
        net.link(p).stalled = (stall..resume).contains(&i);
        if i == 150 {
            // A new decoder configuration and data mid-stall: never dropped.
            send(&mut net, config_frame(FrameKind::Video, AVC_CONFIG_2), now);
            let data = Frame {
                kind: FrameKind::Data,
                timestamp: MediaTime::from_millis(i * 33),
                payload: Bytes::from_static(metadata),
                keyframe: false,
                config: false,
            };
            send(&mut net, data, now);
        }
        let len = if i % 30 == 0 { 20_000 } else { 2_000 };
        send(&mut net, numbered(FrameKind::Video, i, len), now);
        send(&mut net, numbered(FrameKind::Audio, i, 200), now);
        let queued = net.link(p).client.queued_bytes();
        assert!(
            queued <= BUDGET + AVC_CONFIG.len() + metadata.len() + 16,
            "{queued} bytes queued at frame {i}"
        );
        net.run();
    }
    let client = &net.link(p).client;
    assert!(client.dropped_frames() > 0);
    assert!(client.dropped_bytes() > 0);
    assert_eq!(client.queued_bytes(), 0);

    let events = &net.link(v).events;
    let media: Vec<(MediaKind, &Bytes)> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media { kind, payload, .. } => Some((*kind, payload)),
            _ => None,
        })
        .collect();
    // Configuration and data are never dropped.
    assert!(media.iter().any(|(_, p)| p.as_ref() == AVC_CONFIG_2));
    assert!(events.iter().any(|e| matches!(e,
        ClientEvent::Data { body, .. } if body.as_ref() == metadata)));
    // Video stays decodable: an inter frame only follows its predecessor,
    // so a GOP that lost a frame was abandoned up to the next keyframe.
    let mut last_video = None;
    for (kind, payload) in &media {
        let Some(i) = index_of(*kind, payload) else {
            continue;
        };
        if *kind == MediaKind::Video {
            if i % 30 != 0 {
                assert_eq!(last_video, Some(i - 1), "frame {i} after a gap");
            }
            last_video = Some(i);
        }
        // What the stall held back only went out if still within its
        // lifetime when the server read again (2 s audio, 3 s video).
        if (stall..resume).contains(&i) {
            let lifetime = if *kind == MediaKind::Audio {
                2000
            } else {
                3000
            };
            let age = u64::from(resume - i) * 33;
            assert!(age <= lifetime + 33, "{kind:?} {i} was {age} ms old");
        }
    }
    // Every frame sent in time arrived.
    let received = |k: MediaKind, range: std::ops::Range<u32>| {
        range.clone().all(|i| {
            media
                .iter()
                .any(|(kind, p)| *kind == k && index_of(k, p) == Some(i))
        })
    };
    assert!(received(MediaKind::Video, 0..stall));
    assert!(received(MediaKind::Audio, 0..stall));
    assert!(received(MediaKind::Video, resume - resume % 30 + 30..end));
}

#[test]
fn data_frames_are_sent_as_set_data_frame_for_late_joiners() {
    let mut net = Net::new(ServerConfig::default());
    let p = net.connect(Role::Publish, "cam");
    let body: &[u8] = &[
        0x02, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0x08, 0, 0, 0, 0,
        0, 0, 9,
    ];
    let now = net.now;
    let frame = Frame {
        kind: FrameKind::Data,
        timestamp: MediaTime::ZERO,
        payload: Bytes::from_static(body),
        keyframe: false,
        config: false,
    };
    net.link(p)
        .client
        .send_frame(now, frame)
        .expect("publishing");
    net.run();
    let v = net.connect(Role::Play, "cam");
    assert!(net.link(v).events.iter().any(|e| matches!(e,
        ClientEvent::Data { body: b, .. } if b.as_ref() == body)));
}

/// A publisher confirmed by a hand-driven server.
fn raw_publisher(config: ClientConfig) -> RawServer {
    let mut s = RawServer::with_config(config);
    s.accept_connect_and_stream();
    s.start("NetStream.Publish.Start");
    assert!(s.client.is_active());
    s.answers();
    s
}

#[test]
fn close_sends_queued_media_then_delete_stream() {
    let mut s = raw_publisher(config(Role::Publish, "cam"));
    let now = s.now;
    s.client
        .send_frame(now, numbered(FrameKind::Video, 0, 10_000))
        .expect("publishing");
    s.client
        .send_media(
            MediaKind::Audio,
            MediaTime::ZERO,
            Bytes::from_static(AAC_CONFIG),
        )
        .expect("publishing");
    s.client.close("done");
    let answers = s.answers();
    assert!(matches!(answers[0], Message::Video(_)), "{answers:?}");
    assert!(matches!(answers[1], Message::Audio(_)), "{answers:?}");
    assert!(matches!(
        answers[2],
        Message::Command {
            command: Command::DeleteStream { .. },
            ..
        }
    ));
    assert_eq!(answers.len(), 3);
}

#[test]
fn transmits_are_batched_and_never_split_a_message() {
    let mut s = raw_publisher(config(Role::Publish, "cam"));
    let now = s.now;
    for i in 0..40 {
        s.client
            .send_frame(now, numbered(FrameKind::Video, i, 30_000))
            .expect("publishing");
    }
    let mut t = Transmit::default();
    let mut transmits = 0;
    while s.client.poll_transmit_into(now, &mut t) {
        transmits += 1;
        // At most about 64 KiB of media, whole messages: the decoder sees
        // complete frames after every transmit.
        assert!(t.len() < 64 * 1024 + 30_000 + 1024, "{} bytes", t.len());
        s.decoder.handle_input(&t.bufs.concat()).expect("chunks");
        let mut complete = 0;
        while s.decoder.poll_message().expect("valid").is_some() {
            complete += 1;
        }
        assert!(complete >= 1);
        assert_eq!(s.decoder.buffered_bytes(), 0, "a message split");
    }
    assert!(transmits >= 40 * 30_000 / (96 * 1024));
}

#[test]
fn never_dropped_frames_past_their_bound_close_the_session() {
    let mut c = config(Role::Publish, "cam");
    c.real_time.max_backlog_bytes = 64 * 1024;
    let mut s = raw_publisher(c);
    let now = s.now;
    let big = Bytes::from(vec![0u8; 64 * 1024]);
    let mut result = Ok(());
    for _ in 0..32 {
        result = s.client.send_frame(
            now,
            Frame {
                kind: FrameKind::Data,
                timestamp: MediaTime::ZERO,
                payload: big.clone(),
                keyframe: false,
                config: false,
            },
        );
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(SendError::Closed));
    assert!(matches!(s.client.error(), Some(ClientError::SlowPeer(_))));
    assert_eq!(s.client.queued_bytes(), 0);
    assert!(
        std::iter::from_fn(|| s.client.poll_event()).any(|e| matches!(e, ClientEvent::Closed(_)))
    );
}

#[test]
fn replies_piling_up_for_a_server_that_does_not_read_close_the_session() {
    let mut s = RawServer::new();
    let ping = Message::UserControl(UserControl::PingRequest(1))
        .to_raw(2, MediaTime::ZERO, 0)
        .expect("encodes");
    let mut out = Vec::new();
    for _ in 0..10_000 {
        s.encoder.write(&ping, &mut out);
    }
    let burst = out.concat();
    let mut result = Ok(());
    for _ in 0..20 {
        result = s.client.handle_input(s.now, &burst);
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(ClientError::SlowPeer(_))),
        "{result:?}"
    );
    assert!(s.client.is_closed());
}

// ---- ping and dead-peer timers ---------------------------------------------

/// A player confirmed by a hand-driven server, and nothing more from it.
fn raw_player() -> RawServer {
    let mut s = RawServer::new();
    s.accept_connect_and_stream();
    s.start("NetStream.Play.Start");
    assert!(s.client.is_active());
    s.answers();
    s
}

fn pings(answers: &[Message]) -> Vec<u32> {
    answers
        .iter()
        .filter_map(|m| match m {
            Message::UserControl(UserControl::PingRequest(t)) => Some(*t),
            _ => None,
        })
        .collect()
}

#[test]
fn ping_is_sent_after_silence_and_repeated_while_it_lasts() {
    let mut s = raw_player();
    let heard = s.now;
    let due = heard + Duration::from_secs(10);
    assert_eq!(s.client.poll_timeout(), Some(due));
    s.client.handle_timeout(due - Duration::from_millis(1));
    assert!(
        pings(&s.answers()).is_empty(),
        "early timeouts are harmless"
    );
    s.client.handle_timeout(due);
    let stamps = pings(&s.answers());
    assert_eq!(stamps.len(), 1);
    // Milliseconds since the session started (RawServer made it at `heard`).
    assert_eq!(stamps[0], 10_000);
    // Still silent: again one interval later.
    let again = due + Duration::from_secs(10);
    assert_eq!(s.client.poll_timeout(), Some(again));
    s.client.handle_timeout(again);
    assert_eq!(pings(&s.answers()), [20_000]);
    // The server speaks (its pong): the next ping waits a whole interval.
    s.now = again + Duration::from_secs(4);
    s.send(&Message::UserControl(UserControl::PingResponse(20_000)), 0);
    assert_eq!(
        s.client.poll_timeout(),
        Some(s.now + Duration::from_secs(10))
    );
    assert!(!s.client.is_closed());
}

#[test]
fn silent_server_is_declared_dead_at_the_timeout() {
    let mut s = raw_player();
    let heard = s.now;
    let dead_at = heard + Duration::from_secs(60);
    let mut t = heard;
    // Step from deadline to deadline, as a runtime does: pings go out,
    // nothing comes back.
    let mut sent = 0;
    while let Some(next) = s.client.poll_timeout() {
        assert!(next > t, "a deadline that does not move");
        t = next;
        s.client.handle_timeout(t);
        sent += pings(&s.answers()).len();
    }
    assert_eq!(t, dead_at);
    assert_eq!(sent, 5, "pinged at 10, 20, 30, 40 and 50 s");
    assert!(s.client.is_closed());
    assert_eq!(
        s.client.error(),
        Some(&ClientError::PeerDead(Duration::from_secs(60)))
    );
    let events: Vec<ClientEvent> = std::iter::from_fn(|| s.client.poll_event()).collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Closed(_)))
            .count(),
        1
    );
    // Sticky.
    assert_eq!(
        s.client.handle_input(t, &[0]),
        Err(ClientError::PeerDead(Duration::from_secs(60)))
    );
    assert_eq!(s.client.poll_timeout(), None);
}

#[test]
fn any_byte_from_the_server_keeps_it_alive() {
    let mut c = config(Role::Play, "cam");
    c.ping_interval = Duration::MAX;
    c.dead_peer_timeout = Duration::from_secs(5);
    let mut s = RawServer::with_config(c);
    s.accept_connect_and_stream();
    s.start("NetStream.Play.Start");
    let start = s.now;
    s.client.handle_timeout(start + Duration::from_secs(4));
    s.now = start + Duration::from_secs(4);
    s.send(&Message::Video(Bytes::from_static(&[0x27, 1])), 1);
    s.client.handle_timeout(start + Duration::from_secs(8));
    assert!(!s.client.is_closed());
    assert_eq!(
        s.client.poll_timeout(),
        Some(start + Duration::from_secs(9)),
        "no ping: only the dead-peer deadline"
    );
    s.client.handle_timeout(start + Duration::from_secs(9));
    assert!(matches!(s.client.error(), Some(ClientError::PeerDead(_))));
}

#[test]
fn answered_pings_keep_a_quiet_server_connection_alive() {
    let mut config = ServerConfig::default();
    // Only the client pings: the server stays quiet unless asked.
    config.session.ping_interval = Duration::from_secs(3600);
    config.session.dead_peer_timeout = Duration::from_secs(3600);
    let mut net = Net::new(config);
    let c = net.connect(Role::Connect, "");
    let start = net.now;
    while net.now < start + Duration::from_secs(300) {
        let next = [net.link(c).client.poll_timeout(), net.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("the client keeps a timer");
        net.now = next;
        net.link(c).client.handle_timeout(next);
        net.server.handle_timeout(next);
        net.run();
    }
    let client = &net.link(c).client;
    assert!(!client.is_closed(), "{:?}", client.error());
    assert!(client.is_active());
}

#[test]
fn queued_configuration_does_not_pin_the_buffer_it_came_from() {
    let mut s = raw_publisher(config(Role::Publish, "cam"));
    let mut buffer = vec![0u8; 64 * 1024];
    buffer[..AVC_CONFIG.len()].copy_from_slice(AVC_CONFIG);
    let receive_buffer = Bytes::from(buffer);
    let mut frame = config_frame(FrameKind::Video, AVC_CONFIG);
    frame.payload = receive_buffer.slice(..AVC_CONFIG.len());
    let now = s.now;
    s.client.send_frame(now, frame).expect("publishing");
    assert!(
        receive_buffer.is_unique(),
        "the queue holds a slice of the 64 KiB buffer"
    );
    assert_eq!(s.client.queued_bytes(), AVC_CONFIG.len());
    let answers = s.answers();
    assert_eq!(
        answers,
        [Message::Video(Bytes::from_static(AVC_CONFIG))],
        "sent unchanged"
    );
}
