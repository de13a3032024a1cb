//! A minimal FLV writer shared by the examples: each example is its own
//! program, and recording a stream is what both show.

use std::io::{self, Write};

use tincan_core::event::{Frame, FrameKind};

/// Just enough FLV for a recording: the file header, then one tag per
/// frame with the publisher's own timestamps.
pub struct FlvWriter<'a, W: Write> {
    out: &'a mut W,
    /// Tags written so far.
    pub tags: u64,
}

impl<'a, W: Write> FlvWriter<'a, W> {
    /// Writes the FLV file header.
    pub fn new(out: &'a mut W) -> io::Result<Self> {
        // "FLV", version 1, audio + video, header size 9, then the
        // PreviousTagSize0 of 0.
        out.write_all(&[b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0])?;
        Ok(FlvWriter { out, tags: 0 })
    }

    /// A writer appending to a file whose header (and `tags` tags) were
    /// already written.
    #[allow(dead_code)] // not every example appends
    pub fn continuing(out: &'a mut W, tags: u64) -> Self {
        FlvWriter { out, tags }
    }

    /// Appends `frame` as one tag at its own timestamp.
    pub fn write(&mut self, frame: &Frame) -> io::Result<()> {
        let tag_type = match frame.kind {
            FrameKind::Audio => 8,
            FrameKind::Video => 9,
            FrameKind::Data => 18,
        };
        let len = frame.payload.len() as u32;
        let ts = frame.timestamp.as_millis();
        let mut header = [0u8; 11];
        header[0] = tag_type;
        header[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        header[4..7].copy_from_slice(&ts.to_be_bytes()[1..]);
        header[7] = (ts >> 24) as u8;
        self.out.write_all(&header)?;
        self.out.write_all(&frame.payload)?;
        self.out.write_all(&(len + 11).to_be_bytes())?;
        self.tags += 1;
        Ok(())
    }
}
