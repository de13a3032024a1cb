//! TC's per-player real-time options: an Object after the stream name in
//! `play` overrides the server's audio/video lifetimes and finish-by
//! margin for that player only, each capped at 10 s or twice the default.
//! Shown on the wire: when the player on a slow link sees the Abort that
//! cuts a keyframe it cannot receive in time.

use std::time::Duration;

use tincan_core::message::{Message, Value};
use tincan_tests::sim::media::{avc_keyframe, avc_sequence_header, tagged};
use tincan_tests::sim::{ClientId, LinkConfig, Sim};

/// 20 kB/s: a keyframe of `len` bytes needs `len / 20` ms.
const SLOW_RATE: u64 = 20;

/// A player of live/cam on a slow link whose `play` carried `options`.
fn slow_player(sim: &mut Sim, options: Option<Value>) -> ClientId {
    let id = sim.add_client();
    sim.connect(id, "live");
    let stream = sim.create_stream(id);
    sim.client_mut(id).play_with(stream, "cam", -2.0, options);
    sim.run();
    let statuses = sim.client(id).statuses(stream);
    assert!(
        statuses.iter().any(|s| s == "NetStream.Play.Start"),
        "{statuses:?}"
    );
    sim.set_link(id, LinkConfig::slow(SLOW_RATE));
    id
}

/// When (after the keyframe was published) each player saw its Abort.
fn abort_lag(sim: &Sim, id: ClientId, published: Duration) -> Option<Duration> {
    sim.client(id)
        .received()
        .iter()
        .find(|r| matches!(r.message, Message::Abort { .. }))
        .map(|r| r.at - published)
}

/// Publishes one keyframe of `len` bytes and runs for `run_for`; returns
/// when it was published.
fn publish_keyframe(sim: &mut Sim, len: usize, run_for: Duration) -> Duration {
    let (publisher, ps) = sim.start_publisher("live", "cam");
    sim.client_mut(publisher)
        .send_video(ps, 0, avc_sequence_header(b"config"));
    let published = sim.elapsed();
    sim.client_mut(publisher)
        .send_video(ps, 0, avc_keyframe(&tagged(b'V', 0, len)));
    sim.advance(run_for);
    published
}

/// Up to the link's send buffer plus one minimum batch still drains after
/// the session decides.
fn link_drain() -> Duration {
    let in_flight = (LinkConfig::slow(SLOW_RATE).buffer_bytes + 16 * 1024) as u64;
    Duration::from_millis(in_flight / SLOW_RATE + 100)
}

#[test]
fn play_options_object_shortens_the_video_lifetime_for_that_player_only() {
    let mut sim = Sim::new();
    let short = slow_player(
        &mut sim,
        Some(Value::object([
            ("videoLifetime", Value::Number(1.0)),
            ("finishByMargin", Value::Number(0.0)),
        ])),
    );
    let default = slow_player(&mut sim, None);
    let published = publish_keyframe(&mut sim, 200_000, Duration::from_secs(8));

    let short_lag = abort_lag(&sim, short, published).expect("short-lived player cut off");
    let default_lag = abort_lag(&sim, default, published).expect("default player cut off");
    assert!(
        short_lag <= Duration::from_secs(1) + link_drain(),
        "abort after {short_lag:?}"
    );
    // The default player keeps the server's 3 s lifetime + 0.5 s margin.
    assert!(
        default_lag >= Duration::from_millis(3_500),
        "abort after {default_lag:?}"
    );
}

#[test]
fn play_options_above_the_cap_are_held_to_ten_seconds() {
    let mut sim = Sim::new();
    let greedy = slow_player(
        &mut sim,
        Some(Value::object([
            ("videoLifetime", Value::Number(3600.0)),
            ("finishByMargin", Value::Number(3600.0)),
        ])),
    );
    // 1 MB needs 50 s on this link.
    let published = publish_keyframe(&mut sim, 1_000_000, Duration::from_secs(30));
    let lag = abort_lag(&sim, greedy, published).expect("cut off despite asking for an hour");
    // Lifetime and margin are each capped at 10 s.
    assert!(
        lag <= Duration::from_secs(20) + link_drain(),
        "abort after {lag:?}"
    );
    assert!(lag >= Duration::from_secs(20), "abort after {lag:?}");
    assert!(sim.client(greedy).errors().is_empty());
}
