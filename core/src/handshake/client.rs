//! The client side: send C0+C1, read S0+S1, send C2, read S2.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, trace, warn};

use super::digest::{
    self, DIGEST_LEN, PLAYER_KEY, PLAYER_KEY_PARTIAL, SERVER_KEY, SERVER_KEY_PARTIAL, SIGNATURE_AT,
};
use super::lifecycle::{Lifecycle, Packet};
use super::{
    DigestScheme, HandshakeConfig, HandshakeError, HandshakeKind, ServerCheck, PACKET_LEN,
    RTMP_VERSION,
};
use crate::entropy::Entropy;

/// What S2 should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// An echo of C1 (simple handshake).
    Echo,
    /// Random bytes signed with a key derived from our C1 digest, which
    /// sits at this position in C1.
    Signed { c1_digest_pos: usize },
}

/// The client side of the RTMP handshake, for relaying to other servers and
/// for load tools.
///
/// Queues C0+C1 at construction, sends C2 as soon as S1 is in (the spec's
/// order, which also works with servers that hold S2 back until C2), and
/// completes when S2 is in. [`HandshakeConfig::client_kind`] picks a simple
/// or digest C1; [`HandshakeConfig::server_check`] decides how hard the
/// server's answer is checked.
///
/// ```text
/// new()               ─► poll_transmit() = C0 C1
/// handle_input(S0 S1) ─► poll_transmit() = C2
/// handle_input(S2 …)  ─► returns how much was S2; is_complete()
/// ```
#[derive(Debug)]
pub struct ClientHandshake {
    /// Deadline, sticky error, progress, and S0+S1 then S2 as they arrive.
    lifecycle: Lifecycle,
    check: ServerCheck,
    /// What our C1 was, and where its digest sits if it has one.
    c1: Box<[u8; PACKET_LEN]>,
    c1_digest_pos: Option<usize>,
    /// Random bytes for a signed C2, drawn at construction (the only time we
    /// see the entropy source). Released once C2 is built.
    c2_random: Option<Box<[u8; SIGNATURE_AT]>>,
    /// What S2 should be; decided when S1 is read, which is always first.
    expect: Expect,
    transmit: VecDeque<Bytes>,
    server_kind: Option<HandshakeKind>,
    server_version: Option<[u8; 4]>,
    server_epoch: Option<u32>,
    server_verified: Option<bool>,
}

impl ClientHandshake {
    /// Starts a handshake on a connection opened at `now` and queues C0+C1.
    ///
    /// A digest C1 has epoch 0 and [`HandshakeConfig::client_version`] in
    /// bytes 4..8, signed with the Flash Player key like FFmpeg's; a simple
    /// C1 has epoch 0 and zeros there, like librtmp's. The epoch is zero
    /// because the core has no wall clock to offer; servers do not care.
    pub fn new(now: Instant, config: HandshakeConfig, entropy: &mut dyn Entropy) -> Self {
        let mut c1 = Box::new([0u8; PACKET_LEN]);
        entropy.fill(&mut c1[8..]);
        let c1_digest_pos = match config.client_kind {
            HandshakeKind::Simple => None,
            HandshakeKind::Digest { scheme } => {
                c1[4..8].copy_from_slice(&config.client_version);
                Some(digest::imprint(
                    &mut c1,
                    scheme,
                    &PLAYER_KEY[..PLAYER_KEY_PARTIAL],
                ))
            }
        };
        let c2_random = c1_digest_pos.map(|_| {
            let mut random = Box::new([0u8; SIGNATURE_AT]);
            entropy.fill(&mut random[..]);
            random
        });

        let mut c0c1 = Vec::with_capacity(1 + PACKET_LEN);
        c0c1.push(RTMP_VERSION);
        c0c1.extend_from_slice(&c1[..]);
        ClientHandshake {
            lifecycle: Lifecycle::new("client", now, config.timeout),
            check: config.server_check,
            c1,
            c1_digest_pos,
            c2_random,
            expect: Expect::Echo,
            transmit: VecDeque::from([Bytes::from(c0c1)]),
            server_kind: None,
            server_version: None,
            server_epoch: None,
            server_verified: None,
        }
    }

    /// Feeds bytes read from the server and returns how many belong to the
    /// handshake.
    ///
    /// Anything after S2 is not consumed: it is the start of the chunk
    /// stream. Once complete, every call consumes nothing. Input may arrive
    /// split anywhere.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::UnsupportedVersion`] if S0 is not 3; the
    /// `Server*` variants when the answer fails
    /// [`HandshakeConfig::server_check`]. Errors are sticky.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        while let Some(packet) = self.lifecycle.next_packet(data, &mut consumed)? {
            match packet {
                Packet::First(s1) => self.expect = self.answer_s1(&s1)?,
                Packet::Second(s2) => self.check_s2(&s2, self.expect)?,
            }
        }
        Ok(consumed)
    }

    /// The next bytes to write to the server: C0+C1 (1537 bytes) from the
    /// start, C2 (1536 bytes) once S1 is in.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called:
    /// the whole-handshake deadline while under way, `None` once the
    /// handshake has completed or failed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle.poll_timeout()
    }

    /// Tells the handshake the time is `now`. Calling it early is harmless.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Timeout`] at or after the deadline if still
    /// incomplete; any earlier error again. Errors are sticky.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        self.lifecycle.handle_timeout(now)
    }

    /// Whether S2 has been read; the chunk stream may start.
    pub fn is_complete(&self) -> bool {
        self.lifecycle.is_complete()
    }

    /// The error the handshake failed with, if it has.
    pub fn error(&self) -> Option<&HandshakeError> {
        self.lifecycle.error()
    }

    /// How the server answered, once S1 is in: `Digest` with the scheme its
    /// S1 digest validated under, or `Simple`.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.server_kind
    }

    /// The version bytes from S1 (bytes 4..8), once S1 is in.
    pub fn server_version(&self) -> Option<[u8; 4]> {
        self.server_version
    }

    /// The server's epoch from S1 (bytes 0..4), once S1 is in.
    pub fn server_epoch(&self) -> Option<u32> {
        self.server_epoch
    }

    /// Whether the server's answer checked out (S1 digest and S2 signature
    /// for a digest answer, S2 echoing C1 for a simple one), once S2 is in.
    /// Under lenient checks a `false` here is the only trace of a failure.
    pub fn server_verified(&self) -> Option<bool> {
        self.server_verified
    }

    /// Reads S1, queues C2, and says what S2 should look like.
    fn answer_s1(&mut self, s1: &[u8; PACKET_LEN]) -> Result<Expect, HandshakeError> {
        let version = [s1[4], s1[5], s1[6], s1[7]];
        let epoch = u32::from_be_bytes([s1[0], s1[1], s1[2], s1[3]]);
        self.server_version = Some(version);
        self.server_epoch = Some(epoch);

        let mut verified = true;
        let server_digest = match self.c1_digest_pos {
            // We sent a simple C1: whatever S1 holds, echo it.
            None => None,
            // librtmp's rule: a zero first version byte is a server that
            // does not sign, and gets the simple handshake.
            Some(_) if version[0] == 0 => {
                if self.check == ServerCheck::Strict {
                    return Err(self.lifecycle.fail(HandshakeError::ServerDigestMissing));
                }
                debug!(?version, "RTMP handshake: server answered digest C1 simply");
                None
            }
            Some(_) => {
                let found = DigestScheme::CLIENT_ORDER.into_iter().find_map(|scheme| {
                    digest::validate(s1, scheme, &SERVER_KEY[..SERVER_KEY_PARTIAL])
                        .map(|pos| (scheme, pos))
                });
                if found.is_none() {
                    if self.check != ServerCheck::Lenient {
                        return Err(self.lifecycle.fail(HandshakeError::ServerDigestInvalid));
                    }
                    warn!(
                        ?version,
                        "RTMP handshake: server S1 digest invalid, going on"
                    );
                    verified = false;
                }
                found
            }
        };

        let c2 = match server_digest {
            Some((scheme, pos)) => {
                self.server_kind = Some(HandshakeKind::Digest { scheme });
                let mut c2 = [0u8; PACKET_LEN];
                if let Some(random) = self.c2_random.take() {
                    c2[..SIGNATURE_AT].copy_from_slice(&random[..]);
                }
                digest::sign(&mut c2, &PLAYER_KEY, &s1[pos..pos + DIGEST_LEN]);
                debug!(?scheme, ?version, epoch, "RTMP handshake: server signed S1");
                c2
            }
            None => {
                self.server_kind = Some(HandshakeKind::Simple);
                // Echo S1 whole, as librtmp does; servers that check compare
                // from byte 8 or the whole packet.
                *s1
            }
        };
        self.c2_random = None;
        self.transmit.push_back(Bytes::copy_from_slice(&c2));
        // Record a failed S1 check now; S2 can only keep it false.
        self.server_verified = (!verified).then_some(false);
        Ok(match (server_digest, self.c1_digest_pos) {
            (Some(_), Some(c1_digest_pos)) => Expect::Signed { c1_digest_pos },
            _ => Expect::Echo,
        })
    }

    /// Checks S2 against what we expect, per the configured strictness.
    fn check_s2(&mut self, s2: &[u8; PACKET_LEN], expect: Expect) -> Result<(), HandshakeError> {
        let ok = match expect {
            Expect::Signed { c1_digest_pos: pos } => {
                let c1_digest = &self.c1[pos..pos + DIGEST_LEN];
                let ok = digest::verify_signature(s2, &SERVER_KEY, c1_digest);
                if !ok && self.check != ServerCheck::Lenient {
                    return Err(self.lifecycle.fail(HandshakeError::ServerSignatureInvalid));
                }
                ok
            }
            Expect::Echo => {
                // Bytes 4..8 may carry the server's read time; GStreamer
                // compares from byte 8, and so do we.
                let ok = s2[8..] == self.c1[8..];
                if !ok && self.check == ServerCheck::Strict {
                    return Err(self.lifecycle.fail(HandshakeError::ServerEchoMismatch));
                }
                ok
            }
        };
        if !ok {
            warn!(
                ?expect,
                "RTMP handshake: server S2 did not check out, going on"
            );
        }
        let verified = self.server_verified.unwrap_or(true) && ok;
        self.server_verified = Some(verified);
        trace!(verified, "RTMP handshake: S2 read, handshake complete");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_util::*;
    use super::super::ServerHandshake;
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::testing::test_now;

    fn config(kind: HandshakeKind, check: ServerCheck) -> HandshakeConfig {
        HandshakeConfig {
            client_kind: kind,
            server_check: check,
            ..HandshakeConfig::default()
        }
    }

    /// A client started now, with seed 3 for its random bytes.
    fn client(config: HandshakeConfig) -> ClientHandshake {
        ClientHandshake::new(test_now(), config, &mut SeededEntropy::new(3))
    }

    const DIGEST0: HandshakeKind = HandshakeKind::Digest {
        scheme: DigestScheme::Scheme0,
    };
    const DIGEST1: HandshakeKind = HandshakeKind::Digest {
        scheme: DigestScheme::Scheme1,
    };

    /// Runs a client and a server against each other over in-memory pipes,
    /// delivering whatever each side has queued, and returns both.
    fn pair(client_config: HandshakeConfig) -> (ClientHandshake, ServerHandshake) {
        let now = test_now();
        let mut c = ClientHandshake::new(now, client_config, &mut SeededEntropy::new(1));
        let mut s =
            ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(2));
        for _ in 0..4 {
            while let Some(b) = c.poll_transmit() {
                assert_eq!(s.handle_input(&b), Ok(b.len()));
            }
            while let Some(b) = s.poll_transmit() {
                assert_eq!(c.handle_input(&b), Ok(b.len()));
            }
        }
        (c, s)
    }

    #[test]
    fn simple_client_and_server_complete() {
        let (c, s) = pair(config(HandshakeKind::Simple, ServerCheck::Strict));
        assert!(c.is_complete() && s.is_complete());
        assert_eq!(c.kind(), Some(HandshakeKind::Simple));
        assert_eq!(s.kind(), Some(HandshakeKind::Simple));
        assert_eq!(c.server_verified(), Some(true));
        assert_eq!(s.c2_validated(), Some(true));
    }

    #[test]
    fn digest_client_and_server_complete_with_verified_signatures() {
        for kind in [DIGEST0, DIGEST1] {
            let (c, s) = pair(config(kind, ServerCheck::Strict));
            assert!(c.is_complete() && s.is_complete(), "{kind:?}");
            assert_eq!(
                c.kind(),
                Some(kind),
                "server signed with the client's scheme"
            );
            assert_eq!(s.kind(), Some(kind));
            assert_eq!(c.server_version(), Some([3, 5, 1, 1]));
            assert_eq!(c.server_verified(), Some(true));
            assert_eq!(s.c2_validated(), Some(true), "server accepts our signed C2");
        }
    }

    #[test]
    fn digest_c1_is_laid_out_like_ffmpegs() {
        let mut c = client(HandshakeConfig::default());
        let c0c1 = c.poll_transmit().unwrap();
        assert_eq!(c0c1.len(), 1 + SIG);
        assert_eq!(c0c1[0], 3);
        let c1 = &c0c1[1..];
        assert_eq!(c1[..4], [0; 4]);
        assert_eq!(c1[4..8], [9, 0, 124, 2]);
        let pos = digest_pos(c1, 8, 728, 12);
        assert_eq!(gap_digest(c1, pos, &fp_key()[..30])[..], c1[pos..pos + 32]);
    }

    #[test]
    fn simple_c1_is_laid_out_like_librtmps() {
        let mut c = client(config(HandshakeKind::Simple, ServerCheck::Compatible));
        let c0c1 = c.poll_transmit().unwrap();
        assert_eq!(c0c1.len(), 1 + SIG);
        assert_eq!(c0c1[..9], [3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_ne!(c0c1[9..], [0u8; SIG - 8][..]);
    }

    /// S0+S1+S2 from a server that signs S1 with the wrong key but answers
    /// with version bytes (what a buggy or echoing server looks like).
    fn bogus_signed_answer(c1: &[u8]) -> Vec<u8> {
        let mut s1 = vec![7u8; SIG];
        s1[4..8].copy_from_slice(&[4, 0, 0, 1]);
        let mut out = vec![3u8];
        out.extend_from_slice(&s1);
        out.extend_from_slice(c1);
        out
    }

    #[test]
    fn compatible_client_rejects_unsigned_s1_with_version() {
        let mut c = client(HandshakeConfig::default());
        let c0c1 = c.poll_transmit().unwrap();
        let answer = bogus_signed_answer(&c0c1[1..]);
        assert_eq!(
            c.handle_input(&answer),
            Err(HandshakeError::ServerDigestInvalid)
        );
        assert_eq!(
            c.handle_input(&[]),
            Err(HandshakeError::ServerDigestInvalid)
        );
    }

    #[test]
    fn lenient_client_goes_on_and_records_the_failure() {
        let mut c = client(config(DIGEST0, ServerCheck::Lenient));
        let c0c1 = c.poll_transmit().unwrap();
        let answer = bogus_signed_answer(&c0c1[1..]);
        assert_eq!(c.handle_input(&answer), Ok(answer.len()));
        assert!(c.is_complete());
        assert_eq!(c.server_verified(), Some(false));
        assert_eq!(c.kind(), Some(HandshakeKind::Simple));
        let c2 = c.poll_transmit().unwrap();
        assert_eq!(c2[..], answer[1..=SIG], "unsigned server gets S1 echoed");
    }

    #[test]
    fn tampered_s2_signature_is_rejected() {
        let now = test_now();
        let mut c =
            ClientHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(1));
        let mut s =
            ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(2));
        let _ = s.handle_input(&c.poll_transmit().unwrap());
        let mut answer = s.poll_transmit().unwrap().to_vec();
        *answer.last_mut().unwrap() ^= 1;
        assert_eq!(
            c.handle_input(&answer),
            Err(HandshakeError::ServerSignatureInvalid)
        );
    }

    /// S0+S1+S2 from a server that only knows the simple handshake.
    fn simple_answer(c1: &[u8]) -> Vec<u8> {
        let mut out = librtmp_c0c1(77, 9); // S0 + S1 shaped like a simple C1
        out.extend_from_slice(c1);
        out
    }

    #[test]
    fn digest_client_accepts_simple_answer_when_compatible() {
        let mut c = client(HandshakeConfig::default());
        let c0c1 = c.poll_transmit().unwrap();
        let answer = simple_answer(&c0c1[1..]);
        assert_eq!(c.handle_input(&answer), Ok(answer.len()));
        assert!(c.is_complete());
        assert_eq!(c.kind(), Some(HandshakeKind::Simple));
        assert_eq!(c.server_epoch(), Some(77));
        assert_eq!(c.server_verified(), Some(true));
        assert_eq!(c.poll_transmit().unwrap()[..], answer[1..=SIG]);
    }

    #[test]
    fn strict_digest_client_rejects_simple_answer() {
        let mut c = client(config(DIGEST0, ServerCheck::Strict));
        let c0c1 = c.poll_transmit().unwrap();
        let answer = simple_answer(&c0c1[1..]);
        assert_eq!(
            c.handle_input(&answer),
            Err(HandshakeError::ServerDigestMissing)
        );
    }

    #[test]
    fn strict_simple_client_rejects_s2_not_echoing_c1() {
        let mut c = client(config(HandshakeKind::Simple, ServerCheck::Strict));
        let _ = c.poll_transmit();
        let answer = simple_answer(&[0x55; SIG]);
        assert_eq!(
            c.handle_input(&answer),
            Err(HandshakeError::ServerEchoMismatch)
        );
    }

    #[test]
    fn c2_is_queued_after_s1_before_s2() {
        let mut c = client(HandshakeConfig::default());
        let c0c1 = c.poll_transmit().unwrap();
        let answer = simple_answer(&c0c1[1..]);
        assert_eq!(c.handle_input(&answer[..=SIG]), Ok(1 + SIG));
        assert_eq!(c.poll_transmit().map(|b| b.len()), Some(SIG));
        assert!(!c.is_complete());
    }

    #[test]
    fn client_leaves_bytes_after_s2_for_the_chunk_layer() {
        let mut c = client(HandshakeConfig::default());
        let c0c1 = c.poll_transmit().unwrap();
        let mut answer = simple_answer(&c0c1[1..]);
        answer.extend_from_slice(&[2, 0, 0]);
        assert_eq!(c.handle_input(&answer), Ok(1 + 2 * SIG));
        assert_eq!(c.handle_input(&[2]), Ok(0));
    }

    #[test]
    fn client_rejects_server_version_6() {
        let mut c = client(HandshakeConfig::default());
        assert_eq!(
            c.handle_input(&[6, 0, 0]),
            Err(HandshakeError::UnsupportedVersion(6))
        );
    }

    #[test]
    fn client_times_out_at_the_deadline_only() {
        let now = test_now();
        let mut c =
            ClientHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(3));
        let deadline = now + Duration::from_secs(10);
        assert_eq!(c.poll_timeout(), Some(deadline));
        assert_eq!(
            c.handle_timeout(deadline - Duration::from_millis(1)),
            Ok(())
        );
        assert_eq!(c.handle_timeout(deadline), Err(HandshakeError::Timeout));
        assert_eq!(c.handle_input(&[3]), Err(HandshakeError::Timeout));
    }

    #[test]
    fn same_seed_gives_same_client_bytes() {
        let now = test_now();
        let run = |seed| {
            let mut entropy = SeededEntropy::new(seed);
            let mut c = ClientHandshake::new(now, HandshakeConfig::default(), &mut entropy);
            c.poll_transmit().unwrap()
        };
        assert_eq!(run(8), run(8));
        assert_ne!(run(8), run(9));
    }
}
