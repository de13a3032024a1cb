//! Pull edges with the real binary: an origin and edges that pull from
//! it for their players (FFmpeg publishing and playing, frames decoded),
//! one pull per edge however many players, `NetStream.Play.StreamNotFound`
//! for a stream no origin has, and failover to the next origin without
//! the edge's players reconnecting.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tincan_tests::http::{get_json, poll_json};
use tincan_tests::relay::ConfigFile;
use tincan_tests::require_tool;
use tincan_tests::server::{play_args, publish_args, x264, Client, Output, TestServer};
use tincan_tests::tc_client::{status_code, TcClient};

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

/// An edge pulling App `live` from `origins` (RTMP URLs of App `live`).
fn edge_config(origins: &[String], extra: &str) -> ConfigFile {
    let list: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
    ConfigFile::new(&format!(
        "[relay]\n{extra}\n[[relay.pull]]\napp = \"live\"\norigins = [{}]\n",
        list.join(", ")
    ))
}

fn origin_url(origin: &TestServer) -> String {
    format!("rtmp://127.0.0.1:{}/live", origin.port())
}

fn pulls(v: &Value) -> Vec<Value> {
    v["pull"].as_array().cloned().unwrap_or_default()
}

#[test]
fn edges_pull_once_from_the_origin_for_all_their_players() {
    let ffmpeg = require_tool("ffmpeg");
    let origin = TestServer::start_with_http(&[]);
    let config = edge_config(&[origin_url(&origin)], "");
    let edge1 = TestServer::start_with_http(&["--config", config.arg()]);
    let edge2 = TestServer::start_with_http(&["--config", config.arg()]);
    let _publisher = publisher(&ffmpeg, &origin.url("cam"), 20);
    let (v, up) = poll_json(&origin.http_url("/api/v1/streams"), TIMEOUT, |v| {
        v["streams"][0]["publisher"].is_object()
    });
    assert!(up, "{v:#}");

    let mut players = vec![
        player(&ffmpeg, &edge1.url("cam"), 3),
        player(&ffmpeg, &edge1.url("cam"), 3),
        player(&ffmpeg, &edge2.url("cam"), 3),
    ];
    // While they play: each edge holds one pull, the origin one player
    // per edge.
    let (v, shared) = poll_json(&edge1.http_url("/api/v1/relays"), TIMEOUT, |v| {
        pulls(v).len() == 1 && pulls(v)[0]["players"] == 2 && pulls(v)[0]["state"] == "live"
    });
    assert!(shared, "{v:#}\n{}", edge1.logs());
    assert_eq!(pulls(&v)[0]["attempts"], 1, "{v:#}");
    // Edge 2's pull may still be connecting: wait for it, then make sure
    // three players never made more than one pull per edge.
    let (o, both) = poll_json(&origin.http_url("/api/v1/streams/live/cam"), TIMEOUT, |o| {
        o["subscribers"] == 2
    });
    assert!(both, "{o:#}");
    let o = get_json(&origin.http_url("/api/v1/streams/live/cam"));
    assert_eq!(o["subscribers"], 2, "{o:#}");

    for p in &mut players {
        let status = p.wait_exit(TIMEOUT);
        let progress = p.progress();
        assert!(
            status.is_some_and(|s| s.success()) && progress.video >= 40,
            "{progress:?}\n{}\nedge1:\n{}",
            p.describe(),
            edge1.logs()
        );
    }
}

#[test]
fn a_stream_no_origin_has_is_not_found_within_the_bound() {
    let origin = TestServer::start();
    let config = edge_config(
        &[origin_url(&origin)],
        "not_found_secs = 2\norigin_timeout_secs = 0.5",
    );
    let edge = TestServer::start_with(&["--config", config.arg()]);
    let mut client = TcClient::connect(edge.port(), TIMEOUT).expect("connect to the edge");
    let stream = client.connect_and_create_stream("live", TIMEOUT);
    client.play(stream, "nobody");
    let found = client.wait_for(Duration::from_secs(8), |m| {
        status_code(m) == Some("NetStream.Play.StreamNotFound")
    });
    assert!(found, "{:?}\nedge:\n{}", client.received(), edge.logs());
}

#[test]
fn edge_players_continue_when_the_stream_moves_to_the_next_origin() {
    let ffmpeg = require_tool("ffmpeg");
    let mut first = TestServer::start();
    let second = TestServer::start();
    let config = edge_config(&[origin_url(&first), origin_url(&second)], "");
    let edge = TestServer::start_with_http(&["--config", config.arg()]);
    let mut publisher1 = publisher(&ffmpeg, &first.url("cam"), 30);
    let mut p = player(&ffmpeg, &edge.url("cam"), 8);
    let before = p.wait_for(TIMEOUT, |p| p.video >= 25);
    assert!(before.video >= 25, "{}\n{}", p.describe(), edge.logs());

    // Origin 1 dies with its publisher; the publisher moves to origin 2.
    publisher1.kill();
    first.child().kill().expect("kill origin 1");
    let _publisher2 = publisher(&ffmpeg, &second.url("cam"), 30);

    let status = p.wait_exit(TIMEOUT);
    let after = p.progress();
    assert!(
        status.is_some_and(|s| s.success()) && after.video >= before.video + 100,
        "before {before:?}, after {after:?}\n{}\nedge:\n{}",
        p.describe(),
        edge.logs()
    );
    let v = get_json(&edge.http_url("/api/v1/relays"));
    assert!(pulls(&v)[0]["failovers"].as_u64() >= Some(1), "{v:#}");
}
