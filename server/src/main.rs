//! `tincan`: the reference live-media RTMP server.

#![forbid(unsafe_code)]

mod limits;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tincan_core::auth::{calculator_line, parse_hex, AuthKeys};
use tincan_tokio::ServerConfig;
use tracing::error;
use tracing_subscriber::EnvFilter;

/// tincan: a live-media server for RTMP ("TC") clients.
#[derive(Debug, Parser)]
#[command(version)]
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
    Serve(Serve),
    /// Print TC authentication tokens: one `,auth,<token>,<message>` line
    /// per key and message, where a message is an App name (for an App-wide
    /// token) or `user@App` (for a user token). With -K and a token as the
    /// message it computes an RTMFP nonce-hashed token.
    Token(Token),
}

/// A master key from the command line; never shown by `Debug`, so it
/// cannot reach a log by accident.
#[derive(Clone)]
struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn text_key(s: &str) -> Result<Key, String> {
    Ok(Key(s.as_bytes().to_vec()))
}

fn hex_key(s: &str) -> Result<Key, String> {
    parse_hex(s).map(Key).map_err(|e| e.to_string())
}

/// Master keys, as `serve` and `token` both take them.
#[derive(Debug, clap::Args)]
struct Keys {
    /// Authentication master key (text); repeat for several. With at least
    /// one key (here or -K), `connect` must carry a token made with one of
    /// them: an App-wide token, HMAC-SHA-256(key, App) in lower-case hex,
    /// or a user name and HMAC-SHA-256(key, user@App).
    #[arg(short = 'k', long = "auth-key", value_name = "KEY", value_parser = text_key)]
    text: Vec<Key>,

    /// Authentication master key given in hex (binary); repeat for several.
    #[arg(short = 'K', long = "auth-key-hex", value_name = "HEX", value_parser = hex_key)]
    hex: Vec<Key>,
}

impl Keys {
    fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.text.iter().chain(&self.hex).map(|k| k.0.as_slice())
    }
}

#[derive(Debug, clap::Args)]
struct Token {
    #[command(flatten)]
    keys: Keys,

    /// App names or `user@App` strings to make tokens for.
    #[arg(value_name = "MESSAGE", required = true)]
    messages: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address to listen on; repeat for several. IPv6 addresses (e.g.
    /// `[::]:1935`) are bound IPv6-only, so list `0.0.0.0:1935` as well for
    /// both families.
    #[arg(long = "listen", value_name = "ADDR", default_value = "0.0.0.0:1935")]
    listen: Vec<SocketAddr>,

    /// Log filter (tracing env-filter syntax, e.g. `info` or
    /// `tincan_core=debug`). Overrides RUST_LOG; default `info`.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,

    /// Seconds players wait for a new publisher after a stream's publisher
    /// leaves before they are told the stream stopped.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    republish_grace: Option<Duration>,

    /// Seconds audio may wait for a slow player before it is abandoned
    /// (TC's -A; default 2). A player may ask for another value in its
    /// play options, up to 10 s or twice this.
    #[arg(short = 'A', long, value_name = "SECS", value_parser = seconds)]
    audio_lifetime: Option<Duration>,

    /// Seconds video may wait for a slow player before the rest of its GOP
    /// is abandoned (TC's -V; default 3).
    #[arg(short = 'V', long, value_name = "SECS", value_parser = seconds)]
    video_lifetime: Option<Duration>,

    /// Extra seconds, past its lifetime, that a message already partly
    /// sent gets to finish before the rest is abandoned with an RTMP Abort
    /// (TC's -F; default 0.5).
    #[arg(short = 'F', long, value_name = "SECS", value_parser = seconds)]
    finish_by_margin: Option<Duration>,

    /// Speak TC's simplified RTMP dialect to every client, for clients
    /// that mishandle header compression or chunk-size changes: each
    /// message starts with a full header, chunks stay 128 bytes, no Set
    /// Peer Bandwidth (see docs/tc-parity.md).
    #[arg(long)]
    simplified_rtmp: bool,

    /// Drop the unsent rest of a GOP as soon as the next keyframe arrives.
    #[arg(long)]
    expire_previous_gop: bool,

    /// Seconds clients get to leave after a graceful shutdown starts before
    /// the rest are closed.
    #[arg(short = 't', long, value_name = "SECS", value_parser = seconds, default_value = "300")]
    shutdown_deadline: Duration,

    /// Worker threads that run connections (default: one per CPU, but one
    /// on a machine of two CPUs or fewer). The core sits behind one lock
    /// while the kernel's work of reads and writes runs outside it, so more
    /// threads add throughput where CPUs are spare; on two shared CPUs one
    /// thread used 5-20 % less CPU per delivered GB and never stalled on a
    /// preempted lock holder (docs/performance.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    /// Milliseconds a player's media may wait so that what arrives
    /// meanwhile shares one write (SRS's merged write; default 0: write at
    /// once). Trades latency for CPU: on loopback 20 ms saved ~30 % of the
    /// server's CPU per delivered GB (docs/performance.md).
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    merge_window_ms: u64,

    #[command(flatten)]
    keys: Keys,

    /// Text sent to every client as `serverInfo` in the connect result's
    /// info object (e.g. which server or build it reached).
    #[arg(long, value_name = "STRING")]
    server_info: Option<String>,

    // Boxed: the limits are most of the struct, and clap builds it once.
    #[command(flatten)]
    limits: Box<limits::Limits>,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
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

    fn config(&self) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::default();
        self.limits.apply(&mut config)?;
        if let Some(d) = self.republish_grace {
            config.broker.republish_grace = d;
        }
        let rt = &mut config.session.real_time;
        if let Some(d) = self.audio_lifetime {
            rt.audio_lifetime = d;
        }
        if let Some(d) = self.video_lifetime {
            rt.video_lifetime = d;
        }
        if let Some(d) = self.finish_by_margin {
            rt.finish_by_margin = d;
        }
        rt.expire_previous_gop |= self.expire_previous_gop;
        config.session.simplified_rtmp = self.simplified_rtmp;
        config.session.merge_window = Duration::from_millis(self.merge_window_ms);
        config.shutdown_deadline = self.shutdown_deadline;
        config.session.auth_keys = AuthKeys::new(self.keys.all().map(<[u8]>::to_vec));
        config.session.server_info.clone_from(&self.server_info);
        Ok(config)
    }
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
    let serve = match Cli::parse().command {
        Command::Serve(serve) => serve,
        Command::Token(token) => return print_tokens(&token),
    };
    let config = match serve.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tincan: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match &serve.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tincan: bad log filter: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in a log file they
        // are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match limits::raise_open_files_limit() {
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
    let keys = serve.keys.all().count();
    if keys > 0 {
        tracing::info!(keys, "connect requires an authentication token");
    }
    let result = runtime.block_on(async {
        let server = tincan_tokio::Server::bind(&serve.listen, config).await?;
        watch_signals(server.handle())?;
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

/// The first SIGTERM shuts down gracefully; a second SIGTERM or any SIGINT
/// stops at once (TC Server semantics). The handlers are installed before
/// the server starts, so an early signal is not lost.
fn watch_signals(handle: tincan_tokio::Handle) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut terms = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping now");
                    handle.stop();
                }
                _ = term.recv() => {
                    terms += 1;
                    if terms == 1 {
                        tracing::info!("SIGTERM: shutting down gracefully");
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
