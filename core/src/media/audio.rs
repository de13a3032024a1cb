//! Audio tag headers: legacy FLV and Enhanced RTMP v2.

use bytes::Bytes;

use super::multitrack::{sealed, single_body_type, TrackIter, TrackKind, Tracks};
use super::{read_mod_ex, FourCc, MediaError, Reader};

/// Parses the payload of an RTMP audio message (an FLV audio tag body).
///
/// An empty payload is the "audio silence" message the v2 spec documents
/// (no header at all), so it parses as [`AudioBody::Silence`], not as a
/// truncation. Otherwise the same contract as [`super::parse_video`]: a few
/// header bytes read, zero-copy slices, never a panic.
pub fn parse_audio(payload: &Bytes) -> Result<AudioTag, MediaError> {
    let mut r = Reader::new(payload);
    if r.is_empty() {
        return Ok(AudioTag {
            sound: None,
            enhanced: false,
            timestamp_offset_nanos: None,
            body: AudioBody::Silence,
        });
    }
    let first = r.u8("audio tag header")?;
    if first >> 4 == SOUND_FORMAT_EX_HEADER {
        parse_enhanced(first, &mut r)
    } else {
        parse_legacy(first, &mut r)
    }
}

const SOUND_FORMAT_EX_HEADER: u8 = 9;
const PACKET_TYPE_MULTITRACK: u8 = 5;

/// A parsed audio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    sound: Option<SoundParams>,
    enhanced: bool,
    timestamp_offset_nanos: Option<u32>,
    body: AudioBody,
}

/// What an audio message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioBody {
    /// An empty audio message: a period of silence (spec v2). Players flush
    /// their audio decoder and clock video from the wall clock until audio
    /// resumes, so it must be relayed like any other audio.
    Silence,
    /// One track: every legacy message, and Enhanced without multitrack.
    Single(AudioTrack),
    /// Several tracks sharing this message's timestamp and packet type
    /// (Enhanced RTMP v2 multitrack).
    Multitrack(AudioTracks),
}

/// One audio track of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// The multitrack `trackId`; 0 for a single-track message.
    pub track_id: u8,
    /// The track's codec.
    pub codec: AudioCodec,
    /// What the track carries.
    pub packet: AudioPacket,
}

/// The content of one audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// Codec configuration: AAC `AudioSpecificConfig` (legacy
    /// `AACPacketType` 0 or Enhanced `SequenceStart` for `mp4a`), the Opus
    /// ID header, the FLAC `fLaC` + STREAMINFO header, ...
    SequenceStart(Bytes),
    /// Coded audio frames.
    CodedFrames(Bytes),
    /// End of the audio sequence (Enhanced `SequenceEnd`).
    SequenceEnd,
    /// Enhanced `MultichannelConfig`: the speaker layout, for codecs that
    /// do not describe it themselves.
    MultichannelConfig(MultichannelConfig),
}

/// An Enhanced `MultichannelConfig` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultichannelConfig {
    /// How channels map to speakers.
    pub order: ChannelOrder,
    /// Number of channels.
    pub channel_count: u8,
}

/// `AudioChannelOrder` and the data that comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Only the channel count is known.
    Unspecified,
    /// Channels in the spec's native order; bit `n` of the mask set when
    /// `AudioChannel` `n` is present (`AudioChannelMask`).
    Native {
        /// The `audioChannelFlags` mask.
        mask: u32,
    },
    /// An explicit speaker (`AudioChannel` value) per channel, in bitstream
    /// order; `channel_count` bytes.
    Custom {
        /// The `audioChannelMapping` bytes.
        mapping: Bytes,
    },
}

/// An audio codec, from a legacy sound format or an Enhanced FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Linear PCM, platform endian (format 0).
    LpcmPlatformEndian,
    /// ADPCM (format 1).
    Adpcm,
    /// MP3 (format 2, FourCC `.mp3`).
    Mp3,
    /// Linear PCM, little endian (format 3).
    LpcmLittleEndian,
    /// Nellymoser 16 kHz mono (format 4).
    Nellymoser16kMono,
    /// Nellymoser 8 kHz mono (format 5).
    Nellymoser8kMono,
    /// Nellymoser (format 6).
    Nellymoser,
    /// G.711 A-law (format 7).
    G711ALaw,
    /// G.711 mu-law (format 8).
    G711MuLaw,
    /// AAC (format 10, FourCC `mp4a`).
    Aac,
    /// Speex (format 11).
    Speex,
    /// MP3 8 kHz (format 14).
    Mp3_8k,
    /// Device-specific sound (format 15).
    DeviceSpecific,
    /// Opus (FourCC `Opus`).
    Opus,
    /// FLAC (FourCC `fLaC`).
    Flac,
    /// AC-3 (FourCC `ac-3`).
    Ac3,
    /// E-AC-3 (FourCC `ec-3`).
    Eac3,
}

impl AudioCodec {
    fn from_sound_format(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::LpcmPlatformEndian),
            1 => Ok(Self::Adpcm),
            2 => Ok(Self::Mp3),
            3 => Ok(Self::LpcmLittleEndian),
            4 => Ok(Self::Nellymoser16kMono),
            5 => Ok(Self::Nellymoser8kMono),
            6 => Ok(Self::Nellymoser),
            7 => Ok(Self::G711ALaw),
            8 => Ok(Self::G711MuLaw),
            10 => Ok(Self::Aac),
            11 => Ok(Self::Speex),
            14 => Ok(Self::Mp3_8k),
            15 => Ok(Self::DeviceSpecific),
            other => Err(MediaError::UnknownSoundFormat(other)),
        }
    }

    fn from_fourcc(fourcc: FourCc) -> Result<Self, MediaError> {
        match &fourcc.0 {
            b"Opus" => Ok(Self::Opus),
            b"fLaC" => Ok(Self::Flac),
            b"ac-3" => Ok(Self::Ac3),
            b"ec-3" => Ok(Self::Eac3),
            b".mp3" => Ok(Self::Mp3),
            b"mp4a" => Ok(Self::Aac),
            _ => Err(MediaError::UnknownAudioFourCc(fourcc)),
        }
    }

    /// The Enhanced RTMP FourCC for this codec, if it has one.
    pub fn fourcc(self) -> Option<FourCc> {
        let code = match self {
            Self::Opus => b"Opus",
            Self::Flac => b"fLaC",
            Self::Ac3 => b"ac-3",
            Self::Eac3 => b"ec-3",
            Self::Mp3 => b".mp3",
            Self::Aac => b"mp4a",
            Self::LpcmPlatformEndian
            | Self::Adpcm
            | Self::LpcmLittleEndian
            | Self::Nellymoser16kMono
            | Self::Nellymoser8kMono
            | Self::Nellymoser
            | Self::G711ALaw
            | Self::G711MuLaw
            | Self::Speex
            | Self::Mp3_8k
            | Self::DeviceSpecific => return None,
        };
        Some(FourCc(*code))
    }
}

/// The legacy header's sound parameters (low nibble of the first byte).
///
/// Legacy only: Enhanced audio reuses these bits as the packet type and
/// leaves rate and channels to the codec configuration. Some codecs ignore
/// them (AAC always says 44 kHz stereo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoundParams {
    /// Sampling rate code.
    pub rate: SoundRate,
    /// True for 16-bit samples, false for 8-bit.
    pub sixteen_bit: bool,
    /// True for stereo, false for mono.
    pub stereo: bool,
}

impl SoundParams {
    fn from_bits(v: u8) -> Self {
        Self {
            rate: match (v >> 2) & 0x03 {
                0 => SoundRate::Khz5_5,
                1 => SoundRate::Khz11,
                2 => SoundRate::Khz22,
                _ => SoundRate::Khz44,
            },
            sixteen_bit: v & 0x02 != 0,
            stereo: v & 0x01 != 0,
        }
    }
}

/// Legacy sampling rate code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoundRate {
    /// 5.5 kHz.
    Khz5_5,
    /// 11 kHz.
    Khz11,
    /// 22 kHz.
    Khz22,
    /// 44 kHz.
    Khz44,
}

impl SoundRate {
    /// The rate in hertz.
    pub fn hz(self) -> u32 {
        match self {
            Self::Khz5_5 => 5512,
            Self::Khz11 => 11025,
            Self::Khz22 => 22050,
            Self::Khz44 => 44100,
        }
    }
}

/// Enhanced `AudioPacketType` values that describe a track body.
///
/// Nominally `pub` only because it is [`AudioTrack`]'s sealed
/// `TrackKind` body type; not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SequenceStart,
    CodedFrames,
    SequenceEnd,
    MultichannelConfig,
}

impl BodyType {
    /// The `AudioPacketType` value, as on the wire.
    pub(super) fn nibble(self) -> u8 {
        match self {
            Self::SequenceStart => 0,
            Self::CodedFrames => 1,
            Self::SequenceEnd => 2,
            Self::MultichannelConfig => 4,
        }
    }

    /// Maps a packet type nibble that must describe a body; Multitrack and
    /// ModEx are handled before this point, so seeing them here (inside a
    /// multitrack message) is an error of its own.
    fn from_nibble(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::SequenceStart),
            1 => Ok(Self::CodedFrames),
            2 => Ok(Self::SequenceEnd),
            4 => Ok(Self::MultichannelConfig),
            5 | 7 => Err(MediaError::InvalidTrackPacketType(v)),
            other => Err(MediaError::UnknownAudioPacketType(other)),
        }
    }
}

/// Reads an Enhanced track body of type `ty` (everything left in `r`).
fn parse_ex_body(ty: BodyType, r: &mut Reader<'_>) -> Result<AudioPacket, MediaError> {
    Ok(match ty {
        BodyType::SequenceStart => AudioPacket::SequenceStart(r.rest()),
        BodyType::CodedFrames => AudioPacket::CodedFrames(r.rest()),
        BodyType::SequenceEnd => AudioPacket::SequenceEnd,
        BodyType::MultichannelConfig => {
            let order = r.u8("audioChannelOrder")?;
            let channel_count = r.u8("channelCount")?;
            let order = match order {
                0 => ChannelOrder::Unspecified,
                1 => ChannelOrder::Native {
                    mask: r.u32("audioChannelFlags")?,
                },
                2 => ChannelOrder::Custom {
                    mapping: r.bytes(usize::from(channel_count), "audioChannelMapping")?,
                },
                other => return Err(MediaError::UnknownChannelOrder(other)),
            };
            AudioPacket::MultichannelConfig(MultichannelConfig {
                order,
                channel_count,
            })
        }
    })
}

fn parse_legacy(first: u8, r: &mut Reader<'_>) -> Result<AudioTag, MediaError> {
    let codec = AudioCodec::from_sound_format(first >> 4)?;
    let packet = if codec == AudioCodec::Aac {
        match r.u8("AACPacketType")? {
            0 => AudioPacket::SequenceStart(r.rest()),
            1 => AudioPacket::CodedFrames(r.rest()),
            other => return Err(MediaError::UnknownAacPacketType(other)),
        }
    } else {
        AudioPacket::CodedFrames(r.rest())
    };
    Ok(AudioTag {
        sound: Some(SoundParams::from_bits(first & 0x0f)),
        enhanced: false,
        timestamp_offset_nanos: None,
        body: AudioBody::Single(AudioTrack {
            track_id: 0,
            codec,
            packet,
        }),
    })
}

fn parse_enhanced(first: u8, r: &mut Reader<'_>) -> Result<AudioTag, MediaError> {
    let (packet_type, timestamp_offset_nanos) = read_mod_ex(r, first & 0x0f)?;
    let body = if packet_type == PACKET_TYPE_MULTITRACK {
        let (kind, ty) = AudioTracks::read_header(r)?;
        AudioBody::Multitrack(AudioTracks::read(kind, ty, r)?)
    } else {
        let ty = single_body_type::<AudioTrack>(packet_type)?;
        let codec = AudioCodec::from_fourcc(r.fourcc("FourCC")?)?;
        AudioBody::Single(AudioTrack {
            track_id: 0,
            codec,
            packet: parse_ex_body(ty, r)?,
        })
    };
    Ok(AudioTag {
        sound: None,
        enhanced: true,
        timestamp_offset_nanos,
        body,
    })
}

impl AudioTag {
    /// The legacy sound parameters; `None` for Enhanced audio and silence.
    pub fn sound_params(&self) -> Option<SoundParams> {
        self.sound
    }

    /// Whether the message used the Enhanced RTMP ex-header.
    pub fn is_enhanced(&self) -> bool {
        self.enhanced
    }

    /// The ModEx `TimestampOffsetNano` (0..1 ms), to add to the RTMP
    /// timestamp for sub-millisecond precision.
    pub fn timestamp_offset_nanos(&self) -> Option<u32> {
        self.timestamp_offset_nanos
    }

    /// What the message carries.
    pub fn body(&self) -> &AudioBody {
        &self.body
    }

    /// The message's codec; `None` for silence and for
    /// ManyTracksManyCodecs (ask each track).
    pub fn codec(&self) -> Option<AudioCodec> {
        match &self.body {
            AudioBody::Silence => None,
            AudioBody::Single(track) => Some(track.codec),
            AudioBody::Multitrack(tracks) => tracks.codec(),
        }
    }

    /// The tracks of the message: the one track of a single-track message,
    /// or each track of a multitrack one; none for silence.
    pub fn tracks(&self) -> AudioTrackIter<'_> {
        match &self.body {
            AudioBody::Silence => TrackIter::single(None),
            AudioBody::Single(track) => TrackIter::single(Some(track)),
            AudioBody::Multitrack(tracks) => tracks.iter(),
        }
    }

    /// True for the empty "silence" message.
    pub fn is_silence(&self) -> bool {
        self.body == AudioBody::Silence
    }

    /// True for codec configuration (AAC `AudioSpecificConfig`, Enhanced
    /// `SequenceStart`).
    pub fn is_sequence_header(&self) -> bool {
        self.any_packet(
            |p| matches!(p, AudioPacket::SequenceStart(_)),
            |t| t == BodyType::SequenceStart,
        )
    }

    /// True for state a late joiner needs before decoding: a sequence
    /// header or a `MultichannelConfig`. Keep the latest of each kind per
    /// track.
    pub fn is_config(&self) -> bool {
        self.any_packet(
            |p| {
                matches!(
                    p,
                    AudioPacket::SequenceStart(_) | AudioPacket::MultichannelConfig(_)
                )
            },
            |t| matches!(t, BodyType::SequenceStart | BodyType::MultichannelConfig),
        )
    }

    /// True for an Enhanced `SequenceEnd`: configuration kept for the
    /// track(s) is no longer valid.
    pub fn is_sequence_end(&self) -> bool {
        self.any_packet(
            |p| matches!(p, AudioPacket::SequenceEnd),
            |t| t == BodyType::SequenceEnd,
        )
    }

    /// True if the message carries coded audio (on any track).
    pub fn has_coded_frames(&self) -> bool {
        self.any_packet(
            |p| matches!(p, AudioPacket::CodedFrames(_)),
            |t| t == BodyType::CodedFrames,
        )
    }

    fn any_packet(
        &self,
        single: impl Fn(&AudioPacket) -> bool,
        multi: impl Fn(BodyType) -> bool,
    ) -> bool {
        match &self.body {
            AudioBody::Silence => false,
            AudioBody::Single(track) => single(&track.packet),
            AudioBody::Multitrack(tracks) => multi(tracks.body_type),
        }
    }
}

/// The tracks of a multitrack audio message, validated at parse time and
/// walked lazily (no allocation); the audio name for the [`Tracks`] that
/// audio and video share.
pub type AudioTracks = Tracks<AudioTrack>;

/// Iterator over the tracks of an audio message; yields owned tracks whose
/// byte fields are zero-copy slices of the payload. The audio name for the
/// [`TrackIter`] that audio and video share.
pub type AudioTrackIter<'a> = TrackIter<'a, AudioTrack>;

impl TrackKind for AudioTrack {
    type Codec = AudioCodec;
}

impl sealed::Sealed for AudioTrack {
    type BodyType = BodyType;

    fn body_type(nibble: u8) -> Result<BodyType, MediaError> {
        BodyType::from_nibble(nibble)
    }

    fn unknown_packet_type(nibble: u8) -> MediaError {
        MediaError::UnknownAudioPacketType(nibble)
    }

    fn codec_from_fourcc(fourcc: FourCc) -> Result<AudioCodec, MediaError> {
        AudioCodec::from_fourcc(fourcc)
    }

    fn from_body(
        track_id: u8,
        codec: AudioCodec,
        ty: BodyType,
        body: &Bytes,
    ) -> Result<Self, MediaError> {
        let packet = parse_ex_body(ty, &mut Reader::new(body))?;
        Ok(Self {
            track_id,
            codec,
            packet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_util::{
        assert_short_prefixes_fail, cat, ex_audio, mod_ex_nano, track, u24,
    };
    use crate::media::MultitrackType;

    const FOURCCS: [(&[u8; 4], AudioCodec); 6] = [
        (b"Opus", AudioCodec::Opus),
        (b"fLaC", AudioCodec::Flac),
        (b"ac-3", AudioCodec::Ac3),
        (b"ec-3", AudioCodec::Eac3),
        (b".mp3", AudioCodec::Mp3),
        (b"mp4a", AudioCodec::Aac),
    ];

    fn single(tag: &AudioTag) -> &AudioTrack {
        match tag.body() {
            AudioBody::Single(track) => track,
            other => panic!("expected a single track, got {other:?}"),
        }
    }

    #[test]
    fn legacy_aac_sequence_header_is_audio_specific_config() {
        let tag = parse_audio(&Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10])).unwrap();
        assert_eq!(tag.codec(), Some(AudioCodec::Aac));
        assert!(tag.is_sequence_header() && tag.is_config());
        assert!(!tag.is_enhanced());
        assert_eq!(
            tag.sound_params(),
            Some(SoundParams {
                rate: SoundRate::Khz44,
                sixteen_bit: true,
                stereo: true
            })
        );
        assert_eq!(
            single(&tag).packet,
            AudioPacket::SequenceStart(Bytes::from_static(&[0x12, 0x10]))
        );
    }

    #[test]
    fn legacy_aac_raw_frame() {
        let tag = parse_audio(&cat(&[&[0xAF, 0x01], b"raw"])).unwrap();
        assert!(!tag.is_config());
        assert!(tag.has_coded_frames());
        assert_eq!(
            single(&tag).packet,
            AudioPacket::CodedFrames(Bytes::from_static(b"raw"))
        );
    }

    #[test]
    fn unknown_aac_packet_type_is_an_error() {
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xAF, 0x02])),
            Err(MediaError::UnknownAacPacketType(2))
        );
    }

    #[test]
    fn legacy_mp3_frame_with_sound_params() {
        let tag = parse_audio(&cat(&[&[0x2E], b"mp3"])).unwrap();
        assert_eq!(tag.codec(), Some(AudioCodec::Mp3));
        assert_eq!(
            tag.sound_params(),
            Some(SoundParams {
                rate: SoundRate::Khz44,
                sixteen_bit: true,
                stereo: false
            })
        );
        assert_eq!(
            single(&tag).packet,
            AudioPacket::CodedFrames(Bytes::from_static(b"mp3"))
        );
        assert!(!tag.is_config());
    }

    #[test]
    fn legacy_speex_frame() {
        let tag = parse_audio(&cat(&[&[0xB2], b"spx"])).unwrap();
        assert_eq!(tag.codec(), Some(AudioCodec::Speex));
        assert_eq!(tag.sound_params().map(|p| p.rate.hz()), Some(5512));
    }

    #[test]
    fn legacy_g711_frames() {
        assert_eq!(
            parse_audio(&cat(&[&[0x72], b"a"])).unwrap().codec(),
            Some(AudioCodec::G711ALaw)
        );
        assert_eq!(
            parse_audio(&cat(&[&[0x82], b"u"])).unwrap().codec(),
            Some(AudioCodec::G711MuLaw)
        );
    }

    #[test]
    fn legacy_nellymoser_frames() {
        assert_eq!(
            parse_audio(&cat(&[&[0x42], b"n"])).unwrap().codec(),
            Some(AudioCodec::Nellymoser16kMono)
        );
        assert_eq!(
            parse_audio(&cat(&[&[0x52], b"n"])).unwrap().codec(),
            Some(AudioCodec::Nellymoser8kMono)
        );
        let tag = parse_audio(&cat(&[&[0x66], b"n"])).unwrap();
        assert_eq!(tag.codec(), Some(AudioCodec::Nellymoser));
        assert_eq!(tag.sound_params().map(|p| p.rate), Some(SoundRate::Khz11));
    }

    #[test]
    fn legacy_pcm_adpcm_mp3_8k_and_device_specific() {
        let cases = [
            (0x0u8, AudioCodec::LpcmPlatformEndian),
            (0x1, AudioCodec::Adpcm),
            (0x3, AudioCodec::LpcmLittleEndian),
            (0xE, AudioCodec::Mp3_8k),
            (0xF, AudioCodec::DeviceSpecific),
        ];
        for (format, codec) in cases {
            let tag = parse_audio(&Bytes::from(vec![(format << 4) | 0x0A, 1, 2])).unwrap();
            assert_eq!(tag.codec(), Some(codec));
            assert_eq!(tag.sound_params().map(|p| p.rate), Some(SoundRate::Khz22));
        }
    }

    #[test]
    fn reserved_sound_format_is_an_error() {
        for format in [12u8, 13] {
            assert_eq!(
                parse_audio(&Bytes::from(vec![format << 4, 0])),
                Err(MediaError::UnknownSoundFormat(format))
            );
        }
    }

    #[test]
    fn empty_audio_payload_is_silence() {
        let tag = parse_audio(&Bytes::new()).unwrap();
        assert!(tag.is_silence());
        assert_eq!(tag.codec(), None);
        assert!(!tag.is_config() && !tag.is_sequence_end());
        assert_eq!(tag.tracks().count(), 0);
    }

    #[test]
    fn enhanced_sequence_start_for_each_fourcc() {
        for (fourcc, codec) in FOURCCS {
            let tag = parse_audio(&cat(&[&[ex_audio(0)], fourcc, b"cfg"])).unwrap();
            assert!(tag.is_enhanced());
            assert_eq!(tag.sound_params(), None);
            assert_eq!(tag.codec(), Some(codec));
            assert!(tag.is_sequence_header() && tag.is_config(), "{codec:?}");
            assert_eq!(
                single(&tag).packet,
                AudioPacket::SequenceStart(Bytes::from_static(b"cfg"))
            );
        }
    }

    #[test]
    fn enhanced_coded_frames_for_each_fourcc() {
        for (fourcc, codec) in FOURCCS {
            let tag = parse_audio(&cat(&[&[ex_audio(1)], fourcc, b"frame"])).unwrap();
            assert!(!tag.is_config(), "{codec:?}");
            assert_eq!(
                single(&tag).packet,
                AudioPacket::CodedFrames(Bytes::from_static(b"frame"))
            );
        }
    }

    #[test]
    fn enhanced_sequence_end_for_each_fourcc() {
        for (fourcc, codec) in FOURCCS {
            let tag = parse_audio(&cat(&[&[ex_audio(2)], fourcc])).unwrap();
            assert!(tag.is_sequence_end(), "{codec:?}");
            assert_eq!(single(&tag).packet, AudioPacket::SequenceEnd);
        }
    }

    #[test]
    fn enhanced_multichannel_config_for_each_fourcc() {
        for (fourcc, codec) in FOURCCS {
            let tag = parse_audio(&cat(&[&[ex_audio(4)], fourcc, &[0, 2]])).unwrap();
            assert!(tag.is_config() && !tag.is_sequence_header(), "{codec:?}");
            assert_eq!(
                single(&tag).packet,
                AudioPacket::MultichannelConfig(MultichannelConfig {
                    order: ChannelOrder::Unspecified,
                    channel_count: 2
                })
            );
        }
    }

    #[test]
    fn multichannel_config_native_order_carries_mask() {
        let tag = parse_audio(&cat(&[
            &[ex_audio(4)],
            b"Opus",
            &[1, 6],
            &0x3Fu32.to_be_bytes(),
        ]))
        .unwrap();
        assert_eq!(
            single(&tag).packet,
            AudioPacket::MultichannelConfig(MultichannelConfig {
                order: ChannelOrder::Native { mask: 0x3F },
                channel_count: 6
            })
        );
    }

    #[test]
    fn multichannel_config_custom_order_carries_mapping() {
        let tag = parse_audio(&cat(&[&[ex_audio(4)], b"fLaC", &[2, 3], &[1, 0, 0xFE]])).unwrap();
        assert_eq!(
            single(&tag).packet,
            AudioPacket::MultichannelConfig(MultichannelConfig {
                order: ChannelOrder::Custom {
                    mapping: Bytes::from_static(&[1, 0, 0xFE])
                },
                channel_count: 3
            })
        );
    }

    #[test]
    fn multichannel_config_custom_mapping_shorter_than_count_is_truncated() {
        let payload = cat(&[&[ex_audio(4)], b"Opus", &[2, 4], &[0, 1]]);
        assert!(matches!(
            parse_audio(&payload),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_channel_order_is_an_error() {
        let payload = cat(&[&[ex_audio(4)], b"Opus", &[3, 2]]);
        assert_eq!(
            parse_audio(&payload),
            Err(MediaError::UnknownChannelOrder(3))
        );
    }

    #[test]
    fn reserved_enhanced_audio_packet_type_is_an_error() {
        for pt in [3u8, 6, 8, 15] {
            assert_eq!(
                parse_audio(&cat(&[&[ex_audio(pt)], b"Opus"])),
                Err(MediaError::UnknownAudioPacketType(pt))
            );
        }
    }

    #[test]
    fn unknown_enhanced_audio_fourcc_is_an_error() {
        assert_eq!(
            parse_audio(&cat(&[&[ex_audio(1)], b"vorb", b"x"])),
            Err(MediaError::UnknownAudioFourCc(FourCc(*b"vorb")))
        );
    }

    #[test]
    fn mod_ex_nano_offset_wraps_audio_coded_frames() {
        for wide in [false, true] {
            let payload = cat(&[&[ex_audio(7)], &mod_ex_nano(500, wide, 1), b"Opus", b"pkt"]);
            let tag = parse_audio(&payload).unwrap();
            assert_eq!(tag.timestamp_offset_nanos(), Some(500));
            assert_eq!(
                single(&tag).packet,
                AudioPacket::CodedFrames(Bytes::from_static(b"pkt"))
            );
        }
    }

    #[test]
    fn audio_multitrack_one_track() {
        let payload = cat(&[
            &[ex_audio(5), 0x01],
            b"mp4a",
            &track(None, 1, false, b"aac"),
        ]);
        let tag = parse_audio(&payload).unwrap();
        assert_eq!(tag.codec(), Some(AudioCodec::Aac));
        let all: Vec<_> = tag.tracks().collect();
        assert_eq!(
            all,
            vec![AudioTrack {
                track_id: 1,
                codec: AudioCodec::Aac,
                packet: AudioPacket::CodedFrames(Bytes::from_static(b"aac"))
            }]
        );
    }

    #[test]
    fn audio_multitrack_many_tracks() {
        let payload = cat(&[
            &[ex_audio(5), 0x10],
            b"Opus",
            &track(None, 0, true, b"en"),
            &track(None, 1, true, b"fr"),
        ]);
        let tag = parse_audio(&payload).unwrap();
        assert!(tag.is_sequence_header());
        let AudioBody::Multitrack(tracks) = tag.body() else {
            panic!("expected multitrack");
        };
        assert_eq!(tracks.multitrack_type(), MultitrackType::ManyTracks);
        assert_eq!(tracks.len(), 2);
        let ids: Vec<_> = tracks.iter().map(|t| t.track_id).collect();
        assert_eq!(ids, vec![0, 1]);
    }

    #[test]
    fn audio_multitrack_many_codecs() {
        let payload = cat(&[
            &[ex_audio(5), 0x24],
            &track(Some(b"ac-3"), 0, true, &[1, 6, 0, 0, 0, 0x3F]),
            &track(Some(b"Opus"), 1, true, &[0, 2]),
        ]);
        let tag = parse_audio(&payload).unwrap();
        assert_eq!(tag.codec(), None);
        assert!(tag.is_config());
        let codecs: Vec<_> = tag.tracks().map(|t| t.codec).collect();
        assert_eq!(codecs, vec![AudioCodec::Ac3, AudioCodec::Opus]);
    }

    #[test]
    fn nested_multitrack_or_mod_ex_inside_audio_multitrack_is_an_error() {
        for pt in [5u8, 7] {
            let payload = cat(&[&[ex_audio(5), pt], b"Opus", &[0]]);
            assert_eq!(
                parse_audio(&payload),
                Err(MediaError::InvalidTrackPacketType(pt))
            );
        }
    }

    #[test]
    fn audio_multitrack_too_many_tracks_is_an_error() {
        let mut payload = vec![ex_audio(5), 0x12];
        payload.extend_from_slice(b"Opus");
        for _ in 0..1000 {
            payload.extend(track(None, 0, true, b""));
        }
        assert_eq!(
            parse_audio(&Bytes::from(payload)),
            Err(MediaError::TooManyTracks)
        );
    }

    /// Parses like `parse_audio`, but counts the empty prefix as a failure:
    /// it is the complete silence message, not a shorter form of the tag.
    fn parse_non_empty(payload: &Bytes) -> Result<AudioTag, MediaError> {
        if payload.is_empty() {
            return Err(MediaError::Truncated {
                what: "empty prefix",
            });
        }
        parse_audio(payload)
    }

    #[test]
    fn truncated_legacy_aac_prefixes_fail() {
        assert_short_prefixes_fail(&cat(&[&[0xAF, 0x01], b"raw"]), 2, parse_non_empty);
    }

    #[test]
    fn truncated_enhanced_audio_prefixes_fail() {
        assert_short_prefixes_fail(&cat(&[&[ex_audio(1)], b"Opus", b"p"]), 5, parse_non_empty);
        let mc = cat(&[&[ex_audio(4)], b"Opus", &[1, 6], &[0, 0, 0, 0x3F]]);
        assert_short_prefixes_fail(&mc, mc.len(), parse_non_empty);
    }

    #[test]
    fn truncated_audio_multitrack_prefixes_fail_except_at_track_boundaries() {
        let header = [&[ex_audio(5), 0x11][..], b"mp4a"].concat();
        let first = track(None, 0, true, b"x");
        let second = [&[1u8][..], &u24(2), b"yz"].concat();
        let full = cat(&[&header, &first, &second]);
        let boundary = header.len() + first.len();
        for n in 1..=full.len() {
            let result = parse_audio(&full.slice(..n));
            if n == boundary || n == full.len() {
                assert!(result.is_ok(), "prefix {n} failed: {result:?}");
            } else {
                assert!(result.is_err(), "prefix {n} parsed: {result:?}");
            }
        }
    }
}
