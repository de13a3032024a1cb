//! RTWebSocket against a third-party peer: the reference RTWebSocket/TC
//! client (`rtws.js`, `tcconn.js`, MIT, from the vendor directory) in
//! Node, connected to the real `tincan` binary's `--ws-listen`, with
//! FFmpeg on the RTMP side. Both directions: FFmpeg publishes over RTMP
//! and the reference client plays over RTWebSocket; the reference client
//! publishes over RTWebSocket and FFmpeg plays over RTMP.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tincan_tests::http::poll_json;
use tincan_tests::require_tool;
use tincan_tests::rtws::{json_lines_until, node, vendor_dir, Lines};
use tincan_tests::server::{free_port, play_args, publish_args, x264, Client, Output, TestServer};

const TIMEOUT: Duration = Duration::from_secs(30);
/// The publishers' frame rate: 40 ms between video frames.
const FPS: u32 = 25;

fn ws_server() -> (TestServer, String) {
    let ws = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start_with_http(&["--ws-listen", &ws]);
    (server, format!("ws://{ws}/live"))
}

#[test]
fn the_reference_client_over_rtws_gets_every_frame_an_rtmp_publisher_sends_in_order() {
    let (server, ws) = ws_server();
    let video = x264(FPS);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let args = publish_args(&server.url("cam"), FPS, 60, &video, &["-c:a", "aac"]);
    let publisher = Client::spawn(
        "publisher",
        Command::new(require_tool("ffmpeg")).args(args),
        Output::Ignore,
    );
    let (s, ok) = poll_json(&server.http_url("/api/v1/streams/live/cam"), TIMEOUT, |s| {
        s["frames_in"].as_u64() > Some(0)
    });
    assert!(ok, "{s}\n{}", publisher.describe());

    let vendor = vendor_dir();
    let frames = 100;
    let player = Lines::spawn(node("tc-client.js").arg(&vendor).args([
        "play",
        &ws,
        "cam",
        &frames.to_string(),
        "25",
    ]));
    let lines = json_lines_until(&player, TIMEOUT, |v| v["kind"] == "closed");
    let describe = || {
        format!(
            "{lines:#?}\nclient stderr:\n{}\nserver:\n{}",
            player.stderr(),
            server.logs()
        )
    };
    assert!(
        lines.iter().any(|v| v["code"] == "NetStream.Play.Start"),
        "{}",
        describe()
    );
    let video: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "video").collect();
    let coded: Vec<&Value> = video
        .iter()
        .copied()
        .filter(|v| v["coded"] == true)
        .collect();
    assert!(coded.len() >= frames, "{}", describe());
    // The decoder's configuration comes before any frame, and the first
    // frame is a keyframe: a player can start decoding at once.
    assert_eq!(video[0]["config"], true, "{}", describe());
    assert_eq!(coded[0]["key"], true, "{}", describe());
    assert!(lines
        .iter()
        .any(|v| v["kind"] == "audio" && v["config"] == true));
    // Every frame, in order: timestamps step by one frame's 40 ms.
    for pair in coded.windows(2) {
        let (a, b) = (pair[0]["timestamp"].as_u64(), pair[1]["timestamp"].as_u64());
        let step = b.zip(a).map(|(b, a)| b as i64 - a as i64);
        assert!(
            matches!(step, Some(39..=41)),
            "frame missing or out of order between {} and {}\n{}",
            pair[0],
            pair[1],
            describe()
        );
    }
    // A keyframe every second (the publisher's GOP), all of them arriving.
    let keys = coded.iter().filter(|v| v["key"] == true).count();
    assert!(
        keys >= frames / FPS as usize,
        "{keys} keyframes\n{}",
        describe()
    );
}

#[test]
fn an_rtmp_player_decodes_what_the_reference_client_publishes_over_rtws() {
    let (server, ws) = ws_server();
    // The file the reference client publishes: 12 s of H.264 and AAC.
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("cam.flv");
    let video = x264(FPS);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let mut args = publish_args(flv.to_str().unwrap(), FPS, 12, &video, &["-c:a", "aac"]);
    args.retain(|a| a != "-re");
    let made = Command::new(require_tool("ffmpeg"))
        .args(&args)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg could not make {}", flv.display());

    let publisher = Lines::spawn(
        node("tc-client.js")
            .arg(vendor_dir())
            .args(["publish", &ws, "cam"])
            .arg(&flv),
    );
    let (s, ok) = poll_json(&server.http_url("/api/v1/streams/live/cam"), TIMEOUT, |s| {
        s["frames_in"].as_u64() > Some(0)
    });
    assert!(
        ok,
        "{s}\nclient stderr:\n{}\nserver:\n{}",
        publisher.stderr(),
        server.logs()
    );

    let player = Client::spawn(
        "player",
        Command::new(require_tool("ffmpeg")).args(play_args(&server.url("cam"), &[])),
        Output::FrameCrc,
    );
    // At 25 fps, 100 frames is 4 s of the 12 published.
    let p = player.wait_for(TIMEOUT, |p| p.video >= 100 && p.audio >= 50);
    assert!(
        p.video >= 100 && p.audio >= 50,
        "{}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    assert!(player.stderr().contains("h264"), "{}", player.describe());
}
