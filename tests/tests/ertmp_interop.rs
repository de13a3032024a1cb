//! Enhanced RTMP v2 multitrack with real clients against the real `tincan`
//! binary.
//!
//! FFmpeg 8+ (the PyPI build is 9.x) publishes a second video stream of an
//! FLV output as multitrack: track 0 as plain legacy AVC tags, track 1 as
//! Enhanced `OneTrack` multitrack messages. Neither FFmpeg 9 nor 5.1
//! announces anything in `connect` when it plays (no `capsEx`, no
//! `fourCcList`), so both get the default track as single-track packets;
//! FFmpeg 9 demuxes multitrack, so it asks for every track with
//! `?videoTrack=all` and decodes both. (A player that announces `capsEx`
//! Multitrack is covered with the core's client in `ertmp_sim.rs`.)

use std::process::Command;
use std::time::Duration;

use tincan_tests::require_tool;
use tincan_tests::server::{modern_ffmpeg, play_args, Client, Output, TestServer};

const TIMEOUT: Duration = Duration::from_secs(30);

/// FFmpeg 9 publishing two H.264 video tracks (160x120 as stream 0, 80x60
/// as stream 1) and AAC for `secs` seconds.
fn two_track_publisher(url: &str, secs: u32) -> Client {
    let args = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=80x60:rate=25",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs.to_string(),
        "-map",
        "0:v",
        "-map",
        "1:v",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-x264-params",
        "keyint=25:min-keyint=25:scenecut=0",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "flv",
        url,
    ]
    .map(String::from);
    Client::spawn(
        "publisher",
        Command::new(modern_ffmpeg()).args(args),
        Output::Ignore,
    )
}

/// Runs `player` to its end and checks it finished cleanly.
fn finish(mut player: Client, server: &TestServer) -> Client {
    let status = player.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "player did not finish cleanly ({status:?}): {}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    player
}

/// The input stream lines FFmpeg printed for the played stream.
fn input_streams(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("Input #0"))
        .take_while(|l| !l.starts_with("Stream mapping") && !l.starts_with("Output #0"))
        .filter(|l| l.trim_start().starts_with("Stream #0:"))
        .collect()
}

#[test]
fn ffmpeg9_publishes_two_tracks_and_legacy_ffmpeg_decodes_the_default_one() {
    let legacy = require_tool("ffmpeg");
    let server = TestServer::start();
    let url = server.url("multi");
    let _publisher = two_track_publisher(&url, 20);

    let player = Client::spawn(
        "ffmpeg 5.1 player",
        Command::new(&legacy).args(play_args(&url, &["-t", "3"])),
        Output::FrameCrc,
    );
    let player = finish(player, &server);
    let p = player.progress();
    let err = player.stderr();
    assert!(p.video >= 60 && p.audio >= 60, "{}", player.describe());
    let streams = input_streams(&err);
    let video: Vec<&&str> = streams.iter().filter(|l| l.contains("Video:")).collect();
    // One video stream, and it is track 0 (160x120), as legacy AVC.
    assert_eq!(video.len(), 1, "{streams:?}");
    assert!(
        video[0].contains("h264") && video[0].contains("160x120"),
        "{streams:?}"
    );
    assert!(
        !err.contains("more than one video stream"),
        "a legacy player must never see multitrack: {err}"
    );
}

#[test]
fn ffmpeg9_player_gets_the_default_track_or_every_track_when_it_asks() {
    let ffmpeg = modern_ffmpeg();
    let server = TestServer::start();
    let url = server.url("multi");
    let _publisher = two_track_publisher(&url, 20);

    // Every track: both video tracks decode (80x60 is FFmpeg's stream 1).
    let all = format!("{url}?videoTrack=all&audioTrack=all");
    let args = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-i",
        &all,
        "-map",
        "0:v:0",
        "-map",
        "0:v:1",
        "-t",
        "3",
        "-f",
        "framecrc",
        "-",
    ];
    let player = Client::spawn(
        "ffmpeg 9 multitrack player",
        Command::new(&ffmpeg).args(args),
        Output::FrameCrc,
    );
    let player = finish(player, &server);
    let p = player.progress();
    // Output stream 1 here is the second video track, counted as "audio".
    assert!(p.video >= 60 && p.audio >= 60, "{}", player.describe());
    let err = player.stderr();
    let streams = input_streams(&err);
    assert!(
        streams.iter().any(|l| l.contains("160x120"))
            && streams.iter().any(|l| l.contains("80x60")),
        "{streams:?}"
    );

    // Track 1 alone, as a single-track stream.
    let one = format!("{url}?videoTrack=1");
    let player = Client::spawn(
        "ffmpeg 9 track-1 player",
        Command::new(&ffmpeg).args(play_args(&one, &["-t", "3"])),
        Output::FrameCrc,
    );
    let player = finish(player, &server);
    let p = player.progress();
    assert!(p.video >= 60 && p.audio >= 60, "{}", player.describe());
    let err = player.stderr();
    let streams = input_streams(&err);
    let video: Vec<&&str> = streams.iter().filter(|l| l.contains("Video:")).collect();
    assert_eq!(video.len(), 1, "{streams:?}");
    assert!(video[0].contains("80x60"), "{streams:?}");
}
