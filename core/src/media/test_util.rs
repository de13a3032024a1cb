//! Byte builders for the media tests, written from the spec layouts (FLV
//! 10.1 tag headers, Enhanced RTMP v2 pseudocode), not from the parser.

use bytes::Bytes;

/// Concatenates byte pieces into one payload.
pub(super) fn cat(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

/// Big-endian UI24.
pub(super) fn u24(v: u32) -> [u8; 3] {
    let [_, a, b, c] = v.to_be_bytes();
    [a, b, c]
}

/// Big-endian SI24 (two's complement, low 24 bits).
pub(super) fn si24(v: i32) -> [u8; 3] {
    let [_, a, b, c] = v.to_be_bytes();
    [a, b, c]
}

/// Enhanced video first byte: IsExHeader | frame type | packet type.
pub(super) fn ex_video(frame_type: u8, packet_type: u8) -> u8 {
    0x80 | (frame_type << 4) | packet_type
}

/// Enhanced audio first byte: SoundFormat 9 (ExHeader) | packet type.
pub(super) fn ex_audio(packet_type: u8) -> u8 {
    0x90 | packet_type
}

/// One ModEx block carrying `TimestampOffsetNano`, followed by the byte
/// whose low nibble is `next` (the packet type after the block). `wide`
/// uses the 0xFF + UI16 size form.
pub(super) fn mod_ex_nano(nanos: u32, wide: bool, next: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if wide {
        // modExDataSize = UI16 + 1 = 3.
        out.extend_from_slice(&[0xFF, 0x00, 0x02]);
    } else {
        // modExDataSize = UI8 + 1 = 3.
        out.push(0x02);
    }
    out.extend_from_slice(&u24(nanos));
    out.push(next & 0x0f); // ModEx type 0 = TimestampOffsetNano.
    out
}

/// One multitrack track: `[FourCC] trackId [sizeOfTrack] body`.
pub(super) fn track(fourcc: Option<&[u8; 4]>, id: u8, sized: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(fourcc) = fourcc {
        out.extend_from_slice(fourcc);
    }
    out.push(id);
    if sized {
        let len = u32::try_from(body.len()).expect("test track fits in UI24");
        out.extend_from_slice(&u24(len));
    }
    out.extend_from_slice(body);
    out
}

/// Asserts that every prefix shorter than `complete_at` fails, and that no
/// prefix panics (longer prefixes may legitimately parse, with less data).
pub(super) fn assert_short_prefixes_fail<T: std::fmt::Debug, E: std::fmt::Debug>(
    full: &Bytes,
    complete_at: usize,
    parse: impl Fn(&Bytes) -> Result<T, E>,
) {
    for n in 0..=full.len() {
        let result = parse(&full.slice(..n));
        if n < complete_at {
            assert!(result.is_err(), "prefix {n} of {full:?} parsed: {result:?}");
        }
    }
    assert!(parse(full).is_ok(), "full tag {full:?} failed");
}
