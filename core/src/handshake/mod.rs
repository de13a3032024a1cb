//! The RTMP handshake, server and client side, as sans-IO state machines.
//!
//! Before any chunk stream flows, each side sends a version byte (C0/S0) and
//! two 1536-byte packets (C1/S1, then C2/S2):
//!
//! ```text
//!   client                                   server
//!     │ C0 (1) + C1 (1536) ───────────────────► │
//!     │ ◄─────────────── S0 (1) + S1 + S2 (3073)│  queued as soon as C1 is in
//!     │ C2 (1536) ────────────────────────────► │
//!     │ chunk stream …                          │  bytes after C2 are not ours
//! ```
//!
//! Two flavours exist in the wild, and a server must speak both:
//!
//! - **Simple**: C1 is `time | 0 0 0 0 | random`; S2 echoes C1 and C2 echoes
//!   S1. librtmp (and so OBS) and GStreamer send this.
//! - **Digest** (the Flash Player 9 handshake): C1 carries version bytes and
//!   an HMAC-SHA256 digest at a position derived from C1 itself. FFmpeg sends
//!   it, checks the server's answer when playing, and Flash Player needs a
//!   signed answer before it will play H.264/AAC. See [`HandshakeKind`].
//!
//! [`ServerHandshake`] answers either; [`ClientHandshake`] speaks either, for
//! relaying to other servers and for load tools. Both follow the crate's run
//! loop: `handle_input`, drain `poll_transmit`, honour `poll_timeout`. Neither
//! reads a clock or draws randomness on its own: time comes in as
//! [`Instant`](std::time::Instant) and random bytes from an injected
//! [`Entropy`](crate::entropy::Entropy).
//!
//! ```
//! use std::time::Instant;
//! use tincan_core::entropy::SeededEntropy;
//! use tincan_core::handshake::{ClientHandshake, HandshakeConfig, ServerHandshake};
//!
//! let now = Instant::now();
//! let mut client = ClientHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(1));
//! let mut server = ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(2));
//!
//! // C0+C1, then C2 with the first chunk-stream bytes right behind it.
//! let c0c1 = client.poll_transmit().unwrap();
//! assert_eq!(server.handle_input(&c0c1)?, c0c1.len());
//! let s0s1s2 = server.poll_transmit().unwrap();
//! assert_eq!(client.handle_input(&s0s1s2)?, s0s1s2.len());
//! let mut read = client.poll_transmit().unwrap().to_vec();
//! read.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]);
//! let used = server.handle_input(&read)?;
//! assert!(client.is_complete() && server.is_complete());
//! let chunk_stream_bytes = &read[used..]; // hand these to the chunk decoder
//! assert_eq!(chunk_stream_bytes, [0x02, 0x00, 0x00, 0x00]);
//! # Ok::<(), tincan_core::handshake::HandshakeError>(())
//! ```

use std::time::Duration;

mod client;
mod digest;
mod lifecycle;
mod server;
#[cfg(test)]
mod test_util;

pub use client::ClientHandshake;
pub use server::ServerHandshake;

/// Size of C1, C2, S1 and S2.
pub const PACKET_LEN: usize = 1536;

/// The only version byte we speak: plain, unencrypted RTMP.
///
/// 6, 8 and 9 announce RTMPE (Diffie-Hellman plus RC4, with XTEA or Blowfish
/// signatures for 8 and 9), which we do not implement; RTMPS (TLS) is the
/// supported way to encrypt.
pub const RTMP_VERSION: u8 = 3;

/// Knobs for both sides of the handshake.
///
/// The defaults interoperate with FFmpeg, librtmp/OBS, GStreamer, nginx-rtmp
/// and Flash-era clients; change them only to match a peer that needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Deadline for the whole handshake, measured from `new`.
    ///
    /// Whole-handshake rather than per-read so that a peer that trickles one
    /// byte every few seconds cannot hold a connection (and its buffers)
    /// forever. Ten seconds is ample for 3 KiB each way even on a poor mobile
    /// link, and is in line with what other servers allow an unauthenticated
    /// connection.
    pub timeout: Duration,
    /// Version bytes a server puts in a digest-signed S1.
    ///
    /// Defaults to 3.5.1.1, the Flash Media Server version librtmp's own
    /// server emulates. Clients read these bytes to decide whether to expect
    /// a signed answer: FFmpeg only checks the digest when the first byte is
    /// at least 3, librtmp drops to the simple handshake when it is 0.
    pub server_version: [u8; 4],
    /// Version bytes a client puts in a digest-signed C1.
    ///
    /// Defaults to 9.0.124.2, the Flash Player version FFmpeg announces, so
    /// remote servers treat us like the client they see most often.
    pub client_version: [u8; 4],
    /// Which C1 a [`ClientHandshake`] sends. Servers ignore this.
    ///
    /// Defaults to a scheme-0 digest, as FFmpeg sends: servers that need a
    /// signed handshake accept it and the others fall back to the simple one.
    pub client_kind: HandshakeKind,
    /// How hard a [`ClientHandshake`] checks the server's answer. Servers
    /// ignore this.
    pub server_check: ServerCheck,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig {
            timeout: Duration::from_secs(10),
            server_version: [3, 5, 1, 1],
            client_version: [9, 0, 124, 2],
            client_kind: HandshakeKind::Digest {
                scheme: DigestScheme::Scheme0,
            },
            server_check: ServerCheck::Compatible,
        }
    }
}

/// Which handshake a peer used, for logs and for the client's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeKind {
    /// Unsigned: bytes 4..8 of C1 are zero (or carry a version but no digest
    /// we could validate) and the answers are plain echoes.
    Simple,
    /// Flash Player 9 style: C1 and S1 carry an HMAC-SHA256 digest at a
    /// position chosen by `scheme`, and C2/S2 end in a signature.
    Digest {
        /// Where the digest sits in the packet.
        scheme: DigestScheme,
    },
}

/// Where a digest sits in a C1 or S1 packet.
///
/// The two schemes split the 1536 bytes into halves; one half holds the
/// digest (and its offset bytes), the other was meant for an RTMPE
/// Diffie-Hellman key. Clients pick one, and a server signs its S1 with the
/// same one so the client finds the digest where it looks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestScheme {
    /// Offset from bytes 8..12: `(sum % 728) + 12`. FFmpeg and librtmp use
    /// it for plain RTMP.
    Scheme0,
    /// Offset from bytes 772..776: `(sum % 728) + 776`. FFmpeg uses it for
    /// RTMPE, and some Flash Players for plain RTMP.
    Scheme1,
}

/// How strictly a [`ClientHandshake`] checks the server's S1 and S2.
///
/// Real servers differ: some sign properly, some answer a signed C1 with the
/// simple handshake, some echo C1 back as S1. A relay wants to get through;
/// a conformance probe wants to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerCheck {
    /// Never fail on the server's answer; record the result
    /// ([`ClientHandshake::server_verified`]) and log it.
    Lenient,
    /// Behave like FFmpeg and librtmp: a server that answers with version
    /// bytes (first byte non-zero) must sign S1 and S2 correctly; a server
    /// that answers with zero version bytes gets the simple handshake, and
    /// an S2 that fails to echo C1 is only logged.
    Compatible,
    /// Like `Compatible`, and also fail when a digest C1 gets a simple
    /// answer or a simple S2 does not echo C1 (GStreamer's check).
    Strict,
}

/// Why a handshake failed. Errors are sticky: once returned, every later
/// call returns the same error, so the caller can close without special
/// cases.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer asked for a protocol version other than 3.
    #[error(
        "unsupported RTMP version byte {0} (only 3, plain RTMP, is supported; \
         6, 8 and 9 are encrypted RTMPE, use RTMPS instead)"
    )]
    UnsupportedVersion(u8),
    /// The whole handshake did not finish before
    /// [`HandshakeConfig::timeout`].
    #[error("RTMP handshake did not complete before its deadline")]
    Timeout,
    /// The server answered a digest C1 with version bytes but no S1 digest
    /// we could validate under either scheme.
    #[error("server S1 digest did not validate under either scheme")]
    ServerDigestInvalid,
    /// The server's S2 signature does not match our C1 digest.
    #[error("server S2 signature does not match our C1 digest")]
    ServerSignatureInvalid,
    /// [`ServerCheck::Strict`]: the server answered a digest C1 with the
    /// simple handshake.
    #[error("server answered a digest handshake with a simple one")]
    ServerDigestMissing,
    /// [`ServerCheck::Strict`]: the server's simple S2 does not echo C1.
    #[error("server S2 does not echo our C1")]
    ServerEchoMismatch,
}

/// Copies a 1536-byte packet out of an input buffer.
fn packet(bytes: &[u8]) -> [u8; PACKET_LEN] {
    let mut out = [0u8; PACKET_LEN];
    // Callers slice exactly PACKET_LEN bytes out of a buffer they have just
    // filled to that length; a wrong length is a bug here, not peer input.
    out.copy_from_slice(bytes);
    out
}
