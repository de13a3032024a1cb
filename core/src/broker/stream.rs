//! One stream of an App: its publisher, its subscribers, the fast-start
//! cache, and the timeline that rebases and stitches timestamps.
//!
//! # Timelines
//!
//! Each stream keeps a continuous *stream time*. A publisher's timestamps are
//! mapped onto it by an offset fixed at the publisher's first audio or video
//! message: the first publisher of a stream starts at stream time 0, a
//! republish starts one frame interval (the last positive gap seen between
//! two audio/video messages, clamped to 1..=100 ms; 1 ms if none was seen)
//! after the latest stream time reached, so continuous subscribers see one
//! contiguous timeline. Data messages that arrive before the first audio or
//! video message (`@setDataFrame` first, as OBS and FFmpeg do) do not fix the
//! offset: their own stamps (usually 0) say nothing about where the media
//! starts, so they are placed at the start of the publisher's span.
//!
//! A subscriber's time is stream time minus its *base*, the stream time of
//! the first media it was sent, so every subscription starts at 0. Audio
//! interleaved just before the keyframe a subscription starts from (or any
//! message a publisher stamps earlier than that) would come out negative;
//! it is clamped to 0 rather than wrapped to 49 days, until the subscription
//! is more than [`SETTLE_MS`] (about 12 days) in; after that, plain wrapping
//! arithmetic, so a subscription may outlive RTMP's 24-day serial horizon.
//! `asis:` subscribers get the publisher's stamps untouched.
//!
//! # Fast start
//!
//! The cache holds what a late joiner needs to start at once: the data
//! keyframes (`@setDataFrame`), the latest decoder configuration per media
//! kind, packet type and track set, and the current GOP: from the latest
//! video keyframe, every audio, video and plain data message, handed to a
//! late joiner in timestamp order whatever order the muxer sent them in. A
//! GOP that grows past the byte or duration bound is dropped until the next
//! keyframe. Audio-only streams keep no GOP: any audio frame is a
//! starting point, so a late joiner gets the data keyframes and audio
//! configuration and then the live audio, with no added latency. Cached
//! configuration and data keyframes are copied out of the publisher's
//! receive buffers (small, long-lived); so are GOP frames under 64 KiB
//! (see [`COPY_BELOW`]), and players share the copy. The GOP is bounded in
//! frames and in true memory: payloads plus [`CACHED_OVERHEAD`] per frame,
//! so a flood of tiny frames cannot grow it past its byte bound.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, trace, warn};

use crate::event::{BrokerEvent, Frame, FrameKind, SessionId};
use crate::media::{parse_audio, parse_video, AudioPacket, MediaInfo, VideoPacket};
use crate::stats::{RateMeter, Traffic};
use crate::time::MediaTime;

use super::BrokerConfig;

/// Events the broker owes sessions, in order.
pub(super) type Outbox = VecDeque<(SessionId, BrokerEvent)>;

/// How far into a subscription (about 12 days) a rebased time in the upper
/// half of the 32-bit circle still reads as "before 0" and is clamped to 0.
/// Past it, plain wrapping arithmetic, so a subscription can outlive the
/// 24-day serial-number horizon.
const SETTLE_MS: i32 = 1 << 30;

/// Bounds of the gap put between the last frame of a publisher and the first
/// of a republish.
const MIN_GAP_MS: u32 = 1;
const MAX_GAP_MS: u32 = 100;

/// A stream of an App: at most one publisher, any number of subscribers.
#[derive(Debug)]
pub(super) struct Stream {
    /// The plain name, once someone published it (hashed players may wait
    /// for a stream whose name nobody told us yet). For logs only.
    pub(super) name: Option<String>,
    pub(super) publisher: Option<Publisher>,
    /// The query of the current publisher's name (for events and stats).
    pub(super) publish_query: String,
    /// Traffic and age, for [`super::Broker::stream_stats`].
    pub(super) meters: Meters,
    /// What the current publisher sends, from its sequence headers and
    /// metadata.
    pub(super) media: MediaInfo,
    /// In no particular order (fan-out walks them all).
    subscribers: Vec<Subscriber>,
    /// Where each (session, message stream) is in `subscribers`, so a
    /// player leaving a stream of thousands is not a search through them.
    positions: HashMap<(SessionId, u32), usize>,
    /// The republish grace deadline after the publisher left, mirrored in
    /// the broker's deadline set.
    pub(super) grace: Option<Instant>,
    cache: Cache,
    clock: Clock,
}

/// The accepted publisher of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Publisher {
    pub(super) session: SessionId,
    pub(super) stream_id: u32,
    /// The priority it published at: only a higher one takes over.
    pub(super) priority: u32,
    /// When it was accepted.
    pub(super) since: Instant,
    /// Added (wrapping) to the publisher's stamps to get stream time; fixed
    /// at its first audio/video message.
    offset: Option<u32>,
    /// Stream time of the publisher's first message.
    anchor: MediaTime,
}

impl Publisher {
    fn stream_time(&mut self, timestamp: MediaTime, kind: FrameKind) -> MediaTime {
        match self.offset {
            Some(offset) => timestamp.wrapping_add(offset),
            None if kind == FrameKind::Data => self.anchor,
            None => {
                let offset = self.anchor.as_millis().wrapping_sub(timestamp.as_millis());
                self.offset = Some(offset);
                self.anchor
            }
        }
    }
}

/// One `play` of the stream by one session's message stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscriber {
    session: SessionId,
    stream_id: u32,
    asis: bool,
    /// Stream time of the first thing sent; `None` until then.
    base: Option<MediaTime>,
    /// Whether the player knows the stream is live (it joined a published
    /// stream, or got PublishNotify), so it is owed UnpublishNotify if the
    /// publisher goes for good.
    live: bool,
    /// Past the first [`SETTLE_MS`]: no more clamping of early frames.
    settled: bool,
}

impl Subscriber {
    /// The timestamp this subscriber sees for a message at stream time
    /// `time` that the publisher stamped `original`.
    fn timestamp(&mut self, time: MediaTime, original: MediaTime) -> MediaTime {
        if self.asis {
            return original;
        }
        let base = *self.base.get_or_insert(time);
        if !self.settled {
            let since = time.since(base);
            if since <= 0 {
                return MediaTime::ZERO;
            }
            if since > SETTLE_MS {
                self.settled = true;
            }
        }
        MediaTime::from_millis(time.as_millis().wrapping_sub(base.as_millis()))
    }

    fn send(&self, out: &mut Outbox, event: BrokerEvent) {
        out.push_back((self.session, event));
    }

    fn send_frame(&mut self, out: &mut Outbox, frame: &Frame, time: MediaTime) {
        let timestamp = self.timestamp(time, frame.timestamp);
        self.send_at(out, frame, timestamp);
    }

    fn send_at(&self, out: &mut Outbox, frame: &Frame, timestamp: MediaTime) {
        let frame = Frame {
            kind: frame.kind,
            timestamp,
            // A refcount bump: every subscriber shares the payload.
            payload: frame.payload.clone(),
            keyframe: frame.keyframe,
            config: frame.config,
        };
        self.send(
            out,
            BrokerEvent::Frame {
                stream: self.stream_id,
                frame,
            },
        );
    }
}

/// Stream time bookkeeping that outlives publishers.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    /// Latest stream time reached by audio or video.
    high: Option<MediaTime>,
    /// Stream time of the last audio or video message.
    last: Option<MediaTime>,
    /// Last positive gap between two audio/video messages (ms).
    interval: Option<u32>,
}

impl Clock {
    fn observe(&mut self, time: MediaTime) {
        if let Some(last) = self.last {
            if let Ok(gap) = u32::try_from(time.since(last)) {
                if gap > 0 {
                    self.interval = Some(gap);
                }
            }
        }
        self.last = Some(time);
        if self.high.map_or(true, |high| time.is_after(high)) {
            self.high = Some(time);
        }
    }

    /// Where a new publisher's first message lands.
    fn next_anchor(&self) -> MediaTime {
        match self.high {
            None => MediaTime::ZERO,
            Some(high) => {
                let gap = self
                    .interval
                    .unwrap_or(MIN_GAP_MS)
                    .clamp(MIN_GAP_MS, MAX_GAP_MS);
                high.wrapping_add(gap)
            }
        }
    }
}

/// What one cached GOP frame costs besides its payload: the entry itself
/// in the GOP's vector, plus the shared buffer's header (`bytes` allocates
/// one once a payload is shared) and the allocator's rounding of the
/// payload's own allocation. Counted with every cached frame, so a flood
/// of tiny frames is bounded by what it really costs, not by its payload.
pub(super) const CACHED_OVERHEAD: usize = std::mem::size_of::<Cached>() + 48;

/// A message kept for fast start, with the publisher's stamp in
/// `frame.timestamp` and its place on the stream timeline.
#[derive(Debug, Clone, PartialEq)]
struct Cached {
    frame: Frame,
    time: MediaTime,
}

/// Which piece of decoder state a configuration message sets: each is kept
/// separately (the latest of each) per media kind and track set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigSlot {
    /// Sequence header / `SequenceStart`.
    SequenceStart,
    /// Enhanced video `MPEG2TSSequenceStart`.
    Mpeg2TsSequenceStart,
    /// Enhanced video `Metadata` (`colorInfo`).
    VideoMetadata,
    /// Enhanced audio `MultichannelConfig`.
    MultichannelConfig,
    /// Flagged as configuration by the session but not understood here:
    /// one slot per media kind.
    Opaque,
}

/// A set of multitrack track ids (a UI8, so 256 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct TrackSet([u64; 4]);

impl TrackSet {
    fn insert(&mut self, id: u8) {
        self.0[usize::from(id >> 6)] |= 1 << (id & 63);
    }

    fn single(id: u8) -> Self {
        let mut set = TrackSet::default();
        set.insert(id);
        set
    }

    fn is_subset_of(&self, other: &TrackSet) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & !b == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConfigKey {
    kind: FrameKind,
    slot: ConfigSlot,
    tracks: TrackSet,
}

impl ConfigKey {
    /// Reads the slot and tracks a configuration message sets.
    fn of(kind: FrameKind, payload: &Bytes) -> Self {
        let mut tracks = TrackSet::default();
        let mut slot = None;
        match kind {
            FrameKind::Video => {
                if let Ok(tag) = parse_video(payload) {
                    for track in tag.tracks() {
                        tracks.insert(track.track_id);
                        slot = slot.or(match track.packet {
                            VideoPacket::SequenceStart(_) => Some(ConfigSlot::SequenceStart),
                            VideoPacket::Mpeg2TsSequenceStart(_) => {
                                Some(ConfigSlot::Mpeg2TsSequenceStart)
                            }
                            VideoPacket::Metadata(_) => Some(ConfigSlot::VideoMetadata),
                            VideoPacket::CodedFrames { .. } | VideoPacket::SequenceEnd => None,
                        });
                    }
                }
            }
            FrameKind::Audio => {
                if let Ok(tag) = parse_audio(payload) {
                    for track in tag.tracks() {
                        tracks.insert(track.track_id);
                        slot = slot.or(match track.packet {
                            AudioPacket::SequenceStart(_) => Some(ConfigSlot::SequenceStart),
                            AudioPacket::MultichannelConfig(_) => {
                                Some(ConfigSlot::MultichannelConfig)
                            }
                            AudioPacket::CodedFrames(_) | AudioPacket::SequenceEnd => None,
                        });
                    }
                }
            }
            FrameKind::Data => {}
        }
        match slot {
            Some(slot) => ConfigKey { kind, slot, tracks },
            None => ConfigKey {
                kind,
                slot: ConfigSlot::Opaque,
                tracks: TrackSet::single(0),
            },
        }
    }

    /// Whether `self` is superseded by a newer configuration `newer`.
    fn replaced_by(&self, newer: &ConfigKey) -> bool {
        self.kind == newer.kind
            && self.slot == newer.slot
            && self.tracks.is_subset_of(&newer.tracks)
    }
}

/// The tracks an end-of-sequence message closes, if it is one.
fn sequence_end(kind: FrameKind, payload: &Bytes) -> Option<TrackSet> {
    let mut tracks = TrackSet::default();
    match kind {
        FrameKind::Video => {
            let tag = parse_video(payload).ok()?;
            if !tag.is_sequence_end() {
                return None;
            }
            tag.tracks().for_each(|t| tracks.insert(t.track_id));
        }
        FrameKind::Audio => {
            let tag = parse_audio(payload).ok()?;
            if !tag.is_sequence_end() {
                return None;
            }
            tag.tracks().for_each(|t| tracks.insert(t.track_id));
        }
        FrameKind::Data => return None,
    }
    Some(tracks)
}

/// A copy of `frame` in a fresh allocation: a zero-copy slice would pin the
/// publisher's whole receive buffer for as long as it stays cached.
fn detached(frame: &Frame) -> Frame {
    Frame {
        payload: Bytes::copy_from_slice(&frame.payload),
        ..frame.clone()
    }
}

/// GOP frames smaller than this are copied out of the publisher's receive
/// buffer when cached. The chunk decoder hands out a message that arrived
/// in one chunk as a slice of its receive block, which is at least one
/// read (64 KiB) and larger after a big message, and a cached slice keeps
/// that whole block alive for as long as the GOP lasts: a publisher
/// interleaving tiny cached frames with junk would make each cached byte
/// pin kilobytes. A frame of at least one read's size pins at most about
/// twice what it is counted as, so it is kept shared; below it, one copy
/// per frame per stream (not per player, who share the copy) is at most a
/// 64 KiB `memcpy`, noise next to the fan-out.
const COPY_BELOW: usize = 64 * 1024;

/// `frame`, copied if it is small enough that sharing the receive buffer
/// would cost more than the copy (see [`COPY_BELOW`]).
fn detached_if_small(frame: Frame) -> Frame {
    if frame.payload.len() < COPY_BELOW {
        detached(&frame)
    } else {
        frame
    }
}

/// What a late joiner is sent before live media.
#[derive(Debug, Default)]
struct Cache {
    /// Data keyframes by handler, in the order first set.
    data: Vec<(String, Cached)>,
    /// Latest decoder configuration per [`ConfigKey`], in arrival order (a
    /// later one overrides an earlier one for the same track in a player).
    configs: Vec<(ConfigKey, Cached)>,
    /// The current GOP, keyframe first; empty when not collecting.
    gop: Vec<Cached>,
    /// Memory the GOP holds: payloads plus [`CACHED_OVERHEAD`] per frame.
    gop_bytes: usize,
}

impl Cache {
    fn clear(&mut self) {
        *self = Cache::default();
    }

    fn set_data(&mut self, handler: &str, cached: Cached, max: usize) -> bool {
        if let Some(slot) = self.data.iter_mut().find(|(h, _)| h == handler) {
            slot.1 = cached;
            return true;
        }
        if self.data.len() >= max {
            return false;
        }
        self.data.push((handler.to_owned(), cached));
        true
    }

    fn set_config(&mut self, key: ConfigKey, cached: Cached, max: usize) -> bool {
        self.configs.retain(|(old, _)| !old.replaced_by(&key));
        if self.configs.len() >= max {
            return false;
        }
        self.configs.push((key, cached));
        true
    }

    fn end_sequence(&mut self, kind: FrameKind, tracks: &TrackSet) {
        self.configs
            .retain(|(key, _)| !(key.kind == kind && key.tracks.is_subset_of(tracks)));
    }

    /// Starts a new GOP at a keyframe. A keyframe at the media time of the
    /// GOP's own first keyframe joins it instead: a multitrack publisher
    /// (FFmpeg 8+, OBS) sends each track's keyframe in its own message at
    /// the same timestamp, and restarting at the second would cut the
    /// first track's keyframe out of every late joiner's fast start.
    fn start_gop(&mut self, cached: Cached, config: &BrokerConfig) {
        if self
            .gop
            .first()
            .is_some_and(|first| first.frame.keyframe && first.time == cached.time)
        {
            self.push_gop(cached, config);
            return;
        }
        self.gop.clear();
        self.gop_bytes = 0;
        self.push_gop(cached, config);
    }

    /// Adds to the GOP being collected, dropping it when it grows past the
    /// bounds (late joiners then wait for the next keyframe).
    fn push_gop(&mut self, cached: Cached, config: &BrokerConfig) {
        let start = match self.gop.first() {
            Some(first) => first.time,
            None => cached.time,
        };
        let bytes = self
            .gop_bytes
            .saturating_add(cached.frame.payload.len() + CACHED_OVERHEAD);
        let frames = self.gop.len() + 1;
        let span = i64::from(cached.time.since(start));
        let max_span =
            i64::try_from(config.fast_start_max_duration.as_millis()).unwrap_or(i64::MAX);
        if bytes > config.fast_start_max_bytes
            || frames > config.fast_start_max_frames
            || span > max_span
        {
            debug!(
                bytes,
                frames, span, "GOP past the fast-start bounds, not cached"
            );
            self.gop.clear();
            self.gop_bytes = 0;
            // Dropping the keyframe stops collection until the next one.
            return;
        }
        self.gop_bytes = bytes;
        self.gop.push(cached);
    }
}

/// A stream's traffic since it was created.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meters {
    pub(super) created: Instant,
    pub(super) input: Traffic,
    pub(super) output: Traffic,
    pub(super) rate_in: RateMeter,
    pub(super) rate_out: RateMeter,
}

impl Meters {
    fn new(now: Instant) -> Self {
        Meters {
            created: now,
            input: Traffic::default(),
            output: Traffic::default(),
            rate_in: RateMeter::new(now),
            rate_out: RateMeter::new(now),
        }
    }

    /// One message of `len` payload bytes from the publisher, handed to
    /// `players` subscribers.
    pub(super) fn count(&mut self, now: Instant, len: usize, players: usize) {
        let len = len as u64;
        let players = players as u64;
        self.input.frames += 1;
        self.input.bytes += len;
        self.rate_in.add(now, len);
        if players > 0 {
            self.output.frames += players;
            self.output.bytes += len * players;
            self.rate_out.add(now, len * players);
        }
    }
}

impl Stream {
    /// A stream nobody publishes or plays yet.
    pub(super) fn new(now: Instant) -> Self {
        Stream {
            name: None,
            publisher: None,
            publish_query: String::new(),
            meters: Meters::new(now),
            media: MediaInfo::default(),
            subscribers: Vec::new(),
            positions: HashMap::new(),
            grace: None,
            cache: Cache::default(),
            clock: Clock::default(),
        }
    }

    /// Memory its cached GOP holds: payloads plus per-entry bookkeeping.
    pub(super) fn fast_start_memory(&self) -> usize {
        self.cache
            .gop
            .iter()
            .map(|c| c.frame.payload.len() + CACHED_OVERHEAD)
            .sum()
    }

    /// Nobody publishes or plays it: it can be freed.
    pub(super) fn is_idle(&self) -> bool {
        self.publisher.is_none() && self.subscribers.is_empty()
    }

    /// Whether anyone plays it.
    pub(super) fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// How many play it (waiting players included).
    pub(super) fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// A publisher was accepted. Players that did not know the stream was
    /// live are told; players continuing through a republish grace are not
    /// (their timeline simply continues). The cache is empty here (it is
    /// cleared when a publisher leaves), so there is nothing to fast start.
    pub(super) fn attach(
        &mut self,
        now: Instant,
        session: SessionId,
        stream_id: u32,
        priority: u32,
        publisher_name: Option<String>,
        out: &mut Outbox,
    ) {
        self.publisher = Some(Publisher {
            session,
            stream_id,
            priority,
            since: now,
            offset: None,
            anchor: self.clock.next_anchor(),
        });
        for sub in self.subscribers.iter_mut().filter(|s| !s.live) {
            sub.live = true;
            sub.send(
                out,
                BrokerEvent::PublishNotify {
                    stream: sub.stream_id,
                    priority,
                    publisher_name: publisher_name.clone(),
                },
            );
        }
    }

    /// The publisher left. What it set (data keyframes, configuration, the
    /// GOP) goes with it, so a late joiner never gets stale metadata.
    pub(super) fn detach(&mut self) -> Option<Publisher> {
        self.cache.clear();
        self.publisher.take()
    }

    /// The grace after the publisher left expired: live players are told,
    /// and stay subscribed for a later publisher.
    pub(super) fn expire_grace(&mut self, out: &mut Outbox) {
        for sub in self.subscribers.iter_mut().filter(|s| s.live) {
            sub.live = false;
            sub.send(
                out,
                BrokerEvent::UnpublishNotify {
                    stream: sub.stream_id,
                },
            );
        }
    }

    /// A new `play`. On a published stream it starts at once from the
    /// cache: data keyframes, configuration, then the GOP.
    pub(super) fn subscribe(
        &mut self,
        session: SessionId,
        stream_id: u32,
        asis: bool,
        out: &mut Outbox,
    ) {
        let mut sub = Subscriber {
            session,
            stream_id,
            asis,
            base: None,
            live: self.publisher.is_some(),
            settled: false,
        };
        if sub.live {
            self.fast_start(&mut sub, out);
        }
        // The broker stops a message stream's play before a new one.
        self.unsubscribe(session, stream_id);
        self.positions
            .insert((session, stream_id), self.subscribers.len());
        self.subscribers.push(sub);
    }

    fn fast_start(&self, sub: &mut Subscriber, out: &mut Outbox) {
        if !sub.asis {
            // Start the timeline at the GOP's keyframe, or, without one, at
            // the live edge, so the next live frame comes right after what
            // the cache gave.
            sub.base = self.cache.gop.first().map(|c| c.time).or(self.clock.high);
        }
        let head = self.cache.data.iter().map(|(_, c)| c);
        let configs = self.cache.configs.iter().map(|(_, c)| c);
        for cached in head.chain(configs) {
            let timestamp = if sub.asis {
                cached.frame.timestamp
            } else {
                MediaTime::ZERO
            };
            sub.send_at(out, &cached.frame, timestamp);
        }
        // In timestamp order, whatever order the publisher's muxer sent
        // them in: a player handed a second of audio before the first video
        // frame (GStreamer) stalls. Stable, so each media kind keeps its own
        // (decode) order.
        let mut gop: Vec<&Cached> = self.cache.gop.iter().collect();
        if let Some(first) = gop.first().map(|c| c.time) {
            gop.sort_by_key(|c| c.time.since(first));
        }
        for cached in gop {
            sub.send_frame(out, &cached.frame, cached.time);
        }
    }

    /// A `closeStream`/`deleteStream`/close of one player.
    pub(super) fn unsubscribe(&mut self, session: SessionId, stream_id: u32) {
        let Some(i) = self.positions.remove(&(session, stream_id)) else {
            return;
        };
        self.subscribers.swap_remove(i);
        if let Some(moved) = self.subscribers.get(i) {
            self.positions.insert((moved.session, moved.stream_id), i);
        }
        if self.subscribers.is_empty() {
            // A stream that had a crowd does not keep its room.
            self.subscribers = Vec::new();
            self.positions = HashMap::new();
        }
    }

    /// Every subscription, as (session, message stream id), for
    /// [`super::Broker::check_invariants`].
    pub(super) fn subscriptions(&self) -> impl Iterator<Item = (SessionId, u32)> + '_ {
        self.subscribers.iter().map(|s| (s.session, s.stream_id))
    }

    /// Whether `session`'s message stream `stream_id` is the accepted
    /// publisher.
    pub(super) fn is_publisher(&self, session: SessionId, stream_id: u32) -> bool {
        self.publisher
            .is_some_and(|p| p.session == session && p.stream_id == stream_id)
    }

    /// Media or plain data from the publisher: cache and fan out.
    pub(super) fn handle_frame(&mut self, frame: Frame, config: &BrokerConfig, out: &mut Outbox) {
        let Some(publisher) = self.publisher.as_mut() else {
            return;
        };
        let time = publisher.stream_time(frame.timestamp, frame.kind);
        if frame.kind != FrameKind::Data {
            self.clock.observe(time);
        }
        let frame = if frame.config {
            let frame = detached(&frame);
            let key = ConfigKey::of(frame.kind, &frame.payload);
            let cached = Cached {
                frame: frame.clone(),
                time,
            };
            if !self.cache.set_config(key, cached, config.max_config_frames) {
                warn!(
                    max = config.max_config_frames,
                    "too many configuration frames, not cached"
                );
            }
            frame
        } else if frame.kind == FrameKind::Video && frame.keyframe {
            let frame = detached_if_small(frame);
            let cached = Cached {
                frame: frame.clone(),
                time,
            };
            self.cache.start_gop(cached, config);
            frame
        } else {
            if let Some(tracks) = sequence_end(frame.kind, &frame.payload) {
                self.cache.end_sequence(frame.kind, &tracks);
            }
            if self.cache.gop.is_empty() {
                frame
            } else {
                let frame = detached_if_small(frame);
                let cached = Cached {
                    frame: frame.clone(),
                    time,
                };
                self.cache.push_gop(cached, config);
                frame
            }
        };
        trace!(kind = ?frame.kind, time = time.as_millis(), "fan out");
        for sub in &mut self.subscribers {
            sub.send_frame(out, &frame, time);
        }
    }

    /// `@setDataFrame` from the publisher: keep and fan out.
    pub(super) fn set_data_frame(
        &mut self,
        handler: &str,
        frame: Frame,
        config: &BrokerConfig,
        out: &mut Outbox,
    ) {
        let Some(publisher) = self.publisher.as_mut() else {
            return;
        };
        let time = publisher.stream_time(frame.timestamp, frame.kind);
        let frame = detached(&frame);
        let cached = Cached {
            frame: frame.clone(),
            time,
        };
        if !self
            .cache
            .set_data(handler, cached, config.max_data_keyframes)
        {
            warn!(
                max = config.max_data_keyframes,
                "too many data keyframes, not cached"
            );
        }
        for sub in &mut self.subscribers {
            sub.send_frame(out, &frame, time);
        }
    }

    /// `@clearDataFrame` from the publisher.
    pub(super) fn clear_data_frame(&mut self, handler: &str) {
        self.cache.data.retain(|(h, _)| h != handler);
    }
}
