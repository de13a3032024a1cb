//! How long connections wait for the core's lock and hold it, measured
//! when the `lock-stats` feature is on (never in a normal build: two clock
//! reads per lock are a cost nobody should pay in production). It answers
//! the scaling question with numbers: with more workers, does the one lock
//! around the core become the bottleneck?
//!
//! Times go into power-of-two histograms of nanoseconds, counted with
//! relaxed atomics, and are written to the log (target `tincan_net`) when
//! the server is dropped.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Buckets of a histogram: bucket `i` counts times in `[2^i, 2^(i+1))` ns,
/// the last one everything from about 4.3 s up.
const BUCKETS: usize = 33;

/// A histogram of durations, shared by every task.
#[derive(Debug)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
    total_ns: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            total_ns: AtomicU64::new(0),
        }
    }

    fn record(&self, ns: u64) {
        let bucket = (64 - ns.leading_zeros() as usize).min(BUCKETS - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Count, total, and the upper bound of the bucket holding quantile
    /// `q` (an over-estimate by at most 2×).
    fn summary(&self) -> (u64, u64, [u64; 3]) {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let n: u64 = counts.iter().sum();
        let mut out = [0; 3];
        for (slot, q) in out.iter_mut().zip([0.5, 0.99, 0.999]) {
            let want = ((n as f64) * q).ceil() as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want.max(1) {
                    *slot = 1u64 << i;
                    break;
                }
            }
        }
        (n, self.total_ns.load(Ordering::Relaxed), out)
    }
}

/// The lock's two histograms.
#[derive(Debug)]
pub(crate) struct LockStats {
    wait: Histogram,
    hold: Histogram,
    since: Instant,
}

impl LockStats {
    pub(crate) fn new() -> Self {
        LockStats {
            wait: Histogram::new(),
            hold: Histogram::new(),
            since: Instant::now(),
        }
    }

    /// Takes the lock with `take`, timing the wait, and returns a guard
    /// that times the hold.
    pub(crate) fn timed<G>(&self, take: impl FnOnce() -> G) -> Timed<'_, G> {
        let asked = Instant::now();
        let guard = take();
        let got = Instant::now();
        self.wait.record(nanos(got - asked));
        Timed {
            guard,
            got,
            stats: self,
        }
    }

    /// The summary line written when the server goes away.
    pub(crate) fn report(&self) -> String {
        let elapsed = self.since.elapsed().as_secs_f64().max(1e-9);
        let line = |name: &str, h: &Histogram| {
            let (n, total, [p50, p99, p999]) = h.summary();
            format!(
                "{name}: {n} times, {:.1} % of wall time, mean {} ns, p50 < {p50} ns, \
                 p99 < {p99} ns, p99.9 < {p999} ns",
                total as f64 / 1e9 / elapsed * 100.0,
                total.checked_div(n).unwrap_or(0),
            )
        };
        format!(
            "core lock over {elapsed:.1} s; {}; {}",
            line("wait", &self.wait),
            line("hold", &self.hold)
        )
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A lock guard that records how long it was held when dropped.
pub(crate) struct Timed<'a, G> {
    guard: G,
    got: Instant,
    stats: &'a LockStats,
}

impl<G> Drop for Timed<'_, G> {
    fn drop(&mut self) {
        self.stats.hold.record(nanos(self.got.elapsed()));
    }
}

impl<G: Deref> Deref for Timed<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Timed<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_lands_in_its_power_of_two_bucket() {
        let h = Histogram::new();
        for ns in [1_000, 1_500, 3_000] {
            h.record(ns);
        }
        let (n, total, [p50, p99, _]) = h.summary();
        assert_eq!((n, total), (3, 5_500));
        assert_eq!(p50, 2_048);
        assert_eq!(p99, 4_096);
    }
}
