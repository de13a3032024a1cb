//! Real clients against the real `tincan` binary.
//!
//! Every test starts its own server on its own loopback port, publishes a
//! few seconds of live media with a real encoder, and plays it back with a
//! real client that decodes it: a frame counts only once a decoder turned it
//! into pixels or samples (FFmpeg `framecrc` lines, raw GRAY8 bytes from
//! GStreamer). Where codecs matter the player's own report of the stream is
//! checked too.

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tincan_tests::require_tool;
use tincan_tests::server::{
    modern_ffmpeg, play_args, publish_args, x264, Client, Output, TestServer,
};

/// Longest any single step may take; the happy path takes a few seconds.
const TIMEOUT: Duration = Duration::from_secs(30);
const FPS: u32 = 25;

fn ffmpeg_publisher(
    ffmpeg: &std::path::Path,
    url: &str,
    secs: u32,
    video: &[String],
    audio: &[&str],
) -> Client {
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    Client::spawn(
        "publisher",
        Command::new(ffmpeg).args(publish_args(url, FPS, secs, &video, audio)),
        Output::Ignore,
    )
}

fn ffmpeg_player(ffmpeg: &std::path::Path, input: &str, extra: &[&str]) -> Client {
    Client::spawn(
        "player",
        Command::new(ffmpeg).args(play_args(input, extra)),
        Output::FrameCrc,
    )
}

/// Plays `url` for three seconds of media with `ffmpeg` and returns the
/// finished player.
fn play_three_seconds(ffmpeg: &std::path::Path, url: &str, server: &TestServer) -> Client {
    let mut player = ffmpeg_player(ffmpeg, url, &["-t", "3"]);
    let status = player.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "player did not finish cleanly ({status:?}): {}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    eprintln!("{url}: {:?}", player.progress());
    player
}

/// Asserts that three seconds of play decoded at least 60 video and 60
/// audio frames, and that the player identified the expected codecs.
fn assert_decoded(player: &Client, video_codec: &str, audio_codec: &str) {
    let p = player.progress();
    let err = player.stderr();
    assert!(p.video >= 60, "{}", player.describe());
    assert!(p.audio >= 60, "{}", player.describe());
    assert!(err.contains(&format!("Video: {video_codec}")), "{err}");
    assert!(err.contains(&format!("Audio: {audio_codec}")), "{err}");
}

#[test]
fn ffmpeg_h264_aac_publish_then_ffmpeg_play_decodes() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start();
    let url = server.url("h264aac");
    let _publisher = ffmpeg_publisher(
        &ffmpeg,
        &url,
        15,
        &x264(FPS),
        &["-c:a", "aac", "-b:a", "64k"],
    );

    let player = play_three_seconds(&ffmpeg, &url, &server);

    // Three seconds of output: 75 video frames, ~140 AAC frames at 48 kHz.
    assert_decoded(&player, "h264", "aac");
}

#[test]
fn rtmpdump_plays_stream() {
    let ffmpeg = require_tool("ffmpeg");
    let rtmpdump = require_tool("rtmpdump");
    let server = TestServer::start();
    let url = server.url("dump");
    let _publisher = ffmpeg_publisher(
        &ffmpeg,
        &url,
        15,
        &x264(FPS),
        &["-c:a", "aac", "-b:a", "64k"],
    );

    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("dump.flv");
    let flv = flv.to_str().unwrap();
    // librtmp: --live, stop 3 s into the stream.
    let mut dump = Client::spawn(
        "rtmpdump",
        Command::new(rtmpdump).args(["-r", &url, "--live", "-B", "3", "-o", flv]),
        Output::Ignore,
    );
    let status = dump.wait_exit(TIMEOUT);
    assert!(
        status.is_some(),
        "rtmpdump did not stop: {}\nserver:\n{}",
        dump.describe(),
        server.logs()
    );

    let mut decoder = ffmpeg_player(&ffmpeg, flv, &[]);
    assert!(
        decoder.wait_exit(TIMEOUT).is_some(),
        "{}",
        decoder.describe()
    );
    let p = decoder.progress();
    let err = decoder.stderr();
    assert!(
        p.video >= 50,
        "{}\nrtmpdump: {}",
        decoder.describe(),
        dump.describe()
    );
    assert!(p.audio >= 50, "{}", decoder.describe());
    assert!(err.contains("Video: h264"), "{err}");
    assert!(err.contains("Audio: aac"), "{err}");
}

#[test]
fn gstreamer_rtmp2sink_publishes_and_rtmp2src_plays() {
    let gst = require_tool("gst-launch-1.0");
    let server = TestServer::start();
    let url = server.url("gst");
    let publish = format!(
        "videotestsrc is-live=true num-buffers=375 \
         ! video/x-raw,width=160,height=120,framerate={FPS}/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} \
         ! h264parse ! flvmux name=mux streamable=true ! rtmp2sink location={url} \
         audiotestsrc is-live=true ! audioconvert ! voaacenc ! aacparse ! mux."
    );
    let _publisher = Client::spawn(
        "gst publisher",
        Command::new(&gst)
            .arg("-q")
            .args(publish.split_whitespace()),
        Output::Ignore,
    );
    let play = format!(
        "rtmp2src location={url} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! videoconvert \
         ! video/x-raw,format=GRAY8,width=160,height=120 ! fdsink fd=1 \
         d.audio ! queue ! aacparse ! faad ! fakesink"
    );
    let player = Client::spawn(
        "gst player",
        Command::new(&gst).arg("-q").args(play.split_whitespace()),
        Output::Raw {
            frame_size: 160 * 120,
        },
    );

    let p = player.wait_for(TIMEOUT, |p| p.video >= 75);
    assert!(
        p.video >= 75,
        "{}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
}

#[test]
fn gstreamer_publisher_finishes_its_stream_cleanly() {
    let gst = require_tool("gst-launch-1.0");
    let server = TestServer::start();
    let url = server.url("gstend");
    // One second of video, then EOS: rtmp2sink sends FCUnpublish and a
    // deleteStream naming the stream (a string, not the stream id) and
    // fails the pipeline if the server drops the connection over it.
    let publish = format!(
        "videotestsrc is-live=true num-buffers={FPS} \
         ! video/x-raw,width=160,height=120,framerate={FPS}/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast \
         ! h264parse ! flvmux streamable=true ! rtmp2sink location={url}"
    );
    let mut publisher = Client::spawn(
        "gst publisher",
        Command::new(&gst)
            .arg("-q")
            .args(publish.split_whitespace()),
        Output::Ignore,
    );
    let status = publisher.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}\nserver:\n{}",
        publisher.describe(),
        server.logs()
    );
}

#[test]
fn enhanced_rtmp_hevc_opus_roundtrip() {
    let ffmpeg = modern_ffmpeg();
    let server = TestServer::start();
    let url = server.url("hevc");
    let hevc = [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-x265-params",
        "keyint=25:min-keyint=25:scenecut=0:log-level=error",
    ]
    .map(String::from);
    let _publisher = ffmpeg_publisher(
        &ffmpeg,
        &url,
        15,
        &hevc,
        &["-c:a", "libopus", "-b:a", "48k"],
    );

    let player = play_three_seconds(&ffmpeg, &url, &server);

    // Opus frames are 20 ms: ~150 in three seconds.
    assert_decoded(&player, "hevc", "opus");
}

#[test]
fn enhanced_rtmp_av1_roundtrip() {
    let ffmpeg = modern_ffmpeg();
    let server = TestServer::start();
    let url = server.url("av1");
    let av1 = [
        "-c:v",
        "libsvtav1",
        "-preset",
        "12",
        "-g",
        "25",
        // Low-delay prediction, as a live encoder would use.
        "-svtav1-params",
        "pred-struct=1",
        "-pix_fmt",
        "yuv420p",
    ]
    .map(String::from);
    let _publisher = ffmpeg_publisher(&ffmpeg, &url, 15, &av1, &["-c:a", "aac", "-b:a", "64k"]);

    let player = play_three_seconds(&ffmpeg, &url, &server);

    assert_decoded(&player, "av1", "aac");
}

#[test]
fn late_joiner_decodes_first_frame_before_next_keyframe() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start();
    let url = server.url("longgop");
    // One keyframe every 10 s.
    let _publisher = ffmpeg_publisher(&ffmpeg, &url, 20, &x264(10 * FPS), &["-c:a", "aac"]);
    sleep(Duration::from_secs(3));

    let player = ffmpeg_player(&ffmpeg, &url, &["-t", "2"]);
    let p = player.wait_for(TIMEOUT, |p| p.first_video.is_some());
    let first = p
        .first_video
        .map(|t| t.duration_since(player.started))
        .unwrap_or_else(|| {
            panic!(
                "no frame: {}\nserver:\n{}",
                player.describe(),
                server.logs()
            )
        });
    eprintln!("late joiner: first frame {first:?} after connecting");
    // The next keyframe is ~7 s away: a first frame this early came from
    // the cached GOP.
    assert!(
        first < Duration::from_secs(3),
        "first frame after {first:?}: {}",
        player.describe()
    );
}

#[test]
fn player_survives_publisher_restart() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start();
    let url = server.url("restart");
    let audio = ["-c:a", "aac"];
    let mut first = ffmpeg_publisher(&ffmpeg, &url, 30, &x264(FPS), &audio);
    let mut player = ffmpeg_player(&ffmpeg, &url, &[]);

    let p = player.wait_for(TIMEOUT, |p| p.video >= 2 * FPS as usize);
    assert!(
        p.video >= 2 * FPS as usize,
        "{}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    let killed_at = Instant::now();
    first.kill();
    // Everything the first publisher produced has reached the player by now.
    sleep(Duration::from_millis(1000));
    let before = player.progress().video;

    let _second = ffmpeg_publisher(&ffmpeg, &url, 30, &x264(FPS), &audio);
    // Three more seconds of the second publisher's video.
    let target = before + 3 * FPS as usize;
    let p = player.wait_for(TIMEOUT, |p| p.video >= target);
    assert!(
        p.video >= target,
        "player stopped at {} frames ({} before the restart, {:?} after the kill): {}\nserver:\n{}",
        p.video,
        before,
        killed_at.elapsed(),
        player.describe(),
        server.logs()
    );
    assert!(player.is_running(), "{}", player.describe());
    eprintln!(
        "restart: {before} frames before, {} after {:?}",
        p.video,
        killed_at.elapsed()
    );
}

#[test]
fn server_exits_cleanly_on_sigint_with_a_player_connected() {
    let ffmpeg = require_tool("ffmpeg");
    let mut server = TestServer::start();
    let url = server.url("bye");
    let _publisher = ffmpeg_publisher(&ffmpeg, &url, 15, &x264(FPS), &["-c:a", "aac"]);
    let player = ffmpeg_player(&ffmpeg, &url, &[]);
    let p = player.wait_for(TIMEOUT, |p| p.video >= 10);
    assert!(p.video >= 10, "{}", player.describe());

    let pid = server.child().id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = server.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 5 s after SIGINT:\n{}",
            server.logs()
        );
        sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", server.logs());
}
