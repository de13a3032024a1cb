//! The cluster registry's settings (`[cluster]`): where the registry is,
//! what this node announces, and how fast a dead node drops out.

use std::time::Duration;

/// Checks a `redis://` or `rediss://` URL without echoing a password in
/// the error (clap prints the error with the value otherwise).
fn redis_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {
            Ok(s.to_owned())
        }
        Ok(_) => Err("expected redis://[:PASSWORD@]HOST[:PORT][/DB]".into()),
        Err(e) => Err(format!("not a URL ({e})")),
    }
}

/// `rtmp://HOST[:PORT]`, normalized with its port (1935 if none), which
/// is what edges dial.
fn rtmp_origin(s: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
    if u.scheme() != "rtmp" {
        return Err(format!("{s:?}: expected rtmp://HOST[:PORT]"));
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{s:?}: no host"))?;
    if !matches!(u.path(), "" | "/") || u.query().is_some() || !u.username().is_empty() {
        return Err(format!(
            "{s:?}: expected rtmp://HOST[:PORT], without a path, query or user"
        ));
    }
    Ok(format!("rtmp://{host}:{}", u.port().unwrap_or(1935)))
}

/// Checks a cluster node id: it becomes part of Redis keys.
pub(crate) fn node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected 1 to 64 of A-Z a-z 0-9 - _ .".into())
    }
}

fn secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.1..=3600.0).contains(&v) {
        return Err("expected seconds, at least 0.1 and at most 3600".into());
    }
    Ok(v)
}

/// Origin-edge clustering through a Redis registry: origins announce the
/// streams published to them, edges look up where to pull from.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cluster registry (docs/cluster.md)")]
pub struct ClusterArgs {
    /// Redis URL of the cluster registry: redis://HOST:PORT/DB, with a
    /// password redis://:PASSWORD@HOST:PORT/DB. With it, this node looks up
    /// origins there (first, before any static origin list) and, with
    /// --cluster-advertise, announces the streams published to it. Redis
    /// going away never stops RTMP. Never logged: it may hold a password.
    #[arg(
        long = "cluster-redis",
        value_name = "URL",
        value_parser = redis_url,
        hide_env_values = true
    )]
    pub redis: Option<String>,

    /// The rtmp://HOST:PORT (1935 if left out) other nodes pull this
    /// node's streams from,
    /// announced in the registry for every stream published here. Without
    /// it this node only looks up (a pure edge).
    #[arg(long = "cluster-advertise", value_name = "URL", value_parser = rtmp_origin)]
    pub advertise: Option<String>,

    /// This node's id in the registry and in relay chains, one name for
    /// both (default: `[relay] node_id`, else random at each start, so a
    /// restarted node never inherits a dead one's entries).
    #[arg(long = "cluster-node-id", value_name = "ID", value_parser = node_id)]
    pub node_id: Option<String>,

    /// Prefix of every registry key, so several clusters (or other
    /// applications) can share one Redis.
    #[arg(
        long = "cluster-key-prefix",
        value_name = "PREFIX",
        default_value = "tincan:"
    )]
    pub key_prefix: String,

    /// Seconds an announcement lives without a heartbeat: how long a node
    /// that died without a goodbye is still named as an origin.
    #[arg(long = "cluster-ttl", value_name = "SECS", value_parser = secs, default_value_t = 6.0)]
    pub ttl: f64,

    /// Seconds between heartbeats, which renew every announcement; below
    /// --cluster-ttl (at a third of it, an announcement outlives two lost
    /// heartbeats).
    #[arg(long = "cluster-heartbeat", value_name = "SECS", value_parser = secs, default_value_t = 2.0)]
    pub heartbeat: f64,
}

impl ClusterArgs {
    /// What cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.redis.is_none() && self.advertise.is_some() {
            return Err("cluster.advertise needs cluster.redis".into());
        }
        if self.heartbeat >= self.ttl {
            return Err(format!(
                "cluster.heartbeat ({} s) must be below cluster.ttl ({} s), or announcements \
                 expire between heartbeats",
                self.heartbeat, self.ttl
            ));
        }
        Ok(())
    }

    /// The announcements' lifetime.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.ttl)
    }

    /// The heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_urls_are_normalized_with_their_port() {
        assert_eq!(
            rtmp_origin("rtmp://10.0.0.7").as_deref(),
            Ok("rtmp://10.0.0.7:1935")
        );
        assert_eq!(
            rtmp_origin("rtmp://origin-a.example:1940/").as_deref(),
            Ok("rtmp://origin-a.example:1940")
        );
        assert_eq!(
            rtmp_origin("rtmp://[::1]:1936").as_deref(),
            Ok("rtmp://[::1]:1936")
        );
        assert!(rtmp_origin("http://a:1").is_err());
        assert!(rtmp_origin("rtmp://a:1/live").is_err());
        assert!(rtmp_origin("rtmp://user@a:1").is_err());
    }

    #[test]
    fn a_redis_url_error_never_repeats_the_password() {
        let e = redis_url("http://:hunter2@h:6379").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(redis_url("redis://:pw@127.0.0.1:6379/2").is_ok());
        assert!(redis_url("rediss://h").is_ok());
    }

    #[test]
    fn node_ids_are_short_and_plain() {
        assert!(node_id("edge-1.eu_west").is_ok());
        assert!(node_id("").is_err());
        assert!(node_id("a/b").is_err());
        assert!(node_id(&"x".repeat(65)).is_err());
    }
}
