//! Beyond the Go server: allow and deny lists for connect, publish and
//! play, server-wide and per App, from the configuration file; and the
//! HTTP auth hook (a real endpoint in the test) with its accept, refusal
//! text, timeout, bounded concurrency and notifications.

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use tincan_tests::access::{
    connect_from, feed, lo, play_from, publish_from, Endpoint, Reply, Tincan, STEP,
};
use tincan_tests::server::{publish_args, x264, Client, Output};

const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn with_file(text: &str, args: &[&str], env: &[(&str, &str)]) -> (Tincan, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tincan.toml");
    std::fs::write(&path, text).unwrap();
    let mut all = vec!["--config", path.to_str().unwrap()];
    all.extend_from_slice(args);
    (Tincan::start(&all, env), dir)
}

#[test]
fn allow_and_deny_lists_per_action_and_per_app() {
    let (server, _dir) = with_file(
        r#"
[access]
deny_connect = ["127.0.0.9", "127.0.5.0/24"]
allow_publish = ["127.0.0.0/30", "::1"]
deny_play = ["127.0.0.3"]

[app.private.access]
allow_play = ["127.0.0.2/32"]
allow_publish = ["127.0.0.2"]
"#,
        &[],
        &[],
    );
    let (v4, v6) = (server.v4(), server.v6());
    // Connect: a plain address and a subnet denied.
    for from in [lo(9), "127.0.5.200".parse().unwrap()] {
        let err = connect_from(from, v4, "live").expect_err("refused");
        assert!(err.contains("not allowed to connect"), "{from}: {err}");
    }
    assert!(connect_from(lo(10), v4, "live").is_ok());
    // Publish: the allow-list's subnet and its IPv6 address only.
    for (from, at) in [(lo(1), v4), (lo(2), v4), (V6, v6)] {
        let (mut c, s, (code, why)) = publish_from(
            from,
            at,
            "live",
            &format!("s{from}").replace([':', '.'], ""),
        )
        .unwrap();
        assert_eq!(code, "NetStream.Publish.Start", "{from}: {why}");
        feed(&mut c, s, 0);
    }
    let (_c, _, (code, why)) = publish_from(lo(4), v4, "live", "x").unwrap();
    assert_eq!(code, "NetStream.Publish.Denied", "{why}");
    assert!(why.contains("not allowed to publish"), "{why}");
    // Play: denied for one address, everyone else may.
    let (_c, (code, _)) = play_from(lo(3), v4, "live", "s127001").unwrap();
    assert_eq!(code, "NetStream.Play.Failed");
    let (_c, (code, _)) = play_from(lo(4), v4, "live", "s127001").unwrap();
    assert_eq!(code, "NetStream.Play.Start");
    let (_c, (code, _)) = play_from(V6, v6, "live", "s127001").unwrap();
    assert_eq!(code, "NetStream.Play.Start");
    // The private App's own lists replace the server's for it.
    let (_c, _, (code, why)) = publish_from(lo(1), v4, "private", "p").unwrap();
    assert_eq!(code, "NetStream.Publish.Denied", "{why}");
    let (mut c, s, (code, _)) = publish_from(lo(2), v4, "private", "p").unwrap();
    assert_eq!(code, "NetStream.Publish.Start");
    feed(&mut c, s, 0);
    let (_c, (code, why)) = play_from(lo(4), v4, "private", "p").unwrap();
    assert_eq!(code, "NetStream.Play.Failed", "{why}");
    let (_c, (code, _)) = play_from(lo(2), v4, "private", "p").unwrap();
    assert_eq!(code, "NetStream.Play.Start");
}

#[test]
fn the_hook_accepts_refuses_with_its_text_and_times_out() {
    let endpoint = Endpoint::start(|r| {
        let body = r.json();
        if r.path == "/notify" {
            return Reply::status(204);
        }
        match body["name"].as_str().or(body["app"].as_str()) {
            Some("revoked") => Reply::status(403).body(r#"{"message":"key revoked at 12:00"}"#),
            Some("plain") => Reply::status(401).body("go away"),
            Some("ugly") => Reply::status(500).body("line one\nline two"),
            Some("slow") => Reply::status(200).after(Duration::from_secs(5)),
            Some("deniedapp") => Reply::status(403).body("this App is closed"),
            _ => Reply::status(200),
        }
    });
    let url = endpoint.url("/auth");
    let notify = endpoint.url("/notify");
    let server = Tincan::start(
        &[
            "--hook-url",
            &url,
            "--hook-notify-url",
            &notify,
            "--hook-timeout",
            "1",
        ],
        &[],
    );
    let at = server.v4();
    // Connect: asked, with what the client said.
    let err = connect_from(lo(6), at, "deniedapp").expect_err("refused");
    assert!(err.contains("this App is closed"), "{err}");
    let (mut publisher, stream, (code, why)) =
        publish_from(lo(6), at, "live", "good?token=abc").unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    feed(&mut publisher, stream, 0);
    let requests = endpoint.requests();
    let connect = requests
        .iter()
        .map(|r| r.json())
        .find(|b| b["action"] == "connect" && b["app"] == "live")
        .expect("a connect request");
    assert_eq!(connect["client_ip"], "127.0.0.6");
    assert!(connect["client_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.6:"));
    assert_eq!(connect["tc_url"], "rtmp://127.0.0.1/live");
    assert!(connect["id"].as_u64().is_some());
    assert!(!connect["connection_id"].as_str().unwrap().is_empty());
    let publish = requests
        .iter()
        .map(|r| r.json())
        .find(|b| b["action"] == "publish")
        .expect("a publish request");
    assert_eq!(publish["app"], "live");
    assert_eq!(publish["name"], "good");
    assert_eq!(publish["query"], "token=abc");
    assert_eq!(publish["id"], connect["id"]);
    assert_eq!(publish["client_ip"], "127.0.0.6");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.headers["content-type"], "application/json");
    }

    // Refusals carry the answer's text when it is short and printable.
    let (_c, _, (code, why)) = publish_from(lo(6), at, "live", "revoked").unwrap();
    assert_eq!(code, "NetStream.Publish.Denied");
    assert_eq!(why, "key revoked at 12:00");
    let (_c, (code, why)) = play_from(lo(6), at, "live", "plain").unwrap();
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(why, "go away");
    let (_c, (code, why)) = play_from(lo(6), at, "live", "ugly").unwrap();
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(why, "refused by the auth hook (500)");
    // No answer within --hook-timeout: refused, saying so.
    let t = Instant::now();
    let (_c, (code, why)) = play_from(lo(6), at, "live", "slow").unwrap();
    assert_eq!(code, "NetStream.Play.Failed");
    assert!(why.contains("did not answer within"), "{why}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // An accepted play plays.
    let (player, (code, _)) = play_from(lo(7), at, "live", "good").unwrap();
    assert_eq!(code, "NetStream.Play.Start");

    // FFmpeg's flashVer reaches the hook.
    let ffmpeg = tincan_tests::require_tool("ffmpeg");
    let x = x264(25);
    let args = publish_args(
        &server.url("live", "ffmpeg"),
        25,
        1,
        &x.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let mut ff = Client::spawn("ffmpeg", Command::new(&ffmpeg).args(&args), Output::Ignore);
    let request = endpoint
        .wait_for(STEP, |r| r.path == "/auth" && r.json()["name"] == "ffmpeg")
        .expect("FFmpeg's publish asked");
    let flash = request.json()["flash_ver"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(flash.starts_with("FMLE/3.0"), "{flash:?}");
    ff.wait_exit(STEP);

    // Notifications: stop, unpublish, disconnect, never waited for.
    player.close();
    publisher.close();
    for action in ["stop", "unpublish", "disconnect"] {
        let n = endpoint
            .wait_for(STEP, |r| {
                let b = r.json();
                r.path == "/notify"
                    && b["action"] == action
                    && b["app"] == "live"
                    && (action == "disconnect" || b["name"] == "good")
            })
            .unwrap_or_else(|| panic!("no {action} notification"));
        let b = n.json();
        assert_eq!(b["app"], "live", "{action}");
        assert!(b["client_ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127.0.0.")));
    }
}

#[test]
fn a_stuck_hook_cannot_pile_up_requests() {
    let endpoint = Endpoint::start(|_| Reply::status(200).after(Duration::from_secs(30)));
    let url = endpoint.url("/auth");
    let server = Tincan::start(
        &[
            "--hook-url",
            &url,
            "--hook-actions",
            "play",
            "--hook-timeout",
            "20",
            "--hook-max-pending",
            "2",
        ],
        &[],
    );
    let at = server.v4();
    // Two plays wait on the hook; the third is refused at once.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (mut c, s) = connect_from(lo(8), at, "live").unwrap();
        c.play(s, "cam");
        waiting.push(c);
    }
    assert!(endpoint
        .wait_for(STEP, |_| endpoint.requests().len() >= 2)
        .is_some());
    let t = Instant::now();
    let (_c, (code, why)) = play_from(lo(8), at, "live", "cam").unwrap();
    assert_eq!(code, "NetStream.Play.Failed");
    assert!(why.contains("busy"), "{why}");
    assert!(t.elapsed() < Duration::from_secs(3));
    // Connect and publish were not configured to ask: not held up.
    let (_c, _, (code, _)) = publish_from(lo(8), at, "live", "cam").unwrap();
    assert_eq!(code, "NetStream.Publish.Start");
}
