//! `tincan`: the reference live-media RTMP server.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
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

    /// Seconds audio may wait for a slow player before it is abandoned.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    audio_lifetime: Option<Duration>,

    /// Seconds video may wait for a slow player before the rest of its GOP
    /// is abandoned.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    video_lifetime: Option<Duration>,

    /// Drop the unsent rest of a GOP as soon as the next keyframe arrives.
    #[arg(long)]
    expire_previous_gop: bool,

    /// Seconds clients get to leave after a graceful shutdown starts before
    /// the rest are closed.
    #[arg(short = 't', long, value_name = "SECS", value_parser = seconds, default_value = "300")]
    shutdown_deadline: Duration,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

impl Serve {
    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
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
        rt.expire_previous_gop |= self.expire_previous_gop;
        config.shutdown_deadline = self.shutdown_deadline;
        config
    }
}

fn main() -> ExitCode {
    let Command::Serve(serve) = Cli::parse().command;
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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = tincan_tokio::Server::bind(&serve.listen, serve.config()).await?;
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
