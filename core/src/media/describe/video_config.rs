//! Decoder configuration records → picture size, frame rate, profile and
//! level: H.264 (`avcC` + SPS), HEVC (`hvcC` + SPS), AV1 (`av1C` + sequence
//! header OBU) and VP9 (`vpcC`).
//!
//! Written from the specifications (ITU-T H.264 7.3.2.1 and E.1.1, ITU-T
//! H.265 7.3.2.2 and E.2.1, ISO/IEC 14496-15 for `avcC`/`hvcC`, the AV1
//! bitstream spec 5.5 and the AV1-ISOBMFF binding for `av1C`, the VP Codec
//! ISO Media File Format Binding for `vpcC`). Every function returns what
//! it could read; syntax it cannot follow (or a reserved value) ends the
//! parse and leaves the remaining fields `None`.

use super::bits::BitReader;

/// What a video decoder configuration says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct VideoConfig {
    pub(super) width: Option<u32>,
    pub(super) height: Option<u32>,
    pub(super) frame_rate: Option<f64>,
    pub(super) profile: Option<&'static str>,
    pub(super) level: Option<&'static str>,
}

/// A frame rate from a `time_scale / ticks` pair, if both are sane.
fn rate(time_scale: u32, ticks: u64) -> Option<f64> {
    if time_scale == 0 || ticks == 0 {
        return None;
    }
    // Precision: both fit an f64 mantissa exactly (< 2^53).
    #[allow(clippy::cast_precision_loss)]
    let fps = f64::from(time_scale) / ticks as f64;
    (fps.is_finite() && fps > 0.0).then_some(fps)
}

// ---------------------------------------------------------------- H.264 --

/// Reads an `AVCDecoderConfigurationRecord`: the first SPS gives the size,
/// profile, level and (VUI timing) frame rate; the record's own profile and
/// level bytes stand in when the SPS cannot be read.
pub(super) fn avc(record: &[u8]) -> VideoConfig {
    let mut out = VideoConfig::default();
    let (Some(&profile_idc), Some(&constraints), Some(&level_idc)) =
        (record.get(1), record.get(2), record.get(3))
    else {
        return out;
    };
    out.profile = h264_profile(profile_idc, constraints);
    out.level = h264_level(profile_idc, constraints, level_idc);
    let num_sps = record.get(5).map_or(0, |b| b & 0x1f);
    let mut pos = 6usize;
    for _ in 0..num_sps {
        let Some(len) = be16(record, pos) else {
            break;
        };
        let start = pos + 2;
        let Some(nal) = record.get(start..start + usize::from(len)) else {
            break;
        };
        pos = start + usize::from(len);
        if nal.first().map(|b| b & 0x1f) == Some(7) {
            if let Some(sps) = nal.get(1..) {
                h264_sps(sps, &mut out);
            }
            break;
        }
    }
    out
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

/// Profiles whose SPS carries `chroma_format_idc` and the fields after it
/// (H.264 7.3.2.1.1).
const H264_HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses an H.264 SPS RBSP (after the NAL header byte) into `out`.
/// Values are written only once the whole size syntax has been read, so a
/// truncated SPS never reports a half-computed size.
fn h264_sps(sps: &[u8], out: &mut VideoConfig) -> Option<()> {
    let mut r = BitReader::rbsp(sps);
    let profile_idc = r.u8()?;
    let constraints = r.u8()?;
    let level_idc = r.u8()?;
    out.profile = h264_profile(profile_idc, constraints);
    out.level = h264_level(profile_idc, constraints, level_idc);
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if H264_HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    h264_skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.flag()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    // 7.4.2.1.1: ChromaArrayType, SubWidthC/SubHeightC and CropUnitX/Y.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let crop_x = sub_w * (left + right);
    let crop_y = sub_h * field_factor * (top + bottom);
    let width = (width_mbs * 16).checked_sub(crop_x)?;
    let height = (field_factor * height_map_units * 16).checked_sub(crop_y)?;
    out.width = u32::try_from(width).ok().filter(|&w| w > 0);
    out.height = u32::try_from(height).ok().filter(|&h| h > 0);
    if r.flag()? {
        out.frame_rate = h264_vui_frame_rate(&mut r);
    }
    Some(())
}

/// `scaling_list()` (7.3.2.1.1.1): read only to get past it.
fn h264_skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// The VUI fields before `timing_info` (E.1.1), then the frame rate:
/// `time_scale / (2 * num_units_in_tick)` (a tick is a field period).
fn h264_vui_frame_rate(r: &mut BitReader<'_>) -> Option<f64> {
    if r.flag()? {
        // aspect_ratio_info_present_flag
        if r.u8()? == 255 {
            r.skip(32)?; // sar_width, sar_height
        }
    }
    if r.flag()? {
        r.flag()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        // video_signal_type_present_flag
        r.skip(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.skip(24)?; // colour description
        }
    }
    if r.flag()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    if !r.flag()? {
        return None; // timing_info_present_flag
    }
    let num_units_in_tick = r.bits(32)?;
    let time_scale = r.bits(32)?;
    rate(time_scale, 2 * u64::from(num_units_in_tick))
}

fn h264_profile(profile_idc: u8, constraints: u8) -> Option<&'static str> {
    let set = |n: u8| constraints & (0x80 >> n) != 0;
    Some(match profile_idc {
        66 if set(1) => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 if set(4) && set(5) => "Constrained High",
        100 if set(4) => "Progressive High",
        100 => "High",
        110 if set(3) => "High 10 Intra",
        110 => "High 10",
        122 if set(3) => "High 4:2:2 Intra",
        122 => "High 4:2:2",
        244 if set(3) => "High 4:4:4 Intra",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4 Intra",
        83 => "Scalable Baseline",
        86 => "Scalable High",
        118 => "Multiview High",
        128 => "Stereo High",
        _ => return None,
    })
}

fn h264_level(profile_idc: u8, constraints: u8, level_idc: u8) -> Option<&'static str> {
    // Level 1b: level_idc 9, or 11 with constraint_set3 in the profiles
    // that predate idc 9 (A.3.1, A.3.2).
    if level_idc == 9
        || (level_idc == 11 && constraints & 0x10 != 0 && matches!(profile_idc, 66 | 77 | 88))
    {
        return Some("1b");
    }
    Some(match level_idc {
        10 => "1",
        11 => "1.1",
        12 => "1.2",
        13 => "1.3",
        20 => "2",
        21 => "2.1",
        22 => "2.2",
        30 => "3",
        31 => "3.1",
        32 => "3.2",
        40 => "4",
        41 => "4.1",
        42 => "4.2",
        50 => "5",
        51 => "5.1",
        52 => "5.2",
        60 => "6",
        61 => "6.1",
        62 => "6.2",
        _ => return None,
    })
}

// ----------------------------------------------------------------- HEVC --

/// Length of the fixed part of an `HEVCDecoderConfigurationRecord`, up to
/// and including `numOfArrays`.
const HVCC_HEADER: usize = 23;
const HEVC_NAL_SPS: u8 = 33;

/// Reads an `HEVCDecoderConfigurationRecord`: profile and level from the
/// record, size and VUI frame rate from the first SPS; the record's
/// `avgFrameRate` (frames per 256 s, 0 = unspecified) stands in when the
/// SPS has no timing.
pub(super) fn hevc(record: &[u8]) -> VideoConfig {
    let mut out = VideoConfig::default();
    let (Some(&ptl), Some(&level_idc)) = (record.get(1), record.get(12)) else {
        return out;
    };
    out.profile = hevc_profile(ptl & 0x1f);
    out.level = hevc_level(level_idc);
    let avg_frame_rate = be16(record, 19).unwrap_or(0);
    let num_arrays = record.get(22).copied().unwrap_or(0);
    let mut pos = HVCC_HEADER;
    'arrays: for _ in 0..num_arrays {
        let Some(&kind) = record.get(pos) else {
            break;
        };
        let Some(count) = be16(record, pos + 1) else {
            break;
        };
        pos += 3;
        // Each NAL costs at least its 2-byte length, so a hostile count
        // ends at the end of the record.
        for _ in 0..count {
            let Some(len) = be16(record, pos) else {
                break 'arrays;
            };
            let start = pos + 2;
            let Some(nal) = record.get(start..start + usize::from(len)) else {
                break 'arrays;
            };
            pos = start + usize::from(len);
            if kind & 0x3f == HEVC_NAL_SPS {
                if let Some(sps) = nal.get(2..) {
                    hevc_sps(sps, &mut out);
                }
                break 'arrays;
            }
        }
    }
    if out.frame_rate.is_none() && avg_frame_rate != 0 {
        out.frame_rate = Some(f64::from(avg_frame_rate) / 256.0);
    }
    out
}

/// Parses an HEVC SPS RBSP (after the 2-byte NAL header) into `out`.
fn hevc_sps(sps: &[u8], out: &mut VideoConfig) -> Option<()> {
    let mut r = BitReader::rbsp(sps);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return None;
    }
    r.flag()?; // sps_temporal_id_nesting_flag
               // profile_tier_level(1, max_sub_layers_minus1) (7.3.3).
    let ptl = r.u8()?;
    r.skip(32 + 48)?; // compatibility flags, constraint flags
    let level_idc = r.u8()?;
    out.profile = hevc_profile(ptl & 0x1f).or(out.profile);
    out.level = hevc_level(level_idc).or(out.level);
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return None;
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        // conformance_window_flag
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let w = width.checked_sub(sub_w * (left + right))?;
    let h = height.checked_sub(sub_h * (top + bottom))?;
    out.width = u32::try_from(w).ok().filter(|&w| w > 0);
    out.height = u32::try_from(h).ok().filter(|&h| h > 0);
    // The rest is read only to reach the VUI's timing info.
    out.frame_rate = hevc_after_size(&mut r, max_sub_layers_minus1).or(out.frame_rate);
    Some(())
}

/// From `bit_depth_luma_minus8` to the VUI timing info; `None` when the
/// SPS has no timing (or syntax it cannot follow).
fn hevc_after_size(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Option<f64> {
    r.ue()?; // bit_depth_luma_minus8
    r.ue()?; // bit_depth_chroma_minus8
    let log2_max_poc_lsb = r.ue()? + 4;
    if log2_max_poc_lsb > 16 {
        return None;
    }
    let ordering_all = r.flag()?;
    let first = if ordering_all {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        r.ue()?;
        r.ue()?;
        r.ue()?;
    }
    for _ in 0..6 {
        // log2_min_luma_coding_block_size_minus3 .. max_transform_hierarchy_depth_intra
        r.ue()?;
    }
    if r.flag()? && r.flag()? {
        // scaling_list_enabled_flag && sps_scaling_list_data_present_flag
        hevc_skip_scaling_list_data(r)?;
    }
    r.flag()?; // amp_enabled_flag
    r.flag()?; // sample_adaptive_offset_enabled_flag
    if r.flag()? {
        // pcm_enabled_flag
        r.skip(8)?; // pcm bit depths
        r.ue()?;
        r.ue()?;
        r.flag()?;
    }
    let num_sets = r.ue()?;
    if num_sets > 64 {
        return None;
    }
    let mut num_delta_pocs = [0u32; 64];
    for idx in 0..num_sets as usize {
        num_delta_pocs[idx] = hevc_st_ref_pic_set(r, idx, &num_delta_pocs)?;
    }
    if r.flag()? {
        // long_term_ref_pics_present_flag
        let n = r.ue()?;
        if n > 32 {
            return None;
        }
        for _ in 0..n {
            r.skip(log2_max_poc_lsb + 1)?;
        }
    }
    r.flag()?; // sps_temporal_mvp_enabled_flag
    r.flag()?; // strong_intra_smoothing_enabled_flag
    if !r.flag()? {
        return None; // vui_parameters_present_flag
    }
    // vui_parameters() (E.2.1) up to vui_timing_info.
    if r.flag()? && r.u8()? == 255 {
        r.skip(32)?;
    }
    if r.flag()? {
        r.flag()?;
    }
    if r.flag()? {
        r.skip(4)?;
        if r.flag()? {
            r.skip(24)?;
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?;
    }
    r.skip(3)?; // neutral_chroma, field_seq, frame_field_info_present
    if r.flag()? {
        // default_display_window_flag
        for _ in 0..4 {
            r.ue()?;
        }
    }
    if !r.flag()? {
        return None; // vui_timing_info_present_flag
    }
    let num_units_in_tick = r.bits(32)?;
    let time_scale = r.bits(32)?;
    rate(time_scale, u64::from(num_units_in_tick))
}

/// `scaling_list_data()` (7.3.4): read only to get past it.
fn hevc_skip_scaling_list_data(r: &mut BitReader<'_>) -> Option<()> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if r.flag()? {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    r.se()?;
                }
            } else {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            }
        }
    }
    Some(())
}

/// `st_ref_pic_set(idx)` in an SPS (7.3.7); returns its `NumDeltaPocs`.
fn hevc_st_ref_pic_set(r: &mut BitReader<'_>, idx: usize, previous: &[u32; 64]) -> Option<u32> {
    if idx != 0 && r.flag()? {
        // inter_ref_pic_set_prediction_flag; in an SPS the reference is the
        // previous set (delta_idx_minus1 is only coded in slice headers).
        r.flag()?; // delta_rps_sign
        r.ue()?; // abs_delta_rps_minus1
        let reference = *previous.get(idx - 1)?;
        let mut count = 0;
        for _ in 0..=reference {
            let used = r.flag()?;
            let use_delta = used || r.flag()?;
            if use_delta {
                count += 1;
            }
        }
        return Some(count);
    }
    let negative = r.ue()?;
    let positive = r.ue()?;
    if negative > 16 || positive > 16 {
        return None;
    }
    for _ in 0..negative + positive {
        r.ue()?;
        r.flag()?;
    }
    Some(negative + positive)
}

fn hevc_profile(profile_idc: u8) -> Option<&'static str> {
    Some(match profile_idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Range Extensions",
        5 => "High Throughput",
        9 => "Screen Content",
        _ => return None,
    })
}

fn hevc_level(level_idc: u8) -> Option<&'static str> {
    // general_level_idc is 30 times the level number.
    Some(match level_idc {
        30 => "1",
        60 => "2",
        63 => "2.1",
        90 => "3",
        93 => "3.1",
        120 => "4",
        123 => "4.1",
        150 => "5",
        153 => "5.1",
        156 => "5.2",
        180 => "6",
        183 => "6.1",
        186 => "6.2",
        _ => return None,
    })
}

// ------------------------------------------------------------------ AV1 --

const OBU_SEQUENCE_HEADER: u32 = 1;

/// Reads an `AV1CodecConfigurationRecord` (or, for senders that skip the
/// record, bare OBUs): the first sequence header OBU gives the maximum
/// frame size, profile, level and (when the timing info says pictures are
/// equally spaced) the frame rate.
pub(super) fn av1(record: &[u8]) -> VideoConfig {
    let mut out = VideoConfig::default();
    let obus = match record.first() {
        // marker = 1, version = 1: the 4-byte av1C header, then configOBUs.
        Some(0x81) => {
            let Some(&b1) = record.get(1) else {
                return out;
            };
            out.profile = av1_profile(b1 >> 5);
            out.level = av1_level(b1 & 0x1f);
            record.get(4..).unwrap_or_default()
        }
        _ => record,
    };
    let mut rest = obus;
    // Each OBU consumes at least its header byte, so this ends.
    while let Some((obu_type, payload, next)) = split_obu(rest) {
        if obu_type == OBU_SEQUENCE_HEADER {
            av1_sequence_header(payload, &mut out);
            break;
        }
        rest = next;
    }
    out
}

/// Splits the first OBU off `data`: its type, payload and what follows.
fn split_obu(data: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let header = *data.first()?;
    let obu_type = u32::from((header >> 3) & 0x0f);
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let mut pos = 1 + usize::from(has_extension);
    let size = if has_size {
        let mut value = 0u64;
        let mut i = 0;
        loop {
            let b = *data.get(pos)?;
            pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i == 8 {
                return None;
            }
        }
        usize::try_from(value).ok()?
    } else {
        data.len().checked_sub(pos)?
    };
    let end = pos.checked_add(size)?;
    Some((obu_type, data.get(pos..end)?, data.get(end..)?))
}

/// `sequence_header_obu()` (AV1 5.5.1) up to `max_frame_height_minus_1`.
fn av1_sequence_header(obu: &[u8], out: &mut VideoConfig) -> Option<()> {
    let mut r = BitReader::new(obu);
    let seq_profile = r.bits(3)?;
    out.profile = u8::try_from(seq_profile).ok().and_then(av1_profile);
    r.flag()?; // still_picture
    if r.flag()? {
        // reduced_still_picture_header
        out.level = av1_level(u8::try_from(r.bits(5)?).ok()?);
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_bits = 0;
        if r.flag()? {
            // timing_info_present_flag: timing_info()
            let num_units_in_display_tick = r.bits(32)?;
            let time_scale = r.bits(32)?;
            if r.flag()? {
                // equal_picture_interval
                let ticks_per_picture = u64::from(r.uvlc()?) + 1;
                out.frame_rate = rate(
                    time_scale,
                    u64::from(num_units_in_display_tick) * ticks_per_picture,
                );
            }
            decoder_model_info = r.flag()?;
            if decoder_model_info {
                buffer_delay_bits = r.bits(5)? + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        for i in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            let seq_level_idx = r.bits(5)?;
            if i == 0 {
                out.level = av1_level(u8::try_from(seq_level_idx).ok()?);
            }
            if seq_level_idx > 7 {
                r.flag()?; // seq_tier
            }
            if decoder_model_info && r.flag()? {
                r.skip(2 * buffer_delay_bits + 1)?;
            }
            if initial_display_delay && r.flag()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = u64::from(r.bits(width_bits)?) + 1;
    let height = u64::from(r.bits(height_bits)?) + 1;
    out.width = u32::try_from(width).ok();
    out.height = u32::try_from(height).ok();
    Some(())
}

fn av1_profile(seq_profile: u8) -> Option<&'static str> {
    Some(match seq_profile {
        0 => "Main",
        1 => "High",
        2 => "Professional",
        _ => return None,
    })
}

fn av1_level(seq_level_idx: u8) -> Option<&'static str> {
    // seq_level_idx = (major - 2) * 4 + minor; 31 means "no level".
    const LEVELS: [&str; 24] = [
        "2.0", "2.1", "2.2", "2.3", "3.0", "3.1", "3.2", "3.3", "4.0", "4.1", "4.2", "4.3", "5.0",
        "5.1", "5.2", "5.3", "6.0", "6.1", "6.2", "6.3", "7.0", "7.1", "7.2", "7.3",
    ];
    LEVELS.get(usize::from(seq_level_idx)).copied()
}

// ------------------------------------------------------------------ VP9 --

/// Reads a `VPCodecConfigurationRecord` (`vpcC` v1: version, flags, then
/// profile and level). The record has no picture size, so width and height
/// stay `None` here and come from metadata or a keyframe.
pub(super) fn vp9(record: &[u8]) -> VideoConfig {
    let mut out = VideoConfig::default();
    if let (Some(&profile), Some(&level)) = (record.get(4), record.get(5)) {
        out.profile = match profile {
            0 => Some("Profile 0"),
            1 => Some("Profile 1"),
            2 => Some("Profile 2"),
            3 => Some("Profile 3"),
            _ => None,
        };
        out.level = match level {
            10 => Some("1"),
            11 => Some("1.1"),
            20 => Some("2"),
            21 => Some("2.1"),
            30 => Some("3"),
            31 => Some("3.1"),
            40 => Some("4"),
            41 => Some("4.1"),
            50 => Some("5"),
            51 => Some("5.1"),
            52 => Some("5.2"),
            60 => Some("6"),
            61 => Some("6.1"),
            62 => Some("6.2"),
            _ => None,
        };
    }
    out
}
