//! The whole server machine ([`Server`]): N connections fed arbitrary
//! bytes, hang-ups, socket errors, slow or absent writers, timer events,
//! a graceful shutdown, and the embedder's decisions on connect, publish
//! and play tickets (answered, refused, answered twice, or left to time
//! out).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tincan_core::broker::BrokerConfig;
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::{Denial, SessionId};
use tincan_core::server::{
    Approvals, Decider, Server, ServerConfig, ServerEvent, Ticket, TicketError,
};

use crate::script::Script;
use crate::session::{check_session_memory, config as session_config};

/// Most connections the fuzzed server accepts.
pub const MAX_CONNECTIONS: usize = 6;
/// Most connections per address.
pub const MAX_CONNECTIONS_PER_IP: usize = 3;

/// Operation codes of the [`server`] script (the byte is taken modulo 16;
/// 15 is a [`op::TURN`] too). `c` is a connection index byte (among every
/// id accepted so far, removed ones included); `t` is a ticket index byte
/// among every ticket seen in an event so far, counted from the newest
/// (0: the last one seen), answered and timed-out ones included.
pub mod op {
    /// + address byte (0..=3, or 255 for an unknown peer): a connection
    ///   arrives.
    pub const ACCEPT: u8 = 0;
    /// c run: bytes arrive on a connection.
    pub const INPUT: u8 = 1;
    /// c u8: the connection's socket takes that many transmits (0: until
    /// none is left).
    pub const DRAIN: u8 = 2;
    /// u16: milliseconds pass.
    pub const ADVANCE: u8 = 3;
    /// Time jumps to the server's next deadline.
    pub const DEADLINE: u8 = 4;
    /// c: the peer hangs up.
    pub const EOF: u8 = 5;
    /// c: a socket error: the runtime removes the connection at once.
    pub const REMOVE: u8 = 6;
    /// c: the server closes the connection.
    pub const CLOSE: u8 = 7;
    /// Graceful shutdown starts.
    pub const SHUTDOWN: u8 = 8;
    /// A runtime turn: every ready connection is written to until it has
    /// nothing left, and removed once closed.
    pub const TURN: u8 = 9;
    /// + mask byte: as the script's first operation, the embedder decides
    ///   connect (bit 0), publish (bit 1) and play (bit 2) by ticket, and
    ///   with bit 3 the event queue holds only
    ///   [`SMALL_EVENT_QUEUE`](super::SMALL_EVENT_QUEUE) bytes of events. Anywhere
    ///   else it does nothing.
    pub const APPROVALS: u8 = 10;
    /// The embedder drains `poll_event`, noting every ticket.
    pub const EVENTS: u8 = 11;
    /// t: the embedder approves that ticket.
    pub const APPROVE: u8 = 12;
    /// t kind: the embedder refuses that ticket (kind % 3: policy, bad
    ///   name, not found).
    pub const DENY: u8 = 13;
    /// Time passes the decision deadline: every ticket seen until now must
    /// have been answered or timed out.
    pub const DECISION_TIMEOUT: u8 = 14;
}

/// How long the fuzzed embedder has for a decision.
pub const DECISION_DEADLINE: Duration = Duration::from_secs(3);
/// The event queue bound under [`op::APPROVALS`] bit 3: small enough that
/// an embedder that does not drain makes the server refuse ("server
/// busy").
pub const SMALL_EVENT_QUEUE: usize = 8 * 1024;

/// The fuzzed server's configuration; [`op::APPROVALS`] changes its
/// `approvals` and `max_queued_event_bytes`.
fn server_config() -> ServerConfig {
    ServerConfig {
        session: session_config(),
        broker: BrokerConfig {
            republish_grace: Duration::from_secs(1),
            fast_start_max_bytes: 256 * 1024,
            max_streams: 8,
            ..BrokerConfig::default()
        },
        max_connections: MAX_CONNECTIONS,
        max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
        shutdown_deadline: Duration::from_secs(2),
        approvals: Approvals {
            deadline: DECISION_DEADLINE,
            ..Approvals::default()
        },
        ..ServerConfig::default()
    }
}

/// The configuration an [`op::APPROVALS`] mask byte selects.
fn approvals_config(mask: u8) -> ServerConfig {
    let decider = |bit: u8| {
        if mask & bit != 0 {
            Decider::Embedder
        } else {
            Decider::Local
        }
    };
    let mut config = server_config();
    config.approvals.connect = decider(1);
    config.approvals.publish = decider(2);
    config.approvals.play = decider(4);
    if mask & 8 != 0 {
        config.max_queued_event_bytes = SMALL_EVENT_QUEUE;
    }
    config
}

/// What a [`server_run`] reached, so tests can check that seeds get to
/// the decision paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerRun {
    /// Connect, publish and play tickets seen in events.
    pub connect_tickets: usize,
    /// Publish tickets seen.
    pub publish_tickets: usize,
    /// Play tickets seen.
    pub play_tickets: usize,
    /// Answers the server took.
    pub answered: usize,
    /// Answers refused as stale (answered before, timed out, or gone).
    pub stale: usize,
    /// Tickets the decision deadline expired.
    pub expired: usize,
}

/// A ticket the fuzzed embedder saw.
#[derive(Debug, Clone, Copy)]
struct Seen {
    ticket: Ticket,
    id: SessionId,
    /// When it was drained; it was issued at or before.
    at: Instant,
    /// Answered (successfully or not) or found expired: any answer now
    /// must be stale.
    done: bool,
}

/// The entropy seed of the fuzzed server: connection IDs depend only on
/// it and the order of accepts, so seeds can address connections by ID
/// (TC `relay`, `watch`).
const ENTROPY_SEED: u64 = 11;

/// The connection IDs the first `n` accepted connections of a [`server`]
/// run get, for writing seeds that relay to or watch them.
pub fn connection_ids(n: usize) -> Vec<String> {
    let now = Instant::now();
    let mut server = Server::new(server_config());
    let mut entropy = SeededEntropy::new(ENTROPY_SEED);
    let mut ids = Vec::new();
    for _ in 0..n {
        if let Ok(id) = server.accept(now, None, &mut entropy) {
            ids.extend(server.session(id).map(|s| s.connection_id().to_owned()));
        }
    }
    ids
}

/// Server: arbitrary operations never panic; after every step the broker's
/// bookkeeping agrees with itself (no subscriber of a removed connection,
/// one publisher per name), every session's memory is within its bounds,
/// the connection limits hold, `poll_ready` names each connection at most
/// once per turn, and a drained shutdown leaves nothing behind. With the
/// embedder deciding: tickets are never reused, each is answered
/// successfully at most once (again, or after its connection was removed
/// or its deadline passed, it is [`TicketError::Stale`]), pending
/// decisions stay within one per message stream of each connection, and
/// one drain of the event queue yields at most its bound.
pub fn server(data: &[u8]) {
    server_run(data);
}

/// [`server`], saying what the run reached.
pub fn server_run(data: &[u8]) -> ServerRun {
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let mut config = server_config();
    if data.first().is_some_and(|b| b % 16 == op::APPROVALS) {
        let _ = s.op();
        config = approvals_config(s.u8());
    }
    // A connect ticket is pending only before the connection has message
    // streams; after it, at most one publish or play per message stream.
    let max_pending_per_connection = config.session.max_streams.max(1) as usize;
    // Every queued event takes at least its own size of the byte bound.
    let max_queued_events =
        config.max_queued_event_bytes / std::mem::size_of::<tincan_core::server::ServerEvent>();
    let deadline = config.approvals.deadline;
    let mut server = Server::new(config);
    let mut entropy = SeededEntropy::new(ENTROPY_SEED);
    let mut ids: Vec<SessionId> = Vec::new();
    let mut removed: BTreeSet<SessionId> = BTreeSet::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut run = ServerRun::default();
    while let Some(code) = s.op() {
        let conn = |s: &mut Script<'_>| -> Option<SessionId> {
            let b = s.u8();
            (!ids.is_empty()).then(|| ids[usize::from(b) % ids.len()])
        };
        let ticket = |s: &mut Script<'_>| -> Option<usize> {
            let b = usize::from(s.u8());
            (!seen.is_empty()).then(|| seen.len() - 1 - b % seen.len())
        };
        match code % 16 {
            op::ACCEPT => {
                let b = s.u8();
                let peer = (b != 255)
                    .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, b % 4)), 50_000));
                let before = server.connection_count();
                match server.accept(now, peer, &mut entropy) {
                    Ok(id) => {
                        assert!(!ids.contains(&id), "id {id} handed out twice");
                        assert!(before < MAX_CONNECTIONS);
                        ids.push(id);
                    }
                    Err(_) => assert_eq!(server.connection_count(), before),
                }
            }
            op::INPUT => {
                if let Some(id) = conn(&mut s) {
                    let bytes = s.run();
                    let _ = server.handle_input(now, id, bytes);
                }
            }
            op::DRAIN => {
                if let Some(id) = conn(&mut s) {
                    let n = s.u8();
                    let mut taken = 0usize;
                    while n == 0 || taken < usize::from(n) {
                        if server.poll_transmit(now, id).is_none() {
                            break;
                        }
                        taken += 1;
                        assert!(taken < 1_000_000, "poll_transmit never runs dry");
                    }
                }
            }
            op::ADVANCE => {
                now += Duration::from_millis(u64::from(s.u16()));
                server.handle_timeout(now);
            }
            op::DEADLINE => {
                if let Some(deadline) = server.poll_timeout() {
                    now = now.max(deadline);
                }
                server.handle_timeout(now);
            }
            op::EOF => {
                if let Some(id) = conn(&mut s) {
                    server.handle_eof(now, id);
                }
            }
            op::REMOVE => {
                if let Some(id) = conn(&mut s) {
                    let was = server.session(id).is_some();
                    assert_eq!(server.remove(now, id).is_some(), was);
                    assert!(server.session(id).is_none());
                    removed.insert(id);
                }
            }
            op::CLOSE => {
                if let Some(id) = conn(&mut s) {
                    server.close(now, id, "fuzz");
                }
            }
            op::SHUTDOWN => server.shutdown(now),
            op::APPROVALS => {
                // Only as the first operation, handled above.
                let _ = s.u8();
            }
            op::EVENTS => {
                let mut drained = 0usize;
                let mut known: BTreeSet<Ticket> = seen.iter().map(|t| t.ticket).collect();
                while let Some(event) = server.poll_event() {
                    drained += 1;
                    let (ticket, id) = match event {
                        ServerEvent::ConnectRequest { ticket, id, .. } => {
                            run.connect_tickets += 1;
                            (ticket, id)
                        }
                        ServerEvent::PublishRequest { ticket, id, .. } => {
                            run.publish_tickets += 1;
                            (ticket, id)
                        }
                        ServerEvent::PlayRequest { ticket, id, .. } => {
                            run.play_tickets += 1;
                            (ticket, id)
                        }
                        _ => continue,
                    };
                    assert!(known.insert(ticket), "ticket {ticket} handed out twice");
                    assert!(
                        ids.contains(&id),
                        "ticket {ticket} for {id}, never accepted"
                    );
                    seen.push(Seen {
                        ticket,
                        id,
                        at: now,
                        done: false,
                    });
                }
                assert!(
                    drained <= max_queued_events,
                    "{drained} events queued, bound {max_queued_events}"
                );
            }
            op::APPROVE | op::DENY => {
                let deny = code % 16 == op::DENY;
                let picked = ticket(&mut s);
                let kind = if deny { s.u8() % 3 } else { 0 };
                if let Some(i) = picked {
                    let t = seen[i];
                    let result = if deny {
                        let denial = match kind {
                            0 => Denial::policy("fuzz says no"),
                            1 => Denial::bad_name("fuzz dislikes the name"),
                            _ => Denial::not_found("fuzz cannot find it"),
                        };
                        server.deny(now, t.ticket, denial)
                    } else {
                        server.approve(now, t.ticket)
                    };
                    // Time only moves with a `handle_timeout` at the new
                    // time, so a ticket drained a deadline ago has expired.
                    let must_be_stale = t.done || removed.contains(&t.id) || t.at + deadline < now;
                    match result {
                        Ok(()) => {
                            assert!(
                                !must_be_stale,
                                "ticket {} answered again, after its deadline or \
                                 after its connection was removed",
                                t.ticket
                            );
                            run.answered += 1;
                        }
                        Err(TicketError::Stale(stale)) => {
                            assert_eq!(stale, t.ticket);
                            run.stale += 1;
                        }
                        Err(e) => panic!("answering {}: {e}", t.ticket),
                    }
                    seen[i].done = true;
                }
            }
            op::DECISION_TIMEOUT => {
                now += deadline + Duration::from_millis(1);
                server.handle_timeout(now);
                // Every ticket seen so far was issued a deadline ago: it
                // was answered or has been refused by the server.
                let mut expired: BTreeMap<Ticket, SessionId> = BTreeMap::new();
                for t in seen.iter_mut().filter(|t| !t.done) {
                    expired.insert(t.ticket, t.id);
                    t.done = true;
                }
                for (ticket, id) in expired {
                    assert_eq!(
                        server.approve(now, ticket),
                        Err(TicketError::Stale(ticket)),
                        "ticket {ticket} of {id} outlived its decision deadline"
                    );
                    run.expired += 1;
                }
            }
            _ => {
                let mut named = BTreeSet::new();
                while let Some(id) = server.poll_ready() {
                    assert!(named.insert(id), "{id} named twice in one turn");
                    assert!(!removed.contains(&id), "removed {id} named ready");
                    let mut taken = 0usize;
                    while server.poll_transmit(now, id).is_some() {
                        taken += 1;
                        assert!(taken < 1_000_000, "poll_transmit never runs dry");
                    }
                    if server.is_closed(id) {
                        assert!(server.remove(now, id).is_some());
                        removed.insert(id);
                    }
                }
            }
        }
        if let Err(e) = server.broker().check_invariants() {
            panic!("broker bookkeeping: {e}");
        }
        assert!(server.connection_count() <= MAX_CONNECTIONS);
        assert!(server.broker().session_count() <= server.connection_count());
        for &id in &ids {
            if let Some(session) = server.session(id) {
                assert!(!removed.contains(&id));
                check_session_memory(session);
            }
        }
        if server.is_drained() {
            assert_eq!(
                server.broker().stream_count(),
                0,
                "streams outlive the server"
            );
        }
        assert!(
            server.pending_decisions() <= server.connection_count() * max_pending_per_connection,
            "{} decisions pending for {} connections",
            server.pending_decisions(),
            server.connection_count()
        );
    }
    run
}
