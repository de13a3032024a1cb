//! Test-only models of real clients, written independently of the code
//! under test: HMAC-SHA256 is built here from SHA-256 by hand (RFC 2104),
//! and packets are laid out the way the named client's source does.

use sha2::{Digest, Sha256};

pub(super) const SIG: usize = 1536;

/// "Genuine Adobe Flash Player 001" + the 32 constant bytes (62).
pub(super) fn fp_key() -> Vec<u8> {
    let mut k = b"Genuine Adobe Flash Player 001".to_vec();
    k.extend_from_slice(&TAIL);
    k
}

/// "Genuine Adobe Flash Media Server 001" + the 32 constant bytes (68).
pub(super) fn fms_key() -> Vec<u8> {
    let mut k = b"Genuine Adobe Flash Media Server 001".to_vec();
    k.extend_from_slice(&TAIL);
    k
}

const TAIL: [u8; 32] = [
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];

/// HMAC-SHA256 over the concatenation of `parts`, by hand.
pub(super) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// FFmpeg's ff_rtmp_calc_digest_pos: sum of 4 bytes at `off`, mod, plus.
pub(super) fn digest_pos(buf: &[u8], off: usize, modulo: usize, add: usize) -> usize {
    buf[off..off + 4].iter().map(|&b| b as usize).sum::<usize>() % modulo + add
}

/// HMAC over a 1536-byte packet minus the 32 bytes at `gap`.
pub(super) fn gap_digest(buf: &[u8], gap: usize, key: &[u8]) -> [u8; 32] {
    hmac(key, &[&buf[..gap], &buf[gap + 32..]])
}

/// A tiny xorshift generator so test packets do not depend on the entropy
/// module under test.
pub(super) struct Noise(pub(super) u64);

impl Noise {
    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// C0+C1 as librtmp's plain HandShake (and so OBS) sends it: 3, uptime,
/// four zero bytes, random.
pub(super) fn librtmp_c0c1(uptime: u32, seed: u64) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&uptime.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut random = vec![0u8; SIG - 8];
    Noise(seed).fill(&mut random);
    out.extend_from_slice(&random);
    out
}

/// C0+C1 as FFmpeg's rtmp_handshake sends it: 3, uptime 0, version
/// 9.0.124.2, random, and the Flash Player digest at the scheme-0 position
/// (offset bytes 8..12) or, for `scheme1` (FFmpeg's RTMPE layout), at the
/// scheme-1 position (offset bytes 772..776). Returns the packet and the
/// digest position inside C1.
pub(super) fn ffmpeg_c0c1(seed: u64, scheme1: bool) -> (Vec<u8>, usize) {
    let mut c1 = vec![0u8; SIG];
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    Noise(seed).fill(&mut c1[8..]);
    let pos = if scheme1 {
        digest_pos(&c1, 772, 728, 776)
    } else {
        digest_pos(&c1, 8, 728, 12)
    };
    let d = gap_digest(&c1, pos, &fp_key()[..30]);
    c1[pos..pos + 32].copy_from_slice(&d);
    let mut out = vec![3u8];
    out.extend_from_slice(&c1);
    (out, pos)
}

/// FFmpeg's check of a server S1 when playing: try the digest position
/// from bytes 772.. then from bytes 8.., with the 36-byte server key.
pub(super) fn ffmpeg_find_s1_digest(s1: &[u8]) -> Option<usize> {
    [772, 8].into_iter().find_map(|off| {
        let pos = digest_pos(s1, off, 728, off + 4);
        (gap_digest(s1, pos, &fms_key()[..36])[..] == s1[pos..pos + 32]).then_some(pos)
    })
}

/// FFmpeg's check of S2: HMAC(HMAC(full server key, client digest), the
/// first 1504 bytes) must equal the last 32.
pub(super) fn ffmpeg_s2_ok(s2: &[u8], client_digest: &[u8]) -> bool {
    let key = hmac(&fms_key(), &[client_digest]);
    hmac(&key, &[&s2[..SIG - 32]])[..] == s2[SIG - 32..]
}

/// C2 as FFmpeg sends it when playing a signing server: random, signed with
/// HMAC(full player key, server digest).
pub(super) fn ffmpeg_signed_c2(server_digest: &[u8], seed: u64) -> Vec<u8> {
    let mut c2 = vec![0u8; SIG];
    Noise(seed).fill(&mut c2);
    let key = hmac(&fp_key(), &[server_digest]);
    let sig = hmac(&key, &[&c2[..SIG - 32]]);
    c2[SIG - 32..].copy_from_slice(&sig);
    c2
}

#[test]
fn hand_built_hmac_matches_rfc4231_case_2() {
    let mac = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
