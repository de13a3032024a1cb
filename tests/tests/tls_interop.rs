//! RTMPS against the real `tincan` binary, with certificates each test
//! makes (a test CA and leaf certificates, rcgen): FFmpeg publishing over
//! `rtmps://` while a player decodes over plain `rtmp://`; the certificate
//! reloaded (files rewritten with and without `SIGHUP`) under a live TLS
//! publisher, with new clients seeing the new certificate; a bad new
//! certificate refused; the RTMP handshake deadline and the connection
//! limit applied to TLS connections as to plain ones.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tincan_tests::require_tool;
use tincan_tests::server::{
    play_args, publish_args, tincan_binary, x264, Client, Output, TestServer,
};
use tincan_tests::tls::{self, Leaf, TestCa};

const TIMEOUT: Duration = Duration::from_secs(30);
const FPS: u32 = 25;

/// A directory holding the server's certificate and key files.
struct CertDir {
    dir: tempfile::TempDir,
}

impl CertDir {
    fn with(leaf: &Leaf) -> CertDir {
        let d = CertDir {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        tls::install(leaf, &d.cert(), &d.key());
        d
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("fullchain.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("privkey.pem")
    }
}

/// An FFmpeg publisher of `secs` seconds of H.264 and AAC to `url`.
fn publisher(ffmpeg: &Path, url: &str, secs: u32) -> Client {
    let video = x264(FPS);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    // FFmpeg's TLS (GnuTLS in Debian's build) does not verify the server's
    // certificate unless asked (`-tls_verify 1`), so the test CA needs no
    // installing.
    Client::spawn(
        "publisher",
        Command::new(ffmpeg).args(publish_args(
            url,
            FPS,
            secs,
            &video,
            &["-c:a", "aac", "-b:a", "64k"],
        )),
        Output::Ignore,
    )
}

/// An FFmpeg player decoding `url` (framecrc lines, counted).
fn player(ffmpeg: &Path, url: &str, extra: &[&str]) -> Client {
    Client::spawn(
        "player",
        Command::new(ffmpeg).args(play_args(url, extra)),
        Output::FrameCrc,
    )
}

/// Waits until `cond` holds, up to `timeout`.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
}

/// The certificate the server presents to a new client now.
fn presented(ca: &TestCa, server: &TestServer) -> Vec<u8> {
    tls::handshake(ca, server.tls_port())
        .unwrap_or_else(|e| panic!("TLS handshake failed: {e}\nserver:\n{}", server.logs()))
        .der
}

#[test]
fn ffmpeg_publishes_over_rtmps_and_a_plain_rtmp_player_decodes() {
    let ffmpeg = require_tool("ffmpeg");
    let ca = TestCa::new();
    let leaf = ca.leaf("tincan rtmps test", 1);
    let certs = CertDir::with(&leaf);
    let server = TestServer::start_with_tls_and_http(&[], &certs.cert(), &certs.key());

    // Both versions, modern suites only, and the certificate made above,
    // verified against the test CA for `localhost`.
    for (versions, want) in [
        (&[&rustls::version::TLS13][..], "TLSv1_3"),
        (&[&rustls::version::TLS12][..], "TLSv1_2"),
    ] {
        let p = tls::handshake_with(&ca, server.tls_port(), versions).expect("TLS handshake");
        assert_eq!(p.version, want);
        assert_eq!(p.der, leaf.der);
        assert!(
            p.suite.contains("GCM") || p.suite.contains("CHACHA20"),
            "{}",
            p.suite
        );
    }

    let _publisher = publisher(&ffmpeg, &server.tls_url("secure"), 15);
    let mut player = player(&ffmpeg, &server.url("secure"), &["-t", "3"]);
    let status = player.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "player did not finish cleanly ({status:?}): {}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    let p = player.progress();
    let err = player.stderr();
    assert!(p.video >= 60, "{}", player.describe());
    assert!(p.audio >= 60, "{}", player.describe());
    assert!(err.contains("Video: h264"), "{err}");
    assert!(err.contains("Audio: aac"), "{err}");
    let logs = server.logs();
    assert!(logs.contains("listening for RTMPS"), "{logs}");
    assert!(logs.contains("accepted tls=true"), "{logs}");
    // Operators see RTMPS apart from plain RTMP: the publisher (and the
    // two handshake probes) were accepted as rtmps, the player as rtmp.
    let metrics = tincan_tests::http::get(&server.http_url("/metrics")).body;
    let opened = |transport: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "tincan_connections_opened_total{{transport=\"{transport}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {transport} series in:\n{metrics}"))
    };
    assert!(opened("rtmps") >= 1, "{metrics}");
    assert!(opened("rtmp") >= 1, "{metrics}");
}

#[test]
fn the_certificate_reloads_under_a_live_tls_publisher() {
    let ffmpeg = require_tool("ffmpeg");
    let ca = TestCa::new();
    let first = ca.leaf("first", 1);
    let certs = CertDir::with(&first);
    let server = TestServer::start_with_tls(&[], &certs.cert(), &certs.key());
    assert_eq!(presented(&ca, &server), first.der);

    let mut publisher = publisher(&ffmpeg, &server.tls_url("reload"), 25);
    let player = player(&ffmpeg, &server.url("reload"), &[]);
    let decoding = |after: usize| {
        let p = player.wait_for(TIMEOUT, |p| p.video >= after);
        assert!(
            p.video >= after,
            "the player stalled at {} frames: {}\n{}\nserver:\n{}",
            p.video,
            player.describe(),
            publisher.describe(),
            server.logs()
        );
        p.video
    };
    let mut frames = decoding(25);

    // 1. New files, then SIGHUP: a new client sees the new certificate.
    let second = ca.leaf("second", 2);
    tls::install(&second, &certs.cert(), &certs.key());
    server.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || presented(&ca, &server)
            == second.der),
        "the new certificate was not served after SIGHUP:\n{}",
        server.logs()
    );
    // The publisher's TLS connection, made with the first certificate,
    // carries on.
    frames = decoding(frames + 2 * FPS as usize);

    // 2. New files only: picked up by the files' watch.
    let third = ca.leaf("third", 3);
    tls::install(&third, &certs.cert(), &certs.key());
    assert!(
        eventually(Duration::from_secs(8), || presented(&ca, &server)
            == third.der),
        "the new certificate was not served after the files changed:\n{}",
        server.logs()
    );
    decoding(frames + 2 * FPS as usize);

    assert!(publisher.is_running(), "{}", publisher.describe());
    let status = publisher.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "the TLS publisher failed ({status:?}): {}\nserver:\n{}",
        publisher.describe(),
        server.logs()
    );
    let logs = server.logs();
    assert!(
        logs.matches("TLS certificate reloaded").count() >= 2,
        "{logs}"
    );
    assert!(logs.contains("trigger=files changed"), "{logs}");
    // One publish from start to end: the publisher was never dropped.
    assert_eq!(logs.matches("publish accepted").count(), 1, "{logs}");
}

#[test]
fn a_bad_new_certificate_keeps_the_old_one_and_the_log_says_why() {
    let ca = TestCa::new();
    let good = ca.leaf("good", 1);
    let certs = CertDir::with(&good);
    let mut server = TestServer::start_with_tls(&[], &certs.cert(), &certs.key());
    assert_eq!(presented(&ca, &server), good.der);

    // A certificate with somebody else's key, then SIGHUP.
    let other = ca.leaf("other", 2);
    let stranger = ca.leaf("stranger", 3);
    tls::replace_file(&certs.cert(), other.cert_pem.as_bytes());
    tls::replace_file(&certs.key(), stranger.key_pem.as_bytes());
    server.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || server
            .logs()
            .contains("does not match the certificate")),
        "{}",
        server.logs()
    );
    assert_eq!(presented(&ca, &server), good.der);

    // A certificate file that is not PEM, left for the files' watch.
    tls::replace_file(&certs.cert(), b"not a certificate\n");
    tls::replace_file(&certs.key(), good.key_pem.as_bytes());
    assert!(
        eventually(Duration::from_secs(8), || server
            .logs()
            .contains("no certificate (no CERTIFICATE section)")),
        "{}",
        server.logs()
    );
    assert_eq!(presented(&ca, &server), good.der);

    // Fixed: the next change is taken.
    tls::install(&other, &certs.cert(), &certs.key());
    assert!(
        eventually(Duration::from_secs(8), || presented(&ca, &server)
            == other.der),
        "{}",
        server.logs()
    );

    let logs = server.logs();
    assert!(
        logs.matches("TLS certificate not reloaded: the one in force stays")
            .count()
            >= 2,
        "{logs}"
    );
    // Key material never reaches the log.
    for leaf in [&good, &other, &stranger] {
        let body: String = leaf
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(
            !logs.contains(&body[..32]),
            "key material in the log:\n{logs}"
        );
    }
    assert!(server.is_running());
}

/// Whether the server closed `stream` within `within`: `Some(elapsed)` once
/// a read sees the end (or a reset).
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if start.elapsed() < within => return Some(start.elapsed()),
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_tls_client_that_stalls_mid_handshake_is_dropped_at_the_handshake_deadline() {
    let ca = TestCa::new();
    let certs = CertDir::with(&ca.leaf("deadline", 1));
    let server =
        TestServer::start_with_tls(&["--handshake-timeout", "1"], &certs.cert(), &certs.key());
    let hello = tls::client_hello(&ca);
    assert!(hello.len() > 100, "a ClientHello is {} bytes", hello.len());

    // One says nothing; one stops halfway through its ClientHello.
    let start = Instant::now();
    let mut silent = TcpStream::connect((Ipv4Addr::LOCALHOST, server.tls_port())).unwrap();
    let mut halfway = TcpStream::connect((Ipv4Addr::LOCALHOST, server.tls_port())).unwrap();
    halfway.write_all(&hello[..hello.len() / 2]).unwrap();

    for (name, stream) in [("silent", &mut silent), ("halfway", &mut halfway)] {
        assert!(
            closed_within(stream, Duration::from_secs(5)).is_some(),
            "{name}: still open after 5 s:\n{}",
            server.logs()
        );
        // The deadline is 1 s from accept.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(3),
            "{name}: closed after {elapsed:?}"
        );
    }
    // Each task logs its close right after dropping the socket: the
    // clients may see the end a moment before the second line is written.
    let logged = Instant::now();
    let mut logs = server.logs();
    while logs.matches("closed during the TLS handshake").count() < 2
        && logged.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(50));
        logs = server.logs();
    }
    assert_eq!(
        logs.matches("closed during the TLS handshake").count(),
        2,
        "{logs}"
    );
    assert!(
        logs.contains("RTMP handshake did not complete before its deadline"),
        "{logs}"
    );
    // A client that completes its handshakes in time is served.
    assert!(tls::handshake(&ca, server.tls_port()).is_ok());
}

#[test]
fn tls_connections_count_against_max_connections_like_plain_ones() {
    let ca = TestCa::new();
    let certs = CertDir::with(&ca.leaf("limits", 1));
    let server = TestServer::start_with_tls(
        &["--max-connections", "2", "--handshake-timeout", "30"],
        &certs.cert(),
        &certs.key(),
    );
    // One TLS and one plain connection hold both slots (retried until the
    // start-up probes of TestServer have left theirs).
    let mut held = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            held = tls::connect_tls(&ca, server.tls_port(), rustls::ALL_VERSIONS).ok();
            held.is_some()
        }),
        "no TLS connection:\n{}",
        server.logs()
    );
    let mut plain_held = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port())).unwrap();
            let open = closed_within(&mut s, Duration::from_millis(300)).is_none();
            plain_held = open.then_some(s);
            open
        }),
        "no plain connection:\n{}",
        server.logs()
    );

    // A third TLS connection is refused before any TLS is spoken...
    let refused = tls::handshake(&ca, server.tls_port());
    assert!(refused.is_err(), "a third connection was served");
    // ... and so is a third plain one.
    let mut plain = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port())).unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(3)).is_some());

    let logs = server.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("connection refused") && l.contains("connection limit (2)"))
        .collect();
    assert!(refused.iter().any(|l| l.contains("tls=true")), "{logs}");
    assert!(refused.iter().any(|l| l.contains("tls=false")), "{logs}");
    drop((held, plain_held));
}

#[test]
fn tls_listen_without_a_certificate_does_not_start() {
    let out = Command::new(tincan_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run tincan");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("--tls-key"),
        "{err}"
    );
}
