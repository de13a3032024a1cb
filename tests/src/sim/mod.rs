//! A deterministic, in-memory simulation of a whole live server.
//!
//! [`Sim`] owns one [`Broker`], one server [`Session`] per simulated
//! connection, and the [`SimClient`] at the other end of each, joined by
//! in-memory byte pipes. There are no sockets, threads or real clock: time
//! is an [`Instant`] captured once plus a virtual offset that only moves
//! when a test calls [`Sim::advance`], which jumps from deadline to deadline
//! (session timers, the broker's grace timer, link ticks) like quinn's test
//! `Pair`. Every run with the same script produces the same bytes.
//!
//! The harness is a runtime in miniature and keeps the core's run-loop
//! contract: bytes from a client go to [`Session::handle_input`]; a session
//! is polled for transmits only while its link has room (the contract that
//! lets the session apply its real-time policy); its events go to the
//! broker in order, and the broker's outputs go back to the sessions they
//! name, until nothing moves ([`Sim::run`]).
//!
//! Links toward clients are unlimited by default. A [`LinkConfig`] with a
//! rate models a slow subscriber: the link delivers that many bytes per
//! virtual millisecond and accepts a new transmit only while fewer than
//! `buffer_bytes` are in flight (a socket send buffer), so a session facing
//! it has to hold, and eventually abandon, media itself.

mod client;
pub mod media;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::broker::{Broker, BrokerConfig};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::{BrokerEvent, FrameKind, SessionEvent, SessionId};
use tincan_core::session::{Session, SessionConfig, SessionError, Transmit};

pub use client::{
    aggregate_payload, amf_body, member_f64, member_str, AggregateTag, Media, Received, Reply,
    SimClient, CLIENT_CHUNK_SIZE, SAMPLE_ACCESS,
};

/// A simulated connection, by the order it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub usize);

/// The server-to-client direction of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Bytes the link delivers per virtual millisecond; `None` delivers
    /// everything at once.
    pub bytes_per_ms: Option<u64>,
    /// Bytes that may be in flight (the socket send buffer): the session
    /// is polled for a transmit only while fewer are.
    pub buffer_bytes: usize,
}

impl LinkConfig {
    /// A link that never holds anything back.
    pub fn unlimited() -> Self {
        LinkConfig {
            bytes_per_ms: None,
            buffer_bytes: usize::MAX,
        }
    }

    /// A link delivering `bytes_per_ms` with a 16 KiB send buffer.
    pub fn slow(bytes_per_ms: u64) -> Self {
        LinkConfig {
            bytes_per_ms: Some(bytes_per_ms),
            buffer_bytes: 16 * 1024,
        }
    }
}

/// Knobs of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Configuration of every session unless a client brings its own.
    pub session: SessionConfig,
    /// Configuration of the broker.
    pub broker: BrokerConfig,
    /// Seed for every handshake and connection id.
    pub seed: u64,
    /// Granularity at which busy rate-limited links deliver.
    pub link_tick: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            session: SessionConfig::default(),
            broker: BrokerConfig::default(),
            seed: 0x5EED,
            link_tick: Duration::from_millis(1),
        }
    }
}

/// One frame the broker handed to a session, recorded by
/// [`Sim::record_fanout`]: where its payload lives, not the payload itself,
/// so recording holds no media alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// The recipient.
    pub to: ClientId,
    /// The recipient's message stream.
    pub stream: u32,
    /// Audio, video or data.
    pub kind: FrameKind,
    /// Address of the payload's first byte.
    pub ptr: usize,
    /// Payload length.
    pub len: usize,
}

/// The server-to-client pipe: transmits in flight and the delivery credit
/// of a rate-limited link.
#[derive(Debug)]
struct Link {
    config: LinkConfig,
    wire: VecDeque<Bytes>,
    len: usize,
    /// Delivery credit in byte-nanoseconds-per-millisecond units (bytes x
    /// 1e6), so that rates below one byte per tick still add up.
    credit: u128,
    last: Duration,
    max_len: usize,
    max_transmit: usize,
}

const CREDIT_PER_BYTE: u128 = 1_000_000;

impl Link {
    fn new(config: LinkConfig, now: Duration) -> Self {
        Link {
            config,
            wire: VecDeque::new(),
            len: 0,
            credit: 0,
            last: now,
            max_len: 0,
            max_transmit: 0,
        }
    }

    fn has_room(&self) -> bool {
        self.len < self.config.buffer_bytes
    }

    fn push(&mut self, t: Transmit) {
        self.max_transmit = self.max_transmit.max(t.len());
        for b in t.bufs {
            if !b.is_empty() {
                self.len += b.len();
                self.wire.push_back(b);
            }
        }
        self.max_len = self.max_len.max(self.len);
    }

    fn is_busy(&self) -> bool {
        self.config.bytes_per_ms.is_some() && self.len > 0
    }

    /// Time moves to `now`: a rate-limited link earns delivery credit, but
    /// an idle one does not bank more than one tick's worth.
    fn advance(&mut self, now: Duration, tick: Duration) {
        let Some(rate) = self.config.bytes_per_ms else {
            self.last = now;
            return;
        };
        let elapsed = now.saturating_sub(self.last).as_nanos();
        self.last = now;
        self.credit += u128::from(rate) * elapsed;
        if self.len == 0 {
            self.credit = self.credit.min(u128::from(rate) * tick.as_nanos());
        }
    }

    /// What the client can read now.
    fn take(&mut self) -> Vec<Bytes> {
        let mut budget = match self.config.bytes_per_ms {
            None => usize::MAX,
            Some(_) => usize::try_from(self.credit / CREDIT_PER_BYTE).unwrap_or(usize::MAX),
        };
        let mut out = Vec::new();
        while budget > 0 {
            let Some(mut front) = self.wire.pop_front() else {
                break;
            };
            if front.len() > budget {
                let rest = front.split_off(budget);
                self.wire.push_front(rest);
            }
            budget -= front.len();
            self.len -= front.len();
            if self.config.bytes_per_ms.is_some() {
                self.credit -= front.len() as u128 * CREDIT_PER_BYTE;
            }
            out.push(front);
        }
        out
    }

    fn clear(&mut self) {
        self.wire.clear();
        self.len = 0;
    }
}

/// One simulated connection: the server session, the client, and the link
/// between them.
#[derive(Debug)]
struct Conn {
    sid: SessionId,
    session: Option<Session>,
    client: SimClient,
    link: Link,
    eof_given: bool,
    close_reason: Option<SessionError>,
    closed_at: Option<Duration>,
    transmitted: Option<HashSet<usize>>,
}

/// Most rounds [`Sim::run`] takes before declaring the system livelocked.
const MAX_ROUNDS: usize = 1_000_000;
/// Most times a deadline may stay due at one instant after firing.
const MAX_STUCK: usize = 10_000;

/// A whole server and its clients on a virtual clock; see the module docs.
#[derive(Debug)]
pub struct Sim {
    base: Instant,
    elapsed: Duration,
    config: SimConfig,
    broker: Broker,
    conns: Vec<Conn>,
    by_session: HashMap<SessionId, usize>,
    fanout: Option<Vec<Fanout>>,
    session_events: Option<Vec<(ClientId, SessionEvent)>>,
    unroutable: usize,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A server with default configuration.
    pub fn new() -> Self {
        Self::with_config(SimConfig::default())
    }

    /// A server with the given configuration.
    pub fn with_config(config: SimConfig) -> Self {
        Sim {
            base: Instant::now(),
            elapsed: Duration::ZERO,
            broker: Broker::new(config.broker.clone()),
            config,
            conns: Vec::new(),
            by_session: HashMap::new(),
            fanout: None,
            session_events: None,
            unroutable: 0,
        }
    }

    // ---- clock ----------------------------------------------------------

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    // ---- connections ----------------------------------------------------

    /// Opens a connection with an unlimited link and the default session
    /// configuration. The client's handshake is queued; [`Sim::run`] (or
    /// any helper that runs) completes it.
    pub fn add_client(&mut self) -> ClientId {
        self.add_client_with(LinkConfig::unlimited(), None)
    }

    /// Opens a connection with the given link and, optionally, its own
    /// session configuration.
    pub fn add_client_with(
        &mut self,
        link: LinkConfig,
        session: Option<SessionConfig>,
    ) -> ClientId {
        let n = self.conns.len() as u64;
        let seed = self.config.seed.wrapping_add(n.wrapping_mul(2));
        let now = self.now();
        let config = session.unwrap_or_else(|| self.config.session.clone());
        let session = Session::new(now, config, &mut SeededEntropy::new(seed));
        let sid = self.broker.open_session();
        let id = ClientId(self.conns.len());
        self.by_session.insert(sid, id.0);
        self.conns.push(Conn {
            sid,
            session: Some(session),
            client: SimClient::new(now, seed.wrapping_add(1)),
            link: Link::new(link, self.elapsed),
            eof_given: false,
            close_reason: None,
            closed_at: None,
            transmitted: self.fanout.as_ref().map(|_| HashSet::new()),
        });
        id
    }

    /// Changes the link toward `id` from now on (e.g. a player that joined
    /// over a fast link and then degrades: the dialogue to get playing is
    /// quicker to script on a fast link).
    pub fn set_link(&mut self, id: ClientId, link: LinkConfig) {
        let now = self.elapsed;
        let l = &mut self.conns[id.0].link;
        l.advance(now, self.config.link_tick);
        l.config = link;
        l.credit = 0;
    }

    /// The client of connection `id`.
    pub fn client(&self, id: ClientId) -> &SimClient {
        &self.conns[id.0].client
    }

    /// The client of connection `id`, to script what it sends next.
    pub fn client_mut(&mut self, id: ClientId) -> &mut SimClient {
        &mut self.conns[id.0].client
    }

    /// The server session of connection `id`, until it closes.
    pub fn session(&self, id: ClientId) -> Option<&Session> {
        self.conns[id.0].session.as_ref()
    }

    /// The broker's id for connection `id`.
    pub fn session_id(&self, id: ClientId) -> SessionId {
        self.conns[id.0].sid
    }

    /// Why the session of `id` closed, once it has (and was dropped).
    pub fn close_reason(&self, id: ClientId) -> Option<&SessionError> {
        self.conns[id.0].close_reason.as_ref()
    }

    /// When the session of `id` reported itself closed.
    pub fn closed_at(&self, id: ClientId) -> Option<Duration> {
        self.conns[id.0].closed_at
    }

    /// Whether the session of `id` is closed and dropped.
    pub fn is_closed(&self, id: ClientId) -> bool {
        self.conns[id.0].session.is_none()
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Bytes in flight on the link toward `id` (held by the "runtime", not
    /// by the session).
    pub fn link_backlog(&self, id: ClientId) -> usize {
        self.conns[id.0].link.len
    }

    /// The most bytes ever in flight on the link toward `id`.
    pub fn link_peak(&self, id: ClientId) -> usize {
        self.conns[id.0].link.max_len
    }

    /// The largest single transmit the session of `id` handed out: what a
    /// runtime holds outside the session's real-time policy once the socket
    /// buffer is full.
    pub fn largest_transmit(&self, id: ClientId) -> usize {
        self.conns[id.0].link.max_transmit
    }

    /// Broker outputs addressed to a session the harness does not know (a
    /// broker bug if ever non-zero).
    pub fn unroutable(&self) -> usize {
        self.unroutable
    }

    // ---- recording ------------------------------------------------------

    /// From now on, record every frame the broker hands to a session
    /// ([`Sim::fanout`]) and the address of every buffer each session
    /// transmits ([`Sim::transmitted`]), to prove payloads are shared.
    pub fn record_fanout(&mut self) {
        self.fanout.get_or_insert_with(Vec::new);
        for c in &mut self.conns {
            c.transmitted.get_or_insert_with(HashSet::new);
        }
    }

    /// The frames recorded since [`Sim::record_fanout`].
    pub fn fanout(&self) -> &[Fanout] {
        self.fanout.as_deref().unwrap_or(&[])
    }

    /// Whether the session of `id` handed a buffer starting at `ptr` to its
    /// link since [`Sim::record_fanout`].
    pub fn transmitted(&self, id: ClientId, ptr: usize) -> bool {
        self.conns[id.0]
            .transmitted
            .as_ref()
            .is_some_and(|set| set.contains(&ptr))
    }

    /// From now on, record every event sessions hand to the broker.
    pub fn record_session_events(&mut self) {
        self.session_events.get_or_insert_with(Vec::new);
    }

    /// The session events recorded since [`Sim::record_session_events`].
    pub fn session_events(&self) -> &[(ClientId, SessionEvent)] {
        self.session_events.as_deref().unwrap_or(&[])
    }

    // ---- stepping -------------------------------------------------------

    /// Moves bytes and events until nothing moves, without advancing time.
    pub fn run(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.round() {
                return;
            }
        }
        panic!("the simulation did not settle within {MAX_ROUNDS} rounds (livelock)");
    }

    /// Advances virtual time by `dur`, stopping at every deadline on the
    /// way (session and broker timers, busy link ticks), firing it and
    /// running to quiescence.
    pub fn advance(&mut self, dur: Duration) {
        let target = self.elapsed + dur;
        self.run();
        let mut stuck = 0;
        while let Some(next) = self.next_deadline() {
            if next > target {
                break;
            }
            if next <= self.elapsed {
                stuck += 1;
                assert!(
                    stuck < MAX_STUCK,
                    "a deadline at {next:?} stays due after handle_timeout at {:?}",
                    self.elapsed
                );
            } else {
                stuck = 0;
            }
            self.set_elapsed(next.max(self.elapsed));
            self.fire_timeouts();
            self.run();
        }
        self.set_elapsed(target);
        self.fire_timeouts();
        self.run();
    }

    /// Advances to `at` (virtual time since start), if it is ahead.
    pub fn advance_to(&mut self, at: Duration) {
        self.advance(at.saturating_sub(self.elapsed));
    }

    fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        let tick = self.config.link_tick;
        for c in &mut self.conns {
            c.link.advance(elapsed, tick);
        }
    }

    fn offset(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.base)
    }

    fn next_deadline(&self) -> Option<Duration> {
        let tick = self.elapsed + self.config.link_tick;
        let sessions = self.conns.iter().filter_map(|c| {
            let t = c.session.as_ref()?.poll_timeout().map(|d| self.offset(d));
            let link = c.link.is_busy().then_some(tick);
            match (t, link) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        });
        let broker = self.broker.poll_timeout().map(|d| self.offset(d));
        sessions.chain(broker).min()
    }

    fn fire_timeouts(&mut self) {
        let now = self.now();
        for c in &mut self.conns {
            if let Some(s) = c.session.as_mut() {
                if s.poll_timeout().is_some_and(|d| d <= now) {
                    s.handle_timeout(now);
                }
            }
        }
        if self.broker.poll_timeout().is_some_and(|d| d <= now) {
            self.broker.handle_timeout(now);
        }
    }

    fn round(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.conns.len() {
            progress |= self.pump(i);
            progress |= self.route_broker_output();
        }
        progress
    }

    /// One pass over one connection: client bytes in, transmits out while
    /// the link has room, link bytes to the client, session events to the
    /// broker.
    fn pump(&mut self, i: usize) -> bool {
        let now = self.now();
        let elapsed = self.elapsed;
        let conn = &mut self.conns[i];
        let mut progress = false;
        let mut events = Vec::new();
        if let Some(session) = conn.session.as_mut() {
            if !conn.client.frozen {
                for b in conn.client.take_outbound() {
                    progress = true;
                    // A protocol error is sticky in the session, which still
                    // flushes what it owes; the harness just keeps pumping.
                    let _ = session.handle_input(now, &b);
                }
                if conn.client.closed && !conn.eof_given {
                    conn.eof_given = true;
                    progress = true;
                    session.handle_eof(now);
                }
            }
            while conn.link.has_room() {
                let Some(t) = session.poll_transmit(now) else {
                    break;
                };
                progress = true;
                if let Some(set) = conn.transmitted.as_mut() {
                    set.extend(t.bufs.iter().map(|b| b.as_ptr() as usize));
                }
                if conn.client.closed {
                    // The client's socket is gone: bytes fall on the floor.
                    continue;
                }
                conn.link.push(t);
            }
            while let Some(ev) = session.poll_event() {
                events.push(ev);
            }
            if session.is_closed() {
                conn.close_reason = session.error().cloned();
                conn.closed_at = Some(elapsed);
                conn.session = None;
                progress = true;
            }
        }
        if conn.client.closed {
            conn.link.clear();
        } else if !conn.client.frozen {
            for b in conn.link.take() {
                progress = true;
                conn.client.handle_input(elapsed, &b);
            }
            if conn.session.is_none() && conn.link.len == 0 && !conn.client.eof {
                conn.client.eof = true;
                progress = true;
            }
        }
        let sid = conn.sid;
        let id = ClientId(i);
        for ev in events {
            progress = true;
            if let Some(log) = self.session_events.as_mut() {
                log.push((id, ev.clone()));
            }
            self.broker.handle_event(now, sid, ev);
        }
        progress
    }

    fn route_broker_output(&mut self) -> bool {
        let now = self.now();
        let mut progress = false;
        while let Some((sid, ev)) = self.broker.poll_output() {
            progress = true;
            let Some(&i) = self.by_session.get(&sid) else {
                self.unroutable += 1;
                continue;
            };
            if let (Some(log), BrokerEvent::Frame { stream, frame }) = (self.fanout.as_mut(), &ev) {
                log.push(Fanout {
                    to: ClientId(i),
                    stream: *stream,
                    kind: frame.kind,
                    ptr: frame.payload.as_ptr() as usize,
                    len: frame.payload.len(),
                });
            }
            // A session that already closed drops what was meant for it,
            // as a runtime would.
            if let Some(s) = self.conns[i].session.as_mut() {
                s.handle_broker_event(now, ev);
            }
        }
        progress
    }

    // ---- scripted dialogues ---------------------------------------------

    /// `id` connects to `app`; asserts `NetConnection.Connect.Success` and
    /// returns the reply.
    pub fn connect(&mut self, id: ClientId, app: &str) -> Reply {
        let t = self.client_mut(id).connect(app);
        self.run();
        let reply = self
            .client(id)
            .reply(t)
            .unwrap_or_else(|| panic!("no reply to connect; got {:?}", self.client(id).received()));
        assert!(reply.ok, "connect failed: {reply:?}");
        assert_eq!(
            reply.info_str("code").as_deref(),
            Some("NetConnection.Connect.Success"),
            "{reply:?}"
        );
        reply
    }

    /// `id` creates a message stream; returns its id from the `_result`.
    pub fn create_stream(&mut self, id: ClientId) -> u32 {
        let t = self.client_mut(id).create_stream();
        self.run();
        let reply = self
            .client(id)
            .reply(t)
            .unwrap_or_else(|| panic!("no reply to createStream"));
        assert!(reply.ok, "createStream failed: {reply:?}");
        let stream = reply
            .args
            .iter()
            .find_map(tincan_core::message::Value::as_f64)
            .unwrap_or_else(|| panic!("createStream result without a stream id: {reply:?}"));
        assert!(
            stream >= 1.0 && stream.fract() == 0.0,
            "bad stream id {stream}"
        );
        stream as u32
    }

    /// A new client that connects to `app` and publishes `name`; asserts
    /// `NetStream.Publish.Start`. Returns the client and its stream id.
    pub fn start_publisher(&mut self, app: &str, name: &str) -> (ClientId, u32) {
        let id = self.add_client();
        self.connect(id, app);
        let stream = self.create_stream(id);
        self.client_mut(id).publish(stream, name);
        self.run();
        let statuses = self.client(id).statuses(stream);
        assert!(
            statuses.iter().any(|s| s == "NetStream.Publish.Start"),
            "publish of {name:?} not started: {statuses:?}"
        );
        (id, stream)
    }

    /// A new client that connects to `app` and plays `name` live; asserts
    /// `NetStream.Play.Start`. Returns the client and its stream id.
    pub fn start_player(&mut self, app: &str, name: &str) -> (ClientId, u32) {
        let id = self.add_client();
        self.start_player_on(id, app, name)
    }

    /// As [`Sim::start_player`], for an existing, unconnected client.
    pub fn start_player_on(&mut self, id: ClientId, app: &str, name: &str) -> (ClientId, u32) {
        self.connect(id, app);
        let stream = self.create_stream(id);
        self.client_mut(id).play(stream, name, -2.0);
        self.run();
        let statuses = self.client(id).statuses(stream);
        assert!(
            statuses.iter().any(|s| s == "NetStream.Play.Start"),
            "play of {name:?} not started: {statuses:?}"
        );
        (id, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(n: usize) -> Transmit {
        Transmit {
            bufs: vec![Bytes::from(vec![7u8; n])],
        }
    }

    const TICK: Duration = Duration::from_millis(1);

    #[test]
    fn slow_link_delivers_its_rate_per_virtual_millisecond() {
        let mut link = Link::new(LinkConfig::slow(10), Duration::ZERO);
        link.push(transmit(100));
        link.advance(Duration::from_millis(3), TICK);
        let got: usize = link.take().iter().map(Bytes::len).sum();
        assert_eq!(got, 30);
        assert_eq!(link.len, 70);
    }

    #[test]
    fn slow_link_accumulates_fractional_rates() {
        let mut link = Link::new(LinkConfig::slow(1), Duration::ZERO);
        link.push(transmit(10));
        link.advance(Duration::from_micros(500), TICK);
        assert!(link.take().is_empty());
        link.advance(Duration::from_micros(1000), TICK);
        assert_eq!(link.take().iter().map(Bytes::len).sum::<usize>(), 1);
    }

    #[test]
    fn idle_slow_link_banks_at_most_one_tick() {
        let mut link = Link::new(LinkConfig::slow(10), Duration::ZERO);
        link.advance(Duration::from_secs(10), TICK);
        link.push(transmit(1000));
        assert_eq!(link.take().iter().map(Bytes::len).sum::<usize>(), 10);
    }

    #[test]
    fn link_has_room_until_its_buffer_fills() {
        let mut link = Link::new(
            LinkConfig {
                bytes_per_ms: Some(1),
                buffer_bytes: 100,
            },
            Duration::ZERO,
        );
        link.push(transmit(99));
        assert!(link.has_room());
        link.push(transmit(1));
        assert!(!link.has_room());
    }

    #[test]
    fn unlimited_link_delivers_everything_at_once() {
        let mut link = Link::new(LinkConfig::unlimited(), Duration::ZERO);
        link.push(transmit(1 << 20));
        assert_eq!(link.take().iter().map(Bytes::len).sum::<usize>(), 1 << 20);
        assert!(!link.is_busy());
    }
}
