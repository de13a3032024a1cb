//! TC messaging between connections: `relay` to one connection ID (in any
//! App), `broadcast` to every member of the sender's App (itself included),
//! and `watch`, which tells a session when another connection disconnects.
//!
//! Bodies arrive already encoded by the sender's session and are handed to
//! each recipient by reference count, so a broadcast to a large App costs
//! one encode and a pointer per member.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use tracing::debug;

use super::Broker;
use crate::event::{BrokerEvent, SessionId};

/// Most connections one session may watch at once; further `watch`es are
/// ignored (logged), so a client cannot grow the broker's maps without end.
pub(super) const MAX_WATCHES_PER_SESSION: usize = 1024;

/// Who watches whom, both ways, so either side closing is cheap.
#[derive(Debug, Default)]
pub(super) struct Watches {
    /// Watched session -> its watchers.
    pub(super) watchers: HashMap<SessionId, BTreeSet<SessionId>>,
    /// Watcher -> the sessions it watches.
    pub(super) watching: HashMap<SessionId, BTreeSet<SessionId>>,
}

impl Watches {
    /// Sessions `watcher` watches right now.
    pub(super) fn count(&self, watcher: SessionId) -> usize {
        self.watching.get(&watcher).map_or(0, BTreeSet::len)
    }
}

impl Broker {
    /// `relay`: `body` to the connection with ID `target`, if connected.
    pub(super) fn relay(&mut self, from: SessionId, target: &str, body: Bytes) {
        match self.connections.get(target) {
            Some(&to) => self.output.push_back((to, BrokerEvent::Relay { body })),
            None => debug!(session = %from, "relay to a connection ID not connected, dropped"),
        }
    }

    /// `broadcast`: `body` to every member of `from`'s App, `from` included.
    pub(super) fn broadcast(&mut self, from: SessionId, body: Bytes) {
        let Some(app) = self.sessions.get(&from).map(|s| s.app) else {
            return;
        };
        let Some(app) = self.apps.get(&app) else {
            return;
        };
        for &to in &app.members {
            self.output
                .push_back((to, BrokerEvent::Relay { body: body.clone() }));
        }
    }

    /// `watch`: `onDisconnected` for `target` when it goes, or now if it is
    /// not connected.
    pub(super) fn watch(&mut self, watcher: SessionId, target: String) {
        let Some(&watched) = self.connections.get(&target) else {
            self.output.push_back((
                watcher,
                BrokerEvent::Disconnected {
                    connection_id: target,
                },
            ));
            return;
        };
        let w = &mut self.watches;
        if w.watching
            .get(&watcher)
            .is_some_and(|t| t.contains(&watched))
        {
            return;
        }
        if w.count(watcher) >= MAX_WATCHES_PER_SESSION {
            debug!(
                session = %watcher,
                max = MAX_WATCHES_PER_SESSION,
                "too many watches, watch ignored"
            );
            return;
        }
        w.watching.entry(watcher).or_default().insert(watched);
        w.watchers.entry(watched).or_default().insert(watcher);
    }

    /// Session `id` (connection ID `connection_id`) closed: its watchers
    /// are told, and its own watches are forgotten.
    pub(super) fn forget_watches(&mut self, id: SessionId, connection_id: &str) {
        let w = &mut self.watches;
        if let Some(targets) = w.watching.remove(&id) {
            for t in targets {
                if let Some(set) = w.watchers.get_mut(&t) {
                    set.remove(&id);
                    if set.is_empty() {
                        w.watchers.remove(&t);
                    }
                }
            }
        }
        let Some(watchers) = w.watchers.remove(&id) else {
            return;
        };
        for watcher in watchers {
            if let Some(set) = w.watching.get_mut(&watcher) {
                set.remove(&id);
                if set.is_empty() {
                    w.watching.remove(&watcher);
                }
            }
            self.output.push_back((
                watcher,
                BrokerEvent::Disconnected {
                    connection_id: connection_id.to_owned(),
                },
            ));
        }
    }
}
