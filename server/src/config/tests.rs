use std::collections::BTreeSet;

use clap::CommandFactory;

use super::*;

fn def() -> Definition {
    Definition::new(crate::Cli::command(), crate::check_serve)
}

#[test]
fn every_setting_has_one_key_and_one_environment_name() {
    let def = def();
    let keys: BTreeSet<&str> = def.settings().iter().map(|s| s.key.as_str()).collect();
    let envs: BTreeSet<&str> = def.settings().iter().map(|s| s.env.as_str()).collect();
    assert_eq!(keys.len(), def.settings().len(), "duplicate keys");
    assert_eq!(envs.len(), def.settings().len(), "duplicate env names");
    for key in [
        "listen",
        "log",
        "log_format",
        "threads",
        "shutdown_deadline",
        "real_time.audio_lifetime",
        "auth.key",
        "auth.key_hex",
        "limits.max_connections",
        "tls.listen",
        "tls.cert",
        "tls.key",
        "http.listen",
        "http.token",
        "http.player_path",
        "ws.listen",
        "ws.wss_listen",
        "ws.path",
        "ws.allowed_origins",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    let s = def
        .settings()
        .iter()
        .find(|s| s.key == "limits.max_connections")
        .unwrap();
    assert_eq!(s.env, "TINCAN_LIMITS_MAX_CONNECTIONS");
    assert_eq!(s.kind, Kind::Integer);
}

#[test]
fn secrets_are_marked() {
    let def = def();
    let secret: BTreeSet<&str> = def
        .settings()
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(
        secret,
        BTreeSet::from([
            "auth.key",
            "auth.key_hex",
            "http.token",
            "access.jwt_secret",
            "redis.password",
            "cluster.redis"
        ])
    );
}

#[test]
fn the_example_checks_and_holds_the_defaults() {
    let def = def();
    let text = example(&def);
    let values = def.check_text(&text).unwrap_or_else(|e| {
        panic!("{e:?}");
    });
    for s in def.settings() {
        match values.global.get(&s.key) {
            Some(v) => assert_eq!(v, &s.default, "{}", s.key),
            None => assert!(
                s.default.is_empty(),
                "{} has a default but is commented out",
                s.key
            ),
        }
        assert!(
            text.contains(&format!("--{}", s.long)),
            "--{} missing",
            s.long
        );
        assert!(text.contains(&s.env), "{} missing", s.env);
    }
}

#[test]
fn every_error_has_its_line_and_key() {
    let def = def();
    let text = "threads = 2\n\
                [limits]\n\
                max_connections = \"lots\"\n\
                max_conections = 5\n\
                [real_time]\n\
                audio_lifetime = 1.5\n\
                video_lifetime = -1\n";
    let errors = def.check_text(text).unwrap_err();
    let got: Vec<(usize, Option<&str>)> =
        errors.iter().map(|e| (e.line, e.key.as_deref())).collect();
    assert_eq!(
        got,
        [
            (3, Some("limits.max_connections")),
            (4, Some("limits.max_conections")),
            (7, Some("real_time.video_lifetime")),
        ]
    );
    assert!(errors[1].message.contains("did you mean `max_connections`"));
}

#[test]
fn a_combination_that_cannot_work_is_an_error() {
    let def = def();
    let errors = def
        .check_text("[limits]\nmax_buffered_bytes = 100\nmax_message_size = 200\n")
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("max-buffered-bytes"),
        "{errors:?}"
    );
}

#[test]
fn the_ws_section_gives_the_websocket_listeners_config() {
    let def = def();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    std::fs::write(
        &file,
        "[ws]\nlisten = [\"127.0.0.1:8080\"]\npath = \"/rtws\"\n\
         allowed_origins = [\"https://a.example\", \"https://b.example\"]\n",
    )
    .unwrap();
    let loaded = load(&def, &file);
    let ws = <args::WsArgs as clap::FromArgMatches>::from_arg_matches(&loaded.matches).unwrap();
    assert_eq!(ws.ws_listen, ["127.0.0.1:8080".parse().unwrap()]);
    let config = ws.config();
    assert_eq!(config.path, "/rtws");
    assert!(config.takes_path("/rtws/live"));
    assert!(!config.takes_path("/live"));
    assert!(config.takes_origin(Some("https://B.example")));
    assert!(!config.takes_origin(Some("https://c.example")));
}

#[test]
fn a_ws_path_must_be_a_path() {
    let def = def();
    let errors = def.check_text("[ws]\npath = \"rtws\"\n").unwrap_err();
    assert_eq!(errors[0].key.as_deref(), Some("ws.path"), "{errors:?}");
}

#[test]
fn app_sections_take_only_per_app_sections() {
    let def = def();
    let ok = def
        .check_text("[app.live.real_time]\naudio_lifetime = 1\n[app.live.auth]\nkey = [\"k\"]\n")
        .unwrap();
    assert_eq!(ok.apps["live"]["real_time.audio_lifetime"], ["1"]);
    assert_eq!(ok.apps["live"]["auth.key"], ["k"]);
    let errors = def
        .check_text("[app.live.limits]\nmax_connections = 1\n")
        .unwrap_err();
    assert_eq!(errors[0].key.as_deref(), Some("app.live.limits"));
}

#[test]
fn aliases_map_the_go_servers_names() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let got = aliases::resolve(&env(&[
        ("RTMP_PORT", "1936"),
        ("SSL_PORT", "443"),
        ("SSL_CERT", "/c.pem"),
        ("SSL_KEY", "/k.pem"),
        ("LOG_DEBUG", "YES"),
    ]))
    .unwrap();
    assert_eq!(got["listen"].1, ["0.0.0.0:1936"]);
    assert_eq!(got["tls.listen"].1, ["0.0.0.0:443"]);
    assert_eq!(got["tls.cert"].1, ["/c.pem"]);
    assert_eq!(got["tls.key"].1, ["/k.pem"]);
    assert_eq!(
        got["log"],
        ("LOG_DEBUG".to_owned(), vec!["debug".to_owned()])
    );
    let got = aliases::resolve(&env(&[("LOG_REQUESTS", "NO")])).unwrap();
    assert_eq!(got["log"].1, ["warn"]);
    assert!(aliases::resolve(&env(&[("RTMP_PORT", "http")])).is_err());
}

#[test]
fn toml_values_are_written_by_kind() {
    let def = def();
    let find = |k: &str| def.settings().iter().find(|s| s.key == k).unwrap().clone();
    assert_eq!(
        toml_values(&find("listen"), &["[::]:1935".into()]),
        "[\"[::]:1935\"]"
    );
    assert_eq!(
        toml_values(&find("real_time.audio_lifetime"), &[".5".into()]),
        "0.5"
    );
    assert_eq!(
        toml_values(&find("limits.max_connections"), &["+7".into()]),
        "7"
    );
}

/// `tincan serve --config FILE` parsed with every layer (no environment).
fn load(def: &Definition, file: &std::path::Path) -> Loaded {
    let args: Vec<OsString> = ["tincan", "serve", "--config"]
        .iter()
        .map(OsString::from)
        .chain([file.as_os_str().to_owned()])
        .collect();
    match def.parse(&args, &|_| None) {
        Ok((_, Some(loaded))) => loaded,
        Ok((_, None)) => panic!("not serve"),
        Err(Failure::Config(e)) => panic!("{e:?}"),
        Err(Failure::Clap(e)) => panic!("{e}"),
    }
}

#[test]
fn app_sections_become_the_cores_per_app_settings() {
    use std::time::Duration;
    use tincan_core::auth::AuthKeys;

    let def = def();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    std::fs::write(
        &file,
        "[auth]\nkey = [\"k1\"]\n[real_time]\nvideo_lifetime = 4\n\
         [app.studio.auth]\nkey = [\"k2\"]\n\
         [app.live.real_time]\naudio_lifetime = 1\n\
         [app.open.auth]\nkey = []\n",
    )
    .unwrap();
    let config = core_settings::server_config(&load(&def, &file)).unwrap();
    let session = &config.session;
    assert_eq!(session.auth_keys, AuthKeys::new(["k1"]));
    let studio = &session.apps["studio"];
    assert_eq!(studio.auth_keys, Some(AuthKeys::new(["k2"])));
    assert_eq!(
        studio.real_time, None,
        "studio keeps the server's lifetimes"
    );
    let live = &session.apps["live"];
    assert_eq!(live.auth_keys, None, "live keeps the server's keys");
    let rt = live.real_time.as_ref().unwrap();
    assert_eq!(rt.audio_lifetime, Duration::from_secs(1));
    // What the section does not set is the server's.
    assert_eq!(rt.video_lifetime, Duration::from_secs(4));
    assert_eq!(rt.finish_by_margin, session.real_time.finish_by_margin);
    // An empty key list turns authentication off for the App.
    assert!(session.apps["open"].auth_keys.as_ref().unwrap().is_empty());
    assert_eq!(session.apps.len(), 3);
}

#[test]
fn the_cores_settings_are_those_of_the_shared_definition() {
    let keys = core_settings::core_keys(&def());
    for key in [
        "auth.key",
        "auth.key_hex",
        "real_time.audio_lifetime",
        "limits.max_connections",
        "republish_grace",
        "server_info",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing: {keys:?}");
    }
    for key in ["listen", "log", "threads", "http.token", "tls.cert"] {
        assert!(!keys.iter().any(|k| k == key), "{key} is not the core's");
    }
}

#[test]
fn a_reload_gives_the_core_new_keys_and_app_sections_and_reports_them() {
    use std::sync::{Arc, Mutex};
    use tincan_core::auth::AuthKeys;
    use tincan_core::server::ServerConfig;

    let def = Arc::new(def());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    std::fs::write(&file, "listen = [\"127.0.0.1:1935\"]\n").unwrap();
    let loaded = load(&def, &file);
    let args = vec![
        OsString::from("tincan"),
        OsString::from("serve"),
        OsString::from("--config"),
        file.as_os_str().to_owned(),
    ];
    let reloader = reload::Reloader::new(def.clone(), args, loaded);

    // Before the server is registered, core settings cannot apply.
    std::fs::write(&file, "[limits]\nmax_connections = 7\n").unwrap();
    let report = reloader.reload();
    assert_eq!(report.not_applied, ["limits.max_connections"]);
    assert_eq!(report.restart, ["listen"]);

    let given: Arc<Mutex<Vec<ServerConfig>>> = Arc::default();
    let sink = given.clone();
    reloader.apply_core(&[], move |_, c| {
        sink.lock().unwrap().push(c);
        Ok(())
    });
    std::fs::write(
        &file,
        "[limits]\nmax_connections = 7\n[auth]\nkey = [\"new\"]\n\
         [app.studio.auth]\nkey = [\"k2\"]\n",
    )
    .unwrap();
    let report = reloader.reload();
    assert_eq!(
        report.applied,
        ["auth.key", "limits.max_connections", "app.studio.auth.key"]
    );
    assert_eq!(report.restart, ["listen"]);
    assert!(report.not_applied.is_empty(), "{report:?}");
    let config = given.lock().unwrap().pop().expect("the core got a config");
    assert_eq!(config.max_connections, 7);
    assert_eq!(config.session.auth_keys, AuthKeys::new(["new"]));
    assert_eq!(
        config.session.apps["studio"].auth_keys,
        Some(AuthKeys::new(["k2"]))
    );
    assert_eq!(
        reloader.in_force().apps["studio"].overrides["auth.key"],
        ["k2"]
    );

    // The same file again: nothing changed, the core is not called.
    let report = reloader.reload();
    assert!(report.applied.is_empty(), "{report:?}");
    assert!(given.lock().unwrap().is_empty());

    // Removing the App's section is applied too.
    std::fs::write(
        &file,
        "[limits]\nmax_connections = 7\n[auth]\nkey = [\"new\"]\n",
    )
    .unwrap();
    let report = reloader.reload();
    assert_eq!(report.applied, ["app.studio.auth.key"]);
    assert!(given.lock().unwrap()[0].session.apps.is_empty());
    assert!(reloader.in_force().apps.is_empty());
}
