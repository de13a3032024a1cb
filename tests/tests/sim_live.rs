//! Live publish and play through a whole simulated server: what a client
//! sees on the wire (status codes, message stream ids, timestamps, payload
//! bytes) when streams are published, played, republished and contested.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::broker::BrokerConfig;
use tincan_core::event::FrameKind;
use tincan_core::message::{type_id, Message};
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{AggregateTag, Media, Sim};

fn payloads(media: &[Media]) -> Vec<Bytes> {
    media.iter().map(|m| m.payload.clone()).collect()
}

fn millis(media: &[Media]) -> Vec<u32> {
    media.iter().map(|m| m.timestamp.as_millis()).collect()
}

#[test]
fn publish_then_play_receives_media_on_player_stream_id() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let player = sim.add_client();
    sim.connect(player, "live");
    // A second stream, so the player's id cannot match the publisher's by
    // accident.
    let _first = sim.create_stream(player);
    let stream = sim.create_stream(player);
    assert_ne!(stream, pstream);
    sim.client_mut(player).play(stream, "cam", -2.0);
    sim.run();
    assert!(sim
        .client(player)
        .statuses(stream)
        .contains(&"NetStream.Play.Start".to_owned()));

    let sent = vec![
        (FrameKind::Video, avc_sequence_header(b"avc-config")),
        (FrameKind::Audio, aac_config(b"\x12\x10")),
        (FrameKind::Video, avc_keyframe(&tagged(b'K', 0, 400))),
        (FrameKind::Audio, aac_raw(&tagged(b'A', 1, 50))),
        (FrameKind::Video, avc_inter(&tagged(b'I', 2, 300))),
    ];
    let p = sim.client_mut(publisher);
    for (i, (kind, payload)) in sent.iter().enumerate() {
        let ts = 20 * i as u32;
        match kind {
            FrameKind::Video => p.send_video(pstream, ts, payload.clone()),
            _ => p.send_audio(pstream, ts, payload.clone()),
        }
    }
    sim.run();

    let got: Vec<_> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| (m.kind, m.payload))
        .collect();
    assert_eq!(got, sent);
    let stray: Vec<_> = sim
        .client(player)
        .received()
        .iter()
        .filter(|r| matches!(r.message, Message::Audio(_) | Message::Video(_)))
        .filter(|r| r.stream_id != stream)
        .map(|r| r.stream_id)
        .collect();
    assert!(stray.is_empty(), "media on other stream ids: {stray:?}");
    assert!(sim.client(player).errors().is_empty());
}

#[test]
fn play_before_publish_gets_publish_notify_then_media() {
    let mut sim = Sim::new();
    let (player, stream) = sim.start_player("live", "cam");
    assert!(sim.client(player).media(stream).is_empty());

    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let key = avc_keyframe(&tagged(b'K', 0, 300));
    sim.client_mut(publisher)
        .send_video(pstream, 0, avc_sequence_header(b"cfg"));
    sim.client_mut(publisher)
        .send_video(pstream, 0, key.clone());
    sim.run();

    let c = sim.client(player);
    let notify = c
        .status_position(stream, "NetStream.Play.PublishNotify")
        .expect("the player got NetStream.Play.PublishNotify");
    let first_media = c
        .position(|r| r.stream_id == stream && matches!(r.message, Message::Video(_)))
        .expect("the player got media");
    assert!(
        notify < first_media,
        "PublishNotify at {notify}, media at {first_media}"
    );
    assert!(payloads(&c.media(stream)).contains(&key));
}

#[test]
fn republish_within_grace_stitches_timestamps_and_sends_fresh_headers() {
    let mut sim = Sim::new();
    let (first, fstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "cam");
    let notifies_before = |sim: &Sim| {
        sim.client(player)
            .statuses(stream)
            .iter()
            .filter(|s| *s == "NetStream.Play.PublishNotify")
            .count()
    };

    // The first publisher's timeline runs 1000..1200.
    let old_header = avc_sequence_header(b"old-config");
    sim.client_mut(first).send_video(fstream, 1000, old_header);
    for i in 0..6u32 {
        let ts = 1000 + 40 * i;
        let body = tagged(b'A', i, 200);
        let payload = if i == 0 {
            avc_keyframe(&body)
        } else {
            avc_inter(&body)
        };
        sim.client_mut(first).send_video(fstream, ts, payload);
        sim.advance(Duration::from_millis(40));
    }
    let notifies = notifies_before(&sim);
    sim.client_mut(first).delete_stream(fstream);
    sim.run();

    // Well inside the grace period, a new publisher whose clock says 50 s.
    let gap = Duration::from_secs(1);
    assert!(gap < BrokerConfig::default().republish_grace);
    sim.advance(gap);
    let (second, sstream) = sim.start_publisher("live", "cam");
    let new_header = avc_sequence_header(b"new-config");
    let new_key = avc_keyframe(&tagged(b'B', 0, 200));
    let p = sim.client_mut(second);
    p.send_video(sstream, 50_000, new_header.clone());
    p.send_video(sstream, 50_000, new_key.clone());
    p.send_video(sstream, 50_040, avc_inter(&tagged(b'B', 1, 200)));
    p.send_video(sstream, 50_080, avc_inter(&tagged(b'B', 2, 200)));
    sim.run();

    let c = sim.client(player);
    let statuses = c.statuses(stream);
    assert!(
        !statuses.contains(&"NetStream.Play.UnpublishNotify".to_owned()),
        "{statuses:?}"
    );
    assert_eq!(notifies_before(&sim), notifies, "{statuses:?}");

    let media = c.media(stream);
    let pos = |p: &Bytes| media.iter().position(|m| m.payload == *p);
    let header_at = pos(&new_header).expect("fresh sequence header delivered");
    let key_at = pos(&new_key).expect("new keyframe delivered");
    assert!(
        header_at < key_at,
        "header at {header_at}, keyframe at {key_at}"
    );

    let ts = millis(&media);
    assert!(
        ts.windows(2).all(|w| w[1] >= w[0]),
        "timestamps go back across the republish: {ts:?}"
    );
    let last_old = media[..header_at]
        .iter()
        .map(|m| m.timestamp.as_millis())
        .max()
        .expect("old media before the republish");
    let first_new = ts[header_at];
    let jump = first_new - last_old;
    assert!(
        jump <= gap.as_millis() as u32 + 100,
        "republish jumps {jump} ms ({last_old} -> {first_new}): not stitched"
    );
    // The new publisher's spacing is kept.
    assert_eq!(
        &ts[key_at..],
        &[ts[key_at], ts[key_at] + 40, ts[key_at] + 80]
    );
}

#[test]
fn unpublish_notify_only_after_grace() {
    let grace = BrokerConfig::default().republish_grace;
    let mut sim = Sim::new();
    let (player, stream) = sim.start_player("live", "cam");
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    sim.client_mut(publisher)
        .send_video(pstream, 0, avc_keyframe(&tagged(b'K', 0, 100)));
    sim.run();
    sim.client_mut(publisher).delete_stream(pstream);
    sim.run();
    let unpublish = |sim: &Sim| {
        sim.client(player)
            .statuses(stream)
            .contains(&"NetStream.Play.UnpublishNotify".to_owned())
    };

    sim.advance(grace - Duration::from_millis(100));
    assert!(!unpublish(&sim), "UnpublishNotify before the grace ended");
    sim.advance(Duration::from_millis(200));
    assert!(
        unpublish(&sim),
        "no UnpublishNotify after the grace: {:?}",
        sim.client(player).statuses(stream)
    );
}

#[test]
fn asis_play_keeps_publisher_timestamps() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "asis:cam");
    let p = sim.client_mut(publisher);
    p.send_video(pstream, 10_000, avc_sequence_header(b"cfg"));
    p.send_video(pstream, 10_000, avc_keyframe(&tagged(b'K', 0, 100)));
    p.send_audio(pstream, 10_020, aac_raw(&tagged(b'A', 1, 50)));
    p.send_video(pstream, 10_040, avc_inter(&tagged(b'I', 2, 100)));
    sim.run();
    assert_eq!(
        millis(&sim.client(player).media(stream)),
        vec![10_000, 10_000, 10_020, 10_040]
    );
}

#[test]
fn duplicate_publish_rejected_with_bad_name() {
    let mut sim = Sim::new();
    let (first, fstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "cam");

    let second = sim.add_client();
    sim.connect(second, "live");
    let sstream = sim.create_stream(second);
    sim.client_mut(second).publish(sstream, "cam");
    sim.run();
    let statuses = sim.client(second).statuses(sstream);
    assert!(
        statuses.contains(&"NetStream.Publish.BadName".to_owned()),
        "{statuses:?}"
    );
    assert!(!statuses.contains(&"NetStream.Publish.Start".to_owned()));

    // The rejected client's media goes nowhere; the first publisher's still
    // reaches players.
    let intruder = avc_keyframe(&tagged(b'X', 0, 100));
    let genuine = avc_keyframe(&tagged(b'G', 0, 100));
    sim.client_mut(second)
        .send_video(sstream, 0, intruder.clone());
    sim.client_mut(first)
        .send_video(fstream, 0, genuine.clone());
    sim.run();
    assert_eq!(payloads(&sim.client(player).media(stream)), vec![genuine]);
}

#[test]
fn apps_isolate_stream_names() {
    let mut sim = Sim::new();
    let (pa, sa) = sim.start_publisher("app1", "cam");
    let (pb, sb) = sim.start_publisher("app2", "cam");
    let (la, lsa) = sim.start_player("app1", "cam");
    let (lb, lsb) = sim.start_player("app2", "cam");
    let a = avc_keyframe(&tagged(b'a', 0, 100));
    let b = avc_keyframe(&tagged(b'b', 0, 100));
    sim.client_mut(pa).send_video(sa, 0, a.clone());
    sim.client_mut(pb).send_video(sb, 0, b.clone());
    sim.run();
    assert_eq!(payloads(&sim.client(la).media(lsa)), vec![a]);
    assert_eq!(payloads(&sim.client(lb).media(lsb)), vec![b]);
}

#[test]
fn aggregate_messages_are_split_and_delivered() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    // As-is, so the split timestamps can be checked exactly: the first tag
    // takes the aggregate's own timestamp and the others keep their spacing.
    let (player, stream) = sim.start_player("live", "asis:cam");
    let key = avc_keyframe(&tagged(b'K', 0, 300));
    let audio = aac_raw(&tagged(b'A', 1, 40));
    let inter = avc_inter(&tagged(b'I', 2, 120));
    let tag = |type_id, timestamp, payload: &Bytes| AggregateTag {
        type_id,
        timestamp,
        payload: payload.clone(),
    };
    sim.client_mut(publisher).send_aggregate(
        pstream,
        1000,
        &[
            tag(type_id::VIDEO, 5000, &key),
            tag(type_id::AUDIO, 5020, &audio),
            tag(type_id::VIDEO, 5040, &inter),
        ],
    );
    sim.run();
    let got: Vec<_> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| (m.kind, m.timestamp.as_millis(), m.payload))
        .collect();
    assert_eq!(
        got,
        vec![
            (FrameKind::Video, 1000, key),
            (FrameKind::Audio, 1020, audio),
            (FrameKind::Video, 1040, inter),
        ]
    );
}

#[test]
fn player_cannot_inject_media() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (victim, vstream) = sim.start_player("live", "cam");
    let (attacker, astream) = sim.start_player("live", "cam");
    let spare = sim.create_stream(attacker);

    let injected = avc_keyframe(&tagged(b'X', 0, 100));
    let injected_audio = aac_raw(&tagged(b'Y', 0, 40));
    let a = sim.client_mut(attacker);
    // On its playing stream, on a stream it never published on, and on the
    // publisher's stream id.
    for s in [astream, spare, pstream] {
        a.send_video(s, 0, injected.clone());
        a.send_audio(s, 0, injected_audio.clone());
    }
    sim.run();
    let genuine = avc_keyframe(&tagged(b'G', 0, 100));
    sim.client_mut(publisher)
        .send_video(pstream, 0, genuine.clone());
    sim.run();
    assert_eq!(payloads(&sim.client(victim).media(vstream)), vec![genuine]);
}
