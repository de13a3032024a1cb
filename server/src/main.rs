//! `tincan`: the reference live-media RTMP server.

#![forbid(unsafe_code)]

mod access;
mod cluster;
mod config;
mod events;
mod http;
mod relay;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use config::args::{ConfigCommand, ConfigFileArgs, LogArgs, TlsArgs, WsArgs};
use tincan_core::auth::calculator_line;
use tincan_net::cli::{Keys, ServeArgs};
use tracing::error;

/// tincan: a live-media server for RTMP ("TC") clients.
#[derive(Debug, Parser)]
// Named after the binary, not the package, so `--version` says `tincan`.
#[command(name = "tincan", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve RTMP. The first SIGTERM starts a graceful shutdown (clients
    /// are told NetConnection.Shutdown.Notify; the server exits when they
    /// have gone or at the shutdown deadline); a second SIGTERM or a SIGINT
    /// exits at once.
    Serve(Box<Serve>),
    /// Print TC authentication tokens: one `,auth,<token>,<message>` line
    /// per key and message, where a message is an App name (for an App-wide
    /// token) or `user@App` (for a user token). With -K and a token as the
    /// message it computes an RTMFP nonce-hashed token.
    Token(Token),
    /// The configuration file: `example` prints one with every setting,
    /// `check FILE` reports every error in one.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, clap::Args)]
struct Token {
    #[command(flatten)]
    keys: Keys,

    /// App names or `user@App` strings to make tokens for.
    #[arg(value_name = "MESSAGE", required = true)]
    messages: Vec<String>,
}

/// `tincan serve`: the settings every runtime's server takes, and the
/// tokio runtime's own.
#[derive(Debug, clap::Args)]
struct Serve {
    /// Worker threads that run connections (default: one per CPU, but one
    /// on a machine of two CPUs or fewer). The core sits behind one lock
    /// while the kernel's work of reads and writes runs outside it, so more
    /// threads add throughput where CPUs are spare; on two shared CPUs one
    /// thread used 5-20 % less CPU per delivered GB and never stalled on a
    /// preempted lock holder (docs/performance.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    #[command(flatten)]
    file: ConfigFileArgs,

    #[command(flatten)]
    log: LogArgs,

    #[command(flatten)]
    args: ServeArgs,

    #[command(flatten)]
    tls: TlsArgs,

    #[command(flatten)]
    ws: WsArgs,

    #[command(flatten)]
    http: http::HttpArgs,

    #[command(flatten)]
    access: access::AccessArgs,

    #[command(flatten)]
    hook: access::HookArgs,

    #[command(flatten)]
    redis: access::RedisArgs,

    #[command(flatten)]
    cluster: cluster::ClusterArgs,
}

/// Whether `serve` matches (of any layer, or of an App's section) make a
/// configuration the server can run with.
fn check_serve(matches: &clap::ArgMatches) -> Result<(), String> {
    let serve = Serve::from_arg_matches(matches).map_err(|e| e.to_string())?;
    serve.access.check()?;
    serve.redis.check()?;
    serve.cluster.check()?;
    serve.args.settings.config().map(|_| ())
}

impl Serve {
    /// `--threads`, or the default: one per CPU, except one on a machine of
    /// two CPUs or fewer, where the server shares its CPUs with the
    /// kernel's network work and a second worker mostly waits for the lock
    /// (measured in docs/performance.md).
    fn worker_threads(&self) -> usize {
        match self.threads {
            Some(n) => usize::from(n),
            None => match std::thread::available_parallelism().map_or(1, usize::from) {
                n if n <= 2 => 1,
                n => n,
            },
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit: each
/// connection is a file descriptor, and the common soft default (1024)
/// would refuse clients long before `--max-connections`. Returns the limit
/// now in force.
fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// `tincan token`: the TC Server's calculator output, one line per key and
/// message.
fn print_tokens(token: &Token) -> ExitCode {
    if token.keys.all().next().is_none() {
        eprintln!("tincan token: give at least one key with -k or -K");
        return ExitCode::from(2);
    }
    for key in token.keys.all() {
        for message in &token.messages {
            println!("{}", calculator_line(key, message));
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    // Flags > environment > the --config file > defaults, from one
    // definition (server/src/config).
    let def = Arc::new(config::Definition::new(Cli::command(), check_serve));
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (matches, loaded) = def
        .parse(&argv, &config::aliases::process_env)
        .unwrap_or_else(|f| f.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut serve = match cli.command {
        Command::Serve(serve) => serve,
        Command::Token(token) => return print_tokens(&token),
        Command::Config(command) => return config::run(&def, &command),
    };
    let loaded = loaded.expect("serve is parsed with every layer");
    if serve.file.print_config {
        print!("{}", config::print(&def, &loaded));
        return ExitCode::SUCCESS;
    }
    // The server-wide settings with every [app.NAME] section.
    let mut config = match config::core_settings::server_config(&loaded) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    let log_filter = match config::logging::init(serve.log.log_format, serve.args.log.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &loaded.file {
        tracing::info!(file = %path.display(), "configuration file read");
    }
    config::core_settings::log_apps(&loaded);
    let access = match access_settings(&loaded) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    access.apply(&mut config);
    let mut relay_config = match relay_settings(&loaded) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = one_node_id(&mut relay_config, &mut serve.cluster) {
        eprintln!("tincan: {e}");
        return ExitCode::from(2);
    }
    let registry = match cluster::Registry::new(&serve.cluster) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    relay::Relays::apply(&relay_config, registry.is_some(), &mut config);
    let access_active = access.active(&config);
    let reloader = config::reload::Reloader::new(def.clone(), argv, loaded);
    reloader.apply_live(&["log"], move |l| {
        log_filter.set(
            l.values
                .get("log")
                .and_then(|v| v.first())
                .map(String::as_str),
        )
    });

    match raise_open_files_limit() {
        Ok(n) if (n as usize) < config.max_connections.saturating_add(64) => tracing::warn!(
            open_files = n,
            max_connections = config.max_connections,
            "the open-files limit is below --max-connections: raise the hard limit \
             (ulimit -Hn) or clients will be refused early"
        ),
        Ok(n) => tracing::debug!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(serve.worker_threads());
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let tls = match tls::Tls::from_args(&serve.tls, !serve.ws.wss_listen.is_empty()) {
        Ok(tls) => tls,
        Err(e) => {
            error!(error = %e, "cannot serve RTMPS");
            return ExitCode::from(2);
        }
    };
    let keys = serve.args.settings.keys().all().count();
    if keys > 0 {
        tracing::info!(keys, "connect requires an authentication token");
    }
    let result = runtime.block_on(async {
        reloader.watch_sighup()?;
        let relay_tls =
            relay::tls::client_config(&relay_config.tls).map_err(std::io::Error::other)?;
        let mut server = tincan_tokio::Server::bind(&serve.args.listen, config)
            .await?
            .dial_tls_with(tincan_tokio::tokio_rustls::TlsConnector::from(Arc::new(
                relay_tls,
            )));
        if let Some(tls) = &tls {
            server = server.listen_tls(&serve.tls.tls_listen, tls.acceptor.clone())?;
            server = server.listen_wss(
                &serve.ws.wss_listen,
                tls.acceptor.clone(),
                serve.ws.config(),
            )?;
            tls.watch(&reloader);
        }
        server = server.listen_ws(&serve.ws.ws_listen, serve.ws.config())?;
        let handle = server.handle();
        // A reload applies the core's settings and access control's rules
        // together, so what access control asks of the core (decisions,
        // exemptions, deadline) always matches the rules in force.
        let started: Arc<std::sync::OnceLock<Arc<access::Access>>> = Arc::default();
        let running = started.clone();
        let reload_relays = relay_config.clone();
        let pulls_from_registry = registry.is_some();
        reloader.apply_core(&["access.*"], move |loaded, mut config| {
            let settings = access_settings(loaded)?;
            settings.apply(&mut config);
            // Relays are read at start only; what they ask of the core
            // stays in force across reloads.
            relay::Relays::apply(&reload_relays, pulls_from_registry, &mut config);
            match running.get() {
                Some(access) => access.reconfigure(&settings),
                None if settings.active(&config) => {
                    return Err("access control was off at start: restart to turn it on".to_owned())
                }
                None => {}
            }
            handle.set_config(config);
            Ok(())
        });
        let readiness = http::Readiness::default();
        // One consumer of the server's events, started before run() so
        // that the metrics and access control see every event.
        let mut events = events::Fanout::default();
        let relays = relay::Relays::new(server.handle(), &relay_config);
        events.add(relays.sink());
        http::start(
            &serve.http,
            server.handle(),
            relays.clone(),
            http::Listeners {
                rtmp: server.local_addrs(),
                ws: server.ws_local_addrs(),
                wss: server.wss_local_addrs(),
            },
            readiness.clone(),
            registry.clone(),
            &mut events,
        )
        .await?;
        if access_active {
            let access =
                access::Access::start(server.handle(), &access).map_err(std::io::Error::other)?;
            let _ = started.set(access.clone());
            access.set_relays(relays.clone());
            events.add(Box::new(move |event| access.event(event)));
        }
        if let Some(registry) = &registry {
            events.add(registry.sink());
            registry.start(server.handle());
            cluster::edge::start(registry.clone(), &relays, &relay_config);
        }
        events.start(&server.handle());
        watch_signals(server.handle(), readiness)?;
        server.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// One node, one id: the relay chains (loop prevention) and the cluster
/// registry name this server the same way, so a chain read in a log is
/// the registry's node. Either setting gives it to the other; both given
/// must agree.
fn one_node_id(
    relay: &mut relay::config::RelayConfig,
    cluster: &mut cluster::ClusterArgs,
) -> Result<(), String> {
    match &cluster.node_id {
        Some(id) if relay.node_id_given && *id != relay.node_id => Err(format!(
            "relay.node_id {:?} and cluster.node_id {id:?} differ: give this node one id",
            relay.node_id
        )),
        Some(id) => {
            relay.node_id.clone_from(id);
            Ok(())
        }
        None if cluster.redis.is_some() => {
            let id = cluster::args::node_id(&relay.node_id)
                .map_err(|e| format!("relay.node_id, the cluster's node id too: {e}"))?;
            cluster.node_id = Some(id);
            Ok(())
        }
        None => Ok(()),
    }
}

/// `[relay]` of the configuration file (already checked with the rest of
/// the file when it was loaded).
fn relay_settings(loaded: &config::Loaded) -> Result<relay::config::RelayConfig, String> {
    let Some(path) = &loaded.file else {
        return Ok(relay::config::RelayConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    relay::config::RelayConfig::from_text(&text).map_err(|e| e.join("; "))
}

/// Access control's settings: the server's and each `[app.NAME]`
/// section's `[access]`.
fn access_settings(loaded: &config::Loaded) -> Result<access::Settings, String> {
    let m = &loaded.matches;
    Ok(access::Settings {
        server: access::AccessArgs::from_arg_matches(m).map_err(|e| e.to_string())?,
        apps: loaded
            .apps
            .iter()
            .filter_map(|(name, app)| {
                access::AccessArgs::from_arg_matches(&app.matches)
                    .ok()
                    .map(|a| (name.clone(), a))
            })
            .collect(),
        hook: access::HookArgs::from_arg_matches(m).map_err(|e| e.to_string())?,
        redis: access::RedisArgs::from_arg_matches(m).map_err(|e| e.to_string())?,
    })
}

/// The first SIGTERM shuts down gracefully; a second SIGTERM or any SIGINT
/// stops at once (TC Server semantics). The handlers are installed before
/// the server starts, so an early signal is not lost.
fn watch_signals(handle: tincan_tokio::Handle, readiness: http::Readiness) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut terms = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping now");
                    readiness.shutting_down();
                    handle.stop();
                }
                _ = term.recv() => {
                    terms += 1;
                    if terms == 1 {
                        tracing::info!("SIGTERM: shutting down gracefully");
                        readiness.shutting_down();
                        handle.shutdown();
                    } else {
                        tracing::info!("second SIGTERM: stopping now");
                        handle.stop();
                    }
                }
            }
        }
    });
    Ok(())
}
