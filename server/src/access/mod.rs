//! Who may connect, publish and play: address lists, names, the Go RTMP
//! server's channels and keys, its JWT event callback and Redis control
//! commands, and an HTTP auth hook (docs/operations.md).
//!
//! Every decision goes through the core's approval tickets: the core is
//! told to ask ([`Approvals`]) only for the kinds of request some rule
//! needs, so a server without rules decides everything locally at no cost.
//! The binary's one event consumer (crate::events) hands each event to
//! [`Access::event`], which decides what it can at once (lists, names,
//! channels) and spawns a task for what needs an HTTP call; answers go
//! back through the adapter's `Handle` from wherever they are made.

pub mod args;
mod http;
mod policy;
mod redis;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tincan_core::event::{ConnectInfo, Denial, SessionId};
use tincan_core::server::{Approvals, Decider, ServerConfig, ServerEvent, Ticket};
use tincan_tokio::Handle;

pub use args::{AccessArgs, HookArgs, RedisArgs};
use http::{Callback, Hook, HookBody};
use policy::{Action, Policy};

/// The rules of one App (or the server's).
#[derive(Debug)]
struct Rules {
    policy: Policy,
    callback: Option<Arc<Callback>>,
}

/// The rules in force: the server's and each App's.
#[derive(Debug)]
struct RuleSet {
    server: Arc<Rules>,
    apps: HashMap<String, Arc<Rules>>,
}

impl RuleSet {
    fn new(client: &reqwest::Client, settings: &Settings) -> Self {
        let rules = |a: &AccessArgs| {
            Arc::new(Rules {
                policy: Policy { args: a.clone() },
                callback: a.callback_url.as_ref().map(|url| {
                    Arc::new(Callback::new(
                        client.clone(),
                        url.clone(),
                        a.jwt_secret.as_deref().unwrap_or_default(),
                        a.jwt_subject.clone(),
                        secs(a.callback_timeout),
                    ))
                }),
            })
        };
        RuleSet {
            server: rules(&settings.server),
            apps: settings
                .apps
                .iter()
                .map(|(name, a)| (name.clone(), rules(a)))
                .collect(),
        }
    }
}

/// A publish being decided, approved but not started, or live.
#[derive(Debug, Clone)]
struct Pub {
    id: SessionId,
    stream: u32,
    app: String,
    name: String,
    /// When its decision was made (approved); `None` while deciding.
    decided: Option<Instant>,
    /// The callback's `stream-id`, if a callback accepted it.
    stream_id: Option<String>,
    /// Whose callback to tell `stop`.
    callback: Option<Arc<Callback>>,
    client_ip: String,
}

/// What a connection said about itself.
#[derive(Debug, Default)]
struct Conn {
    peer: Option<SocketAddr>,
    info: Option<Arc<ConnectInfo>>,
    /// One of this server's relay connections (dialed, not accepted): the
    /// operator configured it, so its local publish or play is approved.
    outbound: bool,
}

/// An approved publish that has not started after this long was refused
/// by the broker (a name taken, the stream limit): it no longer holds its
/// channel.
const STALE_APPROVAL: Duration = Duration::from_secs(5);

/// Grace before a refused publisher's connection is closed, so its status
/// reaches it first (the Go server closes after a refused callback).
const CLOSE_AFTER_REFUSAL: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
struct State {
    conns: HashMap<SessionId, Conn>,
    /// Publish requests by (connection, message stream).
    pending: HashMap<(SessionId, u32), Pub>,
    /// Live publishes by (App, name).
    live: HashMap<(String, String), Pub>,
    /// Plays by (connection, message stream): (App, name).
    players: HashMap<(SessionId, u32), (String, String)>,
}

/// Access control, shared by the event consumer, its decision tasks and
/// the Redis subscriber.
#[derive(Debug)]
pub struct Access {
    handle: Handle,
    /// Shared by the callback and the hook, and by rules made on reload.
    client: reqwest::Client,
    /// The server's and each App's rules; replaced whole on reload.
    rules: std::sync::RwLock<Arc<RuleSet>>,
    hook: Option<Arc<Hook>>,
    hook_actions: Vec<Action>,
    state: Mutex<State>,
    /// Pull relays, which take approved plays (see [`Access::set_relays`]).
    relays: std::sync::OnceLock<Arc<crate::relay::Relays>>,
}

/// Everything access control reads from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: AccessArgs,
    pub apps: Vec<(String, AccessArgs)>,
    pub hook: HookArgs,
    pub redis: RedisArgs,
}

impl Settings {
    /// The approvals the core needs, the per-IP exemptions and a deadline
    /// that outlasts the callback and the hook: written into `config`.
    pub fn apply(&self, config: &mut ServerConfig) {
        let policies: Vec<Policy> = std::iter::once(&self.server)
            .chain(self.apps.iter().map(|(_, a)| a))
            .map(|a| Policy { args: a.clone() })
            .collect();
        let hook_asks = |action: Action| {
            self.hook.url.is_some() && self.hook.actions.iter().any(|a| a == action.as_str())
        };
        let decider = |action: Action| {
            if hook_asks(action) || policies.iter().any(|p| p.decides(action)) {
                Decider::Embedder
            } else {
                Decider::Local
            }
        };
        let longest_callback = std::iter::once(&self.server)
            .chain(self.apps.iter().map(|(_, a)| a))
            .filter(|a| a.callback_url.is_some())
            .map(|a| a.callback_timeout)
            .fold(0.0, f64::max);
        let hook = if self.hook.url.is_some() {
            self.hook.timeout
        } else {
            0.0
        };
        let needed = Duration::from_secs_f64(longest_callback + hook) + Duration::from_secs(2);
        config.approvals = Approvals {
            connect: decider(Action::Connect),
            publish: decider(Action::Publish),
            play: decider(Action::Play),
            deadline: Approvals::default().deadline.max(needed),
        };
        config.per_ip_exempt.clone_from(&self.server.per_ip_exempt);
    }

    /// Whether access control needs the server's events at all.
    pub fn active(&self, config: &ServerConfig) -> bool {
        let a = &config.approvals;
        a.connect == Decider::Embedder
            || a.publish == Decider::Embedder
            || a.play == Decider::Embedder
            || self.redis.enabled
            || self.hook.notify_url.is_some()
            || self.server.callback_url.is_some()
            || self.apps.iter().any(|(_, a)| a.callback_url.is_some())
    }
}

fn secs(v: f64) -> Duration {
    Duration::try_from_secs_f64(v).unwrap_or(Duration::from_secs(10))
}

impl Access {
    /// Access control for `handle`'s server; starts the Redis subscriber
    /// if configured (on the current tokio runtime).
    pub fn start(handle: Handle, settings: &Settings) -> Result<Arc<Access>, String> {
        // Connect timeouts are the per-call timeouts' business; reqwest's
        // own pool is shared by the callback and the hook.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("tincan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let hook = (settings.hook.url.is_some() || settings.hook.notify_url.is_some()).then(|| {
            Arc::new(Hook::new(
                client.clone(),
                settings.hook.url.clone(),
                settings.hook.notify_url.clone(),
                secs(settings.hook.timeout),
                usize::try_from(settings.hook.max_pending).unwrap_or(64),
            ))
        });
        let hook_actions = [Action::Connect, Action::Publish, Action::Play]
            .into_iter()
            .filter(|a| {
                settings.hook.url.is_some() && settings.hook.actions.iter().any(|s| s == a.as_str())
            })
            .collect();
        let access = Arc::new(Access {
            handle,
            rules: std::sync::RwLock::new(Arc::new(RuleSet::new(&client, settings))),
            client,
            hook,
            hook_actions,
            state: Mutex::default(),
            relays: std::sync::OnceLock::new(),
        });
        if settings.redis.enabled {
            redis::spawn(access.clone(), settings.redis.clone());
        }
        Ok(access)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn rules(&self, app: &str) -> Arc<Rules> {
        let set = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        set.apps.get(app).unwrap_or(&set.server).clone()
    }

    /// A reloaded configuration's rules (address lists, names, channel
    /// keys, the event callback, per App): decisions asked from now on
    /// follow them; what is live or already decided is not revisited. The
    /// hook and Redis keep their settings until a restart.
    pub fn reconfigure(&self, settings: &Settings) {
        let set = Arc::new(RuleSet::new(&self.client, settings));
        *self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
    }

    fn hook_asks(&self, action: Action) -> Option<Arc<Hook>> {
        self.hook_actions
            .contains(&action)
            .then(|| self.hook.clone())
            .flatten()
    }

    /// Hands approved plays to the relays (which hold a play for a
    /// stream they pull until it arrives) instead of approving them.
    pub fn set_relays(&self, relays: Arc<crate::relay::Relays>) {
        let _ = self.relays.set(relays);
    }

    /// A play's answer: a refusal goes to the client, an approval to the
    /// relays if they run.
    fn answer_play(
        &self,
        ticket: Ticket,
        id: SessionId,
        app: &str,
        name: &str,
        result: Result<(), Denial>,
    ) {
        match (result, self.relays.get()) {
            (Ok(()), Some(relays)) => relays.decide_play(ticket, id, app, name),
            (result, _) => self.answer(ticket, result),
        }
    }

    fn answer(&self, ticket: Ticket, result: Result<(), Denial>) {
        let _ = match result {
            Ok(()) => self.handle.approve(ticket),
            Err(denial) => self.handle.deny(ticket, denial),
        };
    }

    /// One server event, in the core's order. Never blocks: what needs a
    /// call runs in a task of its own.
    pub fn event(self: &Arc<Self>, event: &ServerEvent) {
        match event {
            ServerEvent::Opened {
                id,
                peer,
                transport,
            } => {
                self.lock().conns.insert(
                    *id,
                    Conn {
                        peer: *peer,
                        info: None,
                        outbound: *transport == tincan_core::server::Transport::RtmpOut,
                    },
                );
            }
            ServerEvent::Connected { id, info } => {
                self.lock().conns.entry(*id).or_default().info = Some(Arc::new((**info).clone()));
            }
            ServerEvent::ConnectRequest {
                ticket,
                id,
                peer,
                info,
            } => {
                {
                    let mut state = self.lock();
                    let conn = state.conns.entry(*id).or_default();
                    conn.peer = *peer;
                    conn.info = Some(Arc::new((**info).clone()));
                }
                self.connect_request(*ticket, *id, *peer, info);
            }
            ServerEvent::PublishRequest {
                ticket,
                id,
                peer,
                request,
            } => self.publish_request(*ticket, *id, *peer, request),
            ServerEvent::PlayRequest {
                ticket,
                id,
                peer,
                request,
            } => self.play_request(*ticket, *id, *peer, request),
            ServerEvent::PublishStarted {
                id,
                stream,
                app,
                name,
                ..
            } => self.publish_started(*id, *stream, app, name),
            ServerEvent::PublishEnded {
                id,
                stream,
                app,
                name,
            } => {
                let ended = {
                    let mut state = self.lock();
                    let key = (app.clone(), name.clone());
                    match state.live.get(&key) {
                        Some(p) if p.id == *id && p.stream == *stream => state.live.remove(&key),
                        _ => None,
                    }
                };
                self.notify(*id, "unpublish", Some(app), Some(name), None);
                if let Some(p) = ended {
                    self.stopped(p);
                }
            }
            ServerEvent::PlayStarted {
                id,
                stream,
                app,
                name,
                ..
            } => {
                self.lock()
                    .players
                    .insert((*id, *stream), (app.clone(), name.clone()));
            }
            ServerEvent::PlayStopped {
                id,
                stream,
                app,
                name,
            } => {
                self.lock().players.remove(&(*id, *stream));
                self.notify(*id, "stop", Some(app), Some(name), None);
            }
            ServerEvent::Closed { id, .. } => {
                let ended: Vec<Pub> = {
                    let mut state = self.lock();
                    state.pending.retain(|(c, _), _| c != id);
                    state.players.retain(|(c, _), _| c != id);
                    let keys: Vec<_> = state
                        .live
                        .iter()
                        .filter(|(_, p)| p.id == *id)
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter().filter_map(|k| state.live.remove(k)).collect()
                };
                for p in ended {
                    self.stopped(p);
                }
                self.notify(*id, "disconnect", None, None, None);
                self.lock().conns.remove(id);
            }
            _ => {}
        }
    }

    /// Whether `id` is one of this server's relay connections.
    fn is_outbound(&self, id: SessionId) -> bool {
        self.lock().conns.get(&id).is_some_and(|c| c.outbound)
    }

    fn peer_ip(&self, id: SessionId, peer: Option<SocketAddr>) -> Option<IpAddr> {
        peer.or_else(|| self.lock().conns.get(&id).and_then(|c| c.peer))
            .map(|p| p.ip())
    }

    fn body(&self, id: SessionId, action: &'static str) -> HookBody {
        let state = self.lock();
        let conn = state.conns.get(&id);
        let info = conn.and_then(|c| c.info.clone());
        let peer = conn.and_then(|c| c.peer);
        HookBody {
            action,
            app: info.as_ref().map(|i| i.app.clone()).unwrap_or_default(),
            client_ip: peer.map(|p| p.ip().to_string()),
            client_addr: peer.map(|p| p.to_string()),
            id: id.0,
            connection_id: info
                .as_ref()
                .map(|i| i.connection_id.clone())
                .unwrap_or_default(),
            tc_url: info.as_ref().and_then(|i| i.tc_url.clone()),
            flash_ver: info.as_ref().and_then(|i| i.flash_ver.clone()),
            user: info.as_ref().and_then(|i| i.user.clone()),
            ..HookBody::default()
        }
    }

    fn notify(
        &self,
        id: SessionId,
        action: &'static str,
        app: Option<&str>,
        name: Option<&str>,
        stream_id: Option<String>,
    ) {
        let Some(hook) = &self.hook else { return };
        let mut body = self.body(id, action);
        if let Some(app) = app {
            body.app = app.to_owned();
        }
        if body.app.is_empty() && body.connection_id.is_empty() {
            // Never connected (a probe, a failed handshake): nothing the
            // hook was ever told about.
            return;
        }
        body.name = name.map(str::to_owned);
        body.stream_id = stream_id;
        hook.notify(body);
    }

    /// A live publish ended: its callback's `stop` event.
    fn stopped(&self, p: Pub) {
        if let (Some(callback), Some(stream_id)) = (p.callback, p.stream_id) {
            tokio::spawn(async move {
                callback
                    .stop(&p.app, &p.name, &stream_id, &p.client_ip)
                    .await;
            });
        }
    }

    fn connect_request(
        self: &Arc<Self>,
        ticket: Ticket,
        id: SessionId,
        peer: Option<SocketAddr>,
        info: &ConnectInfo,
    ) {
        let rules = self.rules(&info.app);
        let ip = peer.map(|p| p.ip());
        let local = rules
            .policy
            .address(Action::Connect, ip)
            .or_else(|| rules.policy.name("channel (App)", &info.app));
        if let Some(denial) = local {
            tracing::info!(%id, app = %info.app, reason = %denial.description, "connect refused");
            return self.answer(ticket, Err(denial));
        }
        let Some(hook) = self.hook_asks(Action::Connect) else {
            return self.answer(ticket, Ok(()));
        };
        let body = self.body(id, "connect");
        let this = self.clone();
        tokio::spawn(async move {
            let result = hook.ask(&body, Denial::policy).await;
            this.answer(ticket, result);
        });
    }

    fn publish_request(
        self: &Arc<Self>,
        ticket: Ticket,
        id: SessionId,
        peer: Option<SocketAddr>,
        request: &tincan_core::server::StreamRequest,
    ) {
        if self.is_outbound(id) {
            return self.answer(ticket, Ok(()));
        }
        let app = &request.app;
        let rules = self.rules(app);
        let ip = self.peer_ip(id, peer);
        let mut local = rules
            .policy
            .address(Action::Publish, ip)
            .or_else(|| rules.policy.name("stream key", &request.name));
        let client_ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        {
            let mut state = self.lock();
            if local.is_none() && rules.policy.args.channel_keys {
                let now = Instant::now();
                let other = |p: &&Pub| p.app == *app && (p.id, p.stream) != (id, request.stream);
                let busy = state.live.values().filter(other).count() > 0
                    || state.pending.values().filter(other).any(|p| {
                        p.decided
                            .map_or(true, |t| now.duration_since(t) < STALE_APPROVAL)
                    });
                if busy {
                    local = Some(Denial::bad_name(&format!(
                        "channel {app} is already publishing"
                    )));
                }
            }
            if local.is_none() {
                state.pending.insert(
                    (id, request.stream),
                    Pub {
                        id,
                        stream: request.stream,
                        app: app.clone(),
                        name: request.name.clone(),
                        decided: None,
                        stream_id: None,
                        callback: rules.callback.clone(),
                        client_ip: client_ip.clone(),
                    },
                );
            }
        }
        if let Some(denial) = local {
            tracing::info!(%id, %app, reason = %denial.description, "publish refused");
            return self.answer(ticket, Err(denial));
        }
        let callback = rules.callback.clone();
        let hook = self.hook_asks(Action::Publish);
        if callback.is_none() && hook.is_none() {
            return self.decided(ticket, id, request.stream, Ok(None), false);
        }
        let mut body = self.body(id, "publish");
        body.app.clone_from(app);
        body.name = Some(request.name.clone());
        body.query.clone_from(&request.query);
        let (app, name, stream) = (app.clone(), request.name.clone(), request.stream);
        let this = self.clone();
        tokio::spawn(async move {
            let mut stream_id = None;
            if let Some(callback) = callback {
                match callback.start(&app, &name, &client_ip).await {
                    Ok(sid) => stream_id = Some(sid),
                    Err(denial) => return this.decided(ticket, id, stream, Err(denial), true),
                }
            }
            if let Some(hook) = hook {
                body.stream_id.clone_from(&stream_id);
                if let Err(denial) = hook.ask(&body, Denial::policy).await {
                    return this.decided(ticket, id, stream, Err(denial), false);
                }
            }
            this.decided(ticket, id, stream, Ok(stream_id), false);
        });
    }

    /// A publish request's outcome: recorded, then answered; a publisher
    /// the callback refused is closed (as the Go server does).
    fn decided(
        self: &Arc<Self>,
        ticket: Ticket,
        id: SessionId,
        stream: u32,
        result: Result<Option<String>, Denial>,
        close: bool,
    ) {
        {
            let mut state = self.lock();
            match &result {
                Ok(stream_id) => {
                    if let Some(p) = state.pending.get_mut(&(id, stream)) {
                        p.decided = Some(Instant::now());
                        p.stream_id.clone_from(stream_id);
                    }
                }
                Err(_) => {
                    state.pending.remove(&(id, stream));
                }
            }
        }
        let refused = result.is_err();
        self.answer(ticket, result.map(|_| ()));
        if refused && close {
            let handle = self.handle.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_AFTER_REFUSAL).await;
                handle.close_connection(id, "publish refused by the event callback");
            });
        }
    }

    fn publish_started(&self, id: SessionId, stream: u32, app: &str, name: &str) {
        let kick: Vec<SessionId> = {
            let mut state = self.lock();
            let mut p = state.pending.remove(&(id, stream)).unwrap_or_else(|| Pub {
                id,
                stream,
                app: app.to_owned(),
                name: name.to_owned(),
                decided: Some(Instant::now()),
                stream_id: None,
                callback: None,
                client_ip: String::new(),
            });
            p.app = app.to_owned();
            p.name = name.to_owned();
            state.live.insert((app.to_owned(), name.to_owned()), p);
            if self.rules(app).policy.args.channel_keys {
                // Players that arrived before the publisher with another
                // key would wait for a stream that never comes: told now.
                state
                    .players
                    .iter()
                    .filter(|(_, (a, n))| a == app && n != name)
                    .map(|((c, _), _)| *c)
                    .collect()
            } else {
                Vec::new()
            }
        };
        for player in kick {
            tracing::info!(id = %player, %app, "player closed: its key is not the channel's");
            self.handle
                .close_connection(player, "invalid stream key for this channel");
        }
    }

    fn play_request(
        self: &Arc<Self>,
        ticket: Ticket,
        id: SessionId,
        peer: Option<SocketAddr>,
        request: &tincan_core::server::StreamRequest,
    ) {
        if self.is_outbound(id) {
            return self.answer(ticket, Ok(()));
        }
        let (app_name, stream_name) = (request.app.clone(), request.name.clone());
        let app = &request.app;
        let rules = self.rules(app);
        let ip = self.peer_ip(id, peer);
        let mut local = rules
            .policy
            .address(Action::Play, ip)
            .or_else(|| rules.policy.name("stream key", &request.name));
        if local.is_none() && rules.policy.args.channel_keys {
            let state = self.lock();
            let live_key = state
                .live
                .values()
                .find(|p| p.app == *app)
                .map(|p| p.name.clone());
            if live_key.is_some_and(|k| k != request.name) {
                local = Some(Denial::policy(&format!(
                    "invalid stream key for channel {app}"
                )));
            }
        }
        if let Some(denial) = local {
            tracing::info!(%id, %app, reason = %denial.description, "play refused");
            return self.answer_play(ticket, id, &app_name, &stream_name, Err(denial));
        }
        let Some(hook) = self.hook_asks(Action::Play) else {
            return self.answer_play(ticket, id, &app_name, &stream_name, Ok(()));
        };
        let mut body = self.body(id, "play");
        body.app.clone_from(app);
        body.name = Some(request.name.clone());
        body.query.clone_from(&request.query);
        let this = self.clone();
        tokio::spawn(async move {
            let result = hook.ask(&body, Denial::policy).await;
            this.answer_play(ticket, id, &app_name, &stream_name, result);
        });
    }

    /// `kill-session>CHANNEL`: ends every publish of App `channel`.
    fn kill_session(&self, channel: &str) -> usize {
        let names: Vec<String> = self
            .lock()
            .live
            .values()
            .filter(|p| p.app == channel)
            .map(|p| p.name.clone())
            .collect();
        names
            .iter()
            .filter(|name| {
                self.handle
                    .end_publish(channel, name, "session killed by a control command")
                    .is_some()
            })
            .count()
    }

    /// `close-stream>CHANNEL|STREAM_ID`: ends the publish of App `channel`
    /// whose callback named it `stream_id`.
    fn close_stream(&self, channel: &str, stream_id: &str) -> usize {
        let names: Vec<String> = self
            .lock()
            .live
            .values()
            .filter(|p| p.app == channel && p.stream_id.as_deref() == Some(stream_id))
            .map(|p| p.name.clone())
            .collect();
        names
            .iter()
            .filter(|name| {
                self.handle
                    .end_publish(channel, name, "stream closed by a control command")
                    .is_some()
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(f: impl FnOnce(&mut Settings)) -> ServerConfig {
        let mut s = Settings {
            server: AccessArgs {
                jwt_subject: "rtmp_event".into(),
                callback_timeout: 10.0,
                ..AccessArgs::default()
            },
            apps: Vec::new(),
            hook: HookArgs {
                timeout: 5.0,
                max_pending: 64,
                ..HookArgs::default()
            },
            redis: RedisArgs::default(),
        };
        f(&mut s);
        let mut config = ServerConfig::default();
        s.apply(&mut config);
        assert_eq!(
            s.active(&config),
            config.approvals != Approvals::default() || s.redis.enabled
        );
        config
    }

    fn deciders(c: &ServerConfig) -> [Decider; 3] {
        [c.approvals.connect, c.approvals.publish, c.approvals.play]
    }

    #[test]
    fn the_core_asks_only_for_what_a_rule_needs() {
        use Decider::{Embedder as E, Local as L};
        assert_eq!(deciders(&settings(|_| {})), [L, L, L]);
        let c = settings(|s| s.server.allow_play = vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(deciders(&c), [L, L, E]);
        // A per-App rule is enough.
        let c = settings(|s| {
            let mut a = s.server.clone();
            a.deny_publish = vec!["::1".parse().unwrap()];
            s.apps.push(("private".into(), a));
        });
        assert_eq!(deciders(&c), [L, E, L]);
        let c = settings(|s| s.server.strict_names = true);
        assert_eq!(deciders(&c), [E, E, E]);
        let c = settings(|s| {
            s.hook.url = Some("http://127.0.0.1:1/".into());
            s.hook.actions = vec!["publish".into()];
        });
        assert_eq!(deciders(&c), [L, E, L]);
        // The deadline outlasts the callback and the hook.
        let c = settings(|s| {
            s.server.callback_url = Some("http://127.0.0.1:1/".into());
            s.server.callback_timeout = 30.0;
        });
        assert_eq!(deciders(&c), [L, E, L]);
        assert!(c.approvals.deadline >= Duration::from_secs(32));
        let c = settings(|s| s.server.per_ip_exempt = vec!["127.0.0.1".parse().unwrap()]);
        assert_eq!(c.per_ip_exempt.len(), 1);
        assert_eq!(deciders(&c), [L, L, L]);
    }
}
