//! From a loaded configuration to what the core is given: the
//! [`ServerConfig`] of the server-wide settings, with each `[app.NAME]`
//! section as the App's entry of `SessionConfig::apps` (the core consults
//! it when `connect` names the App). Used at start and by every reload,
//! so the server is always given what `--print-config` shows.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::{Args, Command, FromArgMatches};
use tincan_core::server::ServerConfig;
use tincan_core::session::AppSettings;
use tincan_net::cli::{ServeArgs, Settings};

use super::schema::PER_APP_SECTIONS;
use super::{Definition, Loaded};

/// The core's settings held by `serve` matches.
fn core_config(matches: &clap::ArgMatches) -> Result<ServerConfig, String> {
    let args = ServeArgs::from_arg_matches(matches).map_err(|e| e.to_string())?;
    args.settings.config()
}

/// The configuration `loaded` gives the core, per-App settings included.
///
/// An App's section overrides keys, not whole sections: the App's keys
/// are its `[app.NAME.auth]` `key` and `key_hex`, each the server's where
/// the section does not set it (so `key = []` with no `key_hex` anywhere
/// turns authentication off for the App). A section the App does not
/// have leaves the server's value in force for it (`None`), so a reload
/// that changes a server-wide value reaches every App that does not
/// override it.
pub fn server_config(loaded: &Loaded) -> Result<ServerConfig, String> {
    let mut config = core_config(&loaded.matches)?;
    let mut apps = BTreeMap::new();
    for (name, app) in &loaded.apps {
        let app_config = core_config(&app.matches).map_err(|e| format!("[app.{name}]: {e}"))?;
        let sets = |section: &str| {
            debug_assert!(PER_APP_SECTIONS.contains(&section));
            let prefix = format!("{section}.");
            app.overrides.keys().any(|k| k.starts_with(&prefix))
        };
        let session = app_config.session;
        apps.insert(
            name.clone(),
            AppSettings {
                auth_keys: sets("auth").then_some(session.auth_keys),
                real_time: sets("real_time").then_some(session.real_time),
            },
        );
    }
    config.session.apps = Arc::new(apps);
    Ok(config)
}

/// The keys of the settings that are the core's (`tincan_net::cli`'s
/// `Settings`, whatever their sections), read from its definition, so a
/// setting added there is applied by a reload without being named here.
pub fn core_keys(def: &Definition) -> Vec<String> {
    let core = Settings::augment_args(Command::new("core"));
    def.settings()
        .iter()
        .filter(|s| core.get_arguments().any(|a| a.get_id() == s.id.as_str()))
        .map(|s| s.key.clone())
        .collect()
}

/// Logs, at start, which Apps have settings of their own (never the
/// values of secrets).
pub fn log_apps(loaded: &Loaded) {
    for (app, cfg) in &loaded.apps {
        let sections: Vec<&str> = PER_APP_SECTIONS
            .iter()
            .copied()
            .filter(|s| {
                let prefix = format!("{s}.");
                cfg.overrides.keys().any(|k| k.starts_with(&prefix))
            })
            .collect();
        tracing::info!(app = %app, sections = %sections.join(","), "App settings of its own");
    }
}
