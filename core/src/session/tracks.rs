//! Which tracks of a multitrack stream a player gets, and how.
//!
//! A player that announced multitrack support in `connect` (`capsEx`
//! Multitrack) gets every message as the publisher sent it. Every other
//! player gets one track per media kind, the default track 0 unless it
//! asked for another, as single-track packets it can decode
//! ([`crate::media::select_video_track`]): a legacy FFmpeg or VLC keeps
//! working when the publisher (OBS, FFmpeg 8+) sends several tracks.
//!
//! A player picks with `videoTrack` / `audioTrack` in its `play` options
//! object or in the stream name's query (`cam?videoTrack=1&audioTrack=0`):
//! a track id (0..=255) delivers that track alone, `all` delivers every
//! track as sent (for a player that plays multitrack without announcing
//! it, such as FFmpeg 8+).

use crate::event::{Frame, FrameKind};
use crate::media::{select_audio_track, select_video_track, TagHead, TrackSelection};
use crate::message::Value;

use super::dialogue::query_param;
use super::EnhancedCaps;

/// What a player gets of one media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Every track, every message as sent.
    All,
    /// This track only, as single-track packets.
    One(u8),
}

impl Choice {
    /// A `videoTrack` / `audioTrack` value: a whole number 0..=255 or
    /// `all` (also `-1` and `*`); anything else is ignored.
    fn parse(text: &str) -> Option<Choice> {
        match text.trim() {
            "all" | "*" | "-1" => Some(Choice::All),
            n => n.parse::<u8>().ok().map(Choice::One),
        }
    }

    fn from_value(v: &Value) -> Option<Choice> {
        if let Some(n) = v.as_f64() {
            return if n == -1.0 {
                Some(Choice::All)
            } else if n.fract() == 0.0 && (0.0..=255.0).contains(&n) {
                Some(Choice::One(n as u8))
            } else {
                None
            };
        }
        v.as_str().and_then(Choice::parse)
    }
}

/// One player's track selection and what applying it needs to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackFilter {
    video: Choice,
    audio: Choice,
    /// A message of this stream was multitrack: from now on the chosen
    /// video track must start at one of its own keyframes (another
    /// track's keyframe may have started the fast-start GOP).
    multitrack_seen: bool,
    /// No keyframe of the chosen video track delivered yet.
    video_waiting: bool,
}

impl TrackFilter {
    /// The selection for a player: every track if it announced multitrack
    /// support, else track 0 of each kind; then its `play` options object,
    /// then its name's query, override per kind.
    pub(crate) fn new(caps: &EnhancedCaps, options: Option<&Value>, query: &str) -> Self {
        let default = if caps.supports_multitrack() {
            Choice::All
        } else {
            Choice::One(0)
        };
        let option = |key: &str| {
            let from_query = query_param(query, key).and_then(Choice::parse);
            let from_object = options.and_then(|o| match o {
                Value::AvmPlus(o) => o
                    .get(key)
                    .and_then(|v| {
                        v.as_f64()
                            .map(Value::Number)
                            .or(v.as_str().map(Value::from))
                    })
                    .and_then(|v| Choice::from_value(&v)),
                _ => o.get(key).and_then(Choice::from_value),
            });
            from_query.or(from_object).unwrap_or(default)
        };
        TrackFilter {
            video: option("videoTrack"),
            audio: option("audioTrack"),
            multitrack_seen: false,
            video_waiting: true,
        }
    }

    /// The video selection.
    pub(crate) fn video(&self) -> Choice {
        self.video
    }

    /// The audio selection.
    pub(crate) fn audio(&self) -> Choice {
        self.audio
    }

    /// What the player gets of `frame`: the frame (its payload possibly
    /// cut to one track's bytes) and the tag header to write in front of
    /// it, or nothing.
    pub(crate) fn apply(&mut self, frame: Frame) -> Option<(Frame, TagHead)> {
        let (choice, select): (Choice, fn(&bytes::Bytes, u8) -> TrackSelection) = match frame.kind {
            FrameKind::Video => (self.video, select_video_track),
            FrameKind::Audio => (self.audio, select_audio_track),
            FrameKind::Data => return Some((frame, TagHead::default())),
        };
        let Choice::One(track) = choice else {
            return Some((frame, TagHead::default()));
        };
        let selection = select(&frame.payload, track);
        if selection != TrackSelection::AsIs {
            // Only a multitrack message is rewritten, or absent for track
            // 0; for another track everything delivered is a rewrite.
            self.multitrack_seen = true;
        }
        let (frame, head) = match selection {
            TrackSelection::AsIs => (frame, TagHead::default()),
            TrackSelection::Rewritten { head, body } => (
                Frame {
                    payload: body,
                    ..frame
                },
                head,
            ),
            TrackSelection::Absent => return None,
        };
        if frame.kind == FrameKind::Video && self.multitrack_seen && self.video_waiting {
            if frame.keyframe {
                self.video_waiting = false;
            } else if !frame.config {
                // An inter frame of a track whose keyframe this player
                // never got: undecodable.
                return None;
            }
        }
        Some((frame, head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::CAPS_EX_MULTITRACK;

    fn caps(multitrack: bool) -> EnhancedCaps {
        EnhancedCaps {
            caps_ex: multitrack.then_some(CAPS_EX_MULTITRACK),
            ..EnhancedCaps::default()
        }
    }

    #[test]
    fn defaults_follow_the_announcement_and_options_override() {
        let legacy = TrackFilter::new(&caps(false), None, "");
        assert_eq!(
            (legacy.video(), legacy.audio()),
            (Choice::One(0), Choice::One(0))
        );
        let multi = TrackFilter::new(&caps(true), None, "");
        assert_eq!((multi.video(), multi.audio()), (Choice::All, Choice::All));

        let options = Value::object([
            ("videoTrack", Value::Number(2.0)),
            ("audioTrack", Value::from("all")),
        ]);
        let f = TrackFilter::new(&caps(false), Some(&options), "");
        assert_eq!((f.video(), f.audio()), (Choice::One(2), Choice::All));
        let f = TrackFilter::new(&caps(true), Some(&options), "videoTrack=1&x");
        assert_eq!((f.video(), f.audio()), (Choice::One(1), Choice::All));
        let f = TrackFilter::new(&caps(false), None, "videoTrack=300&audioTrack=-1");
        assert_eq!((f.video(), f.audio()), (Choice::One(0), Choice::All));
    }
}
