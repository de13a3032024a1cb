//! The RTWebSocket listener's HTTP and WebSocket rules, against the real
//! `tincan` binary with a real WebSocket client (Node's `ws` package,
//! `tests/node/ws-probe.js`): the path and origin checks of the upgrade,
//! and the messages the transport refuses, each with its close code; and
//! the same inside TLS (`--wss-listen`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tincan_tests::rtws::{node, Lines};
use tincan_tests::server::{free_port, TestServer};
use tincan_tests::tls::{install, TestCa};

/// What the probe saw, in order.
fn probe(url: &str, args: &[&str]) -> Vec<Value> {
    let lines = Lines::spawn(node("ws-probe.js").arg(url).args(args));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::new();
    while let Some(line) = lines.next_before(deadline) {
        out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    assert!(
        !out.is_empty(),
        "ws-probe.js said nothing: {}",
        lines.stderr()
    );
    out
}

fn server(args: &[&str]) -> (TestServer, String) {
    let ws = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--ws-listen", &ws];
    all.extend_from_slice(args);
    let server = TestServer::start_with(&all);
    (server, format!("ws://{ws}"))
}

#[test]
fn an_upgrade_outside_the_ws_path_is_refused_with_404() {
    let (server, ws) = server(&["--ws-path", "/rtws"]);
    let got = probe(&format!("{ws}/live"), &[]);
    assert_eq!(got[0]["event"], "refused", "{got:?}\n{}", server.logs());
    assert_eq!(got[0]["status"], 404, "{got:?}");
    let got = probe(&format!("{ws}/rtws/live"), &[]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
}

#[test]
fn an_origin_off_the_allow_list_is_refused_with_403() {
    let (server, ws) = server(&["--ws-allowed-origins", "https://good.example"]);
    let url = format!("{ws}/live");
    let got = probe(&url, &["--origin", "https://evil.example"]);
    assert_eq!(got[0]["event"], "refused", "{got:?}\n{}", server.logs());
    assert_eq!(got[0]["status"], 403, "{got:?}");
    let got = probe(&url, &["--origin", "https://GOOD.example"]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
    // Not from a browser page: no Origin, allowed.
    let got = probe(&url, &[]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
}

#[test]
fn a_text_message_closes_the_connection_with_1003() {
    let (server, ws) = server(&[]);
    let got = probe(&format!("{ws}/live"), &["--text", "hello"]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
    assert_eq!(got[1]["event"], "close", "{got:?}\n{}", server.logs());
    assert_eq!(got[1]["code"], 1003, "{got:?}\n{}", server.logs());
}

#[test]
fn a_message_over_the_size_bound_closes_the_connection_with_1009() {
    let (server, ws) = server(&[]);
    // The session's largest RTWebSocket message is 8 MiB (and 5 bytes);
    // the bound is that plus 64 KiB.
    let got = probe(&format!("{ws}/live"), &["--binary", &(9 << 20).to_string()]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
    assert_eq!(got[1]["event"], "close", "{got:?}\n{}", server.logs());
    assert_eq!(got[1]["code"], 1009, "{got:?}\n{}", server.logs());
}

#[test]
fn wss_upgrades_inside_tls_with_the_rtmps_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca_der) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.der"),
    );
    install(&ca.leaf("wss", 1), &cert, &key);
    std::fs::write(&ca_der, ca.der()).unwrap();
    let wss = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start_with(&[
        "--wss-listen",
        &wss,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    // The client trusts the test CA alone: the server presented its leaf.
    let ca_arg = ca_der.to_str().unwrap();
    let url = format!("wss://localhost:{}/live", wss.rsplit(':').next().unwrap());
    let got = probe(&url, &["--ca-der", ca_arg, "--text", "hello"]);
    assert_eq!(got[0]["event"], "open", "{got:?}\n{}", server.logs());
    assert_eq!(got[1]["code"], 1003, "{got:?}\n{}", server.logs());
}
