//! TC stream naming through a whole simulated server: `sha256:` hashed
//! names, `asis:` combined with them, and `releaseStream` (README,
//! "Streaming").

use tincan_core::time::MediaTime;
use tincan_tests::sim::media::{avc_keyframe, avc_sequence_header};
use tincan_tests::sim::{member_str, Sim, SimConfig};

/// The README's hashed name of the stream `foo`.
const FOO_HASHED: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

#[test]
fn play_of_a_hashed_name_receives_the_stream_published_under_its_plain_name() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "foo");
    let (player, stream) = sim.start_player("live", FOO_HASHED);
    let key = avc_keyframe(b"foo keyframe");
    sim.client_mut(publisher)
        .send_video(pstream, 0, key.clone());
    sim.run();
    let got: Vec<_> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(got, [key]);
}

#[test]
fn hashed_player_waiting_before_the_publish_gets_the_stream() {
    let mut sim = Sim::new();
    let (player, stream) = sim.start_player("live", FOO_HASHED);
    let (publisher, pstream) = sim.start_publisher("live", "foo");
    let config = avc_sequence_header(b"cfg");
    sim.client_mut(publisher)
        .send_video(pstream, 0, config.clone());
    sim.run();
    let got: Vec<_> = sim
        .client(player)
        .media(stream)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(got, [config]);
    assert!(sim
        .client(player)
        .statuses(stream)
        .contains(&"NetStream.Play.PublishNotify".to_owned()));
}

#[test]
fn publish_to_a_hashed_name_is_refused_with_bad_name() {
    let mut sim = Sim::new();
    let id = sim.add_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, FOO_HASHED);
    sim.run();
    assert_eq!(
        sim.client(id).statuses(stream),
        ["NetStream.Publish.BadName"]
    );
}

#[test]
fn publish_start_carries_the_hashname() {
    let mut sim = Sim::new();
    let (publisher, stream) = sim.start_publisher("live", "foo");
    let infos = sim.client(publisher).status_infos(stream);
    let start = infos
        .iter()
        .find(|i| member_str(i, "code").as_deref() == Some("NetStream.Publish.Start"))
        .expect("Publish.Start");
    assert_eq!(member_str(start, "hashname").as_deref(), Some(FOO_HASHED));
}

#[test]
fn asis_hashed_play_keeps_the_publisher_timestamps() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "foo");
    let (rebased, rstream) = sim.start_player("live", FOO_HASHED);
    let asis_name = format!("asis:{FOO_HASHED}");
    let (asis, astream) = sim.start_player("live", &asis_name);
    sim.client_mut(publisher)
        .send_video(pstream, 5000, avc_keyframe(b"k1"));
    sim.client_mut(publisher)
        .send_video(pstream, 5040, avc_keyframe(b"k2"));
    sim.run();
    let stamps = |id, stream| -> Vec<MediaTime> {
        sim.client(id)
            .media(stream)
            .iter()
            .map(|m| m.timestamp)
            .collect()
    };
    assert_eq!(
        stamps(asis, astream),
        [MediaTime::from_millis(5000), MediaTime::from_millis(5040)]
    );
    assert_eq!(
        stamps(rebased, rstream),
        [MediaTime::from_millis(0), MediaTime::from_millis(40)]
    );
}

/// Connections that may publish at priorities up to `max`; with `any`,
/// `releaseStream` evicts whatever the priority.
fn sim_with_priorities(max: u32, any: bool) -> Sim {
    let mut config = SimConfig::default();
    config.session.max_publish_priority = max;
    config.broker.release_stream_evicts_any = any;
    Sim::with_config(config)
}

#[test]
fn by_default_a_second_encoder_on_a_live_name_is_refused_and_the_first_keeps_it() {
    // What FFmpeg, OBS and librtmp do: releaseStream, then publish.
    let mut sim = Sim::new();
    let (first, first_stream) = sim.start_publisher("live", "foo");
    let id = sim.add_client();
    sim.connect(id, "live");
    sim.client_mut(id).release_stream("foo");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, "foo");
    sim.run();
    assert_eq!(
        sim.client(id).statuses(stream),
        ["NetStream.Publish.BadName"]
    );
    assert_eq!(
        sim.client(first).statuses(first_stream),
        ["NetStream.Publish.Start"]
    );
}

#[test]
fn a_higher_priority_publish_takes_over_a_live_name() {
    let mut sim = sim_with_priorities(5, false);
    let (first, first_stream) = sim.start_publisher("live", "foo");
    let id = sim.add_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, "foo?priority=2");
    sim.run();
    assert_eq!(sim.client(id).statuses(stream), ["NetStream.Publish.Start"]);
    assert_eq!(
        sim.client(first).statuses(first_stream),
        ["NetStream.Publish.Start", "NetStream.Publish.BadName"]
    );
    // An equal priority does not take it back.
    let again = sim.add_client();
    sim.connect(again, "live");
    let s = sim.create_stream(again);
    sim.client_mut(again).publish(s, "foo?priority=2");
    sim.run();
    assert_eq!(sim.client(again).statuses(s), ["NetStream.Publish.BadName"]);
}

#[test]
fn a_priority_asked_above_the_connections_maximum_is_capped() {
    let mut sim = sim_with_priorities(1, false);
    let (_first, _) = sim.start_publisher("live", "foo?priority=1");
    let id = sim.add_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, "foo?priority=9");
    sim.run();
    assert_eq!(
        sim.client(id).statuses(stream),
        ["NetStream.Publish.BadName"]
    );
}

#[test]
fn release_stream_ends_a_lower_priority_publish_with_bad_name() {
    let mut sim = sim_with_priorities(1, false);
    let (stuck, stuck_stream) = sim.start_publisher("live", "foo");
    let rescuer = sim.add_client();
    sim.connect(rescuer, "live");
    sim.client_mut(rescuer).release_stream("foo");
    sim.run();
    assert_eq!(
        sim.client(stuck).statuses(stuck_stream),
        ["NetStream.Publish.Start", "NetStream.Publish.BadName"]
    );
    assert!(!sim.is_closed(stuck), "only the publish ends");
}

#[test]
fn release_stream_evicts_any_publish_when_the_operator_says_so() {
    let mut sim = sim_with_priorities(0, true);
    let (_stuck, _) = sim.start_publisher("live", "foo");
    let id = sim.add_client();
    sim.connect(id, "live");
    sim.client_mut(id).release_stream("foo");
    let stream = sim.create_stream(id);
    sim.client_mut(id).publish(stream, "foo");
    sim.run();
    assert_eq!(sim.client(id).statuses(stream), ["NetStream.Publish.Start"]);
}

#[test]
fn release_stream_of_a_name_nobody_publishes_has_no_effect() {
    let mut sim = Sim::new();
    let (other, other_stream) = sim.start_publisher("live", "bar");
    let id = sim.add_client();
    sim.connect(id, "live");
    let t = sim.client_mut(id).release_stream("foo");
    sim.run();
    let reply = sim.client(id).reply(t).expect("releaseStream is answered");
    assert!(reply.ok);
    assert_eq!(
        sim.client(other).statuses(other_stream),
        ["NetStream.Publish.Start"]
    );
    assert_eq!(sim.broker().published_count(), 1);
}

#[test]
fn release_stream_of_a_hashed_name_has_no_effect() {
    let mut sim = Sim::new();
    let (publisher, stream) = sim.start_publisher("live", "foo");
    let id = sim.add_client();
    sim.connect(id, "live");
    sim.client_mut(id).release_stream(FOO_HASHED);
    sim.run();
    assert_eq!(
        sim.client(publisher).statuses(stream),
        ["NetStream.Publish.Start"]
    );
}

#[test]
fn release_stream_does_not_reach_into_another_app() {
    let mut sim = Sim::new();
    let (publisher, stream) = sim.start_publisher("live/1", "foo");
    let id = sim.add_client();
    sim.connect(id, "live/2");
    sim.client_mut(id).release_stream("foo");
    sim.run();
    assert_eq!(
        sim.client(publisher).statuses(stream),
        ["NetStream.Publish.Start"]
    );
}
