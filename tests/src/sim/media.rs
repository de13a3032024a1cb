//! Tiny but well-formed media payloads for simulation tests.
//!
//! Each builder writes the FLV / Enhanced RTMP tag header from the spec
//! layout and appends the caller's bytes, so a test can make every frame
//! unique (and find it again at a player) by what it passes in. The unit
//! tests below check each builder against the core's own parser, so a test
//! that sends "a keyframe" really sends what the broker sees as one.

use bytes::{BufMut, Bytes, BytesMut};

/// Legacy video, AVC (codec id 7), frame type key: byte `0x17`.
const AVC_KEY: u8 = 0x17;
/// Legacy video, AVC, frame type inter: byte `0x27`.
const AVC_INTER: u8 = 0x27;
/// Legacy audio, AAC, 44 kHz, 16 bit, stereo: byte `0xAF`.
const AAC: u8 = 0xAF;

/// Enhanced RTMP video packet types.
mod packet {
    pub(super) const SEQUENCE_START: u8 = 0;
    pub(super) const CODED_FRAMES: u8 = 1;
    pub(super) const CODED_FRAMES_X: u8 = 3;
    pub(super) const MULTITRACK: u8 = 6;
}

/// Enhanced video frame types.
const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;

/// `AvMultitrackType` ManyTracks (one codec, each track sized).
const MANY_TRACKS: u8 = 1;

fn cat(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

/// Big-endian UI24 (the low 24 bits of `v`).
fn u24(v: usize) -> [u8; 3] {
    let v = u32::try_from(v).unwrap_or(u32::MAX);
    let [_, a, b, c] = v.to_be_bytes();
    [a, b, c]
}

/// The Enhanced video first byte: IsExHeader | frame type | packet type.
fn ex_video(frame_type: u8, packet_type: u8) -> u8 {
    0x80 | (frame_type << 4) | packet_type
}

/// A legacy AVC sequence header (`0x17 0x00`, composition time 0) wrapping
/// `config` as the AVCDecoderConfigurationRecord.
pub fn avc_sequence_header(config: &[u8]) -> Bytes {
    cat(&[&[AVC_KEY, 0x00, 0, 0, 0], config])
}

/// A legacy AVC keyframe NALU message (`0x17 0x01`).
pub fn avc_keyframe(data: &[u8]) -> Bytes {
    cat(&[&[AVC_KEY, 0x01, 0, 0, 0], data])
}

/// A legacy AVC inter frame NALU message (`0x27 0x01`).
pub fn avc_inter(data: &[u8]) -> Bytes {
    cat(&[&[AVC_INTER, 0x01, 0, 0, 0], data])
}

/// A legacy AAC AudioSpecificConfig message (`0xAF 0x00`).
pub fn aac_config(config: &[u8]) -> Bytes {
    cat(&[&[AAC, 0x00], config])
}

/// A legacy AAC raw frame (`0xAF 0x01`).
pub fn aac_raw(data: &[u8]) -> Bytes {
    cat(&[&[AAC, 0x01], data])
}

/// An Enhanced RTMP HEVC `SequenceStart` (FourCC `hvc1`).
pub fn hevc_sequence_start(config: &[u8]) -> Bytes {
    cat(&[
        &[ex_video(FRAME_KEY, packet::SEQUENCE_START)],
        b"hvc1",
        config,
    ])
}

/// An Enhanced RTMP HEVC keyframe (`CodedFrames`, composition time 0).
pub fn hevc_keyframe(data: &[u8]) -> Bytes {
    cat(&[
        &[ex_video(FRAME_KEY, packet::CODED_FRAMES)],
        b"hvc1",
        &[0, 0, 0],
        data,
    ])
}

/// An Enhanced RTMP HEVC inter frame (`CodedFramesX`: no composition time).
pub fn hevc_inter(data: &[u8]) -> Bytes {
    cat(&[
        &[ex_video(FRAME_INTER, packet::CODED_FRAMES_X)],
        b"hvc1",
        data,
    ])
}

fn multitrack(frame_type: u8, body_type: u8, fourcc: &[u8; 4], tracks: &[(u8, &[u8])]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(ex_video(frame_type, packet::MULTITRACK));
    b.put_u8((MANY_TRACKS << 4) | body_type);
    b.put_slice(fourcc);
    for (id, body) in tracks {
        b.put_u8(*id);
        b.put_slice(&u24(body.len()));
        b.put_slice(body);
    }
    b.freeze()
}

/// An Enhanced RTMP v2 multitrack `SequenceStart` (ManyTracks, one codec
/// `fourcc`): one configuration record per `(track id, record)`.
pub fn multitrack_sequence_start(fourcc: &[u8; 4], tracks: &[(u8, &[u8])]) -> Bytes {
    multitrack(FRAME_KEY, packet::SEQUENCE_START, fourcc, tracks)
}

/// An Enhanced RTMP v2 multitrack message of coded frames (ManyTracks,
/// `CodedFramesX` so no track carries a composition time); a keyframe for
/// every track when `key`.
pub fn multitrack_frames(key: bool, fourcc: &[u8; 4], tracks: &[(u8, &[u8])]) -> Bytes {
    let frame_type = if key { FRAME_KEY } else { FRAME_INTER };
    multitrack(frame_type, packet::CODED_FRAMES_X, fourcc, tracks)
}

/// Filler bytes that make a payload unique: `tag` then its index, padded
/// to `len` bytes (at least the 5 identifying bytes).
pub fn tagged(tag: u8, index: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(5));
    v.push(tag);
    v.extend_from_slice(&index.to_be_bytes());
    // A pattern rather than zeros, so a misplaced slice shows in a diff.
    v.extend((v.len()..len).map(|i| (i as u8).wrapping_mul(31) ^ tag));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_core::media::{parse_audio, parse_video, VideoCodec};

    #[test]
    fn avc_builders_parse_as_header_keyframe_and_inter() {
        let seq = parse_video(&avc_sequence_header(b"cfg")).unwrap();
        assert!(seq.is_sequence_header() && seq.is_config() && !seq.is_keyframe());
        let key = parse_video(&avc_keyframe(b"k")).unwrap();
        assert!(key.is_keyframe() && !key.is_config());
        let inter = parse_video(&avc_inter(b"i")).unwrap();
        assert!(!inter.is_keyframe() && inter.has_coded_frames());
    }

    #[test]
    fn aac_builders_parse_as_config_and_raw() {
        assert!(parse_audio(&aac_config(b"\x12\x10")).unwrap().is_config());
        assert!(!parse_audio(&aac_raw(b"raw")).unwrap().is_config());
    }

    #[test]
    fn hevc_builders_parse_as_enhanced_hevc() {
        let seq = parse_video(&hevc_sequence_start(b"cfg")).unwrap();
        assert!(seq.is_enhanced() && seq.is_sequence_header());
        assert_eq!(seq.codec(), Some(VideoCodec::Hevc));
        let key = parse_video(&hevc_keyframe(b"k")).unwrap();
        assert!(key.is_keyframe());
        let inter = parse_video(&hevc_inter(b"i")).unwrap();
        assert!(!inter.is_keyframe() && inter.has_coded_frames());
    }

    #[test]
    fn multitrack_builders_parse_with_every_track() {
        let seq = parse_video(&multitrack_sequence_start(
            b"av01",
            &[(0, b"c0"), (1, b"c1")],
        ))
        .unwrap();
        assert!(seq.is_sequence_header() && seq.is_config());
        assert_eq!(seq.tracks().count(), 2);
        let key =
            parse_video(&multitrack_frames(true, b"av01", &[(0, b"k0"), (1, b"k1")])).unwrap();
        assert!(key.is_keyframe());
        let inter = parse_video(&multitrack_frames(
            false,
            b"av01",
            &[(0, b"i0"), (1, b"i1")],
        ))
        .unwrap();
        assert!(!inter.is_keyframe() && inter.has_coded_frames());
    }

    #[test]
    fn tagged_bytes_differ_by_index_and_keep_length() {
        assert_eq!(tagged(1, 2, 100).len(), 100);
        assert_eq!(tagged(1, 2, 0).len(), 5);
        assert_ne!(tagged(1, 2, 50), tagged(1, 3, 50));
    }
}
