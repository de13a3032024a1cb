//! How much one transmit may carry, from how fast the peer drains them.
//!
//! The real-time policy judges each frame when it leaves the backlog; what
//! is already in a transmit is past judgement. On a link slower than the
//! stream, a large batch would therefore arrive seconds late however strict
//! the lifetimes are. So batches are sized to a short time of the peer's
//! measured drain rate.
//!
//! The rate is measured only while media waits behind each transmit: then
//! the runtime polls the next transmit as soon as the previous one is
//! written, so the bytes handed out over a window of time are what the
//! peer (and the kernel's small unsent queue) took in that time. Without a
//! backlog the time between polls says nothing about the link, and the
//! window is abandoned.

use std::time::{Duration, Instant};

/// Batch for about this long of the peer's drain rate.
const TARGET: Duration = Duration::from_millis(250);
/// Shortest span a rate sample is taken over, so that a burst the kernel
/// absorbs at once is not mistaken for a fast link.
const WINDOW: Duration = Duration::from_millis(500);
/// Never batch less than this (whole messages still always go out).
pub(super) const MIN_BATCH: usize = 16 * 1024;
/// Never batch more than this: bounds one write on the fastest link.
pub(super) const MAX_BATCH: usize = 256 * 1024;
/// Before anything was measured: small, so a slow peer is never handed
/// seconds of media before its rate is known.
const INITIAL_BATCH: usize = MIN_BATCH;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Pacing {
    /// While backlogged: when the window started and the bytes handed out
    /// in it before the latest transmit (which is still being written).
    window: Option<Window>,
    /// Smoothed drain rate, bytes per second.
    rate: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    drained: usize,
    in_flight: usize,
}

impl Pacing {
    /// The byte budget of the next transmit.
    pub(super) fn budget(&self) -> usize {
        match self.rate {
            None => INITIAL_BATCH,
            Some(r) => ((r * TARGET.as_secs_f64()) as usize).clamp(MIN_BATCH, MAX_BATCH),
        }
    }

    /// A transmit of `len` bytes was handed out at `now`; `more` says
    /// whether media was left waiting behind it.
    pub(super) fn sent(&mut self, now: Instant, len: usize, more: bool) {
        // The runtime polls only once the previous transmit is written: it
        // has drained by now.
        if let Some(w) = &mut self.window {
            w.drained += w.in_flight;
            w.in_flight = len;
            let elapsed = now.saturating_duration_since(w.start);
            if elapsed >= WINDOW {
                let sample = w.drained as f64 / elapsed.as_secs_f64();
                self.rate = Some(self.rate.map_or(sample, |r| (r + sample) / 2.0));
                *w = Window {
                    start: now,
                    drained: 0,
                    in_flight: len,
                };
            }
        }
        if !more {
            self.window = None;
        } else if self.window.is_none() {
            self.window = Some(Window {
                start: now,
                drained: 0,
                in_flight: len,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_now;

    /// Hands out `len`-byte transmits every `every` for `count` times,
    /// always backlogged.
    fn drain(p: &mut Pacing, t0: Instant, len: usize, every: Duration, count: u32) -> Instant {
        let mut t = t0;
        for _ in 0..count {
            p.sent(t, len, true);
            t += every;
        }
        t
    }

    #[test]
    fn batches_start_at_the_initial_size() {
        assert_eq!(Pacing::default().budget(), INITIAL_BATCH);
    }

    #[test]
    fn a_slow_peer_gets_small_batches() {
        let mut p = Pacing::default();
        // 16 KiB every 0.8 s: 20 kB/s.
        drain(&mut p, test_now(), 16 * 1024, Duration::from_millis(800), 4);
        assert_eq!(p.budget(), MIN_BATCH);
    }

    #[test]
    fn a_fast_peer_gets_the_largest_batches() {
        let mut p = Pacing::default();
        // 16 KiB every millisecond: 16 MB/s.
        drain(&mut p, test_now(), 16 * 1024, Duration::from_millis(1), 600);
        assert_eq!(p.budget(), MAX_BATCH);
    }

    #[test]
    fn a_medium_peer_gets_a_quarter_second_of_its_rate() {
        let mut p = Pacing::default();
        // 20 kB every 100 ms: 200 kB/s -> 50 kB batches.
        drain(&mut p, test_now(), 20_000, Duration::from_millis(100), 7);
        assert_eq!(p.budget(), 50_000);
    }

    #[test]
    fn a_burst_absorbed_at_once_is_not_a_rate() {
        let mut p = Pacing::default();
        // Three transmits in the same instant: the kernel took them, the
        // link said nothing yet.
        drain(&mut p, test_now(), 16 * 1024, Duration::ZERO, 3);
        assert_eq!(p.budget(), INITIAL_BATCH);
    }

    #[test]
    fn idle_time_without_a_backlog_is_not_mistaken_for_a_slow_link() {
        let mut p = Pacing::default();
        let t0 = test_now();
        let t = drain(&mut p, t0, 20_000, Duration::from_millis(100), 7);
        p.sent(t, 1_000, false);
        // Ten idle seconds, then a backlog again.
        let t = t + Duration::from_secs(10);
        drain(&mut p, t, 20_000, Duration::from_millis(100), 7);
        assert_eq!(p.budget(), 50_000);
    }

    #[test]
    fn the_rate_follows_a_link_that_slows_down() {
        let mut p = Pacing::default();
        let t0 = test_now();
        let t = drain(&mut p, t0, 64 * 1024, Duration::from_millis(1), 1000);
        assert_eq!(p.budget(), MAX_BATCH);
        drain(&mut p, t, 16 * 1024, Duration::from_millis(800), 12);
        assert_eq!(p.budget(), MIN_BATCH);
    }
}
