//! `tincan-bench`: load tools that drive any RTMP server over real sockets
//! with the core's own [`ClientSession`](tincan_core::client::ClientSession),
//! and measure it from the outside (/proc), so tincan, nginx-rtmp and
//! node-media-server are measured alike. It is its own binary so that the
//! production `tincan` carries no measurement code.
//!
//! - `tincan-bench fanout`: one publisher sends a real FLV paced in real time, N
//!   players play it; reports delivered bytes, per-player completeness,
//!   latency (from a marker inside the H.264 frames, see [`flv`]), time to
//!   first frame, the server's CPU and memory, and the tool's own CPU so a
//!   saturated tool is visible.
//! - `tincan-bench ingest`: N publishers, each sending the same real FLV in
//!   real time to a stream of its own, each stream with one player; reports
//!   what the server received and delivered, completeness, latency, and the
//!   server's CPU per received GB: the cost of taking streams in, where
//!   `fanout` measures the cost of sending one out.
//! - `tincan-bench idle`: N connections that connect and then sit idle; reports
//!   what each costs the server in memory.
//! - `tincan-bench floor`: a minimal fan-out server (see [`floor`]) that writes
//!   what tincan writes and does nothing else: the kernel's cost of the
//!   traffic, which the comparison reports every server as a multiple of.
//!
//! The inputs the comparison uses are made with ffmpeg (720p30 H.264 at
//! ~2.5 Mbit/s, keyframe every 2 s, no B-frames, AAC 128k, 30 s):
//!
//! ```text
//! ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
//!   -t 30 -c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 \
//!   -b:v 2500k -maxrate 2500k -bufsize 5000k -pix_fmt yuv420p -c:a aac -b:a 128k -f flv bench-720p.flv
//! ```
//!
//! and the 500 kbit/s variant with `size=640x360`, `-b:v 436k -maxrate 436k
//! -bufsize 872k` and `-b:a 64k`.

// Only the floor's io_uring module may use `unsafe` (its writes' buffers
// must outlive them); it allows it for itself alone.
#![deny(unsafe_code)]

mod fanout;
mod floor;
mod flv;
mod idle;
mod ingest;
mod live;
mod proc;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The ffmpeg command that makes a suitable input, for `--help`.
const INPUT_HELP: &str = "\
The input must be an FLV with H.264 video (AAC audio optional). Make the 720p30 input with:
  ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \\
    -t 30 -c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 \\
    -b:v 2500k -maxrate 2500k -bufsize 5000k -pix_fmt yuv420p -c:a aac -b:a 128k -f flv bench-720p.flv
and the 500 kbit/s variant with size=640x360, -b:v 436k -maxrate 436k -bufsize 872k, -b:a 64k.";

/// Load tools for RTMP servers (any server, not only tincan).
#[derive(Debug, Parser)]
#[command(name = "tincan-bench", version)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

/// The load tools.
#[derive(Debug, Subcommand)]
enum Bench {
    /// One publisher, N players: delivered bytes, completeness, latency,
    /// first frame, server CPU and memory.
    #[command(after_help = INPUT_HELP)]
    Fanout(FanoutArgs),
    /// N publishers, each to its own stream with one player: bytes the
    /// server received, completeness, latency, server CPU per received GB.
    #[command(after_help = INPUT_HELP)]
    Ingest(IngestArgs),
    /// N idle connections: what each costs the server in memory.
    Idle(IdleArgs),
    /// A minimal fan-out server (no broker, no backlog, no policy): the
    /// kernel's cost of the traffic, which other servers are measured
    /// against. Prints `floor listening on ADDR`, then serves until killed.
    Floor(FloorArgs),
}

/// How the floor server writes to players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Writes {
    /// One vectored write per message per player.
    PerFrame,
    /// Per player, messages accumulate until `--batch-ms` or
    /// `--batch-bytes`, whichever comes first, then go in one write.
    Batched,
    /// One vectored write per message per player, as io_uring operations:
    /// all of a message's writes in one submission (Linux only).
    UringPerFrame,
}

/// `tincan-bench floor` options.
#[derive(Debug, Args)]
pub(crate) struct FloorArgs {
    /// Where to listen (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:1935")]
    listen: SocketAddr,
    /// How players are written to.
    #[arg(long, value_enum, default_value_t = Writes::PerFrame)]
    writes: Writes,
    /// Batched writes: the longest a message waits, in milliseconds.
    #[arg(long, default_value_t = 20)]
    batch_ms: u64,
    /// Batched writes: queued bytes that are written at once.
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
}

/// `tincan-bench fanout` options.
#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// Where to publish: rtmp://HOST:PORT/APP/STREAM.
    #[arg(long)]
    url: String,
    /// Where players play (default: --url).
    #[arg(long)]
    play_url: Option<String>,
    /// The FLV to publish, looped with continuous timestamps.
    #[arg(long)]
    input: PathBuf,
    /// Number of players.
    #[arg(long, default_value_t = 50)]
    players: usize,
    /// Seconds of measurement, once every player has joined.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds the publisher runs before players join.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Milliseconds between player joins.
    #[arg(long, default_value_t = 2.0)]
    join_interval_ms: f64,
    /// Worker threads for the players (the publisher has its own thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    measure: MeasureArgs,
}

/// What `fanout` and `ingest` share about measuring and reporting.
#[derive(Debug, Args)]
pub(crate) struct MeasureArgs {
    /// The server's process id: its CPU and memory (and its children's)
    /// are read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Seconds at the end of the window whose frames do not count towards
    /// completeness (they may still be in flight).
    #[arg(long, default_value_t = 1.0)]
    tail: f64,
}

/// `tincan-bench ingest` options.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// Where to publish: rtmp://HOST:PORT/APP/NAME; publisher i publishes
    /// (and its player plays) NAME-i. NAME defaults to `ingest`.
    #[arg(long)]
    url: String,
    /// The FLV every publisher publishes, looped with continuous
    /// timestamps.
    #[arg(long)]
    input: PathBuf,
    /// Number of publishers (and of players: one per stream).
    #[arg(long, default_value_t = 50)]
    publishers: usize,
    /// Seconds of measurement, once every publisher publishes and every
    /// player has its first frame.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds each publisher runs before its player joins.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Milliseconds between publisher starts (each player follows its
    /// publisher by --warmup, so players arrive at the same rate): a server
    /// sees a steady trickle of handshakes, not a burst of hundreds that
    /// its accept backlog or handshake limits would refuse.
    #[arg(long, default_value_t = 10.0)]
    join_interval_ms: f64,
    /// Worker threads for the publishers (their pacing never waits behind
    /// player work: they run apart).
    #[arg(long, default_value_t = 1)]
    publisher_threads: usize,
    /// Worker threads for the players.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    measure: MeasureArgs,
}

/// How far each idle connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Stage {
    /// A TCP connection only.
    Tcp,
    /// The RTMP handshake.
    Handshake,
    /// The handshake and `connect`.
    Connect,
}

/// `tincan-bench idle` options.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// The App to connect to: rtmp://HOST:PORT/APP.
    #[arg(long)]
    url: String,
    /// Number of idle connections.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// How far each connection goes before idling.
    #[arg(long, value_enum, default_value_t = Stage::Connect)]
    stage: Stage,
    /// The server's process id, for its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Seconds to hold the connections after all are open, before memory
    /// is read (the server may settle buffers).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
}

fn main() -> ExitCode {
    // Thousands of sockets need the open-files limit raised, as `tincan
    // serve` does: the common soft default (1024) would fail a run of a
    // thousand players.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("tincan-bench: cannot raise the open-files limit: {e}");
    }
    let result = match Cli::parse().bench {
        Bench::Fanout(args) => fanout::run(&args),
        Bench::Ingest(args) => ingest::run(&args),
        Bench::Idle(args) => idle::run(&args),
        Bench::Floor(args) => floor::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tincan-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An rtmp:// URL split into what a client needs.
#[derive(Debug, Clone)]
pub(crate) struct RtmpUrl {
    pub(crate) addr: SocketAddr,
    pub(crate) tc_url: String,
    pub(crate) app: String,
    pub(crate) stream: String,
}

/// Parses `rtmp://HOST[:PORT]/APP[/STREAM]`; HOST must resolve.
pub(crate) fn parse_url(url: &str) -> Result<RtmpUrl, String> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| format!("{url}: only rtmp:// URLs are supported"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:1935")
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let (app, stream) = path.split_once('/').unwrap_or((path, ""));
    if app.is_empty() {
        return Err(format!("{url}: no App in the URL"));
    }
    Ok(RtmpUrl {
        addr,
        tc_url: format!("rtmp://{authority}/{app}"),
        app: app.to_owned(),
        stream: stream.to_owned(),
    })
}

/// Connections per loopback source address (see [`connect`]).
const PER_SOURCE: usize = 1000;

/// Opens connection number `i` to `addr` with TCP_NODELAY.
///
/// On a loopback IPv4 target, connection `i` comes from 127.0.0.(2 + i /
/// 1000): real viewers come from many addresses, and a server's
/// per-address limit (tincan's default is 5,000) should not be what a
/// 5,000-player run measures. Elsewhere the system picks the source.
pub(crate) async fn connect(addr: SocketAddr, i: usize) -> std::io::Result<tokio::net::TcpStream> {
    let stream = match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            // At most 253 sources: past that, wrap (the limit is not
            // reached at any count a single machine can run).
            let host = 2 + (i / PER_SOURCE) % 253;
            let source = std::net::Ipv4Addr::new(127, 0, 0, host as u8);
            socket.bind(SocketAddr::from((source, 0)))?;
            socket.connect(addr).await?
        }
        _ => tokio::net::TcpStream::connect(addr).await?,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A tiny JSON object writer: the report is flat numbers and a few nested
/// objects, not worth a serializer dependency.
#[derive(Default)]
pub(crate) struct Json(String);

impl Json {
    fn sep(&mut self) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
    }

    /// A number, or null for `None` and non-finite values.
    pub(crate) fn num(&mut self, key: &str, v: Option<f64>) -> &mut Self {
        self.sep();
        match v.filter(|v| v.is_finite()) {
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(self.0, "\"{key}\":{}", v as i64);
            }
            Some(v) => {
                let _ = write!(self.0, "\"{key}\":{v:.4}");
            }
            None => {
                let _ = write!(self.0, "\"{key}\":null");
            }
        }
        self
    }

    /// An integer.
    pub(crate) fn int(&mut self, key: &str, v: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.0, "\"{key}\":{v}");
        self
    }

    /// A string (only tool-made strings: no escaping beyond quotes).
    pub(crate) fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.sep();
        let v = v.replace(['"', '\\'], "'");
        let _ = write!(self.0, "\"{key}\":\"{v}\"");
        self
    }

    /// A nested object.
    pub(crate) fn obj(&mut self, key: &str, inner: Json) -> &mut Self {
        self.sep();
        let _ = write!(self.0, "\"{key}\":{}", inner.finish());
        self
    }

    /// The finished object.
    pub(crate) fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_splits_into_app_and_stream() {
        let u = parse_url("rtmp://127.0.0.1:1936/live/bench").expect("valid");
        assert_eq!(u.addr.port(), 1936);
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "bench");
        assert_eq!(u.tc_url, "rtmp://127.0.0.1:1936/live");
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile::<u32>(&[], 0.5), None);
    }

    #[test]
    fn json_writes_null_for_missing_numbers() {
        let mut inner = Json::default();
        inner.num("p50", Some(1.5));
        let mut j = Json::default();
        j.int("players", 5)
            .num("cpu", None)
            .obj("latency_ms", inner);
        assert_eq!(
            j.finish(),
            r#"{"players":5,"cpu":null,"latency_ms":{"p50":1.5000}}"#
        );
    }
}
