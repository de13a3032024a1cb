//! The server side: read C0+C1, answer S0+S1+S2 at once, read C2.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, trace};

use super::digest::{
    self, DIGEST_LEN, PLAYER_KEY, PLAYER_KEY_PARTIAL, SERVER_KEY, SERVER_KEY_PARTIAL,
};
use super::lifecycle::{Lifecycle, Packet};
use super::{
    packet, DigestScheme, HandshakeConfig, HandshakeError, HandshakeKind, PACKET_LEN, RTMP_VERSION,
};
use crate::entropy::Entropy;

/// Length of S0+S1+S2, which we send in one piece.
const ANSWER_LEN: usize = 1 + 2 * PACKET_LEN;

/// The server side of the RTMP handshake.
///
/// Answers C0+C1 with S0+S1+S2 in a single transmit as soon as C1 is in,
/// without waiting for C2: GStreamer reads all three before it sends C2, and
/// every other client is content with either order. Signs the answer when
/// C1 carries a valid Flash Player digest (FFmpeg checks it when playing;
/// Flash Player needs it for H.264/AAC) and echoes otherwise.
///
/// ```text
/// handle_input(C0 C1) ─► poll_transmit() = S0 S1 S2
/// handle_input(C2 …)  ─► returns how much was C2; is_complete()
/// ```
///
/// A mismatching C2 does not fail the handshake (clients differ in what
/// they echo); [`c2_validated`](Self::c2_validated) records it.
#[derive(Debug)]
pub struct ServerHandshake {
    /// Deadline, sticky error, progress, and C0+C1 then C2 as they arrive.
    lifecycle: Lifecycle,
    server_version: [u8; 4],
    /// S0+S1+S2. Pre-filled with random bytes at construction (the only time
    /// we see the entropy source), finished when C1 arrives, then kept for
    /// checking C2 (a cheap reference-counted clone of what we sent).
    answer: Bytes,
    /// Our S1 digest when we signed S1: a signed C2 is keyed by it.
    s1_digest: Option<[u8; DIGEST_LEN]>,
    transmit: Option<Bytes>,
    kind: Option<HandshakeKind>,
    client_version: Option<[u8; 4]>,
    client_epoch: Option<u32>,
    c2_validated: Option<bool>,
}

impl ServerHandshake {
    /// Starts a handshake for a connection accepted at `now`.
    ///
    /// Draws all the random bytes S1 and S2 will need from `entropy` here,
    /// so the rest of the handshake needs no source of randomness.
    pub fn new(now: Instant, config: HandshakeConfig, entropy: &mut dyn Entropy) -> Self {
        let mut answer = vec![0u8; ANSWER_LEN];
        entropy.fill(&mut answer);
        ServerHandshake {
            lifecycle: Lifecycle::new("server", now, config.timeout),
            server_version: config.server_version,
            answer: Bytes::from(answer),
            s1_digest: None,
            transmit: None,
            kind: None,
            client_version: None,
            client_epoch: None,
            c2_validated: None,
        }
    }

    /// Feeds bytes read from the client and returns how many belong to the
    /// handshake.
    ///
    /// Anything after C2 is not consumed: it is the start of the chunk
    /// stream, and the caller hands `data[consumed..]` to the chunk decoder.
    /// Once complete, every call consumes nothing. Input may arrive split
    /// anywhere, down to one byte at a time.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::UnsupportedVersion`] as soon as C0 is not 3. Errors
    /// are sticky: later calls return the same error.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        while let Some(packet) = self.lifecycle.next_packet(data, &mut consumed)? {
            match packet {
                Packet::First(c1) => self.answer_c1(&c1),
                Packet::Second(c2) => {
                    self.check_c2(&c2);
                    // The chunk layer takes over; free the buffers.
                    self.answer = Bytes::new();
                    self.s1_digest = None;
                }
            }
        }
        Ok(consumed)
    }

    /// The next bytes to write to the client: S0+S1+S2 (3073 bytes) once C1
    /// is in, then nothing.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called:
    /// the whole-handshake deadline while the handshake is under way, `None`
    /// once it has completed or failed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle.poll_timeout()
    }

    /// Tells the handshake the time is `now`. Calling it early is harmless.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Timeout`] at or after the deadline if the handshake
    /// is still incomplete; any earlier error again. Errors are sticky.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        self.lifecycle.handle_timeout(now)
    }

    /// Whether C2 has been read; the chunk stream may start.
    pub fn is_complete(&self) -> bool {
        self.lifecycle.is_complete()
    }

    /// The error the handshake failed with, if it has.
    pub fn error(&self) -> Option<&HandshakeError> {
        self.lifecycle.error()
    }

    /// Which handshake the client used, once C1 is in: `Digest` when its C1
    /// digest validated (and so we signed our answer), otherwise `Simple`.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// The version bytes from C1 (bytes 4..8), once C1 is in: zero for
    /// librtmp/OBS and GStreamer, 9.0.124.2 for FFmpeg, the Flash Player
    /// version for Flash. Useful in logs to tell clients apart.
    pub fn client_version(&self) -> Option<[u8; 4]> {
        self.client_version
    }

    /// The client's epoch from C1 (bytes 0..4), once C1 is in.
    pub fn client_epoch(&self) -> Option<u32> {
        self.client_epoch
    }

    /// Whether C2 matched what we expect (an echo of S1, or a signature
    /// keyed by our S1 digest), once C2 is in. A mismatch is recorded, not
    /// fatal.
    pub fn c2_validated(&self) -> Option<bool> {
        self.c2_validated
    }

    /// Finishes S0+S1+S2 for `c1` and queues them.
    fn answer_c1(&mut self, c1: &[u8; PACKET_LEN]) {
        let version = [c1[4], c1[5], c1[6], c1[7]];
        let epoch = u32::from_be_bytes([c1[0], c1[1], c1[2], c1[3]]);
        self.client_version = Some(version);
        self.client_epoch = Some(epoch);

        // Zero version bytes mean a simple C1; anything else may carry a
        // digest at either position.
        let client_digest = if version == [0; 4] {
            None
        } else {
            [DigestScheme::Scheme0, DigestScheme::Scheme1]
                .into_iter()
                .find_map(|scheme| {
                    digest::validate(c1, scheme, &PLAYER_KEY[..PLAYER_KEY_PARTIAL])
                        .map(|pos| (scheme, pos))
                })
        };

        let mut s1 = packet(&self.answer[1..=PACKET_LEN]);
        let mut s2 = packet(&self.answer[1 + PACKET_LEN..]);
        // Our epoch is zero: the core has no wall clock to offer, and the
        // spec allows it. The chunk stream's timestamps start from here.
        s1[..4].fill(0);
        match client_digest {
            Some((scheme, pos)) => {
                s1[4..8].copy_from_slice(&self.server_version);
                let s1_pos = digest::imprint(&mut s1, scheme, &SERVER_KEY[..SERVER_KEY_PARTIAL]);
                let mut ours = [0u8; DIGEST_LEN];
                ours.copy_from_slice(&s1[s1_pos..s1_pos + DIGEST_LEN]);
                self.s1_digest = Some(ours);
                // S2: random, then a signature keyed by the client's digest.
                digest::sign(&mut s2, &SERVER_KEY, &c1[pos..pos + DIGEST_LEN]);
                self.kind = Some(HandshakeKind::Digest { scheme });
                debug!(
                    ?scheme,
                    ?version,
                    epoch,
                    "RTMP handshake: digest C1, signing answer"
                );
            }
            None => {
                s1[4..8].fill(0);
                // S2 echoes C1 whole: GStreamer fails unless bytes 8.. match,
                // librtmp warns unless all 1536 do.
                s2 = *c1;
                self.kind = Some(HandshakeKind::Simple);
                if version == [0; 4] {
                    debug!(epoch, "RTMP handshake: simple C1, echoing");
                } else {
                    debug!(
                        ?version,
                        epoch,
                        "RTMP handshake: C1 has version but no valid digest, answering simple"
                    );
                }
            }
        }

        let mut answer = Vec::with_capacity(ANSWER_LEN);
        answer.push(RTMP_VERSION);
        answer.extend_from_slice(&s1);
        answer.extend_from_slice(&s2);
        self.answer = Bytes::from(answer);
        self.transmit = Some(self.answer.clone());
    }

    /// Records whether `c2` is what a well-behaved client sends back.
    fn check_c2(&mut self, c2: &[u8; PACKET_LEN]) {
        let s1 = &self.answer[1..=PACKET_LEN];
        // librtmp and FFmpeg (when publishing) echo S1 whole; GStreamer
        // overwrites bytes 4..8 with its own time. Compare from byte 8.
        let echoed = c2[8..] == s1[8..];
        // FFmpeg (when playing), librtmp in FP9 mode and Flash Player send
        // random bytes signed with a key derived from our S1 digest.
        let signed = self
            .s1_digest
            .is_some_and(|d| digest::verify_signature(c2, &PLAYER_KEY, &d));
        let valid = echoed || signed;
        self.c2_validated = Some(valid);
        trace!(
            echoed,
            signed,
            valid,
            "RTMP handshake: C2 read, handshake complete"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::super::test_util::*;
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::testing::test_now;

    fn server(now: Instant) -> ServerHandshake {
        ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(1))
    }

    /// Feeds C0+C1 and returns S0+S1+S2.
    fn answer(s: &mut ServerHandshake, c0c1: &[u8]) -> Bytes {
        assert_eq!(s.handle_input(c0c1), Ok(c0c1.len()));
        let out = s.poll_transmit().expect("S0+S1+S2 queued after C1");
        assert_eq!(s.poll_transmit(), None);
        out
    }

    #[test]
    fn librtmp_simple_c1_gets_zero_version_s1_and_s2_echoing_c1() {
        let mut s = server(test_now());
        let c0c1 = librtmp_c0c1(123_456, 7);
        let out = answer(&mut s, &c0c1);
        assert_eq!(out.len(), 1 + 2 * SIG);
        assert_eq!(out[0], 3);
        let (s1, s2) = (&out[1..=SIG], &out[1 + SIG..]);
        assert_eq!(s1[4..8], [0; 4], "simple S1 carries no version");
        // librtmp compares S2 with its C1 in full; GStreamer from byte 8.
        assert_eq!(s2, &c0c1[1..]);
        assert_eq!(s.kind(), Some(HandshakeKind::Simple));
        assert_eq!(s.client_version(), Some([0; 4]));
        assert_eq!(s.client_epoch(), Some(123_456));
    }

    #[test]
    fn librtmp_c2_echoing_s1_completes_and_validates() {
        let mut s = server(test_now());
        let out = answer(&mut s, &librtmp_c0c1(1, 2));
        assert_eq!(s.handle_input(&out[1..=SIG]), Ok(SIG));
        assert!(s.is_complete());
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn gstreamer_c2_with_its_own_time2_still_validates() {
        let mut s = server(test_now());
        let out = answer(&mut s, &librtmp_c0c1(1, 2));
        let mut c2 = out[1..=SIG].to_vec();
        c2[4..8].copy_from_slice(&999u32.to_be_bytes());
        assert_eq!(s.handle_input(&c2), Ok(SIG));
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn mismatching_c2_completes_but_is_recorded() {
        let mut s = server(test_now());
        let _ = answer(&mut s, &librtmp_c0c1(1, 2));
        assert_eq!(s.handle_input(&[0xAA; SIG]), Ok(SIG));
        assert!(s.is_complete());
        assert_eq!(s.c2_validated(), Some(false));
    }

    #[test]
    fn ffmpeg_digest_c1_gets_s1_and_s2_that_ffmpeg_accepts() {
        let mut s = server(test_now());
        let (c0c1, client_pos) = ffmpeg_c0c1(42, false);
        let out = answer(&mut s, &c0c1);
        let (s1, s2) = (&out[1..=SIG], &out[1 + SIG..]);
        assert_eq!(out[0], 3);
        // FFmpeg only validates when the first version byte is >= 3.
        assert!(s1[4] >= 3);
        assert_eq!(s1[4..8], [3, 5, 1, 1]);
        let server_pos = ffmpeg_find_s1_digest(s1).expect("FFmpeg finds our S1 digest");
        assert_eq!(
            server_pos,
            digest_pos(s1, 8, 728, 12),
            "signed with scheme 0, like C1"
        );
        let client_digest = &c0c1[1 + client_pos..1 + client_pos + 32];
        assert!(
            ffmpeg_s2_ok(s2, client_digest),
            "FFmpeg accepts our S2 signature"
        );
        assert_eq!(
            s.kind(),
            Some(HandshakeKind::Digest {
                scheme: DigestScheme::Scheme0
            })
        );
        assert_eq!(s.client_version(), Some([9, 0, 124, 2]));
    }

    #[test]
    fn ffmpeg_signed_c2_validates() {
        let mut s = server(test_now());
        let (c0c1, _) = ffmpeg_c0c1(42, false);
        let out = answer(&mut s, &c0c1);
        let s1 = &out[1..=SIG];
        let pos = ffmpeg_find_s1_digest(s1).unwrap();
        let c2 = ffmpeg_signed_c2(&s1[pos..pos + 32], 9);
        assert_eq!(s.handle_input(&c2), Ok(SIG));
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn ffmpeg_publisher_c2_echoing_signed_s1_validates() {
        let mut s = server(test_now());
        let out = answer(&mut s, &ffmpeg_c0c1(42, false).0);
        assert_eq!(s.handle_input(&out[1..=SIG]), Ok(SIG));
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn scheme1_digest_c1_gets_scheme1_signed_s1() {
        let mut s = server(test_now());
        let (c0c1, client_pos) = ffmpeg_c0c1(5, true);
        let out = answer(&mut s, &c0c1);
        let (s1, s2) = (&out[1..=SIG], &out[1 + SIG..]);
        let pos = digest_pos(s1, 772, 728, 776);
        assert_eq!(gap_digest(s1, pos, &fms_key()[..36])[..], s1[pos..pos + 32]);
        assert_eq!(ffmpeg_find_s1_digest(s1), Some(pos));
        assert!(ffmpeg_s2_ok(s2, &c0c1[1 + client_pos..1 + client_pos + 32]));
        assert_eq!(
            s.kind(),
            Some(HandshakeKind::Digest {
                scheme: DigestScheme::Scheme1
            })
        );
    }

    #[test]
    fn version_bytes_without_valid_digest_fall_back_to_simple() {
        let mut s = server(test_now());
        let (mut c0c1, pos) = ffmpeg_c0c1(3, false);
        c0c1[1 + pos] ^= 1; // break the digest
        let out = answer(&mut s, &c0c1);
        assert_eq!(out[1 + 4..1 + 8], [0; 4]);
        assert_eq!(&out[1 + SIG..], &c0c1[1..]);
        assert_eq!(s.kind(), Some(HandshakeKind::Simple));
        assert_eq!(s.client_version(), Some([9, 0, 124, 2]));
    }

    #[test]
    fn answer_is_queued_after_c0_c1_before_any_c2() {
        let mut s = server(test_now());
        let c0c1 = librtmp_c0c1(0, 1);
        assert_eq!(s.handle_input(&c0c1[..SIG]), Ok(SIG));
        assert_eq!(s.poll_transmit(), None, "C1 not complete yet");
        assert_eq!(s.handle_input(&c0c1[SIG..]), Ok(1));
        assert_eq!(s.poll_transmit().map(|b| b.len()), Some(3073));
        assert!(!s.is_complete());
    }

    #[test]
    fn byte_at_a_time_trickle_completes() {
        let mut s = server(test_now());
        let (c0c1, _) = ffmpeg_c0c1(11, false);
        for b in &c0c1 {
            assert_eq!(s.handle_input(std::slice::from_ref(b)), Ok(1));
        }
        let out = s.poll_transmit().unwrap();
        for b in &out[1..=SIG] {
            assert!(!s.is_complete());
            assert_eq!(s.handle_input(std::slice::from_ref(b)), Ok(1));
        }
        assert!(s.is_complete());
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn bytes_after_c2_are_left_for_the_chunk_layer() {
        let mut s = server(test_now());
        let out = answer(&mut s, &librtmp_c0c1(0, 1));
        let mut read = out[1..=SIG].to_vec();
        read.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]); // a chunk header
        assert_eq!(s.handle_input(&read), Ok(SIG));
        assert!(s.is_complete());
        assert_eq!(
            s.handle_input(&[1, 2, 3]),
            Ok(0),
            "complete: nothing more is ours"
        );
    }

    #[test]
    fn whole_handshake_in_one_read_consumes_exactly_c0_c1_c2() {
        let mut s = server(test_now());
        // A client that does not wait for S1 (C2 cannot echo it, but a
        // mismatching C2 is not fatal).
        let mut read = librtmp_c0c1(0, 1);
        read.extend_from_slice(&[0u8; SIG]);
        read.extend_from_slice(&[9; 10]);
        assert_eq!(s.handle_input(&read), Ok(1 + 2 * SIG));
        assert!(s.is_complete());
        assert!(s.poll_transmit().is_some());
    }

    #[test]
    fn rtmpe_version_6_is_rejected() {
        let mut s = server(test_now());
        let err = s.handle_input(&[6]).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion(6));
        assert!(err.to_string().contains("RTMPE"));
        assert_eq!(s.poll_transmit(), None);
    }

    #[test]
    fn version_0_is_rejected() {
        let mut s = server(test_now());
        assert_eq!(
            s.handle_input(&[0; 100]),
            Err(HandshakeError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn errors_are_sticky() {
        let now = test_now();
        let mut s = server(now);
        let _ = s.handle_input(&[8]);
        assert_eq!(
            s.handle_input(&[3]),
            Err(HandshakeError::UnsupportedVersion(8))
        );
        assert_eq!(
            s.handle_timeout(now + Duration::from_secs(60)),
            Err(HandshakeError::UnsupportedVersion(8))
        );
        assert_eq!(s.error(), Some(&HandshakeError::UnsupportedVersion(8)));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn poll_timeout_is_start_plus_timeout() {
        let now = test_now();
        let s = server(now);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn early_handle_timeout_is_harmless() {
        let now = test_now();
        let mut s = server(now);
        assert_eq!(s.handle_timeout(now + Duration::from_millis(9_999)), Ok(()));
        assert_eq!(s.handle_input(&librtmp_c0c1(0, 1)), Ok(1 + SIG));
    }

    #[test]
    fn deadline_fails_with_timeout_and_stays_failed() {
        let now = test_now();
        let mut s = server(now);
        let _ = s.handle_input(&librtmp_c0c1(0, 1)[..100]);
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(s.handle_timeout(deadline), Err(HandshakeError::Timeout));
        assert_eq!(s.handle_input(&[0; 10]), Err(HandshakeError::Timeout));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn no_timeout_after_completion() {
        let now = test_now();
        let mut s = server(now);
        let out = answer(&mut s, &librtmp_c0c1(0, 1));
        let _ = s.handle_input(&out[1..=SIG]);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.handle_timeout(now + Duration::from_secs(3600)), Ok(()));
    }

    #[test]
    fn huge_timeout_means_no_deadline() {
        let config = HandshakeConfig {
            timeout: Duration::MAX,
            ..HandshakeConfig::default()
        };
        let s = ServerHandshake::new(test_now(), config, &mut SeededEntropy::new(1));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn same_seed_gives_same_answer() {
        let now = test_now();
        let (c0c1, _) = ffmpeg_c0c1(1, false);
        let run = |seed| {
            let mut s = ServerHandshake::new(
                now,
                HandshakeConfig::default(),
                &mut SeededEntropy::new(seed),
            );
            answer(&mut s, &c0c1)
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    proptest! {
        #[test]
        fn arbitrary_input_in_arbitrary_splits_never_panics(
            c0 in any::<u8>(),
            c1 in proptest::collection::vec(any::<u8>(), SIG),
            c2 in proptest::collection::vec(any::<u8>(), SIG),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..4000, 0..8),
        ) {
            let mut input = vec![c0];
            input.extend_from_slice(&c1);
            input.extend_from_slice(&c2);
            input.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.push(input.len());
            cuts.sort_unstable();

            let mut s = ServerHandshake::new(test_now(), HandshakeConfig::default(), &mut SeededEntropy::new(0));
            let (mut at, mut consumed, mut failed) = (0, 0, false);
            for cut in cuts {
                match s.handle_input(&input[at..cut]) {
                    Ok(n) => consumed += n,
                    Err(e) => {
                        prop_assert_eq!(e, HandshakeError::UnsupportedVersion(c0));
                        failed = true;
                    }
                }
                at = cut;
            }
            if c0 == 3 {
                prop_assert!(!failed);
                prop_assert!(s.is_complete());
                prop_assert_eq!(consumed, 1 + 2 * SIG);
                prop_assert_eq!(s.poll_transmit().map(|b| b.len()), Some(1 + 2 * SIG));
            } else {
                prop_assert!(failed);
                prop_assert!(!s.is_complete());
            }
        }
    }
}
