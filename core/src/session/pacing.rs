//! How much one transmit may carry, from how fast the peer drains them.
//!
//! The real-time policy judges each frame when it leaves the backlog; what
//! is already in a transmit is past judgement. On a link slower than the
//! stream, a large batch would therefore arrive seconds late however strict
//! the lifetimes are. So batches are sized to a short time of the peer's
//! measured drain rate: the runtime polls a transmit only once the previous
//! one is written, so when a transmit left media queued behind it, the time
//! until the next poll is how long the peer took to take it.

use std::time::{Duration, Instant};

/// Batch for about this long of the peer's drain rate.
const TARGET: Duration = Duration::from_millis(250);
/// Never batch less than this (whole messages still always go out).
pub(super) const MIN_BATCH: usize = 16 * 1024;
/// Never batch more than this: bounds one write on the fastest link.
pub(super) const MAX_BATCH: usize = 256 * 1024;
/// Before anything was measured: small, since the first measurement comes
/// one poll later and costs a fast link only one short write.
const INITIAL_BATCH: usize = MIN_BATCH;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Pacing {
    /// A transmit that left media behind it: when it was polled and its
    /// size.
    pending: Option<(Instant, usize)>,
    /// Smoothed drain rate, bytes per second.
    rate: Option<f64>,
}

impl Pacing {
    /// The byte budget of the transmit polled at `now`.
    pub(super) fn budget(&mut self, now: Instant) -> usize {
        if let Some((at, len)) = self.pending.take() {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            // A poll within the same millisecond says only "fast".
            let sample = if secs < 0.001 {
                f64::INFINITY
            } else {
                len as f64 / secs
            };
            self.rate = Some(match self.rate {
                Some(r) if sample.is_finite() => (r + sample) / 2.0,
                _ => sample,
            });
        }
        match self.rate {
            None => INITIAL_BATCH,
            Some(r) => {
                let bytes = r * TARGET.as_secs_f64();
                if bytes.is_finite() {
                    (bytes as usize).clamp(MIN_BATCH, MAX_BATCH)
                } else {
                    MAX_BATCH
                }
            }
        }
    }

    /// A transmit of `len` bytes was handed out at `now`; `more` says
    /// whether media was left waiting behind it (only then does the time to
    /// the next poll measure the link).
    pub(super) fn sent(&mut self, now: Instant, len: usize, more: bool) {
        self.pending = more.then_some((now, len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_start_at_the_initial_size() {
        let mut p = Pacing::default();
        assert_eq!(p.budget(Instant::now()), INITIAL_BATCH);
    }

    #[test]
    fn a_slow_peer_gets_small_batches() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        // 16 KiB took 0.8 s to drain: 20 kB/s.
        p.sent(t0, 16 * 1024, true);
        assert_eq!(p.budget(t0 + Duration::from_millis(800)), MIN_BATCH);
    }

    #[test]
    fn a_fast_peer_gets_the_largest_batches() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        p.sent(t0, 16 * 1024, true);
        assert_eq!(p.budget(t0), MAX_BATCH);
    }

    #[test]
    fn idle_time_without_a_backlog_is_not_mistaken_for_a_slow_link() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        p.sent(t0, 16 * 1024, false);
        assert_eq!(p.budget(t0 + Duration::from_secs(10)), INITIAL_BATCH);
    }

    #[test]
    fn a_medium_peer_gets_a_quarter_second_of_its_rate() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        // 100 kB in 1 s: 100 kB/s -> 25 kB batches.
        p.sent(t0, 100_000, true);
        assert_eq!(p.budget(t0 + Duration::from_secs(1)), 25_000);
    }
}
