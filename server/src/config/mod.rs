//! The configuration of `tincan serve` in three layers with one
//! precedence: **flags > environment variables > the TOML file
//! (`--config`) > built-in defaults**.
//!
//! There is one definition: the clap args of `serve` (the core's settings
//! in `tincan_net::cli`, the binary's own in [`args`]). From each flag
//! [`schema`] derives the file key (the struct's section and the long
//! flag's name, e.g. `--max-connections` in `Limits` is
//! `limits.max_connections`), the environment name (`TINCAN_` and the key
//! in capitals: `TINCAN_LIMITS_MAX_CONNECTIONS`), the TOML type (from the
//! value parser) and the help and default shown by `config example`.
//!
//! How the layers meet: clap itself reads flags, then the environment
//! (every arg is given its `TINCAN_*` name), then the arg's default. The
//! file and the aliases ([`aliases`]) are put in as the args' defaults
//! before the final parse, so clap parses every layer with the same value
//! parsers, and `value_source` tells which layer a value came from. The
//! file is checked first by [`file`](mod@file), key by key against the same value
//! parsers, so that `config check` reports every error with its line.

pub mod aliases;
pub mod args;
pub mod core_settings;
mod example;
pub mod file;
pub mod logging;
pub mod reload;
pub mod schema;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

pub use example::example;
use file::{FileValues, Values};
use schema::{Kind, Setting};

/// The subcommand whose args are the settings.
const SERVE: &str = "serve";

/// Where a value in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable (its name).
    Env(String),
    /// The configuration file.
    File,
    /// A profile's default (`--profile`), e.g. "profile go-rtmp-server".
    Profile(String),
    /// The built-in default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File => f.write_str("file"),
            Source::Profile(label) => f.write_str(label),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The settings of one App: the server's, with its `[app.NAME]` overrides.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// What its section sets.
    pub overrides: Values,
    /// Every setting for the App, as `serve` matches (the server's values
    /// with the overrides put in): what its entry of the core's
    /// `SessionConfig::apps` is made from ([`core_settings::server_config`];
    /// docs/operations.md, "Per-App sections").
    pub matches: ArgMatches,
}

/// A configuration in force: every layer applied.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// `serve`'s matches: turn them into the typed args with
    /// `clap::FromArgMatches` (the core's configuration is made from them;
    /// a reload's subscribers read the TLS certificate's paths from them).
    pub matches: ArgMatches,
    /// Every setting's raw values by key path (empty: not set).
    pub values: Values,
    /// Where each came from.
    pub sources: BTreeMap<String, Source>,
    /// `[app.NAME]` sections.
    pub apps: BTreeMap<String, AppConfig>,
}

/// Why the command line or the configuration cannot be used.
#[derive(Debug)]
pub enum Failure {
    /// clap's own error (bad flag or environment value), or `--help`.
    Clap(clap::Error),
    /// Errors of the file, aliases or settings, one per line.
    Config(Vec<String>),
}

impl Failure {
    /// Prints the failure and exits as clap would (2 for errors, 0 for
    /// `--help` and `--version`).
    pub fn exit(self) -> ! {
        match self {
            Failure::Clap(e) => e.exit(),
            Failure::Config(errors) => {
                for e in errors {
                    eprintln!("tincan: {e}");
                }
                std::process::exit(2)
            }
        }
    }
}

/// The one definition, and the layering built on it.
pub struct Definition {
    cli: Command,
    serve: Command,
    settings: Vec<Setting>,
    check: fn(&ArgMatches) -> Result<(), String>,
}

impl Definition {
    /// The definition read from `cli`'s `serve` subcommand. `check` turns
    /// `serve` matches into the server's configuration and says what
    /// combination of values cannot work.
    pub fn new(cli: Command, check: fn(&ArgMatches) -> Result<(), String>) -> Self {
        let serve = cli
            .find_subcommand(SERVE)
            .expect("the CLI has a serve subcommand")
            .clone();
        let settings = schema::settings(&serve);
        let serve = schema::with_env(serve, &settings);
        let cli = cli.mut_subcommand(SERVE, |_| serve.clone());
        Definition {
            cli,
            serve,
            settings,
            check,
        }
    }

    /// Every setting, in flag order.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// Parses `args` (the program name first) with every layer, reading
    /// the environment through `env`. The `Loaded` configuration is there
    /// when the command is `serve`.
    pub fn parse(
        &self,
        args: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(ArgMatches, Option<Loaded>), Failure> {
        let first = self
            .cli
            .clone()
            .try_get_matches_from(args)
            .map_err(Failure::Clap)?;
        let Some((SERVE, serve)) = first.subcommand() else {
            return Ok((first, None));
        };
        let path = schema::config_path(serve);
        let file = match &path {
            Some(path) => self.read(path).map_err(Failure::Config)?,
            None => FileValues::default(),
        };
        let aliases = aliases::resolve(env).map_err(Failure::Config)?;
        let profile = serve.get_one::<aliases::Profile>("profile").copied();
        let profiled = aliases::profile_defaults(profile, env).map_err(Failure::Config)?;
        let mut defaults: Values = profiled
            .iter()
            .map(|(key, (_, values))| (key.clone(), values.clone()))
            .collect();
        defaults.extend(file.global.clone());
        for (key, (_, values)) in &aliases {
            defaults.insert(key.clone(), values.clone());
        }
        let serve_cmd = self.with_defaults(self.serve.clone(), &defaults);
        let top = self
            .cli
            .clone()
            .mut_subcommand(SERVE, |_| serve_cmd)
            .try_get_matches_from(args)
            .map_err(Failure::Clap)?;
        let matches = top
            .subcommand_matches(SERVE)
            .expect("parsed as serve before")
            .clone();
        let mut errors = Vec::new();
        if let Err(e) = (self.check)(&matches) {
            errors.push(e);
        }
        let mut values = Values::new();
        let mut sources = BTreeMap::new();
        for s in &self.settings {
            let value = if s.kind == Kind::Bool {
                // Normalised: the environment may say `yes` or `1`.
                vec![matches.get_flag(&s.id).to_string()]
            } else {
                raw(&matches, &s.id)
            };
            values.insert(s.key.clone(), value);
            let source = match matches.value_source(&s.id) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env(s.env.clone()),
                _ => match (aliases.get(&s.key), file.global.contains_key(&s.key)) {
                    (Some((vars, _)), _) => Source::Env(vars.clone()),
                    (None, true) => Source::File,
                    (None, false) => match profiled.get(&s.key) {
                        Some((label, _)) => Source::Profile(label.clone()),
                        None => Source::Default,
                    },
                },
            };
            sources.insert(s.key.clone(), source);
        }
        let mut apps = BTreeMap::new();
        for (app, overrides) in &file.apps {
            let mut app_values = values.clone();
            app_values.extend(overrides.clone());
            match self.values_matches(&app_values) {
                Ok(m) => {
                    if let Err(e) = (self.check)(&m) {
                        errors.push(format!("[app.{app}]: {e}"));
                    }
                    apps.insert(
                        app.clone(),
                        AppConfig {
                            overrides: overrides.clone(),
                            matches: m,
                        },
                    );
                }
                Err(e) => errors.push(format!("[app.{app}]: {e}")),
            }
        }
        if !errors.is_empty() {
            return Err(Failure::Config(errors));
        }
        Ok((
            top,
            Some(Loaded {
                file: path,
                matches,
                values,
                sources,
                apps,
            }),
        ))
    }

    /// A file's values, or every error in it prefixed with its path.
    fn read(&self, path: &Path) -> Result<FileValues, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        self.check_text(&text)
            .map_err(|errors| errors.iter().map(|e| e.located(path)).collect())
    }

    /// Checks a file's text as `config check` does: every error of syntax,
    /// keys, types and values with its line, then the combinations of
    /// values that cannot work (of the file alone, over the defaults).
    pub fn check_text(&self, text: &str) -> Result<FileValues, Vec<file::FileError>> {
        let values = file::parse(text, &self.settings, &self.serve)?;
        let mut errors = Vec::new();
        if let Err(relay) = crate::relay::config::RelayConfig::from_text(text) {
            errors.extend(relay.into_iter().map(|message| file::FileError {
                line: 0,
                column: 0,
                key: Some("relay".into()),
                message,
            }));
        }
        let whole = |overrides: &Values| {
            let mut v: Values = self
                .settings
                .iter()
                .map(|s| (s.key.clone(), s.default.clone()))
                .collect();
            v.extend(overrides.clone());
            v
        };
        let mut check = |label: String, v: &Values| {
            let result = self.values_matches(v).and_then(|m| (self.check)(&m));
            if let Err(message) = result {
                errors.push(file::FileError {
                    line: 0,
                    column: 0,
                    key: Some(label),
                    message,
                });
            }
        };
        let global = whole(&values.global);
        check("settings".into(), &global);
        for (app, overrides) in &values.apps {
            let mut v = global.clone();
            v.extend(overrides.clone());
            check(format!("app.{app}"), &v);
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }

    /// `serve` with `values` as the args' defaults.
    fn with_defaults(&self, mut serve: Command, values: &Values) -> Command {
        for s in &self.settings {
            if let Some(v) = values.get(&s.key) {
                let v = v.clone();
                serve = serve.mut_arg(s.id.as_str(), |a| {
                    if v.is_empty() {
                        a.default_value(None)
                    } else {
                        a.default_values(v)
                    }
                });
            }
        }
        serve
    }

    /// `serve` matches holding exactly `values`, read neither from flags
    /// nor from the environment.
    fn values_matches(&self, values: &Values) -> Result<ArgMatches, String> {
        let mut serve = self.serve.clone();
        for s in &self.settings {
            serve = serve.mut_arg(s.id.as_str(), |a| a.env(None));
        }
        let serve = self.with_defaults(serve, values);
        serve
            .try_get_matches_from([SERVE])
            .map_err(|e| e.render().to_string().trim().to_owned())
    }
}

/// The raw values of arg `id` in `m`.
fn raw(m: &ArgMatches, id: &str) -> Vec<String> {
    m.get_raw(id)
        .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// A raw value written as TOML of the setting's kind.
pub fn toml_value(s: &Setting, raw: &str) -> String {
    match s.kind {
        Kind::Bool => raw.to_owned(),
        Kind::Integer => raw
            .parse::<i128>()
            .map_or_else(|_| toml_string(raw), |n| n.to_string()),
        Kind::Number => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() => format!("{n}"),
            _ => toml_string(raw),
        },
        Kind::Text => toml_string(raw),
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `values` of `s` as a TOML value (an array for a repeatable setting).
pub fn toml_values(s: &Setting, values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| toml_value(s, v)).collect();
    if s.multiple {
        format!("[{}]", items.join(", "))
    } else {
        items.join(", ")
    }
}

/// `--print-config`: the configuration in force as TOML, each value with
/// where it came from; secrets are counted, never shown.
pub fn print(def: &Definition, loaded: &Loaded) -> String {
    let mut out = String::new();
    out.push_str("# The configuration in force: flags > environment > file > defaults.\n");
    match &loaded.file {
        Some(path) => out.push_str(&format!("# file: {}\n", path.display())),
        None => out.push_str("# file: none (--config, TINCAN_CONFIG)\n"),
    }
    let line = |out: &mut String, s: &Setting, values: &[String], source: &str| {
        if s.secret && !values.is_empty() {
            out.push_str(&format!(
                "# {} = <{} secret value{}, not shown>  # {source}\n",
                s.name,
                values.len(),
                if values.len() == 1 { "" } else { "s" }
            ));
        } else if values.is_empty() && !s.multiple {
            out.push_str(&format!("# {} is not set  # {source}\n", s.name));
        } else {
            out.push_str(&format!(
                "{} = {}  # {source}\n",
                s.name,
                toml_values(s, values)
            ));
        }
    };
    let mut section = None;
    for s in ordered(def.settings()) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!("\n[{}]\n", s.section.unwrap_or_default()));
        }
        let source = loaded
            .sources
            .get(&s.key)
            .map_or("default".into(), ToString::to_string);
        line(
            &mut out,
            s,
            loaded.values.get(&s.key).map_or(&[][..], Vec::as_slice),
            &source,
        );
    }
    for (app, cfg) in &loaded.apps {
        let mut section = None;
        for s in ordered(def.settings()) {
            let Some(values) = cfg.overrides.get(&s.key) else {
                continue;
            };
            if s.section != section {
                section = s.section;
                out.push_str(&format!(
                    "\n[app.{}.{}]\n",
                    file_key(app),
                    s.section.unwrap_or_default()
                ));
            }
            line(&mut out, s, values, "file");
        }
    }
    out
}

/// Settings with the top-level ones first (TOML puts a table's keys
/// before any sub-table), then section by section.
pub fn ordered(settings: &[Setting]) -> Vec<&Setting> {
    let mut out: Vec<&Setting> = settings.iter().filter(|s| s.section.is_none()).collect();
    for section in schema::sections(settings) {
        out.extend(settings.iter().filter(|s| s.section == Some(section)));
    }
    out
}

/// A table key written bare when TOML allows, quoted otherwise.
fn file_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// `tincan config example` and `tincan config check FILE`.
pub fn run(def: &Definition, command: &args::ConfigCommand) -> std::process::ExitCode {
    use std::process::ExitCode;
    match command {
        args::ConfigCommand::Example => {
            print!("{}", example(def));
            ExitCode::SUCCESS
        }
        args::ConfigCommand::Check { file } => {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            match def.check_text(&text) {
                Ok(values) => {
                    println!(
                        "{}: ok ({} settings, {} App sections)",
                        file.display(),
                        values.global.len(),
                        values.apps.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        println!("{}", e.located(file));
                    }
                    println!(
                        "{}: {} error{}",
                        file.display(),
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
