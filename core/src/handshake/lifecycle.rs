//! What both sides of the handshake share: the whole-handshake deadline, the
//! sticky error, and assembling the peer's messages (a version byte and a
//! first packet, then a second packet) from input split anywhere.
//!
//! The two sides differ only in what they do with each packet, so they keep
//! that and hand everything else to a [`Lifecycle`].

use std::time::{Duration, Instant};

use tracing::debug;

use super::{packet, HandshakeError, PACKET_LEN, RTMP_VERSION};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Collecting the peer's version byte (C0/S0) and first packet (C1/S1).
    First,
    /// Collecting the peer's second packet (C2/S2).
    Second,
    /// Done; further bytes belong to the chunk stream.
    Complete,
}

/// A whole packet from the peer, for the side to act on.
pub(super) enum Packet {
    /// C1 or S1; the version byte before it has been checked already.
    First([u8; PACKET_LEN]),
    /// C2 or S2, the last packet the peer sends.
    Second([u8; PACKET_LEN]),
}

/// Deadline, sticky error, progress and input buffer of one handshake.
///
/// Completion and failure exclude each other: a side that rejects a packet
/// calls [`fail`](Self::fail), and a failed handshake is never complete.
#[derive(Debug)]
pub(super) struct Lifecycle {
    /// "client" or "server", for logs.
    side: &'static str,
    stage: Stage,
    error: Option<HandshakeError>,
    deadline: Option<Instant>,
    /// The message being assembled: version byte and first packet, then the
    /// second packet. Never longer than 1 + 1536 bytes; released once the
    /// handshake completes.
    input: Vec<u8>,
}

impl Lifecycle {
    /// A handshake on the `side` of a connection opened at `now`, to be
    /// finished within `timeout`.
    pub(super) fn new(side: &'static str, now: Instant, timeout: Duration) -> Self {
        Lifecycle {
            side,
            stage: Stage::First,
            error: None,
            // No deadline if it would overflow `Instant`: an effectively
            // infinite timeout.
            deadline: now.checked_add(timeout),
            // Allocated only if a packet arrives in pieces: an accepted
            // connection that has sent nothing holds no buffer.
            input: Vec::new(),
        }
    }

    /// Takes bytes from `data[*consumed..]`, advancing `consumed`, until the
    /// next whole packet is in, and returns it; `None` once the input runs
    /// out or the handshake is complete.
    ///
    /// # Errors
    ///
    /// The stored error if the handshake has failed;
    /// [`HandshakeError::UnsupportedVersion`] as soon as the version byte is
    /// not 3.
    pub(super) fn next_packet(
        &mut self,
        data: &[u8],
        consumed: &mut usize,
    ) -> Result<Option<Packet>, HandshakeError> {
        self.check()?;
        let rest = &data[*consumed..];
        match self.stage {
            Stage::First => {
                // Judge the version byte on its own, before waiting for 1536
                // more bytes.
                if self.input.is_empty() {
                    if let Some(&version) = rest.first() {
                        if version != RTMP_VERSION {
                            return Err(self.fail(HandshakeError::UnsupportedVersion(version)));
                        }
                    }
                }
                // Whole in this read (the usual case): no copy to buffer.
                let first = if self.input.is_empty() && rest.len() > PACKET_LEN {
                    *consumed += 1 + PACKET_LEN;
                    packet(&rest[1..=PACKET_LEN])
                } else {
                    *consumed += fill(&mut self.input, 1 + PACKET_LEN, rest);
                    if self.input.len() < 1 + PACKET_LEN {
                        return Ok(None);
                    }
                    packet(&self.input[1..])
                };
                // Nothing is held while waiting for C2 unless it arrives
                // in pieces.
                self.input = Vec::new();
                self.stage = Stage::Second;
                Ok(Some(Packet::First(first)))
            }
            Stage::Second => {
                let second = if self.input.is_empty() && rest.len() >= PACKET_LEN {
                    *consumed += PACKET_LEN;
                    packet(&rest[..PACKET_LEN])
                } else {
                    *consumed += fill(&mut self.input, PACKET_LEN, rest);
                    if self.input.len() < PACKET_LEN {
                        return Ok(None);
                    }
                    packet(&self.input)
                };
                // The chunk layer takes over; free the buffer.
                self.input = Vec::new();
                self.stage = Stage::Complete;
                Ok(Some(Packet::Second(second)))
            }
            Stage::Complete => Ok(None),
        }
    }

    /// The deadline while the handshake is under way, `None` once it has
    /// completed or failed.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        if self.stage == Stage::Complete || self.error.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// Fails with [`HandshakeError::Timeout`] at or after the deadline if
    /// the handshake is still incomplete; returns any earlier error again.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        self.check()?;
        match self.deadline {
            Some(deadline) if self.stage != Stage::Complete && now >= deadline => {
                Err(self.fail(HandshakeError::Timeout))
            }
            _ => Ok(()),
        }
    }

    /// Whether the second packet is in and was not rejected.
    pub(super) fn is_complete(&self) -> bool {
        self.stage == Stage::Complete && self.error.is_none()
    }

    /// The error the handshake failed with, if it has.
    pub(super) fn error(&self) -> Option<&HandshakeError> {
        self.error.as_ref()
    }

    /// Records `error` as the handshake's final state and returns it.
    pub(super) fn fail(&mut self, error: HandshakeError) -> HandshakeError {
        debug!(%error, "RTMP {} handshake failed", self.side);
        self.error = Some(error.clone());
        error
    }

    /// The stored error again, if the handshake has failed.
    fn check(&self) -> Result<(), HandshakeError> {
        match &self.error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

/// Appends up to `want - buf.len()` bytes from `input` to `buf`, returning
/// how many were taken. Keeps `buf` bounded by the packet being assembled.
fn fill(buf: &mut Vec<u8>, want: usize, input: &[u8]) -> usize {
    let take = want.saturating_sub(buf.len()).min(input.len());
    buf.extend_from_slice(&input[..take]);
    take
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_now;

    #[test]
    fn a_rejected_second_packet_leaves_the_handshake_failed_not_complete() {
        let now = test_now();
        let mut life = Lifecycle::new("test", now, Duration::from_secs(10));
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&[0; 2 * PACKET_LEN]);
        let mut consumed = 0;
        let first = life.next_packet(&input, &mut consumed);
        assert!(matches!(first, Ok(Some(Packet::First(_)))));
        let second = life.next_packet(&input, &mut consumed);
        assert!(matches!(second, Ok(Some(Packet::Second(_)))));
        assert_eq!(consumed, input.len());
        assert!(life.is_complete());

        // What a side does when the second packet does not check out.
        let _ = life.fail(HandshakeError::ServerEchoMismatch);
        assert!(!life.is_complete());
        assert_eq!(life.poll_timeout(), None);
        assert_eq!(
            life.handle_timeout(now + Duration::from_secs(60)),
            Err(HandshakeError::ServerEchoMismatch)
        );
    }
}
