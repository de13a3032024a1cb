//! `SIGHUP`: read the configuration again (the same flags and environment,
//! the file anew), compare it with the one in force, apply what can change
//! live and say what cannot.
//!
//! What applies where:
//! - settings with a live applier ([`Reloader::apply_live`]; the log
//!   filter, and whatever a listener registers, such as the TLS
//!   certificate) are applied at once;
//! - [`RESTART_KEYS`](super::schema::RESTART_KEYS) (listen addresses,
//!   threads, the log format) take a restart, and are reported so;
//! - everything else (the core's settings and `[app.NAME]` sections) is
//!   reported as changed but not applied: the core takes its
//!   configuration when the server is built, and has no call yet to give
//!   a running server a new one (see docs/operations.md, "Reload").
//!
//! A file that fails to parse keeps the running configuration, and every
//! error is logged.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::aliases::process_env;
use super::file::Values;
use super::{Definition, Failure, Loaded};

type Applier = Box<dyn Fn(&Loaded) -> Result<(), String> + Send + Sync>;

/// What one reload did.
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
    #[allow(dead_code)] // for the TLS listener's certificate reload
    pub fn subscribe(&self) -> watch::Receiver<Arc<Loaded>> {
        self.latest.subscribe()
    }

    /// Registers `apply` for settings `keys`: on a reload that changes any
    /// of them it is called with the new configuration; `Ok` means they
    /// are in force.
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
        let keys = changed(&in_force.values, &new.values);
        let appliers = self.appliers.lock().unwrap_or_else(|e| e.into_inner());
        let mut applied_keys = Vec::new();
        for (their_keys, apply) in appliers.iter() {
            if !their_keys.iter().any(|k| keys.contains(k)) {
                continue;
            }
            match apply(&new) {
                Ok(()) => {
                    applied_keys.extend(their_keys.iter().filter(|k| keys.contains(k)).cloned())
                }
                Err(e) => {
                    for k in their_keys.iter().filter(|k| keys.contains(k)) {
                        report.failed.push((k.clone(), e.clone()));
                    }
                }
            }
        }
        drop(appliers);
        for key in &keys {
            let what = self.describe(key, &in_force.values, &new.values);
            let restart = self
                .def
                .settings()
                .iter()
                .any(|s| &s.key == key && s.needs_restart());
            if applied_keys.contains(key) {
                tracing::info!(setting = %key, change = %what, "reload: applied");
                report.applied.push(key.clone());
                if let Some(v) = new.values.get(key) {
                    in_force.values.insert(key.clone(), v.clone());
                }
                if let Some(s) = new.sources.get(key) {
                    in_force.sources.insert(key.clone(), s.clone());
                }
            } else if report.failed.iter().any(|(k, _)| k == key) {
                let why = report
                    .failed
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, e)| e.as_str())
                    .unwrap_or_default();
                tracing::error!(setting = %key, error = %why, "reload: new value refused; the old one stays");
            } else if restart {
                tracing::warn!(setting = %key, change = %what, "reload: takes a restart; the old value stays until then");
                report.restart.push(key.clone());
            } else {
                tracing::warn!(
                    setting = %key, change = %what,
                    "reload: not applied; a running server cannot take a new value of this setting yet, restart to apply it"
                );
                report.not_applied.push(key.clone());
            }
        }
        // Per-App sections: the core cannot apply any yet.
        let apps: Vec<&String> = in_force.apps.keys().chain(new.apps.keys()).collect();
        let mut seen = Vec::new();
        for app in apps {
            if seen.contains(&app) {
                continue;
            }
            seen.push(app);
            let empty = Values::new();
            let old = in_force.apps.get(app).map_or(&empty, |a| &a.overrides);
            let new_o = new.apps.get(app).map_or(&empty, |a| &a.overrides);
            for key in changed(old, new_o) {
                let path = format!("app.{app}.{key}");
                let what = self.describe(&key, old, new_o);
                tracing::warn!(
                    setting = %path, change = %what,
                    "reload: not applied; per-App settings are not applied by this build yet"
                );
                report.not_applied.push(path);
            }
        }
        if keys.is_empty() && report.not_applied.is_empty() {
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
