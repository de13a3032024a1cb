//! A subscriber whose link is far slower than the stream must not make the
//! server hold more and more media for it: its session abandons what it
//! cannot send in time, resumes video at keyframes, never drops decoder
//! configuration or data keyframes, and leaves other subscribers alone.
//!
//! Both tests run the same 60-second scenario: one publisher (about
//! 100 KB/s of AVC + AAC, a keyframe every second, metadata every 10 s and
//! a new sequence header at 30 s), one player on an unlimited link and one
//! on a link five times slower than the stream.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tincan_core::message::Value;
use tincan_core::session::{RealTimeConfig, SessionConfig};
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{LinkConfig, Media, Sim, SimConfig};

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
/// Timestamp at which the publisher sends a new sequence header.
const RECONFIGURE_AT: u32 = 30_000;

/// What the scenario produced.
struct Outcome {
    sent: Vec<SentFrame>,
    fast: Vec<Media>,
    slow: Vec<Media>,
    /// The slow player's session backlog, sampled at every video frame.
    backlog: Vec<usize>,
    /// Frames the slow player's session abandoned.
    dropped_frames: u64,
    /// The largest transmit the slow player's session handed out.
    largest_transmit: usize,
    slow_errors: Vec<String>,
}

impl Outcome {
    fn role_of(&self) -> HashMap<&Bytes, &SentFrame> {
        self.sent.iter().map(|s| (&s.payload, s)).collect()
    }

    fn stream_bytes(&self) -> usize {
        self.sent.iter().map(|s| s.payload.len()).sum()
    }
}

fn run_scenario(session: SessionConfig) -> Outcome {
    let mut sim = Sim::with_config(SimConfig {
        session,
        ..SimConfig::default()
    });
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (fast, fstream) = sim.start_player("live", "cam");
    // The slow player gets playing over a fast link, then its link degrades.
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
    let video_config = avc_sequence_header(b"config-1");
    {
        let at = sim.elapsed();
        let p = sim.client_mut(publisher);
        p.send_video(pstream, 0, video_config.clone());
        p.send_audio(pstream, 0, audio_config.clone());
        record(&mut sent, Role::Config, &video_config, at);
        record(&mut sent, Role::Config, &audio_config, at);
    }

    let start = sim.elapsed();
    let mut backlog = Vec::new();
    for n in 0..SECONDS * 1000 / FRAME_MS {
        let ts = n * FRAME_MS;
        sim.advance_to(start + Duration::from_millis(u64::from(ts)));
        backlog.push(sim.session(slow).map_or(0, |s| s.backlog_bytes()));
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
        if ts == RECONFIGURE_AT {
            // The encoder reconfigures mid-stream.
            let config = avc_sequence_header(b"config-2");
            p.send_video(pstream, ts, config.clone());
            record(&mut sent, Role::Config, &config, at);
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

    let session = sim
        .session(slow)
        .expect("the slow player is still connected");
    Outcome {
        dropped_frames: session.dropped_frames(),
        largest_transmit: sim.largest_transmit(slow),
        sent,
        fast: sim.client(fast).media(fstream),
        slow: sim.client(slow).media(sstream),
        backlog,
        slow_errors: sim.client(slow).errors().to_vec(),
    }
}

#[test]
fn slow_subscriber_memory_bounded_and_frames_abandoned() {
    // A budget well under what the stream would pile up in 60 s (about
    // 6 MB), so a backlog that grows with time cannot hide under it.
    let budget = 256 * 1024;
    let session = SessionConfig {
        real_time: RealTimeConfig {
            max_backlog_bytes: budget,
            ..RealTimeConfig::default()
        },
        ..SessionConfig::default()
    };
    let out = run_scenario(session);
    let role_of = out.role_of();

    // The fast subscriber on the same stream gets everything, in order.
    let sent: Vec<&Bytes> = out.sent.iter().map(|s| &s.payload).collect();
    let fast: Vec<&Bytes> = out.fast.iter().map(|m| &m.payload).collect();
    assert_eq!(fast.len(), sent.len(), "fast player lost frames");
    assert!(
        fast == sent,
        "fast player got frames out of order or altered"
    );

    // The slow player's session never holds more than its budget of
    // droppable media plus the never-dropped configuration and data.
    let fixed: usize = out
        .sent
        .iter()
        .filter(|s| matches!(s.role, Role::Config | Role::Data))
        .map(|s| s.payload.len())
        .sum();
    let peak = out.backlog.iter().copied().max().unwrap_or(0);
    assert!(
        peak <= budget + fixed,
        "slow player's backlog reached {peak} bytes (budget {budget} + {fixed})"
    );

    // It really was slow: most media was abandoned, not queued.
    let slow_bytes: usize = out.slow.iter().map(|m| m.payload.len()).sum();
    assert!(
        slow_bytes * 2 < out.stream_bytes(),
        "the slow link carried {slow_bytes} of {} bytes: not a slow subscriber",
        out.stream_bytes()
    );
    assert!(out.dropped_frames > 0, "the session abandoned nothing");

    // Video resumes at keyframes: an inter frame is only delivered if the
    // frame before it was.
    let mut last_video: Option<u32> = None;
    for m in &out.slow {
        let s = role_of
            .get(&m.payload)
            .unwrap_or_else(|| panic!("slow player got a frame nobody sent: {m:?}"));
        if let Role::Video { n, key } = s.role {
            if !key {
                assert_eq!(
                    last_video,
                    Some(n - 1),
                    "inter frame {n} delivered after a gap (previous video frame {last_video:?})"
                );
            }
            last_video = Some(n);
        }
    }

    // Configuration and data keyframes are never dropped, and the new
    // sequence header arrives before any video sent after it.
    let slow: Vec<&Bytes> = out.slow.iter().map(|m| &m.payload).collect();
    for s in out
        .sent
        .iter()
        .filter(|s| matches!(s.role, Role::Config | Role::Data))
    {
        assert!(
            slow.contains(&&s.payload),
            "{:?} sent at {:?} never reached the slow player",
            s.role,
            s.at
        );
    }
    let config2 = avc_sequence_header(b"config-2");
    let config2_at = slow
        .iter()
        .position(|p| **p == config2)
        .expect("second sequence header delivered");
    let first_after = out.slow.iter().position(|m| {
        matches!(role_of.get(&m.payload), Some(SentFrame { role: Role::Video { n, .. }, .. })
            if *n * FRAME_MS >= RECONFIGURE_AT)
    });
    if let Some(first_after) = first_after {
        assert!(
            config2_at < first_after,
            "new config at {config2_at}, its video at {first_after}"
        );
    }
    assert!(out.slow_errors.is_empty(), "{:?}", out.slow_errors);
}

#[test]
fn slow_subscriber_gets_no_media_older_than_its_lifetime() {
    let rt = RealTimeConfig::default();
    let out = run_scenario(SessionConfig::default());
    let role_of = out.role_of();

    // Media may arrive late by its lifetime, the finish-by margin, and the
    // time the link needs to drain its own send buffer plus one keyframe
    // (what was already handed to the "socket"); a little slack on top.
    let in_flight = LinkConfig::slow(SLOW_RATE).buffer_bytes as u64 + 20_000;
    let slack = rt.finish_by_margin + Duration::from_millis(in_flight / SLOW_RATE + 500);
    let mut late = Vec::new();
    for m in &out.slow {
        let s = role_of
            .get(&m.payload)
            .unwrap_or_else(|| panic!("slow player got a frame nobody sent: {m:?}"));
        let lifetime = match s.role {
            Role::Video { .. } => rt.video_lifetime,
            Role::Audio => rt.audio_lifetime,
            Role::Config | Role::Data => continue,
        };
        let lag = m.at - s.at;
        if lag > lifetime + slack {
            late.push((s.role, s.at, lag));
        }
    }
    let worst = late.iter().map(|l| l.2).max();
    assert!(
        late.is_empty(),
        "{} frames reached the slow player later than lifetime + {slack:?} \
         (worst {worst:?}; largest transmit {} bytes); first: {:?}",
        late.len(),
        out.largest_transmit,
        late.first()
    );
}
