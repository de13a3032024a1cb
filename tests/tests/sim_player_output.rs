//! What the server says about a player's output. With write merging, a
//! player whose media the window holds is named ready when the window
//! passes (or a keyframe or the size bound releases it), not once per
//! frame, and gets everything held in order then; and `has_output` tells
//! a runtime writing for players when one has nothing more. Driven on a
//! virtual clock with the in-memory clients the core's benches use.

#[path = "../../core/benches/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{has_status, Live, Peer};
use tincan_core::event::SessionId;
use tincan_core::message::Message;
use tincan_core::server::{Server, ServerConfig};

const WINDOW: Duration = Duration::from_millis(100);

/// Whether `poll_ready` names `id` before it runs dry.
fn named(server: &mut Server, id: SessionId) -> bool {
    let mut found = false;
    while let Some(ready) = server.poll_ready() {
        found |= ready == id;
    }
    found
}

/// A live stream with one player that took its start (statuses and
/// sequence headers), merging its writes over [`WINDOW`].
fn merging_player() -> (Live, Peer) {
    let mut config = ServerConfig::default();
    config.session.merge_window = WINDOW;
    let mut live = Live::with_config(config);
    let now = live.now;
    let mut player = Peer::connected(&mut live.server, now, 10);
    player.play(&mut live.server, now);
    let start = player.receive(&mut live.server, now);
    assert!(has_status(&start, "NetStream.Play.Start"), "{start:?}");
    named(&mut live.server, player.id);
    (live, player)
}

#[test]
fn a_keyframe_makes_a_merging_player_ready_at_once() {
    let (mut live, mut player) = merging_player();
    let key = live.publish_video();
    assert!(named(&mut live.server, player.id), "keyframe not released");
    let got = player.receive(&mut live.server, live.now);
    assert!(
        got.iter()
            .any(|m| matches!(m, Message::Video(v) if *v == key)),
        "{got:?}"
    );
}

#[test]
fn a_merging_player_is_named_ready_when_its_window_passes_not_per_frame() {
    let (mut live, mut player) = merging_player();
    live.publish_video();
    assert!(named(&mut live.server, player.id));
    player.receive(&mut live.server, live.now);

    // Held: an audio frame, then a P-frame 33 ms later (together far
    // below the size bound).
    live.publish_audio();
    let held_since = live.now;
    assert!(
        !named(&mut live.server, player.id),
        "named ready for an audio frame the window holds"
    );
    let inter = live.publish_video();
    assert!(
        !named(&mut live.server, player.id),
        "named ready for a P-frame the window holds"
    );

    // The window passes: the merge deadline fires and names the player,
    // which gets both frames in order.
    let due = held_since + WINDOW;
    assert!(
        live.server.poll_timeout().is_some_and(|at| at <= due),
        "no wake-up by the end of the window"
    );
    live.server.handle_timeout(due);
    assert!(
        named(&mut live.server, player.id),
        "not named when the window passed"
    );
    let got = player.receive(&mut live.server, due);
    let media: Vec<&Message> = got
        .iter()
        .filter(|m| matches!(m, Message::Audio(_) | Message::Video(_)))
        .collect();
    assert!(
        matches!(media.as_slice(), [Message::Audio(_), Message::Video(v)] if *v == inter),
        "{got:?}"
    );
}

#[test]
fn has_output_is_false_once_a_player_took_everything_and_true_when_a_frame_waits() {
    let mut live = Live::with_config(ServerConfig::default());
    let now = live.now;
    let mut player = Peer::connected(&mut live.server, now, 10);
    player.play(&mut live.server, now);
    player.receive(&mut live.server, now);
    assert!(
        !live.server.has_output(player.id),
        "output left after the player took everything"
    );
    let key = live.publish_video();
    assert!(
        live.server.has_output(player.id),
        "a frame waits, yet no output"
    );
    let got = player.receive(&mut live.server, live.now);
    assert!(
        got.iter()
            .any(|m| matches!(m, Message::Video(v) if *v == key)),
        "{got:?}"
    );
    assert!(!live.server.has_output(player.id));
}
