//! Fan-out to many players: every player receives the publisher's exact
//! bytes, and the payload is shared, not copied per player.

use std::collections::HashMap;

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{ClientId, Sim};

const PLAYERS: usize = 200;

#[test]
fn many_sessions() {
    let mut sim = Sim::new();
    sim.record_fanout();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let players: Vec<(ClientId, u32)> = (0..PLAYERS)
        .map(|_| sim.start_player("live", "cam"))
        .collect();

    // Payloads past the chunk encoder's small-payload copy threshold, so
    // they are expected to travel zero-copy.
    let mut sent = vec![
        (FrameKind::Video, avc_sequence_header(&tagged(b'C', 0, 300))),
        (FrameKind::Audio, aac_config(&tagged(b'c', 0, 300))),
        (FrameKind::Video, avc_keyframe(&tagged(b'K', 0, 8_000))),
    ];
    for i in 1..8 {
        sent.push((FrameKind::Audio, aac_raw(&tagged(b'A', i, 400))));
        sent.push((FrameKind::Video, avc_inter(&tagged(b'I', i, 2_000))));
    }
    for (i, (kind, payload)) in sent.iter().enumerate() {
        let ts = 20 * i as u32;
        let p = sim.client_mut(publisher);
        match kind {
            FrameKind::Video => p.send_video(pstream, ts, payload.clone()),
            _ => p.send_audio(pstream, ts, payload.clone()),
        }
        sim.run();
    }

    let want: Vec<Bytes> = sent.iter().map(|(_, p)| p.clone()).collect();
    for &(player, stream) in &players {
        let got: Vec<Bytes> = sim
            .client(player)
            .media(stream)
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert!(got == want, "player {player:?} got different bytes");
    }

    // Every player's copy of frame j is the same buffer, and each session
    // handed that very buffer to its link (only headers are per player).
    let mut per_player: HashMap<ClientId, Vec<usize>> = HashMap::new();
    for f in sim.fanout() {
        per_player.entry(f.to).or_default().push(f.ptr);
    }
    let first = &per_player[&players[0].0];
    assert_eq!(first.len(), sent.len());
    for &(player, _) in &players {
        assert_eq!(
            &per_player[&player], first,
            "player {player:?} got its own copy"
        );
        for &ptr in first {
            assert!(
                sim.transmitted(player, ptr),
                "session of {player:?} copied a shared payload before writing it"
            );
        }
    }
}
