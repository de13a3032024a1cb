//! The `tincan`-only settings and commands of the configuration: the
//! configuration file itself, the log format, the TLS and HTTP listeners'
//! settings (their listeners read them from here), and `tincan config`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags about the configuration itself; not settings (a file cannot name
/// another file).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Configuration")]
pub struct ConfigFileArgs {
    /// TOML configuration file (`tincan config example` prints one with
    /// every setting). Flags beat environment variables, which beat the
    /// file, which beats the defaults. SIGHUP reads it again.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the configuration in force (every layer applied; secrets
    /// hidden) with where each value came from, and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Another server's defaults: `go-rtmp-server` takes the Go RTMP
    /// server's variables with its defaults and its rtmp://HOST/CHANNEL/KEY
    /// rules (docs/operations.md, "Coming from the Go RTMP server"). Below
    /// the file: flags > environment > file > profile > defaults.
    #[arg(long, value_name = "NAME", value_enum, env = "TINCAN_PROFILE")]
    pub profile: Option<super::aliases::Profile>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, target, fields.
    Human,
    /// One JSON object per line for log collectors.
    Json,
}

/// Logging settings the `tincan` binary adds to the shared ones.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format: `human`, or `json` (one object per line) for log
    /// collectors.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// RTMPS listeners (`[tls]` in the file). Read by the TLS listener.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "RTMPS (TLS)")]
pub struct TlsArgs {
    /// Address to listen on for RTMPS; repeat (or separate with commas)
    /// for several. Needs --tls-cert and --tls-key.
    #[arg(long = "tls-listen", value_name = "ADDR", value_delimiter = ',')]
    pub tls_listen: Vec<SocketAddr>,

    /// Certificate chain for RTMPS (PEM).
    #[arg(long = "tls-cert", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// Private key for RTMPS (PEM).
    #[arg(long = "tls-key", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

/// RTWebSocket listeners (`[ws]` in the file): TC over WebSocket, for
/// browsers. Read by the WebSocket listener.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "RTWebSocket")]
pub struct WsArgs {
    /// Address to listen on for RTWebSocket (`ws://`); repeat (or separate
    /// with commas) for several.
    #[arg(long = "ws-listen", value_name = "ADDR", value_delimiter = ',')]
    pub ws_listen: Vec<SocketAddr>,

    /// Address to listen on for RTWebSocket over TLS (`wss://`), with the
    /// certificate of --tls-cert and --tls-key; repeat (or separate with
    /// commas) for several.
    #[arg(long = "wss-listen", value_name = "ADDR", value_delimiter = ',')]
    pub wss_listen: Vec<SocketAddr>,

    /// The request path upgraded to a WebSocket; other paths get 404. `/`
    /// takes every path, as TC Server does, whose clients name their App
    /// in the URL (ws://host:port/live); another value takes that path and
    /// the paths under it.
    #[arg(long = "ws-path", value_name = "PATH", default_value = "/", value_parser = ws_path)]
    pub ws_path: String,

    /// Browser origins allowed to connect (the `Origin` header, e.g.
    /// `https://example.com`); repeat (or separate with commas) for several.
    /// None given: any origin. Requests without `Origin` (not from a
    /// browser page) are always allowed.
    #[arg(
        long = "ws-allowed-origins",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub ws_allowed_origins: Vec<String>,
}

impl WsArgs {
    /// The WebSocket listeners' configuration.
    pub fn config(&self) -> tincan_tokio::WsConfig {
        tincan_tokio::WsConfig {
            path: self.ws_path.clone(),
            allowed_origins: (!self.ws_allowed_origins.is_empty())
                .then(|| self.ws_allowed_origins.clone()),
            ..tincan_tokio::WsConfig::default()
        }
    }
}

fn ws_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(['?', '#']) {
        Ok(s.to_owned())
    } else {
        Err("a path starting with / and without query or fragment".to_owned())
    }
}

/// `tincan config`: the configuration file's tools.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print a configuration file with every setting, its help, its flag,
    /// its environment variable and its default.
    Example,
    /// Check a configuration file: every error with its key path and line;
    /// exits 1 if there is any.
    Check {
        /// The file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}
