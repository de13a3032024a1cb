//! What the API and metrics need that neither the statistics getters nor
//! the core's totals hold: closes by reason, bytes and drops that must
//! survive a connection's close (Prometheus counters only go up), and
//! which streams each connection publishes and plays. Kept by
//! consuming the adapter's event stream, the one place the binary hears
//! about connections that are gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tincan_core::event::SessionId;
use tincan_core::server::{ServerEvent, Transport};
use tincan_core::session::SessionError;
use tincan_core::stats::ConnectionStats;

/// Every transport, in the order metrics list them.
pub(super) const TRANSPORTS: [Transport; 6] = [
    Transport::Rtmp,
    Transport::RtmpOut,
    Transport::Tap,
    Transport::Source,
    Transport::Rtmps,
    Transport::Rtws,
];

/// The counters a connection contributes to the server's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) dropped_frames: u64,
    pub(super) dropped_bytes: u64,
}

impl Counts {
    fn of(stats: &ConnectionStats) -> Self {
        Counts {
            bytes_in: stats.input.bytes,
            bytes_out: stats.output.bytes,
            dropped_frames: stats.dropped_frames,
            dropped_bytes: stats.dropped_bytes,
        }
    }

    fn add(&mut self, other: Counts) {
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.dropped_frames = self.dropped_frames.saturating_add(other.dropped_frames);
        self.dropped_bytes = self.dropped_bytes.saturating_add(other.dropped_bytes);
    }

    /// Field by field the larger: counters of one connection only grow,
    /// so the larger reading is the later one.
    fn max(self, other: Counts) -> Counts {
        Counts {
            bytes_in: self.bytes_in.max(other.bytes_in),
            bytes_out: self.bytes_out.max(other.bytes_out),
            dropped_frames: self.dropped_frames.max(other.dropped_frames),
            dropped_bytes: self.dropped_bytes.max(other.dropped_bytes),
        }
    }
}

/// A stream a connection publishes or plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamRef {
    /// The message stream id it uses on its connection.
    pub(super) stream: u32,
    pub(super) app: String,
    /// The name as the client spelled it (a player's `asis:` or `sha256:`
    /// prefixes included).
    pub(super) name: String,
}

/// A connection the events said is open.
#[derive(Debug, Clone)]
pub(super) struct Open {
    /// Its counters at the last scrape, so a connection whose `Closed`
    /// has not been read yet still counts what it had.
    last: Counts,
    pub(super) publishing: Vec<StreamRef>,
    pub(super) playing: Vec<StreamRef>,
}

/// Totals since the process started that the core's own
/// (`Handle::totals`) do not split the way metrics need.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// What closed connections carried.
    pub(super) closed: Counts,
    /// Closed connections by why they closed (see [`close_reason`]).
    pub(super) closes: BTreeMap<&'static str, u64>,
}

/// The tracker's state, under one short lock.
#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) totals: Totals,
    pub(super) open: HashMap<SessionId, Open>,
    /// The largest count of RTMP Aborts reported so far.
    aborts: u64,
}

impl Inner {
    fn apply(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Opened { id, .. } => {
                self.open.insert(
                    id,
                    Open {
                        last: Counts::default(),
                        publishing: Vec::new(),
                        playing: Vec::new(),
                    },
                );
            }
            ServerEvent::Closed {
                id,
                error,
                bytes_in,
                bytes_out,
                dropped_frames,
                dropped_bytes,
                ..
            } => {
                let last = self.open.remove(&id).map(|o| o.last).unwrap_or_default();
                let fin = Counts {
                    bytes_in,
                    bytes_out,
                    dropped_frames,
                    dropped_bytes,
                };
                self.totals.closed.add(fin.max(last));
                *self
                    .totals
                    .closes
                    .entry(close_reason(error.as_ref()))
                    .or_default() += 1;
            }
            ServerEvent::PublishStarted {
                id,
                stream,
                app,
                name,
                ..
            } => {
                if let Some(o) = self.open.get_mut(&id) {
                    o.publishing.push(StreamRef { stream, app, name });
                }
            }
            ServerEvent::PublishEnded { id, stream, .. } => {
                if let Some(o) = self.open.get_mut(&id) {
                    o.publishing.retain(|s| s.stream != stream);
                }
            }
            ServerEvent::PlayStarted {
                id,
                stream,
                app,
                name,
                ..
            } => {
                if let Some(o) = self.open.get_mut(&id) {
                    o.playing.push(StreamRef { stream, app, name });
                }
            }
            ServerEvent::PlayStopped { id, stream, .. } => {
                if let Some(o) = self.open.get_mut(&id) {
                    o.playing.retain(|s| s.stream != stream);
                }
            }
            _ => {}
        }
    }

    /// The server's totals of bytes and drops, given a snapshot of the
    /// live connections: what closed connections carried, plus each open
    /// connection's latest counters. Monotonic: a connection counts with
    /// its largest reading until its `Closed` moves it (with its final,
    /// never smaller, counters) into the closed total.
    pub(super) fn traffic(&mut self, live: &[(SessionId, ConnectionStats)]) -> Counts {
        for (id, stats) in live {
            if let Some(o) = self.open.get_mut(id) {
                o.last = o.last.max(Counts::of(stats));
            }
        }
        let mut total = self.totals.closed;
        for o in self.open.values() {
            total.add(o.last);
        }
        total
    }

    /// RTMP Aborts sent in total: `closed` (the core's count for closed
    /// connections, read **before** `live`) plus each live connection's
    /// count. A connection that closed between the two reads is in
    /// neither, so the sum may fall short for a scrape but never exceeds
    /// the truth; the largest sum reported so far is kept, so the counter
    /// never goes down and is exact again at the next scrape.
    pub(super) fn aborts(&mut self, closed: u64, live: &[(SessionId, ConnectionStats)]) -> u64 {
        let now = live
            .iter()
            .fold(closed, |n, (_, s)| n.saturating_add(s.aborted_messages));
        self.aborts = self.aborts.max(now);
        self.aborts
    }

    /// The open connections playing stream `name` of `app` (by any of the
    /// spellings a player may use).
    pub(super) fn players_of(&self, app: &str, name: &str) -> Vec<SessionId> {
        let key = name_key(name);
        let mut ids: Vec<SessionId> = self
            .open
            .iter()
            .filter(|(_, o)| {
                o.playing
                    .iter()
                    .any(|s| s.app == app && play_key(&s.name).as_deref() == Some(key.as_str()))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// A metrics label for why a connection closed: one word per
/// [`SessionError`] variant, so the label set is fixed and small.
pub(super) fn close_reason(error: Option<&SessionError>) -> &'static str {
    match error {
        None => "socket_error",
        Some(SessionError::Handshake(_)) => "handshake",
        Some(SessionError::Chunk(_)) => "chunk_stream",
        Some(SessionError::Message(_)) => "message",
        Some(SessionError::ConnectRejected(_)) => "connect_rejected",
        Some(SessionError::Protocol(_)) => "protocol",
        Some(SessionError::ConnectTimeout(_)) => "connect_timeout",
        Some(SessionError::PublisherIdle(_)) => "publisher_idle",
        Some(SessionError::PeerDead(_)) => "peer_dead",
        Some(SessionError::PeerClosed) => "peer_closed",
        Some(SessionError::ClosedByServer(_)) => "closed_by_server",
        Some(SessionError::SlowPeer(_)) => "slow_peer",
        Some(SessionError::Outbound(_)) => "outbound",
        Some(SessionError::Flood(_)) => "flood",
        // A reason a newer core adds, until it gets its own label.
        Some(_) => "other",
    }
}

/// Every [`close_reason`] label, so each series exists from the start
/// (a counter that appears only at its first increment hides that first
/// increment from `rate()`).
pub(super) const CLOSE_REASONS: [&str; 15] = [
    "socket_error",
    "handshake",
    "chunk_stream",
    "message",
    "connect_rejected",
    "protocol",
    "connect_timeout",
    "publisher_idle",
    "peer_dead",
    "peer_closed",
    "closed_by_server",
    "slow_peer",
    "outbound",
    "flood",
    "other",
];

/// The broker's identity of a plain stream name: the lower-case hex
/// SHA-256 of the name (players may ask for `sha256:<hex>`).
fn name_key(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The identity a play name asks for: `NAME`, `asis:NAME`,
/// `sha256:<hex>` or `asis:sha256:<hex>`, as the broker reads them.
fn play_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix("asis:").unwrap_or(name);
    match rest.strip_prefix("sha256:") {
        Some(hex) => Some(hex.to_owned()),
        None => Some(name_key(rest)),
    }
}

/// The tracker shared by the event task and the routes.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sink of the binary's event consumer that applies every event to
/// `tracker`.
pub(super) fn sink(tracker: Arc<Tracker>) -> crate::events::Sink {
    Box::new(move |event| tracker.lock().apply(event.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tincan_core::stats::{Role, Traffic};

    fn stats(bytes_in: u64) -> ConnectionStats {
        ConnectionStats {
            peer: None,
            transport: Transport::Rtmp,
            app: None,
            connection_id: String::new(),
            flash_ver: None,
            role: Role::Idle,
            uptime: Duration::ZERO,
            input: Traffic {
                bytes: bytes_in,
                frames: 0,
            },
            output: Traffic::default(),
            bitrate_in: 0,
            bitrate_out: 0,
            dropped_frames: 0,
            dropped_bytes: 0,
            aborted_messages: 0,
        }
    }

    #[test]
    fn totals_never_go_down_while_a_close_is_in_flight() {
        let mut t = Inner::default();
        let id = SessionId(1);
        t.apply(ServerEvent::Opened {
            id,
            peer: None,
            transport: Transport::Rtmp,
        });
        assert_eq!(t.traffic(&[(id, stats(100))]).bytes_in, 100);
        // Gone from the statistics, its Closed not read yet: still counted.
        assert_eq!(t.traffic(&[]).bytes_in, 100);
        t.apply(ServerEvent::Closed {
            id,
            error: None,
            duration: Duration::ZERO,
            bytes_in: 150,
            bytes_out: 0,
            dropped_frames: 0,
            dropped_bytes: 0,
        });
        assert_eq!(t.traffic(&[]).bytes_in, 150);
        assert_eq!(t.totals.closes.get("socket_error"), Some(&1));
    }

    #[test]
    fn aborts_add_closed_and_live_and_never_go_down() {
        let mut t = Inner::default();
        let with_aborts = |n| ConnectionStats {
            aborted_messages: n,
            ..stats(0)
        };
        let (a, b) = (SessionId(1), SessionId(2));
        assert_eq!(t.aborts(0, &[(a, with_aborts(2)), (b, with_aborts(3))]), 5);
        // b closed between the two reads: in neither, the count holds.
        assert_eq!(t.aborts(0, &[(a, with_aborts(2))]), 5);
        // Read again: b is in the closed count.
        assert_eq!(t.aborts(3, &[(a, with_aborts(4))]), 7);
    }

    #[test]
    fn players_are_found_by_every_spelling_of_the_name() {
        let mut t = Inner::default();
        let hashed = format!("sha256:{}", name_key("cam"));
        for (i, name) in ["cam", "asis:cam", hashed.as_str(), "other"]
            .iter()
            .enumerate()
        {
            let id = SessionId(i as u64);
            t.apply(ServerEvent::Opened {
                id,
                peer: None,
                transport: Transport::Rtmp,
            });
            t.apply(ServerEvent::PlayStarted {
                id,
                stream: 1,
                app: "live".into(),
                name: (*name).into(),
                query: String::new(),
            });
        }
        assert_eq!(
            t.players_of("live", "cam"),
            vec![SessionId(0), SessionId(1), SessionId(2)]
        );
        assert_eq!(t.players_of("other-app", "cam"), vec![]);
        t.apply(ServerEvent::PlayStopped {
            id: SessionId(1),
            stream: 1,
            app: "live".into(),
            name: "asis:cam".into(),
        });
        assert_eq!(
            t.players_of("live", "cam"),
            vec![SessionId(0), SessionId(2)]
        );
    }
}
