//! The whole server machine ([`Server`]): N connections fed arbitrary
//! bytes, hang-ups, socket errors, slow or absent writers, timer events
//! and a graceful shutdown.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tincan_core::broker::BrokerConfig;
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};

use crate::script::Script;
use crate::session::{check_session_memory, config as session_config};

/// Most connections the fuzzed server accepts.
pub const MAX_CONNECTIONS: usize = 6;
/// Most connections per address.
pub const MAX_CONNECTIONS_PER_IP: usize = 3;

/// Operation codes of the [`server`] script (the byte is taken modulo 10).
/// `c` is a connection index byte (among every id accepted so far,
/// removed ones included).
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
}

/// The fuzzed server's configuration.
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
        ..ServerConfig::default()
    }
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
/// once per turn, and a drained shutdown leaves nothing behind.
pub fn server(data: &[u8]) {
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let mut server = Server::new(server_config());
    let mut entropy = SeededEntropy::new(ENTROPY_SEED);
    let mut ids: Vec<SessionId> = Vec::new();
    let mut removed: BTreeSet<SessionId> = BTreeSet::new();
    while let Some(code) = s.op() {
        let conn = |s: &mut Script<'_>| -> Option<SessionId> {
            let b = s.u8();
            (!ids.is_empty()).then(|| ids[usize::from(b) % ids.len()])
        };
        match code % 10 {
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
    }
}
