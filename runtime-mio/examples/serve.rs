//! Serves RTMP with the mio runtime, with the same defaults as `tincan
//! serve`: `cargo run -p tincan-mio --example serve-mio -- --listen 127.0.0.1:1935`.
//!
//! SIGTERM shuts down gracefully (clients are told
//! `NetConnection.Shutdown.Notify` and get `-t` seconds to leave); SIGINT or
//! a second SIGTERM stops at once.

#[path = "../../net/serve_cli.rs"]
mod serve_cli;

use std::process::ExitCode;

use tincan_mio::Server;

fn main() -> ExitCode {
    let (listen, config) = match serve_cli::setup() {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    serve_cli::exit(Server::bind(&listen, config).and_then(|server| {
        let (shutdown, stop) = (server.handle(), server.handle());
        serve_cli::watch_signals(move || shutdown.shutdown(), move || stop.stop())?;
        server.run()
    }))
}
