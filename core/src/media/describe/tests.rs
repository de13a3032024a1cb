//! Tests with real byte vectors.
//!
//! Every payload below is an RTMP message payload (an FLV tag body) cut
//! from an FLV file written by FFmpeg on this project's Debian machines:
//! `ffmpeg` is Debian's 5.1 (legacy FLV: H.264, AAC, MP3), `ffmpeg9` is
//! the PyPI `imageio-ffmpeg` build n9.0.2 (Enhanced RTMP: HEVC, AV1, VP9,
//! Opus, FLAC, and AAC). The command for each is next to it; the tags were
//! cut with a 20-line Python FLV walker (header, then 11-byte tag headers
//! and `PreviousTagSize`), taking the first config tag of each kind and
//! the first `onMetaData`.

use bytes::Bytes;
use proptest::prelude::*;

use super::audio_config;
use super::bits::BitReader;
use super::video_config;
use super::*;
use crate::amf::amf0::{self, Value};
use crate::media::test_util::{cat, ex_audio, ex_video, si24, track};

fn hex(s: &str) -> Bytes {
    assert!(s.len() % 2 == 0, "odd hex");
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<_>>(),
    )
}

/// The object after `onMetaData` in a script data tag body.
fn metadata(body: &str) -> Value {
    let values = amf0::decode_all(&hex(body)).expect("AMF0");
    assert_eq!(values.first().and_then(Value::as_str), Some("onMetaData"));
    values.into_iter().nth(1).expect("metadata object")
}

// ffmpeg -f lavfi -i testsrc=size=1280x720:rate=30 -t 0.2 -pix_fmt yuv420p
//   -c:v libx264 -profile:v high -level 4.1 -an -f flv h264_720.flv
const H264_720: &str = "170000000001640029ffe1001a67640029acd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800";
const H264_720_META: &str = "02000a6f6e4d65746144617461080000000800086475726174696f6e003fd116872b020c4a000577696474680040940000000000000006686569676874004086800000000000000d766964656f646174617261746500000000000000000000096672616d657261746500403e000000000000000c766964656f636f646563696400401c0000000000000007656e636f64657202000d4c61766635392e32372e313030000866696c6573697a650040c3810000000000000009";
// ffmpeg -f lavfi -i testsrc=size=854x480:rate=25 -t 0.2 -pix_fmt yuv420p
//   -c:v libx264 -an -f flv h264_854.flv   (854 = 864 coded, cropped)
const H264_854: &str = "17000000000164001effe1001a6764001eacd940d83de6f011000003000100000300320f162d9601000668ebe3cb22c0fdf8f800";
// ffmpeg -f lavfi -i testsrc=size=854x480:rate=25 -t 0.2
//   -c:v libx264 -an -f flv h264_854_444.flv   (RGB source: 4:4:4, crop unit 1)
const H264_854_444: &str = "170000000001f4001effe1001b67f4001e919b281b07bc5f80880000030008000003019078b16cb001000668ebe3c44844fff8f800";
// ffmpeg -f lavfi -i testsrc=size=1920x1080:rate=25 -t 0.2 -pix_fmt yuv420p
//   -c:v libx264 -x264-params interlaced=1 -an -f flv h264_1080i.flv
const H264_1080I: &str = "170000000001640028ffe1001a67640028acd94078044fde0220000003002000000643e2c5b2c001000668fba3cb22c0fdf8f800";
// ffmpeg -f lavfi -i testsrc=size=320x240:rate=15 -t 0.2 -pix_fmt yuv420p
//   -c:v libx264 -profile:v baseline -an -f flv h264_base.flv
const H264_BASE: &str =
    "17000000000142c00cffe100186742c00cd90141fb0110000003001000000301e0f142a48001000568cb83cb20";
// ffmpeg9 -f lavfi -i testsrc=size=1280x720:rate=30 -t 0.2 -pix_fmt yuv420p
//   -c:v libx265 -x265-params info=0 -an -f flv hevc.flv
const HEVC_720: &str = "90687663310101600000009000000000005df000fcfdf8f800000f03200001001840010c01ffff01600000030090000003000003005d959809210001002b42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003c1022000100074401c172b46240";
const HEVC_720_META: &str = "02000a6f6e4d65746144617461080000000800086475726174696f6e003fd116872b020c4a000577696474680040940000000000000006686569676874004086800000000000000d766964656f646174617261746500000000000000000000096672616d657261746500403e000000000000000c766964656f636f64656369640041da1d98cc4000000007656e636f64657202000c4c61766636332e312e313032000866696c6573697a650040ba720000000000000009";
// ffmpeg9 -f lavfi -i testsrc=size=854x480:rate=25 -t 0.2 -pix_fmt yuv420p10le
//   -c:v libx265 -x265-params info=0 -an -f flv hevc_854_10.flv
const HEVC_854_10: &str = "90687663310102200000009000000000005af000fcfdfafa00000f03200001001840010c01ffff02200000030090000003000003005a959809210001002c42010102200000030090000003000003005aa006b201e1d6d96566924caf016808000003000800000300c84022000100074401c172b46240";
// ffmpeg9 -f lavfi -i testsrc=size=640x360:rate=24 -t 0.2 -pix_fmt yuv420p
//   -c:v libaom-av1 -cpu-used 8 -an -f flv av1.flv
// (FFmpeg writes an empty SequenceStart first, then the av1C one.)
const AV1_EMPTY: &str = "9061763031";
const AV1_640: &str = "906176303181010c000a0b0000000cc4ff6736be4010";
const AV1_META: &str = "02000a6f6e4d65746144617461080000000800086475726174696f6e003fcac083126e978d000577696474680040840000000000000006686569676874004076800000000000000d766964656f646174617261746500000000000000000000096672616d6572617465004038000000000000000c766964656f636f64656369640041d85d8c0c4000000007656e636f64657202000c4c61766636332e312e313032000866696c6573697a650040b3e90000000000000009";
// ffmpeg9 -f lavfi -i testsrc=size=640x360:rate=24 -t 0.2 -pix_fmt yuv420p
//   -c:v libvpx-vp9 -deadline realtime -an -f flv vp9.flv
const VP9: &str = "9076703039010000000015820202020000";
const VP9_META: &str = "02000a6f6e4d65746144617461080000000800086475726174696f6e003fcac083126e978d000577696474680040840000000000000006686569676874004076800000000000000d766964656f646174617261746500000000000000000000096672616d6572617465004038000000000000000c766964656f636f64656369640041dd9c0c0e4000000007656e636f64657202000c4c61766636332e312e313032000866696c6573697a650040bfbf0000000000000009";
// ffmpeg9 -f lavfi -i sine=r=48000 -ac 2 -t 0.2 -c:a aac -f flv aac48.flv
// (the ASC ends with the backward-compatible 0x2b7 sync extension, SBR off)
const AAC_48_STEREO: &str = "af00119056e500";
const AAC_48_META: &str = "02000a6f6e4d65746144617461080000000800086475726174696f6e003fcc49ba5e353f7d000d617564696f646174617261746500405f400000000000000f617564696f73616d706c65726174650040e7700000000000000f617564696f73616d706c6573697a65004030000000000000000673746572656f0101000c617564696f636f64656369640040240000000000000007656e636f64657202000c4c61766636332e312e313032000866696c6573697a650040adac0000000000000009";
// ffmpeg9 -f lavfi -i sine=r=44100 -ac 1 -t 0.2 -c:a aac -f flv aac44m.flv
const AAC_44_MONO: &str = "af00120856e500";
// ffmpeg9 -f lavfi -i sine=r=48000 -ac 2 -t 0.2 -c:a libopus -f flv opus.flv
const OPUS: &str = "904f7075734f707573486561640102380180bb0000000000";
// ffmpeg9 -f lavfi -i sine=r=44100 -ac 2 -t 0.2 -c:a flac -f flv flac.flv
const FLAC: &str = "90664c61430400040000010e0001780ac442f000002274360fd4eaa31bf4ab2e3a9e88ae53624a";
// ffmpeg -f lavfi -i sine=r=48000 -ac 2 -t 0.2 -c:a libmp3lame -f flv mp348.flv
// (first audio tag, truncated after the frame header: FLV's rate bits say
// 44 kHz, the MPEG header says 48 kHz)
const MP3_48_FRAME: &str = "2ffffb9464000001ee0850bd3c600800000d20a000011681";

fn video(info: &mut MediaInfo, payload: &str) -> bool {
    info.update_from_video(&hex(payload))
}

fn audio(info: &mut MediaInfo, payload: &str) -> bool {
    info.update_from_audio(&hex(payload))
}

fn only_video(payload: &str) -> VideoTrackInfo {
    let mut info = MediaInfo::new();
    assert!(video(&mut info, payload), "no change from {payload}");
    assert_eq!(info.video().len(), 1);
    info.video()[0].clone()
}

fn only_audio(payload: &str) -> AudioTrackInfo {
    let mut info = MediaInfo::new();
    assert!(audio(&mut info, payload), "no change from {payload}");
    assert_eq!(info.audio().len(), 1);
    info.audio()[0].clone()
}

#[test]
fn h264_high_1280x720_30() {
    let v = only_video(H264_720);
    assert_eq!(
        v,
        VideoTrackInfo {
            track: 0,
            codec: Some(VideoCodec::Avc),
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(30.0),
            profile: Some("High"),
            level: Some("4.1"),
        }
    );
}

#[test]
fn h264_854x480_is_cropped_from_864() {
    let v = only_video(H264_854);
    assert_eq!((v.width, v.height), (Some(854), Some(480)));
    assert_eq!((v.profile, v.level), (Some("High"), Some("3")));
    assert_eq!(v.frame_rate, Some(25.0));
}

#[test]
fn h264_444_crops_in_single_pixels() {
    let v = only_video(H264_854_444);
    assert_eq!((v.width, v.height), (Some(854), Some(480)));
    assert_eq!(v.profile, Some("High 4:4:4 Predictive"));
}

#[test]
fn h264_interlaced_1080_counts_field_pairs() {
    // frame_mbs_only_flag = 0: 34 map units of 32 lines, cropped by 8.
    let v = only_video(H264_1080I);
    assert_eq!((v.width, v.height), (Some(1920), Some(1080)));
    assert_eq!(v.frame_rate, Some(25.0));
    assert_eq!(v.level, Some("4"));
}

#[test]
fn h264_constrained_baseline() {
    let v = only_video(H264_BASE);
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    assert_eq!(v.profile, Some("Constrained Baseline"));
    assert_eq!(v.level, Some("1.2"));
    assert_eq!(v.frame_rate, Some(15.0));
}

#[test]
fn hevc_main_1280x720_30() {
    let v = only_video(HEVC_720);
    assert_eq!(
        v,
        VideoTrackInfo {
            track: 0,
            codec: Some(VideoCodec::Hevc),
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(30.0),
            profile: Some("Main"),
            level: Some("3.1"),
        }
    );
}

#[test]
fn hevc_main10_854x480_uses_the_conformance_window() {
    let v = only_video(HEVC_854_10);
    assert_eq!((v.width, v.height), (Some(854), Some(480)));
    assert_eq!((v.profile, v.level), (Some("Main 10"), Some("3")));
    assert_eq!(v.frame_rate, Some(25.0));
}

#[test]
fn av1_640x360_after_an_empty_sequence_start() {
    let mut info = MediaInfo::new();
    assert!(video(&mut info, AV1_EMPTY));
    assert_eq!(info.video()[0].codec, Some(VideoCodec::Av1));
    assert_eq!(info.video()[0].width, None);
    assert!(video(&mut info, AV1_640));
    let v = &info.video()[0];
    assert_eq!((v.width, v.height), (Some(640), Some(360)));
    assert_eq!((v.profile, v.level), (Some("Main"), Some("2.1")));
    // libaom writes no timing info: the frame rate comes from metadata.
    assert_eq!(v.frame_rate, None);
    assert!(info.update_from_metadata(&metadata(AV1_META)));
    assert_eq!(info.video()[0].frame_rate, Some(24.0));
    assert!(!video(&mut info, AV1_640), "same header, no change");
}

#[test]
fn vp9_size_comes_from_metadata() {
    let mut info = MediaInfo::new();
    assert!(video(&mut info, VP9));
    let v = &info.video()[0];
    assert_eq!(v.codec, Some(VideoCodec::Vp9));
    assert_eq!((v.width, v.height), (None, None));
    assert_eq!((v.profile, v.level), (Some("Profile 0"), Some("2.1")));
    assert!(info.update_from_metadata(&metadata(VP9_META)));
    let v = &info.video()[0];
    assert_eq!(
        (v.width, v.height, v.frame_rate),
        (Some(640), Some(360), Some(24.0))
    );
    assert_eq!(v.codec, Some(VideoCodec::Vp9));
}

#[test]
fn aac_48k_stereo_lc_with_sync_extension() {
    let a = only_audio(AAC_48_STEREO);
    assert_eq!(
        a,
        AudioTrackInfo {
            track: 0,
            codec: Some(AudioCodec::Aac),
            sample_rate: Some(48_000),
            channels: Some(2),
            profile: Some("LC"),
        }
    );
}

#[test]
fn aac_44k_mono_ignores_the_flv_sound_bits() {
    // The tag header says 44 kHz stereo, as it always does for AAC.
    let a = only_audio(AAC_44_MONO);
    assert_eq!((a.sample_rate, a.channels), (Some(44_100), Some(1)));
    // AAC frames keep the ASC's values despite their "stereo" bits.
    let mut info = MediaInfo::new();
    audio(&mut info, AAC_44_MONO);
    assert!(!audio(&mut info, "af01211234"));
    assert_eq!(info.audio()[0].channels, Some(1));
}

#[test]
fn opus_reports_48k_output_and_channels() {
    let a = only_audio(OPUS);
    assert_eq!(a.codec, Some(AudioCodec::Opus));
    assert_eq!((a.sample_rate, a.channels), (Some(48_000), Some(2)));
}

#[test]
fn flac_streaminfo() {
    let a = only_audio(FLAC);
    assert_eq!(a.codec, Some(AudioCodec::Flac));
    assert_eq!((a.sample_rate, a.channels), (Some(44_100), Some(2)));
    // The same STREAMINFO behind the stream marker and a block header.
    let body = &hex(FLAC)[5..];
    let wrapped = cat(&[b"fLaC", &[0x80, 0, 0, 34], body]);
    assert_eq!(audio_config::flac(&wrapped).sample_rate, Some(44_100));
}

#[test]
fn mp3_rate_comes_from_the_frame_header() {
    let a = only_audio(MP3_48_FRAME);
    assert_eq!(a.codec, Some(AudioCodec::Mp3));
    assert_eq!((a.sample_rate, a.channels), (Some(48_000), Some(2)));
}

#[test]
fn legacy_sound_bits_and_their_exceptions() {
    let cases: [(u8, AudioCodec, u32, u8); 6] = [
        (0x3E, AudioCodec::LpcmLittleEndian, 44_100, 1), // 44 kHz, 16-bit, mono
        (0x0B, AudioCodec::LpcmPlatformEndian, 22_050, 2),
        (0xB2, AudioCodec::Speex, 16_000, 1), // bits say 5.5 kHz
        (0x4E, AudioCodec::Nellymoser16kMono, 16_000, 1),
        (0x72, AudioCodec::G711ALaw, 8_000, 1),
        (0x83, AudioCodec::G711MuLaw, 8_000, 2),
    ];
    for (first, codec, rate, channels) in cases {
        let mut info = MediaInfo::new();
        assert!(info.update_from_audio(&Bytes::from(vec![first, 1, 2, 3])));
        let a = &info.audio()[0];
        assert_eq!(a.codec, Some(codec));
        assert_eq!(
            (a.sample_rate, a.channels),
            (Some(rate), Some(channels)),
            "{codec:?}"
        );
        assert!(!info.update_from_audio(&Bytes::from(vec![first, 4, 5])));
    }
}

#[test]
fn metadata_fills_gaps_but_headers_win() {
    let mut info = MediaInfo::new();
    // Metadata first: everything it says shows.
    assert!(info.update_from_metadata(&metadata(H264_720_META)));
    let v = info.video()[0].clone();
    assert_eq!(
        (v.codec, v.width, v.height, v.frame_rate),
        (Some(VideoCodec::Avc), Some(1280), Some(720), Some(30.0))
    );
    assert_eq!(v.profile, None);
    // The header agrees and adds profile and level.
    assert!(video(&mut info, H264_720));
    assert_eq!(info.video()[0].profile, Some("High"));
    // Metadata that lies about the size does not override the SPS, and
    // changes nothing visible.
    let mut lying = metadata(H264_720_META);
    if let Value::EcmaArray(members) = &mut lying {
        for (k, v) in members.iter_mut() {
            if k == "width" {
                *v = Value::Number(640.0);
            }
        }
    }
    assert!(!info.update_from_metadata(&lying));
    assert_eq!(info.video()[0].width, Some(1280));
    // Sequence end drops the header layer: the lie shows.
    assert!(video(&mut info, "1702000000"));
    assert_eq!(info.video()[0].width, Some(640));
    assert_eq!(info.video()[0].profile, None);
}

#[test]
fn hevc_metadata_codec_id_is_a_fourcc_number() {
    let mut info = MediaInfo::new();
    assert!(info.update_from_metadata(&metadata(HEVC_720_META)));
    assert_eq!(info.video()[0].codec, Some(VideoCodec::Hevc));
    assert!(info.audio().is_empty());
}

#[test]
fn audio_metadata_reads_rate_stereo_and_codec() {
    let mut info = MediaInfo::new();
    assert!(info.update_from_metadata(&metadata(AAC_48_META)));
    assert!(info.video().is_empty());
    let a = &info.audio()[0];
    assert_eq!(
        (a.codec, a.sample_rate, a.channels),
        (Some(AudioCodec::Aac), Some(48_000), Some(2))
    );
}

#[test]
fn clear_data_frame_drops_the_metadata_layer() {
    let mut info = MediaInfo::new();
    let set = Data::SetDataFrame {
        handler: "onMetaData".into(),
        values: vec![metadata(VP9_META)],
        body: Bytes::new(),
    };
    assert!(info.update_from_data(&set));
    assert!(!info.update_from_data(&set));
    assert!(video(&mut info, VP9));
    let clear = Data::ClearDataFrame {
        handler: "onMetaData".into(),
    };
    assert!(info.update_from_data(&clear));
    assert_eq!(info.video()[0].width, None);
    assert_eq!(info.video()[0].codec, Some(VideoCodec::Vp9));
    let other = Data::Other {
        handler: "onTextData".into(),
        values: vec![metadata(VP9_META)],
        body: Bytes::new(),
    };
    assert!(!info.update_from_data(&other));
}

#[test]
fn track_id_info_maps_describe_each_track() {
    let track = |w: f64| {
        Value::object([
            ("width", Value::Number(w)),
            ("height", Value::Number(w / 2.0)),
        ])
    };
    let meta = Value::EcmaArray(vec![
        ("width".into(), Value::Number(1920.0)),
        (
            "videoTrackIdInfoMap".into(),
            Value::object([("1", track(1280.0)), ("2", track(640.0)), ("x", track(1.0))]),
        ),
        (
            "audioTrackIdInfoMap".into(),
            Value::object([("3", Value::object([("audiochannels", Value::Number(6.0))]))]),
        ),
    ]);
    let mut info = MediaInfo::new();
    assert!(info.update_from_metadata(&meta));
    let widths: Vec<_> = info.video().iter().map(|v| (v.track, v.width)).collect();
    assert_eq!(
        widths,
        vec![(0, Some(1920)), (1, Some(1280)), (2, Some(640))]
    );
    assert_eq!(info.audio_track(3).and_then(|a| a.channels), Some(6));
    // A new onMetaData without the maps forgets the per-track entries.
    assert!(info.update_from_metadata(&Value::object([("width", Value::Number(1920.0))])));
    assert_eq!(info.video().len(), 1);
    assert!(info.audio().is_empty());
}

#[test]
fn multitrack_sequence_starts_update_their_tracks() {
    let avcc = &hex(H264_720)[5..];
    let hvcc = &hex(HEVC_720)[5..];
    // ManyTracksManyCodecs, SequenceStart, key frame.
    let payload = cat(&[
        &[ex_video(1, 6), 0x20],
        &track(Some(b"avc1"), 1, true, avcc),
        &track(Some(b"hvc1"), 4, true, hvcc),
    ]);
    let mut info = MediaInfo::new();
    assert!(info.update_from_video(&payload));
    let got: Vec<_> = info
        .video()
        .iter()
        .map(|v| (v.track, v.codec, v.width))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some(VideoCodec::Avc), Some(1280)),
            (4, Some(VideoCodec::Hevc), Some(1280)),
        ]
    );
    assert!(!info.update_from_video(&payload));
    let opus = &hex(OPUS)[5..];
    let audio = cat(&[&[ex_audio(5), 0x10], b"Opus", &track(None, 2, true, opus)]);
    assert!(info.update_from_audio(&audio));
    assert_eq!(info.audio_track(2).and_then(|a| a.channels), Some(2));
}

#[test]
fn tracks_beyond_the_cap_are_ignored() {
    let mut info = MediaInfo::new();
    for id in 0..=255u8 {
        let payload = cat(&[&[ex_video(1, 6), 0x00], b"vp09", &[id], &[1, 2]]);
        let changed = info.update_from_video(&payload);
        assert_eq!(
            changed,
            usize::from(id) < MAX_DESCRIBED_TRACKS,
            "track {id}"
        );
    }
    assert_eq!(info.video().len(), MAX_DESCRIBED_TRACKS);
}

#[test]
fn codec_change_in_frames_drops_the_old_configuration() {
    let mut info = MediaInfo::new();
    video(&mut info, H264_720);
    assert!(!info.update_from_video(&cat(&[&[0x27, 0x01], &si24(0), b"nal"])));
    // Sorenson frames on the same track: the H.264 size no longer applies.
    assert!(info.update_from_video(&cat(&[&[0x22], b"h263"])));
    assert_eq!(info.video()[0].codec, Some(VideoCodec::SorensonH263));
    assert_eq!(info.video()[0].width, None);
}

#[test]
fn multichannel_config_sets_channels() {
    let mut info = MediaInfo::new();
    assert!(info.update_from_audio(&cat(&[&[ex_audio(4)], b"ac-3", &[0, 6]])));
    let a = &info.audio()[0];
    assert_eq!((a.codec, a.channels), (Some(AudioCodec::Ac3), Some(6)));
}

#[test]
fn malformed_configuration_leaves_fields_none() {
    // Truncated SPS: profile/level from the avcC bytes, no size.
    let full = hex(H264_720);
    let short = full.slice(..20);
    let mut info = MediaInfo::new();
    assert!(info.update_from_video(&short));
    let v = &info.video()[0];
    assert_eq!(v.codec, Some(VideoCodec::Avc));
    assert_eq!((v.width, v.height, v.frame_rate), (None, None, None));
    for n in 0..full.len() {
        let mut info = MediaInfo::new();
        info.update_from_video(&full.slice(..n));
        if let Some(v) = info.video().first() {
            assert!(
                v.width.is_none() || v.width == Some(1280),
                "prefix {n}: {v:?}"
            );
        }
    }
}

// ----------------------------------------------------------- synthetic --

/// MSB-first bit writer for configurations FFmpeg will not produce.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    used: u32,
}

impl Bits {
    fn put(&mut self, n: u32, v: u64) -> &mut Self {
        for i in (0..n).rev() {
            if self.used % 8 == 0 {
                self.bytes.push(0);
            }
            let bit = u8::from((v >> i) & 1 == 1);
            let last = self.bytes.last_mut().expect("pushed");
            *last |= bit << (7 - self.used % 8);
            self.used += 1;
        }
        self
    }

    fn ue(&mut self, v: u32) -> &mut Self {
        let v = u64::from(v) + 1;
        let len = 64 - v.leading_zeros();
        self.put(len - 1, 0).put(len, v)
    }

    fn se(&mut self, v: i32) -> &mut Self {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(k as u32)
    }

    /// Stop bit, then the bytes with emulation prevention inserted.
    fn rbsp(&mut self) -> Vec<u8> {
        self.put(1, 1);
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in &self.bytes {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

/// An H.264 High SPS for 1920x1080 (1088 cropped by 8) at 50 / (2 * 1)
/// = 25 fps, with a scaling matrix (one list ending early through a
/// zero `nextScale`), picture order count type 1 and a VUI whose
/// aspect ratio, signal type and chroma location precede the timing.
fn synthetic_h264_sps() -> Vec<u8> {
    let mut b = Bits::default();
    b.put(8, 100).put(8, 0).put(8, 40).ue(0); // profile, constraints, level, id
    b.ue(1).ue(0).ue(0).put(1, 0); // 4:2:0, 8-bit, no bypass
    b.put(1, 1); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        b.put(1, 1);
        let size = if i < 6 { 16 } else { 64 };
        if i == 2 {
            b.se(-8); // nextScale 0: the rest of the list is implied
        } else {
            for _ in 0..size {
                b.se(1);
            }
        }
    }
    b.ue(0).ue(1); // log2_max_frame_num, pic_order_cnt_type 1
    b.put(1, 0).se(-2).se(3).ue(2).se(1).se(-1);
    b.ue(4).put(1, 0); // max_num_ref_frames, gaps
    b.ue(119).ue(67).put(1, 1).put(1, 1); // 120x68 MBs, frame_mbs_only, direct_8x8
    b.put(1, 1).ue(0).ue(0).ue(0).ue(4); // crop bottom 4 * 2
    b.put(1, 1); // vui_parameters_present_flag
    b.put(1, 1).put(8, 255).put(16, 1).put(16, 1); // extended SAR
    b.put(1, 1).put(1, 0); // overscan
    b.put(1, 1)
        .put(3, 5)
        .put(1, 0)
        .put(1, 1)
        .put(24, 0x01_01_01);
    b.put(1, 1).ue(0).ue(0); // chroma loc
    b.put(1, 1).put(32, 1).put(32, 50).put(1, 1); // timing
    let mut sps = vec![0x67];
    sps.extend(b.rbsp());
    sps
}

fn avcc(sps: &[u8]) -> Vec<u8> {
    let byte = |i: usize| sps.get(i).copied().unwrap_or(0);
    let mut out = vec![1, byte(1), byte(2), byte(3), 0xff, 0xe1];
    out.extend((sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(0);
    out
}

#[test]
fn h264_scaling_lists_and_poc_type_1_are_skipped() {
    let config = video_config::avc(&avcc(&synthetic_h264_sps()));
    assert_eq!((config.width, config.height), (Some(1920), Some(1080)));
    assert_eq!(config.frame_rate, Some(25.0));
    assert_eq!((config.profile, config.level), (Some("High"), Some("4")));
}

#[test]
fn h264_sps_without_vui_timing_has_no_frame_rate() {
    let mut b = Bits::default();
    b.put(8, 77).put(8, 0).put(8, 31).ue(0); // Main: no chroma_format_idc
    b.ue(0).ue(2).ue(1).put(1, 0); // poc type 2
    b.ue(79).ue(44).put(1, 1).put(1, 1).put(1, 0).put(1, 0); // 1280x720
    let mut sps = vec![0x67];
    sps.extend(b.rbsp());
    let config = video_config::avc(&avcc(&sps));
    assert_eq!((config.width, config.height), (Some(1280), Some(720)));
    assert_eq!(config.frame_rate, None);
    assert_eq!(config.profile, Some("Main"));
}

#[test]
fn h264_crop_larger_than_the_picture_is_ignored() {
    let mut b = Bits::default();
    b.put(8, 66)
        .put(8, 0)
        .put(8, 30)
        .ue(0)
        .ue(0)
        .ue(2)
        .ue(1)
        .put(1, 0);
    b.ue(0)
        .ue(0)
        .put(1, 1)
        .put(1, 1)
        .put(1, 1)
        .ue(100)
        .ue(0)
        .ue(0)
        .ue(0);
    let mut sps = vec![0x67];
    sps.extend(b.rbsp());
    let config = video_config::avc(&avcc(&sps));
    assert_eq!((config.width, config.height), (None, None));
}

#[test]
fn aac_escapes_object_type_and_explicit_rate() {
    // AOT 31 + 6 bits (42 = 32 + 10: USAC), index 15 + 24-bit 44056 Hz,
    // 6 channels.
    let mut b = Bits::default();
    b.put(5, 31).put(6, 10).put(4, 15).put(24, 44_056).put(4, 6);
    let config = audio_config::aac(&b.bytes);
    assert_eq!(config.profile, Some("xHE-AAC"));
    assert_eq!(
        (config.sample_rate, config.channels),
        (Some(44_056), Some(6))
    );
}

#[test]
fn he_aac_reports_the_sbr_rate_and_v2_stereo() {
    // Explicit hierarchical: AOT 5, 24 kHz core, stereo, 48 kHz SBR, AOT 2.
    let mut b = Bits::default();
    b.put(5, 5).put(4, 6).put(4, 2).put(4, 3).put(5, 2);
    let config = audio_config::aac(&b.bytes);
    assert_eq!(config.profile, Some("HE-AAC"));
    assert_eq!(
        (config.sample_rate, config.channels),
        (Some(48_000), Some(2))
    );
    // HE-AACv2: AOT 29, mono core decodes to stereo.
    let mut b = Bits::default();
    b.put(5, 29).put(4, 6).put(4, 1).put(4, 3).put(5, 2);
    let config = audio_config::aac(&b.bytes);
    assert_eq!(config.profile, Some("HE-AACv2"));
    assert_eq!(
        (config.sample_rate, config.channels),
        (Some(48_000), Some(2))
    );
    // Backward compatible: LC 22.05 kHz mono, then 0x2b7, SBR at 44.1 kHz,
    // then 0x548 with PS.
    let mut b = Bits::default();
    b.put(5, 2).put(4, 7).put(4, 1).put(3, 0);
    b.put(11, 0x2b7)
        .put(5, 5)
        .put(1, 1)
        .put(4, 4)
        .put(11, 0x548)
        .put(1, 1);
    let config = audio_config::aac(&b.bytes);
    assert_eq!(config.profile, Some("HE-AACv2"));
    assert_eq!(
        (config.sample_rate, config.channels),
        (Some(44_100), Some(2))
    );
}

#[test]
fn bit_reader_handles_real_emulation_prevention() {
    // The 720p SPS has `00 00 03` twice; without removing them the VUI
    // timing reads garbage.
    // Tag header (5), avcC header (6), SPS length (2).
    let sps = &hex(H264_720)[13..];
    assert!(sps.windows(3).any(|w| w == [0, 0, 3]));
    let mut r = BitReader::rbsp(sps);
    assert_eq!(r.u8(), Some(0x67));
}

// ----------------------------------------------------------- proptests --

fn any_video_payload() -> impl Strategy<Value = Vec<u8>> {
    let configs = prop::sample::select(vec![
        H264_720,
        H264_854,
        H264_1080I,
        HEVC_720,
        HEVC_854_10,
        AV1_640,
        VP9,
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // A real sequence header with bytes flipped and cut.
        (
            configs,
            any::<prop::sample::Index>(),
            any::<u8>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(base, at, xor, cut)| {
                let mut v = hex(base).to_vec();
                let i = at.index(v.len());
                v[i] ^= xor;
                v.truncate(cut.index(v.len() + 1).max(5));
                v
            }),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|tail| {
            cat(&[
                &[0x17, 0x00],
                &si24(0),
                &[1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 40, 0x67],
                &tail,
            ])
            .to_vec()
        }),
    ]
}

fn any_audio_payload() -> impl Strategy<Value = Vec<u8>> {
    let configs = prop::sample::select(vec![AAC_48_STEREO, AAC_44_MONO, OPUS, FLAC, MP3_48_FRAME]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        (
            configs,
            any::<prop::sample::Index>(),
            any::<u8>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(base, at, xor, cut)| {
                let mut v = hex(base).to_vec();
                let i = at.index(v.len());
                v[i] ^= xor;
                v.truncate(cut.index(v.len() + 1).max(2));
                v
            }),
    ]
}

proptest! {
    #[test]
    fn config_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let v = video_config::avc(&bytes);
        prop_assert!(v.width.map_or(true, |w| w > 0));
        video_config::hevc(&bytes);
        video_config::av1(&bytes);
        video_config::vp9(&bytes);
        audio_config::aac(&bytes);
        audio_config::opus(&bytes);
        audio_config::flac(&bytes);
        audio_config::mpeg_audio(&bytes);
        let mut sps = vec![0x67];
        sps.extend_from_slice(&bytes);
        video_config::avc(&avcc(&sps));
    }

    #[test]
    fn media_info_never_panics_and_stays_bounded(
        video in prop::collection::vec(any_video_payload(), 0..8),
        audio in prop::collection::vec(any_audio_payload(), 0..8),
    ) {
        let mut info = MediaInfo::new();
        for (v, a) in video.iter().zip(audio.iter()) {
            let before = info.clone();
            let changed = info.update_from_video(&Bytes::from(v.clone()));
            prop_assert_eq!(changed, before != info);
            let before = info.clone();
            let changed = info.update_from_audio(&Bytes::from(a.clone()));
            prop_assert_eq!(changed, before.video() != info.video() || before.audio() != info.audio());
        }
        prop_assert!(info.video().len() <= MAX_DESCRIBED_TRACKS);
        prop_assert!(info.audio().len() <= MAX_DESCRIBED_TRACKS);
    }
}
