//! The embedder's side of every runtime, over real sockets with a real RTMP
//! client: the server's events reach the code that runs it, requests it
//! decides wait for its answer (given from another thread), and its
//! statistics describe what clients do.

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::event::{Denial, SessionId};
use tincan_core::server::{Approvals, Decider, ServerEvent, Ticket, TicketError};
use tincan_core::stats::Role;

use super::rtmp::RtmpClient;
use super::{Running, Runtime, ServerConfig};
use crate::sim::member_str;

/// Longest any single step may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// How long a held request is watched to make sure nothing answers it
/// before the embedder does.
const HELD: Duration = Duration::from_millis(300);

fn start_deciding<R: Runtime>(approvals: Approvals) -> Running {
    R::start(ServerConfig {
        approvals,
        ..ServerConfig::default()
    })
}

/// The connection an event is about, if it is about one.
fn id_of(event: &ServerEvent) -> Option<SessionId> {
    match event {
        ServerEvent::Opened { id, .. }
        | ServerEvent::Closed { id, .. }
        | ServerEvent::Connected { id, .. }
        | ServerEvent::PublishStarted { id, .. }
        | ServerEvent::PublishEnded { id, .. }
        | ServerEvent::PlayStarted { id, .. }
        | ServerEvent::PlayStopped { id, .. }
        | ServerEvent::ConnectRequest { id, .. }
        | ServerEvent::PublishRequest { id, .. }
        | ServerEvent::PlayRequest { id, .. } => Some(*id),
        _ => None,
    }
}

/// A short name of an event's kind, for order checks and messages.
fn kind(event: &ServerEvent) -> &'static str {
    match event {
        ServerEvent::Opened { .. } => "Opened",
        ServerEvent::Closed { .. } => "Closed",
        ServerEvent::Connected { .. } => "Connected",
        ServerEvent::PublishStarted { .. } => "PublishStarted",
        ServerEvent::PublishEnded { .. } => "PublishEnded",
        ServerEvent::PlayStarted { .. } => "PlayStarted",
        ServerEvent::PlayStopped { .. } => "PlayStopped",
        ServerEvent::ConnectRequest { .. } => "ConnectRequest",
        ServerEvent::PublishRequest { .. } => "PublishRequest",
        ServerEvent::PlayRequest { .. } => "PlayRequest",
        ServerEvent::MediaChanged { .. } => "MediaChanged",
        _ => "other",
    }
}

/// The kinds of the events about connection `id`, in order.
fn story(server: &Running, id: SessionId) -> Vec<&'static str> {
    server
        .events()
        .iter()
        .filter(|e| id_of(e) == Some(id))
        .map(kind)
        .collect()
}

/// Waits for an event, failing the test with what was seen otherwise.
fn expect_event(
    server: &Running,
    what: &str,
    matches: impl Fn(&ServerEvent) -> bool,
) -> ServerEvent {
    server.wait_event(TIMEOUT, matches).unwrap_or_else(|| {
        let seen: Vec<&str> = server.events().iter().map(kind).collect();
        panic!("[{}] no {what} event; saw {seen:?}", server.name())
    })
}

/// Waits for an event while keeping `client`'s side of the conversation
/// going (its handshake, its queued commands).
fn expect_event_pumping(
    server: &Running,
    client: &mut RtmpClient,
    what: &str,
    matches: impl Fn(&ServerEvent) -> bool,
) -> ServerEvent {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        client.poll();
        if let Some(e) = server.wait_event(Duration::from_millis(10), &matches) {
            return e;
        }
    }
    expect_event(server, what, matches)
}

/// The description of the last `onStatus` with `code` on `stream`.
fn status_description(client: &RtmpClient, stream: u32, code: &str) -> Option<String> {
    client
        .sim()
        .status_infos(stream)
        .iter()
        .rfind(|i| member_str(i, "code").as_deref() == Some(code))
        .and_then(|i| member_str(i, "description"))
}

fn has_status(client: &RtmpClient, stream: u32, code: &str) -> bool {
    client.sim().statuses(stream).iter().any(|c| c == code)
}

/// Waits until `client` got status `code` on `stream`.
fn expect_status(server: &Running, client: &mut RtmpClient, stream: u32, code: &str) {
    let got = client.pump_until(TIMEOUT, |s| s.statuses(stream).iter().any(|c| c == code));
    assert!(got, "[{}] no {code}: {}", server.name(), client.describe());
}

/// A raw client connected to `live` with one stream, publishing `name`
/// (no decision asked): returns it with its stream once
/// `NetStream.Publish.Start` arrived.
fn publishing(server: &Running, name: &str) -> (RtmpClient, u32) {
    let mut c = RtmpClient::connect(server.addr());
    c.connect_app();
    let stream = c.create_stream();
    c.sim_mut().publish(stream, name);
    expect_status(server, &mut c, stream, "NetStream.Publish.Start");
    (c, stream)
}

/// An AVC sequence header: what a player needs before any frame.
fn avc_header() -> Bytes {
    Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f])
}

/// A small AVC keyframe (NALU packet, composition time 0).
fn avc_keyframe() -> Bytes {
    let mut v = vec![0x17, 0x01, 0, 0, 0];
    v.resize(512, 0xab);
    v.into()
}

/// Publishes keyframes (after a sequence header) every 33 ms until every
/// player has video or the timeout; returns whether they all did.
fn feed_until_played(
    publisher: &mut RtmpClient,
    stream: u32,
    players: &mut [&mut RtmpClient],
) -> bool {
    publisher.sim_mut().send_video(stream, 0, avc_header());
    let deadline = Instant::now() + TIMEOUT;
    let mut ts = 0;
    loop {
        ts += 33;
        publisher.sim_mut().send_video(stream, ts, avc_keyframe());
        publisher.poll();
        for p in players.iter_mut() {
            p.poll();
        }
        if players.iter().all(|p| p.video_count() > 0) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(33));
    }
}

/// Plays `name` on a new connection, returning once `NetStream.Play.Start`
/// arrived.
fn player(server: &Running, name: &str) -> RtmpClient {
    let mut c = RtmpClient::connect(server.addr());
    let stream = c.play_on_this(name);
    expect_status(server, &mut c, stream, "NetStream.Play.Start");
    c
}

/// A publisher and a player each get Opened, Connected (with their App),
/// PublishStarted or PlayStarted, and, last, Closed with the bytes they
/// moved; in that order.
pub fn events_report_a_connection_from_open_to_close<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    let (mut publisher, stream) = publishing(&server, "told");
    let mut watcher = player(&server, "told");
    assert!(
        feed_until_played(&mut publisher, stream, &mut [&mut watcher]),
        "[{}] the player got no video: {}",
        server.name(),
        watcher.describe()
    );
    let ServerEvent::PublishStarted {
        id: pub_id, app, ..
    } = expect_event(
        &server,
        "PublishStarted",
        |e| matches!(e, ServerEvent::PublishStarted { name, .. } if name == "told"),
    )
    else {
        unreachable!()
    };
    assert_eq!(app, "live");
    let play_id = id_of(&expect_event(
        &server,
        "PlayStarted",
        |e| matches!(e, ServerEvent::PlayStarted { name, .. } if name == "told"),
    ))
    .expect("a PlayStarted names its connection");
    drop(watcher);
    drop(publisher);
    for (id, role) in [(pub_id, "publisher"), (play_id, "player")] {
        let closed = expect_event(
            &server,
            "Closed",
            |e| matches!(e, ServerEvent::Closed { id: c, .. } if *c == id),
        );
        let ServerEvent::Closed {
            bytes_in,
            bytes_out,
            ..
        } = closed
        else {
            unreachable!()
        };
        assert!(
            bytes_in > 0 && bytes_out > 0,
            "[{}] the {role}'s Closed counts no bytes: {closed:?}",
            server.name()
        );
        let connected = server.events().into_iter().find_map(|e| match e {
            ServerEvent::Connected { id: c, info } if c == id => Some(info),
            _ => None,
        });
        assert_eq!(
            connected.map(|i| i.app).as_deref(),
            Some("live"),
            "[{}] the {role}'s Connected",
            server.name()
        );
        let story = story(&server, id);
        let started = if role == "publisher" {
            "PublishStarted"
        } else {
            "PlayStarted"
        };
        let at = |k: &str| story.iter().position(|s| *s == k);
        assert!(
            story.first() == Some(&"Opened")
                && story.last() == Some(&"Closed")
                && at("Connected") < at(started)
                && at("Opened") < at("Connected")
                && at(started).is_some(),
            "[{}] the {role}'s events are out of order: {story:?}",
            server.name()
        );
    }
    let opened_peer = server.events().into_iter().find_map(|e| match e {
        ServerEvent::Opened { id, peer, .. } if id == pub_id => Some(peer),
        _ => None,
    });
    assert!(
        matches!(opened_peer, Some(Some(p)) if p.ip().is_loopback()),
        "[{}] Opened should carry the peer: {opened_peer:?}",
        server.name()
    );
}

/// With publishes decided by the embedder, a publish waits; the embedder
/// approves it from another thread and the client gets
/// `NetStream.Publish.Start`; the same ticket cannot be used twice.
pub fn embedder_approves_a_publish_from_another_thread<R: Runtime>() {
    let server = start_deciding::<R>(Approvals {
        publish: Decider::Embedder,
        ..Approvals::default()
    });
    let mut c = RtmpClient::connect(server.addr());
    c.connect_app();
    let stream = c.create_stream();
    c.sim_mut().publish(stream, "held?key=k1");
    let ServerEvent::PublishRequest {
        ticket, request, ..
    } = expect_event_pumping(&server, &mut c, "PublishRequest", |e| {
        matches!(e, ServerEvent::PublishRequest { .. })
    })
    else {
        unreachable!()
    };
    assert_eq!(
        (
            request.app.as_str(),
            request.name.as_str(),
            request.query.as_str()
        ),
        ("live", "held", "key=k1"),
        "[{}]",
        server.name()
    );
    c.pump_for(HELD);
    assert!(
        !has_status(&c, stream, "NetStream.Publish.Start"),
        "[{}] the publish started before the embedder decided: {}",
        server.name(),
        c.describe()
    );
    let control = server.control();
    let answered = thread::spawn(move || control.approve(ticket))
        .join()
        .expect("the answering thread");
    assert_eq!(answered, Ok(()), "[{}]", server.name());
    expect_status(&server, &mut c, stream, "NetStream.Publish.Start");
    expect_event(
        &server,
        "PublishStarted",
        |e| matches!(e, ServerEvent::PublishStarted { name, .. } if name == "held"),
    );
    assert_eq!(
        server.control().approve(ticket),
        Err(TicketError::Stale(ticket)),
        "[{}] a ticket answered twice",
        server.name()
    );
}

/// A play the embedder denies as not found gets
/// `NetStream.Play.StreamNotFound` with the embedder's description, and
/// the same connection then plays another name once that is approved.
pub fn embedder_denied_play_gets_stream_not_found_and_connection_stays_usable<R: Runtime>() {
    let server = start_deciding::<R>(Approvals {
        play: Decider::Embedder,
        ..Approvals::default()
    });
    let play_request = |c: &mut RtmpClient, name: &'static str, not: Option<Ticket>| {
        let ServerEvent::PlayRequest { ticket, .. } =
            expect_event_pumping(&server, c, "PlayRequest", move |e| {
                matches!(e, ServerEvent::PlayRequest { ticket, request, .. }
                    if request.name == name && Some(*ticket) != not)
            })
        else {
            unreachable!()
        };
        ticket
    };
    let mut c = RtmpClient::connect(server.addr());
    c.connect_app();
    let stream = c.create_stream();
    c.sim_mut().play(stream, "nothing", -2000.0);
    let first = play_request(&mut c, "nothing", None);
    let control = server.control();
    thread::spawn(move || control.deny(first, Denial::not_found("no such show")))
        .join()
        .expect("the answering thread")
        .expect("the ticket is live");
    expect_status(&server, &mut c, stream, "NetStream.Play.StreamNotFound");
    assert_eq!(
        status_description(&c, stream, "NetStream.Play.StreamNotFound").as_deref(),
        Some("no such show"),
        "[{}]",
        server.name()
    );
    // Still usable: another play on the same connection goes through.
    let again = c.create_stream();
    c.sim_mut().play(again, "something", -2000.0);
    let second = play_request(&mut c, "something", Some(first));
    server
        .control()
        .approve(second)
        .expect("the ticket is live");
    expect_status(&server, &mut c, again, "NetStream.Play.Start");
    assert!(!c.saw_eof(), "[{}] {}", server.name(), c.describe());
}

/// A connect the embedder denies gets `NetConnection.Connect.Rejected`
/// with its description, and the connection is closed.
pub fn embedder_denied_connect_is_rejected_with_the_description<R: Runtime>() {
    let server = start_deciding::<R>(Approvals {
        connect: Decider::Embedder,
        ..Approvals::default()
    });
    let mut c = RtmpClient::connect(server.addr());
    let t = c.sim_mut().connect("live");
    let ServerEvent::ConnectRequest {
        ticket, id, info, ..
    } = expect_event_pumping(&server, &mut c, "ConnectRequest", |e| {
        matches!(e, ServerEvent::ConnectRequest { .. })
    })
    else {
        unreachable!()
    };
    assert_eq!(info.app, "live", "[{}]", server.name());
    c.pump_for(HELD);
    assert!(
        c.sim().reply(t).is_none(),
        "[{}] connect answered before the embedder decided",
        server.name()
    );
    let control = server.control();
    thread::spawn(move || control.deny(ticket, Denial::policy("not on the guest list")))
        .join()
        .expect("the answering thread")
        .expect("the ticket is live");
    c.pump_until(TIMEOUT, |s| s.reply(t).is_some());
    let reply = c.sim().reply(t);
    let reply = reply.unwrap_or_else(|| panic!("[{}] no reply: {}", server.name(), c.describe()));
    assert!(!reply.ok, "[{}] {reply:?}", server.name());
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Rejected"),
        "[{}]",
        server.name()
    );
    assert_eq!(
        reply.info_str("description").as_deref(),
        Some("not on the guest list"),
        "[{}]",
        server.name()
    );
    c.pump_for(TIMEOUT); // returns as soon as the server closes
    assert!(
        c.saw_eof(),
        "[{}] a rejected connection stays open",
        server.name()
    );
    expect_event(
        &server,
        "Closed",
        |e| matches!(e, ServerEvent::Closed { id: c, .. } if *c == id),
    );
}

/// Statistics through the runtime's handle: a published stream with its
/// publisher, two subscribers and input bytes; the publisher's and the
/// players' connections with their roles.
pub fn handle_statistics_show_a_published_stream_and_its_players<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    let (mut publisher, stream) = publishing(&server, "counted");
    let mut a = player(&server, "counted");
    let mut b = player(&server, "counted");
    assert!(
        feed_until_played(&mut publisher, stream, &mut [&mut a, &mut b]),
        "[{}] the players got no video",
        server.name()
    );
    let pub_id = id_of(&expect_event(
        &server,
        "PublishStarted",
        |e| matches!(e, ServerEvent::PublishStarted { name, .. } if name == "counted"),
    ))
    .expect("a PublishStarted names its connection");
    let control = server.control();
    let deadline = Instant::now() + TIMEOUT;
    let stats = loop {
        let stats = control.stream_stats("live", "counted");
        let done = stats
            .as_ref()
            .is_some_and(|s| s.subscribers == 2 && s.input.bytes > 0 && s.input.frames > 0);
        if done || Instant::now() >= deadline {
            break stats;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stats = stats.unwrap_or_else(|| panic!("[{}] no stream statistics", server.name()));
    assert_eq!(stats.subscribers, 2, "[{}] {stats:?}", server.name());
    assert!(stats.input.bytes > 0, "[{}] {stats:?}", server.name());
    assert_eq!(
        stats.publisher,
        Some(pub_id),
        "[{}] {stats:?}",
        server.name()
    );
    assert!(
        control
            .streams()
            .iter()
            .any(|s| s.app == "live" && s.name.as_deref() == Some("counted")),
        "[{}] streams() leaves it out",
        server.name()
    );
    let conn = control
        .connection_stats(pub_id)
        .unwrap_or_else(|| panic!("[{}] no publisher statistics", server.name()));
    assert_eq!(conn.role, Role::Publisher, "[{}] {conn:?}", server.name());
    assert_eq!(conn.app.as_deref(), Some("live"), "[{}]", server.name());
    assert!(conn.input.bytes > 0, "[{}] {conn:?}", server.name());
    let all = control.connections();
    let players = all.iter().filter(|(_, s)| s.role == Role::Player).count();
    assert!(
        all.len() == 3 && players == 2 && all.iter().any(|(id, _)| *id == pub_id),
        "[{}] connections(): {all:?}",
        server.name()
    );
}
