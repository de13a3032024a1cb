//! TC over RTWebSocket flows, seen from the clients: a browser-like client
//! ([`Sim::add_rtws_client`], speaking as the reference JavaScript client
//! does) connects, publishes and plays through the same server as RTMP
//! clients, sharing streams, approvals, auth and relays with them.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::auth::AuthKeys;
use tincan_core::event::{Denial, FrameKind};
use tincan_core::message::{type_id, Command, GenericCommand, Message, UserControl, Value};
use tincan_core::rtws::{RtwsConfig, RtwsError};
use tincan_core::server::{Approvals, Decider, ServerEvent, Transport};
use tincan_core::session::{SessionConfig, SessionError};
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::rtws::{tc_message, tc_metadata};
use tincan_tests::sim::{ClientId, Media, Sim, SimConfig};

/// A browser client connected to `live` with a stream publishing `name`.
fn rtws_publisher(sim: &mut Sim, name: &str) -> (ClientId, u32) {
    let id = sim.add_rtws_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, name);
    sim.run();
    let statuses = sim.client(id).statuses(stream);
    assert!(
        statuses.iter().any(|s| s == "NetStream.Publish.Start"),
        "{statuses:?}"
    );
    (id, stream)
}

/// A browser client connected to `live` and playing `name`.
fn rtws_player(sim: &mut Sim, name: &str) -> (ClientId, u32) {
    let id = sim.add_rtws_client();
    sim.start_player_on(id, "live", name)
}

/// A short stream: configuration, then a keyframe, audio and inter frames.
fn stream_frames() -> Vec<(FrameKind, u32, Bytes)> {
    vec![
        (FrameKind::Video, 0, avc_sequence_header(b"avc-config")),
        (FrameKind::Audio, 0, aac_config(b"\x12\x10")),
        (FrameKind::Video, 0, avc_keyframe(&tagged(b'K', 0, 3000))),
        (FrameKind::Audio, 21, aac_raw(&tagged(b'A', 1, 50))),
        (FrameKind::Video, 40, avc_inter(&tagged(b'I', 2, 300))),
        (FrameKind::Audio, 42, aac_raw(&tagged(b'A', 3, 50))),
        (FrameKind::Video, 80, avc_inter(&tagged(b'I', 4, 300))),
    ]
}

fn send_frames(sim: &mut Sim, id: ClientId, stream: u32, frames: &[(FrameKind, u32, Bytes)]) {
    for (kind, ts, payload) in frames {
        match kind {
            FrameKind::Video => sim.client_mut(id).send_video(stream, *ts, payload.clone()),
            _ => sim.client_mut(id).send_audio(stream, *ts, payload.clone()),
        }
    }
    sim.run();
}

fn av(media: &[Media]) -> Vec<(FrameKind, u32, Bytes)> {
    media
        .iter()
        .filter(|m| m.kind != FrameKind::Data)
        .map(|m| (m.kind, m.timestamp.as_millis(), m.payload.clone()))
        .collect()
}

/// Audio and video apart: over RTWebSocket each goes on its own flow,
/// each in order, and audio (the higher priority) may overtake video.
fn by_kind(frames: &[(FrameKind, u32, Bytes)]) -> [Vec<(FrameKind, u32, Bytes)>; 2] {
    [FrameKind::Audio, FrameKind::Video]
        .map(|kind| frames.iter().filter(|f| f.0 == kind).cloned().collect())
}

fn relay_command(name: &str, args: Vec<Value>) -> Command {
    Command::Other(GenericCommand {
        name: name.to_owned(),
        transaction_id: 0.0,
        command_object: Value::Null,
        args,
    })
}

#[test]
fn connect_gets_success_on_a_flow_answering_the_control_flow() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    let reply = sim.connect(c, "live");
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
    assert!(sim.client(c).unanswered_flows().is_empty());
    assert!(
        sim.client(c).errors().is_empty(),
        "{:?}",
        sim.client(c).errors()
    );
    let stats = sim
        .server()
        .connection_stats(sim.now(), sim.session_id(c))
        .unwrap();
    assert_eq!(stats.transport, Transport::Rtws);
    assert_eq!(stats.transport.as_str(), "rtws");
    assert!(stats.input.bytes > 0 && stats.output.bytes > 0, "{stats:?}");
    assert_eq!(sim.server().totals().opened[5], 1);
}

#[test]
fn rtws_publisher_reaches_an_rtmp_player_in_order_with_timestamps() {
    let mut sim = Sim::new();
    let (publisher, pstream) = rtws_publisher(&mut sim, "cam");
    let (player, stream) = sim.start_player("live", "cam");
    let frames = stream_frames();
    send_frames(&mut sim, publisher, pstream, &frames);
    assert_eq!(av(&sim.client(player).media(stream)), frames);
    assert!(sim.client(player).errors().is_empty());
}

#[test]
fn rtmp_publisher_reaches_an_rtws_player_in_order_with_timestamps() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = rtws_player(&mut sim, "cam");
    let frames = stream_frames();
    send_frames(&mut sim, publisher, pstream, &frames);
    assert_eq!(
        by_kind(&av(&sim.client(player).media(stream))),
        by_kind(&frames)
    );
    assert!(sim.client(player).unanswered_flows().is_empty());
    assert!(sim.client(player).errors().is_empty());
}

#[test]
fn rtws_player_gets_stream_begin_sample_access_and_metadata() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    sim.client_mut(publisher).set_data_frame(
        pstream,
        0,
        "onMetaData",
        &[Value::object([("width", Value::Number(640.0))])],
    );
    sim.run();
    let (player, stream) = rtws_player(&mut sim, "cam");
    assert!(sim
        .client(player)
        .user_controls()
        .contains(&UserControl::StreamBegin(stream)));
    let handlers: Vec<_> = sim
        .client(player)
        .all_media(stream)
        .into_iter()
        .filter_map(|m| m.handler)
        .collect();
    assert!(
        handlers.iter().any(|h| h == "|RtmpSampleAccess"),
        "{handlers:?}"
    );
    assert!(handlers.iter().any(|h| h == "onMetaData"), "{handlers:?}");
}

#[test]
fn late_rtws_player_starts_with_sequence_headers_and_the_current_gop() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let frames = stream_frames();
    send_frames(&mut sim, publisher, pstream, &frames);
    let (player, stream) = rtws_player(&mut sim, "cam");
    assert_eq!(
        by_kind(&av(&sim.client(player).media(stream))),
        by_kind(&frames)
    );
}

#[test]
fn media_goes_on_separate_audio_and_video_flows_of_the_stream() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = rtws_player(&mut sim, "cam");
    send_frames(&mut sim, publisher, pstream, &stream_frames());
    // Received records the message stream of the flow each came on: every
    // frame came on a flow whose TC metadata names the player's stream.
    let on_other: Vec<_> = sim
        .client(player)
        .received()
        .iter()
        .filter(|r| matches!(r.message, Message::Audio(_) | Message::Video(_)))
        .filter(|r| r.stream_id != stream)
        .collect();
    assert!(on_other.is_empty(), "{on_other:?}");
    let session = sim.session(player).unwrap();
    assert_eq!(session.frames_out(), stream_frames().len() as u64);
}

#[test]
fn stalled_rtws_player_gets_late_frames_abandoned_never_sent_late() {
    let session = SessionConfig {
        // A short flight so a player that stops acknowledging stalls at
        // once rather than after a megabyte.
        rtws: RtwsConfig {
            max_bytes_in_flight: 32 * 1024,
            ..SessionConfig::default().rtws
        },
        ..SessionConfig::default()
    };
    let rt = session.real_time;
    let mut sim = Sim::with_config(SimConfig {
        session,
        ..SimConfig::default()
    });
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (fast, fast_stream) = sim.start_player("live", "cam");
    let (slow, slow_stream) = rtws_player(&mut sim, "cam");
    sim.client_mut(publisher)
        .send_video(pstream, 0, avc_sequence_header(b"avc-config"));
    let mut sent = 0u32;
    // 12 s of 25 fps video with a keyframe a second; the slow player stops
    // acknowledging from 2 s to 8 s.
    for i in 0..300u32 {
        let ts = i * 40;
        if ts == 2000 {
            sim.client_mut(slow).withhold_acks(true);
        }
        if ts == 8000 {
            sim.client_mut(slow).withhold_acks(false);
        }
        sim.advance_to(Duration::from_millis(u64::from(ts)));
        let payload = if i % 25 == 0 {
            avc_keyframe(&tagged(b'K', i, 4000))
        } else {
            avc_inter(&tagged(b'I', i, 4000))
        };
        sim.client_mut(publisher).send_video(pstream, ts, payload);
        sent += 1;
    }
    sim.advance(Duration::from_secs(2));

    // The RTMP player is undisturbed: every frame, in order.
    let fast_media = sim.client(fast).media(fast_stream);
    assert_eq!(fast_media.len() as u32, sent + 1);
    // The slow player lost frames but never got one past its lifetime.
    let late_limit = rt.video_lifetime + rt.finish_by_margin;
    let slow_media = sim.client(slow).media(slow_stream);
    for m in slow_media.iter().skip(1) {
        let published = Duration::from_millis(u64::from(m.timestamp.as_millis()));
        assert!(
            m.at.saturating_sub(published) <= late_limit,
            "frame {} ms arrived at {:?}",
            m.timestamp.as_millis(),
            m.at
        );
    }
    assert!((slow_media.len() as u32) < sent, "nothing was dropped");
    assert!(sim.session(slow).unwrap().dropped_frames() > 0);
    // It recovered: the last frame arrived, in order after the others.
    let stamps: Vec<u32> = slow_media.iter().map(|m| m.timestamp.as_millis()).collect();
    assert_eq!(stamps.last(), Some(&((sent - 1) * 40)));
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(
        sim.client(slow).errors().is_empty(),
        "{:?}",
        sim.client(slow).errors()
    );
    assert!(sim.client(publisher).errors().is_empty());
}

#[test]
fn connect_denied_by_an_approval_is_rejected_over_rtws() {
    let mut sim = Sim::with_config(SimConfig {
        approvals: Approvals {
            connect: Decider::Embedder,
            ..Approvals::default()
        },
        ..SimConfig::default()
    });
    let id = sim.add_rtws_client();
    let t = sim.client_mut(id).connect("live");
    sim.run();
    let ticket = sim
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::ConnectRequest { ticket, .. } => Some(ticket),
            _ => None,
        })
        .expect("a connect request");
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
fn user_token_authenticates_over_rtws() {
    const USER_TOKEN: &str = "8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7";
    let mut sim = Sim::with_config(SimConfig {
        session: SessionConfig {
            auth_keys: AuthKeys::new(["supersecret"]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    });
    let connect = |sim: &mut Sim, token: &str| {
        let id = sim.add_rtws_client();
        let t = sim.client_mut(id).connect_with(
            Value::object([
                ("app", Value::from("live/12345")),
                ("objectEncoding", Value::Number(0.0)),
                ("tcUrl", Value::from("wss://localhost/live/12345")),
            ]),
            vec![Value::from("mike"), Value::from(token)],
        );
        sim.run();
        (id, sim.client(id).reply(t).expect("connect is answered"))
    };
    let (id, reply) = connect(&mut sim, USER_TOKEN);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(sim.session(id).and_then(|s| s.user()), Some("mike"));
    let (_, reply) = connect(&mut sim, &USER_TOKEN.replace('8', "9"));
    assert!(!reply.ok, "{reply:?}");
}

#[test]
fn relay_goes_both_ways_between_rtws_and_rtmp_clients() {
    let mut sim = Sim::new();
    let web = sim.add_rtws_client();
    let web_id = sim.connect(web, "live").info_str("connectionID").unwrap();
    let rtmp = sim.add_client();
    let rtmp_id = sim.connect(rtmp, "live").info_str("connectionID").unwrap();
    let relayed = |sim: &Sim, id: ClientId| -> Vec<Vec<Value>> {
        sim.client(id)
            .received()
            .iter()
            .filter_map(|r| match &r.message {
                Message::Command {
                    command: Command::Other(g),
                    ..
                } if g.name == "onRelay" => Some(g.args.clone()),
                _ => None,
            })
            .collect()
    };
    sim.client_mut(web).command(
        0,
        relay_command(
            "relay",
            vec![Value::from(rtmp_id.clone()), Value::from("hi")],
        ),
    );
    sim.run();
    assert_eq!(
        relayed(&sim, rtmp),
        [vec![Value::from(web_id.clone()), Value::from("hi")]]
    );
    sim.client_mut(rtmp)
        .command(0, relay_command("broadcast", vec![Value::from("all")]));
    sim.run();
    assert_eq!(
        relayed(&sim, web),
        [vec![Value::from(rtmp_id), Value::from("all")]]
    );
}

#[test]
fn a_flow_without_tc_metadata_is_refused_and_the_session_goes_on() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    sim.connect(c, "live");
    let flow = sim
        .client_mut(c)
        .send_on_new_flow(Bytes::from_static(b"not tc"), &[]);
    sim.run();
    assert_eq!(
        sim.client(c).refused_flows(),
        [(flow, "not a TC flow".to_owned())]
    );
    // Still connected and served.
    let stream = sim.create_stream(c);
    assert!(stream >= 1);
    assert!(!sim.is_closed(c));
}

#[test]
fn a_flow_for_a_stream_never_created_is_refused() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    sim.connect(c, "live");
    let frame = tc_message(type_id::VIDEO, 0, &avc_keyframe(b"k"));
    let flow = sim.client_mut(c).send_on_new_flow(tc_metadata(9), &[frame]);
    sim.run();
    assert_eq!(
        sim.client(c).refused_flows(),
        [(flow, "unknown stream 9".to_owned())]
    );
    assert!(!sim.is_closed(c));
}

#[test]
fn malformed_rtws_input_closes_only_its_session() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "cam");
    let bad = sim.add_rtws_client();
    sim.connect(bad, "live");
    // User data on a flow that was never opened.
    sim.client_mut(bad)
        .send_ws_message(Bytes::from_static(&[0x1d, 0x63, 1, 2, 3]));
    sim.run();
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed(bad));
    assert!(matches!(
        sim.close_reason(bad),
        Some(SessionError::Rtws(RtwsError::UnknownFlow {
            flow: 0x63,
            ..
        }))
    ));
    let frames = stream_frames();
    send_frames(&mut sim, publisher, pstream, &frames);
    assert_eq!(av(&sim.client(player).media(stream)), frames);
}

#[test]
fn a_tc_message_shorter_than_its_header_closes_the_session() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    sim.connect(c, "live");
    sim.client_mut(c)
        .send_on_new_flow(tc_metadata(0), &[Bytes::from_static(&[20, 0, 0])]);
    sim.run();
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed(c));
    assert!(matches!(
        sim.close_reason(c),
        Some(SessionError::Protocol(_))
    ));
}

#[test]
fn more_flows_than_the_limit_close_the_session() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    sim.connect(c, "live");
    let limit = SessionConfig::default().rtws.max_recv_flows;
    for _ in 0..limit {
        sim.client_mut(c).send_on_new_flow(tc_metadata(0), &[]);
    }
    sim.run();
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed(c));
    assert_eq!(
        sim.close_reason(c),
        Some(&SessionError::Rtws(RtwsError::TooManyFlows(limit)))
    );
}
