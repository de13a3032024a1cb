//! Refused plays and publishes as real clients see them, against the real
//! `tincan` binary.
//!
//! A refusal is only useful if the client gives up and tells its user why:
//! a player that waits forever on a stream it was refused looks, to an
//! operator, like a server that hangs. So each test checks that the refused
//! client exits on its own, non-zero, well within a bound, with the
//! server's description on stderr, and that the refusal harmed nobody else
//! (the live publisher keeps publishing and can still be played).
//!
//! What the clients print (Debian's FFmpeg 5.1, rtmpdump 2.4):
//!
//! | refusal | FFmpeg | rtmpdump |
//! | --- | --- | --- |
//! | `NetStream.Play.Failed` "too many streams" | `Server error: too many streams`, then `<url>: Operation not permitted`; exit 1 | `ERROR: Closing connection: NetStream.Play.Failed`; exit 1 (the description only with `-V`) |
//! | `NetStream.Publish.BadName` "stream name is already being published" | `Server error: stream name is already being published`, then `<url>: Operation not permitted`; exit 1 | (cannot publish) |

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tincan_tests::require_tool;
use tincan_tests::server::{publish_args, x264, Client, Output, TestServer};

/// How long a refused client may take to give up. FFmpeg and rtmpdump exit
/// within a fraction of a second of the status; the bound only has to be
/// far below "hangs" on a loaded 2-core machine.
const REFUSED_EXIT: Duration = Duration::from_secs(15);
/// Longest a player of the live stream may take to decode its frames.
const PLAY: Duration = Duration::from_secs(30);
const FPS: u32 = 25;

/// A live FFmpeg publisher of `name` for up to a minute (killed when the
/// test ends).
fn publisher(ffmpeg: &Path, server: &TestServer, name: &str) -> Client {
    let video = x264(FPS);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    Client::spawn(
        name,
        Command::new(ffmpeg).args(publish_args(&server.url(name), FPS, 60, &video, &[])),
        Output::Ignore,
    )
}

/// FFmpeg playing `url` until it decoded `frames` video frames, to nowhere.
fn frames_player(ffmpeg: &Path, url: &str, frames: u32) -> Client {
    Client::spawn(
        "player",
        Command::new(ffmpeg).args([
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "warning",
            // The stream has no audio: without a bound FFmpeg probes 5 s
            // for a track that never comes. Fast start hands over the
            // current GOP, so 1 s finds the video at once.
            "-analyzeduration",
            "1000000",
            "-i",
            url,
            "-frames:v",
            &frames.to_string(),
            "-f",
            "null",
            "-",
        ]),
        Output::Ignore,
    )
}

/// Asserts that FFmpeg decodes 10 frames of `name`: the stream is live and
/// served.
fn assert_plays(ffmpeg: &Path, server: &TestServer, name: &str) {
    let mut player = frames_player(ffmpeg, &server.url(name), 10);
    let status = player.wait_exit(PLAY);
    assert!(
        status.is_some_and(|s| s.success()),
        "playing {name} failed ({status:?}): {}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
}

/// Waits for a refused client to exit and asserts it failed, in time, with
/// `said` on stderr. Returns how long it took.
fn assert_refused(client: &mut Client, said: &str, server: &TestServer) -> Duration {
    let status = client.wait_exit(REFUSED_EXIT);
    let took = client.started.elapsed();
    // A client still running here is killed when `client` drops.
    assert!(
        status.is_some(),
        "refused client still running after {REFUSED_EXIT:?}: {}\nserver:\n{}",
        client.describe(),
        server.logs()
    );
    assert!(
        status.is_some_and(|s| !s.success()),
        "refused client exited successfully: {}",
        client.describe()
    );
    let err = client.stderr();
    assert!(
        err.contains(said),
        "refused client did not say {said:?}: {}\nserver:\n{}",
        client.describe(),
        server.logs()
    );
    let tail: Vec<&str> = err.lines().rev().take(3).collect();
    eprintln!("refused in {took:?} ({status:?}), stderr ends: {tail:?}");
    took
}

#[test]
fn ffmpeg_player_past_the_stream_limit_exits_with_the_reason() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start_with(&["--max-live-streams", "1"]);
    let mut live = publisher(&ffmpeg, &server, "live1");
    // The one stream the server may hold is live (and playing it works:
    // joining an existing stream is never refused).
    assert_plays(&ffmpeg, &server, "live1");

    let mut refused = frames_player(&ffmpeg, &server.url("other"), 10);
    assert_refused(&mut refused, "too many streams", &server);

    assert!(live.is_running(), "publisher stopped: {}", live.describe());
    assert_plays(&ffmpeg, &server, "live1");
}

#[test]
fn rtmpdump_past_the_stream_limit_exits_with_play_failed() {
    let ffmpeg = require_tool("ffmpeg");
    let rtmpdump = require_tool("rtmpdump");
    let server = TestServer::start_with(&["--max-live-streams", "1"]);
    let _live = publisher(&ffmpeg, &server, "live1");
    assert_plays(&ffmpeg, &server, "live1");

    let url = server.url("other");
    // What a user sees: librtmp names the status code and gives up.
    let mut dump = Client::spawn(
        "rtmpdump",
        Command::new(&rtmpdump).args(["-r", &url, "--live", "-o", "/dev/null"]),
        Output::Ignore,
    );
    assert_refused(&mut dump, "NetStream.Play.Failed", &server);
    // With -V (debug) it also prints the description it received.
    let mut verbose = Client::spawn(
        "rtmpdump -V",
        Command::new(&rtmpdump).args(["-V", "-r", &url, "--live", "-o", "/dev/null"]),
        Output::Ignore,
    );
    assert_refused(&mut verbose, "too many streams", &server);
}

#[test]
fn second_ffmpeg_publisher_exits_with_the_reason_and_the_first_keeps_publishing() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start();
    let mut first = publisher(&ffmpeg, &server, "taken");
    assert_plays(&ffmpeg, &server, "taken");

    let mut second = publisher(&ffmpeg, &server, "taken");
    assert_refused(
        &mut second,
        "stream name is already being published",
        &server,
    );

    assert!(
        first.is_running(),
        "first publisher stopped: {}\nserver:\n{}",
        first.describe(),
        server.logs()
    );
    assert!(
        !first.stderr().contains("error"),
        "first publisher complained: {}",
        first.describe()
    );
    // Still the first publisher's media: it is the only one left.
    assert_plays(&ffmpeg, &server, "taken");
}
