//! `tincan serve --profile go-rtmp-server` against the Go RTMP server's
//! README (the operators' contract): its variables with their defaults and
//! with changed values, its rtmp://HOST/CHANNEL/KEY rules, the play
//! allow-list and the per-address connection limit, all against the real
//! binary with RTMP clients from chosen loopback addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::thread;
use std::time::{Duration, Instant};

use tincan_tests::access::{
    connect_from, feed, free_port, lo, play_from, publish_from, Tincan, STEP,
};
use tincan_tests::tc_client::TcClient;

const GO: &[&str] = &["--profile", "go-rtmp-server"];

/// The line of `--print-config` for `key` (`name = value  # source`).
fn line<'a>(config: &'a str, section: &str, key: &str) -> &'a str {
    let body = match section {
        "" => config.split("\n[").next().unwrap(),
        s => config
            .split(&format!("\n[{s}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [{s}] in\n{config}"))
            .split("\n[")
            .next()
            .unwrap(),
    };
    body.lines()
        .find(|l| l.starts_with(&format!("{key} =")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no {key} in [{section}]:\n{body}"))
}

#[test]
fn every_go_variable_has_its_default_under_the_profile_and_tincans_without() {
    let c = Tincan::print_config(GO, &[]);
    let profile = "# profile go-rtmp-server";
    for (section, key, value) in [
        ("", "listen", r#"["0.0.0.0:1935"]"#),
        ("", "log", r#""info""#),
        ("limits", "max_connections_per_ip", "4"),
        ("access", "max_name_length", "128"),
        ("access", "strict_names", "true"),
        ("access", "channel_keys", "true"),
        ("redis", "host", r#""127.0.0.1""#),
        ("redis", "port", "6379"),
    ] {
        let l = line(&c, section, key);
        assert_eq!(
            l,
            format!("{key} = {value}  {profile}"),
            "[{section}] {key}"
        );
    }
    // Not set by default: no play allow-list, no exemptions, no callback,
    // no Redis, no RTMPS without a certificate.
    assert!(line(&c, "access", "allow_play").starts_with("allow_play = []"));
    assert!(line(&c, "access", "per_ip_exempt").starts_with("per_ip_exempt = []"));
    assert!(line(&c, "access", "callback_url").starts_with("# callback_url is not set"));
    assert!(line(&c, "redis", "enabled").starts_with("enabled = false"));
    assert!(line(&c, "tls", "listen").starts_with("listen = []"));

    // Without the profile: tincan's defaults.
    let c = Tincan::print_config(&[], &[]);
    assert!(line(&c, "limits", "max_connections_per_ip").ends_with("# default"));
    assert!(line(&c, "access", "strict_names").starts_with("strict_names = false"));
    assert!(line(&c, "access", "max_name_length").starts_with("max_name_length = 0"));
}

#[test]
fn every_go_variable_changes_its_setting_with_and_without_the_profile() {
    let env = [
        ("RTMP_PORT", "1940"),
        ("SSL_PORT", "8443"),
        ("SSL_CERT", "/etc/tls/cert.pem"),
        ("SSL_KEY", "/etc/tls/key.pem"),
        ("LOG_DEBUG", "YES"),
        ("ID_MAX_LENGTH", "16"),
        ("MAX_IP_CONCURRENT_CONNECTIONS", "9"),
        ("CONCURRENT_LIMIT_WHITELIST", "127.0.0.1,10.0.0.0/8,::1"),
        ("RTMP_PLAY_WHITELIST", "192.0.2.7, 2001:db8::/32"),
        ("CALLBACK_URL", "http://127.0.0.1:9/events"),
        ("JWT_SECRET", "s3cret-value"),
        ("REDIS_USE", "YES"),
        ("REDIS_HOST", "redis.internal"),
        ("REDIS_PORT", "6380"),
        ("REDIS_PASSWORD", "hunter2"),
        ("REDIS_CHANNEL", "rtmp_commands"),
    ];
    for args in [GO, &[][..]] {
        let c = Tincan::print_config(args, &env);
        for (section, key, value, var) in [
            ("", "listen", r#"["0.0.0.0:1940"]"#, "RTMP_PORT"),
            ("", "log", r#""debug""#, "LOG_DEBUG"),
            ("tls", "listen", r#"["0.0.0.0:8443"]"#, "SSL_PORT"),
            ("tls", "cert", r#""/etc/tls/cert.pem""#, "SSL_CERT"),
            ("tls", "key", r#""/etc/tls/key.pem""#, "SSL_KEY"),
            ("access", "max_name_length", "16", "ID_MAX_LENGTH"),
            (
                "limits",
                "max_connections_per_ip",
                "9",
                "MAX_IP_CONCURRENT_CONNECTIONS",
            ),
            (
                "access",
                "per_ip_exempt",
                r#"["127.0.0.1/32", "10.0.0.0/8", "::1/128"]"#,
                "CONCURRENT_LIMIT_WHITELIST",
            ),
            (
                "access",
                "allow_play",
                r#"["192.0.2.7/32", "2001:db8::/32"]"#,
                "RTMP_PLAY_WHITELIST",
            ),
            (
                "access",
                "callback_url",
                r#""http://127.0.0.1:9/events""#,
                "CALLBACK_URL",
            ),
            ("redis", "enabled", "true", "REDIS_USE"),
            ("redis", "host", r#""redis.internal""#, "REDIS_HOST"),
            ("redis", "port", "6380", "REDIS_PORT"),
            ("redis", "channel", r#""rtmp_commands""#, "REDIS_CHANNEL"),
        ] {
            let l = line(&c, section, key);
            assert!(
                l.starts_with(&format!("{key} = {value}  # env ")) && l.contains(var),
                "{args:?} [{section}] {key}: {l}"
            );
        }
        // Secrets are read but never shown.
        assert!(!c.contains("s3cret-value") && !c.contains("hunter2"), "{c}");
        assert!(line(&c, "access", "jwt_secret").contains("secret value"));
        assert!(line(&c, "redis", "password").contains("secret value"));
    }
    // LOG_REQUESTS=NO: no per-request lines; LOG_REQUESTS=YES: info.
    let c = Tincan::print_config(GO, &[("LOG_REQUESTS", "NO")]);
    assert!(line(&c, "", "log").starts_with(r#"log = "warn""#));
    let c = Tincan::print_config(&[], &[("LOG_REQUESTS", "YES")]);
    assert!(line(&c, "", "log").starts_with(r#"log = "info""#));
    // The profile's SSL_PORT default (443) with a certificate and key.
    let c = Tincan::print_config(GO, &[("SSL_CERT", "/c.pem"), ("SSL_KEY", "/k.pem")]);
    assert!(line(&c, "tls", "listen").starts_with(r#"listen = ["0.0.0.0:443"]  # profile"#));
    // The file beats the profile's defaults; the environment beats the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "[limits]\nmax_connections_per_ip = 12\n").unwrap();
    let f = file.to_str().unwrap();
    let c = Tincan::print_config(&["--profile", "go-rtmp-server", "--config", f], &[]);
    assert!(line(&c, "limits", "max_connections_per_ip")
        .starts_with("max_connections_per_ip = 12  # file"));
    let c = Tincan::print_config(
        &["--config", f],
        &[
            ("TINCAN_PROFILE", "go-rtmp-server"),
            ("MAX_IP_CONCURRENT_CONNECTIONS", "3"),
        ],
    );
    assert!(line(&c, "limits", "max_connections_per_ip")
        .starts_with("max_connections_per_ip = 3  # env"));
}

#[test]
fn wrong_go_values_refuse_to_start_with_what_is_wrong() {
    for (env, says) in [
        (
            vec![("RTMP_PLAY_WHITELIST", "127.0.0.1,nonsense")],
            "nonsense",
        ),
        (
            vec![("MAX_IP_CONCURRENT_CONNECTIONS", "four")],
            "MAX_IP_CONCURRENT_CONNECTIONS",
        ),
        (vec![("ID_MAX_LENGTH", "-1")], "ID_MAX_LENGTH"),
        (vec![("REDIS_USE", "YES")], "REDIS_CHANNEL"),
        (vec![("CALLBACK_URL", "http://127.0.0.1:9/")], "JWT_SECRET"),
        (vec![("REDIS_PORT", "0")], "REDIS_PORT"),
    ] {
        let (code, err) = Tincan::refuses(GO, &env);
        assert_eq!(code, 2, "{env:?}: {err}");
        assert!(err.contains(says), "{env:?}: {err}");
    }
}

#[test]
fn rtmp_port_is_where_it_listens() {
    let port = free_port().to_string();
    let server = Tincan::start(GO, &[("RTMP_PORT", &port)]);
    let (mut c, stream, (code, _)) =
        publish_from(lo(1), server.v4(), "channel", "key").expect("connect");
    assert_eq!(code, "NetStream.Publish.Start");
    feed(&mut c, stream, 0);
}

#[test]
fn channels_and_keys_as_the_go_server_has_them() {
    let server = Tincan::start(GO, &[("ID_MAX_LENGTH", "12")]);
    let at = server.v4();
    // A bad channel: connect refused, saying why.
    for bad in ["bad.channel", "a/b", "thirteen-char"] {
        let err = connect_from(lo(1), at, bad).expect_err("refused");
        assert!(
            err.starts_with("NetConnection.Connect.Rejected"),
            "{bad}: {err}"
        );
        assert!(err.contains("channel"), "{bad}: {err}");
    }
    // A bad key: BadName for a publisher, Failed for a player.
    let (_c, _, (code, why)) = publish_from(lo(1), at, "cam", "bad key!").unwrap();
    assert_eq!(code, "NetStream.Publish.BadName", "{why}");
    assert!(why.contains("stream key"), "{why}");
    let (_c, (code, why)) = play_from(lo(1), at, "cam", "waytoolongkey1").unwrap();
    assert_eq!(code, "NetStream.Play.Failed", "{why}");
    assert!(why.contains("longer than 12"), "{why}");

    // A player that comes before the publisher waits (as in the Go
    // server); with the wrong key it is closed when the publisher starts.
    let (mut early_right, (code, _)) = play_from(lo(2), at, "cam", "k1").unwrap();
    assert_eq!(code, "NetStream.Play.Start");
    let (mut early_wrong, (code, _)) = play_from(lo(3), at, "cam", "guess").unwrap();
    assert_eq!(code, "NetStream.Play.Start");

    let (mut publisher, stream, (code, why)) = publish_from(lo(1), at, "cam", "k1").unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    feed(&mut publisher, stream, 0);
    assert!(
        early_wrong.wait_eof(STEP),
        "the early player with a wrong key was not closed"
    );
    assert!(
        !early_right.wait_eof(Duration::from_millis(500)),
        "the right key was closed"
    );

    // One publisher per channel, whatever its key.
    let (_c, _, (code, why)) = publish_from(lo(4), at, "cam", "k2").unwrap();
    assert_eq!(code, "NetStream.Publish.BadName", "{why}");
    assert!(why.contains("already publishing"), "{why}");
    // A wrong key never gets the stream.
    let (_c, (code, why)) = play_from(lo(4), at, "cam", "k2").unwrap();
    assert_eq!(code, "NetStream.Play.Failed", "{why}");
    assert!(why.contains("invalid stream key"), "{why}");
    // The right key does; another channel is independent.
    let (_c, (code, _)) = play_from(lo(4), at, "cam", "k1").unwrap();
    assert_eq!(code, "NetStream.Play.Start");
    let (_c, _, (code, _)) = publish_from(lo(4), at, "cam2", "k2").unwrap();
    assert_eq!(code, "NetStream.Publish.Start");

    // Once the publisher has gone, the channel takes a new key.
    publisher.close();
    let deadline = Instant::now() + STEP;
    loop {
        let (_c, _, (code, _)) = publish_from(lo(5), at, "cam", "k3").unwrap();
        if code == "NetStream.Publish.Start" {
            break;
        }
        assert!(Instant::now() < deadline, "channel still held: {code}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_play_whitelist_takes_addresses_and_subnets_of_both_families() {
    let server = Tincan::start(GO, &[("RTMP_PLAY_WHITELIST", "127.0.0.2,127.0.1.0/24,::1")]);
    let (v4, v6) = (server.v4(), server.v6());
    let (mut p, stream, (code, _)) = publish_from(lo(3), v4, "ch", "key").unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "publishing is unaffected");
    feed(&mut p, stream, 0);
    for (from, at) in [
        (lo(2), v4),
        ("127.0.1.77".parse().unwrap(), v4),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), v6),
    ] {
        let (_c, (code, why)) = play_from(from, at, "ch", "key").unwrap();
        assert_eq!(code, "NetStream.Play.Start", "{from}: {why}");
    }
    for from in [lo(3), "127.0.2.1".parse().unwrap()] {
        let (_c, (code, why)) = play_from(from, v4, "ch", "key").unwrap();
        assert_eq!(code, "NetStream.Play.Failed", "{from}");
        assert!(why.contains("not allowed to play"), "{from}: {why}");
    }
}

/// Connections from `from` until one is refused (at most `max`).
fn fill(from: IpAddr, server: std::net::SocketAddr, max: usize) -> Vec<TcClient> {
    let mut held = Vec::new();
    while held.len() < max {
        match TcClient::connect_from(from, server, Duration::from_secs(2)) {
            Ok(c) => held.push(c),
            Err(_) => break,
        }
    }
    held
}

#[test]
fn the_per_address_limit_counts_live_connections_and_releases_resets() {
    // The profile's default: 4 from one address.
    let server = Tincan::start(
        GO,
        &[("CONCURRENT_LIMIT_WHITELIST", "127.0.0.9,127.0.3.0/24")],
    );
    let at = server.v4();
    let mut held = fill(lo(5), at, 10);
    assert_eq!(held.len(), 4, "MAX_IP_CONCURRENT_CONNECTIONS defaults to 4");
    // Another address has its own count; exempt ones have none.
    assert_eq!(fill(lo(6), at, 10).len(), 4);
    assert_eq!(fill(lo(9), at, 8).len(), 8);
    assert_eq!(fill("127.0.3.4".parse().unwrap(), at, 8).len(), 8);
    // Two reset without a goodbye: their slots come back.
    held.pop().unwrap().reset();
    held.pop().unwrap().reset();
    let deadline = Instant::now() + STEP;
    let mut again = Vec::new();
    while again.len() < 2 {
        again.extend(fill(lo(5), at, 2 - again.len()));
        assert!(Instant::now() < deadline, "slots not released after resets");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(fill(lo(5), at, 1).is_empty(), "the limit still holds");
    drop(held);

    // A changed value.
    let server = Tincan::start(GO, &[("MAX_IP_CONCURRENT_CONNECTIONS", "2")]);
    assert_eq!(fill(lo(5), server.v4(), 10).len(), 2);
    // Without the profile the variable is honoured too (the Go server's
    // parsing bug ignored it).
    let server = Tincan::start(&[], &[("MAX_IP_CONCURRENT_CONNECTIONS", "3")]);
    assert_eq!(fill(lo(5), server.v4(), 10).len(), 3);
}

#[test]
fn log_requests_and_log_debug_choose_what_is_logged() {
    let run = |env: &[(&str, &str)]| {
        let server = Tincan::start(GO, env);
        let (c, _) = connect_from(lo(1), server.v4(), "chan").unwrap();
        c.close();
        thread::sleep(Duration::from_millis(300));
        server.logs()
    };
    // The Go defaults (LOG_REQUESTS=YES, LOG_DEBUG=NO): a line per
    // connection, no debug lines.
    let logs = run(&[("LOG_REQUESTS", "YES"), ("LOG_DEBUG", "NO")]);
    assert!(
        logs.contains("accepted") && !logs.contains("DEBUG"),
        "{logs}"
    );
    // LOG_REQUESTS=NO: no per-connection lines.
    let logs = run(&[("LOG_REQUESTS", "NO")]);
    assert!(!logs.contains("accepted"), "{logs}");
    // LOG_DEBUG=YES: debug lines.
    let logs = run(&[("LOG_DEBUG", "YES")]);
    assert!(logs.contains("DEBUG"), "{logs}");
}
