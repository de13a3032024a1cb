//! When a relay connection that failed is tried again: exponential
//! backoff with jitter, bounded, and forgotten after a stable period.
//!
//! Pure arithmetic on durations and a caller's random draw, so the
//! schedule is tested without a clock. Jitter keeps many relays that lost
//! the same destination at once (a platform's outage) from returning in
//! lockstep: each delay is drawn uniformly from the upper half of the
//! exponential step ("equal jitter"), so it never falls below half the
//! step and the average still doubles.

use std::time::Duration;

/// The schedule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first retry's step.
    pub initial: Duration,
    /// No step grows past this.
    pub max: Duration,
    /// A connection live for this long resets the schedule: its next
    /// failure is retried after `initial` again.
    pub stable: Duration,
}

impl Default for BackoffConfig {
    /// 1 s doubling to 30 s, reset after 30 s live: a destination that
    /// restarts is back within seconds, and a dead one costs one dial per
    /// half minute.
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            stable: Duration::from_secs(30),
        }
    }
}

/// One relay target's schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    /// Failures since the last reset.
    failures: u32,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            failures: 0,
        }
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The step before jitter for the next retry.
    fn step(&self) -> Duration {
        let exp = self.failures.min(30);
        self.config
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.config.max)
    }

    /// A connection failed after being up for `up` (zero if it never
    /// got live): the delay before the next attempt, drawn with `random`
    /// (any `u64`, uniformly distributed).
    pub fn failed(&mut self, up: Duration, random: u64) -> Duration {
        if up >= self.config.stable {
            self.failures = 0;
        }
        let step = self.step();
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        let span = step.saturating_sub(half).as_millis() as u64;
        let extra = if span == 0 { 0 } else { random % (span + 1) };
        half + Duration::from_millis(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            stable: Duration::from_secs(30),
        }
    }

    #[test]
    fn delays_double_up_to_the_bound() {
        let mut b = Backoff::new(config());
        // With the largest draw the delay is the whole step.
        let delays: Vec<u64> = (0..6)
            .map(|_| b.failed(Duration::ZERO, u64::MAX - 1).as_millis() as u64)
            .collect();
        let steps: Vec<u64> = vec![1000, 2000, 4000, 8000, 8000, 8000];
        for (d, s) in delays.iter().zip(&steps) {
            assert!(
                *d >= s / 2 && *d <= *s,
                "delay {d} outside [{}, {s}]",
                s / 2
            );
        }
    }

    #[test]
    fn jitter_stays_within_the_upper_half_of_the_step() {
        for random in [0, 1, 499, 500, 501, 12345, u64::MAX] {
            let mut b = Backoff::new(config());
            b.failed(Duration::ZERO, 0);
            b.failed(Duration::ZERO, 0);
            // The third step is 4 s.
            let d = b.failed(Duration::ZERO, random);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
        let mut b = Backoff::new(config());
        assert_eq!(b.failed(Duration::ZERO, 0), Duration::from_millis(500));
    }

    #[test]
    fn a_stable_period_resets_the_schedule() {
        let mut b = Backoff::new(config());
        for _ in 0..5 {
            b.failed(Duration::from_secs(1), 0);
        }
        assert_eq!(b.failures(), 5);
        let d = b.failed(Duration::from_secs(30), 0);
        assert_eq!(d, Duration::from_millis(500));
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn a_short_live_period_does_not_reset_it() {
        let mut b = Backoff::new(config());
        b.failed(Duration::ZERO, 0);
        b.failed(Duration::ZERO, 0);
        let d = b.failed(Duration::from_secs(29), 0);
        assert_eq!(d, Duration::from_secs(2));
    }
}
