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
            "redis.password"
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
