//! The Flash Player 9 digest arithmetic shared by both sides.
//!
//! The keys are the well-known public constants every RTMP implementation
//! carries (FFmpeg's rtmpproto.c, librtmp's handshake.h, nginx-rtmp's
//! ngx_rtmp_handshake.c agree byte for byte): an ASCII name followed by the
//! same 32 constant bytes. The name alone (the "partial" key) signs C1 and
//! S1; the full key derives the key that signs C2 and S2.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{DigestScheme, PACKET_LEN};

/// Length of an HMAC-SHA256 digest, and of the digest field in C1/S1.
pub(super) const DIGEST_LEN: usize = 32;

/// Where the signature of C2/S2 starts: the last 32 bytes.
pub(super) const SIGNATURE_AT: usize = PACKET_LEN - DIGEST_LEN;

/// The 32 constant bytes that follow both ASCII key names.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

const fn join<const A: usize, const N: usize>(name: &[u8; A]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < A {
        out[i] = name[i];
        i += 1;
    }
    while i < N {
        out[i] = KEY_TAIL[i - A];
        i += 1;
    }
    out
}

/// The client ("Flash Player") key, 62 bytes; its first 30 sign C1.
pub(super) const PLAYER_KEY: [u8; 62] = join(b"Genuine Adobe Flash Player 001");
/// How much of [`PLAYER_KEY`] signs C1.
pub(super) const PLAYER_KEY_PARTIAL: usize = 30;

/// The server ("Flash Media Server") key, 68 bytes; its first 36 sign S1.
pub(super) const SERVER_KEY: [u8; 68] = join(b"Genuine Adobe Flash Media Server 001");
/// How much of [`SERVER_KEY`] signs S1.
pub(super) const SERVER_KEY_PARTIAL: usize = 36;

impl DigestScheme {
    /// Both schemes, in the order a client checks a server's S1 (FFmpeg and
    /// nginx-rtmp try scheme 1 first).
    pub(super) const CLIENT_ORDER: [DigestScheme; 2] =
        [DigestScheme::Scheme1, DigestScheme::Scheme0];

    /// Where this scheme's digest sits in `packet`: the sum of four offset
    /// bytes, modulo 728, past those bytes. Always leaves room for 32 bytes.
    pub(super) fn digest_pos(self, packet: &[u8; PACKET_LEN]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        sum % 728 + base + 4
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed), so this cannot
    // fail; the keys here are our constants or 32-byte digests anyway.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// HMAC-SHA256 of `data` under `key`.
pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut m = mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The digest of `packet` under `key`, leaving out the 32 bytes at `pos`
/// where the digest itself goes.
fn packet_digest(key: &[u8], packet: &[u8; PACKET_LEN], pos: usize) -> [u8; DIGEST_LEN] {
    let mut m = mac(key);
    m.update(&packet[..pos]);
    m.update(&packet[pos + DIGEST_LEN..]);
    m.finalize().into_bytes().into()
}

/// Writes the digest of `packet` under `key` at `scheme`'s position and
/// returns that position.
pub(super) fn imprint(packet: &mut [u8; PACKET_LEN], scheme: DigestScheme, key: &[u8]) -> usize {
    let pos = scheme.digest_pos(packet);
    let digest = packet_digest(key, packet, pos);
    packet[pos..pos + DIGEST_LEN].copy_from_slice(&digest);
    pos
}

/// Whether `packet` carries a valid digest under `key` at `scheme`'s
/// position; returns that position if so.
pub(super) fn validate(
    packet: &[u8; PACKET_LEN],
    scheme: DigestScheme,
    key: &[u8],
) -> Option<usize> {
    let pos = scheme.digest_pos(packet);
    let mut m = mac(key);
    m.update(&packet[..pos]);
    m.update(&packet[pos + DIGEST_LEN..]);
    // Constant-time comparison: the keys are public, but it costs nothing.
    m.verify_slice(&packet[pos..pos + DIGEST_LEN])
        .ok()
        .map(|()| pos)
}

/// The signature that ends C2/S2: HMAC over the first 1504 bytes, keyed by
/// HMAC(`full_key`, the peer's digest from C1/S1).
pub(super) fn signature(
    full_key: &[u8],
    peer_digest: &[u8],
    packet: &[u8; PACKET_LEN],
) -> [u8; DIGEST_LEN] {
    let key = hmac(full_key, peer_digest);
    hmac(&key, &packet[..SIGNATURE_AT])
}

/// Writes the C2/S2 signature into the last 32 bytes of `packet`.
pub(super) fn sign(packet: &mut [u8; PACKET_LEN], full_key: &[u8], peer_digest: &[u8]) {
    let sig = signature(full_key, peer_digest, packet);
    packet[SIGNATURE_AT..].copy_from_slice(&sig);
}

/// Whether `packet` ends in the right signature for `peer_digest`.
pub(super) fn verify_signature(
    packet: &[u8; PACKET_LEN],
    full_key: &[u8],
    peer_digest: &[u8],
) -> bool {
    let key = hmac(full_key, peer_digest);
    let mut m = mac(&key);
    m.update(&packet[..SIGNATURE_AT]);
    m.verify_slice(&packet[SIGNATURE_AT..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_well_known_lengths_and_names() {
        assert_eq!(
            &PLAYER_KEY[..PLAYER_KEY_PARTIAL],
            b"Genuine Adobe Flash Player 001"
        );
        assert_eq!(
            &SERVER_KEY[..SERVER_KEY_PARTIAL],
            b"Genuine Adobe Flash Media Server 001"
        );
        assert_eq!(PLAYER_KEY[30..], KEY_TAIL);
        assert_eq!(SERVER_KEY[36..], KEY_TAIL);
    }

    #[test]
    fn digest_positions_stay_inside_their_half() {
        let mut p = [0u8; PACKET_LEN];
        assert_eq!(DigestScheme::Scheme0.digest_pos(&p), 12);
        assert_eq!(DigestScheme::Scheme1.digest_pos(&p), 776);
        p[8..12].fill(0xFF);
        p[772..776].fill(0xFF);
        // 1020 % 728 = 292
        assert_eq!(DigestScheme::Scheme0.digest_pos(&p), 292 + 12);
        assert_eq!(DigestScheme::Scheme1.digest_pos(&p), 292 + 776);
        assert!(DigestScheme::Scheme1.digest_pos(&p) + DIGEST_LEN <= PACKET_LEN);
    }

    #[test]
    fn imprinted_digest_validates_only_under_its_scheme_and_key() {
        let mut p = [0u8; PACKET_LEN];
        for (i, b) in p.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let pos = imprint(
            &mut p,
            DigestScheme::Scheme0,
            &PLAYER_KEY[..PLAYER_KEY_PARTIAL],
        );
        assert_eq!(
            validate(&p, DigestScheme::Scheme0, &PLAYER_KEY[..30]),
            Some(pos)
        );
        assert_eq!(validate(&p, DigestScheme::Scheme1, &PLAYER_KEY[..30]), None);
        assert_eq!(validate(&p, DigestScheme::Scheme0, &SERVER_KEY[..36]), None);
    }
}
