//! Taps and sources: an embedder's own participants in a live server.
//!
//! A **tap** reads a stream from code: it subscribes like a player (the
//! broker cannot tell the difference), starts with the same fast-start
//! state (data keyframes, decoder configuration, the current GOP) and keeps
//! what it has not drained yet in the same bounded backlog under the same
//! real-time policy, so a tap that stops draining holds at most its byte
//! budget and gets nothing older than the lifetimes once it drains again.
//! Recording, HTTP outputs and relay pushes read streams this way.
//!
//! A **source** publishes into a stream from code, with no RTMP connection
//! behind it: every kind of player receives its frames exactly as if an
//! encoder had published them (rebased timestamps, fast start, republish
//! grace). Relay pulls and generated streams feed the server this way.
//!
//! Both are created through [`crate::server::Server`] and are ordinary
//! broker participants: the stream limits, publish priorities, events
//! (`PlayStarted`, `PublishStarted`, `MediaChanged`…) and stream statistics
//! apply to them. Decisions by ticket do not: the embedder that opens one
//! has already decided.

use std::time::Instant;

use bytes::Bytes;

use crate::chunk::RawMessage;
use crate::event::{Frame, FrameKind, SessionId};
use crate::media::{parse_audio, parse_video, AudioCodec, VideoCodec};
use crate::session::backlog::{Backlog, Item};
use crate::session::RealTimeConfig;
use crate::time::MediaTime;

/// An embedder's reader of one stream, from [`crate::server::Server::open_tap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapId(pub(crate) SessionId);

impl TapId {
    /// The participant id the broker, events and statistics know it by.
    pub fn session_id(self) -> SessionId {
        self.0
    }
}

/// An embedder's publisher of one stream, from
/// [`crate::server::Server::open_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub(crate) SessionId);

impl SourceId {
    /// The participant id the broker, events and statistics know it by.
    pub fn session_id(self) -> SessionId {
        self.0
    }
}

/// The codec of a [`TapFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A video codec (legacy or Enhanced RTMP FourCC).
    Video(VideoCodec),
    /// An audio codec.
    Audio(AudioCodec),
}

/// One message of a stream, as a tap receives it: what a player would get,
/// with what an output needs to know about it already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TapFrame {
    /// Audio, video or data.
    pub kind: FrameKind,
    /// The codec, when the payload names one (audio and video).
    pub codec: Option<Codec>,
    /// The Enhanced RTMP multitrack track id of the first track (0 for
    /// single-track messages).
    pub track: u8,
    /// A video frame a decoder can start from.
    pub keyframe: bool,
    /// Decoder configuration (sequence header).
    pub config: bool,
    /// The decode timestamp, rebased to the tap's timeline as a player's
    /// would be (0 at the first thing it got).
    pub timestamp: MediaTime,
    /// The composition time offset of video (presentation minus decode, in
    /// milliseconds); 0 for audio, data and codecs without one.
    pub composition_offset: i32,
    /// The message payload exactly as a player receives it (the FLV tag
    /// body), shared with every other reader of the stream.
    pub payload: Bytes,
}

impl TapFrame {
    fn from_frame(frame: Frame) -> TapFrame {
        let mut codec = None;
        let mut track = 0;
        let mut composition_offset = 0;
        match frame.kind {
            FrameKind::Video => {
                if let Ok(tag) = parse_video(&frame.payload) {
                    codec = tag.codec().map(Codec::Video);
                    track = tag.tracks().next().map_or(0, |t| t.track_id);
                    composition_offset = tag.composition_time().unwrap_or(0);
                }
            }
            FrameKind::Audio => {
                if let Ok(tag) = parse_audio(&frame.payload) {
                    codec = tag.codec().map(Codec::Audio);
                    track = tag.tracks().next().map_or(0, |t| t.track_id);
                }
            }
            FrameKind::Data => {}
        }
        TapFrame {
            kind: frame.kind,
            codec,
            track,
            keyframe: frame.keyframe,
            config: frame.config,
            timestamp: frame.timestamp,
            composition_offset,
            payload: frame.payload,
        }
    }
}

/// What [`crate::server::Server::poll_tap`] hands out, in stream order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TapItem {
    /// A message of the stream.
    Frame(TapFrame),
    /// The stream is (again) published; frames follow.
    Published,
    /// The publisher left and none came back within the republish grace.
    /// The tap stays subscribed and gets [`TapItem::Published`] when one
    /// does.
    Unpublished,
    /// The tap was closed by the server (its never-dropped data outgrew
    /// the backlog, or the server closed it); nothing follows.
    Closed,
}

/// The one message stream id a tap "plays" on, as the broker sees it.
pub(crate) const TAP_STREAM: u32 = 1;

/// Marker messages keeping publish notices in order with the frames.
const MARK_PUBLISHED: &[u8] = b"published";
const MARK_UNPUBLISHED: &[u8] = b"unpublished";

/// A tap as the server keeps it.
#[derive(Debug)]
pub(crate) struct TapState {
    backlog: Backlog,
    /// Whether it is in the server's ready-tap queue.
    pub(crate) queued: bool,
    /// Closed by the server: `poll_tap` says so once, then nothing.
    pub(crate) closed: bool,
    closed_told: bool,
    /// The broker's refusal of its play, taken by `open_tap`.
    pub(crate) rejected: Option<crate::event::PlayRejection>,
}

impl TapState {
    pub(crate) fn new(rt: RealTimeConfig) -> Self {
        let mut backlog = Backlog::new(rt.max_backlog_bytes);
        backlog.open_lane(TAP_STREAM, rt);
        TapState {
            backlog,
            queued: false,
            closed: false,
            closed_told: false,
            rejected: None,
        }
    }

    /// A frame from the broker; false if never-dropped data outgrew the
    /// backlog (the tap must be closed, as a player would be).
    pub(crate) fn push_frame(&mut self, now: Instant, frame: Frame) -> bool {
        self.backlog.push_frame(now, TAP_STREAM, frame).is_ok()
    }

    pub(crate) fn push_notice(&mut self, now: Instant, published: bool) -> bool {
        let mark = if published {
            MARK_PUBLISHED
        } else {
            MARK_UNPUBLISHED
        };
        let raw = RawMessage {
            csid: 0,
            timestamp: MediaTime::ZERO,
            type_id: 0,
            stream_id: TAP_STREAM,
            payload: Bytes::from_static(mark),
        };
        self.backlog.push_message(now, TAP_STREAM, raw).is_ok()
    }

    pub(crate) fn pop(&mut self, now: Instant) -> Option<TapItem> {
        if self.closed {
            if self.closed_told {
                return None;
            }
            self.closed_told = true;
            self.backlog.clear();
            return Some(TapItem::Closed);
        }
        let next = self.backlog.pop(now)?;
        Some(match next.item {
            Item::Frame(frame) => TapItem::Frame(TapFrame::from_frame(frame)),
            Item::Message(raw) if raw.payload.as_ref() == MARK_PUBLISHED => TapItem::Published,
            Item::Message(_) => TapItem::Unpublished,
        })
    }

    /// Media the real-time policy abandoned before the tap drained it.
    pub(crate) fn dropped(&self) -> (u64, u64) {
        (self.backlog.dropped_frames(), self.backlog.dropped_bytes())
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.backlog.queued_bytes()
    }
}

/// A source as the server keeps it.
#[derive(Debug)]
pub(crate) struct SourceState {
    /// False once the broker ended its publish (a higher priority took the
    /// name over, `releaseStream`): frames are refused from then on.
    pub(crate) live: bool,
    /// The broker's refusal of its publish, taken by `open_source`.
    pub(crate) rejected: Option<crate::event::PublishRejection>,
}

/// Why a source's frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No such source (closed, or never opened).
    #[error("no such source")]
    Unknown,
    /// Its publish was ended by the broker (taken over by a higher
    /// priority, or evicted by `releaseStream`).
    #[error("the source's publish was ended by another publisher")]
    Evicted,
}

/// Items of a tap's queue, for tests of the marker encoding.
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> RealTimeConfig {
        RealTimeConfig::default()
    }

    #[test]
    fn notices_keep_their_place_among_frames() {
        let now = crate::testing::test_now();
        let mut tap = TapState::new(rt());
        assert!(tap.push_notice(now, true));
        let frame = Frame {
            kind: FrameKind::Data,
            timestamp: MediaTime::ZERO,
            payload: Bytes::from_static(b"x"),
            keyframe: false,
            config: false,
        };
        assert!(tap.push_frame(now, frame));
        assert!(tap.push_notice(now, false));
        assert_eq!(tap.pop(now), Some(TapItem::Published));
        assert!(matches!(tap.pop(now), Some(TapItem::Frame(_))));
        assert_eq!(tap.pop(now), Some(TapItem::Unpublished));
        assert_eq!(tap.pop(now + Duration::from_secs(1)), None);
    }
}
