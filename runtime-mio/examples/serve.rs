//! Serves RTMP with the mio runtime, with the same defaults as `tincan
//! serve`: `cargo run -p tincan-mio --example serve-mio -- --listen 127.0.0.1:1935`.
//!
//! SIGTERM shuts down gracefully (clients are told
//! `NetConnection.Shutdown.Notify` and get `-t` seconds to leave); SIGINT or
//! a second SIGTERM stops at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tincan_mio::{Handle, Server, ServerConfig};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Serve RTMP over the mio runtime until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; repeat for several.
    #[arg(long = "listen", value_name = "ADDR", default_value = "0.0.0.0:1935")]
    listen: Vec<SocketAddr>,
    /// Log filter (tracing env-filter syntax); overrides RUST_LOG, default `info`.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// Seconds clients get to leave after a graceful shutdown starts.
    #[arg(short = 't', long, value_name = "SECS", default_value_t = 300.0)]
    shutdown_deadline: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match &args.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let Ok(filter) = filter else {
        eprintln!("serve: bad log filter");
        return ExitCode::from(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Ok(deadline) = Duration::try_from_secs_f64(args.shutdown_deadline) else {
        eprintln!("serve: bad shutdown deadline");
        return ExitCode::from(2);
    };
    let config = ServerConfig {
        shutdown_deadline: deadline,
        ..ServerConfig::default()
    };
    let result = Server::bind(&args.listen, config).and_then(|server| {
        watch_signals(server.handle())?;
        server.run()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// The first SIGTERM shuts down gracefully; SIGINT or another SIGTERM stops
/// at once. The handlers are installed before the server runs, so an early
/// signal is not lost.
fn watch_signals(handle: Handle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        let mut terms = 0;
        for signal in signals.forever() {
            if signal == SIGTERM && terms == 0 {
                terms += 1;
                info!("SIGTERM: shutting down gracefully");
                handle.shutdown();
            } else {
                info!("stopping now");
                handle.stop();
            }
        }
    });
    Ok(())
}
