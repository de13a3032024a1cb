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
