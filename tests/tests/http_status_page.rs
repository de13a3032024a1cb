//! The status page at `/`, in a real headless Chromium (Debian's
//! `chromium`, installed by scripts/test) started by the test: while an
//! FFmpeg publisher is live, the rendered page lists the stream with its
//! codec and resolution, and its viewer count follows a player joining.
//! Screenshots (laptop and phone sizes) are left in `<target>/<profile>/`
//! for a person to look at.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tincan_tests::http::poll_json;
use tincan_tests::require_tool;
use tincan_tests::server::{
    play_args, profile_dir, publish_args, x264, Client, Output, TestServer,
};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's common flags: headless, no sandbox (tests may run as root),
/// a throwaway profile, and a virtual time budget so the page's polling
/// has run before the DOM is dumped or the screenshot taken.
fn chromium(profile: &Path) -> Command {
    let mut cmd = Command::new(require_tool("chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The page's DOM after its scripts ran.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("browser profile");
    let out = chromium(profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(url: &str, size: &str, file: &Path) {
    let profile = tempfile::tempdir().expect("browser profile");
    let out = chromium(profile.path())
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && file.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stream card's opening tag in a dumped DOM.
fn card<'a>(dom: &'a str, stream: &str) -> &'a str {
    let at = dom
        .find(&format!("data-stream=\"{stream}\""))
        .unwrap_or_else(|| panic!("no card for {stream} in:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

#[test]
fn the_status_page_shows_a_live_stream_and_its_viewers_in_chromium() {
    let server = TestServer::start_with_http(&[]);
    let ffmpeg = require_tool("ffmpeg");
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let args = publish_args(&server.url("cam"), 25, 60, &video, &["-c:a", "aac"]);
    let publisher = Client::spawn(
        "publisher",
        Command::new(&ffmpeg).args(args),
        Output::Ignore,
    );
    let stream_url = server.http_url("/api/v1/streams/live/cam");
    let (s, ok) = poll_json(&stream_url, TIMEOUT, |s| {
        s["media"]["video"][0]["width"].is_u64() && s["bitrate_in_bps"].as_u64() > Some(0)
    });
    assert!(ok, "{s}\n{}", publisher.describe());

    let page = server.http_url("/");
    let dom = dump_dom(&page);
    let tag = card(&dom, "live/cam");
    assert!(tag.contains("data-codec=\"H.264\""), "{tag}");
    assert!(tag.contains("data-resolution=\"160x120\""), "{tag}");
    assert!(tag.contains("data-viewers=\"0\""), "{tag}");
    // What a person reads, and the URLs the copy buttons copy.
    assert!(dom.contains("H.264 · 160×120 · 25 fps"), "{dom}");
    let rtmp = format!("rtmp://127.0.0.1:{}/live/cam", server.port());
    assert!(dom.contains(&rtmp), "{dom}");
    assert!(dom.contains("AAC · 48 kHz · mono"), "{dom}");

    let player = Client::spawn(
        "player",
        Command::new(&ffmpeg).args(play_args(&server.url("cam"), &[])),
        Output::FrameCrc,
    );
    let (s, ok) = poll_json(&stream_url, TIMEOUT, |s| s["subscribers"] == 1);
    assert!(ok, "{s}\n{}", player.describe());
    player.wait_for(TIMEOUT, |p| p.video >= 10);
    let dom = dump_dom(&page);
    let tag = card(&dom, "live/cam");
    assert!(tag.contains("data-viewers=\"1\""), "{tag}");
    assert!(
        dom.contains("data-connection="),
        "connections table empty: {dom}"
    );

    // For a person to look at: a laptop and a phone.
    let dir = profile_dir();
    screenshot(&page, "1280,860", &dir.join("tincan-status-page.png"));
    screenshot(&page, "390,900", &dir.join("tincan-status-page-phone.png"));
}
