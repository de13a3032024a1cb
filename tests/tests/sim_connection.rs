//! Connection-level behaviour through a whole simulated server: the
//! `connect` dialogue and what happens when a peer goes silent.

use std::time::Duration;

use tincan_core::message::Encoding;
use tincan_core::session::{SessionConfig, SessionError};
use tincan_tests::sim::media::{avc_keyframe, tagged};
use tincan_tests::sim::{Sim, SimConfig};

#[test]
fn amf3_connect_is_answered() {
    let mut sim = Sim::new();
    let client = sim.add_client();
    let t = sim.client_mut(client).connect_amf3("live");
    sim.run();
    let reply = sim
        .client(client)
        .reply(t)
        .unwrap_or_else(|| panic!("no reply: {:?}", sim.client(client).received()));
    assert!(reply.ok, "{reply:?}");
    // Flash/AIR with objectEncoding 3 expect the reply in kind.
    assert_eq!(reply.encoding, Encoding::Amf3);
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(reply.info_f64("objectEncoding"), Some(3.0));
    assert!(sim.client(client).errors().is_empty());
}

#[test]
fn dead_peer_times_out_and_frees_the_publish() {
    // Only the dead-peer timer may end this publisher: make the publish
    // idle timeout longer than the whole test.
    let session = SessionConfig {
        publish_idle_timeout: Duration::from_secs(3600),
        ..SessionConfig::default()
    };
    let dead_after = session.dead_peer_timeout;
    let mut sim = Sim::with_config(SimConfig {
        session,
        ..SimConfig::default()
    });
    let (publisher, stream) = sim.start_publisher("live", "cam");
    sim.client_mut(publisher)
        .send_video(stream, 0, avc_keyframe(&tagged(b'K', 0, 100)));
    sim.run();
    sim.client_mut(publisher).freeze();

    sim.advance(dead_after - Duration::from_secs(1));
    assert!(
        !sim.is_closed(publisher),
        "closed before the dead-peer timeout"
    );
    assert_eq!(sim.broker().published_count(), 1);

    sim.advance(Duration::from_secs(2));
    assert!(
        sim.is_closed(publisher),
        "still open after the dead-peer timeout"
    );
    assert!(
        matches!(sim.close_reason(publisher), Some(SessionError::PeerDead(_))),
        "{:?}",
        sim.close_reason(publisher)
    );
    assert_eq!(sim.broker().published_count(), 0);

    // The name is publishable again at once.
    let (_again, _) = sim.start_publisher("live", "cam");
    assert_eq!(sim.broker().published_count(), 1);
}
