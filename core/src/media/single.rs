//! One track of a message, as the single-track packet a player without
//! multitrack support can decode.
//!
//! [`select_video_track`] and [`select_audio_track`] answer, for one
//! message and one track id, whether a player that wants only that track
//! gets the message as it is, gets a rewritten single-track packet, or gets
//! nothing. A rewrite is a small new tag header ([`TagHead`], at most
//! [`TagHead::MAX`] bytes) followed by a zero-copy slice of the track's
//! bytes in the original payload: sending it costs no copy of the media.
//!
//! The rewrite uses the legacy FLV form where the codec has a standard
//! legacy id, so players that predate Enhanced RTMP (FFmpeg before 6.1,
//! VLC, Flash) decode it:
//!
//! * `avc1` becomes legacy AVC (codec id 7): `AVCPacketType` and the SI24
//!   composition time, byte for byte what a single-track H.264 publisher
//!   sends (`CodedFramesX` gets composition time 0).
//! * `mp4a` becomes legacy AAC (sound format 10, flags `0xAF` as FFmpeg
//!   and OBS write them) with its `AACPacketType`.
//! * `.mp3` becomes legacy MP3 (sound format 2, 44 kHz 16-bit, mono or
//!   stereo from the frame header).
//! * Every other codec (HEVC, AV1, VP9, VP8, VVC, Opus, FLAC, AC-3, E-AC-3)
//!   becomes an Enhanced single-track packet: the ex-header with the same
//!   frame type and packet type, the FourCC, the track's body.
//!
//! Packets without a legacy form are left out of a legacy rewrite
//! (`Metadata` and `MPEG2TSSequenceStart` of AVC, AAC `SequenceEnd` and
//! `MultichannelConfig`), and a ModEx `TimestampOffsetNano` on a
//! multitrack message is not carried over (legacy tags have no room for
//! it). A single-track message is track 0 and is never rewritten.

use bytes::Bytes;

use super::{parse_audio, parse_video, AudioBody, FourCc, VideoBody};

/// The tag header of a rewritten packet: a few bytes that go in front of a
/// slice of the original payload.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TagHead {
    buf: [u8; TagHead::MAX],
    len: u8,
}

impl TagHead {
    /// The longest header a rewrite writes (an Enhanced ex-header byte, a
    /// FourCC; legacy AVC's five bytes).
    pub const MAX: usize = 8;

    fn new(bytes: &[u8]) -> Self {
        let mut head = TagHead::default();
        let n = bytes.len().min(Self::MAX);
        head.buf[..n].copy_from_slice(&bytes[..n]);
        // n <= MAX (8), so it fits a u8.
        head.len = n as u8;
        head
    }

    /// The header bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there is no header (a message delivered as it is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for TagHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TagHead({:02x?})", self.as_slice())
    }
}

/// What a player that wants one track gets of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackSelection {
    /// The message as it is: a single-track message of the wanted track
    /// (track 0), a video command frame or audio silence (about the whole
    /// stream), or a payload that does not parse (forwarded unchanged, as
    /// the server does for every player).
    AsIs,
    /// The wanted track as a single-track packet: `head` then `body`.
    Rewritten {
        /// The new tag header.
        head: TagHead,
        /// The track's bytes, a slice of the original payload.
        body: Bytes,
    },
    /// Nothing: the message does not carry the wanted track, or carries a
    /// packet with no single-track form for the codec.
    Absent,
}

impl TrackSelection {
    /// A rewrite: `head` in front of `body`.
    fn rewritten(head: &[u8], body: Bytes) -> Self {
        TrackSelection::Rewritten {
            head: TagHead::new(head),
            body,
        }
    }
}

/// Legacy FLV video codec id of H.264.
const LEGACY_AVC: u8 = 7;
/// Legacy FLV sound formats.
const LEGACY_MP3: u8 = 2;
const LEGACY_AAC: u8 = 10;
/// Video `VideoPacketType` / audio `AudioPacketType` values used below.
const SEQUENCE_START: u8 = 0;
const CODED_FRAMES: u8 = 1;
const SEQUENCE_END: u8 = 2;
const CODED_FRAMES_X: u8 = 3;

/// What of video message `payload` goes to a player that wants only video
/// track `track`; see the module docs for the rewrite rules.
pub fn select_video_track(payload: &Bytes, track: u8) -> TrackSelection {
    // Legacy tags are single-track (track 0), and most streams are legacy:
    // no parse needed.
    match payload.first() {
        None => return TrackSelection::AsIs,
        Some(first) if first & 0x80 == 0 => return single_track(track),
        Some(_) => {}
    }
    let Ok(tag) = parse_video(payload) else {
        return TrackSelection::AsIs;
    };
    let tracks = match tag.body() {
        VideoBody::Command { .. } => return TrackSelection::AsIs,
        VideoBody::Single(_) => return single_track(track),
        VideoBody::Multitrack(tracks) => tracks,
    };
    let Some(raw) = tracks.raw_track(track) else {
        return TrackSelection::Absent;
    };
    // The frame type all tracks share, as sent (bits 4..7 without the
    // ex-header flag).
    let frame_type = (payload[0] >> 4) & 0x07;
    let packet_type = tracks.body_type.nibble();
    if raw.fourcc == FourCc(*b"avc1") {
        let first = frame_type << 4 | LEGACY_AVC;
        return match packet_type {
            SEQUENCE_START => TrackSelection::rewritten(&[first, 0, 0, 0, 0], raw.body),
            // The body starts with the SI24 composition time, as in legacy.
            CODED_FRAMES => TrackSelection::rewritten(&[first, 1], raw.body),
            CODED_FRAMES_X => TrackSelection::rewritten(&[first, 1, 0, 0, 0], raw.body),
            SEQUENCE_END => TrackSelection::rewritten(&[first, 2, 0, 0, 0], raw.body),
            // Metadata, MPEG2TSSequenceStart: no legacy form.
            _ => TrackSelection::Absent,
        };
    }
    let [a, b, c, d] = raw.fourcc.0;
    let first = 0x80 | frame_type << 4 | packet_type;
    TrackSelection::rewritten(&[first, a, b, c, d], raw.body)
}

/// What of audio message `payload` goes to a player that wants only audio
/// track `track`; see the module docs for the rewrite rules.
pub fn select_audio_track(payload: &Bytes, track: u8) -> TrackSelection {
    match payload.first() {
        // Silence is about the whole stream.
        None => return TrackSelection::AsIs,
        Some(first) if first >> 4 != 9 => return single_track(track),
        Some(_) => {}
    }
    let Ok(tag) = parse_audio(payload) else {
        return TrackSelection::AsIs;
    };
    let tracks = match tag.body() {
        AudioBody::Silence => return TrackSelection::AsIs,
        AudioBody::Single(_) => return single_track(track),
        AudioBody::Multitrack(tracks) => tracks,
    };
    let Some(raw) = tracks.raw_track(track) else {
        return TrackSelection::Absent;
    };
    let packet_type = tracks.body_type.nibble();
    match &raw.fourcc.0 {
        b"mp4a" => {
            // Sound format 10, 44 kHz, 16-bit, stereo: what every AAC
            // publisher writes (the AudioSpecificConfig has the truth).
            let first = LEGACY_AAC << 4 | 0x0F;
            match packet_type {
                SEQUENCE_START => TrackSelection::rewritten(&[first, 0], raw.body),
                CODED_FRAMES => TrackSelection::rewritten(&[first, 1], raw.body),
                _ => TrackSelection::Absent,
            }
        }
        b".mp3" => {
            if packet_type != CODED_FRAMES {
                return TrackSelection::Absent;
            }
            // Channel mode 3 in the MPEG audio header is mono.
            let mono = raw.body.get(3).is_some_and(|b| b >> 6 == 3);
            let first = LEGACY_MP3 << 4 | 0x0E | u8::from(!mono);
            TrackSelection::rewritten(&[first], raw.body)
        }
        [a, b, c, d] => {
            let first = 0x90 | packet_type;
            TrackSelection::rewritten(&[first, *a, *b, *c, *d], raw.body)
        }
    }
}

/// A single-track message is track 0.
fn single_track(track: u8) -> TrackSelection {
    if track == 0 {
        TrackSelection::AsIs
    } else {
        TrackSelection::Absent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `head` then `body`, as the player receives it.
    fn joined(s: &TrackSelection) -> Vec<u8> {
        match s {
            TrackSelection::Rewritten { head, body } => {
                let mut v = head.as_slice().to_vec();
                v.extend_from_slice(body);
                v
            }
            other => panic!("expected a rewrite, got {other:?}"),
        }
    }

    /// A ManyTracks video message of `avc1` tracks 0 and 1.
    fn many_avc(frame_type: u8, packet_type: u8, t0: &[u8], t1: &[u8]) -> Bytes {
        let mut v = vec![0x80 | frame_type << 4 | 6, 0x10 | packet_type];
        v.extend_from_slice(b"avc1");
        for (id, body) in [(0u8, t0), (1, t1)] {
            v.push(id);
            v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            v.extend_from_slice(body);
        }
        Bytes::from(v)
    }

    #[test]
    fn avc_tracks_become_legacy_avc() {
        let config = many_avc(1, 0, b"cfg0", b"cfg1");
        assert_eq!(
            joined(&select_video_track(&config, 1)),
            [&[0x17, 0, 0, 0, 0][..], b"cfg1"].concat()
        );
        let key = many_avc(1, 1, &[0, 0, 0x21, 0xAA], &[0, 0, 0x42, 0xBB]);
        assert_eq!(
            joined(&select_video_track(&key, 0)),
            [0x17, 1, 0, 0, 0x21, 0xAA]
        );
        let inter_x = many_avc(2, 3, &[0xCC], &[0xDD]);
        assert_eq!(
            joined(&select_video_track(&inter_x, 1)),
            [0x27, 1, 0, 0, 0, 0xDD]
        );
        assert_eq!(select_video_track(&key, 2), TrackSelection::Absent);
        // The body is a slice of the message, not a copy.
        let TrackSelection::Rewritten { body, .. } = select_video_track(&key, 1) else {
            panic!()
        };
        let start = key.as_ptr() as usize;
        assert!((start..start + key.len()).contains(&(body.as_ptr() as usize)));
    }

    #[test]
    fn legacy_and_single_enhanced_messages_are_track_zero() {
        let legacy = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xAA]);
        assert_eq!(select_video_track(&legacy, 0), TrackSelection::AsIs);
        assert_eq!(select_video_track(&legacy, 1), TrackSelection::Absent);
        let hevc = Bytes::from_static(&[0x93, b'h', b'v', b'c', b'1', 0xAA]);
        assert_eq!(select_video_track(&hevc, 0), TrackSelection::AsIs);
        let aac = Bytes::from_static(&[0xAF, 1, 0x21]);
        assert_eq!(select_audio_track(&aac, 0), TrackSelection::AsIs);
        assert_eq!(select_audio_track(&aac, 3), TrackSelection::Absent);
        assert_eq!(select_audio_track(&Bytes::new(), 3), TrackSelection::AsIs);
    }

    #[test]
    fn hevc_one_track_becomes_enhanced_single_track() {
        // OneTrack, CodedFramesX, hvc1, track 1 (FFmpeg's layout for
        // a second track).
        let msg = Bytes::from_static(&[0xA6, 0x03, b'h', b'v', b'c', b'1', 1, 0xEE, 0xFF]);
        assert_eq!(
            joined(&select_video_track(&msg, 1)),
            [0xA3, b'h', b'v', b'c', b'1', 0xEE, 0xFF]
        );
        assert_eq!(select_video_track(&msg, 0), TrackSelection::Absent);
    }

    #[test]
    fn audio_tracks_become_legacy_aac_or_enhanced() {
        // ManyTracksManyCodecs, CodedFrames: mp4a track 0, Opus track 1.
        let mut v = vec![0x95, 0x21];
        v.extend_from_slice(b"mp4a");
        v.extend_from_slice(&[0, 0, 0, 2, 0x21, 0x22]);
        v.extend_from_slice(b"Opus");
        v.extend_from_slice(&[1, 0, 0, 1, 0x33]);
        let msg = Bytes::from(v);
        assert_eq!(joined(&select_audio_track(&msg, 0)), [0xAF, 1, 0x21, 0x22]);
        assert_eq!(
            joined(&select_audio_track(&msg, 1)),
            [0x91, b'O', b'p', b'u', b's', 0x33]
        );
        // AAC SequenceStart (OneTrack, track 2).
        let mut v = vec![0x95, 0x00];
        v.extend_from_slice(b"mp4a");
        v.extend_from_slice(&[2, 0x12, 0x10]);
        let msg = Bytes::from(v);
        assert_eq!(joined(&select_audio_track(&msg, 2)), [0xAF, 0, 0x12, 0x10]);
    }
}
