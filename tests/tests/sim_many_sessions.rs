//! Fan-out to many players: every player receives the publisher's exact
//! bytes, and the payload is shared, not copied per player.

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
    sim.record_transmits();
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

    // Every player's link got frame j's payload as a buffer of its own,
    // and it is the same allocation for every player: only chunk headers
    // are written per player. (Recorded buffers are held, so an address
    // cannot be reused by another allocation while compared.)
    for (j, (_, payload)) in sent.iter().enumerate() {
        let shared = sim.transmitted_payload(players[0].0, payload);
        assert!(
            shared.is_some(),
            "frame {j} was copied next to its header for the first player"
        );
        for &(player, _) in &players {
            assert_eq!(
                sim.transmitted_payload(player, payload),
                shared,
                "player {player:?} got its own copy of frame {j}"
            );
        }
    }
}
