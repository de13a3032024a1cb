//! Environment names of other servers, accepted as aliases of tincan's
//! settings so a deployment can move over without rewriting its
//! environment: the Go RTMP server's (`RTMP_PORT`, `SSL_*`, `LOG_*`,
//! `ID_MAX_LENGTH`, `MAX_IP_CONCURRENT_CONNECTIONS`,
//! `CONCURRENT_LIMIT_WHITELIST`, `RTMP_PLAY_WHITELIST`, `CALLBACK_URL`,
//! `JWT_SECRET`, `REDIS_*`) and `RUST_LOG`; and the profiles
//! (`--profile go-rtmp-server`), which give those variables another
//! server's defaults. An alias sits in the environment layer, below the setting's
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

fn count(var: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| format!("{var}={v:?} is not a whole number"))
}

/// A comma-separated list of addresses and subnets, as one value per item.
fn nets(var: &str, v: &str) -> Result<Vec<String>, String> {
    let list = tincan_core::ipnet::IpNet::parse_list(v).map_err(|e| format!("{var}: {e}"))?;
    Ok(list.iter().map(ToString::to_string).collect())
}

/// A variable that sets one setting to its value as given.
macro_rules! plain {
    ($var:literal, $key:literal, $doc:literal) => {
        Alias {
            vars: &[$var],
            key: $key,
            doc: $doc,
            map: |env| Ok(env($var).map(|v| vec![v])),
        }
    };
}

/// Every alias.
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
    Alias {
        vars: &["ID_MAX_LENGTH"],
        key: "access.max_name_length",
        doc: "ID_MAX_LENGTH=N: longest CHANNEL (App) and KEY (stream name)",
        map: |env| match env("ID_MAX_LENGTH") {
            Some(v) => Ok(Some(vec![count("ID_MAX_LENGTH", &v)?.to_string()])),
            None => Ok(None),
        },
    },
    Alias {
        vars: &["MAX_IP_CONCURRENT_CONNECTIONS"],
        key: "limits.max_connections_per_ip",
        doc: "MAX_IP_CONCURRENT_CONNECTIONS=N: most connections from one address",
        map: |env| match env("MAX_IP_CONCURRENT_CONNECTIONS") {
            Some(v) => match count("MAX_IP_CONCURRENT_CONNECTIONS", &v)? {
                0 => Err("MAX_IP_CONCURRENT_CONNECTIONS=0 would refuse everyone".into()),
                n => Ok(Some(vec![n.to_string()])),
            },
            None => Ok(None),
        },
    },
    Alias {
        vars: &["CONCURRENT_LIMIT_WHITELIST"],
        key: "access.per_ip_exempt",
        doc: "CONCURRENT_LIMIT_WHITELIST=NETS: addresses and subnets the per-address limit skips",
        map: |env| match env("CONCURRENT_LIMIT_WHITELIST") {
            Some(v) => Ok(Some(nets("CONCURRENT_LIMIT_WHITELIST", &v)?)),
            None => Ok(None),
        },
    },
    Alias {
        vars: &["RTMP_PLAY_WHITELIST"],
        key: "access.allow_play",
        doc: "RTMP_PLAY_WHITELIST=NETS: only these addresses and subnets may play",
        map: |env| match env("RTMP_PLAY_WHITELIST") {
            Some(v) => Ok(Some(nets("RTMP_PLAY_WHITELIST", &v)?)),
            None => Ok(None),
        },
    },
    plain!(
        "CALLBACK_URL",
        "access.callback_url",
        "CALLBACK_URL=URL: the publish event callback"
    ),
    plain!(
        "JWT_SECRET",
        "access.jwt_secret",
        "JWT_SECRET=SECRET: signs the callback's JWT"
    ),
    plain!(
        "CUSTOM_JWT_SUBJECT",
        "access.jwt_subject",
        "CUSTOM_JWT_SUBJECT=TEXT: the JWT's sub"
    ),
    Alias {
        vars: &["REDIS_USE"],
        key: "redis.enabled",
        doc: "REDIS_USE=YES: take control commands from Redis pub/sub",
        map: |env| match env("REDIS_USE") {
            Some(v) => Ok(Some(vec![yes("REDIS_USE", &v)?.to_string()])),
            None => Ok(None),
        },
    },
    plain!(
        "REDIS_HOST",
        "redis.host",
        "REDIS_HOST=HOST: the Redis server"
    ),
    Alias {
        vars: &["REDIS_PORT"],
        key: "redis.port",
        doc: "REDIS_PORT=PORT: the Redis server's port",
        map: |env| match env("REDIS_PORT") {
            Some(v) => Ok(Some(vec![port("REDIS_PORT", &v)?.to_string()])),
            None => Ok(None),
        },
    },
    plain!(
        "REDIS_PASSWORD",
        "redis.password",
        "REDIS_PASSWORD=PASSWORD: Redis's password"
    ),
    plain!(
        "REDIS_CHANNEL",
        "redis.channel",
        "REDIS_CHANNEL=NAME: the commands' channel"
    ),
];

/// Another server's defaults, chosen with `tincan serve --profile NAME`
/// (or `TINCAN_PROFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The Go RTMP server's: its variables' defaults (MAX_IP_CONCURRENT_CONNECTIONS=4,
    /// ID_MAX_LENGTH=128, SSL_PORT=443 with SSL_CERT and SSL_KEY, ...) and
    /// its URLs: rtmp://HOST/CHANNEL/KEY with strict names and one keyed
    /// stream per channel.
    GoRtmpServer,
}

impl Profile {
    /// The profile's name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::GoRtmpServer => "go-rtmp-server",
        }
    }

    /// The default of variable `var` under this profile, given the real
    /// environment `env`.
    fn default_var(self, var: &str, env: Env<'_>) -> Option<String> {
        let Profile::GoRtmpServer = self;
        Some(
            match var {
                "RTMP_PORT" => "1935",
                // The Go server serves RTMPS only with a certificate.
                "SSL_PORT" if env("SSL_CERT").is_some() && env("SSL_KEY").is_some() => "443",
                "LOG_REQUESTS" => "YES",
                "LOG_DEBUG" => "NO",
                "ID_MAX_LENGTH" => "128",
                "MAX_IP_CONCURRENT_CONNECTIONS" => "4",
                "REDIS_HOST" => "127.0.0.1",
                "REDIS_PORT" => "6379",
                _ => return None,
            }
            .to_owned(),
        )
    }

    /// Settings the profile sets that no variable names.
    fn settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::GoRtmpServer => &[
                ("access.strict_names", "true"),
                ("access.channel_keys", "true"),
            ],
        }
    }
}

/// What `profile` sets: its variables' defaults (for those not set in
/// `env`) and its own settings. These sit below the configuration file:
/// flags > environment (and aliases) > file > profile > defaults.
pub fn profile_defaults(profile: Option<Profile>, env: Env<'_>) -> Result<Resolved, Vec<String>> {
    let Some(profile) = profile else {
        return Ok(Resolved::new());
    };
    let defaults = |var: &str| match env(var) {
        Some(_) => None,
        None => profile.default_var(var, env),
    };
    let label = format!("profile {}", profile.name());
    let mut out: Resolved = resolve(&defaults)?
        .into_iter()
        .map(|(key, (_, values))| (key, (label.clone(), values)))
        .collect();
    for (key, value) in profile.settings() {
        out.insert(
            (*key).to_owned(),
            (label.clone(), vec![(*value).to_owned()]),
        );
    }
    Ok(out)
}

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
