//! Property tests: the parsers never panic on arbitrary bytes, and parsing a
//! generated valid Enhanced tag recovers what was built.

use bytes::Bytes;
use proptest::prelude::*;

use super::test_util::{ex_audio, ex_video, mod_ex_nano, si24, track};
use super::*;

const VIDEO_FOURCCS: [(&[u8; 4], VideoCodec); 6] = [
    (b"avc1", VideoCodec::Avc),
    (b"hvc1", VideoCodec::Hevc),
    (b"av01", VideoCodec::Av1),
    (b"vp09", VideoCodec::Vp9),
    (b"vp08", VideoCodec::Vp8),
    (b"vvc1", VideoCodec::Vvc),
];

const AUDIO_FOURCCS: [(&[u8; 4], AudioCodec); 6] = [
    (b"Opus", AudioCodec::Opus),
    (b"fLaC", AudioCodec::Flac),
    (b"ac-3", AudioCodec::Ac3),
    (b"ec-3", AudioCodec::Eac3),
    (b".mp3", AudioCodec::Mp3),
    (b"mp4a", AudioCodec::Aac),
];

/// Payloads that often get past the first byte: a plausible header (legacy
/// or Enhanced, any packet type, known FourCCs) followed by random bytes.
fn plausible_payload(fourccs: Vec<&'static [u8; 4]>) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop::sample::select(fourccs),
        prop::collection::vec(any::<u8>(), 0..48),
        any::<bool>(),
    )
        .prop_map(|(first, fourcc, tail, with_fourcc)| {
            let mut out = vec![first];
            if with_fourcc {
                out.extend_from_slice(fourcc);
            }
            out.extend(tail);
            out
        })
}

/// A modelled track: codec index, id, composition time, data.
type TrackModel = (usize, u8, i32, Vec<u8>);

fn track_model() -> impl Strategy<Value = TrackModel> {
    (
        0..VIDEO_FOURCCS.len(),
        any::<u8>(),
        -(1i32 << 23)..(1i32 << 23),
        prop::collection::vec(any::<u8>(), 0..8),
    )
}

/// Encodes one video track body and the packet the parser must return.
fn video_body(pt: u8, codec: VideoCodec, cts: i32, data: &[u8]) -> (Vec<u8>, VideoPacket) {
    let bytes = Bytes::copy_from_slice(data);
    match pt {
        0 => (data.to_vec(), VideoPacket::SequenceStart(bytes)),
        1 if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Vvc) => (
            [&si24(cts)[..], data].concat(),
            VideoPacket::CodedFrames {
                composition_time: cts,
                data: bytes,
            },
        ),
        1 | 3 => (
            data.to_vec(),
            VideoPacket::CodedFrames {
                composition_time: 0,
                data: bytes,
            },
        ),
        2 => (Vec::new(), VideoPacket::SequenceEnd),
        4 => (data.to_vec(), VideoPacket::Metadata(bytes)),
        _ => (data.to_vec(), VideoPacket::Mpeg2TsSequenceStart(bytes)),
    }
}

/// Encodes one audio track body and the packet the parser must return.
fn audio_body(pt: u8, order: u8, mask: u32, data: &[u8]) -> (Vec<u8>, AudioPacket) {
    let bytes = Bytes::copy_from_slice(data);
    match pt {
        0 => (data.to_vec(), AudioPacket::SequenceStart(bytes)),
        1 => (data.to_vec(), AudioPacket::CodedFrames(bytes)),
        2 => (Vec::new(), AudioPacket::SequenceEnd),
        _ => {
            // MultichannelConfig; `data` doubles as the custom mapping.
            let count = u8::try_from(data.len()).expect("short test data");
            let mut body = vec![order, count];
            let order = match order {
                0 => ChannelOrder::Unspecified,
                1 => {
                    body.extend_from_slice(&mask.to_be_bytes());
                    ChannelOrder::Native { mask }
                }
                _ => {
                    body.extend_from_slice(data);
                    ChannelOrder::Custom { mapping: bytes }
                }
            };
            (
                body,
                AudioPacket::MultichannelConfig(MultichannelConfig {
                    order,
                    channel_count: count,
                }),
            )
        }
    }
}

/// Frames a list of encoded track bodies per the multitrack layout; `None`
/// as the multitrack type means a single-track message. Returns the bytes
/// after the first byte (and any ModEx) that select multitrack.
fn frame_tracks(
    pt: u8,
    multitrack: Option<u8>,
    fourccs: &[&[u8; 4]],
    ids: &[u8],
    bodies: &[Vec<u8>],
) -> Vec<u8> {
    let mut out = Vec::new();
    match multitrack {
        None => {
            out.extend_from_slice(fourccs[0]);
            out.extend_from_slice(&bodies[0]);
        }
        Some(kind) => {
            out.push((kind << 4) | pt);
            if kind != 2 {
                out.extend_from_slice(fourccs[0]);
            }
            for ((fourcc, id), body) in fourccs.iter().zip(ids).zip(bodies) {
                out.extend(track((kind == 2).then_some(*fourcc), *id, kind != 0, body));
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn parse_video_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_video(&Bytes::from(bytes));
    }

    #[test]
    fn parse_audio_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_audio(&Bytes::from(bytes));
    }

    #[test]
    fn parse_video_never_panics_on_plausible_headers(
        bytes in plausible_payload(VIDEO_FOURCCS.iter().map(|(f, _)| *f).collect()),
    ) {
        if let Ok(tag) = parse_video(&Bytes::from(bytes)) {
            // Walking the tracks of anything that parsed must not panic either.
            let _ = tag.tracks().count();
        }
    }

    #[test]
    fn parse_audio_never_panics_on_plausible_headers(
        bytes in plausible_payload(AUDIO_FOURCCS.iter().map(|(f, _)| *f).collect()),
    ) {
        if let Ok(tag) = parse_audio(&Bytes::from(bytes)) {
            let _ = tag.tracks().count();
        }
    }

    #[test]
    fn generated_enhanced_video_round_trips(
        frame_type in 1u8..=4,
        pt in 0u8..=5,
        multitrack in prop::option::of(0u8..=2),
        mod_ex in prop::option::of((0u32..1_000_000, any::<bool>())),
        tracks in prop::collection::vec(track_model(), 1..5),
    ) {
        let tracks = if multitrack.is_none() || multitrack == Some(0) {
            &tracks[..1]
        } else {
            &tracks[..]
        };
        let shared = multitrack != Some(2);
        let mut fourccs = Vec::new();
        let mut ids = Vec::new();
        let mut bodies = Vec::new();
        let mut expected = Vec::new();
        for (codec_idx, id, cts, data) in tracks {
            let idx = if shared { tracks[0].0 } else { *codec_idx };
            let (fourcc, codec) = VIDEO_FOURCCS[idx];
            let id = if multitrack.is_some() { *id } else { 0 };
            let (body, packet) = video_body(pt, codec, *cts, data);
            fourccs.push(fourcc);
            ids.push(id);
            bodies.push(body);
            expected.push(VideoTrack { track_id: id, codec, packet });
        }
        let header_pt = if multitrack.is_some() { 6 } else { pt };
        let mut payload = Vec::new();
        match mod_ex {
            Some((nanos, wide)) => {
                payload.push(ex_video(frame_type, 7));
                payload.extend(mod_ex_nano(nanos, wide, header_pt));
            }
            None => payload.push(ex_video(frame_type, header_pt)),
        }
        payload.extend(frame_tracks(pt, multitrack, &fourccs, &ids, &bodies));

        let tag = parse_video(&Bytes::from(payload)).unwrap();
        prop_assert!(tag.is_enhanced());
        prop_assert_eq!(tag.timestamp_offset_nanos(), mod_ex.map(|(n, _)| n));
        let expected_ft = match (pt, frame_type) {
            (4, _) => None,
            (_, 1) => Some(FrameType::Key),
            (_, 2) => Some(FrameType::Inter),
            (_, 3) => Some(FrameType::DisposableInter),
            _ => Some(FrameType::GeneratedKey),
        };
        prop_assert_eq!(tag.frame_type(), expected_ft);
        prop_assert_eq!(tag.is_keyframe(), matches!(frame_type, 1 | 4) && (pt == 1 || pt == 3));
        prop_assert_eq!(tag.is_sequence_header(), pt == 0);
        prop_assert_eq!(tag.is_config(), matches!(pt, 0 | 4 | 5));
        prop_assert_eq!(tag.is_sequence_end(), pt == 2);
        prop_assert_eq!(tag.tracks().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn generated_enhanced_audio_round_trips(
        pt in prop::sample::select(vec![0u8, 1, 2, 4]),
        multitrack in prop::option::of(0u8..=2),
        mod_ex in prop::option::of((0u32..1_000_000, any::<bool>())),
        order in 0u8..=2,
        mask in any::<u32>(),
        tracks in prop::collection::vec(
            (0..AUDIO_FOURCCS.len(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..8)),
            1..5,
        ),
    ) {
        let tracks = if multitrack.is_none() || multitrack == Some(0) {
            &tracks[..1]
        } else {
            &tracks[..]
        };
        let shared = multitrack != Some(2);
        let mut fourccs = Vec::new();
        let mut ids = Vec::new();
        let mut bodies = Vec::new();
        let mut expected = Vec::new();
        for (codec_idx, id, data) in tracks {
            let idx = if shared { tracks[0].0 } else { *codec_idx };
            let (fourcc, codec) = AUDIO_FOURCCS[idx];
            let id = if multitrack.is_some() { *id } else { 0 };
            let (body, packet) = audio_body(pt, order, mask, data);
            fourccs.push(fourcc);
            ids.push(id);
            bodies.push(body);
            expected.push(AudioTrack { track_id: id, codec, packet });
        }
        let header_pt = if multitrack.is_some() { 5 } else { pt };
        let mut payload = Vec::new();
        match mod_ex {
            Some((nanos, wide)) => {
                payload.push(ex_audio(7));
                payload.extend(mod_ex_nano(nanos, wide, header_pt));
            }
            None => payload.push(ex_audio(header_pt)),
        }
        payload.extend(frame_tracks(pt, multitrack, &fourccs, &ids, &bodies));

        let tag = parse_audio(&Bytes::from(payload)).unwrap();
        prop_assert!(tag.is_enhanced());
        prop_assert_eq!(tag.timestamp_offset_nanos(), mod_ex.map(|(n, _)| n));
        prop_assert_eq!(tag.is_sequence_header(), pt == 0);
        prop_assert_eq!(tag.is_config(), pt == 0 || pt == 4);
        prop_assert_eq!(tag.is_sequence_end(), pt == 2);
        prop_assert_eq!(tag.tracks().collect::<Vec<_>>(), expected);
    }
}
