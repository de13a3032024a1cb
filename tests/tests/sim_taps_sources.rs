//! Taps (an embedder reading a stream from code) and sources (an embedder
//! publishing from code), next to ordinary RTMP players and publishers.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::event::{Frame, FrameKind, PlayRejection, PublishRejection};
use tincan_core::server::{ServerEvent, Transport};
use tincan_core::session::RealTimeConfig;
use tincan_core::tap::{Codec, SourceError, TapId, TapItem};
use tincan_core::time::MediaTime;
use tincan_tests::sim::media::{aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header};
use tincan_tests::sim::{Sim, SimConfig};

fn drain(sim: &mut Sim, tap: TapId) -> Vec<TapItem> {
    sim.with_server(|s, now| std::iter::from_fn(|| s.poll_tap(now, tap)).collect())
}

fn frames(items: &[TapItem]) -> Vec<(FrameKind, u32, Bytes)> {
    items
        .iter()
        .filter_map(|i| match i {
            TapItem::Frame(f) => Some((f.kind, f.timestamp.as_millis(), f.payload.clone())),
            _ => None,
        })
        .collect()
}

fn media(kind: FrameKind, ts: u32, payload: Bytes, keyframe: bool, config: bool) -> Frame {
    Frame {
        kind,
        timestamp: MediaTime::from_millis(ts),
        payload,
        keyframe,
        config,
    }
}

#[test]
fn a_tap_sees_exactly_what_a_player_joining_with_it_sees() {
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let c = sim.client_mut(publisher);
    c.send_video(ps, 1000, avc_sequence_header(b"sps"));
    c.send_audio(ps, 1000, aac_config(b"\x12\x10"));
    c.send_video(ps, 1000, avc_keyframe(b"key0"));
    c.send_audio(ps, 1010, aac_raw(b"a0"));
    c.send_video(ps, 1040, avc_inter(b"p1"));
    sim.run();
    // Both join mid-GOP: both start from the cached keyframe.
    let (player, stream) = sim.start_player("live", "cam");
    let tap = sim
        .with_server(|s, now| s.open_tap(now, "live", "cam", None))
        .expect("tap opened");
    let c = sim.client_mut(publisher);
    c.send_video(ps, 1080, avc_inter(b"p2"));
    c.send_audio(ps, 1090, aac_raw(b"a1"));
    c.send_video(ps, 1120, avc_keyframe(b"key1"));
    sim.run();
    let tapped = drain(&mut sim, tap);
    // Joined a live stream: frames only, as the player got only media.
    assert!(tapped.iter().all(|i| matches!(i, TapItem::Frame(_))));
    let played: Vec<(FrameKind, u32, Bytes)> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| (m.kind, m.timestamp.as_millis(), m.payload))
        .collect();
    assert!(played.len() >= 8, "{played:?}");
    assert_eq!(frames(&tapped), played);
    let first_video = tapped.iter().find_map(|i| match i {
        TapItem::Frame(f) if f.kind == FrameKind::Video => Some(f.clone()),
        _ => None,
    });
    let first_video = first_video.expect("video");
    assert!(first_video.config);
    assert_eq!(
        first_video.codec,
        Some(Codec::Video(tincan_core::media::VideoCodec::Avc))
    );
}

#[test]
fn a_tap_that_does_not_drain_holds_at_most_its_budget_and_nothing_stale() {
    let mut sim = Sim::new();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let rt = RealTimeConfig {
        max_backlog_bytes: 64 * 1024,
        ..RealTimeConfig::default()
    };
    let tap = sim
        .with_server(|s, now| s.open_tap(now, "live", "cam", Some(rt)))
        .unwrap();
    sim.client_mut(publisher)
        .send_video(ps, 0, avc_sequence_header(b"sps"));
    for i in 0..200u32 {
        let frame = if i % 25 == 0 {
            avc_keyframe(&[1u8; 4000])
        } else {
            avc_inter(&[2u8; 4000])
        };
        sim.client_mut(publisher).send_video(ps, i * 40, frame);
        sim.advance(Duration::from_millis(40));
        let (_, _, held) = sim.server().tap_backlog(tap).unwrap();
        assert!(held <= 64 * 1024, "tap holds {held} bytes");
    }
    let (dropped, _, _) = sim.server().tap_backlog(tap).unwrap();
    assert!(dropped > 0);
    // Long after: everything left is past its lifetime except the config.
    sim.advance(Duration::from_secs(10));
    let items = drain(&mut sim, tap);
    assert!(
        frames(&items)
            .iter()
            .all(|(_, _, p)| p.as_ref() == avc_sequence_header(b"sps")),
        "stale media handed out: {} items",
        items.len()
    );
}

#[test]
fn a_tap_of_a_stream_past_the_limit_is_refused() {
    let mut sim = Sim::with_config(SimConfig {
        broker: tincan_core::broker::BrokerConfig {
            max_streams: 1,
            ..Default::default()
        },
        ..SimConfig::default()
    });
    sim.start_publisher("live", "one");
    let refused = sim.with_server(|s, now| s.open_tap(now, "live", "two", None));
    assert_eq!(refused, Err(PlayRejection::TooManyStreams));
}

#[test]
fn a_tap_counts_as_a_subscriber_and_is_reported() {
    let mut sim = Sim::new();
    sim.start_publisher("live", "cam");
    sim.take_events();
    let tap = sim
        .with_server(|s, now| s.open_tap(now, "live", "cam", None))
        .unwrap();
    let now = sim.now();
    assert_eq!(
        sim.server()
            .stream_stats(now, "live", "cam")
            .unwrap()
            .subscribers,
        1
    );
    sim.with_server(|s, now| s.close_tap(now, tap));
    let events = sim.take_events();
    assert!(matches!(
        events.first(),
        Some(ServerEvent::Opened {
            transport: Transport::Tap,
            ..
        })
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlayStarted { name, .. } if name == "cam")));
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlayStopped { .. })));
    let now = sim.now();
    assert_eq!(
        sim.server()
            .stream_stats(now, "live", "cam")
            .unwrap()
            .subscribers,
        0
    );
}

#[test]
fn a_source_plays_to_a_player_as_an_encoder_would() {
    let mut sim = Sim::new();
    let (player, stream) = sim.start_player("live", "gen");
    let source = sim
        .with_server(|s, now| s.open_source(now, "live", "gen", 0))
        .expect("source opened");
    assert!(sim
        .client(player)
        .statuses(stream)
        .contains(&"NetStream.Play.PublishNotify".to_owned()));
    let sent = [
        media(
            FrameKind::Video,
            5000,
            avc_sequence_header(b"sps"),
            false,
            true,
        ),
        media(FrameKind::Video, 5000, avc_keyframe(b"k"), true, false),
        media(FrameKind::Audio, 5010, aac_raw(b"a"), false, false),
        media(FrameKind::Video, 5040, avc_inter(b"p"), false, false),
    ];
    for f in &sent {
        sim.with_server(|s, now| s.source_frame(now, source, f.clone()))
            .unwrap();
    }
    let got: Vec<(u32, Bytes)> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| (m.timestamp.as_millis(), m.payload))
        .collect();
    // Rebased onto the player's timeline, as an encoder's would be.
    let want: Vec<(u32, Bytes)> = sent
        .iter()
        .map(|f| (f.timestamp.as_millis() - 5000, f.payload.clone()))
        .collect();
    assert_eq!(got, want);
    let now = sim.now();
    let stats = sim.server().stream_stats(now, "live", "gen").unwrap();
    assert_eq!(stats.publisher, Some(source.session_id()));
    assert_eq!(stats.input.frames, 4);
}

#[test]
fn a_source_keeps_a_live_name_from_an_encoder_and_yields_to_a_higher_priority() {
    let mut config = SimConfig::default();
    config.session.max_publish_priority = 5;
    let mut sim = Sim::with_config(config);
    let source = sim
        .with_server(|s, now| s.open_source(now, "live", "gen", 1))
        .unwrap();
    // An encoder at the default priority is refused.
    let id = sim.add_client();
    sim.connect(id, "live");
    let s1 = sim.create_stream(id);
    sim.client_mut(id).publish(s1, "gen");
    sim.run();
    assert_eq!(sim.client(id).statuses(s1), ["NetStream.Publish.BadName"]);
    // A second source at the same priority is refused too.
    let again = sim.with_server(|s, now| s.open_source(now, "live", "gen", 1));
    assert_eq!(again, Err(PublishRejection::AlreadyPublishing));
    // An encoder asking for more takes it over; the source is told.
    let s2 = sim.create_stream(id);
    sim.client_mut(id).publish(s2, "gen?priority=2");
    sim.run();
    assert_eq!(sim.client(id).statuses(s2), ["NetStream.Publish.Start"]);
    let f = media(FrameKind::Video, 0, avc_keyframe(b"k"), true, false);
    assert_eq!(
        sim.with_server(|s, now| s.source_frame(now, source, f)),
        Err(SourceError::Evicted)
    );
    sim.with_server(|s, now| s.close_source(now, source));
    assert_eq!(sim.broker().published_count(), 1);
}

#[test]
fn a_closed_source_leaves_its_players_the_republish_grace() {
    let mut sim = Sim::new();
    let (player, stream) = sim.start_player("live", "gen");
    let source = sim
        .with_server(|s, now| s.open_source(now, "live", "gen", 0))
        .unwrap();
    sim.with_server(|s, now| s.close_source(now, source));
    sim.advance(Duration::from_secs(6));
    assert!(sim
        .client(player)
        .statuses(stream)
        .contains(&"NetStream.Play.UnpublishNotify".to_owned()));
    assert_eq!(sim.broker().published_count(), 0);
}
