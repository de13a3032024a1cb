//! A subscriber whose link is far slower than the stream must not make the
//! server hold more and more media for it: its session abandons what it
//! cannot send in time, resumes video at keyframes, never drops decoder
//! configuration or data keyframes, and leaves other subscribers alone.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_core::message::Value;
use tincan_core::session::RealTimeConfig;
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{LinkConfig, Sim};

/// What the publisher sent, to recognise it at the players.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Coded video frame `n` (in send order); a keyframe or not.
    Video { n: u32, key: bool },
    /// Coded audio frame.
    Audio,
    /// Decoder configuration (sequence header, AAC config).
    Config,
    /// A data keyframe body.
    Data,
}

#[derive(Debug, Clone)]
struct SentFrame {
    role: Role,
    payload: Bytes,
    /// Virtual time the publisher sent it.
    at: Duration,
}

const SECONDS: u32 = 60;
const FRAME_MS: u32 = 40;
const GOP_FRAMES: u32 = 25;
/// Bytes per virtual millisecond the slow player's link delivers: about a
/// fifth of the stream's rate.
const SLOW_RATE: u64 = 20;

#[test]
fn slow_subscriber_memory_bounded_and_frames_abandoned() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (fast, fstream) = sim.start_player("live", "cam");
    let (slow, sstream) = sim.start_player("live", "cam");
    sim.set_link(slow, LinkConfig::slow(SLOW_RATE));

    let mut sent: Vec<SentFrame> = Vec::new();
    let record = |sent: &mut Vec<SentFrame>, role, payload: &Bytes, at| {
        sent.push(SentFrame {
            role,
            payload: payload.clone(),
            at,
        });
    };

    let audio_config = aac_config(b"\x12\x10");
    let mut video_config = avc_sequence_header(b"config-1");
    {
        let at = sim.elapsed();
        let p = sim.client_mut(publisher);
        p.send_video(pstream, 0, video_config.clone());
        p.send_audio(pstream, 0, audio_config.clone());
        record(&mut sent, Role::Config, &video_config, at);
        record(&mut sent, Role::Config, &audio_config, at);
    }

    let start = sim.elapsed();
    let frames = SECONDS * 1000 / FRAME_MS;
    // The slow player's session backlog, sampled every frame.
    let mut backlog_peak = 0usize;
    let mut backlog_samples = Vec::new();
    for n in 0..frames {
        let ts = n * FRAME_MS;
        sim.advance_to(start + Duration::from_millis(u64::from(ts)));
        let backlog = sim.session(slow).map_or(0, |s| s.backlog_bytes());
        backlog_peak = backlog_peak.max(backlog);
        backlog_samples.push(backlog);
        let at = sim.elapsed();
        let p = sim.client_mut(publisher);
        if ts % 10_000 == 0 {
            // Metadata changes every 10 s: a data keyframe each time.
            let body = p.set_data_frame(
                pstream,
                ts,
                "onMetaData",
                &[Value::EcmaArray(vec![(
                    "segment".into(),
                    Value::Number(f64::from(ts)),
                )])],
            );
            record(&mut sent, Role::Data, &body, at);
        }
        if ts == 30_000 {
            // The encoder reconfigures mid-stream.
            video_config = avc_sequence_header(b"config-2");
            p.send_video(pstream, ts, video_config.clone());
            record(&mut sent, Role::Config, &video_config, at);
        }
        let key = n % GOP_FRAMES == 0;
        let payload = if key {
            avc_keyframe(&tagged(b'V', n, 16_000))
        } else {
            avc_inter(&tagged(b'V', n, 3_000))
        };
        p.send_video(pstream, ts, payload.clone());
        record(&mut sent, Role::Video { n, key }, &payload, at);

        sim.advance_to(start + Duration::from_millis(u64::from(ts + FRAME_MS / 2)));
        let at = sim.elapsed();
        let audio = aac_raw(&tagged(b'A', n, 400));
        sim.client_mut(publisher)
            .send_audio(pstream, ts + FRAME_MS / 2, audio.clone());
        record(&mut sent, Role::Audio, &audio, at);
    }
    sim.advance(Duration::from_millis(100));

    let by_payload: HashMap<&Bytes, &SentFrame> = sent.iter().map(|s| (&s.payload, s)).collect();
    let sent_media: Vec<Bytes> = sent.iter().map(|s| s.payload.clone()).collect();

    // The fast subscriber on the same stream gets everything, in order.
    let fast_media: Vec<Bytes> = sim
        .client(fast)
        .media(fstream)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        fast_media.len(),
        sent_media.len(),
        "fast player lost frames"
    );
    assert!(
        fast_media == sent_media,
        "fast player got frames out of order or altered"
    );

    let slow_media = sim.client(slow).media(sstream);
    let stream_bytes: usize = sent.iter().map(|s| s.payload.len()).sum();
    let slow_bytes: usize = slow_media.iter().map(|m| m.payload.len()).sum();
    assert!(
        slow_bytes * 2 < stream_bytes,
        "the slow link carried {slow_bytes} of {stream_bytes} bytes: not a slow subscriber"
    );

    // The session holds at most what arrives within a video lifetime (plus
    // the finish-by margin and a second of slack), however long the run: it
    // never grows with time.
    let rt = RealTimeConfig::default();
    let rate = stream_bytes as f64 / f64::from(SECONDS);
    let window = rt.video_lifetime + rt.finish_by_margin + Duration::from_secs(1);
    let bound = (rate * window.as_secs_f64()) as usize;
    assert!(
        backlog_peak <= bound,
        "slow player's backlog reached {backlog_peak} bytes (bound {bound})"
    );
    let half = backlog_samples.len() / 2;
    let late_peak = backlog_samples[half..].iter().copied().max().unwrap_or(0);
    assert!(
        late_peak <= bound,
        "backlog late in the run: {late_peak} bytes"
    );
    let session = sim
        .session(slow)
        .expect("the slow player is still connected");
    assert!(
        session.dropped_frames() > 0,
        "the session abandoned nothing"
    );

    // Every received frame is one the publisher sent, and it arrived within
    // its lifetime (plus the finish-by margin and the time to drain the
    // link's own buffer and one large transmit): nothing is held back for
    // longer, so what the session holds is bounded by rate x lifetime.
    let link_drain = Duration::from_millis(
        (LinkConfig::slow(SLOW_RATE).buffer_bytes as u64 + 20_000) / SLOW_RATE,
    );
    let slack = rt.finish_by_margin + link_drain + Duration::from_millis(500);
    let mut worst = Duration::ZERO;
    for m in &slow_media {
        let s = by_payload
            .get(&m.payload)
            .unwrap_or_else(|| panic!("slow player got a frame nobody sent: {m:?}"));
        let lag = m.at - s.at;
        let bound = match s.role {
            Role::Video { .. } => rt.video_lifetime + slack,
            Role::Audio => rt.audio_lifetime + slack,
            Role::Config | Role::Data => continue,
        };
        assert!(
            lag <= bound,
            "{:?} sent at {:?} reached the slow player {lag:?} later (bound {bound:?})",
            s.role,
            s.at
        );
        worst = worst.max(lag);
    }

    // Video resumes at keyframes: an inter frame is only delivered if the
    // frame before it was.
    let mut last_video: Option<u32> = None;
    for m in &slow_media {
        if let Some(SentFrame {
            role: Role::Video { n, key },
            ..
        }) = by_payload.get(&m.payload)
        {
            if !key {
                assert_eq!(
                    last_video,
                    Some(n - 1),
                    "inter frame {n} delivered after a gap (previous video frame {last_video:?})"
                );
            }
            last_video = Some(*n);
        }
    }
    let delivered_video = slow_media
        .iter()
        .filter(|m| m.kind == FrameKind::Video)
        .count();
    assert!(
        delivered_video < frames as usize,
        "no video was abandoned ({delivered_video} of {frames})"
    );

    // Configuration and data keyframes are never dropped, and the new
    // sequence header arrives before any video sent after it.
    let slow_payloads: Vec<&Bytes> = slow_media.iter().map(|m| &m.payload).collect();
    for s in sent
        .iter()
        .filter(|s| matches!(s.role, Role::Config | Role::Data))
    {
        assert!(
            slow_payloads.contains(&&s.payload),
            "{:?} sent at {:?} never reached the slow player",
            s.role,
            s.at
        );
    }
    let config2_at = slow_payloads
        .iter()
        .position(|p| **p == video_config)
        .expect("second sequence header delivered");
    let first_after = slow_media.iter().position(|m| {
        matches!(by_payload.get(&m.payload), Some(SentFrame { role: Role::Video { n, .. }, .. })
            if *n * FRAME_MS >= 30_000)
    });
    if let Some(first_after) = first_after {
        assert!(
            config2_at < first_after,
            "new config at {config2_at}, its video at {first_after}"
        );
    }
    assert!(
        sim.client(slow).errors().is_empty(),
        "{:?}",
        sim.client(slow).errors()
    );
    eprintln!(
        "slow player: {slow_bytes} of {stream_bytes} bytes, {delivered_video}/{frames} video frames, worst lag {worst:?}, backlog peak {backlog_peak} (bound {bound})"
    );
}
