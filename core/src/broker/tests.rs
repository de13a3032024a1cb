//! Event-level tests of the broker: sessions are simulated by the events
//! they would emit, time by a virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Broker, BrokerConfig};
use crate::event::{
    BrokerEvent, Frame, FrameKind, PlayRejection, PlayRequest, PublishRejection, SessionEvent,
    SessionId,
};
use crate::message::PublishKind;
use crate::time::MediaTime;

const FOO_HASHNAME: &str =
    "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

struct Harness {
    broker: Broker,
    now: Instant,
    /// Polled events not yet looked at.
    inbox: Vec<(SessionId, BrokerEvent)>,
}

impl Harness {
    fn new() -> Self {
        Harness::with(BrokerConfig::default())
    }

    fn with(config: BrokerConfig) -> Self {
        Harness {
            broker: Broker::new(config),
            now: crate::testing::test_now(),
            inbox: Vec::new(),
        }
    }

    fn connect(&mut self, app: &str) -> SessionId {
        let id = self.broker.open_session();
        self.send(
            id,
            SessionEvent::Connected(Box::new(crate::event::ConnectInfo {
                app: app.to_owned(),
                connection_id: format!("conn-{id}"),
                ..Default::default()
            })),
        );
        id
    }

    fn send(&mut self, id: SessionId, event: SessionEvent) {
        self.broker.handle_event(self.now, id, event);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.broker.handle_timeout(self.now);
    }

    /// Everything polled and not looked at yet.
    fn drain(&mut self) -> Vec<(SessionId, BrokerEvent)> {
        self.inbox
            .extend(std::iter::from_fn(|| self.broker.poll_output()));
        std::mem::take(&mut self.inbox)
    }

    /// What `id` got and nobody looked at yet; other sessions' events are
    /// kept for them.
    fn events_for(&mut self, id: SessionId) -> Vec<BrokerEvent> {
        let (mine, others) = self.drain().into_iter().partition(|(to, _)| *to == id);
        self.inbox = others;
        mine.into_iter().map(|(_, e)| e).collect()
    }

    fn publish(&mut self, id: SessionId, stream: u32, name: &str) -> BrokerEvent {
        self.send(
            id,
            SessionEvent::Publish {
                stream,
                name: name.to_owned(),
                kind: PublishKind::Live,
                seq: 1,
                query: String::new(),
                priority: 0,
            },
        );
        let mut events = self.events_for(id);
        assert_eq!(events.len(), 1, "one answer to publish: {events:?}");
        events.remove(0)
    }

    /// Plays `name`; the answer (accepted or refused) is taken from the
    /// inbox and returned, so tests see only what follows it.
    fn play(&mut self, id: SessionId, stream: u32, name: &str) -> Option<BrokerEvent> {
        self.send(
            id,
            SessionEvent::Play {
                stream,
                request: PlayRequest {
                    seq: 1,
                    name: name.to_owned(),
                    query: String::new(),
                },
            },
        );
        let mut mine = self.events_for(id);
        let answer = mine.iter().position(|e| {
            matches!(e, BrokerEvent::PlayAccepted { stream: s, .. }
                | BrokerEvent::PlayRejected { stream: s, .. } if *s == stream)
        });
        let answer = answer.map(|i| mine.remove(i));
        self.inbox.extend(mine.into_iter().map(|e| (id, e)));
        answer
    }

    fn frame(&mut self, id: SessionId, stream: u32, frame: Frame) {
        self.send(id, SessionEvent::Frame { stream, frame });
    }

    fn set_data_frame(&mut self, id: SessionId, stream: u32, handler: &str, frame: Frame) {
        self.send(
            id,
            SessionEvent::SetDataFrame {
                stream,
                handler: handler.to_owned(),
                frame,
            },
        );
    }
}

fn frame(kind: FrameKind, ts: u32, payload: &[u8], keyframe: bool, config: bool) -> Frame {
    Frame {
        kind,
        timestamp: MediaTime::from_millis(ts),
        payload: Bytes::copy_from_slice(payload),
        keyframe,
        config,
    }
}

/// Legacy AVC sequence header.
fn avc_config(ts: u32) -> Frame {
    frame(
        FrameKind::Video,
        ts,
        &[0x17, 0, 0, 0, 0, 1, 0x64],
        false,
        true,
    )
}

/// Legacy AVC keyframe.
fn key(ts: u32) -> Frame {
    frame(FrameKind::Video, ts, &[0x17, 1, 0, 0, 0, 0xAA], true, false)
}

/// Legacy AVC inter frame.
fn inter(ts: u32) -> Frame {
    frame(
        FrameKind::Video,
        ts,
        &[0x27, 1, 0, 0, 0, 0xBB],
        false,
        false,
    )
}

/// AAC AudioSpecificConfig.
fn aac_config(ts: u32) -> Frame {
    frame(FrameKind::Audio, ts, &[0xAF, 0, 0x12, 0x10], false, true)
}

/// AAC raw frame.
fn aac(ts: u32) -> Frame {
    frame(FrameKind::Audio, ts, &[0xAF, 1, 0xCC], false, false)
}

/// An `onMetaData` body (its exact AMF does not matter to the broker).
fn metadata(ts: u32, tag: u8) -> Frame {
    frame(FrameKind::Data, ts, &[2, 0, 10, tag], false, false)
}

/// The frames of `events` as (kind, config, keyframe, timestamp).
fn frames(events: &[BrokerEvent]) -> Vec<(FrameKind, bool, bool, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            BrokerEvent::Frame { frame, .. } => Some((
                frame.kind,
                frame.config,
                frame.keyframe,
                frame.timestamp.as_millis(),
            )),
            _ => None,
        })
        .collect()
}

fn timestamps(events: &[BrokerEvent]) -> Vec<u32> {
    frames(events).into_iter().map(|f| f.3).collect()
}

fn payloads(events: &[BrokerEvent]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            BrokerEvent::Frame { frame, .. } => Some(frame.payload.clone()),
            _ => None,
        })
        .collect()
}

/// A publisher of "foo" in "live" that sent metadata, configs, a keyframe
/// at 1000 and two frames after it.
fn published_foo(h: &mut Harness) -> SessionId {
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.set_data_frame(publisher, 1, "onMetaData", metadata(0, 1));
    h.frame(publisher, 1, avc_config(0));
    h.frame(publisher, 1, aac_config(0));
    h.frame(publisher, 1, inter(900));
    h.frame(publisher, 1, key(1000));
    h.frame(publisher, 1, aac(1010));
    h.frame(publisher, 1, inter(1033));
    h.drain();
    publisher
}

// ---------------------------------------------------------------- registry

#[test]
fn session_ids_are_sequential_and_never_reused() {
    let mut h = Harness::new();
    let a = h.connect("live");
    h.send(a, SessionEvent::Closed);
    let b = h.broker.open_session();
    assert_eq!((a, b), (SessionId(1), SessionId(2)));
}

#[test]
fn connected_sessions_are_counted_until_closed() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let _b = h.connect("other");
    assert_eq!(h.broker.session_count(), 2);
    h.send(a, SessionEvent::Closed);
    assert_eq!(h.broker.session_count(), 1);
}

#[test]
fn connection_id_finds_its_session_while_connected() {
    let mut h = Harness::new();
    let a = h.connect("live");
    assert_eq!(h.broker.session_for_connection_id("conn-1"), Some(a));
    h.send(a, SessionEvent::Closed);
    assert_eq!(h.broker.session_for_connection_id("conn-1"), None);
}

#[test]
fn events_before_connect_are_ignored() {
    let mut h = Harness::new();
    let id = h.broker.open_session();
    h.send(
        id,
        SessionEvent::Publish {
            stream: 1,
            name: "foo".into(),
            kind: PublishKind::Live,
            seq: 1,
            query: String::new(),
            priority: 0,
        },
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.broker.published_count(), 0);
}

#[test]
fn publish_is_accepted_with_the_sha256_hashname() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    assert_eq!(
        h.publish(publisher, 1, "foo"),
        BrokerEvent::PublishAccepted {
            stream: 1,
            seq: 1,
            hashname: FOO_HASHNAME.into()
        }
    );
    assert_eq!(h.broker.published_count(), 1);
}

#[test]
fn second_publisher_of_a_name_is_rejected() {
    let mut h = Harness::new();
    let first = h.connect("live");
    let second = h.connect("live");
    h.publish(first, 1, "foo");
    assert_eq!(
        h.publish(second, 1, "foo"),
        BrokerEvent::PublishRejected {
            stream: 1,
            seq: 1,
            reason: PublishRejection::AlreadyPublishing
        }
    );
}

#[test]
fn one_session_cannot_publish_a_name_on_two_streams() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert_eq!(
        h.publish(publisher, 2, "foo"),
        BrokerEvent::PublishRejected {
            stream: 2,
            seq: 1,
            reason: PublishRejection::AlreadyPublishing
        }
    );
}

#[test]
fn same_name_in_two_apps_is_two_streams() {
    let mut h = Harness::new();
    let a = h.connect("live");
    let b = h.connect("other");
    h.publish(a, 1, "foo");
    assert!(matches!(
        h.publish(b, 1, "foo"),
        BrokerEvent::PublishAccepted { .. }
    ));
    assert_eq!(h.broker.published_count(), 2);
}

#[test]
fn reserved_prefixes_are_rejected() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    for name in ["asis:foo", FOO_HASHNAME] {
        assert!(
            matches!(
                h.publish(publisher, 1, name),
                BrokerEvent::PublishRejected {
                    reason: PublishRejection::BadName(_),
                    ..
                }
            ),
            "{name}"
        );
    }
}

#[test]
fn empty_and_overlong_names_are_rejected() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    for name in [String::new(), "x".repeat(1025)] {
        assert!(matches!(
            h.publish(publisher, 1, &name),
            BrokerEvent::PublishRejected {
                reason: PublishRejection::BadName(_),
                ..
            }
        ));
    }
    assert!(matches!(
        h.publish(publisher, 1, &"x".repeat(1024)),
        BrokerEvent::PublishAccepted { .. }
    ));
}

#[test]
fn publish_past_max_streams_is_rejected() {
    let mut h = Harness::with(BrokerConfig {
        max_streams: 1,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert_eq!(
        h.publish(publisher, 2, "bar"),
        BrokerEvent::PublishRejected {
            stream: 2,
            seq: 1,
            reason: PublishRejection::TooManyStreams
        }
    );
}

#[test]
fn play_past_max_streams_is_not_registered() {
    let mut h = Harness::with(BrokerConfig {
        max_streams: 1,
        ..BrokerConfig::default()
    });
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert_eq!(
        h.play(player, 2, "bar"),
        Some(BrokerEvent::PlayRejected {
            stream: 2,
            seq: 1,
            reason: PlayRejection::TooManyStreams
        })
    );
    assert_eq!(h.broker.stream_count(), 1);
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert_eq!(
        h.events_for(player),
        vec![BrokerEvent::PublishNotify {
            stream: 1,
            priority: 0,
            publisher_name: None
        }]
    );
}

// ---------------------------------------------------------------- play

#[test]
fn play_before_publish_gets_publish_notify_then_frames() {
    let mut h = Harness::new();
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert!(h.drain().is_empty());
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(500));
    h.frame(publisher, 1, inter(540));
    let events = h.events_for(player);
    assert_eq!(
        events[0],
        BrokerEvent::PublishNotify {
            stream: 1,
            priority: 0,
            publisher_name: None
        }
    );
    assert_eq!(timestamps(&events[1..]), vec![0, 40]);
}

#[test]
fn late_joiner_fast_starts_with_data_keyframes_configs_then_gop() {
    let mut h = Harness::new();
    published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let events = h.events_for(player);
    assert_eq!(
        frames(&events),
        vec![
            (FrameKind::Data, false, false, 0),
            (FrameKind::Video, true, false, 0),
            (FrameKind::Audio, true, false, 0),
            (FrameKind::Video, false, true, 0),
            (FrameKind::Audio, false, false, 10),
            (FrameKind::Video, false, false, 33),
        ]
    );
}

#[test]
fn late_joiner_live_timestamps_are_rebased() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.drain();
    h.frame(publisher, 1, inter(1066));
    h.frame(publisher, 1, key(2000));
    assert_eq!(timestamps(&h.events_for(player)), vec![66, 1000]);
}

#[test]
fn audio_just_before_the_keyframe_is_clamped_to_zero() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.drain();
    h.frame(publisher, 1, aac(995));
    assert_eq!(timestamps(&h.events_for(player)), vec![0]);
}

#[test]
fn asis_player_gets_the_publisher_timestamps() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.set_data_frame(publisher, 1, "onMetaData", metadata(7, 1));
    h.frame(publisher, 1, avc_config(5));
    h.frame(publisher, 1, key(1000));
    h.frame(publisher, 1, inter(1033));
    let player = h.connect("live");
    h.play(player, 1, "asis:foo");
    h.frame(publisher, 1, inter(1066));
    assert_eq!(
        timestamps(&h.events_for(player)),
        vec![7, 5, 1000, 1033, 1066]
    );
}

#[test]
fn second_play_starts_again_at_zero() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.frame(publisher, 1, key(3000));
    h.frame(publisher, 1, inter(3040));
    h.drain();
    h.send(player, SessionEvent::StopPlay { stream: 1 });
    h.play(player, 1, "foo");
    let events = h.events_for(player);
    assert_eq!(timestamps(&events), vec![0, 0, 0, 0, 40]);
}

#[test]
fn hashed_name_play_gets_the_published_stream() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, FOO_HASHNAME);
    h.drain();
    h.frame(publisher, 1, inter(1066));
    assert_eq!(timestamps(&h.events_for(player)), vec![66]);
}

#[test]
fn hashed_name_play_waits_for_the_publisher() {
    let mut h = Harness::new();
    let player = h.connect("live");
    h.play(player, 1, &format!("asis:{FOO_HASHNAME}"));
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(500));
    let events = h.events_for(player);
    assert_eq!(
        events[0],
        BrokerEvent::PublishNotify {
            stream: 1,
            priority: 0,
            publisher_name: None
        }
    );
    assert_eq!(timestamps(&events[1..]), vec![500]);
}

#[test]
fn hashed_name_of_another_app_does_not_match() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("other");
    h.play(player, 1, FOO_HASHNAME);
    h.frame(publisher, 1, inter(1066));
    assert!(h.events_for(player).is_empty());
}

#[test]
fn stop_play_ends_delivery() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.send(player, SessionEvent::StopPlay { stream: 1 });
    h.drain();
    h.frame(publisher, 1, inter(1066));
    assert!(h.events_for(player).is_empty());
}

// ---------------------------------------------------------------- fan-out

#[test]
fn large_gop_frames_share_the_publisher_payload() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    // Frames of at least one read (64 KiB) are not copied when cached.
    let mut big = key(0).payload.to_vec();
    big.resize(64 * 1024, 0xAA);
    let keyframe = Frame {
        payload: Bytes::from(big),
        ..key(0)
    };
    let sent = keyframe.payload.as_ptr();
    h.frame(publisher, 1, keyframe);
    let live = h.connect("live");
    h.play(live, 1, "foo");
    h.drain();
    // Cached GOP frames and live fan-out alike point at the same bytes.
    let late = h.connect("live");
    h.play(late, 1, "foo");
    let got = payloads(&h.events_for(late));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ptr(), sent);
}

#[test]
fn live_frames_share_the_publisher_payload_across_players() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let a = h.connect("live");
    let b = h.connect("live");
    h.play(a, 1, "foo");
    h.play(b, 1, "foo");
    let f = inter(0);
    let sent = f.payload.as_ptr();
    h.frame(publisher, 1, f);
    let all: Vec<_> = h.drain().into_iter().map(|(_, e)| e).collect();
    let ptrs: Vec<_> = payloads(&all).iter().map(|p| p.as_ptr()).collect();
    assert_eq!(ptrs, vec![sent, sent]);
}

#[test]
fn configs_and_data_keyframes_are_cached_as_copies() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let config = avc_config(0);
    let meta = metadata(0, 1);
    let originals = [meta.payload.as_ptr(), config.payload.as_ptr()];
    h.set_data_frame(publisher, 1, "onMetaData", meta);
    h.frame(publisher, 1, config);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = payloads(&h.events_for(player));
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].as_ptr(), originals[0]);
    assert_ne!(got[1].as_ptr(), originals[1]);
    assert_eq!(&got[1][..], &avc_config(0).payload[..]);
}

#[test]
fn frames_from_a_non_publisher_are_ignored() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let intruder = h.connect("live");
    h.frame(intruder, 1, key(0));
    h.frame(publisher, 2, key(0));
    assert!(h.events_for(player).is_empty());
}

#[test]
fn set_data_frame_goes_live_and_replaces_the_same_handler() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let live = h.connect("live");
    h.play(live, 1, "foo");
    h.drain();
    h.set_data_frame(publisher, 1, "onMetaData", metadata(0, 2));
    assert_eq!(payloads(&h.events_for(live))[0][3], 2);
    let late = h.connect("live");
    h.play(late, 1, "foo");
    let got = h.events_for(late);
    let data: Vec<_> = payloads(&got)
        .into_iter()
        .zip(frames(&got))
        .filter(|(_, f)| f.0 == FrameKind::Data)
        .map(|(p, _)| p[3])
        .collect();
    assert_eq!(data, vec![2]);
}

#[test]
fn clear_data_frame_forgets_the_handler() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    h.send(
        publisher,
        SessionEvent::ClearDataFrame {
            stream: 1,
            handler: "onMetaData".into(),
        },
    );
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let kinds: Vec<_> = frames(&h.events_for(player)).iter().map(|f| f.0).collect();
    assert!(!kinds.contains(&FrameKind::Data));
}

#[test]
fn data_keyframes_are_bounded() {
    let mut h = Harness::with(BrokerConfig {
        max_data_keyframes: 1,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.set_data_frame(publisher, 1, "onMetaData", metadata(0, 1));
    h.set_data_frame(publisher, 1, "onExtra", metadata(0, 2));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = payloads(&h.events_for(player));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][3], 1);
}

#[test]
fn newer_config_replaces_the_older_one() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, avc_config(0));
    let newer = frame(FrameKind::Video, 0, &[0x17, 0, 0, 0, 0, 2], false, true);
    h.frame(publisher, 1, newer.clone());
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert_eq!(payloads(&h.events_for(player)), vec![newer.payload]);
}

/// Enhanced RTMP multitrack video: ex-header byte (frame type key,
/// packet type Multitrack), OneTrack with `body_type`, `hvc1`, track id.
fn multitrack_video(ts: u32, body_type: u8, track: u8, body: &[u8], flags: (bool, bool)) -> Frame {
    let mut payload = vec![
        0x80 | (1 << 4) | 6,
        body_type,
        b'h',
        b'v',
        b'c',
        b'1',
        track,
    ];
    payload.extend_from_slice(body);
    frame(FrameKind::Video, ts, &payload, flags.0, flags.1)
}

#[test]
fn multitrack_configs_are_kept_per_track() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let config = |track, v| multitrack_video(0, 0, track, &[1, v], (false, true));
    h.frame(publisher, 1, config(0, 1));
    h.frame(publisher, 1, config(1, 1));
    h.frame(publisher, 1, config(0, 2));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert_eq!(
        payloads(&h.events_for(player)),
        vec![config(1, 1).payload, config(0, 2).payload]
    );
}

#[test]
fn flagged_multitrack_keyframe_starts_the_gop() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, inter(0));
    // CodedFramesX (3) on a multitrack message, flagged by the session.
    let keyframe = multitrack_video(40, 3, 0, &[0xAA], (true, false));
    h.frame(publisher, 1, keyframe.clone());
    h.frame(publisher, 1, inter(80));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = h.events_for(player);
    assert_eq!(payloads(&got)[0], keyframe.payload);
    assert_eq!(timestamps(&got), vec![0, 40]);
}

#[test]
fn keyframes_of_several_tracks_at_one_time_start_one_gop() {
    // FFmpeg's layout: track 0's keyframe, then track 1's, same timestamp.
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let key0 = multitrack_video(40, 3, 0, &[0xA0], (true, false));
    let key1 = multitrack_video(40, 3, 1, &[0xA1], (true, false));
    h.frame(publisher, 1, key0.clone());
    h.frame(publisher, 1, key1.clone());
    h.frame(publisher, 1, inter(80));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = h.events_for(player);
    assert_eq!(payloads(&got)[..2], [key0.payload, key1.payload]);
    // A later keyframe still starts a new GOP.
    let key2 = multitrack_video(120, 3, 0, &[0xA2], (true, false));
    h.frame(publisher, 1, key2.clone());
    let late = h.connect("live");
    h.play(late, 1, "foo");
    assert_eq!(payloads(&h.events_for(late))[0], key2.payload);
}

#[test]
fn sequence_end_forgets_the_track_config() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, avc_config(0));
    h.frame(publisher, 1, aac_config(0));
    // Legacy AVC end of sequence.
    h.frame(
        publisher,
        1,
        frame(FrameKind::Video, 10, &[0x17, 2, 0, 0, 0], false, false),
    );
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert_eq!(payloads(&h.events_for(player)), vec![aac_config(0).payload]);
}

#[test]
fn gop_cache_is_dropped_past_max_bytes() {
    let mut h = Harness::with(BrokerConfig {
        fast_start_max_bytes: 15 + 2 * super::stream::CACHED_OVERHEAD,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, avc_config(0));
    h.frame(publisher, 1, key(0)); // 6 bytes
    h.frame(publisher, 1, inter(40)); // 12
    h.frame(publisher, 1, inter(80)); // 18: past the bound
    h.frame(publisher, 1, inter(120));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = frames(&h.events_for(player));
    assert_eq!(got, vec![(FrameKind::Video, true, false, 0)]);
}

#[test]
fn gop_cache_resumes_at_the_next_keyframe() {
    let mut h = Harness::with(BrokerConfig {
        fast_start_max_bytes: 15 + 2 * super::stream::CACHED_OVERHEAD,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    for ts in [0, 40, 80] {
        h.frame(publisher, 1, inter(ts));
    }
    h.frame(publisher, 1, key(120));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got = frames(&h.events_for(player));
    assert_eq!(got, vec![(FrameKind::Video, false, true, 0)]);
}

#[test]
fn gop_cache_is_dropped_past_max_duration() {
    let mut h = Harness::with(BrokerConfig {
        fast_start_max_duration: Duration::from_secs(1),
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(0));
    h.frame(publisher, 1, inter(1000));
    h.frame(publisher, 1, inter(1001));
    h.frame(publisher, 1, inter(1040));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert!(h.events_for(player).is_empty());
}

#[test]
fn audio_only_late_joiner_gets_configs_then_live_audio() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, aac_config(0));
    for ts in [0, 23, 46] {
        h.frame(publisher, 1, aac(ts));
    }
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.frame(publisher, 1, aac(69));
    let got = frames(&h.events_for(player));
    assert_eq!(
        got,
        vec![
            (FrameKind::Audio, true, false, 0),
            (FrameKind::Audio, false, false, 23),
        ]
    );
}

// ---------------------------------------------------------------- grace

/// A player of "foo" that saw keyframe 0 and inters at 40 and 80 from a
/// first publisher, which then unpublished.
fn player_after_unpublish(h: &mut Harness) -> SessionId {
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, avc_config(0));
    h.frame(publisher, 1, key(0));
    h.frame(publisher, 1, inter(40));
    h.frame(publisher, 1, inter(80));
    h.send(publisher, SessionEvent::Unpublish { stream: 1 });
    h.drain();
    player
}

#[test]
fn republish_within_grace_sends_no_notify() {
    let mut h = Harness::new();
    let player = player_after_unpublish(&mut h);
    h.advance(Duration::from_secs(2));
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.advance(Duration::from_secs(10));
    h.frame(publisher, 1, key(5000));
    let events = h.events_for(player);
    assert!(events
        .iter()
        .all(|e| matches!(e, BrokerEvent::Frame { .. })));
    assert_eq!(events.len(), 1);
}

#[test]
fn republish_within_grace_stitches_timestamps() {
    let mut h = Harness::new();
    let player = player_after_unpublish(&mut h);
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(5000));
    h.frame(publisher, 1, inter(5040));
    // The last frame was at 80 and frames came every 40 ms.
    assert_eq!(timestamps(&h.events_for(player)), vec![120, 160]);
}

#[test]
fn republish_gives_players_fresh_configs() {
    let mut h = Harness::new();
    let player = player_after_unpublish(&mut h);
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let fresh = frame(FrameKind::Video, 0, &[0x17, 0, 0, 0, 0, 9], false, true);
    h.frame(publisher, 1, fresh.clone());
    h.frame(publisher, 1, key(0));
    assert_eq!(
        payloads(&h.events_for(player)),
        vec![fresh.payload, key(0).payload]
    );
}

#[test]
fn unpublish_forgets_the_publisher_cache() {
    let mut h = Harness::new();
    let _player = player_after_unpublish(&mut h);
    let late = h.connect("live");
    h.play(late, 1, "foo");
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert!(frames(&h.events_for(late)).is_empty());
}

#[test]
fn grace_deadline_is_the_next_timeout() {
    let mut h = Harness::new();
    let start = h.now;
    player_after_unpublish(&mut h);
    assert_eq!(
        h.broker.poll_timeout(),
        Some(start + BrokerConfig::default().republish_grace)
    );
}

#[test]
fn grace_expiry_sends_unpublish_notify_once() {
    let mut h = Harness::new();
    let player = player_after_unpublish(&mut h);
    h.advance(Duration::from_millis(4999));
    assert!(h.drain().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.events_for(player),
        vec![BrokerEvent::UnpublishNotify { stream: 1 }]
    );
    h.advance(Duration::from_secs(60));
    assert!(h.drain().is_empty());
    assert_eq!(h.broker.poll_timeout(), None);
}

#[test]
fn publish_after_grace_expiry_sends_publish_notify() {
    let mut h = Harness::new();
    let player = player_after_unpublish(&mut h);
    h.advance(Duration::from_secs(6));
    h.drain();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(0));
    let events = h.events_for(player);
    assert_eq!(
        events[0],
        BrokerEvent::PublishNotify {
            stream: 1,
            priority: 0,
            publisher_name: None
        }
    );
    // Still one timeline for a continuous player.
    assert_eq!(timestamps(&events[1..]), vec![120]);
}

#[test]
fn player_joining_during_grace_gets_publish_notify() {
    let mut h = Harness::new();
    let _player = player_after_unpublish(&mut h);
    let late = h.connect("live");
    h.play(late, 1, "foo");
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert_eq!(
        h.events_for(late),
        vec![BrokerEvent::PublishNotify {
            stream: 1,
            priority: 0,
            publisher_name: None
        }]
    );
}

#[test]
fn unpublished_stream_without_players_is_freed_at_once() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.send(publisher, SessionEvent::Unpublish { stream: 1 });
    assert_eq!(h.broker.stream_count(), 0);
    assert_eq!(h.broker.published_count(), 0);
    assert_eq!(h.broker.poll_timeout(), None);
}

// ---------------------------------------------------------------- release, close

#[test]
fn release_stream_evicts_the_publisher() {
    let mut h = Harness::new();
    let stuck = h.connect("live");
    h.publish(stuck, 1, "foo");
    let fresh = h.connect("live");
    h.send(
        fresh,
        SessionEvent::ReleaseStream {
            name: "foo".into(),
            max_priority: 1,
        },
    );
    assert_eq!(
        h.events_for(stuck),
        vec![BrokerEvent::PublishEvicted {
            stream: 1,
            reason: crate::event::Eviction::Released
        }]
    );
    assert!(matches!(
        h.publish(fresh, 1, "foo"),
        BrokerEvent::PublishAccepted { .. }
    ));
}

#[test]
fn evicted_publisher_media_is_ignored() {
    let mut h = Harness::new();
    let stuck = h.connect("live");
    h.publish(stuck, 1, "foo");
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let fresh = h.connect("live");
    h.send(
        fresh,
        SessionEvent::ReleaseStream {
            name: "foo".into(),
            max_priority: 1,
        },
    );
    h.drain();
    h.frame(stuck, 1, key(0));
    assert!(h.events_for(player).is_empty());
}

#[test]
fn release_stream_of_its_own_publish_has_no_effect() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.send(
        publisher,
        SessionEvent::ReleaseStream {
            name: "foo".into(),
            max_priority: 1,
        },
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.broker.published_count(), 1);
}

#[test]
fn closed_publisher_frees_the_stream_and_name() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.send(publisher, SessionEvent::Closed);
    assert_eq!(h.broker.stream_count(), 0);
    let next = h.connect("live");
    assert!(matches!(
        h.publish(next, 1, "foo"),
        BrokerEvent::PublishAccepted { .. }
    ));
}

#[test]
fn closed_player_frees_waiting_streams() {
    let mut h = Harness::new();
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.play(player, 2, FOO_HASHNAME);
    h.play(player, 3, "bar");
    assert_eq!(h.broker.stream_count(), 2);
    h.send(player, SessionEvent::Closed);
    assert_eq!(h.broker.stream_count(), 0);
    assert_eq!(h.broker.session_count(), 0);
}

#[test]
fn closed_player_stops_getting_frames() {
    let mut h = Harness::new();
    let publisher = published_foo(&mut h);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    h.send(player, SessionEvent::Closed);
    h.drain();
    h.frame(publisher, 1, inter(1066));
    assert!(h.events_for(player).is_empty());
}

#[test]
fn publisher_timestamps_across_the_wrap_map_from_zero() {
    let mut h = Harness::new();
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(u32::MAX - 9));
    h.frame(publisher, 1, inter(30));
    assert_eq!(timestamps(&h.events_for(player)), vec![0, 40]);
}

#[test]
fn publish_again_on_the_same_stream_replaces_the_publish() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    assert!(matches!(
        h.publish(publisher, 1, "bar"),
        BrokerEvent::PublishAccepted { .. }
    ));
    assert_eq!(h.broker.published_count(), 1);
    let other = h.connect("live");
    assert!(matches!(
        h.publish(other, 1, "foo"),
        BrokerEvent::PublishAccepted { .. }
    ));
}

#[test]
fn fast_start_interleaves_a_bursty_muxers_gop_by_timestamp() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(1000));
    // The muxer sent a burst of audio ahead of the video it goes with.
    h.frame(publisher, 1, aac(1010));
    h.frame(publisher, 1, aac(1050));
    h.frame(publisher, 1, aac(1090));
    h.frame(publisher, 1, inter(1033));
    h.frame(publisher, 1, inter(1066));
    let player = h.connect("live");
    h.play(player, 1, "foo");
    let got: Vec<(FrameKind, u32)> = frames(&h.events_for(player))
        .into_iter()
        .map(|(kind, _, _, ts)| (kind, ts))
        .collect();
    assert_eq!(
        got,
        vec![
            (FrameKind::Video, 0),
            (FrameKind::Audio, 10),
            (FrameKind::Video, 33),
            (FrameKind::Audio, 50),
            (FrameKind::Video, 66),
            (FrameKind::Audio, 90),
        ]
    );
}

// ------------------------------------------------------- fast-start bounds

#[test]
fn tiny_frames_after_a_keyframe_are_bounded_in_true_memory() {
    // Counting payload bytes only, a flood of 1-byte frames after a
    // keyframe cost ~50 bytes of bookkeeping per byte counted.
    let max = 1024 * 1024;
    let mut h = Harness::with(BrokerConfig {
        fast_start_max_bytes: max,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    h.frame(publisher, 1, key(0));
    // All within the GOP's duration bound (20 s).
    for i in 0..100_000 {
        let ts = i / 10;
        h.frame(
            publisher,
            1,
            frame(FrameKind::Audio, ts, &[0xAF], false, false),
        );
    }
    let memory = h.broker.fast_start_memory();
    assert!(memory <= max, "fast-start cache holds {memory} bytes");
}

#[test]
fn small_cached_frames_do_not_pin_the_publishers_receive_buffer() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    // The decoder hands out single-chunk messages as slices of its
    // receive block: a 100-byte keyframe inside a 256 KiB block.
    let mut block = vec![0u8; 256 * 1024];
    block[..6].copy_from_slice(&[0x17, 1, 0, 0, 0, 0xAA]);
    let block = Bytes::from(block);
    let range = block.as_ptr() as usize..block.as_ptr() as usize + block.len();
    let keyframe = Frame {
        payload: block.slice(..100),
        ..key(0)
    };
    h.frame(publisher, 1, keyframe);
    drop(block);
    let late = h.connect("live");
    h.play(late, 1, "foo");
    let got = payloads(&h.events_for(late));
    assert_eq!(got.len(), 1);
    assert!(
        !range.contains(&(got[0].as_ptr() as usize)),
        "the cached 100-byte frame still points into the 256 KiB block"
    );
}

#[test]
fn gop_cache_is_dropped_past_max_frames() {
    let mut h = Harness::with(BrokerConfig {
        fast_start_max_frames: 3,
        ..BrokerConfig::default()
    });
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    for f in [key(0), inter(40), inter(80), inter(120)] {
        h.frame(publisher, 1, f);
    }
    assert_eq!(h.broker.fast_start_memory(), 0);
    let player = h.connect("live");
    h.play(player, 1, "foo");
    assert!(h.events_for(player).is_empty());
}

#[test]
fn players_leaving_in_any_order_leave_the_rest_subscribed() {
    let mut h = Harness::new();
    let publisher = h.connect("live");
    h.publish(publisher, 1, "foo");
    let players: Vec<SessionId> = (0..50).map(|_| h.connect("live")).collect();
    for &p in &players {
        h.play(p, 1, "foo");
        h.play(p, 2, "foo");
    }
    h.drain();
    // Every third player stops one of its two plays, others close.
    for (i, &p) in players.iter().enumerate() {
        match i % 3 {
            0 => h.send(p, SessionEvent::StopPlay { stream: 2 }),
            1 => h.send(p, SessionEvent::Closed),
            _ => {}
        }
    }
    h.frame(publisher, 1, inter(40));
    let mut got: Vec<(SessionId, u32)> = h
        .drain()
        .into_iter()
        .filter_map(|(to, e)| match e {
            BrokerEvent::Frame { stream, .. } => Some((to, stream)),
            _ => None,
        })
        .collect();
    got.sort_unstable();
    let mut want = Vec::new();
    for (i, &p) in players.iter().enumerate() {
        match i % 3 {
            0 => want.push((p, 1)),
            1 => {}
            _ => want.extend([(p, 1), (p, 2)]),
        }
    }
    want.sort_unstable();
    assert_eq!(got, want);
    h.broker.check_invariants().unwrap();
}
