//! The whole server as one sans-IO machine: every [`Session`], the
//! [`Broker`], the wiring between them, their timers, connection limits and
//! graceful shutdown.
//!
//! A runtime needs exactly this and a socket per connection, so the three
//! adapters (tokio, mio, smol) are only the glue their executor needs. Each
//! connection is addressed by its [`SessionId`].
//!
//! # Run loop
//!
//! 1. A connection arrives: [`Server::accept`] gives it an id, or refuses
//!    it (limits, shutdown) and the runtime closes the socket.
//! 2. Bytes arrive: [`Server::handle_input`]; the peer closed its side:
//!    [`Server::handle_eof`]; a deadline passed: [`Server::handle_timeout`].
//!    Session events reach the broker and broker output reaches the
//!    sessions inside these calls, in the broker's order. One
//!    `handle_input` acts on at most one turn of input
//!    ([`crate::session::MAX_MESSAGES_PER_TURN`] messages or
//!    [`crate::session::MAX_PAYLOAD_PER_TURN`] bytes) and keeps the rest,
//!    so no connection's read can hold up the others. While
//!    [`Server::has_pending_input`] says so, the runtime reads no more from
//!    that socket (the peer is held back by TCP, not by memory here),
//!    gives other connections their turn (a task yields, an event loop
//!    moves on to the next ready connection), then calls `handle_input`
//!    with no bytes to continue.
//! 3. Drain [`Server::poll_ready`]: every id it names may have new output
//!    (or may have closed) and its socket should be written to.
//! 4. For a connection whose socket can take bytes, drain
//!    [`Server::poll_transmit`] while the socket keeps taking them (one
//!    transmit at a time: the session's real-time backlog must stay the only
//!    queue), then check [`Server::is_closed`]; once true and the last
//!    transmit is written, call [`Server::remove`] and drop the socket.
//! 5. Sleep until input, writability, a ready id, or [`Server::poll_timeout`].
//!
//! A socket error is [`Server::remove`] at once: the broker is told the
//! session closed even if the session never saw its peer leave.
//!
//! # Events and decisions
//!
//! After any call, drain [`Server::poll_event`] too: the server tells its
//! embedder what happened ([`ServerEvent`]: connections opened and closed,
//! connects, publishes and plays started and ended) and, for the kinds of
//! request [`ServerConfig::approvals`] gives to the embedder, asks with a
//! [`Ticket`] that [`Server::approve`] or [`Server::deny`] answers, in any
//! order and as late as the decision deadline. Events are queued in the
//! order things happened; the order between draining events, ready ids and
//! transmits does not matter, since each only reports state. A runtime
//! drains events after every call and hands them to the code that runs it.
//!
//! A multi-threaded runtime keeps the `Server` behind one lock and writes
//! transmits with the lock released: every `Transmit` owns its buffers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::broker::{Broker, BrokerConfig, Notice};
use crate::client::ClientEvent;
use crate::conn::Conn;
use crate::entropy::Entropy;
use crate::event::{
    BrokerEvent, ConnectInfo, Denial, PlayRejection, PublishRejection, SessionEvent, SessionId,
};
use crate::outbound::{Dial, Outbound, OutboundConfig};
use crate::session::RealTimeConfig;
use crate::session::{Session, SessionConfig, SessionError, Transmit};
use crate::stats::{ConnectionStats, RateMeter, Role, StreamStats, Totals, Traffic};
use crate::tap::{SourceError, SourceId, SourceState, TapId, TapItem, TapState, TAP_STREAM};

/// Who decides a kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decider {
    /// The server, from its configuration (auth keys, names, limits), at
    /// once.
    #[default]
    Local,
    /// The embedder, through a [`ServerEvent`] request with a [`Ticket`],
    /// after the server's own checks passed.
    Embedder,
}

/// Which requests the embedder decides, and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approvals {
    /// `connect` ([`ServerEvent::ConnectRequest`]).
    pub connect: Decider,
    /// `publish` ([`ServerEvent::PublishRequest`]).
    pub publish: Decider,
    /// `play` ([`ServerEvent::PlayRequest`]).
    pub play: Decider,
    /// A request not answered within this is denied with a status saying
    /// so, so a lost or stuck decider never holds a client forever.
    pub deadline: Duration,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            connect: Decider::Local,
            publish: Decider::Local,
            play: Decider::Local,
            deadline: Duration::from_secs(10),
        }
    }
}

/// How a connection reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// RTMP over TCP, accepted by a listener.
    Rtmp,
    /// An embedder's tap ([`Server::open_tap`]): reads a stream from code.
    Tap,
    /// An embedder's source ([`Server::open_source`]): publishes from code.
    Source,
    /// RTMP over TCP, dialed by the server ([`Server::connect`]).
    RtmpOut,
    /// RTMP over TLS (RTMPS), accepted by a TLS listener.
    Rtmps,
    /// TC (RTMP messages) over RTWebSocket flows, accepted by a WebSocket
    /// listener: a browser client that connects, publishes and plays like
    /// an RTMP client, sharing Apps, names, limits, approvals, events and
    /// statistics with RTMP.
    ///
    /// The transport's contract, for a connection opened with
    /// [`Server::accept_as`]`(now, peer, Transport::Rtws, entropy)`:
    ///
    /// * each [`Server::handle_input`] (or [`Server::handle_input_bytes`],
    ///   which avoids a copy) is exactly one whole WebSocket binary
    ///   message; no bytes means "continue pending input", as for RTMP;
    /// * each [`Transmit`] from [`Server::poll_transmit`] or
    ///   [`Server::poll_transmit_into`] is exactly one WebSocket binary
    ///   message (its `bufs` concatenated);
    /// * everything else is as for RTMP: timers, [`Server::handle_eof`],
    ///   events, closing. Once [`Server::is_closed`] is true, the transport
    ///   sends the WebSocket close frame and removes the connection.
    ///
    /// WebSocket pings, text messages and fragmentation are the
    /// transport's business; the core sees only binary messages. See
    /// docs/rtwebsocket.md, "TC over flows".
    Rtws,
}

impl Transport {
    /// Its index in [`Totals::opened`].
    fn index(self) -> usize {
        match self {
            Transport::Rtmp => 0,
            Transport::RtmpOut => 1,
            Transport::Tap => 2,
            Transport::Source => 3,
            Transport::Rtmps => 4,
            Transport::Rtws => 5,
        }
    }

    /// A short lower-case name for logs, metrics labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Rtmp => "rtmp",
            Transport::Tap => "tap",
            Transport::Source => "source",
            Transport::RtmpOut => "rtmp-out",
            Transport::Rtmps => "rtmps",
            Transport::Rtws => "rtws",
        }
    }
}

/// A must-answer handle for one request the embedder decides. Opaque and
/// never reused: answering a ticket whose request is gone (the connection
/// closed, the stream was deleted, the request was superseded or timed
/// out) is refused with [`TicketError`], never applied to another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// What a decider grants with an approval ([`Server::approve_with`]),
/// beyond the yes: per-client settings that come from where the decision
/// is made (a token's parameters, an App's section of a configuration
/// file). Nothing set changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Grant {
    /// For a connect (or any later request of the connection): the highest
    /// publish priority it may ask for (TC's `pri` token parameter),
    /// replacing [`SessionConfig::max_publish_priority`].
    pub max_publish_priority: Option<u32>,
    /// For a play: the player's real-time treatment (an App's lifetimes),
    /// replacing the server's defaults; its own play options still apply
    /// within the caps.
    pub real_time: Option<RealTimeConfig>,
}

impl Grant {
    /// A grant of `max` as the connection's highest publish priority.
    pub fn max_publish_priority(max: u32) -> Self {
        Grant {
            max_publish_priority: Some(max),
            ..Grant::default()
        }
    }

    /// A grant of `rt` as a play's real-time treatment.
    pub fn real_time(rt: RealTimeConfig) -> Self {
        Grant {
            real_time: Some(rt),
            ..Grant::default()
        }
    }
}

/// Why [`Server::approve`] or [`Server::deny`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// No request waits on this ticket any more: it was answered, timed
    /// out, superseded, or its connection or stream went away.
    #[error("no request waits on ticket {0}")]
    Stale(Ticket),
}

/// A publish or play request the embedder decides.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRequest {
    /// The message stream id of the request.
    pub stream: u32,
    /// The App of the connection.
    pub app: String,
    /// The plain stream name (the stream key; for a play, prefixes such
    /// as `asis:` or `sha256:` included).
    pub name: String,
    /// What followed the first `?` of the name: tokens and options.
    pub query: String,
    /// For a publish, the priority asked for (capped by the connection's
    /// maximum); 0 for a play.
    pub priority: u32,
    /// The connection's TC connection ID.
    pub connection_id: String,
    /// The `tcUrl` it connected with.
    pub tc_url: Option<String>,
    /// The TC user name of its `connect`, if any.
    pub user: Option<String>,
}

/// What the server tells its embedder, drained with [`Server::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A connection was accepted.
    Opened {
        /// Its id.
        id: SessionId,
        /// The peer's address, if the runtime knew it.
        peer: Option<SocketAddr>,
        /// How it arrived.
        transport: Transport,
    },
    /// A connection is gone ([`Server::remove`]); always the last event
    /// about it.
    Closed {
        /// Its id.
        id: SessionId,
        /// Why the session closed; `None` if the runtime removed it while
        /// it was open (a socket error).
        error: Option<SessionError>,
        /// How long it was open.
        duration: Duration,
        /// Bytes read from it.
        bytes_in: u64,
        /// Bytes written to it.
        bytes_out: u64,
        /// Media frames the real-time policy abandoned for its players.
        dropped_frames: u64,
        /// Payload bytes of those frames.
        dropped_bytes: u64,
    },
    /// `connect` succeeded.
    Connected {
        /// The connection.
        id: SessionId,
        /// What it sent.
        info: Box<ConnectInfo>,
    },
    /// A publish is live.
    PublishStarted {
        /// The publisher.
        id: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
        /// The query its name carried.
        query: String,
    },
    /// A live publish ended (unpublish, eviction, close).
    PublishEnded {
        /// The publisher.
        id: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
    },
    /// A play was accepted (the player may wait for a publisher).
    PlayStarted {
        /// The player.
        id: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The name asked for.
        name: String,
        /// The query its name carried.
        query: String,
    },
    /// What a published stream carries changed: codecs per track, width,
    /// height, frame rate, sample rate, channels (empty once the
    /// publisher leaves).
    MediaChanged {
        /// The App.
        app: String,
        /// The plain stream name.
        name: String,
        /// The description now.
        info: Box<crate::media::MediaInfo>,
    },
    /// What the remote server of an outbound connection said: connected,
    /// publishing, playing, a status, closed.
    Outbound {
        /// The connection.
        id: SessionId,
        /// What happened.
        event: ClientEvent,
    },
    /// A play ended.
    PlayStopped {
        /// The player.
        id: SessionId,
        /// Its message stream id.
        stream: u32,
        /// The App.
        app: String,
        /// The name asked for.
        name: String,
    },
    /// A `connect` waits for [`Server::approve`] or [`Server::deny`].
    ConnectRequest {
        /// The answer's handle.
        ticket: Ticket,
        /// The connection.
        id: SessionId,
        /// The peer's address, if known.
        peer: Option<SocketAddr>,
        /// What it sent.
        info: Box<ConnectInfo>,
    },
    /// A `publish` waits for [`Server::approve`] or [`Server::deny`].
    PublishRequest {
        /// The answer's handle.
        ticket: Ticket,
        /// The connection.
        id: SessionId,
        /// The peer's address, if known.
        peer: Option<SocketAddr>,
        /// What it asked for.
        request: Box<StreamRequest>,
    },
    /// A `play` waits for [`Server::approve`] or [`Server::deny`].
    PlayRequest {
        /// The answer's handle.
        ticket: Ticket,
        /// The connection.
        id: SessionId,
        /// The peer's address, if known.
        peer: Option<SocketAddr>,
        /// What it asked for.
        request: Box<StreamRequest>,
    },
}

/// Counts a refusal the broker sends (or relays from the embedder).
fn count_rejection(t: &mut Totals, event: &BrokerEvent) {
    match event {
        BrokerEvent::PublishRejected { reason, .. } => match reason {
            PublishRejection::AlreadyPublishing => t.publishes_rejected_taken += 1,
            PublishRejection::BadName(_) => t.publishes_rejected_name += 1,
            PublishRejection::TooManyStreams => t.publishes_rejected_limit += 1,
            _ => t.publishes_rejected_denied += 1,
        },
        BrokerEvent::PlayRejected { reason, .. } => match reason {
            PlayRejection::Denied(_) => t.plays_rejected_denied += 1,
            _ => t.plays_rejected_limit += 1,
        },
        _ => {}
    }
}

/// The memory one queued event holds: its slot in the queue and what it
/// owns on the heap.
fn event_bytes(event: &ServerEvent) -> usize {
    let strings = |ss: &[&String]| ss.iter().map(|s| s.capacity()).sum::<usize>();
    let request = |r: &StreamRequest| {
        std::mem::size_of::<StreamRequest>()
            + strings(&[&r.app, &r.name, &r.query, &r.connection_id])
            + r.tc_url.as_ref().map_or(0, String::capacity)
            + r.user.as_ref().map_or(0, String::capacity)
    };
    let heap = match event {
        ServerEvent::Connected { info, .. } | ServerEvent::ConnectRequest { info, .. } => {
            std::mem::size_of::<ConnectInfo>() + info.heap_size()
        }
        ServerEvent::PublishRequest { request: r, .. }
        | ServerEvent::PlayRequest { request: r, .. } => request(r),
        ServerEvent::PublishStarted {
            app, name, query, ..
        }
        | ServerEvent::PlayStarted {
            app, name, query, ..
        } => strings(&[app, name, query]),
        ServerEvent::PublishEnded { app, name, .. }
        | ServerEvent::PlayStopped { app, name, .. } => strings(&[app, name]),
        ServerEvent::MediaChanged { app, name, info } => strings(&[app, name]) + info.heap_size(),
        // Errors and statuses carry short texts.
        ServerEvent::Closed { .. } | ServerEvent::Outbound { .. } | ServerEvent::Opened { .. } => {
            256
        }
    };
    std::mem::size_of::<ServerEvent>() + heap
}

/// A request waiting on a ticket.
#[derive(Debug)]
struct Pending {
    id: SessionId,
    deadline: Instant,
    asked: Asked,
}

#[derive(Debug)]
enum Asked {
    Connect,
    /// The session's event, forwarded to the broker once approved.
    Publish {
        stream: u32,
        seq: u64,
        event: SessionEvent,
    },
    Play {
        stream: u32,
        seq: u64,
        event: SessionEvent,
    },
}

impl Asked {
    fn stream(&self) -> Option<u32> {
        match self {
            Asked::Connect => None,
            Asked::Publish { stream, .. } | Asked::Play { stream, .. } => Some(*stream),
        }
    }
}

/// Hashes a [`SessionId`] with one multiplication (Fibonacci hashing).
///
/// Ids are handed out by the broker in sequence, never chosen by a peer, so
/// a keyed hash (std's SipHash, which guards against hash flooding) buys
/// nothing here; it was the single largest cost of fan-out in the core,
/// since every transmit of every player looks its session up a few times.
/// The multiplication by an odd constant keeps sequential ids on distinct
/// buckets and spreads them into the high bits the table also uses.
///
/// Public for the adapters' own maps by connection (a task's bell, a
/// socket), which a fan-out looks up once per player per frame too.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than a bare u64; still correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by [`SessionId`], hashed with [`IdHasher`].
pub type IdMap<V> = HashMap<SessionId, V, BuildHasherDefault<IdHasher>>;

/// Everything a server needs besides its listeners; shared by every runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Knobs given to every new connection's session.
    pub session: SessionConfig,
    /// Knobs of the server-wide broker.
    pub broker: BrokerConfig,
    /// Most connections served at once. Each costs a socket (a file
    /// descriptor) and a few KiB; past it new connections are refused
    /// rather than starving the ones already served.
    pub max_connections: usize,
    /// Most connections from one IP address at once, so one host cannot
    /// take every slot. The default is half of [`Self::max_connections`]:
    /// one host never gets more than half the server, while thousands of
    /// viewers behind one carrier-grade NAT, or a loopback benchmark with a
    /// few thousand players, still fit.
    pub max_connections_per_ip: usize,
    /// Addresses and subnets [`Self::max_connections_per_ip`] does not
    /// apply to (a trusted relay, a monitoring host, a NAT the operator
    /// knows), as the Go RTMP server's `CONCURRENT_LIMIT_WHITELIST`.
    pub per_ip_exempt: Vec<crate::ipnet::IpNet>,
    /// How long clients told `NetConnection.Shutdown.Notify` get to leave
    /// on their own before the rest are closed (TC's `-t`, 5 minutes).
    pub shutdown_deadline: Duration,
    /// Where clients should go when the server shuts down gracefully: when
    /// set, [`Server::shutdown`] first sends every client that announced
    /// the capability (`capsEx` Reconnect, Enhanced RTMP v2)
    /// `NetConnection.Connect.ReconnectRequest` with this `tcUrl` (another
    /// node, e.g. `rtmp://edge2.example.com/live`, or a relative reference
    /// such as `/live`), then `NetConnection.Shutdown.Notify` as to every
    /// client. `None` (the default) sends no reconnect request.
    pub shutdown_reconnect_url: Option<String>,
    /// Which requests the embedder decides (by default, none).
    pub approvals: Approvals,
    /// Most memory (bytes, estimated from what each event holds: names,
    /// the connect command object, media descriptions) of [`ServerEvent`]s
    /// kept for an embedder that does not drain them. Past it, reports are
    /// dropped (and counted in [`Server::events_dropped`]) and new requests
    /// are denied at once, so neither an embedder that stopped listening
    /// nor clients sending large `connect` objects can grow server memory.
    pub max_queued_event_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig::default(),
            broker: BrokerConfig::default(),
            max_connections: 10_000,
            max_connections_per_ip: 5_000,
            per_ip_exempt: Vec::new(),
            shutdown_deadline: Duration::from_secs(300),
            shutdown_reconnect_url: None,
            approvals: Approvals::default(),
            max_queued_event_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why [`Server::accept`] turned a connection away; the runtime closes its
/// socket (there is no RTMP status before the handshake) and logs this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
    /// [`ServerConfig::max_connections`] are already served.
    #[error("connection limit ({0}) reached")]
    TooManyConnections(usize),
    /// [`ServerConfig::max_connections_per_ip`] are already served for the
    /// peer's address.
    #[error("per-address connection limit ({0}) reached")]
    TooManyFromAddress(usize),
}

/// What a runtime learns about a connection it removed, for its close log.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// Why the session closed; `None` if the runtime removed it while it was
    /// still open (a socket error).
    pub error: Option<SessionError>,
    /// Media frames the real-time policy abandoned for its players.
    pub dropped_frames: u64,
    /// Payload bytes of those frames.
    pub dropped_bytes: u64,
}

/// One connection as the server keeps it.
///
/// `repr(C)` keeps the declared order: what the server reads for every
/// frame it hands a player (whether it is queued, its deadline, its output
/// counters) sits right before the session's own hot fields, at the start
/// of the box.
#[derive(Debug)]
#[repr(C)]
struct Slot {
    /// Whether the id is in the ready queue.
    queued: bool,
    /// Whether the broker has seen this session's `Closed`.
    closed_sent: bool,
    /// The deadline on the timer heap for this session: never later than
    /// the session's own next deadline (see `Server::refresh_deadline`).
    deadline: Option<Instant>,
    /// Counted for every write it makes.
    bytes_out: u64,
    rate_out: RateMeter,
    conn: Conn,
    peer: Option<SocketAddr>,
    ip: Option<IpAddr>,
    transport: Transport,
    opened: Instant,
    bytes_in: u64,
    rate_in: RateMeter,
    /// Tickets of this connection's requests that wait for the embedder.
    tickets: Vec<Ticket>,
    span: tracing::Span,
}

/// Every connection of one server, and the broker between them.
///
/// Bounded: connections by [`ServerConfig::max_connections`], the ready
/// queue by the connections (each at most once), the timer heap by a
/// constant factor of them (stale entries are compacted away).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    broker: Broker,
    /// Boxed, so the table (which keeps spare capacity, up to twice the
    /// connections) holds pointers rather than ~1.5 KiB sessions.
    slots: IdMap<Box<Slot>>,
    per_ip: HashMap<IpAddr, usize>,
    /// Session deadlines; an entry is live only while it equals its slot's
    /// `deadline`, so moving a deadline earlier is a push, not a search, and
    /// moving it later is nothing until the entry fires.
    timers: BinaryHeap<Reverse<(Instant, SessionId)>>,
    ready: VecDeque<SessionId>,
    /// Sessions whose events still have to reach the broker (scratch).
    work: Vec<SessionId>,
    /// When graceful shutdown closes whoever is left.
    shutdown_at: Option<Instant>,
    shutdown_done: bool,
    /// Broker events for connections already removed (see
    /// [`Server::undelivered`]).
    undelivered: u64,
    events: VecDeque<ServerEvent>,
    /// Estimated memory of `events`.
    events_bytes: usize,
    /// The last wall-clock reading ([`Server::handle_unix_time`]).
    unix_anchor: Option<(Instant, f64)>,
    /// The connection of each exclusive (`xcl`) user, by App and user.
    exclusive: HashMap<(String, String), SessionId>,
    totals: Totals,
    events_dropped: u64,
    next_ticket: u64,
    pending: HashMap<Ticket, Pending>,
    /// Decision deadlines, earliest first; an entry is live while its
    /// ticket is pending.
    ticket_deadlines: BTreeSet<(Instant, Ticket)>,
    /// The embedder's taps and sources.
    participants: IdMap<Participant>,
    /// Outbound connections the runtime has to dial.
    dials: VecDeque<Dial>,
    /// Taps that may have something to drain, each at most once.
    ready_taps: VecDeque<TapId>,
}

/// An embedder's participant of the broker: no connection, no session.
#[derive(Debug)]
enum Participant {
    Tap(Box<TapState>),
    Source(SourceState),
}

impl Server {
    /// A server with no connections.
    pub fn new(mut config: ServerConfig) -> Self {
        config.session.hold_connect = config.approvals.connect == Decider::Embedder;
        Server {
            broker: Broker::new(config.broker.clone()),
            config,
            slots: IdMap::default(),
            per_ip: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            work: Vec::new(),
            shutdown_at: None,
            shutdown_done: false,
            undelivered: 0,
            events: VecDeque::new(),
            events_bytes: 0,
            unix_anchor: None,
            exclusive: HashMap::new(),
            totals: Totals::default(),
            events_dropped: 0,
            next_ticket: 1,
            pending: HashMap::new(),
            ticket_deadlines: BTreeSet::new(),
            participants: IdMap::default(),
            ready_taps: VecDeque::new(),
            dials: VecDeque::new(),
        }
    }

    /// Replaces the configuration (a reloaded file): connections accepted
    /// from now on get the new session settings (per-App ones included),
    /// limits and broker settings apply from the next request, decisions
    /// asked from now on follow the new approvals. Nobody connected is
    /// dropped or changed: a session keeps the settings it started with.
    pub fn set_config(&mut self, mut config: ServerConfig) {
        config.session.hold_connect = config.approvals.connect == Decider::Embedder;
        self.broker.set_config(config.broker.clone());
        self.config = config;
    }

    /// The configuration the server was built with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Connections served right now.
    pub fn connection_count(&self) -> usize {
        self.slots.len()
    }

    /// The broker, for stats (streams, publishers).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// A connection's session, for stats and logs.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.slots.get(&id).and_then(|s| s.conn.session())
    }

    /// The `tracing` span of a connection (its id and peer address), so the
    /// runtime's own logs about it carry the same fields as the core's.
    pub fn span(&self, id: SessionId) -> Option<tracing::Span> {
        self.slots.get(&id).map(|s| s.span.clone())
    }

    /// Broker events addressed to a connection that was already removed,
    /// and so dropped. The broker forgets a session when it learns it
    /// closed, so this stays 0; a count here is a broker bug that a
    /// runtime can report and the simulation tests assert on.
    pub fn undelivered(&self) -> u64 {
        self.undelivered
    }

    /// Reports dropped because the event queue was full (see
    /// [`ServerConfig::max_queued_event_bytes`]).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Server-wide counters since start (they only go up), for metrics.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The wall clock: the Unix time (seconds) is `unix_secs` at `now`. The
    /// core never reads a clock; a runtime says this at start and now and
    /// then (every accept is plenty), and new connections check their
    /// tokens' time bounds (`nbf`, `exp`, `use_by`) against it.
    pub fn handle_unix_time(&mut self, now: Instant, unix_secs: f64) {
        self.unix_anchor = Some((now, unix_secs));
    }

    /// Requests waiting for the embedder's decision.
    pub fn pending_decisions(&self) -> usize {
        self.pending.len()
    }

    /// The next thing the embedder should hear about; see the module docs.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        let event = self.events.pop_front()?;
        self.events_bytes = self.events_bytes.saturating_sub(event_bytes(&event));
        if self.events.is_empty() {
            self.events_bytes = 0;
            // A burst's room is not kept for good.
            if self.events.capacity() > 1024 {
                self.events.shrink_to(1024);
            }
        }
        Some(event)
    }

    /// Approves the request waiting on `ticket`: a connect succeeds, a
    /// publish or play goes on to the broker (which may still refuse it for
    /// its own reasons: a name already published, the stream limit).
    pub fn approve(&mut self, now: Instant, ticket: Ticket) -> Result<(), TicketError> {
        self.approve_with(now, ticket, Grant::default())
    }

    /// Approves as [`Server::approve`], with what the decider knows about
    /// this client applied first (see [`Grant`]).
    pub fn approve_with(
        &mut self,
        now: Instant,
        ticket: Ticket,
        grant: Grant,
    ) -> Result<(), TicketError> {
        let pending = self.take_pending(ticket)?;
        let id = pending.id;
        let Some(slot) = self.slots.get_mut(&id) else {
            return Err(TicketError::Stale(ticket));
        };
        if let Some(session) = slot.conn.session_mut() {
            if let Some(max) = grant.max_publish_priority {
                session.set_max_publish_priority(max);
            }
            if let (Some(rt), Asked::Play { stream, seq, .. }) = (grant.real_time, &pending.asked) {
                session.set_pending_play_real_time(*stream, *seq, rt);
            }
        }
        match pending.asked {
            Asked::Connect => {
                let approved = slot
                    .conn
                    .session_mut()
                    .is_some_and(|s| slot.span.in_scope(|| s.approve_connect(now)));
                if !approved {
                    return Err(TicketError::Stale(ticket));
                }
            }
            Asked::Publish { stream, seq, event } => {
                if !slot
                    .conn
                    .session()
                    .is_some_and(|s| s.publish_pending(stream, seq))
                {
                    return Err(TicketError::Stale(ticket));
                }
                self.broker.handle_event(now, id, event);
            }
            Asked::Play { stream, seq, event } => {
                if !slot
                    .conn
                    .session()
                    .is_some_and(|s| s.play_pending(stream, seq))
                {
                    return Err(TicketError::Stale(ticket));
                }
                self.broker.handle_event(now, id, event);
            }
        }
        self.mark_ready(id);
        self.route(now);
        self.settle(now, id);
        Ok(())
    }

    /// Refuses the request waiting on `ticket`; the client gets the
    /// status `denial` chooses with its description (see [`Denial`]). A
    /// refused connect closes its connection; after a refused publish or
    /// play the connection stays usable.
    pub fn deny(
        &mut self,
        now: Instant,
        ticket: Ticket,
        denial: Denial,
    ) -> Result<(), TicketError> {
        let pending = self.take_pending(ticket)?;
        if !self.refuse(now, pending, denial) {
            return Err(TicketError::Stale(ticket));
        }
        Ok(())
    }

    /// Tells the session of `pending` its request is refused; false if the
    /// request is no longer there.
    fn refuse(&mut self, now: Instant, pending: Pending, denial: Denial) -> bool {
        match pending.asked {
            Asked::Connect => {} // counted when the session closes
            Asked::Publish { .. } => self.totals.publishes_rejected_denied += 1,
            Asked::Play { .. } => self.totals.plays_rejected_denied += 1,
        }
        let id = pending.id;
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        let Some(session) = slot.conn.session_mut() else {
            return false;
        };
        let done = slot.span.in_scope(|| match pending.asked {
            Asked::Connect => session.deny_connect(now, &denial),
            Asked::Publish { stream, seq, .. } => {
                let live = session.publish_pending(stream, seq);
                if live {
                    session.handle_broker_event(
                        now,
                        BrokerEvent::PublishRejected {
                            stream,
                            seq,
                            reason: PublishRejection::Denied(denial),
                        },
                    );
                }
                live
            }
            Asked::Play { stream, seq, .. } => {
                let live = session.play_pending(stream, seq);
                if live {
                    session.handle_broker_event(
                        now,
                        BrokerEvent::PlayRejected {
                            stream,
                            seq,
                            reason: PlayRejection::Denied(denial),
                        },
                    );
                }
                live
            }
        });
        self.mark_ready(id);
        self.settle(now, id);
        done
    }

    fn take_pending(&mut self, ticket: Ticket) -> Result<Pending, TicketError> {
        let pending = self
            .pending
            .remove(&ticket)
            .ok_or(TicketError::Stale(ticket))?;
        self.ticket_deadlines.remove(&(pending.deadline, ticket));
        if let Some(slot) = self.slots.get_mut(&pending.id) {
            slot.tickets.retain(|t| *t != ticket);
        }
        Ok(pending)
    }

    /// Forgets the ticket of `id`'s request on message stream `stream`
    /// (`None`: its connect), superseded by a newer request or withdrawn.
    fn forget_ticket(&mut self, id: SessionId, stream: Option<u32>) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let pending = &self.pending;
        let Some(pos) = slot
            .tickets
            .iter()
            .position(|t| pending.get(t).is_some_and(|p| p.asked.stream() == stream))
        else {
            return;
        };
        let ticket = slot.tickets.swap_remove(pos);
        if let Some(p) = self.pending.remove(&ticket) {
            self.ticket_deadlines.remove(&(p.deadline, ticket));
        }
    }

    /// Queues a report for the embedder, or counts it dropped if the queue
    /// is full.
    fn report(&mut self, event: ServerEvent) {
        match &event {
            ServerEvent::Opened { transport, .. } => self.totals.opened[transport.index()] += 1,
            ServerEvent::PublishStarted { .. } => self.totals.publishes += 1,
            ServerEvent::PlayStarted { .. } => self.totals.plays += 1,
            _ => {}
        }
        let bytes = event_bytes(&event);
        if self.events_bytes + bytes > self.config.max_queued_event_bytes {
            self.events_dropped += 1;
            return;
        }
        self.events_bytes += bytes;
        self.events.push_back(event);
    }

    /// Turns a session's request into a ticket and a [`ServerEvent`], or
    /// refuses it at once if the embedder is not keeping up.
    fn ask(&mut self, now: Instant, id: SessionId, asked: Asked, event: ServerEvent) {
        if self.events_bytes + event_bytes(&event) > self.config.max_queued_event_bytes {
            self.events_dropped += 1;
            let pending = Pending {
                id,
                deadline: now,
                asked,
            };
            tracing::warn!(session = %id, "event queue full: request refused");
            self.refuse(now, pending, Denial::policy("server busy"));
            return;
        }
        let ticket = match &event {
            ServerEvent::ConnectRequest { ticket, .. }
            | ServerEvent::PublishRequest { ticket, .. }
            | ServerEvent::PlayRequest { ticket, .. } => *ticket,
            _ => return,
        };
        let deadline = now
            .checked_add(self.config.approvals.deadline)
            .unwrap_or(now);
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.tickets.push(ticket);
        }
        self.pending.insert(
            ticket,
            Pending {
                id,
                deadline,
                asked,
            },
        );
        self.ticket_deadlines.insert((deadline, ticket));
        self.events_bytes += event_bytes(&event);
        self.events.push_back(event);
    }

    fn new_ticket(&mut self) -> Ticket {
        let t = Ticket(self.next_ticket);
        self.next_ticket += 1;
        t
    }

    /// Subscribes a tap to stream `name` of App `app` (a `?query` is split
    /// off as for players, `asis:` and `sha256:` work): it gets what a
    /// player of that name would, fast start included, under `rt` (the
    /// server's player defaults if `None`). Refused as a play would be
    /// (a name nobody can publish, the stream limit) or while shutting down.
    pub fn open_tap(
        &mut self,
        now: Instant,
        app: &str,
        name: &str,
        rt: Option<RealTimeConfig>,
    ) -> Result<TapId, PlayRejection> {
        if self.shutdown_at.is_some() {
            return Err(PlayRejection::Denied(Denial::policy(
                "server shutting down",
            )));
        }
        let id = self.broker.open_session();
        let rt = rt.unwrap_or(self.config.session.real_time);
        self.participants
            .insert(id, Participant::Tap(Box::new(TapState::new(rt))));
        self.join(now, id, app, "tap", Transport::Tap);
        let (name, query) = crate::session::split_query(name);
        let request = crate::event::PlayRequest {
            seq: 1,
            name,
            query,
        };
        self.broker.handle_event(
            now,
            id,
            SessionEvent::Play {
                stream: TAP_STREAM,
                request,
            },
        );
        self.route(now);
        let rejected = match self.participants.get_mut(&id) {
            Some(Participant::Tap(tap)) => tap.rejected.take(),
            _ => None,
        };
        if let Some(reason) = rejected {
            self.leave(now, id);
            return Err(reason);
        }
        Ok(TapId(id))
    }

    /// The next item of tap `tap`, judged by the real-time policy at `now`
    /// (media older than its lifetime is abandoned, as for a player).
    #[must_use]
    pub fn poll_tap(&mut self, now: Instant, tap: TapId) -> Option<TapItem> {
        match self.participants.get_mut(&tap.0)? {
            Participant::Tap(t) => t.pop(now),
            Participant::Source(_) => None,
        }
    }

    /// The next tap that may have items since it was last named (each at
    /// most once until named again): drain it with [`Server::poll_tap`].
    #[must_use]
    pub fn poll_tap_ready(&mut self) -> Option<TapId> {
        while let Some(tap) = self.ready_taps.pop_front() {
            if let Some(Participant::Tap(t)) = self.participants.get_mut(&tap.0) {
                t.queued = false;
                return Some(tap);
            }
        }
        None
    }

    /// Media frames and bytes the real-time policy abandoned before tap
    /// `tap` drained them, and the payload bytes it holds now.
    pub fn tap_backlog(&self, tap: TapId) -> Option<(u64, u64, usize)> {
        match self.participants.get(&tap.0)? {
            Participant::Tap(t) => {
                let (frames, bytes) = t.dropped();
                Some((frames, bytes, t.queued_bytes()))
            }
            Participant::Source(_) => None,
        }
    }

    /// Ends tap `tap`: the broker forgets its subscription.
    pub fn close_tap(&mut self, now: Instant, tap: TapId) {
        if matches!(self.participants.get(&tap.0), Some(Participant::Tap(_))) {
            self.leave(now, tap.0);
        }
    }

    /// Publishes stream `name` of App `app` from code, at `priority` (a
    /// higher one takes over a live publish of the name, as for an
    /// encoder). Refused as an encoder's publish would be (a name already
    /// published at an equal or higher priority, a bad name, the stream
    /// limit) or while shutting down.
    pub fn open_source(
        &mut self,
        now: Instant,
        app: &str,
        name: &str,
        priority: u32,
    ) -> Result<SourceId, PublishRejection> {
        if self.shutdown_at.is_some() {
            return Err(PublishRejection::Denied(Denial::policy(
                "server shutting down",
            )));
        }
        let id = self.broker.open_session();
        self.participants.insert(
            id,
            Participant::Source(SourceState {
                live: false,
                rejected: None,
            }),
        );
        self.join(now, id, app, "source", Transport::Source);
        let (name, query) = crate::session::split_query(name);
        self.broker.handle_event(
            now,
            id,
            SessionEvent::Publish {
                stream: TAP_STREAM,
                seq: 1,
                name,
                query,
                kind: crate::message::PublishKind::Live,
                priority,
            },
        );
        self.route(now);
        let rejected = match self.participants.get_mut(&id) {
            Some(Participant::Source(s)) => s.rejected.take(),
            _ => None,
        };
        if let Some(reason) = rejected {
            self.leave(now, id);
            return Err(reason);
        }
        Ok(SourceId(id))
    }

    /// One message from source `source`, as an encoder's publish would
    /// send it (`timestamp` on the source's own timeline; the broker
    /// rebases it for players).
    pub fn source_frame(
        &mut self,
        now: Instant,
        source: SourceId,
        frame: crate::event::Frame,
    ) -> Result<(), SourceError> {
        self.live_source(source)?;
        if frame.payload.is_empty() && frame.kind != crate::event::FrameKind::Data {
            return Ok(()); // as the session drops empty media
        }
        self.broker.handle_event(
            now,
            source.0,
            SessionEvent::Frame {
                stream: TAP_STREAM,
                frame,
            },
        );
        self.route(now);
        Ok(())
    }

    /// `@setDataFrame` from source `source`: `frame` (a data frame whose
    /// payload is `handler` and its values, AMF0) becomes the stream's data
    /// keyframe for `handler`, sent to every player and late joiner.
    pub fn source_data_frame(
        &mut self,
        now: Instant,
        source: SourceId,
        handler: &str,
        frame: crate::event::Frame,
    ) -> Result<(), SourceError> {
        self.live_source(source)?;
        self.broker.handle_event(
            now,
            source.0,
            SessionEvent::SetDataFrame {
                stream: TAP_STREAM,
                handler: handler.to_owned(),
                frame,
            },
        );
        self.route(now);
        Ok(())
    }

    fn live_source(&self, source: SourceId) -> Result<(), SourceError> {
        match self.participants.get(&source.0) {
            Some(Participant::Source(s)) if s.live => Ok(()),
            Some(Participant::Source(_)) => Err(SourceError::Evicted),
            _ => Err(SourceError::Unknown),
        }
    }

    /// Ends source `source`'s publish, as an encoder's unpublish: players
    /// wait out the republish grace.
    pub fn close_source(&mut self, now: Instant, source: SourceId) {
        if matches!(
            self.participants.get(&source.0),
            Some(Participant::Source(_))
        ) {
            self.leave(now, source.0);
        }
    }

    /// A participant joins `app` (the broker's `connect`) and is reported
    /// opened.
    fn join(&mut self, now: Instant, id: SessionId, app: &str, kind: &str, transport: Transport) {
        let info = ConnectInfo {
            app: app.to_owned(),
            connection_id: format!("{kind}-{id}"),
            ..ConnectInfo::default()
        };
        self.report(ServerEvent::Opened {
            id,
            peer: None,
            transport,
        });
        self.broker
            .handle_event(now, id, SessionEvent::Connected(Box::new(info)));
    }

    /// A participant leaves: the broker forgets it, it is reported closed.
    fn leave(&mut self, now: Instant, id: SessionId) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        let (dropped_frames, dropped_bytes) = match &p {
            Participant::Tap(t) => t.dropped(),
            Participant::Source(_) => (0, 0),
        };
        let closed_already = matches!(&p, Participant::Tap(t) if t.closed);
        if !closed_already {
            self.broker.handle_event(now, id, SessionEvent::Closed);
        }
        self.route(now);
        self.report(ServerEvent::Closed {
            id,
            error: None,
            duration: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            dropped_frames,
            dropped_bytes,
        });
    }

    /// Opens an outbound RTMP connection to `config.target` (see
    /// [`crate::outbound`]): it is a connection like an accepted one,
    /// counted against [`ServerConfig::max_connections`], with its own id,
    /// timers, events and statistics. The runtime learns where to dial from
    /// [`Server::poll_dial`] and reports the outcome with
    /// [`Server::handle_dialed`]; from then on it drives the socket as any
    /// other.
    pub fn connect(
        &mut self,
        now: Instant,
        config: OutboundConfig,
        entropy: &mut dyn Entropy,
    ) -> Result<SessionId, Refusal> {
        if self.shutdown_at.is_some() {
            return Err(Refusal::ShuttingDown);
        }
        if self.slots.len() >= self.config.max_connections {
            return Err(Refusal::TooManyConnections(self.config.max_connections));
        }
        let id = self.broker.open_session();
        let span = tracing::info_span!("out", id = %id, target = %config.target);
        let target = config.target.clone();
        let tls = config.tls.clone();
        let outbound = span.in_scope(|| Outbound::new(now, id, config, entropy));
        self.slots.insert(
            id,
            Box::new(Slot {
                conn: Conn::Client(Box::new(outbound)),
                peer: None,
                ip: None,
                transport: Transport::RtmpOut,
                opened: now,
                bytes_in: 0,
                bytes_out: 0,
                rate_in: RateMeter::new(now),
                rate_out: RateMeter::new(now),
                tickets: Vec::new(),
                deadline: None,
                queued: false,
                closed_sent: false,
                span,
            }),
        );
        self.report(ServerEvent::Opened {
            id,
            peer: None,
            transport: Transport::RtmpOut,
        });
        self.dials.push_back(Dial { id, target, tls });
        self.settle(now, id);
        Ok(id)
    }

    /// The next outbound connection to dial, if any.
    #[must_use]
    pub fn poll_dial(&mut self) -> Option<Dial> {
        self.dials.pop_front()
    }

    /// The runtime dialed outbound connection `id`: connected to `peer`,
    /// or failed (the connection then closes with that reason and is
    /// removed like any other).
    pub fn handle_dialed(
        &mut self,
        now: Instant,
        id: SessionId,
        result: Result<SocketAddr, String>,
    ) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let span = slot.span.clone();
        let Conn::Client(out) = &mut slot.conn else {
            return;
        };
        match result {
            Ok(peer) => {
                tracing::info!(parent: &span, %peer, "dialed");
                out.dialed = true;
                slot.peer = Some(peer);
            }
            Err(why) => {
                tracing::info!(parent: &span, why = %why, "dial failed");
                out.dial_failed(now, &why);
            }
        }
        self.mark_ready(id);
        self.settle(now, id);
    }

    /// Statistics of connection `id`, if it is served.
    pub fn connection_stats(&self, now: Instant, id: SessionId) -> Option<ConnectionStats> {
        let slot = self.slots.get(&id)?;
        let (publishes, plays) = self.broker.roles_of(id);
        let (dropped_frames, dropped_bytes) = slot.conn.dropped();
        let s = match &slot.conn {
            Conn::Server(s) => s,
            Conn::Client(c) => {
                return Some(ConnectionStats {
                    peer: slot.peer,
                    transport: slot.transport,
                    app: c.app().map(str::to_owned),
                    connection_id: format!("relay-{id}"),
                    flash_ver: None,
                    role: if publishes > 0 {
                        Role::Publisher
                    } else if plays > 0 {
                        Role::Player
                    } else {
                        Role::Connecting
                    },
                    uptime: now.saturating_duration_since(slot.opened),
                    input: Traffic {
                        bytes: slot.bytes_in,
                        frames: 0,
                    },
                    output: Traffic {
                        bytes: slot.bytes_out,
                        frames: 0,
                    },
                    bitrate_in: slot.rate_in.bits_per_second(now),
                    bitrate_out: slot.rate_out.bits_per_second(now),
                    dropped_frames,
                    dropped_bytes,
                    aborted_messages: 0,
                });
            }
        };
        let role = if !s.is_connected() && s.app().is_none() {
            Role::Connecting
        } else if publishes > 0 {
            Role::Publisher
        } else if plays > 0 {
            Role::Player
        } else {
            Role::Idle
        };
        Some(ConnectionStats {
            peer: slot.peer,
            transport: slot.transport,
            app: s.app().map(str::to_owned),
            connection_id: s.connection_id().to_owned(),
            flash_ver: s.flash_ver().map(str::to_owned),
            role,
            uptime: now.saturating_duration_since(slot.opened),
            input: Traffic {
                bytes: slot.bytes_in,
                frames: s.frames_in(),
            },
            output: Traffic {
                bytes: slot.bytes_out,
                frames: s.frames_out(),
            },
            bitrate_in: slot.rate_in.bits_per_second(now),
            bitrate_out: slot.rate_out.bits_per_second(now),
            dropped_frames,
            dropped_bytes,
            aborted_messages: s.aborted_messages(),
        })
    }

    /// The ids of every connection served, in no particular order.
    pub fn connection_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.keys().copied()
    }

    /// Statistics of stream `name` of App `app`, if it exists.
    pub fn stream_stats(&self, now: Instant, app: &str, name: &str) -> Option<StreamStats> {
        self.broker.stream_stats(now, app, name)
    }

    /// Statistics of every stream.
    pub fn streams_stats(&self, now: Instant) -> impl Iterator<Item = StreamStats> + '_ {
        self.broker.streams_stats(now)
    }

    /// Whether [`Server::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown_at.is_some()
    }

    /// True once shutdown was asked for and every connection is gone: the
    /// runtime may exit.
    pub fn is_drained(&self) -> bool {
        self.shutdown_at.is_some() && self.slots.is_empty()
    }

    /// A new connection from `peer` (if the runtime knows it), or why it is
    /// refused. `entropy` provides its handshake bytes and connection ID.
    pub fn accept(
        &mut self,
        now: Instant,
        peer: Option<SocketAddr>,
        entropy: &mut dyn Entropy,
    ) -> Result<SessionId, Refusal> {
        self.accept_as(now, peer, Transport::Rtmp, entropy)
    }

    /// As [`Server::accept`], for a connection that arrived by `transport`
    /// (an RTMPS listener says so, for statistics and metrics); limits
    /// apply to every transport alike.
    pub fn accept_as(
        &mut self,
        now: Instant,
        peer: Option<SocketAddr>,
        transport: Transport,
        entropy: &mut dyn Entropy,
    ) -> Result<SessionId, Refusal> {
        if self.shutdown_at.is_some() {
            self.totals.refused_shutting_down += 1;
            return Err(Refusal::ShuttingDown);
        }
        if self.slots.len() >= self.config.max_connections {
            self.totals.refused_connection_limit += 1;
            return Err(Refusal::TooManyConnections(self.config.max_connections));
        }
        // An exempt address is not counted at all, so its slot is released
        // by nothing.
        let ip = peer
            .map(|p| p.ip())
            .filter(|ip| !crate::ipnet::IpNet::any_contains(&self.config.per_ip_exempt, *ip));
        if let Some(ip) = ip {
            let n = self.per_ip.get(&ip).copied().unwrap_or(0);
            if n >= self.config.max_connections_per_ip {
                self.totals.refused_per_address_limit += 1;
                return Err(Refusal::TooManyFromAddress(
                    self.config.max_connections_per_ip,
                ));
            }
            self.per_ip.insert(ip, n + 1);
        }
        let id = self.broker.open_session();
        let span = match peer {
            Some(peer) => tracing::info_span!("conn", id = %id, peer = %peer),
            None => tracing::info_span!("conn", id = %id),
        };
        let config = self.config.session.clone();
        let mut session = span.in_scope(|| match transport {
            Transport::Rtws => Session::new_rtws(now, config, entropy),
            _ => Session::new(now, config, entropy),
        });
        if let Some((at, secs)) = self.unix_anchor {
            session.handle_unix_time(now, secs + now.saturating_duration_since(at).as_secs_f64());
        }
        self.slots.insert(
            id,
            Box::new(Slot {
                conn: Conn::Server(session),
                peer,
                ip,
                transport,
                opened: now,
                bytes_in: 0,
                bytes_out: 0,
                rate_in: RateMeter::new(now),
                rate_out: RateMeter::new(now),
                tickets: Vec::new(),
                deadline: None,
                queued: false,
                closed_sent: false,
                span,
            }),
        );
        self.refresh_deadline(id);
        self.report(ServerEvent::Opened {
            id,
            peer,
            transport,
        });
        Ok(id)
    }

    /// Bytes read from connection `id`'s socket. A protocol error closes
    /// the session (which still flushes the status it owes) and is returned
    /// for the runtime's log; the connection stays until it is closed and
    /// drained like any other.
    pub fn handle_input(
        &mut self,
        now: Instant,
        id: SessionId,
        data: &[u8],
    ) -> Result<(), SessionError> {
        let Some(slot) = self.slots.get_mut(&id) else {
            return Ok(());
        };
        slot.bytes_in += data.len() as u64;
        slot.rate_in.add(now, data.len() as u64);
        let result = slot.span.in_scope(|| slot.conn.handle_input(now, data));
        self.mark_ready(id);
        self.settle(now, id);
        result
    }

    /// As [`Server::handle_input`], handing over the bytes: a
    /// [`Transport::Rtws`] connection keeps slices of the WebSocket message
    /// (the payloads it forwards) without copying it.
    pub fn handle_input_bytes(
        &mut self,
        now: Instant,
        id: SessionId,
        data: Bytes,
    ) -> Result<(), SessionError> {
        let Some(slot) = self.slots.get_mut(&id) else {
            return Ok(());
        };
        slot.bytes_in += data.len() as u64;
        slot.rate_in.add(now, data.len() as u64);
        let result = slot
            .span
            .in_scope(|| slot.conn.handle_input_bytes(now, data));
        self.mark_ready(id);
        self.settle(now, id);
        result
    }

    /// Whether connection `id` has input not handled yet (see the module
    /// docs): don't read its socket, give other connections a turn, then
    /// call [`Server::handle_input`] with no bytes to continue.
    pub fn has_pending_input(&self, id: SessionId) -> bool {
        self.slots
            .get(&id)
            .is_some_and(|s| s.conn.has_pending_input())
    }

    /// Connection `id`'s peer closed its side.
    pub fn handle_eof(&mut self, now: Instant, id: SessionId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.span.in_scope(|| slot.conn.handle_eof(now));
        self.mark_ready(id);
        self.settle(now, id);
    }

    /// Deadlines have passed: sessions' timers, the broker's republish
    /// grace, the shutdown deadline. Calling early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            if slot.deadline != Some(at) {
                continue; // moved earlier since this entry was pushed
            }
            slot.deadline = None;
            let next = slot.conn.poll_timeout();
            if next.is_some_and(|next| next > now) {
                // The session's deadline moved later since this entry was
                // pushed: nothing is due yet.
                self.refresh_deadline(id);
                continue;
            }
            slot.span.in_scope(|| slot.conn.handle_timeout(now));
            self.mark_ready(id);
            self.settle(now, id);
        }
        if self.broker.poll_timeout().is_some_and(|d| d <= now) {
            self.broker.handle_timeout(now);
            self.route(now);
        }
        while let Some(&(at, ticket)) = self.ticket_deadlines.first() {
            if at > now {
                break;
            }
            let Ok(pending) = self.take_pending(ticket) else {
                continue;
            };
            let secs = self.config.approvals.deadline.as_secs_f64();
            tracing::info!(session = %pending.id, %ticket, "no decision in time: refused");
            self.refuse(
                now,
                pending,
                Denial::policy(&format!("no decision within {secs} s")),
            );
        }
        if let Some(at) = self.shutdown_at {
            if at <= now && !self.shutdown_done {
                self.shutdown_done = true;
                tracing::info!(
                    connections = self.slots.len(),
                    "shutdown deadline: closing the remaining connections"
                );
                self.close_all(now, "server shutting down");
            }
        }
    }

    /// Closes connection `id` from the server's side with `reason` (sent as
    /// `NetConnection.Connect.Closed` if it is connected).
    pub fn close(&mut self, now: Instant, id: SessionId, reason: &str) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.span.in_scope(|| slot.conn.close(now, reason));
        self.mark_ready(id);
        self.settle(now, id);
    }

    /// Ends the live publish of stream `name` of App `app` (an operator's
    /// API call, a control command): the publisher gets
    /// `NetStream.Publish.Denied` with `description` and keeps its
    /// connection; players wait out the republish grace as after any
    /// unpublish. Returns the publisher, if the stream was live.
    pub fn end_publish(
        &mut self,
        now: Instant,
        app: &str,
        name: &str,
        description: &str,
    ) -> Option<SessionId> {
        let publisher = self.broker.end_publish(now, app, name, description)?;
        self.route(now);
        Some(publisher)
    }

    /// Closes every connection at once with `reason` (an immediate stop):
    /// connected clients still get `NetConnection.Connect.Closed` if the
    /// runtime flushes before it exits.
    pub fn close_all(&mut self, now: Instant, reason: &str) {
        let ids: Vec<SessionId> = self.slots.keys().copied().collect();
        for id in ids {
            self.close(now, id, reason);
        }
    }

    /// Asks client `id` to reconnect, to `tc_url` if given (Enhanced RTMP
    /// v2 `NetConnection.Connect.ReconnectRequest`; see
    /// [`Session::request_reconnect`]). Returns whether it was sent: only
    /// connected clients that announced the capability in `connect` get
    /// it (not outbound connections, which are this server's own clients).
    pub fn request_reconnect(
        &mut self,
        now: Instant,
        id: SessionId,
        tc_url: Option<&str>,
        description: &str,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        let Conn::Server(session) = &mut slot.conn else {
            return false;
        };
        let sent = slot
            .span
            .in_scope(|| session.request_reconnect(now, tc_url, description));
        if sent {
            self.mark_ready(id);
            self.settle(now, id);
        }
        sent
    }

    /// Starts a graceful shutdown: new connections are refused, connected
    /// clients are told `NetConnection.Shutdown.Notify` (those that
    /// announced reconnect support are first asked to reconnect when
    /// [`ServerConfig::shutdown_reconnect_url`] is set), and whoever is left
    /// at `now +` [`ServerConfig::shutdown_deadline`] is closed. Calling it
    /// again changes nothing.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutdown_at.is_some() {
            return;
        }
        let at = now
            .checked_add(self.config.shutdown_deadline)
            .unwrap_or(now);
        self.shutdown_at = Some(at);
        tracing::info!(
            connections = self.slots.len(),
            deadline_secs = self.config.shutdown_deadline.as_secs_f64(),
            "shutting down"
        );
        let ids: Vec<SessionId> = self.slots.keys().copied().collect();
        let reconnect = self.config.shutdown_reconnect_url.clone();
        for id in ids {
            if let Some(url) = reconnect.as_deref() {
                self.request_reconnect(now, id, Some(url), "server shutting down");
            }
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.span.in_scope(|| slot.conn.notify_shutdown(now));
                self.mark_ready(id);
                self.settle(now, id);
            }
        }
        if at <= now {
            self.handle_timeout(now);
        }
    }

    /// The next transmit for connection `id`; call only when its socket can
    /// take it (see the module docs).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, id: SessionId) -> Option<Transmit> {
        let slot = self.slots.get_mut(&id)?;
        let t = slot.conn.poll_transmit(now);
        if let Some(t) = &t {
            slot.bytes_out += t.len() as u64;
            slot.rate_out.add(now, t.len() as u64);
        }
        // Handing out output rarely changes anything the broker or the
        // timer heap must hear about; settling only then keeps the
        // per-transmit cost of fan-out to the session's own work.
        let next = slot.conn.poll_timeout();
        if slot.conn.has_events() || earlier_than_scheduled(slot.deadline, next) {
            self.settle(now, id);
        }
        t
    }

    /// As [`Server::poll_transmit`], into `t` (which must be empty: fully
    /// written), reusing its buffer list so a runtime that keeps one
    /// `Transmit` per connection allocates nothing per write. Returns
    /// whether anything was put in it.
    #[must_use]
    pub fn poll_transmit_into(&mut self, now: Instant, id: SessionId, t: &mut Transmit) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        let filled = slot.conn.poll_transmit_into(now, t);
        if filled {
            slot.bytes_out += t.len() as u64;
            slot.rate_out.add(now, t.len() as u64);
        }
        let next = slot.conn.poll_timeout();
        if slot.conn.has_events() || earlier_than_scheduled(slot.deadline, next) {
            self.settle(now, id);
        }
        filled
    }

    /// The next connection that may have output or may have closed since it
    /// was last named. Each connection is named at most once until it is
    /// polled again.
    #[must_use]
    pub fn poll_ready(&mut self) -> Option<SessionId> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.queued = false;
                return Some(id);
            }
        }
        None
    }

    /// The earliest deadline of any session, the broker or the shutdown. It
    /// may be earlier than needed (a session's deadline moved later); the
    /// wake-up is then harmless.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self.timers.peek().map(|Reverse((at, _))| *at);
        let shutdown = self.shutdown_at.filter(|_| !self.shutdown_done);
        let tickets = self.ticket_deadlines.first().map(|(at, _)| *at);
        [sessions, self.broker.poll_timeout(), shutdown, tickets]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether connection `id` may have more output now. False means the
    /// last transmit took everything it had, so a runtime that just wrote
    /// it need not ask again until the connection is named ready; true is
    /// only a maybe (held or paced output answers true). Unknown ids have
    /// none.
    #[must_use]
    pub fn has_output(&self, id: SessionId) -> bool {
        self.slots.get(&id).is_some_and(|s| s.conn.has_output())
    }

    /// Whether connection `id` is finished: its session closed and handed
    /// out everything it owed (or it is unknown). The runtime finishes
    /// writing its last transmit, then calls [`Server::remove`].
    pub fn is_closed(&self, id: SessionId) -> bool {
        self.slots.get(&id).map_or(true, |s| s.conn.is_closed())
    }

    /// Forgets connection `id` (its socket is gone or done). If the broker
    /// has not yet seen the session close, it is told now, so no publish or
    /// subscription outlives its connection.
    pub fn remove(&mut self, now: Instant, id: SessionId) -> Option<Closed> {
        let slot = self.slots.get_mut(&id)?;
        if !slot.closed_sent {
            slot.span.in_scope(|| slot.conn.handle_eof(now));
            self.settle(now, id);
        }
        let slot = self.slots.remove(&id)?;
        if !self.exclusive.is_empty() {
            self.exclusive.retain(|_, owner| *owner != id);
        }
        for ticket in &slot.tickets {
            if let Some(p) = self.pending.remove(ticket) {
                self.ticket_deadlines.remove(&(p.deadline, *ticket));
            }
        }
        if !slot.closed_sent {
            self.broker.handle_event(now, id, SessionEvent::Closed);
            self.route(now);
        }
        if self.slots.is_empty() {
            // Only stale entries are left: a drained server has no deadline.
            self.timers.clear();
        }
        if let Some(ip) = slot.ip {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        let closed = Closed {
            error: slot.conn.error(),
            dropped_frames: slot.conn.dropped().0,
            dropped_bytes: slot.conn.dropped().1,
        };
        let t = &mut self.totals;
        t.closed_bytes_in += slot.bytes_in;
        t.closed_bytes_out += slot.bytes_out;
        t.closed_dropped_frames += closed.dropped_frames;
        t.closed_dropped_bytes += closed.dropped_bytes;
        t.closed_aborts += slot.conn.aborted();
        match &closed.error {
            Some(SessionError::Handshake(_)) => t.handshake_failures += 1,
            Some(SessionError::ConnectRejected(_)) => t.connects_rejected += 1,
            _ => {}
        }
        self.report(ServerEvent::Closed {
            id,
            error: closed.error.clone(),
            duration: now.saturating_duration_since(slot.opened),
            bytes_in: slot.bytes_in,
            bytes_out: slot.bytes_out,
            dropped_frames: closed.dropped_frames,
            dropped_bytes: closed.dropped_bytes,
        });
        Some(closed)
    }

    fn mark_ready(&mut self, id: SessionId) {
        if let Some(slot) = self.slots.get_mut(&id) {
            if !slot.queued {
                slot.queued = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Hands session `first`'s events to the broker and the broker's output
    /// to its sessions, until nothing moves; every session touched has its
    /// deadline refreshed and is marked ready. Broker output is delivered in
    /// the broker's order, so a player never sees an `UnpublishNotify`
    /// overtake a newer `PublishNotify`.
    fn settle(&mut self, now: Instant, first: SessionId) {
        let mut work = std::mem::take(&mut self.work);
        work.push(first);
        self.run_work(now, &mut work);
        self.work = work;
    }

    /// Broker output with no session of its own to settle first (the
    /// broker's timer, a removed session).
    fn route(&mut self, now: Instant) {
        let mut work = std::mem::take(&mut self.work);
        self.deliver(now, &mut work);
        self.run_work(now, &mut work);
        self.work = work;
        self.take_notices();
    }

    fn run_work(&mut self, now: Instant, work: &mut Vec<SessionId>) {
        while let Some(id) = work.pop() {
            // One lookup per step: fan-out runs this for every player of
            // every frame, and an outbound connection's reports are taken
            // in the same look as its events.
            while let Some(slot) = self.slots.get_mut(&id) {
                if let Some(event) = slot.conn.poll_event() {
                    self.dispatch(now, id, event);
                    // Each event's fan-out reaches its sessions before the
                    // next event is handled, so the broker's queue holds one
                    // event's worth (a frame per player), never frames
                    // times players.
                    self.deliver(now, work);
                    continue;
                }
                let Conn::Client(c) = &mut slot.conn else {
                    break;
                };
                let Some(event) = c.poll_report() else {
                    break;
                };
                self.report(ServerEvent::Outbound { id, event });
            }
            self.refresh_deadline(id);
            self.deliver(now, work);
        }
        self.take_notices();
        self.compact_timers();
    }

    /// One event of session `id`: to the broker, or to the embedder first
    /// when it decides that kind of request.
    fn dispatch(&mut self, now: Instant, id: SessionId, event: SessionEvent) {
        let approvals = self.config.approvals;
        match event {
            SessionEvent::Closed => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.closed_sent = true;
                }
                self.broker.handle_event(now, id, SessionEvent::Closed);
            }
            SessionEvent::Connected(info) => {
                self.exclusive_login(now, id, &info);
                self.report(ServerEvent::Connected {
                    id,
                    info: info.clone(),
                });
                self.broker
                    .handle_event(now, id, SessionEvent::Connected(info));
            }
            SessionEvent::ConnectRequest(info) => {
                let ticket = self.new_ticket();
                let peer = self.slots.get(&id).and_then(|s| s.peer);
                self.forget_ticket(id, None);
                let event = ServerEvent::ConnectRequest {
                    ticket,
                    id,
                    peer,
                    info,
                };
                self.ask(now, id, Asked::Connect, event);
            }
            SessionEvent::Publish {
                stream,
                seq,
                ref name,
                ref query,
                priority,
                ..
            } if approvals.publish == Decider::Embedder => {
                self.forget_ticket(id, Some(stream));
                let request = self.stream_request(id, stream, name, query, priority);
                let ticket = self.new_ticket();
                let peer = self.slots.get(&id).and_then(|s| s.peer);
                let report = ServerEvent::PublishRequest {
                    ticket,
                    id,
                    peer,
                    request: Box::new(request),
                };
                self.ask(now, id, Asked::Publish { stream, seq, event }, report);
            }
            SessionEvent::Play {
                stream,
                ref request,
            } if approvals.play == Decider::Embedder => {
                self.forget_ticket(id, Some(stream));
                let seq = request.seq;
                let asked = self.stream_request(id, stream, &request.name, &request.query, 0);
                let ticket = self.new_ticket();
                let peer = self.slots.get(&id).and_then(|s| s.peer);
                let report = ServerEvent::PlayRequest {
                    ticket,
                    id,
                    peer,
                    request: Box::new(asked),
                };
                self.ask(now, id, Asked::Play { stream, seq, event }, report);
            }
            SessionEvent::Unpublish { stream } | SessionEvent::StopPlay { stream } => {
                // A request withdrawn before its decision: its ticket goes.
                self.forget_ticket(id, Some(stream));
                self.broker.handle_event(now, id, event);
            }
            event => self.broker.handle_event(now, id, event),
        }
    }

    /// TC's `xcl`: one connection at a time for a user in an App; the
    /// older one is closed.
    fn exclusive_login(&mut self, now: Instant, id: SessionId, info: &ConnectInfo) {
        let Some(user) = &info.user else {
            return;
        };
        if !crate::auth::UserProperties::parse(user).exclusive {
            return;
        }
        let key = (info.app.clone(), user.clone());
        if let Some(old) = self.exclusive.insert(key, id) {
            if old != id && self.slots.contains_key(&old) {
                tracing::info!(session = %old, by = %id, "exclusive login: older connection closed");
                self.close(now, old, "another connection logged in as this user");
            }
        }
    }

    fn stream_request(
        &self,
        id: SessionId,
        stream: u32,
        name: &str,
        query: &str,
        priority: u32,
    ) -> StreamRequest {
        let session = self.slots.get(&id).and_then(|s| s.conn.session());
        StreamRequest {
            stream,
            app: session
                .and_then(Session::app)
                .unwrap_or_default()
                .to_owned(),
            name: name.to_owned(),
            query: query.to_owned(),
            priority,
            connection_id: session
                .map(|s| s.connection_id().to_owned())
                .unwrap_or_default(),
            tc_url: session.and_then(|s| s.tc_url().map(str::to_owned)),
            user: session.and_then(|s| s.user().map(str::to_owned)),
        }
    }

    /// The broker's publish and play starts and ends, as events.
    fn take_notices(&mut self) {
        while let Some(notice) = self.broker.poll_notice() {
            let event = match notice {
                Notice::PublishStarted {
                    session,
                    stream,
                    app,
                    name,
                    query,
                } => ServerEvent::PublishStarted {
                    id: session,
                    stream,
                    app,
                    name,
                    query,
                },
                Notice::PublishEnded {
                    session,
                    stream,
                    app,
                    name,
                } => ServerEvent::PublishEnded {
                    id: session,
                    stream,
                    app,
                    name,
                },
                Notice::PlayStarted {
                    session,
                    stream,
                    app,
                    name,
                    query,
                } => ServerEvent::PlayStarted {
                    id: session,
                    stream,
                    app,
                    name,
                    query,
                },
                Notice::MediaChanged { app, name, info } => {
                    ServerEvent::MediaChanged { app, name, info }
                }
                Notice::PlayStopped {
                    session,
                    stream,
                    app,
                    name,
                } => ServerEvent::PlayStopped {
                    id: session,
                    stream,
                    app,
                    name,
                },
            };
            self.report(event);
        }
    }

    fn deliver(&mut self, now: Instant, work: &mut Vec<SessionId>) {
        let mut overflowed = Vec::new();
        loop {
            self.deliver_once(now, work, &mut overflowed);
            if overflowed.is_empty() {
                return;
            }
            // A tap whose never-dropped data outgrew its backlog is closed
            // as a player would be; the broker forgets it.
            for id in overflowed.drain(..) {
                tracing::warn!(tap = %id, "tap not drained: closed");
                self.broker.handle_event(now, id, SessionEvent::Closed);
            }
        }
    }

    /// A broker event for a tap or a source (no session of its own).
    fn deliver_to_participant(
        &mut self,
        now: Instant,
        target: SessionId,
        event: BrokerEvent,
        overflowed: &mut Vec<SessionId>,
    ) -> bool {
        let Some(p) = self.participants.get_mut(&target) else {
            return false;
        };
        match p {
            Participant::Tap(tap) => {
                let kept = match event {
                    BrokerEvent::Frame { frame, .. } => tap.push_frame(now, frame),
                    BrokerEvent::PublishNotify { .. } => tap.push_notice(now, true),
                    BrokerEvent::UnpublishNotify { .. } => tap.push_notice(now, false),
                    BrokerEvent::PlayRejected { reason, .. } => {
                        tap.rejected = Some(reason);
                        true
                    }
                    _ => true,
                };
                if !kept && !tap.closed {
                    tap.closed = true;
                    overflowed.push(target);
                }
                if !tap.queued {
                    tap.queued = true;
                    self.ready_taps.push_back(TapId(target));
                }
            }
            Participant::Source(source) => match event {
                BrokerEvent::PublishAccepted { .. } => source.live = true,
                BrokerEvent::PublishRejected { reason, .. } => source.rejected = Some(reason),
                BrokerEvent::PublishEvicted { .. } => {
                    tracing::info!(source = %target, "source's publish ended by another publisher");
                    source.live = false;
                }
                _ => {}
            },
        }
        true
    }

    fn deliver_once(
        &mut self,
        now: Instant,
        work: &mut Vec<SessionId>,
        overflowed: &mut Vec<SessionId>,
    ) {
        while let Some((target, event)) = self.broker.poll_output() {
            count_rejection(&mut self.totals, &event);
            let Some(slot) = self.slots.get_mut(&target) else {
                if !self.deliver_to_participant(now, target, event, overflowed) {
                    // A target without a slot has just closed; its events
                    // are moot.
                    self.undelivered += 1;
                }
                continue;
            };
            slot.conn.handle_broker_event(now, event);
            // A player whose output the merge window holds is named when
            // its merge timer fires, not once per frame.
            if !slot.queued && !slot.conn.holds_output(now) {
                slot.queued = true;
                self.ready.push_back(target);
            }
            if matches!(slot.conn, Conn::Server(_)) && !slot.conn.has_events() {
                // A player handed a frame raised nothing for the broker:
                // its deadline is settled in this look, not in two more
                // from the work list, once per player per frame.
                schedule(&mut self.timers, target, slot);
            } else if work.last() != Some(&target) {
                // Fan-out sends runs of events to one session: settle it
                // once.
                work.push(target);
            }
        }
    }

    /// Pushes the session's next deadline when it is earlier than the one
    /// already on the heap. A later one waits for that entry: it fires
    /// early (which is harmless) and the session's real deadline is pushed
    /// then. Fan-out moves every player's deadline twice per frame (a
    /// frame queued, then written), so pushing every move cost two heap
    /// pushes per player per frame.
    fn refresh_deadline(&mut self, id: SessionId) {
        if let Some(slot) = self.slots.get_mut(&id) {
            schedule(&mut self.timers, id, slot);
        }
    }

    /// Rebuilds the timer heap once stale entries outnumber live ones, so
    /// it stays proportional to the connections.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.slots.len() + 1024 {
            return;
        }
        self.timers = self
            .slots
            .iter()
            .filter_map(|(id, s)| s.deadline.map(|d| Reverse((d, *id))))
            .collect();
    }
}

/// [`Server::refresh_deadline`] for a slot already in hand: pushes its
/// session's next deadline when it comes before the one on the heap.
fn schedule(
    timers: &mut BinaryHeap<Reverse<(Instant, SessionId)>>,
    id: SessionId,
    slot: &mut Slot,
) {
    let d = slot.conn.poll_timeout();
    if earlier_than_scheduled(slot.deadline, d) {
        slot.deadline = d;
        if let Some(d) = d {
            timers.push(Reverse((d, id)));
        }
    }
}

/// Whether a session whose heap entry is at `scheduled` must push `next`:
/// only when `next` comes first, as an entry that fires early only makes
/// the session check its timers.
fn earlier_than_scheduled(scheduled: Option<Instant>, next: Option<Instant>) -> bool {
    match (scheduled, next) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(s), Some(n)) => n < s,
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
