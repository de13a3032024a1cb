//! Requests the embedder decides, seen from the clients and the embedder:
//! approvals and denials by ticket, out-of-order and stale answers, the
//! decision deadline, and what a refused client is told.

use std::time::Duration;

use tincan_core::event::Denial;
use tincan_core::server::{Approvals, Decider, Grant, ServerEvent, Ticket, TicketError};
use tincan_tests::sim::media::avc_keyframe;
use tincan_tests::sim::{member_str, ClientId, Sim, SimConfig};

fn sim(connect: Decider, publish: Decider, play: Decider) -> Sim {
    Sim::with_config(SimConfig {
        approvals: Approvals {
            connect,
            publish,
            play,
            deadline: Duration::from_secs(5),
        },
        ..SimConfig::default()
    })
}

/// The tickets of every request event, in order, with their kind.
fn tickets(events: &[ServerEvent]) -> Vec<(&'static str, Ticket)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ConnectRequest { ticket, .. } => Some(("connect", *ticket)),
            ServerEvent::PublishRequest { ticket, .. } => Some(("publish", *ticket)),
            ServerEvent::PlayRequest { ticket, .. } => Some(("play", *ticket)),
            _ => None,
        })
        .collect()
}

fn one_ticket(sim: &mut Sim, kind: &str) -> Ticket {
    let events = sim.take_events();
    let found = tickets(&events);
    let [(k, t)] = found.as_slice() else {
        panic!("one request expected, got {events:?}");
    };
    assert_eq!(*k, kind);
    *t
}

/// The description of the last status on `stream` with `code`.
fn description(sim: &Sim, id: ClientId, stream: u32, code: &str) -> Option<String> {
    sim.client(id)
        .status_infos(stream)
        .iter()
        .rfind(|i| member_str(i, "code").as_deref() == Some(code))
        .and_then(|i| member_str(i, "description"))
}

fn connected_stream(sim: &mut Sim) -> (ClientId, u32) {
    let id = sim.add_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    (id, stream)
}

#[test]
fn an_approved_connect_succeeds_and_the_request_carries_what_was_sent() {
    let mut sim = sim(Decider::Embedder, Decider::Local, Decider::Local);
    let id = sim.add_client();
    let t = sim.client_mut(id).connect("live");
    sim.run();
    assert!(
        sim.client(id).reply(t).is_none(),
        "answered before the decision"
    );
    let events = sim.take_events();
    let request = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::ConnectRequest { ticket, info, .. } => Some((*ticket, info.clone())),
            _ => None,
        })
        .expect("a connect request");
    assert_eq!(request.1.app, "live");
    assert!(request
        .1
        .tc_url
        .as_deref()
        .is_some_and(|u| u.ends_with("/live")));
    sim.approve(request.0).unwrap();
    let reply = sim.client(id).reply(t).expect("a reply once approved");
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
    assert!(sim
        .take_events()
        .iter()
        .any(|e| matches!(e, ServerEvent::Connected { info, .. } if info.app == "live")));
}

#[test]
fn a_denied_connect_is_rejected_with_the_description_and_closed() {
    let mut sim = sim(Decider::Embedder, Decider::Local, Decider::Local);
    let id = sim.add_client();
    let t = sim.client_mut(id).connect("live");
    sim.run();
    let ticket = one_ticket(&mut sim, "connect");
    sim.deny(ticket, Denial::policy("not on the guest list"))
        .unwrap();
    let reply = sim.client(id).reply(t).expect("an _error");
    assert!(!reply.ok);
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Rejected")
    );
    assert_eq!(
        reply.info_str("description").as_deref(),
        Some("not on the guest list")
    );
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed(id));
}

#[test]
fn commands_sent_while_connect_waits_are_answered_once_it_is_approved() {
    let mut sim = sim(Decider::Embedder, Decider::Local, Decider::Local);
    let id = sim.add_client();
    let connect = sim.client_mut(id).connect("live");
    let create = sim.client_mut(id).create_stream();
    sim.run();
    assert!(sim.client(id).reply(create).is_none());
    let ticket = one_ticket(&mut sim, "connect");
    sim.approve(ticket).unwrap();
    assert!(sim.client(id).reply(connect).is_some_and(|r| r.ok));
    assert!(sim.client(id).reply(create).is_some_and(|r| r.ok));
}

#[test]
fn a_publish_denied_by_policy_gets_publish_denied_and_the_session_stays_usable() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "cam?token=wrong");
    sim.run();
    let events = sim.take_events();
    let Some(ServerEvent::PublishRequest {
        ticket, request, ..
    }) = events
        .iter()
        .find(|e| matches!(e, ServerEvent::PublishRequest { .. }))
    else {
        panic!("a publish request, got {events:?}");
    };
    assert_eq!(
        (request.app.as_str(), request.name.as_str()),
        ("live", "cam")
    );
    assert_eq!(request.query, "token=wrong");
    sim.deny(*ticket, Denial::policy("bad token")).unwrap();
    assert_eq!(
        description(&sim, id, stream, "NetStream.Publish.Denied").as_deref(),
        Some("bad token")
    );
    // The same connection publishes again, and this time is let in.
    sim.client_mut(id).publish(stream, "cam?token=right");
    sim.run();
    let ticket = one_ticket(&mut sim, "publish");
    sim.approve(ticket).unwrap();
    assert!(sim
        .client(id)
        .statuses(stream)
        .contains(&"NetStream.Publish.Start".to_owned()));
    assert!(!sim.is_closed(id));
}

#[test]
fn a_publish_denied_for_its_name_gets_bad_name() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "CAPS");
    sim.run();
    let ticket = one_ticket(&mut sim, "publish");
    sim.deny(ticket, Denial::bad_name("names are lower case"))
        .unwrap();
    assert_eq!(
        description(&sim, id, stream, "NetStream.Publish.BadName").as_deref(),
        Some("names are lower case")
    );
}

#[test]
fn a_play_denied_as_not_found_gets_stream_not_found_and_can_play_again() {
    let mut sim = sim(Decider::Local, Decider::Local, Decider::Embedder);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).play(stream, "nothing", -2.0);
    sim.run();
    assert!(sim.client(id).statuses(stream).is_empty());
    let ticket = one_ticket(&mut sim, "play");
    sim.deny(ticket, Denial::not_found("no such show")).unwrap();
    assert_eq!(
        description(&sim, id, stream, "NetStream.Play.StreamNotFound").as_deref(),
        Some("no such show")
    );
    sim.client_mut(id).play(stream, "cam", -2.0);
    sim.run();
    let ticket = one_ticket(&mut sim, "play");
    sim.approve(ticket).unwrap();
    assert!(sim
        .client(id)
        .statuses(stream)
        .contains(&"NetStream.Play.Start".to_owned()));
}

#[test]
fn answers_in_any_order_reach_their_own_requests() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (a, sa) = connected_stream(&mut sim);
    let (b, sb) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(a).publish(sa, "first");
    sim.client_mut(b).publish(sb, "second");
    sim.run();
    let events = sim.take_events();
    let ts = tickets(&events);
    assert_eq!(ts.len(), 2);
    // The later request is answered first, and refused; then the earlier.
    sim.deny(ts[1].1, Denial::policy("later refused")).unwrap();
    sim.approve(ts[0].1).unwrap();
    assert!(sim
        .client(a)
        .statuses(sa)
        .contains(&"NetStream.Publish.Start".to_owned()));
    assert_eq!(
        description(&sim, b, sb, "NetStream.Publish.Denied").as_deref(),
        Some("later refused")
    );
}

#[test]
fn a_ticket_is_answered_once() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "cam");
    sim.run();
    let ticket = one_ticket(&mut sim, "publish");
    sim.approve(ticket).unwrap();
    assert_eq!(
        sim.deny(ticket, Denial::policy("too late")),
        Err(TicketError::Stale(ticket))
    );
    assert!(!sim
        .client(id)
        .statuses(stream)
        .contains(&"NetStream.Publish.Denied".to_owned()));
}

#[test]
fn a_ticket_of_a_closed_connection_is_stale() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "cam");
    sim.run();
    let ticket = one_ticket(&mut sim, "publish");
    sim.drop_connection(id);
    assert_eq!(sim.approve(ticket), Err(TicketError::Stale(ticket)));
    assert_eq!(sim.server().pending_decisions(), 0);
    assert_eq!(sim.broker().published_count(), 0);
}

#[test]
fn a_ticket_of_a_superseded_publish_is_never_applied_to_the_newer_one() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "old");
    sim.run();
    let old = one_ticket(&mut sim, "publish");
    // The client gives up on "old" and asks for "new" on the same stream.
    sim.client_mut(id).close_stream(stream);
    sim.client_mut(id).publish(stream, "new");
    sim.run();
    let new = one_ticket(&mut sim, "publish");
    assert_eq!(sim.approve(old), Err(TicketError::Stale(old)));
    assert!(sim.client(id).statuses(stream).is_empty());
    assert_eq!(sim.broker().published_count(), 0);
    sim.approve(new).unwrap();
    assert_eq!(
        description(&sim, id, stream, "NetStream.Publish.Start").as_deref(),
        Some("new is now published.")
    );
}

#[test]
fn an_unanswered_request_is_denied_at_the_deadline() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (id, stream) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(id).publish(stream, "cam");
    sim.run();
    let ticket = one_ticket(&mut sim, "publish");
    sim.advance(Duration::from_secs(4));
    assert!(sim.client(id).statuses(stream).is_empty());
    sim.advance(Duration::from_secs(2));
    assert_eq!(
        description(&sim, id, stream, "NetStream.Publish.Denied").as_deref(),
        Some("no decision within 5 s")
    );
    assert_eq!(sim.approve(ticket), Err(TicketError::Stale(ticket)));
}

#[test]
fn an_unanswered_connect_is_rejected_at_the_deadline() {
    let mut sim = sim(Decider::Embedder, Decider::Local, Decider::Local);
    let id = sim.add_client();
    let t = sim.client_mut(id).connect("live");
    sim.run();
    sim.advance(Duration::from_secs(6));
    let reply = sim.client(id).reply(t).expect("an _error at the deadline");
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Rejected")
    );
    assert!(sim.is_closed(id));
}

#[test]
fn an_approved_publish_can_still_be_refused_by_the_broker() {
    let mut sim = sim(Decider::Local, Decider::Embedder, Decider::Local);
    let (a, sa) = connected_stream(&mut sim);
    let (b, sb) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(a).publish(sa, "cam");
    sim.client_mut(b).publish(sb, "cam");
    sim.run();
    let events = sim.take_events();
    for (_, t) in tickets(&events) {
        sim.approve(t).unwrap();
    }
    assert!(sim
        .client(a)
        .statuses(sa)
        .contains(&"NetStream.Publish.Start".to_owned()));
    assert_eq!(
        description(&sim, b, sb, "NetStream.Publish.BadName").as_deref(),
        Some("stream name is already being published")
    );
}

#[test]
fn a_play_past_the_stream_limit_is_refused_instead_of_waiting_forever() {
    let mut sim = Sim::with_config(SimConfig {
        broker: tincan_core::broker::BrokerConfig {
            max_streams: 1,
            ..Default::default()
        },
        ..SimConfig::default()
    });
    let (_, _) = sim.start_player("live", "one");
    let (id, stream) = connected_stream(&mut sim);
    sim.client_mut(id).play(stream, "two", -2.0);
    sim.run();
    assert_eq!(
        description(&sim, id, stream, "NetStream.Play.Failed").as_deref(),
        Some("too many streams")
    );
}

#[test]
fn the_embedder_hears_connections_publishes_and_plays_start_and_end() {
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam?key=1");
    let (player, _) = sim.start_player("live", "cam");
    sim.client_mut(publisher)
        .send_video(ps, 0, avc_keyframe(b"frame"));
    sim.run();
    sim.client_mut(player).close();
    sim.run();
    sim.advance(Duration::from_secs(1));
    sim.client_mut(publisher).close();
    sim.run();
    sim.advance(Duration::from_secs(1));
    let events = sim.take_events();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            ServerEvent::Opened { .. } => "opened".to_owned(),
            ServerEvent::Connected { info, .. } => format!("connected {}", info.app),
            ServerEvent::PublishStarted { name, query, .. } => {
                format!("publish {name} ?{query}")
            }
            ServerEvent::PlayStarted { name, .. } => format!("play {name}"),
            ServerEvent::PlayStopped { name, .. } => format!("stop {name}"),
            ServerEvent::PublishEnded { name, .. } => format!("unpublish {name}"),
            ServerEvent::Closed { .. } => "closed".to_owned(),
            ServerEvent::MediaChanged { info, .. } => format!("media {}", info.video().len()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "connected live",
            "publish cam ?key=1",
            "opened",
            "connected live",
            "play cam",
            "media 1",
            "stop cam",
            "closed",
            "media 0",
            "unpublish cam",
            "closed",
        ]
    );
    let closed_bytes: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Closed {
                bytes_in,
                bytes_out,
                ..
            } => Some((*bytes_in, *bytes_out)),
            _ => None,
        })
        .collect();
    // The player read every byte the server wrote to it.
    assert_eq!(closed_bytes[0].1, sim.client(player).bytes_received());
    assert!(closed_bytes.iter().all(|(i, o)| *i > 0 && *o > 0));
}

#[test]
fn stream_and_connection_statistics_count_exactly_what_flowed() {
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let (_p1, _) = sim.start_player("live", "cam");
    let (_p2, _) = sim.start_player("live", "cam");
    for i in 0..10u32 {
        sim.client_mut(publisher)
            .send_video(ps, i * 40, avc_keyframe(&[7u8; 100]));
    }
    sim.run();
    let now = sim.now();
    let stats = sim
        .server()
        .stream_stats(now, "live", "cam")
        .expect("the stream");
    assert_eq!(stats.subscribers, 2);
    assert_eq!(stats.input.frames, 10);
    let payload = avc_keyframe(&[7u8; 100]).len() as u64;
    assert_eq!(stats.input.bytes, 10 * payload);
    assert_eq!(stats.output.frames, 20);
    assert_eq!(stats.output.bytes, 20 * payload);
    assert_eq!(stats.publisher, Some(sim.session_id(publisher)));
    let conn = sim
        .server()
        .connection_stats(now, sim.session_id(publisher))
        .expect("the publisher");
    assert_eq!(conn.input.frames, 10);
    assert_eq!(conn.role, tincan_core::stats::Role::Publisher);
    assert_eq!(conn.app.as_deref(), Some("live"));
}

#[test]
fn the_embedder_hears_what_a_stream_carries_and_when_it_goes() {
    use tincan_core::message::Value;
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    sim.take_events();
    let metadata = Value::object([
        ("width", Value::Number(1280.0)),
        ("height", Value::Number(720.0)),
        ("framerate", Value::Number(30.0)),
        ("videocodecid", Value::Number(7.0)),
    ]);
    sim.client_mut(publisher)
        .set_data_frame(ps, 0, "onMetaData", &[metadata]);
    sim.run();
    let described = sim
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::MediaChanged { app, name, info } => Some((app, name, info)),
            _ => None,
        })
        .expect("a media description");
    assert_eq!(
        (described.0.as_str(), described.1.as_str()),
        ("live", "cam")
    );
    let video = described.2.video_track(0).expect("a video track");
    assert_eq!((video.width, video.height), (Some(1280), Some(720)));
    assert_eq!(video.frame_rate, Some(30.0));
    let now = sim.now();
    let stats = sim.server().stream_stats(now, "live", "cam").unwrap();
    assert_eq!(stats.media, *described.2);
    sim.client_mut(publisher).close();
    sim.run();
    assert!(sim
        .take_events()
        .iter()
        .any(|e| matches!(e, ServerEvent::MediaChanged { info, .. } if info.is_empty())));
}

fn connect_with_a_large_object(sim: &mut Sim, bytes: usize) -> (ClientId, f64) {
    use tincan_core::message::Value;
    let id = sim.add_client();
    let properties = Value::object([
        ("app", Value::from("live")),
        ("tcUrl", Value::from("rtmp://127.0.0.1/live")),
        ("padding", Value::from("x".repeat(bytes).as_str())),
    ]);
    let t = sim.client_mut(id).connect_with(properties, vec![]);
    sim.run();
    (id, t)
}

#[test]
fn undrained_events_are_bounded_in_memory_even_with_large_connect_objects() {
    let mut sim = Sim::with_config(SimConfig {
        max_queued_event_bytes: 1024 * 1024,
        ..SimConfig::default()
    });
    for _ in 0..40 {
        connect_with_a_large_object(&mut sim, 100_000);
    }
    // 40 connects of ~100 KB each would be ~4 MB of events.
    assert!(sim.server().events_dropped() > 0);
    let kept = sim.take_events();
    let connects = kept
        .iter()
        .filter(|e| matches!(e, ServerEvent::Connected { .. }))
        .count();
    assert!(
        (5..=10).contains(&connects),
        "{connects} connect events kept"
    );
}

#[test]
fn a_request_the_event_queue_cannot_hold_is_refused_at_once() {
    let mut sim = Sim::with_config(SimConfig {
        max_queued_event_bytes: 300_000,
        approvals: Approvals {
            connect: Decider::Embedder,
            ..Approvals::default()
        },
        ..SimConfig::default()
    });
    let (first, t1) = connect_with_a_large_object(&mut sim, 200_000);
    let (second, t2) = connect_with_a_large_object(&mut sim, 200_000);
    assert!(sim.client(first).reply(t1).is_none(), "the first waits");
    let refused = sim.client(second).reply(t2).expect("refused at once");
    assert_eq!(
        refused.info_str("description").as_deref(),
        Some("server busy")
    );
}

#[test]
fn totals_count_opens_publishes_plays_refusals_and_closed_traffic() {
    let mut sim = sim(Decider::Local, Decider::Local, Decider::Embedder);
    let (_publisher, _) = sim.start_publisher("live", "cam");
    let (dup, ds) = connected_stream(&mut sim);
    sim.client_mut(dup).publish(ds, "cam");
    sim.run();
    let (player, ps) = connected_stream(&mut sim);
    sim.take_events();
    sim.client_mut(player).play(ps, "cam", -2.0);
    sim.run();
    let ticket = one_ticket(&mut sim, "play");
    sim.deny(ticket, Denial::policy("no")).unwrap();
    sim.client_mut(player).play(ps, "cam", -2.0);
    sim.run();
    let ticket = one_ticket(&mut sim, "play");
    sim.approve(ticket).unwrap();
    let received = sim.client(player).bytes_received();
    sim.drop_connection(player);
    let t = *sim.server().totals();
    assert_eq!(t.opened[0], 3);
    assert_eq!((t.publishes, t.plays), (1, 1));
    assert_eq!(t.publishes_rejected_taken, 1);
    assert_eq!(t.plays_rejected_denied, 1);
    assert_eq!(t.closed_bytes_out, received);
    assert!(t.closed_bytes_in > 0);
}

#[test]
fn the_server_ends_a_publish_and_tells_its_publisher_why() {
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let (player, pl) = sim.start_player("live", "cam");
    let ended =
        sim.with_server(|s, now| s.end_publish(now, "live", "cam", "ended by the operator"));
    assert_eq!(ended, Some(sim.session_id(publisher)));
    assert_eq!(
        description(&sim, publisher, ps, "NetStream.Publish.Denied").as_deref(),
        Some("ended by the operator")
    );
    assert!(!sim.is_closed(publisher), "only the publish ends");
    assert_eq!(sim.broker().published_count(), 0);
    sim.advance(Duration::from_secs(6));
    assert!(sim
        .client(player)
        .statuses(pl)
        .contains(&"NetStream.Play.UnpublishNotify".to_owned()));
    assert_eq!(
        sim.with_server(|s, now| s.end_publish(now, "live", "cam", "again")),
        None
    );
}

#[test]
fn a_grant_gives_a_connection_the_publish_priority_its_token_carries() {
    let mut sim = sim(Decider::Embedder, Decider::Local, Decider::Local);
    // The first publisher connects with nothing granted.
    let first = sim.add_client();
    sim.client_mut(first).connect("live");
    sim.run();
    let t = one_ticket(&mut sim, "connect");
    sim.approve(t).unwrap();
    let fs = sim.create_stream(first);
    sim.client_mut(first).publish(fs, "cam");
    sim.run();
    // The second is granted priority 5 and asks for 3.
    let second = sim.add_client();
    sim.client_mut(second).connect("live");
    sim.run();
    let t = one_ticket(&mut sim, "connect");
    sim.with_server(|s, now| s.approve_with(now, t, Grant::max_publish_priority(5)))
        .unwrap();
    let ss = sim.create_stream(second);
    sim.client_mut(second).publish(ss, "cam?priority=3");
    sim.run();
    assert_eq!(sim.client(second).statuses(ss), ["NetStream.Publish.Start"]);
    assert_eq!(
        sim.client(first).statuses(fs),
        ["NetStream.Publish.Start", "NetStream.Publish.BadName"]
    );
}

#[test]
fn a_grant_gives_a_play_its_real_time_treatment() {
    use tincan_core::session::RealTimeConfig;
    use tincan_tests::sim::media::avc_inter;
    use tincan_tests::sim::LinkConfig;
    let mut sim = sim(Decider::Local, Decider::Local, Decider::Embedder);
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let mut players = Vec::new();
    for granted in [true, false] {
        let id = sim.add_client();
        sim.connect(id, "live");
        let s = sim.create_stream(id);
        sim.take_events();
        sim.client_mut(id).play(s, "cam", -2.0);
        sim.run();
        let t = one_ticket(&mut sim, "play");
        let rt = RealTimeConfig {
            video_lifetime: Duration::from_millis(200),
            ..RealTimeConfig::default()
        };
        sim.with_server(|s, now| {
            if granted {
                s.approve_with(now, t, Grant::real_time(rt))
            } else {
                s.approve(now, t)
            }
        })
        .unwrap();
        // From now on the player's link is slow: its media queues up.
        sim.set_link(id, LinkConfig::slow(2));
        players.push(id);
    }
    for i in 0..25u32 {
        let frame = if i == 0 {
            avc_keyframe(&[1u8; 2000])
        } else {
            avc_inter(&[2u8; 2000])
        };
        sim.client_mut(publisher).send_video(ps, i * 40, frame);
        sim.advance(Duration::from_millis(40));
    }
    let now = sim.now();
    let dropped = |id| {
        sim.server()
            .connection_stats(now, sim.session_id(id))
            .unwrap()
            .dropped_frames
    };
    assert!(dropped(players[0]) > 0, "the granted 200 ms lifetime drops");
    assert_eq!(
        dropped(players[1]),
        0,
        "the default 3 s lifetime does not yet"
    );
}
