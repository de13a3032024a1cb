//! The multitrack framing shared by Enhanced RTMP v2 audio and video.
//!
//! After the multitrack header (`AvMultitrackType` and the packet type all
//! tracks share, then one FourCC unless every track names its own), each
//! track is `[FourCC if ManyTracksManyCodecs] trackId:UI8
//! [sizeOfTrack:UI24 unless OneTrack] body`, where `sizeOfTrack` counts the
//! body bytes that follow it. A OneTrack body runs to the end of the
//! message.

use bytes::Bytes;

use super::{FourCc, MediaError, Reader};

/// Most tracks accepted in one multitrack message.
///
/// `trackId` is a UI8, so 256 distinct tracks is the whole id space; a
/// message claiming more is malformed, and the cap bounds the work of
/// walking a message made of thousands of empty tracks.
pub const MAX_TRACKS: usize = 256;

/// How a multitrack message lays out its tracks (`AvMultitrackType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultitrackType {
    /// One track with a track id and no size: its body runs to the end.
    OneTrack,
    /// Several tracks, one codec named once in the header, each track sized.
    ManyTracks,
    /// Several tracks, each naming its own codec and size.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    pub(super) fn from_nibble(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::OneTrack),
            1 => Ok(Self::ManyTracks),
            2 => Ok(Self::ManyTracksManyCodecs),
            other => Err(MediaError::UnknownMultitrackType(other)),
        }
    }
}

/// One track's framing, before its body is interpreted.
pub(super) struct RawTrack {
    pub(super) fourcc: FourCc,
    pub(super) track_id: u8,
    pub(super) body: Bytes,
}

/// The framing of a multitrack region: enough to walk it again lazily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Framing {
    pub(super) kind: MultitrackType,
    /// The header's FourCC; `None` for ManyTracksManyCodecs.
    pub(super) shared: Option<FourCc>,
    /// Everything after the header.
    pub(super) region: Bytes,
}

impl Framing {
    /// Reads the track starting at `*pos` and advances `*pos` past it.
    pub(super) fn read_track(&self, pos: &mut usize) -> Result<RawTrack, MediaError> {
        let mut r = Reader::at(&self.region, *pos);
        let fourcc = match self.shared {
            Some(fourcc) => fourcc,
            None => r.fourcc("track FourCC")?,
        };
        let track_id = r.u8("trackId")?;
        let body = match self.kind {
            MultitrackType::OneTrack => r.rest(),
            MultitrackType::ManyTracks | MultitrackType::ManyTracksManyCodecs => {
                let size = r.u24("sizeOfTrack")?;
                // A UI24 always fits in usize on the platforms we build for;
                // if it did not, saturating makes it a truncation error.
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                r.bytes(size, "track body")?
            }
        };
        *pos = r.pos();
        Ok(RawTrack {
            fourcc,
            track_id,
            body,
        })
    }

    /// True when the track that would start at `pos` does not exist.
    pub(super) fn is_done(&self, pos: usize, read: usize) -> bool {
        match self.kind {
            MultitrackType::OneTrack => read >= 1,
            _ => read >= 1 && pos >= self.region.len(),
        }
    }

    /// Walks every track, handing each to `check`; returns the track count.
    ///
    /// At least one track is required (the spec's body loop always reads
    /// one), and at most [`MAX_TRACKS`].
    pub(super) fn validate(
        &self,
        mut check: impl FnMut(RawTrack) -> Result<(), MediaError>,
    ) -> Result<u16, MediaError> {
        let mut pos = 0;
        let mut count: usize = 0;
        while !self.is_done(pos, count) {
            if count == MAX_TRACKS {
                return Err(MediaError::TooManyTracks);
            }
            check(self.read_track(&mut pos)?)?;
            count += 1;
        }
        // count <= MAX_TRACKS (256) by the check above.
        u16::try_from(count).map_err(|_| MediaError::TooManyTracks)
    }
}
