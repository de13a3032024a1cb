//! Environment names of other servers, accepted as aliases of tincan's
//! settings so a deployment can move over without rewriting its
//! environment: the Go RTMP server's (`RTMP_PORT`, `SSL_*`, `LOG_*`) and
//! `RUST_LOG`. An alias sits in the environment layer, below the setting's
//! own `TINCAN_*` name: flags > `TINCAN_*` > aliases > file > defaults.

use std::collections::BTreeMap;

/// Reads one environment variable.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment variable (or a family of them) that sets a setting.
pub struct Alias {
    /// The variables read, in the order they are consulted.
    pub vars: &'static [&'static str],
    /// The key path of the setting they set.
    pub key: &'static str,
    /// What it means, for the docs and `config example`.
    pub doc: &'static str,
    /// The setting's values (as the flag would be given them) from the
    /// variables, `None` if none is set, or why a value is wrong.
    map: fn(Env<'_>) -> Result<Option<Vec<String>>, String>,
}

fn port(var: &str, v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{var}={v:?} is not a port number (1-65535)")),
    }
}

fn yes(var: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("{var}={v:?}: expected YES or NO")),
    }
}

/// Every alias. The access-control aliases (`RTMP_PLAY_WHITELIST`,
/// `MAX_IP_CONCURRENT_CONNECTIONS`, ...) join this table with their
/// settings.
pub const ALIASES: &[Alias] = &[
    Alias {
        vars: &["RTMP_PORT"],
        key: "listen",
        doc: "RTMP_PORT=PORT listens on 0.0.0.0:PORT (the Go RTMP server's name)",
        map: |env| match env("RTMP_PORT") {
            Some(v) => Ok(Some(vec![format!("0.0.0.0:{}", port("RTMP_PORT", &v)?)])),
            None => Ok(None),
        },
    },
    Alias {
        vars: &["SSL_PORT"],
        key: "tls.listen",
        doc: "SSL_PORT=PORT listens for RTMPS on 0.0.0.0:PORT (the Go RTMP server's name)",
        map: |env| match env("SSL_PORT") {
            Some(v) => Ok(Some(vec![format!("0.0.0.0:{}", port("SSL_PORT", &v)?)])),
            None => Ok(None),
        },
    },
    Alias {
        vars: &["SSL_CERT"],
        key: "tls.cert",
        doc: "SSL_CERT=PATH is the certificate chain (the Go RTMP server's name)",
        map: |env| Ok(env("SSL_CERT").map(|v| vec![v])),
    },
    Alias {
        vars: &["SSL_KEY"],
        key: "tls.key",
        doc: "SSL_KEY=PATH is the private key (the Go RTMP server's name)",
        map: |env| Ok(env("SSL_KEY").map(|v| vec![v])),
    },
    Alias {
        vars: &["RUST_LOG", "LOG_DEBUG", "LOG_REQUESTS"],
        key: "log",
        doc: "RUST_LOG=FILTER is the log filter; else LOG_DEBUG=YES means `debug`, \
              and LOG_REQUESTS=NO means `warn` (no per-connection lines), YES `info` \
              (the Go RTMP server's names)",
        map: |env| {
            if let Some(filter) = env("RUST_LOG") {
                return Ok(Some(vec![filter]));
            }
            let debug = env("LOG_DEBUG").map(|v| yes("LOG_DEBUG", &v)).transpose()?;
            let requests = env("LOG_REQUESTS")
                .map(|v| yes("LOG_REQUESTS", &v))
                .transpose()?;
            Ok(match (debug, requests) {
                (Some(true), _) => Some(vec!["debug".into()]),
                (_, Some(false)) => Some(vec!["warn".into()]),
                (Some(false), _) | (_, Some(true)) => Some(vec!["info".into()]),
                (None, None) => None,
            })
        },
    },
];

/// What the aliases set: key path → (the variables that set it, values).
pub type Resolved = BTreeMap<String, (String, Vec<String>)>;

/// Reads every alias from `env`, or every wrong value.
pub fn resolve(env: Env<'_>) -> Result<Resolved, Vec<String>> {
    let mut out = Resolved::new();
    let mut errors = Vec::new();
    for alias in ALIASES {
        match (alias.map)(env) {
            Ok(Some(values)) => {
                let set: Vec<&str> = alias
                    .vars
                    .iter()
                    .copied()
                    .filter(|v| env(v).is_some())
                    .collect();
                out.insert(alias.key.to_owned(), (set.join("+"), values));
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The process environment, with empty variables counted as unset (as
/// `RTMP_PORT=` in a unit file means "not given").
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
