//! `tincan-bench`: the load tools measure a real `tincan serve` over real
//! sockets and report what they promise (every player complete, latencies
//! from the in-media marker, first frames that start on a keyframe, the
//! server's CPU and memory), so the side-by-side comparison can trust them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tincan_tests::require_tool;
use tincan_tests::server::{bench_binary, TestServer};

/// A small H.264 + AAC FLV (320x240, 25 fps, a keyframe every second,
/// 6 s), made once per test process.
fn small_flv(dir: &Path) -> PathBuf {
    let out = dir.join("small.flv");
    let status = Command::new(require_tool("ffmpeg"))
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6", "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-tune",
            "zerolatency",
            "-bf",
            "0",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the test FLV");
    out
}

/// Runs `tincan-bench ARGS`; returns (success, last stdout line, stderr).
fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bench_binary())
        .args(args)
        .output()
        .expect("run tincan-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    (
        out.status.success(),
        last,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The raw text of `key`'s value in a flat or one-level JSON object
/// (`"latency_ms.p99"` looks inside `latency_ms`).
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let (scope, key) = match key.split_once('.') {
        Some((outer, inner)) => {
            let start = json
                .find(&format!("\"{outer}\":{{"))
                .unwrap_or_else(|| panic!("no {outer} in {json}"));
            let inner_json = &json[start..];
            let end = inner_json.find('}').expect("closed object");
            (&inner_json[..=end], inner)
        }
        None => (json, key),
    };
    let pat = format!("\"{key}\":");
    let start = scope
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &scope[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

fn num(json: &str, key: &str) -> f64 {
    let v = field(json, key);
    v.parse()
        .unwrap_or_else(|_| panic!("{key} is {v}, not a number, in {json}"))
}

#[test]
fn fanout_reports_every_player_complete_with_latency_and_server_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    let mut server = TestServer::start();
    let pid = server.child().id().to_string();
    let url = server.url("bench");
    let (ok, json, stderr) = bench(&[
        "fanout",
        "--url",
        &url,
        "--input",
        flv.to_str().expect("utf-8 path"),
        "--players",
        "5",
        "--duration",
        "4",
        "--warmup",
        "1",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "bench fanout failed:\n{stderr}\n{}", server.logs());
    assert_eq!(num(&json, "players"), 5.0, "{stderr}");
    assert_eq!(num(&json, "players_failed"), 0.0, "{stderr}");
    assert!(num(&json, "completeness_min") >= 0.99, "{stderr}");
    assert_eq!(num(&json, "players_below_99pct"), 0.0, "{stderr}");
    // 25 fps for 4 s: about 100 markers sent in the window.
    assert!(num(&json, "frames_sent") >= 80.0, "{stderr}");
    assert!(num(&json, "latency_ms.samples") >= 400.0, "{stderr}");
    let p99 = num(&json, "latency_ms.p99");
    assert!(p99 > 0.0 && p99 <= num(&json, "latency_ms.max"), "{stderr}");
    assert!(num(&json, "first_frame_ms.p50") > 0.0, "{stderr}");
    assert_eq!(num(&json, "first_frame_keyframe_pct"), 100.0, "{stderr}");
    assert!(num(&json, "delivered_bytes") > 0.0, "{stderr}");
    assert!(num(&json, "server_cpu_s") > 0.0, "{stderr}");
    assert!(num(&json, "cpu_s_per_gb") > 0.0, "{stderr}");
    assert!(num(&json, "server_peak_rss_kb") > 0.0, "{stderr}");
    assert!(num(&json, "server_rss_before_players_kb") > 0.0, "{stderr}");
    assert!(num(&json, "tool_cpu_s") >= 0.0, "{stderr}");
}

#[test]
fn ingest_publishes_every_stream_to_its_player_and_reports_cpu_per_received_gb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    let mut server = TestServer::start();
    let pid = server.child().id().to_string();
    let url = server.url("ingest");
    let (ok, json, stderr) = bench(&[
        "ingest",
        "--url",
        &url,
        "--input",
        flv.to_str().expect("utf-8 path"),
        "--publishers",
        "5",
        "--duration",
        "4",
        "--warmup",
        "1",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "bench ingest failed:\n{stderr}\n{}", server.logs());
    assert_eq!(num(&json, "publishers"), 5.0, "{stderr}");
    assert_eq!(num(&json, "publishers_publishing"), 5.0, "{stderr}");
    assert_eq!(num(&json, "publishers_failed"), 0.0, "{stderr}");
    assert_eq!(num(&json, "players"), 5.0, "{stderr}");
    assert_eq!(num(&json, "players_failed"), 0.0, "{stderr}");
    assert!(num(&json, "completeness_min") >= 0.99, "{stderr}");
    assert_eq!(num(&json, "players_below_99pct"), 0.0, "{stderr}");
    // 5 streams at 25 fps for 4 s: about 500 markers sent in the window.
    assert!(num(&json, "frames_sent") >= 400.0, "{stderr}");
    assert!(num(&json, "received_bytes") > 0.0, "{stderr}");
    assert!(num(&json, "delivered_bytes") > 0.0, "{stderr}");
    assert!(num(&json, "cpu_s_per_received_gb") > 0.0, "{stderr}");
}

#[test]
fn fanout_without_server_pid_reports_null_server_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    let server = TestServer::start();
    let url = server.url("bench");
    let (ok, json, stderr) = bench(&[
        "fanout",
        "--url",
        &url,
        "--input",
        flv.to_str().expect("utf-8 path"),
        "--players",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0.5",
        "--json",
    ]);
    assert!(ok, "bench fanout failed:\n{stderr}");
    assert_eq!(field(&json, "server_cpu_s"), "null");
    assert_eq!(field(&json, "server_peak_rss_kb"), "null");
    assert!(num(&json, "delivered_bytes") > 0.0, "{stderr}");
}

#[test]
fn fanout_refuses_an_input_without_h264_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Sorenson H.263, FLV's original video codec: a valid FLV, no H.264.
    let sorenson = dir.path().join("sorenson.flv");
    let status = Command::new(require_tool("ffmpeg"))
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-t",
            "1",
        ])
        .args(["-c:v", "flv", "-f", "flv"])
        .arg(&sorenson)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the Sorenson FLV");
    let server = TestServer::start();
    let url = server.url("bench");
    let (ok, _, stderr) = bench(&[
        "fanout",
        "--url",
        &url,
        "--input",
        sorenson.to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("not H.264/AVC"), "{stderr}");
}

#[test]
fn idle_reports_a_positive_cost_per_connection() {
    let mut server = TestServer::start();
    let pid = server.child().id().to_string();
    let url = format!("rtmp://127.0.0.1:{}/live", server.port());
    let (ok, json, stderr) = bench(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "50",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "bench idle failed:\n{stderr}");
    assert_eq!(num(&json, "connections"), 50.0, "{stderr}");
    assert!(num(&json, "bytes_per_connection") > 0.0, "{stderr}");
}

/// A `tincan-bench floor` on a free loopback port, killed on drop.
struct Floor {
    child: Child,
    url: String,
}

impl Floor {
    fn start(args: &[&str]) -> Floor {
        let mut child = Command::new(bench_binary())
            .args(["floor", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run tincan-bench floor");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the floor's address");
        let addr = line
            .trim()
            .strip_prefix("floor listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Floor {
            child,
            url: format!("rtmp://{addr}/live/bench"),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the load tool against `floor` with three players; returns its JSON.
fn fanout_against(floor: &mut Floor, flv: &Path) -> (String, String) {
    let pid = floor.child.id().to_string();
    let (ok, json, stderr) = bench(&[
        "fanout",
        "--url",
        &floor.url,
        "--input",
        flv.to_str().expect("utf-8 path"),
        "--players",
        "3",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "bench fanout against the floor failed:\n{stderr}");
    (json, stderr)
}

#[test]
fn floor_gives_every_player_every_frame_from_a_keyframe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    let mut floor = Floor::start(&["--writes", "per-frame"]);
    let (json, stderr) = fanout_against(&mut floor, &flv);
    assert_eq!(num(&json, "players_failed"), 0.0, "{stderr}");
    assert!(num(&json, "completeness_min") >= 0.99, "{stderr}");
    // 25 fps for 3 s: markers arrive intact, from every player.
    assert!(num(&json, "latency_ms.samples") >= 3.0 * 60.0, "{stderr}");
    assert_eq!(num(&json, "first_frame_keyframe_pct"), 100.0, "{stderr}");
    assert!(num(&json, "cpu_s_per_gb") > 0.0, "{stderr}");
}

#[test]
fn uring_floor_gives_every_player_every_frame_from_a_keyframe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    // The io_uring write path hands the kernel the same writes as the
    // per-frame floor, so players must see exactly the same stream.
    let mut floor = Floor::start(&["--writes", "uring-per-frame"]);
    let (json, stderr) = fanout_against(&mut floor, &flv);
    assert_eq!(num(&json, "players_failed"), 0.0, "{stderr}");
    assert!(num(&json, "completeness_min") >= 0.99, "{stderr}");
    assert!(num(&json, "latency_ms.samples") >= 3.0 * 60.0, "{stderr}");
    assert_eq!(num(&json, "first_frame_keyframe_pct"), 100.0, "{stderr}");
    assert!(num(&json, "cpu_s_per_gb") > 0.0, "{stderr}");
}

#[test]
fn floor_with_batched_writes_gives_every_player_every_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = small_flv(dir.path());
    let mut floor = Floor::start(&["--writes", "batched", "--batch-ms", "30"]);
    let (json, stderr) = fanout_against(&mut floor, &flv);
    assert_eq!(num(&json, "players_failed"), 0.0, "{stderr}");
    assert!(num(&json, "completeness_min") >= 0.99, "{stderr}");
    assert!(num(&json, "latency_ms.samples") >= 3.0 * 60.0, "{stderr}");
    // Messages really were held for the batch: one written at once
    // arrives in well under a millisecond on loopback, one held waits
    // about half the 30 ms bound on average.
    assert!(num(&json, "latency_ms.p50") >= 5.0, "{stderr}");
}
