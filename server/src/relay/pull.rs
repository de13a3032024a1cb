//! Pull edges: a play for a stream that is not live here makes this
//! server pull it from an origin, once per stream, shared by every local
//! player.
//!
//! Which origins to ask is an [`OriginSource`]'s answer (a static list
//! from `[[relay.pull]]` here; a cluster registry can answer instead),
//! tried in order. An origin that refuses, cannot be reached, or has sent
//! no media within `origin_timeout` is left for the next one: RTMP servers
//! accept a play for a name nobody publishes and simply wait, so media is
//! the only proof an origin has the stream.
//!
//! A play for a pulled stream is held (its approval ticket kept) until
//! the pull delivers media, so a player arrives as it would before a
//! publisher, and is refused with `NetStream.Play.StreamNotFound` if no
//! origin has the stream within `not_found`. The pull ends `linger` after
//! its last local player left.
//!
//! When the origin goes away mid-stream the pull re-dials at once, the
//! next origin first, and publishes again under the same local name: the
//! broker keeps the players of a stream whose publisher left for its
//! republish grace and stitches the new publish's timestamps onto theirs
//! (fresh sequence headers first), so players continue without
//! reconnecting.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tincan_core::amf::amf0::Value;
use tincan_core::client::{ClientConfig, Role};
use tincan_core::event::{Denial, SessionId};
use tincan_core::outbound::{Link, OutboundConfig};
use tincan_core::server::Ticket;

use super::backoff::Backoff;
use super::config::PullRule;
use super::url::RtmpUrl;
use super::{random, Relays, State};

/// Candidate origins of a stream, best first. The static list of
/// `[[relay.pull]]` is one; the cluster registry (which knows where each
/// stream is published) is another. Called under the relay manager's
/// lock, so it must answer from memory: a source that asks a network
/// service keeps its own cache, refreshed by a task of its own.
pub trait OriginSource: Send + Sync + std::fmt::Debug {
    /// The origins to try for stream `name` of App `app`, in order; empty
    /// if this source does not cover it (the play is then served locally
    /// as usual, waiting for a publisher).
    fn origins(&self, app: &str, name: &str) -> Vec<Origin>;
}

/// One origin to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Its URL; the stream name is the local one unless the URL names one.
    pub url: RtmpUrl,
    /// A TC token for its `connect` (never logged).
    pub tc_token: Option<String>,
}

/// The static origin lists of the configuration file.
#[derive(Debug, Default)]
pub struct StaticOrigins {
    /// The `[[relay.pull]]` entries, in file order: the first that matches
    /// a stream gives its origins.
    pub rules: Vec<PullRule>,
}

impl StaticOrigins {
    /// The TC token of the first rule covering the stream: what an origin
    /// of the same cluster (which shares its keys) expects too.
    pub fn tc_token(&self, app: &str, name: &str) -> Option<String> {
        self.rules
            .iter()
            .find(|r| r.app == app && r.name.matches(name))
            .and_then(|r| r.tc_token.clone())
    }
}

impl OriginSource for StaticOrigins {
    fn origins(&self, app: &str, name: &str) -> Vec<Origin> {
        self.rules
            .iter()
            .find(|r| r.app == app && r.name.matches(name))
            .map(|r| {
                r.origins
                    .iter()
                    .map(|url| Origin {
                        url: url.clone(),
                        tc_token: r.tc_token.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Timings of pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullTimings {
    /// A pull ends this long after its last local player left (a player
    /// that reconnects at once finds the stream still here).
    pub linger: Duration,
    /// A held play is refused with `NetStream.Play.StreamNotFound` if no
    /// origin delivered media within this.
    pub not_found: Duration,
    /// An origin that sent no media within this (before the pull ever
    /// got media) is left for the next.
    pub origin_timeout: Duration,
}

impl Default for PullTimings {
    fn default() -> Self {
        PullTimings {
            linger: Duration::from_secs(10),
            not_found: Duration::from_secs(5),
            origin_timeout: Duration::from_secs(2),
        }
    }
}

/// Where a pull stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PullState {
    /// Dialing an origin or waiting for its first media.
    Connecting,
    /// Media flows.
    Live,
    /// Every origin failed; waiting before the next round.
    Retrying,
}

impl PullState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PullState::Connecting => "connecting",
            PullState::Live => "live",
            PullState::Retrying => "retrying",
        }
    }
}

/// One pulled stream.
#[derive(Debug)]
pub(super) struct Pull {
    pub(super) app: String,
    pub(super) name: String,
    pub(super) origins: Vec<Origin>,
    /// The origin being tried or used.
    pub(super) index: usize,
    /// Origins tried in this round without media.
    tried: usize,
    pub(super) conn: Option<SessionId>,
    pub(super) state: PullState,
    /// Media arrived on the current connection.
    has_media: bool,
    /// Media ever arrived (then a silent origin is waited for: it may be
    /// between publishers).
    pub(super) ever_live: bool,
    /// Plays waiting for media, with their connection.
    held: Vec<(Ticket, SessionId)>,
    /// The relay chain the pull announces: that of the play that started
    /// it (another edge's pull), then this server.
    via: Vec<String>,
    pub(super) players: HashSet<SessionId>,
    backoff: Backoff,
    generation: u64,
    /// Invalidates a linger timer when a player arrives or another starts.
    linger_generation: u64,
    pub(super) last_error: Option<String>,
    /// Connections made, and origin switches after media.
    pub(super) attempts: u64,
    pub(super) failovers: u64,
    pub(super) bytes_closed: u64,
}

impl Pull {
    pub(super) fn origin(&self) -> Option<&Origin> {
        self.origins.get(self.index)
    }

    pub(super) fn held(&self) -> usize {
        self.held.len()
    }
}

type Key = (String, String);

impl Relays {
    /// A play access control allowed: approve it, or hold it for a pull.
    pub fn decide_play(self: &Arc<Self>, ticket: Ticket, id: SessionId, app: &str, name: &str) {
        let mut state = self.lock();
        let key = (app.to_owned(), name.to_owned());
        let ours = state.by_conn.contains_key(&id) || state.pull_conns.contains_key(&id);
        let local = state
            .live
            .get(&key)
            .is_some_and(|publisher| !state.pull_conns.contains_key(publisher));
        let pulled_live = state
            .pulls
            .get(&key)
            .is_some_and(|p| p.state == PullState::Live);
        if ours || local || pulled_live {
            drop(state);
            let _ = self.handle.approve(ticket);
            return;
        }
        if !state.pulls.contains_key(&key) {
            let origins = state.origin_source.origins(app, name);
            if origins.is_empty() {
                // Served here, waiting for a publisher; a registry that
                // later names an origin gets it pulled ([`Relays::pull_unfed`]).
                state.unfed.entry(key).or_default().insert(id);
                drop(state);
                let _ = self.handle.approve(ticket);
                return;
            }
            let via = state.via(Some(id));
            self.start_pull(&mut state, &key, origins, via, HashSet::new());
            tracing::info!(app, name = %redact(name), "pulling a stream for a local player");
        }
        if let Some(p) = state.pulls.get_mut(&key) {
            p.held.push((ticket, id));
        }
        // The bound on waiting for an origin that has the stream.
        let not_found = state.pull_timings.not_found;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(not_found).await;
            this.not_found(&key, ticket);
        });
    }

    /// Starts pulling `key` from `origins` for `players` (already playing
    /// here), announcing relay chain `via`.
    fn start_pull(
        self: &Arc<Self>,
        state: &mut State,
        key: &Key,
        origins: Vec<Origin>,
        via: Vec<String>,
        players: HashSet<SessionId>,
    ) {
        let pull = Pull {
            via,
            app: key.0.clone(),
            name: key.1.clone(),
            origins,
            index: 0,
            tried: 0,
            conn: None,
            state: PullState::Connecting,
            has_media: false,
            ever_live: false,
            held: Vec::new(),
            players,
            backoff: Backoff::new(state.retry),
            generation: 0,
            linger_generation: 0,
            last_error: None,
            attempts: 0,
            failovers: 0,
            bytes_closed: 0,
        };
        state.pulls.insert(key.clone(), pull);
        self.dial_pull(state, key);
    }

    /// Streams with local players that wait for a publisher no origin
    /// source knew when they asked, and that nothing feeds yet.
    pub fn unfed(&self) -> Vec<(String, String)> {
        let state = self.lock();
        state
            .unfed
            .keys()
            .filter(|k| !state.pulls.contains_key(*k) && !state.live.contains_key(*k))
            .cloned()
            .collect()
    }

    /// An origin now has a stream local players were left waiting for (a
    /// registry learned of its publish after they asked): pull it for
    /// them, as for a play that arrives now. Nothing happens if the stream
    /// is fed here meanwhile, or its players left.
    pub fn pull_unfed(self: &Arc<Self>, app: &str, name: &str, origins: Vec<Origin>) {
        let mut state = self.lock();
        let key = (app.to_owned(), name.to_owned());
        if origins.is_empty() || state.pulls.contains_key(&key) || state.live.contains_key(&key) {
            return;
        }
        let Some(players) = state.unfed.remove(&key) else {
            return;
        };
        tracing::info!(app, name = %redact(name), players = players.len(), "an origin has a stream local players wait for: pulling it");
        let via = state.via(None);
        self.start_pull(&mut state, &key, origins, via, players);
    }

    /// The held play `ticket` is still waiting: no origin had the stream.
    fn not_found(self: &Arc<Self>, key: &Key, ticket: Ticket) {
        let mut state = self.lock();
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        let Some(at) = p.held.iter().position(|(t, _)| *t == ticket) else {
            return;
        };
        p.held.remove(at);
        tracing::info!(app = %key.0, name = %redact(&key.1), error = p.last_error.as_deref().unwrap_or(""), "no origin has the stream");
        let _ = self
            .handle
            .deny(ticket, Denial::not_found("no origin has this stream"));
        self.maybe_linger(&mut state, key);
    }

    /// Opens a connection to the pull's current origin.
    fn dial_pull(self: &Arc<Self>, state: &mut State, key: &Key) {
        let timings = state.pull_timings;
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        let Some(origin) = p.origin().cloned() else {
            return;
        };
        let stream = origin.url.stream.clone().unwrap_or_else(|| p.name.clone());
        let mut client = ClientConfig::new(
            origin.url.tc_url(),
            origin.url.app.clone(),
            stream,
            Role::Play,
        );
        client.query.clone_from(&origin.url.query);
        if let Some(token) = &origin.tc_token {
            client.connect_args = vec![Value::String(token.clone())];
        }
        // A vanished origin (no FIN) is noticed within seconds, well inside
        // the players' republish grace.
        client.via.clone_from(&p.via);
        client.dead_peer_timeout = Duration::from_secs(4);
        client.ping_interval = Duration::from_secs(1);
        let config = OutboundConfig {
            target: origin.url.target(),
            client,
            link: Link::Pull {
                app: p.app.clone(),
                name: p.name.clone(),
                priority: 0,
            },
            tls: origin.url.tls.then(|| origin.url.host.clone()),
        };
        p.attempts += 1;
        p.generation += 1;
        p.has_media = false;
        if p.state != PullState::Live || !p.ever_live {
            p.state = PullState::Connecting;
        }
        let generation = p.generation;
        match self.handle.connect(config) {
            Ok(conn) => {
                tracing::info!(conn = %conn, app = %p.app, name = %redact(&p.name), origin = %origin.url, "pull connecting");
                p.conn = Some(conn);
                state.pull_conns.insert(conn, key.clone());
                if !p.ever_live {
                    // Until the pull has had media, an origin that sends
                    // none is left for the next.
                    let this = self.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(timings.origin_timeout).await;
                        this.origin_silent(&key, generation);
                    });
                }
            }
            Err(refusal) => {
                p.last_error = Some(format!("not dialed: {refusal}"));
                self.next_origin(state, key);
            }
        }
    }

    fn origin_silent(&self, key: &Key, generation: u64) {
        let mut state = self.lock();
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        if p.generation != generation || p.has_media {
            return;
        }
        p.last_error = Some("the origin sent no media".into());
        if let Some(conn) = p.conn {
            self.handle
                .close_connection(conn, "the origin sent no media");
        }
    }

    /// The pull's connection failed or ended: the next origin, at once
    /// while the round lasts, after a backoff once every origin failed.
    fn next_origin(self: &Arc<Self>, state: &mut State, key: &Key) {
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        p.conn = None;
        if p.players.is_empty() && p.held.is_empty() {
            tracing::info!(app = %p.app, name = %redact(&p.name), "pull ended: no players");
            state.pulls.remove(key);
            return;
        }
        if p.has_media {
            // It had the stream: a fresh round from the next origin.
            p.tried = 0;
            p.failovers += 1;
        }
        p.has_media = false;
        p.tried += 1;
        p.index = (p.index + 1) % p.origins.len().max(1);
        if p.tried < p.origins.len() {
            self.dial_pull(state, key);
            return;
        }
        // A whole round failed: refresh the list and wait.
        p.tried = 0;
        let fresh = state.origin_source.origins(&key.0, &key.1);
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        if !fresh.is_empty() {
            p.origins = fresh;
            p.index = 0;
        }
        p.state = PullState::Retrying;
        p.generation += 1;
        let generation = p.generation;
        let delay = p.backoff.failed(Duration::ZERO, random());
        tracing::warn!(app = %p.app, name = %redact(&p.name), error = p.last_error.as_deref().unwrap_or(""), retry_in_ms = delay.as_millis() as u64, "pull: every origin failed; retrying");
        let this = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut state = this.lock();
            if state
                .pulls
                .get(&key)
                .is_some_and(|p| p.generation == generation && p.conn.is_none())
            {
                this.dial_pull(&mut state, &key);
            }
        });
    }

    /// Media arrived for a stream: a pull's origin has it.
    pub(super) fn pull_media(&self, state: &mut State, key: &Key) {
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        if p.has_media || p.conn.is_none() {
            return;
        }
        p.has_media = true;
        p.ever_live = true;
        p.state = PullState::Live;
        p.tried = 0;
        p.last_error = None;
        tracing::info!(app = %p.app, name = %redact(&p.name), origin = ?p.origin().map(|o| &o.url), players = p.held.len(), "pull live");
        for (ticket, _) in p.held.drain(..) {
            let _ = self.handle.approve(ticket);
        }
    }

    /// A pull's connection closed.
    pub(super) fn pull_closed(
        self: &Arc<Self>,
        state: &mut State,
        key: &Key,
        error: Option<String>,
        bytes_in: u64,
    ) {
        if let Some(p) = state.pulls.get_mut(key) {
            p.bytes_closed += bytes_in;
            if let Some(e) = error {
                p.last_error = Some(e);
            } else if p.last_error.is_none() {
                p.last_error = Some("connection closed".into());
            }
            tracing::info!(app = %p.app, name = %redact(&p.name), error = p.last_error.as_deref().unwrap_or(""), "pull connection closed");
        }
        self.next_origin(state, key);
    }

    /// Each pulled stream and the origin it uses (or tries) now.
    pub fn pulled(&self) -> Vec<(String, String, Option<Origin>)> {
        self.lock()
            .pulls
            .values()
            .map(|p| (p.app.clone(), p.name.clone(), p.origin().cloned()))
            .collect()
    }

    /// The stream's publisher moved: the pull leaves its origin for the
    /// first of `origins` at once (the players keep the stream through the
    /// republish grace, as on a failover). Nothing happens if the pull is
    /// gone or already there.
    pub fn move_pull(self: &Arc<Self>, app: &str, name: &str, origins: Vec<Origin>) {
        let mut state = self.lock();
        let key = (app.to_owned(), name.to_owned());
        let Some(p) = state.pulls.get_mut(&key) else {
            return;
        };
        if origins.is_empty() || p.origin() == origins.first() {
            return;
        }
        tracing::info!(app, name = %redact(name), from = ?p.origin().map(|o| &o.url),
            to = %origins[0].url, "pull: the publisher moved, following it");
        p.origins = origins;
        p.index = 0;
        p.tried = 0;
        if p.ever_live {
            p.failovers += 1;
        }
        if let Some(conn) = p.conn.take() {
            // Forgotten first, so its close does not count as a failure.
            state.pull_conns.remove(&conn);
            self.handle
                .close_connection(conn, "the stream's publisher moved to another origin");
        }
        self.dial_pull(&mut state, &key);
    }

    /// A local player of a pulled stream arrived or left.
    pub(super) fn pull_player(
        self: &Arc<Self>,
        state: &mut State,
        key: &Key,
        id: SessionId,
        joined: bool,
    ) {
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        if joined {
            p.players.insert(id);
            p.linger_generation += 1;
        } else {
            p.players.remove(&id);
            p.held.retain(|(_, c)| *c != id);
            self.maybe_linger(state, key);
        }
    }

    /// With no player left, the pull ends after the linger time unless one
    /// arrives.
    fn maybe_linger(self: &Arc<Self>, state: &mut State, key: &Key) {
        let linger = state.pull_timings.linger;
        let Some(p) = state.pulls.get_mut(key) else {
            return;
        };
        if !p.players.is_empty() || !p.held.is_empty() {
            return;
        }
        p.linger_generation += 1;
        let generation = p.linger_generation;
        let this = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut state = this.lock();
            let Some(p) = state.pulls.get(&key) else {
                return;
            };
            if p.linger_generation != generation || !p.players.is_empty() || !p.held.is_empty() {
                return;
            }
            tracing::info!(app = %p.app, name = %redact(&p.name), "pull ended: its last player left");
            if let Some(conn) = p.conn {
                state.pull_conns.remove(&conn);
                this.handle.close_connection(conn, "no players left");
            }
            state.pulls.remove(&key);
        });
    }
}

/// A stream name for logs (names are stream keys).
fn redact(name: &str) -> String {
    if name.chars().count() > 8 {
        let head: String = name.chars().take(4).collect();
        format!("{head}…")
    } else {
        name.to_owned()
    }
}
