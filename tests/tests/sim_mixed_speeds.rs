//! Five hundred players of one stream over links of mixed speed: 400 on
//! unlimited links, 80 on links just fast enough for the stream, 20 on
//! links far too slow. The fast ones must get every frame in order, the
//! slow ones lose whole GOP tails only and stay inside their byte budget,
//! nobody's backlog grows with time, and the server hands every player the
//! same payload buffers.
//!
//! The scenario runs once (it is the expensive part) and every test checks
//! one behaviour of its outcome.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use tincan_core::session::{RealTimeConfig, SessionConfig};
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{ClientId, LinkConfig, Media, Sim, SimConfig};

const FAST: usize = 400;
const JUST_ENOUGH: usize = 80;
const SLOW: usize = 20;
const SECONDS: u32 = 10;
const FRAME_MS: u32 = 40;
const GOP_FRAMES: u32 = 25;
const KEY_BYTES: usize = 3_000;
const INTER_BYTES: usize = 400;
const AUDIO_BYTES: usize = 60;
/// About 14 KB/s of media: 14 bytes per millisecond.
const STREAM_BYTES_PER_MS: u64 =
    ((KEY_BYTES + (GOP_FRAMES as usize - 1) * INTER_BYTES + GOP_FRAMES as usize * AUDIO_BYTES)
        / 1000) as u64;
/// Rate of the "just enough" links: about 1.4 times the stream.
const JUST_ENOUGH_RATE: u64 = 20;
/// Rate of the far-too-slow links: under a third of the stream.
const SLOW_RATE: u64 = 4;
/// Each player's media budget: well under what a slow link would pile up
/// over the run, so a backlog that grows with time cannot hide under it.
const BUDGET: usize = 24 * 1024;
/// Backlog samples are taken every this many frames (200 ms).
const SAMPLE_EVERY: u32 = 5;
/// The seconds during which transmits are recorded, to compare buffers.
const RECORD_UNTIL_FRAME: u32 = 2 * GOP_FRAMES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Config,
    Video { n: u32, key: bool },
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speed {
    Fast,
    JustEnough,
    Slow,
}

struct Player {
    speed: Speed,
    /// Roles of the media received, in order.
    got: Vec<Role>,
    /// Session backlog + bytes on the link, per sample.
    memory: Vec<usize>,
    /// The session's own backlog, per sample.
    backlog: Vec<usize>,
    dropped_frames: u64,
    errors: Vec<String>,
    /// Where each recorded video payload was transmitted from.
    shared: Vec<Option<usize>>,
}

struct Outcome {
    /// Roles of the media the publisher sent, in order.
    sent: Vec<Role>,
    /// Config frames' bytes (never dropped, not counted in the budget).
    fixed_bytes: usize,
    players: Vec<Player>,
}

/// Identifies a payload by its first bytes (media header, tag, index),
/// which is all a player keeps of large frames.
fn key(payload: &Bytes) -> Bytes {
    payload.slice(..payload.len().min(16))
}

fn run_scenario() -> Outcome {
    let session = SessionConfig {
        real_time: RealTimeConfig {
            max_backlog_bytes: BUDGET,
            ..RealTimeConfig::default()
        },
        ..SessionConfig::default()
    };
    let mut sim = Sim::with_config(SimConfig {
        session,
        link_tick: Duration::from_millis(5),
        ..SimConfig::default()
    });
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let mut players: Vec<(ClientId, u32, Speed)> = Vec::new();
    for i in 0..FAST + JUST_ENOUGH + SLOW {
        let speed = match i % 25 {
            0 => Speed::Slow,
            1..=4 => Speed::JustEnough,
            _ => Speed::Fast,
        };
        let (id, stream) = sim.start_player("live", "cam");
        // Only identity and timing matter: keep the first bytes of frames.
        sim.client_mut(id).keep_payloads_up_to(AUDIO_BYTES + 2);
        players.push((id, stream, speed));
    }
    assert_eq!(
        players.iter().filter(|p| p.2 == Speed::Slow).count(),
        SLOW,
        "the mix"
    );
    // Degrade the links once everyone is playing (the dialogue is quicker
    // to script on fast links).
    for &(id, _, speed) in &players {
        match speed {
            Speed::Fast => {}
            Speed::JustEnough => sim.set_link(id, LinkConfig::slow(JUST_ENOUGH_RATE)),
            Speed::Slow => sim.set_link(id, LinkConfig::slow(SLOW_RATE)),
        }
    }
    sim.record_transmits();

    let mut by_key: HashMap<Bytes, Role> = HashMap::new();
    let mut sent = Vec::new();
    let mut recorded: Vec<Bytes> = Vec::new();
    let video_config = avc_sequence_header(b"cfg");
    let audio_config = aac_config(b"\x12\x10");
    {
        let p = sim.client_mut(publisher);
        p.send_video(pstream, 0, video_config.clone());
        p.send_audio(pstream, 0, audio_config.clone());
    }
    let fixed_bytes = video_config.len() + audio_config.len();
    for c in [&video_config, &audio_config] {
        by_key.insert(key(c), Role::Config);
        sent.push(Role::Config);
    }

    let samples = SECONDS * 1000 / FRAME_MS / SAMPLE_EVERY;
    let mut memory = vec![Vec::with_capacity(samples as usize); players.len()];
    let mut backlog = vec![Vec::with_capacity(samples as usize); players.len()];
    let start = sim.elapsed();
    for n in 0..SECONDS * 1000 / FRAME_MS {
        let ts = n * FRAME_MS;
        sim.advance_to(start + Duration::from_millis(u64::from(ts)));
        if n % SAMPLE_EVERY == 0 {
            for (i, &(id, _, _)) in players.iter().enumerate() {
                let session = sim.session(id).map_or(0, |s| s.backlog_bytes());
                memory[i].push(session + sim.link_backlog(id));
                backlog[i].push(session);
            }
        }
        let is_key = n % GOP_FRAMES == 0;
        let payload = if is_key {
            avc_keyframe(&tagged(b'K', n, KEY_BYTES))
        } else {
            avc_inter(&tagged(b'I', n, INTER_BYTES))
        };
        let role = Role::Video { n, key: is_key };
        by_key.insert(key(&payload), role);
        sent.push(role);
        if n < RECORD_UNTIL_FRAME {
            recorded.push(payload.clone());
        }
        sim.client_mut(publisher).send_video(pstream, ts, payload);

        sim.advance_to(start + Duration::from_millis(u64::from(ts + FRAME_MS / 2)));
        let audio = aac_raw(&tagged(b'A', n, AUDIO_BYTES));
        by_key.insert(key(&audio), Role::Audio);
        sent.push(Role::Audio);
        sim.client_mut(publisher)
            .send_audio(pstream, ts + FRAME_MS / 2, audio);
        if n + 1 == RECORD_UNTIL_FRAME {
            // Let the just-enough links catch up with what was recorded.
            // The slow ones abandon most of it anyway.
            sim.advance(Duration::from_millis(10));
        }
    }
    // Let the just-enough links drain the last GOP.
    sim.advance(Duration::from_secs(2));

    let players = players
        .iter()
        .enumerate()
        .map(|(i, &(id, stream, speed))| {
            let got = sim
                .client(id)
                .media(stream)
                .iter()
                .map(|m: &Media| {
                    *by_key
                        .get(&key(&m.payload))
                        .unwrap_or_else(|| panic!("a frame nobody sent: {m:?}"))
                })
                .collect();
            Player {
                speed,
                got,
                memory: std::mem::take(&mut memory[i]),
                backlog: std::mem::take(&mut backlog[i]),
                dropped_frames: sim.session(id).map_or(0, |s| s.dropped_frames()),
                errors: sim.client(id).errors().to_vec(),
                shared: recorded
                    .iter()
                    .map(|p| sim.transmitted_payload(id, p))
                    .collect(),
            }
        })
        .collect();
    Outcome {
        sent,
        fixed_bytes,
        players,
    }
}

fn outcome() -> &'static Outcome {
    static OUTCOME: OnceLock<Outcome> = OnceLock::new();
    OUTCOME.get_or_init(run_scenario)
}

fn of_speed(speed: Speed) -> impl Iterator<Item = (usize, &'static Player)> {
    outcome()
        .players
        .iter()
        .enumerate()
        .filter(move |(_, p)| p.speed == speed)
}

/// Video a decoder can use: configuration before the first coded frame,
/// which is a keyframe, and an inter frame only right after its
/// predecessor.
fn assert_decodable(i: usize, got: &[Role]) {
    let mut config_seen = false;
    let mut last: Option<u32> = None;
    for role in got {
        match *role {
            Role::Config => config_seen = true,
            Role::Video { n, key } => {
                assert!(config_seen, "player {i}: video {n} before configuration");
                if !key {
                    assert_eq!(
                        last,
                        Some(n.wrapping_sub(1)),
                        "player {i}: inter frame {n} after a gap"
                    );
                }
                last = Some(n);
            }
            Role::Audio => {}
        }
    }
}

#[test]
fn fast_players_get_every_frame_in_order() {
    let out = outcome();
    for (i, p) in of_speed(Speed::Fast) {
        assert!(p.errors.is_empty(), "player {i}: {:?}", p.errors);
        assert!(p.got == out.sent, "player {i} lost or reordered frames");
        assert_eq!(p.dropped_frames, 0, "player {i}");
    }
}

#[test]
fn just_enough_players_get_every_frame_in_order() {
    let out = outcome();
    for (i, p) in of_speed(Speed::JustEnough) {
        assert!(p.errors.is_empty(), "player {i}: {:?}", p.errors);
        assert_decodable(i, &p.got);
        assert!(
            p.got == out.sent,
            "player {i} lost {} of {} messages on a link {}x the stream",
            out.sent.len() - p.got.len(),
            out.sent.len(),
            JUST_ENOUGH_RATE as f64 / STREAM_BYTES_PER_MS as f64
        );
    }
}

#[test]
fn slow_players_lose_whole_gop_tails_only() {
    let out = outcome();
    let sent_video = out
        .sent
        .iter()
        .filter(|r| matches!(r, Role::Video { .. }))
        .count();
    for (i, p) in of_speed(Speed::Slow) {
        assert!(p.errors.is_empty(), "player {i}: {:?}", p.errors);
        assert_decodable(i, &p.got);
        let video = p
            .got
            .iter()
            .filter(|r| matches!(r, Role::Video { .. }))
            .count();
        assert!(
            video * 2 < sent_video && p.dropped_frames > 0,
            "player {i} got {video} of {sent_video} video frames: not slow"
        );
        // It still gets somewhere: at least a few GOPs start.
        let keys = p
            .got
            .iter()
            .filter(|r| matches!(r, Role::Video { key: true, .. }))
            .count();
        assert!(keys >= 3, "player {i} got only {keys} keyframes");
    }
}

#[test]
fn slow_players_stay_within_the_backlog_budget() {
    let out = outcome();
    for (i, p) in of_speed(Speed::Slow) {
        let peak = p.backlog.iter().copied().max().unwrap_or(0);
        assert!(
            peak <= BUDGET + out.fixed_bytes,
            "player {i}: backlog reached {peak} bytes (budget {BUDGET})"
        );
        assert!(peak > 0, "player {i} never held anything: not slow");
    }
}

#[test]
fn no_player_memory_grows_with_time() {
    let out = outcome();
    // Past the warm-up (a slow player's backlog fills for about a video
    // lifetime), what a player holds levels off: the last stretch holds no
    // more than the one before it, give or take one keyframe in flight.
    let warm_up = (RealTimeConfig::default().video_lifetime.as_millis() as u32 + 1000)
        / (SAMPLE_EVERY * FRAME_MS);
    for (i, p) in out.players.iter().enumerate() {
        let steady = &p.memory[warm_up as usize..];
        let half = steady.len() / 2;
        let earlier = steady[..half].iter().copied().max().unwrap_or(0);
        let later = steady[half..].iter().copied().max().unwrap_or(0);
        assert!(
            later <= earlier + KEY_BYTES + 64,
            "player {i} ({:?}): held up to {earlier} bytes, then up to {later}",
            p.speed
        );
        // And it never exceeds what its budget, the never-dropped
        // configuration, a full socket buffer and the transmit that
        // overfilled it allow.
        let peak = p.memory.iter().copied().max().unwrap_or(0);
        let bound = BUDGET + out.fixed_bytes + 2 * LinkConfig::slow(1).buffer_bytes;
        assert!(
            peak <= bound,
            "player {i} ({:?}) held {peak} bytes (bound {bound})",
            p.speed
        );
    }
}

#[test]
fn every_player_transmits_the_same_payload_buffers() {
    let players = &outcome().players;
    let frames = players[0].shared.len();
    assert_eq!(frames, RECORD_UNTIL_FRAME as usize);
    for f in 0..frames {
        let shared = players
            .iter()
            .find_map(|p| p.shared[f])
            .unwrap_or_else(|| panic!("frame {f} went out copied, or to nobody"));
        let mut holders = 0;
        for (i, p) in players.iter().enumerate() {
            match p.shared[f] {
                Some(ptr) => {
                    assert_eq!(ptr, shared, "player {i} got its own copy of frame {f}");
                    holders += 1;
                }
                // Only a slow player may have abandoned it.
                None => assert_eq!(p.speed, Speed::Slow, "player {i} never got frame {f}"),
            }
        }
        assert!(holders >= FAST + JUST_ENOUGH);
    }
}
