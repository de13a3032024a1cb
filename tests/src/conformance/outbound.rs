//! Outbound connections over real sockets: the runtime dials what the core
//! asks for (`Control::connect`) and drives it like an accepted
//! connection. Each server links to itself (it dials its own listening
//! address), so one running server is both ends of a relay: what reaches a
//! player went out through the runtime's dialed socket and back in through
//! its listener.

use std::collections::HashSet;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, Role};
use tincan_core::event::SessionId;
use tincan_core::outbound::{Link, OutboundConfig};
use tincan_core::server::{ServerEvent, Transport};
use tincan_core::session::SessionError;

use super::rtmp::{is_keyframe, RtmpClient};
use super::{Running, Runtime, ServerConfig};

/// Longest any single step may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Keyframes a relayed player must receive, each one the publisher sent.
const RELAYED: usize = 5;

/// An outbound connection from the server to its own listener, with
/// `role` on remote stream `stream` of App `live`.
fn to_itself(server: &Running, role: Role, stream: &str, link: Link) -> OutboundConfig {
    let addr = server.addr();
    OutboundConfig {
        target: addr.to_string(),
        client: ClientConfig::new(format!("rtmp://{addr}/live"), "live", stream, role),
        link,
        tls: None,
    }
}

/// As [`to_itself`], naming the listener `localhost:PORT`: the runtime
/// must resolve the name without blocking (mio on a helper thread), and
/// when `localhost` resolves to `::1` first, where nothing listens, go on
/// to the next address.
fn to_itself_by_name(server: &Running, role: Role, stream: &str, link: Link) -> OutboundConfig {
    let target = format!("localhost:{}", server.addr().port());
    OutboundConfig {
        client: ClientConfig::new(format!("rtmp://{target}/live"), "live", stream, role),
        target,
        link,
        tls: None,
    }
}

/// A raw client publishing `live/NAME`, once `NetStream.Publish.Start`
/// arrived.
fn publishing(server: &Running, name: &str) -> (RtmpClient, u32) {
    let mut c = RtmpClient::connect(server.addr());
    c.connect_app();
    let stream = c.create_stream();
    c.sim_mut().publish(stream, name);
    let started = c.pump_until(TIMEOUT, |s| {
        s.statuses(stream)
            .iter()
            .any(|c| c == "NetStream.Publish.Start")
    });
    assert!(
        started,
        "[{}] no Publish.Start: {}",
        server.name(),
        c.describe()
    );
    (c, stream)
}

/// Waits for the outbound report `what` on connection `id`.
fn expect_outbound(server: &Running, id: SessionId, what: ClientEvent) {
    let seen = server.wait_event(
        TIMEOUT,
        |e| matches!(e, ServerEvent::Outbound { id: i, event } if *i == id && *event == what),
    );
    assert!(
        seen.is_some(),
        "[{}] no Outbound {what:?} for {id}; saw {:?}",
        server.name(),
        server.events()
    );
}

/// Publishes a sequence header, then a distinct keyframe every 33 ms, until
/// `player` has received [`RELAYED`] keyframes; asserts each one is a
/// payload the publisher sent (the relay hands frames on, unchanged).
fn relayed_frames_reach(
    server: &Running,
    publisher: &mut RtmpClient,
    stream: u32,
    player: &mut RtmpClient,
) {
    let header = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    publisher.sim_mut().send_video(stream, 0, header);
    let mut sent: HashSet<Bytes> = HashSet::new();
    let keyframes = |p: &RtmpClient| -> Vec<Bytes> {
        p.videos()
            .into_iter()
            .map(|m| m.payload)
            .filter(|b| is_keyframe(b))
            .collect()
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut n: u32 = 0;
    while keyframes(player).len() < RELAYED {
        assert!(
            Instant::now() < deadline,
            "[{}] the relayed player got {} keyframes of {RELAYED}: {}",
            server.name(),
            keyframes(player).len(),
            player.describe()
        );
        n += 1;
        // Unique per frame, so equality says which frame arrived.
        let mut frame = vec![0x17, 0x01, 0, 0, 0];
        frame.extend_from_slice(&n.to_be_bytes());
        frame.resize(512, 0xab);
        let frame = Bytes::from(frame);
        sent.insert(frame.clone());
        publisher.sim_mut().send_video(stream, n * 33, frame);
        publisher.poll();
        player.poll();
        thread::sleep(Duration::from_millis(33));
    }
    for got in keyframes(player) {
        assert!(
            sent.contains(&got),
            "[{}] the relayed player got a keyframe nobody sent ({} bytes, starting {:02x?})",
            server.name(),
            got.len(),
            &got[..got.len().min(12)]
        );
    }
}

/// Plays `live/NAME` on a new raw connection, once `NetStream.Play.Start`
/// arrived.
fn playing(server: &Running, name: &str) -> RtmpClient {
    let mut c = RtmpClient::connect(server.addr());
    let stream = c.play_on_this(name);
    let started = c.pump_until(TIMEOUT, |s| {
        s.statuses(stream)
            .iter()
            .any(|c| c == "NetStream.Play.Start")
    });
    assert!(
        started,
        "[{}] no Play.Start on {name}: {}",
        server.name(),
        c.describe()
    );
    c
}

/// A server pushes a live stream to itself: the runtime dials its own
/// listener, the outbound connection reports `Publishing`, a player of
/// the pushed copy receives exactly the publisher's frames, and the
/// outbound connection's statistics show an outbound transport that has
/// sent bytes.
pub fn outbound_push_to_itself_relays_the_publishers_frames<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    let (mut publisher, stream) = publishing(&server, "cam");
    let control = server.control();
    let id = control
        .connect(to_itself(
            &server,
            Role::Publish,
            "copy",
            Link::Push {
                app: "live".to_owned(),
                name: "cam".to_owned(),
            },
        ))
        .unwrap_or_else(|r| panic!("[{}] connect refused: {r}", server.name()));
    expect_outbound(&server, id, ClientEvent::Publishing);
    let mut player = playing(&server, "copy");
    relayed_frames_reach(&server, &mut publisher, stream, &mut player);
    let stats = control
        .connection_stats(id)
        .unwrap_or_else(|| panic!("[{}] no statistics for the push", server.name()));
    assert_eq!(
        stats.transport,
        Transport::RtmpOut,
        "[{}] {stats:?}",
        server.name()
    );
    assert!(
        stats.output.bytes > 0,
        "[{}] the push sent nothing: {stats:?}",
        server.name()
    );
    assert!(
        stats.peer == Some(server.addr()),
        "[{}] the push's peer should be the dialed address: {stats:?}",
        server.name()
    );
}

/// A server pulls a live stream from itself: the runtime resolves and
/// dials its own listener by name, plays remote `live/cam`, and publishes
/// it locally as `live/pulled`, whose player receives exactly the
/// publisher's frames.
pub fn outbound_pull_from_itself_republishes_the_remote_stream<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    let (mut publisher, stream) = publishing(&server, "cam");
    let id = server
        .control()
        .connect(to_itself_by_name(
            &server,
            Role::Play,
            "cam",
            Link::Pull {
                app: "live".to_owned(),
                name: "pulled".to_owned(),
                priority: 0,
            },
        ))
        .unwrap_or_else(|r| panic!("[{}] connect refused: {r}", server.name()));
    expect_outbound(&server, id, ClientEvent::Playing);
    let mut player = playing(&server, "pulled");
    relayed_frames_reach(&server, &mut publisher, stream, &mut player);
    let published = server.wait_event(TIMEOUT, |e| {
        matches!(e, ServerEvent::PublishStarted { id: i, name, .. } if *i == id && name == "pulled")
    });
    assert!(
        published.is_some(),
        "[{}] the pull never published live/pulled: {:?}",
        server.name(),
        server.events()
    );
}

/// A dial to a port nobody listens on fails in bounded time: the
/// connection is `Closed` with `SessionError::Outbound` saying the dial
/// failed, and nothing is left of it.
pub fn outbound_dial_to_a_closed_port_closes_with_the_reason<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    let control = server.control();
    let before = control.connections().len();
    // A port that was just free: nobody listens on it now.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a throwaway listener");
        l.local_addr().expect("its address").port()
    };
    let started = Instant::now();
    let id = control
        .connect(OutboundConfig {
            target: format!("127.0.0.1:{port}"),
            client: ClientConfig::new(
                format!("rtmp://127.0.0.1:{port}/live"),
                "live",
                "nowhere",
                Role::Play,
            ),
            link: Link::None,
            tls: None,
        })
        .unwrap_or_else(|r| panic!("[{}] connect refused: {r}", server.name()));
    let closed = server.wait_event(
        TIMEOUT,
        |e| matches!(e, ServerEvent::Closed { id: i, .. } if *i == id),
    );
    let Some(ServerEvent::Closed { error, .. }) = closed else {
        panic!(
            "[{}] no Closed for the failed dial within {TIMEOUT:?}: {:?}",
            server.name(),
            server.events()
        );
    };
    match &error {
        Some(SessionError::Outbound(why)) => assert!(
            why.contains("dial failed") && why.contains(&port.to_string()),
            "[{}] the reason should say the dial to port {port} failed: {why}",
            server.name()
        ),
        other => panic!(
            "[{}] expected SessionError::Outbound, got {other:?}",
            server.name()
        ),
    }
    // Refused at once on loopback; the dial timeout is only a backstop.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "[{}] the failed dial took {:?}",
        server.name(),
        started.elapsed()
    );
    let opened = server.events().into_iter().any(|e| {
        matches!(e, ServerEvent::Opened { id: i, transport, .. }
            if i == id && transport == Transport::RtmpOut)
    });
    assert!(opened, "[{}] no Opened for the dial", server.name());
    assert_eq!(
        control.connections().len(),
        before,
        "[{}] the failed dial left a connection behind",
        server.name()
    );
    assert!(
        control.connection_stats(id).is_none(),
        "[{}] the failed dial still has statistics",
        server.name()
    );
}

/// A graceful shutdown ends a relay too (it has nobody to notify): the
/// outbound connection and the connection it made to this server both
/// close, and the server returns well before its shutdown deadline.
pub fn graceful_shutdown_ends_an_outbound_connection<R: Runtime>() {
    let mut server = R::start(ServerConfig::default());
    let (mut publisher, _stream) = publishing(&server, "cam");
    let id = server
        .control()
        .connect(to_itself(
            &server,
            Role::Publish,
            "copy",
            Link::Push {
                app: "live".to_owned(),
                name: "cam".to_owned(),
            },
        ))
        .unwrap_or_else(|r| panic!("[{}] connect refused: {r}", server.name()));
    expect_outbound(&server, id, ClientEvent::Publishing);
    server.shutdown();
    // The publisher is told and leaves, as a real encoder does.
    publisher.pump_for(Duration::from_millis(200));
    drop(publisher);
    let returned = server.join(TIMEOUT);
    assert!(
        returned.is_ok(),
        "[{}] the server did not drain: {returned:?}; {:?}",
        server.name(),
        server.events()
    );
    let closed = server
        .events()
        .into_iter()
        .any(|e| matches!(e, ServerEvent::Closed { id: i, .. } if i == id));
    assert!(
        closed,
        "[{}] no Closed for the relay: {:?}",
        server.name(),
        server.events()
    );
}
