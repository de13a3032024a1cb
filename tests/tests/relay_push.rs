//! Push relays with the real binary: a publish forwarded to several
//! destinations at once (nginx-rtmp from Debian's packages and another
//! tincan), and a destination that goes away and comes back. Every
//! destination is played back with FFmpeg and its frames decoded.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tincan_tests::http::{delete, get, get_json, poll_json, post_json};
use tincan_tests::relay::{free_port, ConfigFile, Nginx};
use tincan_tests::require_tool;
use tincan_tests::server::{play_args, publish_args, x264, Client, Output, TestServer};
use tincan_tests::tls::{install, TestCa};

const TIMEOUT: Duration = Duration::from_secs(30);
const FPS: u32 = 25;

fn publisher(ffmpeg: &std::path::Path, url: &str, secs: u32) -> Client {
    let video = x264(FPS);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    Client::spawn(
        "publisher",
        Command::new(ffmpeg).args(publish_args(url, FPS, secs, &video, &["-c:a", "aac"])),
        Output::Ignore,
    )
}

fn player(ffmpeg: &std::path::Path, url: &str, secs: u32) -> Client {
    let secs = secs.to_string();
    Client::spawn(
        "player",
        Command::new(ffmpeg).args(play_args(url, &["-t", &secs])),
        Output::FrameCrc,
    )
}

/// The push targets of `GET /api/v1/relays`.
fn targets(v: &Value) -> Vec<Value> {
    v["push"]["targets"].as_array().cloned().unwrap_or_default()
}

fn all_in_state(v: &Value, n: usize, state: &str) -> bool {
    let t = targets(v);
    t.len() == n && t.iter().all(|t| t["state"] == state)
}

/// Plays `url` for three seconds and asserts frames decoded.
fn assert_plays(ffmpeg: &std::path::Path, url: &str, logs: &dyn Fn() -> String) {
    let mut p = player(ffmpeg, url, 3);
    let status = p.wait_exit(TIMEOUT);
    let progress = p.progress();
    assert!(
        status.is_some_and(|s| s.success()) && progress.video >= 40,
        "{url}: {progress:?}\n{}\n{}",
        p.describe(),
        logs()
    );
}

#[test]
fn a_publish_is_pushed_to_nginx_rtmp_and_another_tincan_at_once() {
    let ffmpeg = require_tool("ffmpeg");
    let nginx = Nginx::start();
    let other = TestServer::start();
    let config = ConfigFile::new(&format!(
        "[[relay.push]]\napp = \"live\"\nto = [\"rtmp://127.0.0.1:{}/live\", \"{}\"]\n",
        nginx.port,
        other.url("copy")
    ));
    let origin = TestServer::start_with_http(&["--config", config.arg()]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 15);

    let api = origin.http_url("/api/v1/relays");
    let (v, live) = poll_json(&api, TIMEOUT, |v| all_in_state(v, 2, "live"));
    assert!(live, "{v:#}\n{}", origin.logs());

    // Both destinations at once: the nginx copy under the source's name,
    // the tincan one under the name its URL gives.
    // Three seconds each: nginx-rtmp keeps no GOP, so its player starts
    // at the next keyframe (up to one second in).
    let mut a = player(&ffmpeg, &nginx.url("cam"), 3);
    let mut b = player(&ffmpeg, &other.url("copy"), 3);
    for (p, what) in [(&mut a, "nginx"), (&mut b, "tincan")] {
        let status = p.wait_exit(TIMEOUT);
        let progress = p.progress();
        assert!(
            status.is_some_and(|s| s.success()) && progress.video >= 40,
            "{what}: {progress:?}\n{}\nnginx:\n{}\norigin:\n{}",
            p.describe(),
            nginx.logs(),
            origin.logs()
        );
    }
    let (v, _) = poll_json(&api, TIMEOUT, |v| {
        targets(v)
            .iter()
            .all(|t| t["bytes_sent"].as_u64() > Some(10_000))
    });
    assert!(
        targets(&v)
            .iter()
            .all(|t| t["bytes_sent"].as_u64() > Some(10_000)),
        "{v:#}"
    );
}

#[test]
fn a_destination_that_returns_is_pushed_to_again() {
    let ffmpeg = require_tool("ffmpeg");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let destination = TestServer::start_with(&["--listen", &listen]);
    let config = ConfigFile::new(&format!(
        "[[relay.push]]\napp = \"live\"\nname = \"cam\"\nto = [\"rtmp://{listen}/live/back\"]\n\
         [relay.retry]\ninitial_secs = 0.2\nmax_secs = 1\n"
    ));
    let origin = TestServer::start_with_http(&["--config", config.arg()]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 30);
    let api = origin.http_url("/api/v1/relays");
    let (v, live) = poll_json(&api, TIMEOUT, |v| all_in_state(v, 1, "live"));
    assert!(live, "{v:#}\n{}", origin.logs());

    drop(destination);
    let (v, retrying) = poll_json(&api, TIMEOUT, |v| {
        all_in_state(v, 1, "retrying") && targets(v)[0]["last_error"].is_string()
    });
    assert!(retrying, "{v:#}\n{}", origin.logs());

    let back = TestServer::start_with(&["--listen", &listen]);
    let (v, live) = poll_json(&api, TIMEOUT, |v| all_in_state(v, 1, "live"));
    assert!(live, "{v:#}\n{}", origin.logs());
    assert!(targets(&v)[0]["attempts"].as_u64() >= Some(2), "{v:#}");
    let url = format!("rtmp://{listen}/live/back");
    assert_plays(&ffmpeg, &url, &|| back.logs());
}

/// A tincan with an RTMPS listener whose certificate `ca` signed (for
/// 127.0.0.1); the files live in `dir`.
fn rtmps_destination(ca: &TestCa, dir: &std::path::Path) -> TestServer {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    install(&ca.leaf("destination", 1), &cert, &key);
    TestServer::start_with_tls(&[], &cert, &key)
}

#[test]
fn an_rtmps_push_verified_with_the_configured_ca_reaches_the_destination() {
    let ffmpeg = require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let destination = rtmps_destination(&ca, dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = ConfigFile::new(&format!(
        "[[relay.push]]\napp = \"live\"\nto = [\"rtmps://127.0.0.1:{}/live/secure\"]\n\
         [relay.tls]\nca_file = \"{}\"\n",
        destination.tls_port(),
        ca_file.display()
    ));
    let origin = TestServer::start_with_http(&["--config", config.arg()]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 15);
    let api = origin.http_url("/api/v1/relays");
    let (v, live) = poll_json(&api, TIMEOUT, |v| all_in_state(v, 1, "live"));
    assert!(live, "{v:#}\n{}", origin.logs());
    // Played back from the destination's plain listener.
    assert_plays(&ffmpeg, &destination.url("secure"), &|| destination.logs());
}

#[test]
fn an_rtmps_push_to_a_certificate_of_an_unknown_ca_is_refused() {
    let ffmpeg = require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let destination = rtmps_destination(&TestCa::new(), dir.path());
    let config = ConfigFile::new(&format!(
        "[[relay.push]]\napp = \"live\"\nto = [\"rtmps://127.0.0.1:{}/live/secure\"]\n",
        destination.tls_port()
    ));
    let origin = TestServer::start_with_http(&["--config", config.arg()]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 15);
    let api = origin.http_url("/api/v1/relays");
    let (v, refused) = poll_json(&api, TIMEOUT, |v| {
        all_in_state(v, 1, "retrying")
            && targets(v)[0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate"))
    });
    assert!(refused, "{v:#}\n{}", origin.logs());
}

#[test]
fn a_push_back_to_the_server_it_came_from_is_refused_as_a_loop() {
    let ffmpeg = require_tool("ffmpeg");
    let (port_a, port_b) = (free_port(), free_port());
    // A pushes everything to B, B pushes everything back to A (under
    // another name, so only the loop check can refuse it).
    let config_a = ConfigFile::new(&format!(
        "[relay]\nnode_id = \"a\"\n[[relay.push]]\napp = \"live\"\nto = [\"rtmp://127.0.0.1:{port_b}/live\"]\n"
    ));
    let config_b = ConfigFile::new(&format!(
        "[relay]\nnode_id = \"b\"\n[[relay.push]]\napp = \"live\"\nto = [\"rtmp://127.0.0.1:{port_a}/live/back\"]\n"
    ));
    let listen_a = format!("127.0.0.1:{port_a}");
    let listen_b = format!("127.0.0.1:{port_b}");
    let a = TestServer::start_with_http(&["--config", config_a.arg(), "--listen", &listen_a]);
    let b = TestServer::start_with_http(&["--config", config_b.arg(), "--listen", &listen_b]);
    let _publisher = publisher(&ffmpeg, &a.url("cam"), 15);

    let (v, live) = poll_json(&a.http_url("/api/v1/relays"), TIMEOUT, |v| {
        all_in_state(v, 1, "live")
    });
    assert!(live, "{v:#}\n{}", a.logs());
    let (v, refused) = poll_json(&b.http_url("/api/v1/relays"), TIMEOUT, |v| {
        targets(v).iter().any(|t| {
            t["state"] == "retrying"
                && t["last_error"].as_str().is_some_and(|e| {
                    e.contains("NetConnection.Connect.Rejected") && e.contains("relay loop")
                })
        })
    });
    assert!(refused, "{v:#}\nB:\n{}\nA:\n{}", b.logs(), a.logs());
}

#[test]
fn a_push_added_through_the_api_starts_at_once_and_stops_when_removed() {
    let ffmpeg = require_tool("ffmpeg");
    let destination = TestServer::start_with_http(&[]);
    let origin = TestServer::start_with_http(&["--http-token", "s3cret"]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 15);
    let (v, up) = poll_json(&origin.http_url("/api/v1/streams"), TIMEOUT, |v| {
        v["streams"][0]["publisher"].is_object()
    });
    assert!(up, "{v:#}");

    let rule = serde_json::json!({ "app": "live", "name": "cam", "to": [destination.url("api")] });
    let add = origin.http_url("/api/v1/relays/push");
    assert_eq!(post_json(&add, None, &rule).status, 401);
    let added = post_json(&add, Some("s3cret"), &rule);
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.json()["id"].as_u64().expect("a rule id");

    let api = origin.http_url("/api/v1/relays");
    let (v, live) = poll_json(&api, TIMEOUT, |v| all_in_state(v, 1, "live"));
    assert!(live, "{v:#}\n{}", origin.logs());
    let there = destination.http_url("/api/v1/streams/live/api");
    let (v, published) = poll_json(&there, TIMEOUT, |v| v["publisher"].is_object());
    assert!(published, "{v:#}");

    let removed = delete(&format!("{add}/{id}"), Some("s3cret"));
    assert_eq!(removed.status, 200, "{}", removed.body);
    let (v, gone) = poll_json(&api, TIMEOUT, |v| targets(v).is_empty());
    assert!(gone, "{v:#}");
    // The destination's stream ends (404 once its players are gone too).
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let r = get(&there);
        if r.status == 404 || (r.status == 200 && !r.json()["publisher"].is_object()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(get_json(&api)["push"]["rules"]
        .as_array()
        .is_some_and(Vec::is_empty));
}
