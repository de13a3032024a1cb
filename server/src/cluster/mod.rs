//! The cluster registry on Redis: origins announce the streams published
//! to them, edges look up where a stream is published and pull it from
//! there. docs/cluster.md describes the data model and failure behaviour.
//!
//! Redis layout (`P` is `--cluster-key-prefix`, `tincan:` by default; an
//! App's `%` and `/` are escaped as `%25` and `%2F` so that `APP/NAME`
//! names one stream only):
//!
//! - `P node:ID`, a hash: `url` (the rtmp:// URL to pull from), `id`,
//!   `started` (the node's start, Unix ms) and one `stream:APP/NAME`
//!   field per stream it originates (the publish's start, Unix ms).
//!   It expires after `--cluster-ttl` unless a heartbeat renews it.
//! - `P stream:APP/NAME`, a sorted set of node ids scored by when their
//!   publish started, so the newest publish (a publisher that moved) comes
//!   first. It expires with its last origin's heartbeats.
//!
//! An origin counts as live only while its node hash holds the stream's
//! field: a publish that ends removes both entries at once, and a node that
//! dies stops renewing its hash, so it drops out within the TTL even though
//! its sorted-set member lingers (lookups skip and prune such members).
//!
//! - `P changed`, a pub/sub channel: a node whose set of streams changed
//!   publishes its id there, and every node reads the registry again at
//!   once instead of at its next heartbeat.
//!
//! Pull edges answer from a mirror of every node's hash, read at each
//! heartbeat and on each change notice ([`edge`]).
//!
//! One task per node owns the Redis connection: it reconnects with backoff
//! when Redis goes away, and each heartbeat rewrites this node's whole
//! state (in one MULTI), so a Redis that restarted empty is filled again at
//! the first heartbeat after the reconnect. RTMP never waits for Redis.

pub mod args;
pub mod edge;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tincan_core::event::SessionId;
use tincan_core::server::{ServerEvent, Transport};
use tincan_tokio::Handle;
use tokio::sync::Notify;

pub use self::args::ClusterArgs;

/// First and longest wait between connection attempts: a Redis that
/// restarts is found again within this.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long one connection attempt or command may take, so an unreachable
/// or stalled Redis never holds the heartbeat (or an edge's lookup) long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Origins read per lookup: more than a stream ever has live at once; dead
/// ones past it expire with the key.
const MAX_CANDIDATES: isize = 16;
/// Bounds of the mirror: nodes read and streams kept. Far above a real
/// cluster; past them the rest is left out (and logged) rather than
/// growing memory without end on a registry filled by mistake.
const MAX_NODES: usize = 10_000;
const MAX_MIRRORED: usize = 200_000;

/// One live origin of a stream, as a lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The origin's node id.
    pub node: String,
    /// Where to pull from: `rtmp://HOST:PORT`.
    pub url: String,
    /// When its publish started (Unix ms): the newest is the publisher's
    /// current home.
    pub started_ms: u64,
}

/// A stream this node announces.
#[derive(Debug, Clone)]
struct Announced {
    publisher: SessionId,
    started_ms: u64,
}

/// An App and stream name.
type StreamKey = (String, String);

/// The registry as this node sees it; shared by the announcing task, the
/// event sink, the HTTP API and the pull edges.
#[derive(Debug)]
pub struct Registry {
    node_id: String,
    advertise: Option<String>,
    prefix: String,
    ttl: Duration,
    heartbeat: Duration,
    /// The Redis URL with any password masked: the only form logged or
    /// shown.
    redis_shown: String,
    client: redis::Client,
    started_ms: u64,
    /// Streams announced (or to announce) now.
    announced: Mutex<BTreeMap<StreamKey, Announced>>,
    /// The connection, while Redis answers; lookups share it.
    conn: Mutex<Option<MultiplexedConnection>>,
    connected: AtomicBool,
    /// Heartbeats and announcements that failed (Redis down or refusing),
    /// and on an origin the connection attempts that did.
    announce_errors: AtomicU64,
    lookups_found: AtomicU64,
    lookups_none: AtomicU64,
    lookups_failed: AtomicU64,
    /// Wakes the task when a publish starts or ends, so an announcement
    /// does not wait for the next heartbeat.
    wake: Notify,
    /// Every other node's streams, read at each heartbeat: what pull
    /// edges ask (they must answer from memory). Empty while Redis is
    /// away, so edges fall back to their static origins.
    mirror: Mutex<HashMap<StreamKey, Vec<Origin>>>,
    /// Told after each read of the mirror (edges then check that each pull
    /// follows its stream's newest origin).
    refreshed: Notify,
    /// Told when another node announced that its streams changed.
    changed: Notify,
}

/// What `GET /api/v1/cluster` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    node_id: String,
    advertise: Option<String>,
    redis: String,
    redis_connected: bool,
    key_prefix: String,
    ttl_secs: f64,
    heartbeat_secs: f64,
    announce_errors: u64,
    announced: Vec<AnnouncedJson>,
    /// Other nodes' streams known from the last read of the registry:
    /// what a play on this node can be pulled for.
    mirrored_streams: usize,
}

#[derive(Debug, Serialize)]
struct AnnouncedJson {
    app: String,
    name: String,
    started_ms: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// 1 while Redis answers.
    pub redis_up: bool,
    /// Failed heartbeats and announcements.
    pub announce_errors: u64,
    /// Streams announced now.
    pub announced: usize,
    /// Lookups that found an origin, found none, failed.
    pub lookups: [u64; 3],
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A node id nobody else has: random per start.
fn random_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(unix_ms(SystemTime::now()));
    format!("{:016x}", h.finish())
}

/// `url` with its password (if any) replaced by `***`.
pub fn mask_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// `APP/NAME` with the App's `%` and `/` escaped, so the pair is one key.
fn stream_path(app: &str, name: &str) -> String {
    format!("{}/{name}", app.replace('%', "%25").replace('/', "%2F"))
}

/// The App and name of a [`stream_path`].
fn parse_stream_path(path: &str) -> Option<StreamKey> {
    let (app, name) = path.split_once('/')?;
    Some((app.replace("%2F", "/").replace("%25", "%"), name.to_owned()))
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Registry {
    /// The registry of `args`, or `None` when clustering is off. It does
    /// not connect yet: [`Registry::start`] does, in a task.
    pub fn new(args: &ClusterArgs) -> Result<Option<Arc<Registry>>, String> {
        let Some(url) = &args.redis else {
            return Ok(None);
        };
        let redis_shown = mask_password(url);
        let client = redis::Client::open(url.as_str())
            .map_err(|e| format!("cluster.redis {redis_shown}: {e}"))?;
        Ok(Some(Arc::new(Registry {
            node_id: args.node_id.clone().unwrap_or_else(random_node_id),
            advertise: args.advertise.clone(),
            prefix: args.key_prefix.clone(),
            ttl: args.ttl(),
            heartbeat: args.heartbeat(),
            redis_shown,
            client,
            started_ms: unix_ms(SystemTime::now()),
            announced: Mutex::default(),
            conn: Mutex::default(),
            connected: AtomicBool::new(false),
            announce_errors: AtomicU64::new(0),
            lookups_found: AtomicU64::new(0),
            lookups_none: AtomicU64::new(0),
            lookups_failed: AtomicU64::new(0),
            wake: Notify::new(),
            mirror: Mutex::default(),
            refreshed: Notify::new(),
            changed: Notify::new(),
        })))
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// The pub/sub channel on which nodes say their streams changed.
    fn changed_channel(&self) -> String {
        format!("{}changed", self.prefix)
    }

    fn stream_key(&self, app: &str, name: &str) -> String {
        format!("{}stream:{}", self.prefix, stream_path(app, name))
    }

    /// The event sink: a publish starting or ending wakes the task, which
    /// reads what is published from the server itself (so a dropped event
    /// costs at most one heartbeat of delay, never a wrong registry).
    pub fn sink(self: &Arc<Self>) -> crate::events::Sink {
        let me = self.clone();
        Box::new(move |event| {
            if matches!(
                event,
                ServerEvent::PublishStarted { .. } | ServerEvent::PublishEnded { .. }
            ) {
                me.wake.notify_one();
            }
        })
    }

    /// Starts the task that keeps the connection and this node's
    /// announcements; it runs until the process exits.
    pub fn start(self: &Arc<Self>, handle: Handle) {
        tracing::info!(
            node = %self.node_id,
            redis = %self.redis_shown,
            advertise = self.advertise.as_deref().unwrap_or("(none: lookups only)"),
            "cluster registry"
        );
        let me = self.clone();
        tokio::spawn(async move { me.run(handle).await });
        let me = self.clone();
        tokio::spawn(async move { me.listen().await });
    }

    /// Follows the other nodes' change notices; like the announcing task,
    /// it reconnects with backoff (a lost notice costs one heartbeat).
    async fn listen(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        let channel = self.changed_channel();
        loop {
            let subscribe = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            if let Ok(Ok(mut pubsub)) =
                tokio::time::timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT, subscribe).await
            {
                backoff = BACKOFF_MIN;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if msg.get_payload::<String>().ok().as_deref() != Some(self.node_id.as_str()) {
                        self.changed.notify_one();
                    }
                }
            }
            // The announcing task reports the outage; this one only retries.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn run(self: Arc<Self>, handle: Handle) {
        let mut backoff = BACKOFF_MIN;
        let mut was_down = false;
        // What this node has in Redis, so a withdrawn stream's sorted-set
        // member is removed (its hash field goes with the rewrite).
        let mut written: BTreeSet<StreamKey> = BTreeSet::new();
        loop {
            match self.connect().await {
                Ok(mut conn) => {
                    *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    backoff = BACKOFF_MIN;
                    let mut announce = true;
                    loop {
                        let result = if announce {
                            self.reconcile(&handle);
                            match self.write(&mut conn, &mut written).await {
                                Ok(()) => self.refresh(&mut conn).await,
                                Err(e) => Err(e),
                            }
                        } else {
                            self.refresh(&mut conn).await
                        };
                        match result {
                            Ok(()) => {
                                if !self.connected.swap(true, Ordering::Relaxed) {
                                    tracing::info!(redis = %self.redis_shown, node = %self.node_id,
                                        "cluster registry connected: announcing");
                                }
                            }
                            Err(e) => {
                                self.announce_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, redis = %self.redis_shown,
                                    "cluster registry lost: RTMP goes on, reconnecting");
                                was_down = true;
                                break;
                            }
                        }
                        announce = tokio::select! {
                            () = self.wake.notified() => true,
                            () = tokio::time::sleep(self.heartbeat) => true,
                            // Another node's streams changed: read them now
                            // rather than at the next heartbeat.
                            () = self.changed.notified() => false,
                        };
                    }
                    *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.connected.store(false, Ordering::Relaxed);
                    self.mirror
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clear();
                    self.refreshed.notify_waiters();
                }
                Err(e) => {
                    // One warning per outage, then quiet retries.
                    if !was_down {
                        tracing::warn!(error = %e, redis = %self.redis_shown,
                            "cluster registry unavailable: RTMP goes on, static origins only, retrying");
                        was_down = true;
                    } else {
                        tracing::debug!(error = %e, "cluster registry still unavailable");
                    }
                    if self.advertise.is_some() {
                        self.announce_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT);
        match tokio::time::timeout(
            CONNECT_TIMEOUT + COMMAND_TIMEOUT,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
        }
    }

    /// Brings the announced set in line with what is published here now
    /// by clients (relayed and pulled streams are never announced: this
    /// node is not their origin).
    fn reconcile(&self, handle: &Handle) {
        if self.advertise.is_none() {
            return;
        }
        let now = SystemTime::now();
        let mut live = BTreeMap::new();
        for s in handle.streams() {
            let (Some(name), Some(publisher)) = (s.name, s.publisher) else {
                continue;
            };
            let from_client = handle
                .connection_stats(publisher)
                .is_some_and(|c| matches!(c.transport, Transport::Rtmp | Transport::Rtmps));
            if from_client {
                let since = s.published_for.unwrap_or_default();
                live.insert((s.app, name), (publisher, unix_ms(now - since)));
            }
        }
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.retain(|k, a| live.get(k).is_some_and(|(p, _)| *p == a.publisher));
        for (k, (publisher, started_ms)) in live {
            announced.entry(k).or_insert(Announced {
                publisher,
                started_ms,
            });
        }
    }

    /// Rewrites this node's entries in one MULTI: the node hash from
    /// scratch, each stream's member and expiry, and the removal of the
    /// members of streams no longer published here. A node that announces
    /// nothing only checks that Redis answers.
    async fn write(
        &self,
        conn: &mut MultiplexedConnection,
        written: &mut BTreeSet<StreamKey>,
    ) -> Result<(), String> {
        let Some(url) = &self.advertise else {
            let ping = redis::cmd("PING");
            return match tokio::time::timeout(COMMAND_TIMEOUT, ping.query_async::<String>(conn))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {COMMAND_TIMEOUT:?}")),
            };
        };
        let streams: Vec<(StreamKey, u64)> = self
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, a)| (k.clone(), a.started_ms))
            .collect();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let node_key = self.node_key(&self.node_id);
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("DEL").arg(&node_key).ignore();
        let mut hset = redis::cmd("HSET");
        hset.arg(&node_key)
            .arg("id")
            .arg(&self.node_id)
            .arg("url")
            .arg(url)
            .arg("started")
            .arg(self.started_ms);
        for ((app, name), started) in &streams {
            hset.arg(format!("stream:{}", stream_path(app, name)))
                .arg(*started);
        }
        p.add_command(hset).ignore();
        p.cmd("PEXPIRE").arg(&node_key).arg(ttl_ms).ignore();
        for ((app, name), started) in &streams {
            let key = self.stream_key(app, name);
            p.cmd("ZADD")
                .arg(&key)
                .arg(*started)
                .arg(&self.node_id)
                .ignore();
            p.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
        }
        let now: BTreeSet<StreamKey> = streams.into_iter().map(|(k, _)| k).collect();
        for (app, name) in written.difference(&now) {
            p.cmd("ZREM")
                .arg(self.stream_key(app, name))
                .arg(&self.node_id)
                .ignore();
        }
        if now != *written {
            // Tells the other nodes to read the registry now, so a play on
            // an edge right after a publish starts finds its origin.
            p.cmd("PUBLISH")
                .arg(self.changed_channel())
                .arg(&self.node_id)
                .ignore();
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, p.query_async::<()>(conn)).await {
            Ok(Ok(())) => {
                *written = now;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {COMMAND_TIMEOUT:?}")),
        }
    }

    /// Reads every node's hash into the mirror.
    async fn refresh(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let read = async {
            let pattern = format!("{}node:*", glob_escape(&self.prefix));
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(conn)
                    .await?;
                keys.extend(batch);
                if next == 0 || keys.len() >= MAX_NODES {
                    break;
                }
                cursor = next;
            }
            keys.truncate(MAX_NODES);
            let mut p = redis::pipe();
            for key in &keys {
                p.cmd("HGETALL").arg(key);
            }
            let nodes: Vec<HashMap<String, String>> = if keys.is_empty() {
                Vec::new()
            } else {
                p.query_async(conn).await?
            };
            Ok::<_, redis::RedisError>(nodes)
        };
        let nodes = match tokio::time::timeout(COMMAND_TIMEOUT * 2, read).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {:?}", COMMAND_TIMEOUT * 2)),
        };
        let mut mirror: HashMap<StreamKey, Vec<Origin>> = HashMap::new();
        let mut kept = 0;
        for node in nodes {
            let (Some(id), Some(url)) = (node.get("id"), node.get("url")) else {
                continue;
            };
            if *id == self.node_id {
                continue;
            }
            for (field, started) in &node {
                let Some(key) = field.strip_prefix("stream:").and_then(parse_stream_path) else {
                    continue;
                };
                let Ok(started_ms) = started.parse::<u64>() else {
                    continue;
                };
                if kept >= MAX_MIRRORED {
                    break;
                }
                kept += 1;
                mirror.entry(key).or_default().push(Origin {
                    node: id.clone(),
                    url: url.clone(),
                    started_ms,
                });
            }
        }
        if kept >= MAX_MIRRORED {
            tracing::warn!(
                max = MAX_MIRRORED,
                "cluster registry: more streams than mirrored"
            );
        }
        for origins in mirror.values_mut() {
            origins.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(a.node.cmp(&b.node)));
        }
        *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) = mirror;
        self.refreshed.notify_waiters();
        Ok(())
    }

    /// The live origins of `app`/`name` as of the last heartbeat (other
    /// nodes only), newest publish first; answered from memory.
    pub fn mirrored(&self, app: &str, name: &str) -> Vec<Origin> {
        self.mirror
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(app.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// [`Registry::mirrored`] for a pull that starts, counted in the
    /// lookup metrics (`error`: Redis is away, the static origins answer).
    pub fn candidates(&self, app: &str, name: &str) -> Vec<Origin> {
        let origins = self.mirrored(app, name);
        let counter = if !self.connected.load(Ordering::Relaxed) {
            &self.lookups_failed
        } else if origins.is_empty() {
            &self.lookups_none
        } else {
            &self.lookups_found
        };
        counter.fetch_add(1, Ordering::Relaxed);
        origins
    }

    /// Waits until the mirror was read again (or cleared).
    pub async fn refreshed(&self) {
        self.refreshed.notified().await;
    }

    /// The live origins of `app`/`name` other than this node, newest
    /// publish first. `Err` when Redis cannot be asked now: the caller
    /// falls back to its static origins.
    pub async fn origins(&self, app: &str, name: &str) -> Result<Vec<Origin>, String> {
        let result = self.lookup(app, name).await;
        let counter = match &result {
            Ok(o) if o.is_empty() => &self.lookups_none,
            Ok(_) => &self.lookups_found,
            Err(_) => &self.lookups_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn lookup(&self, app: &str, name: &str) -> Result<Vec<Origin>, String> {
        let Some(mut conn) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Err("cluster registry unavailable".to_owned());
        };
        let key = self.stream_key(app, name);
        let field = format!("stream:{}", stream_path(app, name));
        let ask = async {
            let nodes: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(0)
                .arg(MAX_CANDIDATES - 1)
                .query_async(&mut conn)
                .await?;
            let mut p = redis::pipe();
            for node in &nodes {
                p.cmd("HMGET")
                    .arg(self.node_key(node))
                    .arg("url")
                    .arg(&field);
            }
            let found: Vec<(Option<String>, Option<u64>)> = if nodes.is_empty() {
                Vec::new()
            } else {
                p.query_async(&mut conn).await?
            };
            let mut origins = Vec::new();
            let mut dead = Vec::new();
            for (node, entry) in nodes.into_iter().zip(found) {
                match entry {
                    (Some(url), Some(started_ms)) => {
                        if node != self.node_id {
                            origins.push(Origin {
                                node,
                                url,
                                started_ms,
                            });
                        }
                    }
                    _ => dead.push(node),
                }
            }
            if !dead.is_empty() {
                // A dead node's member: gone from lookups already, and
                // removed so the set never grows with nodes that died. A
                // live node that raced this re-adds it at its heartbeat.
                redis::cmd("ZREM")
                    .arg(&key)
                    .arg(&dead)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Ok::<_, redis::RedisError>(origins)
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, ask).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {COMMAND_TIMEOUT:?}")),
        }
    }

    /// What the HTTP API shows.
    pub fn status(&self) -> Status {
        let announced = self
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((app, name), a)| AnnouncedJson {
                app: app.clone(),
                name: name.clone(),
                started_ms: a.started_ms,
            })
            .collect();
        Status {
            node_id: self.node_id.clone(),
            advertise: self.advertise.clone(),
            redis: self.redis_shown.clone(),
            redis_connected: self.connected.load(Ordering::Relaxed),
            key_prefix: self.prefix.clone(),
            ttl_secs: self.ttl.as_secs_f64(),
            heartbeat_secs: self.heartbeat.as_secs_f64(),
            announce_errors: self.announce_errors.load(Ordering::Relaxed),
            announced,
            mirrored_streams: self.mirror.lock().unwrap_or_else(|e| e.into_inner()).len(),
        }
    }

    /// What `/metrics` shows.
    pub fn counters(&self) -> Counters {
        Counters {
            redis_up: self.connected.load(Ordering::Relaxed),
            announce_errors: self.announce_errors.load(Ordering::Relaxed),
            announced: self
                .announced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            lookups: [
                self.lookups_found.load(Ordering::Relaxed),
                self.lookups_none.load(Ordering::Relaxed),
                self.lookups_failed.load(Ordering::Relaxed),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("redis://:hunter2@10.0.0.1:6379/3"),
            "redis://:***@10.0.0.1:6379/3"
        );
        assert_eq!(
            mask_password("redis://user:hunter2@h"),
            "redis://user:***@h"
        );
        assert_eq!(mask_password("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn an_app_with_a_slash_never_meets_a_name_with_one() {
        assert_ne!(stream_path("a/b", "c"), stream_path("a", "b/c"));
        assert_eq!(stream_path("live", "cam/1"), "live/cam/1");
        assert_eq!(stream_path("a%2Fb", "c"), "a%252Fb/c");
        for (app, name) in [("a/b", "c"), ("a", "b/c"), ("a%2Fb", "%25/x"), ("live", "")] {
            assert_eq!(
                parse_stream_path(&stream_path(app, name)),
                Some((app.to_owned(), name.to_owned()))
            );
        }
    }

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(glob_escape("tincan:"), "tincan:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
