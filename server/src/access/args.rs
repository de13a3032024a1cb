//! The settings of access control: `[access]` (also per App, as
//! `[app.NAME.access]`), `[hook]` and `[redis]`. Each is a `clap::Args`
//! struct, so the configuration layers (server/src/config) give every one
//! a flag, a file key, a `TINCAN_*` variable and, where the Go RTMP server
//! had one, its variable as an alias (config/aliases.rs).

use tincan_core::ipnet::IpNet;

fn net(s: &str) -> Result<IpNet, String> {
    s.trim().parse::<IpNet>().map_err(|e| e.to_string())
}

fn secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(v > 0.0 && v <= 3600.0) {
        return Err("expected seconds, above 0 and at most 3600".into());
    }
    Ok(v)
}

fn http_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(s.to_owned()),
        Ok(u) => Err(format!(
            "{s:?}: expected an http:// or https:// URL, not {}:",
            u.scheme()
        )),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Who may connect, publish and play (`[access]`; an App's
/// `[app.NAME.access]` replaces these for that App). Lists take IPv4 and
/// IPv6 addresses and subnets (`10.0.0.0/8`, `192.0.2.7`, `::1`,
/// `2001:db8::/32`), separated by commas or repeated.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Access control (docs/operations.md)")]
pub struct AccessArgs {
    /// Only these addresses and subnets may connect (empty: any).
    #[arg(long = "access-allow-connect", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub allow_connect: Vec<IpNet>,

    /// These addresses and subnets may not connect (checked after the
    /// allow-list).
    #[arg(long = "access-deny-connect", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub deny_connect: Vec<IpNet>,

    /// Only these addresses and subnets may publish (empty: any).
    #[arg(long = "access-allow-publish", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub allow_publish: Vec<IpNet>,

    /// These addresses and subnets may not publish.
    #[arg(long = "access-deny-publish", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub deny_publish: Vec<IpNet>,

    /// Only these addresses and subnets may play (empty: any). The Go RTMP
    /// server's RTMP_PLAY_WHITELIST.
    #[arg(long = "access-allow-play", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub allow_play: Vec<IpNet>,

    /// These addresses and subnets may not play.
    #[arg(long = "access-deny-play", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub deny_play: Vec<IpNet>,

    /// Addresses and subnets the per-IP connection limit
    /// (--max-connections-per-ip) does not apply to. The Go RTMP server's
    /// CONCURRENT_LIMIT_WHITELIST. Server-wide only.
    #[arg(long = "access-per-ip-exempt", value_name = "NETS", value_delimiter = ',', value_parser = net)]
    pub per_ip_exempt: Vec<IpNet>,

    /// App and stream names may only hold A-Z a-z 0-9 - and _ (the Go RTMP
    /// server's CHANNEL and KEY); others are refused with a status saying
    /// why.
    #[arg(long = "access-strict-names")]
    pub strict_names: bool,

    /// Longest App and stream name accepted, in characters (0: no limit
    /// beyond the protocol's). The Go RTMP server's ID_MAX_LENGTH.
    #[arg(long = "access-max-name-length", value_name = "CHARS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub max_name_length: u64,

    /// The Go RTMP server's channels: an App carries one stream, published
    /// by one connection at a time, and a player must give the publisher's
    /// stream name (its key); a second publisher or a wrong key is refused.
    #[arg(long = "access-channel-keys")]
    pub channel_keys: bool,

    /// URL that must accept every publish: a POST with an empty body and an
    /// `rtmp-event` header holding an HS256 JWT (`start` before the
    /// publish, `stop` when it ends); 200 accepts and its `stream-id`
    /// header names the publish. The Go RTMP server's CALLBACK_URL.
    #[arg(long = "access-callback-url", value_name = "URL", value_parser = http_url)]
    pub callback_url: Option<String>,

    /// Secret the callback's JWT is signed with (HS256). The Go RTMP
    /// server's JWT_SECRET. Never logged.
    #[arg(
        long = "access-jwt-secret",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// The JWT's `sub` claim. The Go RTMP server's CUSTOM_JWT_SUBJECT.
    #[arg(
        long = "access-jwt-subject",
        value_name = "TEXT",
        default_value = "rtmp_event"
    )]
    pub jwt_subject: String,

    /// Seconds the callback gets to answer a `start` event; no answer by
    /// then refuses the publish.
    #[arg(long = "access-callback-timeout", value_name = "SECS", value_parser = secs,
          default_value_t = 10.0)]
    pub callback_timeout: f64,
}

/// The HTTP auth hook (`[hook]`): a JSON POST for connect, publish and
/// play that must answer 2xx, and notifications that never block.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "HTTP auth hook (docs/operations.md)")]
pub struct HookArgs {
    /// URL asked (JSON POST) before a connect, publish or play is
    /// accepted: 2xx accepts, anything else refuses with the answer's text.
    #[arg(long = "hook-url", value_name = "URL", value_parser = http_url)]
    pub url: Option<String>,

    /// Which requests ask --hook-url: any of connect, publish, play.
    #[arg(long = "hook-actions", value_name = "ACTIONS", value_delimiter = ',',
          default_value = "connect,publish,play",
          value_parser = ["connect", "publish", "play"])]
    pub actions: Vec<String>,

    /// URL told (JSON POST, answer ignored) when a publish ends
    /// (`unpublish`), a play stops (`stop`) and a connection closes
    /// (`disconnect`). Nobody waits for it.
    #[arg(long = "hook-notify-url", value_name = "URL", value_parser = http_url)]
    pub notify_url: Option<String>,

    /// Seconds the hook gets to answer; no answer refuses the request.
    #[arg(long = "hook-timeout", value_name = "SECS", value_parser = secs, default_value_t = 5.0)]
    pub timeout: f64,

    /// Most hook requests (and, separately, notifications) in flight at
    /// once; requests beyond it are refused at once ("auth hook busy") and
    /// notifications beyond it are dropped, so a slow hook cannot pile up
    /// connections or memory.
    #[arg(long = "hook-max-pending", value_name = "COUNT", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_pending: u64,
}

/// Control commands over Redis pub/sub (`[redis]`), as the Go RTMP server
/// takes them: `kill-session>CHANNEL`, `close-stream>CHANNEL|STREAM_ID`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Redis control (docs/operations.md)")]
pub struct RedisArgs {
    /// Subscribe to --redis-channel for control commands. The Go RTMP
    /// server's REDIS_USE=YES.
    #[arg(long = "redis-enabled")]
    pub enabled: bool,

    /// Redis host. REDIS_HOST.
    #[arg(long = "redis-host", value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Redis port. REDIS_PORT.
    #[arg(long = "redis-port", value_name = "PORT", default_value_t = 6379,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Redis password, if it requires one. REDIS_PASSWORD. Never logged.
    #[arg(
        long = "redis-password",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Channel the commands are published on. REDIS_CHANNEL.
    #[arg(long = "redis-channel", value_name = "CHANNEL")]
    pub channel: Option<String>,
}

impl RedisArgs {
    /// What cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.enabled && self.channel.as_deref().unwrap_or("").is_empty() {
            return Err("redis.enabled (REDIS_USE) needs redis.channel (REDIS_CHANNEL)".into());
        }
        Ok(())
    }
}

impl AccessArgs {
    /// What cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.callback_url.is_some() && self.jwt_secret.as_deref().unwrap_or("").is_empty() {
            return Err(
                "access.callback_url (CALLBACK_URL) needs access.jwt_secret (JWT_SECRET)".into(),
            );
        }
        Ok(())
    }
}
