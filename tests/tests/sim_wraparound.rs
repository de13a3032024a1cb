//! RTMP timestamps are 32-bit milliseconds and wrap after about 49.7 days.
//! A publisher whose own stamps cross 0xFFFF_FFFF (an encoder that started
//! its clock high, or a long-running relay) must not disturb its players:
//! rebased players keep counting from 0 with the publisher's deltas,
//! `asis:` players get the publisher's stamps (extended timestamps on the
//! wire, then small ones after the wrap), and a player joining after the
//! wrap, in the middle of a GOP that straddles it, gets a correct fast
//! start.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{ClientId, Media, Sim};

/// The publisher's first stamp: 65.536 s before the wrap.
const START: u32 = 0xFFFF_0000;
const FRAME_MS: u32 = 40;
const GOP_FRAMES: u32 = 50;
/// Frames sent in all: the wrap falls in frame 1639, inside the GOP that
/// starts at frame 1600.
const FRAMES: u32 = 1_700;
/// The late joiner arrives once this frame is sent: after the wrap, in
/// the middle of the GOP that straddles it.
const LATE_JOIN: u32 = 1_645;

#[derive(Debug, Clone)]
struct Sent {
    kind: FrameKind,
    /// Video frame number; `None` for configuration and audio.
    frame: Option<u32>,
    stamp: u32,
    payload: Bytes,
}

struct Outcome {
    sent: Vec<Sent>,
    early: Vec<Media>,
    asis: Vec<Media>,
    late: Vec<Media>,
    errors: Vec<String>,
}

fn run_scenario() -> Outcome {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (early, estream) = sim.start_player("live", "cam");
    let (asis, astream) = sim.start_player("live", "asis:cam");

    let mut sent = Vec::new();
    let mut send = |sim: &mut Sim, kind, frame, stamp: u32, payload: Bytes| {
        let p = sim.client_mut(publisher);
        match kind {
            FrameKind::Video => p.send_video(pstream, stamp, payload.clone()),
            _ => p.send_audio(pstream, stamp, payload.clone()),
        }
        sent.push(Sent {
            kind,
            frame,
            stamp,
            payload,
        });
    };
    send(
        &mut sim,
        FrameKind::Video,
        None,
        START,
        avc_sequence_header(b"cfg"),
    );
    send(
        &mut sim,
        FrameKind::Audio,
        None,
        START,
        aac_config(b"\x12\x10"),
    );

    let t0 = sim.elapsed();
    let mut late: Option<(ClientId, u32)> = None;
    for n in 0..FRAMES {
        let offset = n * FRAME_MS;
        sim.advance_to(t0 + Duration::from_millis(u64::from(offset)));
        let payload = if n % GOP_FRAMES == 0 {
            avc_keyframe(&tagged(b'K', n, 2_000))
        } else {
            avc_inter(&tagged(b'I', n, 300))
        };
        let stamp = START.wrapping_add(offset);
        send(&mut sim, FrameKind::Video, Some(n), stamp, payload);
        sim.advance_to(t0 + Duration::from_millis(u64::from(offset + FRAME_MS / 2)));
        let audio = aac_raw(&tagged(b'A', n, 50));
        send(
            &mut sim,
            FrameKind::Audio,
            None,
            stamp.wrapping_add(FRAME_MS / 2),
            audio,
        );
        if n == LATE_JOIN {
            late = Some(sim.start_player("live", "cam"));
        }
    }
    sim.advance(Duration::from_millis(100));
    let (late, lstream) = late.expect("the late joiner joined");

    let mut errors = Vec::new();
    for id in [early, asis, late] {
        errors.extend(sim.client(id).errors().iter().cloned());
    }
    Outcome {
        sent,
        early: sim.client(early).media(estream),
        asis: sim.client(asis).media(astream),
        late: sim.client(late).media(lstream),
        errors,
    }
}

/// The publisher's stamps really crossed the wrap, from the extended
/// timestamp range (>= 0xFF_FFFF on the wire, as START is) to small ones.
fn assert_crossed_the_wrap(sent: &[Sent]) {
    assert!(sent.iter().any(|s| s.stamp > START));
    assert!(sent.iter().any(|s| s.stamp < 0x1_0000));
}

#[test]
fn rebased_player_keeps_the_publishers_deltas_across_the_wrap() {
    let out = run_scenario();
    assert_crossed_the_wrap(&out.sent);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<(&Bytes, u32)> = out
        .early
        .iter()
        .map(|m| (&m.payload, m.timestamp.as_millis()))
        .collect();
    // Every message, in order, at its distance from the publisher's first
    // stamp: the subscription starts at 0 and never jumps at the wrap.
    let want: Vec<(&Bytes, u32)> = out
        .sent
        .iter()
        .map(|s| (&s.payload, s.stamp.wrapping_sub(START)))
        .collect();
    assert_eq!(got.len(), want.len(), "the early player lost messages");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "message {i}: got stamp {}, want {}", g.1, w.1);
    }
    let stamps: Vec<u32> = got.iter().map(|g| g.1).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "rebased stamps went backwards"
    );
}

#[test]
fn asis_player_gets_the_publishers_stamps_across_the_wrap() {
    let out = run_scenario();
    assert_crossed_the_wrap(&out.sent);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<(&Bytes, u32)> = out
        .asis
        .iter()
        .map(|m| (&m.payload, m.timestamp.as_millis()))
        .collect();
    let want: Vec<(&Bytes, u32)> = out.sent.iter().map(|s| (&s.payload, s.stamp)).collect();
    assert_eq!(got.len(), want.len(), "the asis player lost messages");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "message {i}: got stamp {:#x}, want {:#x}", g.1, w.1);
    }
}

#[test]
fn late_joiner_after_the_wrap_gets_a_fast_start_across_it() {
    let out = run_scenario();
    assert_crossed_the_wrap(&out.sent);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let key_frame = LATE_JOIN / GOP_FRAMES * GOP_FRAMES;
    let key = out
        .sent
        .iter()
        .find(|s| s.frame == Some(key_frame))
        .expect("the GOP's keyframe was sent");
    assert!(
        key.stamp > START,
        "the GOP must start before the wrap to straddle it"
    );

    // Decoder configuration first, then the GOP from its keyframe.
    let kinds: Vec<FrameKind> = out.late.iter().take(2).map(|m| m.kind).collect();
    assert!(
        kinds.contains(&FrameKind::Video) && kinds.contains(&FrameKind::Audio),
        "configuration first: {kinds:?}"
    );
    let configs: Vec<&Bytes> = out.late.iter().take(2).map(|m| &m.payload).collect();
    for s in out.sent.iter().take(2) {
        assert!(configs.contains(&&s.payload), "configuration missing");
    }
    let first_video = out.late[2..]
        .iter()
        .find(|m| m.kind == FrameKind::Video)
        .expect("video delivered");
    assert_eq!(
        first_video.payload, key.payload,
        "video starts at a keyframe"
    );

    // Every video frame from the keyframe on, none missing, each at its
    // distance from the keyframe, straight across the wrap.
    let by_payload: std::collections::HashMap<&Bytes, &Sent> =
        out.sent.iter().map(|s| (&s.payload, s)).collect();
    let videos: Vec<(u32, u32)> = out.late[2..]
        .iter()
        .filter(|m| m.kind == FrameKind::Video)
        .map(|m| {
            let s = by_payload
                .get(&m.payload)
                .unwrap_or_else(|| panic!("a frame nobody sent: {m:?}"));
            (s.frame.unwrap_or(u32::MAX), m.timestamp.as_millis())
        })
        .collect();
    let want: Vec<(u32, u32)> = (key_frame..FRAMES)
        .map(|n| (n, (n - key_frame) * FRAME_MS))
        .collect();
    assert_eq!(videos, want);
    for m in &out.late[2..] {
        let s = by_payload[&m.payload];
        if s.kind == FrameKind::Audio {
            assert_eq!(
                m.timestamp.as_millis(),
                s.stamp.wrapping_sub(key.stamp),
                "audio at {:#x}",
                s.stamp
            );
        }
    }
    let stamps: Vec<u32> = out.late.iter().map(|m| m.timestamp.as_millis()).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "late joiner's stamps went backwards: {stamps:?}"
    );
}
