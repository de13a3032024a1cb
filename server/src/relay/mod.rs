//! Relays: every live publish that matches a `[[relay.push]]` entry is
//! forwarded to each of its destinations (restreaming to several
//! platforms at once), each through its own outbound connection
//! (`Handle::connect` with `Link::Push`).
//!
//! The core does the RTMP and the real-time policy: a push connection
//! plays the local stream like a player (fast start, bounded queue,
//! stale frames dropped), so a slow destination never slows the source or
//! the other destinations. This module decides when connections exist: a
//! destination is dialed when its source goes live, retried with
//! exponential backoff and jitter ([`backoff`]) when it fails or drops,
//! for as long as the source is live, and closed when the publish ends.
//!
//! It follows the server's events as a sink of the binary's fan-out and
//! never blocks there: state sits behind one mutex held for bookkeeping
//! only, and retries wait on tasks of their own.

pub mod backoff;
pub mod config;
pub mod pull;
pub mod tls;
pub mod url;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tincan_core::amf::amf0::Value;
use tincan_core::client::{ClientConfig, ClientEvent, Role};
use tincan_core::event::SessionId;
use tincan_core::outbound::{Link, OutboundConfig};
use tincan_core::server::ServerEvent;
use tincan_tokio::Handle;

use self::backoff::{Backoff, BackoffConfig};
use self::config::{PushRule, RelayConfig};
pub use self::pull::{Origin, OriginSource, StaticOrigins};
use self::pull::{Pull, PullTimings};
use self::url::RtmpUrl;

/// Where a push target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Dialing, handshaking, or waiting for `NetStream.Publish.Start`.
    Connecting,
    /// The destination accepted the publish: frames flow.
    Live,
    /// It failed or dropped; the next attempt is scheduled.
    Retrying,
}

impl TargetState {
    /// The name used by the API, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Connecting => "connecting",
            TargetState::Live => "live",
            TargetState::Retrying => "retrying",
        }
    }
}

/// One (source stream, destination) pair while the source is live.
#[derive(Debug)]
struct Target {
    rule: u64,
    app: String,
    name: String,
    url: RtmpUrl,
    tc_token: Option<String>,
    state: TargetState,
    conn: Option<SessionId>,
    backoff: Backoff,
    /// When the current connection's publish started.
    live_since: Option<Instant>,
    /// The reason of the last failure.
    last_error: Option<String>,
    next_attempt: Option<(Instant, SystemTime)>,
    /// Connections made so far.
    attempts: u64,
    /// Totals of connections already closed.
    bytes_closed: u64,
    dropped_closed: u64,
    /// Invalidates a scheduled retry when the target moves on.
    generation: u64,
}

/// A push target as the API and metrics show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetView {
    /// The target's id (stable while its source is live).
    pub id: u64,
    /// The rule that made it.
    pub rule: u64,
    /// The local App.
    pub app: String,
    /// The local stream name.
    pub name: String,
    /// The destination, its stream key and query hidden.
    pub url: String,
    /// `connecting`, `live` or `retrying`.
    pub state: &'static str,
    /// The outbound connection now, if any.
    pub connection: Option<String>,
    /// Why the last connection failed.
    pub last_error: Option<String>,
    /// Unix time (seconds) of the next attempt, while retrying.
    pub next_attempt_unix: Option<f64>,
    /// Failures since the schedule last reset.
    pub failures: u32,
    /// Connections made.
    pub attempts: u64,
    /// Bytes written to the destination, over every connection.
    pub bytes_sent: u64,
    /// Frames the real-time policy dropped because the destination was
    /// slow, over every connection.
    pub frames_dropped: u64,
}

/// A pulled stream as the API and metrics show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullView {
    /// The local App.
    pub app: String,
    /// The local stream name.
    pub name: String,
    /// `connecting`, `live` or `retrying`.
    pub state: &'static str,
    /// The origin tried or used now, its stream key and query hidden.
    pub origin: Option<String>,
    /// How many origins it may use.
    pub origins: usize,
    /// The pull connection now, if any.
    pub connection: Option<String>,
    /// Local players of the pulled stream.
    pub players: usize,
    /// Plays held until the origin delivers media.
    pub waiting: usize,
    /// Connections made.
    pub attempts: u64,
    /// Switches to another origin after media had flowed.
    pub failovers: u64,
    /// Why the last connection failed.
    pub last_error: Option<String>,
    /// Bytes read from origins over every connection.
    pub bytes_received: u64,
}

/// A push rule as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleView {
    /// The rule's id (for `DELETE /api/v1/relays/push/{id}`).
    pub id: u64,
    /// The local App.
    pub app: String,
    /// The name pattern (`*` for every name).
    pub name: String,
    /// Destinations, their keys and queries hidden.
    pub to: Vec<String>,
    /// From the configuration file or added through the API.
    pub source: &'static str,
}

#[derive(Debug)]
struct Rule {
    rule: PushRule,
    from_api: bool,
}

#[derive(Debug)]
struct State {
    retry: BackoffConfig,
    /// Where pulls find origins.
    origin_source: Arc<dyn OriginSource>,
    pull_timings: PullTimings,
    /// Pulled streams by (App, name).
    pulls: HashMap<(String, String), Pull>,
    /// Pull connections: their stream.
    pull_conns: HashMap<SessionId, (String, String)>,
    /// Local players waiting for a stream no origin source knew when they
    /// asked (nothing publishes it here either): a cluster edge starts a
    /// pull for them once the registry names an origin. Bounded by the
    /// server's connection limit; emptied as they leave.
    unfed: HashMap<(String, String), HashSet<SessionId>>,
    rules: HashMap<u64, Rule>,
    next_rule: u64,
    /// Live local publishes: (App, name).
    live: HashMap<(String, String), SessionId>,
    targets: HashMap<u64, Target>,
    next_target: u64,
    by_conn: HashMap<SessionId, u64>,
    /// Retries scheduled over the process's life, for metrics.
    retries_total: u64,
    /// This server's node id, appended to every relay chain it sends.
    node_id: String,
    /// The relay chains connections announced (relays only; removed when
    /// they close).
    chains: HashMap<SessionId, Vec<String>>,
}

impl State {
    /// The chain a relay carrying what connection `from` sent announces:
    /// `from`'s own chain, then this server.
    fn via(&self, from: Option<SessionId>) -> Vec<String> {
        let mut via = from
            .and_then(|id| self.chains.get(&id))
            .cloned()
            .unwrap_or_default();
        via.push(self.node_id.clone());
        via
    }
}

/// The relay manager; one per server.
#[derive(Debug)]
pub struct Relays {
    handle: Handle,
    state: Mutex<State>,
}

/// A random draw for jitter: the standard library's per-instance random
/// hasher keys are enough, nothing here is a secret.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Relays {
    /// The manager for `handle`'s server with the file's relays.
    pub fn new(handle: Handle, config: &RelayConfig) -> Arc<Relays> {
        let mut state = State {
            retry: config.retry,
            origin_source: Arc::new(StaticOrigins {
                rules: config.pull.clone(),
            }),
            pull_timings: config.pull_timings,
            pulls: HashMap::new(),
            pull_conns: HashMap::new(),
            unfed: HashMap::new(),
            rules: HashMap::new(),
            next_rule: 1,
            live: HashMap::new(),
            targets: HashMap::new(),
            next_target: 1,
            by_conn: HashMap::new(),
            retries_total: 0,
            node_id: config.node_id.clone(),
            chains: HashMap::new(),
        };
        tracing::info!(node_id = %state.node_id, "relay node id");
        for rule in &config.push {
            let id = state.next_rule;
            state.next_rule += 1;
            state.rules.insert(
                id,
                Rule {
                    rule: rule.clone(),
                    from_api: false,
                },
            );
        }
        Arc::new(Relays {
            handle,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Bookkeeping only: a panic under the lock leaves the maps usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sink for the binary's event fan-out.
    pub fn sink(self: &Arc<Self>) -> crate::events::Sink {
        let this = self.clone();
        Box::new(move |event| this.event(event))
    }

    /// One server event, in the core's order. Never blocks.
    pub fn event(self: &Arc<Self>, event: &ServerEvent) {
        match event {
            ServerEvent::Connected { id, info } => {
                let chain = tincan_core::via::chain(&info.command_object);
                if !chain.is_empty() {
                    self.lock().chains.insert(*id, chain);
                }
            }
            ServerEvent::PublishStarted { id, app, name, .. } => {
                let mut state = self.lock();
                state.live.insert((app.clone(), name.clone()), *id);
                if !state.pull_conns.contains_key(id) {
                    // Fed here: nothing to pull for its waiting players.
                    state.unfed.remove(&(app.clone(), name.clone()));
                }
                let rules: Vec<u64> = state
                    .rules
                    .iter()
                    .filter(|(_, r)| r.rule.app == *app && r.rule.name.matches(name))
                    .map(|(id, _)| *id)
                    .collect();
                for rule in rules {
                    self.start_rule(&mut state, rule, app, name);
                }
            }
            ServerEvent::PublishEnded { app, name, .. } => {
                let mut state = self.lock();
                state.live.remove(&(app.clone(), name.clone()));
                let ids: Vec<u64> = state
                    .targets
                    .iter()
                    .filter(|(_, t)| t.app == *app && t.name == *name)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.stop_target(&mut state, id, "source stream ended");
                }
            }
            ServerEvent::PlayStarted { id, app, name, .. } => {
                let mut state = self.lock();
                let key = (app.clone(), name.clone());
                if state.pulls.contains_key(&key) && !self.is_ours(&state, *id) {
                    self.pull_player(&mut state, &key, *id, true);
                }
            }
            ServerEvent::PlayStopped { id, app, name, .. } => {
                let mut state = self.lock();
                let key = (app.clone(), name.clone());
                if let Some(waiting) = state.unfed.get_mut(&key) {
                    waiting.remove(id);
                    if waiting.is_empty() {
                        state.unfed.remove(&key);
                    }
                }
                self.pull_player(&mut state, &key, *id, false);
            }
            ServerEvent::MediaChanged { app, name, info } if !info.is_empty() => {
                let mut state = self.lock();
                self.pull_media(&mut state, &(app.clone(), name.clone()));
            }
            ServerEvent::Outbound { id, event } => {
                let mut state = self.lock();
                let Some(&tid) = state.by_conn.get(id) else {
                    return;
                };
                let Some(t) = state.targets.get_mut(&tid) else {
                    return;
                };
                match event {
                    ClientEvent::Publishing => {
                        t.state = TargetState::Live;
                        t.live_since = Some(Instant::now());
                        tracing::info!(
                            relay = tid, conn = %id, app = %t.app, name = %t.name,
                            to = %t.url, "push relay live"
                        );
                    }
                    ClientEvent::Status(s) if s.level == "error" => {
                        t.last_error = Some(format!("{}: {}", s.code, s.description));
                    }
                    ClientEvent::Closed(reason) if t.last_error.is_none() => {
                        t.last_error = Some(reason.clone());
                    }
                    _ => {}
                }
            }
            ServerEvent::Closed {
                id,
                error,
                bytes_in,
                bytes_out,
                dropped_frames,
                ..
            } => {
                let mut state = self.lock();
                state.chains.remove(id);
                // A waiting player that left before its play started sends
                // no PlayStopped.
                state.unfed.retain(|_, waiting| {
                    waiting.remove(id);
                    !waiting.is_empty()
                });
                if let Some(key) = state.pull_conns.remove(id) {
                    let error = error.as_ref().map(ToString::to_string);
                    self.pull_closed(&mut state, &key, error, *bytes_in);
                    return;
                }
                let pulled: Vec<(String, String)> = state
                    .pulls
                    .iter()
                    .filter(|(_, p)| p.players.contains(id))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in pulled {
                    self.pull_player(&mut state, &key, *id, false);
                }
                let Some(tid) = state.by_conn.remove(id) else {
                    return;
                };
                let Some(t) = state.targets.get_mut(&tid) else {
                    return;
                };
                t.conn = None;
                t.bytes_closed += bytes_out;
                t.dropped_closed += dropped_frames;
                if let Some(e) = error {
                    t.last_error = Some(e.to_string());
                } else if t.last_error.is_none() {
                    t.last_error = Some("connection closed".into());
                }
                let up = t.live_since.take().map_or(Duration::ZERO, |s| s.elapsed());
                let delay = t.backoff.failed(up, random());
                self.schedule(&mut state, tid, delay);
            }
            _ => {}
        }
    }

    /// Whether `id` is one of this manager's connections.
    fn is_ours(&self, state: &State, id: SessionId) -> bool {
        state.by_conn.contains_key(&id) || state.pull_conns.contains_key(&id)
    }

    /// What relays ask of the core's configuration: the loop guard, and
    /// with pulls (static origins, or a cluster registry when `registry`),
    /// plays decided by the embedder (a play for a stream not here is held
    /// for its pull) within the not-found bound. Plays are then asked of
    /// access control (which this makes active), which hands its approvals
    /// to [`Relays::decide_play`].
    pub fn apply(
        config: &RelayConfig,
        registry: bool,
        server: &mut tincan_core::server::ServerConfig,
    ) {
        server.session.loop_guard = tincan_core::via::LoopGuard {
            node_id: Some(config.node_id.clone()),
            hop_limit: config.hop_limit,
        };
        if config.pull.is_empty() && !registry {
            return;
        }
        server.approvals.play = tincan_core::server::Decider::Embedder;
        let needed = config.pull_timings.not_found + Duration::from_secs(2);
        server.approvals.deadline = server.approvals.deadline.max(needed);
    }

    /// Replaces where pulls find origins (the cluster registry, which
    /// falls back to the static lists itself). Pulls already running keep
    /// their list until their next round.
    pub fn set_origin_source(&self, source: Arc<dyn OriginSource>) {
        self.lock().origin_source = source;
    }

    /// The static origin lists of `config`, for a source that falls back
    /// to them.
    pub fn static_origins(config: &RelayConfig) -> StaticOrigins {
        StaticOrigins {
            rules: config.pull.clone(),
        }
    }

    /// Every pulled stream now.
    pub fn pulls(&self) -> Vec<PullView> {
        let state = self.lock();
        let mut out: Vec<PullView> = state
            .pulls
            .values()
            .map(|p| {
                let live = p.conn.and_then(|c| self.handle.connection_stats(c));
                PullView {
                    app: p.app.clone(),
                    name: p.name.clone(),
                    state: p.state.as_str(),
                    origin: p.origin().map(|o| o.url.to_string()),
                    origins: p.origins.len(),
                    connection: p.conn.map(|c| c.to_string()),
                    players: p.players.len(),
                    waiting: p.held(),
                    attempts: p.attempts,
                    failovers: p.failovers,
                    last_error: p.last_error.clone(),
                    bytes_received: p.bytes_closed + live.as_ref().map_or(0, |s| s.input.bytes),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        out
    }

    /// Starts a target per destination of `rule` for live stream
    /// `app`/`name`.
    fn start_rule(self: &Arc<Self>, state: &mut State, rule: u64, app: &str, name: &str) {
        let Some(r) = state.rules.get(&rule) else {
            return;
        };
        let urls = r.rule.to.clone();
        let tc_token = r.rule.tc_token.clone();
        for url in urls {
            let id = state.next_target;
            state.next_target += 1;
            state.targets.insert(
                id,
                Target {
                    rule,
                    app: app.to_owned(),
                    name: name.to_owned(),
                    url,
                    tc_token: tc_token.clone(),
                    state: TargetState::Connecting,
                    conn: None,
                    backoff: Backoff::new(state.retry),
                    live_since: None,
                    last_error: None,
                    next_attempt: None,
                    attempts: 0,
                    bytes_closed: 0,
                    dropped_closed: 0,
                    generation: 0,
                },
            );
            self.dial(state, id);
        }
    }

    /// Opens target `id`'s connection now.
    fn dial(self: &Arc<Self>, state: &mut State, id: u64) {
        let Some(t) = state.targets.get(&id) else {
            return;
        };
        let publisher = state.live.get(&(t.app.clone(), t.name.clone())).copied();
        let via = state.via(publisher);
        let Some(t) = state.targets.get_mut(&id) else {
            return;
        };
        let stream = t.url.stream.clone().unwrap_or_else(|| t.name.clone());
        let mut client =
            ClientConfig::new(t.url.tc_url(), t.url.app.clone(), stream, Role::Publish);
        client.query.clone_from(&t.url.query);
        if let Some(token) = &t.tc_token {
            client.connect_args = vec![Value::String(token.clone())];
        }
        // A push must not evict another publisher of the destination's
        // name: on a TC server `releaseStream` would.
        client.release_stream = false;
        client.via = via;
        let config = OutboundConfig {
            target: t.url.target(),
            client,
            link: Link::Push {
                app: t.app.clone(),
                name: t.name.clone(),
            },
            tls: t.url.tls.then(|| t.url.host.clone()),
        };
        t.attempts += 1;
        t.next_attempt = None;
        t.generation += 1;
        t.state = TargetState::Connecting;
        match self.handle.connect(config) {
            Ok(conn) => {
                tracing::info!(
                    relay = id, conn = %conn, app = %t.app, name = %t.name, to = %t.url,
                    attempt = t.attempts, "push relay connecting"
                );
                t.conn = Some(conn);
                state.by_conn.insert(conn, id);
            }
            Err(refusal) => {
                t.last_error = Some(format!("not dialed: {refusal}"));
                let delay = t.backoff.failed(Duration::ZERO, random());
                self.schedule(state, id, delay);
            }
        }
    }

    /// Target `id` waits `delay`, then dials again if its source is still
    /// live and nothing else moved it on.
    fn schedule(self: &Arc<Self>, state: &mut State, id: u64, delay: Duration) {
        let Some(t) = state.targets.get_mut(&id) else {
            return;
        };
        t.state = TargetState::Retrying;
        t.generation += 1;
        t.next_attempt = Some((Instant::now() + delay, SystemTime::now() + delay));
        let generation = t.generation;
        tracing::warn!(
            relay = id, app = %t.app, name = %t.name, to = %t.url,
            error = t.last_error.as_deref().unwrap_or(""),
            retry_in_ms = delay.as_millis() as u64, failures = t.backoff.failures(),
            "push relay retrying"
        );
        state.retries_total += 1;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut state = this.lock();
            let due = state
                .targets
                .get(&id)
                .is_some_and(|t| t.generation == generation && t.state == TargetState::Retrying);
            if due {
                this.dial(&mut state, id);
            }
        });
    }

    /// Ends target `id`: its connection is closed and it is forgotten.
    fn stop_target(&self, state: &mut State, id: u64, why: &str) {
        let Some(t) = state.targets.remove(&id) else {
            return;
        };
        tracing::info!(relay = id, app = %t.app, name = %t.name, to = %t.url, why, "push relay stopped");
        if let Some(conn) = t.conn {
            state.by_conn.remove(&conn);
            self.handle.close_connection(conn, why);
        }
    }

    /// Adds a push rule at run time; it applies at once to live streams
    /// it matches. Its id.
    pub fn add_push(self: &Arc<Self>, rule: PushRule) -> u64 {
        let mut state = self.lock();
        let id = state.next_rule;
        state.next_rule += 1;
        let live: Vec<(String, String)> = state
            .live
            .keys()
            .filter(|(app, name)| *app == rule.app && rule.name.matches(name))
            .cloned()
            .collect();
        tracing::info!(rule = id, app = %rule.app, name = %rule.name, destinations = rule.to.len(), "push relay added");
        state.rules.insert(
            id,
            Rule {
                rule,
                from_api: true,
            },
        );
        for (app, name) in live {
            self.start_rule(&mut state, id, &app, &name);
        }
        id
    }

    /// Removes push rule `id` and stops its targets. False if unknown.
    pub fn remove_push(&self, id: u64) -> bool {
        let mut state = self.lock();
        if state.rules.remove(&id).is_none() {
            return false;
        }
        let targets: Vec<u64> = state
            .targets
            .iter()
            .filter(|(_, t)| t.rule == id)
            .map(|(tid, _)| *tid)
            .collect();
        for t in targets {
            self.stop_target(&mut state, t, "push relay removed");
        }
        tracing::info!(rule = id, "push relay removed");
        true
    }

    /// The push rules.
    pub fn rules(&self) -> Vec<RuleView> {
        let state = self.lock();
        let mut out: Vec<RuleView> = state
            .rules
            .iter()
            .map(|(id, r)| RuleView {
                id: *id,
                app: r.rule.app.clone(),
                name: r.rule.name.to_string(),
                to: r.rule.to.iter().map(ToString::to_string).collect(),
                source: if r.from_api { "api" } else { "config" },
            })
            .collect();
        out.sort_by_key(|r| r.id);
        out
    }

    /// Every push target now, with live connections' counters read from
    /// the server.
    pub fn targets(&self) -> Vec<TargetView> {
        let state = self.lock();
        let mut out: Vec<TargetView> = state
            .targets
            .iter()
            .map(|(id, t)| {
                let live = t.conn.and_then(|c| self.handle.connection_stats(c));
                TargetView {
                    id: *id,
                    rule: t.rule,
                    app: t.app.clone(),
                    name: t.name.clone(),
                    url: t.url.to_string(),
                    state: t.state.as_str(),
                    connection: t.conn.map(|c| c.to_string()),
                    last_error: t.last_error.clone(),
                    next_attempt_unix: t.next_attempt.and_then(|(_, wall)| {
                        wall.duration_since(SystemTime::UNIX_EPOCH)
                            .ok()
                            .map(|d| d.as_secs_f64())
                    }),
                    failures: t.backoff.failures(),
                    attempts: t.attempts,
                    bytes_sent: t.bytes_closed + live.as_ref().map_or(0, |s| s.output.bytes),
                    frames_dropped: t.dropped_closed
                        + live.as_ref().map_or(0, |s| s.dropped_frames),
                }
            })
            .collect();
        out.sort_by_key(|t| t.id);
        out
    }

    /// Retries scheduled since start.
    pub fn retries_total(&self) -> u64 {
        self.lock().retries_total
    }
}
