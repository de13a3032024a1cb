//! TC's finish-by margin on a slow link: a keyframe too large to cross the
//! link within its lifetime + finish-by margin is cut off part way with an
//! RTMP Abort on its chunk stream. The player's chunk decoder drops the
//! partial message, stays in step, and decodes what follows; a player on a
//! fast link gets the same keyframe whole, from the same shared payload.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::message::Message;
use tincan_core::session::RealTimeConfig;
use tincan_tests::sim::media::{avc_inter, avc_keyframe, avc_sequence_header, tagged};
use tincan_tests::sim::{ClientId, LinkConfig, Sim};

/// Bytes per virtual millisecond of the slow link (20 kB/s): a 200 kB
/// keyframe needs 10 s, far past the 3 s video lifetime.
const SLOW_RATE: u64 = 20;
const BIG_KEY: usize = 200_000;

struct Scenario {
    sim: Sim,
    fast: (ClientId, u32),
    slow: (ClientId, u32),
    big: Bytes,
    /// When the publisher sent the large keyframe.
    start: Duration,
    next_key: Bytes,
    next_inter: Bytes,
}

/// A publisher sends a configuration, a 200 kB keyframe at 0 s, then at
/// 5 s a small keyframe and an inter frame after it.
fn run() -> Scenario {
    let mut sim = Sim::new();
    sim.record_transmits();
    let (publisher, ps) = sim.start_publisher("live", "cam");
    let fast = sim.start_player("live", "cam");
    let slow = sim.start_player("live", "cam");
    sim.set_link(slow.0, LinkConfig::slow(SLOW_RATE));

    let big = avc_keyframe(&tagged(b'V', 0, BIG_KEY));
    let next_key = avc_keyframe(&tagged(b'V', 1, 8_000));
    let next_inter = avc_inter(&tagged(b'V', 2, 2_000));
    let start = sim.elapsed();
    sim.client_mut(publisher)
        .send_video(ps, 0, avc_sequence_header(b"config"));
    sim.client_mut(publisher).send_video(ps, 0, big.clone());
    sim.advance_to(start + Duration::from_secs(5));
    sim.client_mut(publisher)
        .send_video(ps, 5_000, next_key.clone());
    sim.client_mut(publisher)
        .send_video(ps, 5_040, next_inter.clone());
    sim.advance_to(start + Duration::from_secs(8));
    Scenario {
        sim,
        fast,
        slow,
        big,
        start,
        next_key,
        next_inter,
    }
}

fn video_payloads(sim: &Sim, (id, stream): (ClientId, u32)) -> Vec<Bytes> {
    sim.client(id)
        .media(stream)
        .into_iter()
        .filter(|m| m.kind == tincan_core::event::FrameKind::Video)
        .map(|m| m.payload)
        .collect()
}

#[test]
fn slow_player_gets_an_abort_on_the_chunk_stream_of_the_cut_keyframe() {
    let s = run();
    let client = s.sim.client(s.slow.0);
    let video_csid = client
        .received()
        .iter()
        .find(|r| matches!(r.message, Message::Video(_)) && r.stream_id == s.slow.1)
        .map(|r| r.csid)
        .expect("some video reached the slow player");
    let aborts: Vec<(u32, Duration)> = client
        .received()
        .iter()
        .filter_map(|r| match r.message {
            Message::Abort { csid } => Some((csid, r.at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        aborts.iter().map(|a| a.0).collect::<Vec<_>>(),
        [video_csid],
        "one Abort, on the video chunk stream"
    );
    let session = s.sim.session(s.slow.0).expect("slow player connected");
    assert_eq!(session.aborted_messages(), 1);
}

#[test]
fn slow_player_decoder_stays_in_step_and_decodes_what_follows_the_abort() {
    let s = run();
    assert!(
        s.sim.client(s.slow.0).errors().is_empty(),
        "{:?}",
        s.sim.client(s.slow.0).errors()
    );
    let video = video_payloads(&s.sim, s.slow);
    assert!(
        !video.contains(&s.big),
        "the cut keyframe must not be delivered"
    );
    // Configuration, then the next GOP, byte for byte.
    assert_eq!(
        video,
        [
            avc_sequence_header(b"config"),
            s.next_key.clone(),
            s.next_inter.clone()
        ]
    );
}

#[test]
fn slow_player_gets_the_abort_within_lifetime_plus_margin_plus_link_drain() {
    let s = run();
    let rt = RealTimeConfig::default();
    let client = s.sim.client(s.slow.0);
    let abort_at = client
        .received()
        .iter()
        .find(|r| matches!(r.message, Message::Abort { .. }))
        .map(|r| r.at)
        .expect("an Abort arrived");
    // The Abort leaves the session at the first poll after lifetime +
    // margin; the link then still delivers what it held: up to its 16 KiB
    // send buffer plus the last transmit (the 16 KiB minimum batch).
    let in_flight = (LinkConfig::slow(SLOW_RATE).buffer_bytes + 16 * 1024) as u64;
    let link_drain = Duration::from_millis(in_flight / SLOW_RATE + 100);
    let bound = rt.video_lifetime + rt.finish_by_margin + link_drain;
    let lag = abort_at - s.start;
    assert!(
        lag <= bound,
        "Abort arrived {lag:?} after the keyframe, later than {bound:?}"
    );
}

#[test]
fn fast_player_gets_the_large_keyframe_whole_and_fan_out_stays_zero_copy() {
    let s = run();
    let video = video_payloads(&s.sim, s.fast);
    assert!(video.contains(&s.big), "fast player lost the keyframe");
    // Both players' links got the keyframe's first chunk as a slice of one
    // shared allocation: chunking the slow player's copy cost it headers
    // only.
    let fast = s.sim.transmitted_payload(s.fast.0, &s.big);
    assert!(
        fast.is_some(),
        "the keyframe was copied for the fast player"
    );
    assert_eq!(s.sim.transmitted_payload(s.slow.0, &s.big), fast);
}
