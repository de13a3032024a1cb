//! The settings of `tincan serve`, read from its clap definition: one
//! [`Setting`] per flag, with the file key, environment name, help and
//! default derived from it. Nothing here names a setting: add a flag to a
//! `clap::Args` struct and it is in the file, the environment, `config
//! example`, `--print-config` and the docs' example at once.

use std::any::TypeId;
use std::path::PathBuf;

use clap::{ArgAction, Command};

/// Where the args of one `clap::Args` struct (its group, named after the
/// struct) go in the file. Args in no group (a struct that flattens others
/// has none) are top-level keys.
enum Place {
    /// Keys of the `[NAME]` section.
    Section(&'static str),
    /// Top-level keys.
    TopLevel,
    /// Not a setting: flags about the configuration itself (`--config`).
    NotASetting,
}

/// Every `clap::Args` struct that holds settings of its own, and its
/// section. A struct missing here is caught by a unit test.
const GROUPS: &[(&str, Place)] = &[
    ("Limits", Place::Section("limits")),
    ("RealTime", Place::Section("real_time")),
    ("Keys", Place::Section("auth")),
    ("TlsArgs", Place::Section("tls")),
    ("WsArgs", Place::Section("ws")),
    ("HttpArgs", Place::Section("http")),
    ("AccessArgs", Place::Section("access")),
    ("HookArgs", Place::Section("hook")),
    ("RedisArgs", Place::Section("redis")),
    ("ClusterArgs", Place::Section("cluster")),
    ("LogArgs", Place::TopLevel),
    ("ConfigFileArgs", Place::NotASetting),
];

/// The sections an `[app.NAME]` table may override, as
/// `[app.NAME.SECTION]` tables with that section's keys.
pub const PER_APP_SECTIONS: &[&str] = &["real_time", "auth", "access"];

/// Settings that a running server cannot change: a new value takes a
/// restart (sockets are bound and the runtime built at start).
pub const RESTART_KEYS: &[&str] = &[
    "listen",
    "tls.listen",
    "ws.listen",
    "ws.wss_listen",
    "ws.path",
    "ws.allowed_origins",
    "http.listen",
    "threads",
    "log_format",
];

/// The type a file value must have, from the flag's value parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An on/off flag: a TOML boolean.
    Bool,
    /// A whole number: a TOML integer.
    Integer,
    /// A number (seconds): a TOML integer or float.
    Number,
    /// Anything else (addresses, paths, filters, keys): a TOML string.
    Text,
}

impl Kind {
    /// The TOML type named in errors.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Text => "a string",
        }
    }
}

/// One setting of `tincan serve`.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The clap arg id (its field name).
    pub id: String,
    /// Its section, or `None` for a top-level key.
    pub section: Option<&'static str>,
    /// Its key within the section.
    pub name: String,
    /// `section.name` (or `name`): the key path in the file.
    pub key: String,
    /// `TINCAN_` and the key path in capitals, dots as underscores.
    pub env: String,
    /// The long flag, without `--`.
    pub long: String,
    /// The short flag, if any.
    pub short: Option<char>,
    /// The flag's value name (`SECS`, `ADDR`).
    pub value_name: Option<String>,
    /// The flag's help, plain text.
    pub help: String,
    /// The built-in default, as the flag would be given.
    pub default: Vec<String>,
    /// The TOML type a file value must have.
    pub kind: Kind,
    /// Repeatable: a TOML array.
    pub multiple: bool,
    /// A secret (marked `hide_env_values`): never printed.
    pub secret: bool,
}

impl Setting {
    /// Whether a running server needs a restart to change it.
    pub fn needs_restart(&self) -> bool {
        RESTART_KEYS.contains(&self.key.as_str())
    }
}

/// The settings of a `serve` command, in the order of its flags.
pub fn settings(serve: &Command) -> Vec<Setting> {
    let mut out = Vec::new();
    for arg in serve.get_arguments() {
        if matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let id = arg.get_id().as_str();
        let mut section = None;
        let mut setting = true;
        for group in serve.get_groups() {
            if !group.get_args().any(|a| a == arg.get_id()) {
                continue;
            }
            match GROUPS.iter().find(|(g, _)| *g == group.get_id().as_str()) {
                Some((_, Place::Section(s))) => section = Some(*s),
                Some((_, Place::TopLevel)) => {}
                Some((_, Place::NotASetting)) => setting = false,
                None => panic!(
                    "clap group {} holds settings but has no section in config::schema::GROUPS",
                    group.get_id()
                ),
            }
        }
        if !setting {
            continue;
        }
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("setting {id} has no long flag"))
            .to_owned();
        let mut name = long.replace('-', "_");
        if let Some(s) = section {
            if let Some(rest) = name.strip_prefix(&format!("{s}_")) {
                name = rest.to_owned();
            }
        }
        let key = match section {
            Some(s) => format!("{s}.{name}"),
            None => name.clone(),
        };
        let env = format!("TINCAN_{}", key.to_uppercase().replace('.', "_"));
        let parser = arg.get_value_parser().type_id();
        let kind = if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            Kind::Bool
        } else if [
            TypeId::of::<u64>(),
            TypeId::of::<u32>(),
            TypeId::of::<u16>(),
            TypeId::of::<u8>(),
            TypeId::of::<usize>(),
            TypeId::of::<i64>(),
        ]
        .iter()
        .any(|t| parser == *t)
        {
            Kind::Integer
        } else if parser == TypeId::of::<f64>() {
            Kind::Number
        } else {
            Kind::Text
        };
        let default = if kind == Kind::Bool {
            // A flag's implicit "false" is not a default worth showing as
            // text, but the file and the example need it.
            vec![arg
                .get_default_values()
                .first()
                .map_or("false".into(), |v| v.to_string_lossy().into_owned())]
        } else {
            arg.get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect()
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push(Setting {
            id: id.to_owned(),
            section,
            name,
            key,
            env,
            long,
            short: arg.get_short(),
            value_name: arg
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string()),
            help,
            default,
            kind,
            multiple: matches!(arg.get_action(), ArgAction::Append),
            secret: arg.is_hide_env_values_set(),
        });
    }
    out
}

/// The sections, in the order their first setting appears.
pub fn sections(settings: &[Setting]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for s in settings {
        if let Some(sec) = s.section {
            if !out.contains(&sec) {
                out.push(sec);
            }
        }
    }
    out
}

/// Gives every setting of `serve` its environment variable, so clap reads
/// flags first and the environment second; `--config` gets
/// `TINCAN_CONFIG`.
pub fn with_env(mut serve: Command, settings: &[Setting]) -> Command {
    for s in settings {
        let env = s.env.clone();
        let boolish = s.kind == Kind::Bool;
        serve = serve.mut_arg(s.id.as_str(), |a| {
            let a = a.env(env);
            // TINCAN_SIMPLIFIED_RTMP=yes, =1, =on as well as =true.
            if boolish {
                a.value_parser(clap::builder::BoolishValueParser::new())
            } else {
                a
            }
        });
    }
    serve.mut_arg("config", |a| a.env("TINCAN_CONFIG"))
}

/// The configuration file given by `--config` or `TINCAN_CONFIG`, from
/// matches of [`with_env`]'s command.
pub fn config_path(matches: &clap::ArgMatches) -> Option<PathBuf> {
    matches.get_one::<PathBuf>("config").cloned()
}
