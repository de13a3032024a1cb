//! Logging: the human or JSON format on stderr, and a filter that a reload
//! can swap while the server runs.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use super::args::LogFormat;

/// The filter used when none is configured.
pub const DEFAULT_FILTER: &str = "info";

/// Swaps the log filter of the running process.
#[derive(Clone)]
pub struct LogFilter(reload::Handle<EnvFilter, Registry>);

impl LogFilter {
    /// Applies `filter` (env-filter syntax; `None` for the default), or
    /// says why it is wrong and keeps the one in force.
    pub fn set(&self, filter: Option<&str>) -> Result<(), String> {
        let new = parse(filter)?;
        self.0.reload(new).map_err(|e| e.to_string())
    }
}

fn parse(filter: Option<&str>) -> Result<EnvFilter, String> {
    EnvFilter::try_new(filter.unwrap_or(DEFAULT_FILTER))
        .map_err(|e| format!("bad log filter {:?}: {e}", filter.unwrap_or(DEFAULT_FILTER)))
}

/// Installs the global subscriber: `format` on stderr through `filter`.
pub fn init(format: LogFormat, filter: Option<&str>) -> Result<LogFilter, String> {
    let (filter, handle) = reload::Layer::new(parse(filter)?);
    // Colour codes only help a person at a terminal; in a log file they
    // are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(LogFilter(handle))
}
