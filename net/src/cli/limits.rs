//! The flags for every bound a peer can push against, each a field of the
//! core's [`ServerConfig`] with its default shown in `--help` (taken from
//! the core, so the two cannot disagree). Why each default is what it is:
//! docs/limits.md.

use std::time::Duration;

use tincan_core::amf::MAX_DEPTH;
use tincan_core::server::ServerConfig;
use tincan_core::session::MAX_STREAMS;

use super::{d, secs};

/// Limits on what clients can make the server hold (see docs/limits.md),
/// one flag per field of the core's configuration, so an operator can
/// tighten or loosen any bound without a rebuild.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits (see docs/limits.md)")]
pub struct Limits {
    /// Most connections served at once; more are refused at accept.
    #[arg(long, value_name = "COUNT", default_value_t = d().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,

    /// Most connections from one IP address at once.
    #[arg(long, value_name = "COUNT", default_value_t = d().max_connections_per_ip as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_ip: u64,

    /// Seconds a new connection gets to complete the RTMP handshake.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.handshake.timeout.as_secs_f64())]
    handshake_timeout: f64,

    /// Seconds after the handshake a client gets to send `connect`.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.connect_timeout.as_secs_f64())]
    connect_timeout: f64,

    /// Seconds a publisher may send no media before it is disconnected.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.publish_idle_timeout.as_secs_f64())]
    publish_idle_timeout: f64,

    /// Seconds of silence from a client before it is pinged.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.ping_interval.as_secs_f64())]
    ping_interval: f64,

    /// Seconds of silence from a client before it is declared dead and
    /// disconnected.
    #[arg(long, value_name = "SECS", value_parser = secs,
          default_value_t = d().session.dead_peer_timeout.as_secs_f64())]
    dead_peer_timeout: f64,

    /// Message streams (createStream) one connection may hold at once
    /// (at most 20); more are answered with an error.
    #[arg(long, value_name = "COUNT", default_value_t = d().session.max_streams,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_STREAMS)))]
    max_streams: u32,

    /// Largest chunk size a client may select with Set Chunk Size, in
    /// bytes (2147483647 is the protocol's maximum).
    #[arg(long, value_name = "BYTES", default_value_t = d().session.decoder_limits.max_chunk_size,
          value_parser = clap::value_parser!(u32).range(1..=0x7FFF_FFFF))]
    max_chunk_size: u32,

    /// Largest message a client may declare, in bytes (a video frame is
    /// one message).
    #[arg(long, value_name = "BYTES",
          default_value_t = d().session.decoder_limits.max_message_len as u64,
          value_parser = clap::value_parser!(u64).range(1..=0xFF_FFFF))]
    max_message_size: u64,

    /// Chunk streams that may each hold a partly received message at once.
    #[arg(long, value_name = "COUNT",
          default_value_t = d().session.decoder_limits.max_partial_streams as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_partial_chunk_streams: u64,

    /// Distinct chunk stream ids one connection may use.
    #[arg(long, value_name = "COUNT",
          default_value_t = d().session.decoder_limits.max_chunk_streams as u64,
          value_parser = clap::value_parser!(u64).range(1..=65598))]
    max_chunk_streams: u64,

    /// Bytes of unparsed input and partial messages one connection may
    /// hold; must exceed --max-message-size.
    #[arg(long, value_name = "BYTES",
          default_value_t = d().session.decoder_limits.max_buffered_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_buffered_bytes: u64,

    /// Largest command or data (AMF) message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = d().session.max_amf_message_len as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_amf_message_size: u64,

    /// Deepest nesting of objects and arrays accepted in a command or data
    /// message, in levels (at most 64).
    #[arg(long, value_name = "LEVELS", default_value_t = d().session.max_amf_depth as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_DEPTH as u64))]
    max_amf_depth: u64,

    /// Bytes of media held for one player that cannot keep up; past it the
    /// oldest media is abandoned.
    #[arg(long, value_name = "BYTES",
          default_value_t = d().session.real_time.max_backlog_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_backlog_bytes: u64,

    /// `relay` and `broadcast` commands one connection may send per
    /// second; past it the connection is closed.
    #[arg(long, value_name = "COUNT", default_value_t = d().session.max_relays_per_second,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_relays_per_second: u32,

    /// Bytes of `relay` and `broadcast` bodies one connection may send per
    /// second; past it the connection is closed.
    #[arg(long, value_name = "BYTES",
          default_value_t = d().session.max_relay_bytes_per_second as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_relay_bytes_per_second: u64,

    /// Streams (published or waited for by a player) in the whole server;
    /// a publish or play that would create one more is refused.
    #[arg(long, value_name = "COUNT", default_value_t = d().broker.max_streams as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_live_streams: u64,

    /// Memory kept per stream for fast start (the current GOP), in bytes:
    /// payloads plus about 100 bytes of bookkeeping per frame.
    #[arg(long, value_name = "BYTES",
          default_value_t = d().broker.fast_start_max_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    fast_start_max_bytes: u64,

    /// Frames (audio, video, data) kept per stream for fast start.
    #[arg(long, value_name = "COUNT",
          default_value_t = d().broker.fast_start_max_frames as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    fast_start_max_frames: u64,
}

/// A count that fits `usize` (it always does on 64-bit targets; on 32-bit
/// ones a huge value means "no limit" anyway).
fn size(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Limits {
    /// Writes the flags into `config`, or says which combination cannot
    /// work.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), String> {
        if self.max_buffered_bytes <= self.max_message_size {
            return Err(format!(
                "--max-buffered-bytes ({}) must be above --max-message-size ({}), or a \
                 message of the largest allowed size could never complete",
                self.max_buffered_bytes, self.max_message_size
            ));
        }
        // Parsed by `secs`, so these conversions cannot fail.
        let dur = |v: f64| Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX);
        config.max_connections = size(self.max_connections);
        config.max_connections_per_ip = size(self.max_connections_per_ip);
        let s = &mut config.session;
        s.handshake.timeout = dur(self.handshake_timeout);
        s.connect_timeout = dur(self.connect_timeout);
        s.publish_idle_timeout = dur(self.publish_idle_timeout);
        s.ping_interval = dur(self.ping_interval);
        s.dead_peer_timeout = dur(self.dead_peer_timeout);
        s.max_streams = self.max_streams;
        s.decoder_limits.max_chunk_size = self.max_chunk_size;
        s.decoder_limits.max_message_len = size(self.max_message_size);
        s.decoder_limits.max_partial_streams = size(self.max_partial_chunk_streams);
        s.decoder_limits.max_chunk_streams = size(self.max_chunk_streams);
        s.decoder_limits.max_buffered_bytes = size(self.max_buffered_bytes);
        s.max_amf_message_len = size(self.max_amf_message_size);
        s.max_amf_depth = size(self.max_amf_depth);
        s.real_time.max_backlog_bytes = size(self.max_backlog_bytes);
        s.max_relays_per_second = self.max_relays_per_second;
        s.max_relay_bytes_per_second = size(self.max_relay_bytes_per_second);
        let b = &mut config.broker;
        b.max_streams = size(self.max_live_streams);
        b.fast_start_max_bytes = size(self.fast_start_max_bytes);
        b.fast_start_max_frames = size(self.fast_start_max_frames);
        Ok(())
    }
}
