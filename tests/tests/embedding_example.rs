//! The blocking, hand-driven embedding from docs/embedding.md
//! (core/examples/blocking_ingest.rs) works with a real client: FFmpeg
//! publishes into it and the FLV it records decodes.

#[path = "../../core/examples/blocking_ingest.rs"]
#[allow(dead_code)]
mod blocking_ingest;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use tincan_tests::require_tool;
use tincan_tests::server::{play_args, publish_args, x264, Client, Output};

#[test]
fn ffmpeg_publish_into_the_blocking_example_records_decodable_flv() {
    let ffmpeg = require_tool("ffmpeg");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let mut flv = Vec::new();
        let tags = blocking_ingest::serve_connection(socket, &mut flv).unwrap();
        (tags, flv)
    });

    let url = format!("rtmp://{addr}/live/record");
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let mut publisher = Client::spawn(
        "ffmpeg publisher",
        Command::new(&ffmpeg).args(publish_args(&url, 25, 2, &video, &["-c:a", "aac"])),
        Output::Ignore,
    );
    let status = publisher.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "publisher: {status:?}\n{}",
        publisher.stderr()
    );
    let (tags, flv) = server.join().unwrap();
    assert!(tags > 50, "only {tags} tags recorded");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.flv");
    std::fs::write(&path, &flv).unwrap();
    let player = Client::spawn(
        "ffmpeg decoder",
        Command::new(&ffmpeg).args(play_args(path.to_str().unwrap(), &[])),
        Output::FrameCrc,
    );
    let p = player.wait_for(Duration::from_secs(30), |p| p.eof);
    // 2 s at 25 fps, and 2 s of 48 kHz AAC (1024 samples per frame).
    assert!(
        p.video >= 45,
        "video frames decoded: {}\n{}",
        p.video,
        player.stderr()
    );
    assert!(
        p.audio >= 80,
        "audio frames decoded: {}\n{}",
        p.audio,
        player.stderr()
    );
}
