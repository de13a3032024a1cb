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
//!
//! # Streams
//!
//! A stream is keyed by its App and the SHA-256 of its plain name, so a
//! `sha256:` player and a plain-name player meet on the same stream, and a
//! player of a hashed name nobody publishes yet simply waits on that key
//! until a publisher of a matching name appears. A stream exists while
//! someone publishes or plays it: a player waiting for a name holds it (and
//! counts against [`BrokerConfig::max_streams`]), and a stream nobody
//! publishes or plays any more is freed at once, pending grace included
//! (the grace only serves players).
//!
//! When a publisher leaves (unpublish, close, eviction by `releaseStream`),
//! its data keyframes, configuration and GOP go with it, and its players
//! stay subscribed: a publisher within [`BrokerConfig::republish_grace`]
//! continues their timeline without a word; after it they get
//! `UnpublishNotify`, and `PublishNotify` when someone publishes again.
//! Timestamp rebasing and stitching are described in the `stream` module
//! source.
//!
//! # TC messaging
//!
//! Connections address each other by the connection ID they were given at
//! `connect`. `relay` reaches one connection in any App, `broadcast` every
//! member of the sender's App (the sender too), both as the `onRelay` body
//! the sender's session already encoded, shared by reference count. `watch`
//! registers for an `onDisconnected` when a connection closes (at once if it
//! is not connected); a session watches at most 1024 connections.

mod invariants;
mod names;
mod stream;
mod tc;
#[cfg(test)]
mod tc_tests;
#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info, trace, warn};

use crate::amf::amf0;
use crate::event::{
    BrokerEvent, ConnectInfo, Eviction, FrameKind, PlayRejection, PlayRequest, PublishRejection,
    SessionEvent, SessionId,
};
use crate::media::MediaInfo;
use crate::message::PublishKind;
use crate::stats::StreamStats;

use crate::redact::redact;
use names::{check_publish_name, hash_name, hashname, parse_play_name, NameHash};
use stream::{Outbox, Stream};
use tc::Watches;

/// Knobs of the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// How long subscribers wait for a new publisher after the publisher of
    /// their stream stops before they are told
    /// `NetStream.Play.UnpublishNotify` (which ends FFmpeg's playback). A
    /// republish within it continues playback seamlessly.
    pub republish_grace: Duration,
    /// Most memory kept per stream for fast start (the current GOP from
    /// its keyframe): payloads plus a fixed per-frame overhead for the
    /// bookkeeping (about 100 bytes), so tiny frames count for what they
    /// cost. Past it the GOP is not cached: late joiners start at the next
    /// keyframe.
    pub fast_start_max_bytes: usize,
    /// Most frames (audio, video and data) kept per stream for fast start.
    /// 20 s of 60 fps video with two 50 fps audio tracks is 3200; past it
    /// the GOP is not cached, as past the byte bound.
    pub fast_start_max_frames: usize,
    /// Longest span of media time kept for fast start.
    pub fast_start_max_duration: Duration,
    /// Most data keyframes (`@setDataFrame` handlers) one stream may hold.
    pub max_data_keyframes: usize,
    /// Most decoder configuration frames kept per stream (one per media kind
    /// and track).
    pub max_config_frames: usize,
    /// Most streams (published or waited for) in the whole server.
    pub max_streams: usize,
    /// Whether `releaseStream` evicts whoever publishes the name, whatever
    /// their priority (TC Server's old behaviour, and what a deployment
    /// whose encoders must always take over a stuck publish wants). Off by
    /// default: FFmpeg, OBS and librtmp send `releaseStream` before every
    /// publish, so with it a second encoder on a live key kicks the first
    /// one out instead of being refused.
    pub release_stream_evicts_any: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            republish_grace: Duration::from_secs(5),
            fast_start_max_bytes: 16 * 1024 * 1024,
            fast_start_max_duration: Duration::from_secs(20),
            fast_start_max_frames: 4096,
            max_data_keyframes: 64,
            max_config_frames: 64,
            max_streams: 100_000,
            release_stream_evicts_any: false,
        }
    }
}

/// Bytes one entry of the broker's output queue takes (the recipient and
/// the event; payloads are shared, not counted). The queue holds at most
/// one event's fan-out when the runtime drains it after every event, as
/// [`crate::server::Server`] does.
pub const OUTPUT_ENTRY_BYTES: usize = std::mem::size_of::<(SessionId, BrokerEvent)>();

/// Most memory of output queue room kept once the queue has drained: a
/// burst (a runtime that drained late, a broadcast to a huge App) does not
/// keep its room for the life of the server, while the steady fan-out of
/// one frame to ~18 000 players reuses its room instead of reallocating it
/// per frame.
pub const OUTPUT_KEEP_BYTES: usize = 1024 * 1024;

/// Most message streams (publishes plus plays) one session may hold in the
/// broker. Sessions already bound their message streams; this keeps the
/// broker's own maps bounded even if a session did not.
const MAX_STREAMS_PER_SESSION: usize = 1024;

/// An App, by a number handed out when its first member or stream appears.
type AppId = u64;

/// A stream: its App and the SHA-256 of its plain name (so hashed and plain
/// names meet on one key, even before the name is published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StreamKey {
    app: AppId,
    hash: NameHash,
}

/// What the broker did that the server's embedder hears about (through
/// [`crate::server::ServerEvent`]): drained with [`Broker::poll_notice`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notice {
    /// A publish was accepted and is live.
    PublishStarted {
        /// The publisher.
        session: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
        /// The query the name carried.
        query: String,
    },
    /// A live publish ended (unpublish, eviction, close).
    PublishEnded {
        /// The publisher.
        session: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
    },
    /// A play was accepted (the player may still wait for a publisher).
    PlayStarted {
        /// The player.
        session: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The name as the player asked for it (prefixes included).
        name: String,
        /// The query the name carried.
        query: String,
    },
    /// What a published stream carries changed (a sequence header, new
    /// metadata, the publisher left).
    MediaChanged {
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
        /// The description now.
        info: Box<MediaInfo>,
    },
    /// A play ended (closeStream, deleteStream, a new play, close).
    PlayStopped {
        /// The player.
        session: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The name as the player asked for it.
        name: String,
    },
}

/// A publish request as the broker decides it.
#[derive(Debug)]
struct PublishAsk {
    seq: u64,
    name: String,
    query: String,
    priority: u32,
}

/// A session that connected to an App.
#[derive(Debug)]
struct SessionState {
    app: AppId,
    connection_id: String,
    /// The publisher name its token carries (TC's `name`).
    publisher_name: Option<String>,
    /// Accepted publishes by message stream id.
    publishes: HashMap<u32, StreamKey>,
    /// Plays by message stream id, with the name asked for.
    plays: HashMap<u32, (StreamKey, String)>,
}

impl SessionState {
    fn stream_count(&self) -> usize {
        self.publishes.len() + self.plays.len()
    }
}

/// An App, kept while it has members or streams.
#[derive(Debug)]
struct App {
    name: String,
    /// Members plus streams.
    refs: usize,
    /// Connected sessions: the reach of `broadcast` (ordered, so delivery
    /// order is deterministic).
    members: BTreeSet<SessionId>,
}

/// The server-wide registry of Apps, streams, publishers and players.
///
/// Every map is bounded: sessions by the runtime's connection limit, streams
/// by [`BrokerConfig::max_streams`] (a `play` that would create a stream past
/// it is not registered and logged at warn: there is no event to refuse a
/// play, the player simply never gets media), per-stream caches by the other
/// [`BrokerConfig`] limits, Apps by their members and streams.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    next_session: u64,
    next_app: AppId,
    sessions: HashMap<SessionId, SessionState>,
    connections: HashMap<String, SessionId>,
    app_ids: HashMap<String, AppId>,
    apps: HashMap<AppId, App>,
    streams: HashMap<StreamKey, Stream>,
    /// Republish grace deadlines, earliest first.
    graces: BTreeSet<(Instant, StreamKey)>,
    published: usize,
    output: Outbox,
    /// Publish and play starts and ends, for the embedder. One entry per
    /// accepted request or end, drained after every call.
    notices: VecDeque<Notice>,
    /// Most entries the output queue held at once (stats).
    output_peak: usize,
    /// TC `watch` registrations.
    watches: Watches,
}

impl Broker {
    /// An empty broker.
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            config,
            next_session: 1,
            next_app: 1,
            sessions: HashMap::new(),
            connections: HashMap::new(),
            app_ids: HashMap::new(),
            apps: HashMap::new(),
            streams: HashMap::new(),
            graces: BTreeSet::new(),
            published: 0,
            output: VecDeque::new(),
            notices: VecDeque::new(),
            output_peak: 0,
            watches: Watches::default(),
        }
    }

    /// Replaces the broker's settings (a reloaded configuration): limits
    /// and cache bounds apply from the next message on, nothing live is
    /// dropped (a stream limit lowered below the streams held refuses new
    /// ones only).
    pub fn set_config(&mut self, config: BrokerConfig) {
        self.config = config;
    }

    /// A fresh id for a new connection; ids are never reused.
    pub fn open_session(&mut self) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        id
    }

    /// An event from session `id`. Events of one session must arrive in the
    /// order it emitted them.
    pub fn handle_event(&mut self, now: Instant, id: SessionId, event: SessionEvent) {
        if let SessionEvent::Connected(info) = event {
            let ConnectInfo {
                app,
                connection_id,
                user,
                ..
            } = *info;
            let publisher_name = user.and_then(|u| crate::auth::UserProperties::parse(&u).name);
            self.connect(id, app, connection_id, publisher_name);
            return;
        }
        if !self.sessions.contains_key(&id) {
            debug!(session = %id, "event from a session that is not connected, ignored");
            return;
        }
        match event {
            SessionEvent::Connected(_) | SessionEvent::ConnectRequest(_) => {}
            SessionEvent::Publish {
                stream,
                seq,
                name,
                query,
                kind,
                priority,
            } => {
                let request = PublishAsk {
                    seq,
                    name,
                    query,
                    priority,
                };
                self.publish(now, id, stream, request, &kind);
            }
            SessionEvent::Unpublish { stream } => self.unpublish(now, id, stream),
            SessionEvent::Play { stream, request } => self.play(now, id, stream, request),
            SessionEvent::StopPlay { stream } => self.stop_play(id, stream),
            SessionEvent::Frame { stream, frame } => {
                if let Some(s) = publishing(&self.sessions, &mut self.streams, id, stream) {
                    s.meters
                        .count(now, frame.payload.len(), s.subscriber_count());
                    // Only decoder configuration and keyframes can change
                    // the description: parsing those costs nothing per player.
                    let changed = (frame.config || frame.keyframe)
                        && match frame.kind {
                            FrameKind::Video => s.media.update_from_video(&frame.payload),
                            FrameKind::Audio => s.media.update_from_audio(&frame.payload),
                            FrameKind::Data => false,
                        };
                    if changed {
                        let notice = media_notice(&self.apps, id, &self.sessions, s);
                        self.notices.extend(notice);
                    }
                    s.handle_frame(frame, &self.config, &mut self.output);
                } else {
                    trace!(session = %id, stream, "media from a non-publisher, ignored");
                }
            }
            SessionEvent::SetDataFrame {
                stream,
                handler,
                frame,
            } => {
                if let Some(s) = publishing(&self.sessions, &mut self.streams, id, stream) {
                    s.meters
                        .count(now, frame.payload.len(), s.subscriber_count());
                    if handler == "onMetaData" && update_metadata(&mut s.media, &frame.payload) {
                        let notice = media_notice(&self.apps, id, &self.sessions, s);
                        self.notices.extend(notice);
                    }
                    s.set_data_frame(&handler, frame, &self.config, &mut self.output);
                }
            }
            SessionEvent::ClearDataFrame { stream, handler } => {
                if let Some(s) = publishing(&self.sessions, &mut self.streams, id, stream) {
                    s.clear_data_frame(&handler);
                }
            }
            SessionEvent::ReleaseStream { name, max_priority } => {
                self.release(now, id, &name, max_priority);
            }
            SessionEvent::Relay { target, body } => self.relay(id, &target, body),
            SessionEvent::Broadcast { body } => self.broadcast(id, body),
            SessionEvent::Watch { target } => self.watch(id, target),
            SessionEvent::Closed => self.close(now, id),
        }
    }

    /// Deadlines have passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, key)) = self.graces.first() {
            if deadline > now {
                break;
            }
            self.graces.remove(&(deadline, key));
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            stream.grace = None;
            debug!(
                name = %redacted(stream.name.as_deref()),
                "republish grace expired"
            );
            stream.expire_grace(&mut self.output);
            self.free_if_idle(key);
        }
    }

    /// The next event for a session, with its recipient.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<(SessionId, BrokerEvent)> {
        self.output_peak = self.output_peak.max(self.output.len());
        let next = self.output.pop_front();
        if next.is_none() && self.output.capacity() * OUTPUT_ENTRY_BYTES > OUTPUT_KEEP_BYTES {
            self.output
                .shrink_to(OUTPUT_KEEP_BYTES / OUTPUT_ENTRY_BYTES);
        }
        next
    }

    /// Memory the output queue holds right now (its room, used or not).
    pub fn output_memory(&self) -> usize {
        self.output.capacity() * OUTPUT_ENTRY_BYTES
    }

    /// The most memory the output queue's entries ever took at once: a
    /// runtime draining after every event keeps it to one event's fan-out.
    pub fn output_peak_memory(&self) -> usize {
        self.output_peak * OUTPUT_ENTRY_BYTES
    }

    /// The next publish or play start or end, for the embedder. Drain after
    /// every call, as [`Broker::poll_output`].
    #[must_use]
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Statistics of stream `name` of App `app` (a plain name, or a
    /// `sha256:` one), if it exists.
    pub fn stream_stats(&self, now: Instant, app: &str, name: &str) -> Option<StreamStats> {
        let app_id = *self.app_ids.get(app)?;
        let hash = parse_play_name(name)?.hash;
        let key = StreamKey { app: app_id, hash };
        self.streams.get(&key).map(|s| self.stats_of(now, key, s))
    }

    /// Statistics of every stream, in no particular order.
    pub fn streams_stats(&self, now: Instant) -> impl Iterator<Item = StreamStats> + '_ {
        self.streams
            .iter()
            .map(move |(key, s)| self.stats_of(now, *key, s))
    }

    fn stats_of(&self, now: Instant, key: StreamKey, s: &Stream) -> StreamStats {
        let m = &s.meters;
        StreamStats {
            app: self.app_name(key.app),
            name: s.name.clone(),
            publisher: s.publisher.map(|p| p.session),
            published_for: s.publisher.map(|p| now.saturating_duration_since(p.since)),
            media: s.media.clone(),
            subscribers: s.subscriber_count(),
            input: m.input,
            output: m.output,
            bitrate_in: m.rate_in.bits_per_second(now),
            bitrate_out: m.rate_out.bits_per_second(now),
            uptime: now.saturating_duration_since(m.created),
        }
    }

    /// The App session `id` connected to, while it is connected.
    pub fn app_of(&self, id: SessionId) -> Option<&str> {
        let app = self.sessions.get(&id)?.app;
        self.apps.get(&app).map(|a| a.name.as_str())
    }

    /// How many streams session `id` publishes and plays now.
    pub fn roles_of(&self, id: SessionId) -> (usize, usize) {
        self.sessions
            .get(&id)
            .map_or((0, 0), |s| (s.publishes.len(), s.plays.len()))
    }

    fn app_name(&self, app: AppId) -> String {
        self.apps
            .get(&app)
            .map(|a| a.name.clone())
            .unwrap_or_default()
    }

    /// The next deadline, if any: the earliest republish grace to expire
    /// (the first entry of an ordered set, so cheap with many streams).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.graces.first().map(|&(deadline, _)| deadline)
    }

    /// Number of sessions that connected and have not closed.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of streams currently published.
    pub fn published_count(&self) -> usize {
        self.published
    }

    /// Number of streams held: published, waited for by players, or
    /// between publishers. A stream nobody publishes or plays is freed.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Memory held by every stream's fast-start GOP: payload bytes plus
    /// the bookkeeping of each cached frame. What
    /// [`BrokerConfig::fast_start_max_bytes`] bounds per stream; for stats
    /// (it walks the streams).
    pub fn fast_start_memory(&self) -> usize {
        self.streams.values().map(Stream::fast_start_memory).sum()
    }

    /// The session that was given `connection_id` at `connect`, while it is
    /// connected: how relay, broadcast and watch address a connection.
    pub fn session_for_connection_id(&self, connection_id: &str) -> Option<SessionId> {
        self.connections.get(connection_id).copied()
    }

    fn connect(
        &mut self,
        id: SessionId,
        app: String,
        connection_id: String,
        publisher_name: Option<String>,
    ) {
        if id.0 == 0 || id.0 >= self.next_session {
            debug!(session = %id, "connect from an id never opened, ignored");
            return;
        }
        if self.sessions.contains_key(&id) {
            debug!(session = %id, "second connect, ignored");
            return;
        }
        let app = self.app_ref(app);
        if let Some(a) = self.apps.get_mut(&app) {
            a.members.insert(id);
        }
        match self.connections.entry(connection_id.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(id);
            }
            Entry::Occupied(_) => {
                // Connection IDs are drawn by the runtime to be unique; keep
                // the first owner rather than let a collision steal it.
                warn!(session = %id, "connection ID already in use, not indexed");
            }
        }
        self.sessions.insert(
            id,
            SessionState {
                app,
                connection_id,
                publisher_name,
                publishes: HashMap::new(),
                plays: HashMap::new(),
            },
        );
    }

    fn publish(
        &mut self,
        now: Instant,
        id: SessionId,
        stream_id: u32,
        request: PublishAsk,
        kind: &PublishKind,
    ) {
        let PublishAsk {
            seq,
            name,
            query,
            priority,
        } = request;
        // A second publish on the same message stream replaces the first.
        if self
            .sessions
            .get(&id)
            .is_some_and(|s| s.publishes.contains_key(&stream_id))
        {
            self.unpublish(now, id, stream_id);
        }
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let app = session.app;
        let reject = |reason| BrokerEvent::PublishRejected {
            stream: stream_id,
            seq,
            reason,
        };
        if let Err(why) = check_publish_name(&name) {
            info!(session = %id, name = %redact(&name), why, "publish rejected");
            self.output
                .push_back((id, reject(PublishRejection::BadName(why))));
            return;
        }
        let key = StreamKey {
            app,
            hash: hash_name(&name),
        };
        let mut take_over = None;
        let reason = match self.streams.get(&key) {
            Some(stream) => match stream.publisher {
                // A higher priority takes over the live publish.
                Some(current) if priority > current.priority => {
                    take_over = Some(current);
                    None
                }
                Some(_) => Some(PublishRejection::AlreadyPublishing),
                None => None,
            },
            None if self.streams.len() >= self.config.max_streams => {
                Some(PublishRejection::TooManyStreams)
            }
            None => None,
        };
        let reason = reason.or_else(|| {
            (session.stream_count() >= MAX_STREAMS_PER_SESSION)
                .then_some(PublishRejection::TooManyStreams)
        });
        if let Some(reason) = reason {
            info!(session = %id, name = %redact(&name), %reason, "publish rejected");
            self.output.push_back((id, reject(reason)));
            return;
        }

        if let Some(current) = take_over {
            info!(
                session = %current.session,
                by = %id,
                name = %redact(&name),
                priority,
                "publisher taken over by a higher priority"
            );
            self.evict(
                now,
                key,
                current.session,
                current.stream_id,
                Eviction::TakenOver,
            );
        }
        self.output.push_back((
            id,
            BrokerEvent::PublishAccepted {
                stream: stream_id,
                seq,
                hashname: hashname(&key.hash),
            },
        ));
        info!(session = %id, name = %redact(&name), ?kind, priority, "publish accepted");
        self.ensure_stream(now, key);
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        if let Some(deadline) = stream.grace.take() {
            self.graces.remove(&(deadline, key));
        }
        stream.name = Some(name.clone());
        stream.publish_query.clone_from(&query);
        let publisher_name = self
            .sessions
            .get(&id)
            .and_then(|s| s.publisher_name.clone());
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        stream.attach(
            now,
            id,
            stream_id,
            priority,
            publisher_name,
            &mut self.output,
        );
        self.published += 1;
        self.notices.push_back(Notice::PublishStarted {
            session: id,
            stream: stream_id,
            app: self.app_name(app),
            name,
            query,
        });
        if let Some(session) = self.sessions.get_mut(&id) {
            session.publishes.insert(stream_id, key);
        }
    }

    fn unpublish(&mut self, now: Instant, id: SessionId, stream_id: u32) {
        let Some(key) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.publishes.remove(&stream_id))
        else {
            return;
        };
        self.detach_publisher(now, key, "unpublished");
    }

    /// The publisher of `key` is gone: players wait out the grace, or the
    /// stream is freed at once if nobody plays it.
    fn detach_publisher(&mut self, now: Instant, key: StreamKey, why: &'static str) {
        let app = self.app_name(key.app);
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        let Some(publisher) = stream.detach() else {
            return;
        };
        stream.publish_query.clear();
        if stream.media.clear() {
            self.notices.push_back(Notice::MediaChanged {
                app: app.clone(),
                name: stream.name.clone().unwrap_or_default(),
                info: Box::default(),
            });
        }
        self.notices.push_back(Notice::PublishEnded {
            session: publisher.session,
            stream: publisher.stream_id,
            app,
            name: stream.name.clone().unwrap_or_default(),
        });
        self.published = self.published.saturating_sub(1);
        info!(name = %redacted(stream.name.as_deref()), why, "publish ended");
        if stream.has_subscribers() {
            // A grace too long to represent expires at once rather than
            // never (only an absurd configuration gets here).
            let deadline = now.checked_add(self.config.republish_grace).unwrap_or(now);
            stream.grace = Some(deadline);
            self.graces.insert((deadline, key));
        } else {
            self.free_if_idle(key);
        }
    }

    fn play(&mut self, now: Instant, id: SessionId, stream_id: u32, request: PlayRequest) {
        // A second play on one message stream replaces the first.
        self.stop_play(id, stream_id);
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let PlayRequest { seq, name, query } = request;
        let reject = |reason| {
            (
                id,
                BrokerEvent::PlayRejected {
                    stream: stream_id,
                    seq,
                    reason,
                },
            )
        };
        let Some(play) = parse_play_name(&name) else {
            info!(session = %id, name = %redact(&name), "play of a name nobody can publish, refused");
            self.output.push_back(reject(PlayRejection::BadName(
                "no stream can ever have this name",
            )));
            return;
        };
        if session.stream_count() >= MAX_STREAMS_PER_SESSION {
            warn!(session = %id, "too many streams in one session, play refused");
            self.output.push_back(reject(PlayRejection::TooManyStreams));
            return;
        }
        let app = session.app;
        let key = StreamKey {
            app,
            hash: play.hash,
        };
        if !self.streams.contains_key(&key) && self.streams.len() >= self.config.max_streams {
            warn!(
                session = %id,
                name = %redact(&name),
                max = self.config.max_streams,
                "stream limit reached, play refused"
            );
            self.output.push_back(reject(PlayRejection::TooManyStreams));
            return;
        }
        debug!(session = %id, name = %redact(&name), asis = play.asis, "play");
        self.output.push_back((
            id,
            BrokerEvent::PlayAccepted {
                stream: stream_id,
                seq,
            },
        ));
        self.ensure_stream(now, key);
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        stream.subscribe(id, stream_id, play.asis, &mut self.output);
        self.notices.push_back(Notice::PlayStarted {
            session: id,
            stream: stream_id,
            app: self.app_name(app),
            name: name.clone(),
            query,
        });
        if let Some(session) = self.sessions.get_mut(&id) {
            session.plays.insert(stream_id, (key, name));
        }
    }

    fn stop_play(&mut self, id: SessionId, stream_id: u32) {
        let Some((key, name)) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.plays.remove(&stream_id))
        else {
            return;
        };
        self.unsubscribe(id, stream_id, key, name);
    }

    /// Ends one play that was already taken out of its session's map.
    fn unsubscribe(&mut self, id: SessionId, stream_id: u32, key: StreamKey, name: String) {
        if let Some(stream) = self.streams.get_mut(&key) {
            stream.unsubscribe(id, stream_id);
        }
        self.notices.push_back(Notice::PlayStopped {
            session: id,
            stream: stream_id,
            app: self.app_name(key.app),
            name,
        });
        self.free_if_idle(key);
    }

    /// TC `releaseStream`: evict whoever else publishes `name` in this
    /// session's App at a priority below `max_priority` (or at any, if so
    /// configured).
    fn release(&mut self, now: Instant, id: SessionId, name: &str, max_priority: u32) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        if check_publish_name(name).is_err() {
            return;
        }
        let key = StreamKey {
            app: session.app,
            hash: hash_name(name),
        };
        let Some(publisher) = self.streams.get(&key).and_then(|s| s.publisher) else {
            return;
        };
        if publisher.session == id {
            return;
        }
        if !self.config.release_stream_evicts_any && publisher.priority >= max_priority {
            debug!(
                by = %id,
                name = %redact(name),
                priority = publisher.priority,
                max_priority,
                "releaseStream of a publish at no lower priority, ignored"
            );
            return;
        }
        info!(
            session = %publisher.session,
            by = %id,
            name = %redact(name),
            "publisher evicted by releaseStream"
        );
        let (session, stream) = (publisher.session, publisher.stream_id);
        self.evict(now, key, session, stream, Eviction::Released);
    }

    /// Ends the live publish of stream `name` of App `app` from the
    /// server's side (an operator's API call, a control command): the
    /// publisher gets `NetStream.Publish.Denied` with `description`, its
    /// players wait out the republish grace as after any unpublish. The
    /// publisher's session, if there was a live publish.
    pub fn end_publish(
        &mut self,
        now: Instant,
        app: &str,
        name: &str,
        description: &str,
    ) -> Option<SessionId> {
        let app = *self.app_ids.get(app)?;
        let hash = parse_play_name(name)?.hash;
        let key = StreamKey { app, hash };
        let publisher = self.streams.get(&key)?.publisher?;
        info!(session = %publisher.session, name = %redact(name), "publish ended by the server");
        self.evict(
            now,
            key,
            publisher.session,
            publisher.stream_id,
            Eviction::Ended(description.to_owned()),
        );
        Some(publisher.session)
    }

    /// Ends the live publish of `key` by `session`'s `stream_id` from the
    /// broker's side: the publisher is told, its players wait out the grace.
    fn evict(
        &mut self,
        now: Instant,
        key: StreamKey,
        session: SessionId,
        stream_id: u32,
        reason: Eviction,
    ) {
        if let Some(owner) = self.sessions.get_mut(&session) {
            owner.publishes.remove(&stream_id);
        }
        let why = match &reason {
            Eviction::Released => "evicted by releaseStream",
            Eviction::TakenOver => "taken over",
            _ => "ended by the server",
        };
        self.output.push_back((
            session,
            BrokerEvent::PublishEvicted {
                stream: stream_id,
                reason,
            },
        ));
        self.detach_publisher(now, key, why);
    }

    fn close(&mut self, now: Instant, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        debug!(session = %id, "closed");
        for key in session.publishes.into_values() {
            self.detach_publisher(now, key, "publisher closed");
        }
        for (stream_id, (key, name)) in session.plays {
            self.unsubscribe(id, stream_id, key, name);
        }
        if self.connections.get(&session.connection_id) == Some(&id) {
            self.connections.remove(&session.connection_id);
        }
        self.forget_watches(id, &session.connection_id);
        if let Some(a) = self.apps.get_mut(&session.app) {
            a.members.remove(&id);
        }
        self.app_unref(session.app);
    }

    /// Creates the stream for `key` (counted against its App) if new.
    /// Callers check [`BrokerConfig::max_streams`] first.
    fn ensure_stream(&mut self, now: Instant, key: StreamKey) {
        if let Entry::Vacant(slot) = self.streams.entry(key) {
            slot.insert(Stream::new(now));
            if let Some(app) = self.apps.get_mut(&key.app) {
                app.refs += 1;
            }
        }
    }

    /// Frees the stream if nobody publishes or plays it (a pending grace
    /// serves only players, so it goes too).
    fn free_if_idle(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get(&key) else {
            return;
        };
        if !stream.is_idle() {
            return;
        }
        if let Some(deadline) = stream.grace {
            self.graces.remove(&(deadline, key));
        }
        self.streams.remove(&key);
        self.app_unref(key.app);
    }

    /// The App named `name`, created if new, with one more reference.
    fn app_ref(&mut self, name: String) -> AppId {
        if let Some(&id) = self.app_ids.get(&name) {
            if let Some(app) = self.apps.get_mut(&id) {
                app.refs += 1;
            }
            return id;
        }
        let id = self.next_app;
        self.next_app += 1;
        self.app_ids.insert(name.clone(), id);
        self.apps.insert(
            id,
            App {
                name,
                refs: 1,
                members: BTreeSet::new(),
            },
        );
        id
    }

    fn app_unref(&mut self, id: AppId) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        app.refs = app.refs.saturating_sub(1);
        if app.refs == 0 {
            if let Some(app) = self.apps.remove(&id) {
                self.app_ids.remove(&app.name);
            }
        }
    }
}

/// The stream `id` publishes on `stream_id`, if that publish is live (a
/// free function so the caller can still borrow the broker's other fields).
fn publishing<'a>(
    sessions: &HashMap<SessionId, SessionState>,
    streams: &'a mut HashMap<StreamKey, Stream>,
    id: SessionId,
    stream_id: u32,
) -> Option<&'a mut Stream> {
    let key = *sessions.get(&id)?.publishes.get(&stream_id)?;
    streams
        .get_mut(&key)
        .filter(|s| s.is_publisher(id, stream_id))
}

/// The `onMetaData` object of a `@setDataFrame` body (the handler name,
/// then the values) applied to `media`; whether it changed anything.
fn update_metadata(media: &mut MediaInfo, body: &[u8]) -> bool {
    let Ok(values) = amf0::decode_all(body) else {
        return false;
    };
    values
        .iter()
        .skip(1)
        .find(|v| v.is_object())
        .is_some_and(|v| media.update_from_metadata(v))
}

/// A [`Notice::MediaChanged`] for `stream`, published by session `id`.
fn media_notice(
    apps: &HashMap<AppId, App>,
    id: SessionId,
    sessions: &HashMap<SessionId, SessionState>,
    stream: &Stream,
) -> Option<Notice> {
    let app = sessions.get(&id)?.app;
    Some(Notice::MediaChanged {
        app: apps.get(&app).map(|a| a.name.clone()).unwrap_or_default(),
        name: stream.name.clone().unwrap_or_default(),
        info: Box::new(stream.media.clone()),
    })
}

fn redacted(name: Option<&str>) -> String {
    name.map_or_else(|| "(hashed)".to_owned(), |n| redact(n).to_string())
}
