//! A deterministic, in-memory simulation of a whole live server.
//!
//! [`Sim`] owns one [`Server`] (the core's whole-server machine: every
//! session, the broker and their wiring, exactly what the tokio, mio and
//! smol runtimes drive) and the [`SimClient`] at the other end of each
//! connection, joined by in-memory byte pipes. There are no sockets,
//! threads or real clock: time is an [`Instant`] captured once plus a
//! virtual offset that only moves when a test calls [`Sim::advance`], which
//! jumps from deadline to deadline (the server's next timer, busy link
//! ticks) like quinn's test `Pair`. Every run with the same script produces
//! the same bytes.
//!
//! The harness is a runtime in miniature and keeps the server's run-loop
//! contract: bytes from a client go to [`Server::handle_input`], a closed
//! client is [`Server::handle_eof`], and a connection is polled for
//! transmits only once [`Server::poll_ready`] named it, and then only while
//! its link has room (a socket that stopped taking bytes), until
//! [`Server::poll_transmit`] has nothing more; a finished connection
//! ([`Server::is_closed`]) is [`Server::remove`]d. Only connections with
//! something to do are visited, so hundreds of sessions over hours of
//! virtual time cost what their traffic costs, not what the clock does.
//!
//! Links toward clients are unlimited by default. A [`LinkConfig`] with a
//! rate models a slow subscriber: the link delivers that many bytes per
//! virtual millisecond and accepts a new transmit only while fewer than
//! `buffer_bytes` are in flight (a socket send buffer), so a session facing
//! it has to hold, and eventually abandon, media itself.

mod client;
pub mod media;
pub mod rtws;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::broker::{Broker, BrokerConfig};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::Denial;
use tincan_core::event::SessionId;
use tincan_core::server::{
    Approvals, Closed, Refusal, Server, ServerConfig, ServerEvent, Ticket, TicketError, Transport,
};
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
    /// Configuration of every session.
    pub session: SessionConfig,
    /// Configuration of the broker.
    pub broker: BrokerConfig,
    /// [`ServerConfig::max_connections`].
    pub max_connections: usize,
    /// [`ServerConfig::max_connections_per_ip`].
    pub max_connections_per_ip: usize,
    /// [`ServerConfig::shutdown_deadline`].
    pub shutdown_deadline: Duration,
    /// [`ServerConfig::approvals`].
    pub approvals: Approvals,
    /// [`ServerConfig::max_queued_event_bytes`].
    pub max_queued_event_bytes: usize,
    /// [`ServerConfig::per_ip_exempt`].
    pub per_ip_exempt: Vec<tincan_core::ipnet::IpNet>,
    /// Seed for every handshake and connection id.
    pub seed: u64,
    /// Granularity at which busy rate-limited links deliver.
    pub link_tick: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        let server = ServerConfig::default();
        SimConfig {
            session: server.session,
            broker: server.broker,
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            shutdown_deadline: server.shutdown_deadline,
            approvals: server.approvals,
            max_queued_event_bytes: server.max_queued_event_bytes,
            per_ip_exempt: server.per_ip_exempt,
            seed: 0x5EED,
            link_tick: Duration::from_millis(1),
        }
    }
}

impl SimConfig {
    /// The server's configuration.
    pub fn server(&self) -> ServerConfig {
        ServerConfig {
            session: self.session.clone(),
            broker: self.broker.clone(),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            shutdown_deadline: self.shutdown_deadline,
            approvals: self.approvals,
            max_queued_event_bytes: self.max_queued_event_bytes,
            per_ip_exempt: self.per_ip_exempt.clone(),
            ..ServerConfig::default()
        }
    }
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

/// A set of connection indices, cheap to insert into and visited in
/// index order, so every run is the same.
#[derive(Debug, Default)]
struct Active {
    queued: Vec<bool>,
    list: Vec<usize>,
}

impl Active {
    fn insert(&mut self, i: usize) {
        if i >= self.queued.len() {
            self.queued.resize(i + 1, false);
        }
        if !self.queued[i] {
            self.queued[i] = true;
            self.list.push(i);
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Everything queued, in index order; the set is empty after.
    fn take(&mut self) -> Vec<usize> {
        let mut list = std::mem::take(&mut self.list);
        list.sort_unstable();
        for &i in &list {
            self.queued[i] = false;
        }
        list
    }
}

/// One simulated connection: the server's id for it, the client, and the
/// link between them.
#[derive(Debug)]
struct Conn {
    sid: SessionId,
    client: SimClient,
    link: Link,
    eof_given: bool,
    /// Named by [`Server::poll_ready`] and not yet polled down to `None`:
    /// the runtime's "wants to write" interest.
    wants_write: bool,
    /// What [`Server::remove`] reported, once the connection is gone.
    removed: Option<Closed>,
    closed_at: Option<Duration>,
    /// Every buffer handed to the link since [`Sim::record_transmits`].
    transmitted: Option<Vec<Bytes>>,
    /// Bytes the client sent that the server has not been given yet (the
    /// socket's receive queue while the server has input pending).
    inbound: VecDeque<Bytes>,
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
    server: Server,
    conns: Vec<Conn>,
    by_session: HashMap<SessionId, usize>,
    /// Connections to visit in the next round (visited in index order).
    active: Active,
    /// Connections whose link is rate-limited (they earn credit with time).
    limited: Vec<usize>,
    recording: bool,
    wakeups: u64,
    timer_wakeups: u64,
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
            server: Server::new(config.server()),
            config,
            conns: Vec::new(),
            by_session: HashMap::new(),
            active: Active::default(),
            limited: Vec::new(),
            recording: false,
            wakeups: 0,
            timer_wakeups: 0,
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

    /// Instants [`Sim::advance`] stopped at on its way (every jump to a
    /// deadline, server timer or link tick): what a runtime's event loop
    /// would wake up for.
    pub fn wakeups(&self) -> u64 {
        self.wakeups
    }

    /// The wake-ups that were for the server's own deadline
    /// ([`Server::poll_timeout`]), not for a busy link.
    pub fn timer_wakeups(&self) -> u64 {
        self.timer_wakeups
    }

    // ---- connections ----------------------------------------------------

    /// Opens a connection with an unlimited link from an address of its
    /// own. The client's handshake is queued; [`Sim::run`] (or any helper
    /// that runs) completes it. Panics if the server refuses it.
    pub fn add_client(&mut self) -> ClientId {
        self.add_client_with(LinkConfig::unlimited())
    }

    /// Opens a connection with the given link from an address of its own;
    /// panics if the server refuses it.
    pub fn add_client_with(&mut self, link: LinkConfig) -> ClientId {
        let n = self.conns.len();
        let ip = IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8));
        self.try_add_client(ip, link)
            .unwrap_or_else(|r| panic!("the server refused a connection: {r}"))
    }

    /// Opens a connection from `ip` over `link`, or returns why the server
    /// refused it ([`Server::accept`]).
    pub fn try_add_client(&mut self, ip: IpAddr, link: LinkConfig) -> Result<ClientId, Refusal> {
        self.try_add(ip, link, Transport::Rtmp)
    }

    /// A browser-like client speaking TC over RTWebSocket (the server
    /// accepts it as [`Transport::Rtws`]); every scripted dialogue works
    /// on it as on an RTMP client.
    pub fn add_rtws_client(&mut self) -> ClientId {
        self.add_rtws_client_with(LinkConfig::unlimited())
    }

    /// As [`Sim::add_rtws_client`], over `link`.
    pub fn add_rtws_client_with(&mut self, link: LinkConfig) -> ClientId {
        let n = self.conns.len();
        let ip = IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8));
        self.try_add(ip, link, Transport::Rtws)
            .unwrap_or_else(|r| panic!("the server refused a connection: {r}"))
    }

    fn try_add(
        &mut self,
        ip: IpAddr,
        link: LinkConfig,
        transport: Transport,
    ) -> Result<ClientId, Refusal> {
        let n = self.conns.len() as u64;
        let seed = self.config.seed.wrapping_add(n.wrapping_mul(2));
        let now = self.now();
        let port = 40_000 + (n % 20_000) as u16;
        let sid = self.server.accept_as(
            now,
            Some(SocketAddr::new(ip, port)),
            transport,
            &mut SeededEntropy::new(seed),
        )?;
        let id = self.conns.len();
        self.by_session.insert(sid, id);
        if link.bytes_per_ms.is_some() {
            self.limited.push(id);
        }
        self.conns.push(Conn {
            sid,
            client: match transport {
                Transport::Rtws => SimClient::new_rtws(self.base),
                _ => SimClient::new(now, seed.wrapping_add(1)),
            },
            link: Link::new(link, self.elapsed),
            eof_given: false,
            wants_write: false,
            removed: None,
            closed_at: None,
            transmitted: self.recording.then(Vec::new),
            inbound: VecDeque::new(),
        });
        self.active.insert(id);
        Ok(ClientId(id))
    }

    /// Changes the link toward `id` from now on (e.g. a player that joined
    /// over a fast link and then degrades: the dialogue to get playing is
    /// quicker to script on a fast link).
    pub fn set_link(&mut self, id: ClientId, link: LinkConfig) {
        let now = self.elapsed;
        let l = &mut self.conns[id.0].link;
        l.advance(now, self.config.link_tick);
        l.last = now;
        l.config = link;
        l.credit = 0;
        if link.bytes_per_ms.is_some() && !self.limited.contains(&id.0) {
            self.limited.push(id.0);
        }
        self.active.insert(id.0);
    }

    /// The client of connection `id`.
    pub fn client(&self, id: ClientId) -> &SimClient {
        &self.conns[id.0].client
    }

    /// The client of connection `id`, to script what it sends next.
    pub fn client_mut(&mut self, id: ClientId) -> &mut SimClient {
        self.active.insert(id.0);
        &mut self.conns[id.0].client
    }

    /// The server session of connection `id`, until it is removed.
    pub fn session(&self, id: ClientId) -> Option<&Session> {
        self.server.session(self.conns[id.0].sid)
    }

    /// The server's id for connection `id`.
    pub fn session_id(&self, id: ClientId) -> SessionId {
        self.conns[id.0].sid
    }

    /// What the server reported when it removed connection `id`.
    pub fn closed(&self, id: ClientId) -> Option<&Closed> {
        self.conns[id.0].removed.as_ref()
    }

    /// Why the session of `id` closed, once it was removed.
    pub fn close_reason(&self, id: ClientId) -> Option<&SessionError> {
        self.closed(id)?.error.as_ref()
    }

    /// When the connection `id` was found finished and removed.
    pub fn closed_at(&self, id: ClientId) -> Option<Duration> {
        self.conns[id.0].closed_at
    }

    /// Whether the connection `id` is finished and removed.
    pub fn is_closed(&self, id: ClientId) -> bool {
        self.conns[id.0].removed.is_some()
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        self.server.broker()
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

    /// Broker events the server dropped because their connection was
    /// already removed ([`Server::undelivered`]; a broker bug if ever
    /// non-zero).
    pub fn unroutable(&self) -> u64 {
        self.server.undelivered()
    }

    // ---- server-side actions --------------------------------------------

    /// Every event the server reported since the last call, in order.
    pub fn take_events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Runs `f` on the server as an embedder would (taps, sources,
    /// statistics), then runs until nothing moves.
    pub fn with_server<R>(&mut self, f: impl FnOnce(&mut Server, Instant) -> R) -> R {
        let now = self.now();
        let result = f(&mut self.server, now);
        self.run();
        result
    }

    /// The embedder approves `ticket` ([`Server::approve`]); runs until
    /// nothing moves.
    pub fn approve(&mut self, ticket: Ticket) -> Result<(), TicketError> {
        let now = self.now();
        let result = self.server.approve(now, ticket);
        self.run();
        result
    }

    /// The embedder refuses `ticket` ([`Server::deny`]); runs until
    /// nothing moves.
    pub fn deny(&mut self, ticket: Ticket, denial: Denial) -> Result<(), TicketError> {
        let now = self.now();
        let result = self.server.deny(now, ticket, denial);
        self.run();
        result
    }

    /// Starts the server's graceful shutdown ([`Server::shutdown`]) and
    /// runs until nothing moves.
    pub fn shutdown(&mut self) {
        let now = self.now();
        self.server.shutdown(now);
        self.run();
    }

    /// The server closes connection `id` ([`Server::close`]).
    pub fn close(&mut self, id: ClientId, reason: &str) {
        let now = self.now();
        self.server.close(now, self.conns[id.0].sid, reason);
        self.run();
    }

    /// The socket of `id` fails: the runtime removes the connection at
    /// once, without the session seeing its peer leave, and the client's
    /// side is gone too.
    pub fn drop_connection(&mut self, id: ClientId) {
        let now = self.now();
        let elapsed = self.elapsed;
        let conn = &mut self.conns[id.0];
        conn.client.closed = true;
        conn.eof_given = true;
        conn.link.clear();
        if conn.removed.is_none() {
            let closed = self.server.remove(now, conn.sid);
            conn.removed = Some(closed.unwrap_or(Closed {
                error: None,
                dropped_frames: 0,
                dropped_bytes: 0,
            }));
            conn.closed_at = Some(elapsed);
        }
        self.run();
    }

    // ---- recording ------------------------------------------------------

    /// From now on, keep every buffer each connection hands to its link
    /// (by reference count: no copy), to prove payloads are shared.
    pub fn record_transmits(&mut self) {
        self.recording = true;
        for c in &mut self.conns {
            c.transmitted.get_or_insert_with(Vec::new);
        }
    }

    /// Stops [`Sim::record_transmits`] and lets go of what it kept.
    pub fn stop_recording(&mut self) {
        self.recording = false;
        for c in &mut self.conns {
            c.transmitted = None;
        }
    }

    /// The buffers connection `id` handed to its link since
    /// [`Sim::record_transmits`].
    pub fn transmitted(&self, id: ClientId) -> &[Bytes] {
        self.conns[id.0].transmitted.as_deref().unwrap_or(&[])
    }

    /// The address of the buffer in which connection `id` transmitted
    /// `payload` as a buffer of its own (the start of it, if the chunk
    /// layer split it), if it did. A payload that was copied next to its
    /// chunk header has none. Recorded buffers are held, so two equal
    /// addresses are one allocation.
    pub fn transmitted_payload(&self, id: ClientId, payload: &[u8]) -> Option<usize> {
        self.transmitted(id)
            .iter()
            .find(|b| !b.is_empty() && payload.starts_with(b))
            .map(|b| b.as_ptr() as usize)
    }

    // ---- stepping -------------------------------------------------------

    /// Moves bytes until nothing moves, without advancing time. Panics if
    /// the broker addressed an event to a removed connection
    /// ([`Server::undelivered`]): the broker must forget a session once it
    /// closed.
    pub fn run(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.drain_ready();
            if self.active.is_empty() {
                // An invariant every simulation checks for free.
                assert_eq!(
                    self.server.undelivered(),
                    0,
                    "the broker addressed a connection after it was removed"
                );
                return;
            }
            let batch = self.active.take();
            for i in batch {
                self.pump(i);
                self.drain_ready();
            }
        }
        panic!("the simulation did not settle within {MAX_ROUNDS} rounds (livelock)");
    }

    /// Advances virtual time by `dur`, stopping at every deadline on the
    /// way (the server's timers, busy link ticks), firing it and running to
    /// quiescence.
    pub fn advance(&mut self, dur: Duration) {
        let target = self.elapsed + dur;
        self.run();
        let mut stuck = 0;
        while let Some((next, timer)) = self.next_deadline() {
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
                self.wakeups += 1;
                if timer {
                    self.timer_wakeups += 1;
                }
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
        for &i in &self.limited {
            let link = &mut self.conns[i].link;
            link.advance(elapsed, tick);
            if link.len > 0 {
                self.active.insert(i);
            }
        }
    }

    fn offset(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.base)
    }

    /// The next instant something is due, and whether it is the server's
    /// own deadline.
    fn next_deadline(&self) -> Option<(Duration, bool)> {
        let server = self.server.poll_timeout().map(|d| self.offset(d));
        let busy = self.limited.iter().any(|&i| self.conns[i].link.is_busy());
        let link = busy.then_some(self.elapsed + self.config.link_tick);
        match (server, link) {
            (Some(s), Some(l)) if s <= l => Some((s, true)),
            (_, Some(l)) => Some((l, false)),
            (Some(s), None) => Some((s, true)),
            (None, None) => None,
        }
    }

    fn fire_timeouts(&mut self) {
        let now = self.now();
        if self.server.poll_timeout().is_some_and(|d| d <= now) {
            self.server.handle_timeout(now);
        }
    }

    /// Takes every id the server names as ready: it wants its socket
    /// written to.
    fn drain_ready(&mut self) {
        while let Some(sid) = self.server.poll_ready() {
            let Some(&i) = self.by_session.get(&sid) else {
                panic!("the server named an unknown connection {sid:?}");
            };
            let conn = &mut self.conns[i];
            conn.wants_write = true;
            self.active.insert(i);
        }
    }

    /// One pass over one connection: client bytes in, transmits out while
    /// the link has room, removal once finished, link bytes to the client.
    /// The connection is visited again next round if anything moved.
    fn pump(&mut self, i: usize) {
        let now = self.now();
        let elapsed = self.elapsed;
        let conn = &mut self.conns[i];
        let sid = conn.sid;
        let mut progress = false;
        if conn.removed.is_none() {
            // Only a connection the server named, or that was just fed, can
            // have finished.
            let mut touched = conn.wants_write;
            if !conn.client.frozen {
                conn.inbound.extend(conn.client.take_outbound());
                // One turn per visit, as a runtime gives one: the rest of
                // a read the server kept first, else the next read. A
                // protocol error is sticky in the session, which still
                // flushes what it owes; the harness just keeps pumping.
                if self.server.has_pending_input(sid) {
                    progress = true;
                    touched = true;
                    let _ = self.server.handle_input(now, sid, &[]);
                } else if let Some(b) = conn.inbound.pop_front() {
                    progress = true;
                    touched = true;
                    let _ = self.server.handle_input(now, sid, &b);
                }
                let drained = conn.inbound.is_empty() && !self.server.has_pending_input(sid);
                if conn.client.closed && !conn.eof_given && drained {
                    conn.eof_given = true;
                    progress = true;
                    touched = true;
                    self.server.handle_eof(now, sid);
                }
            }
            while conn.wants_write && conn.link.has_room() {
                let Some(t) = self.server.poll_transmit(now, sid) else {
                    conn.wants_write = false;
                    break;
                };
                progress = true;
                if let Some(kept) = conn.transmitted.as_mut() {
                    kept.extend(t.bufs.iter().cloned());
                }
                if conn.client.closed {
                    // The client's socket is gone: bytes fall on the floor.
                    continue;
                }
                conn.client.expect_message(t.len());
                conn.link.push(t);
            }
            if touched && self.server.is_closed(sid) {
                let closed = self.server.remove(now, sid);
                conn.removed = Some(closed.unwrap_or(Closed {
                    error: None,
                    dropped_frames: 0,
                    dropped_bytes: 0,
                }));
                conn.closed_at = Some(elapsed);
                conn.wants_write = false;
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
            if conn.removed.is_some() && conn.link.len == 0 && !conn.client.eof {
                conn.client.eof = true;
                progress = true;
            }
        }
        if progress {
            self.active.insert(i);
        }
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
