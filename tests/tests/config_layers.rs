//! The configuration of the real `tincan` binary: flags > environment >
//! file > defaults, seen by clients (where the server listens) and through
//! `--print-config`; the Go RTMP server's aliases; `config check` and
//! `config example`; SIGHUP with a broken file; secrets never printed.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tincan_core::auth::token;
use tincan_core::message::{Command as Rtmp, Connect, Encoding, Message, Value};
use tincan_tests::server::tincan_binary;
use tincan_tests::sim::media::avc_keyframe;
use tincan_tests::tc_client::{status_code, TcClient};
use tincan_tests::ChildGuard;

/// `tincan ARGS` with only `env` set besides PATH, so the test's own
/// environment (RUST_LOG, say) cannot reach the server.
fn tincan(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(tincan_binary());
    cmd.args(args).env_clear().stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tincan(args, env).output().expect("run tincan")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A server started with `args` and `env`, its stderr in `log`; waits
/// until it accepts on `port`.
fn serve(args: &[&str], env: &[(&str, &str)], log: &Path, port: u16) -> ChildGuard {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let mut child = ChildGuard::spawn(
        tincan(&all, env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file")),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !accepts(port) {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "tincan exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "tincan never listened on {port}");
        thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &ChildGuard, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

/// Waits until the server's log contains `text`.
fn wait_log(log: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.contains(text) {
            return s;
        }
        assert!(Instant::now() < deadline, "{text:?} never logged:\n{s}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The line of `--print-config` output that sets `key` (within whatever
/// section), e.g. `max_connections = 300  # flag`.
fn printed<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} not printed:\n{out}"))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    std::fs::write(
        &file,
        "[limits]\nmax_connections = 100\nmax_connections_per_ip = 10\n\
         [real_time]\naudio_lifetime = 1.5\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let env = [("TINCAN_LIMITS_MAX_CONNECTIONS", "200")];
    let flag = run(
        &[
            "serve",
            "--config",
            file,
            "--max-connections",
            "300",
            "--print-config",
        ],
        &env,
    );
    assert!(flag.status.success(), "{flag:?}");
    let out = stdout(&flag);
    assert_eq!(
        printed(&out, "max_connections"),
        "max_connections = 300  # flag"
    );
    let no_flag = stdout(&run(&["serve", "--config", file, "--print-config"], &env));
    assert_eq!(
        printed(&no_flag, "max_connections"),
        "max_connections = 200  # env TINCAN_LIMITS_MAX_CONNECTIONS"
    );
    assert_eq!(
        printed(&no_flag, "max_connections_per_ip"),
        "max_connections_per_ip = 10  # file"
    );
    assert_eq!(
        printed(&no_flag, "audio_lifetime"),
        "audio_lifetime = 1.5  # file"
    );
    let file_only = stdout(&run(&["serve", "--config", file, "--print-config"], &[]));
    assert_eq!(
        printed(&file_only, "max_connections"),
        "max_connections = 100  # file"
    );
    // TINCAN_CONFIG names the file as --config does.
    let by_env = stdout(&run(
        &["serve", "--print-config"],
        &[("TINCAN_CONFIG", file)],
    ));
    assert_eq!(
        printed(&by_env, "max_connections"),
        "max_connections = 100  # file"
    );
    let default = stdout(&run(&["serve", "--print-config"], &[]));
    assert_eq!(
        printed(&default, "max_connections"),
        "max_connections = 10000  # default"
    );
    assert_eq!(
        printed(&default, "audio_lifetime"),
        "audio_lifetime = 2  # default"
    );
}

#[test]
fn clients_find_the_server_where_the_winning_layer_says() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let file = dir.path().join("tincan.toml");
    std::fs::write(&file, format!("listen = [\"127.0.0.1:{file_port}\"]\n")).unwrap();
    let file = file.to_str().unwrap();
    let env_listen = format!("127.0.0.1:{env_port}");
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let log = dir.path().join("a.log");

    // All three layers: the flag's address.
    let server = serve(
        &["--config", file, "--listen", &flag_listen],
        &[("TINCAN_LISTEN", &env_listen)],
        &log,
        flag_port,
    );
    assert!(!accepts(env_port) && !accepts(file_port));
    drop(server);
    // Environment and file: the environment's.
    let server = serve(
        &["--config", file],
        &[("TINCAN_LISTEN", &env_listen)],
        &log,
        env_port,
    );
    assert!(!accepts(file_port));
    drop(server);
    // The file alone.
    let _server = serve(&["--config", file], &[], &log, file_port);
}

#[test]
fn rtmp_port_of_the_go_server_makes_it_listen_there() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("a.log");
    let _server = serve(&[], &[("RTMP_PORT", &port.to_string())], &log, port);
    let out = stdout(&run(
        &["serve", "--print-config"],
        &[("RTMP_PORT", &port.to_string()), ("LOG_DEBUG", "YES")],
    ));
    assert_eq!(
        printed(&out, "listen"),
        format!("listen = [\"0.0.0.0:{port}\"]  # env RTMP_PORT")
    );
    assert_eq!(printed(&out, "log"), "log = \"debug\"  # env LOG_DEBUG");
    // TINCAN_LISTEN is the setting's own name: it beats the alias.
    let out = stdout(&run(
        &["serve", "--print-config"],
        &[("RTMP_PORT", "1000"), ("TINCAN_LISTEN", "127.0.0.1:2000")],
    ));
    assert_eq!(
        printed(&out, "listen"),
        "listen = [\"127.0.0.1:2000\"]  # env TINCAN_LISTEN"
    );
    let bad = run(&["serve"], &[("RTMP_PORT", "rtmp")]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RTMP_PORT"));
}

#[test]
fn config_check_reports_every_error_with_its_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "# a comment\n\
         [limits]\n\
         max_connections = \"many\"\n\
         max_conections = 5\n\
         [real_time]\n\
         audio_lifetime = true\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = run(&["config", "check", path], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    for expected in [
        format!("{path}:3:19: limits.max_connections: expected an integer, found string"),
        format!("{path}:4:1: limits.max_conections: unknown key (did you mean `max_connections`?)"),
        format!("{path}:6:18: real_time.audio_lifetime: expected a number, found boolean"),
        format!("{path}: 3 errors"),
    ] {
        assert!(
            text.contains(&expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // serve refuses the same file with the same errors, before listening.
    let serve = run(&["serve", "--config", path], &[]);
    assert_eq!(serve.status.code(), Some(2), "{serve:?}");
    assert!(String::from_utf8_lossy(&serve.stderr).contains("limits.max_conections: unknown key"));
}

/// Every `--flag` that `tincan serve --help` lists, but the flags about
/// the configuration itself.
fn help_flags() -> Vec<String> {
    let help = stdout(&run(&["serve", "--help"], &[]));
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .filter(|w| !["--help", "--config", "--print-config"].contains(&w.as_str()))
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn config_example_checks_and_names_every_flag() {
    let example = run(&["config", "example"], &[]);
    assert!(example.status.success());
    let text = stdout(&example);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.toml");
    std::fs::write(&file, &text).unwrap();
    let check = run(&["config", "check", file.to_str().unwrap()], &[]);
    assert!(check.status.success(), "{}", stdout(&check));
    let flags = help_flags();
    assert!(flags.len() > 30, "{flags:?}");
    for flag in &flags {
        assert!(
            text.contains(&format!("{flag} ")) || text.contains(&format!("{flag};")),
            "{flag} is in serve --help but not in config example"
        );
    }
    // The example holds the defaults: serving with it changes nothing.
    let with = stdout(&run(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ],
        &[],
    ));
    let without = stdout(&run(&["serve", "--print-config"], &[]));
    let values = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  # ").next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(values(&with), values(&without));
}

#[test]
fn docs_show_the_example_that_the_binary_prints() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let example = stdout(&run(&["config", "example"], &[]));
    let begin = "<!-- config example: begin -->\n```toml\n";
    let end = "```\n<!-- config example: end -->";
    let start = docs.find(begin).expect("begin marker") + begin.len();
    let stop = docs[start..].find(end).expect("end marker") + start;
    assert!(
        docs[start..stop] == example,
        "docs/operations.md's example differs from `tincan config example`: paste its output \
         between the markers"
    );
}

#[test]
fn secrets_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    std::fs::write(
        &file,
        "[auth]\nkey = [\"file-secret-1\"]\n[app.live.auth]\nkey = [\"app-secret-2\"]\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = run(
        &[
            "serve",
            "--config",
            file,
            "-k",
            "flag-secret-3",
            "--http-listen",
            "127.0.0.1:1",
            "--http-token",
            "token-secret-4",
            "--print-config",
        ],
        &[("TINCAN_AUTH_KEY_HEX", "5ec2e7")],
    );
    let text = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for secret in [
        "file-secret-1",
        "app-secret-2",
        "flag-secret-3",
        "token-secret-4",
        "5ec2e7",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(text.contains("secret value"), "{text}");
    let help = stdout(&run(
        &["serve", "--help"],
        &[("TINCAN_AUTH_KEY", "env-secret-5")],
    ));
    assert!(!help.contains("env-secret-5"));

    // Nor logged by a reload that changes them.
    let port = free_port();
    let log = dir.path().join("a.log");
    let listen = format!("127.0.0.1:{port}");
    let server = serve(&["--config", file, "--listen", &listen], &[], &log, port);
    std::fs::write(
        file,
        "[auth]\nkey = [\"file-secret-6\"]\n[app.live.auth]\nkey = [\"app-secret-7\"]\n",
    )
    .unwrap();
    signal(&server, "-HUP");
    let logs = wait_log(&log, "app.live.auth.key");
    for secret in [
        "file-secret-1",
        "app-secret-2",
        "file-secret-6",
        "app-secret-7",
    ] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    let port = free_port();
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:{port}\"\nlog = \"info\"\n"),
    )
    .unwrap();
    let log = dir.path().join("a.log");
    let mut server = serve(&["--config", file.to_str().unwrap()], &[], &log, port);

    std::fs::write(&file, "listen = \"127.0.0.1:1\"\n[limits\n").unwrap();
    signal(&server, "-HUP");
    let logs = wait_log(&log, "the running configuration stays in force");
    assert!(
        logs.contains("tincan.toml:2:"),
        "the error names no line:\n{logs}"
    );
    assert!(matches!(server.0.try_wait(), Ok(None)), "the server exited");
    assert!(accepts(port), "the server stopped listening");

    // A good file again: the log filter applies live, a new listen
    // address and a core limit are reported.
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:{}\"\nlog = \"debug\"\n[limits]\nmax_connections = 5\n",
            free_port()
        ),
    )
    .unwrap();
    signal(&server, "-HUP");
    wait_log(&log, "reload: applied");
    let logs = wait_log(&log, "limits.max_connections");
    assert!(logs.contains("takes a restart"), "{logs}");
    assert!(logs.contains("setting=listen"), "{logs}");
    assert!(accepts(port));
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("a.log");
    let listen = format!("127.0.0.1:{port}");
    let _server = serve(
        &["--listen", &listen],
        &[("TINCAN_LOG_FORMAT", "json")],
        &log,
        port,
    );
    let logs = wait_log(&log, "listening");
    for line in logs.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
}

const RTMP_TIMEOUT: Duration = Duration::from_secs(10);

/// An RTMP client of the server on `port` that sent `connect` to App
/// `app` with `token` (TC's App-wide token, as `-rtmp_conn S:TOKEN` sends
/// it) and got its answer: the client and the answer's status code.
fn connect(port: u16, app: &str, token: Option<&str>) -> (TcClient, String) {
    let mut c = TcClient::connect(port, RTMP_TIMEOUT).expect("handshake");
    let connect = Message::Command {
        encoding: Encoding::Amf0,
        command: Rtmp::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([
                ("app", Value::from(app)),
                ("tcUrl", Value::from(format!("rtmp://127.0.0.1/{app}"))),
                ("objectEncoding", Value::Number(0.0)),
            ]),
            args: token.into_iter().map(Value::from).collect(),
        }),
    };
    c.send(3, 0, 0, &connect);
    let answered = |m: &Message| {
        matches!(
            status_code(m),
            Some("NetConnection.Connect.Success" | "NetConnection.Connect.Rejected")
        )
    };
    assert!(
        c.wait_for(RTMP_TIMEOUT, answered),
        "connect to {app} not answered: {:?}",
        c.received()
    );
    let code = c
        .received()
        .iter()
        .find_map(|m| status_code(m).filter(|_| answered(m)))
        .unwrap()
        .to_owned();
    (c, code)
}

/// Sends `createStream` and returns the stream id of its result.
fn create_stream(c: &mut TcClient) -> u32 {
    let t = c.create_stream();
    let mut id = None;
    c.wait_for(RTMP_TIMEOUT, |m| match m {
        Message::Command {
            command: Rtmp::Result {
                transaction_id,
                args,
                ..
            },
            ..
        // The connect's own `_result` may share the transaction id (it
        // was sent by hand): the stream id is what tells them apart.
        } if *transaction_id == t => {
            id = args.iter().find_map(Value::as_f64);
            id.is_some()
        }
        _ => false,
    });
    id.expect("createStream answered with a stream id") as u32
}

/// `connect`'s status code for App `app` with `token`; the client is
/// closed after.
fn connect_code(port: u16, app: &str, token: Option<&str>) -> String {
    let (c, code) = connect(port, app, token);
    c.close();
    code
}

/// The App-wide token `tincan token -k KEY APP` prints.
fn printed_token(key: &str, app: &str) -> String {
    let out = run(&["token", "-k", key, app], &[]);
    assert!(out.status.success(), "{out:?}");
    let line = stdout(&out);
    let t = line
        .trim()
        .strip_prefix(",auth,")
        .and_then(|rest| rest.strip_suffix(&format!(",{app}")))
        .unwrap_or_else(|| panic!("not a calculator line: {line}"))
        .to_owned();
    assert_eq!(t, token(key.as_bytes(), app));
    t
}

const OK: &str = "NetConnection.Connect.Success";
const REJECTED: &str = "NetConnection.Connect.Rejected";

#[test]
fn sighup_applies_a_new_auth_key_to_new_connections_and_keeps_a_live_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    let port = free_port();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    std::fs::write(&file, &listen).unwrap();
    let log = dir.path().join("a.log");
    let server = serve(&["--config", file.to_str().unwrap()], &[], &log, port);

    // No key: anyone connects; one of them publishes.
    let (mut publisher, code) = connect(port, "live", None);
    assert_eq!(code, OK);
    let stream = create_stream(&mut publisher);
    publisher.publish(stream, "cam");
    assert!(
        publisher.wait_for(RTMP_TIMEOUT, |m| status_code(m)
            == Some("NetStream.Publish.Start")),
        "{:?}",
        publisher.received()
    );
    publisher.send_video(stream, 0, avc_keyframe(&[1; 64]));

    // A key in the file, and SIGHUP.
    std::fs::write(&file, format!("{listen}[auth]\nkey = [\"hup-secret-1\"]\n")).unwrap();
    signal(&server, "-HUP");
    let logs = wait_log(&log, "setting=auth.key");
    assert!(
        logs.lines()
            .any(|l| l.contains("reload: applied") && l.contains("setting=auth.key")),
        "{logs}"
    );
    assert!(logs.contains("secret, not shown"), "{logs}");
    assert!(!logs.contains("hup-secret"), "the key was logged:\n{logs}");

    // New connections need a token made with it.
    assert_eq!(connect_code(port, "live", None), REJECTED);
    assert_eq!(
        connect_code(port, "live", Some(&token(b"other", "live"))),
        REJECTED
    );
    let (mut player, code) = connect(port, "live", Some(&printed_token("hup-secret-1", "live")));
    assert_eq!(code, OK);

    // The publisher, connected before, was not dropped and still streams:
    // a new player gets what it sends now.
    let play = create_stream(&mut player);
    player.play(play, "cam");
    assert!(
        player.wait_for(RTMP_TIMEOUT, |m| status_code(m)
            == Some("NetStream.Play.Start")),
        "{:?}",
        player.received()
    );
    for i in 1..=10 {
        publisher.send_video(stream, i * 40, avc_keyframe(&[2; 64]));
    }
    assert!(
        player.wait_for(RTMP_TIMEOUT, |m| matches!(m, Message::Video(_))),
        "no video reached the player: {:?}",
        player.received()
    );
    publisher.read_for(Duration::from_millis(200));
    assert!(!publisher.saw_eof(), "the reload dropped the publisher");
    assert!(
        !publisher.received().iter().any(
            |m| status_code(m).is_some_and(|c| c.contains("Unpublish") || c.contains("Closed"))
        ),
        "{:?}",
        publisher.received()
    );
}

#[test]
fn an_app_section_gives_its_app_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    let port = free_port();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    std::fs::write(
        &file,
        format!("{listen}[auth]\nkey = [\"app-secret-1\"]\n[app.studio.auth]\nkey = [\"app-secret-2\"]\n"),
    )
    .unwrap();
    let log = dir.path().join("a.log");
    let server = serve(&["--config", file.to_str().unwrap()], &[], &log, port);
    let logs = wait_log(&log, "App settings of its own");
    assert!(!logs.contains("app-secret"), "{logs}");
    assert!(!logs.contains("not applied"), "{logs}");

    let studio_k2 = printed_token("app-secret-2", "studio");
    let studio_k1 = printed_token("app-secret-1", "studio");
    let live_k1 = printed_token("app-secret-1", "live");
    let live_k2 = printed_token("app-secret-2", "live");
    // studio: only its own key.
    assert_eq!(connect_code(port, "studio", Some(&studio_k2)), OK);
    assert_eq!(connect_code(port, "studio", Some(&studio_k1)), REJECTED);
    assert_eq!(connect_code(port, "studio", None), REJECTED);
    // live (no section): the server-wide key.
    assert_eq!(connect_code(port, "live", Some(&live_k1)), OK);
    assert_eq!(connect_code(port, "live", Some(&live_k2)), REJECTED);

    // A reload changes the App's key: new connections follow it.
    std::fs::write(
        &file,
        format!("{listen}[auth]\nkey = [\"app-secret-1\"]\n[app.studio.auth]\nkey = [\"app-secret-3\"]\n"),
    )
    .unwrap();
    signal(&server, "-HUP");
    let logs = wait_log(&log, "setting=app.studio.auth.key");
    assert!(logs.contains("reload: applied"), "{logs}");
    assert!(!logs.contains("app-secret"), "{logs}");
    assert_eq!(connect_code(port, "studio", Some(&studio_k2)), REJECTED);
    assert_eq!(
        connect_code(
            port,
            "studio",
            Some(&printed_token("app-secret-3", "studio"))
        ),
        OK
    );
    assert_eq!(connect_code(port, "live", Some(&live_k1)), OK);
}

#[test]
fn sighup_applies_new_access_rules_to_new_requests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tincan.toml");
    let port = free_port();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    std::fs::write(
        &file,
        format!("{listen}[access]\nallow_play = [\"127.0.0.0/8\"]\n"),
    )
    .unwrap();
    let log = dir.path().join("a.log");
    let server = serve(&["--config", file.to_str().unwrap()], &[], &log, port);
    let play_code = |name: &str| {
        let (mut player, code) = connect(port, "live", None);
        assert_eq!(code, OK);
        let s = create_stream(&mut player);
        player.play(s, name);
        let answered = |c: &str| c == "NetStream.Play.Start" || c == "NetStream.Play.Failed";
        assert!(
            player.wait_for(RTMP_TIMEOUT, |m| status_code(m).is_some_and(answered)),
            "{:?}",
            player.received()
        );
        player
            .received()
            .iter()
            .find_map(|m| status_code(m).filter(|c| answered(c)))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(play_code("cam"), "NetStream.Play.Start");

    // Only another network may play now.
    std::fs::write(
        &file,
        format!("{listen}[access]\nallow_play = [\"10.0.0.0/8\"]\n"),
    )
    .unwrap();
    signal(&server, "-HUP");
    let logs = wait_log(&log, "setting=access.allow_play");
    assert!(
        logs.lines()
            .any(|l| l.contains("reload: applied") && l.contains("setting=access.allow_play")),
        "{logs}"
    );
    assert_eq!(play_code("cam"), "NetStream.Play.Failed");
}
