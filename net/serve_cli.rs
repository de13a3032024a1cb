//! The command line of the mio and smol example servers, included by both
//! (`#[path]`): the same flags (`tincan_net::cli`, the definition `tincan
//! serve` uses too), logging and signals as `tincan serve`, so each example
//! is only "bind, run" on its own runtime.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tincan_core::server::ServerConfig;
use tincan_net::cli::ServeArgs;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Serve RTMP until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
struct Args {
    /// Every setting `tincan serve` has, from the one shared definition.
    #[command(flatten)]
    serve: ServeArgs,
}

/// Parses the arguments and starts logging: the addresses to listen on and
/// the configuration to serve them with, or the exit code of a bad command
/// line.
pub fn setup() -> Result<(Vec<SocketAddr>, ServerConfig), ExitCode> {
    let args = Args::parse().serve;
    let config = match args.settings.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("serve: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let filter = match &args.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let Ok(filter) = filter else {
        eprintln!("serve: bad log filter");
        return Err(ExitCode::from(2));
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let keys = args.settings.keys().all().count();
    if keys > 0 {
        info!(keys, "connect requires an authentication token");
    }
    Ok((args.listen, config))
}

/// The first SIGTERM calls `shutdown` (graceful); SIGINT or another SIGTERM
/// calls `stop`. The handlers are installed before the server runs, so an
/// early signal is not lost.
pub fn watch_signals(
    shutdown: impl Fn() + Send + 'static,
    stop: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        let mut terms = 0;
        for signal in signals.forever() {
            if signal == SIGTERM && terms == 0 {
                terms += 1;
                info!("SIGTERM: shutting down gracefully");
                shutdown();
            } else {
                info!("stopping now");
                stop();
            }
        }
    });
    Ok(())
}

/// The process's exit code for how the server ended.
pub fn exit(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
