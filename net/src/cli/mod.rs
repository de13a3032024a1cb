//! One command-line definition of the core's settings, shared by every
//! program that serves with tincan: the `tincan serve` binary and the mio
//! and smol example servers. Each flag maps onto a field of the core's
//! [`ServerConfig`], and its default is read from the core's `Default`, so
//! `--help` cannot disagree with the core and no program can forget a
//! setting. Flags that belong to one executor (tokio's `--threads`) stay
//! in that program.
//!
//! Each `clap::Args` struct here is one section of the `tincan` binary's
//! configuration file (its clap group, named after the struct, says which:
//! [`Limits`] is `[limits]`, [`RealTime`] `[real_time]`, [`Keys`]
//! `[auth]`), and its flags are that section's keys; the binary derives the
//! file keys and `TINCAN_*` environment names from these definitions, so a
//! setting added here reaches every layer at once. A secret is marked
//! `hide_env_values`.
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: tincan_net::cli::ServeArgs,
//! }
//!
//! let cli = Cli::parse_from(["serve", "--listen", "127.0.0.1:1935", "-A", "1"]);
//! let config = cli.serve.settings.config().unwrap();
//! assert_eq!(config.session.real_time.audio_lifetime.as_secs(), 1);
//! ```

mod limits;

use std::net::SocketAddr;
use std::time::Duration;

use tincan_core::auth::{parse_hex, AuthKeys};
use tincan_core::server::ServerConfig;

pub use limits::Limits;

/// The core's defaults, which the flags' defaults are read from.
fn d() -> ServerConfig {
    ServerConfig::default()
}

/// Seconds as a non-negative, finite number that fits a [`Duration`].
fn secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(v).map_err(|e| format!("{e}"))?;
    Ok(v)
}

/// Seconds checked by [`secs`] as a [`Duration`].
fn dur(v: f64) -> Duration {
    Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX)
}

/// Where to listen, how to log, and every core setting: what a `serve`
/// command line of any runtime takes.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; repeat for several. IPv6 addresses (e.g.
    /// `[::]:1935`) are bound IPv6-only, so list `0.0.0.0:1935` as well for
    /// both families. Several may also be given at once, separated by
    /// commas.
    #[arg(
        long = "listen",
        value_name = "ADDR",
        default_value = "0.0.0.0:1935",
        value_delimiter = ','
    )]
    pub listen: Vec<SocketAddr>,

    /// Log filter (tracing env-filter syntax, e.g. `info` or
    /// `tincan_core=debug`). Overrides RUST_LOG; default `info`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// The core's settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// Every setting of the core's [`ServerConfig`] as flags; [`Settings::config`]
/// turns them into the configuration.
#[derive(Debug, clap::Args)]
pub struct Settings {
    /// Seconds players wait for a new publisher after a stream's publisher
    /// leaves before they are told the stream stopped.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().broker.republish_grace.as_secs_f64())]
    republish_grace: f64,

    /// How players that cannot keep up are treated.
    #[command(flatten)]
    real_time: RealTime,

    /// Speak TC's simplified RTMP dialect to every client, for clients
    /// that mishandle header compression or chunk-size changes: each
    /// message starts with a full header, chunks stay 128 bytes, no Set
    /// Peer Bandwidth (see docs/tc-parity.md).
    #[arg(long)]
    simplified_rtmp: bool,

    /// Seconds clients get to leave after a graceful shutdown starts before
    /// the rest are closed.
    #[arg(short = 't', long, value_name = "SECS", value_parser = secs,
          default_value_t = d().shutdown_deadline.as_secs_f64())]
    shutdown_deadline: f64,

    /// Where clients that announced Enhanced RTMP reconnect support are
    /// asked to go when a graceful shutdown starts
    /// (`NetConnection.Connect.ReconnectRequest` with this `tcUrl`, before
    /// the usual shutdown notice), so a rolling restart moves them to
    /// another node without a gap: an absolute `rtmp://host/app` or a path
    /// relative to the client's own `tcUrl` (`/live`). Unset: none is sent
    /// (docs/enhanced-rtmp.md).
    #[arg(long, value_name = "TCURL")]
    shutdown_reconnect_url: Option<String>,

    /// Throughput mode (adaptive write merging), its time bound:
    /// milliseconds a player's media may wait so that what arrives
    /// meanwhile shares one write (SRS's merged write; 0, the default:
    /// write at once). Held media goes when this old or when
    /// --merge-window-bytes are queued, whichever first; replies and the
    /// start of a keyframe never wait. Trades latency for CPU: on loopback
    /// 20 ms saved ~30 % of the server's CPU per delivered GB
    /// (docs/performance.md).
    #[arg(long, value_name = "MS", alias = "write-merge-ms",
          default_value_t = u64::try_from(d().session.merge_window.as_millis()).unwrap_or(u64::MAX),
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    merge_window_ms: u64,

    /// Throughput mode, its size bound: bytes of held media that go in one
    /// write at once, before --merge-window-ms has passed (only with a
    /// non-zero --merge-window-ms).
    #[arg(long, value_name = "BYTES", alias = "write-merge-bytes",
          default_value_t = d().session.merge_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..=4 * 1024 * 1024))]
    merge_window_bytes: u64,

    /// Highest publish priority a connection may ask for with
    /// `NAME?priority=N`: a publish takes over a live name only at a higher
    /// priority, and `releaseStream` evicts only a publish below the
    /// caller's maximum. 0: a live name is never taken over
    /// (docs/tc-parity.md).
    #[arg(long, value_name = "N", default_value_t = d().session.max_publish_priority)]
    max_publish_priority: u32,

    /// Let `releaseStream` evict whoever publishes the name, whatever the
    /// priorities (TC's old behaviour: an encoder always takes over a stuck
    /// publish, and a second encoder on a live key kicks out the first).
    #[arg(long)]
    release_stream_evicts_any: bool,

    /// Authentication master keys.
    #[command(flatten)]
    keys: Keys,

    /// Text sent to every client as `serverInfo` in the connect result's
    /// info object (e.g. which server or build it reached).
    #[arg(long, value_name = "STRING")]
    server_info: Option<String>,

    // Boxed: the limits are most of the struct, and clap builds it once.
    #[command(flatten)]
    limits: Box<Limits>,
}

impl Settings {
    /// The configuration these flags describe: the core's defaults with
    /// every flag applied, or which combination of flags cannot work.
    pub fn config(&self) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::default();
        self.limits.apply(&mut config)?;
        config.broker.republish_grace = dur(self.republish_grace);
        self.real_time.apply(&mut config);
        config.session.simplified_rtmp |= self.simplified_rtmp;
        config.session.merge_window = Duration::from_millis(self.merge_window_ms);
        config.session.merge_bytes = usize::try_from(self.merge_window_bytes).unwrap_or(usize::MAX);
        config.session.max_publish_priority = self.max_publish_priority;
        config.broker.release_stream_evicts_any |= self.release_stream_evicts_any;
        config.shutdown_deadline = dur(self.shutdown_deadline);
        config
            .shutdown_reconnect_url
            .clone_from(&self.shutdown_reconnect_url);
        config.session.auth_keys = AuthKeys::new(self.keys.all().map(<[u8]>::to_vec));
        if self.server_info.is_some() {
            config.session.server_info.clone_from(&self.server_info);
        }
        Ok(config)
    }

    /// The authentication keys given, so a program can say that `connect`
    /// requires a token.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// The real-time treatment of players that cannot keep up (TC's -A, -V,
/// -F): what may be abandoned rather than sent late.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Real-time treatment of slow players")]
pub struct RealTime {
    /// Seconds audio may wait for a slow player before it is abandoned
    /// (TC's -A). A player may ask for another value in its play options,
    /// up to 10 s or twice this.
    #[arg(short = 'A', long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.real_time.audio_lifetime.as_secs_f64())]
    audio_lifetime: f64,

    /// Seconds video may wait for a slow player before the rest of its GOP
    /// is abandoned (TC's -V).
    #[arg(short = 'V', long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.real_time.video_lifetime.as_secs_f64())]
    video_lifetime: f64,

    /// Extra seconds, past its lifetime, that a message already partly
    /// sent gets to finish before the rest is abandoned with an RTMP Abort
    /// (TC's -F).
    #[arg(short = 'F', long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.real_time.finish_by_margin.as_secs_f64())]
    finish_by_margin: f64,

    /// Drop the unsent rest of a GOP as soon as the next keyframe arrives.
    #[arg(long)]
    expire_previous_gop: bool,
}

impl RealTime {
    fn apply(&self, config: &mut ServerConfig) {
        let rt = &mut config.session.real_time;
        rt.audio_lifetime = dur(self.audio_lifetime);
        rt.video_lifetime = dur(self.video_lifetime);
        rt.finish_by_margin = dur(self.finish_by_margin);
        rt.expire_previous_gop |= self.expire_previous_gop;
    }
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

/// Authentication master keys, as `tincan serve` and `tincan token` both
/// take them: in one place, so the token a calculator prints is made with
/// exactly the keys a server checks. Keys are secrets: marked
/// `hide_env_values`, which also tells configuration layers never to print
/// them.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Authentication")]
pub struct Keys {
    /// Authentication master key (text); repeat for several. With at least
    /// one key (here or -K), `connect` must carry a token made with one of
    /// them: an App-wide token, HMAC-SHA-256(key, App) in lower-case hex,
    /// or a user name and HMAC-SHA-256(key, user@App).
    #[arg(short = 'k', long = "auth-key", value_name = "KEY", value_parser = text_key,
          hide_env_values = true)]
    text: Vec<Key>,

    /// Authentication master key given in hex (binary); repeat for several.
    #[arg(short = 'K', long = "auth-key-hex", value_name = "HEX", value_parser = hex_key,
          hide_env_values = true)]
    hex: Vec<Key>,
}

impl Keys {
    /// Every key given, text keys first.
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.text.iter().chain(&self.hex).map(|k| k.0.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn no_flags_give_the_cores_defaults() {
        let cli = Cli::parse_from(["serve"]);
        let config = cli.serve.settings.config().unwrap();
        let d = ServerConfig::default();
        assert_eq!(format!("{config:?}"), format!("{d:?}"));
    }

    #[test]
    fn write_merge_aliases_set_the_throughput_mode() {
        let cli = Cli::parse_from([
            "serve",
            "--write-merge-ms",
            "40",
            "--write-merge-bytes",
            "32768",
        ]);
        let c = cli.serve.settings.config().unwrap();
        assert_eq!(c.session.merge_window, Duration::from_millis(40));
        assert_eq!(c.session.merge_bytes, 32_768);
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::parse_from([
            "serve",
            "-A",
            "1",
            "-V",
            "1.5",
            "-F",
            "0.1",
            "-t",
            "2",
            "--republish-grace",
            "7",
            "--merge-window-ms",
            "20",
            "--simplified-rtmp",
            "--expire-previous-gop",
            "--server-info",
            "edge-1",
            "--max-streams",
            "3",
            "--max-live-streams",
            "2",
        ]);
        let c = cli.serve.settings.config().unwrap();
        assert_eq!(c.session.real_time.audio_lifetime, Duration::from_secs(1));
        assert_eq!(
            c.session.real_time.video_lifetime,
            Duration::from_millis(1500)
        );
        assert_eq!(
            c.session.real_time.finish_by_margin,
            Duration::from_millis(100)
        );
        assert_eq!(c.shutdown_deadline, Duration::from_secs(2));
        assert_eq!(c.broker.republish_grace, Duration::from_secs(7));
        assert_eq!(c.session.merge_window, Duration::from_millis(20));
        assert!(c.session.simplified_rtmp && c.session.real_time.expire_previous_gop);
        assert_eq!(c.session.server_info.as_deref(), Some("edge-1"));
        assert_eq!(c.session.max_streams, 3);
        assert_eq!(c.broker.max_streams, 2);
    }
}
