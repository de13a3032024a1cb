//! What a live stream carries, for operators: codecs per track, picture
//! size, frame rate, audio sample rate and channels.
//!
//! [`MediaInfo`] is fed the stream's own messages (every audio and video
//! message may be passed; only configuration and codec changes cost more
//! than a header parse) and its `onMetaData`, and says whether the
//! description changed, so a server emits an event (or updates a metric)
//! only when something did.
//!
//! The precedence between sources is documented on [`MediaInfo`].

mod audio_config;
mod bits;
mod video_config;

#[cfg(test)]
mod tests;

use bytes::Bytes;

use self::audio_config::AudioConfig;
use self::video_config::VideoConfig;
use super::{
    parse_audio, parse_video, AudioCodec, AudioPacket, AudioTag, AudioTrack, VideoCodec,
    VideoPacket, VideoTag, VideoTrack,
};
use crate::amf::{amf0, amf3};
use crate::message::Data;

/// How many tracks of each kind a [`MediaInfo`] describes. A multitrack
/// stream may name 256 track ids; a description of a handful is what an
/// operator can use, and the cap bounds the memory a peer can make the
/// server hold per stream.
pub const MAX_DESCRIBED_TRACKS: usize = 16;

/// The description of one video track. Every field but `track` is `None`
/// until some source gives it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct VideoTrackInfo {
    /// The multitrack `trackId`; 0 is the default (and every legacy) track.
    pub track: u8,
    /// The codec; `None` when only metadata without a codec id is known.
    pub codec: Option<VideoCodec>,
    /// Displayed width in pixels (after cropping / conformance window;
    /// AV1's maximum frame width).
    pub width: Option<u32>,
    /// Displayed height in pixels (likewise).
    pub height: Option<u32>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
    /// Profile name, e.g. `"High"` (H.264), `"Main 10"` (HEVC), `"Main"`
    /// (AV1), `"Profile 0"` (VP9).
    pub profile: Option<&'static str>,
    /// Level, e.g. `"4.1"`, `"1b"` (H.264), `"5.1"` (HEVC), `"3.0"` (AV1).
    pub level: Option<&'static str>,
}

/// The description of one audio track. Every field but `track` is `None`
/// until some source gives it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AudioTrackInfo {
    /// The multitrack `trackId`; 0 is the default (and every legacy) track.
    pub track: u8,
    /// The codec; `None` when only metadata without a codec id is known.
    pub codec: Option<AudioCodec>,
    /// Output sample rate in hertz (HE-AAC: the SBR rate; Opus: always
    /// 48000, the rate Opus decodes at, not the header's informational
    /// input rate).
    pub sample_rate: Option<u32>,
    /// Output channel count (HE-AACv2: 2).
    pub channels: Option<u8>,
    /// Profile: the AAC object type, e.g. `"LC"`, `"HE-AAC"`, `"HE-AACv2"`.
    pub profile: Option<&'static str>,
}

/// A live stream's media description, kept up to date from its messages.
///
/// Sans-IO and cheap: feed it every media message with
/// [`update_from_video`](Self::update_from_video) /
/// [`update_from_audio`](Self::update_from_audio) (or the `_tag` forms
/// when the message is parsed already) and each data message with
/// [`update_from_data`](Self::update_from_data); each returns whether the
/// description changed.
///
/// # Sources and precedence
///
/// Each track keeps two layers, and each field of the description is
/// taken from the first layer that has it:
///
/// 1. **The stream**: decoder configuration (H.264 `avcC` and SPS, HEVC
///    `hvcC` and SPS, AV1 `av1C` and sequence header, VP9 `vpcC`, AAC
///    `AudioSpecificConfig`, Opus `OpusHead`, FLAC STREAMINFO), the MPEG
///    audio frame header of MP3, the legacy FLV sound bits of codecs that
///    have no configuration, an Enhanced `MultichannelConfig`, and the codec
///    of the messages themselves. This is what decoders actually use.
/// 2. **Metadata**: `onMetaData` (`width`, `height`, `framerate` /
///    `videoframerate`, `videocodecid`, `audiosamplerate`, `audiochannels` /
///    `stereo`, `audiocodecid`, and the Enhanced RTMP v2
///    `videoTrackIdInfoMap` / `audioTrackIdInfoMap` per track). It is what
///    the encoder *says*, so it only fills gaps: a frame rate when the SPS
///    has no VUI timing, a VP9 picture size (`vpcC` has none), anything
///    before the first sequence header arrives.
///
/// A new sequence header replaces the stream layer of its track whole (a
/// value the old header gave and the new one does not is dropped, not
/// kept stale); a new `onMetaData` replaces the metadata layer of every
/// track whole; a sequence end clears the track's stream layer, and
/// `@clearDataFrame onMetaData` clears the metadata layer. A track whose
/// two layers are both empty is dropped from the description.
///
/// # Bounds
///
/// Everything here is driven by peer bytes, so nothing panics, no loop
/// runs longer than the input (or a small syntax bound), and nothing is
/// allocated in proportion to a length the peer declares: at most
/// [`MAX_DESCRIBED_TRACKS`] tracks per kind are kept (messages for further
/// tracks are ignored), and malformed configuration leaves fields `None`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MediaInfo {
    // `video[i]` is the merge of `video_layers[i]`; both sorted by track.
    video: Vec<VideoTrackInfo>,
    audio: Vec<AudioTrackInfo>,
    video_layers: Vec<Layers<VideoTrackInfo>>,
    audio_layers: Vec<Layers<AudioTrackInfo>>,
}

/// The two sources of one track's description.
#[derive(Clone, Debug, PartialEq, Default)]
struct Layers<T> {
    stream: T,
    metadata: T,
}

/// What the two track description types share, so one update routine
/// serves both.
trait TrackInfo: Clone + PartialEq {
    fn empty(track: u8) -> Self;
    fn track(&self) -> u8;
    fn is_empty(&self) -> bool;
    /// Field by field: `first`'s value if it has one, else `second`'s.
    fn merge(first: &Self, second: &Self) -> Self;
}

impl TrackInfo for VideoTrackInfo {
    fn empty(track: u8) -> Self {
        Self {
            track,
            ..Self::default()
        }
    }

    fn track(&self) -> u8 {
        self.track
    }

    fn is_empty(&self) -> bool {
        *self == Self::empty(self.track)
    }

    fn merge(first: &Self, second: &Self) -> Self {
        Self {
            track: first.track,
            codec: first.codec.or(second.codec),
            width: first.width.or(second.width),
            height: first.height.or(second.height),
            frame_rate: first.frame_rate.or(second.frame_rate),
            profile: first.profile.or(second.profile),
            level: first.level.or(second.level),
        }
    }
}

impl TrackInfo for AudioTrackInfo {
    fn empty(track: u8) -> Self {
        Self {
            track,
            ..Self::default()
        }
    }

    fn track(&self) -> u8 {
        self.track
    }

    fn is_empty(&self) -> bool {
        *self == Self::empty(self.track)
    }

    fn merge(first: &Self, second: &Self) -> Self {
        Self {
            track: first.track,
            codec: first.codec.or(second.codec),
            sample_rate: first.sample_rate.or(second.sample_rate),
            channels: first.channels.or(second.channels),
            profile: first.profile.or(second.profile),
        }
    }
}

/// Applies `f` to the layers of `track` (created if absent and there is
/// room), re-merges, and reports whether the merged description changed.
fn apply<T: TrackInfo>(
    merged: &mut Vec<T>,
    layers: &mut Vec<Layers<T>>,
    track: u8,
    f: impl FnOnce(&mut Layers<T>),
) -> bool {
    let (index, old) = match layers.binary_search_by_key(&track, |l| l.stream.track()) {
        Ok(i) => (i, merged.get(i).cloned()),
        Err(i) => {
            if layers.len() >= MAX_DESCRIBED_TRACKS {
                return false;
            }
            layers.insert(
                i,
                Layers {
                    stream: T::empty(track),
                    metadata: T::empty(track),
                },
            );
            merged.insert(i, T::empty(track));
            (i, None)
        }
    };
    let Some(slot) = layers.get_mut(index) else {
        return false;
    };
    f(slot);
    let new = T::merge(&slot.stream, &slot.metadata);
    if new.is_empty() {
        layers.remove(index);
        merged.remove(index);
        // Tracks are only kept while non-empty, so removing one that was
        // there is a change.
        return old.is_some();
    }
    let changed = old.as_ref() != Some(&new);
    if let Some(m) = merged.get_mut(index) {
        *m = new;
    }
    changed
}

impl MediaInfo {
    /// An empty description.
    pub fn new() -> Self {
        Self::default()
    }

    /// The video tracks described, by ascending track id.
    pub fn video(&self) -> &[VideoTrackInfo] {
        &self.video
    }

    /// The audio tracks described, by ascending track id.
    pub fn audio(&self) -> &[AudioTrackInfo] {
        &self.audio
    }

    /// The description of video track `track`, if any.
    pub fn video_track(&self, track: u8) -> Option<&VideoTrackInfo> {
        self.video.iter().find(|t| t.track == track)
    }

    /// The description of audio track `track`, if any.
    pub fn audio_track(&self, track: u8) -> Option<&AudioTrackInfo> {
        self.audio.iter().find(|t| t.track == track)
    }

    /// Heap memory the description holds, so queues of descriptions (the
    /// server's events) can be bounded in true memory.
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of;
        self.video.capacity() * size_of::<VideoTrackInfo>()
            + self.audio.capacity() * size_of::<AudioTrackInfo>()
            + self.video_layers.capacity() * size_of::<Layers<VideoTrackInfo>>()
            + self.audio_layers.capacity() * size_of::<Layers<AudioTrackInfo>>()
    }

    /// Whether nothing is known: no track of either kind.
    pub fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }

    /// Forgets everything, e.g. when a stream is republished; returns
    /// whether there was anything to forget.
    pub fn clear(&mut self) -> bool {
        let changed = !self.is_empty();
        *self = Self::default();
        changed
    }

    /// Updates the description from the payload of an RTMP video message
    /// (an FLV video tag body, legacy or Enhanced, single or multitrack).
    /// Returns whether the description changed. A payload that does not
    /// parse changes nothing.
    ///
    /// Takes [`Bytes`] because the media tag parser slices rather than
    /// copies; every message payload in the core already is one.
    pub fn update_from_video(&mut self, payload: &Bytes) -> bool {
        parse_video(payload).is_ok_and(|tag| self.update_from_video_tag(&tag))
    }

    /// Like [`update_from_video`](Self::update_from_video), for a message
    /// already parsed with [`parse_video`]: each track of a multitrack
    /// message updates the track it names.
    pub fn update_from_video_tag(&mut self, tag: &VideoTag) -> bool {
        let mut changed = false;
        for track in tag.tracks() {
            changed |= self.update_video_track(&track);
        }
        changed
    }

    /// Updates the description from the payload of an RTMP audio message
    /// (an FLV audio tag body). Returns whether the description changed.
    pub fn update_from_audio(&mut self, payload: &Bytes) -> bool {
        parse_audio(payload).is_ok_and(|tag| self.update_from_audio_tag(&tag))
    }

    /// Like [`update_from_audio`](Self::update_from_audio), for a message
    /// already parsed with [`parse_audio`].
    pub fn update_from_audio_tag(&mut self, tag: &AudioTag) -> bool {
        let mut changed = false;
        for track in tag.tracks() {
            changed |= self.update_audio_track(tag, &track);
        }
        changed
    }

    /// Updates the metadata layer from a data message: `onMetaData`
    /// (sent through `@setDataFrame` or directly) replaces it,
    /// `@clearDataFrame onMetaData` clears it; other data messages change
    /// nothing. Returns whether the description changed.
    pub fn update_from_data(&mut self, data: &Data) -> bool {
        match data {
            Data::SetDataFrame {
                handler, values, ..
            }
            | Data::Other {
                handler, values, ..
            } if handler == "onMetaData" => values
                .iter()
                .find(|v| v.is_object())
                .is_some_and(|v| self.update_from_metadata(v)),
            Data::ClearDataFrame { handler } if handler == "onMetaData" => {
                self.replace_metadata(&[], &[])
            }
            _ => false,
        }
    }

    /// Replaces the metadata layer with what an `onMetaData` object (AMF0
    /// object or ECMA array, or an AMF3 object behind the AMF0 switch)
    /// says. Values of the wrong type or out of range are ignored. Returns
    /// whether the description changed.
    pub fn update_from_metadata(&mut self, metadata: &amf0::Value) -> bool {
        // Bounded by MAX_DESCRIBED_TRACKS + 1 entries each.
        let mut video = Vec::new();
        let mut audio = Vec::new();
        let top = Field::of(metadata);
        if let Some(v) = video_meta(top, 0) {
            video.push(v);
        }
        if let Some(a) = audio_meta(top, 0) {
            audio.push(a);
        }
        if let amf0::Value::Object(members) | amf0::Value::EcmaArray(members) = metadata {
            for (key, map) in members {
                let video_map = key == "videoTrackIdInfoMap";
                if !video_map && key != "audioTrackIdInfoMap" {
                    continue;
                }
                let (amf0::Value::Object(tracks) | amf0::Value::EcmaArray(tracks)) = map else {
                    continue;
                };
                for (id, info) in tracks {
                    let Ok(id) = id.parse::<u8>() else {
                        continue;
                    };
                    let info = Field::Amf0(info);
                    if video_map && video.len() <= MAX_DESCRIBED_TRACKS {
                        video.extend(video_meta(info, id));
                    } else if !video_map && audio.len() <= MAX_DESCRIBED_TRACKS {
                        audio.extend(audio_meta(info, id));
                    }
                }
            }
        }
        self.replace_metadata(&video, &audio)
    }

    /// Sets every track's metadata layer to the given entry (later entries
    /// for the same track win) or to empty.
    fn replace_metadata(&mut self, video: &[VideoTrackInfo], audio: &[AudioTrackInfo]) -> bool {
        let mut changed = false;
        changed |= replace_layer(&mut self.video, &mut self.video_layers, video);
        changed |= replace_layer(&mut self.audio, &mut self.audio_layers, audio);
        changed
    }

    fn update_video_track(&mut self, track: &VideoTrack) -> bool {
        let codec = track.codec;
        let stream = match &track.packet {
            VideoPacket::SequenceStart(config) => {
                let config = video_config(codec, config);
                Some(VideoTrackInfo {
                    track: track.track_id,
                    codec: Some(codec),
                    width: config.width,
                    height: config.height,
                    frame_rate: config.frame_rate,
                    profile: config.profile,
                    level: config.level,
                })
            }
            VideoPacket::SequenceEnd => Some(VideoTrackInfo::empty(track.track_id)),
            // Frames only tell the codec: a different codec than the one
            // configured invalidates what its configuration said.
            VideoPacket::CodedFrames { .. } | VideoPacket::Mpeg2TsSequenceStart(_) => {
                let current = self
                    .video_layers
                    .iter()
                    .find(|l| l.stream.track == track.track_id)
                    .and_then(|l| l.stream.codec);
                (current != Some(codec)).then(|| VideoTrackInfo {
                    codec: Some(codec),
                    ..VideoTrackInfo::empty(track.track_id)
                })
            }
            VideoPacket::Metadata(_) => None,
        };
        let Some(stream) = stream else {
            return false;
        };
        apply(
            &mut self.video,
            &mut self.video_layers,
            track.track_id,
            |l| {
                l.stream = stream;
            },
        )
    }

    fn update_audio_track(&mut self, tag: &AudioTag, track: &AudioTrack) -> bool {
        let codec = track.codec;
        let id = track.track_id;
        let current = self
            .audio_layers
            .iter()
            .find(|l| l.stream.track == id)
            .map(|l| l.stream.clone());
        let with = |config: AudioConfig| AudioTrackInfo {
            track: id,
            codec: Some(codec),
            sample_rate: config.sample_rate,
            channels: config.channels,
            profile: config.profile,
        };
        let stream = match &track.packet {
            AudioPacket::SequenceStart(config) => with(audio_config(codec, config)),
            AudioPacket::SequenceEnd => AudioTrackInfo::empty(id),
            AudioPacket::CodedFrames(data) => {
                let mut config = match tag.sound_params() {
                    Some(sound) => audio_config::legacy(codec, sound),
                    None => AudioConfig::default(),
                };
                if matches!(codec, AudioCodec::Mp3 | AudioCodec::Mp3_8k) {
                    let frame = audio_config::mpeg_audio(data);
                    if frame.sample_rate.is_some() {
                        config = frame;
                    }
                }
                match current {
                    // Same codec: frames refresh what they carry (legacy
                    // sound bits, MP3 headers) and keep the configuration.
                    Some(mut current) if current.codec == Some(codec) => {
                        current.sample_rate = config.sample_rate.or(current.sample_rate);
                        current.channels = config.channels.or(current.channels);
                        current
                    }
                    _ => with(config),
                }
            }
            AudioPacket::MultichannelConfig(mc) => {
                let mut stream = match current {
                    Some(current) if current.codec == Some(codec) => current,
                    _ => with(AudioConfig::default()),
                };
                if mc.channel_count > 0 {
                    stream.channels = Some(mc.channel_count);
                }
                stream
            }
        };
        apply(&mut self.audio, &mut self.audio_layers, id, |l| {
            l.stream = stream;
        })
    }
}

/// Sets the metadata layer of every track to its entry in `entries` or to
/// empty; returns whether any merged description changed.
fn replace_layer<T: TrackInfo>(
    merged: &mut Vec<T>,
    layers: &mut Vec<Layers<T>>,
    entries: &[T],
) -> bool {
    let mut changed = false;
    // Clear tracks the new metadata does not mention (collected first:
    // `apply` may remove slots). At most MAX_DESCRIBED_TRACKS ids.
    let stale: Vec<u8> = layers
        .iter()
        .map(|l| l.stream.track())
        .filter(|id| !entries.iter().any(|e| e.track() == *id))
        .collect();
    for id in stale {
        changed |= apply(merged, layers, id, |l| l.metadata = T::empty(id));
    }
    for entry in entries {
        let id = entry.track();
        changed |= apply(merged, layers, id, |l| l.metadata = entry.clone());
    }
    changed
}

fn video_config(codec: VideoCodec, config: &[u8]) -> VideoConfig {
    match codec {
        VideoCodec::Avc => video_config::avc(config),
        VideoCodec::Hevc => video_config::hevc(config),
        VideoCodec::Av1 => video_config::av1(config),
        VideoCodec::Vp9 => video_config::vp9(config),
        _ => VideoConfig::default(),
    }
}

fn audio_config(codec: AudioCodec, config: &[u8]) -> AudioConfig {
    match codec {
        AudioCodec::Aac => audio_config::aac(config),
        AudioCodec::Opus => audio_config::opus(config),
        AudioCodec::Flac => audio_config::flac(config),
        _ => AudioConfig::default(),
    }
}

/// An AMF0 value or an AMF3 one (behind the AMF0 `avmplus` switch), so
/// metadata reads the same from either encoding.
#[derive(Clone, Copy)]
enum Field<'a> {
    Amf0(&'a amf0::Value),
    Amf3(&'a amf3::Value),
}

impl<'a> Field<'a> {
    fn of(v: &'a amf0::Value) -> Self {
        match v {
            amf0::Value::AvmPlus(inner) => Field::Amf3(inner),
            other => Field::Amf0(other),
        }
    }

    fn get(self, key: &str) -> Option<Field<'a>> {
        match self {
            Field::Amf0(v) => v.get(key).map(Field::of),
            Field::Amf3(v) => v.get(key).map(Field::Amf3),
        }
    }

    fn number(self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Field::Amf0(v) => v.as_f64(),
            Field::Amf3(v) => v.as_f64(),
        }
        .filter(|n| n.is_finite())
    }

    fn boolean(self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Field::Amf0(v) => v.as_bool(),
            Field::Amf3(v) => v.as_bool(),
        }
    }

    fn string(self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            Field::Amf0(v) => v.as_str(),
            Field::Amf3(v) => v.as_str(),
        }
    }

    /// A number in `lo..=hi`, rounded to an integer.
    fn integer(self, key: &str, lo: u32, hi: u32) -> Option<u32> {
        let n = self.number(key)?.round();
        // In range, so the cast is exact.
        (n >= f64::from(lo) && n <= f64::from(hi)).then_some(n as u32)
    }

    /// A codec id: a number (legacy id or FourCC as a 32-bit integer) or
    /// a four-character string.
    fn codec_id(self, key: &str) -> Option<CodecId> {
        if let Some(n) = self.number(key) {
            let n = n.round();
            return (n >= 0.0 && n <= f64::from(u32::MAX)).then(|| {
                // In range, so the cast is exact.
                let n = n as u32;
                if n < 256 {
                    CodecId::Legacy(n as u8)
                } else {
                    CodecId::FourCc(n.to_be_bytes())
                }
            });
        }
        let s = self.string(key)?.as_bytes();
        Some(CodecId::FourCc(s.try_into().ok()?))
    }
}

enum CodecId {
    Legacy(u8),
    FourCc([u8; 4]),
}

/// The largest picture dimension metadata may claim (H.264/HEVC/AV1 all
/// stay within 65536).
const MAX_DIMENSION: u32 = 65_536;

/// The video part of one metadata object; `None` if it says nothing
/// about video.
fn video_meta(m: Field<'_>, track: u8) -> Option<VideoTrackInfo> {
    let frame_rate = m
        .number("framerate")
        .or_else(|| m.number("videoframerate"))
        .filter(|&fps| fps > 0.0 && fps <= 1000.0);
    let info = VideoTrackInfo {
        track,
        codec: m.codec_id("videocodecid").and_then(|id| match id {
            CodecId::Legacy(id) => video_codec_from_legacy_id(id),
            CodecId::FourCc(code) => video_codec_from_fourcc(code),
        }),
        width: m.integer("width", 1, MAX_DIMENSION),
        height: m.integer("height", 1, MAX_DIMENSION),
        frame_rate,
        profile: None,
        level: None,
    };
    (!info.is_empty()).then_some(info)
}

/// The audio part of one metadata object; `None` if it says nothing
/// about audio.
fn audio_meta(m: Field<'_>, track: u8) -> Option<AudioTrackInfo> {
    let channels = m
        .integer("audiochannels", 1, 255)
        .and_then(|c| u8::try_from(c).ok())
        .or_else(|| m.boolean("stereo").map(|s| if s { 2 } else { 1 }));
    let info = AudioTrackInfo {
        track,
        codec: m.codec_id("audiocodecid").and_then(|id| match id {
            CodecId::Legacy(id) => audio_codec_from_sound_format(id),
            CodecId::FourCc(code) => audio_codec_from_fourcc(code),
        }),
        // Rates below 1 kHz are the FLV rate codes some old encoders wrote,
        // not rates.
        sample_rate: m.integer("audiosamplerate", 1000, 768_000),
        channels,
        profile: None,
    };
    (!info.is_empty()).then_some(info)
}

fn video_codec_from_legacy_id(id: u8) -> Option<VideoCodec> {
    Some(match id {
        2 => VideoCodec::SorensonH263,
        3 => VideoCodec::ScreenVideo,
        4 => VideoCodec::Vp6,
        5 => VideoCodec::Vp6Alpha,
        6 => VideoCodec::ScreenVideoV2,
        7 => VideoCodec::Avc,
        12 => VideoCodec::Hevc,
        13 => VideoCodec::Av1,
        _ => return None,
    })
}

fn video_codec_from_fourcc(code: [u8; 4]) -> Option<VideoCodec> {
    Some(match &code {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp08" => VideoCodec::Vp8,
        b"vp09" => VideoCodec::Vp9,
        b"vvc1" => VideoCodec::Vvc,
        _ => return None,
    })
}

fn audio_codec_from_sound_format(id: u8) -> Option<AudioCodec> {
    Some(match id {
        0 => AudioCodec::LpcmPlatformEndian,
        1 => AudioCodec::Adpcm,
        2 => AudioCodec::Mp3,
        3 => AudioCodec::LpcmLittleEndian,
        4 => AudioCodec::Nellymoser16kMono,
        5 => AudioCodec::Nellymoser8kMono,
        6 => AudioCodec::Nellymoser,
        7 => AudioCodec::G711ALaw,
        8 => AudioCodec::G711MuLaw,
        10 => AudioCodec::Aac,
        11 => AudioCodec::Speex,
        14 => AudioCodec::Mp3_8k,
        15 => AudioCodec::DeviceSpecific,
        _ => return None,
    })
}

fn audio_codec_from_fourcc(code: [u8; 4]) -> Option<AudioCodec> {
    Some(match &code {
        b"Opus" => AudioCodec::Opus,
        b"fLaC" => AudioCodec::Flac,
        b"ac-3" => AudioCodec::Ac3,
        b"ec-3" => AudioCodec::Eac3,
        b".mp3" => AudioCodec::Mp3,
        b"mp4a" => AudioCodec::Aac,
        _ => return None,
    })
}
