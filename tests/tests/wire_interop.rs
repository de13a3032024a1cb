//! Real clients against the core's wire layers alone.
//!
//! Each test starts a real client against a bare listener that runs only
//! `ServerHandshake`, `ChunkDecoder` and `Message::decode`, and waits for the
//! client's `connect`. A client that got that far accepted our S0/S1/S2
//! (FFmpeg verifies the digest-signed S1 and S2 when it plays; GStreamer
//! fails unless S2 echoes its C1) and sent its first commands through chunks
//! our decoder reassembled (every client's connect is longer than the 128-byte
//! initial chunk size, so it arrives as continuation chunks).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use tincan_core::handshake::HandshakeKind;
use tincan_core::message::Value;
use tincan_tests::wire::{accept_until_connect, ConnectSeen};
use tincan_tests::{require_tool, ChildGuard};

const TIMEOUT: Duration = Duration::from_secs(20);

fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!(
        "rtmp://127.0.0.1:{}/live/cam",
        l.local_addr().unwrap().port()
    );
    (l, url)
}

fn run(cmd: &mut Command, listener: &TcpListener) -> ConnectSeen {
    let _child = ChildGuard::spawn(cmd.stdin(Stdio::null()).stdout(Stdio::null()));
    accept_until_connect(listener, TIMEOUT).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn prop<'a>(seen: &'a ConnectSeen, key: &str) -> &'a str {
    seen.connect
        .properties
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("connect has no {key}: {:?}", seen.connect.properties))
}

#[test]
fn ffmpeg_player_accepts_our_signed_handshake() {
    let (l, url) = listen();
    let seen = run(
        Command::new(require_tool("ffmpeg")).args([
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            &url,
            "-f",
            "null",
            "-",
        ]),
        &l,
    );
    // FFmpeg sends a scheme-0 digest C1 and, as a player, refuses a server
    // whose S1 digest or S2 signature does not verify; it only sends connect
    // after both did.
    assert!(
        matches!(seen.handshake, HandshakeKind::Digest { .. }),
        "{seen:?}"
    );
    assert_eq!(seen.client_version, [9, 0, 124, 2]);
    assert_eq!(
        seen.c2_validated,
        Some(true),
        "FFmpeg's signed C2 must verify"
    );
    assert_eq!(seen.connect.resolved_app().as_deref(), Some("live"));
    assert!(prop(&seen, "tcUrl").ends_with("/live"));
    assert!(prop(&seen, "flashVer").starts_with("LNX"));
}

#[test]
fn ffmpeg_publisher_sends_fmle_connect() {
    let (l, url) = listen();
    let seen = run(
        Command::new(require_tool("ffmpeg")).args([
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-c:v",
            "flv1",
            "-f",
            "flv",
            &url,
        ]),
        &l,
    );
    assert!(
        matches!(seen.handshake, HandshakeKind::Digest { .. }),
        "{seen:?}"
    );
    assert_eq!(seen.connect.transaction_id, 1.0);
    assert_eq!(prop(&seen, "app"), "live");
    assert_eq!(prop(&seen, "type"), "nonprivate");
    assert!(prop(&seen, "flashVer").starts_with("FMLE/3.0"));
}

#[test]
fn rtmpdump_completes_simple_handshake() {
    let (l, url) = listen();
    let seen = run(
        Command::new(require_tool("rtmpdump"))
            .args([
                "-q",
                "--live",
                "--timeout",
                "20",
                "-o",
                "/dev/null",
                "-r",
                &url,
            ])
            .stderr(Stdio::null()),
        &l,
    );
    assert_eq!(seen.handshake, HandshakeKind::Simple, "{seen:?}");
    assert_eq!(seen.c2_validated, Some(true), "librtmp's C2 echoes S1");
    assert_eq!(seen.connect.app(), Some("live"));
    assert!(prop(&seen, "tcUrl").ends_with("/live"));
}

#[test]
fn gstreamer_player_accepts_our_s2() {
    let (l, url) = listen();
    let location = format!("location={url}");
    let seen = run(
        Command::new(require_tool("gst-launch-1.0"))
            .args(["-q", "rtmp2src", &location, "!", "fakesink"])
            .stderr(Stdio::null()),
        &l,
    );
    // rtmp2src fails the connection unless S2 echoes its C1 from byte 8.
    assert_eq!(seen.handshake, HandshakeKind::Simple, "{seen:?}");
    assert_eq!(seen.c2_validated, Some(true));
    assert_eq!(seen.connect.app(), Some("live"));
}

#[test]
fn gstreamer_publisher_sends_connect() {
    let (l, url) = listen();
    let location = format!("location={url}");
    let seen = run(
        Command::new(require_tool("gst-launch-1.0"))
            .args([
                "-q",
                "audiotestsrc",
                "is-live=true",
                "!",
                "audio/x-raw,format=S16LE,rate=44100,channels=1",
                "!",
                "flvmux",
                "streamable=true",
                "!",
                "rtmp2sink",
                &location,
            ])
            .stderr(Stdio::null()),
        &l,
    );
    assert_eq!(seen.handshake, HandshakeKind::Simple, "{seen:?}");
    assert_eq!(seen.connect.app(), Some("live"));
    assert_eq!(prop(&seen, "type"), "nonprivate");
}
