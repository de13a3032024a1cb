//! RTMP's media timeline, kept apart from wall-clock time.
//!
//! RTMP timestamps are milliseconds carried in 32 bits that wrap after about
//! 49.7 days. A stream that runs that long, or a publisher that starts near
//! the top of the range, must keep working, so comparisons use serial-number
//! arithmetic (RFC 1982) instead of plain integer ordering.

/// A timestamp on an RTMP stream: milliseconds modulo 2^32.
///
/// Deliberately not convertible to or from [`std::time::Instant`]: mixing the
/// publisher's media clock with the server's wall clock is a classic source
/// of drift and stalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MediaTime(u32);

impl MediaTime {
    /// The start of a media timeline, where every new subscription begins.
    pub const ZERO: MediaTime = MediaTime(0);

    /// Wraps a raw 32-bit RTMP timestamp.
    pub const fn from_millis(millis: u32) -> Self {
        MediaTime(millis)
    }

    /// The raw 32-bit value, as it goes on the wire.
    pub const fn as_millis(self) -> u32 {
        self.0
    }

    /// Advances by `delta` milliseconds, wrapping at 2^32 as the wire does.
    #[must_use]
    pub const fn wrapping_add(self, delta: u32) -> Self {
        MediaTime(self.0.wrapping_add(delta))
    }

    /// Moves back by `delta` milliseconds, wrapping at 2^32 as the wire does.
    #[must_use]
    pub const fn wrapping_sub(self, delta: u32) -> Self {
        MediaTime(self.0.wrapping_sub(delta))
    }

    /// Signed distance from `earlier` to `self`, taking the shorter way round
    /// the 2^32 circle, so that 5 is 10 ms after `u32::MAX - 4`.
    pub const fn since(self, earlier: MediaTime) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// Whether `self` comes after `other` on the wrapping timeline.
    pub const fn is_after(self, other: MediaTime) -> bool {
        self.since(other) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_crosses_the_wrap() {
        let before = MediaTime::from_millis(u32::MAX - 4);
        let after = before.wrapping_add(10);
        assert_eq!(after.as_millis(), 5);
        assert_eq!(after.since(before), 10);
        assert_eq!(before.since(after), -10);
        assert!(after.is_after(before));
        assert!(!before.is_after(after));
    }

    #[test]
    fn sub_wraps_below_zero() {
        assert_eq!(MediaTime::ZERO.wrapping_sub(1).as_millis(), u32::MAX);
    }
}
