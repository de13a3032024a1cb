//! The server-wide half of a live server: Apps, streams and their single
//! publisher, subscribers, data keyframes, fast start, timestamp rebasing
//! and stitching. It never touches bytes on the wire.
//!
//! A runtime opens one id per connection with [`Broker::open_session`],
//! feeds every [`SessionEvent`] a session emits to [`Broker::handle_event`],
//! and after each call drains [`Broker::poll_output`], handing each
//! [`BrokerEvent`] to the session it names. The broker's only timer (the
//! republish grace of streams whose publisher left) is driven by
//! [`Broker::poll_timeout`] / [`Broker::handle_timeout`].

use std::time::{Duration, Instant};

use crate::event::{BrokerEvent, SessionEvent, SessionId};

/// Knobs of the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// How long subscribers wait for a new publisher after the publisher of
    /// their stream stops before they are told
    /// `NetStream.Play.UnpublishNotify` (which ends FFmpeg's playback). A
    /// republish within it continues playback seamlessly.
    pub republish_grace: Duration,
    /// Most bytes of media kept per stream for fast start (the current GOP
    /// from its keyframe). Past it the GOP is not cached: late joiners start
    /// at the next keyframe.
    pub fast_start_max_bytes: usize,
    /// Longest span of media time kept for fast start.
    pub fast_start_max_duration: Duration,
    /// Most data keyframes (`@setDataFrame` handlers) one stream may hold.
    pub max_data_keyframes: usize,
    /// Most decoder configuration frames kept per stream (one per media kind
    /// and track).
    pub max_config_frames: usize,
    /// Most streams (published or waited for) in the whole server.
    pub max_streams: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            republish_grace: Duration::from_secs(5),
            fast_start_max_bytes: 16 * 1024 * 1024,
            fast_start_max_duration: Duration::from_secs(20),
            max_data_keyframes: 64,
            max_config_frames: 64,
            max_streams: 100_000,
        }
    }
}

/// The server-wide registry of Apps, streams, publishers and players.
#[derive(Debug)]
pub struct Broker {
    _private: (),
}

impl Broker {
    /// An empty broker.
    pub fn new(config: BrokerConfig) -> Self {
        let _ = config;
        todo!()
    }

    /// A fresh id for a new connection; ids are never reused.
    pub fn open_session(&mut self) -> SessionId {
        todo!()
    }

    /// An event from session `id`. Events of one session must arrive in the
    /// order it emitted them.
    pub fn handle_event(&mut self, now: Instant, id: SessionId, event: SessionEvent) {
        let _ = (now, id, event);
        todo!()
    }

    /// Deadlines have passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The next event for a session, with its recipient.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<(SessionId, BrokerEvent)> {
        todo!()
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Number of sessions that connected and have not closed.
    pub fn session_count(&self) -> usize {
        todo!()
    }

    /// Number of streams currently published.
    pub fn published_count(&self) -> usize {
        todo!()
    }
}
