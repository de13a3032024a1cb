//! The RTWebSocket tests' peers: the reference RTWebSocket/TC client
//! (third-party, MIT, copied unchanged into `tests/vendor/`) run in
//! Node, and a headless Chromium driven over the DevTools protocol by a
//! small Node script (`tests/node/`). scripts/test installs Node, Chromium
//! and the `ws` package.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{require_tool, ChildGuard};

/// The reference RTWebSocket implementation: `$TINCAN_RTWS_VENDOR`, or the
/// copy in `tests/vendor/rtwebsocket`, so a clone anywhere has its peers.
/// Missing, the test fails and says where it looked: these peers are not
/// optional.
pub fn vendor_dir() -> PathBuf {
    let dir = std::env::var_os("TINCAN_RTWS_VENDOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/vendor/rtwebsocket"));
    assert!(
        dir.join("rtws.js").is_file() && dir.join("tcconn.js").is_file(),
        "the reference RTWebSocket client (rtws.js, tcconn.js, ...) is not in {}: \
         set TINCAN_RTWS_VENDOR to its directory",
        dir.display()
    );
    dir
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_owned()
}

/// `tests/node/`, with its packages installed.
pub fn node_dir() -> PathBuf {
    let dir = repo_root().join("tests/node");
    assert!(
        dir.join("node_modules/ws").is_dir(),
        "the `ws` package is not installed in {}: run scripts/test (it runs npm install there)",
        dir.display()
    );
    dir
}

/// `node SCRIPT ARGS...` from `tests/node/`, stdout and stderr piped.
pub fn node(script: &str) -> Command {
    let dir = node_dir();
    let mut cmd = Command::new(require_tool("node"));
    cmd.current_dir(&dir).arg(dir.join(script));
    cmd
}

/// A child whose stdout lines arrive on a channel, and whose stderr is
/// kept for failure messages; killed on drop.
#[derive(Debug)]
pub struct Lines {
    _child: ChildGuard,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Lines {
    /// Spawns `cmd` with its output read as it comes.
    pub fn spawn(cmd: &mut Command) -> Lines {
        let mut child = ChildGuard::spawn(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let (tx, lines) = mpsc::channel();
        let out = child.0.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.0.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: keep the first MiB.
                if s.len() < 1 << 20 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Lines {
            _child: child,
            lines,
            stderr,
        }
    }

    /// The next line, or `None` at the deadline or once stdout closed.
    pub fn next_before(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Every JSON line of `lines` until `done` holds for one, stdout closes or
/// `timeout` passes.
pub fn json_lines_until(
    lines: &Lines,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while let Some(line) = lines.next_before(deadline) {
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON from the client ({e}): {line}"));
        let stop = done(&v);
        out.push(v);
        if stop {
            break;
        }
    }
    out
}

/// A headless Chromium with its DevTools endpoint, killed on drop with
/// its throwaway profile.
#[derive(Debug)]
pub struct Chromium {
    _child: ChildGuard,
    /// `ws://127.0.0.1:PORT/devtools/browser/ID`.
    pub devtools: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium headless (no sandbox: tests may run as root; a fake
    /// camera and microphone, granted without asking; sound allowed
    /// without a gesture) and waits for its DevTools endpoint.
    pub fn start() -> Chromium {
        let profile = tempfile::tempdir().expect("browser profile");
        let mut child = ChildGuard::spawn(
            Command::new(require_tool("chromium"))
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--mute-audio",
                    "--autoplay-policy=no-user-gesture-required",
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    // A port of its own, announced on stderr.
                    "--remote-debugging-port=0",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("about:blank")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        // Chromium says where its DevTools endpoint listens on stderr; the
        // rest of stderr is read and dropped so it never blocks.
        let err = child.0.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let devtools = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium did not open its DevTools endpoint");
        Chromium {
            _child: child,
            devtools,
            _profile: profile,
        }
    }

    /// Opens `url` with `init` run before the page's scripts, and evaluates
    /// `poll` until it returns `{done: true, ...}` or `timeout`. Returns
    /// the last value and the page's console output.
    pub fn run(
        &self,
        url: &str,
        init: &str,
        poll: &str,
        timeout: Duration,
    ) -> (serde_json::Value, String) {
        let out = node("cdp.js")
            .args([&self.devtools, url, init, poll])
            .arg(timeout.as_secs().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run node cdp.js");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "cdp.js printed no result ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let console = v["console"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        (v["result"].clone(), console)
    }
}

/// A page script run before any other: counts the frames the browser's
/// own `VideoDecoder` puts out, for any page, as `window.__decodedFrames`
/// (and their size as `window.__frameSize`), so a test asserts frames that
/// really decoded rather than a screenshot.
pub const COUNT_DECODED_FRAMES: &str = r#"(() => {
  const Real = window.VideoDecoder;
  if (!Real) return;
  window.__decodedFrames = 0;
  window.VideoDecoder = class extends Real {
    constructor(init) {
      const output = init.output;
      super({ ...init, output: (frame) => {
        window.__decodedFrames++;
        window.__frameSize = frame.displayWidth + "x" + frame.displayHeight;
        output(frame);
      } });
    }
  };
})();"#;
