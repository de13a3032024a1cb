//! FLV audio/video tag headers: what the broker must know about every media
//! message without decoding any media.
//!
//! The payload of an RTMP audio (type 8) or video (type 9) message is an FLV
//! audio/video tag body. [`parse_video`] and [`parse_audio`] read its header
//! and answer the questions a live relay asks on every message: which codec,
//! is it a keyframe (where a late joiner may start), is it configuration that
//! must be replayed to late joiners, does it end a sequence, what is the
//! composition time offset. Media bytes come back as zero-copy [`Bytes`](bytes::Bytes)
//! slices of the payload; a single-track message is parsed without
//! allocating, and nothing here can panic or loop without bound on peer
//! input.
//!
//! # Formats understood
//!
//! * Legacy FLV video (Adobe FLV 10.1): frame type + codec id; AVC (7) with
//!   `AVCPacketType` + SI24 composition time; the non-standard ids 12 (HEVC)
//!   and 13 (AV1) that Chinese CDNs and patched FFmpeg builds send with the
//!   same layout as AVC (the "FLV extension" of `tencentyun/flv`,
//!   v1.0.0 2022-07-21, and `runner365/ffmpeg_rtmp_h265`).
//! * Legacy FLV audio: sound format + rate/size/channels; AAC with
//!   `AACPacketType`.
//! * Enhanced RTMP v1 and v2 (veovera/enhanced-rtmp,
//!   `docs/enhanced/enhanced-rtmp-v2.md`, document version
//!   v2-2025-01-21-b2, cross-checked against FFmpeg `libavformat/flvdec.c`
//!   as of the ModEx/multitrack support): ex-header video and audio, FourCC
//!   codecs, ModEx (`TimestampOffsetNano`), multitrack, video metadata
//!   (`colorInfo`, returned undecoded), audio multichannel configuration.
//!
//! # Configuration versus sequence headers
//!
//! [`VideoTag::is_sequence_header`] / [`AudioTag::is_sequence_header`] are
//! true only for a decoder configuration record (legacy AVC/HEVC/AV1
//! sequence header, AAC `AudioSpecificConfig`, Enhanced `SequenceStart`).
//! `is_config()` is wider: it is true for everything a late joiner needs
//! before the first keyframe makes sense, i.e. also Enhanced
//! `MPEG2TSSequenceStart`, video `Metadata` (the spec makes `colorInfo`
//! sticky state: each one replaces the previous and applies to the frames
//! that follow), and audio `MultichannelConfig`. These are independent
//! pieces of state, so a broker should keep the latest of each kind per
//! track, and drop what it kept for a track when `is_sequence_end()` is seen.
//!
//! # Multitrack
//!
//! A multitrack message is validated completely by `parse_*` (every track
//! header, size and codec), then exposed as [`VideoTracks`] /
//! [`AudioTracks`], which re-walk the validated bytes lazily instead of
//! collecting them into a `Vec`. At most [`MAX_TRACKS`] tracks are accepted:
//! `trackId` is a UI8, so a message with more tracks than ids is malformed,
//! and the cap bounds the work a hostile message of thousands of empty
//! tracks can cause.

mod audio;
mod describe;
mod multitrack;
mod reader;
mod single;
mod video;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_util;

use std::fmt;

pub use audio::{
    parse_audio, AudioBody, AudioCodec, AudioPacket, AudioTag, AudioTrack, AudioTrackIter,
    AudioTracks, ChannelOrder, MultichannelConfig, SoundParams, SoundRate,
};
pub use describe::{AudioTrackInfo, MediaInfo, VideoTrackInfo, MAX_DESCRIBED_TRACKS};
pub use multitrack::{MultitrackType, TrackIter, TrackKind, Tracks, MAX_TRACKS};
pub use single::{select_audio_track, select_video_track, TagHead, TrackSelection};
pub use video::{
    parse_video, FrameType, VideoBody, VideoCodec, VideoCommand, VideoPacket, VideoTag, VideoTrack,
    VideoTrackIter, VideoTracks,
};

use reader::Reader;

/// A four-character code naming an Enhanced RTMP codec (`avc1`, `Opus`, ...).
///
/// Kept as raw bytes so an unknown code can be reported exactly as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Peer-controlled bytes: escape anything that is not printable ASCII.
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// Why a media tag could not be parsed.
///
/// The Enhanced RTMP spec requires a receiver to fail in a controlled way on
/// anything it does not recognise, so every unknown value gets its own
/// variant naming it, and a short payload names the field that was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The payload ended inside the named field.
    #[error("media tag truncated in {what}")]
    Truncated {
        /// The field that did not fit.
        what: &'static str,
    },
    /// Video frame type 0, 6 or 7 (reserved).
    #[error("unknown video frame type {0}")]
    UnknownFrameType(u8),
    /// Legacy video codec id not in the FLV spec nor the HEVC/AV1 extension.
    #[error("unknown video codec id {0}")]
    UnknownVideoCodecId(u8),
    /// Legacy sound format 12 or 13 (reserved).
    #[error("unknown sound format {0}")]
    UnknownSoundFormat(u8),
    /// Enhanced video FourCC this parser does not know.
    #[error("unknown video FourCC {0}")]
    UnknownVideoFourCc(FourCc),
    /// Enhanced audio FourCC this parser does not know.
    #[error("unknown audio FourCC {0}")]
    UnknownAudioFourCc(FourCc),
    /// Reserved Enhanced `VideoPacketType`.
    #[error("unknown video packet type {0}")]
    UnknownVideoPacketType(u8),
    /// Reserved Enhanced `AudioPacketType`.
    #[error("unknown audio packet type {0}")]
    UnknownAudioPacketType(u8),
    /// Legacy `AVCPacketType` (also used by HEVC/AV1 by codec id) above 2.
    #[error("unknown AVC packet type {0}")]
    UnknownAvcPacketType(u8),
    /// Legacy `AACPacketType` above 1.
    #[error("unknown AAC packet type {0}")]
    UnknownAacPacketType(u8),
    /// Video command other than start (0) or end (1) of client-side seek.
    #[error("unknown video command {0}")]
    UnknownVideoCommand(u8),
    /// Reserved `AvMultitrackType`.
    #[error("unknown multitrack type {0}")]
    UnknownMultitrackType(u8),
    /// Reserved ModEx type.
    #[error("unknown ModEx type {0}")]
    UnknownModExType(u8),
    /// Reserved `AudioChannelOrder`.
    #[error("unknown audio channel order {0}")]
    UnknownChannelOrder(u8),
    /// The packet type inside a multitrack message was Multitrack or ModEx,
    /// which the spec forbids there.
    #[error("packet type {0} is not allowed inside a multitrack message")]
    InvalidTrackPacketType(u8),
    /// A `TimestampOffsetNano` of a millisecond or more (the spec bounds it
    /// below 1 ms, since whole milliseconds belong in the RTMP timestamp).
    #[error("TimestampOffsetNano {0} ns is not below 1 ms")]
    InvalidTimestampOffsetNano(u32),
    /// More than [`MAX_TRACKS`] tracks in one multitrack message.
    #[error("more than {MAX_TRACKS} tracks in one multitrack message")]
    TooManyTracks,
}

/// `VideoPacketType.ModEx` and `AudioPacketType.ModEx` share the value 7.
const PACKET_TYPE_MOD_EX: u8 = 7;
/// `VideoPacketModExType/AudioPacketModExType.TimestampOffsetNano`.
const MOD_EX_TIMESTAMP_OFFSET_NANO: u8 = 0;
/// One millisecond in nanoseconds: the exclusive bound of the nano offset.
const NANOS_PER_MILLI: u32 = 1_000_000;

/// Consumes a chain of ModEx blocks (Enhanced RTMP v2) starting from the
/// packet type nibble `packet_type`; returns the packet type that follows
/// the chain and the last `TimestampOffsetNano`, if any.
///
/// Layout per block: `modExDataSize` = UI8 + 1, or when that byte is 0xFF,
/// UI16 + 1; `modExData`; then one byte whose high nibble is the ModEx type
/// and low nibble the next packet type. Each block consumes at least three
/// bytes, so the loop is bounded by the payload length.
fn read_mod_ex(r: &mut Reader<'_>, mut packet_type: u8) -> Result<(u8, Option<u32>), MediaError> {
    let mut nanos = None;
    while packet_type == PACKET_TYPE_MOD_EX {
        let mut size = usize::from(r.u8("modExDataSize")?) + 1;
        if size == 256 {
            size = usize::from(r.u16("modExDataSize (UI16)")?) + 1;
        }
        let data = r.slice(size, "modExData")?;
        let types = r.u8("ModEx type")?;
        match types >> 4 {
            MOD_EX_TIMESTAMP_OFFSET_NANO => {
                // The spec reads the first three bytes as UI24 and requires at
                // least three.
                let [a, b, c] = match data {
                    [a, b, c, ..] => [*a, *b, *c],
                    _ => {
                        return Err(MediaError::Truncated {
                            what: "TimestampOffsetNano",
                        })
                    }
                };
                let value = u32::from_be_bytes([0, a, b, c]);
                if value >= NANOS_PER_MILLI {
                    return Err(MediaError::InvalidTimestampOffsetNano(value));
                }
                nanos = Some(value);
            }
            other => return Err(MediaError::UnknownModExType(other)),
        }
        packet_type = types & 0x0f;
    }
    Ok((packet_type, nanos))
}
