//! The FLV input of `tincan-bench fanout` and `ingest`, and the latency
//! marker carried inside its H.264 frames.
//!
//! The marker has to survive any server unchanged and leave the stream
//! decodable, so it is an H.264 SEI NAL unit (type 6) of payload type 5,
//! "user data unregistered": a fixed 16-byte UUID, then the frame's sequence
//! number and its send time (nanoseconds since the run's epoch) as ASCII
//! hex, then the RBSP trailing byte 0x80. ASCII hex never contains two zero
//! bytes in a row, and the UUID has no zero byte, so no emulation-prevention
//! bytes are needed. The unit is length-prefixed with the stream's NALU
//! length size (from the AVCDecoderConfigurationRecord) and placed first in
//! the access unit (after an access unit delimiter if there is one), where
//! decoders expect SEI. Servers pass payloads through, so every player of
//! every server sees the same marker.

use bytes::{BufMut, Bytes, BytesMut};

/// The UUID that says "this SEI is a tincan bench marker". No zero bytes,
/// so no emulation prevention can be needed.
pub(crate) const MARKER_UUID: [u8; 16] = *b"tincan-bench-ts1";

/// ASCII hex: 8 digits of sequence number, 16 of send time.
const MARKER_TEXT: usize = 8 + 16;

/// The SEI NAL unit's size: NAL header, payload type, payload size, UUID,
/// text, trailing bits.
const SEI_LEN: usize = 1 + 1 + 1 + 16 + MARKER_TEXT + 1;

/// One FLV tag, its body shared with the file's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    /// 8 audio, 9 video, 18 script data.
    pub(crate) kind: u8,
    /// Timestamp in milliseconds.
    pub(crate) timestamp: u32,
    /// The tag body.
    pub(crate) body: Bytes,
}

impl Tag {
    /// An AVC or AAC sequence header (sent once, not per loop).
    pub(crate) fn is_sequence_header(&self) -> bool {
        match self.kind {
            9 => self.body.len() >= 2 && self.body[0] & 0x0f == 7 && self.body[1] == 0,
            8 => self.body.len() >= 2 && self.body[0] >> 4 == 10 && self.body[1] == 0,
            _ => false,
        }
    }

    /// An AVC NALU packet: a frame that gets a marker.
    pub(crate) fn is_avc_frame(&self) -> bool {
        self.kind == 9 && self.body.len() > 5 && self.body[0] & 0x0f == 7 && self.body[1] == 1
    }
}

/// A parsed FLV file.
#[derive(Debug)]
pub(crate) struct Flv {
    /// Tags in file order.
    pub(crate) tags: Vec<Tag>,
    /// The NALU length size from the AVCDecoderConfigurationRecord.
    pub(crate) nalu_len_size: usize,
    /// Media duration of one pass through the file, in milliseconds, so
    /// the next pass continues the timeline.
    pub(crate) loop_ms: u32,
}

/// Reads an FLV file with H.264 video, or says why it cannot be used.
pub(crate) fn parse(data: Bytes) -> Result<Flv, String> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err("not an FLV file".into());
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut at = header_len + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at] & 0x1f;
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let timestamp =
            u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let start = at + 11;
        let Some(end) = start.checked_add(size).filter(|&e| e <= data.len()) else {
            break; // a truncated last tag: use what is complete
        };
        if matches!(kind, 8 | 9 | 18) && size > 0 {
            tags.push(Tag {
                kind,
                timestamp,
                body: data.slice(start..end),
            });
        }
        at = end + 4;
    }
    let first_video = tags
        .iter()
        .find(|t| t.kind == 9)
        .ok_or("the input has no video; the load tool needs H.264 video")?;
    let codec = first_video.body[0] & 0x0f;
    if codec != 7 {
        return Err(format!(
            "the input's video is not H.264/AVC (FLV codec id {codec}); \
             the load tool marks H.264 frames (see `tincan-bench fanout --help`)"
        ));
    }
    let config = tags
        .iter()
        .find(|t| t.kind == 9 && t.is_sequence_header())
        .ok_or("the input has no AVC sequence header")?;
    // AVCDecoderConfigurationRecord after the 5-byte tag header: version,
    // profile, compatibility, level, then 6 reserved bits + length size - 1.
    let nalu_len_size = match config.body.get(9) {
        Some(b) => usize::from(b & 3) + 1,
        None => return Err("the AVC sequence header is truncated".into()),
    };
    if nalu_len_size == 3 {
        return Err("3-byte NALU lengths are not supported".into());
    }
    let first = tags.first().map_or(0, |t| t.timestamp);
    let last = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    // One video frame interval past the last tag, so passes do not overlap.
    let mut video_ts: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == 9)
        .map(|t| t.timestamp)
        .collect();
    video_ts.dedup();
    let step = video_ts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|&d| d > 0)
        .min()
        .unwrap_or(33);
    Ok(Flv {
        tags,
        nalu_len_size,
        loop_ms: last.saturating_sub(first) + step,
    })
}

/// `frame` (an AVC NALU packet) with a marker SEI carrying `seq` and
/// `sent_nanos` inserted as its first NAL unit (after an AUD).
pub(crate) fn mark(frame: &[u8], nalu_len_size: usize, seq: u32, sent_nanos: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + nalu_len_size + SEI_LEN);
    let nals = &frame[5..];
    // Keep an access unit delimiter first, as the standard requires.
    let aud_len = nal_len(nals, nalu_len_size)
        .filter(|&n| n > 0 && nals.get(nalu_len_size).is_some_and(|b| b & 0x1f == 9))
        .map_or(0, |n| nalu_len_size + n)
        .min(nals.len());
    out.put_slice(&frame[..5]);
    out.put_slice(&nals[..aud_len]);
    let len = (SEI_LEN as u32).to_be_bytes();
    out.put_slice(&len[4 - nalu_len_size..]);
    out.put_u8(0x06); // nal_ref_idc 0, type 6: SEI
    out.put_u8(5); // user data unregistered
    out.put_u8((16 + MARKER_TEXT) as u8);
    out.put_slice(&MARKER_UUID);
    let text = format!("{seq:08x}{sent_nanos:016x}");
    out.put_slice(text.as_bytes());
    out.put_u8(0x80); // rbsp_stop_one_bit + alignment
    out.put_slice(&nals[aud_len..]);
    out.freeze()
}

/// The (sequence number, send nanos) of the marker in `frame`, if it has
/// one. Looks at the first three NAL units only: the marker is first or
/// behind an AUD, so a player's cost per frame stays constant.
pub(crate) fn find_marker(frame: &[u8], nalu_len_size: usize) -> Option<(u32, u64)> {
    if frame.len() < 5 || frame[0] & 0x0f != 7 || frame[1] != 1 {
        return None;
    }
    let mut nals = &frame[5..];
    for _ in 0..3 {
        let n = nal_len(nals, nalu_len_size)?;
        let nal = nals.get(nalu_len_size..nalu_len_size + n)?;
        if nal.len() >= SEI_LEN && nal[0] & 0x1f == 6 && nal[1] == 5 && nal[3..19] == MARKER_UUID {
            let text = &nal[19..19 + MARKER_TEXT];
            let seq = u32::try_from(hex(&text[..8])?).ok()?;
            return Some((seq, hex(&text[8..])?));
        }
        nals = nals.get(nalu_len_size + n..)?;
    }
    None
}

/// The NALU length size an AVC sequence header announces.
pub(crate) fn nalu_len_size_of(sequence_header: &[u8]) -> Option<usize> {
    sequence_header.get(9).map(|b| usize::from(b & 3) + 1)
}

/// Lower-case ASCII hex to a number (every player parses two per frame,
/// so no string checks on the way).
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(v))
    })
}

fn nal_len(data: &[u8], size: usize) -> Option<usize> {
    let prefix = data.get(..size)?;
    Some(
        prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_keeps_the_frame_after_it() {
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        let marked = mark(&frame, 4, 77, 123_456_789);
        assert_eq!(find_marker(&marked, 4), Some((77, 123_456_789)));
        assert!(marked.ends_with(&[0, 0, 0, 3, 0x41, 0x9a, 0x55]));
        assert_eq!(&marked[..5], &frame[..5]);
    }

    #[test]
    fn marker_goes_after_an_access_unit_delimiter() {
        let frame = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 1, 0x65];
        let marked = mark(&frame, 4, 1, 2);
        assert_eq!(&marked[5..11], &[0, 0, 0, 2, 0x09, 0xf0]);
        assert_eq!(marked[15], 0x06);
        assert_eq!(find_marker(&marked, 4), Some((1, 2)));
    }

    #[test]
    fn unmarked_frame_has_no_marker() {
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        assert_eq!(find_marker(&frame, 4), None);
        assert_eq!(find_marker(&frame[..7], 4), None);
    }
}
