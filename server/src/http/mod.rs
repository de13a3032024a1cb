//! The operator's HTTP listener: a JSON API of what is live, Prometheus
//! metrics, health and readiness probes, and a status page.
//!
//! It is off unless `--http-listen` is given, and it is built only on what
//! the tokio adapter's [`Handle`] offers an embedder (events, statistics,
//! totals, `close_connection`, `end_publish`), never on the core's private
//! state, so what it shows is what any embedder could show.
//! docs/http-api.md documents every route and JSON shape.

mod api;
mod auth;
mod metrics;
mod time;
mod tracker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::routing::{delete, get, post};
use axum::Router;
use tincan_tokio::Handle;

pub use self::auth::Token;
use self::tracker::Tracker;

/// `tincan serve`'s HTTP settings. Kept apart from the core's settings
/// (`tincan_net::cli`) because only this binary has an HTTP listener.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Serve the HTTP API, Prometheus metrics (/metrics), health probes
    /// (/healthz, /readyz) and the status page (/) on ADDR, e.g.
    /// 127.0.0.1:8080. Off by default: the API shows peers' addresses and
    /// stream names, so exposing it is the operator's choice. Bind it to
    /// loopback or a private interface, or put it behind a proxy.
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Bearer token that the API's control routes (closing a connection,
    /// ending a publish) require in `Authorization: Bearer TOKEN`. Without
    /// it those routes are refused (403), never open; reading routes need
    /// no token. Compared in constant time and never logged.
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "http_listen",
        hide_env_values = true
    )]
    pub http_token: Option<Token>,

    /// Path of the browser player (plays and publishes over RTWebSocket,
    /// so it needs --ws-listen), linked from the status page.
    #[arg(long, value_name = "PATH", default_value = "/player", value_parser = page_path)]
    pub http_player_path: String,
}

fn page_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.len() > 1 && !s.contains(['?', '#']) && !s.starts_with("/api/") {
        Ok(s.to_owned())
    } else {
        Err("a path other than /, starting with / and outside /api/".to_owned())
    }
}

/// The server's listening addresses, which the status page and the player
/// name to their users.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// Plain RTMP.
    pub rtmp: Vec<SocketAddr>,
    /// RTWebSocket (`ws://`).
    pub ws: Vec<SocketAddr>,
    /// RTWebSocket over TLS (`wss://`).
    pub wss: Vec<SocketAddr>,
}

/// Whether the process is shutting down, shared by whoever starts the
/// shutdown (the signal handler) and `/readyz`, which reports 503 from
/// then on so a load balancer stops sending new clients while the
/// connected ones drain.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the server as shutting down; `/readyz` answers 503 from now on.
    pub fn shutting_down(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_shutting_down(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What every route reads.
#[derive(Debug)]
struct State {
    handle: Handle,
    relays: Arc<crate::relay::Relays>,
    tracker: Arc<Tracker>,
    token: Option<Token>,
    readiness: Readiness,
    rtmp_listen: Vec<SocketAddr>,
    listeners: Listeners,
    player_path: String,
    /// The cluster registry, when clustering is on.
    cluster: Option<Arc<crate::cluster::Registry>>,
    started: Instant,
    started_wall: SystemTime,
}

type Shared = Arc<State>;

/// Binds `--http-listen` (if given) and serves it on the current tokio
/// runtime until the process exits. Adds a sink to `events` (the binary's
/// one event consumer) to keep the metrics' counters, so call it before the
/// server runs to miss nothing. Binding errors are returned: an operator who asked for the API
/// must not get a server silently without it.
pub async fn start(
    args: &HttpArgs,
    handle: Handle,
    relays: Arc<crate::relay::Relays>,
    listeners: Listeners,
    readiness: Readiness,
    cluster: Option<Arc<crate::cluster::Registry>>,
    events: &mut crate::events::Fanout,
) -> std::io::Result<Option<SocketAddr>> {
    let Some(addr) = args.http_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let tracker = Arc::new(Tracker::default());
    events.add(tracker::sink(tracker.clone()));
    let state = Arc::new(State {
        handle,
        relays,
        tracker,
        token: args.http_token.clone(),
        readiness,
        rtmp_listen: listeners.rtmp.clone(),
        listeners,
        player_path: args.http_player_path.clone(),
        cluster,
        started: Instant::now(),
        started_wall: SystemTime::now(),
    });
    let app = router(state);
    tracing::info!(addr = %local, control = args.http_token.is_some(), "HTTP API listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP API failed");
        }
    });
    Ok(Some(local))
}

fn router(state: Shared) -> Router {
    let player = state.player_path.clone();
    Router::new()
        .route("/", get(api::status_page))
        .route(&player, get(api::player_page))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/server", get(api::server))
        .route("/api/v1/streams", get(api::streams))
        .route("/api/v1/streams/{app}/{name}", get(api::stream))
        .route(
            "/api/v1/streams/{app}/{name}/close",
            post(api::close_stream),
        )
        .route("/api/v1/cluster", get(api::cluster))
        .route(
            "/api/v1/cluster/origins/{app}/{name}",
            get(api::cluster_origins),
        )
        .route("/api/v1/connections", get(api::connections))
        .route("/api/v1/connections/{id}", get(api::connection))
        .route(
            "/api/v1/connections/{id}/close",
            post(api::close_connection),
        )
        .route(
            "/api/v1/connections/{id}/reconnect",
            post(api::reconnect_connection),
        )
        .route("/api/v1/relays", get(api::relays))
        .route("/api/v1/relays/push", post(api::add_push))
        .route("/api/v1/relays/push/{id}", delete(api::remove_push))
        .fallback(api::not_found)
        .with_state(state)
}
