//! The multitrack framing shared by Enhanced RTMP v2 audio and video.
//!
//! After the multitrack header (`AvMultitrackType` and the packet type all
//! tracks share, then one FourCC unless every track names its own), each
//! track is `[FourCC if ManyTracksManyCodecs] trackId:UI8
//! [sizeOfTrack:UI24 unless OneTrack] body`, where `sizeOfTrack` counts the
//! body bytes that follow it. A OneTrack body runs to the end of the
//! message.
//!
//! Audio and video differ only in how a track body is read, so one
//! [`Tracks`] / [`TrackIter`] pair, generic over a sealed [`TrackKind`],
//! serves both.

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

/// A kind of track a multitrack message can carry:
/// [`AudioTrack`](super::AudioTrack) or [`VideoTrack`](super::VideoTrack).
///
/// It lets one [`Tracks`] and one [`TrackIter`] serve audio and video, whose
/// multitrack framing is the same. Sealed: the parser relies on what each
/// implementation does, so only this crate provides them.
pub trait TrackKind: sealed::Sealed {
    /// The codec a track of this kind names
    /// ([`AudioCodec`](super::AudioCodec), [`VideoCodec`](super::VideoCodec)).
    type Codec: Copy;
}

pub(super) mod sealed {
    use bytes::Bytes;

    use super::TrackKind;
    use crate::media::{FourCc, MediaError};

    /// What the shared multitrack code needs from each kind. Kept in a
    /// private module so that [`TrackKind`] stays sealed and none of this
    /// becomes public API.
    pub trait Sealed: Clone {
        /// The kind's Enhanced packet types that describe a track body.
        type BodyType: Copy + std::fmt::Debug + Eq;

        /// Maps a packet type nibble that must describe a body. Multitrack
        /// and ModEx are handled before this point, so they map to
        /// [`MediaError::InvalidTrackPacketType`].
        fn body_type(nibble: u8) -> Result<Self::BodyType, MediaError>;

        /// The kind's "unknown packet type" error.
        fn unknown_packet_type(nibble: u8) -> MediaError;

        /// The codec an Enhanced FourCC names.
        fn codec_from_fourcc(fourcc: FourCc) -> Result<<Self as TrackKind>::Codec, MediaError>
        where
            Self: TrackKind;

        /// Reads a track body of type `ty` (all of `body`) into a track.
        fn from_body(
            track_id: u8,
            codec: <Self as TrackKind>::Codec,
            ty: Self::BodyType,
            body: &Bytes,
        ) -> Result<Self, MediaError>
        where
            Self: TrackKind;
    }
}

/// The body type of a single-track Enhanced message.
///
/// Multitrack was handled before this point and ModEx consumed by
/// [`super::read_mod_ex`], so the multitrack-only error is unreachable in
/// practice; it is reported as an unknown packet type rather than trusting
/// that.
pub(super) fn single_body_type<K: TrackKind>(nibble: u8) -> Result<K::BodyType, MediaError> {
    match K::body_type(nibble) {
        Err(MediaError::InvalidTrackPacketType(v)) => Err(K::unknown_packet_type(v)),
        other => other,
    }
}

fn track_from_raw<K: TrackKind>(raw: RawTrack, body_type: K::BodyType) -> Result<K, MediaError> {
    let codec = K::codec_from_fourcc(raw.fourcc)?;
    K::from_body(raw.track_id, codec, body_type, &raw.body)
}

/// The tracks of a multitrack message, validated at parse time and walked
/// lazily (no allocation).
///
/// Named [`AudioTracks`](super::AudioTracks) and
/// [`VideoTracks`](super::VideoTracks) by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracks<K: TrackKind> {
    framing: Framing,
    /// The packet type all tracks share.
    pub(super) body_type: K::BodyType,
    len: u16,
}

impl<K: TrackKind> Tracks<K> {
    /// Reads the multitrack header byte: the layout and the body type all
    /// tracks share.
    pub(super) fn read_header(
        r: &mut Reader<'_>,
    ) -> Result<(MultitrackType, K::BodyType), MediaError> {
        let types = r.u8("multitrack type")?;
        let kind = MultitrackType::from_nibble(types >> 4)?;
        let body_type = K::body_type(types & 0x0f)?;
        Ok((kind, body_type))
    }

    /// Reads the rest of a multitrack message after [`Self::read_header`]:
    /// the shared FourCC, if any, then every track, which is validated here
    /// so that iterating later cannot fail.
    pub(super) fn read(
        kind: MultitrackType,
        body_type: K::BodyType,
        r: &mut Reader<'_>,
    ) -> Result<Self, MediaError> {
        let shared = match kind {
            MultitrackType::ManyTracksManyCodecs => None,
            MultitrackType::OneTrack | MultitrackType::ManyTracks => {
                let fourcc = r.fourcc("FourCC")?;
                K::codec_from_fourcc(fourcc)?;
                Some(fourcc)
            }
        };
        let framing = Framing {
            kind,
            shared,
            region: r.rest(),
        };
        let len = framing.validate(|raw| track_from_raw::<K>(raw, body_type).map(drop))?;
        Ok(Self {
            framing,
            body_type,
            len,
        })
    }

    /// How the tracks are laid out.
    pub fn multitrack_type(&self) -> MultitrackType {
        self.framing.kind
    }

    /// The codec shared by all tracks; `None` for ManyTracksManyCodecs.
    pub fn codec(&self) -> Option<K::Codec> {
        self.framing
            .shared
            .and_then(|fourcc| K::codec_from_fourcc(fourcc).ok())
    }

    /// Number of tracks (1..=[`MAX_TRACKS`]).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a multitrack message has at least one track.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The framing of track `track_id` (its FourCC and its body bytes,
    /// a zero-copy slice of the payload), if the message carries it. The
    /// first track with that id wins, as everywhere else.
    pub(super) fn raw_track(&self, track_id: u8) -> Option<RawTrack> {
        let mut pos = 0;
        for _ in 0..self.len {
            // Validated in Tracks::read, so this cannot fail.
            let raw = self.framing.read_track(&mut pos).ok()?;
            if raw.track_id == track_id {
                return Some(raw);
            }
        }
        None
    }

    /// Walks the tracks in message order.
    pub fn iter(&self) -> TrackIter<'_, K> {
        TrackIter(IterState::Multi {
            tracks: self,
            pos: 0,
            left: self.len,
        })
    }
}

impl<'a, K: TrackKind> IntoIterator for &'a Tracks<K> {
    type Item = K;
    type IntoIter = TrackIter<'a, K>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the tracks of a message; yields owned tracks whose byte
/// fields are zero-copy slices of the payload.
///
/// Named [`AudioTrackIter`](super::AudioTrackIter) and
/// [`VideoTrackIter`](super::VideoTrackIter) by kind.
#[derive(Debug, Clone)]
pub struct TrackIter<'a, K: TrackKind>(IterState<'a, K>);

#[derive(Debug, Clone)]
enum IterState<'a, K: TrackKind> {
    Single(Option<&'a K>),
    Multi {
        tracks: &'a Tracks<K>,
        /// Offset of the next track in the multitrack region.
        pos: usize,
        /// Tracks not yet yielded.
        left: u16,
    },
}

impl<'a, K: TrackKind> TrackIter<'a, K> {
    /// Yields `track` once, or nothing for a message without tracks.
    pub(super) fn single(track: Option<&'a K>) -> Self {
        Self(IterState::Single(track))
    }
}

impl<K: TrackKind> Iterator for TrackIter<'_, K> {
    type Item = K;

    fn next(&mut self) -> Option<K> {
        match &mut self.0 {
            IterState::Single(track) => track.take().cloned(),
            IterState::Multi { tracks, pos, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // Validated in Tracks::read, so these cannot fail; stop
                // quietly rather than panic if that invariant were broken.
                let raw = tracks.framing.read_track(pos).ok()?;
                track_from_raw(raw, tracks.body_type).ok()
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterState::Single(track) => usize::from(track.is_some()),
            IterState::Multi { left, .. } => usize::from(*left),
        };
        (n, Some(n))
    }
}

impl<K: TrackKind> ExactSizeIterator for TrackIter<'_, K> {}
