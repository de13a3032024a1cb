//! Fast start: a player that joins a running stream gets, at once, what a
//! decoder needs to start (data keyframes, decoder configuration, the most
//! recent keyframe and what followed it) with timestamps starting at 0.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_core::message::Value;
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, hevc_inter, hevc_keyframe,
    hevc_sequence_start, multitrack_frames, multitrack_sequence_start, tagged,
};
use tincan_tests::sim::{ClientId, Media, Sim};

/// One message a publisher sends.
#[derive(Debug, Clone)]
struct Sent {
    kind: FrameKind,
    ts: u32,
    payload: Bytes,
}

fn send(sim: &mut Sim, publisher: ClientId, stream: u32, m: &Sent) {
    let p = sim.client_mut(publisher);
    match m.kind {
        FrameKind::Video => p.send_video(stream, m.ts, m.payload.clone()),
        FrameKind::Audio => p.send_audio(stream, m.ts, m.payload.clone()),
        FrameKind::Data => unreachable!("data is sent with set_data_frame"),
    }
}

/// Sends `frames` in order, advancing the virtual clock to each frame's
/// media time (relative to the first) so the server sees a live pace.
fn send_live(sim: &mut Sim, publisher: ClientId, stream: u32, frames: &[Sent]) {
    let start = sim.elapsed();
    let base = frames.first().map_or(0, |f| f.ts);
    for f in frames {
        sim.advance_to(start + Duration::from_millis(u64::from(f.ts - base)));
        send(sim, publisher, stream, f);
        sim.run();
    }
}

fn video(ts: u32, payload: Bytes) -> Sent {
    Sent {
        kind: FrameKind::Video,
        ts,
        payload,
    }
}

fn audio(ts: u32, payload: Bytes) -> Sent {
    Sent {
        kind: FrameKind::Audio,
        ts,
        payload,
    }
}

/// A GOP of legacy AVC starting at `start` ms: a keyframe, then 12 inter
/// frames every 40 ms, with AAC frames in between (20 ms after each video
/// frame), in timestamp order.
fn avc_gop(gop: u8, start: u32) -> Vec<Sent> {
    let mut out = Vec::new();
    for i in 0..13u32 {
        let ts = start + 40 * i;
        let body = tagged(gop, i, 200);
        out.push(video(
            ts,
            if i == 0 {
                avc_keyframe(&body)
            } else {
                avc_inter(&body)
            },
        ));
        out.push(audio(ts + 20, aac_raw(&tagged(gop ^ 0x80, i, 30))));
    }
    out
}

fn kinds_and_payloads(media: &[Media]) -> Vec<(FrameKind, Bytes)> {
    media.iter().map(|m| (m.kind, m.payload.clone())).collect()
}

fn sorted(mut v: Vec<Bytes>) -> Vec<Bytes> {
    v.sort();
    v
}

#[test]
fn fast_start_sends_metadata_headers_and_last_keyframe_in_order() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let p = sim.client_mut(publisher);
    let meta = p.set_data_frame(
        pstream,
        0,
        "onMetaData",
        &[Value::EcmaArray(vec![
            ("width".into(), Value::Number(1280.0)),
            ("height".into(), Value::Number(720.0)),
        ])],
    );
    let custom = p.set_data_frame(pstream, 0, "onCustomData", &[Value::from("hello")]);
    let video_config = avc_sequence_header(b"avc-config");
    let audio_config = aac_config(b"\x12\x10");
    p.send_video(pstream, 0, video_config.clone());
    p.send_audio(pstream, 0, audio_config.clone());
    sim.run();

    let first_gop = avc_gop(1, 0);
    let last_gop = avc_gop(2, 520);
    send_live(&mut sim, publisher, pstream, &first_gop);
    sim.advance(Duration::from_millis(40));
    send_live(&mut sim, publisher, pstream, &last_gop);

    let (player, stream) = sim.start_player("live", "cam");
    let media = sim.client(player).media(stream);
    assert!(media.len() >= 4, "{media:?}");

    // Every data keyframe first, then decoder configuration.
    assert!(
        media[..2].iter().all(|m| m.kind == FrameKind::Data),
        "{media:?}"
    );
    assert_eq!(
        sorted(media[..2].iter().map(|m| m.payload.clone()).collect()),
        sorted(vec![meta, custom])
    );
    assert_eq!(
        sorted(media[2..4].iter().map(|m| m.payload.clone()).collect()),
        sorted(vec![video_config, audio_config])
    );
    // Then the last keyframe and everything after it, as sent (which is
    // timestamp order), and nothing from the earlier GOP.
    let want: Vec<_> = last_gop
        .iter()
        .map(|s| (s.kind, s.payload.clone()))
        .collect();
    assert_eq!(kinds_and_payloads(&media[4..]), want);

    // Timestamps start at 0 at the keyframe and keep the publisher's
    // spacing; nothing before it is stamped later.
    let ts: Vec<u32> = media.iter().map(|m| m.timestamp.as_millis()).collect();
    assert_eq!(ts[4], 0, "{ts:?}");
    assert!(ts[..4].iter().all(|&t| t == 0), "{ts:?}");
    let want_ts: Vec<u32> = last_gop.iter().map(|s| s.ts - 520).collect();
    assert_eq!(&ts[4..], &want_ts[..]);

    // Live media then continues on the same timeline.
    let next = avc_inter(&tagged(2, 99, 200));
    sim.advance(Duration::from_millis(40));
    sim.client_mut(publisher)
        .send_video(pstream, 520 + 13 * 40, next.clone());
    sim.run();
    let last = sim.client(player).media(stream).pop().expect("live media");
    assert_eq!(last.payload, next);
    assert_eq!(last.timestamp.as_millis(), 13 * 40);
}

/// Publishes `config` then two GOPs of `frames` (keyframe first) on
/// `name`, lets a player join, and checks it starts from `config`, then the
/// second GOP, at timestamp 0. The player plays `name` with `query`.
fn check_fast_start(
    sim: &mut Sim,
    name: &str,
    query: &str,
    config: Bytes,
    gop: impl Fn(u8, u32) -> Vec<Sent>,
) {
    let (publisher, pstream) = sim.start_publisher("live", name);
    sim.client_mut(publisher)
        .send_video(pstream, 0, config.clone());
    sim.run();
    let first = gop(1, 0);
    let second = gop(2, 400);
    send_live(sim, publisher, pstream, &first);
    sim.advance(Duration::from_millis(40));
    send_live(sim, publisher, pstream, &second);

    let (player, stream) = sim.start_player("live", &format!("{name}{query}"));
    let media = sim.client(player).media(stream);
    let mut want = vec![(FrameKind::Video, config)];
    want.extend(second.iter().map(|s| (s.kind, s.payload.clone())));
    assert_eq!(kinds_and_payloads(&media), want, "{name}");
    let ts: Vec<u32> = media.iter().map(|m| m.timestamp.as_millis()).collect();
    let mut want_ts = vec![0];
    want_ts.extend(second.iter().map(|s| s.ts - 400));
    assert_eq!(ts, want_ts, "{name}");
}

#[test]
fn fast_start_works_for_enhanced_rtmp_hevc_and_multitrack() {
    let mut sim = Sim::new();
    check_fast_start(
        &mut sim,
        "hevc",
        "",
        hevc_sequence_start(b"hvcC-record"),
        |g, start| {
            (0..8u32)
                .map(|i| {
                    let body = tagged(g, i, 150);
                    let payload = if i == 0 {
                        hevc_keyframe(&body)
                    } else {
                        hevc_inter(&body)
                    };
                    video(start + 40 * i, payload)
                })
                .collect()
        },
    );
    // A player that asks for every track gets the multitrack messages as
    // sent (one that does not gets track 0 alone: ertmp_sim.rs).
    check_fast_start(
        &mut sim,
        "multi",
        "?videoTrack=all",
        multitrack_sequence_start(b"av01", &[(0, b"av1C-hd"), (1, b"av1C-sd")]),
        |g, start| {
            (0..8u32)
                .map(|i| {
                    let hd = tagged(g, i, 150);
                    let sd = tagged(g | 0x40, i, 60);
                    video(
                        start + 40 * i,
                        multitrack_frames(i == 0, b"av01", &[(0, &hd), (1, &sd)]),
                    )
                })
                .collect()
        },
    );
}
