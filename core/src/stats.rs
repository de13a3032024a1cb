//! Live statistics of connections and streams, kept exact and cheap: what
//! the HTTP API, metrics and logs show is read from here, never estimated.
//!
//! Counters are plain totals since a connection opened or a stream was
//! first published. Bitrates come from a [`RateMeter`]: the bytes of the
//! last [`RATE_WINDOW_SECS`] whole seconds, divided by that span, so a
//! reading is exact for its window and two readings in the same second
//! agree. Time is a parameter, as everywhere in the core.

use std::time::{Duration, Instant};

/// Whole seconds a bitrate is averaged over: long enough to smooth a GOP's
/// keyframe burst, short enough that a stalled publisher shows at once.
pub const RATE_WINDOW_SECS: u64 = 5;

/// Buckets kept: the window plus the second in progress.
const BUCKETS: usize = RATE_WINDOW_SECS as usize + 1;

/// Bytes counted per whole second since an epoch, over a short ring, so a
/// bitrate costs one addition per count and no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateMeter {
    epoch: Instant,
    /// The second (since `epoch`) that `buckets[second % BUCKETS]` holds.
    second: u64,
    buckets: [u64; BUCKETS],
}

impl RateMeter {
    /// A meter that starts counting at `now`.
    pub fn new(now: Instant) -> Self {
        RateMeter {
            epoch: now,
            second: 0,
            buckets: [0; BUCKETS],
        }
    }

    fn second_of(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Moves the ring forward to `second`, clearing the seconds skipped.
    fn roll(&mut self, second: u64) {
        if second <= self.second {
            return;
        }
        let skipped = (second - self.second).min(BUCKETS as u64);
        for s in 1..=skipped {
            self.buckets[((self.second + s) % BUCKETS as u64) as usize] = 0;
        }
        self.second = second;
    }

    /// Counts `bytes` at `now`. A `now` earlier than the latest count (the
    /// caller's clock is monotonic, but callers may pass a stale one)
    /// counts in the current second.
    pub fn add(&mut self, now: Instant, bytes: u64) {
        let second = self.second_of(now);
        self.roll(second);
        let i = (self.second % BUCKETS as u64) as usize;
        self.buckets[i] = self.buckets[i].saturating_add(bytes);
    }

    /// Bits per second over the last [`RATE_WINDOW_SECS`] whole seconds
    /// before `now` (fewer while the meter is younger than that).
    pub fn bits_per_second(&self, now: Instant) -> u64 {
        let current = self.second_of(now);
        let window = current.min(RATE_WINDOW_SECS);
        if window == 0 {
            return 0;
        }
        let mut bytes = 0u64;
        for back in 1..=window {
            let s = current - back;
            // Seconds after the last count are zero; seconds older than the
            // ring holds were overwritten by later ones.
            if s > self.second || self.second - s >= BUCKETS as u64 {
                continue;
            }
            bytes = bytes.saturating_add(self.buckets[(s % BUCKETS as u64) as usize]);
        }
        bytes.saturating_mul(8) / window
    }
}

/// Totals of one direction of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// Bytes (on the wire for a connection, media payload for a stream).
    pub bytes: u64,
    /// Audio, video and data messages.
    pub frames: u64,
}

/// What a connection is doing right now, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Handshake or `connect` not finished yet.
    Connecting,
    /// Connected, neither publishing nor playing.
    Idle,
    /// Publishing at least one stream.
    Publisher,
    /// Playing at least one stream (and publishing none).
    Player,
}

/// One connection's statistics, from [`crate::server::Server::connection_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionStats {
    /// The peer's address, if the runtime knew it.
    pub peer: Option<std::net::SocketAddr>,
    /// How the connection reached the server.
    pub transport: crate::server::Transport,
    /// The App it connected to, once connected.
    pub app: Option<String>,
    /// The TC connection ID it was given.
    pub connection_id: String,
    /// The `flashVer` it sent in `connect`.
    pub flash_ver: Option<String>,
    /// What it does now.
    pub role: Role,
    /// How long it has been open.
    pub uptime: Duration,
    /// Bytes read from it and media frames it published.
    pub input: Traffic,
    /// Bytes written to it and media frames it was sent.
    pub output: Traffic,
    /// Bits per second read, over the last [`RATE_WINDOW_SECS`] seconds.
    pub bitrate_in: u64,
    /// Bits per second written, likewise.
    pub bitrate_out: u64,
    /// Media frames the real-time policy abandoned for it.
    pub dropped_frames: u64,
    /// Payload bytes of those frames.
    pub dropped_bytes: u64,
    /// Messages abandoned part way with an RTMP Abort.
    pub aborted_messages: u64,
}

/// One stream's statistics, from [`crate::broker::Broker::stream_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    /// The App it belongs to.
    pub app: String,
    /// Its plain name; `None` while only `sha256:` players wait for it.
    pub name: Option<String>,
    /// The connection publishing it, if any.
    pub publisher: Option<crate::event::SessionId>,
    /// How long the current publisher has been publishing.
    pub published_for: Option<Duration>,
    /// Players subscribed (waiting ones included).
    pub subscribers: usize,
    /// Media frames and payload bytes received from its publishers.
    pub input: Traffic,
    /// Media frames and payload bytes handed to its players (before any
    /// real-time dropping, which each player's connection counts).
    pub output: Traffic,
    /// Bits per second of payload received, over the last
    /// [`RATE_WINDOW_SECS`] seconds.
    pub bitrate_in: u64,
    /// Bits per second of payload handed to players, likewise.
    pub bitrate_out: u64,
    /// How long the stream has existed (published or waited for).
    pub uptime: Duration,
    /// What the stream carries, from its sequence headers and metadata.
    pub media: crate::media::MediaInfo,
}

/// Server-wide counters since the server started, for metrics: they only
/// ever go up. From [`crate::server::Server::totals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Connections accepted, by transport: RTMP accepted, RTMP dialed
    /// out, taps, sources, RTMPS accepted, TC over RTWebSocket accepted.
    pub opened: [u64; 6],
    /// Connections refused at accept because the server was shutting down.
    pub refused_shutting_down: u64,
    /// Connections refused at accept by the connection limit.
    pub refused_connection_limit: u64,
    /// Connections refused at accept by the per-address limit.
    pub refused_per_address_limit: u64,
    /// Sessions that closed because their handshake failed or timed out.
    pub handshake_failures: u64,
    /// `connect`s refused (bad or missing token, no App, the embedder).
    pub connects_rejected: u64,
    /// Publishes accepted.
    pub publishes: u64,
    /// Plays accepted.
    pub plays: u64,
    /// Publishes refused because the name was live at an equal or higher
    /// priority.
    pub publishes_rejected_taken: u64,
    /// Publishes refused for their name.
    pub publishes_rejected_name: u64,
    /// Publishes refused by the stream limit.
    pub publishes_rejected_limit: u64,
    /// Publishes refused by the embedder or its deadline.
    pub publishes_rejected_denied: u64,
    /// Plays refused for their name or by a stream limit.
    pub plays_rejected_limit: u64,
    /// Plays refused by the embedder or its deadline.
    pub plays_rejected_denied: u64,
    /// Bytes read from connections that closed (live ones are in their
    /// [`ConnectionStats`]).
    pub closed_bytes_in: u64,
    /// Bytes written to connections that closed.
    pub closed_bytes_out: u64,
    /// Media frames the real-time policy abandoned, on connections that
    /// closed.
    pub closed_dropped_frames: u64,
    /// Payload bytes of those frames.
    pub closed_dropped_bytes: u64,
    /// Messages abandoned part way with an RTMP Abort, on connections that
    /// closed.
    pub closed_aborts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_now;

    #[test]
    fn a_rate_is_the_bytes_of_the_last_whole_seconds() {
        let t0 = test_now();
        let mut m = RateMeter::new(t0);
        for s in 0..10u64 {
            m.add(t0 + Duration::from_millis(s * 1000 + 500), 1000);
        }
        // At 10.2 s: seconds 5..=9 are whole, 1000 bytes each.
        assert_eq!(m.bits_per_second(t0 + Duration::from_millis(10_200)), 8000);
    }

    #[test]
    fn a_young_meter_averages_over_its_age() {
        let t0 = test_now();
        let mut m = RateMeter::new(t0);
        m.add(t0, 500);
        m.add(t0 + Duration::from_millis(1500), 1500);
        assert_eq!(m.bits_per_second(t0), 0);
        assert_eq!(m.bits_per_second(t0 + Duration::from_secs(2)), 8000);
    }

    #[test]
    fn silence_reads_as_zero_and_old_counts_leave_the_window() {
        let t0 = test_now();
        let mut m = RateMeter::new(t0);
        m.add(t0, 1_000_000);
        assert_eq!(m.bits_per_second(t0 + Duration::from_secs(1)), 8_000_000);
        assert_eq!(m.bits_per_second(t0 + Duration::from_secs(5)), 1_600_000);
        assert_eq!(m.bits_per_second(t0 + Duration::from_secs(6)), 0);
        m.add(t0 + Duration::from_secs(100), 10);
        assert_eq!(m.bits_per_second(t0 + Duration::from_secs(101)), 16);
    }
}
