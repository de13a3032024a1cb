//! The `[relay]` part of the configuration file: push targets, pull
//! origins, the retry schedule. Relays are lists of structured entries
//! (an App, a name pattern, several URLs each), which flags cannot say
//! well, so they live in the file only (and, for pushes, the HTTP API).
//!
//! ```toml
//! [[relay.push]]
//! app = "live"
//! name = "cam*"                      # optional: exact, prefix*, or every name
//! to = ["rtmp://a.example/live2/KEY", "rtmps://b.example/app/name?token=T"]
//! tc_token = "..."                   # optional: a TC token sent in connect
//!
//! [[relay.pull]]
//! app = "live"
//! origins = ["rtmp://origin-1.example/live", "rtmp://origin-2.example/live"]
//!
//! [relay]
//! node_id = "edge-1"                 # default: --cluster-node-id, else random
//! hop_limit = 8                      # relay chains this long are refused
//! linger_secs = 10                   # a pull outlives its last player by this
//! not_found_secs = 5                 # a play waits this long for an origin
//! origin_timeout_secs = 2            # an origin without media this long is skipped
//!
//! [relay.tls]                        # rtmps:// destinations and origins
//! ca_file = "/etc/tincan/private-ca.pem"   # trusted besides Mozilla's roots
//! insecure_skip_verify = false       # never in production
//!
//! [relay.retry]
//! initial_secs = 1
//! max_secs = 30
//! stable_secs = 30
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::backoff::BackoffConfig;
use super::pull::PullTimings;
use super::tls::RelayTls;
use super::url::RtmpUrl;

/// Which stream names of an App a relay entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Every name.
    Any,
    /// Exactly this name.
    Exact(String),
    /// Names starting with this.
    Prefix(String),
}

impl Pattern {
    /// `None` or `*`: every name; `abc*`: a prefix; else exact.
    pub fn parse(s: Option<&str>) -> Pattern {
        match s {
            None | Some("*") | Some("") => Pattern::Any,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => Pattern::Prefix(prefix.to_owned()),
                None => Pattern::Exact(p.to_owned()),
            },
        }
    }

    /// Whether `name` is covered.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(n) => n == name,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// One `[[relay.push]]` entry, checked.
#[derive(Debug, Clone)]
pub struct PushRule {
    /// The local App.
    pub app: String,
    /// The local names it covers.
    pub name: Pattern,
    /// Where every matching publish is sent.
    pub to: Vec<RtmpUrl>,
    /// A TC token for the destinations' `connect` (never logged).
    pub tc_token: Option<String>,
}

/// One `[[relay.pull]]` entry, checked.
#[derive(Debug, Clone)]
pub struct PullRule {
    /// The local App.
    pub app: String,
    /// The local names it covers.
    pub name: Pattern,
    /// Origins, tried in order (after the cluster registry's, with one);
    /// may be empty when the registry names them all.
    pub origins: Vec<RtmpUrl>,
    /// A TC token for the origins' `connect`, the registry's origins of
    /// its streams included (never logged).
    pub tc_token: Option<String>,
}

/// Everything `[relay]` sets.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Push rules, in file order.
    pub push: Vec<PushRule>,
    /// Pull rules, in file order (the first match gives the origins).
    pub pull: Vec<PullRule>,
    /// Timings of pulls.
    pub pull_timings: PullTimings,
    /// TLS of `rtmps://` relays.
    pub tls: RelayTls,
    /// This server's id in relay chains (loop prevention).
    pub node_id: String,
    /// `node_id` came from the file rather than chance, so a cluster node
    /// id given elsewhere must agree with it (one node, one name).
    pub node_id_given: bool,
    /// Relay chains this long are refused.
    pub hop_limit: usize,
    /// The retry schedule of every relay connection.
    pub retry: BackoffConfig,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileRelay {
    #[serde(default)]
    push: Vec<FilePush>,
    #[serde(default)]
    pull: Vec<FilePull>,
    #[serde(default)]
    retry: Option<FileRetry>,
    #[serde(default)]
    tls: Option<FileTls>,
    node_id: Option<String>,
    hop_limit: Option<usize>,
    linger_secs: Option<f64>,
    not_found_secs: Option<f64>,
    origin_timeout_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePull {
    app: String,
    name: Option<String>,
    #[serde(default)]
    origins: Vec<String>,
    tc_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePush {
    app: String,
    name: Option<String>,
    to: Vec<String>,
    tc_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetry {
    initial_secs: Option<f64>,
    max_secs: Option<f64>,
    stable_secs: Option<f64>,
}

fn secs(key: &str, v: Option<f64>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!(
            "relay.{key}: {s} is not a number of seconds in (0, 86400]"
        )),
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            push: Vec::new(),
            pull: Vec::new(),
            pull_timings: PullTimings::default(),
            tls: RelayTls::default(),
            node_id: random_node_id(),
            node_id_given: false,
            hop_limit: tincan_core::via::LoopGuard::default().hop_limit,
            retry: BackoffConfig::default(),
        }
    }
}

/// A node id for a server that names none: random per process, so two
/// servers never share one by default (the host name would be the same
/// for two servers on one machine, or for containers cloned from one
/// image).
fn random_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("tincan-{n:016x}")
}

impl PushRule {
    /// Checks one entry (also what `POST /api/v1/relays/push` takes).
    pub fn new(
        app: String,
        name: Option<&str>,
        to: &[String],
        tc_token: Option<String>,
    ) -> Result<PushRule, String> {
        if app.is_empty() {
            return Err("a push names a local app".into());
        }
        if to.is_empty() {
            return Err("a push has at least one destination in `to`".into());
        }
        let to = to
            .iter()
            .map(|u| RtmpUrl::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PushRule {
            app,
            name: Pattern::parse(name),
            to,
            tc_token,
        })
    }
}

impl RelayConfig {
    /// Reads `[relay]` from a configuration file's text (other tables are
    /// the settings checker's). Every error is returned.
    pub fn from_text(text: &str) -> Result<RelayConfig, Vec<String>> {
        let top: toml::Table = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let Some(relay) = top.get("relay") else {
            return Ok(RelayConfig::default());
        };
        let file: FileRelay = relay
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| vec![format!("relay: {}", e.message())])?;
        let mut errors = Vec::new();
        let mut config = RelayConfig::default();
        for (i, p) in file.push.into_iter().enumerate() {
            match PushRule::new(p.app, p.name.as_deref(), &p.to, p.tc_token) {
                Ok(rule) => config.push.push(rule),
                Err(e) => errors.push(format!("relay.push[{i}]: {e}")),
            }
        }
        for (i, p) in file.pull.into_iter().enumerate() {
            // No origins is a rule for the cluster registry's origins
            // alone: it gives them its TC token.
            if p.app.is_empty() {
                errors.push(format!("relay.pull[{i}]: a pull names a local app"));
                continue;
            }
            match p.origins.iter().map(|u| RtmpUrl::parse(u)).collect() {
                Ok(origins) => config.pull.push(PullRule {
                    app: p.app,
                    name: Pattern::parse(p.name.as_deref()),
                    origins,
                    tc_token: p.tc_token,
                }),
                Err(e) => errors.push(format!("relay.pull[{i}]: {e}")),
            }
        }
        if let Some(id) = file.node_id {
            if id.is_empty() || id.len() > 128 {
                errors.push("relay.node_id: 1 to 128 bytes".into());
            }
            config.node_id = id;
            config.node_id_given = true;
        }
        match file.hop_limit {
            Some(n) if (1..=64).contains(&n) => config.hop_limit = n,
            Some(n) => errors.push(format!("relay.hop_limit: {n} is not in 1..=64")),
            None => {}
        }
        if let Some(t) = file.tls {
            config.tls = RelayTls {
                ca_file: t.ca_file,
                insecure_skip_verify: t.insecure_skip_verify,
            };
        }
        let d = PullTimings::default();
        match (
            secs("linger_secs", file.linger_secs, d.linger),
            secs("not_found_secs", file.not_found_secs, d.not_found),
            secs(
                "origin_timeout_secs",
                file.origin_timeout_secs,
                d.origin_timeout,
            ),
        ) {
            (Ok(linger), Ok(not_found), Ok(origin_timeout)) => {
                config.pull_timings = PullTimings {
                    linger,
                    not_found,
                    origin_timeout,
                }
            }
            (a, b, c) => errors.extend([a.err(), b.err(), c.err()].into_iter().flatten()),
        }
        if let Some(r) = file.retry {
            let d = BackoffConfig::default();
            match (
                secs("retry.initial_secs", r.initial_secs, d.initial),
                secs("retry.max_secs", r.max_secs, d.max),
                secs("retry.stable_secs", r.stable_secs, d.stable),
            ) {
                (Ok(initial), Ok(max), Ok(stable)) if initial <= max => {
                    config.retry = BackoffConfig {
                        initial,
                        max,
                        stable,
                    }
                }
                (Ok(_), Ok(_), Ok(_)) => {
                    errors.push("relay.retry: initial_secs is above max_secs".into())
                }
                (a, b, c) => errors.extend([a.err(), b.err(), c.err()].into_iter().flatten()),
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_entries_and_retry_are_read() {
        let c = RelayConfig::from_text(
            r#"
            [[relay.push]]
            app = "live"
            name = "cam*"
            to = ["rtmp://a/live/k", "rtmps://b:4443/x"]
            [relay.retry]
            initial_secs = 0.5
            max_secs = 10
            "#,
        )
        .unwrap();
        assert_eq!(c.push.len(), 1);
        assert_eq!(c.push[0].name, Pattern::Prefix("cam".into()));
        assert!(c.push[0].to[1].tls);
        assert_eq!(c.retry.initial, Duration::from_millis(500));
        assert_eq!(c.retry.max, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_url_or_unknown_key_is_an_error() {
        let e = RelayConfig::from_text("[[relay.push]]\napp='a'\nto=['http://x/y']\n").unwrap_err();
        assert!(e[0].contains("relay.push[0]"), "{e:?}");
        let e = RelayConfig::from_text("[[relay.push]]\napp='a'\nto=['rtmp://x/y']\nbogus=1\n")
            .unwrap_err();
        assert!(e[0].contains("bogus"), "{e:?}");
    }

    #[test]
    fn patterns_match_exact_prefix_and_any() {
        assert!(Pattern::parse(None).matches("x"));
        assert!(Pattern::parse(Some("cam*")).matches("cam1"));
        assert!(!Pattern::parse(Some("cam*")).matches("ca"));
        assert!(Pattern::parse(Some("cam")).matches("cam"));
        assert!(!Pattern::parse(Some("cam")).matches("cam1"));
    }
}
