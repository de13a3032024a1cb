//! Audio decoder configuration → sample rate, channels and profile: AAC
//! `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1), the Opus ID header
//! (RFC 7845 5.1), FLAC STREAMINFO (RFC 9639 8.2), MPEG audio frame
//! headers, and the legacy FLV sound bits.

use super::bits::BitReader;
use crate::media::{AudioCodec, SoundParams};

/// What an audio decoder configuration says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct AudioConfig {
    pub(super) sample_rate: Option<u32>,
    pub(super) channels: Option<u8>,
    pub(super) profile: Option<&'static str>,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

const AOT_SBR: u32 = 5;
const AOT_PS: u32 = 29;

/// `GetAudioObjectType()`: 5 bits, or 31 then 6 more (32 + value).
fn aac_object_type(r: &mut BitReader<'_>) -> Option<u32> {
    let aot = r.bits(5)?;
    if aot == 31 {
        Some(32 + r.bits(6)?)
    } else {
        Some(aot)
    }
}

/// A sampling frequency index, or 15 then an explicit 24-bit rate.
fn aac_rate(r: &mut BitReader<'_>) -> Option<u32> {
    let index = r.bits(4)?;
    if index == 15 {
        return r.bits(24).filter(|&hz| hz > 0);
    }
    AAC_RATES.get(index as usize).copied()
}

/// Channels of a `channelConfiguration`; 0 (a program config element
/// decides) and reserved values are unknown.
fn aac_channels(config: u32) -> Option<u8> {
    Some(match config {
        1..=6 => u8::try_from(config).ok()?,
        7 | 12 | 14 => 8,
        11 => 7,
        13 => 24,
        _ => return None,
    })
}

fn aac_profile(aot: u32) -> Option<&'static str> {
    Some(match aot {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        AOT_SBR => "HE-AAC",
        6 => "Scalable",
        17 => "ER LC",
        19 => "ER LTP",
        20 => "ER Scalable",
        23 => "LD",
        AOT_PS => "HE-AACv2",
        39 => "ELD",
        42 => "xHE-AAC",
        _ => return None,
    })
}

/// Reads an `AudioSpecificConfig`.
///
/// The rate reported is the output rate: for explicitly signalled HE-AAC
/// (object type 5 or 29, or the backward-compatible `0x2b7` sync
/// extension) the SBR rate, not the core rate. HE-AACv2 (parametric
/// stereo) decodes a mono core to stereo, so it reports 2 channels.
/// Implicit SBR (an LC stream that happens to carry SBR data) cannot be
/// seen in the configuration and reports the core rate.
pub(super) fn aac(asc: &[u8]) -> AudioConfig {
    let mut out = AudioConfig::default();
    let mut r = BitReader::new(asc);
    let Some(aot) = aac_object_type(&mut r) else {
        return out;
    };
    let Some(core_rate) = aac_rate(&mut r) else {
        out.profile = aac_profile(aot);
        return out;
    };
    out.sample_rate = Some(core_rate);
    let Some(config) = r.bits(4) else {
        out.profile = aac_profile(aot);
        return out;
    };
    out.channels = aac_channels(config);
    out.profile = aac_profile(aot);
    if aot == AOT_SBR || aot == AOT_PS {
        if aot == AOT_PS && config == 1 {
            out.channels = Some(2);
        }
        if let Some(ext_rate) = aac_rate(&mut r) {
            out.sample_rate = Some(ext_rate);
        }
        // The core object type follows; its config is not needed.
        return out;
    }
    // Backward-compatible SBR signalling after a GASpecificConfig (only
    // followed for the common GA object types with a known channel layout,
    // since a program config element would have to be parsed first).
    if matches!(aot, 1..=4) && config != 0 {
        let _ = aac_sync_extension(&mut r, &mut out);
    }
    out
}

/// `GASpecificConfig` for AOT 1-4, then the `0x2b7` sync extension.
fn aac_sync_extension(r: &mut BitReader<'_>, out: &mut AudioConfig) -> Option<()> {
    r.flag()?; // frameLengthFlag
    if r.flag()? {
        r.skip(14)?; // coreCoderDelay
    }
    r.flag()?; // extensionFlag (0 for AOT 1-4)
    if r.remaining() < 16 || r.bits(11)? != 0x2b7 {
        return Some(());
    }
    let ext = aac_object_type(r)?;
    if ext == AOT_SBR && r.flag()? {
        // sbrPresentFlag
        out.sample_rate = aac_rate(r).or(out.sample_rate);
        out.profile = aac_profile(AOT_SBR);
        if r.remaining() >= 12 && r.bits(11)? == 0x548 && r.flag()? {
            // psPresentFlag
            out.profile = aac_profile(AOT_PS);
            if out.channels == Some(1) {
                out.channels = Some(2);
            }
        }
    }
    Some(())
}

/// Reads an Opus ID header (`OpusHead`). Opus always decodes at 48 kHz,
/// so that is the rate reported; the header's "input sample rate" is only
/// the original source's rate and is not reported.
pub(super) fn opus(head: &[u8]) -> AudioConfig {
    let mut out = AudioConfig::default();
    if head.get(..8) != Some(b"OpusHead") {
        return out;
    }
    // Version: only major version 0 is defined; a higher one may change
    // the layout.
    let (Some(&version), Some(&channels)) = (head.get(8), head.get(9)) else {
        return out;
    };
    if version >> 4 != 0 {
        return out;
    }
    out.sample_rate = Some(48_000);
    out.channels = Some(channels).filter(|&c| c > 0);
    out
}

/// STREAMINFO length (RFC 9639 8.2).
const STREAMINFO_LEN: usize = 34;

/// Reads FLAC configuration: a bare STREAMINFO block body (what FFmpeg
/// sends as the `fLaC` sequence start), optionally behind a metadata block
/// header, optionally behind the `fLaC` stream marker.
pub(super) fn flac(config: &[u8]) -> AudioConfig {
    let mut out = AudioConfig::default();
    let mut body = config.strip_prefix(b"fLaC").unwrap_or(config);
    if body.len() >= STREAMINFO_LEN + 4 && body[0] & 0x7f == 0 && body[1..4] == [0, 0, 34] {
        body = &body[4..];
    }
    let Some(info) = body.get(..STREAMINFO_LEN) else {
        return out;
    };
    let mut r = BitReader::new(&info[10..]);
    let (Some(rate), Some(channels)) = (r.bits(20), r.bits(3)) else {
        return out;
    };
    out.sample_rate = Some(rate).filter(|&hz| hz > 0);
    out.channels = u8::try_from(channels + 1).ok();
    out
}

/// Reads an MPEG-1/2/2.5 audio frame header at the start of `frame`: FLV's
/// sound bits cannot say 48 kHz (or 32/24/16 kHz), so the frame itself is
/// the better source.
pub(super) fn mpeg_audio(frame: &[u8]) -> AudioConfig {
    let mut out = AudioConfig::default();
    let Some(&[b0, b1, b2, b3]) = frame.get(..4).and_then(|h| <&[u8; 4]>::try_from(h).ok()) else {
        return out;
    };
    // 11 sync bits, version != reserved, layer != reserved, rate != 3,
    // bitrate index != 15.
    let version = (b1 >> 3) & 0x03;
    let layer = (b1 >> 1) & 0x03;
    let rate_index = (b2 >> 2) & 0x03;
    if b0 != 0xff
        || b1 & 0xe0 != 0xe0
        || version == 1
        || layer == 0
        || rate_index == 3
        || b2 >> 4 == 15
    {
        return out;
    }
    let base = [44_100, 48_000, 32_000][usize::from(rate_index)];
    out.sample_rate = Some(match version {
        3 => base,     // MPEG-1
        2 => base / 2, // MPEG-2
        _ => base / 4, // MPEG-2.5
    });
    out.channels = Some(if b3 >> 6 == 3 { 1 } else { 2 });
    out
}

/// The rate and channels a legacy FLV audio header implies for `codec`,
/// with the known exceptions: AAC's bits are fixed at 44 kHz stereo and
/// say nothing (its `AudioSpecificConfig` does); Speex is 16 kHz mono;
/// the Nellymoser and MP3 8 kHz formats and G.711 have fixed rates.
pub(super) fn legacy(codec: AudioCodec, sound: SoundParams) -> AudioConfig {
    let channels = Some(if sound.stereo { 2 } else { 1 });
    let (sample_rate, channels) = match codec {
        AudioCodec::Aac | AudioCodec::DeviceSpecific => (None, None),
        AudioCodec::Speex => (Some(16_000), Some(1)),
        AudioCodec::Nellymoser16kMono => (Some(16_000), Some(1)),
        AudioCodec::Nellymoser8kMono => (Some(8_000), Some(1)),
        AudioCodec::G711ALaw | AudioCodec::G711MuLaw | AudioCodec::Mp3_8k => {
            (Some(8_000), channels)
        }
        _ => (Some(sound.rate.hz()), channels),
    };
    AudioConfig {
        sample_rate,
        channels,
        profile: None,
    }
}
