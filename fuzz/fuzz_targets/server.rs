//! Two sessions and a broker wired as a runtime wires them: arbitrary bytes
//! (after a valid simple handshake, so the fuzzer spends its time on the
//! chunk stream and the command dialogue) and arbitrary time steps never
//! panic, `Closed` reaches the broker at most once per session, and nothing
//! a peer sends makes the sessions' queued output grow without bound.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tincan_core::broker::{Broker, BrokerConfig};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::{SessionEvent, SessionId};
use tincan_core::session::{Session, SessionConfig};

#[derive(Arbitrary, Debug)]
enum Op {
    /// Bytes from peer 0 or 1.
    Input { peer: bool, bytes: Vec<u8> },
    /// Let a peer's socket take one transmit (or not, to model a slow peer).
    Drain { peer: bool },
    /// Time passes, in milliseconds.
    Advance(u16),
    /// The peer hangs up.
    Eof { peer: bool },
}

struct Peer {
    id: SessionId,
    session: Session,
    closed_events: usize,
}

fuzz_target!(|ops: Vec<Op>| {
    let start = Instant::now();
    let mut now = start;
    let mut entropy = SeededEntropy::new(7);
    let mut broker = Broker::new(BrokerConfig::default());
    let mut peers: Vec<Peer> = (0..2)
        .map(|_| {
            let id = broker.open_session();
            let mut session = Session::new(now, SessionConfig::default(), &mut entropy);
            // C0 + C1 + C2 of a simple handshake.
            let mut hello = vec![3u8];
            hello.resize(1 + 2 * 1536, 0);
            let _ = session.handle_input(now, &hello);
            Peer { id, session, closed_events: 0 }
        })
        .collect();
    for op in ops {
        match op {
            Op::Input { peer, bytes } => {
                let _ = peers[usize::from(peer)].session.handle_input(now, &bytes);
            }
            Op::Drain { peer } => {
                let _ = peers[usize::from(peer)].session.poll_transmit(now);
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                for p in &mut peers {
                    p.session.handle_timeout(now);
                }
                broker.handle_timeout(now);
            }
            Op::Eof { peer } => peers[usize::from(peer)].session.handle_eof(now),
        }
        // Route events both ways until quiet, as a runtime does.
        loop {
            let mut moved = false;
            for p in &mut peers {
                while let Some(ev) = p.session.poll_event() {
                    moved = true;
                    if ev == SessionEvent::Closed {
                        p.closed_events += 1;
                        assert_eq!(p.closed_events, 1, "Closed is emitted once");
                    }
                    broker.handle_event(now, p.id, ev);
                }
            }
            while let Some((to, ev)) = broker.poll_output() {
                moved = true;
                if let Some(p) = peers.iter_mut().find(|p| p.id == to) {
                    p.session.handle_broker_event(now, ev);
                }
            }
            if !moved {
                break;
            }
        }
        for p in &peers {
            assert!(
                p.session.backlog_bytes() <= 64 * 1024 * 1024,
                "a player's backlog stays bounded"
            );
        }
    }
});
