//! RTWebSocket in a real headless Chromium (Debian's `chromium`, whose
//! WebCodecs decodes and encodes H.264), driven over the DevTools protocol:
//! the reference player (`play-demo.html` with its `tcmedia.js`, from the
//! vendor directory, served over http://127.0.0.1, a secure context) and
//! tincan's own page at `/player` play an FFmpeg-published H.264 stream
//! from the `tincan` binary's `--ws-listen`; tincan's page publishes
//! Chromium's (fake) camera and FFmpeg plays it over RTMP. Frames are
//! counted where the browser's `VideoDecoder` puts them out (and, for
//! tincan's page, by the page's own counters), never from a screenshot.

use std::process::Command;
use std::time::{Duration, Instant};

use tincan_tests::http::poll_json;
use tincan_tests::require_tool;
use tincan_tests::rtws::{node, vendor_dir, Chromium, Lines, COUNT_DECODED_FRAMES};
use tincan_tests::server::{free_port, play_args, publish_args, x264, Client, Output, TestServer};

const TIMEOUT: Duration = Duration::from_secs(40);
const FRAMES: u64 = 50;

/// A server with HTTP and RTWebSocket listeners, and an FFmpeg publisher of
/// 160x120 H.264 + AAC on `live/cam`, live.
fn server_with_publisher() -> (TestServer, u16, Client) {
    let ws = free_port();
    let server = TestServer::start_with_http(&["--ws-listen", &format!("127.0.0.1:{ws}")]);
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let args = publish_args(&server.url("cam"), 25, 90, &video, &["-c:a", "aac"]);
    let publisher = Client::spawn(
        "publisher",
        Command::new(require_tool("ffmpeg")).args(args),
        Output::Ignore,
    );
    let (s, ok) = poll_json(
        &server.http_url("/api/v1/streams/live/cam"),
        Duration::from_secs(20),
        |s| s["frames_in"].as_u64() > Some(0),
    );
    assert!(ok, "{s}\n{}", publisher.describe());
    (server, ws, publisher)
}

#[test]
fn tincans_player_page_decodes_an_ffmpeg_h264_stream_in_chromium() {
    let (server, _ws, _publisher) = server_with_publisher();
    let browser = Chromium::start();
    let url = server.http_url("/player?stream=cam&autoplay=1");
    let poll = format!(
        "({{ done: (window.tincanStats?.framesDecoded ?? 0) >= {FRAMES} \
              && window.tincanStats.audioFramesDecoded > 0, \
            stats: window.tincanStats, decoded: window.__decodedFrames, \
            shown: document.getElementById('frames-decoded')?.textContent, \
            codec: document.getElementById('video-codec')?.textContent, \
            resolution: document.getElementById('resolution')?.textContent }})"
    );
    let (r, console) = browser.run(&url, COUNT_DECODED_FRAMES, &poll, TIMEOUT);
    let why = || format!("{r:#}\nconsole:\n{console}\nserver:\n{}", server.logs());
    assert_eq!(r["done"], true, "{}", why());
    assert!(r["decoded"].as_u64() >= Some(FRAMES), "{}", why());
    assert!(
        r["stats"]["keyframesReceived"].as_u64() >= Some(1),
        "{}",
        why()
    );
    assert_eq!(r["stats"]["width"], 160, "{}", why());
    assert_eq!(r["stats"]["height"], 120, "{}", why());
    assert_eq!(r["stats"]["decodeErrors"], 0, "{}", why());
    // What a person sees on the page.
    assert_eq!(r["resolution"], "160×120", "{}", why());
    assert!(
        r["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("H.264 (avc1.")),
        "{}",
        why()
    );
    assert!(
        r["shown"].as_str().and_then(|s| s.parse::<u64>().ok()) > Some(0),
        "{}",
        why()
    );
}

#[test]
fn the_reference_play_demo_decodes_an_ffmpeg_h264_stream_in_chromium() {
    let (server, ws, _publisher) = server_with_publisher();
    let pages = Lines::spawn(node("serve-dir.js").arg(vendor_dir()));
    let port = pages
        .next_before(Instant::now() + Duration::from_secs(10))
        .unwrap_or_else(|| panic!("serve-dir.js did not start: {}", pages.stderr()));
    let browser = Chromium::start();
    let url = format!("http://127.0.0.1:{}/play-demo.html", port.trim());
    // The demo's own controls, as a person would use them: the server's
    // URL with the stream after '#', Connect, then Play Live once the
    // stream object exists.
    let poll = format!(
        "(() => {{ \
           if (!window.__step && document.readyState === 'complete') {{ \
             window.__step = 1; server_uri.value = 'ws://127.0.0.1:{ws}/live#cam'; \
             populateOverrides(); doConnect(); }} \
           else if (window.__step === 1 && channelStream) {{ window.__step = 2; doPlay('live'); }} \
           return {{ done: (window.__decodedFrames || 0) >= {FRAMES}, step: window.__step, \
                     decoded: window.__decodedFrames, size: window.__frameSize, \
                     canvas: video.width + 'x' + video.height }}; }})()"
    );
    let (r, console) = browser.run(&url, COUNT_DECODED_FRAMES, &poll, TIMEOUT);
    let why = || format!("{r:#}\nconsole:\n{console}\nserver:\n{}", server.logs());
    assert_eq!(r["done"], true, "{}", why());
    assert_eq!(r["size"], "160x120", "{}", why());
}

#[test]
fn ffmpeg_decodes_the_camera_tincans_page_publishes_from_chromium() {
    let ws = free_port();
    let server = TestServer::start_with_http(&["--ws-listen", &format!("127.0.0.1:{ws}")]);
    let browser = Chromium::start();
    let url = server.http_url("/player?stream=webcam&publish=1");
    let api = server.http_url("/api/v1/streams/live/webcam");
    // The page keeps publishing while FFmpeg plays: the browser runs on a
    // thread of its own until the page has sent 400 frames (over 10 s).
    let poll =
        "({ done: (window.tincanStats?.framesSent ?? 0) >= 400, stats: window.tincanStats })"
            .to_owned();
    let browsing =
        std::thread::spawn(move || browser.run(&url, "", &poll, Duration::from_secs(45)));
    let (s, ok) = poll_json(&api, Duration::from_secs(30), |s| {
        s["frames_in"].as_u64() > Some(10)
    });
    assert!(ok, "{s}\nserver:\n{}", server.logs());
    let player = Client::spawn(
        "player",
        Command::new(require_tool("ffmpeg")).args(play_args(&server.url("webcam"), &[])),
        Output::FrameCrc,
    );
    let p = player.wait_for(Duration::from_secs(30), |p| p.video >= FRAMES as usize);
    assert!(
        p.video >= FRAMES as usize,
        "{}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    assert!(player.stderr().contains("h264"), "{}", player.describe());
    drop(player);
    let (r, _) = browsing.join().expect("browser thread");
    assert!(r["stats"]["framesSent"].as_u64() >= Some(FRAMES), "{r:#}");
}
