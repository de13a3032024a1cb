//! Media tags: arbitrary audio/video payloads parse or fail with a typed
//! error, never panic, and every slice a parsed tag hands out lies inside the
//! payload.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tincan_core::media::{parse_audio, parse_video, AudioPacket, VideoPacket};

fn inside(payload: &Bytes, part: &Bytes) {
    let (start, end) = (
        payload.as_ptr() as usize,
        payload.as_ptr() as usize + payload.len(),
    );
    let p = part.as_ptr() as usize;
    assert!(part.is_empty() || (p >= start && p + part.len() <= end));
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(tag) = parse_video(&payload) {
        let _ = (
            tag.is_keyframe(),
            tag.is_config(),
            tag.is_sequence_end(),
            tag.codec(),
        );
        let _ = tag.composition_time();
        for track in tag.tracks() {
            match &track.packet {
                VideoPacket::SequenceStart(b)
                | VideoPacket::Metadata(b)
                | VideoPacket::Mpeg2TsSequenceStart(b)
                | VideoPacket::CodedFrames { data: b, .. } => inside(&payload, b),
                VideoPacket::SequenceEnd => {}
            }
        }
    }
    if let Ok(tag) = parse_audio(&payload) {
        let _ = (
            tag.is_config(),
            tag.is_sequence_end(),
            tag.codec(),
            tag.sound_params(),
        );
        for track in tag.tracks() {
            match &track.packet {
                AudioPacket::SequenceStart(b) | AudioPacket::CodedFrames(b) => inside(&payload, b),
                AudioPacket::SequenceEnd | AudioPacket::MultichannelConfig(_) => {}
            }
        }
    }
});
