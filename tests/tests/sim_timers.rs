//! Timers over hours of virtual time: an idle player that answers pings is
//! kept for as long as it stays, a silent one and an idle publisher are
//! dropped when their timeouts say, and the server wakes up about once per
//! ping, never in a busy loop.

use std::time::Duration;

use tincan_core::message::UserControl;
use tincan_core::session::{SessionConfig, SessionError};
use tincan_tests::sim::media::{avc_keyframe, tagged};
use tincan_tests::sim::{ClientId, Sim, SimConfig};

const HOURS: Duration = Duration::from_secs(6 * 3600);

/// Virtual times at which `id` received a ping request.
fn ping_times(sim: &Sim, id: ClientId) -> Vec<Duration> {
    sim.client(id)
        .received()
        .iter()
        .filter(|r| {
            matches!(
                r.message,
                tincan_core::message::Message::UserControl(UserControl::PingRequest(_))
            )
        })
        .map(|r| r.at)
        .collect()
}

#[test]
fn idle_player_answering_pings_stays_connected_for_six_hours() {
    let mut sim = Sim::new();
    let interval = SessionConfig::default().ping_interval;
    // Waiting for a stream nobody publishes: nothing but pings flows.
    let (player, _) = sim.start_player("live", "cam");
    let joined = sim.elapsed();
    sim.advance(HOURS);

    assert!(!sim.is_closed(player), "{:?}", sim.close_reason(player));
    let pings = ping_times(&sim, player);
    let expected = (HOURS.as_millis() / interval.as_millis()) as usize;
    assert!(
        pings.len() + 1 >= expected && pings.len() <= expected,
        "{} pings in 6 h, expected about {expected}",
        pings.len()
    );
    // Each ping a full interval after the previous answer (the link has no
    // latency, so after the previous ping).
    let mut last = joined;
    for at in pings {
        let gap = at - last;
        assert!(
            gap >= interval && gap <= interval + Duration::from_millis(1),
            "ping after {gap:?} of silence (interval {interval:?})"
        );
        last = at;
    }
    assert!(sim.client(player).errors().is_empty());
}

#[test]
fn idle_server_wakes_up_about_once_per_ping() {
    let mut sim = Sim::new();
    let interval = SessionConfig::default().ping_interval;
    const PLAYERS: usize = 20;
    // Joined at different times, so their pings do not share wake-ups.
    let players: Vec<ClientId> = (0..PLAYERS)
        .map(|_| {
            sim.advance(Duration::from_millis(337));
            sim.start_player("live", "cam").0
        })
        .collect();
    let before = sim.timer_wakeups();
    sim.advance(HOURS);
    let wakeups = sim.timer_wakeups() - before;

    let pings: usize = players.iter().map(|&p| ping_times(&sim, p).len()).sum();
    let per_player = (HOURS.as_millis() / interval.as_millis()) as usize;
    assert!(
        pings >= PLAYERS * (per_player - 1),
        "only {pings} pings were sent"
    );
    // One wake-up per ping (each answered at once), plus a few per player
    // for timers set while joining: no timer storm, no polling.
    assert!(
        wakeups <= (pings + 4 * PLAYERS) as u64,
        "{wakeups} wake-ups for {pings} pings in 6 h"
    );
    assert!(players.iter().all(|&p| !sim.is_closed(p)));
}

#[test]
fn silent_peer_is_dropped_at_the_dead_peer_timeout() {
    let session = SessionConfig::default();
    let dead_after = session.dead_peer_timeout;
    let mut sim = Sim::with_config(SimConfig {
        session,
        ..SimConfig::default()
    });
    // It keeps reading (pings arrive) but never says a word again.
    let (player, _) = sim.start_player("live", "cam");
    sim.client_mut(player).set_answer_pings(false);
    let last_word = sim.elapsed();

    sim.advance(dead_after - Duration::from_millis(1));
    assert!(
        !sim.is_closed(player),
        "dropped before the dead-peer timeout"
    );
    sim.advance(Duration::from_millis(2));
    assert!(sim.is_closed(player), "kept past the dead-peer timeout");
    let closed_at = sim.closed_at(player).expect("closed");
    assert_eq!(closed_at - last_word, dead_after);
    assert!(
        matches!(sim.close_reason(player), Some(SessionError::PeerDead(_))),
        "{:?}",
        sim.close_reason(player)
    );
    assert!(
        ping_times(&sim, player).len() >= 2,
        "it was pinged before being given up"
    );
    assert!(sim.client(player).saw_eof());
}

#[test]
fn idle_publisher_is_dropped_at_the_publish_idle_timeout() {
    let session = SessionConfig::default();
    let idle_after = session.publish_idle_timeout;
    assert!(idle_after < session.dead_peer_timeout);
    let mut sim = Sim::with_config(SimConfig {
        session,
        ..SimConfig::default()
    });
    // A publisher that answers pings (so it is alive) but sends no media.
    let (publisher, stream) = sim.start_publisher("live", "cam");
    sim.client_mut(publisher)
        .send_video(stream, 0, avc_keyframe(&tagged(b'K', 0, 100)));
    sim.run();
    let last_media = sim.elapsed();

    sim.advance(idle_after - Duration::from_millis(1));
    assert!(!sim.is_closed(publisher), "dropped before its idle timeout");
    assert_eq!(sim.broker().published_count(), 1);
    sim.advance(Duration::from_millis(2));
    assert!(sim.is_closed(publisher), "kept past its idle timeout");
    assert_eq!(sim.closed_at(publisher), Some(last_media + idle_after));
    assert!(
        matches!(
            sim.close_reason(publisher),
            Some(SessionError::PublisherIdle(_))
        ),
        "{:?}",
        sim.close_reason(publisher)
    );
    assert_eq!(sim.broker().published_count(), 0);
}
