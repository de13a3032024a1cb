//! `SIGHUP`: read the configuration again (the same flags and environment,
//! the file anew), compare it with the one in force, apply what can change
//! live and say what cannot.
//!
//! What applies where:
//! - settings with a live applier ([`Reloader::apply_live`]) are applied
//!   at once: the log filter; the core's settings and every `[app.NAME]`
//!   section ([`Reloader::apply_core`]: the running server is given the
//!   new `ServerConfig`, whose session settings, per-App ones included,
//!   reach connections accepted from then on, and whose limits and broker
//!   settings apply from the next request; nobody connected is dropped);
//!   and whatever a listener registers (such as the TLS certificate);
//! - [`RESTART_KEYS`](super::schema::RESTART_KEYS) (listen addresses,
//!   threads, the log format) take a restart, and are reported so;
//! - anything else (a setting no applier takes, such as the HTTP token) is
//!   reported as changed but not applied.
//!
//! A file that fails to parse keeps the running configuration, and every
//! error is logged. Secrets are reported as changed, never shown.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use tincan_core::server::ServerConfig;
use tokio::sync::watch;

use super::aliases::process_env;
use super::core_settings::{core_keys, server_config};
use super::file::Values;
use super::{Definition, Failure, Loaded};

type Applier = Box<dyn Fn(&Loaded) -> Result<(), String> + Send + Sync>;

/// What one reload did. Keys are key paths; an App's are
/// `app.NAME.SECTION.KEY`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// The file could not be used: why (the running configuration stays).
    pub errors: Vec<String>,
    /// Keys changed and applied.
    pub applied: Vec<String>,
    /// Keys changed that take a restart.
    pub restart: Vec<String>,
    /// Keys changed that a running server cannot take yet.
    pub not_applied: Vec<String>,
    /// Keys whose live applier refused the new value: key and why.
    pub failed: Vec<(String, String)>,
}

/// Reloads the configuration on demand and keeps what is in force.
pub struct Reloader {
    def: Arc<Definition>,
    args: Vec<OsString>,
    in_force: Mutex<Loaded>,
    latest: watch::Sender<Arc<Loaded>>,
    appliers: Mutex<Vec<(Vec<String>, Applier)>>,
}

/// The keys whose values differ between `old` and `new`.
fn changed(old: &Values, new: &Values) -> Vec<String> {
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Whether an applier's `pattern` takes key path `path`: the same key, or
/// a pattern ending in `*` (`app.*`) that `path` starts with.
fn claims(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// One changed setting: server-wide (`app` is `None`) or of an App's
/// section.
#[derive(Debug)]
struct Change {
    app: Option<String>,
    /// The setting's key (`limits.max_connections`).
    key: String,
    /// The key path reported: the key, or `app.NAME.KEY`.
    path: String,
}

impl Reloader {
    /// A reloader for a server started with `args` and `loaded`.
    pub fn new(def: Arc<Definition>, args: Vec<OsString>, loaded: Loaded) -> Arc<Self> {
        let (latest, _) = watch::channel(Arc::new(loaded.clone()));
        Arc::new(Reloader {
            def,
            args,
            in_force: Mutex::new(loaded),
            latest,
            appliers: Mutex::new(Vec::new()),
        })
    }

    /// The configuration as last read successfully, now and after every
    /// reload: a listener that can apply a setting live (the TLS
    /// certificate) watches it, and registers with [`Self::apply_live`] so
    /// reloads report the setting as applied.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Loaded>> {
        self.latest.subscribe()
    }

    /// Registers `apply` for settings `keys` (key paths; one ending in `*`
    /// takes every path it starts: `app.*` is every App's section): on a
    /// reload that changes any of them it is called with the new
    /// configuration; `Ok` means they are in force.
    pub fn apply_live(
        &self,
        keys: &[&str],
        apply: impl Fn(&Loaded) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.appliers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                keys.iter().map(|k| k.to_string()).collect(),
                Box::new(apply),
            ));
    }

    /// Registers the running server: on a reload that changes any of the
    /// core's settings or any `[app.NAME]` section, `set` is given the new
    /// configuration (`tincan_tokio::Handle::set_config`). Until this is
    /// called (the server is not bound yet) such changes are reported as
    /// not applied, and applied by the next reload after it.
    ///
    /// `extra` names more settings that `set` applies (access control's),
    /// and `set` gets the loaded configuration too, to read them.
    pub fn apply_core(
        &self,
        extra: &[&str],
        set: impl Fn(&Loaded, ServerConfig) -> Result<(), String> + Send + Sync + 'static,
    ) {
        let mut keys = core_keys(&self.def);
        keys.push("app.*".to_owned());
        keys.extend(extra.iter().map(|k| (*k).to_owned()));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.apply_live(&keys, move |loaded| set(loaded, server_config(loaded)?));
    }

    /// The configuration in force.
    #[allow(dead_code)] // for the HTTP API and tests
    pub fn in_force(&self) -> Loaded {
        self.in_force
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn describe(&self, key: &str, old: &Values, new: &Values) -> String {
        let secret = self.def.settings().iter().any(|s| s.secret && s.key == key);
        if secret {
            return "changed (secret, not shown)".into();
        }
        let show = |v: Option<&Vec<String>>| match v {
            Some(v) if !v.is_empty() => v.join(","),
            _ => "(not set)".into(),
        };
        format!("{} -> {}", show(old.get(key)), show(new.get(key)))
    }

    /// Every setting that differs between `old` and `new`: server-wide
    /// keys, then each App's section keys (an App added or removed
    /// changes every key its section sets).
    fn changes(old: &Loaded, new: &Loaded) -> Vec<Change> {
        let mut out: Vec<Change> = changed(&old.values, &new.values)
            .into_iter()
            .map(|key| Change {
                app: None,
                path: key.clone(),
                key,
            })
            .collect();
        let mut apps: Vec<&String> = old.apps.keys().chain(new.apps.keys()).collect();
        apps.sort();
        apps.dedup();
        let empty = Values::new();
        for app in apps {
            let o = old.apps.get(app).map_or(&empty, |a| &a.overrides);
            let n = new.apps.get(app).map_or(&empty, |a| &a.overrides);
            out.extend(changed(o, n).into_iter().map(|key| Change {
                app: Some(app.clone()),
                path: format!("app.{app}.{key}"),
                key,
            }));
        }
        out
    }

    /// Reads the configuration again, applies what it can and logs what
    /// changed.
    pub fn reload(&self) -> Report {
        let mut report = Report::default();
        let new = match self.def.parse(&self.args, &process_env) {
            Ok((_, Some(new))) => new,
            Ok((_, None)) => unreachable!("the server was started by serve"),
            Err(Failure::Clap(e)) => {
                report.errors = vec![e.render().to_string().trim().to_owned()];
                self.log_errors(&report);
                return report;
            }
            Err(Failure::Config(errors)) => {
                report.errors = errors;
                self.log_errors(&report);
                return report;
            }
        };
        let mut in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        let changes = Self::changes(&in_force, &new);
        let appliers = self.appliers.lock().unwrap_or_else(|e| e.into_inner());
        let mut applied = Vec::new();
        for (patterns, apply) in appliers.iter() {
            let theirs: Vec<&Change> = changes
                .iter()
                .filter(|c| patterns.iter().any(|p| claims(p, &c.path)))
                .collect();
            if theirs.is_empty() {
                continue;
            }
            match apply(&new) {
                Ok(()) => applied.extend(theirs.iter().map(|c| c.path.clone())),
                Err(e) => report
                    .failed
                    .extend(theirs.iter().map(|c| (c.path.clone(), e.clone()))),
            }
        }
        drop(appliers);
        // A key two appliers take is in force only if both took it.
        applied.retain(|p| !report.failed.iter().any(|(k, _)| k == p));
        let empty = Values::new();
        for change in &changes {
            let path = &change.path;
            let (old_values, new_values) = match &change.app {
                None => (&in_force.values, &new.values),
                Some(app) => (
                    in_force.apps.get(app).map_or(&empty, |a| &a.overrides),
                    new.apps.get(app).map_or(&empty, |a| &a.overrides),
                ),
            };
            let what = self.describe(&change.key, old_values, new_values);
            let restart = change.app.is_none()
                && self
                    .def
                    .settings()
                    .iter()
                    .any(|s| s.key == change.key && s.needs_restart());
            if let Some((_, why)) = report.failed.iter().find(|(k, _)| k == path) {
                tracing::error!(setting = %path, error = %why, "reload: new value refused; the old one stays");
            } else if applied.contains(path) {
                tracing::info!(setting = %path, change = %what, "reload: applied");
                report.applied.push(path.clone());
            } else if restart {
                tracing::warn!(setting = %path, change = %what, "reload: takes a restart; the old value stays until then");
                report.restart.push(path.clone());
            } else {
                tracing::warn!(
                    setting = %path, change = %what,
                    "reload: not applied; a running server cannot take a new value of this setting yet, restart to apply it"
                );
                report.not_applied.push(path.clone());
            }
        }
        // What was applied is in force now; the rest keeps its old value
        // (and shows as changed again at the next reload).
        for change in changes.iter().filter(|c| applied.contains(&c.path)) {
            match &change.app {
                None => {
                    if let Some(v) = new.values.get(&change.key) {
                        in_force.values.insert(change.key.clone(), v.clone());
                    }
                    if let Some(s) = new.sources.get(&change.key) {
                        in_force.sources.insert(change.key.clone(), s.clone());
                    }
                }
                Some(app) => match new.apps.get(app) {
                    Some(new_app) => {
                        let entry = in_force
                            .apps
                            .entry(app.clone())
                            .or_insert_with(|| new_app.clone());
                        match new_app.overrides.get(&change.key) {
                            Some(v) => entry.overrides.insert(change.key.clone(), v.clone()),
                            None => entry.overrides.remove(&change.key),
                        };
                        entry.matches = new_app.matches.clone();
                    }
                    None => {
                        if let Some(entry) = in_force.apps.get_mut(app) {
                            entry.overrides.remove(&change.key);
                            if entry.overrides.is_empty() {
                                in_force.apps.remove(app);
                            }
                        }
                    }
                },
            }
        }
        if changes.is_empty() {
            tracing::info!("reload: configuration unchanged");
        }
        drop(in_force);
        self.latest.send_replace(Arc::new(new));
        report
    }

    fn log_errors(&self, report: &Report) {
        for e in &report.errors {
            tracing::error!(error = %e, "reload: configuration not usable");
        }
        tracing::error!("reload failed: the running configuration stays in force");
    }

    /// Reloads on every `SIGHUP` (systemd's `ExecReload`), from now on.
    /// Call inside the tokio runtime, before the server runs, so an early
    /// `SIGHUP` does not end the process.
    pub fn watch_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let this = self.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                let this = this.clone();
                // Reading the file is blocking IO.
                let _ = tokio::task::spawn_blocking(move || this.reload()).await;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lists_keys_added_removed_and_modified() {
        let v = |pairs: &[(&str, &str)]| -> Values {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect()
        };
        let old = v(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = v(&[("a", "1"), ("b", "5"), ("d", "4")]);
        assert_eq!(changed(&old, &new), ["b", "c", "d"]);
    }
}
