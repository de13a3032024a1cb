//! The blocking, hand-driven embedding from docs/embedding.md
//! (core/examples/blocking_ingest.rs) works with a real client: FFmpeg
//! publishes into it and the FLV it records decodes.

// Both examples are included whole, and both include their shared FLV
// writer: two copies of one small module in this test is harmless.
#![allow(clippy::duplicate_mod)]

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

#[path = "../../core/examples/embedded_server.rs"]
#[allow(dead_code)]
mod embedded_server;

/// The whole-server example (core/examples/embedded_server.rs) on a port of
/// its own, stopped when dropped.
struct Embedded {
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Embedded {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (path, stop) = (dir.path().to_owned(), stop.clone());
            std::thread::spawn(move || embedded_server::run(listener, &path, stop))
        };
        Embedded {
            addr,
            dir,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn publish(ffmpeg: &std::path::Path, url: &str, seconds: u32) -> Client {
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    Client::spawn(
        "ffmpeg publisher",
        Command::new(ffmpeg).args(publish_args(url, 25, seconds, &video, &[])),
        Output::Ignore,
    )
}

#[test]
fn the_embedded_server_records_an_approved_publish_through_a_tap() {
    let ffmpeg = require_tool("ffmpeg");
    let server = Embedded::start();
    let url = format!(
        "rtmp://{}/live/cam?{}",
        server.addr,
        embedded_server::PUBLISH_KEY
    );
    let mut publisher = publish(&ffmpeg, &url, 2);
    let status = publisher.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "publisher: {status:?}\n{}",
        publisher.stderr()
    );
    std::thread::sleep(Duration::from_millis(200));
    let path = server.dir.path().join("live-cam.flv");
    let player = Client::spawn(
        "ffmpeg decoder",
        Command::new(&ffmpeg).args(play_args(path.to_str().unwrap(), &[])),
        Output::FrameCrc,
    );
    let p = player.wait_for(Duration::from_secs(30), |p| p.eof);
    assert!(
        p.video >= 45,
        "video frames decoded from the recording: {}\n{}",
        p.video,
        player.stderr()
    );
}

#[test]
fn the_embedded_server_refuses_a_publish_its_rule_rejects() {
    let ffmpeg = require_tool("ffmpeg");
    let server = Embedded::start();
    let url = format!("rtmp://{}/live/cam", server.addr);
    let mut publisher = publish(&ffmpeg, &url, 5);
    let status = publisher.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the refused publisher must exit with an error: {status:?}"
    );
    assert!(
        publisher.stderr().contains("publishing needs a key"),
        "FFmpeg does not show the description:\n{}",
        publisher.stderr()
    );
    assert!(!server.dir.path().join("live-cam.flv").exists());
}

#[test]
fn ffmpeg_plays_the_stream_the_embedded_server_generates() {
    let ffmpeg = require_tool("ffmpeg");
    let server = Embedded::start();
    let url = format!(
        "rtmp://{}/{}/{}",
        server.addr,
        embedded_server::TONE.0,
        embedded_server::TONE.1
    );
    // Audio only: it is output stream 0, so the decoder's "video" count
    // below counts its frames.
    let player = Client::spawn(
        "ffmpeg tone player",
        Command::new(&ffmpeg).args([
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-i",
            &url,
            "-map",
            "0:a:0",
            "-t",
            "2",
            "-f",
            "framecrc",
            "-",
        ]),
        Output::FrameCrc,
    );
    let p = player.wait_for(Duration::from_secs(30), |p| p.eof);
    assert!(
        p.video >= 40,
        "PCM frames decoded: {}\n{}",
        p.video,
        player.stderr()
    );
    assert!(player.stderr().contains("pcm_s16le"), "{}", player.stderr());
}
